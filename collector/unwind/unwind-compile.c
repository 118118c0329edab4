/* The unwind-table compiler: runs every FDE's CFA program once, turns each row into a table row,
 * lays the rows out by address (gaps become NONE rows, overlapping FDEs HOST rows) and merges
 * neighbours that say the same thing. */
#include "unwind-compile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* Offsets from the CFA that the table's 8-byte-unit fields can hold. */
static int fits_slot(int64_t off)
{
  return off % 8 == 0 && off >= -1024 && off <= 1016;
}

void unw_table_row(const struct cfi_row *row, const struct arch_desc *arch, struct utab_row *out)
{
  memset(out, 0, sizeof *out);
  out->kind = UTAB_ROW_HOST;
  /* Signal frames restore every register from the kernel's frame and keep the interrupted PC exact:
   * they are the host's. */
  if (row == NULL || row->signal_frame || (int)row->ra_reg != arch->dwarf_ra_column)
    return;
  const struct cfi_rule *ra = &row->r[row->ra_reg];
  if (ra->kind == CFI_UNDEF) {
    out->kind = UTAB_ROW_END;
    return;
  }
  struct utab_row t;
  memset(&t, 0, sizeof t);
  if (row->cfa_kind != CFI_CFA_REG_OFF || row->cfa_off < INT32_MIN || row->cfa_off > INT32_MAX)
    return;
  if (row->cfa_reg == arch->dwarf_sp)
    t.cfa_base = UTAB_CFA_SP;
  else if (row->cfa_reg == arch->dwarf_fp)
    t.cfa_base = UTAB_CFA_FP;
  else
    return;
  t.cfa_off = (int32_t)row->cfa_off;
  /* The caller's SP is the CFA; a rule for SP itself is not something the table carries. */
  if (row->r[arch->dwarf_sp].kind != CFI_SAME)
    return;
  if (ra->kind == CFI_OFFSET && fits_slot(ra->off)) {
    t.ra_rule = UTAB_RA_AT_CFA;
    t.ra_off = (int16_t)ra->off;
  } else if (ra->kind == CFI_SAME && arch->lr_reg >= 0) {
    t.ra_rule = UTAB_RA_IN_LR;
  } else {
    return;
  }
  const struct cfi_rule *fp = &row->r[arch->dwarf_fp];
  if (fp->kind == CFI_SAME) {
    t.fp_rule = UTAB_FP_SAME;
  } else if (fp->kind == CFI_UNDEF) {
    t.fp_rule = UTAB_FP_UNDEF;
  } else if (fp->kind == CFI_OFFSET && fits_slot(fp->off)) {
    t.fp_rule = UTAB_FP_AT_CFA;
    t.fp_off = (int16_t)fp->off;
  } else {
    return;
  }
  t.ra_signed = row->ra_signed ? 1 : 0;
  t.kind = UTAB_ROW_FRAME;
  if (utab_row_encodable(&t, arch->elf_machine))
    *out = t;
}

struct seg {
  uint64_t lo, hi;
  struct utab_row row;
};

struct compile {
  const struct arch_desc *arch;
  struct seg *segs;
  size_t nsegs, cap;
  struct utab_row *out;  /* laid-out rows, start relative to base */
  size_t nout, outcap;
};

static int add_seg(void *ctx, uint64_t lo, uint64_t hi, const struct cfi_row *row)
{
  struct compile *c = ctx;
  if (c->nsegs == c->cap) {
    size_t ncap = c->cap ? c->cap * 2 : 1024;
    struct seg *n = realloc(c->segs, ncap * sizeof *n);
    if (n == NULL)
      return -ENOMEM;
    c->segs = n;
    c->cap = ncap;
  }
  struct seg *s = &c->segs[c->nsegs++];
  s->lo = lo;
  s->hi = hi;
  unw_table_row(row, c->arch, &s->row);
  return 0;
}

static int seg_cmp(const void *a, const void *b)
{
  const struct seg *x = a, *y = b;
  if (x->lo != y->lo)
    return x->lo < y->lo ? -1 : 1;
  return x->hi < y->hi ? -1 : x->hi > y->hi;
}

static int same_rule(const struct utab_row *a, const struct utab_row *b)
{
  return a->kind == b->kind && a->cfa_base == b->cfa_base && a->ra_rule == b->ra_rule && a->fp_rule == b->fp_rule &&
         a->ra_signed == b->ra_signed && a->cfa_off == b->cfa_off && a->ra_off == b->ra_off && a->fp_off == b->fp_off;
}

/* Appends a row starting at start unless it repeats the previous one. */
static int push_row(struct compile *c, uint64_t start, const struct utab_row *row)
{
  if (c->nout > 0 && same_rule(&c->out[c->nout - 1], row))
    return 0;
  if (start > UINT32_MAX)
    return RS_E_UNSUPPORTED;
  if (c->nout == c->outcap) {
    size_t ncap = c->outcap ? c->outcap * 2 : 1024;
    struct utab_row *n = realloc(c->out, ncap * sizeof *n);
    if (n == NULL)
      return -ENOMEM;
    c->out = n;
    c->outcap = ncap;
  }
  c->out[c->nout] = *row;
  c->out[c->nout].start = (uint32_t)start;
  c->nout++;
  return 0;
}

/* Lays the sorted segments out from base. Where FDEs overlap, which one the interpreter picks depends
 * on its search, so the overlap (to the end of the longer one) is left to the interpreter: HOST. */
static int lay_out(struct compile *c, uint64_t base, uint64_t *end)
{
  static const struct utab_row none = {.kind = UTAB_ROW_NONE}, host = {.kind = UTAB_ROW_HOST};
  uint64_t cur = base;
  int rc;
  for (size_t i = 0; i < c->nsegs; i++) {
    const struct seg *s = &c->segs[i];
    if (s->lo >= cur) {
      if (s->lo > cur && (rc = push_row(c, cur - base, &none)) != 0)
        return rc;
      if ((rc = push_row(c, s->lo - base, &s->row)) != 0)
        return rc;
      cur = s->hi;
      continue;
    }
    while (c->nout > 0 && c->out[c->nout - 1].start >= s->lo - base)
      c->nout--;
    if ((rc = push_row(c, s->lo - base, &host)) != 0)
      return rc;
    if (s->hi > cur)
      cur = s->hi;
  }
  *end = cur;
  return 0;
}

int unw_table_compile(struct col_module *m, uint8_t **bytes, size_t *len, struct unw_table_stats *stats)
{
  struct compile c;
  memset(&c, 0, sizeof c);
  c.arch = arch_by_elf_machine(col_module_machine(m));
  if (c.arch == NULL || (c.arch->elf_machine != UTAB_MACHINE_X86_64 && c.arch->elf_machine != UTAB_MACHINE_AARCH64))
    return RS_E_UNSUPPORTED;
  int rc;
  long fdes = cfi_foreach_row(m, add_seg, &c);
  if (fdes < 0) {
    rc = (int)fdes;
    goto out;
  }
  if (c.nsegs == 0) {
    rc = RS_E_NOT_FOUND;
    goto out;
  }
  qsort(c.segs, c.nsegs, sizeof *c.segs, seg_cmp);
  uint64_t base = c.segs[0].lo, end;
  if ((rc = lay_out(&c, base, &end)) != 0)
    goto out;
  if (end - base > UINT32_MAX) {
    rc = RS_E_UNSUPPORTED;
    goto out;
  }
  size_t total = UTAB_HEADER_SIZE + c.nout * UTAB_ROW_SIZE;
  uint8_t *b = malloc(total);
  if (b == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  utab_put_header(b, c.arch->elf_machine, (uint32_t)c.nout, base, (uint32_t)(end - base));
  long host = 0, none = 0;
  for (size_t i = 0; i < c.nout; i++) {
    /* Every row came from unw_table_row or is NONE/HOST: all encodable. */
    utab_put_row(b + UTAB_HEADER_SIZE + i * UTAB_ROW_SIZE, &c.out[i], c.arch->elf_machine);
    host += c.out[i].kind == UTAB_ROW_HOST;
    none += c.out[i].kind == UTAB_ROW_NONE;
  }
  utab_seal(b, total);
  if (stats)
    *stats = (struct unw_table_stats){fdes, (long)c.nsegs, (long)c.nout, host, none};
  *bytes = b;
  *len = total;
  rc = 0;
out:
  free(c.segs);
  free(c.out);
  return rc;
}

struct table_slot {
  uint8_t *bytes;
  int ok;
  struct utab t;
};

static void slot_free(void *p)
{
  struct table_slot *s = p;
  free(s->bytes);
  free(s);
}

const struct utab *unw_module_table(struct col_module *m)
{
  struct table_slot *s = col_module_slot_get(m, COL_SLOT_UTAB);
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL)
      return NULL;
    size_t len;
    /* A module whose table does not compile keeps an empty slot, so that it is not tried again. */
    if (unw_table_compile(m, &s->bytes, &len, NULL) == 0 && utab_open(&s->t, s->bytes, len) == 0)
      s->ok = 1;
    col_module_slot_set(m, COL_SLOT_UTAB, s, slot_free);
  }
  return s->ok ? &s->t : NULL;
}
