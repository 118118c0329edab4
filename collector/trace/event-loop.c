/* The session's event loop: resume, wait for the next stop, run the quiet hits it carries and the handlers of
 * the breakpoint it is at, and step over that breakpoint where the server does not. */
#include "event-loop.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "breakpoints.h"
#include "buf.h"
#include "capture.h"
#include "counters.h"
#include "errors.h"
#include "log.h"
#include "processes.h"
#include "rsp-client.h"
#include "stream.h"

#define hit_time_ms trace_hit_time_ms

/* Signal numbers as the remote protocol carries them (gdb's numbering, not the host's). */
enum { GDB_SIGINT = 2, GDB_SIGTRAP = 5, GDB_SIGSTOP = 17 };

/* After SIGINT/SIGTERM, how long requests may still take to stop the program, remove the breakpoints and
 * detach; then every wait for the server ends at once, so the run ends within 5 s with its outputs. */
#define STOP_GRACE_MS 1500

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
  stop_signal = sig;
}

void trace_catch_stop_signals(void)
{
  struct sigaction sa = {.sa_handler = on_stop_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* The rsp layer watches the flag too, so a signal also cuts short a connect or a request that waits on a
   * silent server. */
  rspc_cancel_on(&stop_signal, STOP_GRACE_MS);
}

int trace_stop_signal(void) { return stop_signal; }

int trace_exact_times(const struct trace *tr) { return tr->agent_times; }


/* Stock gdbserver leaves a breakpoint at the PC in place when resuming, so the thread would trap again at
 * once: take it out, step that one thread past it (the others stay stopped), and put it back, as gdb does.
 * Our agent steps over breakpoints itself (it advertises rsprof-), which saves these round trips. */
static int handle_process_event(struct trace *tr, const struct rspc_stop *st);

static int step_over(struct trace *tr, const struct rspc_stop *st, uint64_t addr)
{
  struct rspc_stop after;
  tr->hit_stack_valid = 0;
  int rc = rspc_step_over(tr->c, st->pid, st->tid, addr, (int)tr->arch->bkpt_len, rspc_reply_timeout(tr->c), &after);
  if (rc)
    return rc;
  if (after.kind != RSPC_STOP_SIGNAL && after.kind != RSPC_STOP_EXITED && after.kind != RSPC_STOP_TERMINATED)
    return handle_process_event(tr, &after); /* the stepped instruction forked or executed */
  if (after.kind != RSPC_STOP_SIGNAL) {
    tr->program_ended = 1;
    tr->exit_code = after.kind == RSPC_STOP_EXITED ? after.exit_code : -1;
    tr->term_signal = after.kind == RSPC_STOP_TERMINATED ? after.signal : 0;
    return 0;
  }
  if (after.signal != GDB_SIGTRAP)
    tr->signal_to_deliver = after.signal; /* the program's own signal arrived during the step */
  return 0;
}


/* Copies the stop's quiet hits out of its reply, before any request reuses the reply buffer. */
static int take_quiet_hits(struct trace *tr, const struct rspc_stop *st)
{
  tr->nquiet = 0;
  if (!st->quiet)
    return 0;
  const char *p = st->quiet, *end = st->quiet + st->quiet_len;
  struct rspc_quiet_hit h;
  int rc;
  while ((rc = rspc_next_quiet_hit(&p, end, &h)) == 1) {
    struct rspc_quiet_hit *n = rs_grow(tr->quiet, &tr->quiet_cap, tr->nquiet + 1, sizeof *n, 64);
    if (!n)
      return -ENOMEM;
    tr->quiet = n;
    tr->quiet[tr->nquiet++] = h;
  }
  if (rc < 0) {
    int shown = end - st->quiet > 200 ? 200 : (int)(end - st->quiet);
    LOG_ERR("a stop reply has a malformed list of quiet breakpoint hits: %.*s", shown, st->quiet);
  }
  return rc;
}

/* Runs the handlers of the hits the agent recorded at quiet breakpoints before this stop, in their order.
 * Their handlers see the thread, PC, SP and return register only (trace_break_quiet). */
static int run_quiet_hits(struct trace *root)
{
  const struct arch_desc *a = root->arch;
  int rc = 0;
  for (size_t i = 0; i < root->nquiet && rc == 0; i++) {
    const struct rspc_quiet_hit *q = &root->quiet[i];
    struct trace *tr = trace_proc_of_tid(root, q->tid); /* the hits of every process come together */
    struct trace_bp *bp = trace_bp_lookup(tr, q->pc);
    if (!bp)
      continue; /* removed since */
    struct col_regs regs = {.arch = a, .pc = q->pc};
    col_regs_set(&regs, a->dwarf_sp, q->sp);
    col_regs_set(&regs, a->regs[a->ret_reg].dwarf, q->retval);
    struct trace_hit hit = {.tid = q->tid, .addr = q->pc, .regs = &regs, .ms = hit_time_ms(tr, 1, q->ns)};
    tr->quiet_stops++;
    tr->in_quiet_hit = 1;
    rc = trace_bp_dispatch(tr, bp, &hit);
    tr->in_quiet_hit = 0;
  }
  root->nquiet = 0;
  return rc;
}


static int handle_trap(struct trace *tr, const struct rspc_stop *st)
{
  struct col_regs regs;
  uint64_t pc;
  struct trace_bp *bp = rspc_stop_reg(st, tr->arch->pc_reg, &pc) ? trace_bp_at_trap(tr, pc) : NULL;
  int rc = trace_capture_regs(tr, st, bp && bp->used_stack, &regs);
  if (rc)
    return rc;
  bp = trace_bp_at_trap(tr, regs.pc);
  if (!bp) {
    LOG_DEBUG("SIGTRAP at 0x%llx is not one of our breakpoints", (unsigned long long)regs.pc);
    return 0;
  }
  struct trace_hit hit = {.tid = st->tid ? st->tid : st->pid, .addr = bp->addr, .regs = &regs,
                          .ms = hit_time_ms(tr, st->has_time, st->time_ns)};
  tr->hit_stack_used = 0;
  rc = trace_bp_dispatch(tr, bp, &hit);
  if (rc)
    return rc;
  bp = trace_bp_lookup(tr, hit.addr); /* still inserted (owned or parked) */
  if (bp)
    bp->used_stack = tr->hit_stack_used;
  if (bp && !rspc_features(tr->c)->rsprof_ext)
    return step_over(tr, st, hit.addr);
  return 0;
}

/* A fork or vfork the server reported (stock gdbserver with fork-events+): the child is not followed, as with
 * gdb's default detach-on-fork. A forked child has its own copy of our breakpoints, which gdbserver also listed
 * for it: they are removed with the child selected, then the child is detached. A vfork child shares its
 * parent's memory until it execs or exits, so they leave that memory (the table stays) and come back at the
 * parent's vforkdone, as gdb does; the parent is blocked in the kernel meanwhile. Returns 0 or a transport
 * error (a refused packet is only logged: the child then keeps what it could not be cleaned of). */
static int release_child(struct trace *tr, const struct rspc_stop *st)
{
  int vfork = st->kind == RSPC_STOP_VFORK;
  int64_t pid = st->pid ? st->pid : st->tid;
  int rc = rspc_select_thread(tr->c, 'g', vfork ? pid : st->child_pid, vfork ? st->tid : st->child_tid);
  if (rc == 0 && !(vfork && tr->vfork_lifted))
    rc = trace_bp_uninsert_all(tr);
  if (rc == 0 && vfork)
    tr->vfork_lifted = 1;
  int r = rspc_request_ok(tr->c, "D;%llx", (unsigned long long)st->child_pid);
  rc = rc ? rc : r;
  r = rspc_select_thread(tr->c, 'g', pid, st->tid); /* later reads are the parent's again */
  rc = rc ? rc : r;
  if (rc == 0) {
    tr->children_released++;
    LOG_INFO("process %lld started process %lld: detached with our breakpoints removed", (long long)pid,
             (long long)st->child_pid);
    return 0;
  }
  LOG_WARN("process %lld started process %lld, which could not be cleaned of our breakpoints and detached: %s",
           (long long)pid, (long long)st->child_pid, rs_strerror(rc));
  return rc == -EIO || rc == RS_E_UNSUPPORTED ? 0 : rc;
}

/* A child the server reported forked, followed (--follow-fork yes): a session of its own. A vfork child runs
 * in its parent's memory until it executes; stock gdbserver leaves our breakpoints there, so they leave that
 * memory until the parent's vforkdone (our agent lifts them itself). A child that cannot be followed is let go
 * as with --follow-fork no. */
static int follow_child(struct trace *tr, const struct rspc_stop *st)
{
  int vfork = st->kind == RSPC_STOP_VFORK;
  static int warned;
  if (vfork && !rspc_features(tr->c)->rsprof_ext) {
    /* gdbserver all-stop would wait for the vfork parent, blocked in the kernel until the child executes, at
     * every stop in between (gdb holds the parent instead): the child is let go as with --follow-fork no. */
    if (!warned++)
      LOG_WARN("vforked children are not followed through this server (only through rsprof-agent): process %lld "
               "and later ones run untraced", (long long)st->child_pid);
    return release_child(tr, st);
  }
  int rc = trace_proc_fork(tr, st->child_pid, vfork);
  if (rc) {
    LOG_WARN("cannot follow process %lld: %s; letting it go", (long long)st->child_pid, rs_strerror(rc));
    return trace_proc_select(tr) == 0 ? release_child(tr, st) : 0;
  }
  if (vfork && !rspc_features(tr->c)->rsprof_ext && !tr->vfork_lifted) {
    rc = trace_proc_select(tr);
    if (rc == 0)
      rc = trace_bp_uninsert_all(tr);
    tr->vfork_lifted = rc == 0;
  }
  return rc == -EIO || rc == RS_E_UNSUPPORTED ? 0 : rc;
}

/* Stops for process events (fork-events+, vfork-events+, exec-events+). The program resumes with no signal. */
static int handle_process_event(struct trace *tr, const struct rspc_stop *st)
{
  struct trace *img;
  switch (st->kind) {
  case RSPC_STOP_FORK:
  case RSPC_STOP_VFORK:
    return tr->root && tr->root->follow ? follow_child(tr, st) : release_child(tr, st);
  case RSPC_STOP_VFORK_DONE:
    if (!tr->vfork_lifted)
      return 0;
    tr->vfork_lifted = 0;
    trace_bp_reinsert_all(tr); /* a breakpoint that cannot go back is only missed: logged there */
    return 0;
  case RSPC_STOP_EXEC:
    /* The new image has none of the old breakpoints (the server dropped them too): a new session loads its
     * modules and places the breakpoints again. */
    tr->vfork_lifted = 0;
    if (trace_proc_exec(tr, &img) != 0)
      LOG_WARN("process %lld executed a new program, which cannot be traced", (long long)tr->pid);
    return 0;
  default:
    return 0;
  }
}

/* Children inherit our breakpoints: say so when neither the server nor we will take them out. */
static void warn_unreleased_children(struct trace *tr)
{
  const struct rspc_features *f = rspc_features(tr->c);
  if (f->detach_fork || (f->fork_events && f->vfork_events))
    return;
  LOG_WARN("the server does not report %s (no %s in its qSupported reply): a child process the program starts "
           "keeps our breakpoints in its copy of memory and dies of SIGTRAP at the first one it reaches",
           f->fork_events ? "vforks" : "forks", f->fork_events ? "vfork-events+" : "fork-events+");
}

void trace_show_progress(struct trace *tr, int final)
{
  if (!tr->progress)
    return;
  double t = trace_now_ms();
  if (!final && t - tr->last_progress_ms < 1000)
    return;
  double rate = (tr->events - tr->last_progress_events) * 1000.0 / (t - tr->last_progress_ms + 1e-9);
  fprintf(stderr, "\rrsprof: %llu events (%.0f/s)%s", (unsigned long long)tr->events, rate, final ? "\n" : "");
  tr->last_progress_ms = t;
  tr->last_progress_events = tr->events;
}

/* Waits for the running program's next stop. Silence is normal while it runs, so the server proves it is
 * alive another way: after --reply-timeout without a stop the program is interrupted, and the stop must come
 * within --reply-timeout, else the server is taken for dead (RS_E_TIMEOUT). The same bound applies to the
 * interrupt that ends a run (a signal, --duration). */
static int wait_running(struct trace *tr, struct rspc_stop *st)
{
  double reply_ms = rspc_reply_timeout(tr->c);
  double heard = trace_now_ms(); /* the last proof of life: the resume, or an answered probe */
  double asked = 0;              /* when the interrupt went out (0: none yet since the resume) */
  for (;;) {
    int rc = rspc_wait_stop(tr->c, 200, st);
    if (rc == 0 && tr->stream_error)
      rc = tr->stream_error;
    if (rc != RS_E_TIMEOUT)
      return rc;
    heard = tr->agent_capture && tr->stream_batches != tr->stream_batches_seen ? trace_now_ms() : heard;
    tr->stream_batches_seen = tr->stream_batches; /* events streaming in prove the agent alive */
    trace_show_progress(tr, 0);
    double now = trace_now_ms();
    int over_time = tr->opt->duration_ms && trace_elapsed_ms(tr) >= (double)tr->opt->duration_ms;
    if ((stop_signal || over_time) && !tr->interrupting) {
      LOG_INFO("stopping: %s", stop_signal ? "signal received" : "duration reached");
      tr->interrupting = 1;
      if (!asked) { /* an unanswered probe's stop serves as well */
        asked = now;
        rspc_interrupt(tr->c);
      }
    } else if (!asked && now - heard >= reply_ms) {
      LOG_DEBUG("no stop for %.0f ms: interrupting the program to check that the server is alive", now - heard);
      tr->probing = 1;
      asked = now;
      rspc_interrupt(tr->c);
    }
    /* Events still streaming in after the interrupt are the backlog the stop reply waits behind: proof of
     * life too, so the bound runs from the later of the interrupt and the last batch. */
    if (asked && now - (heard > asked ? heard : asked) >= reply_ms) {
      LOG_ERR("the server did not answer an interrupt within %.1f s (--reply-timeout): taking it for dead",
              reply_ms / 1000);
      return RS_E_TIMEOUT;
    }
  }
}

/* Before a resume: each session's breakpoint changes that streamed events asked for, in its own process. */
static int before_resume(struct trace *s, void *ctx)
{
  s->hit_stack_valid = 0; /* the program runs again: the captured window goes stale */
  if (s->ndeferred == 0)
    return 0;
  int rc = trace_proc_select(s);
  return rc ? rc : trace_stream_before_resume(s);
}

/* A process exited or was killed: the run ends with the last one (the program's own status is tr's). */
static int process_gone(struct trace *tr, const struct rspc_stop *st)
{
  int64_t pid = st->pid ? st->pid : tr->pid;
  struct trace *p = trace_proc_of_pid(tr, pid);
  int killed = st->kind == RSPC_STOP_TERMINATED;
  int live = p ? trace_proc_end(p, killed ? TRACE_PROC_KILLED : TRACE_PROC_EXITED, killed ? 0 : st->exit_code,
                                killed ? st->signal : 0)
               : trace_procs_live(tr);
  if (pid == tr->pid || !tr->follow) {
    tr->program_ended = 1;
    tr->exit_code = killed ? -1 : st->exit_code;
    tr->term_signal = killed ? st->signal : 0;
  }
  return !tr->follow || live == 0;
}

/* Runs until the program exits, the duration passes, or a signal asks us to stop. */
int trace_event_loop(struct trace *tr)
{
  int sig_to_deliver = 0;
  warn_unreleased_children(tr);
  for (;;) {
    int rc = trace_procs_each(tr, before_resume, NULL);
    if (rc)
      return rc;
    rc = rspc_continue(tr->c, sig_to_deliver);
    if (rc)
      return rc;
    sig_to_deliver = 0;
    struct rspc_stop st;
    rc = wait_running(tr, &st);
    if (rc)
      return rc;
    /* The session of the process that stopped (children followed), which the server has selected now. */
    struct trace *p = tr->follow ? trace_proc_of_tid(tr, st.pid ? st.pid : st.tid) : tr;
    if (tr->follow && st.pid && (p = trace_proc_of_pid(tr, st.pid)) == NULL)
      p = tr;
    trace_proc_stopped(tr, st.pid, st.tid);
    /* Copy what the reply carries before any request reuses its buffer; the quiet hits happened first. */
    trace_capture_stop_stack(p, &st);
    rc = take_quiet_hits(tr, &st);
    if (rc == 0)
      rc = run_quiet_hits(tr);
    if (rc)
      return rc;
    if (st.kind == RSPC_STOP_EXITED || st.kind == RSPC_STOP_TERMINATED) {
      if (process_gone(tr, &st) || tr->interrupting || stop_signal ||
          (tr->opt->duration_ms && trace_elapsed_ms(tr) >= (double)tr->opt->duration_ms))
        return 0;
      continue; /* other processes run on */
    }
    if (st.kind != RSPC_STOP_SIGNAL) {
      rc = handle_process_event(p, &st);
      if (rc)
        return rc;
    } else if (st.signal == GDB_SIGTRAP) {
      rc = p->vfork_child ? 0 : handle_trap(p, &st);
      if (rc)
        return rc;
      if (p->program_ended && !tr->follow)
        return 0;
      sig_to_deliver = p->signal_to_deliver;
      p->signal_to_deliver = 0;
    } else if (!((tr->interrupting || tr->probing) &&
                 (st.signal == GDB_SIGINT || st.signal == GDB_SIGSTOP || st.signal == 0))) {
      sig_to_deliver = st.signal; /* the program's own signal: pass it on, as gdb does by default */
    } else {
      /* Our interrupt's stop. A probe stays pending across other stops until it is answered: an interrupt
       * that crossed a breakpoint hit may still be reported after it, and must not reach the program. */
      tr->probing = 0;
    }
    if (tr->interrupting || stop_signal ||
        (tr->opt->duration_ms && trace_elapsed_ms(tr) >= (double)tr->opt->duration_ms))
      return 0;
  }
}
