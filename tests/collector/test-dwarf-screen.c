/* The DWARF screen: the damaged files fuzzing found are refused with their reason, real binaries pass. */
#include <string.h>
#include <unistd.h>

#include "dwarf-screen.h"
#include "module.h"
#include "test.h"

static const char *screen(const char *path)
{
  struct col_module *m;
  ASSERT_EQ(col_module_open(path, NULL, NULL, &m), 0);
  const char *why = NULL;
  int rc = dwarf_screen(m, &why);
  col_module_close(m);
  return rc ? why : NULL;
}

TEST(damaged_dwarf_found_by_fuzzing_is_refused)
{
  ASSERT_STR_EQ(screen(RSPROF_FUZZ_REGRESS "/libdwarf-rnglists-double-free"), "damaged .debug_rnglists");
  ASSERT_STR_EQ(screen(RSPROF_FUZZ_REGRESS "/libdwarf-srcfiles-wild-pointer"), "damaged .debug_line header");
}

TEST(real_binaries_pass_the_screen)
{
  /* this test program (gcc's DWARF 5, with its own debug info) and libc with its separate debug file */
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_TRUE(n > 0);
  self[n] = 0;
  ASSERT_TRUE(screen(self) == NULL);
  if (access("/lib/x86_64-linux-gnu/libc.so.6", R_OK) == 0)
    ASSERT_TRUE(screen("/lib/x86_64-linux-gnu/libc.so.6") == NULL);
}
