/* A small CFI reader: CIE/FDE parsing, pointer encodings, .eh_frame_hdr lookup and the DW_CFA_*
 * interpreter. Hand-written because the unwinder runs it for every new PC and libdwarf's frame API
 * allocates and copies per call. */
#include "cfi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"

#define PE_OMIT 0xff
#define PE_ULEB 0x01
#define PE_UDATA2 0x02
#define PE_UDATA4 0x03
#define PE_UDATA8 0x04
#define PE_SLEB 0x09
#define PE_SDATA2 0x0a
#define PE_SDATA4 0x0b
#define PE_SDATA8 0x0c
#define PE_PCREL 0x10
#define PE_DATAREL 0x30
#define PE_INDIRECT 0x80

struct fde_ref {
  uint64_t lo, hi;
  uint32_t off;
  uint8_t debug;  /* 1: .debug_frame, 0: .eh_frame */
};

struct cfi_sec {
  const uint8_t *data;
  size_t size;
  uint64_t addr;
  int present;
};

struct cfi_state {
  struct cfi_sec eh, hdr, dbg;
  /* .eh_frame_hdr table (datarel sdata4 pairs), when usable */
  const uint8_t *table;
  size_t table_count;
  /* sorted index of FDEs not reachable through the table (.debug_frame; .eh_frame without a header) */
  struct fde_ref *idx;
  size_t nidx;
};

struct cie {
  uint64_t code_align;
  int64_t data_align;
  unsigned ra_reg;
  uint8_t fde_enc;
  uint8_t lsda_enc;
  uint8_t has_z;
  uint8_t signal;
  uint8_t addr_size;
  const uint8_t *insn, *insn_end;
};

struct fde {
  uint64_t lo, hi;
  const uint8_t *insn, *insn_end;
  struct cie cie;
};

/* ---- primitive readers; each returns -1 when the data runs out ---- */

static int rd_n(const uint8_t **p, const uint8_t *end, size_t n, uint64_t *v)
{
  if ((size_t)(end - *p) < n)
    return -1;
  uint64_t r = 0;
  for (size_t i = 0; i < n; i++)
    r |= (uint64_t)(*p)[i] << (8 * i);
  *p += n;
  *v = r;
  return 0;
}

/* Reads a pointer in encoding enc; sec maps *p back to its link-time address for pc-relative values. */
static int rd_enc(const uint8_t **p, const uint8_t *end, uint8_t enc, const struct cfi_sec *sec,
                  uint64_t datarel, uint64_t *v)
{
  if (enc == PE_OMIT)
    return -1;
  uint64_t field = sec->addr + (uint64_t)(*p - sec->data);
  uint64_t x;
  int64_t s;
  switch (enc & 0x0f) {
  case 0x00: if (rd_n(p, end, 8, &x)) return -1; break;
  case PE_ULEB: if (rs_uleb(p, end, &x)) return -1; break;
  case PE_UDATA2: if (rd_n(p, end, 2, &x)) return -1; break;
  case PE_UDATA4: if (rd_n(p, end, 4, &x)) return -1; break;
  case PE_UDATA8: if (rd_n(p, end, 8, &x)) return -1; break;
  case PE_SLEB: if (rs_sleb(p, end, &s)) return -1; x = (uint64_t)s; break;
  case PE_SDATA2: if (rd_n(p, end, 2, &x)) return -1; x = (uint64_t)(int64_t)(int16_t)x; break;
  case PE_SDATA4: if (rd_n(p, end, 4, &x)) return -1; x = (uint64_t)(int64_t)(int32_t)x; break;
  case PE_SDATA8: if (rd_n(p, end, 8, &x)) return -1; break;
  default: return -1;
  }
  switch (enc & 0x70) {
  case 0x00: break;
  case PE_PCREL: x += field; break;
  case PE_DATAREL: x += datarel; break;
  default: break;  /* textrel/funcrel/aligned do not occur in the CFI we read */
  }
  *v = x;
  return 0;
}

/* Reads an entry header at off: its length and where it ends. *id_pos points at the CIE id / pointer. */
static int entry_header(const struct cfi_sec *sec, size_t off, const uint8_t **id_pos, const uint8_t **end,
                        int *is64)
{
  const uint8_t *p = sec->data + off, *e = sec->data + sec->size;
  uint64_t len;
  if (rd_n(&p, e, 4, &len))
    return -1;
  *is64 = 0;
  if (len == 0xffffffff) {
    if (rd_n(&p, e, 8, &len))
      return -1;
    *is64 = 1;
  }
  if (len > (uint64_t)(e - p))
    return -1;
  *id_pos = p;
  *end = p + len;
  return 0;
}

static int parse_cie(const struct cfi_sec *sec, size_t off, int debug, struct cie *c)
{
  const uint8_t *p, *end;
  int is64;
  if (entry_header(sec, off, &p, &end, &is64))
    return -1;
  p += is64 ? 8 : 4;
  if (p >= end)
    return -1;
  memset(c, 0, sizeof *c);
  c->fde_enc = 0x00;  /* absolute pointers unless 'R' says otherwise */
  c->lsda_enc = PE_OMIT;
  c->addr_size = 8;
  uint8_t version = *p++;
  const char *aug = (const char *)p;
  const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
  if (nul == NULL)
    return -1;
  p = nul + 1;
  if (strcmp(aug, "eh") == 0)
    p += 8;  /* ancient GCC's eh_ptr */
  if (version >= 4) {
    if (end - p < 2)
      return -1;
    c->addr_size = p[0];
    p += 2;
  }
  int64_t da;
  uint64_t ca, ra;
  if (rs_uleb(&p, end, &ca) || rs_sleb(&p, end, &da))
    return -1;
  if (version == 1) {
    if (p >= end)
      return -1;
    ra = *p++;
  } else if (rs_uleb(&p, end, &ra)) {
    return -1;
  }
  c->code_align = ca;
  c->data_align = da;
  c->ra_reg = (unsigned)ra;
  const uint8_t *aug_end = NULL;
  for (const char *a = aug; *a; a++) {
    if (*a == 'z') {
      uint64_t alen;
      if (rs_uleb(&p, end, &alen) || alen > (uint64_t)(end - p))
        return -1;
      c->has_z = 1;
      aug_end = p + alen;
    } else if (*a == 'L') {
      if (p >= end) return -1;
      c->lsda_enc = *p++;
    } else if (*a == 'R') {
      if (p >= end) return -1;
      c->fde_enc = *p++;
    } else if (*a == 'P') {
      if (p >= end) return -1;
      uint8_t penc = *p++;
      uint64_t dummy;
      if (rd_enc(&p, end, penc & 0x7f, sec, 0, &dummy))
        return -1;
    } else if (*a == 'S') {
      c->signal = 1;
    } else if (*a == 'e' && a[1] == 'h') {
      a++;
    } else if (*a == 'B' || *a == 'G') {
      /* aarch64 BTI / memory-tagged frames: no effect on the rules */
    } else {
      /* Unknown augmentation: with 'z' the data can be skipped, otherwise we cannot go on. */
      if (!c->has_z)
        return -1;
      break;
    }
  }
  if (aug_end)
    p = aug_end;
  c->insn = p;
  c->insn_end = end;
  return 0;
}

/* Parses the FDE at off (its CIE too). Returns 0, 1 if the entry is a CIE, or -1 when malformed. */
static int parse_fde(const struct cfi_sec *sec, size_t off, int debug, struct fde *f)
{
  const uint8_t *p, *end;
  int is64;
  if (entry_header(sec, off, &p, &end, &is64))
    return -1;
  uint64_t id;
  const uint8_t *id_pos = p;
  if (rd_n(&p, end, is64 ? 8 : 4, &id))
    return -1;
  size_t cie_off;
  if (debug) {
    if (id == (is64 ? UINT64_MAX : 0xffffffffu))
      return 1;
    cie_off = (size_t)id;
  } else {
    if (id == 0)
      return 1;
    if (id > (uint64_t)(id_pos - sec->data))
      return -1;
    cie_off = (size_t)(id_pos - sec->data) - (size_t)id;
  }
  if (cie_off >= sec->size || parse_cie(sec, cie_off, debug, &f->cie))
    return -1;
  uint8_t enc = debug ? (f->cie.addr_size == 4 ? PE_UDATA4 : PE_UDATA8) : f->cie.fde_enc;
  uint64_t lo, range;
  if (rd_enc(&p, end, enc, sec, 0, &lo) || rd_enc(&p, end, enc & 0x0f, sec, 0, &range))
    return -1;
  if (f->cie.has_z) {
    uint64_t alen;
    if (rs_uleb(&p, end, &alen) || alen > (uint64_t)(end - p))
      return -1;
    p += alen;
  }
  f->lo = lo;
  f->hi = lo + range;
  f->insn = p;
  f->insn_end = end;
  return 0;
}

/* ---- the CFA program interpreter ---- */

#define STATE_STACK 16

struct interp {
  struct cfi_row row;
  struct cfi_row init;          /* after the CIE's initial instructions, for DW_CFA_restore */
  struct cfi_row stack[STATE_STACK];
  int depth;
  /* When set, every row of the FDE's program is reported with the addresses it covers. */
  int (*emit)(void *ctx, uint64_t lo, uint64_t hi, const struct cfi_row *row);
  void *emit_ctx;
};

/* Reports the current row for [lo, hi) to the emit callback, if any; returns its result. */
static int emit_row(struct interp *st, uint64_t lo, uint64_t hi)
{
  return st->emit && hi > lo ? st->emit(st->emit_ctx, lo, hi, &st->row) : 0;
}

static void set_rule(struct cfi_row *row, uint64_t reg, uint8_t kind, int64_t off, const uint8_t *expr,
                     uint32_t len)
{
  if (reg >= CFI_MAX_REGS)
    return;
  row->r[reg] = (struct cfi_rule){kind, 0, len, off, expr};
}

/* Runs instructions from loc until the row for pc is reached. Returns 0 or -1 on malformed data. */
static int run_cfa(struct interp *st, const struct fde *f, const uint8_t *p, const uint8_t *end, uint64_t loc,
                   uint64_t pc, const struct cfi_sec *sec, int is_cie)
{
  const struct cie *c = &f->cie;
  struct cfi_row *row = &st->row;
  while (p < end) {
    uint8_t op = *p++;
    uint64_t reg, u, delta = 0;
    int64_t s;
    int advance = 0;
    switch (op & 0xc0) {
    case 0x40:
      delta = (op & 0x3f) * c->code_align;
      advance = 1;
      break;
    case 0x80:
      if (rs_uleb(&p, end, &u))
        return -1;
      set_rule(row, op & 0x3f, CFI_OFFSET, (int64_t)u * c->data_align, NULL, 0);
      continue;
    case 0xc0:
      if ((op & 0x3f) < CFI_MAX_REGS)
        row->r[op & 0x3f] = st->init.r[op & 0x3f];
      continue;
    default:
      break;
    }
    if (!advance) {
      switch (op) {
      case 0x00: /* nop */
        break;
      case 0x01: { /* set_loc */
        uint64_t nloc;
        if (rd_enc(&p, end, c->fde_enc, sec, 0, &nloc))
          return -1;
        if (!is_cie && nloc > pc)
          return 0;
        if (!is_cie && emit_row(st, loc, nloc) != 0)
          return -1;
        loc = nloc;
        break;
      }
      case 0x02: if (rd_n(&p, end, 1, &delta)) return -1; delta *= c->code_align; advance = 1; break;
      case 0x03: if (rd_n(&p, end, 2, &delta)) return -1; delta *= c->code_align; advance = 1; break;
      case 0x04: if (rd_n(&p, end, 4, &delta)) return -1; delta *= c->code_align; advance = 1; break;
      case 0x05: /* offset_extended */
        if (rs_uleb(&p, end, &reg) || rs_uleb(&p, end, &u)) return -1;
        set_rule(row, reg, CFI_OFFSET, (int64_t)u * c->data_align, NULL, 0);
        break;
      case 0x06: /* restore_extended */
        if (rs_uleb(&p, end, &reg)) return -1;
        if (reg < CFI_MAX_REGS) row->r[reg] = st->init.r[reg];
        break;
      case 0x07: if (rs_uleb(&p, end, &reg)) return -1; set_rule(row, reg, CFI_UNDEF, 0, NULL, 0); break;
      case 0x08: if (rs_uleb(&p, end, &reg)) return -1; set_rule(row, reg, CFI_SAME, 0, NULL, 0); break;
      case 0x09: /* register */
        if (rs_uleb(&p, end, &reg) || rs_uleb(&p, end, &u)) return -1;
        set_rule(row, reg, CFI_REGISTER, 0, NULL, 0);
        if (reg < CFI_MAX_REGS) row->r[reg].reg = (uint8_t)u;
        break;
      case 0x0a: /* remember_state */
        if (st->depth >= STATE_STACK) return -1;
        st->stack[st->depth++] = *row;
        break;
      case 0x0b: { /* restore_state: the whole row, CFA rule included, as GCC's output expects */
        if (st->depth == 0) return -1;
        *row = st->stack[--st->depth];
        break;
      }
      case 0x0c: /* def_cfa */
        if (rs_uleb(&p, end, &reg) || rs_uleb(&p, end, &u)) return -1;
        row->cfa_kind = CFI_CFA_REG_OFF; row->cfa_reg = (uint8_t)reg; row->cfa_off = (int64_t)u;
        break;
      case 0x0d: if (rs_uleb(&p, end, &reg)) return -1; row->cfa_kind = CFI_CFA_REG_OFF; row->cfa_reg = (uint8_t)reg; break;
      case 0x0e: if (rs_uleb(&p, end, &u)) return -1; row->cfa_off = (int64_t)u; break;
      case 0x0f: /* def_cfa_expression */
        if (rs_uleb(&p, end, &u) || u > (uint64_t)(end - p)) return -1;
        row->cfa_kind = CFI_CFA_EXPR; row->cfa_expr = p; row->cfa_expr_len = (uint32_t)u;
        p += u;
        break;
      case 0x10: case 0x16: /* expression, val_expression */
        if (rs_uleb(&p, end, &reg) || rs_uleb(&p, end, &u) || u > (uint64_t)(end - p)) return -1;
        set_rule(row, reg, op == 0x10 ? CFI_EXPR : CFI_VAL_EXPR, 0, p, (uint32_t)u);
        p += u;
        break;
      case 0x11: /* offset_extended_sf */
        if (rs_uleb(&p, end, &reg) || rs_sleb(&p, end, &s)) return -1;
        set_rule(row, reg, CFI_OFFSET, s * c->data_align, NULL, 0);
        break;
      case 0x12: /* def_cfa_sf */
        if (rs_uleb(&p, end, &reg) || rs_sleb(&p, end, &s)) return -1;
        row->cfa_kind = CFI_CFA_REG_OFF; row->cfa_reg = (uint8_t)reg; row->cfa_off = s * c->data_align;
        break;
      case 0x13: if (rs_sleb(&p, end, &s)) return -1; row->cfa_off = s * c->data_align; break;
      case 0x14: /* val_offset */
        if (rs_uleb(&p, end, &reg) || rs_uleb(&p, end, &u)) return -1;
        set_rule(row, reg, CFI_VAL_OFFSET, (int64_t)u * c->data_align, NULL, 0);
        break;
      case 0x15: /* val_offset_sf */
        if (rs_uleb(&p, end, &reg) || rs_sleb(&p, end, &s)) return -1;
        set_rule(row, reg, CFI_VAL_OFFSET, s * c->data_align, NULL, 0);
        break;
      case 0x2d: /* aarch64 negate_ra_state (SPARC's window_save never reaches us): PAC-signed RA */
        row->ra_signed ^= 1;
        break;
      case 0x2e: if (rs_uleb(&p, end, &u)) return -1; break; /* GNU_args_size */
      case 0x2f: /* GNU_negative_offset_extended */
        if (rs_uleb(&p, end, &reg) || rs_uleb(&p, end, &u)) return -1;
        set_rule(row, reg, CFI_OFFSET, -(int64_t)u * c->data_align, NULL, 0);
        break;
      default:
        return -1;
      }
    }
    if (advance) {
      if (!is_cie && loc + delta > pc)
        return 0;
      if (!is_cie && emit_row(st, loc, loc + delta) != 0)
        return -1;
      loc += delta;
    }
  }
  return 0;
}

/* Runs f's program up to pc and stores the row there; with emit set, runs it whole and reports each row
 * (clipped to the FDE's range, the last one up to its end). */
static int run_fde(const struct fde *f, uint64_t pc, const struct cfi_sec *sec, struct cfi_row *out,
                   int (*emit)(void *, uint64_t, uint64_t, const struct cfi_row *), void *emit_ctx)
{
  struct interp *st = malloc(sizeof *st);
  if (st == NULL)
    return -ENOMEM;
  memset(&st->row, 0, sizeof st->row);
  st->depth = 0;
  st->emit = NULL;
  st->emit_ctx = emit_ctx;
  st->row.ra_reg = (uint8_t)(f->cie.ra_reg < CFI_MAX_REGS ? f->cie.ra_reg : 0);
  st->row.signal_frame = f->cie.signal;
  int rc = -1;
  if (f->cie.ra_reg >= CFI_MAX_REGS)
    goto out;
  st->init = st->row;
  if (run_cfa(st, f, f->cie.insn, f->cie.insn_end, f->lo, pc, sec, 1) != 0)
    goto out;
  st->init = st->row;
  st->depth = 0;
  st->emit = emit;
  if (run_cfa(st, f, f->insn, f->insn_end, f->lo, pc, sec, 0) != 0)
    goto out;
  *out = st->row;
  rc = 0;
out:
  free(st);
  return rc;
}

static int row_for(const struct fde *f, uint64_t pc, const struct cfi_sec *sec, struct cfi_row *out)
{
  return run_fde(f, pc, sec, out, NULL, NULL);
}

/* ---- per-module index ---- */

static void state_free(void *p)
{
  struct cfi_state *s = p;
  free(s->idx);
  free(s);
}

static int add_ref(struct cfi_state *s, size_t *cap, struct fde_ref r)
{
  if (s->nidx == *cap) {
    size_t ncap = *cap ? *cap * 2 : 256;
    struct fde_ref *n = realloc(s->idx, ncap * sizeof *n);
    if (n == NULL)
      return -ENOMEM;
    s->idx = n;
    *cap = ncap;
  }
  s->idx[s->nidx++] = r;
  return 0;
}

/* Walks every entry of a section; calls add for each FDE. Returns the FDE count or -1. */
static long walk_section(const struct cfi_sec *sec, int debug, int (*fn)(void *ctx, const struct fde *f, size_t off),
                         void *ctx)
{
  size_t off = 0;
  long n = 0;
  while (off + 4 <= sec->size) {
    const uint8_t *idp, *end;
    int is64;
    if (entry_header(sec, off, &idp, &end, &is64))
      return -1;
    if (end == idp) {
      if (!debug)
        break;  /* .eh_frame's zero terminator */
      off = (size_t)(end - sec->data);
      continue;
    }
    struct fde f;
    int rc = parse_fde(sec, off, debug, &f);
    if (rc < 0)
      return -1;
    if (rc == 0 && f.hi > f.lo) {
      n++;
      if (fn && fn(ctx, &f, off) != 0)
        return n;
    }
    off = (size_t)(end - sec->data);
  }
  return n;
}

struct build_ctx {
  struct cfi_state *s;
  size_t cap;
  int debug;
};

static int add_fde(void *ctx, const struct fde *f, size_t off)
{
  struct build_ctx *b = ctx;
  return add_ref(b->s, &b->cap, (struct fde_ref){f->lo, f->hi, (uint32_t)off, (uint8_t)b->debug});
}

static int ref_cmp(const void *a, const void *b)
{
  const struct fde_ref *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void load_sec(struct col_module *m, const char *name, int from_debug, struct cfi_sec *out)
{
  struct col_section cs;
  memset(out, 0, sizeof *out);
  if (col_module_section(m, name, from_debug, &cs) == 0 && cs.size > 0) {
    out->data = cs.data;
    out->size = cs.size;
    out->addr = cs.addr;
    out->present = 1;
  }
}

static struct cfi_state *get_state(struct col_module *m)
{
  struct cfi_state *s = col_module_slot_get(m, COL_SLOT_CFI);
  if (s)
    return s;
  s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  load_sec(m, ".eh_frame", 0, &s->eh);
  load_sec(m, ".eh_frame_hdr", 0, &s->hdr);
  load_sec(m, ".debug_frame", 1, &s->dbg);
  /* The header's table is usable when it is the usual datarel/sdata4 array of (pc, fde) pairs. */
  if (s->hdr.present && s->eh.present && s->hdr.size >= 4 && s->hdr.data[0] == 1) {
    const uint8_t *p = s->hdr.data + 4, *end = s->hdr.data + s->hdr.size;
    uint64_t eh_ptr, count;
    if (s->hdr.data[3] == 0x3b && rd_enc(&p, end, s->hdr.data[1], &s->hdr, s->hdr.addr, &eh_ptr) == 0 &&
        rd_enc(&p, end, s->hdr.data[2], &s->hdr, s->hdr.addr, &count) == 0 && count <= (uint64_t)(end - p) / 8) {
      s->table = p;
      s->table_count = (size_t)count;
    }
  }
  struct build_ctx b = {s, 0, 0};
  if (s->eh.present && s->table == NULL)
    walk_section(&s->eh, 0, add_fde, &b);
  b.debug = 1;
  if (s->dbg.present)
    walk_section(&s->dbg, 1, add_fde, &b);
  if (s->nidx > 1)
    qsort(s->idx, s->nidx, sizeof *s->idx, ref_cmp);
  col_module_slot_set(m, COL_SLOT_CFI, s, state_free);
  return s;
}

static int find_in_table(const struct cfi_state *s, uint64_t pc, struct fde *f)
{
  size_t lo = 0, hi = s->table_count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int32_t v;
    memcpy(&v, s->table + mid * 8, 4);
    if (s->hdr.addr + (uint64_t)(int64_t)v <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return -1;
  int32_t fv;
  memcpy(&fv, s->table + (lo - 1) * 8 + 4, 4);
  uint64_t fde_addr = s->hdr.addr + (uint64_t)(int64_t)fv;
  if (fde_addr < s->eh.addr || fde_addr - s->eh.addr >= s->eh.size)
    return -1;
  if (parse_fde(&s->eh, (size_t)(fde_addr - s->eh.addr), 0, f) != 0)
    return -1;
  return pc >= f->lo && pc < f->hi ? 0 : -1;
}

static int find_in_index(const struct cfi_state *s, uint64_t pc, struct fde *f, const struct cfi_sec **sec)
{
  size_t lo = 0, hi = s->nidx;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (s->idx[mid].lo <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* Ranges may nest or overlap between .eh_frame and .debug_frame: look back a little. */
  for (size_t i = lo; i > 0 && lo - i < 8; i--) {
    const struct fde_ref *r = &s->idx[i - 1];
    if (pc >= r->lo && pc < r->hi) {
      *sec = r->debug ? &s->dbg : &s->eh;
      return parse_fde(*sec, r->off, r->debug, f) == 0 ? 0 : -1;
    }
  }
  return -1;
}

int cfi_find_row(struct col_module *m, uint64_t rel_pc, struct cfi_row *row)
{
  struct cfi_state *s = get_state(m);
  if (s == NULL)
    return -ENOMEM;
  struct fde f;
  const struct cfi_sec *sec = &s->eh;
  if (!(s->table && find_in_table(s, rel_pc, &f) == 0) && find_in_index(s, rel_pc, &f, &sec) != 0)
    return RS_E_NOT_FOUND;
  int rc = row_for(&f, rel_pc, sec, row);
  return rc == 0 ? 0 : rc == -ENOMEM ? rc : RS_E_DWARF;
}

struct each_ctx {
  int (*fn)(void *ctx, uint64_t lo, uint64_t hi);
  void *ctx;
  const struct cfi_sec *sec;
  int bad;
};

static int each_fde(void *ctx, const struct fde *f, size_t off)
{
  struct each_ctx *e = ctx;
  struct cfi_row row;
  (void)off;
  /* Run the whole program: a malformed one fails here rather than at unwind time. */
  if (row_for(f, f->hi, e->sec, &row) != 0) {
    e->bad = 1;
    return 1;
  }
  return e->fn ? e->fn(e->ctx, f->lo, f->hi) : 0;
}

long cfi_foreach_fde(struct col_module *m, int (*fn)(void *ctx, uint64_t lo, uint64_t hi), void *ctx)
{
  struct cfi_state *s = get_state(m);
  if (s == NULL)
    return -ENOMEM;
  long total = 0;
  struct each_ctx e = {fn, ctx, &s->eh, 0};
  if (s->eh.present) {
    long n = walk_section(&s->eh, 0, each_fde, &e);
    if (n < 0 || e.bad)
      return RS_E_DWARF;
    total += n;
  }
  e.sec = &s->dbg;
  if (s->dbg.present) {
    long n = walk_section(&s->dbg, 1, each_fde, &e);
    if (n < 0 || e.bad)
      return RS_E_DWARF;
    total += n;
  }
  return total;
}

struct rows_ctx {
  int (*fn)(void *ctx, uint64_t lo, uint64_t hi, const struct cfi_row *row);
  void *ctx;
  const struct cfi_sec *sec;
  const struct fde *f;
  uint64_t done;  /* the FDE's addresses below this have been reported */
  int stop;       /* fn's nonzero result */
};

/* Clips each row to the FDE's range and to what was already reported (a DW_CFA_set_loc may go back). */
static int emit_clipped(void *ctx, uint64_t lo, uint64_t hi, const struct cfi_row *row)
{
  struct rows_ctx *r = ctx;
  if (lo < r->done)
    lo = r->done;
  if (hi > r->f->hi)
    hi = r->f->hi;
  if (hi <= lo)
    return 0;
  r->done = hi;
  int rc = r->fn(r->ctx, lo, hi, row);
  if (rc != 0)
    r->stop = rc;
  return rc;
}

static int rows_of_fde(void *ctx, const struct fde *f, size_t off)
{
  struct rows_ctx *r = ctx;
  struct cfi_row last;
  (void)off;
  r->f = f;
  r->done = f->lo;
  int rc = run_fde(f, UINT64_MAX, r->sec, &last, emit_clipped, r);
  if (r->stop)
    return 1;
  if (rc == -ENOMEM) {
    r->stop = rc;
    return 1;
  }
  /* The final row runs to the FDE's end; after a malformed instruction no row is known. */
  if (r->done < f->hi && (rc = r->fn(r->ctx, r->done, f->hi, rc == 0 ? &last : NULL)) != 0) {
    r->stop = rc;
    return 1;
  }
  return 0;
}

long cfi_foreach_row(struct col_module *m, int (*fn)(void *ctx, uint64_t lo, uint64_t hi, const struct cfi_row *row),
                     void *ctx)
{
  struct cfi_state *s = get_state(m);
  if (s == NULL)
    return -ENOMEM;
  long total = 0;
  struct rows_ctx r = {fn, ctx, &s->eh, NULL, 0, 0};
  if (s->eh.present) {
    long n = walk_section(&s->eh, 0, rows_of_fde, &r);
    if (r.stop)
      return r.stop;
    if (n < 0)
      return RS_E_DWARF;
    total += n;
  }
  r.sec = &s->dbg;
  if (s->dbg.present) {
    long n = walk_section(&s->dbg, 1, rows_of_fde, &r);
    if (r.stop)
      return r.stop;
    if (n < 0)
      return RS_E_DWARF;
    total += n;
  }
  return total;
}
