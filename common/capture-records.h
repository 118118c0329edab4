/* The binary records of the rsprof-capture event stream ("%RsprofEvents:" notifications), shared by the agent
 * that writes them and the collector that reads them. All fields are little-endian; docs/protocol.md has the
 * byte-level layout. */
#ifndef RSPROF_CAPTURE_RECORDS_H
#define RSPROF_CAPTURE_RECORDS_H

#include <stdint.h>
#include <string.h>

/* Record kinds (byte 0). */
enum cap_record_kind {
  CAP_REC_ENTRY = 1,          /* a hit on a capture breakpoint: registers, memory, the raw stack window */
  CAP_REC_RETURN = 2,         /* the return of a call an entry record paired (same tid and seq) */
  CAP_REC_CALL = 3,           /* compact: a call whose stack was unwound on the board, by interned stack id */
  CAP_REC_STACK_DEF = 4,      /* compact: defines an interned PC stack before its first use */
  CAP_REC_STATS = 5,          /* the agent's counters, before each stop reply */
  CAP_REC_RET = 6,            /* compact: the return of a kind 3 call marked paired */
  CAP_REC_RESET = 7,          /* compact: the stack table and the delta state start again empty */
  CAP_REC_PROCESS = 8,        /* children followed: the batch's records after it are of process "thread id" */
};
/* Kinds 1, 2 and 5 have the fixed header below; the compact kinds (common/capture-codec.h) are the kind byte,
 * the body's length as a varint, and the body. */

/* Flags (byte 1). */
enum {
  CAP_FLAG_STACK_END = 1, /* the stack window is shorter than asked: the stack's mapping ends there */
  CAP_FLAG_MEM_FAULT = 2, /* the memory asked for was not (all) readable: its length is what was read */
  CAP_FLAG_UNPAIRED = 4,  /* an entry whose return could not be watched (no room for a return breakpoint) */
};

/* Header: kind u8, flags u8, reserved u16, length u32 (whole record), tid u32, breakpoint id u32, seq u64
 * (per call, shared by an entry and its return; 0: unpaired), ns u64 (the agent's CLOCK_MONOTONIC at the stop). */
#define CAP_REC_HEADER 32
/* ENTRY body: regmask u64, one u64 per set bit (ascending gdb register numbers), mem_len u32, stack_len u32,
 * mem bytes, stack bytes (from sp). RETURN body: pc u64, sp u64, retval u64, mem_len u32, reserved u32, mem.
 * STATS body: events u64, held_ns u64, parked u64, watch_overflows u64, then (a reader takes them when the
 * record is long enough) compact calls u64, stacks interned u64, raw windows u64, stack-table resets u64. */
#define CAP_REC_RETURN_FIXED (CAP_REC_HEADER + 32)
#define CAP_REC_STATS_LEN (CAP_REC_HEADER + 64)
#define CAP_STATS_N 8

/* Both supported architectures are little-endian, so a copy is the encoding. */
static inline void cap_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void cap_put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t cap_get32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline uint64_t cap_get64(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Writes a record header at p. */
static inline void cap_put_header(uint8_t *p, int kind, int flags, uint32_t len, uint32_t tid, uint32_t id,
                                  uint64_t seq, uint64_t ns)
{
  p[0] = (uint8_t)kind;
  p[1] = (uint8_t)flags;
  p[2] = p[3] = 0;
  cap_put32(p + 4, len);
  cap_put32(p + 8, tid);
  cap_put32(p + 12, id);
  cap_put64(p + 16, seq);
  cap_put64(p + 24, ns);
}

#endif
