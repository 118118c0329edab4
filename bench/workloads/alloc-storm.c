/* Allocation storm for the benchmarks: a deterministic mix of malloc, calloc, realloc and free, each reaching the
 * allocator through ten distinct non-inlined frames, timed inside the program so start-up is excluded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 256
#define NOINLINE __attribute__((noinline, noclone))
/* An empty asm after each call keeps the call from becoming a tail jump, so every frame stays on the stack. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

struct storm {
  uint64_t rng;
  void *slot[SLOTS];
  size_t size[SLOTS];
  uint64_t mallocs, callocs, reallocs, frees, bytes;
};

/* xorshift64*: deterministic, no libc state, so every run makes the same calls. */
static uint64_t next_rand(struct storm *s)
{
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * 2685821657736338717ULL;
}

static size_t pick_size(struct storm *s) { return 16 + (size_t)(next_rand(s) % 4081); }

NOINLINE static void leaf_malloc(struct storm *s, unsigned i)
{
  size_t n = pick_size(s);
  char *p = malloc(n);
  if (!p)
    abort();
  p[0] = (char)i; /* touch it so the allocation is not elided */
  s->slot[i] = p;
  s->size[i] = n;
  s->mallocs++;
  s->bytes += n;
}

NOINLINE static void leaf_calloc(struct storm *s, unsigned i)
{
  size_t n = pick_size(s);
  char *p = calloc(1, n);
  if (!p)
    abort();
  s->slot[i] = p;
  s->size[i] = n;
  s->callocs++;
  s->bytes += n;
}

NOINLINE static void leaf_realloc(struct storm *s, unsigned i)
{
  size_t n = pick_size(s);
  char *p = realloc(s->slot[i], n);
  if (!p)
    abort();
  p[n - 1] = 1;
  s->slot[i] = p;
  s->bytes += n;
  s->size[i] = n;
  s->reallocs++;
}

NOINLINE static void leaf_free(struct storm *s, unsigned i)
{
  free(s->slot[i]);
  KEEP_FRAME();
  s->slot[i] = NULL;
  s->frees++;
}

/* Ten distinct levels between the timed loop and the allocator; each does a little different work so the
 * compiler cannot fold them into one function. */
NOINLINE static void op(struct storm *s, unsigned i, unsigned kind)
{
  if (s->slot[i] == NULL) {
    if (kind & 1)
      leaf_calloc(s, i);
    else
      leaf_malloc(s, i);
  } else if (kind % 3 == 0) {
    leaf_realloc(s, i);
  } else {
    leaf_free(s, i);
  }
  KEEP_FRAME();
}
NOINLINE static void level8(struct storm *s, unsigned i, unsigned k) { op(s, i ^ 0, k + 8); KEEP_FRAME(); }
NOINLINE static void level7(struct storm *s, unsigned i, unsigned k) { level8(s, i, k * 7); KEEP_FRAME(); }
NOINLINE static void level6(struct storm *s, unsigned i, unsigned k) { level7(s, i, k + 6); KEEP_FRAME(); }
NOINLINE static void level5(struct storm *s, unsigned i, unsigned k) { level6(s, i, k ^ 5); KEEP_FRAME(); }
NOINLINE static void level4(struct storm *s, unsigned i, unsigned k) { level5(s, i, k * 5); KEEP_FRAME(); }
NOINLINE static void level3(struct storm *s, unsigned i, unsigned k) { level4(s, i, k + 3); KEEP_FRAME(); }
NOINLINE static void level2(struct storm *s, unsigned i, unsigned k) { level3(s, i, k ^ 2); KEEP_FRAME(); }
NOINLINE static void level1(struct storm *s, unsigned i, unsigned k) { level2(s, i, k * 3); KEEP_FRAME(); }

NOINLINE static void step(struct storm *s)
{
  uint64_t r = next_rand(s);
  level1(s, (unsigned)(r % SLOTS), (unsigned)(r >> 32));
  KEEP_FRAME();
}

/* The timed region: n steps, then free what is still live so the program ends leak-free. */
NOINLINE static void run_storm(struct storm *s, uint64_t n)
{
  for (uint64_t k = 0; k < n; k++)
    step(s);
  for (unsigned i = 0; i < SLOTS; i++)
    if (s->slot[i])
      leaf_free(s, i);
  KEEP_FRAME();
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
  uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
  static struct storm s;
  memset(&s, 0, sizeof s);
  s.rng = 0x9E3779B97F4A7C15ULL;

  double t0 = now();
  run_storm(&s, n);
  double t1 = now();

  /* snprintf into a stack buffer and write(2): stdio's first printf would allocate its buffer, and the
   * benchmark compares allocator-call counts against what tracers see. */
  char line[256];
  uint64_t allocs = s.mallocs + s.callocs;
  int len = snprintf(line, sizeof line,
                     "events=%llu seconds=%.6f allocs=%llu frees=%llu reallocs=%llu bytes=%llu "
                     "mallocs=%llu callocs=%llu\n",
                     (unsigned long long)(allocs + s.frees + s.reallocs), t1 - t0, (unsigned long long)allocs,
                     (unsigned long long)s.frees, (unsigned long long)s.reallocs, (unsigned long long)s.bytes,
                     (unsigned long long)s.mallocs, (unsigned long long)s.callocs);
  if (len > 0 && write(1, line, (size_t)len) != len)
    return 1;
  return 0;
}
