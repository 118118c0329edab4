/* The processes of a trace (--follow-fork yes): one session per process image — the program, each child the
 * server reports forked, each image after an exec — found by process or thread id, selected on the server
 * before a session's requests, and added up for the summaries. */
#ifndef RSPROF_COL_PROCESSES_H
#define RSPROF_COL_PROCESSES_H

#include <stdint.h>

#include "trace.h"

struct json_out;
struct sym_frame;

enum trace_proc_end { TRACE_PROC_LIVE, TRACE_PROC_EXITED, TRACE_PROC_KILLED, TRACE_PROC_EXECED,
                      TRACE_PROC_DETACHED };

/* Makes root (connected, its target loaded) the first session: the program's. Decides whether children are
 * followed (--follow-fork yes and a server that reports forks with multiprocess) and warns when they cannot
 * be. Returns 0 or -ENOMEM. */
int trace_procs_init(struct trace *root);
/* The live session of process pid, or NULL. */
struct trace *trace_proc_of_pid(struct trace *root, int64_t pid);
/* The live session thread tid belongs to (as seen at stops and forks), else the session of the process
 * whose id tid is, else root. */
struct trace *trace_proc_of_tid(struct trace *root, int64_t tid);
/* A stop of thread tid of process pid was reported: the server's general thread is that one now. */
void trace_proc_stopped(struct trace *root, int64_t pid, int64_t tid);
/* Selects tr's process on the server (Hg pPID.0) unless it is selected already. Returns 0 or an error. */
int trace_proc_select(struct trace *tr);
/* Parent forked (or vforked) process child, stopped: a session for it, which for a fork starts as a copy of
 * the parent's (the same image and blocks; its breakpoints placed again, the server's copies kept) and for a
 * vfork waits for the child's exec. Returns 0 or an error (the child is then detached). */
int trace_proc_fork(struct trace *parent, int64_t child, int vfork);
/* tr's process executed a new program: tr's image ends, and a new session traces the new one from its first
 * instruction (modules, breakpoints). *out is that session. Returns 0 or an error. */
int trace_proc_exec(struct trace *tr, struct trace **out);
/* tr's process is gone (how, status or signal). Returns how many sessions are still live. */
int trace_proc_end(struct trace *tr, enum trace_proc_end how, int status, int sig);
/* Live sessions. */
int trace_procs_live(const struct trace *root);
/* Every live session, root first, for fn; stops at the first nonzero result and returns it. */
int trace_procs_each(struct trace *root, int (*fn)(struct trace *tr, void *ctx), void *ctx);
/* Before the outputs: finishes the children's modules, adds their counters and totals into root, and keeps
 * each image's own figures for trace_procs_summary_*. */
void trace_procs_finish(struct trace *root);
/* The "processes" part of the JSON summary, and lines for the text one (nothing with a single image). */
void trace_procs_summary_json(struct trace *root, struct json_out *j);
void trace_procs_summary_text(struct trace *root, FILE *out);
/* Symbolizes pc of image space, and names its process (profile_info's callbacks; ctx is root). */
int trace_procs_symbolize(void *ctx, uint64_t space, uint64_t pc, struct sym_frame *frames, int max, int *n);
void trace_procs_name(void *ctx, uint64_t space, int64_t *pid, const char **program);
/* Frees every session but root's own state. */
void trace_procs_free(struct trace *root);
/* Frees what a session has of its own process image: the tracing modules' state, target model, module map,
 * loaded modules, breakpoint table and buffers (root's too, at the end of a run). */
void trace_image_state_free(struct trace *s);

#endif
