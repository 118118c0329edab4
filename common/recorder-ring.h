/* The in-process recorder's event ring: a lock-free multi-writer, single-reader byte ring in shared memory
 * that the recorder (stub/c/recorder.c, inside the traced program) writes and the agent drains. This header
 * is the layout both sides agree on (docs/protocol.md, "In-process capture", has it byte by byte); the
 * functions are pure C with atomics only: no allocation, no lock, safe in a signal handler. */
#ifndef RSPROF_RECORDER_RING_H
#define RSPROF_RECORDER_RING_H

#include <stddef.h>
#include <stdint.h>

#define RRING_MAGIC "RSRING1"
#define RRING_VERSION 2 /* 2: real[] has the marker's entry (RRING_MARKER) */
#define RRING_HEADER_SIZE 4096 /* the data starts one page in */
#define RRING_MAX_PCS 128      /* the deepest stack a record carries (deeper: truncated) */
#define RRING_MAX_ARGS 4

/* The functions the recorder wraps, in the record's func byte and the header's real[] table; RRING_MARKER: a
 * call of the stubs' marker __rsprof_memtrace_event, which hands its arguments to the recorder while it runs
 * (its real[] entry is 0: the record's pcs[0] is the marker's address). */
enum rring_func {
  RRING_MALLOC, RRING_CALLOC, RRING_REALLOC, RRING_FREE, RRING_POSIX_MEMALIGN, RRING_ALIGNED_ALLOC,
  RRING_MEMALIGN, RRING_VALLOC, RRING_PVALLOC, RRING_MARKER, RRING_NFUNCS
};

/* The shared header, at offset 0 of the mapping. The agent creates it (rring_init); the writers' and the
 * reader's positions sit on cache lines of their own. */
struct rring_shared {
  char magic[8];
  uint32_t version, header_size;
  uint64_t cap;          /* data bytes after the header: a power of two */
  uint32_t enabled;      /* 1: the recorder records; 0: it only forwards (the agent turns it off at detach) */
  int32_t pid;           /* the process the ring belongs to: a forked child (another pid) never writes */
  uint32_t recorder_ready; /* the recorder has mapped the ring and resolved its functions */
  uint32_t pad0;
  uint64_t real[RRING_NFUNCS]; /* the recorder publishes the address of each real function it forwards to */
  uint64_t recorder_lo, recorder_hi; /* the recorder's own text: frames there are not the program's */
  uint8_t pad1[256 - 24 - 16 - 8 * RRING_NFUNCS - 16];
  uint64_t head;         /* writers: bytes reserved so far (compare-and-swap) */
  uint8_t pad2[56];
  uint64_t tail;         /* reader: bytes consumed so far; [tail, head) is in use */
  uint8_t pad3[56];
  /* counters the recorder keeps (atomic adds) */
  uint64_t records;      /* records committed */
  uint64_t waits;        /* records whose writer found the ring full and waited */
  uint64_t wait_ns;      /* time writers waited, summed */
  uint64_t lost;         /* records given up after waiting RRING_WAIT_LIMIT_NS (a reader gone) */
  uint64_t fp_frames;    /* frames unwound with frame pointers (no table row) */
  uint64_t no_table;     /* records whose walk stopped without a table (NEED_HOST) */
};

#define RRING_WAIT_LIMIT_NS (10ull * 1000000000ull) /* a writer waits at most this long for room */

/* A record: 8-byte aligned, its first word is the length (multiple of 8) with RRING_COMMITTED set once
 * the whole record is written. Kinds: */
enum { RRING_REC_CALL = 1, RRING_REC_PAD = 2 /* filler to the end of the data: skip */ };
#define RRING_COMMITTED 0x80000000u
/* Record flags. */
enum {
  RRING_F_TRUNCATED = 1,  /* the stack is cut: RRING_MAX_PCS reached, or the walk ended without reaching the
                             outermost frame */
  RRING_F_FP = 2,         /* some frames came from frame pointers (no table row covered them) */
  RRING_F_HAS_RET = 4,    /* retval and ret_ns are the call's result */
  RRING_F_RET_MEM = 8,    /* ret_mem holds the 8 bytes the call stored through its first argument */
};

/* A call record (RRING_REC_CALL) as it lies in the ring; pcs[npcs] follows (innermost first; pcs[0] is the
 * real function's entry, pcs[1] the caller's return address - 1, and so on). */
struct rring_call {
  uint32_t len_word;   /* length | RRING_COMMITTED */
  uint8_t kind, func, flags, nargs;
  uint32_t tid;
  uint32_t npcs;
  uint64_t ns;         /* CLOCK_MONOTONIC at the entry */
  uint64_t ret_ns;     /* CLOCK_MONOTONIC at the return */
  uint64_t retval;
  uint64_t ret_mem;
  uint64_t args[RRING_MAX_ARGS];
  uint64_t pcs[];
};
#define RRING_CALL_FIXED ((uint32_t)sizeof(struct rring_call))

/* A mapped ring: sh points at the header, data at the cap bytes after it. */
struct rring {
  struct rring_shared *sh;
  uint8_t *data;
  uint64_t cap;
};

/* The bytes a mapping for a ring of cap data bytes needs. */
static inline size_t rring_map_size(uint64_t cap) { return RRING_HEADER_SIZE + (size_t)cap; }

/* Formats a fresh ring in mem (rring_map_size(cap) zeroed bytes; cap a power of two of at least 4096) for
 * process pid, recording off. Returns 0 or RS_E_BAD_ARG. */
int rring_init(void *mem, uint64_t cap, int32_t pid);
/* Checks the header of a mapping of len bytes and fills r. Returns 0 or RS_E_FORMAT. */
int rring_open(struct rring *r, void *mem, size_t len);

/* Writer: reserves len bytes (a multiple of 8, at most cap / 4) and returns the record's start in *out, its
 * first word already holding len without the commit bit. Returns 0, or 1 when the ring has no room now (the
 * caller waits and tries again). Wrapping at the end of the data is handled with a committed pad record. */
int rring_reserve(struct rring *r, uint32_t len, uint8_t **out);
/* Writer: publishes a reserved record (release store of its first word). */
void rring_commit(uint8_t *rec, uint32_t len);

/* Reader: the record at the tail. Returns 1 with *rec and *len when it is committed, 0 when the ring is
 * empty, 2 when a writer has reserved it but not finished (*len is its length: the caller may wait, or skip
 * it with rring_release once the writer is known to be gone). Pad records are consumed here, never
 * returned. */
int rring_peek(struct rring *r, const uint8_t **rec, uint32_t *len);
/* Reader: zeroes the record at the tail (len bytes) and moves the tail past it, making room for writers. */
void rring_release(struct rring *r, uint32_t len);
/* Bytes in use (reserved and not yet released). */
uint64_t rring_used(const struct rring *r);

#endif
