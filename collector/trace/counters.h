/* The session's clock and counters: metric registration, per-context counts, the event total. */
#ifndef RSPROF_COL_TRACE_COUNTERS_H
#define RSPROF_COL_TRACE_COUNTERS_H

#include "trace-state.h"

/* The collector's monotonic clock in milliseconds (start_ms and trace_elapsed_ms are on it). */
double trace_now_ms(void);

#endif
