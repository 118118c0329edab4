/* Process control for one traced program over ptrace (PTRACE_SEIZE based, all-stop): threads are
 * tracked in fixed tables so the per-event path never allocates. */
#include "inferior.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"

/* Fork and vfork are traced only so that a new process can be cleaned of our breakpoints and let go
 * (release_child); vfork-done says when a vfork child stopped sharing its parent's memory. */
#define OPTS_COMMON                                                                                        \
  (PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | \
   PTRACE_O_TRACEVFORKDONE)

static unsigned report_rotor;
/* New processes whose first stop was collected before their parent's fork event (by whichever process's wait
 * loop met it: the agent has one thread and one waitpid(-1) stream). */
static pid_t early_child[64];
static int nearly_child;

void inf_init(struct inferior *inf)
{
  memset(inf, 0, sizeof *inf);
  inf->memfd = -1;
  inf->arch = ptarch_desc();
  inf_rec_init(&inf->rec);
}

struct inf_thread *inf_thread(struct inferior *inf, pid_t tid)
{
  for (int i = 0; i < inf->nth; i++)
    if (inf->th[i].tid == tid)
      return &inf->th[i];
  return NULL;
}

static int tindex(struct inferior *inf, struct inf_thread *t) { return (int)(t - inf->th); }

static struct inf_thread *add_thread(struct inferior *inf, pid_t tid, int running)
{
  if (inf->nth >= INF_MAX_THREADS) {
    LOG_ERR("too many threads; thread %d is not tracked", (int)tid);
    return NULL;
  }
  struct inf_thread *t = &inf->th[inf->nth];
  memset(t, 0, sizeof *t);
  t->tid = tid;
  t->running = running;
  t->want_run = (unsigned char)inf->running;
  inf->nth++;
  return t;
}

static void remove_thread(struct inferior *inf, struct inf_thread *t)
{
  int i = tindex(inf, t), last = inf->nth - 1;
  if (i != last)
    inf->th[i] = inf->th[last];
  inf->nth--;
}

static void forget_process(struct inferior *inf)
{
  if (inf->memfd >= 0)
    close(inf->memfd);
  inf->memfd = -1;
  inf->nth = 0;
  inf->nbp = 0;
  if (inf->pid)
    inf->gone_pid = inf->pid;
  inf->pid = 0;
  inf->running = 0;
  inf->vfork_lifts = 0;
  inf->vfork_parent = 0;
  inf->cap.nw = 0;
  inf->cap.nparked = 0;
}

static int open_mem(struct inferior *inf)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", (int)inf->pid);
  inf->memfd = open(path, O_RDWR | O_CLOEXEC);
  return inf->memfd < 0 ? -errno : 0;
}

struct ptarch_gregs *inf_gregs(struct inferior *inf, struct inf_thread *t)
{
  (void)inf;
  if (!t->regs_valid) {
    if (ptarch_get_gregs(t->tid, &t->regs))
      return NULL;
    t->regs_valid = 1;
  }
  return &t->regs;
}

/* Writes registers changed in the cache only to the thread. A breakpoint's PC rewind is written so, together
 * with the emulated step that usually follows it (one PTRACE_SETREGS per hit instead of two). Every resume and
 * every public entry point's return flushes, so nothing outside sees the kernel's copy behind the cache. */
static void regs_flush(struct inf_thread *t)
{
  if (!t->regs_dirty)
    return;
  t->regs_dirty = 0;
  if (t->regs_valid && ptarch_set_gregs(t->tid, &t->regs))
    LOG_WARN("thread %d: cannot write its registers: %s", (int)t->tid, strerror(errno));
}

/* Flushes, then drops the cache (the thread is about to run or its registers change under it). */
static void regs_forget(struct inf_thread *t)
{
  regs_flush(t);
  t->regs_valid = 0;
}

static void regs_flush_all(struct inferior *inf)
{
  for (int i = 0; i < inf->nth; i++)
    regs_flush(&inf->th[i]);
}

static struct inf_bp *bp_find(struct inferior *inf, uint64_t addr)
{
  for (int i = 0; i < inf->nbp; i++)
    if (inf->bp[i].addr == addr)
      return &inf->bp[i];
  return NULL;
}

struct inf_bp *inf_bp_find(struct inferior *inf, uint64_t addr) { return bp_find(inf, addr); }

static int raw_write(struct inferior *inf, uint64_t addr, const void *data, size_t len)
{
  ssize_t n = pwrite(inf->memfd, data, len, (off_t)addr);
  if (n < 0)
    return -errno;
  return (size_t)n == len ? 0 : -EIO;
}

long inf_read(struct inferior *inf, uint64_t addr, void *out, size_t len)
{
  if (inf->memfd < 0)
    return RS_E_NO_PROCESS;
  ssize_t n = pread(inf->memfd, out, len, (off_t)addr);
  if (n <= 0) {
    /* A read crossing into an unmapped page fails as a whole; retry up to the page end. */
    uint64_t page_end = (addr | 4095) + 1;
    if (page_end - addr >= len)
      return n < 0 ? -errno : -EIO;
    n = pread(inf->memfd, out, page_end - addr, (off_t)addr);
    if (n <= 0)
      return n < 0 ? -errno : -EIO;
  }
  size_t bl = inf->arch->bkpt_len;
  for (int i = 0; i < inf->nbp; i++) {
    const struct inf_bp *b = &inf->bp[i];
    for (size_t k = 0; k < bl; k++) {
      uint64_t a = b->addr + k;
      if (a >= addr && a < addr + (uint64_t)n)
        ((uint8_t *)out)[a - addr] = b->orig[k];
    }
  }
  return (long)n;
}

int inf_write(struct inferior *inf, uint64_t addr, const void *data, size_t len)
{
  if (inf->memfd < 0)
    return RS_E_NO_PROCESS;
  size_t bl = inf->arch->bkpt_len;
  uint8_t chunk[4096];
  while (len > 0) {
    size_t n = len < sizeof chunk ? len : sizeof chunk;
    memcpy(chunk, data, n);
    /* Written bytes under a breakpoint become its saved original; the trap stays in place. */
    for (int i = 0; i < inf->nbp; i++) {
      struct inf_bp *b = &inf->bp[i];
      for (size_t k = 0; k < bl; k++) {
        uint64_t a = b->addr + k;
        if (a >= addr && a < addr + n) {
          b->orig[k] = chunk[a - addr];
          if (!inf->vfork_lifts)
            chunk[a - addr] = inf->arch->bkpt[k];
        }
      }
      if (b->addr < addr + n && addr < b->addr + sizeof b->code)
        b->code_len = 0; /* the cached instructions changed */
    }
    int rc = raw_write(inf, addr, chunk, n);
    if (rc)
      return rc;
    addr += n;
    data = (const uint8_t *)data + n;
    len -= n;
  }
  return 0;
}

int inf_bp_insert(struct inferior *inf, uint64_t addr)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (b) {
    b->refs++;
    return 0;
  }
  if (inf->nbp >= INF_MAX_BPS)
    return RS_E_LIMIT;
  size_t bl = inf->arch->bkpt_len;
  uint8_t orig[4];
  long n = inf_read(inf, addr, orig, bl);
  if (n != (long)bl)
    return n < 0 ? (int)n : -EIO;
  /* During a vfork the trap goes in when the child stops sharing this memory (end_vfork). */
  int rc = inf->vfork_lifts ? 0 : raw_write(inf, addr, inf->arch->bkpt, bl);
  if (rc)
    return rc;
  b = &inf->bp[inf->nbp++];
  b->addr = addr;
  b->refs = 1;
  b->code_len = 0;
  b->quiet = 0;
  b->cap.on = 0;
  b->own_refs = 0;
  memcpy(b->orig, orig, bl);
  return 0;
}

int inf_bp_own_insert(struct inferior *inf, uint64_t addr)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (b) {
    b->own_refs++;
    return 0;
  }
  int rc = inf_bp_insert(inf, addr);
  if (rc)
    return rc;
  b = bp_find(inf, addr);
  b->refs = 0;
  b->own_refs = 1;
  return 0;
}

void inf_bp_own_release(struct inferior *inf, uint64_t addr)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (!b || b->own_refs == 0 || --b->own_refs > 0 || b->refs > 0)
    return;
  if (!inf->vfork_lifts)
    raw_write(inf, addr, b->orig, inf->arch->bkpt_len);
  *b = inf->bp[--inf->nbp];
}

int inf_bp_set_quiet(struct inferior *inf, uint64_t addr, int quiet)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (!b)
    return RS_E_NOT_FOUND;
  b->quiet = quiet;
  return 0;
}

int inf_bp_remove(struct inferior *inf, uint64_t addr)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (!b || b->refs == 0)
    return 0; /* like gdbserver: removing an unknown breakpoint succeeds */
  if (--b->refs > 0)
    return 0;
  if (b->own_refs > 0) { /* the agent's return breakpoints stay; the client's settings go with its last ref */
    b->quiet = 0;
    b->cap.on = 0;
    return 0;
  }
  int rc = inf->vfork_lifts ? 0 : raw_write(inf, addr, b->orig, inf->arch->bkpt_len);
  *b = inf->bp[--inf->nbp];
  return rc;
}

/* A breakpoint trap at addr with no breakpoint there now: true unless the program's own code holds a
 * breakpoint instruction at addr (then the trap is the program's and is reported). */
static int trapped_on_removed_bp(struct inferior *inf, uint64_t addr)
{
  uint8_t code[4];
  size_t bl = inf->arch->bkpt_len;
  return inf_read(inf, addr, code, bl) == (long)bl && memcmp(code, inf->arch->bkpt, bl) != 0;
}

static void remove_all_bps(struct inferior *inf)
{
  inf->cap.nw = 0; /* the watches' return breakpoints go with the rest */
  while (inf->nbp > 0) {
    inf->bp[0].refs = 1;
    inf->bp[0].own_refs = 0;
    inf_bp_remove(inf, inf->bp[0].addr);
  }
}

static uint64_t monotonic_ns(void) { return inf_monotonic_ns(); }

/* Children of the traced program (fork, vfork, clone into a copy of the memory) are not followed, as gdb's
 * default "detach-on-fork": the kernel attaches each one, stopped, so that its copy of memory can be cleaned
 * of our breakpoints before it runs a single instruction, and the agent then detaches it. Left with the
 * trap instructions in place and no tracer, the child would die of SIGTRAP at the first one it reached. */

/* One read is enough: the files read this way are small and the kernel makes them whole at open. */
size_t inf_read_proc(const char *path, char *buf, size_t len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);
  if (fd >= 0)
    close(fd);
  buf[n > 0 ? n : 0] = 0;
  return n > 0 ? (size_t)n : 0;
}

pid_t inf_task_tgid(pid_t tid)
{
  char path[64], text[512];
  snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
  if (!inf_read_proc(path, text, sizeof text))
    return 0;
  const char *p = strstr(text, "\nTgid:");
  return p ? (pid_t)atoi(p + 6) : 0;
}

/* Whether task b uses the same address space as task a (a clone with CLONE_VM): 1, 0, or 0 when the kernel
 * cannot tell (no kcmp), which is the common case of a clone without CLONE_VM. */
static int same_memory(pid_t a, pid_t b)
{
#ifdef SYS_kcmp
  return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
#else
  (void)a;
  (void)b;
  return 0;
#endif
}

/* Removes child from the list of new processes whose first stop was already collected; 1 if it was there. */
static int take_early_child(struct inferior *inf, pid_t child)
{
  for (int i = 0; i < nearly_child; i++)
    if (early_child[i] == child) {
      early_child[i] = early_child[--nearly_child];
      return 1;
    }
  return 0;
}

/* Lets the new process child run untraced. Unless it shares its parent's memory (vfork), the breakpoints
 * are first taken out of its copy of that memory, through its own /proc/PID/mem. */
/* Collects the first stop of the new process child; 0 when it is gone already. */
static int collect_child(struct inferior *inf, pid_t child)
{
  if (take_early_child(inf, child))
    return 1;
  /* Its first stop follows the parent's event at once; nothing else can be collected from it before. */
  int status;
  pid_t w;
  do
    w = waitpid(child, &status, __WALL);
  while (w < 0 && errno == EINTR);
  return w == child && WIFSTOPPED(status);
}

static void release_child(struct inferior *inf, pid_t child, int shares_memory)
{
  int cleaned = 0;
  if (!shares_memory && inf->nbp > 0) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)child);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    size_t bl = inf->arch->bkpt_len;
    for (int i = 0; fd >= 0 && i < inf->nbp; i++)
      if (pwrite(fd, inf->bp[i].orig, bl, (off_t)inf->bp[i].addr) == (ssize_t)bl)
        cleaned++;
    if (fd >= 0)
      close(fd);
    if (cleaned < inf->nbp)
      LOG_WARN("process %d: could not remove %d of %d breakpoints from its child %d", (int)inf->pid,
               inf->nbp - cleaned, inf->nbp, (int)child);
  }
  if (ptrace(PTRACE_DETACH, child, NULL, NULL) < 0)
    LOG_WARN("cannot detach from process %d: %s", (int)child, strerror(errno));
  else
    LOG_INFO("process %d started process %d: detached (%d breakpoints removed from its memory)", (int)inf->pid,
             (int)child, cleaned);
}

/* Writes the breakpoints' traps (armed) or original bytes into the process's memory, table unchanged. */
static void write_all_bps(struct inferior *inf, int armed)
{
  size_t bl = inf->arch->bkpt_len;
  for (int i = 0; i < inf->nbp; i++)
    raw_write(inf, inf->bp[i].addr, armed ? inf->arch->bkpt : inf->bp[i].orig, bl);
}

/* A vfork child runs in its parent's memory until it calls exec or exits (PTRACE_EVENT_VFORK_DONE in the
 * parent), so the breakpoints cannot be removed from the child alone: they leave the shared memory for that
 * time (and breakpoints the client places meanwhile only go into the table), then are put back. The vfork
 * parent thread is blocked in the kernel meanwhile; other threads of the program run on, and their hits in
 * that window are missed. */
static void begin_vfork(struct inferior *inf, struct inf_thread *t)
{
  if (t->in_vfork)
    return;
  t->in_vfork = 1;
  if (inf->vfork_lifts++ == 0)
    write_all_bps(inf, 0);
}

static void end_vfork(struct inferior *inf, struct inf_thread *t)
{
  if (!t->in_vfork)
    return;
  t->in_vfork = 0;
  if (--inf->vfork_lifts == 0)
    write_all_bps(inf, 1);
}

/* The process executed a new program (thread t reported it, now with the process id). The old image's
 * breakpoints are gone with it, the kernel ended every other thread, and /proc/PID/mem still refers to the
 * old memory: forget the first two and reopen the last. */
static void note_birth(struct inferior *inf, struct inf_thread *t);

static void on_exec(struct inferior *inf, struct inf_thread *t)
{
  pid_t keep = t->tid;
  for (int i = inf->nth - 1; i >= 0; i--)
    if (inf->th[i].tid != keep)
      remove_thread(inf, &inf->th[i]);
  t = inf_thread(inf, keep);
  t->exiting = 0;
  t->stepping = 0;
  t->in_vfork = 0;
  t->reported_bp = 0;
  t->stack_lo = t->stack_hi = 0;
  t->born = 1; /* the new program's first stack pointer: this stop's */
  note_birth(inf, t);
  t->pending = inf->report_exec ? INF_EV_EXEC : INF_EV_NONE;
  inf->vfork_lifts = 0;
  inf->vfork_parent = 0;
  inf->nbp = 0;
  inf->cap.nw = 0; /* their return breakpoints went with the old image */
  inf_cap_new_image(inf);
  if (inf->memfd >= 0)
    close(inf->memfd);
  int rc = open_mem(inf);
  if (rc)
    LOG_ERR("process %d: cannot open its memory after exec: %s", (int)inf->pid, strerror(-rc));
  LOG_INFO("process %d executed a new program; its breakpoints are gone", (int)inf->pid);
}

/* A thread's first stop: its stack pointer then is the top of its frames, which bounds the stack windows that
 * capture breakpoints record (the TLS or environment above it is of no use to an unwinder). */
static void note_birth(struct inferior *inf, struct inf_thread *t)
{
  if (!t->born)
    return;
  t->born = 0;
  struct ptarch_gregs *r = inf_gregs(inf, t);
  t->stack_top = r ? ptarch_sp(r) : 0;
}

/* Records what one wait status means; never resumes anything itself except to deliver signals
 * the client asked us to pass through, which are then remembered for the next resume. */
static void on_status(struct inferior *inf, pid_t tid, int status)
{
  struct inf_thread *t = inf_thread(inf, tid);
  if (!t && inf->route && inf->route(inf->procs_ctx, tid, status))
    return; /* another traced process's */
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    if (tid == inf->pid) {
      inf->exited = 1;
      inf->exit_status = status;
      inf->nth = 0;
    } else if (t) {
      end_vfork(inf, t);
      remove_thread(inf, t);
    }
    return;
  }
  if (!WIFSTOPPED(status))
    return;
  if (!t) {
    /* A new thread's first stop can arrive before its creator's clone event, and so can a new process's:
     * that one waits for its parent's event, which says whether it shares the parent's memory. */
    pid_t tgid = inf_task_tgid(tid);
    if (tgid != inf->pid) {
      if (tgid == 0)
        return;
      if (nearly_child < (int)(sizeof early_child / sizeof early_child[0]))
        early_child[nearly_child++] = tid;
      else
        LOG_WARN("too many new processes at once; process %d keeps its breakpoints", (int)tid);
      return;
    }
    t = add_thread(inf, tid, 0);
    if (!t)
      return;
    t->born = 1;
  }
  t->running = 0;
  t->stop_ns = monotonic_ns();
  /* Any ptrace stop clears a PTRACE_INTERRUPT still pending in the kernel ("any trap clears pending STOP
   * trap"), so the next stop_all must interrupt this thread again however this stop came about. An
   * interrupt that was sent while the thread sat in an unreported stop still fires after the resume: a
   * quiet PTRACE_EVENT_STOP that inf_poll and step_over resume from. */
  t->interrupted = 0;
  t->regs_valid = 0;
  t->regs_dirty = 0;
  note_birth(inf, t);
  int sig = WSTOPSIG(status), ev = status >> 16;
  switch (ev) {
  case PTRACE_EVENT_CLONE:
  case PTRACE_EVENT_FORK:
  case PTRACE_EVENT_VFORK: {
    unsigned long msg = 0;
    ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg);
    pid_t child = (pid_t)msg;
    /* A clone into the same memory is traced like a thread even outside the thread group: it meets the
     * same breakpoints. A clone into a copy of the memory is a new process (fork). */
    if (ev == PTRACE_EVENT_CLONE && (inf_task_tgid(child) == inf->pid || same_memory(tid, child))) {
      int stopped = take_early_child(inf, child);
      struct inf_thread *c = inf_thread(inf, child) ? NULL : add_thread(inf, child, !stopped);
      if (c && !stopped)
        c->born = 1; /* running until its initial stop arrives */
      return;
    }
    if (ev == PTRACE_EVENT_VFORK)
      begin_vfork(inf, t);
    if (!collect_child(inf, child))
      return; /* gone already */
    inf->fork_stack_top = t->stack_top;
    if (inf->adopt && inf->adopt(inf->procs_ctx, inf, child, ev == PTRACE_EVENT_VFORK) == 0) {
      t->pending = ev == PTRACE_EVENT_VFORK ? INF_EV_VFORK : INF_EV_FORK; /* reported: the client follows it */
      t->pending_child = child;
      return;
    }
    release_child(inf, child, ev == PTRACE_EVENT_VFORK);
    return;
  }
  case PTRACE_EVENT_VFORK_DONE:
    end_vfork(inf, t);
    if (inf->adopt)
      t->pending = INF_EV_VFORK_DONE;
    return;
  case PTRACE_EVENT_STOP:
    return;
  case PTRACE_EVENT_EXIT:
    t->exiting = 1;
    return;
  case PTRACE_EVENT_EXEC:
    on_exec(inf, t);
    return;
  default:
    break;
  }
  if (sig == SIGTRAP) {
    struct ptarch_gregs *r = inf_gregs(inf, t);
    /* A plain SIGTRAP stop of a thread that was not single-stepping, just past one of our inserted
     * breakpoints, is that breakpoint's trap: the siginfo is not read for it (one system call less per hit).
     * Only a SIGTRAP sent by kill(2) at the very moment the thread stands just past a breakpoint could be
     * mistaken; a single step's trap, which can end there, is told apart by t->stepping and asks the kernel. */
    int brk = r && !t->stepping && bp_find(inf, ptarch_pc(r) - inf->arch->pc_after_bkpt) != NULL;
    if (r && !brk) {
      siginfo_t si;
      memset(&si, 0, sizeof si);
      ptrace(PTRACE_GETSIGINFO, tid, NULL, &si);
      brk = si.si_code == SI_KERNEL || si.si_code == TRAP_BRKPT;
    }
    if (brk) {
      uint64_t a = ptarch_pc(r) - inf->arch->pc_after_bkpt;
      if (bp_find(inf, a)) {
        if (a != ptarch_pc(r)) {
          ptarch_set_pc(r, a);
          t->regs_dirty = 1; /* written at the resume, with the emulated step (regs_flush) */
        }
        t->pending = INF_EV_BKPT;
        t->pending_addr = a;
        t->stepping = 0;
        return;
      }
      if (!t->stepping && trapped_on_removed_bp(inf, a)) {
        /* The thread hit a breakpoint that the client removed before this stop was collected (the trap
         * was still queued in the kernel): re-execute the restored instruction and report nothing. */
        if (a != ptarch_pc(r)) {
          ptarch_set_pc(r, a);
          ptarch_set_gregs(tid, r);
        }
        return;
      }
    }
    if (t->stepping) {
      t->pending = INF_EV_STEP;
      t->stepping = 0;
      return;
    }
  }
  if (sig > 0 && sig < 65 && inf->pass_sig[sig]) {
    inf->th[tindex(inf, t)].deliver_sig = sig;
    return;
  }
  t->pending = INF_EV_SIGNAL;
  t->pending_sig = sig;
}

/* A vfork parent thread is blocked in the kernel until its child executes or exits: an interrupt does not stop
 * it before. When children are followed the child may itself be stopped by us, so waiting for the parent
 * could wait forever; it is left out (it stops at its PTRACE_EVENT_VFORK_DONE, which is then queued). */
static int unstoppable(const struct inferior *inf, const struct inf_thread *t)
{
  return t->exiting || (t->in_vfork && inf->adopt);
}

static int any_running(struct inferior *inf)
{
  for (int i = 0; i < inf->nth; i++)
    if (inf->th[i].running && !unstoppable(inf, &inf->th[i]))
      return 1;
  return 0;
}

/* Interrupts every running thread and waits until all are stopped, queueing what they report. */
static void stop_all(struct inferior *inf)
{
  for (int i = 0; i < inf->nth; i++) {
    struct inf_thread *t = &inf->th[i];
    if (t->running && !t->interrupted && !unstoppable(inf, t)) {
      if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) == 0)
        t->interrupted = 1;
    }
  }
  while (!inf->exited && any_running(inf)) {
    int status;
    pid_t tid = waitpid(-1, &status, __WALL);
    if (tid < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    on_status(inf, tid, status);
    /* Threads born while stopping start stopped; interrupt only those still running. */
    for (int i = 0; i < inf->nth; i++) {
      struct inf_thread *t = &inf->th[i];
      if (t->running && !t->interrupted && !unstoppable(inf, t) && ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) == 0)
        t->interrupted = 1;
    }
  }
}

static void fill_exit(struct inferior *inf, struct inf_stop *st)
{
  if (WIFEXITED(inf->exit_status)) {
    st->kind = INF_STOP_EXITED;
    st->sig = WEXITSTATUS(inf->exit_status);
  } else {
    st->kind = INF_STOP_KILLED;
    st->sig = WTERMSIG(inf->exit_status);
  }
  st->tid = inf->pid;
  st->swbreak = 0;
}

static int take_quiet_hit(struct inferior *inf, int i, struct inf_bp *b, int resume_now);
static int take_agent_hits(struct inferior *inf);

/* The quiet breakpoint thread t's queued event is a hit on, or NULL. */
static struct inf_bp *quiet_hit_of(struct inferior *inf, struct inf_thread *t)
{
  if (t->pending != INF_EV_BKPT)
    return NULL;
  struct inf_bp *b = bp_find(inf, t->pending_addr);
  return b && b->quiet && !inf_cap_owns(inf, t, b) ? b : NULL;
}

/* The breakpoint of thread t's queued hit when the agent captures it itself (rsprof-capture), or NULL. */
static struct inf_bp *agent_hit_of(struct inferior *inf, struct inf_thread *t)
{
  if (t->pending != INF_EV_BKPT)
    return NULL;
  struct inf_bp *b = bp_find(inf, t->pending_addr);
  return inf_cap_owns(inf, t, b) ? b : NULL;
}

static int take_agent_hit(struct inferior *inf, int i, struct inf_bp *b, int resume_now);

/* Turns thread t's queued event into the stop the client sees. Other threads' hits on quiet breakpoints
 * go into the quiet queue that this stop's reply carries (they step over them at the next resume). */
static void report(struct inferior *inf, struct inf_thread *t, struct inf_stop *st)
{
  for (int i = 0; i < inf->nth; i++) {
    if (&inf->th[i] == t)
      continue;
    struct inf_bp *b = agent_hit_of(inf, &inf->th[i]);
    if (b)
      take_agent_hit(inf, i, b, 0);
    else if ((b = quiet_hit_of(inf, &inf->th[i])) != NULL)
      take_quiet_hit(inf, i, b, 0);
  }
  st->kind = t->pending == INF_EV_EXEC ? INF_STOP_EXEC : INF_STOP_SIGNAL;
  if (t->pending == INF_EV_FORK || t->pending == INF_EV_VFORK || t->pending == INF_EV_VFORK_DONE)
    st->kind = t->pending == INF_EV_FORK ? INF_STOP_FORK : t->pending == INF_EV_VFORK ? INF_STOP_VFORK
                                                                                      : INF_STOP_VFORK_DONE;
  st->child = t->pending_child;
  st->tid = t->tid;
  st->swbreak = t->pending == INF_EV_BKPT;
  st->sig = t->pending == INF_EV_SIGNAL ? t->pending_sig : SIGTRAP;
  t->reported_bp = t->pending == INF_EV_BKPT ? t->pending_addr : 0;
  t->pending = INF_EV_NONE;
  inf->running = 0;
}

/* Picks a thread with a queued event, rotating the start so no thread's hits starve. Hits on quiet
 * breakpoints come last: reporting another event takes them into its reply instead (report()). */
static struct inf_thread *pick_pending(struct inferior *inf, int only_wanted)
{
  for (int pass = 0; pass < 2; pass++) {
    for (int k = 0; k < inf->nth; k++) {
      int i = (int)((report_rotor + (unsigned)k) % (unsigned)inf->nth);
      struct inf_thread *t = &inf->th[i];
      if (!t->pending || (only_wanted && !inf->th[i].want_run) || t->cap_parked || agent_hit_of(inf, t))
        continue; /* the agent's own hits are taken by take_agent_hits, never reported */
      /* A hit on a breakpoint the client removed meanwhile is void; the PC already points back at it. */
      if (t->pending == INF_EV_BKPT && !bp_find(inf, t->pending_addr)) {
        t->pending = INF_EV_NONE;
        continue;
      }
      if (pass == 0 && quiet_hit_of(inf, t))
        continue;
      report_rotor = (unsigned)i + 1;
      return t;
    }
  }
  return NULL;
}

/* A burst of capture stops is handled without going back to the server's event loop (whose epoll_wait, signalfd
 * read and draining wait4 would cost three system calls per stop): while every thread the client wants running
 * runs again after its hit, the next stop is waited for with a blocking wait4, for at most BURST_MS (a periodic
 * SIGALRM interrupts the wait) and BURST_STOPS stops. Anything else ends the burst and takes the ordinary path. */
#define BURST_MS 1
#define BURST_STOPS 512
#define BURST_BUF (64 * 1024) /* records waiting: the server's turn to send them */

static volatile sig_atomic_t burst_alarm;

static void on_burst_alarm(int sig)
{
  (void)sig;
  burst_alarm = 1;
}

static int all_wanted_running(const struct inferior *inf)
{
  for (int i = 0; i < inf->nth; i++)
    if (inf->th[i].want_run && !inf->th[i].running)
      return 0;
  return 1;
}

static void capture_burst(struct inferior *inf)
{
  static int handler_set;
  if (!handler_set) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_burst_alarm; /* no SA_RESTART: the signal ends a blocking wait4 with EINTR */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
      return;
    handler_set = 1;
  }
  if (!all_wanted_running(inf) || inf->cap.nparked || inf->cap.len >= BURST_BUF)
    return;
  /* Periodic, so an alarm that came just before the wait4 is followed by another within BURST_MS. */
  struct itimerval on = {{0, BURST_MS * 1000}, {0, BURST_MS * 1000}}, off = {{0, 0}, {0, 0}};
  burst_alarm = 0;
  if (setitimer(ITIMER_REAL, &on, NULL) != 0)
    return;
  for (int n = 0; n < BURST_STOPS && !burst_alarm; n++) {
    int status;
    pid_t tid = waitpid(-1, &status, __WALL);
    if (tid < 0)
      break; /* EINTR: the time is up */
    int mine = inf_thread(inf, tid) != NULL;
    on_status(inf, tid, status);
    if (!mine || inf->exited || !inf->running)
      break; /* another process's, a new thread's or the end: the ordinary path takes it */
    for (int i = 0; i < inf->nth; i++) {
      struct inf_bp *b = inf->th[i].want_run ? quiet_hit_of(inf, &inf->th[i]) : NULL;
      if (b)
        take_quiet_hit(inf, i, b, 1);
    }
    take_agent_hits(inf);
    if (inf->exited || !all_wanted_running(inf) || inf->cap.nparked || inf->cap.len >= BURST_BUF)
      break;
  }
  setitimer(ITIMER_REAL, &off, NULL);
}

static int inf_poll_(struct inferior *inf, struct inf_stop *st)
{
  int status;
  pid_t tid;
  while ((tid = waitpid(-1, &status, __WALL | WNOHANG)) > 0)
    on_status(inf, tid, status);
  if (!inf->running || inf->pid == 0)
    return 0;
  /* Hits on quiet breakpoints: recorded, stepped over and resumed at once, no stop. (A single step can
   * meet the process's end, so the exit check comes after.) */
  for (int i = 0; i < inf->nth; i++) {
    struct inf_bp *b = inf->th[i].want_run ? quiet_hit_of(inf, &inf->th[i]) : NULL;
    if (b)
      take_quiet_hit(inf, i, b, 1);
  }
  if (take_agent_hits(inf) && !inf->exited)
    capture_burst(inf);
  if (inf->exited) {
    fill_exit(inf, st);
    forget_process(inf);
    return 1;
  }
  struct inf_thread *t = pick_pending(inf, 1);
  if (t) {
    stop_all(inf);
    if (inf->exited) {
      fill_exit(inf, st);
      forget_process(inf);
      return 1;
    }
    t = pick_pending(inf, 1);
    if (t) {
      report(inf, t, st);
      return 1;
    }
  }
  /* Quiet stops (clone, thread birth, exit events, late interrupts, passed signals): keep going. */
  for (int i = 0; i < inf->nth; i++) {
    struct inf_thread *q = &inf->th[i];
    if (q->running || q->pending || !inf->th[i].want_run)
      continue;
    int sig = inf->th[i].deliver_sig;
    inf->th[i].deliver_sig = 0;
    regs_forget(q);
    if (ptrace(q->stepping ? PTRACE_SINGLESTEP : PTRACE_CONT, q->tid, NULL, (void *)(long)sig) == 0)
      q->running = 1;
  }
  return 0;
}

/* Nothing outside sees a register write still pending in the cache (regs_flush). */
int inf_poll(struct inferior *inf, struct inf_stop *st)
{
  int rc = inf_poll_(inf, st);
  regs_flush_all(inf);
  return rc;
}

static int inf_interrupt_(struct inferior *inf, struct inf_stop *st)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  stop_all(inf);
  if (inf->exited) {
    fill_exit(inf, st);
    forget_process(inf);
    return 0;
  }
  struct inf_thread *t = pick_pending(inf, 0);
  if (t) {
    report(inf, t, st);
    return 0;
  }
  st->kind = INF_STOP_SIGNAL;
  st->sig = SIGINT;
  st->tid = inf->nth ? inf->th[0].tid : inf->pid;
  st->swbreak = 0;
  inf->running = 0;
  return 0;
}

/* Nothing outside sees a register write still pending in the cache (regs_flush). */
int inf_interrupt(struct inferior *inf, struct inf_stop *st)
{
  int rc = inf_interrupt_(inf, st);
  regs_flush_all(inf);
  return rc;
}

/* Executes the original instruction under a breakpoint with a single step while every other thread
 * stays stopped. Returns 0 when the step completed, 1 when something else was queued instead. */
static int step_over(struct inferior *inf, struct inf_thread *t, uint64_t addr, int sig)
{
  struct inf_bp *b = bp_find(inf, addr);
  size_t bl = inf->arch->bkpt_len;
  raw_write(inf, addr, b->orig, bl);
  int result = 1;
  for (;;) {
    regs_forget(t);
    if (ptrace(PTRACE_SINGLESTEP, t->tid, NULL, (void *)(long)sig) < 0)
      break;
    sig = 0;
    int status;
    pid_t w;
    do
      w = waitpid(t->tid, &status, __WALL);
    while (w < 0 && errno == EINTR);
    if (w < 0)
      break;
    t->regs_valid = 0;
    t->regs_dirty = 0;
    t->interrupted = 0; /* as in on_status: this stop ended any pending interrupt */
    if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP)
      continue; /* a leftover interrupt fired first: step again */
    if (WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP && (status >> 16) == 0) {
      result = 0;
      break;
    }
    on_status(inf, t->tid, status);
    break;
  }
  if (!inf->exited && !inf->vfork_lifts && bp_find(inf, addr))
    raw_write(inf, addr, inf->arch->bkpt, bl);
  return result;
}

static int emu_write(void *ctx, uint64_t addr, const void *data, size_t len)
{
  return inf_write(ctx, addr, data, len);
}

/* Moves thread t, standing on breakpoint b, past the instruction the breakpoint displaced by emulating it.
 * Returns 1 when done, 0 when that instruction must be single-stepped instead. */
static int emulate_displaced(struct inferior *inf, struct inf_thread *t, struct inf_bp *b)
{
  struct ptarch_gregs *r = inf_gregs(inf, t);
  if (!r)
    return 0;
  struct ptarch_gregs before = *r;
  if (b->code_len == 0) { /* read once per breakpoint, not at every hit */
    long got = inf_read(inf, b->addr, b->code, sizeof b->code);
    b->code_len = got > 0 ? (int)got : 0;
  }
  if (b->code_len > 0 && ptarch_emulate(r, b->code, (size_t)b->code_len, emu_write, inf) == 1 &&
      ptarch_set_gregs(t->tid, r) == 0) {
    t->regs_dirty = 0;
    return 1;
  }
  uint64_t slot, target;
  if (b->code_len > 0 && ptarch_indirect_jump_slot(r, b->code, (size_t)b->code_len, &slot) &&
      inf_read(inf, slot, &target, 8) == 8) {
    ptarch_set_pc(r, target);
    if (ptarch_set_gregs(t->tid, r) == 0) {
      t->regs_dirty = 0;
      return 1;
    }
  }
  if (t->regs_dirty) /* the rewound PC, for the single step that goes instead */
    ptarch_set_gregs(t->tid, &before);
  t->regs_dirty = 0;
  t->regs_valid = 0;
  return 0;
}

/* Records thread i's hit on quiet breakpoint b in the queue. With resume_now the thread is moved past the
 * breakpoint and continued: by emulating the displaced instruction, or, in a program with no other thread
 * that could run past the restored instruction meanwhile, by a single step. When neither is possible (or
 * the queue is full) nothing is taken and the hit stays to be reported like any other. Without resume_now
 * the thread stays stopped and steps over at the next resume. Returns 1 when taken. */
static int take_quiet_hit(struct inferior *inf, int i, struct inf_bp *b, int resume_now)
{
  struct inf_thread *t = &inf->th[i];
  struct ptarch_gregs *r = inf_gregs(inf, t);
  if (!r || inf->nquiet == INF_MAX_QUIET_HITS)
    return 0;
  inf->quiet[inf->nquiet] = (struct inf_quiet_hit){t->tid, b->addr, ptarch_sp(r), ptarch_retval(r), t->stop_ns};
  if (!resume_now) {
    t->reported_bp = b->addr;
    t->pending = INF_EV_NONE;
    inf->nquiet++;
    return 1;
  }
  int sig = inf->th[i].deliver_sig; /* a signal to pass on goes in with the step or the continue */
  if (emulate_displaced(inf, t, b)) {
    t->pending = INF_EV_NONE;
  } else if (inf->nth == 1) {
    t->pending = INF_EV_NONE;
    inf->th[i].deliver_sig = 0;
    int stepped = step_over(inf, t, b->addr, sig) == 0;
    sig = 0;
    if (!stepped) {
      inf->nquiet++; /* the step met a signal or an exit, now queued for the client */
      return 1;
    }
  } else {
    return 0;
  }
  inf->th[i].deliver_sig = 0;
  regs_forget(t);
  if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) == 0)
    t->running = 1;
  inf->nquiet++;
  return 1;
}

/* Ends thread t's wait for room in the record buffer, counting how long the program was held. */
static void unpark(struct inferior *inf, struct inf_thread *t)
{
  if (!t->cap_parked)
    return;
  t->cap_parked = 0;
  if (--inf->cap.nparked == 0)
    inf->cap.held_ns += monotonic_ns() - inf->cap.held_since;
}

/* Thread i's queued hit on b is the agent's to capture (rsprof-capture): records it and, with resume_now, moves
 * the thread past the breakpoint and continues it — by emulation, or by a single step with every other thread
 * stopped — without any message to the client. Without resume_now (another thread's stop is being reported)
 * the thread steps over at the next resume. A record that does not fit leaves the thread stopped, waiting for
 * room (flow control: the program is held, nothing is dropped). Returns 1 when taken, 0 when parked or left
 * to the quiet-breakpoint path. */
static int take_agent_hit(struct inferior *inf, int i, struct inf_bp *b, int resume_now)
{
  struct inf_thread *t = &inf->th[i];
  uint64_t addr = b->addr;
  enum inf_cap_result rc = inf_cap_record(inf, t, b, resume_now ? INF_CAP_SOFT : INF_CAP_BUF);
  if (rc == INF_CAP_NO_ROOM) {
    if (!t->cap_parked) {
      t->cap_parked = 1;
      inf->cap.parked++;
      if (inf->cap.nparked++ == 0)
        inf->cap.held_since = monotonic_ns();
    }
    return 0;
  }
  unpark(inf, t);
  b = bp_find(inf, addr); /* recording may have removed a return breakpoint */
  if (rc == INF_CAP_NOT_MINE) /* a watched return recorded at a client's own breakpoint: that goes on as before */
    return b && b->quiet ? take_quiet_hit(inf, i, b, resume_now) : 0;
  t->pending = INF_EV_NONE;
  if (!resume_now) {
    t->reported_bp = b ? addr : 0;
    return 1;
  }
  int sig = inf->th[i].deliver_sig;
  inf->th[i].deliver_sig = 0;
  if (b && !emulate_displaced(inf, t, b)) {
    pid_t tid = t->tid;
    if (inf->nth > 1) {
      stop_all(inf); /* nothing may run past the restored instruction meanwhile */
      if (inf->exited || !(t = inf_thread(inf, tid)))
        return 1;
    }
    if (step_over(inf, t, addr, sig) != 0)
      return 1; /* the step met a signal or an exit, now queued for the client */
    sig = 0;
  }
  regs_forget(t);
  if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) == 0)
    t->running = 1;
  return 1;
}

/* Takes every queued hit the agent captures itself, for threads the client wants running; again while one was
 * taken, since stopping the others for a single step can queue new hits and reorder the thread table. */
static int take_agent_hits(struct inferior *inf)
{
  int taken = 0;
  for (int progress = 1; progress && !inf->exited;) {
    progress = 0;
    for (int i = 0; i < inf->nth && !inf->exited; i++) {
      struct inf_bp *b = inf->th[i].want_run ? agent_hit_of(inf, &inf->th[i]) : NULL;
      if (b && !inf->th[i].running && take_agent_hit(inf, i, b, 1)) {
        progress = 1;
        taken++;
      }
    }
  }
  return taken;
}

/* vCont semantics: the leftmost action whose thread matches applies (-1 matches every thread). */
static const struct inf_resume *action_for(const struct inf_resume *acts, int n, pid_t tid)
{
  for (int i = 0; i < n; i++)
    if (acts[i].tid == tid || acts[i].tid == -1)
      return &acts[i];
  return NULL;
}

static int inf_resume_(struct inferior *inf, const struct inf_resume *acts, int n, struct inf_stop *st)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  inf->ran = 1;
  /* Refused before anything moves: once some threads run, a PTRACE_CONT failing on a bad signal
   * would leave the others stopped while the process counts as running. */
  for (int i = 0; i < n; i++)
    if (acts[i].sig < 0 || acts[i].sig > 64)
      return RS_E_BAD_ARG;
  for (int i = 0; i < inf->nth; i++) {
    const struct inf_resume *a = action_for(acts, n, inf->th[i].tid);
    inf->th[i].want_run = a && a->act != INF_ACT_STOP;
    inf->th[i].sig_sent = 0;
  }
  /* A queued event of a thread being resumed is reported now, without running anything. */
  struct inf_thread *t = pick_pending(inf, 1);
  if (t) {
    report(inf, t, st);
    return 1;
  }
  for (int i = 0; i < inf->nth; i++) {
    t = &inf->th[i];
    if (!inf->th[i].want_run || !t->reported_bp)
      continue;
    uint64_t addr = t->reported_bp;
    t->reported_bp = 0;
    struct ptarch_gregs *r = inf_gregs(inf, t);
    if (!r || ptarch_pc(r) != addr || !bp_find(inf, addr))
      continue;
    const struct inf_resume *a = action_for(acts, n, t->tid);
    if (a->act == INF_ACT_CONT && emulate_displaced(inf, t, bp_find(inf, addr)))
      continue;
    int sig = a->sig;
    if (step_over(inf, t, addr, sig) != 0 || a->act == INF_ACT_STEP) {
      /* The client's single step is complete, or the step met a signal or exit: report it. */
      if (inf->exited) {
        inf->running = 1;
        return inf_poll(inf, st) == 1 ? 1 : RS_E_EXITED;
      }
      if (!t->pending) {
        t->pending = INF_EV_STEP;
      }
      report(inf, t, st);
      return 1;
    }
    /* The signal went in with the step; it must not be delivered a second time below. */
    inf->th[i].deliver_sig = 0;
    inf->th[i].sig_sent = 1;
  }
  for (int i = 0; i < inf->nth; i++) {
    t = &inf->th[i];
    if (!inf->th[i].want_run || t->running)
      continue;
    const struct inf_resume *a = action_for(acts, n, t->tid);
    int sig = inf->th[i].sig_sent ? 0 : a->sig ? a->sig : inf->th[i].deliver_sig;
    inf->th[i].deliver_sig = 0;
    t->stepping = a->act == INF_ACT_STEP;
    regs_forget(t);
    if (ptrace(t->stepping ? PTRACE_SINGLESTEP : PTRACE_CONT, t->tid, NULL, (void *)(long)sig) == 0)
      t->running = 1;
  }
  inf->running = 1;
  take_agent_hits(inf); /* hits that waited for room while the program was stopped */
  return 0;
}

/* Nothing outside sees a register write still pending in the cache (regs_flush). */
int inf_resume(struct inferior *inf, const struct inf_resume *acts, int n, struct inf_stop *st)
{
  int rc = inf_resume_(inf, acts, n, st);
  regs_flush_all(inf);
  return rc;
}

/* Kills a child that is in a ptrace stop and reaps it. A tracee stopped at PTRACE_EVENT_EXIT (a
 * failed exec's _exit) is not woken by SIGKILL alone: it must be resumed to finish dying. */
static void kill_stopped_child(pid_t pid)
{
  int status;
  kill(pid, SIGKILL);
  ptrace(PTRACE_CONT, pid, NULL, NULL);
  for (;;) {
    pid_t w = waitpid(pid, &status, __WALL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 || WIFEXITED(status) || WIFSIGNALED(status))
      return;
    ptrace(PTRACE_CONT, pid, NULL, NULL);
  }
}

int inf_launch(struct inferior *inf, char *const argv[], int disable_aslr)
{
  /* gate: the child waits on it until it is seized. report: a failed exec sends its errno through it
   * (close-on-exec, so a successful exec leaves it empty). */
  int gate[2], report[2];
  if (pipe2(gate, O_CLOEXEC) < 0)
    return -errno;
  if (pipe2(report, O_CLOEXEC) < 0) {
    int e = -errno;
    close(gate[0]);
    close(gate[1]);
    return e;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = -errno;
    close(gate[0]);
    close(gate[1]);
    close(report[0]);
    close(report[1]);
    return e;
  }
  if (pid == 0) {
    /* Wait until the agent has seized us, so the exec itself is already traced. */
    char c;
    close(gate[1]);
    close(report[0]);
    while (read(gate[0], &c, 1) < 0 && errno == EINTR)
      ;
    /* The program must not inherit the agent's own signal set-up (SIGPIPE is ignored there). */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (disable_aslr)
      personality(ADDR_NO_RANDOMIZE);
    for (char **e = inf->launch_env; e && *e; e++)
      putenv(*e);
    inf_rec_child_env(inf);
    execvp(argv[0], argv);
    int e = errno;
    while (write(report[1], &e, sizeof e) < 0 && errno == EINTR)
      ;
    _exit(127);
  }
  close(gate[0]);
  close(report[1]);
  inf_rec_launched(inf, pid); /* before the gate opens: the recorder checks the ring's pid */
  int rc = 0;
  if (ptrace(PTRACE_SEIZE, pid, NULL, (void *)(long)(OPTS_COMMON | PTRACE_O_EXITKILL)) < 0) {
    rc = -errno;
    close(gate[1]);
    close(report[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return rc;
  }
  close(gate[1]);
  int status;
  pid_t w;
  while ((w = waitpid(pid, &status, __WALL)) < 0 && errno == EINTR)
    ;
  if (w < 0 || !WIFSTOPPED(status) || (status >> 16) != PTRACE_EVENT_EXEC) {
    rc = w < 0 ? -errno : -ENOEXEC;
    if (w == pid) {
      if (WIFSTOPPED(status))
        kill_stopped_child(pid);
      /* The child is gone, so its end of the report pipe is closed: this read cannot block. */
      int e = 0;
      ssize_t n;
      while ((n = read(report[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
      if (n == (ssize_t)sizeof e && e > 0)
        rc = -e;
    } else {
      kill(pid, SIGKILL);
    }
    close(report[0]);
    LOG_DEBUG("cannot start %s: %s", argv[0], strerror(-rc));
    return rc;
  }
  close(report[0]);
  inf->pid = pid;
  inf->ran = 0;
  inf->nquiet = 0;
  inf_cap_reset(inf);
  inf->attached = 0;
  inf->exited = 0;
  inf->running = 0;
  inf->nth = 0;
  inf->nbp = 0;
  struct inf_thread *first = add_thread(inf, pid, 0);
  if (first) { /* stopped at the exec: the program's first stack pointer */
    first->born = 1;
    note_birth(inf, first);
  }
  rc = open_mem(inf);
  if (rc) {
    inf_kill(inf);
    return rc;
  }
  LOG_INFO("started %s as process %d", argv[0], (int)pid);
  return 0;
}

/* Seizes every task listed under /proc/PID/task until a pass finds no new ones (threads may be
 * created while we scan). Returns the number of threads seized or a negative code. */
static int seize_tasks(struct inferior *inf, pid_t pid)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  int total = 0;
  for (;;) {
    DIR *d = opendir(path);
    if (!d)
      return -errno;
    int added = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      pid_t tid = (pid_t)atoi(de->d_name);
      if (tid <= 0 || inf_thread(inf, tid))
        continue;
      if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)OPTS_COMMON) < 0) {
        if (tid == pid) {
          int e = -errno;
          closedir(d);
          return e;
        }
        continue; /* it exited meanwhile */
      }
      struct inf_thread *t = add_thread(inf, tid, 1);
      if (t && ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) == 0)
        t->interrupted = 1;
      added++;
    }
    closedir(d);
    total += added;
    if (!added)
      return total;
  }
}

int inf_attach(struct inferior *inf, pid_t pid)
{
  inf->pid = pid;
  inf->ran = 0;
  inf->nquiet = 0;
  inf_cap_reset(inf);
  inf->attached = 1;
  inf->exited = 0;
  inf->running = 0;
  inf->nth = 0;
  inf->nbp = 0;
  int rc = seize_tasks(inf, pid);
  if (rc < 0) {
    inf->pid = 0;
    inf->nth = 0;
    return rc;
  }
  stop_all(inf);
  /* The attach stops are not events the client asked about. */
  for (int i = 0; i < inf->nth; i++)
    inf->th[i].pending = INF_EV_NONE;
  if (inf->exited) {
    forget_process(inf);
    return RS_E_EXITED;
  }
  rc = open_mem(inf);
  if (rc) {
    inf_detach(inf);
    return rc;
  }
  LOG_INFO("attached to process %d (%d threads)", (int)pid, inf->nth);
  return 0;
}

/* Whether a SIGTRAP waits, queued, for thread tid (/proc/.../status SigPnd, ShdPnd). */
static int sigtrap_pending(pid_t pid, pid_t tid)
{
  char path[96], text[2048];
  snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
  if (!inf_read_proc(path, text, sizeof text))
    return 0;
  static const char *const keys[] = {"\nSigPnd:", "\nShdPnd:"};
  for (int k = 0; k < 2; k++) {
    const char *p = strstr(text, keys[k]);
    if (p && (strtoull(p + 8, NULL, 16) & (1ull << (SIGTRAP - 1))))
      return 1;
  }
  return 0;
}

/* A thread that executed a trap just as an interrupt stopped it may still have the SIGTRAP queued: detached,
 * it would die of it (a program that hits breakpoints at a high rate, as under agent-side capture, meets this
 * sooner or later). Let the signal arrive while traced — on_status backs the PC up to the instruction the
 * removed breakpoint held — so that the detach swallows it. */
static void take_queued_trap(struct inferior *inf, struct inf_thread *t)
{
  for (int tries = 0; tries < 4 && sigtrap_pending(inf->pid, t->tid); tries++) {
    regs_forget(t);
    if (ptrace(PTRACE_CONT, t->tid, NULL, NULL) < 0)
      return;
    int status;
    pid_t w;
    do
      w = waitpid(t->tid, &status, __WALL);
    while (w < 0 && errno == EINTR);
    if (w < 0 || !WIFSTOPPED(status))
      return;
    on_status(inf, t->tid, status);
    t->pending = INF_EV_NONE;
  }
}

int inf_detach(struct inferior *inf)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  if (inf->running)
    stop_all(inf);
  remove_all_bps(inf);
  inf_rec_disable(inf); /* the recorder stays loaded and only forwards from now on */
  for (int i = 0; i < inf->nth; i++) {
    struct inf_thread *t = &inf->th[i];
    if (t->pending != INF_EV_SIGNAL && !inf->th[i].deliver_sig)
      take_queued_trap(inf, t);
    /* Signals the program was about to receive are handed back to it, not swallowed. */
    int sig = t->pending == INF_EV_SIGNAL ? t->pending_sig : inf->th[i].deliver_sig;
    regs_flush(t);
    ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)sig);
  }
  LOG_INFO("detached from process %d", (int)inf->pid);
  forget_process(inf);
  return 0;
}

void inf_kill(struct inferior *inf)
{
  if (inf->pid == 0)
    return;
  pid_t pid = inf->pid;
  kill(pid, SIGKILL);
  /* Reap every thread: with __WALL the leader's status arrives last. */
  for (;;) {
    int status;
    pid_t w = waitpid(-1, &status, __WALL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (w == pid && (WIFEXITED(status) || WIFSIGNALED(status))) {
      inf->exit_status = status;
      break;
    }
    if (!inf_thread(inf, w) && w != pid && inf->route && inf->route(inf->procs_ctx, w, status))
      continue; /* another traced process's */
    if (WIFSTOPPED(status))
      ptrace(PTRACE_CONT, w, NULL, NULL);
  }
  inf->exited = 1;
  forget_process(inf);
}

void inf_on_status(struct inferior *inf, pid_t tid, int status)
{
  on_status(inf, tid, status);
  regs_flush_all(inf);
}

void inf_stop_all(struct inferior *inf)
{
  if (inf->pid == 0)
    return;
  stop_all(inf);
  regs_flush_all(inf);
  inf->running = 0;
}

int inf_adopt_child(struct inferior *child, struct inferior *parent, pid_t pid, int vfork)
{
  child->memfd = -1;
  child->arch = parent->arch;
  child->launch_env = parent->launch_env;
  child->pid = pid;
  child->attached = parent->attached;
  child->report_exec = parent->report_exec;
  memcpy(child->pass_sig, parent->pass_sig, sizeof child->pass_sig);
  child->route = parent->route;
  child->adopt = parent->adopt;
  child->procs_ctx = parent->procs_ctx;
  /* Call numbers of the child's records must not meet the parent's: the client pairs by them too. */
  child->cap.seq = (uint64_t)pid << 40;
  if (vfork) {
    child->vfork_parent = parent->pid; /* its memory is the parent's, traps lifted: no table of its own */
  } else {
    memcpy(child->bp, parent->bp, sizeof parent->bp[0] * (size_t)parent->nbp);
    child->nbp = parent->nbp;
    for (int i = 0; i < child->nbp; i++)
      child->bp[i].own_refs = 0; /* the parent's return watches stay the parent's */
    /* The agent's own return breakpoints of the parent's calls are in the copy of the memory too: take out
     * those no client breakpoint shares. */
    int rc = open_mem(child);
    if (rc)
      return rc;
    for (int i = child->nbp - 1; i >= 0; i--)
      if (child->bp[i].refs == 0) {
        raw_write(child, child->bp[i].addr, child->bp[i].orig, child->arch->bkpt_len);
        child->bp[i] = child->bp[--child->nbp];
      }
  }
  if (child->memfd < 0) {
    int rc = open_mem(child);
    if (rc)
      return rc;
  }
  struct inf_thread *t = add_thread(child, pid, 0);
  if (!t)
    return RS_E_LIMIT;
  /* Its frames are the forking thread's, down to fork(): the same top bounds its stack windows. (A vfork child
   * runs on the parent's stack until its exec, which sets a new top.) */
  t->stack_top = parent->fork_stack_top;
  LOG_INFO("process %d started process %d: following it", (int)parent->pid, (int)pid);
  return 0;
}

void inf_release(struct inferior *inf) { forget_process(inf); }
