/* The agent's state for in-process capture (inf-recorder.c, declared in inferior.h): the shared-memory ring the
 * recorder (librsprof_recorder.so) writes, and which client breakpoint each wrapped function stands for. */
#ifndef RSPROF_AGENT_REC_STATE_H
#define RSPROF_AGENT_REC_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "recorder-ring.h"

#define INF_REC_RING_CAP (8u << 20) /* the ring's data bytes */
#define INF_REC_TARGETS 8           /* client breakpoints one wrapped function may stand for */

/* Which client breakpoint a recorded call of one function stands for: the one at the real function's entry. */
struct inf_rec_target {
  uint64_t addr;    /* the function's entry in the traced process */
  uint32_t id;      /* the client's breakpoint id, echoed in the stream */
  uint64_t regmask; /* the registers the client wants: the arguments among them get the call's arguments */
};

struct inf_recorder {
  const char *lib;   /* the recorder library on this machine (borrowed; NULL: none found) */
  int want;          /* in-process capture asked for: preload at the next launch */
  int fd;            /* the ring's memfd, -1 when there is none */
  void *map;
  size_t map_len;
  struct rring ring;
  char ring_path[64]; /* how the recorder opens the ring: /proc/AGENT/fd/N */
  char arena_path[64]; /* and the table arena (inf-tables.h), read-only; empty when there is none */
  int injected;       /* the recorder runs in the current process (preloaded or injected) */
  struct inf_rec_target t[RRING_NFUNCS][INF_REC_TARGETS];
  int nt[RRING_NFUNCS];
  uint64_t drained;   /* records taken from the ring */
  uint64_t unclaimed; /* records of a function no breakpoint stands for (not sent) */
  uint64_t stuck_since; /* when the tail record was first seen unfinished (0: it is not) */
};

#endif
