/* JSON emitter and text summary of the heaviest calling contexts. */
#include "summary.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void json_write_escaped(FILE *f, const char *s)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  putc('"', f);
  while (*p) {
    unsigned c = *p;
    if (c < 0x80) {
      switch (c) {
      case '"': fputs("\\\"", f); break;
      case '\\': fputs("\\\\", f); break;
      case '\b': fputs("\\b", f); break;
      case '\f': fputs("\\f", f); break;
      case '\n': fputs("\\n", f); break;
      case '\r': fputs("\\r", f); break;
      case '\t': fputs("\\t", f); break;
      default:
        if (c < 0x20) {
          fputs("\\u00", f);
          putc(hex[c >> 4], f);
          putc(hex[c & 15], f);
        } else {
          putc((int)c, f);
        }
      }
      p++;
      continue;
    }
    /* A multi-byte sequence is copied only when it is well-formed UTF-8 (no overlong forms, no
     * surrogates, nothing above U+10FFFF): symbol names from binaries are arbitrary bytes, and one bad
     * byte must not make the whole document unreadable. */
    size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
      len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0)
        lo = 0xa0;
      else if (c == 0xed)
        hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0)
        lo = 0x90;
      else if (c == 0xf4)
        hi = 0x8f;
    }
    int ok = len > 0 && p[1] >= lo && p[1] <= hi;
    for (size_t k = 2; ok && k < len; k++)
      ok = p[k] >= 0x80 && p[k] <= 0xbf;
    if (ok) {
      fwrite(p, 1, len, f);
      p += len;
    } else {
      fputs("\\ufffd", f);
      p++;
    }
  }
  putc('"', f);
}

void json_init(struct json_out *j, FILE *f, int pretty)
{
  memset(j, 0, sizeof *j);
  j->f = f;
  j->pretty = pretty;
}

static void newline_indent(struct json_out *j, int depth)
{
  if (!j->pretty)
    return;
  putc('\n', j->f);
  for (int i = 0; i < depth; i++)
    fputs("  ", j->f);
}

/* Everything a value needs before it: a separator in arrays, the key's presence in objects. */
static int before_value(struct json_out *j)
{
  if (j->err)
    return -1;
  if (j->done) {
    j->err = RS_E_BAD_ARG;
    return -1;
  }
  int d = j->depth;
  if (j->kind[d] == 'o') {
    if (!j->have_key[d]) {
      j->err = RS_E_BAD_ARG;
      return -1;
    }
    j->have_key[d] = 0;
  } else if (j->kind[d] == 'a') {
    if (j->count[d])
      putc(',', j->f);
    newline_indent(j, d);
  }
  if (j->count[d] < UINT8_MAX)
    j->count[d]++;
  return 0;
}

static void after_value(struct json_out *j)
{
  if (j->depth == 0)
    j->done = 1;
}

static void begin(struct json_out *j, char kind)
{
  if (before_value(j) < 0)
    return;
  if (j->depth >= JSON_MAX_DEPTH) {
    j->err = RS_E_BAD_ARG;
    return;
  }
  putc(kind == 'o' ? '{' : '[', j->f);
  j->depth++;
  j->kind[j->depth] = kind;
  j->count[j->depth] = 0;
  j->have_key[j->depth] = 0;
}

static void end(struct json_out *j, char kind)
{
  if (j->err)
    return;
  int d = j->depth;
  if (d == 0 || j->kind[d] != kind || j->have_key[d]) {
    j->err = RS_E_BAD_ARG;
    return;
  }
  if (j->count[d])
    newline_indent(j, d - 1);
  putc(kind == 'o' ? '}' : ']', j->f);
  j->depth--;
  after_value(j);
}

void json_begin_object(struct json_out *j) { begin(j, 'o'); }
void json_end_object(struct json_out *j) { end(j, 'o'); }
void json_begin_array(struct json_out *j) { begin(j, 'a'); }
void json_end_array(struct json_out *j) { end(j, 'a'); }

void json_key(struct json_out *j, const char *key)
{
  if (j->err)
    return;
  int d = j->depth;
  if (j->kind[d] != 'o' || j->have_key[d] || !key) {
    j->err = RS_E_BAD_ARG;
    return;
  }
  if (j->count[d])
    putc(',', j->f);
  newline_indent(j, d);
  json_write_escaped(j->f, key);
  fputs(j->pretty ? ": " : ":", j->f);
  j->have_key[d] = 1;
}

void json_string(struct json_out *j, const char *s)
{
  if (!s) {
    json_null(j);
    return;
  }
  if (before_value(j) < 0)
    return;
  json_write_escaped(j->f, s);
  after_value(j);
}

void json_int(struct json_out *j, int64_t v)
{
  if (before_value(j) < 0)
    return;
  fprintf(j->f, "%" PRId64, v);
  after_value(j);
}

void json_uint(struct json_out *j, uint64_t v)
{
  if (before_value(j) < 0)
    return;
  fprintf(j->f, "%" PRIu64, v);
  after_value(j);
}

void json_double(struct json_out *j, double v)
{
  if (!isfinite(v)) {
    json_null(j);
    return;
  }
  if (before_value(j) < 0)
    return;
  /* %.17g round-trips; it never prints inf/nan here, and always prints a JSON-valid number. */
  fprintf(j->f, "%.17g", v);
  after_value(j);
}

void json_bool(struct json_out *j, int v)
{
  if (before_value(j) < 0)
    return;
  fputs(v ? "true" : "false", j->f);
  after_value(j);
}

void json_null(struct json_out *j)
{
  if (before_value(j) < 0)
    return;
  fputs("null", j->f);
  after_value(j);
}

void json_kv_string(struct json_out *j, const char *key, const char *s) { json_key(j, key); json_string(j, s); }
void json_kv_int(struct json_out *j, const char *key, int64_t v) { json_key(j, key); json_int(j, v); }
void json_kv_uint(struct json_out *j, const char *key, uint64_t v) { json_key(j, key); json_uint(j, v); }
void json_kv_double(struct json_out *j, const char *key, double v) { json_key(j, key); json_double(j, v); }
void json_kv_bool(struct json_out *j, const char *key, int v) { json_key(j, key); json_bool(j, v); }

int json_finish(struct json_out *j)
{
  if (!j->err && (!j->done || j->depth != 0))
    j->err = RS_E_BAD_ARG;
  if (!j->err) {
    putc('\n', j->f);
    if (fflush(j->f) != 0 || ferror(j->f))
      j->err = errno ? -errno : -EIO;
  }
  return j->err;
}

const char *summary_format_bytes(char *buf, size_t len, int64_t bytes)
{
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  size_t u = 0;
  while ((v >= 1024 || v <= -1024) && u + 1 < sizeof units / sizeof *units) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%" PRId64 " B", bytes);
  else
    snprintf(buf, len, "%.1f %s", v, units[u]);
  return buf;
}

struct ranked {
  uint32_t node;
  int64_t value;
};

static int by_value_desc(const void *a, const void *b)
{
  const struct ranked *x = a, *y = b;
  if (x->value != y->value)
    return x->value > y->value ? -1 : 1;
  return x->node < y->node ? -1 : x->node > y->node;
}

static int is_bytes_unit(const char *unit)
{
  return unit && (strcmp(unit, "bytes") == 0 || strcmp(unit, "byte") == 0 || strcmp(unit, "B") == 0);
}

static void print_value(FILE *out, const struct profile_metric *m, int64_t v)
{
  fprintf(out, "%" PRId64, v);
  if (m->unit && *m->unit && strcmp(m->unit, "count") != 0)
    fprintf(out, " %s", m->unit);
  if (is_bytes_unit(m->unit) && (v >= 1024 || v <= -1024)) {
    char b[32];
    fprintf(out, " (%s)", summary_format_bytes(b, sizeof b, v));
  }
}

static void print_frames(FILE *out, uint64_t pc, profile_symbolize_fn sym, void *sym_ctx)
{
  struct sym_frame frames[PROFILE_MAX_INLINE];
  int n = 0;
  memset(frames, 0, sizeof frames);
  if (!sym || sym(sym_ctx, pc, frames, PROFILE_MAX_INLINE, &n) < 0 || n <= 0) {
    fprintf(out, "    at 0x%" PRIx64 "\n", pc);
    return;
  }
  if (n > PROFILE_MAX_INLINE)
    n = PROFILE_MAX_INLINE;
  for (int i = 0; i < n; i++) {
    const struct sym_frame *f = &frames[i];
    const char *name = f->function ? f->function : f->linkage_name;
    if (name)
      fprintf(out, "    at %s", name);
    else
      fprintf(out, "    at 0x%" PRIx64, pc);
    if (f->file)
      fprintf(out, " (%s:%d)", f->file, f->line > 0 ? f->line : 0);
    else if (!name && f->module)
      fprintf(out, " (%s)", f->module);
    fputs(i + 1 < n ? " [inlined]\n" : "\n", out);
  }
}

/* The nodes with a positive value of metric, largest first; *nr of them. The caller frees the array. */
static struct ranked *rank(const struct cct *t, size_t metric, size_t *nr)
{
  uint32_t count = cct_count(t);
  struct ranked *r = malloc(((size_t)count + 1) * sizeof *r);
  if (!r)
    return NULL;
  *nr = 0;
  for (uint32_t id = 1; id <= count; id++) {
    int64_t v = cct_get(t, id, metric);
    if (v > 0)
      r[(*nr)++] = (struct ranked){id, v};
  }
  qsort(r, *nr, sizeof *r, by_value_desc);
  return r;
}

/* A node's frame pcs (innermost first) in a buffer grown as needed; returns the count or -ENOMEM. */
static long node_path(const struct cct *t, uint32_t node, uint64_t **pcs, size_t *cap, int *truncated)
{
  size_t depth = cct_path(t, node, *pcs, *cap, truncated);
  if (depth > *cap) {
    uint64_t *p = realloc(*pcs, depth * sizeof *p);
    if (!p)
      return -ENOMEM;
    *pcs = p;
    *cap = depth;
    depth = cct_path(t, node, *pcs, *cap, truncated);
  }
  return (long)depth;
}

int summary_top_contexts(FILE *out, const struct cct *t, const struct profile_metric *metrics, size_t metric,
                         size_t n, const char *title, profile_symbolize_fn sym, void *sym_ctx)
{
  size_t nm = cct_nmetrics(t), nr = 0;
  if (metric >= nm || !metrics)
    return RS_E_BAD_ARG;
  struct ranked *r = rank(t, metric, &nr);
  size_t pcs_cap = 256;
  uint64_t *pcs = malloc(pcs_cap * sizeof *pcs);
  if (!r || !pcs) {
    free(r);
    free(pcs);
    return -ENOMEM;
  }
  if (title)
    fprintf(out, "%s\n", title);
  if (nr == 0)
    fputs("  (none)\n", out);
  int rc = 0;
  for (size_t i = 0; i < nr && i < n; i++) {
    uint32_t node = r[i].node;
    fprintf(out, "  #%zu: ", i + 1);
    print_value(out, &metrics[metric], r[i].value);
    for (size_t m = 0; m < nm; m++) {
      int64_t v = cct_get(t, node, m);
      if (m != metric && v)
        fprintf(out, "  %s=%" PRId64, metrics[m].name ? metrics[m].name : "?", v);
    }
    putc('\n', out);
    int truncated;
    long depth = node_path(t, node, &pcs, &pcs_cap, &truncated);
    if (depth < 0) {
      rc = (int)depth;
      break;
    }
    for (size_t k = 0; k < (size_t)depth; k++)
      print_frames(out, pcs[k], sym, sym_ctx);
    if (truncated)
      fputs("    ... [truncated: the stack window or --max-frames ended here]\n", out);
    fprintf(out, "    in thread %" PRIu32 "\n", cct_tid(t, node));
  }
  free(r);
  free(pcs);
  return rc;
}

static void json_frames(struct json_out *j, uint64_t pc, profile_symbolize_fn sym, void *sym_ctx)
{
  struct sym_frame frames[PROFILE_MAX_INLINE];
  char addr[32];
  int n = 0;
  memset(frames, 0, sizeof frames);
  snprintf(addr, sizeof addr, "0x%" PRIx64, pc);
  if (!sym || sym(sym_ctx, pc, frames, PROFILE_MAX_INLINE, &n) < 0 || n <= 0) {
    n = 1;
    memset(frames, 0, sizeof *frames);
  }
  if (n > PROFILE_MAX_INLINE)
    n = PROFILE_MAX_INLINE;
  for (int i = 0; i < n; i++) {
    const struct sym_frame *f = &frames[i];
    const char *name = f->function ? f->function : f->linkage_name;
    json_begin_object(j);
    json_kv_string(j, "function", name ? name : addr);
    json_kv_string(j, "file", f->file);
    json_kv_int(j, "line", f->line > 0 ? f->line : 0);
    json_kv_bool(j, "inlined", i + 1 < n);
    json_kv_string(j, "pc", addr);
    json_end_object(j);
  }
}

int summary_top_contexts_json(struct json_out *j, const struct cct *t, const struct profile_metric *metrics,
                              size_t metric, size_t n, profile_symbolize_fn sym, void *sym_ctx)
{
  size_t nm = cct_nmetrics(t), nr = 0;
  if (metric >= nm || !metrics)
    return RS_E_BAD_ARG;
  struct ranked *r = rank(t, metric, &nr);
  size_t pcs_cap = 256;
  uint64_t *pcs = malloc(pcs_cap * sizeof *pcs);
  int rc = 0;
  if (!r || !pcs) {
    free(r);
    free(pcs);
    return -ENOMEM;
  }
  json_begin_array(j);
  for (size_t i = 0; i < nr && i < n; i++) {
    uint32_t node = r[i].node;
    int truncated;
    long depth = node_path(t, node, &pcs, &pcs_cap, &truncated);
    if (depth < 0) {
      rc = (int)depth;
      break;
    }
    json_begin_object(j);
    json_kv_uint(j, "node", node);
    json_kv_uint(j, "thread", cct_tid(t, node));
    json_kv_bool(j, "truncated", truncated);
    json_key(j, "metrics");
    json_begin_object(j);
    for (size_t m = 0; m < nm; m++)
      json_kv_int(j, metrics[m].name ? metrics[m].name : "?", cct_get(t, node, m));
    json_end_object(j);
    json_key(j, "stack");
    json_begin_array(j);
    for (size_t k = 0; k < (size_t)depth; k++)
      json_frames(j, pcs[k], sym, sym_ctx);
    json_end_array(j);
    json_end_object(j);
  }
  json_end_array(j);
  free(r);
  free(pcs);
  return rc;
}
