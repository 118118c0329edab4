/* Watching function returns per thread: a one-shot return breakpoint for each call in flight, so a module can
 * read a function's result (malloc's pointer) or time its duration (a contended lock). */
#ifndef RSPROF_COL_RETWATCH_H
#define RSPROF_COL_RETWATCH_H

#include <stdint.h>

#include "trace.h"
#include "u64map.h"

/* A call in flight on one thread. The owner fills kind and the argument fields at entry. */
struct rw_call {
  int kind;
  uint64_t a, b, c;      /* the call's interesting arguments */
  uint32_t node;         /* calling context captured at entry */
  double t0_ms;          /* when it was entered (the entry hit's ms) */
  uint64_t ret_addr;
  uint64_t sp_at_return; /* tells this call's return apart from a recursive or nested one */
  int64_t tid;
  unsigned nested;       /* traced entries hit on this thread while the call was in flight */
};

struct retwatch {
  struct u64map slot_of;  /* tid -> index into calls */
  struct rw_call *calls;
  size_t n, cap;
  trace_bp_fn on_return;  /* the owner's return handler; it gets `owner` as data */
  void *owner;
};

void retwatch_init(struct retwatch *w, trace_bp_fn on_return, void *owner);
void retwatch_destroy(struct retwatch *w);
/* At a function's entry: places the return breakpoint and returns a record to fill, or sets *call = NULL when
 * this thread is already inside a watched call (a traced function called from another one: the outer call
 * accounts for it, and its `nested` count goes up). With quiet, the return breakpoint is a quiet one
 * (trace_break_quiet): the return handler must then use only the hit's registers and the record. Returns 0
 * or a negative code. */
int retwatch_enter(struct retwatch *w, struct trace *tr, const struct trace_hit *hit, int quiet,
                   struct rw_call **call);
/* The call in flight on thread tid, or NULL. */
struct rw_call *retwatch_current(struct retwatch *w, int64_t tid);
/* At a return breakpoint: the thread's call that returns here, or NULL (another thread, or recursion). */
struct rw_call *retwatch_match(struct retwatch *w, const struct trace_hit *hit);
/* Ends a call returned by retwatch_match (removes its breakpoint and record). */
void retwatch_done(struct retwatch *w, struct trace *tr, struct rw_call *call);

/* Argument i, the integer result, and the stack pointer at a hit, by the target's calling convention. */
uint64_t hit_arg(const struct trace_hit *hit, int i);
uint64_t hit_result(const struct trace_hit *hit);
uint64_t hit_sp(const struct trace_hit *hit);

#endif
