/* The calls module: counts calls of chosen functions (--trace NAME, --trace-regex RE) per calling context;
 * the clone preset counts Rust's <T as core::clone::Clone>::clone calls. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "module.h"
#include "retwatch.h"
#include "summary.h"
#include "trace-funcs.h"
#include "tracer-modules.h"

#define CLONE_PATTERN "^<.* as core::clone::Clone>::clone$"
#define MAX_IFUNCS 32
#define MAX_IFUNC_SLOTS 8

static const struct col_options *calls_options;

/* A --trace name that is a GNU indirect function, and what its resolver picked. */
struct ifunc_note {
  char *name;
  char *impl;             /* NULL until known */
  struct col_module *module; /* the defining module, borrowed from the session */
  uint64_t bias;
  uint64_t resolver;      /* run-time address */
};

struct calls_state {
  int metric;
  struct ifunc_note ifuncs[MAX_IFUNCS];
  size_t nifuncs;
  struct retwatch resolvers; /* resolver calls in flight, for ifuncs whose slot was not yet filled */
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

/* A call's handler needs only its stack: the agent can capture it (--capture agent). */
static const struct trace_capture_spec call_spec = {.stack = 1};

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

static int place_impl(struct trace *tr, struct calls_state *s, struct ifunc_note *f, uint64_t impl)
{
  if (f->impl)
    return 0; /* one implementation per process: the resolver returns the same one every time */
  uint64_t lo, hi;
  const char *name = NULL, *demangled = NULL;
  uint64_t sym = 0;
  char buf[512];
  col_module_vaddr_range(f->module, &lo, &hi);
  if (impl - f->bias >= lo && impl - f->bias < hi &&
      col_module_symbol_at(f->module, impl - f->bias, &name, &demangled, &sym) == 0 && sym == impl - f->bias) {
    snprintf(buf, sizeof buf, "%s", demangled ? demangled : name);
  } else {
    const char *path = col_module_path(f->module), *slash = strrchr(path, '/');
    snprintf(buf, sizeof buf, "%s+0x%llx", slash ? slash + 1 : path, (unsigned long long)(impl - f->bias));
  }
  f->impl = strdup(buf);
  if (!f->impl)
    return -ENOMEM;
  LOG_INFO("calls: %s is an indirect function: tracing its implementation %s at 0x%llx", f->name, f->impl,
           (unsigned long long)impl);
  int rc = trace_break_capture(tr, impl, on_call, s, &call_spec);
  if (rc == 0)
    s->functions++;
  return rc;
}

static int on_resolver(struct trace *tr, const struct trace_hit *hit, void *data)
{
  struct calls_state *s = data;
  struct rw_call *c;
  int rc = retwatch_enter(&s->resolvers, tr, hit, 0, &c);
  if (rc || !c)
    return rc;
  c->a = hit->addr;
  return 0;
}

/* The resolver returns the implementation's address: trace it before the caller (the dynamic linker, which
 * stores it in a slot) lets the program reach it. */
static int on_resolver_return(struct trace *tr, const struct trace_hit *hit, void *data)
{
  struct calls_state *s = data;
  struct rw_call *c = retwatch_match(&s->resolvers, hit);
  if (!c)
    return 0;
  uint64_t resolver = c->a, impl = hit_result(hit);
  retwatch_done(&s->resolvers, tr, c);
  for (size_t i = 0; i < s->nifuncs; i++) {
    struct ifunc_note *f = &s->ifuncs[i];
    if (f->resolver != resolver || f->impl)
      continue;
    trace_unbreak(tr, resolver, on_resolver, s);
    return place_impl(tr, s, f, impl);
  }
  return 0;
}

/* A GNU indirect function (glibc's strlen, memcpy...): the symbol's address is a resolver that the dynamic
 * linker calls to pick the implementation for this CPU, and the program calls that implementation through a
 * GOT slot, never the symbol's address; we trace what the resolver picked, as gdb's `break strlen` does.
 * The defining module's IRELATIVE slots for the resolver are read first: the dynamic linker fills them when it
 * relocates the module, eagerly under lazy binding as under BIND_NOW (unlike JUMP_SLOTs, which lazy binding
 * fills at the first call), and a library mapped at start-up is relocated by the RT_CONSISTENT r_brk stop at
 * which it is set up. A library dlopen'ed later is set up before it is relocated (its slot still holds the
 * file's word), and a module may have no IRELATIVE slot for the function at all: then the resolver itself is
 * watched and its result traced when it returns, before anything can call it. */
static int trace_ifunc(struct trace *tr, struct calls_state *s, struct col_module *m, uint64_t bias,
                       const char *name, uint64_t resolver)
{
  if (s->nifuncs == MAX_IFUNCS)
    return RS_E_LIMIT;
  struct ifunc_note *f = &s->ifuncs[s->nifuncs];
  f->name = strdup(name);
  if (!f->name)
    return -ENOMEM;
  f->impl = NULL;
  f->module = m;
  f->bias = bias;
  f->resolver = resolver + bias;
  s->nifuncs++;
  uint64_t slots[MAX_IFUNC_SLOTS], words[MAX_IFUNC_SLOTS], lo, hi;
  size_t n = col_module_irelative_slots(m, resolver, slots, words, MAX_IFUNC_SLOTS);
  col_module_vaddr_range(m, &lo, &hi);
  for (size_t i = 0; i < n; i++) {
    uint8_t b[8];
    if (trace_read_memory(tr, slots[i] + bias, b, sizeof b) != 0)
      continue;
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
      v = v << 8 | b[k];
    /* Unrelocated, the slot holds the file's word (a PLT address, biased or not); relocated, an address of
     * the module's code other than the resolver. */
    if (v != words[i] && v != words[i] + bias && v != f->resolver && v >= lo + bias && v < hi + bias)
      return place_impl(tr, s, f, v);
  }
  LOG_DEBUG("calls: %s is an indirect function not yet resolved: watching its resolver", name);
  return trace_break(tr, f->resolver, on_resolver, s);
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
  retwatch_init(&s->resolvers, on_resolver_return, s);
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
  struct col_module *m;
  uint64_t bias;
};

static int place(void *ctx, const char *name, uint64_t addr)
{
  struct place_ctx *p = ctx;
  if (col_module_is_ifunc(p->m, addr)) {
    int rc = trace_ifunc(p->tr, p->s, p->m, p->bias, name, addr);
    if (rc)
      LOG_WARN("calls: cannot trace the indirect function %s: %s", name, rs_strerror(rc));
    return 0;
  }
  LOG_DEBUG("calls: tracing %s at 0x%llx", name, (unsigned long long)(addr + p->bias));
  if (trace_break_capture(p->tr, addr + p->bias, on_call, p->s, &call_spec) == 0)
    p->s->functions++;
  return 0;
}

static int calls_module_loaded(struct trace *tr, void *state, struct col_module *m, uint64_t bias)
{
  struct calls_state *s = state;
  struct place_ctx p = {tr, s, m, bias};
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
  for (size_t i = 0; i < s->nifuncs; i++)
    if (!s->ifuncs[i].impl)
      LOG_WARN("calls: %s is an indirect function whose resolver never ran: none of its calls were traced",
               s->ifuncs[i].name);
  return 0;
}

static void calls_summary_json(struct trace *tr, void *state, struct json_out *j)
{
  struct calls_state *s = state;
  json_key(j, s->clone_preset ? "clone" : "calls");
  json_begin_object(j);
  json_key(j, "functions"), json_uint(j, s->functions);
  json_key(j, "calls"), json_uint(j, s->calls);
  if (s->nifuncs) {
    json_key(j, "indirect_functions");
    json_begin_array(j);
    for (size_t i = 0; i < s->nifuncs; i++) {
      json_begin_object(j);
      json_kv_string(j, "name", s->ifuncs[i].name);
      json_key(j, "implementation");
      if (s->ifuncs[i].impl)
        json_string(j, s->ifuncs[i].impl);
      else
        json_null(j);
      json_end_object(j);
    }
    json_end_array(j);
  }
  json_end_object(j);
}

static void calls_summary_text(struct trace *tr, void *state, FILE *out)
{
  struct calls_state *s = state;
  fprintf(out, "%s: %llu calls of %zu functions\n", s->clone_preset ? "clone" : "calls",
          (unsigned long long)s->calls, s->functions);
  for (size_t i = 0; i < s->nifuncs; i++) {
    if (s->ifuncs[i].impl)
      fprintf(out, "  %s is an indirect function: traced its implementation %s\n", s->ifuncs[i].name,
              s->ifuncs[i].impl);
    else
      fprintf(out, "  %s is an indirect function whose resolver never ran: not traced\n", s->ifuncs[i].name);
  }
}

static void calls_destroy(void *state)
{
  struct calls_state *s = state;
  for (size_t i = 0; i < s->nres; i++)
    regfree(&s->res[i]);
  for (size_t i = 0; i < s->nifuncs; i++) {
    free(s->ifuncs[i].name);
    free(s->ifuncs[i].impl);
  }
  retwatch_destroy(&s->resolvers);
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
