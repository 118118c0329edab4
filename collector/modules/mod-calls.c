/* The calls module: counts calls of chosen functions (--trace NAME, --trace-regex RE) per calling context;
 * the clone preset counts Rust's <T as core::clone::Clone>::clone calls. */
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "summary.h"
#include "trace-funcs.h"
#include "tracer-modules.h"

#define CLONE_PATTERN "^<.* as core::clone::Clone>::clone$"

static const struct col_options *calls_options;

struct calls_state {
  int metric;
  regex_t res[COL_MAX_LIST + 1];
  size_t nres;
  uint64_t calls;
  size_t functions;
  int clone_preset;
};

void tracer_calls_configure(const struct col_options *o)
{
  calls_options = o;
}

static int on_call(struct trace *tr, const struct trace_hit *hit, void *data)
{
  struct calls_state *s = data;
  uint32_t node;
  int rc = trace_context(tr, hit, &node);
  if (rc)
    return rc;
  trace_event(tr, hit, &(struct trace_event_desc){.kind = "call", .addr = hit->addr, .node = node, .has_node = 1});
  trace_count(tr, node, s->metric, 1);
  s->calls++;
  return 0;
}

static int compile(struct calls_state *s, const char *pattern)
{
  if (regcomp(&s->res[s->nres], pattern, REG_EXTENDED | REG_NOSUB) != 0) {
    LOG_ERR("calls: invalid regular expression '%s'", pattern);
    return RS_E_BAD_ARG;
  }
  s->nres++;
  return 0;
}

static int init_common(struct trace *tr, void **state, int clone_preset)
{
  struct calls_state *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->clone_preset = clone_preset;
  s->metric = trace_add_ranked_metric(tr, "calls", "count", "MOST CALLS");
  int rc = s->metric < 0 ? s->metric : 0;
  if (clone_preset && !rc)
    rc = compile(s, CLONE_PATTERN);
  for (size_t i = 0; !clone_preset && calls_options && i < calls_options->ntrace_regex && !rc; i++)
    rc = compile(s, calls_options->trace_regex[i]);
  *state = s;
  return rc;
}

static int calls_init(struct trace *tr, void **state)
{
  return init_common(tr, state, 0);
}

static int clone_init(struct trace *tr, void **state)
{
  return init_common(tr, state, 1);
}

struct place_ctx {
  struct trace *tr;
  struct calls_state *s;
  uint64_t bias;
};

static int place(void *ctx, const char *name, uint64_t addr)
{
  struct place_ctx *p = ctx;
  LOG_DEBUG("calls: tracing %s at 0x%llx", name, (unsigned long long)(addr + p->bias));
  if (trace_break(p->tr, addr + p->bias, on_call, p->s) == 0)
    p->s->functions++;
  return 0;
}

static int calls_module_loaded(struct trace *tr, void *state, struct col_module *m, uint64_t bias)
{
  struct calls_state *s = state;
  struct place_ctx p = {tr, s, bias};
  for (size_t i = 0; !s->clone_preset && calls_options && i < calls_options->ntrace_symbols; i++) {
    uint64_t addrs[8];
    size_t n = trace_funcs_named(m, calls_options->trace_symbols[i], 1, addrs, 8);
    for (size_t k = 0; k < n; k++)
      place(&p, calls_options->trace_symbols[i], addrs[k]);
  }
  for (size_t i = 0; i < s->nres; i++)
    trace_funcs_matching(m, &s->res[i], place, &p);
  return 0;
}

static int calls_finish(struct trace *tr, void *state)
{
  struct calls_state *s = state;
  if (s->functions == 0)
    LOG_WARN("%s: no function matched", s->clone_preset ? "clone" : "calls");
  return 0;
}

static void calls_summary_json(struct trace *tr, void *state, struct json_out *j)
{
  struct calls_state *s = state;
  json_key(j, s->clone_preset ? "clone" : "calls");
  json_begin_object(j);
  json_key(j, "functions"), json_uint(j, s->functions);
  json_key(j, "calls"), json_uint(j, s->calls);
  json_end_object(j);
}

static void calls_summary_text(struct trace *tr, void *state, FILE *out)
{
  struct calls_state *s = state;
  fprintf(out, "%s: %llu calls of %zu functions\n", s->clone_preset ? "clone" : "calls",
          (unsigned long long)s->calls, s->functions);
}

static void calls_destroy(void *state)
{
  struct calls_state *s = state;
  for (size_t i = 0; i < s->nres; i++)
    regfree(&s->res[i]);
  free(s);
}

const struct tracer_module tracer_calls = {
    .name = "calls",
    .help = "calls of --trace NAME / --trace-regex RE functions, counted per calling context",
    .init = calls_init,
    .module_loaded = calls_module_loaded,
    .finish = calls_finish,
    .summary_json = calls_summary_json,
    .summary_text = calls_summary_text,
    .destroy = calls_destroy,
};

const struct tracer_module tracer_clone = {
    .name = "clone",
    .help = "calls of Rust's <T as core::clone::Clone>::clone, counted per calling context",
    .init = clone_init,
    .module_loaded = calls_module_loaded,
    .finish = calls_finish,
    .summary_json = calls_summary_json,
    .summary_text = calls_summary_text,
    .destroy = calls_destroy,
};
