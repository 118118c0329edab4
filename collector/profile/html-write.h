/* Writes a profile as one self-contained HTML page: totals, top contexts, leaks, an icicle graph per metric. */
#ifndef RSPROF_COL_HTML_WRITE_H
#define RSPROF_COL_HTML_WRITE_H

#include <stdio.h>

#include "profile-read.h"

/* Writes the page for p to out; title names the program (may be NULL). The page loads nothing from the
 * network: styles, script and data are inline. Returns 0, -ENOMEM or -EIO. */
int html_write(FILE *out, const struct prof *p, const char *title);

#endif
