/* Agent-side capture (rsprof-capture): choosing the mode, and running the modules' handlers on the events the
 * agent streams, in the order it took them, exactly as they run on stops. */
#ifndef RSPROF_COL_TRACE_STREAM_H
#define RSPROF_COL_TRACE_STREAM_H

#include "trace-state.h"

/* Chooses round trips or agent capture (--capture, and whether the server offers rsprof-capture) and, for the
 * latter, takes the server's event stream. Call once connected, after trace_capture_init. Returns 0, or
 * RS_E_UNSUPPORTED when --capture agent was asked of a server without it (a warning; round trips are used). */
int trace_stream_init(struct trace *tr);
/* At a stop, before resuming: sends what streamed handlers could not (breakpoint changes). Returns 0 or a
 * transport error. */
int trace_stream_before_resume(struct trace *tr);

/* Frees what the compact records left (stacks, per-call maps). */
void trace_stream_free(struct trace *tr);

#endif
