/* What a run leaves behind: the modules' final accounting, the drcctprof profile, --summary-json for
 * pipelines and --summary (text) for people. */
#include "outputs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "errors.h"
#include "log.h"
#include "frames.h"
#include "profile-read.h"
#include "processes.h"
#include "profile-write.h"
#include "report.h"
#include "rsp-client.h"
#include "summary.h"
#include "target.h"

static void program_json(struct trace *tr, struct json_out *j)
{
  json_key(j, "program");
  json_begin_object(j);
  json_key(j, "path"), json_string(j, tr->target && tr->target->exec_path ? tr->target->exec_path : "");
  json_key(j, "pid"), json_int(j, tr->target ? tr->target->pid : 0);
  json_key(j, "ended"), json_bool(j, tr->program_ended);
  json_key(j, "exit_code");
  if (tr->program_ended && !tr->term_signal)
    json_int(j, tr->exit_code);
  else
    json_null(j);
  json_key(j, "signal"), json_int(j, tr->term_signal);
  json_end_object(j);
}

/* What was traced: the target's architecture and the server, "rsprof-agent VERSION" when the agent said its
 * version (rsprof-version= in qSupported), "gdbserver" when the server offered what only gdbserver offers, else
 * "unknown", so a lab that traces many kinds of boards can tell runs apart. */
static void target_json(struct trace *tr, struct json_out *j)
{
  const struct rspc_features *f = tr->c ? rspc_features(tr->c) : NULL;
  char agent[64];
  if (f && f->version[0])
    snprintf(agent, sizeof agent, "rsprof-agent %s", f->version);
  else
    snprintf(agent, sizeof agent, "%s", f && f->startup_with_shell ? "gdbserver" : "unknown");
  json_key(j, "target");
  json_begin_object(j);
  json_key(j, "arch"), json_string(j, tr->target && tr->target->arch ? tr->target->arch->name : "unknown");
  json_key(j, "agent"), json_string(j, agent);
  json_end_object(j);
}

/* Whether path can be written: an existing file we may write, or a new name in a directory we may write.
 * Returns 0 or a negative errno. */
static int check_writable(const char *path)
{
  struct stat sb;
  if (stat(path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode))
      return -EISDIR;
    return access(path, W_OK) == 0 ? 0 : -errno;
  }
  if (errno != ENOENT)
    return -errno;
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else if ((size_t)(slash - path) < sizeof dir)
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  else
    return -ENAMETOOLONG;
  if (stat(dir, &sb) != 0)
    return -errno;
  if (!S_ISDIR(sb.st_mode))
    return -ENOTDIR;
  return access(dir, W_OK | X_OK) == 0 ? 0 : -errno;
}

int trace_check_outputs(const struct col_options *o)
{
  const struct {
    const char *path;
    int dash_is_stdout;
  } outs[] = {{o->output, 0},       {o->pprof, 0},       {o->html, 0},
               {o->summary_json, 0}, {o->summary_text, 1}, {o->print_stacks, 1}};
  int first = 0;
  for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
    const char *path = outs[i].path;
    if (!path || (outs[i].dash_is_stdout && strcmp(path, "-") == 0))
      continue;
    int rc = check_writable(path);
    if (rc) {
      LOG_ERR("cannot write %s: %s", path, strerror(-rc));
      if (!first)
        first = rc;
    }
  }
  return first;
}

/* The engine that captured a module's events: the in-process recorder, the agent, or round trips. */
static const char *trace_module_engine(const struct trace *tr, const char *name)
{
  for (size_t i = 0; i < tr->ninprocess_mods; i++)
    if (!strcmp(tr->inprocess_mods[i], name))
      return "inprocess";
  return tr->agent_capture ? "agent" : "roundtrip";
}

/* How events were captured: round trips, or streamed by the agent (rsprof-capture), with what it cost. */
static void capture_json(struct trace *tr, struct json_out *j)
{
  json_key(j, "capture");
  json_begin_object(j);
  const char *base = tr->agent_capture ? "agent" : "roundtrip";
  json_kv_string(j, "mode", tr->ninprocess_mods ? "inprocess" : base);
  json_key(j, "engines"); /* which engine captured each module's events */
  json_begin_object(j);
  for (size_t k = 0; k < tr->nmods; k++)
    json_kv_string(j, tr->mods[k].mod->name, trace_module_engine(tr, tr->mods[k].mod->name));
  json_end_object(j);
  json_kv_uint(j, "inprocess_fallbacks", tr->inprocess_fallbacks);
  json_kv_uint(j, "events_streamed", tr->stream_entries + tr->stream_returns);
  json_kv_uint(j, "entries_streamed", tr->stream_entries);
  json_kv_uint(j, "returns_streamed", tr->stream_returns);
  json_kv_uint(j, "batches", tr->stream_batches);
  json_kv_uint(j, "stream_bytes", tr->stream_bytes);
  json_kv_uint(j, "wire_bytes", tr->c ? rspc_bytes_received(tr->c) - tr->rx_at_start : 0);
  json_kv_uint(j, "host_unwound", tr->stream_unwound);
  json_kv_uint(j, "agent_unwound", tr->stream_agent_unwound);
  json_kv_uint(j, "compact_calls", tr->stream_calls);
  json_kv_uint(j, "stacks_interned", tr->stream_stack_defs);
  json_kv_uint(j, "stack_table_resets", tr->stream_resets);
  json_kv_uint(j, "agent_raw_windows", tr->agent_raw);
  json_kv_uint(j, "capture_stack", tr->agent_capture ? tr->capture_stack : 0);
  json_key(j, "held_ms"), json_double(j, (double)tr->agent_held_ns / 1e6);
  json_kv_uint(j, "held_hits", tr->agent_parked);
  json_end_object(j);
}

static int write_json(struct trace *tr, const char *path)
{
  FILE *f = fopen(path, "w");
  if (!f) {
    LOG_ERR("cannot write %s: %s", path, strerror(errno));
    return -errno;
  }
  struct json_out j;
  json_init(&j, f, 1);
  json_begin_object(&j);
  program_json(tr, &j);
  target_json(tr, &j);
  json_key(&j, "events"), json_uint(&j, tr->events);
  json_key(&j, "breakpoint_stops"), json_uint(&j, tr->breakpoint_stops);
  json_key(&j, "quiet_stops"), json_uint(&j, tr->quiet_stops);
  json_key(&j, "stacks"), json_uint(&j, tr->unwound_stacks);
  json_key(&j, "truncated_stacks"), json_uint(&j, tr->truncated_stacks);
  json_key(&j, "truncated_window"), json_uint(&j, tr->truncated_window);
  json_key(&j, "truncated_max_frames"), json_uint(&j, tr->truncated_frames);
  json_key(&j, "stack_size"), json_uint(&j, tr->opt->stack_bytes);
  json_key(&j, "stack_window"), json_uint(&j, tr->window);
  json_key(&j, "stack_window_refills"), json_uint(&j, tr->window_refills);
  json_key(&j, "duration_ms"), json_double(&j, trace_elapsed_ms(tr));
  capture_json(tr, &j);
  trace_procs_summary_json(tr, &j);
  json_key(&j, "modules");
  json_begin_array(&j);
  for (size_t k = 0; k < tr->nmods; k++)
    json_string(&j, tr->mods[k].mod->name);
  json_end_array(&j);
  trace_unsymbolized_json(tr, &j);
  for (size_t k = 0; k < tr->nmods; k++)
    if (tr->mods[k].mod->summary_json)
      tr->mods[k].mod->summary_json(tr, tr->mods[k].state, &j);
  json_end_object(&j);
  json_finish(&j);
  fputc('\n', f);
  if (fclose(f) != 0) {
    LOG_ERR("cannot write %s: %s", path, strerror(errno));
    return -EIO;
  }
  return 0;
}

static int write_text(struct trace *tr, const char *path)
{
  FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
  if (!f) {
    LOG_ERR("cannot write %s: %s", path, strerror(errno));
    return -errno;
  }
  fprintf(f, "program: %s\n", tr->target && tr->target->exec_path ? tr->target->exec_path : "?");
  if (tr->program_ended && !tr->term_signal)
    fprintf(f, "exit code: %d\n", tr->exit_code);
  else if (tr->term_signal)
    fprintf(f, "killed by signal %d\n", tr->term_signal);
  else
    fprintf(f, "still running when tracing stopped\n");
  fprintf(f, "events: %llu in %.1f ms\n", (unsigned long long)tr->events, trace_elapsed_ms(tr));
  fprintf(f, "captured by:");
  for (size_t k = 0; k < tr->nmods; k++)
    fprintf(f, "%s %s: %s", k ? "," : "", tr->mods[k].mod->name, trace_module_engine(tr, tr->mods[k].mod->name));
  fprintf(f, "\n");
  fprintf(f, "truncated stacks: %llu of %llu", (unsigned long long)tr->truncated_stacks,
          (unsigned long long)tr->unwound_stacks);
  if (tr->truncated_stacks > tr->truncated_frames)
    fprintf(f, "; %llu at a %zu-byte stack window (--stack-size %llu)",
            (unsigned long long)(tr->truncated_stacks - tr->truncated_frames), tr->truncated_window,
            (unsigned long long)tr->opt->stack_bytes);
  if (tr->truncated_frames)
    fprintf(f, "; %llu deeper than --max-frames %zu", (unsigned long long)tr->truncated_frames,
            tr->opt->max_frames);
  fputc('\n', f);
  trace_procs_summary_text(tr, f);
  for (size_t k = 0; k < tr->nmods; k++) {
    if (tr->mods[k].mod->summary_text)
      tr->mods[k].mod->summary_text(tr, tr->mods[k].state, f);
  }
  for (size_t m = 0; m < tr->nmetrics; m++) {
    if (!tr->metric_titles[m])
      continue; /* companion metrics (frees, ...) show beside the ranked ones */
    fputc('\n', f);
    summary_top_contexts(f, tr->cct, tr->metrics, m, 5, tr->metric_titles[m], trace_symbolize_pc, tr);
  }
  trace_unsymbolized_text(tr, f);
  if (f == stdout ? fflush(f) != 0 : fclose(f) != 0) {
    LOG_ERR("cannot write %s: %s", path, strerror(errno));
    return -EIO;
  }
  return 0;
}

/* --pprof and --html come from the drcctprof profile read back, so every format shows the same totals. */
static int write_derived(struct trace *tr, const char *profile)
{
  struct prof *p;
  char err[512];
  int first = 0;
  if ((first = prof_read(profile, &p, err, sizeof err)) < 0) {
    LOG_ERR("cannot read back %s for --pprof/--html: %s", profile, err);
    return first;
  }
  const struct {
    const char *path;
    enum report_format format;
  } outs[] = {{tr->opt->pprof, REPORT_PPROF}, {tr->opt->html, REPORT_HTML}};
  for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
    if (!outs[i].path)
      continue;
    int rc = report_write(p, outs[i].format, 0, outs[i].path);
    if (rc)
      LOG_ERR("cannot write %s: %s", outs[i].path, rs_strerror(rc));
    else
      LOG_INFO("wrote %s", outs[i].path);
    if (rc && !first)
      first = rc;
  }
  prof_free(p);
  return first;
}

/* The drcctprof profile (-o) and the formats made from it. Returns 0 or the first error. */
static int write_profiles(struct trace *tr)
{
  const struct col_options *o = tr->opt;
  char scratch[4096] = "";
  const char *path = o->output;
  if (!path && (o->pprof || o->html)) {
    /* No -o: the drcctprof profile the other formats derive from goes to a scratch file. */
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(scratch, sizeof scratch, "%s/rsprof-%ld.drcctprof", dir, (long)getpid());
    path = scratch;
  }
  if (!path)
    return 0;
  struct profile_info info = {.program = tr->target && tr->target->exec_path ? tr->target->exec_path : "program",
                              .pid = tr->target ? tr->target->pid : 0, .space_process = trace_procs_name,
                              .space_sym = trace_procs_symbolize};
  int rc = profile_write_drcctprof(tr->cct, tr->metrics, tr->nmetrics, trace_symbolize_pc, tr, &info, path);
  if (rc)
    LOG_ERR("cannot write %s: %s", path, rs_strerror(rc));
  else if (o->output)
    LOG_INFO("wrote %s", path);
  if (!rc && (o->pprof || o->html))
    rc = write_derived(tr, path);
  if (scratch[0])
    unlink(scratch);
  return rc;
}

/* Truncated stacks are never silent: a profile whose deep paths are cut short misleads, so say how many
 * and why, on stderr as well as in both summaries. */
static void warn_truncated(const struct trace *tr)
{
  uint64_t by_window = tr->truncated_stacks - tr->truncated_frames;
  if (by_window)
    LOG_WARN("%llu of %llu stacks were truncated at a %zu-byte stack window (raise --stack-size, now %llu)",
             (unsigned long long)by_window, (unsigned long long)tr->unwound_stacks, tr->truncated_window,
             (unsigned long long)tr->opt->stack_bytes);
  if (tr->truncated_frames)
    LOG_WARN("%llu of %llu stacks were truncated at --max-frames %zu", (unsigned long long)tr->truncated_frames,
             (unsigned long long)tr->unwound_stacks, tr->opt->max_frames);
}

int trace_write_outputs(struct trace *tr)
{
  int first = 0, rc;
  trace_procs_finish(tr); /* every image's modules finish; the children's totals add up into tr's */
  warn_truncated(tr);
  first = write_profiles(tr);
  if (tr->opt->summary_json && (rc = write_json(tr, tr->opt->summary_json)) && !first)
    first = rc;
  if (tr->opt->summary_text && (rc = write_text(tr, tr->opt->summary_text)) && !first)
    first = rc;
  return first;
}
