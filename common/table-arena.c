/* The table arena (table-arena.h): directories at fixed offsets, a bump allocator for table bytes, and a
 * seqlock around every change a reader could see half done. */
#include "table-arena.h"

#include <string.h>

#include "errors.h"

#define SNAPSHOT_TRIES 1000

static struct tarena_header *hdr(void *a) { return a; }
static const struct tarena_header *chdr(const void *a) { return a; }
static struct tarena_table *tables(void *a) { return (struct tarena_table *)((uint8_t *)a + sizeof(struct tarena_header)); }
static const struct tarena_table *ctables(const void *a)
{
  return (const struct tarena_table *)((const uint8_t *)a + sizeof(struct tarena_header));
}
static struct tarena_proc *procs(void *a) { return (struct tarena_proc *)(tables(a) + TARENA_MAX_TABLES); }
static const struct tarena_proc *cprocs(const void *a)
{
  return (const struct tarena_proc *)(ctables(a) + TARENA_MAX_TABLES);
}

/* The writer's side of the seqlock. */
static void write_begin(void *a)
{
  __atomic_store_n(&hdr(a)->seq, hdr(a)->seq + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
}
static void write_end(void *a)
{
  __atomic_thread_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&hdr(a)->seq, hdr(a)->seq + 1, __ATOMIC_RELEASE);
}

int tarena_init(void *mem, size_t len)
{
  if (len < TARENA_DATA_START + 4096)
    return RS_E_BAD_ARG;
  memset(mem, 0, TARENA_DATA_START);
  struct tarena_header *h = hdr(mem);
  h->magic = TARENA_MAGIC;
  h->version = TARENA_VERSION;
  h->size = len;
  h->used = TARENA_DATA_START;
  return 0;
}

long tarena_find(const void *arena, const uint8_t *bid, size_t bid_len, int *state)
{
  const struct tarena_table *t = ctables(arena);
  uint32_t n = chdr(arena)->ntables;
  for (uint32_t i = 0; i < n && i < TARENA_MAX_TABLES; i++)
    if (t[i].build_id_len == bid_len && memcmp(t[i].build_id, bid, bid_len) == 0) {
      if (state)
        *state = t[i].state;
      return (long)i;
    }
  return -1;
}

int tarena_put_chunk(void *arena, const uint8_t *bid, size_t bid_len, uint32_t off, uint32_t total,
                     const uint8_t *data, size_t n)
{
  struct tarena_header *h = hdr(arena);
  if (bid_len == 0 || bid_len > TARENA_BUILD_ID_MAX || total < UTAB_HEADER_SIZE)
    return RS_E_BAD_ARG;
  int state;
  long i = tarena_find(arena, bid, bid_len, &state);
  struct tarena_table *t;
  if (i < 0) {
    if (off != 0)
      return RS_E_BAD_ARG;
    uint64_t at = (h->used + 7) & ~(uint64_t)7;
    if (h->ntables == TARENA_MAX_TABLES || at > h->size || total > h->size - at)
      return RS_E_LIMIT;
    t = &tables(arena)[h->ntables];
    memset(t, 0, sizeof *t);
    memcpy(t->build_id, bid, bid_len);
    t->build_id_len = (uint8_t)bid_len;
    t->state = TARENA_LOADING;
    t->off = at;
    t->len = total;
    write_begin(arena);
    h->used = at + total;
    h->ntables++;
    write_end(arena);
  } else {
    t = &tables(arena)[i];
    if (state == TARENA_READY)
      return 1;
    if (state != TARENA_LOADING || t->len != total || off != t->received)
      return RS_E_BAD_ARG;
  }
  if (n > total - off)
    return RS_E_BAD_ARG;
  memcpy((uint8_t *)arena + t->off + off, data, n);
  t->received = off + (uint32_t)n;
  if (t->received < total)
    return 0;
  int rc = utab_check((const uint8_t *)arena + t->off, t->len);
  write_begin(arena);
  t->state = rc ? TARENA_BAD : TARENA_READY;
  write_end(arena);
  return rc ? RS_E_FORMAT : 1;
}

static struct tarena_proc *proc_of(void *arena, int pid, int create)
{
  struct tarena_proc *p = procs(arena), *fresh = NULL;
  for (int i = 0; i < TARENA_MAX_PROCS; i++) {
    if (p[i].pid == pid)
      return &p[i];
    if (!fresh && p[i].pid == 0)
      fresh = &p[i];
  }
  if (!create || !fresh || pid == 0)
    return NULL;
  write_begin(arena);
  fresh->pid = pid;
  fresh->nmods = 0;
  write_end(arena);
  return fresh;
}

int tarena_clear_modules(void *arena, int pid)
{
  struct tarena_proc *p = proc_of(arena, pid, 1);
  if (!p)
    return RS_E_LIMIT;
  write_begin(arena);
  p->nmods = 0;
  write_end(arena);
  return 0;
}

int tarena_add_module(void *arena, int pid, uint64_t lo, uint64_t hi, uint64_t bias, const uint8_t *bid,
                      size_t bid_len)
{
  struct tarena_proc *p = proc_of(arena, pid, 1);
  if (!p || p->nmods == TARENA_MAX_MODS)
    return RS_E_LIMIT;
  int state = 0;
  long i = bid_len ? tarena_find(arena, bid, bid_len, &state) : -1;
  uint32_t table = i >= 0 && state == TARENA_READY ? (uint32_t)i : TARENA_NO_TABLE;
  write_begin(arena);
  /* The same range again (a module reported twice) replaces its entry. */
  uint32_t k = 0;
  while (k < p->nmods && !(p->mods[k].lo == lo && p->mods[k].hi == hi))
    k++;
  p->mods[k] = (struct tarena_mod){lo, hi, bias, table, 0};
  if (k == p->nmods)
    p->nmods++;
  write_end(arena);
  return table != TARENA_NO_TABLE;
}

void tarena_drop_process(void *arena, int pid)
{
  struct tarena_proc *p = proc_of(arena, pid, 0);
  if (!p)
    return;
  write_begin(arena);
  p->nmods = 0;
  p->pid = 0;
  write_end(arena);
}

uint32_t tarena_generation(const void *arena)
{
  return __atomic_load_n(&chdr(arena)->seq, __ATOMIC_ACQUIRE);
}

int tarena_snapshot(const void *arena, size_t len, int pid, struct utab_module *mods, struct utab *tabs,
                    size_t max, size_t *n)
{
  *n = 0;
  if (len < TARENA_DATA_START || chdr(arena)->magic != TARENA_MAGIC || chdr(arena)->version != TARENA_VERSION)
    return RS_E_FORMAT;
  for (int tries = 0; tries < SNAPSHOT_TRIES; tries++) {
    uint32_t s1 = __atomic_load_n(&chdr(arena)->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1)
      continue;
    const struct tarena_proc *p = cprocs(arena), *mine = NULL;
    for (int i = 0; i < TARENA_MAX_PROCS && !mine; i++)
      if (__atomic_load_n(&p[i].pid, __ATOMIC_RELAXED) == pid && pid != 0)
        mine = &p[i];
    int rc = mine ? 0 : RS_E_NOT_FOUND;
    size_t count = 0;
    if (mine) {
      uint32_t nm = __atomic_load_n(&mine->nmods, __ATOMIC_RELAXED);
      for (uint32_t k = 0; k < nm && k < TARENA_MAX_MODS && count < max && rc == 0; k++) {
        struct tarena_mod m;
        memcpy(&m, &mine->mods[k], sizeof m);
        mods[count] = (struct utab_module){m.bias, m.lo, m.hi, NULL};
        if (m.table != TARENA_NO_TABLE) {
          const struct tarena_table *t = &ctables(arena)[m.table < TARENA_MAX_TABLES ? m.table : 0];
          if (m.table >= TARENA_MAX_TABLES || t->state != TARENA_READY || t->off > len || t->len > len - t->off)
            rc = RS_E_FORMAT;
          else if ((rc = utab_open(&tabs[count], (const uint8_t *)arena + t->off, t->len)) == 0)
            mods[count].tab = &tabs[count];
        }
        count++;
      }
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&chdr(arena)->seq, __ATOMIC_RELAXED) != s1)
      continue; /* changed meanwhile: a half-written view may have looked damaged */
    *n = rc ? 0 : count;
    return rc;
  }
  return RS_E_TIMEOUT;
}
