/* Fuzzes the drcctprof reader: any bytes must either be refused with a message or give a profile whose
 * tree the report code can walk (inclusive sums, the three report formats) without a further check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile-read.h"
#include "report.h"

static FILE *sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  sink = fopen("/dev/null", "w");
  if (!sink)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct prof *p;
  char err[256];
  err[0] = 0;
  if (prof_parse(data, size, &p, err, sizeof err) != 0) {
    if (!memchr(err, 0, sizeof err) || !err[0])
      abort(); /* a refusal always explains itself */
    return 0;
  }
  /* What the reader promises: parents precede children, and indexes stay inside the arrays. */
  for (size_t i = 0; i < p->nctx; i++) {
    const struct prof_context *c = &p->ctx[i];
    if (c->parent != PROF_NONE && c->parent >= i)
      abort();
    if (c->nlines && (c->first_line >= p->nlines || c->nlines > p->nlines - c->first_line))
      abort();
    if ((c->first_child != PROF_NONE && c->first_child >= p->nctx) ||
        (c->next_sibling != PROF_NONE && c->next_sibling >= p->nctx))
      abort();
  }
  int64_t *incl = calloc(p->nctx ? p->nctx : 1, sizeof *incl);
  if (!incl)
    abort();
  for (size_t m = 0; m < p->nmetrics; m++) {
    prof_inclusive(p, m, incl);
    prof_metric_index(p, p->metric_name[m]);
  }
  free(incl);
  for (size_t m = 0; m < (p->nmetrics ? p->nmetrics : 1); m++) {
    report_print(sink, p, REPORT_TEXT, m);
    report_print(sink, p, REPORT_FOLDED, m);
    report_print(sink, p, REPORT_JSON, m);
    if (m >= 2)
      break;
  }
  prof_free(p);
  return 0;
}
