/* The stack unwinder: registers + a stack snapshot + a memory-read callback in, return addresses out. */
#ifndef RSPROF_COL_UNWIND_H
#define RSPROF_COL_UNWIND_H

#include <stddef.h>
#include <stdint.h>

#include "modmap.h"
#include "regs.h"

/* How the unwinder reads target memory beyond the stack snapshot; read may be NULL. read returns 0
 * when all len bytes were read, or a negative error. */
struct unw_memory {
  int (*read)(void *ctx, uint64_t addr, void *buf, size_t len);
  void *ctx;
};

/* Stack bytes starting at address base (usually SP); data is borrowed for the call. */
struct unw_snapshot {
  uint64_t base;
  const uint8_t *data;
  size_t len;
};

/* Caches resolved CFI rule rows per PC, reused across calls. One per thread of the caller. */
struct unw_ctx;

/* Creates a context; free it with unw_ctx_free. Returns 0 or -ENOMEM. */
int unw_ctx_new(struct unw_ctx **out);
void unw_ctx_free(struct unw_ctx *u);
/* Forgets every cached row (call after a module leaves a map the context was used with). */
void unw_ctx_flush(struct unw_ctx *u);

/* Frames are stepped with the modules' compiled unwind tables where they have a row (the default) or,
 * with on = 0, all with the CFI interpreter; both give the same frames. For tests and benchmarks. */
void unw_ctx_use_tables(struct unw_ctx *u, int on);

/* How the context's unwinds went so far. */
struct unw_stats {
  uint64_t table_steps;  /* frames stepped with a compiled table */
  uint64_t cfi_steps;    /* frames stepped with the CFI interpreter or the frame-pointer fallback */
  uint64_t restarts;     /* walks redone with the interpreter alone (a rule needed a register the table drops) */
};
void unw_ctx_stats(const struct unw_ctx *u, struct unw_stats *out);

enum unw_end {
  UNW_END_OUTERMOST,   /* clean stop: undefined return address or return address 0 */
  UNW_END_TRUNCATED,   /* the snapshot and the memory callback could not provide the bytes */
  UNW_END_NO_INFO,     /* a PC outside every module, or no CFI and no usable frame pointer */
  UNW_END_MAX_FRAMES,  /* max frames stored */
  UNW_END_BAD,         /* the rules produced an impossible frame (SP not moving, bad expression) */
};

/* Returns a static name for an end reason ("outermost", "truncated", ...). */
const char *unw_end_name(enum unw_end end);

/* Unwinds from regs. pcs[0] = regs->pc; pcs[i>0] = return address - 1 for ordinary frames, so every
 * entry lies inside the call instruction and can be symbolized directly (a frame interrupted by a
 * signal keeps its exact PC). Reads the stack through snap first, then mem. The modules in map are
 * borrowed. Returns 0 with *n frames and the reason in *end, or a negative error (-ENOMEM, RS_E_BAD_ARG). */
int unw_unwind(struct unw_ctx *u, const struct col_modmap *map, const struct col_regs *regs,
               const struct unw_snapshot *snap, const struct unw_memory *mem, uint64_t *pcs, size_t max,
               size_t *n, enum unw_end *end);

#endif
