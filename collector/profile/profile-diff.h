/* Compares two profiles for CI: per metric, the totals and the calling contexts whose values changed most. */
#ifndef RSPROF_COL_PROFILE_DIFF_H
#define RSPROF_COL_PROFILE_DIFF_H

#include <stdio.h>

#include "profile-read.h"

/* A --fail-on-growth METRIC:PERCENT gate. */
struct diff_gate {
  const char *metric;
  double percent;
};

/* Prints, for every metric the two profiles share, base and new totals and the top contexts by absolute
 * change (with the relative change), as text or (json) one JSON document. Contexts are matched by their
 * frames' names, outermost first, without the process and thread roots (thread ids differ between runs).
 * Then checks the gates: each whose metric's total grew by more than its percent (any growth from a zero
 * base counts as infinite) prints one line on err naming the metric and both totals, and sets *failed.
 * Returns 0, -ENOMEM, -EIO, or RS_E_BAD_ARG for a gate naming a metric neither profile has. */
int prof_diff(FILE *out, FILE *err, const struct prof *base, const struct prof *next, int json, size_t top,
              const struct diff_gate *gates, size_t ngates, int *failed);

#endif
