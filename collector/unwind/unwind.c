/* The unwinder: steps each frame with the module's compiled unwind table (common/unwind-table.c, the
 * agent's walker) where the table has a row, and otherwise applies the CFI rule row (cached per PC),
 * with a frame-pointer fallback, signal frames and clean end conditions. */
#include "unwind.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cfi.h"
#include "errors.h"
#include "unwind-compile.h"
#include "unwind-table.h"

#define CACHE_BITS 12
#define CACHE_SIZE (1u << CACHE_BITS)

enum { ROW_FILLED = 1, ROW_NONE = 2 };

struct cache_entry {
  const struct col_module *m;
  uint64_t rel_pc;
  int status;  /* 0 empty, ROW_FILLED, ROW_NONE (no CFI covers the PC) */
  struct cfi_row row;
};

struct unw_ctx {
  struct cache_entry *cache;  /* direct-mapped: a miss overwrites */
  int no_tables;              /* step every frame with the CFI interpreter */
  struct unw_stats stats;
};

int unw_ctx_new(struct unw_ctx **out)
{
  struct unw_ctx *u = calloc(1, sizeof *u);
  if (u == NULL)
    return -ENOMEM;
  u->cache = calloc(CACHE_SIZE, sizeof *u->cache);
  if (u->cache == NULL) {
    free(u);
    return -ENOMEM;
  }
  *out = u;
  return 0;
}

void unw_ctx_free(struct unw_ctx *u)
{
  if (u) {
    free(u->cache);
    free(u);
  }
}

void unw_ctx_flush(struct unw_ctx *u)
{
  memset(u->cache, 0, CACHE_SIZE * sizeof *u->cache);
}

void unw_ctx_use_tables(struct unw_ctx *u, int on)
{
  u->no_tables = !on;
}

void unw_ctx_stats(const struct unw_ctx *u, struct unw_stats *out)
{
  *out = u->stats;
}

const char *unw_end_name(enum unw_end end)
{
  switch (end) {
  case UNW_END_OUTERMOST: return "outermost";
  case UNW_END_TRUNCATED: return "truncated";
  case UNW_END_NO_INFO: return "no-info";
  case UNW_END_MAX_FRAMES: return "max-frames";
  case UNW_END_BAD: return "bad";
  }
  return "?";
}

struct frame_regs {
  uint64_t val[CFI_MAX_REGS];
  uint32_t valid;
  uint64_t pc;
};

struct reader {
  const struct unw_snapshot *snap;
  const struct unw_memory *mem;
  int truncated;
};

static int read_u64(struct reader *r, uint64_t addr, uint64_t *v)
{
  const struct unw_snapshot *s = r->snap;
  if (s && addr >= s->base && addr - s->base <= s->len && s->len - (addr - s->base) >= 8) {
    memcpy(v, s->data + (addr - s->base), 8);
    return 0;
  }
  if (r->mem && r->mem->read && r->mem->read(r->mem->ctx, addr, v, 8) == 0)
    return 0;
  r->truncated = 1;
  return -1;
}

static int read_n(struct reader *r, uint64_t addr, size_t n, uint64_t *v)
{
  uint64_t x;
  if (read_u64(r, addr, &x) != 0)
    return -1;
  *v = n >= 8 ? x : x & ((1ull << (8 * n)) - 1);
  return 0;
}

static int get_reg(const struct frame_regs *f, uint64_t reg, uint64_t *v)
{
  if (reg >= CFI_MAX_REGS || !(f->valid & (1u << reg)))
    return -1;
  *v = f->val[reg];
  return 0;
}

#define EXPR_STACK 64

/* Evaluates a DWARF expression of the kinds CFI uses (register-relative arithmetic, dereferences,
 * comparisons, branches). initial is pushed first when have_initial. Returns 0 or -1. */
static int eval_expr(const uint8_t *p, size_t len, const struct frame_regs *f, struct reader *rd, int have_initial,
                     uint64_t initial, uint64_t cfa, uint64_t *out)
{
  uint64_t st[EXPR_STACK];
  int sp = 0;
  const uint8_t *start = p, *end = p + len;
  if (have_initial)
    st[sp++] = initial;
#define NEED(k) do { if (sp < (k)) return -1; } while (0)
#define PUSH(v) do { uint64_t pv_ = (v); if (sp >= EXPR_STACK) return -1; st[sp] = pv_; sp++; } while (0)
  int steps = 0;
  while (p < end) {
    if (++steps > 1000)
      return -1;  /* a branch loop */
    uint8_t op = *p++;
    uint64_t u, a, b;
    int64_t s;
    if (op >= 0x30 && op <= 0x4f) {
      PUSH((uint64_t)(op - 0x30));
      continue;
    }
    if (op >= 0x70 && op <= 0x8f) {
      if (rs_sleb(&p, end, &s) || get_reg(f, op - 0x70, &u))
        return -1;
      PUSH(u + (uint64_t)s);
      continue;
    }
    switch (op) {
    case 0x03: if (end - p < 8) return -1; memcpy(&u, p, 8); p += 8; PUSH(u); break;
    case 0x06: NEED(1); if (read_u64(rd, st[sp - 1], &st[sp - 1])) return -1; break;
    case 0x94:
      NEED(1);
      if (p >= end || *p == 0 || *p > 8 || read_n(rd, st[sp - 1], *p, &st[sp - 1]))
        return -1;
      p++;
      break;
    case 0x08: if (p >= end) return -1; PUSH(*p++); break;
    case 0x09: if (p >= end) return -1; PUSH((uint64_t)(int64_t)(int8_t)*p++); break;
    case 0x0a: case 0x0b: { if (end - p < 2) return -1; uint16_t v; memcpy(&v, p, 2); p += 2;
      PUSH(op == 0x0a ? v : (uint64_t)(int64_t)(int16_t)v); break; }
    case 0x0c: case 0x0d: { if (end - p < 4) return -1; uint32_t v; memcpy(&v, p, 4); p += 4;
      PUSH(op == 0x0c ? v : (uint64_t)(int64_t)(int32_t)v); break; }
    case 0x0e: case 0x0f: if (end - p < 8) return -1; memcpy(&u, p, 8); p += 8; PUSH(u); break;
    case 0x10: if (rs_uleb(&p, end, &u)) return -1; PUSH(u); break;
    case 0x11: if (rs_sleb(&p, end, &s)) return -1; PUSH((uint64_t)s); break;
    case 0x12: NEED(1); PUSH(st[sp - 1]); break;
    case 0x13: NEED(1); sp--; break;
    case 0x14: NEED(2); PUSH(st[sp - 2]); break;
    case 0x15: if (p >= end) return -1; NEED(*p + 1); u = st[sp - 1 - *p]; p++; PUSH(u); break;
    case 0x16: NEED(2); a = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = a; break;
    case 0x17: NEED(3); a = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = st[sp - 3]; st[sp - 3] = a; break;
    case 0x19: NEED(1); if ((int64_t)st[sp - 1] < 0) st[sp - 1] = -st[sp - 1]; break;
    case 0x1f: NEED(1); st[sp - 1] = -st[sp - 1]; break;
    case 0x20: NEED(1); st[sp - 1] = ~st[sp - 1]; break;
    case 0x23: NEED(1); if (rs_uleb(&p, end, &u)) return -1; st[sp - 1] += u; break;
    case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x21: case 0x22: case 0x24: case 0x25:
    case 0x26: case 0x27: case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d: case 0x2e:
      NEED(2);
      b = st[--sp];
      a = st[sp - 1];
      switch (op) {
      case 0x1a: a &= b; break;
      case 0x1b: if (b == 0) return -1; a = (uint64_t)((int64_t)a / (int64_t)b); break;
      case 0x1c: a -= b; break;
      case 0x1d: if (b == 0) return -1; a %= b; break;
      case 0x1e: a *= b; break;
      case 0x21: a |= b; break;
      case 0x22: a += b; break;
      case 0x24: a = b >= 64 ? 0 : a << b; break;
      case 0x25: a = b >= 64 ? 0 : a >> b; break;
      case 0x26: a = b >= 64 ? (uint64_t)((int64_t)a >> 63) : (uint64_t)((int64_t)a >> b); break;
      case 0x27: a ^= b; break;
      case 0x29: a = a == b; break;
      case 0x2a: a = (int64_t)a >= (int64_t)b; break;
      case 0x2b: a = (int64_t)a > (int64_t)b; break;
      case 0x2c: a = (int64_t)a <= (int64_t)b; break;
      case 0x2d: a = (int64_t)a < (int64_t)b; break;
      case 0x2e: a = a != b; break;
      }
      st[sp - 1] = a;
      break;
    case 0x2f: case 0x28: {
      if (end - p < 2) return -1;
      int16_t off;
      memcpy(&off, p, 2);
      p += 2;
      int jump = 1;
      if (op == 0x28) {
        NEED(1);
        jump = st[--sp] != 0;
      }
      if (jump) {
        if (off < 0 ? (size_t)(p - start) < (size_t)-off : (size_t)(end - p) < (size_t)off)
          return -1;
        p += off;
      }
      break;
    }
    case 0x92:
      if (rs_uleb(&p, end, &u) || rs_sleb(&p, end, &s) || get_reg(f, u, &a))
        return -1;
      PUSH(a + (uint64_t)s);
      break;
    case 0x96: break;
    case 0x9c: PUSH(cfa); break;
    default:
      return -1;
    }
  }
  if (sp == 0)
    return -1;
  *out = st[sp - 1];
  return 0;
#undef NEED
#undef PUSH
}

/* Returns the cached row for (m, rel_pc), computing it on a miss; NULL when no CFI covers it. */
static const struct cfi_row *lookup_row(struct unw_ctx *u, struct col_module *m, uint64_t rel_pc)
{
  uint64_t h = (rel_pc ^ ((uint64_t)(uintptr_t)m >> 4)) * 0x9e3779b97f4a7c15ull;
  struct cache_entry *e = &u->cache[h >> (64 - CACHE_BITS)];
  if (e->status == 0 || e->m != m || e->rel_pc != rel_pc) {
    e->m = m;
    e->rel_pc = rel_pc;
    e->status = cfi_find_row(m, rel_pc, &e->row) == 0 ? ROW_FILLED : ROW_NONE;
  }
  return e->status == ROW_FILLED ? &e->row : NULL;
}

enum step { STEP_OK, STEP_OUTERMOST, STEP_TRUNCATED, STEP_BAD };

static enum step apply_row(const struct cfi_row *row, const struct arch_desc *arch, struct frame_regs *f,
                           struct reader *rd)
{
  uint64_t cfa, v;
  int nregs = arch->dwarf_max < CFI_MAX_REGS ? arch->dwarf_max : CFI_MAX_REGS;
  if (row->r[row->ra_reg].kind == CFI_UNDEF)
    return STEP_OUTERMOST;
  if (row->cfa_kind == CFI_CFA_REG_OFF) {
    if (get_reg(f, row->cfa_reg, &v))
      return STEP_BAD;
    cfa = v + (uint64_t)row->cfa_off;
  } else if (eval_expr(row->cfa_expr, row->cfa_expr_len, f, rd, 0, 0, 0, &cfa)) {
    return rd->truncated ? STEP_TRUNCATED : STEP_BAD;
  }
  struct frame_regs n;
  n.valid = 0;
  for (int r = 0; r < nregs; r++) {
    const struct cfi_rule *rule = &row->r[r];
    int ok = 1;
    switch (rule->kind) {
    case CFI_SAME: ok = get_reg(f, (uint64_t)r, &v) == 0; break;
    case CFI_UNDEF: ok = 0; break;
    case CFI_OFFSET:
      if (read_u64(rd, cfa + (uint64_t)rule->off, &v))
        return STEP_TRUNCATED;
      break;
    case CFI_VAL_OFFSET: v = cfa + (uint64_t)rule->off; break;
    case CFI_REGISTER: ok = get_reg(f, rule->reg, &v) == 0; break;
    case CFI_EXPR:
    case CFI_VAL_EXPR: {
      uint64_t a;
      if (eval_expr(rule->expr, rule->expr_len, f, rd, 1, cfa, cfa, &a))
        return rd->truncated ? STEP_TRUNCATED : STEP_BAD;
      if (rule->kind == CFI_EXPR && read_u64(rd, a, &a))
        return STEP_TRUNCATED;
      v = a;
      break;
    }
    default: ok = 0; break;
    }
    if (ok) {
      n.val[r] = v;
      n.valid |= 1u << r;
    }
  }
  if (!(n.valid & (1u << row->ra_reg)))
    return STEP_OUTERMOST;
  n.pc = n.val[row->ra_reg];
  /* A signed return address has its authentication code in the bits above the 48-bit user address
   * space; authenticating is the CPU's business, the unwinder only needs the address. */
  if (row->ra_signed)
    n.pc &= 0x0000ffffffffffffull;
  /* The caller's SP is the CFA by definition on both architectures, unless a rule says otherwise. */
  if (row->r[arch->dwarf_sp].kind == CFI_SAME) {
    n.val[arch->dwarf_sp] = cfa;
    n.valid |= 1u << arch->dwarf_sp;
  }
  *f = n;
  return STEP_OK;
}

/* Frame-pointer fallback: the saved FP and return address sit at [FP] and [FP + 8] on both
 * x86_64 (push rbp; mov rbp, rsp) and aarch64 (stp x29, x30, [sp, -N]!; mov x29, sp). */
static enum step fp_step(const struct arch_desc *arch, struct frame_regs *f, struct reader *rd)
{
  uint64_t fp, sp, nfp, ra;
  if (get_reg(f, (uint64_t)arch->dwarf_fp, &fp) || fp == 0 || (fp & 7))
    return STEP_BAD;
  if (get_reg(f, (uint64_t)arch->dwarf_sp, &sp) == 0 && fp < sp)
    return STEP_BAD;
  if (read_u64(rd, fp, &nfp) || read_u64(rd, fp + 8, &ra))
    return STEP_TRUNCATED;
  struct frame_regs n = *f;
  /* Only callee-saved values survive a call we know nothing about: keep what we have for them. */
  n.val[arch->dwarf_fp] = nfp;
  n.val[arch->dwarf_sp] = fp + 16;
  n.valid |= (1u << arch->dwarf_fp) | (1u << arch->dwarf_sp);
  n.pc = ra;
  if (arch->dwarf_ra_column < CFI_MAX_REGS) {
    n.val[arch->dwarf_ra_column] = ra;
    n.valid |= 1u << arch->dwarf_ra_column;
  }
  *f = n;
  return STEP_OK;
}

/* Without CFI, a trap at a function's first instruction (where tracing breakpoints go) has not yet
 * pushed a frame pointer: the frame-pointer walk would skip the caller. There the rules are known from
 * the ABI alone: x86_64 CFA = RSP + 8 with the return address at CFA - 8; aarch64 CFA = SP, return
 * address in x30. Returns 1 and fills row when rel_pc starts a function symbol. */
static int entry_row(struct col_module *m, uint64_t rel_pc, const struct arch_desc *arch, struct cfi_row *row)
{
  const char *name, *dem;
  uint64_t start;
  if (col_module_symbol_at(m, rel_pc, &name, &dem, &start) != 0 || start != rel_pc)
    return 0;
  memset(row, 0, sizeof *row);
  row->cfa_kind = CFI_CFA_REG_OFF;
  row->cfa_reg = (uint8_t)arch->dwarf_sp;
  row->ra_reg = (uint8_t)arch->dwarf_ra_column;
  if (arch->lr_reg < 0) {
    row->cfa_off = 8;
    row->r[arch->dwarf_ra_column].kind = CFI_OFFSET;
    row->r[arch->dwarf_ra_column].off = -8;
  } else {
    row->cfa_off = 0;  /* the return address stays in the link register: rule "same value" */
  }
  return 1;
}

/* The memory callback the table walker reads through: the same reader as the interpreter's. */
static int table_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
  uint64_t v;
  if (len != 8 || read_u64(ctx, addr, &v) != 0)
    return -1;
  memcpy(buf, &v, 8);
  return 0;
}

/* A table step keeps only SP, FP and the return-address column; the interpreter would have recovered
 * the other registers too. Their bits in lost say which ones the current frame no longer knows. */
static uint32_t table_lost(const struct arch_desc *arch, int nregs)
{
  uint32_t all = nregs >= 32 ? UINT32_MAX : (1u << nregs) - 1;
  return all & ~((1u << arch->dwarf_sp) | (1u << arch->dwarf_fp) | (1u << arch->dwarf_ra_column));
}

/* Sets the bits of the registers a DWARF expression reads (DW_OP_breg*, DW_OP_bregx). Returns 0, or
 * -1 for an operation eval_expr does not know or a truncated operand: then assume it reads any. */
static int expr_regs(const uint8_t *p, size_t len, uint32_t *mask)
{
  const uint8_t *end = p + len;
  uint64_t u;
  int64_t s;
  while (p < end) {
    uint8_t op = *p++;
    size_t skip = 0;
    if (op >= 0x70 && op <= 0x8f) {
      *mask |= 1u << (op - 0x70);
      if (rs_sleb(&p, end, &s))
        return -1;
      continue;
    }
    if ((op >= 0x30 && op <= 0x4f) || op == 0x06 || (op >= 0x12 && op <= 0x14) || op == 0x16 || op == 0x17 ||
        (op >= 0x19 && op <= 0x27 && op != 0x23) || (op >= 0x29 && op <= 0x2e) || op == 0x96 || op == 0x9c)
      continue;
    switch (op) {
    case 0x08: case 0x09: case 0x15: case 0x94: skip = 1; break;
    case 0x0a: case 0x0b: case 0x28: case 0x2f: skip = 2; break;
    case 0x0c: case 0x0d: skip = 4; break;
    case 0x03: case 0x0e: case 0x0f: skip = 8; break;
    case 0x10: case 0x23: if (rs_uleb(&p, end, &u)) return -1; continue;
    case 0x11: if (rs_sleb(&p, end, &s)) return -1; continue;
    case 0x92:
      if (rs_uleb(&p, end, &u) || rs_sleb(&p, end, &s))
        return -1;
      *mask |= u < 32 ? 1u << u : 0;
      continue;
    default:
      return -1;
    }
    if ((size_t)(end - p) < skip)
      return -1;
    p += skip;
  }
  return 0;
}

/* Whether an expression may read one of the lost registers. */
static int expr_needs_lost(const uint8_t *p, size_t len, uint32_t lost)
{
  uint32_t mask = 0;
  return expr_regs(p, len, &mask) != 0 || (mask & lost) != 0;
}

/* Whether applying row would read one of the lost registers: then the interpreter's result could
 * differ from a walk that never dropped them, and the walk starts over without tables. */
static int row_needs_lost(const struct cfi_row *row, uint32_t lost, int nregs)
{
  if (lost == 0)
    return 0;
  if (row->cfa_kind == CFI_CFA_EXPR ? expr_needs_lost(row->cfa_expr, row->cfa_expr_len, lost)
                                    : row->cfa_reg < 32 && (lost & (1u << row->cfa_reg)))
    return 1;
  for (int r = 0; r < nregs; r++) {
    const struct cfi_rule *rule = &row->r[r];
    if ((rule->kind == CFI_EXPR || rule->kind == CFI_VAL_EXPR) && expr_needs_lost(rule->expr, rule->expr_len, lost))
      return 1;
    if (rule->kind == CFI_REGISTER && rule->reg < 32 && (lost & (1u << rule->reg)))
      return 1;
  }
  return 0;
}

/* The registers that stay lost after row: those it leaves "same value" (SP never: it becomes the CFA). */
static uint32_t lost_after(const struct cfi_row *row, uint32_t lost, const struct arch_desc *arch, int nregs)
{
  uint32_t keep = 0;
  for (int r = 0; r < nregs; r++)
    if (row->r[r].kind == CFI_SAME && r != arch->dwarf_sp)
      keep |= 1u << r;
  return lost & keep;
}

enum { WALK_RESTART = 1 };

/* Steps one frame with m's table. Returns 1 with *st set when the table decided the frame, 0 when
 * the frame is the interpreter's. */
static int table_frame(struct col_module *m, uint64_t bias, const struct arch_desc *arch, int exact,
                       struct frame_regs *f, struct reader *rd, enum step *st)
{
  const struct utab *t = unw_module_table(m);
  if (t == NULL)
    return 0;
  struct utab_module um = {bias, 0, UINT64_MAX, t};
  struct utab_memory umem = {table_read, rd};
  struct utab_regs in = {f->pc, 0, 0, 0, 0}, out;
  int ra = arch->dwarf_ra_column;
  if (get_reg(f, (uint64_t)arch->dwarf_sp, &in.sp) == 0)
    in.have |= UTAB_HAVE_SP;
  if (get_reg(f, (uint64_t)arch->dwarf_fp, &in.fp) == 0)
    in.have |= UTAB_HAVE_FP;
  if (arch->lr_reg >= 0 && get_reg(f, (uint64_t)ra, &in.lr) == 0)
    in.have |= UTAB_HAVE_LR;
  switch (utab_step(&um, 1, &umem, exact, &in, &out)) {
  case UTAB_OK:
    break;
  case UTAB_END: *st = STEP_OUTERMOST; return 1;
  case UTAB_BAD: *st = STEP_BAD; return 1;
  case UTAB_UNREADABLE: *st = STEP_TRUNCATED; return 1;
  default: return 0;
  }
  f->pc = out.pc;
  f->val[arch->dwarf_sp] = out.sp;
  f->valid |= 1u << arch->dwarf_sp;
  f->val[arch->dwarf_fp] = out.fp;
  f->valid = (out.have & UTAB_HAVE_FP) ? f->valid | 1u << arch->dwarf_fp : f->valid & ~(1u << arch->dwarf_fp);
  /* The return-address column holds the value the rule loaded (before any PAC stripping), as the
   * interpreter leaves it. */
  f->val[ra] = out.lr;
  f->valid = (out.have & UTAB_HAVE_LR) ? f->valid | 1u << ra : f->valid & ~(1u << ra);
  *st = STEP_OK;
  return 1;
}

static int walk(struct unw_ctx *u, const struct col_modmap *map, const struct col_regs *regs,
                const struct unw_snapshot *snap, const struct unw_memory *mem, uint64_t *pcs, size_t max,
                size_t *n, enum unw_end *end, int use_tables)
{
  *n = 0;
  if (max == 0) {
    *end = UNW_END_MAX_FRAMES;
    return 0;
  }
  struct frame_regs f;
  memcpy(f.val, regs->val, sizeof f.val);
  f.valid = regs->valid;
  f.pc = regs->pc;
  const struct arch_desc *arch = regs->arch;
  struct reader rd = {snap, mem, 0};
  int exact = 1;  /* frame 0 and frames interrupted by a signal have an exact PC */
  uint32_t lost = 0;
  size_t count = 0;
  enum unw_end why = UNW_END_MAX_FRAMES;
  while (count < max) {
    uint64_t lookup = exact ? f.pc : f.pc - 1;
    pcs[count++] = lookup;
    uint64_t bias = 0;
    struct col_module *m = col_modmap_find(map, lookup, &bias);
    if (m == NULL) {
      why = UNW_END_NO_INFO;
      break;
    }
    if (arch == NULL) {
      arch = arch_by_elf_machine(col_module_machine(m));
      if (arch == NULL)
        return RS_E_BAD_ARG;
    }
    if (count == max)
      break;
    int nregs = arch->dwarf_max < CFI_MAX_REGS ? arch->dwarf_max : CFI_MAX_REGS;
    /* x86_64's DWARF 16 is the return-address column, but expressions (the PLT's CFA) read it as RIP. */
    if (arch->dwarf_ra_column < CFI_MAX_REGS && arch->lr_reg < 0) {
      f.val[arch->dwarf_ra_column] = f.pc;
      f.valid |= 1u << arch->dwarf_ra_column;
    }
    uint64_t old_sp = 0, old_pc = f.pc;
    int have_sp = get_reg(&f, (uint64_t)arch->dwarf_sp, &old_sp) == 0;
    enum step st;
    int signal = 0;
    if (use_tables && table_frame(m, bias, arch, exact, &f, &rd, &st)) {
      u->stats.table_steps++;
      lost = table_lost(arch, nregs);
    } else {
      const struct cfi_row *row = lookup_row(u, m, lookup - bias);
      struct cfi_row entry;
      if (row == NULL && exact && count == 1 && entry_row(m, lookup - bias, arch, &entry))
        row = &entry;
      u->stats.cfi_steps++;
      if (row) {
        if (row_needs_lost(row, lost, nregs))
          return WALK_RESTART;
        signal = row->signal_frame;
        lost = lost_after(row, lost, arch, nregs);
        st = apply_row(row, arch, &f, &rd);
      } else {
        st = fp_step(arch, &f, &rd);
        if (st == STEP_BAD) {
          why = UNW_END_NO_INFO;
          break;
        }
      }
    }
    if (st == STEP_OUTERMOST) {
      why = UNW_END_OUTERMOST;
      break;
    }
    if (st == STEP_TRUNCATED) {
      why = UNW_END_TRUNCATED;
      break;
    }
    if (st == STEP_BAD) {
      why = UNW_END_BAD;
      break;
    }
    if (f.pc == 0) {
      why = UNW_END_OUTERMOST;
      break;
    }
    /* The stack only unwinds upwards. An equal SP is legitimate (an aarch64 leaf whose CFA is SP + 0)
     * as long as the PC moved; otherwise the same frame would repeat forever. */
    uint64_t new_sp;
    if (!signal && have_sp && get_reg(&f, (uint64_t)arch->dwarf_sp, &new_sp) == 0 &&
        (new_sp < old_sp || (new_sp == old_sp && f.pc == old_pc))) {
      why = UNW_END_BAD;
      break;
    }
    exact = signal;
  }
  *n = count;
  *end = why;
  return 0;
}

int unw_unwind(struct unw_ctx *u, const struct col_modmap *map, const struct col_regs *regs,
               const struct unw_snapshot *snap, const struct unw_memory *mem, uint64_t *pcs, size_t max,
               size_t *n, enum unw_end *end)
{
  int rc = walk(u, map, regs, snap, mem, pcs, max, n, end, !u->no_tables);
  if (rc == WALK_RESTART) {
    u->stats.restarts++;
    rc = walk(u, map, regs, snap, mem, pcs, max, n, end, 0);
  }
  return rc;
}
