/* Writes a profile as pprof's gzip-compressed profile.proto, for `go tool pprof`, Pyroscope and Parca. */
#ifndef RSPROF_COL_PPROF_WRITE_H
#define RSPROF_COL_PPROF_WRITE_H

#include "profile-read.h"

/* Writes p to path: one sample type per metric (units bytes, count, nanoseconds: microsecond metrics are
 * scaled), one sample per context with a value (its frames leaf first, without the PROCESS and THREAD
 * roots, which become the labels "process" and "thread"), one location per program counter with its
 * inlined frames as several lines, innermost first (its address the offset in its module), one mapping per
 * module with its build-id, and functions with their file names. comment (may be
 * NULL) is stored as the profile's comment. The file is written beside path and renamed.
 * Returns 0, -ENOMEM or a negative errno. */
int pprof_write(const struct prof *p, const char *comment, const char *path);

#endif
