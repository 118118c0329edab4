/* Unwind tables for the agent (rsprof-tables): each loaded module's compiled table goes to the agent once per
 * build-id, and the process's module map with it, so that the agent unwinds capture hits itself. */
#ifndef RSPROF_COL_TRACE_TABLE_UPLOAD_H
#define RSPROF_COL_TRACE_TABLE_UPLOAD_H

#include "trace-state.h"

struct col_module;

/* Decides whether the agent unwinds (agent capture, and the server offers rsprof-tables). Call after
 * trace_stream_init. Returns 0. */
int trace_tables_init(struct trace *tr);
/* Tells the agent about module m loaded at bias: uploads its table unless the agent has it, then adds it to the
 * agent's module map (a module without a table or whose upload was refused is added without one: the agent
 * sends raw windows for its frames). first: the first module of a process image (the agent's map is emptied
 * before). Failures are logged and counted, never fatal. Returns 0 or a transport error. */
int trace_tables_module(struct trace *tr, struct col_module *m, uint64_t bias, int first);

#endif
