/* Measures calling-context-tree insertion: 14-frame stacks, as the collector inserts one per traced event,
 * against a baseline loop that only reads the same stacks (so the ratio survives a noisy machine). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cct.h"

#define DEPTH 14

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t xorshift(uint64_t *x)
{
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

int main(int argc, char **argv)
{
  size_t nstacks = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000;
  size_t events = argc > 2 ? strtoul(argv[2], NULL, 0) : 5000000;
  uint64_t *stacks = malloc(nstacks * DEPTH * sizeof *stacks);
  uint32_t *order = malloc(events * sizeof *order);
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  if (!stacks || !order)
    return 1;
  /* Stacks share their outer frames the way real programs do: few choices near main, more near the leaf. */
  for (size_t s = 0; s < nstacks; s++)
    for (size_t d = 0; d < DEPTH; d++) {
      size_t outer = DEPTH - 1 - d; /* index from the outermost frame */
      uint64_t choices = 1 + outer * outer;
      stacks[s * DEPTH + d] = 0x555555554000ULL + outer * 0x1000 + (xorshift(&x) % choices) * 0x10;
    }
  for (size_t e = 0; e < events; e++)
    order[e] = (uint32_t)(xorshift(&x) % nstacks);

  /* Baseline: read every frame of every event's stack (what any consumer of the stacks must do). */
  uint64_t sink = 0;
  double t0 = now();
  for (size_t e = 0; e < events; e++) {
    const uint64_t *pcs = &stacks[(size_t)order[e] * DEPTH];
    for (size_t d = 0; d < DEPTH; d++)
      sink = (sink ^ pcs[d]) * 0x100000001b3ULL;
  }
  double base = now() - t0;

  struct cct *t;
  if (cct_new(2, &t) < 0)
    return 1;
  /* Warm-up: create every path once, so the timed loop measures the steady state of a long run. */
  for (size_t s = 0; s < nstacks; s++) {
    uint32_t leaf;
    cct_insert(t, 1, &stacks[s * DEPTH], DEPTH, &leaf);
  }
  t0 = now();
  for (size_t e = 0; e < events; e++) {
    uint32_t leaf;
    if (cct_insert(t, 1, &stacks[(size_t)order[e] * DEPTH], DEPTH, &leaf) < 0)
      return 1;
    cct_add(t, leaf, 0, 1);
    cct_add(t, leaf, 1, 64);
  }
  double ins = now() - t0;

  printf("stacks=%zu events=%zu depth=%d nodes=%u (sink %llx)\n", nstacks, events, DEPTH, cct_count(t),
         (unsigned long long)(sink & 0xf));
  printf("%-28s %12s %14s %16s\n", "loop", "ns/event", "events/s", "frames/s");
  printf("%-28s %12.1f %14.0f %16.0f\n", "baseline (read stack)", base / (double)events * 1e9,
         (double)events / base, (double)events * DEPTH / base);
  printf("%-28s %12.1f %14.0f %16.0f\n", "cct_insert + 2x cct_add", ins / (double)events * 1e9,
         (double)events / ins, (double)events * DEPTH / ins);
  printf("ratio insert/baseline: %.1f\n", ins / base);
  cct_free(t);
  free(stacks);
  free(order);
  return 0;
}
