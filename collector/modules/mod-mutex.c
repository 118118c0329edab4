/* The mutex module: contended lock acquisitions — pthread_mutex_lock calls that find the lock taken, and Rust
 * std's futex mutex slow path — counted with their wait time per calling context. */
#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "retwatch.h"
#include "summary.h"
#include "trace-funcs.h"
#include "tracer-modules.h"

struct mutex_state {
  struct retwatch calls;
  int m_contended, m_wait_us;
  uint64_t contended, uncontended;
  double wait_ms;
  struct lock_tag { /* breakpoint data: whose state, and whether the function is a slow path already */
    struct mutex_state *state;
    int always_contended;
  } tags[2];
};

static int on_lock(struct trace *tr, const struct trace_hit *hit, void *data)
{
  const struct lock_tag *tag = data;
  struct mutex_state *s = tag->state;
  if (!tag->always_contended) {
    /* glibc's pthread_mutex_t starts with the int __lock word: nonzero means someone holds it. */
    int32_t word = 0;
    if (trace_read_memory(tr, hit_arg(hit, 0), &word, sizeof word) == 0 && word == 0) {
      s->uncontended++;
      return 0;
    }
  }
  struct rw_call *c;
  /* The wait is the time between the entry and the return stop. With the agent's stop times the return
   * breakpoint can be quiet (its time travels with the hit); on the collector's clock it must be reported. */
  int rc = retwatch_enter(&s->calls, tr, hit, trace_exact_times(tr), &c);
  if (rc || !c)
    return rc;
  c->a = hit_arg(hit, 0); /* the lock, for --print-stacks */
  return trace_context(tr, hit, &c->node);
}

static int on_acquired(struct trace *tr, const struct trace_hit *hit, void *data)
{
  struct mutex_state *s = data;
  struct rw_call *c = retwatch_match(&s->calls, hit);
  if (!c)
    return 0;
  /* Between the two stops: on the agent's clock when it reports stop times, else on the collector's, which
   * adds one breakpoint round trip. */
  double waited = hit->ms - c->t0_ms;
  struct trace_event_desc ev = {.kind = "contended-lock", .addr = c->a, .node = c->node, .has_node = 1};
  trace_event(tr, hit, &ev);
  trace_count(tr, c->node, s->m_contended, 1);
  trace_count(tr, c->node, s->m_wait_us, (int64_t)(waited * 1000));
  s->contended++;
  s->wait_ms += waited;
  retwatch_done(&s->calls, tr, c);
  return 0;
}

static int mutex_init(struct trace *tr, void **state)
{
  struct mutex_state *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->tags[0] = (struct lock_tag){s, 0};
  s->tags[1] = (struct lock_tag){s, 1};
  retwatch_init(&s->calls, on_acquired, s);
  s->m_contended = trace_add_ranked_metric(tr, "contended_locks", "count", "MOST CONTENDED LOCK ACQUISITIONS");
  s->m_wait_us = trace_add_ranked_metric(tr, "lock_wait", "microseconds", "LONGEST TOTAL LOCK WAIT");
  *state = s;
  return s->m_wait_us < 0 ? s->m_wait_us : 0;
}

static int mutex_module_loaded(struct trace *tr, void *state, struct col_module *m, uint64_t bias)
{
  struct mutex_state *s = state;
  uint64_t addrs[4];
  /* For the agent to capture a call (--capture agent): the lock's first word at the entry (is it taken?), the
   * stack, and the return, whose time ends the wait. */
  static const struct trace_capture_spec lock_spec = {.nargs = 1, .stack = 1, .ret = 1, .mem_arg = 0, .mem_len = 4};
  static const struct trace_capture_spec slow_spec = {.nargs = 1, .stack = 1, .ret = 1};
  size_t n = trace_funcs_named(m, "pthread_mutex_lock", 0, addrs, 4);
  for (size_t i = 0; i < n; i++)
    trace_break_capture(tr, addrs[i] + bias, on_lock, &s->tags[0], &lock_spec);
  /* Rust std: std::sys::sync::mutex::futex::Mutex::lock_contended runs only when the lock was taken. */
  n = trace_funcs_named(m, "lock_contended", 1, addrs, 4);
  for (size_t i = 0; i < n; i++)
    trace_break_capture(tr, addrs[i] + bias, on_lock, &s->tags[1], &slow_spec);
  return 0;
}

static void mutex_summary_json(struct trace *tr, void *state, struct json_out *j)
{
  struct mutex_state *s = state;
  json_key(j, "mutex");
  json_begin_object(j);
  json_key(j, "contended"), json_uint(j, s->contended);
  json_key(j, "uncontended_pthread"), json_uint(j, s->uncontended);
  json_key(j, "wait_ms"), json_double(j, s->wait_ms);
  json_end_object(j);
}

static void mutex_summary_text(struct trace *tr, void *state, FILE *out)
{
  struct mutex_state *s = state;
  fprintf(out, "contended lock acquisitions: %llu, total wait %.3f ms\n", (unsigned long long)s->contended,
          s->wait_ms);
}

static void mutex_destroy(void *state)
{
  struct mutex_state *s = state;
  retwatch_destroy(&s->calls);
  free(s);
}

const struct tracer_module tracer_mutex = {
    .name = "mutex",
    .help = "contended lock acquisitions (pthread_mutex_lock, Rust std mutex): count and wait time",
    .init = mutex_init,
    .module_loaded = mutex_module_loaded,
    .summary_json = mutex_summary_json,
    .summary_text = mutex_summary_text,
    .destroy = mutex_destroy,
};
