/* Finds how much of a stack window is readable when the window runs past the end of the stack mapping. */
#ifndef RSPROF_COL_STACK_WINDOW_H
#define RSPROF_COL_STACK_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* Reads len bytes at addr into the window's buffer; returns 1 when all of them were readable. */
typedef int (*stack_probe_fn)(void *ctx, uint64_t addr, size_t len);

/* Returns the end of the readable part of [start, start + len): the largest page-aligned address e with
 * every byte in [start, e) readable, found by bisection over whole pages (mappings end on page
 * boundaries), or start when even start's page is unreadable. Never probes an empty range. */
uint64_t stack_readable_end(uint64_t start, size_t len, uint64_t page, stack_probe_fn probe, void *ctx);

#endif
