/* The compact records of the rsprof-capture event stream (kinds 3, 4, 6 and 7: a call with an interned PC
 * stack, a stack definition, a return, a reset), as varints and deltas against state that the writer and
 * the reader keep alike, and the record framing shared with the fixed-header kinds. Pure C, no allocation:
 * the agent, the in-process recorder and the collector share it. docs/protocol.md has the byte layout. */
#ifndef RSPROF_CAPTURE_CODEC_H
#define RSPROF_CAPTURE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "capture-records.h"

#define CAPC_SLOTS 8      /* register-delta slots, chosen by breakpoint id & (CAPC_SLOTS - 1) */
#define CAPC_SLOT_REGS 8  /* registers per slot with a delta reference (later ones are absolute) */
#define CAPC_MAX_FRAMES 4096 /* the most PCs one stack definition holds (the collector's default depth) */
#define CAPC_MAX_MEM 256  /* the most memory bytes a call or return carries */
/* A writer sends a reset before its definitions since the last one would pass either bound, so a reader never
 * holds more (and refuses a stream that would make it). */
#define CAPC_MAX_STACKS 16384
#define CAPC_MAX_PCS 65536

/* Flags of a call (kind 3) and a return (kind 6) record. */
enum {
  CAPC_F_PAIRED = 1,    /* call: a return record (kind 6) with the same seq follows later */
  CAPC_F_RET = 2,       /* call: the return is in this record (ret_ns, retval, ret_mem) */
  CAPC_F_MEM = 4,       /* call: entry memory follows; return: return memory follows */
  CAPC_F_RMEM = 8,      /* call with CAPC_F_RET: return memory follows */
  CAPC_F_MEM_FAULT = 16, /* some memory asked for was unreadable: its length is what was read */
  CAPC_F_RA = 32,       /* call: an explicit return address (else pcs[1] + 1 of its stack) */
};

/* The delta references, equal on both sides of the stream; zero after a reset. */
struct capc_state {
  uint32_t tid;
  uint64_t ns, seq, ret_seq, sp, retval, pc0;
  uint64_t regs[CAPC_SLOTS][CAPC_SLOT_REGS];
  uint32_t nstacks; /* stacks defined since the reset: the next definition's id */
};

/* A call (kind 3). Pointers borrow from the caller (writing) or from the batch (reading). */
struct capc_call {
  int flags;             /* CAPC_F_* */
  uint32_t tid, id, stack;
  uint64_t ns, seq, sp;  /* seq: with CAPC_F_PAIRED; sp: the stack pointer at the entry (0: not known) */
  uint64_t regmask;      /* gdb register numbers, ascending, one value each in regs */
  uint64_t regs[64];
  uint64_t ret_ns, retval, ra;
  const uint8_t *mem, *ret_mem;
  uint32_t mem_len, ret_mem_len;
};

/* A return (kind 6) of a call record that had CAPC_F_PAIRED. */
struct capc_ret {
  int flags;             /* CAPC_F_MEM, CAPC_F_MEM_FAULT */
  uint32_t tid;
  uint64_t seq, ns, retval;
  const uint8_t *mem;
  uint32_t mem_len;
};

/* One decoded compact record. */
struct capc_rec {
  int kind;              /* CAP_REC_CALL, CAP_REC_STACK_DEF, CAP_REC_RET, CAP_REC_RESET */
  struct capc_call call;
  struct capc_ret ret;
  uint32_t stack_id;     /* STACK_DEF: the id it defines */
  int truncated;         /* STACK_DEF: the walk ended before the outermost frame */
  size_t npcs;           /* STACK_DEF: pcs decoded into the caller's array */
};

/* Empties s (the start of a stream, and what a reset record does). */
void capc_reset(struct capc_state *s);
/* Whether kind is one of the compact kinds. */
int capc_is_compact(int kind);
/* The length of the record at p (avail bytes there), of any kind; 0 when it does not fit avail or is
 * malformed. The agent cuts batches with it. */
size_t cap_record_len(const uint8_t *p, size_t avail);

/* Writers. Each encodes one record into out[0..room) and updates s; returns the bytes written, or 0 with s
 * unchanged when the record does not fit (or, for a call, has more memory than CAPC_MAX_MEM). */
size_t capc_put_call(struct capc_state *s, uint8_t *out, size_t room, const struct capc_call *c);
size_t capc_put_ret(struct capc_state *s, uint8_t *out, size_t room, const struct capc_ret *r);
/* A stack definition gets id s->nstacks. */
size_t capc_put_stack(struct capc_state *s, uint8_t *out, size_t room, const uint64_t *pcs, size_t n,
                      int truncated);
/* A reset: the reader empties its stack table and delta state, as this resets s. */
size_t capc_put_reset(struct capc_state *s, uint8_t *out, size_t room);

/* Reads the compact record at *p (before end), advancing *p past it; a STACK_DEF's PCs go into
 * pcs[0..maxpcs). Returns 1 with *r, or RS_E_PROTO for a record that does not parse within its length or
 * holds more PCs than maxpcs. */
int capc_get(struct capc_state *s, const uint8_t **p, const uint8_t *end, struct capc_rec *r, uint64_t *pcs,
             size_t maxpcs);

#endif
