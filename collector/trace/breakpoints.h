/* The session's breakpoint table: addresses to their owners (the handlers that want each hit), parked
 * breakpoints kept inserted for reuse, and quiet ones the agent handles alone. */
#ifndef RSPROF_COL_TRACE_BREAKPOINTS_H
#define RSPROF_COL_TRACE_BREAKPOINTS_H

#include <stdint.h>

#include "trace-state.h"

/* Our breakpoint at addr, or NULL. The pointer is valid until the table next changes. */
struct trace_bp *trace_bp_lookup(struct trace *tr, uint64_t addr);
/* Our breakpoint a thread trapped on with the PC at pc (some servers report it past the trap instruction). */
struct trace_bp *trace_bp_at_trap(struct trace *tr, uint64_t pc);
/* Counts a hit at bp and runs its owners; a breakpoint parked for too many hits in a row is removed
 * instead. Returns 0 or the removal's error (handlers' errors are logged, not returned). */
int trace_bp_dispatch(struct trace *tr, struct trace_bp *bp, const struct trace_hit *hit);
/* Removes every breakpoint from the target (at the end, before detaching). */
void trace_bp_remove_all(struct trace *tr);
/* Takes every breakpoint out of the currently selected process (z0 each) or puts it back (Z0 each), the table
 * unchanged: a forked child's copy before it is detached, a vfork's shared memory until vforkdone. Returns 0
 * or the first error. */
int trace_bp_uninsert_all(struct trace *tr);
int trace_bp_reinsert_all(struct trace *tr);
/* Sends the breakpoint operations that streamed events' handlers asked for (at a stop, before resuming).
 * Returns 0 or the first error. */
int trace_bp_apply_deferred(struct trace *tr);
/* Empties the table without a packet: after an exec the new image has none of the old breakpoints. */
void trace_bp_forget_all(struct trace *tr);

#endif
