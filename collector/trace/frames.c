/* Symbolized frames for the writers and the --print-stacks listing. */
#include "frames.h"

#include <stdio.h>
#include <string.h>

#include "modmap.h"
#include "module.h"
#include "symbolize.h"

int trace_symbolize_pc(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n)
{
  struct trace *tr = ctx;
  uint64_t bias = 0;
  struct col_module *m = col_modmap_find(tr->map, pc, &bias);
  *n = 0;
  if (!m)
    return 0;
  int rc = sym_lookup(m, pc - bias, frames, max, n);
  if (rc)
    *n = 0;
  if (*n == 0 && max > 0) {
    memset(&frames[0], 0, sizeof frames[0]);
    frames[0].module = col_module_path(m);
    *n = 1;
  }
  for (int i = 0; i < *n; i++)
    frames[i].module = col_module_path(m);
  return 0;
}

int trace_print_event(struct trace *tr, int64_t tid, const struct trace_event_desc *ev, const uint64_t *pcs,
                      size_t n, int truncated)
{
  FILE *f = tr->stacks_out;
  fprintf(f, "event %llu thread %lld %s addr=0x%llx", (unsigned long long)tr->events, (long long)tid, ev->kind,
          (unsigned long long)ev->addr);
  if (ev->has_size)
    fprintf(f, " size=%llu", (unsigned long long)ev->size);
  if (ev->old)
    fprintf(f, " old=0x%llx", (unsigned long long)ev->old);
  fputc('\n', f);
  int frame_no = 0;
  for (size_t i = 0; i < n; i++) {
    struct sym_frame frames[16];
    int nf = 0;
    trace_symbolize_pc(tr, pcs[i], frames, 16, &nf);
    if (nf == 0) {
      fprintf(f, "#%d 0x%llx ??\n", frame_no++, (unsigned long long)pcs[i]);
      continue;
    }
    for (int k = 0; k < nf; k++) {
      fprintf(f, "#%d 0x%llx %s", frame_no++, (unsigned long long)pcs[i],
              frames[k].function ? frames[k].function : "??");
      if (frames[k].file && frames[k].line)
        fprintf(f, " at %s:%d", frames[k].file, frames[k].line);
      fputc('\n', f);
    }
  }
  if (truncated)
    fprintf(f, "#%d [truncated]\n", frame_no);
  fputc('\n', f);
  return 0;
}
