/* What the session's program counters mean: symbolized frames for the profile writers and the
 * --print-stacks listing. */
#ifndef RSPROF_COL_TRACE_FRAMES_H
#define RSPROF_COL_TRACE_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "symbol.h"
#include "trace-state.h"

/* A profile_symbolize_fn over the session (ctx is the struct trace): up to max frames for pc, inlined
 * callees first; a PC no symbol covers gets one frame named module+offset (sym_unnamed_format). Returns 0. */
int trace_symbolize_pc(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n);
/* Writes one event, its header (number, thread, kind, address, size) and its symbolized stack (pcs,
 * innermost first), to the --print-stacks stream. Returns 0. */
int trace_print_event(struct trace *tr, int64_t tid, const struct trace_event_desc *ev, const uint64_t *pcs,
                      size_t n, int truncated);

struct json_out;
/* The modules with neither .symtab nor debug info, with their build-ids: "modules_without_symbols" in the
 * JSON summary, and in the text summary a list with how to add their symbols. */
void trace_unsymbolized_json(struct trace *tr, struct json_out *j);
void trace_unsymbolized_text(struct trace *tr, FILE *out);

#endif
