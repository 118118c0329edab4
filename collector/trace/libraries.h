/* The target's ELF modules in the session: finding a local copy of each, placing it in the address map,
 * telling the tracing modules, and following the dynamic linker as libraries come and go. */
#ifndef RSPROF_COL_TRACE_LIBRARIES_H
#define RSPROF_COL_TRACE_LIBRARIES_H

#include "trace-state.h"

/* Loads the modules known now and arranges to learn the rest: a breakpoint at the dynamic linker's r_brk
 * when it is known (also before the linker has run, so libraries are set up before their constructors run),
 * else at the executable's entry point, where every DT_NEEDED library is mapped.
 * Returns 0 or the error of placing that breakpoint. */
int trace_libs_discover(struct trace *tr);

#endif
