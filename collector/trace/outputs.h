/* What a run leaves behind: the profile and the summaries, written however the run ended. */
#ifndef RSPROF_COL_TRACE_OUTPUTS_H
#define RSPROF_COL_TRACE_OUTPUTS_H

#include "trace-state.h"

/* Checks, before tracing starts, that every output path (-o, --summary-json, --summary, --print-stacks) can
 * be written: an existing writable file, or a new name in a writable directory. Each one that cannot is
 * logged with its path. Returns 0 or the first one's negative errno. */
int trace_check_outputs(const struct col_options *o);
/* Runs the tracing modules' finish step, then writes the drcctprof profile (-o), --summary-json and
 * --summary as the options ask; failures are logged with their path. Returns 0 or the first failure's
 * negative code (the others are still written). */
int trace_write_outputs(struct trace *tr);

#endif
