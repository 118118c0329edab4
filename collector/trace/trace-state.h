/* The tracing session's state, shared by the files that make up the session (not by tracing modules). */
#ifndef RSPROF_COL_TRACE_STATE_H
#define RSPROF_COL_TRACE_STATE_H

#include <stdio.h>

#include "capture-codec.h"

#include "profile-write.h"
#include "trace.h"
#include "u64map.h"

#define TRACE_MAX_METRICS 16
#define TRACE_MAX_BP_OWNERS 4
#define TRACE_MAX_MODULES 512
#define TRACE_MAX_TRACERS 8

struct trace_bp_owner {
  trace_bp_fn fn;
  void *data;
  int refs;
  int capture;                     /* registered with trace_break_capture */
  struct trace_capture_spec spec;  /* ... and this spec */
};

/* A breakpoint operation asked for while a streamed event's handlers run (the program is running, so no
 * request can go out): sent at the next stop. */
struct trace_deferred_op {
  uint64_t addr;
  int op; /* enum in breakpoints.c */
};

struct trace_bp {
  uint64_t addr;
  struct trace_bp_owner owners[TRACE_MAX_BP_OWNERS];
  int nowners;
  unsigned idle_hits; /* hits in a row while parked: stops bought for nothing */
  int quiet;          /* the agent records its hits without stopping (rsprof-quietbreak) */
  int used_stack;     /* its last hit's handlers read the stack: fetch the window with the registers */
  int virtual_bp;     /* a return the agent watches itself (rsprof-capture): in the table, not in the target */
  int inprocess;      /* a function the recorder in the program reports (QRsprofRecord): virtual too */
  int capture;        /* armed as a capture breakpoint in the agent */
  uint32_t capture_id;
  struct trace_capture_spec cspec; /* what it is armed with (the owners' specs merged) */
};

struct trace_loaded {
  char *remote;   /* path on the target */
  uint64_t bias;
  struct col_module *module;
};

struct trace {
  const struct col_options *opt;
  struct rspc *c;
  struct binfind *bf;
  struct target *target;
  const struct arch_desc *arch;
  struct col_modmap *map;
  struct unw_ctx *unw;
  struct cct *cct;

  struct trace_loaded loaded[TRACE_MAX_MODULES];
  size_t nloaded;
  int watching_r_brk;

  struct {
    const struct tracer_module *mod;
    void *state;
  } mods[TRACE_MAX_TRACERS];
  size_t nmods;
  struct profile_metric metrics[TRACE_MAX_METRICS];
  const char *metric_titles[TRACE_MAX_METRICS]; /* text summary section, or NULL for none */
  size_t nmetrics;

  struct trace_bp *bps;   /* slots; bp_index maps an address to its slot */
  size_t nbps, bps_cap;
  size_t *free_slots;     /* slots of removed breakpoints, reused before the table grows */
  size_t nfree_slots;
  size_t nparked;         /* breakpoints still inserted with no owner (see trace_unbreak) */
  struct u64map bp_index;

  uint8_t *stack_buf;     /* stack_alloc bytes, grown on demand up to opt->stack_bytes */
  size_t stack_alloc;
  struct u64map stack_end; /* tid -> end of its readable stack, once a window ran past it */
  uint64_t *pcs;          /* opt->max_frames */
  uint32_t hit_node;      /* context of the current hit, once captured */
  int hit_node_valid;
  int hit_stack_valid;    /* stack_buf holds the current hit's window: [hit_stack_base, + hit_stack_len) */
  int hit_stack_whole;    /* ... and it is all there is: opt->stack_bytes, or up to the end of the stack */
  int hit_stack_used;     /* the current hit's handlers asked for its stack */
  uint64_t hit_stack_base;
  size_t hit_stack_len;
  size_t window;          /* stack bytes taken first at each hit; doubles (up to opt->stack_bytes) when
                           * unwinds often need more, so shallow programs move a fraction of the window */
  unsigned window_hits, window_short; /* unwinds in the current period, and those that needed more */
  size_t stop_window;     /* what the agent sends with each stop (rsprof-stopstack), 0 when it sends none */
  uint64_t window_refills; /* hits whose first window was too short for the unwind */
  int64_t g_thread;       /* thread selected for 'g' */

  FILE *stacks_out;
  double start_ms;
  uint64_t events;
  uint64_t breakpoint_stops; /* every stop at one of our breakpoints, parked ones included: the tracing cost */
  uint64_t quiet_stops;      /* ... of which the agent handled alone (quiet breakpoints) */
  struct rspc_quiet_hit *quiet; /* the current stop's quiet hits, copied out of its reply */
  size_t nquiet, quiet_cap;
  int in_quiet_hit;          /* running a quiet hit's handlers: the program has gone on, nothing to read */
  int agent_times;           /* stop replies carry the agent's clock (rsprof-stoptime) */
  double agent_offset_ms;    /* agent clock (ms) + this = trace_elapsed_ms scale; set at the first such stop */
  int have_agent_offset;
  uint64_t unwound_stacks;   /* stacks unwound (one per hit that asked for its context) */
  uint64_t truncated_stacks; /* ... that did not reach the outermost frame */
  uint64_t truncated_frames; /* ... of which because they were deeper than --max-frames */
  size_t truncated_window;   /* the most stack bytes a window-truncated one had */
  int progress;
  double last_progress_ms;
  uint64_t last_progress_events;
  int signal_to_deliver;  /* a signal that arrived while stepping over a breakpoint */
  int interrupting;        /* we interrupted the program to end the run */
  int probing;             /* we interrupted it to see whether the server is alive; its stop is not the program's */
  int program_ended;
  int exit_code;
  int term_signal;
  int vfork_lifted;       /* breakpoints out of the memory a vfork child shares, until the parent's vforkdone */
  uint64_t children_released; /* child processes detached with our breakpoints removed (fork events) */

  /* Agent-side capture (rsprof-capture, stream.c). */
  int agent_capture;         /* capture breakpoints' events stream from the agent */
  int inprocess;             /* the agent's recorder runs in the program (--capture inprocess) */
  const char *inprocess_mods[TRACE_MAX_TRACERS]; /* modules whose events the recorder captured */
  size_t ninprocess_mods;
  uint64_t inprocess_fallbacks; /* functions the recorder could not stand for: capture breakpoints instead */
  int in_stream_event;       /* running a streamed event's handlers: the program has gone on */
  int stream_entry_paired;   /* ... an entry whose return the agent watches: a break at stream_ret_addr is virtual */
  uint64_t stream_ret_addr;
  int stream_window_end;     /* the streamed window stops where the thread's stack does */
  const uint8_t *event_mem;  /* memory the record carries: [event_mem_addr, + event_mem_len) */
  uint64_t event_mem_addr;
  size_t event_mem_len;
  uint32_t next_capture_id;
  struct u64map capture_addr; /* capture id -> breakpoint address */
  struct u64map ret_mem_addr; /* call seq -> address of the memory its return record carries */
  size_t capture_stack;      /* stack bytes each capture breakpoint records */
  struct trace_deferred_op *deferred;
  size_t ndeferred, deferred_cap;
  int stream_error;          /* a malformed batch: the run ends with this error */
  uint64_t stream_entries, stream_returns, stream_batches, stream_bytes, stream_unwound;
  uint64_t stream_batches_seen; /* batches when the event loop last looked (proof of life) */
  uint64_t agent_events, agent_held_ns, agent_parked; /* from the agent's last stats record */
  uint64_t agent_calls, agent_stacks, agent_raw, agent_resets; /* ... compact calls, stacks, raw windows, resets */
  /* Compact records (common/capture-codec.h): the reader's delta state, the interned stacks, and per paired
   * call (by seq) where its return goes. */
  struct capc_state codec;
  uint64_t *sd_pcs;          /* the stacks' PCs end to end */
  uint64_t *sd_decode;       /* CAPC_MAX_FRAMES: a definition being read */
  size_t sd_npcs, sd_pcs_cap;
  struct trace_stack_def { size_t off, n; int truncated; } *sd;
  size_t nsd, sd_cap;
  struct u64map ret_addr_of, ret_sp_of; /* compact paired call seq -> return address, stack pointer after it */
  const uint64_t *given_pcs; /* the current hit's stack as the agent unwound it (compact call), or NULL */
  size_t given_npcs;
  int given_truncated;
  uint64_t stream_calls, stream_agent_unwound, stream_stack_defs, stream_resets;
  int agent_tables;          /* rsprof-tables: the agent unwinds with the tables uploaded (table-upload.c) */
  uint64_t tables_uploaded, table_bytes, tables_refused, modules_walked;
  uint64_t rx_at_start;      /* bytes received before tracing started */

  /* Processes (processes.c). Each process image traced is a session of its own — the program's first, each
   * child followed (--follow-fork yes), each image after an exec — sharing the connection, the file finder,
   * the tree and the listing with the first one, the root, which owns them and the list of every session. */
  struct trace *root;        /* the first session (itself there) */
  struct trace **procs;      /* root: every session, the root first; index = the image's space in the tree */
  size_t nprocs, procs_cap;
  int follow;                /* root: children are followed (the server reports forks, --follow-fork yes) */
  int64_t pid;               /* the process this session traces */
  int64_t parent_pid;        /* the process it was forked from (0: none, or it is the program) */
  int vfork_child;           /* a vfork child: untraced (its parent's memory) until it executes */
  int ended;                 /* enum trace_proc_end: the image is gone */
  int end_status, end_signal; /* its exit status or the signal that killed it */
  uint32_t cct_root;         /* its process root in the tree (CCT_ROOT for the first image) */
  uint64_t space;            /* its index in root->procs */
  uint64_t inherited[4];     /* memory totals the parent had at the fork: allocs, frees, bytes allocated, freed */
  uint64_t own[7];           /* its own memory totals, kept before the root adds them up: the same four, leaked
                              * bytes and blocks, unknown frees */
  int has_heap;              /* ... which a module keeps (memory, memtrace) */
  uint64_t own_events;       /* its own events, likewise */
  int64_t selected_pid;      /* root: the process the server's general thread (Hg) is in */
  struct u64map tid_pid;     /* root: thread id -> process id, for the threads seen */
};

#endif
