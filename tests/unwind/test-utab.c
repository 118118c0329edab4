/* Unit tests of the compiled unwind tables: at every byte of the fixtures' FDEs and of libc's malloc
 * family the table's row says what the CFI interpreter's row says (or HOST exactly where the
 * interpreter's rule does not fit the table), the bytes survive a round trip and utab_check rejects
 * every truncation and every flipped byte, and the step and walk functions on hand-made stacks. */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch.h"
#include "cfi.h"
#include "errors.h"
#include "module.h"
#include "test.h"
#include "unwind-compile.h"
#include "unwind-table.h"

#define X86_LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#define A64_LIBC "/usr/aarch64-linux-gnu/lib/libc.so.6"

static const char *const malloc_family[] = {"malloc", "free", "calloc", "realloc", "posix_memalign"};

static struct col_module *open_or_skip(const char *path)
{
  if (access(path, R_OK) != 0)
    TEST_SKIP("%s is not there (fixture not built, or no cross libc)", path);
  struct col_module *m;
  ASSERT_EQ(col_module_open(path, NULL, NULL, &m), 0);
  return m;
}

struct compiled {
  uint8_t *bytes;
  size_t len;
  struct utab t;
  struct unw_table_stats st;
};

static void compile_or_fail(struct col_module *m, struct compiled *c)
{
  ASSERT_EQ(unw_table_compile(m, &c->bytes, &c->len, &c->st), 0);
  ASSERT_EQ(utab_open(&c->t, c->bytes, c->len), 0);
  ASSERT_EQ(c->t.machine, col_module_machine(m));
}

/* The table's view of a rule, decided here from the ABI's point of view rather than by the compiler's
 * code: which interpreter rows a 12-byte row can carry. */
static int slot_ok(int64_t off)
{
  return off % 8 == 0 && off >= -1024 && off <= 1016;
}

static int expressible(const struct cfi_row *row, const struct arch_desc *a)
{
  const struct cfi_rule *ra = &row->r[a->dwarf_ra_column], *fp = &row->r[a->dwarf_fp];
  if (row->signal_frame || row->ra_reg != a->dwarf_ra_column || row->cfa_kind != CFI_CFA_REG_OFF)
    return 0;
  if (row->cfa_reg != a->dwarf_sp && row->cfa_reg != a->dwarf_fp)
    return 0;
  if (row->cfa_off != (int32_t)row->cfa_off || row->r[a->dwarf_sp].kind != CFI_SAME)
    return 0;
  if (!(ra->kind == CFI_OFFSET && slot_ok(ra->off)) && !(ra->kind == CFI_SAME && a->elf_machine == EM_AARCH64))
    return 0;
  return fp->kind == CFI_SAME || fp->kind == CFI_UNDEF || (fp->kind == CFI_OFFSET && slot_ok(fp->off));
}

struct tally {
  long frame, host, end, none, bytes;
};

/* Compares the table with the interpreter at link-time address pc. */
static void agree_at(struct col_module *m, const struct compiled *c, const struct arch_desc *a, uint64_t pc,
                     struct tally *t)
{
  struct cfi_row row;
  struct utab_row r;
  int rc = cfi_find_row(m, pc, &row);
  if (pc >= c->t.base)
    utab_lookup(&c->t, pc - c->t.base, &r, NULL);
  else
    r.kind = UTAB_ROW_NONE;
  t->bytes++;
  if (rc == RS_E_NOT_FOUND) {
    if (r.kind != UTAB_ROW_NONE)
      TEST_FAIL("0x%llx: no FDE, but the table has a row of kind %d", (unsigned long long)pc, r.kind);
    t->none++;
    return;
  }
  if (rc != 0) {
    /* The interpreter fails here (malformed program): the table must leave it to the host. */
    ASSERT_EQ(r.kind, UTAB_ROW_HOST);
    t->host++;
    return;
  }
  if (row.ra_reg == a->dwarf_ra_column && row.r[row.ra_reg].kind == CFI_UNDEF && !row.signal_frame) {
    ASSERT_EQ(r.kind, UTAB_ROW_END);
    t->end++;
    return;
  }
  if (!expressible(&row, a)) {
    if (r.kind != UTAB_ROW_HOST)
      TEST_FAIL("0x%llx: the interpreter's rule does not fit a row, but the table has kind %d",
                (unsigned long long)pc, r.kind);
    t->host++;
    return;
  }
  if (r.kind != UTAB_ROW_FRAME)
    TEST_FAIL("0x%llx: expressible rule (CFA r%d%+lld), table row kind %d", (unsigned long long)pc, row.cfa_reg,
              (long long)row.cfa_off, r.kind);
  ASSERT_EQ(r.cfa_base == UTAB_CFA_SP ? a->dwarf_sp : a->dwarf_fp, row.cfa_reg);
  ASSERT_EQ(r.cfa_off, row.cfa_off);
  const struct cfi_rule *ra = &row.r[a->dwarf_ra_column], *fp = &row.r[a->dwarf_fp];
  if (ra->kind == CFI_OFFSET) {
    ASSERT_EQ(r.ra_rule, UTAB_RA_AT_CFA);
    ASSERT_EQ(r.ra_off, ra->off);
  } else {
    ASSERT_EQ(r.ra_rule, UTAB_RA_IN_LR);
  }
  ASSERT_EQ(r.ra_signed, row.ra_signed);
  if (fp->kind == CFI_OFFSET) {
    ASSERT_EQ(r.fp_rule, UTAB_FP_AT_CFA);
    ASSERT_EQ(r.fp_off, fp->off);
  } else {
    ASSERT_EQ(r.fp_rule, fp->kind == CFI_SAME ? UTAB_FP_SAME : UTAB_FP_UNDEF);
  }
  t->frame++;
}

struct every_byte {
  struct col_module *m;
  const struct compiled *c;
  const struct arch_desc *a;
  struct tally t;
};

static int check_fde(void *ctx, uint64_t lo, uint64_t hi)
{
  struct every_byte *e = ctx;
  for (uint64_t pc = lo; pc < hi; pc++)
    agree_at(e->m, e->c, e->a, pc, &e->t);
  return 0;
}

/* Every byte of every FDE of the module, and the bytes just outside each. */
static struct tally check_every_fde_byte(const char *path)
{
  struct col_module *m = open_or_skip(path);
  struct compiled c;
  compile_or_fail(m, &c);
  struct every_byte e = {m, &c, arch_by_elf_machine(col_module_machine(m)), {0}};
  ASSERT_TRUE(e.a != NULL);
  long n = cfi_foreach_fde(m, check_fde, &e);
  ASSERT_TRUE(n > 0);
  ASSERT_EQ(c.st.fdes, n);
  agree_at(m, &c, e.a, c.t.base - 1, &e.t);
  agree_at(m, &c, e.a, c.t.base + c.t.size, &e.t);
  printf("%s: %ld FDEs, %ld interpreter rows -> %ld table rows (%zu bytes); bytes checked: %ld frame, %ld host, "
         "%ld end\n",
         path, n, c.st.cfi_rows, c.st.rows, c.len, e.t.frame, e.t.host, e.t.end);
  /* Ordinary compiled functions fit the table; what does not is the PLT's CFA expression. */
  ASSERT_TRUE(e.t.frame > e.t.host);
  free(c.bytes);
  col_module_close(m);
  return e.t;
}

TEST(x86_64_fixture_every_byte)
{
  check_every_fde_byte(UNW_X86_FIXTURE);
}

TEST(x86_64_fp_fixture_every_byte)
{
  struct tally t = check_every_fde_byte(UNW_X86_FP_FIXTURE);
  /* -O0 with frame pointers: most of each function has CFA = rbp + 16. */
  ASSERT_TRUE(t.frame > 0);
}

TEST(x86_64_debug_frame_fixture_every_byte)
{
  check_every_fde_byte(UNW_X86_DEBUGFRAME_FIXTURE);
}

TEST(aarch64_fixture_every_byte)
{
  check_every_fde_byte(UNW_A64_FIXTURE);
}

/* Built without unwind tables: only the C runtime's objects have CFI, the program's functions have no
 * row (the walker asks the host, whose unwinder falls back to frame pointers). */
TEST(no_cfi_no_row)
{
  struct col_module *m = open_or_skip(UNW_X86_NOCFI_FIXTURE);
  const struct utab *t = unw_module_table(m);
  uint64_t addr, size;
  ASSERT_EQ(col_module_find_symbol(m, "recurse", &addr, &size), 0);
  struct cfi_row row;
  ASSERT_EQ(cfi_find_row(m, addr, &row), RS_E_NOT_FOUND);
  if (t != NULL) {
    struct utab_row r;
    for (uint64_t pc = addr; pc < addr + size; pc++) {
      if (pc >= t->base)
        utab_lookup(t, pc - t->base, &r, NULL);
      else
        r.kind = UTAB_ROW_NONE;
      ASSERT_EQ(r.kind, UTAB_ROW_NONE);
    }
  }
  col_module_close(m);
}

TEST(no_cfi_at_all)
{
  /* A module that is not code at all: the test binary's own libc-free data is not at hand, so use an
   * ELF without CFI sections if the system has one; the aarch64 cross crt object files qualify. */
  const char *path = "/usr/aarch64-linux-gnu/lib/crti.o";
  if (access(path, R_OK) != 0)
    TEST_SKIP("%s is not there", path);
  struct col_module *m;
  if (col_module_open(path, NULL, NULL, &m) != 0)
    TEST_SKIP("%s does not open as a module", path);
  struct col_section eh;
  if (col_module_section(m, ".eh_frame", 0, &eh) == 0 || col_module_section(m, ".debug_frame", 1, &eh) == 0)
    TEST_SKIP("%s has CFI", path);
  uint8_t *b = NULL;
  size_t len;
  ASSERT_EQ(unw_table_compile(m, &b, &len, NULL), RS_E_NOT_FOUND);
  ASSERT_TRUE(unw_module_table(m) == NULL);
  col_module_close(m);
}

/* libc: every byte of the malloc family, every table row's first and last byte, and the size. */
static void check_libc(const char *path)
{
  struct col_module *m = open_or_skip(path);
  struct compiled c;
  compile_or_fail(m, &c);
  const struct arch_desc *a = arch_by_elf_machine(col_module_machine(m));
  struct tally t = {0};
  for (size_t i = 0; i < sizeof malloc_family / sizeof malloc_family[0]; i++) {
    uint64_t addr, size;
    ASSERT_EQ(col_module_find_symbol(m, malloc_family[i], &addr, &size), 0);
    ASSERT_TRUE(size > 0);
    long before = t.frame;
    for (uint64_t pc = addr; pc < addr + size; pc++)
      agree_at(m, &c, a, pc, &t);
    /* The allocator's own code is plain compiled C: the table covers it. */
    ASSERT_TRUE(t.frame - before == (long)size);
  }
  struct tally rows = {0};
  for (uint32_t i = 0; i < c.t.nrows; i++) {
    struct utab_row r;
    uint64_t end;
    utab_get_row(&c.t, i, &r);
    utab_lookup(&c.t, r.start, &r, &end);
    agree_at(m, &c, a, c.t.base + r.start, &rows);
    agree_at(m, &c, a, c.t.base + end - 1, &rows);
  }
  struct col_section eh;
  ASSERT_EQ(col_module_section(m, ".eh_frame", 0, &eh), 0);
  struct col_section hdr = {0};
  col_module_section(m, ".eh_frame_hdr", 0, &hdr);
  printf("%s: .eh_frame %zu bytes + .eh_frame_hdr %zu; %ld FDEs, %ld interpreter rows -> table %zu bytes, "
         "%ld rows (%d bytes each; %ld host, %ld none), %.2f table bytes per interpreter row\n",
         path, eh.size, hdr.size, c.st.fdes, c.st.cfi_rows, c.len, c.st.rows, UTAB_ROW_SIZE, c.st.host_rows,
         c.st.none_rows, (double)c.len / (double)c.st.cfi_rows);
  printf("%s: malloc family %ld bytes checked; row boundaries: %ld frame, %ld host, %ld end, %ld none\n", path,
         t.bytes, rows.frame, rows.host, rows.end, rows.none);
  ASSERT_TRUE(rows.frame > 0);
  free(c.bytes);
  col_module_close(m);
}

TEST(x86_64_libc_malloc_family)
{
  check_libc(X86_LIBC);
}

TEST(aarch64_libc_malloc_family)
{
  check_libc(A64_LIBC);
}

/* ---- bytes ---- */

TEST(round_trip_and_rejections)
{
  struct col_module *m = open_or_skip(UNW_X86_FIXTURE);
  struct compiled c;
  compile_or_fail(m, &c);
  ASSERT_TRUE(c.t.nrows > 4);
  /* Decoding every row and encoding it again gives the same bytes. */
  uint8_t *again = malloc(c.len);
  ASSERT_TRUE(again != NULL);
  utab_put_header(again, c.t.machine, c.t.nrows, c.t.base, c.t.size);
  for (uint32_t i = 0; i < c.t.nrows; i++) {
    struct utab_row r;
    utab_get_row(&c.t, i, &r);
    ASSERT_EQ(utab_put_row(again + UTAB_HEADER_SIZE + (size_t)i * UTAB_ROW_SIZE, &r, c.t.machine), 0);
  }
  utab_seal(again, c.len);
  ASSERT_EQ(memcmp(again, c.bytes, c.len), 0);
  ASSERT_EQ(memcmp(c.bytes, "RSUT\x01\x00\x3e\x00", 8), 0);  /* magic, version 1, EM_X86_64, little-endian */
  /* Every truncation, and one byte too many. */
  for (size_t n = 0; n < c.len; n++)
    ASSERT_EQ(utab_check(c.bytes, n), RS_E_FORMAT);
  uint8_t *longer = calloc(1, c.len + 1);
  ASSERT_TRUE(longer != NULL);
  memcpy(longer, c.bytes, c.len);
  ASSERT_EQ(utab_check(longer, c.len + 1), RS_E_FORMAT);
  /* Every byte flipped (all bits, then the lowest). */
  for (size_t i = 0; i < c.len; i++) {
    for (int k = 0; k < 2; k++) {
      memcpy(again, c.bytes, c.len);
      again[i] ^= k ? 0x01 : 0xff;
      if (utab_check(again, c.len) != RS_E_FORMAT)
        TEST_FAIL("byte %zu ^ 0x%x accepted", i, k ? 0x01 : 0xff);
    }
  }
  /* Tables whose checksum is right but whose content is not. */
  struct {
    size_t at;
    uint8_t val;
  } bad[] = {
      {UTAB_HEADER_SIZE + 8, 7},     /* unknown kind */
      {UTAB_HEADER_SIZE + 9, 0x20},  /* unknown flag */
      {UTAB_HEADER_SIZE + 9, 0x0c},  /* frame-pointer rule 3 */
      {4, 2},                        /* version 2 */
      {6, 40},                       /* EM_ARM */
      {28, 1},                       /* reserved */
      {0, 0},                        /* (below) row 1 starts where row 0 does */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memcpy(again, c.bytes, c.len);
    if (i == sizeof bad / sizeof bad[0] - 1)
      memcpy(again + UTAB_HEADER_SIZE + UTAB_ROW_SIZE, again + UTAB_HEADER_SIZE, 4);
    else
      again[bad[i].at] = bad[i].val;
    utab_seal(again, c.len);
    if (utab_check(again, c.len) != RS_E_FORMAT)
      TEST_FAIL("crafted table %zu accepted", i);
  }
  /* x86_64 has no link register. */
  struct utab_row lr = {.kind = UTAB_ROW_FRAME, .ra_rule = UTAB_RA_IN_LR};
  ASSERT_EQ(utab_put_row(again, &lr, UTAB_MACHINE_X86_64), RS_E_BAD_ARG);
  ASSERT_EQ(utab_put_row(again, &lr, UTAB_MACHINE_AARCH64), 0);
  struct utab_row odd = {.kind = UTAB_ROW_FRAME, .ra_off = -12};
  ASSERT_EQ(utab_put_row(again, &odd, UTAB_MACHINE_X86_64), RS_E_BAD_ARG);
  free(longer);
  free(again);
  free(c.bytes);
  col_module_close(m);
}

/* Random changes to a real table, resealed so that the checksum no longer protects it: whatever
 * utab_check accepts must keep the format's promises, and lookups and walks on it stay in bounds
 * (the sanitizer build checks the reads). */
static int read_nothing(void *ctx, uint64_t addr, void *buf, size_t len)
{
  (void)ctx;
  memset(buf, 0, len);
  return addr % 3 == 0 ? -EFAULT : 0;  /* some reads fail, the others read zeros */
}

TEST(mutated_tables_accepted_only_when_well_formed)
{
  struct col_module *m = open_or_skip(UNW_A64_FIXTURE);
  struct compiled c;
  compile_or_fail(m, &c);
  uint8_t *b = malloc(c.len);
  ASSERT_TRUE(b != NULL);
  uint32_t rng = 12345;
  long accepted = 0;
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(b, c.bytes, c.len);
    int changes = 1 + (int)((rng >> 8) % 3);
    for (int k = 0; k < changes; k++) {
      rng = rng * 1103515245u + 12345u;
      size_t at = UTAB_HEADER_SIZE + (rng >> 8) % (c.len - UTAB_HEADER_SIZE);
      rng = rng * 1103515245u + 12345u;
      b[at] = (uint8_t)(rng >> 16);
    }
    utab_seal(b, c.len);
    struct utab t;
    if (utab_open(&t, b, c.len) != 0)
      continue;
    accepted++;
    for (uint32_t i = 0; i < t.nrows; i++) {
      struct utab_row r;
      utab_get_row(&t, i, &r);
      ASSERT_TRUE(r.start < t.size && r.kind <= UTAB_ROW_END);
      if (i + 1 < t.nrows) {
        struct utab_row n;
        utab_get_row(&t, i + 1, &n);
        ASSERT_TRUE(n.start > r.start);
      }
      ASSERT_TRUE(utab_row_encodable(&r, t.machine));
    }
    struct utab_module mod = {0, t.base, t.base + t.size, &t};
    struct utab_memory mem = {read_nothing, NULL};
    for (uint64_t off = 0; off < t.size; off += 4) {
      struct utab_regs in = {t.base + off, 0x10000, 0x10040, 0x20, UTAB_HAVE_SP | UTAB_HAVE_FP | UTAB_HAVE_LR};
      uint64_t pcs[16];
      size_t n;
      int st = utab_walk(&mod, 1, &mem, &in, pcs, 16, &n, NULL);
      ASSERT_TRUE(st >= UTAB_END && st <= UTAB_FULL && n >= 1 && n <= 16);
    }
  }
  /* Changing a row's offsets or rules keeps it well formed, changing its kind or flags mostly not:
   * both outcomes must occur. */
  ASSERT_TRUE(accepted > 0 && accepted < 20000);
  printf("%ld of 20000 mutated tables accepted\n", accepted);
  free(b);
  free(c.bytes);
  col_module_close(m);
}

/* ---- step and walk on hand-made tables and stacks ---- */

struct stack {
  uint64_t base;
  uint8_t bytes[256];
};

static int read_stack(void *ctx, uint64_t addr, void *buf, size_t len)
{
  const struct stack *s = ctx;
  if (addr < s->base || addr - s->base > sizeof s->bytes || sizeof s->bytes - (addr - s->base) < len)
    return -EFAULT;
  memcpy(buf, s->bytes + (addr - s->base), len);
  return 0;
}

static void put_word(struct stack *s, uint64_t addr, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    s->bytes[addr - s->base + i] = (uint8_t)(v >> (8 * i));
}

/* Builds a table from rows (starts relative to base 0x1000) into buf. */
static void make_table(uint8_t *buf, size_t cap, unsigned machine, const struct utab_row *rows, uint32_t n,
                       uint32_t size, struct utab *t)
{
  size_t len = UTAB_HEADER_SIZE + (size_t)n * UTAB_ROW_SIZE;
  ASSERT_TRUE(len <= cap);
  utab_put_header(buf, machine, n, 0x1000, size);
  for (uint32_t i = 0; i < n; i++)
    ASSERT_EQ(utab_put_row(buf + UTAB_HEADER_SIZE + (size_t)i * UTAB_ROW_SIZE, &rows[i], machine), 0);
  utab_seal(buf, len);
  ASSERT_EQ(utab_open(t, buf, len), 0);
}

TEST(x86_64_step_and_walk)
{
  /* 0x1000: entry (CFA = rsp + 8); 0x1001: after push rbp (CFA = rsp + 16, rbp at CFA - 16);
   * 0x1004: CFA = rbp + 16; 0x1100: no CFI; 0x1200: _start (return address undefined). */
  const struct utab_row rows[] = {
      {.start = 0x000, .kind = UTAB_ROW_FRAME, .cfa_off = 8, .ra_off = -8},
      {.start = 0x001, .kind = UTAB_ROW_FRAME, .cfa_off = 16, .ra_off = -8, .fp_rule = UTAB_FP_AT_CFA, .fp_off = -16},
      {.start = 0x004, .kind = UTAB_ROW_FRAME, .cfa_base = UTAB_CFA_FP, .cfa_off = 16, .ra_off = -8,
       .fp_rule = UTAB_FP_AT_CFA, .fp_off = -16},
      {.start = 0x100, .kind = UTAB_ROW_NONE},
      {.start = 0x200, .kind = UTAB_ROW_END},
  };
  uint8_t buf[256];
  struct utab t;
  make_table(buf, sizeof buf, UTAB_MACHINE_X86_64, rows, 5, 0x300, &t);
  struct utab_row r;
  uint64_t end;
  ASSERT_EQ(utab_lookup(&t, 0x50, &r, &end), 2);
  ASSERT_EQ(end, 0x100);
  ASSERT_EQ(utab_lookup(&t, 0x300, &r, &end), RS_E_NOT_FOUND);
  ASSERT_EQ(r.kind, UTAB_ROW_NONE);

  const uint64_t bias = 0x7f0000000000ull;
  struct utab_module mods[] = {{bias, bias + 0x1000, bias + 0x1300, &t}};
  struct stack s = {0x7ffd0000, {0}};
  struct utab_memory mem = {read_stack, &s};
  /* Frame 0 at the entry of a function: RA at [rsp]. Called from 0x1050 (inside the rbp-based
   * function), whose frame has rbp = 0x7ffd0040 with [rbp] = saved rbp, [rbp + 8] = RA into 0x1201. */
  put_word(&s, 0x7ffd0000, bias + 0x1051);
  put_word(&s, 0x7ffd0040, 0x7ffd0080);
  put_word(&s, 0x7ffd0048, bias + 0x1201);
  struct utab_regs in = {bias + 0x1000, 0x7ffd0000, 0x7ffd0040, 0, UTAB_HAVE_SP | UTAB_HAVE_FP}, out;
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &in, &out), UTAB_OK);
  ASSERT_U64_EQ(out.pc, bias + 0x1051);
  ASSERT_U64_EQ(out.sp, 0x7ffd0008);
  ASSERT_U64_EQ(out.fp, 0x7ffd0040);  /* rule "same" */
  ASSERT_TRUE(out.have & UTAB_HAVE_FP);
  struct utab_regs next;
  ASSERT_EQ(utab_step(mods, 1, &mem, 0, &out, &next), UTAB_OK);
  ASSERT_U64_EQ(next.pc, bias + 0x1201);
  ASSERT_U64_EQ(next.sp, 0x7ffd0050);
  ASSERT_U64_EQ(next.fp, 0x7ffd0080);
  /* 0x1201 - 1 = 0x1200 is _start's row. */
  struct utab_regs last;
  ASSERT_EQ(utab_step(mods, 1, &mem, 0, &next, &last), UTAB_END);

  uint64_t pcs[8];
  size_t n;
  ASSERT_EQ(utab_walk(mods, 1, &mem, &in, pcs, 8, &n, &last), UTAB_END);
  ASSERT_EQ(n, 3);
  ASSERT_U64_EQ(pcs[0], bias + 0x1000);
  ASSERT_U64_EQ(pcs[1], bias + 0x1050);
  ASSERT_U64_EQ(pcs[2], bias + 0x1200);
  ASSERT_U64_EQ(last.pc, bias + 0x1201);
  ASSERT_EQ(utab_walk(mods, 1, &mem, &in, pcs, 2, &n, NULL), UTAB_FULL);
  ASSERT_EQ(n, 2);

  /* A return address into a gap, a PC outside every module, a module without a table. */
  put_word(&s, 0x7ffd0000, bias + 0x1181);
  ASSERT_EQ(utab_walk(mods, 1, &mem, &in, pcs, 8, &n, &last), UTAB_NEED_HOST);
  ASSERT_EQ(n, 2);
  ASSERT_U64_EQ(last.pc, bias + 0x1181);
  struct utab_regs away = in;
  away.pc = 0x400000;
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &away, &out), UTAB_NEED_HOST);
  struct utab_module bare = {bias, bias + 0x1000, bias + 0x1300, NULL};
  ASSERT_EQ(utab_step(&bare, 1, &mem, 1, &in, &out), UTAB_NEED_HOST);
  /* The return address's slot is outside what the reader has. */
  struct utab_regs deep = in;
  deep.sp = 0x7ffd0000 + sizeof s.bytes;
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &deep, &out), UTAB_UNREADABLE);
  /* No frame pointer known for an rbp-based row. */
  struct utab_regs nofp = {bias + 0x1050, 0x7ffd0000, 0, 0, UTAB_HAVE_SP};
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &nofp, &out), UTAB_BAD);
  /* A frame pointer below the stack pointer makes the caller's SP go down. */
  struct utab_regs down = {bias + 0x1050, 0x7ffd0080, 0x7ffd0040, 0, UTAB_HAVE_SP | UTAB_HAVE_FP};
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &down, &out), UTAB_BAD);
  /* A return address of 0 ends the walk. */
  put_word(&s, 0x7ffd0000, 0);
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &in, &out), UTAB_END);
}

TEST(aarch64_leaf_and_signed_return_address)
{
  /* 0x000: leaf (CFA = sp, RA in x30); 0x010: after stp x29, x30, [sp, #-32]!: CFA = sp + 32, x29 at
   * CFA - 32, x30 at CFA - 24, signed. */
  const struct utab_row rows[] = {
      {.start = 0x000, .kind = UTAB_ROW_FRAME, .ra_rule = UTAB_RA_IN_LR},
      {.start = 0x010, .kind = UTAB_ROW_FRAME, .cfa_off = 32, .ra_off = -24, .fp_rule = UTAB_FP_AT_CFA, .fp_off = -32,
       .ra_signed = 1},
  };
  uint8_t buf[128];
  struct utab t;
  make_table(buf, sizeof buf, UTAB_MACHINE_AARCH64, rows, 2, 0x100, &t);
  struct utab_module mods[] = {{0, 0x1000, 0x1100, &t}};
  struct stack s = {0x8000, {0}};
  struct utab_memory mem = {read_stack, &s};
  struct utab_regs in = {0x1000, 0x8000, 0x9000, 0x1044, UTAB_HAVE_SP | UTAB_HAVE_FP | UTAB_HAVE_LR}, out;
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &in, &out), UTAB_OK);
  ASSERT_U64_EQ(out.pc, 0x1044);
  ASSERT_U64_EQ(out.sp, 0x8000);  /* equal SP is fine: the PC moved */
  ASSERT_U64_EQ(out.lr, 0x1044);
  /* Without x30 the leaf's caller is unknown. */
  in.have &= ~UTAB_HAVE_LR;
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &in, &out), UTAB_END);
  /* The caller's frame: the saved x30 carries a PAC in its top bits, stripped from the PC only. */
  put_word(&s, 0x8000, 0x8100);
  put_word(&s, 0x8008, 0x002a000000001004ull);
  struct utab_regs mid = {0x1044, 0x8000, 0x8000, 0, UTAB_HAVE_SP | UTAB_HAVE_FP};
  ASSERT_EQ(utab_step(mods, 1, &mem, 0, &mid, &out), UTAB_OK);
  ASSERT_U64_EQ(out.pc, 0x1004);
  ASSERT_U64_EQ(out.lr, 0x002a000000001004ull);
  ASSERT_U64_EQ(out.sp, 0x8020);
  ASSERT_U64_EQ(out.fp, 0x8100);
  /* The same PC and SP again would be a loop. */
  struct utab_regs same = {0x1000, 0x8000, 0x9000, 0x1000, UTAB_HAVE_SP | UTAB_HAVE_FP | UTAB_HAVE_LR};
  ASSERT_EQ(utab_step(mods, 1, &mem, 1, &same, &out), UTAB_BAD);
}

TEST(module_table_is_cached)
{
  struct col_module *m = open_or_skip(UNW_X86_FIXTURE);
  const struct utab *a = unw_module_table(m);
  ASSERT_TRUE(a != NULL);
  ASSERT_TRUE(unw_module_table(m) == a);
  ASSERT_EQ(utab_check(a->bytes, a->len), 0);
  col_module_close(m);
}
