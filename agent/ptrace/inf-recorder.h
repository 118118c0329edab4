/* In-process capture on the agent's side: the shared-memory ring the recorder (librsprof_recorder.so) writes,
 * preloading the recorder into a launched program, injecting it into an attached one, and draining the ring
 * into the event stream as complete calls (inf_cap_emit_call). */
#ifndef RSPROF_AGENT_INF_RECORDER_H
#define RSPROF_AGENT_INF_RECORDER_H

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

struct inferior;

/* Prepares an empty recorder state (no ring). */
void inf_rec_init(struct inf_recorder *r);
/* Creates the ring (once) for a process that is to be launched or injected. Returns 0 or a negative code. */
int inf_rec_create_ring(struct inferior *inf);
/* Frees the ring (the process is gone or detached). */
void inf_rec_close(struct inferior *inf);
/* The child side of a launch (after fork, before exec): puts the recorder into LD_PRELOAD and the ring's path
 * into the environment. */
void inf_rec_child_env(const struct inferior *inf);
/* The parent side of a launch: the ring belongs to pid now, and recording is on. */
void inf_rec_launched(struct inferior *inf, pid_t pid);
/* Whether the program at path can take a preloaded library (a dynamically linked ELF file): returns 0, or
 * RS_E_UNSUPPORTED (static) or a negative errno. */
int inf_rec_check_program(const char *path);

/* Loads the recorder into the attached, stopped process: one of its threads calls dlopen and then the
 * recorder's attach function, with registers restored afterwards. Returns 0, RS_E_UNSUPPORTED (no dlopen in
 * the process: static, or a libc without it) or a negative code. */
int inf_rec_inject(struct inferior *inf);
/* Whether the recorder library is mapped in the process now (preloaded: from the first library load on). */
int inf_rec_loaded(struct inferior *inf);
/* Logs the ring's counters (records, writers that waited for room and for how long, records lost). */
void inf_rec_log_stats(const struct inferior *inf);
/* Turns recording off in the process (at detach): the recorder only forwards from then on. */
void inf_rec_disable(struct inferior *inf);

/* Calls of function func (enum rring_func) made through the real function at addr are events of the client's
 * breakpoint id, with the registers of regmask. Returns 0, RS_E_BAD_ARG or RS_E_LIMIT. */
int inf_rec_set_target(struct inferior *inf, unsigned func, uint64_t addr, uint32_t id, uint64_t regmask);
/* Whether the ring may hold records (a recorder runs, or ran and left some). */
int inf_rec_active(const struct inferior *inf);
/* Moves records from the ring into the event stream while they fit below limit bytes of inf->cap. Returns the
 * number of records taken. */
size_t inf_rec_drain(struct inferior *inf, size_t limit);

#endif
