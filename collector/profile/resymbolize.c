/* Names a read-back profile's module+offset frames from debug files found by build-id, keeping the tree. */
#include "resymbolize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "module.h"
#include "symbolize.h"
#include "unnamed.h"

#define MAX_CHAIN 64

struct resym_module {
  char *key;             /* build-id hex, or the module's path when it has none */
  struct col_module *m;  /* NULL: nothing with symbols was found */
};

struct prof_resym {
  struct resym_module *mods;
  size_t nmods;
  char **strings;        /* copies of the symbolizer's strings: they live in the modules, closed at the end */
  size_t nstrings;
};

static int hex_build_id(const struct col_module *m, char *buf, size_t len)
{
  const uint8_t *id;
  size_t n;
  buf[0] = 0;
  if (col_module_build_id(m, &id, &n) != 0 || 2 * n + 1 > len)
    return 0;
  for (size_t i = 0; i < n; i++)
    snprintf(buf + 2 * i, 3, "%02x", id[i]);
  return 1;
}

static struct col_module *open_with_symbols(const char *path, const char *build_id, const char *const *dirs)
{
  struct col_module *m;
  if (access(path, R_OK) != 0 || col_module_open(path, NULL, dirs, &m) != 0)
    return NULL;
  char have[130];
  hex_build_id(m, have, sizeof have);
  if ((build_id[0] && strcmp(have, build_id) != 0) || (!col_module_has_symtab(m) && !col_module_has_debug_info(m))) {
    col_module_close(m);
    return NULL;
  }
  return m;
}

/* The module for a build-id (or path): a debug file under a debug dir, else the file itself. */
static struct col_module *find_module(struct prof_resym *r, const char *build_id, const char *path,
                                      const char *const *dirs)
{
  const char *key = build_id[0] ? build_id : path ? path : "";
  for (size_t i = 0; i < r->nmods; i++)
    if (strcmp(r->mods[i].key, key) == 0)
      return r->mods[i].m;
  struct resym_module *nm = realloc(r->mods, (r->nmods + 1) * sizeof *nm);
  if (!nm)
    return NULL;
  r->mods = nm;
  struct resym_module *e = &r->mods[r->nmods];
  e->key = strdup(key);
  e->m = NULL;
  if (!e->key)
    return NULL;
  r->nmods++;
  char file[4096];
  for (size_t i = 0; build_id[0] && strlen(build_id) > 2 && dirs && dirs[i] && !e->m; i++) {
    snprintf(file, sizeof file, "%s/.build-id/%.2s/%s.debug", dirs[i], build_id, build_id + 2);
    e->m = open_with_symbols(file, build_id, NULL);
  }
  if (!e->m && path)
    e->m = open_with_symbols(path, build_id, dirs);
  return e->m;
}

static const char *keep(struct prof_resym *r, const char *s, int *oom)
{
  if (!s)
    return NULL;
  char **ns = realloc(r->strings, (r->nstrings + 1) * sizeof *ns);
  char *c = ns ? strdup(s) : NULL;
  if (ns)
    r->strings = ns;
  if (!c) {
    *oom = 1;
    return NULL;
  }
  r->strings[r->nstrings++] = c;
  return c;
}

/* Appends the lines that replace old line l to v (at most MAX_CHAIN); returns how many, or 0 to keep l. */
static size_t name_line(struct prof_resym *r, const struct prof_line *l, const char *const *dirs,
                        struct prof_line *v, int *oom)
{
  char base[256], build_id[130];
  uint64_t off;
  if (sym_unnamed_parse(l->system_name, base, sizeof base, &off, build_id, sizeof build_id) != 0)
    return 0;
  struct col_module *m = find_module(r, build_id, l->file, dirs);
  struct sym_frame frames[MAX_CHAIN];
  int n = 0;
  if (!m || sym_lookup(m, off, frames, MAX_CHAIN, &n) != 0 || n <= 0)
    return 0;
  for (int i = 0; i < n; i++) {
    const char *fn = frames[i].function ? frames[i].function : frames[i].linkage_name;
    if (!fn)
      return 0;
    v[i].function = keep(r, fn, oom);
    v[i].system_name = keep(r, frames[i].linkage_name ? frames[i].linkage_name : fn, oom);
    v[i].file = frames[i].file ? keep(r, frames[i].file, oom) : NULL;
    v[i].line = frames[i].line;
  }
  return *oom ? 0 : (size_t)n;
}

int prof_resymbolize(struct prof *p, const char *const *debug_dirs, struct prof_resym **out, size_t *named,
                     size_t *unnamed)
{
  *out = NULL;
  *named = *unnamed = 0;
  struct prof_resym *r = calloc(1, sizeof *r);
  size_t *first_of = malloc((p->nlines + 1) * sizeof *first_of), *n_of = malloc((p->nlines + 1) * sizeof *n_of);
  struct prof_line *lines = NULL;
  size_t nlines = 0, cap = 0;
  int oom = !r || !first_of || !n_of;
  for (size_t i = 0; !oom && i <= p->nlines; i++)
    first_of[i] = PROF_NONE;
  for (size_t c = 0; !oom && c < p->nctx; c++) {
    struct prof_context *ctx = &p->ctx[c];
    size_t old = ctx->first_line;
    /* Each location's lines start at their own index (one with no lines has none to share). */
    if (ctx->nlines && old < p->nlines && first_of[old] != PROF_NONE) { /* a location several contexts share */
      ctx->first_line = first_of[old];
      ctx->nlines = n_of[old];
      continue;
    }
    size_t start = nlines;
    for (size_t k = 0; !oom && k < ctx->nlines; k++) {
      if (nlines + MAX_CHAIN > cap) {
        cap = cap ? cap * 2 : 1024;
        struct prof_line *nl = realloc(lines, cap * sizeof *nl);
        if (!nl) {
          oom = 1;
          break;
        }
        lines = nl;
      }
      const struct prof_line *l = &p->lines[old + k];
      char base[256], build_id[130];
      uint64_t off;
      int was_unnamed = sym_unnamed_parse(l->system_name, base, sizeof base, &off, build_id, sizeof build_id) == 0;
      size_t n = name_line(r, l, debug_dirs, lines + nlines, &oom);
      if (n == 0)
        lines[nlines++] = *l;
      else
        nlines += n;
      if (was_unnamed)
        (*(n ? named : unnamed))++;
    }
    if (ctx->nlines && old < p->nlines) {
      first_of[old] = start;
      n_of[old] = nlines - start;
    }
    ctx->first_line = start;
    ctx->nlines = nlines - start;
  }
  free(first_of);
  free(n_of);
  if (oom) {
    free(lines);
    prof_resym_free(r);
    return -ENOMEM;
  }
  free(p->lines);
  p->lines = lines;
  p->nlines = nlines;
  *out = r;
  return 0;
}

void prof_resym_free(struct prof_resym *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->nmods; i++) {
    col_module_close(r->mods[i].m);
    free(r->mods[i].key);
  }
  free(r->mods);
  for (size_t i = 0; i < r->nstrings; i++)
    free(r->strings[i]);
  free(r->strings);
  free(r);
}
