/* Process control for one traced program: launch or attach, threads, software breakpoints, all-stop
 * resume and stop, memory and registers. Everything here runs on the agent's single thread. */
#ifndef RSPROF_AGENT_INFERIOR_H
#define RSPROF_AGENT_INFERIOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capture-codec.h"
#include "ptrace-arch.h"
#include "rec-state.h"
#include "stack-intern.h"
#include "table-arena.h"
#include "unwind-table.h"

#define INF_MAX_THREADS 1024
#define INF_MAX_BPS 4096
#define INF_MAX_QUIET_HITS 512
#define INF_CAP_MAX_STACK (128u << 10) /* the largest stack window a capture breakpoint records */
#define INF_CAP_MAX_MEM 256           /* the most memory bytes a capture breakpoint records */

enum inf_event { INF_EV_NONE, INF_EV_BKPT, INF_EV_STEP, INF_EV_SIGNAL, INF_EV_EXEC,
                 INF_EV_FORK, INF_EV_VFORK, INF_EV_VFORK_DONE /* only when children are followed (inf->adopt) */ };

struct inf_thread {
  pid_t tid;
  int running;          /* resumed and not yet seen stopped */
  int interrupted;      /* a PTRACE_INTERRUPT is outstanding */
  int stepping;         /* resumed with PTRACE_SINGLESTEP */
  int exiting;          /* reported PTRACE_EVENT_EXIT: once resumed it only dies (a leader stays a
                           zombie until the whole process ends), so never wait for it to stop */
  int pending;          /* enum inf_event not yet reported to the client */
  int pending_sig;
  uint64_t pending_addr; /* breakpoint address of a pending INF_EV_BKPT */
  uint64_t reported_bp;  /* breakpoint this thread last reported a hit at (step over it on resume) */
  uint64_t stop_ns;      /* CLOCK_MONOTONIC when the agent saw the thread's latest stop */
  int cap_parked;        /* stopped at a capture breakpoint whose event waits for room (flow control) */
  uint64_t stack_lo, stack_hi; /* the mapping its stack pointer was last seen in (0, 0: not looked up) */
  uint64_t stack_top;    /* its stack pointer when it began (exec, clone): its frames all lie below (0: unknown) */
  int born;              /* created while traced: its next stop is its first, which sets stack_top */
  int in_vfork;          /* reported PTRACE_EVENT_VFORK, PTRACE_EVENT_VFORK_DONE still to come */
  pid_t pending_child;   /* the new process of a pending INF_EV_FORK / INF_EV_VFORK */
  unsigned char want_run; /* inf_resume() hands this to the poll loop: the client wants the thread running */
  unsigned char sig_sent; /* during inf_resume: its signal already went in with a step */
  int deliver_sig;       /* a signal to pass on at its next resume (QPassSignals) */
  int regs_valid;
  int regs_dirty; /* regs changed in the cache only (a breakpoint's PC rewind), not yet written to the thread */
  struct ptarch_gregs regs;
};

struct inf_bp {
  uint64_t addr;
  int refs;
  uint8_t orig[4];
  uint8_t code[16]; /* the original instructions from addr on, for step-over emulation */
  int code_len;     /* 0: not read yet (or written since) */
  int quiet;        /* hits are recorded and the thread goes on, unreported (rsprof-quietbreak) */
  struct inf_cap_spec {   /* rsprof-capture: what an event at this breakpoint records (on: it is one) */
    int on;
    uint32_t id;          /* the client's number for the breakpoint, echoed in each record */
    uint64_t regmask;     /* registers recorded, by gdb number */
    uint32_t stack_len;   /* stack bytes recorded from sp */
    int ret;              /* pair with the function's return: a one-shot return breakpoint per call */
    int mem_reg;          /* -1, or memory recorded at the entry from this register's value + mem_off */
    uint64_t mem_off;
    uint32_t mem_len;
    int rmem_reg;         /* -1, or memory recorded at the return from (this register at entry) + rmem_off */
    uint64_t rmem_off;
    uint32_t rmem_len;
    int compact;          /* the client reads compact records (rsprof-tables): send kind 3 */
    uint64_t argmask;     /* ... with these registers (the arguments) */
    int unwind;           /* ... and the stack unwound with the uploaded tables */
  } cap;
  int own_refs;     /* the agent's own one-shot return breakpoints here (capture), beside the client's refs */
  uint32_t walk_read; /* stack bytes the last walk from here read (capture): the next one reads as many at once */
};

/* A hit on a quiet breakpoint, kept until the next stop reply carries it to the client. */
struct inf_quiet_hit {
  pid_t tid;
  uint64_t pc, sp, retval;
  uint64_t ns; /* when the agent saw it (CLOCK_MONOTONIC) */
};

/* What the client is told after a stop. */
enum inf_stop_kind { INF_STOP_NONE, INF_STOP_SIGNAL, INF_STOP_EXITED, INF_STOP_KILLED,
                     INF_STOP_EXEC /* the process executed a new program (SIGTRAP; only with report_exec) */,
                     INF_STOP_FORK, INF_STOP_VFORK, INF_STOP_VFORK_DONE /* children followed (inf->adopt) */ };
struct inf_stop {
  enum inf_stop_kind kind;
  int sig;      /* signal number, or the exit status for INF_STOP_EXITED */
  pid_t tid;    /* reporting thread */
  int swbreak;  /* stopped by one of our software breakpoints */
  pid_t child;  /* INF_STOP_FORK, INF_STOP_VFORK: the new process */
};

/* One resume request: what a thread (or every other thread when tid is -1) does. */
enum inf_action { INF_ACT_STOP, INF_ACT_CONT, INF_ACT_STEP };
struct inf_resume {
  pid_t tid;
  enum inf_action act;
  int sig;
};

/* A call whose return a capture breakpoint pairs with its entry: the agent's one-shot return breakpoint. */
struct inf_cap_watch {
  pid_t tid;
  uint32_t id;
  uint64_t ret_addr, entry_sp, sp_after, seq;
  uint64_t mem_addr; /* what the return records (rmem), read there */
  uint32_t mem_len;
  int compact;       /* the entry went out as a compact call: its return is a compact return record */
};

#define INF_CAP_WATCHES 4096
#define INF_CAP_BUF (512u << 10)  /* records not yet sent */
#define INF_CAP_SOFT (384u << 10) /* a hit that would fill past this waits (the thread stays stopped) */
#define INF_CAP_STACKS CAPC_MAX_STACKS /* interned stacks before the table starts again (a reset record) */
#define INF_CAP_STACK_SLOTS 32768
#define INF_CAP_STACK_PCS CAPC_MAX_PCS /* their PCs, 512 KiB */
#define INF_CAP_STICKY 64         /* return sites whose breakpoint stays between calls */
#define INF_CAP_FRAMES CAPC_MAX_FRAMES /* the most frames an agent walk records (deeper: marked truncated) */

/* The capture state (rsprof-capture): records waiting to be sent and the calls whose return is watched. */
struct inf_capture {
  uint8_t buf[INF_CAP_BUF];
  size_t len;
  struct inf_cap_watch w[INF_CAP_WATCHES];
  int nw;
  uint64_t seq;         /* the last call sequence number given */
  uint64_t events;      /* records made */
  uint64_t parked;      /* hits that had to wait for room */
  uint64_t held_ns;     /* time some thread waited for room, summed over the periods */
  uint64_t held_since;  /* start of the current period (nparked > 0) */
  int nparked;
  uint64_t watch_overflows; /* watches dropped for room (the oldest: a return never seen, longjmp) */
  /* Compact records (capture-codec.h): the writer's delta state and the interned stacks it refers to. */
  struct capc_state codec;
  int need_reset;           /* the reader's state may differ (a reset of ours): send a reset record first */
  struct sintern stacks;
  struct inf_cap_store *store; /* the stack table's storage and the walk's buffers, mapped at first use */
  /* Return sites whose breakpoint the agent keeps inserted between calls (an own reference of their own), so
   * that a paired call costs no breakpoint write; a site reached without a watched return is let go and kept
   * out (strays), since then every pass would stop. Oldest first. */
  uint64_t sticky[INF_CAP_STICKY], strays[INF_CAP_STICKY];
  int nsticky, nstrays;
  uint64_t calls;           /* compact call records made */
  uint64_t stacks_interned; /* stack definitions sent */
  uint64_t stack_resets;    /* times the stack table was full and started again */
  uint64_t raw_windows;     /* entries sent with a raw stack window for the host to unwind */
  uint64_t walk_fallbacks;  /* ... of which because the agent's walk could not finish */
  /* The process's module map from the table arena, copied when its generation changes. */
  struct utab_module mods[TARENA_MAX_MODS];
  struct utab tabs[TARENA_MAX_MODS];
  size_t nmods;
  uint32_t mods_gen;
  pid_t mods_pid;
  int mods_valid;
};

/* Mapped when capture first needs it (inf_init's memset of struct inferior would otherwise make all of it
 * resident in every session); its pages become resident as they are used. */
struct inf_cap_store {
  uint32_t stack_slots[INF_CAP_STACK_SLOTS];
  struct sintern_stack stack_list[INF_CAP_STACKS];
  uint64_t stack_pcs[INF_CAP_STACK_PCS];
  uint8_t win[INF_CAP_MAX_STACK]; /* the stack window a walk reads from */
  uint64_t walk_pcs[INF_CAP_FRAMES];
};

struct inferior {
  char **launch_env; /* NAME=VALUE strings added to a launched program's environment (NULL-terminated) */
  pid_t pid;          /* 0 when no process */
  int attached;       /* attached (detach on disconnect) rather than launched (kill) */
  int memfd;          /* /proc/PID/mem */
  int running;        /* the client resumed it and no stop was reported yet */
  const struct arch_desc *arch;
  struct inf_thread th[INF_MAX_THREADS];
  int nth;
  struct inf_bp bp[INF_MAX_BPS];
  int nbp;
  struct inf_quiet_hit quiet[INF_MAX_QUIET_HITS]; /* oldest first; the server empties it into stop replies */
  int nquiet;
  unsigned char pass_sig[65]; /* signals delivered without stopping (QPassSignals) */
  int exit_status;            /* wait status once the process is gone */
  int exited;
  int report_exec;            /* report an exec as INF_STOP_EXEC (the client asked for exec-events) */
  int vfork_lifts;            /* threads in a vfork: breakpoints are out of the shared memory meanwhile */
  pid_t vfork_parent;         /* a vfork child not yet past its exec: it runs in that process's memory */
  pid_t gone_pid;             /* the process id it had, once gone (its last records may still wait to be sent) */
  uint64_t fork_stack_top;    /* the forking thread's stack_top, for the child's thread (its stack is a copy) */
  /* Children followed (processes.c sets these): route hands a wait status of a task this process does not
   * own to the process that does (1: taken); adopt makes a new process a traced one of its own, stopped
   * (0), else it is cleaned of the breakpoints and let go. */
  int (*route)(void *ctx, pid_t tid, int status);
  int (*adopt)(void *ctx, struct inferior *parent, pid_t child, int vfork);
  void *procs_ctx;
  struct inf_capture cap;
  struct inf_recorder rec; /* in-process capture: the recorder's ring (inf-recorder.c) */
  int ran;                 /* the process has been resumed since the launch or attach */
};

/* Prepares an empty inferior. */
void inf_init(struct inferior *inf);

/* Starts argv[0] (searched in PATH) with argv, traced, and stops it at its first instruction.
 * Returns 0 or a negative code. */
int inf_launch(struct inferior *inf, char *const argv[], int disable_aslr);

/* Attaches to every thread of pid and stops them. Returns 0 or a negative code. */
int inf_attach(struct inferior *inf, pid_t pid);

/* Removes breakpoints and lets the process run free. Returns 0 or a negative code. */
int inf_detach(struct inferior *inf);

/* Kills the process and reaps it. */
void inf_kill(struct inferior *inf);

/* Resumes threads per the n actions (tid -1 is the default action). Returns 1 when a stop is
 * already known (a queued event of a resumed thread, or a completed step) and filled into *st,
 * 0 when the process is now running, or a negative code. */
int inf_resume(struct inferior *inf, const struct inf_resume *acts, int n, struct inf_stop *st);

/* Collects pending wait statuses without blocking. Returns 1 when a stop to report happened (all
 * threads are then stopped and *st is filled), 0 otherwise. */
int inf_poll(struct inferior *inf, struct inf_stop *st);

/* Stops every thread (the client's interrupt) and describes the stop in *st. Returns 0 or a negative code. */
int inf_interrupt(struct inferior *inf, struct inf_stop *st);

/* Records one wait status of a task of this process (what inf_poll does with each). */
void inf_on_status(struct inferior *inf, pid_t tid, int status);
/* Stops every running thread without reporting anything: what they report stays queued for a later resume
 * (another process's stop is being reported). */
void inf_stop_all(struct inferior *inf);
/* Makes child (calloc'd or inf_init'ed, empty) the traced process pid that parent just forked, stopped at its
 * first stop: a copy of the parent's breakpoint table, capture specs included, as its memory is a copy — or,
 * for a vfork child (which runs in the parent's memory until it execs), none. Returns 0 or a negative code. */
int inf_adopt_child(struct inferior *child, struct inferior *parent, pid_t pid, int vfork);
/* Frees a process's descriptors (after it exited, was killed or detached). */
void inf_release(struct inferior *inf);

/* Thread lookup by id, or NULL. */
struct inf_thread *inf_thread(struct inferior *inf, pid_t tid);

/* Reads len bytes at addr into out, showing original bytes where breakpoints are inserted.
 * Returns the number of bytes read (may be short) or a negative code when nothing was readable. */
long inf_read(struct inferior *inf, uint64_t addr, void *out, size_t len);
/* Writes memory, keeping inserted breakpoints in place. Returns 0 or a negative code. */
int inf_write(struct inferior *inf, uint64_t addr, const void *data, size_t len);

/* Fetches (cached) general registers of a stopped thread. Returns NULL on failure. */
struct ptarch_gregs *inf_gregs(struct inferior *inf, struct inf_thread *t);

/* Inserts or removes one reference to a software breakpoint at addr. Return 0 or a negative code. */
int inf_bp_insert(struct inferior *inf, uint64_t addr);
int inf_bp_remove(struct inferior *inf, uint64_t addr);
/* Makes the breakpoint at addr quiet (1) or reported (0). A quiet hit is recorded in inf->quiet and the
 * thread continues at once when the displaced instruction can be emulated and the queue has room;
 * otherwise the hit is reported like any other. Returns 0 or RS_E_NOT_FOUND (no breakpoint there). */
int inf_bp_set_quiet(struct inferior *inf, uint64_t addr, int quiet);

/* rsprof-capture. Makes the inserted breakpoint at addr a capture breakpoint with spec (spec->on set), or
 * an ordinary one again (spec NULL). Returns 0, RS_E_NOT_FOUND (no breakpoint there) or RS_E_BAD_ARG. */
int inf_cap_set(struct inferior *inf, uint64_t addr, const struct inf_cap_spec *spec);
/* Forgets every watch and record (a new client, a new process). Agent-owned return breakpoints go too. */
void inf_cap_reset(struct inferior *inf);
/* Drops the first n bytes of recorded events (sent), then lets threads that waited for room go on at the next
 * inf_poll. */
void inf_cap_consume(struct inferior *inf, size_t n);
/* Whether some thread waits for room in the record buffer. */
int inf_cap_waiting(const struct inferior *inf);

enum inf_cap_result { INF_CAP_NOT_MINE, INF_CAP_DONE, INF_CAP_NO_ROOM };

/* One complete captured call whose stack is already unwound (an agent walk, or a call the in-process recorder
 * saw), for inf_cap_emit_call. Pointers are borrowed for the call only. */
struct inf_cap_call {
  pid_t tid;
  uint32_t id;            /* the client's breakpoint id (QRsprofCapture ID) */
  uint64_t ns;            /* CLOCK_MONOTONIC at the entry */
  uint64_t regmask;       /* which registers regs[] holds, by gdb number, ascending (the arguments) */
  const uint64_t *regs;   /* one value per set bit of regmask, packed */
  const uint64_t *pcs;    /* the stack, innermost first: pcs[0] the function's entry, then return addresses - 1 */
  size_t npcs;            /* 1..CAPC_MAX_FRAMES */
  int truncated;          /* the walk ended before the outermost frame */
  int has_ret;            /* the call has returned: ret_ns, retval and ret_mem are valid */
  uint64_t ret_ns, retval;
  const uint8_t *ret_mem; /* memory at the return (posix_memalign's *memptr), ret_mem_len bytes */
  uint32_t ret_mem_len;
  /* Optional (zero when not known): */
  uint64_t sp;            /* the stack pointer at the entry (orders nested calls of a thread) */
  uint64_t ra;            /* the return address, when the stack has fewer than two frames */
  const uint8_t *mem;     /* memory at the entry (QRsprofCapture's m: item), mem_len bytes */
  uint32_t mem_len;
  int mem_fault;          /* some of the memory asked for was unreadable */
};
/* Appends the records of call c — a stack definition first when its stack is new, a reset first when the
 * stack table is full (it then starts again) — to inf->cap's buffer when they fit below limit bytes. Returns
 * INF_CAP_DONE, or INF_CAP_NO_ROOM with nothing written (also for a call the records cannot hold: no frame,
 * more than CAPC_MAX_FRAMES frames or CAPC_MAX_MEM bytes of memory). */
enum inf_cap_result inf_cap_emit_call(struct inferior *inf, const struct inf_cap_call *c, size_t limit);

/* Between inferior.c and inf-capture.c (the process-control layer's own use). */
/* Thread t stands on breakpoint b (its registers valid): records what the agent captures there (an entry, or
 * the return of a watched call) into inf->cap.buf when it fits below limit bytes. INF_CAP_DONE: recorded, or
 * an agent-owned return breakpoint hit by another call (nothing to record); the thread is to step over and
 * go on. INF_CAP_NO_ROOM: nothing changed. INF_CAP_NOT_MINE: an ordinary or quiet breakpoint (a watched
 * return there is recorded first). */
enum inf_cap_result inf_cap_record(struct inferior *inf, struct inf_thread *t, struct inf_bp *b, size_t limit);
/* The process runs a new program (exec): its module map in the table arena is emptied until the client sends
 * the new one, so no walk uses the old image's tables. */
void inf_cap_new_image(struct inferior *inf);
/* Whether a queued hit of t on b is the agent's to take (capture breakpoint, or an agent-owned return). */
int inf_cap_owns(struct inferior *inf, struct inf_thread *t, const struct inf_bp *b);
/* The agent's own references to a breakpoint (inserted when the first is taken, removed with the last and no
 * client reference). Return 0 or a negative code. */
int inf_bp_own_insert(struct inferior *inf, uint64_t addr);
void inf_bp_own_release(struct inferior *inf, uint64_t addr);
struct inf_bp *inf_bp_find(struct inferior *inf, uint64_t addr);
uint64_t inf_monotonic_ns(void);
/* The thread group (process) a task belongs to, from /proc/TID/status; 0 when the task is gone. */
pid_t inf_task_tgid(pid_t tid);
/* Reads the start of a small /proc file (whatever fits in len - 1 bytes) into buf, NUL-terminated.
 * Returns the length read, or 0 when the file cannot be read (a task that is gone). */
size_t inf_read_proc(const char *path, char *buf, size_t len);

/* ---- in-process capture (inf-recorder.c) ---- */

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
