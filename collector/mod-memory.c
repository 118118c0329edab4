/* The memory module: traces libc's malloc family and Rust's allocator entry points without any stub,
 * reading each result at the caller's return address with a one-shot, per-thread return breakpoint. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "log.h"
#include "retwatch.h"
#include "trace-funcs.h"
#include "tracer-modules.h"

enum alloc_kind {
  K_MALLOC, K_CALLOC, K_REALLOC, K_FREE, K_POSIX_MEMALIGN, K_ALIGNED_ALLOC, K_MEMALIGN, K_VALLOC,
  K_RUST_ALLOC, K_RUST_ALLOC_ZEROED, K_RUST_REALLOC, K_RUST_DEALLOC, K_COUNT
};

/* Entry points by name; Rust's are also matched on the last path component since recent compilers mangle them. */
static const struct {
  const char *name;
  int rust;
} entry_names[K_COUNT] = {
    [K_MALLOC] = {"malloc", 0},
    [K_CALLOC] = {"calloc", 0},
    [K_REALLOC] = {"realloc", 0},
    [K_FREE] = {"free", 0},
    [K_POSIX_MEMALIGN] = {"posix_memalign", 0},
    [K_ALIGNED_ALLOC] = {"aligned_alloc", 0},
    [K_MEMALIGN] = {"memalign", 0},
    [K_VALLOC] = {"valloc", 0},
    [K_RUST_ALLOC] = {"__rust_alloc", 1},
    [K_RUST_ALLOC_ZEROED] = {"__rust_alloc_zeroed", 1},
    [K_RUST_REALLOC] = {"__rust_realloc", 1},
    [K_RUST_DEALLOC] = {"__rust_dealloc", 1},
};

struct memory_state {
  struct heap heap;
  struct retwatch calls;
  struct entry_tag { /* breakpoint data of an entry point: which kind, and whose state */
    struct memory_state *state;
    int kind;
  } tags[K_COUNT];
};

static int on_entry(struct trace *tr, const struct trace_hit *hit, void *data)
{
  const struct entry_tag *tag = data;
  struct memory_state *s = tag->state;
  if (tag->kind == K_FREE || tag->kind == K_RUST_DEALLOC) {
    /* Frees need no stack: they are charged to the context that allocated the block. A free nested in
     * Rust's dealloc finds the block already retired and changes nothing. */
    trace_event(tr);
    heap_free(&s->heap, tr, hit_arg(hit, 0));
    return 0;
  }
  struct rw_call *c;
  int rc = retwatch_enter(&s->calls, tr, hit, &c);
  if (rc || !c)
    return rc;
  c->kind = tag->kind;
  switch (tag->kind) {
  case K_CALLOC: c->b = hit_arg(hit, 0) * hit_arg(hit, 1); break;
  case K_REALLOC: c->a = hit_arg(hit, 0), c->b = hit_arg(hit, 1); break;
  case K_POSIX_MEMALIGN: c->c = hit_arg(hit, 0), c->b = hit_arg(hit, 2); break;
  case K_ALIGNED_ALLOC: case K_MEMALIGN: c->b = hit_arg(hit, 1); break;
  case K_RUST_REALLOC: c->a = hit_arg(hit, 0), c->b = hit_arg(hit, 3); break;
  default: c->b = hit_arg(hit, 0); break; /* malloc, valloc, __rust_alloc(_zeroed): size first */
  }
  return trace_context(tr, hit, &c->node);
}

static int on_return(struct trace *tr, const struct trace_hit *hit, void *data)
{
  struct memory_state *s = data;
  struct rw_call *c = retwatch_match(&s->calls, hit);
  if (!c)
    return 0;
  uint64_t ptr = hit_result(hit), old = c->a, size = c->b;
  if (c->kind == K_POSIX_MEMALIGN) { /* returns 0 and stores the block through its first argument */
    uint64_t out = 0;
    ptr = ptr == 0 && trace_read_memory(tr, c->c, &out, 8) == 0 ? out : 0;
  }
  trace_event(tr);
  if ((c->kind == K_REALLOC || c->kind == K_RUST_REALLOC) && old != 0) {
    if (ptr != 0 || size == 0) /* a failed realloc leaves the old block alone */
      heap_free(&s->heap, tr, old);
  }
  heap_alloc(&s->heap, tr, c->node, ptr, size);
  retwatch_done(&s->calls, tr, c);
  return 0;
}

static int memory_init(struct trace *tr, void **state)
{
  struct memory_state *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  for (int k = 0; k < K_COUNT; k++)
    s->tags[k] = (struct entry_tag){s, k};
  retwatch_init(&s->calls, on_return, s);
  int rc = heap_init(&s->heap, tr);
  if (rc) {
    free(s);
    return rc;
  }
  *state = s;
  return 0;
}

static int memory_module_loaded(struct trace *tr, void *state, struct col_module *m, uint64_t bias)
{
  struct memory_state *s = state;
  for (int k = 0; k < K_COUNT; k++) {
    uint64_t addrs[8];
    size_t n = trace_funcs_named(m, entry_names[k].name, entry_names[k].rust, addrs, 8);
    for (size_t i = 0; i < n; i++) {
      LOG_DEBUG("memory: %s at 0x%llx", entry_names[k].name, (unsigned long long)(addrs[i] + bias));
      trace_break(tr, addrs[i] + bias, on_entry, &s->tags[k]);
    }
  }
  return 0;
}

static int memory_finish(struct trace *tr, void *state)
{
  heap_finish(&((struct memory_state *)state)->heap, tr);
  return 0;
}

static void memory_summary_json(struct trace *tr, void *state, struct json_out *j)
{
  heap_summary_json(&((struct memory_state *)state)->heap, j);
}

static void memory_summary_text(struct trace *tr, void *state, FILE *out)
{
  heap_summary_text(&((struct memory_state *)state)->heap, out);
}

static int memory_verdict(struct trace *tr, void *state, const struct col_options *o)
{
  return heap_verdict(&((struct memory_state *)state)->heap, o);
}

static void memory_destroy(void *state)
{
  struct memory_state *s = state;
  heap_destroy(&s->heap);
  retwatch_destroy(&s->calls);
  free(s);
}

const struct tracer_module tracer_memory = {
    .name = "memory",
    .help = "heap use without a stub (libc malloc family, Rust allocator): counts, bytes, leaks, peak",
    .init = memory_init,
    .module_loaded = memory_module_loaded,
    .finish = memory_finish,
    .summary_json = memory_summary_json,
    .summary_text = memory_summary_text,
    .verdict = memory_verdict,
    .destroy = memory_destroy,
};
