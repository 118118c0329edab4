/* What a run leaves behind: the profile and the summaries, written however the run ended. */
#ifndef RSPROF_COL_TRACE_OUTPUTS_H
#define RSPROF_COL_TRACE_OUTPUTS_H

#include "trace-state.h"

/* Runs the tracing modules' finish step, then writes the drcctprof profile (-o), --summary-json and
 * --summary as the options ask; failures are logged with their path. */
void trace_write_outputs(struct trace *tr);

#endif
