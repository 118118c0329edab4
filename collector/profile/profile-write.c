/* drcctprof writer: symbolizes each distinct pc once, interns functions, files and strings, then streams
 * the Profile message field by field (contexts and samples are packed one at a time, so memory does not
 * grow with a second copy of the tree) into a temporary file that is renamed over the target. */
#include "profile-write.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "drcctprof.pb-c.h"
#include "errors.h"
#include "outfile.h"
#include "profile-strmap.h"
#include "unnamed.h"
#include "u64map.h"

/* A location under construction: its lines are a slice of the writer's line array. */
struct wloc {
  size_t first_line, nlines;
  uint64_t mapping_id, address; /* the module (0: none known) and the offset in it */
};

/* A module that locations point into (id = index + 1); strings are string-table indexes. */
struct wmap {
  int64_t filename, build_id;
};

struct writer {
  const struct cct *t;
  profile_symbolize_fn sym;
  void *sym_ctx;
  const struct profile_info *info;

  struct pstrmap strings; /* the string table; index 0 is "" */
  struct pstrmap fkeys;   /* function identity -> function index (id = index + 1) */
  struct pstrmap files;   /* full source path -> file index (id = index + 2: id 1 is the empty entry) */
  struct pstrmap modules; /* module path -> mapping index (id = index + 1) */
  struct wmap *maps;
  size_t nmaps, maps_cap;
  Drcctprof__Profile__Function *funcs;
  size_t nfuncs, funcs_cap;
  Drcctprof__Profile__SourceFile *srcs;
  size_t nsrcs, srcs_cap;
  Drcctprof__Profile__Line *lines;
  size_t nlines, lines_cap;
  struct wloc *locs;      /* location index (id = index + 1) */
  size_t nlocs, locs_cap;
  struct u64map loc_of_pc;
  uint64_t *space_of;  /* per node: the image its process root names (0: the first process's) */
  uint64_t space;      /* the image of the frame being symbolized */
  struct u64map loc_of_tid;
  uint32_t loc_process, loc_truncated; /* 0 until created */
  uint32_t *node_loc;     /* location id per cct node */

  FILE *f;
  int io_error;
};

/* Grows a typed array by one element; returns the new element's index through *i. */
static int push(void **arr, size_t *n, size_t *cap, size_t elem, size_t *i)
{
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, c * elem);
    if (!p)
      return -ENOMEM;
    *arr = p;
    *cap = c;
  }
  *i = (*n)++;
  return 0;
}

static int str_index(struct writer *w, const char *s, int64_t *idx)
{
  uint32_t i;
  int rc = pstrmap_intern(&w->strings, s ? s : "", &i, NULL);
  *idx = i;
  return rc;
}

static const char *base_name(const char *path)
{
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* Appends a source file entry for path ("" for the empty entry); its id is its index + 1. */
static int add_source_file(struct writer *w, const char *path, uint64_t *id)
{
  size_t i;
  int rc = push((void **)&w->srcs, &w->nsrcs, &w->srcs_cap, sizeof *w->srcs, &i);
  if (rc < 0)
    return rc;
  Drcctprof__Profile__SourceFile init = DRCCTPROF__PROFILE__SOURCE_FILE__INIT;
  Drcctprof__Profile__SourceFile *sf = &w->srcs[i];
  *sf = init;
  sf->id = i + 1;
  /* The full path in both fields, as DrCCTProf's own writer does: the viewer opens location_path as the
   * file (click-to-source, the Flat view) and shows filename. */
  if ((rc = str_index(w, path, &sf->filename)) < 0 || (rc = str_index(w, path, &sf->location_path)) < 0)
    return rc;
  *id = sf->id;
  return 0;
}

/* Returns the id of the source file with this path, creating it when new. A function without a file gets
 * the empty entry, id 1, made first: the viewer follows every function's source-file id, so each must exist. */
static int source_file_id(struct writer *w, const char *path, uint64_t *id)
{
  uint32_t idx;
  int added, rc;
  if (w->nsrcs == 0 && (rc = add_source_file(w, "", id)) < 0)
    return rc;
  *id = 1;
  if (!path || !*path)
    return 0;
  if ((rc = pstrmap_intern(&w->files, path, &idx, &added)) < 0)
    return rc;
  if (added && (rc = add_source_file(w, path, id)) < 0)
    return rc;
  *id = (uint64_t)idx + 2; /* the entry after the empty one */
  return 0;
}

/* Returns the id of the function (name, system name, file, start line), creating it when new. */
static int function_id(struct writer *w, const char *name, const char *sysname, const char *file,
                       int64_t start_line, uint64_t *id)
{
  int64_t n, s;
  uint64_t fid;
  int rc, added;
  if ((rc = str_index(w, name, &n)) < 0 || (rc = str_index(w, sysname ? sysname : name, &s)) < 0 ||
      (rc = source_file_id(w, file, &fid)) < 0)
    return rc;
  char key[96];
  snprintf(key, sizeof key, "%" PRId64 ":%" PRId64 ":%" PRIu64 ":%" PRId64, n, s, fid, start_line);
  uint32_t idx;
  if ((rc = pstrmap_intern(&w->fkeys, key, &idx, &added)) < 0)
    return rc;
  if (added) {
    size_t i;
    if ((rc = push((void **)&w->funcs, &w->nfuncs, &w->funcs_cap, sizeof *w->funcs, &i)) < 0)
      return rc;
    Drcctprof__Profile__Function init = DRCCTPROF__PROFILE__FUNCTION__INIT;
    w->funcs[i] = init;
    w->funcs[i].id = i + 1;
    w->funcs[i].name = n;
    w->funcs[i].system_name = s;
    w->funcs[i].source_file_id = fid;
    w->funcs[i].start_line = start_line;
  }
  *id = (uint64_t)idx + 1;
  return 0;
}

static int add_line(struct writer *w, uint64_t function_id, int64_t line)
{
  size_t i;
  int rc = push((void **)&w->lines, &w->nlines, &w->lines_cap, sizeof *w->lines, &i);
  if (rc < 0)
    return rc;
  Drcctprof__Profile__Line init = DRCCTPROF__PROFILE__LINE__INIT;
  w->lines[i] = init;
  w->lines[i].function_id = function_id;
  w->lines[i].line = line > 0 ? line : 0; /* never a negative (or huge unsigned) line */
  return 0;
}

static int begin_location(struct writer *w, uint32_t *id)
{
  size_t i;
  int rc = push((void **)&w->locs, &w->nlocs, &w->locs_cap, sizeof *w->locs, &i);
  if (rc < 0)
    return rc;
  w->locs[i].first_line = w->nlines;
  w->locs[i].nlines = 0;
  w->locs[i].mapping_id = w->locs[i].address = 0;
  *id = (uint32_t)i + 1;
  return 0;
}

/* A location with a single synthetic function (process root, thread root, truncation marker). */
static int synthetic_location(struct writer *w, const char *name, const char *sysname, uint32_t *id)
{
  uint64_t fid;
  int rc = function_id(w, name, sysname, NULL, 0, &fid);
  if (rc == 0)
    rc = begin_location(w, id);
  if (rc == 0)
    rc = add_line(w, fid, 0);
  if (rc == 0)
    w->locs[*id - 1].nlines = 1;
  return rc;
}

/* Names a frame the symbolizer could not: by address, with the module's file name when known. */
static void unknown_name(char *buf, size_t len, uint64_t pc, const char *module)
{
  if (module && *module)
    snprintf(buf, len, "0x%" PRIx64 " [%s]", pc, base_name(module));
  else
    snprintf(buf, len, "0x%" PRIx64, pc);
}

/* The id of the mapping for module (made when new, with its build-id in hex or NULL). */
static int mapping_id(struct writer *w, const char *module, const char *build_id, uint64_t *id)
{
  uint32_t idx;
  int added, rc = pstrmap_intern(&w->modules, module, &idx, &added);
  if (rc < 0)
    return rc;
  if (added) {
    size_t i;
    if ((rc = push((void **)&w->maps, &w->nmaps, &w->maps_cap, sizeof *w->maps, &i)) < 0 ||
        (rc = str_index(w, module, &w->maps[i].filename)) < 0 || (rc = str_index(w, build_id, &w->maps[i].build_id)) < 0)
      return rc;
  }
  *id = (uint64_t)idx + 1;
  return 0;
}

static int frame_location(struct writer *w, uint64_t pc, uint32_t *id)
{
  struct sym_frame frames[PROFILE_MAX_INLINE];
  int n = 0, rc;
  uint64_t fid;
  memset(frames, 0, sizeof frames);
  if (w->space && w->info && w->info->space_sym) {
    if (w->info->space_sym(w->sym_ctx, w->space, pc, frames, PROFILE_MAX_INLINE, &n) < 0 || n < 0)
      n = 0;
  } else if (!w->sym || w->sym(w->sym_ctx, pc, frames, PROFILE_MAX_INLINE, &n) < 0 || n < 0) {
    n = 0;
  }
  if (n > PROFILE_MAX_INLINE)
    n = PROFILE_MAX_INLINE;
  if ((rc = begin_location(w, id)) < 0)
    return rc;
  if (n > 0 && frames[0].module) {
    struct wloc *l = &w->locs[*id - 1];
    if ((rc = mapping_id(w, frames[0].module, frames[0].build_id, &l->mapping_id)) < 0)
      return rc;
    l->address = frames[0].module_offset;
  }
  for (int i = 0; i < n; i++) {
    const struct sym_frame *fr = &frames[i];
    const char *name = fr->function ? fr->function : fr->linkage_name;
    char addr[320];
    if (!name) {
      unknown_name(addr, sizeof addr, pc, fr->module);
      name = addr;
    }
    /* A frame named module+offset keeps its module's path as its source file, for re-symbolization. */
    const char *file = fr->file;
    uint64_t off;
    char base[256], build_id[130];
    if (!file && fr->module && fr->linkage_name &&
        sym_unnamed_parse(fr->linkage_name, base, sizeof base, &off, build_id, sizeof build_id) == 0)
      file = fr->module;
    if ((rc = function_id(w, name, fr->linkage_name ? fr->linkage_name : name, file,
                          fr->function_line > 0 ? fr->function_line : 0, &fid)) < 0 ||
        (rc = add_line(w, fid, fr->line)) < 0)
      return rc;
  }
  if (n == 0) {
    char addr[32];
    unknown_name(addr, sizeof addr, pc, NULL);
    if ((rc = function_id(w, addr, addr, NULL, 0, &fid)) < 0 || (rc = add_line(w, fid, 0)) < 0)
      return rc;
    n = 1;
  }
  w->locs[*id - 1].nlines = (size_t)n;
  return 0;
}

/* Gives every node a location, symbolizing each distinct pc once. */
static int assign_locations(struct writer *w)
{
  uint32_t count = cct_count(w->t);
  int rc;
  for (uint32_t id = 1; id <= count; id++) {
    uint64_t v;
    uint32_t loc = 0;
    uint32_t parent = cct_parent(w->t, id);
    w->space_of[id] = cct_kind(w->t, id) == CCT_PROCESS ? cct_pc(w->t, id) : w->space_of[parent];
    w->space = w->space_of[id];
    uint64_t key = cct_pc(w->t, id) ^ (w->space << 48); /* user-space pcs are below 2^48 */
    switch (cct_kind(w->t, id)) {
    case CCT_PROCESS:
      if (w->space && w->info && w->info->space_process) { /* another process image's root */
        int64_t pid = 0;
        const char *program = NULL;
        char name[512], sys[40];
        w->info->space_process(w->sym_ctx, w->space, &pid, &program);
        snprintf(sys, sizeof sys, "PROCESS[%" PRId64 "]", pid);
        if (program)
          snprintf(name, sizeof name, "%s %s", sys, base_name(program));
        else
          snprintf(name, sizeof name, "%s", sys);
        if ((rc = synthetic_location(w, name, sys, &loc)) < 0)
          return rc;
      } else if (!w->loc_process) {
        char name[512], sys[40];
        snprintf(sys, sizeof sys, "PROCESS[%" PRId64 "]", w->info ? w->info->pid : 0);
        /* The viewer cuts every name at its last '/': the root shows the program's file name only (its
         * full path is in the summaries). */
        if (w->info && w->info->program)
          snprintf(name, sizeof name, "%s %s", sys, base_name(w->info->program));
        else
          snprintf(name, sizeof name, "%s", sys);
        if ((rc = synthetic_location(w, name, sys, &w->loc_process)) < 0)
          return rc;
      }
      if (!w->space || !w->info || !w->info->space_process)
        loc = w->loc_process;
      break;
    case CCT_THREAD:
      if (u64map_get(&w->loc_of_tid, cct_pc(w->t, id), &v)) {
        loc = (uint32_t)v;
      } else {
        char name[40];
        snprintf(name, sizeof name, "THREAD[%" PRIu64 "]", cct_pc(w->t, id));
        if ((rc = synthetic_location(w, name, name, &loc)) < 0 ||
            (rc = u64map_put(&w->loc_of_tid, cct_pc(w->t, id), loc)) < 0)
          return rc;
      }
      break;
    case CCT_TRUNCATED:
      if (!w->loc_truncated && (rc = synthetic_location(w, "[truncated]", "[truncated]", &w->loc_truncated)) < 0)
        return rc;
      loc = w->loc_truncated;
      break;
    case CCT_FRAME:
      if (u64map_get(&w->loc_of_pc, key, &v)) {
        loc = (uint32_t)v;
      } else if ((rc = frame_location(w, cct_pc(w->t, id), &loc)) < 0 ||
                 (rc = u64map_put(&w->loc_of_pc, key, loc)) < 0) {
        return rc;
      }
      break;
    }
    w->node_loc[id] = loc;
  }
  return 0;
}

static void put_bytes(struct writer *w, const void *p, size_t n)
{
  if (n && fwrite(p, 1, n, w->f) != n)
    w->io_error = errno ? -errno : -EIO;
}

static void put_varint(struct writer *w, uint64_t v)
{
  uint8_t b[10];
  put_bytes(w, b, rs_varint(b, v));
}

struct file_buffer {
  ProtobufCBuffer base;
  struct writer *w;
};

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
  put_bytes(((struct file_buffer *)b)->w, data, len);
}

/* Writes one element of a repeated message field of Profile: tag, length, packed message. */
static void put_message(struct writer *w, unsigned field, const ProtobufCMessage *m)
{
  struct file_buffer fb = {{file_append}, w};
  put_varint(w, (uint64_t)field << 3 | 2);
  put_varint(w, protobuf_c_message_get_packed_size(m));
  protobuf_c_message_pack_to_buffer(m, &fb.base);
}

static int write_profile(struct writer *w, const struct profile_metric *metrics, size_t nmetrics)
{
  const struct cct *t = w->t;
  uint32_t count = cct_count(t);
  int rc = 0;

  for (size_t m = 0; m < nmetrics; m++) {
    Drcctprof__Profile__MetricType mt = DRCCTPROF__PROFILE__METRIC_TYPE__INIT;
    mt.value_type = 0;
    if ((rc = str_index(w, metrics[m].unit, &mt.unit)) < 0 || (rc = str_index(w, metrics[m].name, &mt.des)) < 0)
      return rc;
    put_message(w, 1, &mt.base);
  }

  Drcctprof__Profile__Metric *mv = calloc(nmetrics ? nmetrics : 1, sizeof *mv);
  Drcctprof__Profile__Metric **mp = calloc(nmetrics ? nmetrics : 1, sizeof *mp);
  uint64_t *kids = calloc((size_t)count + 1, sizeof *kids);
  if (!mv || !mp || !kids) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t m = 0; m < nmetrics; m++) {
    Drcctprof__Profile__Metric init = DRCCTPROF__PROFILE__METRIC__INIT;
    mv[m] = init;
    mp[m] = &mv[m];
  }
  for (uint32_t id = 1; id <= count; id++) {
    if (!cct_has_metrics(t, id))
      continue;
    Drcctprof__Profile__Sample s = DRCCTPROF__PROFILE__SAMPLE__INIT;
    s.context_id = id;
    s.n_metric = nmetrics;
    s.metric = mp;
    for (size_t m = 0; m < nmetrics; m++) {
      int64_t v = cct_get(t, id, m);
      mv[m].int_value = v;
      mv[m].uint_value = v > 0 ? (uint64_t)v : 0; /* a negative total has no unsigned form; say 0 */
    }
    put_message(w, 2, &s.base);
  }
  for (uint32_t id = 1; id <= count; id++) {
    Drcctprof__Profile__Context c = DRCCTPROF__PROFILE__CONTEXT__INIT;
    c.id = id;
    c.parent_id = cct_parent(t, id);
    c.location_id = w->node_loc[id];
    for (uint32_t k = cct_first_child(t, id); k; k = cct_next_sibling(t, k))
      kids[c.n_children_id++] = k;
    c.children_id = kids;
    put_message(w, 3, &c.base);
  }
  Drcctprof__Profile__Line **lp = NULL;
  size_t lp_cap = 0;
  for (size_t i = 0; i < w->nlocs; i++) {
    Drcctprof__Profile__Location l = DRCCTPROF__PROFILE__LOCATION__INIT;
    l.id = i + 1;
    l.n_line = w->locs[i].nlines;
    if (l.n_line > lp_cap) {
      free(lp);
      lp_cap = l.n_line;
      if (!(lp = calloc(lp_cap, sizeof *lp))) {
        rc = -ENOMEM;
        goto out;
      }
    }
    for (size_t k = 0; k < l.n_line; k++)
      lp[k] = &w->lines[w->locs[i].first_line + k];
    l.line = lp;
    l.mapping_id = w->locs[i].mapping_id;
    l.address = w->locs[i].address;
    put_message(w, 4, &l.base);
  }
  free(lp);
  for (size_t i = 0; i < w->nmaps; i++) {
    Drcctprof__Profile__Mapping m = DRCCTPROF__PROFILE__MAPPING__INIT;
    m.id = i + 1;
    m.filename = w->maps[i].filename;
    m.build_id = w->maps[i].build_id;
    put_message(w, 8, &m.base);
  }
  for (size_t i = 0; i < w->nfuncs; i++)
    put_message(w, 5, &w->funcs[i].base);
  for (size_t i = 0; i < w->nsrcs; i++)
    put_message(w, 6, &w->srcs[i].base);
  for (size_t i = 0; i < w->strings.count; i++) {
    size_t len = strlen(w->strings.keys[i]);
    put_varint(w, 7u << 3 | 2);
    put_varint(w, len);
    put_bytes(w, w->strings.keys[i], len);
  }
out:
  free(mv);
  free(mp);
  free(kids);
  return rc;
}

static void writer_free(struct writer *w)
{
  pstrmap_free(&w->strings);
  pstrmap_free(&w->fkeys);
  pstrmap_free(&w->files);
  pstrmap_free(&w->modules);
  free(w->maps);
  free(w->funcs);
  free(w->srcs);
  free(w->lines);
  free(w->locs);
  u64map_free(&w->loc_of_pc);
  free(w->space_of);
  u64map_free(&w->loc_of_tid);
  free(w->node_loc);
}

int profile_write_drcctprof(const struct cct *t, const struct profile_metric *metrics, size_t nmetrics,
                            profile_symbolize_fn sym, void *sym_ctx, const struct profile_info *info,
                            const char *path)
{
  struct writer w;
  char *tmp = NULL;
  int fd = -1, rc;
  uint32_t idx;

  if (!t || !path || nmetrics != cct_nmetrics(t) || (nmetrics && !metrics))
    return RS_E_BAD_ARG;
  memset(&w, 0, sizeof w);
  w.t = t;
  w.sym = sym;
  w.sym_ctx = sym_ctx;
  w.info = info;
  pstrmap_init(&w.strings);
  pstrmap_init(&w.fkeys);
  pstrmap_init(&w.files);
  pstrmap_init(&w.modules);
  u64map_init(&w.loc_of_pc);
  u64map_init(&w.loc_of_tid);
  if (!(w.node_loc = calloc((size_t)cct_count(t) + 1, sizeof *w.node_loc)) ||
      !(w.space_of = calloc((size_t)cct_count(t) + 1, sizeof *w.space_of))) {
    rc = -ENOMEM;
    goto out;
  }
  if ((rc = pstrmap_intern(&w.strings, "", &idx, NULL)) < 0 || (rc = assign_locations(&w)) < 0)
    goto out;

  int in_place = outfile_in_place(path);
  if (in_place) {
    if ((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0 || !(w.f = fdopen(fd, "wb"))) {
      rc = -errno;
      goto out;
    }
  } else {
    size_t plen = strlen(path);
    if (!(tmp = malloc(plen + 16))) {
      rc = -ENOMEM;
      goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    if ((fd = mkstemp(tmp)) < 0) {
      rc = -errno;
      goto out;
    }
    /* mkstemp creates the file 0600; a profile is an ordinary output file. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) < 0 || !(w.f = fdopen(fd, "wb"))) {
      rc = -errno;
      goto out;
    }
  }
  fd = -1;
  setvbuf(w.f, NULL, _IOFBF, 1 << 20);
  if ((rc = write_profile(&w, metrics, nmetrics)) < 0)
    goto out;
  if (w.io_error || fflush(w.f) != 0 || (!in_place && fsync(fileno(w.f)) < 0)) {
    rc = w.io_error ? w.io_error : -errno;
    goto out;
  }
  if (fclose(w.f) != 0) {
    w.f = NULL;
    rc = -errno;
    goto out;
  }
  w.f = NULL;
  if (tmp && rename(tmp, path) < 0) {
    rc = -errno;
    goto out;
  }
  free(tmp);
  tmp = NULL;
  rc = 0;
out:
  if (w.f)
    fclose(w.f);
  if (fd >= 0)
    close(fd);
  if (tmp) {
    unlink(tmp);
    free(tmp);
  }
  writer_free(&w);
  return rc;
}
