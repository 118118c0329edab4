/* The table of traced processes above struct inferior: children a followed program forks are adopted as
 * processes of their own (mapped when they appear, so an agent tracing one process stays small), and wait
 * statuses that one process's wait loop collects for another reach that one. */
#include "processes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "errors.h"
#include "log.h"

struct inferior *procs_by_pid(struct inf_procs *ps, pid_t pid)
{
  for (int i = 0; i < ps->n; i++)
    if (ps->p[i]->pid == pid && pid != 0)
      return ps->p[i];
  return NULL;
}

struct inferior *procs_by_tid(struct inf_procs *ps, pid_t tid)
{
  for (int i = 0; i < ps->n; i++)
    if (ps->p[i]->pid != 0 && inf_thread(ps->p[i], tid))
      return ps->p[i];
  return NULL;
}

/* A status of a task the process asking does not know. A new thread can report its first stop before its
 * parent's clone event: it goes to its thread group's process, which may be the one asking, and which then
 * must take it as its own new thread instead of asking again (routing: the one status being routed). */
static int route(void *ctx, pid_t tid, int status)
{
  static int routing;
  struct inf_procs *ps = ctx;
  if (routing)
    return 0;
  struct inferior *q = procs_by_tid(ps, tid);
  if (!q && WIFSTOPPED(status))
    q = procs_by_pid(ps, inf_task_tgid(tid)); /* a new thread of q */
  if (!q)
    return 0;
  routing = 1;
  inf_on_status(q, tid, status);
  routing = 0;
  return 1;
}

/* A child's table entry comes straight from the kernel and goes back to it: zero pages that stay untouched
 * until used (most of an inferior is tables and buffers a small program never fills), and nothing retained
 * once the child is gone. calloc would clear it by hand once malloc's mmap threshold has grown past its
 * size, making every child cost its whole size in resident memory. */
static struct inferior *alloc_inferior(void)
{
  void *p = mmap(NULL, sizeof(struct inferior), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void free_inferior(struct inferior *inf) { munmap(inf, sizeof *inf); }

static int adopt(void *ctx, struct inferior *parent, pid_t child, int vfork)
{
  struct inf_procs *ps = ctx;
  if (!ps->follow)
    return RS_E_UNSUPPORTED;
  struct inferior *c = ps->n < INF_MAX_PROCS ? alloc_inferior() : NULL; /* first stays the program's */
  if (!c) {
    LOG_WARN("too many traced processes: process %d is let go", (int)child);
    return RS_E_LIMIT;
  }
  int rc = inf_adopt_child(c, parent, child, vfork);
  if (rc) {
    LOG_WARN("cannot follow process %d: %s", (int)child, rs_strerror(rc));
    inf_release(c);
    free_inferior(c);
    return rc;
  }
  ps->p[ps->n++] = c;
  return 0;
}

static void hook(struct inf_procs *ps, struct inferior *inf)
{
  inf->route = route;
  inf->adopt = ps->follow ? adopt : NULL;
  inf->procs_ctx = ps;
}

void procs_init(struct inf_procs *ps, struct inferior *first)
{
  memset(ps, 0, sizeof *ps);
  ps->first = first;
  ps->p[0] = first;
  ps->n = 1;
  hook(ps, first);
}

void procs_set_follow(struct inf_procs *ps, int follow)
{
  ps->follow = follow;
  for (int i = 0; i < ps->n; i++)
    hook(ps, ps->p[i]);
}

int procs_running(const struct inf_procs *ps)
{
  for (int i = 0; i < ps->n; i++)
    if (ps->p[i]->pid && ps->p[i]->running)
      return 1;
  return 0;
}

int procs_count(const struct inf_procs *ps)
{
  int k = 0;
  for (int i = 0; i < ps->n; i++)
    k += ps->p[i]->pid != 0;
  return k;
}

struct inferior *procs_any(struct inf_procs *ps)
{
  for (int i = 0; i < ps->n; i++)
    if (ps->p[i]->pid)
      return ps->p[i];
  return ps->first;
}

void procs_reap(struct inf_procs *ps)
{
  for (int i = 1; i < ps->n;)
    if (ps->p[i]->pid == 0) {
      free_inferior(ps->p[i]);
      ps->p[i] = ps->p[--ps->n];
    } else {
      i++;
    }
}

/* Every process but except stops: all-stop spans the processes. */
static void stop_others(struct inf_procs *ps, struct inferior *except)
{
  for (int i = 0; i < ps->n; i++)
    if (ps->p[i] != except && ps->p[i]->pid && ps->p[i]->running)
      inf_stop_all(ps->p[i]);
}

int procs_poll(struct inf_procs *ps, struct inf_stop *st, struct inferior **which)
{
  for (int i = 0; i < ps->n; i++) {
    struct inferior *q = ps->p[i];
    if (q->pid == 0 && !q->exited)
      continue;
    if (inf_poll(q, st) == 1) {
      *which = q;
      stop_others(ps, q);
      return 1;
    }
  }
  return 0;
}

/* The actions of acts that apply to q's threads: those for all threads (tid -1) and those naming one of its. */
static int actions_for(struct inferior *q, const struct inf_resume *acts, int n, struct inf_resume *out)
{
  int k = 0;
  for (int i = 0; i < n; i++)
    if (acts[i].tid == -1 || inf_thread(q, acts[i].tid))
      out[k++] = acts[i];
  return k;
}

int procs_resume(struct inf_procs *ps, const struct inf_resume *acts, int n, struct inf_stop *st,
                 struct inferior **which)
{
  struct inf_resume mine[64];
  if (n > 64)
    return RS_E_BAD_ARG;
  int resumed = 0, rc = RS_E_NO_PROCESS;
  for (int i = 0; i < ps->n; i++) {
    struct inferior *q = ps->p[i];
    int k = q->pid ? actions_for(q, acts, n, mine) : 0;
    if (k == 0)
      continue;
    rc = inf_resume(q, mine, k, st);
    if (rc == 1) {
      *which = q;
      stop_others(ps, q);
      return 1;
    }
    if (rc < 0 && resumed == 0)
      return rc; /* nothing moved yet */
    resumed++;
  }
  return resumed ? 0 : rc;
}

int procs_interrupt(struct inf_procs *ps, struct inf_stop *st, struct inferior **which)
{
  struct inferior *rep = NULL; /* the first running process, else the first one */
  for (int i = ps->n - 1; i >= 0; i--)
    if (ps->p[i]->pid && (ps->p[i]->running || !rep || !rep->running))
      rep = ps->p[i]->running || !rep ? ps->p[i] : rep;
  if (!rep)
    return RS_E_NO_PROCESS;
  stop_others(ps, rep);
  *which = rep;
  return inf_interrupt(rep, st);
}

void procs_end_all(struct inf_procs *ps, int kill)
{
  for (int i = 0; i < ps->n; i++) {
    struct inferior *q = ps->p[i];
    if (q->pid && kill)
      inf_kill(q);
    else if (q->pid)
      inf_detach(q);
  }
  procs_reap(ps);
}
