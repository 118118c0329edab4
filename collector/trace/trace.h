/* A tracing session: connects to the target, places the modules' breakpoints, captures stacks at each hit,
 * aggregates them into a calling-context tree, and writes the results when the run ends. */
#ifndef RSPROF_COL_TRACE_H
#define RSPROF_COL_TRACE_H

#include <stdint.h>
#include <stdio.h>

#include "options.h"
#include "regs.h"

struct trace;
struct col_module;
struct rspc_stop;
struct json_out;
struct heap;

/* What a breakpoint handler sees at a hit. Registers are always available; the stack is captured on demand. */
struct trace_hit {
  int64_t tid;
  uint64_t addr;              /* the breakpoint address */
  const struct col_regs *regs;
  double ms;                  /* when the thread stopped, on trace_elapsed_ms's scale (see trace_exact_times) */
};

typedef int (*trace_bp_fn)(struct trace *tr, const struct trace_hit *hit, void *data);

/* A tracing module: a table of what it wants and what it does at each hit. */
struct tracer_module {
  const char *name;
  const char *help;
  /* Registers metrics (trace_add_metric) and allocates *state. */
  int (*init)(struct trace *tr, void **state);
  /* Called for every module (ELF file) the target maps, once; places breakpoints with trace_break(). */
  int (*module_loaded)(struct trace *tr, void *state, struct col_module *m, uint64_t bias);
  /* Called when tracing ends, before the profile is written: final accounting (e.g. leaks). */
  int (*finish)(struct trace *tr, void *state);
  /* Adds the module's part of the JSON summary, and of the text summary. */
  void (*summary_json)(struct trace *tr, void *state, struct json_out *j);
  void (*summary_text)(struct trace *tr, void *state, FILE *out);
  /* Returns a collector exit status when a threshold was crossed, else 0. */
  int (*verdict)(struct trace *tr, void *state, const struct col_options *o);
  void (*destroy)(void *state);
  /* Optional: the module's heap accounting (memory, memtrace), which a followed child's session starts as a
   * copy of its parent's (its blocks are the parent's) and whose totals the summaries add up per process. */
  struct heap *(*heap_of)(void *state);
};

/* Registers a metric (before tracing starts); returns its index for trace_count(). */
int trace_add_metric(struct trace *tr, const char *name, const char *unit);
/* The same, for a metric whose top contexts the text summary lists under title. */
int trace_add_ranked_metric(struct trace *tr, const char *name, const char *unit, const char *title);

/* Places (or shares) a breakpoint at a target address; fn runs at each hit with data. */
int trace_break(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data);
/* The same for a handler that needs only the hit's thread, PC, stack pointer and integer return register:
 * no stack, no memory, since it may run after the program went on. Through an agent with rsprof-quietbreak
 * the hit costs no round trip: the handler runs when the next stop arrives, before that stop's handlers.
 * A breakpoint that also has an ordinary handler reports every hit. */
int trace_break_quiet(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data);
/* What a handler needs of a hit, so that an agent with rsprof-capture can record the hit itself and stream it
 * (no round trip, the program never waits): the handler then runs on the record, with these and nothing else —
 * no other memory (trace_read_memory fails), no stack beyond the recorded window. */
struct trace_capture_spec {
  int nargs;          /* leading argument registers read (hit_arg); with stack every core register comes */
  int stack;          /* unwinds (trace_context, trace_stack_within_module) or reads the stack */
  int ret;            /* pairs the call with its return (retwatch_enter): the agent watches the return */
  int mem_arg;        /* mem_len > 0: memory read at the entry at argument mem_arg + mem_off (trace_read_memory) */
  uint64_t mem_off;
  uint32_t mem_len;
  int rmem_arg;       /* rmem_len > 0: memory read at the return at (argument rmem_arg at the entry) + rmem_off */
  uint64_t rmem_off;
  uint32_t rmem_len;
};
/* trace_break for a handler described by spec: in agent capture mode (--capture agent) the hit costs no round
 * trip; otherwise, or when another owner of the address needs ordinary stops, it is trace_break. */
int trace_break_capture(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data,
                        const struct trace_capture_spec *spec);
/* trace_break_capture for the entry of a function the in-process recorder wraps (func: its enum rring_func
 * number): with --capture inprocess and the recorder in the program, nothing goes into the target and the
 * recorder's calls arrive as the breakpoint's events (QRsprofRecord); otherwise, or when the agent refuses,
 * it is trace_break_capture. Returns 0 or a negative code. */
int trace_break_inprocess(struct trace *tr, uint64_t addr, int func, trace_bp_fn fn, void *data,
                          const struct trace_capture_spec *spec);
/* Whether the in-process recorder runs in the program (--capture inprocess accepted by the agent). */
int trace_inprocess(const struct trace *tr);
/* Notes that module name's events are captured in-process (for the summary). */
void trace_note_inprocess(struct trace *tr, const char *name);
/* Removes one registration of fn/data at addr. With none left the breakpoint stays inserted, parked: its hits
 * are resumed at once, and the next trace_break there costs no round trip (parked ones are removed in bulk
 * past a bound, and all at the end). */
int trace_unbreak(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data);
/* Drops every registration of fn/data, all references at once; breakpoints left without owners are removed from
 * the target, not parked: for a handler that will not be wanted again. */
int trace_remove_owner(struct trace *tr, trace_bp_fn fn, void *data);

/* Reads target memory at addr from the hit thread's stack window (captured now if it was not yet, as
 * trace_context would), so words near the stack pointer cost no extra round trip. */
int trace_read_stack(struct trace *tr, const struct trace_hit *hit, uint64_t addr, void *buf, size_t len);
/* Whether the hit thread's whole stack, unwound to its outermost frame, lies in the ELF module that contains
 * addr (1) or not, or the unwind stopped short (0). Unwinds without touching the profile. */
int trace_stack_within_module(struct trace *tr, const struct trace_hit *hit, uint64_t addr);
/* Captures and unwinds the hit thread's stack and returns its calling-context node (cached per hit). */
int trace_context(struct trace *tr, const struct trace_hit *hit, uint32_t *node);
/* Adds delta to metric at a context node. */
void trace_count(struct trace *tr, uint32_t node, int metric, int64_t delta);
int64_t trace_metric_value(struct trace *tr, uint32_t node, int metric);

/* Reads target memory (for arguments passed by pointer). */
int trace_read_memory(struct trace *tr, uint64_t addr, void *buf, size_t len);
/* Writes len bytes of the program's memory (while it is stopped). Returns 0 or a negative error. */
int trace_write_memory(struct trace *tr, const void *buf, uint64_t addr, size_t len);
/* Milliseconds since tracing started (collector clock). */
double trace_elapsed_ms(const struct trace *tr);
/* Whether hits' times come from the agent's clock at the stop (rsprof-stoptime: exact to the agent's
 * reaction, and available for quiet hits) rather than from the collector's when the stop arrived. */
int trace_exact_times(const struct trace *tr);
/* What one event was, for the --print-stacks listing. */
struct trace_event_desc {
  const char *kind;  /* "malloc", "free", "call", "contended-lock", ... */
  uint64_t addr;     /* the block, the lock or the function */
  uint64_t size;     /* bytes (has_size) */
  uint64_t old;      /* realloc: the block it replaced (0: none) */
  uint32_t node;     /* its calling context (has_node); without one the stack is unwound at hit, which must
                      * then be an ordinary (not quiet) hit */
  int has_size, has_node;
};
/* Counts one traced event (handlers call it once per event) and, with --print-stacks, lists it: its
 * number, thread, kind, address and size, then its stack. */
void trace_event(struct trace *tr, const struct trace_hit *hit, const struct trace_event_desc *ev);

/* Calls fn for each function symbol of m whose name (linkage or demangled) equals name. */
int trace_find_function(struct col_module *m, const char *name, uint64_t *addr);

/* Runs a whole session with these options and tracing modules (nmods of them, at most 8); returns a
 * collector exit status (enum col_exit). */
int trace_run(const struct col_options *o, const struct tracer_module *const *mods, size_t nmods);

#endif
