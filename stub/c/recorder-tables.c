/* The recorder's unwind tables: the agent's table arena, mapped read-only into the process. Until the arena
 * is mapped the recorder has no tables and walks frame pointers only. */
#include "recorder-tables.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const void *arena_map;
static size_t arena_len;

int rec_tables_open(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat st;
  void *p = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size > 0)
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return -1;
  arena_len = (size_t)st.st_size;
  __atomic_store_n(&arena_map, p, __ATOMIC_RELEASE);
  return 0;
}

void rec_tables_view(struct rec_tables *t)
{
  t->mods = NULL;
  t->nmods = 0;
}
