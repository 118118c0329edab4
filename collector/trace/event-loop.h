/* The session's event loop: from resuming the program to the handlers of the breakpoint it stopped at. */
#ifndef RSPROF_COL_TRACE_EVENT_LOOP_H
#define RSPROF_COL_TRACE_EVENT_LOOP_H

#include "trace-state.h"

/* Makes SIGINT and SIGTERM end the loop at its next wake-up (it interrupts the program first) and, after a
 * grace of 1.5 s for stopping the program and leaving it, cut short every wait for the server (rspc_cancel_on);
 * ignores SIGPIPE so a peer that hangs up shows as an error instead of killing the collector. */
void trace_catch_stop_signals(void);
/* The signal that asked the run to stop (SIGINT, SIGTERM), or 0. */
int trace_stop_signal(void);
/* Runs until the program exits, --duration passes, or a caught signal asks to stop. Returns 0 (the program
 * ended or was interrupted and is stopped) or the error that ended tracing early. */
int trace_event_loop(struct trace *tr);
/* Prints the event rate on stderr at most once a second (always when final), if --progress is on. */
void trace_show_progress(struct trace *tr, int final);

#endif
