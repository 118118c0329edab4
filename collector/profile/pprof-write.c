/* pprof writer: a profile read back from drcctprof, encoded as a gzip-compressed profile.proto (the format
 * of `go tool pprof`, Pyroscope and Parca), with a small protobuf encoder of its own. */
#include "pprof-write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "errors.h"
#include "outfile.h"
#include "profile-strmap.h"
#include "u64map.h"

/* profile.proto field numbers (package perftools.profiles). */
enum {
  PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE = 2, PROFILE_MAPPING = 3, PROFILE_LOCATION = 4, PROFILE_FUNCTION = 5,
  PROFILE_STRING_TABLE = 6, PROFILE_COMMENT = 13, PROFILE_DEFAULT_SAMPLE_TYPE = 14,
  VALUE_TYPE_TYPE = 1, VALUE_TYPE_UNIT = 2,
  SAMPLE_LOCATION_ID = 1, SAMPLE_VALUE = 2, SAMPLE_LABEL = 3,
  LABEL_KEY = 1, LABEL_STR = 2, LABEL_NUM = 3,
  MAPPING_ID = 1, MAPPING_MEMORY_START = 2, MAPPING_MEMORY_LIMIT = 3, MAPPING_FILENAME = 5, MAPPING_BUILD_ID = 6,
  MAPPING_HAS_FUNCTIONS = 7, MAPPING_HAS_FILENAMES = 8, MAPPING_HAS_LINE_NUMBERS = 9, MAPPING_HAS_INLINE_FRAMES = 10,
  LOCATION_ID = 1, LOCATION_MAPPING_ID = 2, LOCATION_ADDRESS = 3, LOCATION_LINE = 4,
  LINE_FUNCTION_ID = 1, LINE_LINE = 2,
  FUNCTION_ID = 1, FUNCTION_NAME = 2, FUNCTION_SYSTEM_NAME = 3, FUNCTION_FILENAME = 4,
};
enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

/* Encoded messages can be large (one sample per context): no limit but memory. */
#define PB_LIMIT ((size_t)1 << 40)

static int pb_varint(struct rs_buf *b, uint64_t v)
{
  uint8_t tmp[10];
  return rs_buf_append(b, tmp, rs_varint(tmp, v));
}

static int pb_uint(struct rs_buf *b, unsigned field, uint64_t v)
{
  int rc = pb_varint(b, (uint64_t)field << 3 | WIRE_VARINT);
  return rc ? rc : pb_varint(b, v);
}

static int pb_bytes(struct rs_buf *b, unsigned field, const void *data, size_t len)
{
  int rc = pb_varint(b, (uint64_t)field << 3 | WIRE_LEN);
  if (!rc)
    rc = pb_varint(b, len);
  return rc ? rc : rs_buf_append(b, data, len);
}

struct pprof_writer {
  const struct prof *p;
  struct pstrmap strings;
  struct pstrmap funcs;      /* "name\nsystem_name\nfile" -> function index (id = index + 1) */
  struct u64map loc_of_line; /* a drcctprof location (its first line's index) -> pprof location id */
  uint64_t nlocs;
  struct rs_buf out, msg, sub, packed;
  double *scale;             /* per metric: microseconds become nanoseconds */
};

static int str_id(struct pprof_writer *w, const char *s, uint64_t *id)
{
  uint32_t i;
  int rc = pstrmap_intern(&w->strings, s ? s : "", &i, NULL);
  *id = i;
  return rc;
}

/* A root the writer adds (PROCESS[pid] ..., THREAD[tid]); its number goes into *num. */
static int root_number(const char *name, const char *prefix, int64_t *num)
{
  size_t n = strlen(prefix);
  if (strncmp(name, prefix, n) != 0)
    return 0;
  char *end;
  long long v = strtoll(name + n, &end, 10);
  if (end == name + n || *end != ']')
    return 0;
  *num = v;
  return 1;
}

static int function_id(struct pprof_writer *w, const struct prof_line *l, uint64_t *id)
{
  size_t klen = strlen(l->function) + strlen(l->system_name) + (l->file ? strlen(l->file) : 0) + 3;
  char *key = malloc(klen);
  if (!key)
    return -ENOMEM;
  snprintf(key, klen, "%s\n%s\n%s", l->function, l->system_name, l->file ? l->file : "");
  uint32_t idx;
  int added, rc = pstrmap_intern(&w->funcs, key, &idx, &added);
  free(key);
  if (rc)
    return rc;
  *id = (uint64_t)idx + 1;
  if (!added)
    return 0;
  uint64_t name, sys, file;
  if ((rc = str_id(w, l->function[0] ? l->function : l->system_name, &name)) ||
      (rc = str_id(w, l->system_name, &sys)) || (rc = str_id(w, l->file, &file)))
    return rc;
  rs_buf_reset(&w->msg);
  if ((rc = pb_uint(&w->msg, FUNCTION_ID, *id)) || (rc = pb_uint(&w->msg, FUNCTION_NAME, name)) ||
      (rc = pb_uint(&w->msg, FUNCTION_SYSTEM_NAME, sys)) || (rc = pb_uint(&w->msg, FUNCTION_FILENAME, file)))
    return rc;
  return pb_bytes(&w->out, PROFILE_FUNCTION, w->msg.data, w->msg.len);
}

/* The pprof location of context c: one per drcctprof location (one per program counter), its inline chain
 * as several lines, innermost first, as both formats order them. */
static int location_id(struct pprof_writer *w, const struct prof_context *c, uint64_t *id)
{
  uint64_t v;
  if (u64map_get(&w->loc_of_line, c->first_line, &v)) {
    *id = v;
    return 0;
  }
  *id = ++w->nlocs;
  int rc = u64map_put(&w->loc_of_line, c->first_line, *id);
  if (rc)
    return rc;
  rs_buf_reset(&w->sub);
  if ((rc = pb_uint(&w->sub, LOCATION_ID, *id)))
    return rc;
  if (c->mapping != PROF_NONE && ((rc = pb_uint(&w->sub, LOCATION_MAPPING_ID, c->mapping + 1)) ||
                                  (rc = pb_uint(&w->sub, LOCATION_ADDRESS, c->address))))
    return rc;
  for (size_t k = 0; k < c->nlines; k++) {
    const struct prof_line *l = &w->p->lines[c->first_line + k];
    uint64_t fid;
    if ((rc = function_id(w, l, &fid)))
      return rc;
    rs_buf_reset(&w->msg);
    if ((rc = pb_uint(&w->msg, LINE_FUNCTION_ID, fid)) ||
        (l->line > 0 && (rc = pb_uint(&w->msg, LINE_LINE, (uint64_t)l->line))) ||
        (rc = pb_bytes(&w->sub, LOCATION_LINE, w->msg.data, w->msg.len)))
      return rc;
  }
  return pb_bytes(&w->out, PROFILE_LOCATION, w->sub.data, w->sub.len);
}

static int label(struct rs_buf *b, struct pprof_writer *w, const char *key, int64_t num)
{
  uint64_t k;
  int rc = str_id(w, key, &k);
  struct rs_buf l;
  rs_buf_init(&l, 64);
  if (!rc)
    rc = pb_uint(&l, LABEL_KEY, k);
  if (!rc)
    rc = pb_uint(&l, LABEL_NUM, (uint64_t)num);
  if (!rc)
    rc = pb_bytes(b, SAMPLE_LABEL, l.data, l.len);
  rs_buf_free(&l);
  return rc;
}

/* One sample per context with a value: its frames leaf first, down to (not including) the added roots. */
static int write_sample(struct pprof_writer *w, size_t ci)
{
  const struct prof *p = w->p;
  const int64_t *self = &p->self[ci * p->nmetrics];
  int any = 0;
  for (size_t m = 0; m < p->nmetrics; m++)
    any |= self[m] != 0;
  if (!any)
    return 0;
  int64_t pid = -1, tid = -1;
  int rc;
  rs_buf_reset(&w->packed);
  for (size_t c = ci; c != PROF_NONE; c = p->ctx[c].parent) {
    const struct prof_context *x = &p->ctx[c];
    const char *name = x->nlines ? p->lines[x->first_line].function : "";
    if (x->depth <= 1 && root_number(name, "THREAD[", &tid))
      continue;
    if (x->depth == 0 && root_number(name, "PROCESS[", &pid))
      continue;
    uint64_t loc;
    if ((rc = location_id(w, x, &loc)) || (rc = pb_varint(&w->packed, loc)))
      return rc;
  }
  rs_buf_reset(&w->sub);
  if ((rc = pb_bytes(&w->sub, SAMPLE_LOCATION_ID, w->packed.data, w->packed.len)))
    return rc;
  rs_buf_reset(&w->packed);
  for (size_t m = 0; m < p->nmetrics; m++)
    if ((rc = pb_varint(&w->packed, (uint64_t)(int64_t)((double)self[m] * w->scale[m]))))
      return rc;
  if ((rc = pb_bytes(&w->sub, SAMPLE_VALUE, w->packed.data, w->packed.len)))
    return rc;
  if (tid >= 0 && (rc = label(&w->sub, w, "thread", tid)))
    return rc;
  if (pid >= 0 && (rc = label(&w->sub, w, "process", pid)))
    return rc;
  return pb_bytes(&w->out, PROFILE_SAMPLE, w->sub.data, w->sub.len);
}

/* pprof's units: bytes, count, nanoseconds. */
static const char *pprof_unit(const char *unit, double *scale)
{
  *scale = 1;
  if (strcmp(unit, "microseconds") == 0) {
    *scale = 1000;
    return "nanoseconds";
  }
  if (strcmp(unit, "milliseconds") == 0) {
    *scale = 1e6;
    return "nanoseconds";
  }
  return unit;
}

/* One mapping per module. Addresses are offsets in the module (the profile keeps no load addresses, which
 * differ from run to run), so each mapping starts at 0 and reaches past its highest offset. */
static int write_mappings(struct pprof_writer *w)
{
  const struct prof *p = w->p;
  uint64_t *limit = calloc(p->nmappings ? p->nmappings : 1, sizeof *limit);
  if (!limit)
    return -ENOMEM;
  for (size_t c = 0; c < p->nctx; c++)
    if (p->ctx[c].mapping != PROF_NONE && p->ctx[c].address >= limit[p->ctx[c].mapping])
      limit[p->ctx[c].mapping] = p->ctx[c].address + 1;
  int rc = 0;
  for (size_t m = 0; m < p->nmappings && !rc; m++) {
    uint64_t file, build_id;
    rs_buf_reset(&w->msg);
    if ((rc = str_id(w, p->mappings[m].file, &file)) || (rc = str_id(w, p->mappings[m].build_id, &build_id)) ||
        (rc = pb_uint(&w->msg, MAPPING_ID, m + 1)) || (rc = pb_uint(&w->msg, MAPPING_MEMORY_START, 0)) ||
        (rc = pb_uint(&w->msg, MAPPING_MEMORY_LIMIT, limit[m])) || (rc = pb_uint(&w->msg, MAPPING_FILENAME, file)) ||
        (rc = pb_uint(&w->msg, MAPPING_BUILD_ID, build_id)) || (rc = pb_uint(&w->msg, MAPPING_HAS_FUNCTIONS, 1)) ||
        (rc = pb_uint(&w->msg, MAPPING_HAS_FILENAMES, 1)) || (rc = pb_uint(&w->msg, MAPPING_HAS_LINE_NUMBERS, 1)) ||
        (rc = pb_uint(&w->msg, MAPPING_HAS_INLINE_FRAMES, 1)))
      break;
    rc = pb_bytes(&w->out, PROFILE_MAPPING, w->msg.data, w->msg.len);
  }
  free(limit);
  return rc;
}

static int encode(struct pprof_writer *w, const char *comment)
{
  const struct prof *p = w->p;
  int rc;
  uint64_t s;
  if ((rc = str_id(w, "", &s)))
    return rc;
  for (size_t m = 0; m < p->nmetrics; m++) {
    uint64_t type, unit;
    const char *u = pprof_unit(p->metric_unit[m], &w->scale[m]);
    rs_buf_reset(&w->msg);
    if ((rc = str_id(w, p->metric_name[m], &type)) || (rc = str_id(w, u, &unit)) ||
        (rc = pb_uint(&w->msg, VALUE_TYPE_TYPE, type)) || (rc = pb_uint(&w->msg, VALUE_TYPE_UNIT, unit)) ||
        (rc = pb_bytes(&w->out, PROFILE_SAMPLE_TYPE, w->msg.data, w->msg.len)))
      return rc;
  }
  if ((rc = write_mappings(w)))
    return rc;
  for (size_t c = 0; c < p->nctx; c++)
    if ((rc = write_sample(w, c)))
      return rc;
  if (comment) {
    uint64_t id;
    if ((rc = str_id(w, comment, &id)) || (rc = pb_uint(&w->out, PROFILE_COMMENT, id)))
      return rc;
  }
  if (p->nmetrics) {
    /* pprof would show the last sample type by default; the first is the module's main metric */
    uint64_t id;
    if ((rc = str_id(w, p->metric_name[0], &id)) || (rc = pb_uint(&w->out, PROFILE_DEFAULT_SAMPLE_TYPE, id)))
      return rc;
  }
  for (size_t i = 0; i < w->strings.count; i++)
    if ((rc = pb_bytes(&w->out, PROFILE_STRING_TABLE, w->strings.keys[i], strlen(w->strings.keys[i]))))
      return rc;
  return 0;
}

int pprof_write(const struct prof *p, const char *comment, const char *path)
{
  struct pprof_writer w = {.p = p};
  pstrmap_init(&w.strings);
  pstrmap_init(&w.funcs);
  u64map_init(&w.loc_of_line);
  rs_buf_init(&w.out, PB_LIMIT);
  rs_buf_init(&w.msg, PB_LIMIT);
  rs_buf_init(&w.sub, PB_LIMIT);
  rs_buf_init(&w.packed, PB_LIMIT);
  w.scale = calloc(p->nmetrics ? p->nmetrics : 1, sizeof *w.scale);
  int rc = w.scale ? encode(&w, comment) : -ENOMEM;

  /* Written beside path and renamed, so a reader never sees half a file (a device or FIFO: in place). */
  size_t tlen = strlen(path) + 16;
  char *tmp = malloc(tlen);
  if (!rc && !tmp)
    rc = -ENOMEM;
  if (!rc) {
    int in_place = outfile_in_place(path);
    snprintf(tmp, tlen, "%s.tmp%ld", path, (long)getpid());
    gzFile gz = gzopen(in_place ? path : tmp, "wb9");
    if (!gz) {
      rc = errno ? -errno : -EIO;
    } else {
      int wrote = w.out.len == 0 || gzwrite(gz, w.out.data, (unsigned)w.out.len) == (int)w.out.len;
      if (gzclose(gz) != Z_OK || !wrote)
        rc = -EIO;
      if (!rc && !in_place && rename(tmp, path) != 0)
        rc = -errno;
      if (rc && !in_place)
        unlink(tmp);
    }
  }
  free(tmp);
  free(w.scale);
  rs_buf_free(&w.out);
  rs_buf_free(&w.msg);
  rs_buf_free(&w.sub);
  rs_buf_free(&w.packed);
  u64map_free(&w.loc_of_line);
  pstrmap_free(&w.funcs);
  pstrmap_free(&w.strings);
  return rc;
}
