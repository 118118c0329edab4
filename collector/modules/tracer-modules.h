/* The tracing modules the collector knows (each defined in its own mod-*.c file). */
#ifndef RSPROF_COL_TRACER_MODULES_H
#define RSPROF_COL_TRACER_MODULES_H

#include <stdio.h>

#include "options.h"
#include "trace.h"

extern const struct tracer_module tracer_memtrace;
extern const struct tracer_module tracer_memory;
extern const struct tracer_module tracer_mutex;
extern const struct tracer_module tracer_calls;
extern const struct tracer_module tracer_clone;

/* Looks a module up by name; NULL when unknown. */
const struct tracer_module *tracer_find_module(const char *name);
/* Lists every module's name and help on out. */
void tracer_list_modules(FILE *out);

/* The calls module reads its targets from the options (--trace, --trace-regex). */
void tracer_calls_configure(const struct col_options *o);

#endif
