/* The tracing session from start to end: connect, set up the tracing modules and the target's libraries, run
 * the event loop, leave the program running or gone, and write the outputs however the run ended. */
#include "trace.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binfind.h"
#include "breakpoints.h"
#include "capture.h"
#include "cct.h"
#include "counters.h"
#include "errors.h"
#include "event-loop.h"
#include "libraries.h"
#include "log.h"
#include "modmap.h"
#include "module.h"
#include "outputs.h"
#include "processes.h"
#include "rsp-client.h"
#include "stream.h"
#include "table-upload.h"
#include "target.h"
#include "trace-state.h"
#include "u64map.h"
#include "unwind.h"

static int start_modules(struct trace *tr, const struct tracer_module *const *mods, size_t nmods)
{
  if (nmods > TRACE_MAX_TRACERS) {
    LOG_ERR("at most %d tracing modules at once", TRACE_MAX_TRACERS);
    return RS_E_LIMIT;
  }
  for (size_t i = 0; i < nmods; i++) {
    const struct tracer_module *m = mods[i];
    tr->mods[tr->nmods].mod = m;
    int rc = m->init(tr, &tr->mods[tr->nmods].state);
    if (rc) {
      LOG_ERR("module %s: %s", m->name, rs_strerror(rc));
      return rc;
    }
    tr->nmods++;
  }
  return 0;
}

/* Every live process of several (children followed): breakpoints out of each, then each let go or killed. */
static int end_process_bps(struct trace *s, void *ctx)
{
  if (!s->vfork_child && trace_proc_select(s) == 0)
    trace_bp_remove_all(s);
  return 0;
}

static int end_process(struct trace *s, void *ctx)
{
  const int *kill = ctx;
  int rc = rspc_request_ok(s->c, *kill ? "vKill;%llx" : "D;%llx", (unsigned long long)s->pid);
  if (rc)
    LOG_WARN("process %lld: cannot %s it: %s", (long long)s->pid, *kill ? "kill" : "detach from", rs_strerror(rc));
  trace_proc_end(s, TRACE_PROC_DETACHED, 0, 0);
  return 0;
}

static void end_program(struct trace *tr)
{
  if (!tr->c || tr->nprocs == 0)
    return;
  if (tr->follow && trace_procs_live(tr) > 0 && (tr->nprocs > 1 || tr->program_ended)) {
    int kill = tr->opt->kill_at_end;
    trace_procs_each(tr, end_process_bps, NULL);
    trace_procs_each(tr, end_process, &kill);
    LOG_INFO(kill ? "killed the program's processes" : "detached; the program's processes keep running");
    return;
  }
  if (tr->program_ended)
    return;
  /* The program is stopped (we interrupted it, or an error stopped us at a stop): leave it running or gone. */
  trace_bp_remove_all(tr);
  if (tr->opt->kill_at_end) {
    rspc_kill(tr->c);
    LOG_INFO("killed the program");
  } else {
    rspc_detach(tr->c);
    LOG_INFO("detached; the program keeps running");
  }
}

/* Starts the program through vRun: --run's command line, or the server's own program when there is none. */
static int start_program(struct trace *tr, struct rspc_stop *st)
{
  const struct col_options *o = tr->opt;
  const char *what = o->run_argc ? o->run_argv[0] : "the agent's program";
  int rc = rspc_run(tr->c, (const char *const *)o->run_argv, o->run_argc, st);
  if (rc == RS_E_UNSUPPORTED) {
    if (o->run_argc)
      LOG_ERR("--run: the server cannot start programs (run rsprof-agent with --multi)");
    else
      LOG_ERR("the program is not running (it has already exited)");
    tr->program_ended = !o->run_argc;
    return o->run_argc ? rc : RS_E_EXITED;
  }
  if (rc == -EIO) {
    if (o->run_argc)
      LOG_ERR("the server could not start %s", what);
    else
      LOG_ERR("the program is not running, and the server has none to start (give --run PROGRAM [ARGS...])");
    return rc;
  }
  if (rc) {
    LOG_ERR("cannot start %s: %s", what, rs_strerror(rc));
    return rc;
  }
  if (st->kind != RSPC_STOP_SIGNAL) {
    LOG_ERR("%s ended as soon as it started", what);
    tr->program_ended = 1;
    return RS_E_EXITED;
  }
  LOG_INFO("started %s, process %lld", what, (long long)st->pid);
  return 0;
}

static int connect_and_load(struct trace *tr)
{
  const struct col_options *o = tr->opt;
  struct rspc_options ro = {
      .host = o->host, .port = o->port, .tls_ca = o->tls_ca, .tls_cert = o->tls_cert, .tls_key = o->tls_key,
      .tls_psk_file = o->tls_psk_file, .tls_psk_identity = o->tls_psk_identity,
      .connect_timeout_ms = o->connect_timeout_ms, .retries = o->retries, .retry_delay_ms = 500,
      .reply_timeout_ms = o->reply_timeout_ms, .poll_us = o->poll_us, .detach_fork = !o->follow_fork,
  };
  int rc = rspc_connect(&ro, &tr->c);
  if (rc) {
    LOG_ERR("cannot connect to %s:%u: %s", o->host, o->port, rs_strerror(rc));
    return rc;
  }
  if (o->capture == COL_CAPTURE_INPROCESS) {
    /* Before anything else: the agent may start its program again with the recorder preloaded. */
    if (!rspc_features(tr->c)->inprocess)
      LOG_WARN("--capture inprocess: the server has no in-process recorder (rsprof-agent --recorder PATH); "
               "the memory module uses agent-side capture");
    else if (rspc_request_ok(tr->c, "QRsprofInprocess:1") == 0)
      tr->inprocess = 1;
    else
      LOG_WARN("--capture inprocess: the agent cannot load its recorder into this program (statically linked, "
               "a libc that cannot load it, or a program that has already run: the agent's log says which); "
               "the memory module uses agent-side capture");
  }
  struct rspc_stop st;
  if (o->run_argc) {
    rc = start_program(tr, &st);
  } else {
    const char *reply;
    size_t rlen;
    rc = rspc_request(tr->c, "?", 1, &reply, &rlen);
    /* No process (an extended-mode server between runs, or one whose program exited): start its own. */
    if (!rc && rspc_parse_stop(reply, rlen, &st) == 0 && st.kind != RSPC_STOP_SIGNAL)
      rc = start_program(tr, &st);
  }
  if (rc)
    return rc;
  trace_capture_init(tr);
  trace_stream_init(tr);
  trace_tables_init(tr);
  /* Our agent can say when it saw each stop, so durations between stops leave out the trip to us. */
  if (rspc_features(tr->c)->stop_time && rspc_request_ok(tr->c, "QRsprofStopTime:1") == 0)
    tr->agent_times = 1;
  struct binfind_options bo = {.sysroot = o->sysroot, .cache_dir = o->cache_dir, .no_fetch = o->no_fetch};
  rc = binfind_new(tr->c, &bo, &tr->bf);
  if (rc)
    return rc;
  rc = target_load(tr->c, tr->bf, &tr->target);
  if (rc) {
    LOG_ERR("cannot read the target's state: %s", rs_strerror(rc));
    return rc;
  }
  tr->arch = tr->target->arch;
  return trace_procs_init(tr);
}

static int trace_init(struct trace *tr, const struct col_options *o)
{
  memset(tr, 0, sizeof *tr);
  tr->opt = o;
  tr->start_ms = trace_now_ms();
  u64map_init(&tr->bp_index);
  u64map_init(&tr->stack_end);
  tr->stack_alloc = o->stack_bytes < 65536 ? (size_t)o->stack_bytes : 65536; /* grows up to stack_bytes */
  tr->stack_buf = malloc(tr->stack_alloc ? tr->stack_alloc : 1);
  tr->pcs = malloc((o->max_frames ? o->max_frames : 1) * sizeof *tr->pcs);
  if (!tr->stack_buf || !tr->pcs)
    return -ENOMEM;
  tr->progress = o->progress < 0 ? isatty(STDERR_FILENO) : o->progress;
  tr->last_progress_ms = tr->start_ms;
  int rc = col_modmap_new(&tr->map);
  if (!rc)
    rc = unw_ctx_new(&tr->unw);
  return rc;
}

static void trace_destroy(struct trace *tr)
{
  for (size_t i = 0; i < tr->nprocs; i++) /* the event streams of every session, the root's included */
    trace_stream_free(tr->procs[i]);
  if (tr->nprocs == 0)
    trace_stream_free(tr);
  trace_procs_free(tr);
  trace_image_state_free(tr);
  if (tr->stacks_out && tr->stacks_out != stdout)
    fclose(tr->stacks_out);
  if (tr->c)
    rspc_close(tr->c);
  if (tr->cct)
    cct_free(tr->cct);
  if (tr->bf)
    binfind_free(tr->bf);
}

int trace_run(const struct col_options *o, const struct tracer_module *const *mods, size_t nmods)
{
  struct trace tr;
  int rc = trace_init(&tr, o);
  int status = COL_EXIT_ERROR;
  if (rc)
    goto out;
  /* A pipeline must learn of an unwritable output before the program runs, not after the whole trace. */
  if (trace_check_outputs(o))
    goto out;
  trace_catch_stop_signals();

  if (o->system_debug_dir)
    col_module_set_system_debug_dir(o->system_debug_dir[0] ? o->system_debug_dir : NULL);
  rc = start_modules(&tr, mods, nmods);
  if (rc)
    goto out;
  rc = cct_new(tr.nmetrics, &tr.cct);
  if (rc)
    goto out;
  if (o->print_stacks) {
    tr.stacks_out = strcmp(o->print_stacks, "-") == 0 ? stdout : fopen(o->print_stacks, "w");
    if (!tr.stacks_out) {
      LOG_ERR("cannot write %s: %s", o->print_stacks, strerror(errno));
      goto out;
    }
  }
  /* From here on the outputs are written however the run ends: a server that dies or falls silent, or a
   * signal, leaves the profile and summaries of what was collected so far (possibly nothing). */
  rc = connect_and_load(&tr);
  if (rc == 0 && !trace_stop_signal()) {
    int lrc = trace_libs_discover(&tr);
    if (lrc)
      LOG_WARN("library discovery: %s", rs_strerror(lrc));
    if (!trace_stop_signal())
      rc = trace_event_loop(&tr);
  }
  if (rc && rc != RS_E_EXITED && !trace_stop_signal() && tr.c) /* a failed connect has said why */
    LOG_ERR("tracing stopped early: %s; writing what was collected", rs_strerror(rc));
  /* A server that is gone or did not answer in time would only make each of these requests wait again. */
  if (rc != RS_E_EXITED && rc != RS_E_TIMEOUT && rc != RS_E_DISCONNECTED && rc != RS_E_TLS)
    end_program(&tr);
  trace_show_progress(&tr, 1);
  int wrc = trace_write_outputs(&tr);
  status = rc || wrc ? COL_EXIT_ERROR : COL_EXIT_OK;
  if (trace_stop_signal()) {
    LOG_ERR("interrupted by %s; wrote the %llu events collected so far",
            trace_stop_signal() == SIGINT ? "SIGINT" : trace_stop_signal() == SIGTERM ? "SIGTERM" : "a signal",
            (unsigned long long)tr.events);
    status = COL_EXIT_ERROR;
  } else if (!rc && !wrc) {
    /* Every module's verdict runs, so each fired threshold is reported; the first one sets the status. */
    for (size_t k = 0; k < tr.nmods; k++) {
      int v = tr.mods[k].mod->verdict ? tr.mods[k].mod->verdict(&tr, tr.mods[k].state, o) : COL_EXIT_OK;
      if (status == COL_EXIT_OK)
        status = v;
    }
    if (status == COL_EXIT_OK && tr.term_signal)
      status = COL_EXIT_TARGET;
  }
out:
  trace_destroy(&tr);
  return status;
}

