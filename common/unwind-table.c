/* The compiled unwind table: byte layout, validation, binary-search lookup and the frame step. Every
 * multi-byte field is read and written byte by byte, so the bytes mean the same on any host. */
#include "unwind-table.h"

#include <string.h>

#include "errors.h"

/* Header offsets. */
#define H_MAGIC 0
#define H_VERSION 4
#define H_MACHINE 6
#define H_NROWS 8
#define H_SIZE 12
#define H_BASE 16
#define H_CHECKSUM 24
#define H_RESERVED 28

/* Row offsets and the flags byte's bits. */
#define R_START 0
#define R_CFA_OFF 4
#define R_KIND 8
#define R_FLAGS 9
#define R_RA_OFF 10
#define R_FP_OFF 11
#define F_CFA_FP 0x01
#define F_RA_IN_LR 0x02
#define F_FP_SHIFT 2
#define F_FP_MASK 0x0c
#define F_RA_SIGNED 0x10
#define F_KNOWN 0x1f

#define USER_VA_MASK 0x0000ffffffffffffull

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

/* FNV-1a over everything but the checksum field: a single changed byte always changes the result,
 * because each round (xor with a byte, multiply by an odd number) is a bijection of the state. */
static uint32_t checksum(const uint8_t *b, size_t len)
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    if (i >= H_CHECKSUM && i < H_CHECKSUM + 4)
      continue;
    h = (h ^ b[i]) * 16777619u;
  }
  return h;
}

static int machine_known(unsigned machine)
{
  return machine == UTAB_MACHINE_X86_64 || machine == UTAB_MACHINE_AARCH64;
}

static int off_encodable(int16_t off)
{
  return off % 8 == 0 && off >= -1024 && off <= 1016;
}

int utab_row_encodable(const struct utab_row *r, unsigned machine)
{
  if (!machine_known(machine) || r->kind > UTAB_ROW_END)
    return 0;
  if (r->kind != UTAB_ROW_FRAME)
    return 1;  /* the other kinds carry no fields: they are encoded as zeros */
  if (r->cfa_base > UTAB_CFA_FP || r->ra_rule > UTAB_RA_IN_LR || r->fp_rule > UTAB_FP_UNDEF || r->ra_signed > 1)
    return 0;
  if (machine != UTAB_MACHINE_AARCH64 && (r->ra_rule == UTAB_RA_IN_LR || r->ra_signed))
    return 0;
  if (r->ra_rule == UTAB_RA_AT_CFA && !off_encodable(r->ra_off))
    return 0;
  if (r->fp_rule == UTAB_FP_AT_CFA && !off_encodable(r->fp_off))
    return 0;
  return 1;
}

void utab_put_header(uint8_t *out, unsigned machine, uint32_t nrows, uint64_t base, uint32_t size)
{
  memset(out, 0, UTAB_HEADER_SIZE);
  memcpy(out + H_MAGIC, UTAB_MAGIC, 4);
  put16(out + H_VERSION, UTAB_VERSION);
  put16(out + H_MACHINE, (uint16_t)machine);
  put32(out + H_NROWS, nrows);
  put32(out + H_SIZE, size);
  put64(out + H_BASE, base);
}

int utab_put_row(uint8_t *out, const struct utab_row *r, unsigned machine)
{
  if (!utab_row_encodable(r, machine))
    return RS_E_BAD_ARG;
  memset(out, 0, UTAB_ROW_SIZE);
  put32(out + R_START, r->start);
  out[R_KIND] = r->kind;
  if (r->kind != UTAB_ROW_FRAME)
    return 0;
  put32(out + R_CFA_OFF, (uint32_t)r->cfa_off);
  out[R_FLAGS] = (uint8_t)((r->cfa_base == UTAB_CFA_FP ? F_CFA_FP : 0) | (r->ra_rule == UTAB_RA_IN_LR ? F_RA_IN_LR : 0) |
                           (r->fp_rule << F_FP_SHIFT) | (r->ra_signed ? F_RA_SIGNED : 0));
  if (r->ra_rule == UTAB_RA_AT_CFA)
    out[R_RA_OFF] = (uint8_t)(int8_t)(r->ra_off / 8);
  if (r->fp_rule == UTAB_FP_AT_CFA)
    out[R_FP_OFF] = (uint8_t)(int8_t)(r->fp_off / 8);
  return 0;
}

void utab_seal(uint8_t *bytes, size_t len)
{
  put32(bytes + H_CHECKSUM, checksum(bytes, len));
}

static void decode_row(const uint8_t *p, struct utab_row *r)
{
  uint8_t fl = p[R_FLAGS];
  r->start = get32(p + R_START);
  r->cfa_off = (int32_t)get32(p + R_CFA_OFF);
  r->kind = p[R_KIND];
  r->cfa_base = (fl & F_CFA_FP) ? UTAB_CFA_FP : UTAB_CFA_SP;
  r->ra_rule = (fl & F_RA_IN_LR) ? UTAB_RA_IN_LR : UTAB_RA_AT_CFA;
  r->fp_rule = (uint8_t)((fl & F_FP_MASK) >> F_FP_SHIFT);
  r->ra_signed = (fl & F_RA_SIGNED) ? 1 : 0;
  r->ra_off = (int16_t)((int8_t)p[R_RA_OFF] * 8);
  r->fp_off = (int16_t)((int8_t)p[R_FP_OFF] * 8);
}

/* A row is valid when it is exactly what utab_put_row writes for its decoded form: that rejects
 * unknown kinds and flags, and fields that a kind or rule does not use but are not zero. */
static int row_valid(const uint8_t *p, unsigned machine)
{
  struct utab_row r;
  uint8_t again[UTAB_ROW_SIZE];
  if (p[R_KIND] > UTAB_ROW_END || (p[R_FLAGS] & ~F_KNOWN) || ((p[R_FLAGS] & F_FP_MASK) >> F_FP_SHIFT) > UTAB_FP_UNDEF)
    return 0;
  decode_row(p, &r);
  if (utab_put_row(again, &r, machine) != 0)
    return 0;
  return memcmp(again, p, UTAB_ROW_SIZE) == 0;
}

int utab_check(const uint8_t *b, size_t len)
{
  if (b == NULL || len < UTAB_HEADER_SIZE || memcmp(b + H_MAGIC, UTAB_MAGIC, 4) != 0)
    return RS_E_FORMAT;
  unsigned machine = get16(b + H_MACHINE);
  uint32_t nrows = get32(b + H_NROWS), size = get32(b + H_SIZE);
  uint64_t base = get64(b + H_BASE);
  if (get16(b + H_VERSION) != UTAB_VERSION || !machine_known(machine) || get32(b + H_RESERVED) != 0)
    return RS_E_FORMAT;
  if ((len - UTAB_HEADER_SIZE) % UTAB_ROW_SIZE != 0 || (len - UTAB_HEADER_SIZE) / UTAB_ROW_SIZE != nrows)
    return RS_E_FORMAT;
  if (base + size < base)
    return RS_E_FORMAT;
  if (get32(b + H_CHECKSUM) != checksum(b, len))
    return RS_E_FORMAT;
  for (uint32_t i = 0; i < nrows; i++) {
    const uint8_t *p = b + UTAB_HEADER_SIZE + (size_t)i * UTAB_ROW_SIZE;
    uint32_t start = get32(p + R_START);
    if (start >= size || (i > 0 && start <= get32(p - UTAB_ROW_SIZE + R_START)) || !row_valid(p, machine))
      return RS_E_FORMAT;
  }
  return 0;
}

int utab_open(struct utab *t, const uint8_t *bytes, size_t len)
{
  int rc = utab_check(bytes, len);
  if (rc != 0)
    return rc;
  t->bytes = bytes;
  t->len = len;
  t->machine = get16(bytes + H_MACHINE);
  t->nrows = get32(bytes + H_NROWS);
  t->size = get32(bytes + H_SIZE);
  t->base = get64(bytes + H_BASE);
  return 0;
}

void utab_get_row(const struct utab *t, uint32_t i, struct utab_row *row)
{
  decode_row(t->bytes + UTAB_HEADER_SIZE + (size_t)i * UTAB_ROW_SIZE, row);
}

static uint32_t row_start(const struct utab *t, uint32_t i)
{
  return get32(t->bytes + UTAB_HEADER_SIZE + (size_t)i * UTAB_ROW_SIZE + R_START);
}

long utab_lookup(const struct utab *t, uint64_t off, struct utab_row *row, uint64_t *end)
{
  uint32_t lo = 0, hi = t->nrows;
  if (off < t->size) {
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (row_start(t, mid) <= off)
        lo = mid + 1;
      else
        hi = mid;
    }
  } else {
    lo = 0;
  }
  if (lo == 0) {
    memset(row, 0, sizeof *row);
    row->kind = UTAB_ROW_NONE;
    if (end)
      *end = off < t->size ? (t->nrows ? row_start(t, 0) : t->size) : UINT64_MAX;
    return RS_E_NOT_FOUND;
  }
  utab_get_row(t, lo - 1, row);
  if (end)
    *end = lo < t->nrows ? row_start(t, lo) : t->size;
  return (long)(lo - 1);
}

static int read_u64(const struct utab_memory *mem, uint64_t addr, uint64_t *v)
{
  uint8_t b[8];
  if (mem == NULL || mem->read == NULL || mem->read(mem->ctx, addr, b, 8) != 0)
    return -1;
  *v = get64(b);
  return 0;
}

int utab_step(const struct utab_module *mods, size_t nmods, const struct utab_memory *mem, int exact,
              const struct utab_regs *in, struct utab_regs *out)
{
  uint64_t lookup = exact ? in->pc : in->pc - 1;
  const struct utab_module *m = NULL;
  for (size_t i = 0; i < nmods; i++) {
    if (lookup >= mods[i].lo && lookup < mods[i].hi) {
      m = &mods[i];
      break;
    }
  }
  if (m == NULL || m->tab == NULL)
    return UTAB_NEED_HOST;
  uint64_t rel = lookup - m->bias;
  if (rel < m->tab->base)
    return UTAB_NEED_HOST;
  struct utab_row r;
  utab_lookup(m->tab, rel - m->tab->base, &r, NULL);
  if (r.kind == UTAB_ROW_END)
    return UTAB_END;
  if (r.kind != UTAB_ROW_FRAME)
    return UTAB_NEED_HOST;
  uint32_t need = r.cfa_base == UTAB_CFA_FP ? UTAB_HAVE_FP : UTAB_HAVE_SP;
  if (!(in->have & need))
    return UTAB_BAD;
  uint64_t cfa = (r.cfa_base == UTAB_CFA_FP ? in->fp : in->sp) + (uint64_t)(int64_t)r.cfa_off;
  struct utab_regs n = {0, cfa, 0, 0, UTAB_HAVE_SP};
  /* The frame pointer's slot lies below the return address's on both architectures' usual frames, and
   * is read first, as a DWARF interpreter walking registers in number order does. */
  if (r.fp_rule == UTAB_FP_SAME) {
    n.fp = in->fp;
    n.have |= in->have & UTAB_HAVE_FP;
  } else if (r.fp_rule == UTAB_FP_AT_CFA) {
    if (read_u64(mem, cfa + (uint64_t)(int64_t)r.fp_off, &n.fp) != 0)
      return UTAB_UNREADABLE;
    n.have |= UTAB_HAVE_FP;
  }
  uint64_t ra;
  if (r.ra_rule == UTAB_RA_AT_CFA) {
    if (read_u64(mem, cfa + (uint64_t)(int64_t)r.ra_off, &ra) != 0)
      return UTAB_UNREADABLE;
  } else {
    if (!(in->have & UTAB_HAVE_LR))
      return UTAB_END;  /* the return address lives in a register nobody knows */
    ra = in->lr;
  }
  n.lr = ra;
  n.have |= UTAB_HAVE_LR;
  /* Authenticating a signed return address is the CPU's business; the walker only needs the address. */
  n.pc = r.ra_signed ? ra & USER_VA_MASK : ra;
  if (n.pc == 0)
    return UTAB_END;
  /* The stack only unwinds upwards. An equal SP is legitimate (an aarch64 leaf whose CFA is SP + 0) as
   * long as the PC moved; otherwise the same frame would repeat forever. */
  if ((in->have & UTAB_HAVE_SP) && (cfa < in->sp || (cfa == in->sp && n.pc == in->pc)))
    return UTAB_BAD;
  *out = n;
  return UTAB_OK;
}

int utab_walk(const struct utab_module *mods, size_t nmods, const struct utab_memory *mem,
              const struct utab_regs *regs, uint64_t *pcs, size_t max, size_t *n, struct utab_regs *last)
{
  struct utab_regs cur = *regs;
  size_t count = 0;
  int st = UTAB_FULL;
  while (count < max) {
    pcs[count] = count == 0 ? cur.pc : cur.pc - 1;
    count++;
    if (count == max)
      break;
    struct utab_regs next;
    st = utab_step(mods, nmods, mem, count == 1, &cur, &next);
    if (st != UTAB_OK)
      break;
    cur = next;
    st = UTAB_FULL;
  }
  *n = count;
  if (last)
    *last = cur;
  return st;
}
