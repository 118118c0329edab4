/* The "report" subcommand: prints a drcctprof profile as an indented tree, folded stacks, JSON, pprof or HTML,
 * and compares two profiles. */
#ifndef RSPROF_COL_REPORT_H
#define RSPROF_COL_REPORT_H

#include <stdio.h>

#include "profile-read.h"

enum report_format { REPORT_TEXT, REPORT_FOLDED, REPORT_JSON, REPORT_PPROF, REPORT_HTML };

/* rsprof-collector report FILE.drcctprof [--format text|folded|json] [--metric NAME]
 * argv[0] is the subcommand's name ("report"); the program's full argv (argv[1] == "report") works too.
 * Prints to stdout; messages to stderr.
 * Returns 0, 1 when the file is missing, not a profile or inconsistent, 2 for a bad command line. */
int report_main(int argc, char **argv);

/* Prints p in a format to out. metric selects the folded value (and the JSON/text order is unaffected).
 * Returns 0, or -ENOMEM / -EIO.
 *  text:   the tree, one line per context (inlined frames on their own lines, marked), each with every
 *          metric's inclusive and self value.
 *  folded: one line per distinct stack with a nonzero value, sorted: frames outermost first joined by
 *          ';', a space, the value. The process root is left out (every line would start with it), so the
 *          first frame is THREAD[tid]; inline frames are separate frames; ';' inside a name becomes ':'.
 *          Contexts whose frames print the same are merged into one line, so each stack appears once.
 *  json:   {"metrics":[{"name","unit"}...],"samples":[{"context_id","values":[...],
 *          "stack":[{"function","system_name","file","line","inlined"}...]}]} with stacks outermost
 *          first from the process root; one entry per sampled context. */
int report_print(FILE *out, const struct prof *p, enum report_format format, size_t metric);

/* Writes p in any format to path (NULL: standard output; pprof needs a path): the report subcommand's and
 * the tracing session's --pprof and --html outputs. Returns 0, RS_E_BAD_ARG, -ENOMEM or a negative errno. */
int report_write(const struct prof *p, enum report_format format, size_t metric, const char *path);

#endif
