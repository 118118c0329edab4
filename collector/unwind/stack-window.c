/* Finds how much of a stack window is readable when the window runs past the end of the stack mapping. */
#include "stack-window.h"

uint64_t stack_readable_end(uint64_t start, size_t len, uint64_t page, stack_probe_fn probe, void *ctx)
{
  uint64_t first_end = (start | (page - 1)) + 1;
  uint64_t hi = start + len; /* known unreadable end (the caller's whole read failed) */
  if (first_end >= hi || !probe(ctx, start, (size_t)(first_end - start)))
    return start;
  uint64_t lo = first_end; /* known readable end, page-aligned */
  /* The true end is page-aligned and in [lo, hi); with hi - lo <= page only lo qualifies. */
  while (hi - lo > page) {
    uint64_t half = ((hi - lo) / 2) & ~(page - 1);
    uint64_t mid = lo + (half ? half : page); /* at least one page, so each probe makes progress */
    if (probe(ctx, lo, (size_t)(mid - lo)))
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}
