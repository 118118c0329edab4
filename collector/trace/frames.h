/* What the session's program counters mean: symbolized frames for the profile writers and the
 * --print-stacks listing. */
#ifndef RSPROF_COL_TRACE_FRAMES_H
#define RSPROF_COL_TRACE_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "symbol.h"
#include "trace-state.h"

/* A profile_symbolize_fn over the session (ctx is the struct trace): up to max frames for pc, inlined
 * callees first; a PC in a module without symbols gets one frame naming only the module. Returns 0. */
int trace_symbolize_pc(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n);
/* Writes one event, its header (number, thread, kind, address, size) and its symbolized stack (pcs,
 * innermost first), to the --print-stacks stream. Returns 0. */
int trace_print_event(struct trace *tr, int64_t tid, const struct trace_event_desc *ev, const uint64_t *pcs,
                      size_t n, int truncated);

#endif
