/* Writes a calling-context tree as a drcctprof profile (the DrCCTProf / EasyView viewer's protobuf format). */
#ifndef RSPROF_COL_PROFILE_WRITE_H
#define RSPROF_COL_PROFILE_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "cct.h"
#include "symbol.h"

/* One metric column, e.g. {"allocs", "count"} or {"bytes_allocated", "bytes"}. Strings are borrowed. */
struct profile_metric {
  const char *name;
  const char *unit;
};

/* Symbolizes a pc: fills frames[0 .. *n) with its inline chain, innermost first, physical function last
 * (*n <= max). Returns 0, or a negative code when nothing is known (the writer then names the frame by
 * its address). Strings in frames only need to stay valid until the next call. */
typedef int (*profile_symbolize_fn)(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n);

/* What the writer says about the traced process (strings borrowed; program may be NULL). */
struct profile_info {
  const char *program;
  int64_t pid;
  /* For a tree with more process roots (cct_add_process_root), whose cct_pc() is an image's space: names the
   * image's process (*pid, *program), and symbolizes a pc of that image, as a profile_symbolize_fn does. */
  void (*space_process)(void *ctx, uint64_t space, int64_t *pid, const char **program);
  int (*space_sym)(void *ctx, uint64_t space, uint64_t pc, struct sym_frame *frames, int max, int *n);
};

/* The most inline frames the writer asks the symbolizer for at one pc. */
#define PROFILE_MAX_INLINE 64

/* Writes tree t with metric columns metrics[0 .. nmetrics) (nmetrics must equal cct_nmetrics(t)) to
 * path. sym is called once per distinct frame pc (it may be NULL: every frame is then named by address).
 * Layout: context id = cct node id (so parent ids are smaller), a root context for the process and one
 * per thread (functions "PROCESS ..." and "THREAD[tid]"), one sample per node with a nonzero metric.
 * The file is written to a temporary name beside path and renamed, so readers never see half a file.
 * Returns 0, a negative errno, or RS_E_BAD_ARG. */
int profile_write_drcctprof(const struct cct *t, const struct profile_metric *metrics, size_t nmetrics,
                            profile_symbolize_fn sym, void *sym_ctx, const struct profile_info *info,
                            const char *path);

#endif
