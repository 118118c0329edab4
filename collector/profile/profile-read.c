/* drcctprof reader: decodes with protobuf-c, then validates every cross-reference before anything walks
 * the tree, so the report code can trust indexes and never follow a dangling id. */
#include "profile-read.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "drcctprof.pb-c.h"
#include "errors.h"
#include "u64map.h"

struct prof_priv {
  Drcctprof__Profile__Profile *pb;
  char **paths; /* full path per source file (index order), owned */
  size_t npaths;
};

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

#define INCONSISTENT(...) fail(err, errlen, RS_E_FORMAT, "inconsistent profile: " __VA_ARGS__)

static int str_ok(const Drcctprof__Profile__Profile *pb, int64_t idx)
{
  return idx >= 0 && (uint64_t)idx < pb->n_string_table;
}

void prof_free(struct prof *p)
{
  if (!p)
    return;
  struct prof_priv *pv = p->priv;
  if (pv) {
    if (pv->pb)
      drcctprof__profile__profile__free_unpacked(pv->pb, NULL);
    for (size_t i = 0; i < pv->npaths; i++)
      free(pv->paths[i]);
    free(pv->paths);
    free(pv);
  }
  free(p->mappings);
  free(p->metric_name);
  free(p->metric_unit);
  free(p->ctx);
  free(p->self);
  free(p->lines);
  free(p);
}

/* Maps each message's id to its index, rejecting 0 and duplicates. */
static int index_ids(struct u64map *m, size_t n, uint64_t (*id_of)(const void *, size_t), const void *arr,
                     const char *what, char *err, size_t errlen)
{
  for (size_t i = 0; i < n; i++) {
    uint64_t id = id_of(arr, i), old;
    if (id == 0)
      return INCONSISTENT("%s #%zu has id 0", what, i);
    if (u64map_get(m, id, &old))
      return INCONSISTENT("two %ss have id %" PRIu64, what, id);
    if (u64map_put(m, id, i) < 0)
      return fail(err, errlen, -ENOMEM, "out of memory");
  }
  return 0;
}

static uint64_t file_id(const void *a, size_t i) { return ((Drcctprof__Profile__SourceFile *const *)a)[i]->id; }
static uint64_t func_id(const void *a, size_t i) { return ((Drcctprof__Profile__Function *const *)a)[i]->id; }
static uint64_t loc_id(const void *a, size_t i) { return ((Drcctprof__Profile__Location *const *)a)[i]->id; }
static uint64_t map_id(const void *a, size_t i) { return ((Drcctprof__Profile__Mapping *const *)a)[i]->id; }
static uint64_t ctx_id(const void *a, size_t i) { return ((Drcctprof__Profile__Context *const *)a)[i]->id; }

struct id_index {
  uint64_t id;
  size_t index;
};

static int by_id(const void *a, const void *b)
{
  const struct id_index *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int build(struct prof *p, char *err, size_t errlen)
{
  struct prof_priv *pv = p->priv;
  const Drcctprof__Profile__Profile *pb = pv->pb;
  struct u64map files, funcs, locs, ctxs, maps;
  struct id_index *order = NULL;
  size_t *loc_first = NULL, *last_child = NULL;
  int rc;

  u64map_init(&files);
  u64map_init(&funcs);
  u64map_init(&locs);
  u64map_init(&maps);
  u64map_init(&ctxs);

  if (pb->n_string_table == 0 || pb->string_table[0][0] != '\0') {
    rc = fail(err, errlen, RS_E_FORMAT, "not a drcctprof profile (its string table does not start with \"\")");
    goto out;
  }

  p->nmetrics = pb->n_metric_type;
  p->metric_name = calloc(p->nmetrics + 1, sizeof *p->metric_name);
  p->metric_unit = calloc(p->nmetrics + 1, sizeof *p->metric_unit);
  if (!p->metric_name || !p->metric_unit) {
    rc = fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t m = 0; m < p->nmetrics; m++) {
    const Drcctprof__Profile__MetricType *mt = pb->metric_type[m];
    if (!str_ok(pb, mt->des) || !str_ok(pb, mt->unit)) {
      rc = INCONSISTENT("metric type #%zu names a string that does not exist", m);
      goto out;
    }
    p->metric_name[m] = pb->string_table[mt->des];
    p->metric_unit[m] = pb->string_table[mt->unit];
  }

  /* Source files and their full paths. */
  if ((rc = index_ids(&files, pb->n_source_file, file_id, pb->source_file, "source file", err, errlen)) < 0)
    goto out;
  pv->paths = calloc(pb->n_source_file + 1, sizeof *pv->paths);
  if (!pv->paths) {
    rc = fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < pb->n_source_file; i++) {
    const Drcctprof__Profile__SourceFile *sf = pb->source_file[i];
    if (!str_ok(pb, sf->filename) || !str_ok(pb, sf->location_path)) {
      rc = INCONSISTENT("source file %" PRIu64 " names a string that does not exist", sf->id);
      goto out;
    }
    const char *name = pb->string_table[sf->filename], *dir = pb->string_table[sf->location_path];
    size_t nl = strlen(name), dl = strlen(dir);
    char *full = malloc(nl + dl + 2);
    if (!full) {
      rc = fail(err, errlen, -ENOMEM, "out of memory");
      goto out;
    }
    /* location_path is the full path (DrCCTProf's writer, and ours since) or, in older files of ours, the
     * directory of filename. */
    int whole = dl >= nl && strcmp(dir + dl - nl, name) == 0 && (dl == nl || dir[dl - nl - 1] == '/');
    if (whole || !nl)
      snprintf(full, nl + dl + 2, "%s", dir);
    else if (dl && dir[dl - 1] != '/')
      snprintf(full, nl + dl + 2, "%s/%s", dir, name);
    else
      snprintf(full, nl + dl + 2, "%s%s", dir, name);
    pv->paths[i] = full;
    pv->npaths = i + 1;
  }

  if ((rc = index_ids(&funcs, pb->n_function, func_id, pb->function, "function", err, errlen)) < 0)
    goto out;
  for (size_t i = 0; i < pb->n_function; i++) {
    const Drcctprof__Profile__Function *f = pb->function[i];
    uint64_t v;
    if (!str_ok(pb, f->name) || !str_ok(pb, f->system_name)) {
      rc = INCONSISTENT("function %" PRIu64 " names a string that does not exist", f->id);
      goto out;
    }
    if (f->source_file_id && !u64map_get(&files, f->source_file_id, &v)) {
      rc = INCONSISTENT("function %" PRIu64 " refers to source file %" PRIu64 ", which does not exist", f->id,
                        f->source_file_id);
      goto out;
    }
  }

  /* Mappings (rsprof's addition; absent from other writers' files): the modules locations point into. */
  if ((rc = index_ids(&maps, pb->n_mapping, map_id, pb->mapping, "mapping", err, errlen)) < 0)
    goto out;
  p->mappings = calloc(pb->n_mapping + 1, sizeof *p->mappings);
  if (!p->mappings) {
    rc = fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < pb->n_mapping; i++) {
    const Drcctprof__Profile__Mapping *m = pb->mapping[i];
    if (!str_ok(pb, m->filename) || !str_ok(pb, m->build_id)) {
      rc = INCONSISTENT("mapping %" PRIu64 " names a string that does not exist", m->id);
      goto out;
    }
    p->mappings[i].file = pb->string_table[m->filename];
    p->mappings[i].build_id = pb->string_table[m->build_id];
  }
  p->nmappings = pb->n_mapping;

  /* Locations: flatten their lines into p->lines. */
  if ((rc = index_ids(&locs, pb->n_location, loc_id, pb->location, "location", err, errlen)) < 0)
    goto out;
  size_t total = 0;
  for (size_t i = 0; i < pb->n_location; i++) {
    if (pb->location[i]->n_line > SIZE_MAX / 2 - total) {
      rc = INCONSISTENT("too many lines");
      goto out;
    }
    total += pb->location[i]->n_line;
  }
  p->lines = calloc(total + 1, sizeof *p->lines);
  loc_first = calloc(pb->n_location + 1, sizeof *loc_first);
  if (!p->lines || !loc_first) {
    rc = fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < pb->n_location; i++) {
    const Drcctprof__Profile__Location *l = pb->location[i];
    loc_first[i] = p->nlines;
    for (size_t k = 0; k < l->n_line; k++) {
      uint64_t fi;
      if (!u64map_get(&funcs, l->line[k]->function_id, &fi)) {
        rc = INCONSISTENT("location %" PRIu64 " refers to function %" PRIu64 ", which does not exist", l->id,
                          l->line[k]->function_id);
        goto out;
      }
      const Drcctprof__Profile__Function *f = pb->function[fi];
      struct prof_line *pl = &p->lines[p->nlines++];
      pl->function = pb->string_table[f->name];
      pl->system_name = pb->string_table[f->system_name];
      pl->file = NULL;
      if (f->source_file_id) {
        uint64_t si;
        u64map_get(&files, f->source_file_id, &si);
        pl->file = pv->paths[si][0] ? pv->paths[si] : NULL;
      }
      pl->line = l->line[k]->line;
    }
  }

  /* Contexts, sorted by id so that parents precede children. */
  if ((rc = index_ids(&ctxs, pb->n_context, ctx_id, pb->context, "context", err, errlen)) < 0)
    goto out;
  p->nctx = pb->n_context;
  order = calloc(p->nctx + 1, sizeof *order);
  p->ctx = calloc(p->nctx + 1, sizeof *p->ctx);
  last_child = calloc(p->nctx + 1, sizeof *last_child);
  if (!order || !p->ctx || !last_child) {
    rc = fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < p->nctx; i++)
    order[i] = (struct id_index){pb->context[i]->id, i};
  qsort(order, p->nctx, sizeof *order, by_id);
  u64map_free(&ctxs);
  u64map_init(&ctxs);
  for (size_t i = 0; i < p->nctx; i++)
    if (u64map_put(&ctxs, order[i].id, i) < 0) {
      rc = fail(err, errlen, -ENOMEM, "out of memory");
      goto out;
    }
  for (size_t i = 0; i < p->nctx; i++) {
    const Drcctprof__Profile__Context *c = pb->context[order[i].index];
    struct prof_context *pc = &p->ctx[i];
    uint64_t v;
    pc->id = c->id;
    pc->parent = pc->first_child = pc->next_sibling = pc->mapping = PROF_NONE;
    last_child[i] = PROF_NONE;
    if (c->parent_id) {
      if (c->parent_id >= c->id) {
        rc = INCONSISTENT("context %" PRIu64 " has parent %" PRIu64 ", which is not smaller than its id", c->id,
                          c->parent_id);
        goto out;
      }
      if (!u64map_get(&ctxs, c->parent_id, &v)) {
        rc = INCONSISTENT("context %" PRIu64 " has parent %" PRIu64 ", which does not exist", c->id, c->parent_id);
        goto out;
      }
      pc->parent = v;
      pc->depth = p->ctx[v].depth + 1;
      if (last_child[v] == PROF_NONE)
        p->ctx[v].first_child = i;
      else
        p->ctx[last_child[v]].next_sibling = i;
      last_child[v] = i;
    }
    if (c->location_id) {
      if (!u64map_get(&locs, c->location_id, &v)) {
        rc = INCONSISTENT("context %" PRIu64 " refers to location %" PRIu64 ", which does not exist", c->id,
                          c->location_id);
        goto out;
      }
      pc->first_line = loc_first[v];
      pc->nlines = pb->location[v]->n_line;
      const Drcctprof__Profile__Location *l = pb->location[v];
      pc->mapping = PROF_NONE;
      pc->address = l->address;
      if (l->mapping_id) {
        if (!u64map_get(&maps, l->mapping_id, &v)) {
          rc = INCONSISTENT("location %" PRIu64 " refers to mapping %" PRIu64 ", which does not exist", l->id,
                            l->mapping_id);
          goto out;
        }
        pc->mapping = v;
      }
    }
  }
  /* Listed children must agree with the parent ids (checked after all parents, so that a bad parent id is
   * reported as such rather than as a child mismatch). */
  for (size_t i = 0; i < p->nctx; i++) {
    const Drcctprof__Profile__Context *c = pb->context[order[i].index];
    for (size_t k = 0; k < c->n_children_id; k++) {
      uint64_t ci;
      if (!u64map_get(&ctxs, c->children_id[k], &ci)) {
        rc = INCONSISTENT("context %" PRIu64 " lists child %" PRIu64 ", which does not exist", c->id,
                          c->children_id[k]);
        goto out;
      }
      if (pb->context[order[ci].index]->parent_id != c->id) {
        rc = INCONSISTENT("context %" PRIu64 " lists child %" PRIu64 ", whose parent is %" PRIu64, c->id,
                          c->children_id[k], pb->context[order[ci].index]->parent_id);
        goto out;
      }
    }
  }

  /* Samples: one metric per metric type; several samples of one context add up. */
  p->self = calloc(p->nctx * (p->nmetrics ? p->nmetrics : 1) + 1, sizeof *p->self);
  if (!p->self) {
    rc = fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < pb->n_sample; i++) {
    const Drcctprof__Profile__Sample *s = pb->sample[i];
    uint64_t ci;
    if (!u64map_get(&ctxs, s->context_id, &ci)) {
      rc = INCONSISTENT("sample #%zu refers to context %" PRIu64 ", which does not exist", i, s->context_id);
      goto out;
    }
    if (s->n_metric != p->nmetrics) {
      rc = INCONSISTENT("sample #%zu has %zu metrics, but the profile has %zu metric types", i, s->n_metric,
                        p->nmetrics);
      goto out;
    }
    p->ctx[ci].has_sample = 1;
    for (size_t m = 0; m < p->nmetrics; m++) {
      /* The viewer reads uint_value; writers that only fill int_value (or write a negative) still count. */
      const Drcctprof__Profile__Metric *mv = s->metric[m];
      int64_t v = mv->uint_value ? (int64_t)mv->uint_value : mv->int_value;
      int64_t *dst = &p->self[ci * p->nmetrics + m];
      *dst = (int64_t)((uint64_t)*dst + (uint64_t)v);
    }
  }
  rc = 0;
out:
  u64map_free(&files);
  u64map_free(&funcs);
  u64map_free(&locs);
  u64map_free(&maps);
  u64map_free(&ctxs);
  free(order);
  free(loc_first);
  free(last_child);
  return rc;
}

int prof_parse(const uint8_t *data, size_t len, struct prof **out, char *err, size_t errlen)
{
  struct prof *p = calloc(1, sizeof *p);
  struct prof_priv *pv = calloc(1, sizeof *pv);
  if (!p || !pv) {
    free(p);
    free(pv);
    return fail(err, errlen, -ENOMEM, "out of memory");
  }
  p->priv = pv;
  pv->pb = drcctprof__profile__profile__unpack(NULL, len, data);
  if (!pv->pb) {
    prof_free(p);
    return fail(err, errlen, RS_E_FORMAT, "not a drcctprof profile (protobuf decoding failed)");
  }
  int rc = build(p, err, errlen);
  if (rc < 0) {
    prof_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int prof_read(const char *path, struct prof **out, char *err, size_t errlen)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return fail(err, errlen, -errno, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return fail(err, errlen, RS_E_FORMAT, "%s is not a regular file", path);
  }
  size_t len = (size_t)st.st_size;
  uint8_t *data = malloc(len ? len : 1);
  if (!data) {
    fclose(f);
    return fail(err, errlen, -ENOMEM, "%s: out of memory (%zu bytes)", path, len);
  }
  size_t got = fread(data, 1, len, f);
  int rd_err = ferror(f);
  fclose(f);
  if (rd_err || got != len) {
    free(data);
    return fail(err, errlen, -EIO, "cannot read %s", path);
  }
  char inner[400];
  int rc = prof_parse(data, len, out, inner, sizeof inner);
  free(data);
  if (rc < 0)
    return fail(err, errlen, rc, "%s: %s", path, inner);
  return 0;
}

int prof_metric_index(const struct prof *p, const char *name)
{
  for (size_t m = 0; m < p->nmetrics; m++)
    if (strcmp(p->metric_name[m], name) == 0)
      return (int)m;
  return -1;
}

void prof_inclusive(const struct prof *p, size_t metric, int64_t *incl)
{
  for (size_t i = 0; i < p->nctx; i++)
    incl[i] = metric < p->nmetrics ? p->self[i * p->nmetrics + metric] : 0;
  /* Parents precede children in id order, so a backward pass folds every subtree upward. */
  for (size_t i = p->nctx; i-- > 0;)
    if (p->ctx[i].parent != PROF_NONE)
      incl[p->ctx[i].parent] = (int64_t)((uint64_t)incl[p->ctx[i].parent] + (uint64_t)incl[i]);
}
