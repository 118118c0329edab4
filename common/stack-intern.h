/* A bounded table of interned PC stacks: each distinct stack gets the next id, found again by hash, in
 * storage the caller provides. Pure C, no allocation (the agent's capture and the in-process recorder). */
#ifndef RSPROF_STACK_INTERN_H
#define RSPROF_STACK_INTERN_H

#include <stddef.h>
#include <stdint.h>

struct sintern_stack {
  uint32_t off;     /* first PC in pcs */
  uint32_t hash;
  uint16_t n;
  uint16_t truncated;
};

/* The caller's storage: nslots (a power of two, more than max_stacks) hash slots, max_stacks stacks and
 * max_pcs PCs. All stay owned by the caller and must outlive the table. */
struct sintern {
  uint32_t *slots;  /* 0 empty, else a stack's index + 1 */
  size_t nslots;
  struct sintern_stack *stacks;
  size_t max_stacks, nstacks;
  uint64_t *pcs;
  size_t max_pcs, npcs;
};

/* Sets up t on the storage and empties it. */
void sintern_init(struct sintern *t, uint32_t *slots, size_t nslots, struct sintern_stack *stacks,
                  size_t max_stacks, uint64_t *pcs, size_t max_pcs);
/* Forgets every stack: ids start again at 0. */
void sintern_reset(struct sintern *t);
/* Looks the stack pcs[0..n) (with its truncation mark) up. Returns its id, or -1 when it is not there. */
long sintern_find(const struct sintern *t, const uint64_t *pcs, size_t n, int truncated);
/* Whether a stack of n PCs can be added without a reset. */
int sintern_room(const struct sintern *t, size_t n);
/* Adds a stack that sintern_find did not find, with the next id (returned), or -1 when there is no room
 * (nothing changed; n must be 1..65535). */
long sintern_add(struct sintern *t, const uint64_t *pcs, size_t n, int truncated);

#endif
