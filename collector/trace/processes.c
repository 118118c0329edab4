/* Sessions per process image: the program's own (the root), a session for each child the server reports forked
 * when children are followed, and a new session whenever a process executes a new program. Each session has the
 * image's target model, module map, breakpoint table and tracing modules' state; they share the connection,
 * the file finder, the tree (each under its own PROCESS root) and the listing. */
#include "processes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "breakpoints.h"
#include "buf.h"
#include "cct.h"
#include "errors.h"
#include "frames.h"
#include "heap.h"
#include "libraries.h"
#include "log.h"
#include "modmap.h"
#include "module.h"
#include "rsp-client.h"
#include "summary.h"
#include "target.h"
#include "trace-state.h"
#include "unwind.h"

int trace_procs_init(struct trace *root)
{
  root->root = root;
  root->pid = root->target ? root->target->pid : 0;
  root->cct_root = CCT_ROOT;
  root->space = 0;
  root->selected_pid = root->pid;
  u64map_init(&root->tid_pid);
  struct trace **p = rs_grow(root->procs, &root->procs_cap, 1, sizeof *p, 8);
  if (!p)
    return -ENOMEM;
  root->procs = p;
  root->procs[0] = root;
  root->nprocs = 1;
  const struct rspc_features *f = rspc_features(root->c);
  root->follow = root->opt->follow_fork && f->fork_events && f->multiprocess;
  if (root->opt->follow_fork && !root->follow)
    LOG_WARN("--follow-fork yes: the server does not report forks (%s in its qSupported reply): the program's "
             "children are not traced (as with --follow-fork no)",
             !f->fork_events ? "no fork-events+" : "no multiprocess+");
  else if (root->follow)
    LOG_INFO("child processes are followed: each is traced under its own PROCESS root");
  return 0;
}

struct trace *trace_proc_of_pid(struct trace *root, int64_t pid)
{
  for (size_t i = 0; i < root->nprocs; i++)
    if (root->procs[i]->pid == pid && root->procs[i]->ended == TRACE_PROC_LIVE)
      return root->procs[i];
  return NULL;
}

struct trace *trace_proc_of_tid(struct trace *root, int64_t tid)
{
  uint64_t pid;
  struct trace *s = NULL;
  if (root->nprocs > 1 && u64map_get(&root->tid_pid, (uint64_t)tid, &pid))
    s = trace_proc_of_pid(root, (int64_t)pid);
  if (!s && root->nprocs > 1)
    s = trace_proc_of_pid(root, tid);
  return s ? s : root;
}

void trace_proc_stopped(struct trace *root, int64_t pid, int64_t tid)
{
  if (!root->follow || pid <= 0)
    return;
  root->selected_pid = pid;
  if (tid > 0)
    u64map_put(&root->tid_pid, (uint64_t)tid, (uint64_t)pid);
}

int trace_proc_select(struct trace *tr)
{
  struct trace *root = tr->root ? tr->root : tr;
  if (!root->follow || root->selected_pid == tr->pid)
    return 0;
  int rc = rspc_select_thread(tr->c, 'g', tr->pid, 0);
  if (rc)
    return rc;
  root->selected_pid = tr->pid;
  for (size_t i = 0; i < root->nprocs; i++)
    root->procs[i]->g_thread = 0; /* whatever thread a session selected last is not selected now */
  return 0;
}

void trace_image_state_free(struct trace *s)
{
  for (size_t k = 0; k < s->nmods; k++)
    if (s->mods[k].mod->destroy)
      s->mods[k].mod->destroy(s->mods[k].state);
  s->nmods = 0;
  if (s->unw)
    unw_ctx_free(s->unw);
  if (s->map)
    col_modmap_free(s->map);
  for (size_t i = 0; i < s->nloaded; i++) {
    col_module_close(s->loaded[i].module);
    free(s->loaded[i].remote);
  }
  if (s->target)
    target_free(s->target);
  s->unw = NULL;
  s->map = NULL;
  s->target = NULL;
  s->nloaded = 0;
  u64map_free(&s->bp_index);
  u64map_free(&s->stack_end);
  u64map_free(&s->capture_addr);
  u64map_free(&s->ret_mem_addr);
  free(s->deferred);
  free(s->bps);
  free(s->free_slots);
  free(s->stack_buf);
  free(s->quiet);
  free(s->pcs);
}

static void session_free(struct trace *s)
{
  trace_image_state_free(s);
  u64map_free(&s->tid_pid);
  free(s);
}

/* A new session for process pid, sharing root's connection, files, tree and listing, with the tracing modules
 * started afresh (they register the same metrics in the same order as root's). */
static int new_session(struct trace *root, int64_t pid, struct trace **out)
{
  const struct col_options *o = root->opt;
  struct trace **p = rs_grow(root->procs, &root->procs_cap, root->nprocs + 1, sizeof *p, 8);
  if (!p)
    return -ENOMEM;
  root->procs = p;
  if (root->nprocs >= 0xffff)
    return RS_E_LIMIT; /* spaces go into the top bits of the profile writer's pc keys */
  struct trace *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->opt = o;
  s->c = root->c;
  s->bf = root->bf;
  s->arch = root->arch;
  s->stacks_out = root->stacks_out;
  s->start_ms = root->start_ms;
  u64map_init(&s->bp_index);
  u64map_init(&s->stack_end);
  u64map_init(&s->capture_addr);
  u64map_init(&s->ret_mem_addr);
  u64map_init(&s->tid_pid);
  s->stack_alloc = root->stack_alloc;
  s->stack_buf = malloc(s->stack_alloc ? s->stack_alloc : 1);
  s->pcs = malloc((o->max_frames ? o->max_frames : 1) * sizeof *s->pcs);
  int rc = !s->stack_buf || !s->pcs ? -ENOMEM : col_modmap_new(&s->map);
  if (!rc)
    rc = unw_ctx_new(&s->unw);
  s->window = root->window;
  s->capture_stack = root->capture_stack;
  s->stop_window = root->stop_window;
  s->agent_capture = root->agent_capture;
  s->agent_tables = root->agent_tables; /* the agent walks the child's stacks with the tables it has */
  s->agent_times = root->agent_times;
  s->agent_offset_ms = root->agent_offset_ms;
  s->have_agent_offset = root->have_agent_offset;
  s->root = root;
  s->pid = pid;
  s->space = root->nprocs;
  for (size_t k = 0; rc == 0 && k < root->nmods; k++) {
    s->mods[k].mod = root->mods[k].mod;
    rc = s->mods[k].mod->init(s, &s->mods[k].state);
    if (rc == 0)
      s->nmods++;
  }
  if (rc == 0 && s->nmetrics != root->nmetrics)
    rc = RS_E_BAD_ARG;
  s->cct = root->cct; /* after the modules registered their metrics, which must come before a tree */
  if (rc == 0)
    rc = cct_add_process_root(root->cct, s->space, &s->cct_root);
  if (rc) {
    session_free(s);
    return rc;
  }
  root->procs[root->nprocs++] = s;
  *out = s;
  return 0;
}

static struct heap *session_heap(struct trace *s)
{
  for (size_t k = 0; k < s->nmods; k++)
    if (s->mods[k].mod->heap_of)
      return s->mods[k].mod->heap_of(s->mods[k].state);
  return NULL;
}

/* Reads the image's target model and sets up its modules, as the program's own session did at the start. */
static int load_image(struct trace *s)
{
  int rc = trace_proc_select(s);
  if (rc == 0)
    rc = target_load_process(s->c, s->bf, s->pid, &s->target);
  if (rc)
    return rc;
  rc = trace_libs_discover(s);
  if (rc)
    LOG_WARN("process %lld: library discovery: %s", (long long)s->pid, rs_strerror(rc));
  return 0;
}

int trace_proc_fork(struct trace *parent, int64_t child, int vfork)
{
  struct trace *root = parent->root, *s;
  u64map_put(&root->tid_pid, (uint64_t)child, (uint64_t)child);
  int rc = new_session(root, child, &s);
  if (rc)
    return rc;
  s->parent_pid = parent->pid;
  if (vfork) { /* it runs in the parent's memory: nothing of its own to trace until it executes */
    s->vfork_child = 1;
    LOG_INFO("process %lld vforked process %lld: traced from its exec on", (long long)parent->pid, (long long)child);
    return 0;
  }
  struct heap *h = session_heap(s), *ph = session_heap(parent);
  if (h && ph && (rc = heap_fork(h, ph, s->inherited)) != 0)
    return rc;
  for (int i = 0; i < 4; i++)
    s->inherited[i] += parent->inherited[i];
  rc = load_image(s);
  if (rc) {
    trace_proc_end(s, TRACE_PROC_DETACHED, 0, 0);
    return rc;
  }
  LOG_INFO("process %lld forked process %lld: following it", (long long)parent->pid, (long long)child);
  return 0;
}

int trace_proc_exec(struct trace *tr, struct trace **out)
{
  struct trace *root = tr->root, *s;
  *out = tr;
  trace_bp_forget_all(tr); /* the server dropped them with the old image */
  tr->ended = TRACE_PROC_EXECED;
  root->selected_pid = tr->pid; /* the exec stop's */
  int rc = new_session(root, tr->pid, &s);
  if (rc)
    return rc;
  s->parent_pid = tr->parent_pid;
  *out = s;
  rc = load_image(s);
  if (rc)
    return rc;
  LOG_INFO("process %lld executed %s: tracing the new program", (long long)s->pid,
           s->target->exec_path ? s->target->exec_path : "a new program");
  return 0;
}

int trace_procs_live(const struct trace *root)
{
  int n = 0;
  for (size_t i = 0; i < root->nprocs; i++)
    n += root->procs[i]->ended == TRACE_PROC_LIVE;
  return n;
}

int trace_proc_end(struct trace *tr, enum trace_proc_end how, int status, int sig)
{
  tr->ended = how;
  tr->end_status = status;
  tr->end_signal = sig;
  return trace_procs_live(tr->root);
}

int trace_procs_each(struct trace *root, int (*fn)(struct trace *tr, void *ctx), void *ctx)
{
  for (size_t i = 0; i < root->nprocs; i++) {
    if (root->procs[i]->ended != TRACE_PROC_LIVE)
      continue;
    int rc = fn(root->procs[i], ctx);
    if (rc)
      return rc;
  }
  return 0;
}

void trace_procs_finish(struct trace *root)
{
  for (size_t i = 0; i < root->nprocs; i++) {
    struct trace *s = root->procs[i];
    for (size_t k = 0; k < s->nmods && s->ended != TRACE_PROC_EXECED; k++) /* an exec ends blocks, leaks none */
      if (s->mods[k].mod->finish)
        s->mods[k].mod->finish(s, s->mods[k].state);
    s->own_events = s->events;
    const struct heap *h = session_heap(s);
    if (h) {
      uint64_t own[7] = {h->allocs, h->frees, h->bytes_allocated, h->bytes_freed, h->leaked_bytes, h->leaked_blocks,
                         h->unknown_frees};
      memcpy(s->own, own, sizeof own);
      s->has_heap = 1;
    }
  }
  struct heap *rh = session_heap(root);
  for (size_t i = 1; i < root->nprocs; i++) {
    struct trace *s = root->procs[i];
    const struct heap *h = session_heap(s);
    if (rh && h)
      heap_absorb(rh, h);
    root->events += s->events;
    root->breakpoint_stops += s->breakpoint_stops;
    root->quiet_stops += s->quiet_stops;
    root->unwound_stacks += s->unwound_stacks;
    root->truncated_stacks += s->truncated_stacks;
    root->truncated_frames += s->truncated_frames;
    if (s->truncated_window > root->truncated_window)
      root->truncated_window = s->truncated_window;
    root->window_refills += s->window_refills;
    root->stream_entries += s->stream_entries;
    root->stream_returns += s->stream_returns;
    root->stream_unwound += s->stream_unwound;
  }
}

static const char *end_name(int how)
{
  switch (how) {
  case TRACE_PROC_EXITED: return "exited";
  case TRACE_PROC_KILLED: return "killed";
  case TRACE_PROC_EXECED: return "executed";
  case TRACE_PROC_DETACHED: return "detached";
  default: return "running";
  }
}

static const char *image_path(const struct trace *s)
{
  return s->target && s->target->exec_path ? s->target->exec_path : "";
}

void trace_procs_summary_json(struct trace *root, struct json_out *j)
{
  if (root->nprocs < 2)
    return; /* one process: the summary's program is all there is */
  json_key(j, "processes");
  json_begin_array(j);
  for (size_t i = 0; i < root->nprocs; i++) {
    const struct trace *s = root->procs[i];
    json_begin_object(j);
    json_kv_int(j, "pid", s->pid);
    json_kv_int(j, "parent", s->parent_pid);
    json_kv_string(j, "path", image_path(s));
    json_kv_string(j, "ended", end_name(s->ended));
    json_kv_int(j, "exit_code", s->ended == TRACE_PROC_EXITED ? s->end_status : 0);
    json_kv_int(j, "signal", s->ended == TRACE_PROC_KILLED ? s->end_signal : 0);
    json_kv_uint(j, "events", s->own_events);
    if (s->has_heap) {
      json_kv_uint(j, "allocs", s->own[0]);
      json_kv_uint(j, "frees", s->own[1]);
      json_kv_uint(j, "bytes_allocated", s->own[2]);
      json_kv_uint(j, "bytes_freed", s->own[3]);
      json_kv_uint(j, "leaked_bytes", s->own[4]);
      json_kv_uint(j, "leaked_blocks", s->own[5]);
      json_kv_uint(j, "unknown_frees", s->own[6]);
      json_key(j, "inherited");
      json_begin_object(j);
      json_kv_uint(j, "allocs", s->inherited[0]);
      json_kv_uint(j, "frees", s->inherited[1]);
      json_kv_uint(j, "bytes_allocated", s->inherited[2]);
      json_kv_uint(j, "bytes_freed", s->inherited[3]);
      json_end_object(j);
    }
    json_end_object(j);
  }
  json_end_array(j);
}

void trace_procs_summary_text(struct trace *root, FILE *out)
{
  if (root->nprocs < 2)
    return;
  fprintf(out, "processes: %zu images traced\n", root->nprocs);
  for (size_t i = 0; i < root->nprocs; i++) {
    const struct trace *s = root->procs[i];
    fprintf(out, "  process %lld %s (%s", (long long)s->pid, image_path(s)[0] ? image_path(s) : "?", end_name(s->ended));
    if (s->ended == TRACE_PROC_EXITED)
      fprintf(out, " %d", s->end_status);
    fputc(')', out);
    if (s->has_heap)
      fprintf(out, ": %llu allocations, %llu frees, %llu bytes allocated", (unsigned long long)s->own[0],
              (unsigned long long)s->own[1], (unsigned long long)s->own[2]);
    if (s->inherited[0])
      fprintf(out, " (and %llu allocations inherited from process %lld)", (unsigned long long)s->inherited[0],
              (long long)s->parent_pid);
    fputc('\n', out);
  }
}

int trace_procs_symbolize(void *ctx, uint64_t space, uint64_t pc, struct sym_frame *frames, int max, int *n)
{
  struct trace *root = ctx;
  *n = 0;
  if (space >= root->nprocs)
    return 0;
  return trace_symbolize_pc(root->procs[space], pc, frames, max, n);
}

void trace_procs_name(void *ctx, uint64_t space, int64_t *pid, const char **program)
{
  struct trace *root = ctx;
  if (space >= root->nprocs)
    return;
  *pid = root->procs[space]->pid;
  *program = image_path(root->procs[space])[0] ? image_path(root->procs[space]) : NULL;
}

void trace_procs_free(struct trace *root)
{
  for (size_t i = 1; i < root->nprocs; i++)
    session_free(root->procs[i]);
  free(root->procs);
  root->procs = NULL;
  root->nprocs = 0;
  u64map_free(&root->tid_pid);
}
