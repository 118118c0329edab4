/* Capturing a hit: registers, the stack window and its policy, memory reads, and the unwind into a
 * calling-context node (trace_context and trace_read_* in trace.h are the modules' side of it). */
#ifndef RSPROF_COL_TRACE_CAPTURE_H
#define RSPROF_COL_TRACE_CAPTURE_H

#include "trace-state.h"

struct rspc_stop;

/* Chooses the first stack window and, through an agent with rsprof-stopstack, asks it to send that
 * window with each stop. Call once connected. Returns 0. */
int trace_capture_init(struct trace *tr);
/* Registers of the stopped thread in r: the stop reply's expedited values when they cover everything the
 * unwinder needs, else a 'g' request, pipelined with the first stack window when with_stack. Returns 0 or
 * a request's error. */
int trace_capture_regs(struct trace *tr, const struct rspc_stop *st, int with_stack, struct col_regs *r);
/* A hit's time on trace_elapsed_ms's scale: the agent's clock (agent_ns) when it sent one and has_agent_time,
 * shifted by the offset seen at the first such time; otherwise now. */
double trace_hit_time_ms(struct trace *tr, int has_agent_time, uint64_t agent_ns);
/* Makes a streamed event's stack window [sp, sp + len) the hit's, all of it there is (at_end: the thread's
 * stack ends there). */
void trace_capture_stream_window(struct trace *tr, uint64_t sp, const uint8_t *data, size_t len, int at_end);
/* Makes the stack window that came with the stop (rsprof-stopstack) the hit's, before any other request
 * reuses the reply buffer it points into; with none, the hit has no window yet. */
void trace_capture_stop_stack(struct trace *tr, const struct rspc_stop *st);

#endif
