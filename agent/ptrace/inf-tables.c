/* The agent's table arena: created once, lazily, as a sealed-size memfd mapped shared. */
#include "inf-tables.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "table-arena.h"

static void *arena;
static int arena_fd = -1;
static int arena_failed;

static int create(void)
{
  int fd = memfd_create("rsprof-tables", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -errno;
  void *p = MAP_FAILED;
  int rc = 0;
  if (ftruncate(fd, INF_TABLES_SIZE) != 0 ||
      (p = mmap(NULL, INF_TABLES_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
    rc = -errno;
    goto fail;
  }
  /* Its size can no longer change, so a reader's mapping never outgrows the file. */
  (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  if ((rc = tarena_init(p, INF_TABLES_SIZE)) != 0)
    goto fail;
  arena = p;
  arena_fd = fd;
  return 0;
fail:
  if (p != MAP_FAILED)
    munmap(p, INF_TABLES_SIZE);
  close(fd);
  return rc;
}

void *inf_tables_arena(size_t *size)
{
  if (!arena && !arena_failed) {
    int rc = create();
    if (rc) {
      arena_failed = 1;
      LOG_WARN("no unwind-table arena (%s): events carry raw stack windows", rs_strerror(rc));
    }
  }
  if (size)
    *size = arena ? INF_TABLES_SIZE : 0;
  return arena;
}

int inf_tables_memfd(size_t *size)
{
  if (!inf_tables_arena(size))
    return RS_E_UNSUPPORTED;
  return arena_fd;
}

void inf_tables_forget_dead(void)
{
  if (!arena)
    return;
  const struct tarena_proc *p =
      (const struct tarena_proc *)((const uint8_t *)arena + sizeof(struct tarena_header) +
                                   TARENA_MAX_TABLES * sizeof(struct tarena_table));
  for (int i = 0; i < TARENA_MAX_PROCS; i++)
    if (p[i].pid > 0 && kill(p[i].pid, 0) < 0 && errno == ESRCH)
      tarena_drop_process(arena, p[i].pid);
}
