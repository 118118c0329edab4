/* Prints a profile read back from disk: tree text, folded stacks for flame graphs, or JSON. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "html-write.h"
#include "pprof-write.h"
#include "profile-diff.h"
#include "profile-strmap.h"
#include "resymbolize.h"
#include "summary.h"

#define PROG "rsprof-collector report"

/* A growable string for building folded lines. */
struct dstr {
  char *s;
  size_t len, cap;
  int oom;
};

static void dstr_putc(struct dstr *d, char c)
{
  if (d->oom)
    return;
  if (d->len + 2 > d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 256;
    char *n = realloc(d->s, cap);
    if (!n) {
      d->oom = 1;
      return;
    }
    d->s = n;
    d->cap = cap;
  }
  d->s[d->len++] = c;
  d->s[d->len] = '\0';
}

/* Appends a frame name the way folded-stack readers can split it: ';' separates frames and a newline
 * ends the record, so neither may appear inside a name (Rust array types like "[u8; 4]" have ';'). */
static void dstr_put_frame(struct dstr *d, const char *s)
{
  for (; *s; s++)
    dstr_putc(d, *s == ';' ? ':' : (*s == '\n' || *s == '\r') ? ' ' : *s);
}

static const char *line_name(const struct prof_line *l)
{
  if (l->function[0])
    return l->function;
  if (l->system_name[0])
    return l->system_name;
  return "[unknown]";
}

/* The chain of contexts from the root down to i, in path[0 .. depth]. */
static size_t context_path(const struct prof *p, size_t i, size_t *path)
{
  size_t n = p->ctx[i].depth + 1;
  for (size_t k = n; k-- > 0; i = p->ctx[i].parent)
    path[k] = i;
  return n;
}

static size_t max_depth(const struct prof *p)
{
  size_t d = 0;
  for (size_t i = 0; i < p->nctx; i++)
    if (p->ctx[i].depth > d)
      d = p->ctx[i].depth;
  return d;
}

struct folded_sort {
  const char *key;
  int64_t value;
};

static int by_key(const void *a, const void *b)
{
  return strcmp(((const struct folded_sort *)a)->key, ((const struct folded_sort *)b)->key);
}

static int print_folded(FILE *out, const struct prof *p, size_t metric)
{
  struct pstrmap lines;
  struct dstr d = {0};
  int64_t *sums = NULL;
  struct folded_sort *sorted = NULL;
  size_t *path = malloc((max_depth(p) + 1) * sizeof *path);
  int rc = 0;

  pstrmap_init(&lines);
  if (!path || !(sums = calloc(p->nctx + 1, sizeof *sums))) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < p->nctx; i++) {
    if (!p->ctx[i].has_sample || metric >= p->nmetrics)
      continue;
    int64_t v = p->self[i * p->nmetrics + metric];
    if (v == 0)
      continue;
    size_t n = context_path(p, i, path);
    d.len = 0;
    int first = 1;
    for (size_t k = 1; k < n; k++) { /* path[0] is the process root */
      const struct prof_context *c = &p->ctx[path[k]];
      size_t nl = c->nlines ? c->nlines : 1;
      for (size_t li = nl; li-- > 0;) { /* physical caller first, then its inlined callees */
        if (!first)
          dstr_putc(&d, ';');
        first = 0;
        dstr_put_frame(&d, c->nlines ? line_name(&p->lines[c->first_line + li]) : "[unknown]");
      }
    }
    if (first)
      dstr_put_frame(&d, "[root]"); /* a sample on the process root itself */
    uint32_t idx;
    if (d.oom || pstrmap_intern(&lines, d.s, &idx, NULL) < 0) {
      rc = -ENOMEM;
      goto out;
    }
    sums[idx] = (int64_t)((uint64_t)sums[idx] + (uint64_t)v);
  }
  if (!(sorted = calloc(lines.count + 1, sizeof *sorted))) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t k = 0; k < lines.count; k++)
    sorted[k] = (struct folded_sort){lines.keys[k], sums[k]};
  qsort(sorted, lines.count, sizeof *sorted, by_key);
  for (size_t k = 0; k < lines.count; k++)
    if (sorted[k].value) /* contexts that cancel out (e.g. negative deltas) leave nothing to draw */
      fprintf(out, "%s %" PRId64 "\n", sorted[k].key, sorted[k].value);
out:
  pstrmap_free(&lines);
  free(d.s);
  free(sums);
  free(sorted);
  free(path);
  return rc;
}

static void print_line_text(FILE *out, const struct prof_line *l)
{
  fputs(line_name(l), out);
  if (l->file)
    fprintf(out, " (%s:%" PRId64 ")", l->file, l->line);
}

static int print_text(FILE *out, const struct prof *p)
{
  int64_t *incl = malloc((p->nctx * (p->nmetrics ? p->nmetrics : 1) + 1) * sizeof *incl);
  int64_t *tmp = malloc((p->nctx + 1) * sizeof *tmp);
  size_t *stack = malloc((p->nctx + 1) * sizeof *stack);
  size_t *kids = malloc((p->nctx + 1) * sizeof *kids);
  size_t *indent = malloc((p->nctx + 1) * sizeof *indent);
  if (!incl || !tmp || !stack || !kids || !indent) {
    free(incl);
    free(tmp);
    free(stack);
    free(kids);
    free(indent);
    return -ENOMEM;
  }
  /* A context's children sit below its innermost inlined call, so they indent past its inline lines. */
  for (size_t i = 0; i < p->nctx; i++) {
    size_t par = p->ctx[i].parent;
    indent[i] = par == PROF_NONE ? 0 : indent[par] + 2 * (p->ctx[par].nlines ? p->ctx[par].nlines : 1);
  }
  for (size_t m = 0; m < p->nmetrics; m++) {
    prof_inclusive(p, m, tmp);
    for (size_t i = 0; i < p->nctx; i++)
      incl[i * p->nmetrics + m] = tmp[i];
  }
  fprintf(out, "# %zu contexts; metrics:", p->nctx);
  for (size_t m = 0; m < p->nmetrics; m++)
    fprintf(out, "%s %s (%s)", m ? "," : "", p->metric_name[m], p->metric_unit[m]);
  fputs("\n# each context: name (file:line)  metric=inclusive(self) ...; inlined calls follow, indented\n", out);

  /* Pre-order walk with an explicit stack (deep trees must not exhaust the C stack); children are
   * pushed in reverse so that they print in id order. */
  size_t sp = 0;
  for (size_t i = p->nctx; i-- > 0;)
    if (p->ctx[i].parent == PROF_NONE)
      stack[sp++] = i;
  while (sp) {
    size_t i = stack[--sp];
    const struct prof_context *c = &p->ctx[i];
    fprintf(out, "%*s", (int)indent[i], "");
    if (c->nlines)
      print_line_text(out, &p->lines[c->first_line + c->nlines - 1]);
    else
      fputs("[unknown]", out);
    for (size_t m = 0; m < p->nmetrics; m++)
      fprintf(out, "  %s=%" PRId64 "(%" PRId64 ")", p->metric_name[m], incl[i * p->nmetrics + m],
              p->self[i * p->nmetrics + m]);
    putc('\n', out);
    for (size_t k = 1; k < c->nlines; k++) {
      fprintf(out, "%*s", (int)(indent[i] + 2 * k), "");
      print_line_text(out, &p->lines[c->first_line + c->nlines - 1 - k]);
      fputs(" [inlined]\n", out);
    }
    size_t nk = 0;
    for (size_t ch = c->first_child; ch != PROF_NONE; ch = p->ctx[ch].next_sibling)
      kids[nk++] = ch;
    while (nk)
      stack[sp++] = kids[--nk];
  }
  free(incl);
  free(tmp);
  free(stack);
  free(kids);
  free(indent);
  return 0;
}

static int print_json(FILE *out, const struct prof *p)
{
  struct json_out j;
  size_t *path = malloc((max_depth(p) + 1) * sizeof *path);
  if (!path)
    return -ENOMEM;
  json_init(&j, out, 0);
  json_begin_object(&j);
  json_key(&j, "metrics");
  json_begin_array(&j);
  for (size_t m = 0; m < p->nmetrics; m++) {
    json_begin_object(&j);
    json_kv_string(&j, "name", p->metric_name[m]);
    json_kv_string(&j, "unit", p->metric_unit[m]);
    json_end_object(&j);
  }
  json_end_array(&j);
  json_key(&j, "samples");
  json_begin_array(&j);
  for (size_t i = 0; i < p->nctx; i++) {
    if (!p->ctx[i].has_sample)
      continue;
    json_begin_object(&j);
    json_kv_uint(&j, "context_id", p->ctx[i].id);
    json_key(&j, "values");
    json_begin_array(&j);
    for (size_t m = 0; m < p->nmetrics; m++)
      json_int(&j, p->self[i * p->nmetrics + m]);
    json_end_array(&j);
    json_key(&j, "stack");
    json_begin_array(&j);
    size_t n = context_path(p, i, path);
    for (size_t k = 0; k < n; k++) {
      const struct prof_context *c = &p->ctx[path[k]];
      for (size_t li = c->nlines; li-- > 0;) {
        const struct prof_line *l = &p->lines[c->first_line + li];
        json_begin_object(&j);
        json_kv_string(&j, "function", line_name(l));
        json_kv_string(&j, "system_name", l->system_name);
        json_kv_string(&j, "file", l->file);
        json_kv_int(&j, "line", l->line);
        json_kv_bool(&j, "inlined", li + 1 < c->nlines);
        json_end_object(&j);
      }
    }
    json_end_array(&j);
    json_end_object(&j);
  }
  json_end_array(&j);
  json_end_object(&j);
  free(path);
  return json_finish(&j);
}

int report_print(FILE *out, const struct prof *p, enum report_format format, size_t metric)
{
  int rc;
  switch (format) {
  case REPORT_FOLDED:
    rc = print_folded(out, p, metric);
    break;
  case REPORT_JSON:
    rc = print_json(out, p);
    break;
  default:
    rc = print_text(out, p);
    break;
  }
  if (rc == 0 && (fflush(out) != 0 || ferror(out)))
    rc = -EIO;
  return rc;
}

static void usage(FILE *f)
{
  fputs("usage: rsprof-collector report FILE.drcctprof [--format FORMAT] [--metric NAME] [-o FILE]\n"
        "                               [--debug-dir DIR]...\n"
        "       rsprof-collector report --diff BASE.drcctprof NEW.drcctprof [--format text|json] [--top N]\n"
        "                               [--fail-on-growth METRIC:PERCENT]...\n"
        "  text    the calling-context tree with each metric's inclusive and self values (default)\n"
        "  folded  one line per distinct stack, outermost frame (THREAD[tid]) first, frames joined by ';',\n"
        "          then a space and the metric's value: the input of flame-graph tools\n"
        "  json    metrics and samples, each sample with its stack (outermost first)\n"
        "  pprof   gzip-compressed profile.proto for go tool pprof, Pyroscope, Parca (needs -o)\n"
        "  html    one self-contained page: totals, top contexts, leaks, an icicle graph per metric\n"
        "  --metric NAME  the metric folded output counts (default: the first)\n"
        "  --debug-dir DIR  name the frames written as module+offset (no symbols when traced) from\n"
        "          DIR/.build-id/xx/yyyy.debug, or from the module's file if it has symbols now (repeatable)\n"
        "  -o, --output FILE  write there instead of standard output\n"
        "  --diff BASE NEW    per metric, the totals and the contexts that changed most (default 10, --top)\n"
        "  --fail-on-growth METRIC:PERCENT  with --diff: exit 7 when METRIC's total grew by more than PERCENT\n"
        "exit status: 0 ok, 1 unreadable or invalid profile (or output), 2 bad command line,\n"
        "7 a --fail-on-growth gate failed\n",
        f);
}

/* The program's name from the process root ("PROCESS[pid] name"), for titles. */
static const char *program_name(const struct prof *p)
{
  for (size_t c = 0; c < p->nctx; c++) {
    const struct prof_context *x = &p->ctx[c];
    if (x->depth == 0 && x->nlines) {
      const char *name = p->lines[x->first_line].function, *sp = strstr(name, "] ");
      if (strncmp(name, "PROCESS[", 8) == 0 && sp)
        return sp + 2;
    }
  }
  return "profile";
}

int report_write(const struct prof *p, enum report_format format, size_t metric, const char *path)
{
  if (format == REPORT_PPROF)
    return path ? pprof_write(p, "written by rsprof", path) : RS_E_BAD_ARG;
  FILE *out = path ? fopen(path, "w") : stdout;
  if (!out)
    return -errno;
  int rc = format == REPORT_HTML ? html_write(out, p, program_name(p)) : report_print(out, p, format, metric);
  if (path && fclose(out) != 0 && rc == 0)
    rc = -EIO;
  return rc;
}

static int read_profile(const char *file, struct prof **p)
{
  char err[512];
  if (prof_read(file, p, err, sizeof err) < 0) {
    fprintf(stderr, "%s: %s\n", PROG, err);
    return 1;
  }
  return 0;
}

/* report --diff BASE NEW: 0, 1 (a profile cannot be read), 2 (a bad gate) or 7 (a gate failed). */
static int diff_main(const char *base_path, const char *next_path, int json, size_t top,
                     const struct diff_gate *gates, size_t ngates)
{
  struct prof *base = NULL, *next = NULL;
  int status = read_profile(base_path, &base);
  if (!status)
    status = read_profile(next_path, &next);
  if (!status) {
    int failed = 0, rc = prof_diff(stdout, stderr, base, next, json, top, gates, ngates, &failed);
    if (rc == RS_E_BAD_ARG)
      status = 2;
    else if (rc < 0) {
      fprintf(stderr, "%s: writing the diff failed: %s\n", PROG, rs_strerror(rc));
      status = 1;
    } else if (failed) {
      status = 7;
    }
  }
  if (base)
    prof_free(base);
  if (next)
    prof_free(next);
  return status;
}

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past a separate value. */
static int option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0)
    return 0;
  if (argv[*i][n] == '=') {
    *value = argv[*i] + n + 1;
    return 1;
  }
  if (argv[*i][n] != '\0')
    return 0;
  if (*i + 1 >= argc) {
    *value = NULL;
    return 1;
  }
  *value = argv[++*i];
  return 1;
}

int report_main(int argc, char **argv)
{
  const char *file = NULL, *format = "text", *metric_name = NULL, *output = NULL, *diff_base = NULL, *v;
  const char *debug_dirs[17] = {NULL};
  size_t ndebug = 0;
  struct diff_gate gates[16];
  size_t ngates = 0, top = 10;
  int first = 1;
  /* Accept the whole command line too ("rsprof-collector report FILE ..."), so callers may pass either. */
  if (argc > 1 && strcmp(argv[0], "report") != 0 && strcmp(argv[1], "report") == 0)
    first = 2;
  for (int i = first; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (option_value(argc, argv, &i, "--format", &v)) {
      if (!v) {
        fprintf(stderr, "%s: --format needs a value\n", PROG);
        return 2;
      }
      format = v;
    } else if (option_value(argc, argv, &i, "--output", &v) || option_value(argc, argv, &i, "-o", &v)) {
      if (!v) {
        fprintf(stderr, "%s: --output needs a file\n", PROG);
        return 2;
      }
      output = v;
    } else if (option_value(argc, argv, &i, "--diff", &v)) {
      if (!v) {
        fprintf(stderr, "%s: --diff needs the base profile and the new one\n", PROG);
        return 2;
      }
      diff_base = v;
    } else if (option_value(argc, argv, &i, "--top", &v)) {
      char *end;
      unsigned long n = v ? strtoul(v, &end, 10) : 0;
      if (!v || *end || n == 0) {
        fprintf(stderr, "%s: --top needs a positive number\n", PROG);
        return 2;
      }
      top = n;
    } else if (option_value(argc, argv, &i, "--fail-on-growth", &v)) {
      const char *colon = v ? strrchr(v, ':') : NULL;
      char *end = NULL;
      double pct = colon ? strtod(colon + 1, &end) : 0;
      if (!colon || colon == v || end == colon + 1 || *end || pct < 0 || ngates == 16) {
        fprintf(stderr, "%s: --fail-on-growth takes METRIC:PERCENT (at most 16), e.g. bytes_allocated:5\n", PROG);
        return 2;
      }
      gates[ngates].metric = strndup(v, (size_t)(colon - v));
      gates[ngates++].percent = pct;
    } else if (option_value(argc, argv, &i, "--metric", &v)) {
      if (!v) {
        fprintf(stderr, "%s: --metric needs a value\n", PROG);
        return 2;
      }
      metric_name = v;
    } else if (option_value(argc, argv, &i, "--debug-dir", &v)) {
      if (!v || ndebug == sizeof debug_dirs / sizeof debug_dirs[0] - 1) {
        fprintf(stderr, "%s: --debug-dir needs a value (at most 16 of them)\n", PROG);
        return 2;
      }
      debug_dirs[ndebug++] = v;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "%s: unknown option %s\n", PROG, argv[i]);
      usage(stderr);
      return 2;
    } else if (file) {
      fprintf(stderr, "%s: only one profile at a time (got %s and %s)\n", PROG, file, argv[i]);
      return 2;
    } else {
      file = argv[i];
    }
  }
  enum report_format fmt;
  if (strcmp(format, "text") == 0)
    fmt = REPORT_TEXT;
  else if (strcmp(format, "folded") == 0)
    fmt = REPORT_FOLDED;
  else if (strcmp(format, "json") == 0)
    fmt = REPORT_JSON;
  else if (strcmp(format, "pprof") == 0)
    fmt = REPORT_PPROF;
  else if (strcmp(format, "html") == 0)
    fmt = REPORT_HTML;
  else {
    fprintf(stderr, "%s: unknown format \"%s\" (text, folded, json, pprof or html)\n", PROG, format);
    return 2;
  }
  if (diff_base) {
    int status = 2;
    if (!file)
      fprintf(stderr, "%s: --diff needs the base profile and the new one\n", PROG);
    else if (fmt != REPORT_TEXT && fmt != REPORT_JSON)
      fprintf(stderr, "%s: a diff is text or json\n", PROG);
    else
      status = diff_main(diff_base, file, fmt == REPORT_JSON, top, gates, ngates);
    for (size_t g = 0; g < ngates; g++)
      free((char *)gates[g].metric);
    return status;
  }
  for (size_t g = 0; g < ngates; g++)
    free((char *)gates[g].metric);
  if (ngates) {
    fprintf(stderr, "%s: --fail-on-growth goes with --diff\n", PROG);
    return 2;
  }
  if (!file) {
    fprintf(stderr, "%s: no profile given\n", PROG);
    usage(stderr);
    return 2;
  }
  if (fmt == REPORT_PPROF && !output) {
    fprintf(stderr, "%s: pprof output is binary: name a file with -o\n", PROG);
    return 2;
  }

  struct prof *p;
  if (read_profile(file, &p))
    return 1;
  struct prof_resym *resym = NULL;
  if (ndebug) {
    size_t named, unnamed;
    if (prof_resymbolize(p, debug_dirs, &resym, &named, &unnamed) < 0) {
      fprintf(stderr, "%s: out of memory naming the frames\n", PROG);
      prof_free(p);
      return 1;
    }
    fprintf(stderr, "%s: named %zu module+offset frames; %zu left without symbols\n", PROG, named, unnamed);
  }
  size_t metric = 0;
  if (metric_name) {
    int m = prof_metric_index(p, metric_name);
    if (m < 0) {
      fprintf(stderr, "%s: %s has no metric \"%s\"; it has:", PROG, file, metric_name);
      for (size_t k = 0; k < p->nmetrics; k++)
        fprintf(stderr, " %s", p->metric_name[k]);
      fputc('\n', stderr);
      prof_free(p);
      prof_resym_free(resym);
      return 2;
    }
    metric = (size_t)m;
  }
  int rc = report_write(p, fmt, metric, output);
  prof_free(p);
  prof_resym_free(resym);
  if (rc < 0) {
    fprintf(stderr, "%s: cannot write %s: %s\n", PROG, output ? output : "the report", rs_strerror(rc));
    return 1;
  }
  return 0;
}
