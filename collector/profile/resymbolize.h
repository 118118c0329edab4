/* Re-symbolizing a profile read back: frames written as module+offset (no symbols at trace time) named from
 * debug files found later by build-id. */
#ifndef RSPROF_COL_RESYMBOLIZE_H
#define RSPROF_COL_RESYMBOLIZE_H

#include <stddef.h>

#include "profile-read.h"

struct prof_resym;

/* Replaces each module+offset line of p (system name "prog+0x1fc9@<build-id>", sym_unnamed_format) whose
 * module has symbols now with its inline chain: the module is DIR/.build-id/xx/yyyy.debug in one of
 * debug_dirs (NULL-terminated), else the file at the line's source path when its build-id matches and it
 * (or a debug file for it under debug_dirs) has symbols. Lines stay as they were otherwise. *named and
 * *unnamed count the distinct locations named and those left as they were. The new strings belong to
 * *out, which must outlive p's use (free it with prof_resym_free after prof_free). Returns 0, or -ENOMEM
 * (p is then only fit for prof_free). */
int prof_resymbolize(struct prof *p, const char *const *debug_dirs, struct prof_resym **out, size_t *named,
                     size_t *unnamed);
void prof_resym_free(struct prof_resym *r);

#endif
