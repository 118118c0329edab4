/* Unit tests of module+offset frame names: the format written for frames without a symbol, parsed back. */
#include <string.h>

#include "errors.h"
#include "test.h"
#include "unnamed.h"

TEST(unnamed_name_round_trips_with_build_id)
{
  static const uint8_t id[] = {0xe0, 0x22, 0x3e, 0x0f};
  char name[64], sys[64], base[32], hex[16];
  uint64_t off = 0;
  ASSERT_EQ(sym_unnamed_format("/usr/bin/prog", id, sizeof id, 0x1fc9, name, sizeof name, sys, sizeof sys), 0);
  ASSERT_STR_EQ(name, "prog+0x1fc9");
  ASSERT_STR_EQ(sys, "prog+0x1fc9@e0223e0f");
  ASSERT_EQ(sym_unnamed_parse(sys, base, sizeof base, &off, hex, sizeof hex), 0);
  ASSERT_STR_EQ(base, "prog");
  ASSERT_U64_EQ(off, 0x1fc9);
  ASSERT_STR_EQ(hex, "e0223e0f");
}

TEST(unnamed_name_without_build_id_and_other_names)
{
  char name[64], sys[64], base[32], hex[16];
  uint64_t off = 0;
  ASSERT_EQ(sym_unnamed_format("libc.so.6", NULL, 0, 0x27249, name, sizeof name, sys, sizeof sys), 0);
  ASSERT_STR_EQ(sys, "libc.so.6+0x27249");
  ASSERT_EQ(sym_unnamed_parse(sys, base, sizeof base, &off, hex, sizeof hex), 0);
  ASSERT_STR_EQ(base, "libc.so.6");
  ASSERT_STR_EQ(hex, "");
  /* Symbol names that merely contain '+' or '@' are not module+offset frames. */
  ASSERT_EQ(sym_unnamed_parse("operator+", base, sizeof base, &off, hex, sizeof hex), RS_E_NOT_FOUND);
  ASSERT_EQ(sym_unnamed_parse("memcpy@GLIBC_2.14", base, sizeof base, &off, hex, sizeof hex), RS_E_NOT_FOUND);
  ASSERT_EQ(sym_unnamed_parse("a/b+0x10", base, sizeof base, &off, hex, sizeof hex), RS_E_NOT_FOUND);
  ASSERT_EQ(sym_unnamed_parse("prog+0x10@xyz", base, sizeof base, &off, hex, sizeof hex), RS_E_NOT_FOUND);
  ASSERT_EQ(sym_unnamed_parse("prog+0x", base, sizeof base, &off, hex, sizeof hex), RS_E_NOT_FOUND);
  /* Too small a buffer is an error, not a cut name. */
  ASSERT_EQ(sym_unnamed_format("/usr/bin/prog", NULL, 0, 0x1fc9, name, 8, sys, sizeof sys), RS_E_LIMIT);
}
