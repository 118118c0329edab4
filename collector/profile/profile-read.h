/* Reads a drcctprof profile back, checks that it is consistent, and rebuilds its calling-context tree. */
#ifndef RSPROF_COL_PROFILE_READ_H
#define RSPROF_COL_PROFILE_READ_H

#include <stddef.h>
#include <stdint.h>

/* One line of a location: a function and a line in it. Strings point into the profile (or are static). */
struct prof_line {
  const char *function;    /* demangled name; never NULL ("" when the file has none) */
  const char *system_name; /* linkage name; never NULL */
  const char *file;        /* full source path (location_path + "/" + filename), or NULL */
  int64_t line;            /* 0 when unknown */
};

/* A context of the tree. Contexts are stored sorted by id, so a parent always precedes its children. */
struct prof_context {
  uint64_t id;
  size_t parent;           /* index of the parent context, PROF_NONE for a root */
  size_t first_line, nlines; /* the location's lines in prof.lines: inlined callees first, caller last */
  size_t first_child, next_sibling; /* indexes, PROF_NONE when absent; children in id order */
  size_t depth;            /* 0 for a root */
  size_t mapping;          /* the module the location is in (index in prof.mappings), PROF_NONE if unknown */
  uint64_t address;        /* the offset in that module (the address minus its load bias) */
  int has_sample;
};

#define PROF_NONE ((size_t)-1)

/* A module locations point into (rsprof's addition to the format; strings point into the profile). */
struct prof_mapping {
  const char *file;        /* the module's path */
  const char *build_id;    /* its GNU build-id in hex, "" when it has none */
};

struct prof {
  size_t nmetrics;
  const char **metric_name;  /* per metric type: its "des" string */
  const char **metric_unit;
  struct prof_context *ctx;
  size_t nctx;
  int64_t *self;             /* nctx * nmetrics: each context's summed sample values */
  struct prof_line *lines;
  size_t nlines;
  struct prof_mapping *mappings;
  size_t nmappings;
  void *priv;                /* decoded message and owned strings */
};

/* Reads and checks path. On success returns 0 and *out (free with prof_free). On failure returns a
 * negative code and writes a one-line explanation to err (never crashes on malformed input): the file is
 * missing or unreadable, is not a drcctprof profile, or is inconsistent (a parent id that is not smaller
 * than its child's, ids that refer to nothing, a sample without one metric per metric type, ...). */
int prof_read(const char *path, struct prof **out, char *err, size_t errlen);
/* The same for a profile already in memory (the bytes are not kept). */
int prof_parse(const uint8_t *data, size_t len, struct prof **out, char *err, size_t errlen);
void prof_free(struct prof *p);

/* Index of the metric named name, or -1. */
int prof_metric_index(const struct prof *p, const char *name);
/* Fills incl[0 .. nctx) with each context's inclusive value of metric (caller owns incl). */
void prof_inclusive(const struct prof *p, size_t metric, int64_t *incl);

#endif
