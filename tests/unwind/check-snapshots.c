/* The stack-truth check: unwinds and symbolizes every recorded stop and compares the frames with
 * gdb's `bt` at the same stop — function names and file:line — down to gdb's outermost frame; and
 * checks that the compiled unwind tables give the same PCs as the CFI interpreter alone. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfi.h"
#include "errors.h"
#include "module.h"
#include "snapshot.h"
#include "symbolize.h"
#include "unwind.h"

#define MAX_PCS 256
#define MAX_FRAMES 1024

struct out_frame {
  const char *function, *file;
  int line;
  uint64_t pc;
};

static const char *base_name(const char *p)
{
  const char *s = p ? strrchr(p, '/') : NULL;
  return s ? s + 1 : p;
}

/* Unwinds and symbolizes one stop into frames (inline chains expanded, as gdb lists them). */
static int expand(struct unw_ctx *u, const struct snap_set *set, const struct snap_stop *s, struct out_frame *out,
                  int *nout, enum unw_end *end)
{
  uint64_t pcs[MAX_PCS];
  size_t n;
  struct unw_snapshot snap = {s->sp, s->stack, s->len};
  int rc = unw_unwind(u, set->map, &s->regs, &snap, NULL, pcs, MAX_PCS, &n, end);
  if (rc != 0)
    return rc;
  int k = 0;
  for (size_t i = 0; i < n && k < MAX_FRAMES; i++) {
    uint64_t bias;
    struct col_module *m = col_modmap_find(set->map, pcs[i], &bias);
    struct sym_frame fr[64];
    int nf = 0;
    if (m && (rc = sym_lookup(m, pcs[i] - bias, fr, 64, &nf)) != 0)
      return rc;
    if (nf == 0)
      out[k++] = (struct out_frame){NULL, NULL, 0, pcs[i]};
    for (int j = 0; j < nf && k < MAX_FRAMES; j++)
      out[k++] = (struct out_frame){fr[j].function, fr[j].file, fr[j].line, pcs[i]};
  }
  *nout = k;
  return 0;
}

static int is_signal_frame(const struct snap_set *set, uint64_t pc)
{
  uint64_t bias;
  struct col_module *m = col_modmap_find(set->map, pc, &bias);
  struct cfi_row row;
  return m && cfi_find_row(m, pc - bias, &row) == 0 && row.signal_frame;
}

static int read_stop_memory(void *ctx, uint64_t addr, void *buf, size_t len)
{
  const struct snap_stop *s = ctx;
  if (addr < s->sp || addr - s->sp > s->len || s->len - (addr - s->sp) < len)
    return -EFAULT;
  memcpy(buf, s->stack + (addr - s->sp), len);
  return 0;
}

/* Cuts the stack window at several points: the unwinder must then return a prefix of the full
 * result and say "truncated" (or end cleanly if the cut did not matter), never invent frames. */
static int check_truncation(struct unw_ctx *u, const struct snap_set *set, const struct snap_stop *s,
                            const struct out_frame *full, int nfull)
{
  static const size_t cuts[] = {0, 8, 64, 200, 1000};
  uint64_t pcs[MAX_PCS], ref[MAX_PCS];
  size_t nref;
  enum unw_end ref_end;
  struct unw_snapshot whole = {s->sp, s->stack, s->len};
  if (unw_unwind(u, set->map, &s->regs, &whole, NULL, ref, MAX_PCS, &nref, &ref_end) != 0)
    return -1;
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    if (cuts[c] >= s->len)
      continue;
    struct unw_snapshot snap = {s->sp, s->stack, cuts[c]};
    size_t n;
    enum unw_end end;
    if (unw_unwind(u, set->map, &s->regs, &snap, NULL, pcs, MAX_PCS, &n, &end) != 0)
      return -1;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
      while (k < nfull && full[k].pc != pcs[i])
        k++;  /* skip the inline frames of the full result that share a pc */
      if (k == nfull) {
        fprintf(stderr, "cut at %zu bytes: frame %zu (0x%llx) is not in the full stack\n", cuts[c], i,
                (unsigned long long)pcs[i]);
        return -1;
      }
    }
    if (end != UNW_END_TRUNCATED && end != UNW_END_OUTERMOST) {
      fprintf(stderr, "cut at %zu bytes: unwinding ended with %s\n", cuts[c], unw_end_name(end));
      return -1;
    }
    /* The same cut with the rest of the stack behind the memory callback gives the full result. */
    struct unw_memory mem = {read_stop_memory, (void *)s};
    size_t n2;
    if (unw_unwind(u, set->map, &s->regs, &snap, &mem, pcs, MAX_PCS, &n2, &end) != 0)
      return -1;
    if (n2 != nref || memcmp(pcs, ref, n2 * sizeof *pcs) != 0) {
      fprintf(stderr, "cut at %zu bytes plus memory callback: %zu frames, not the same %zu\n", cuts[c], n2, nref);
      return -1;
    }
  }
  return 0;
}

/* The tables must change nothing: the same stop unwound with the CFI interpreter alone gives the same
 * PCs and the same end, for the whole window and for the cut windows with the rest behind the memory
 * callback. */
static int check_same_as_interpreter(struct unw_ctx *u, struct unw_ctx *cfi_only, const struct snap_set *set,
                                     const struct snap_stop *s)
{
  static const size_t cuts[] = {0, 64, 1000, SIZE_MAX};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    struct unw_snapshot snap = {s->sp, s->stack, cuts[c] < s->len ? cuts[c] : s->len};
    struct unw_memory mem = {read_stop_memory, (void *)s};
    uint64_t a[MAX_PCS], b[MAX_PCS];
    size_t na, nb;
    enum unw_end ea, eb;
    if (unw_unwind(u, set->map, &s->regs, &snap, &mem, a, MAX_PCS, &na, &ea) != 0 ||
        unw_unwind(cfi_only, set->map, &s->regs, &snap, &mem, b, MAX_PCS, &nb, &eb) != 0)
      return -1;
    if (na != nb || ea != eb || memcmp(a, b, na * sizeof *a) != 0) {
      fprintf(stderr, "window %zu bytes: tables give %zu frames (%s), the interpreter %zu (%s)\n", snap.len, na,
              unw_end_name(ea), nb, unw_end_name(eb));
      for (size_t i = 0; i < na || i < nb; i++)
        fprintf(stderr, "  #%-2zu 0x%llx 0x%llx\n", i, i < na ? (unsigned long long)a[i] : 0ull,
                i < nb ? (unsigned long long)b[i] : 0ull);
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s SNAPSHOT-DIR\n", argv[0]);
    return 2;
  }
  /* gdb ran without the system's separate debug files; read the same information it had. */
  col_module_set_system_debug_dir(NULL);
  struct snap_set set;
  int rc = snap_set_load(argv[1], &set);
  if (rc != 0) {
    fprintf(stderr, "cannot load %s: %s\n", argv[1], rs_strerror(rc));
    return 1;
  }
  struct unw_ctx *u, *cfi_only;
  if (unw_ctx_new(&u) != 0 || unw_ctx_new(&cfi_only) != 0)
    return 1;
  unw_ctx_use_tables(cfi_only, 0);
  static struct out_frame out[MAX_FRAMES];
  int bad_stops = 0, frames = 0, ends[5] = {0};
  for (int i = 0; i < set.nstops; i++) {
    const struct snap_stop *s = &set.stops[i];
    int n = 0;
    enum unw_end end;
    rc = expand(u, &set, s, out, &n, &end);
    if (rc != 0) {
      fprintf(stderr, "stop %d: %s\n", i, rs_strerror(rc));
      return 1;
    }
    int ok = n >= s->nbt;
    for (int k = 0; ok && k < s->nbt; k++) {
      const struct snap_frame *g = &s->bt[k];
      const char *name = out[k].function ? out[k].function : "??";
      if (strcmp(g->function, "<signal handler called>") == 0) {
        /* gdb recognises the kernel's signal trampoline; we must have unwound through its 'S' FDE. */
        if (!is_signal_frame(&set, out[k].pc))
          ok = 0;
        continue;
      }
      if (strcmp(name, g->function) != 0)
        ok = 0;
      if (g->file && (!out[k].file || strcmp(base_name(g->file), base_name(out[k].file)) != 0 || g->line != out[k].line))
        ok = 0;
    }
    frames += s->nbt;
    ends[end < 5 ? end : 4]++;
    /* gdb's outermost frame is where we must get to cleanly: never garbage or a lost trail. */
    if (end == UNW_END_BAD || end == UNW_END_NO_INFO)
      ok = 0;
    /* A window shorter than the recorder's 16 KiB reached the top of the stack: the walk must then end
     * at the outermost frame's undefined return address (_start), not run out of bytes. */
    if (s->len < 16384 && end != UNW_END_OUTERMOST)
      ok = 0;
    if (ok && check_truncation(u, &set, s, out, n) != 0)
      ok = 0;
    if (ok && check_same_as_interpreter(u, cfi_only, &set, s) != 0)
      ok = 0;
    if (!ok) {
      bad_stops++;
      fprintf(stderr, "stop %d differs (unwind ended: %s):\n", i, unw_end_name(end));
      int lim = n > s->nbt ? n : s->nbt;
      for (int k = 0; k < lim; k++) {
        const struct snap_frame *g = k < s->nbt ? &s->bt[k] : NULL;
        fprintf(stderr, "  #%-2d gdb: %-40s %s:%d\n       us:  %-40s %s:%d  (pc 0x%llx)\n", k,
                g ? g->function : "", g && g->file ? base_name(g->file) : "-", g ? g->line : 0,
                k < n && out[k].function ? out[k].function : (k < n ? "??" : ""),
                k < n && out[k].file ? base_name(out[k].file) : "-", k < n ? out[k].line : 0,
                k < n ? (unsigned long long)out[k].pc : 0ull);
      }
    }
  }
  printf("%s: %d stops, %d frames compared with gdb, %d stops differ; ends: outermost %d, truncated %d, "
         "no-info %d, max %d, bad %d\n",
         argv[1], set.nstops, frames, bad_stops, ends[0], ends[1], ends[2], ends[3], ends[4]);
  struct unw_stats st;
  unw_ctx_stats(u, &st);
  printf("frames stepped with compiled tables %llu, with the CFI interpreter %llu; restarts %llu\n",
         (unsigned long long)st.table_steps, (unsigned long long)st.cfi_steps, (unsigned long long)st.restarts);
  /* Every fixture runs through libc's or its own CFI: some frames must have used the tables. */
  if (st.table_steps == 0) {
    fprintf(stderr, "no frame was stepped with a compiled table\n");
    bad_stops++;
  }
  unw_ctx_free(u);
  unw_ctx_free(cfi_only);
  snap_set_free(&set);
  return bad_stops == 0 && set.nstops > 0 ? 0 : 1;
}
