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

#endif
