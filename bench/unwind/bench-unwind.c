/* Unwind + symbolize throughput on recorded snapshots, single thread, after warm-up; with two
 * baselines measured in the same run: unwinding alone, and resolving one CFI row per distinct PC
 * through our reader versus libdwarf's frame API (the cost a cache miss pays). */
#include <libdwarf/libdwarf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfi.h"
#include "errors.h"
#include "snapshot.h"
#include "symbolize.h"
#include "unwind.h"

#define MAX_PCS 256

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct set_list {
  struct snap_set *sets;
  int n;
};

/* One pass over every stop; returns frames (physical) and symbolized frames (inline expanded). */
static void pass(struct unw_ctx *u, const struct set_list *l, int symbolize, uint64_t *frames, uint64_t *sframes)
{
  uint64_t pcs[MAX_PCS];
  for (int k = 0; k < l->n; k++) {
    const struct snap_set *set = &l->sets[k];
    for (int i = 0; i < set->nstops; i++) {
      const struct snap_stop *s = &set->stops[i];
      struct unw_snapshot snap = {s->sp, s->stack, s->len};
      size_t n;
      enum unw_end end;
      if (unw_unwind(u, set->map, &s->regs, &snap, NULL, pcs, MAX_PCS, &n, &end) != 0)
        exit(1);
      *frames += n;
      if (!symbolize)
        continue;
      for (size_t j = 0; j < n; j++) {
        uint64_t bias;
        struct col_module *m = col_modmap_find(set->map, pcs[j], &bias);
        struct sym_frame fr[32];
        int nf = 0;
        if (m)
          sym_lookup(m, pcs[j] - bias, fr, 32, &nf);
        *sframes += (uint64_t)(nf ? nf : 1);
      }
    }
  }
}

static double rate(struct unw_ctx *u, const struct set_list *l, int symbolize, double secs, double *srate)
{
  uint64_t frames = 0, sframes = 0;
  double t0 = now(), t;
  do {
    pass(u, l, symbolize, &frames, &sframes);
  } while ((t = now()) - t0 < secs);
  if (srate)
    *srate = (double)sframes / (t - t0);
  return (double)frames / (t - t0);
}

/* Row lookups per second for every distinct PC of the snapshots: ours (uncached) and libdwarf's. */
static void row_rates(const struct set_list *l)
{
  struct { struct col_module *m; uint64_t pc; } *pcs = NULL;
  size_t npcs = 0, cap = 0;
  struct unw_ctx *u;
  unw_ctx_new(&u);
  for (int k = 0; k < l->n; k++) {
    const struct snap_set *set = &l->sets[k];
    for (int i = 0; i < set->nstops; i++) {
      const struct snap_stop *s = &set->stops[i];
      struct unw_snapshot snap = {s->sp, s->stack, s->len};
      uint64_t p[MAX_PCS];
      size_t n;
      enum unw_end end;
      unw_unwind(u, set->map, &s->regs, &snap, NULL, p, MAX_PCS, &n, &end);
      for (size_t j = 0; j < n; j++) {
        uint64_t bias;
        struct col_module *m = col_modmap_find(set->map, p[j], &bias);
        if (m == NULL)
          continue;
        if (npcs == cap) {
          cap = cap ? cap * 2 : 1024;
          pcs = realloc(pcs, cap * sizeof *pcs);
        }
        pcs[npcs].m = m;
        pcs[npcs++].pc = p[j] - bias;
      }
    }
  }
  unw_ctx_free(u);
  struct cfi_row row;
  size_t iters = 0;
  double t0 = now(), t;
  do {
    for (size_t i = 0; i < npcs; i++)
      cfi_find_row(pcs[i].m, pcs[i].pc, &row);
    iters += npcs;
  } while ((t = now()) - t0 < 0.5);
  double ours = iters / (t - t0);

  /* libdwarf: the .eh_frame FDE list is read once per module, then find the FDE and compute all rules. */
  double theirs = 0;
  iters = 0;
  Dwarf_Regtable_Entry3 rules[DW_REG_TABLE_SIZE];
  Dwarf_Regtable3 rt;
  struct lib { struct col_module *m; Dwarf_Debug dbg; Dwarf_Cie *cie; Dwarf_Fde *fde; Dwarf_Signed nc, nf; } libs[64];
  int nlibs = 0;
  for (size_t i = 0; i < npcs && nlibs < 64; i++) {
    int found = 0;
    for (int k = 0; k < nlibs; k++)
      found |= libs[k].m == pcs[i].m;
    if (found)
      continue;
    struct lib *lb = &libs[nlibs];
    Dwarf_Error err = NULL;
    lb->m = pcs[i].m;
    if (dwarf_init_path(col_module_path(lb->m), NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &lb->dbg, NULL,
                        0, NULL, &err) != DW_DLV_OK ||
        dwarf_get_fde_list_eh(lb->dbg, &lb->cie, &lb->nc, &lb->fde, &lb->nf, &err) != DW_DLV_OK) {
      fprintf(stderr, "libdwarf cannot read %s's .eh_frame; skipping the comparison\n", col_module_path(lb->m));
      return;
    }
    nlibs++;
  }
  t0 = now();
  do {
    for (size_t i = 0; i < npcs; i++) {
      struct lib *lb = NULL;
      for (int k = 0; k < nlibs; k++)
        if (libs[k].m == pcs[i].m)
          lb = &libs[k];
      Dwarf_Fde fde;
      Dwarf_Addr lo, hi, row_pc;
      Dwarf_Error err = NULL;
      if (dwarf_get_fde_at_pc(lb->fde, pcs[i].pc, &fde, &lo, &hi, &err) != DW_DLV_OK)
        continue;
      rt.rt3_reg_table_size = DW_REG_TABLE_SIZE;
      rt.rt3_rules = rules;
      dwarf_get_fde_info_for_all_regs3(fde, pcs[i].pc, &rt, &row_pc, &err);
    }
    iters += npcs;
  } while ((t = now()) - t0 < 0.5);
  theirs = iters / (t - t0);
  for (int k = 0; k < nlibs; k++) {
    Dwarf_Error err = NULL;
    dwarf_fde_cie_list_dealloc(libs[k].dbg, libs[k].cie, libs[k].nc, libs[k].fde, libs[k].nf);
    dwarf_finish(libs[k].dbg, &err);
  }
  printf("%-44s %12.0f /s\n", "CFI row, uncached: rsprof reader", ours);
  printf("%-44s %12.0f /s  (rsprof/libdwarf = %.1fx)\n", "CFI row, uncached: libdwarf frame API", theirs,
         ours / theirs);
  free(pcs);
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: %s SNAPSHOT-DIR...\n", argv[0]);
    return 2;
  }
  double secs = getenv("BENCH_SECONDS") ? atof(getenv("BENCH_SECONDS")) : 2.0;
  col_module_set_system_debug_dir(NULL);
  struct set_list l = {calloc((size_t)argc, sizeof(struct snap_set)), 0};
  int stops = 0;
  for (int i = 1; i < argc; i++) {
    int rc = snap_set_load(argv[i], &l.sets[l.n]);
    if (rc != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], rs_strerror(rc));
      return 1;
    }
    stops += l.sets[l.n++].nstops;
  }
  struct unw_ctx *u;
  unw_ctx_new(&u);
  uint64_t f = 0, sf = 0;
  double t0 = now();
  pass(u, &l, 1, &f, &sf);  /* cold: builds every index and fills the caches */
  double cold = now() - t0;
  for (int i = 0; i < 5; i++)
    pass(u, &l, 1, &f, &sf);
  double srate;
  /* The same unwinds with every frame stepped by the CFI interpreter (the unwinder before compiled
   * tables), on a context of its own so that neither warms the other's cache. */
  struct unw_ctx *cfi_only;
  unw_ctx_new(&cfi_only);
  unw_ctx_use_tables(cfi_only, 0);
  uint64_t f2 = 0, sf2 = 0;
  for (int i = 0; i < 6; i++)
    pass(cfi_only, &l, 0, &f2, &sf2);
  double unw_cfi = rate(cfi_only, &l, 0, secs, NULL);
  unw_ctx_free(cfi_only);
  double unw = rate(u, &l, 0, secs, NULL);
  double both = rate(u, &l, 1, secs, &srate);
  printf("snapshots: %d stops in %d sets; first pass (index build, cold caches): %.1f ms\n", stops, l.n, cold * 1e3);
  printf("%-44s %12.0f frames/s\n", "unwind only (baseline)", unw);
  printf("%-44s %12.0f frames/s\n", "unwind only, CFI interpreter (no tables)", unw_cfi);
  struct unw_stats st;
  unw_ctx_stats(u, &st);
  printf("%-44s %12.1f %%\n", "frames stepped with compiled tables",
         100.0 * (double)st.table_steps / (double)(st.table_steps + st.cfi_steps ? st.table_steps + st.cfi_steps : 1));
  printf("%-44s %12.0f frames/s\n", "unwind + symbolize", both);
  printf("%-44s %12.0f frames/s (inline frames expanded)\n", "unwind + symbolize, symbolized frames", srate);
  row_rates(&l);
  unw_ctx_free(u);
  for (int i = 0; i < l.n; i++)
    snap_set_free(&l.sets[i]);
  free(l.sets);
  return 0;
}
