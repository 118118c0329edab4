/* The memory module: traces libc's malloc family and Rust's allocator entry points without any stub,
 * reading each result at the caller's return address with a one-shot, per-thread return breakpoint.
 *
 * Rust's global allocator usually forwards to libc (std's System allocator does), and then every Rust call
 * stops twice: at __rust_alloc and at the malloc it calls, at __rust_dealloc and at its free. A libc call
 * nested in a Rust allocation re-points the Rust call's context to its own (so contexts never depend on which
 * entry point counted the block); the free of a block just passed to __rust_dealloc on the same thread is the
 * same release, not a second one. Once RUST_VIA_LIBC_EVIDENCE Rust calls in a row have reached libc, the Rust
 * entry points are removed and libc's alone account for every block. One Rust call that does not reach libc
 * (an allocator of its own, such as jemalloc) keeps them for the rest of the run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "log.h"
#include "module.h"
#include "recorder-ring.h"
#include "retwatch.h"
#include "summary.h"
#include "trace-funcs.h"
#include "tracer-modules.h"

enum alloc_kind {
  K_MALLOC, K_CALLOC, K_REALLOC, K_FREE, K_POSIX_MEMALIGN, K_ALIGNED_ALLOC, K_MEMALIGN, K_VALLOC, K_PVALLOC,
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
    [K_PVALLOC] = {"pvalloc", 0},
    [K_RUST_ALLOC] = {"__rust_alloc", 1},
    [K_RUST_ALLOC_ZEROED] = {"__rust_alloc_zeroed", 1},
    [K_RUST_REALLOC] = {"__rust_realloc", 1},
    [K_RUST_DEALLOC] = {"__rust_dealloc", 1},
};

/* What each entry point's handlers need of a hit, for the agent to capture it (--capture agent): the arguments
 * they read, the stack (the context, and a free's glibc-internal test), the return; posix_memalign's block is
 * read through its first argument at the return. */
static const struct trace_capture_spec capture_specs[K_COUNT] = {
    [K_MALLOC] = {.nargs = 1, .stack = 1, .ret = 1},
    [K_CALLOC] = {.nargs = 2, .stack = 1, .ret = 1},
    [K_REALLOC] = {.nargs = 2, .stack = 1, .ret = 1},
    [K_FREE] = {.nargs = 1, .stack = 1},
    [K_POSIX_MEMALIGN] = {.nargs = 3, .stack = 1, .ret = 1, .rmem_arg = 0, .rmem_len = 8},
    [K_ALIGNED_ALLOC] = {.nargs = 2, .stack = 1, .ret = 1},
    [K_MEMALIGN] = {.nargs = 2, .stack = 1, .ret = 1},
    [K_VALLOC] = {.nargs = 1, .stack = 1, .ret = 1},
    [K_PVALLOC] = {.nargs = 1, .stack = 1, .ret = 1},
    [K_RUST_ALLOC] = {.nargs = 2, .stack = 1, .ret = 1},
    [K_RUST_ALLOC_ZEROED] = {.nargs = 2, .stack = 1, .ret = 1},
    [K_RUST_REALLOC] = {.nargs = 4, .stack = 1, .ret = 1},
    [K_RUST_DEALLOC] = {.nargs = 3, .stack = 1},
};

/* The in-process recorder's number for each libc entry point (--capture inprocess); -1: not one it wraps. */
static const int recorder_func[K_COUNT] = {
    [K_MALLOC] = RRING_MALLOC, [K_CALLOC] = RRING_CALLOC, [K_REALLOC] = RRING_REALLOC, [K_FREE] = RRING_FREE,
    [K_POSIX_MEMALIGN] = RRING_POSIX_MEMALIGN, [K_ALIGNED_ALLOC] = RRING_ALIGNED_ALLOC,
    [K_MEMALIGN] = RRING_MEMALIGN, [K_VALLOC] = RRING_VALLOC, [K_PVALLOC] = RRING_PVALLOC,
    [K_RUST_ALLOC] = -1, [K_RUST_ALLOC_ZEROED] = -1, [K_RUST_REALLOC] = -1, [K_RUST_DEALLOC] = -1,
};

#define RUST_VIA_LIBC_EVIDENCE 32

static int is_rust_kind(int kind) { return kind >= K_RUST_ALLOC && kind <= K_RUST_DEALLOC; }

struct memory_state {
  struct heap heap;
  struct retwatch calls;
  int rust_entries_placed;  /* the program has Rust allocator entry points */
  unsigned rust_via_libc;   /* Rust calls that reached libc, in a row */
  int rust_own_allocator;   /* one did not: keep the Rust entry points */
  int rust_entries_removed;
  struct u64map rust_freeing; /* tid -> block passed to __rust_dealloc whose libc free has not come yet */
  uint64_t libc_internal_frees; /* glibc's own frees at thread exit, not counted (see on_free) */
  /* --capture inprocess, the stubs' marker: its hook variable in the program, the recorder's function for it,
   * the blocks counted at the marker (those libc did not count: an allocator of the program's own). */
  uint64_t marker_at, marker_hook, recorder_marker;
  int markers_placed, marker_hooked;
  struct u64map marker_blocks;
  uint64_t marker_allocs, marker_frees;
  struct entry_tag { /* breakpoint data of an entry point: which kind, and whose state */
    struct memory_state *state;
    int kind;
  } tags[K_COUNT];
};

static void note_rust_call(struct memory_state *s, struct trace *tr, int reached_libc);

/* Frees need no stack: they are charged to the context that allocated the block. */
static int on_free(struct memory_state *s, struct trace *tr, const struct trace_hit *hit, int kind)
{
  uint64_t ptr = hit_arg(hit, 0), pending;
  int has_pending = u64map_get(&s->rust_freeing, (uint64_t)hit->tid, &pending);
  if (kind == K_FREE && has_pending && pending == ptr) { /* the libc half of a __rust_dealloc */
    u64map_del(&s->rust_freeing, (uint64_t)hit->tid, NULL);
    note_rust_call(s, tr, 1);
    return 0;
  }
  struct trace_event_desc ev = {.kind = entry_names[kind].name, .addr = ptr};
  ev.has_size = heap_block_size(&s->heap, ptr, &ev.size);
  if (ptr && !ev.has_size && kind == K_FREE && trace_stack_within_module(tr, hit, hit->addr)) {
    /* Not the program's free: glibc's own cleanup of an exiting thread, which runs with nothing but libc
     * on the stack (start_thread -> __libc_thread_freeres). tcache_thread_shutdown hands the chunks in the
     * thread's cache back to the arena with __libc_free: blocks the program had freed already (we counted
     * those frees), and the cache itself, which tcache_init took with the internal _int_malloc, never
     * through malloc. valgrind, whose allocator has no tcache, sees none of these calls either. */
    s->libc_internal_frees++;
    return 0;
  }
  trace_event(tr, hit, &ev);
  heap_free(&s->heap, tr, ptr);
  if (kind == K_RUST_DEALLOC && !s->rust_entries_removed) {
    if (has_pending)
      note_rust_call(s, tr, 0); /* the previous dealloc on this thread never reached free */
    return ptr ? u64map_put(&s->rust_freeing, (uint64_t)hit->tid, ptr) : 0;
  }
  return 0;
}

static int on_entry(struct trace *tr, const struct trace_hit *hit, void *data)
{
  const struct entry_tag *tag = data;
  struct memory_state *s = tag->state;
  if (tag->kind == K_FREE || tag->kind == K_RUST_DEALLOC)
    return on_free(s, tr, hit, tag->kind);
  struct rw_call *c;
  /* The return handler needs only the result register, except posix_memalign's, which reads the block's
   * address from memory while the thread still stands at the return. */
  int rc = retwatch_enter(&s->calls, tr, hit, tag->kind != K_POSIX_MEMALIGN, &c);
  if (rc)
    return rc;
  if (!c) {
    struct rw_call *outer = retwatch_current(&s->calls, hit->tid);
    if (outer && is_rust_kind(outer->kind) && !is_rust_kind(tag->kind))
      return trace_context(tr, hit, &outer->node); /* Rust's allocator went to libc: count it at libc's level */
    return 0;
  }
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

static void remove_rust_entries(struct memory_state *s, struct trace *tr)
{
  /* The return breakpoints parked for calls to them go too, after a few idle hits (trace.c). */
  for (int k = K_RUST_ALLOC; k <= K_RUST_DEALLOC; k++)
    trace_remove_owner(tr, on_entry, &s->tags[k]);
  s->rust_entries_removed = 1;
  LOG_INFO("memory: %u Rust allocator calls in a row went to libc's allocator: counting at libc's entry points "
           "only from here on", s->rust_via_libc);
}

/* A Rust allocator call ended: did it reach libc? */
static void note_rust_call(struct memory_state *s, struct trace *tr, int reached_libc)
{
  if (s->rust_entries_removed || s->rust_own_allocator)
    return;
  if (!reached_libc) {
    s->rust_own_allocator = 1;
    LOG_INFO("memory: a Rust allocator call did not go to libc: keeping the Rust entry points");
  } else if (++s->rust_via_libc >= RUST_VIA_LIBC_EVIDENCE) {
    remove_rust_entries(s, tr);
  }
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
  struct trace_event_desc ev = {.kind = entry_names[c->kind].name, .addr = ptr, .size = size, .has_size = 1,
                                .node = c->node, .has_node = 1};
  if (c->kind == K_REALLOC || c->kind == K_RUST_REALLOC)
    ev.old = old;
  trace_event(tr, hit, &ev);
  if ((c->kind == K_REALLOC || c->kind == K_RUST_REALLOC) && old != 0) {
    if (ptr != 0 || size == 0) /* a failed realloc leaves the old block alone */
      heap_free(&s->heap, tr, old);
  }
  if (ptr && u64map_del(&s->marker_blocks, ptr, NULL)) {
    /* The stub's marker reported this block before libc's return was handled (streamed returns may come after
     * the thread's next call): the stub's allocator forwards to libc, which counts it. */
    heap_forget(&s->heap, tr, ptr);
    s->marker_allocs--;
  }
  heap_alloc(&s->heap, tr, c->node, ptr, size);
  if (is_rust_kind(c->kind) && ptr != 0)
    note_rust_call(s, tr, c->nested > 0);
  retwatch_done(&s->calls, tr, c);
  return 0;
}

/* A call of the stubs' marker, recorded in-process (its hook set to the recorder). It counts only the blocks libc's
 * entry points did not: when the stub's allocator forwards to malloc, the block is already live when the marker
 * reports it (allocations are reported after the call) and its free is counted at free (the marker reports a
 * free before it); an allocator of the program's own (an arena, jemalloc) is counted here. */
static int on_marker(struct trace *tr, const struct trace_hit *hit, void *data)
{
  struct memory_state *s = data;
  uint64_t event = hit_arg(hit, 0), size = hit_arg(hit, 1), ptr = hit_arg(hit, 3), known;
  if (!ptr)
    return 0;
  if (event == 0) {
    if (heap_block_size(&s->heap, ptr, &known))
      return 0;
    uint32_t node;
    int rc = trace_context(tr, hit, &node);
    if (rc)
      return rc;
    struct trace_event_desc ev = {.kind = "__rsprof_memtrace_event", .addr = ptr, .size = size, .has_size = 1,
                                  .node = node, .has_node = 1};
    trace_event(tr, hit, &ev);
    heap_alloc(&s->heap, tr, node, ptr, size);
    s->marker_allocs++;
    return u64map_put(&s->marker_blocks, ptr, 1);
  }
  if (event == 1 && u64map_del(&s->marker_blocks, ptr, NULL)) {
    struct trace_event_desc ev = {.kind = "__rsprof_memtrace_event", .addr = ptr};
    ev.has_size = heap_block_size(&s->heap, ptr, &ev.size);
    trace_event(tr, hit, &ev);
    heap_free(&s->heap, tr, ptr);
    s->marker_frees++;
  }
  return 0;
}

static const struct trace_capture_spec marker_spec = {.nargs = 4, .stack = 1};

/* Once the stub's marker and the recorder are both known: the marker becomes an in-process function (only then:
 * before the recorder is loaded the agent refuses, and a capture breakpoint there would stream the marker's calls
 * ahead of the recorder's records of the same blocks), and the program's hook points at the recorder. */
static void hook_markers(struct memory_state *s, struct trace *tr)
{
  if (s->marker_hooked || !s->marker_at || !s->marker_hook || !s->recorder_marker)
    return;
  if (!s->markers_placed) {
    if (trace_break_inprocess(tr, s->marker_at, RRING_MARKER, on_marker, s, &marker_spec) != 0)
      return;
    s->markers_placed = 1;
  }
  int rc = trace_write_memory(tr, &s->recorder_marker, s->marker_hook, 8);
  if (rc) {
    LOG_WARN("memory: cannot point the stub's marker at the recorder: %s", strerror(-rc));
    return;
  }
  s->marker_hooked = 1;
  LOG_INFO("memory: the stub's marker calls are recorded in-process");
}

/* --capture inprocess: the recorder's marker function, or a stub's marker and its hook. */
static void find_markers(struct memory_state *s, struct trace *tr, struct col_module *m, uint64_t bias)
{
  uint64_t at, size, hook;
  if (col_module_find_symbol(m, "rsprof_recorder_marker", &at, &size) == 0) {
    s->recorder_marker = at + bias;
  } else if (col_module_find_symbol(m, "__rsprof_memtrace_event", &at, &size) == 0 &&
             col_module_find_object(m, "__rsprof_memtrace_hook", &hook) == 0 && !s->marker_hook) {
    s->marker_at = at + bias;
    s->marker_hook = hook + bias;
  }
  hook_markers(s, tr);
}

static int memory_init(struct trace *tr, void **state)
{
  struct memory_state *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  for (int k = 0; k < K_COUNT; k++)
    s->tags[k] = (struct entry_tag){s, k};
  retwatch_init(&s->calls, on_return, s);
  u64map_init(&s->rust_freeing);
  u64map_init(&s->marker_blocks);
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
  uint64_t at, size;
  if (trace_inprocess(tr))
    find_markers(s, tr, m, bias);
  if (trace_inprocess(tr) && col_module_find_symbol(m, "rsprof_recorder_attach", &at, &size) == 0)
    return 0; /* the recorder's own wrappers: its calls are reported at the functions they forward to */
  for (int k = 0; k < K_COUNT; k++) {
    uint64_t addrs[8];
    size_t n = trace_funcs_named(m, entry_names[k].name, entry_names[k].rust, addrs, 8);
    for (size_t i = 0; i < n; i++) {
      LOG_DEBUG("memory: %s at 0x%llx", entry_names[k].name, (unsigned long long)(addrs[i] + bias));
      if (is_rust_kind(k)) {
        s->rust_entries_placed = 1;
        if (trace_inprocess(tr) && !s->rust_entries_removed) {
          /* The recorder sees the libc calls Rust's System allocator makes; a trap per Rust call would cost
           * what in-process capture saves. */
          s->rust_entries_removed = 1;
          LOG_INFO("memory: in-process capture counts Rust allocations at libc's entry points");
        }
        if (s->rust_entries_removed)
          continue; /* a library loaded later uses the same global allocator */
      }
      if (trace_inprocess(tr) && recorder_func[k] >= 0) {
        if (trace_break_inprocess(tr, addrs[i] + bias, recorder_func[k], on_entry, &s->tags[k], &capture_specs[k]) ==
            0)
          trace_note_inprocess(tr, "memory");
        continue;
      }
      trace_break_capture(tr, addrs[i] + bias, on_entry, &s->tags[k], &capture_specs[k]);
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
  struct memory_state *s = state;
  heap_summary_json(&s->heap, j);
  json_key(j, "memory_libc");
  json_begin_object(j);
  json_kv_uint(j, "thread_exit_frees", s->libc_internal_frees); /* glibc's own, not counted as frees */
  json_end_object(j);
  if (s->rust_entries_placed) { /* where Rust's allocations were counted, for whoever compares contexts */
    json_key(j, "memory_rust");
    json_begin_object(j);
    json_kv_string(j, "counted_at", s->marker_hooked && s->marker_allocs ? "libc+markers" : s->rust_entries_removed ? "libc" : "rust");
    json_kv_uint(j, "calls_seen_reaching_libc", s->rust_via_libc);
    if (s->marker_hooked) { /* blocks the stub's marker reported that libc's entry points did not see */
      json_kv_uint(j, "marker_allocs", s->marker_allocs);
      json_kv_uint(j, "marker_frees", s->marker_frees);
    }
    json_end_object(j);
  }
}

static void memory_summary_text(struct trace *tr, void *state, FILE *out)
{
  struct memory_state *s = state;
  heap_summary_text(&s->heap, out);
  if (s->rust_entries_removed)
    fprintf(out, "Rust allocations counted at libc's entry points (Rust's allocator forwards to libc)\n");
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
  u64map_free(&s->rust_freeing);
  u64map_free(&s->marker_blocks);
  free(s);
}

static struct heap *memory_heap(void *state) { return &((struct memory_state *)state)->heap; }

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
    .heap_of = memory_heap,
};
