/* The interned stack table (stack-intern.h): open addressing over caller-provided slots, PCs packed end to end. */
#include "stack-intern.h"

#include <string.h>

static uint32_t hash_stack(const uint64_t *pcs, size_t n, int truncated)
{
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n ^ ((uint64_t)truncated << 32);
  for (size_t i = 0; i < n; i++) {
    h ^= pcs[i];
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return (uint32_t)h;
}

void sintern_init(struct sintern *t, uint32_t *slots, size_t nslots, struct sintern_stack *stacks,
                  size_t max_stacks, uint64_t *pcs, size_t max_pcs)
{
  t->slots = slots;
  t->nslots = nslots;
  t->stacks = stacks;
  t->max_stacks = max_stacks < nslots ? max_stacks : nslots - 1;
  t->pcs = pcs;
  t->max_pcs = max_pcs;
  sintern_reset(t);
}

void sintern_reset(struct sintern *t)
{
  memset(t->slots, 0, t->nslots * sizeof t->slots[0]);
  t->nstacks = t->npcs = 0;
}

/* The slot holding the stack, or the empty slot where it would go. */
static size_t probe(const struct sintern *t, const uint64_t *pcs, size_t n, int truncated, uint32_t h)
{
  size_t mask = t->nslots - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint32_t s = t->slots[i];
    if (s == 0)
      return i;
    const struct sintern_stack *st = &t->stacks[s - 1];
    if (st->hash == h && st->n == n && st->truncated == (truncated != 0) &&
        memcmp(t->pcs + st->off, pcs, n * sizeof pcs[0]) == 0)
      return i;
  }
}

long sintern_find(const struct sintern *t, const uint64_t *pcs, size_t n, int truncated)
{
  uint32_t s = t->slots[probe(t, pcs, n, truncated, hash_stack(pcs, n, truncated))];
  return s ? (long)s - 1 : -1;
}

int sintern_room(const struct sintern *t, size_t n)
{
  return t->nstacks < t->max_stacks && n <= t->max_pcs - t->npcs;
}

long sintern_add(struct sintern *t, const uint64_t *pcs, size_t n, int truncated)
{
  if (n == 0 || n > 65535 || !sintern_room(t, n))
    return -1;
  uint32_t h = hash_stack(pcs, n, truncated);
  size_t slot = probe(t, pcs, n, truncated, h);
  struct sintern_stack *st = &t->stacks[t->nstacks];
  st->off = (uint32_t)t->npcs;
  st->hash = h;
  st->n = (uint16_t)n;
  st->truncated = truncated != 0;
  memcpy(t->pcs + t->npcs, pcs, n * sizeof pcs[0]);
  t->npcs += n;
  t->slots[slot] = (uint32_t)++t->nstacks;
  return (long)t->nstacks - 1;
}
