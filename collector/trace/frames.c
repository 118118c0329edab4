/* Symbolized frames for the writers and the --print-stacks listing. */
#include "frames.h"

#include <stdio.h>
#include <string.h>

#include "modmap.h"
#include "module.h"
#include "summary.h"
#include "symbolize.h"
#include "unnamed.h"

static void build_id_hex(const struct col_module *m, char *buf, size_t len)
{
  const uint8_t *id = NULL;
  size_t n = 0;
  buf[0] = 0;
  col_module_build_id(m, &id, &n);
  for (size_t i = 0; i < n && 2 * i + 3 <= len; i++)
    snprintf(buf + 2 * i, 3, "%02x", id[i]);
}

int trace_symbolize_pc(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n)
{
  /* Valid until the next call, as profile_symbolize_fn allows: the collector is single-threaded. */
  static char name[512], system_name[640], build_id[130];
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
    /* No symbol: the module and the offset from its load address, which ASLR does not change, so profiles
     * of two runs merge; the build-id in the system name lets `report --debug-dir` name it later. */
    memset(&frames[0], 0, sizeof frames[0]);
    const uint8_t *id = NULL;
    size_t idlen = 0;
    col_module_build_id(m, &id, &idlen);
    if (sym_unnamed_format(col_module_path(m), id, idlen, pc - bias, name, sizeof name, system_name,
                           sizeof system_name) == 0) {
      frames[0].function = name;
      frames[0].linkage_name = system_name;
    }
    *n = 1;
  }
  build_id_hex(m, build_id, sizeof build_id);
  for (int i = 0; i < *n; i++) {
    frames[i].module = col_module_path(m);
    frames[i].module_offset = pc - bias;
    frames[i].build_id = build_id[0] ? build_id : NULL;
  }
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

/* A module whose frames fall back to .dynsym names or module+offset: no .symtab, no debug info. */
static int lacks_symbols(const struct trace_loaded *l)
{
  return !col_module_has_symtab(l->module) && !col_module_has_debug_info(l->module);
}


void trace_unsymbolized_json(struct trace *tr, struct json_out *j)
{
  char hex[130];
  json_key(j, "modules_without_symbols");
  json_begin_array(j);
  for (size_t i = 0; i < tr->nloaded; i++) {
    if (!lacks_symbols(&tr->loaded[i]))
      continue;
    build_id_hex(tr->loaded[i].module, hex, sizeof hex);
    json_begin_object(j);
    json_kv_string(j, "path", tr->loaded[i].remote);
    json_kv_string(j, "build_id", hex);
    json_end_object(j);
  }
  json_end_array(j);
}

void trace_unsymbolized_text(struct trace *tr, FILE *out)
{
  char hex[130];
  size_t n = 0;
  for (size_t i = 0; i < tr->nloaded; i++) {
    if (!lacks_symbols(&tr->loaded[i]))
      continue;
    if (n++ == 0)
      fprintf(out, "modules without symbols (frames named from .dynsym exports, else module+offset):\n");
    build_id_hex(tr->loaded[i].module, hex, sizeof hex);
    fprintf(out, "  %s%s%s\n", tr->loaded[i].remote, hex[0] ? " build-id " : "", hex);
  }
  if (n)
    fprintf(out, "  to name them: --debug-dir DIR with DIR/.build-id/xx/yyyy.debug (objcopy --only-keep-debug), or "
                 "--sysroot DIR with unstripped copies, or install the debug packages (/usr/lib/debug); "
                 "`rsprof-collector report PROFILE --debug-dir DIR` names an existing profile's frames\n");
}
