/* The traced processes: the one the agent launched or attached to and, when the client follows forks, the
 * children it started, each a struct inferior of its own; routes wait statuses to the process they belong to. */
#ifndef RSPROF_AGENT_PROCESSES_H
#define RSPROF_AGENT_PROCESSES_H

#include "inferior.h"

#define INF_MAX_PROCS 256

struct inf_procs {
  struct inferior *first; /* the launched or attached process's storage (the owner's, never freed here) */
  struct inferior *p[INF_MAX_PROCS]; /* p[0] is first, live or not; children are mapped, unmapped when gone */
  int n;
  int follow;             /* children are traced (the client asked for fork events), not let go */
};

/* Prepares the table around first (inf_init'ed by the caller, who keeps owning it). */
void procs_init(struct inf_procs *ps, struct inferior *first);
/* Follow children from now on (1) or let them go, cleaned of the breakpoints (0). */
void procs_set_follow(struct inf_procs *ps, int follow);
/* The traced process pid, or NULL. */
struct inferior *procs_by_pid(struct inf_procs *ps, pid_t pid);
/* The traced process that has thread tid, or NULL. */
struct inferior *procs_by_tid(struct inf_procs *ps, pid_t tid);
/* Whether some traced process runs (the client resumed it and its stop was not reported). */
int procs_running(const struct inf_procs *ps);
/* How many processes are traced. */
int procs_count(const struct inf_procs *ps);
/* The first traced process, or first (empty) when there is none. */
struct inferior *procs_any(struct inf_procs *ps);

/* inf_poll over every process: on a stop to report (1) the others are stopped too and *which is the process
 * that stopped. An exited child is forgotten after its stop is filled in (its storage stays valid until the
 * next call that may free it, procs_reap). Returns 1 or 0. */
int procs_poll(struct inf_procs *ps, struct inf_stop *st, struct inferior **which);
/* inf_resume for every process, each getting the actions for its own threads (tid -1 for all). Returns as
 * inf_resume, with *which the process whose stop is already known. */
int procs_resume(struct inf_procs *ps, const struct inf_resume *acts, int n, struct inf_stop *st,
                 struct inferior **which);
/* Stops every process (the client's interrupt) and describes a stop in *st. Returns 0 or a negative code. */
int procs_interrupt(struct inf_procs *ps, struct inf_stop *st, struct inferior **which);
/* Frees the children that are gone (pid 0). */
void procs_reap(struct inf_procs *ps);
/* Kills (kill) or detaches from every process; the table is left with first only. */
void procs_end_all(struct inf_procs *ps, int kill);

#endif
