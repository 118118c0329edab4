/* The recorder's unwind tables: the agent's table arena (common/table-arena.h), mapped read-only, and a few
 * published snapshots of this process's module map taken from it. A snapshot is retaken when the arena's
 * generation changes, by one thread at a time, into a buffer no reader was last handed; a thread that finds
 * another one retaking walks with the previous snapshot. No lock, no allocation: signal handlers may walk. */
#include "recorder-tables.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table-arena.h"

#define NSNAP 4 /* published snapshots in rotation: a walk still using an old one is not overwritten soon */

struct snapshot {
  struct utab_module mods[TARENA_MAX_MODS];
  struct utab tabs[TARENA_MAX_MODS];
  size_t n;
  uint32_t generation;
};

static struct snapshot snaps[NSNAP];
static struct snapshot *current; /* the published one, NULL before the first */
static unsigned next_snap;
static int retaking;             /* a thread is retaking a snapshot */
static const void *arena_map;
static size_t arena_len;
static int own_pid;

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
  own_pid = (int)getpid();
  __atomic_store_n(&arena_map, p, __ATOMIC_RELEASE);
  return 0;
}

void rec_tables_view(struct rec_tables *t)
{
  t->mods = NULL;
  t->nmods = 0;
  const void *arena = __atomic_load_n(&arena_map, __ATOMIC_ACQUIRE);
  if (!arena)
    return;
  struct snapshot *cur = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
  uint32_t gen = tarena_generation(arena);
  if ((!cur || cur->generation != gen) && !(gen & 1) && !__atomic_exchange_n(&retaking, 1, __ATOMIC_ACQUIRE)) {
    struct snapshot *s = &snaps[next_snap++ % NSNAP];
    if (s == cur)
      s = &snaps[next_snap++ % NSNAP];
    size_t n = 0;
    if (tarena_snapshot(arena, arena_len, own_pid, s->mods, s->tabs, TARENA_MAX_MODS, &n) == 0) {
      s->n = n;
      s->generation = gen;
      __atomic_store_n(&current, s, __ATOMIC_RELEASE);
      cur = s;
    }
    __atomic_store_n(&retaking, 0, __ATOMIC_RELEASE);
  }
  if (cur) {
    t->mods = cur->mods;
    t->nmods = cur->n;
  }
}
