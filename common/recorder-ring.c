/* The recorder's shared-memory event ring: reservation by compare-and-swap on the head, commit by a release
 * store of the record's first word, and the reader that zeroes what it consumed so a reserved record always
 * starts from zero bytes. */
#include "recorder-ring.h"

#include <stddef.h>
#include <string.h>

#include "errors.h"

_Static_assert(offsetof(struct rring_shared, head) == 256, "ring header layout");
_Static_assert(offsetof(struct rring_shared, tail) == 320, "ring header layout");
_Static_assert(sizeof(struct rring_shared) <= RRING_HEADER_SIZE, "ring header layout");
_Static_assert(sizeof(struct rring_call) == 80, "call record layout");

int rring_init(void *mem, uint64_t cap, int32_t pid)
{
  if (cap < 4096 || (cap & (cap - 1)) != 0 || cap > (1ull << 31))
    return RS_E_BAD_ARG;
  struct rring_shared *sh = mem;
  memcpy(sh->magic, RRING_MAGIC, 8);
  sh->version = RRING_VERSION;
  sh->header_size = RRING_HEADER_SIZE;
  sh->cap = cap;
  sh->pid = pid;
  __atomic_store_n(&sh->enabled, 0, __ATOMIC_RELEASE);
  return 0;
}

int rring_open(struct rring *r, void *mem, size_t len)
{
  struct rring_shared *sh = mem;
  if (len < RRING_HEADER_SIZE || memcmp(sh->magic, RRING_MAGIC, 8) != 0 || sh->version != RRING_VERSION ||
      sh->header_size != RRING_HEADER_SIZE || sh->cap < 4096 || (sh->cap & (sh->cap - 1)) != 0 ||
      sh->cap > len - RRING_HEADER_SIZE)
    return RS_E_FORMAT;
  r->sh = sh;
  r->data = (uint8_t *)mem + RRING_HEADER_SIZE;
  r->cap = sh->cap;
  return 0;
}

int rring_reserve(struct rring *r, uint32_t len, uint8_t **out)
{
  uint64_t cap = r->cap;
  uint64_t head = __atomic_load_n(&r->sh->head, __ATOMIC_RELAXED);
  for (;;) {
    uint64_t tail = __atomic_load_n(&r->sh->tail, __ATOMIC_ACQUIRE);
    uint64_t off = head & (cap - 1);
    uint64_t pad = off + len > cap ? cap - off : 0; /* the record does not fit before the end: wrap */
    if (head + pad + len - tail > cap)
      return 1;
    if (__atomic_compare_exchange_n(&r->sh->head, &head, head + pad + len, 1, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
      if (pad) {
        uint8_t *p = r->data + off;
        p[4] = RRING_REC_PAD;
        __atomic_store_n((uint32_t *)p, (uint32_t)pad | RRING_COMMITTED, __ATOMIC_RELEASE);
        off = 0;
      }
      uint8_t *rec = r->data + off;
      __atomic_store_n((uint32_t *)rec, len, __ATOMIC_RELAXED);
      *out = rec;
      return 0;
    }
  }
}

void rring_commit(uint8_t *rec, uint32_t len)
{
  __atomic_store_n((uint32_t *)rec, len | RRING_COMMITTED, __ATOMIC_RELEASE);
}

int rring_peek(struct rring *r, const uint8_t **rec, uint32_t *len)
{
  for (;;) {
    uint64_t tail = __atomic_load_n(&r->sh->tail, __ATOMIC_RELAXED);
    uint64_t head = __atomic_load_n(&r->sh->head, __ATOMIC_ACQUIRE);
    if (tail == head)
      return 0;
    uint8_t *p = r->data + (tail & (r->cap - 1));
    uint32_t w = __atomic_load_n((uint32_t *)p, __ATOMIC_ACQUIRE);
    uint32_t n = w & ~RRING_COMMITTED;
    if (n == 0 || n % 8 || n > r->cap - (tail & (r->cap - 1))) {
      *len = 0; /* reserved, its first word not written yet */
      return 2;
    }
    *len = n;
    if (!(w & RRING_COMMITTED))
      return 2;
    if (p[4] == RRING_REC_PAD) {
      rring_release(r, n);
      continue;
    }
    *rec = p;
    return 1;
  }
}

void rring_release(struct rring *r, uint32_t len)
{
  uint64_t tail = __atomic_load_n(&r->sh->tail, __ATOMIC_RELAXED);
  memset(r->data + (tail & (r->cap - 1)), 0, len);
  __atomic_store_n(&r->sh->tail, tail + len, __ATOMIC_RELEASE);
}

uint64_t rring_used(const struct rring *r)
{
  return __atomic_load_n(&r->sh->head, __ATOMIC_ACQUIRE) - __atomic_load_n(&r->sh->tail, __ATOMIC_ACQUIRE);
}
