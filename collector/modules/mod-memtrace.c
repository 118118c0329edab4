/* The memtrace module: programs built with rsprof-stub report every allocation through one marker function,
 * __rsprof_memtrace_event(event, size, align, ptr), so a single breakpoint with no return tracking suffices. */
#include <errno.h>
#include <stdlib.h>

#include "heap.h"
#include "log.h"
#include "retwatch.h"
#include "trace-funcs.h"
#include "tracer-modules.h"

/* Event values of the marker's first argument (the original crate's C ABI). */
enum { MEMTRACE_ALLOC = 0, MEMTRACE_DEALLOC = 1 };

struct memtrace_state {
  struct heap heap;
  int found;
};

static int on_marker(struct trace *tr, const struct trace_hit *hit, void *data)
{
  struct memtrace_state *s = data;
  uint64_t event = hit_arg(hit, 0), size = hit_arg(hit, 1), ptr = hit_arg(hit, 3);
  struct trace_event_desc ev = {.kind = "unknown", .addr = ptr};
  if (event == MEMTRACE_DEALLOC) {
    ev.kind = "dealloc";
    ev.has_size = heap_block_size(&s->heap, ptr, &ev.size);
    trace_event(tr, hit, &ev);
    heap_free(&s->heap, tr, ptr);
    return 0;
  }
  if (event != MEMTRACE_ALLOC) {
    trace_event(tr, hit, &ev);
    LOG_DEBUG("memtrace: unknown event %llu ignored", (unsigned long long)event);
    return 0;
  }
  uint32_t node;
  int rc = trace_context(tr, hit, &node);
  if (rc)
    return rc;
  ev = (struct trace_event_desc){.kind = "alloc", .addr = ptr, .size = size, .has_size = 1, .node = node,
                                 .has_node = 1};
  trace_event(tr, hit, &ev);
  heap_alloc(&s->heap, tr, node, ptr, size);
  return 0;
}

static int memtrace_init(struct trace *tr, void **state)
{
  struct memtrace_state *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  int rc = heap_init(&s->heap, tr);
  if (rc) {
    free(s);
    return rc;
  }
  *state = s;
  return 0;
}

static int memtrace_module_loaded(struct trace *tr, void *state, struct col_module *m, uint64_t bias)
{
  struct memtrace_state *s = state;
  uint64_t addrs[4];
  size_t n = trace_funcs_named(m, "__rsprof_memtrace_event", 0, addrs, 4);
  for (size_t i = 0; i < n; i++) {
    s->found = 1;
    /* The marker's four arguments and the stack are all its handler reads: the agent can capture it. */
    static const struct trace_capture_spec spec = {.nargs = 4, .stack = 1};
    trace_break_capture(tr, addrs[i] + bias, on_marker, s, &spec);
  }
  return 0;
}

static int memtrace_finish(struct trace *tr, void *state)
{
  struct memtrace_state *s = state;
  if (!s->found)
    LOG_WARN("memtrace: the program has no __rsprof_memtrace_event marker (is it built with rsprof-stub, "
             "or run with LD_PRELOAD=librsprof_preload.so?)");
  heap_finish(&s->heap, tr);
  return 0;
}

static void memtrace_summary_json(struct trace *tr, void *state, struct json_out *j)
{
  heap_summary_json(&((struct memtrace_state *)state)->heap, j);
}

static void memtrace_summary_text(struct trace *tr, void *state, FILE *out)
{
  heap_summary_text(&((struct memtrace_state *)state)->heap, out);
}

static int memtrace_verdict(struct trace *tr, void *state, const struct col_options *o)
{
  return heap_verdict(&((struct memtrace_state *)state)->heap, o);
}

static void memtrace_destroy(void *state)
{
  struct memtrace_state *s = state;
  heap_destroy(&s->heap);
  free(s);
}

static struct heap *memtrace_heap(void *state) { return &((struct memtrace_state *)state)->heap; }

const struct tracer_module tracer_memtrace = {
    .name = "memtrace",
    .help = "heap use of programs built with rsprof-stub (or run with its LD_PRELOAD shim)",
    .init = memtrace_init,
    .module_loaded = memtrace_module_loaded,
    .finish = memtrace_finish,
    .summary_json = memtrace_summary_json,
    .summary_text = memtrace_summary_text,
    .verdict = memtrace_verdict,
    .destroy = memtrace_destroy,
    .heap_of = memtrace_heap,
};
