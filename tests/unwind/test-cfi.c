/* Unit tests of the CFI reader and the unwinder's rules on real fixtures: every FDE of an aarch64 and
 * an x86_64 binary parses (the linker's .eh_frame_hdr count is the reference), and the rows at known
 * places (function entry, after the prologue, the PLT) have the rules the ABIs prescribe. */
#include <elf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cfi.h"
#include "demangle.h"
#include "errors.h"
#include "module.h"
#include "symbolize.h"
#include "test.h"
#include "unwind.h"

static struct col_module *open_fixture(const char *path)
{
  if (access(path, R_OK) != 0)
    TEST_SKIP("fixture %s was not built (cross compiler missing?)", path);
  struct col_module *m;
  ASSERT_EQ(col_module_open(path, NULL, NULL, &m), 0);
  return m;
}

/* The FDE count the linker wrote into .eh_frame_hdr. */
static long hdr_fde_count(struct col_module *m)
{
  struct col_section hdr;
  ASSERT_EQ(col_module_section(m, ".eh_frame_hdr", 0, &hdr), 0);
  ASSERT_EQ(hdr.data[0], 1);        /* version */
  ASSERT_EQ(hdr.data[2], 0x03);     /* fde_count_enc: udata4 */
  uint32_t count;
  ASSERT_TRUE(hdr.data[1] == 0x1b); /* eh_frame_ptr: pcrel sdata4 */
  memcpy(&count, hdr.data + 8, 4);
  return count;
}

static int count_fde(void *ctx, uint64_t lo, uint64_t hi)
{
  (void)lo;
  (void)hi;
  (*(long *)ctx)++;
  return 0;
}

static void check_all_fdes(struct col_module *m)
{
  long seen = 0;
  long n = cfi_foreach_fde(m, count_fde, &seen);
  ASSERT_TRUE(n > 0);
  ASSERT_EQ(n, seen);
  ASSERT_EQ(n, hdr_fde_count(m));
}

TEST(aarch64_every_fde_parses)
{
  struct col_module *m = open_fixture(UNW_A64_FIXTURE);
  ASSERT_EQ(col_module_machine(m), EM_AARCH64);
  check_all_fdes(m);
  col_module_close(m);
}

TEST(aarch64_rules_at_entry_and_after_prologue)
{
  struct col_module *m = open_fixture(UNW_A64_FIXTURE);
  uint64_t addr, size;
  ASSERT_EQ(col_module_find_symbol(m, "recurse", &addr, &size), 0);
  struct cfi_row row;
  ASSERT_EQ(cfi_find_row(m, addr, &row), 0);
  /* At entry: CFA = sp + 0, return address still in x30 (same value). */
  ASSERT_EQ(row.cfa_kind, CFI_CFA_REG_OFF);
  ASSERT_EQ(row.cfa_reg, 31);
  ASSERT_EQ(row.cfa_off, 0);
  ASSERT_EQ(row.ra_reg, 30);
  ASSERT_EQ(row.r[30].kind, CFI_SAME);
  /* Before the last instruction (ret) of a function that calls: some row has saved x30 on the stack
   * at a negative offset from the CFA, as `stp x29, x30, [sp, #-N]!` does. */
  int saved = 0;
  for (uint64_t pc = addr; pc < addr + size; pc += 4) {
    ASSERT_EQ(cfi_find_row(m, pc, &row), 0);
    if (row.r[30].kind == CFI_OFFSET) {
      ASSERT_TRUE(row.r[30].off < 0);
      ASSERT_TRUE(row.cfa_off > 0);
      saved = 1;
    }
  }
  ASSERT_TRUE(saved);
  col_module_close(m);
}

TEST(x86_64_every_fde_parses)
{
  struct col_module *m = open_fixture(UNW_X86_FIXTURE);
  ASSERT_EQ(col_module_machine(m), EM_X86_64);
  check_all_fdes(m);
  col_module_close(m);
}

TEST(x86_64_rules_at_entry_and_in_plt)
{
  struct col_module *m = open_fixture(UNW_X86_FP_FIXTURE);
  uint64_t addr, size;
  ASSERT_EQ(col_module_find_symbol(m, "recurse", &addr, &size), 0);
  struct cfi_row row;
  ASSERT_EQ(cfi_find_row(m, addr, &row), 0);
  /* At entry: CFA = rsp + 8, return address at CFA - 8. */
  ASSERT_EQ(row.cfa_reg, 7);
  ASSERT_EQ(row.cfa_off, 8);
  ASSERT_EQ(row.ra_reg, 16);
  ASSERT_EQ(row.r[16].kind, CFI_OFFSET);
  ASSERT_EQ(row.r[16].off, -8);
  /* The frame-pointer fixture's body: CFA = rbp + 16, rbp saved at CFA - 16. */
  ASSERT_EQ(cfi_find_row(m, addr + size - 2, &row), 0);
  ASSERT_EQ(row.cfa_reg, 6);
  ASSERT_EQ(row.cfa_off, 16);
  ASSERT_EQ(row.r[6].kind, CFI_OFFSET);
  ASSERT_EQ(row.r[6].off, -16);
  /* The PLT's CFA is a DWARF expression (it depends on where in the 16-byte entry the PC is). */
  struct col_section plt;
  if (col_module_section(m, ".plt", 0, &plt) == 0) {
    ASSERT_EQ(cfi_find_row(m, plt.addr + 16 + 4, &row), 0);
    ASSERT_EQ(row.cfa_kind, CFI_CFA_EXPR);
  }
  col_module_close(m);
}

TEST(no_fde_outside_code)
{
  struct col_module *m = open_fixture(UNW_X86_FIXTURE);
  struct cfi_row row;
  ASSERT_EQ(cfi_find_row(m, 0, &row), RS_E_NOT_FOUND);
  ASSERT_EQ(cfi_find_row(m, UINT64_MAX - 16, &row), RS_E_NOT_FOUND);
  col_module_close(m);
}

TEST(symbols_and_inline_chain)
{
  struct col_module *m = open_fixture(UNW_X86_FIXTURE);
  uint64_t addr, size;
  ASSERT_EQ(col_module_find_symbol(m, "deep_leaf", &addr, &size), 0);
  struct sym_frame fr[8];
  int n;
  ASSERT_EQ(sym_lookup(m, addr, fr, 8, &n), 0);
  ASSERT_EQ(n, 1);
  ASSERT_STR_EQ(fr[0].function, "deep_leaf");
  ASSERT_TRUE(fr[0].line > 0);
  /* The -O2 fixture inlines helper_inline into recurse: some address of recurse resolves to the chain
   * helper_inline (inlined, innermost) then recurse, the caller's line being the call site. */
  ASSERT_EQ(col_module_find_symbol(m, "recurse", &addr, &size), 0);
  int found = 0;
  for (uint64_t pc = addr; pc < addr + size && !found; pc++) {
    ASSERT_EQ(sym_lookup(m, pc, fr, 8, &n), 0);
    ASSERT_TRUE(n >= 1);
    ASSERT_STR_EQ(fr[n - 1].function, "recurse");
    if (n == 2) {
      ASSERT_STR_EQ(fr[0].function, "helper_inline");
      ASSERT_TRUE(fr[1].line > fr[0].line);  /* recurse's call site lies below helper_inline's body */
      found = 1;
    }
  }
  ASSERT_TRUE(found);
  /* Outside any function: nothing, not a guess. */
  ASSERT_EQ(sym_lookup(m, 0, fr, 8, &n), 0);
  ASSERT_EQ(n, 0);
  col_module_close(m);
}

TEST(modmap_finds_by_range)
{
  struct col_module *m = open_fixture(UNW_X86_FIXTURE);
  struct col_modmap *map;
  ASSERT_EQ(col_modmap_new(&map), 0);
  uint64_t lo, hi, bias;
  col_module_vaddr_range(m, &lo, &hi);
  ASSERT_EQ(col_modmap_add(map, m, 0x10000000), 0);
  ASSERT_EQ(col_modmap_add(map, m, 0x10000000), -EEXIST);
  ASSERT_TRUE(col_modmap_find(map, 0x10000000 + lo, &bias) == m);
  ASSERT_U64_EQ(bias, 0x10000000);
  ASSERT_TRUE(col_modmap_find(map, 0x10000000 + hi, &bias) == NULL);
  ASSERT_TRUE(col_modmap_find(map, 0x10000000 + lo - 1, &bias) == NULL);
  ASSERT_EQ(col_modmap_remove(map, m), 0);
  ASSERT_TRUE(col_modmap_find(map, 0x10000000 + lo, &bias) == NULL);
  col_modmap_free(map);
  col_module_close(m);
}

/* A synthetic stop at the first instruction of a function without CFI (a breakpoint at entry): the
 * return address is on top of the stack and RBP still belongs to the caller, whose frame-pointer
 * frame comes next. The unwinder must report caller and caller's caller, skipping nobody. */
TEST(x86_64_no_cfi_stop_at_function_entry)
{
  struct col_module *m = open_fixture(UNW_X86_NOCFI_FIXTURE);
  uint64_t leaf, leaf_size, rec, rec_size, mainf, main_size;
  ASSERT_EQ(col_module_find_symbol(m, "deep_leaf", &leaf, &leaf_size), 0);
  ASSERT_EQ(col_module_find_symbol(m, "recurse", &rec, &rec_size), 0);
  ASSERT_EQ(col_module_find_symbol(m, "main", &mainf, &main_size), 0);
  struct cfi_row row;
  ASSERT_EQ(cfi_find_row(m, leaf, &row), RS_E_NOT_FOUND);  /* really no CFI */
  const uint64_t bias = 0x555555554000ull, sp = 0x7ffd0000f000ull;
  struct col_modmap *map;
  ASSERT_EQ(col_modmap_new(&map), 0);
  ASSERT_EQ(col_modmap_add(map, m, bias), 0);
  uint64_t stack[16] = {0};
  stack[0] = bias + rec + 20;           /* return address into recurse */
  stack[4] = 0;                         /* recurse's frame: saved rbp = 0 (outermost) ... */
  stack[5] = bias + mainf + 30;         /* ... and its return address into main */
  struct col_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.arch = &arch_x86_64;
  regs.pc = bias + leaf;
  col_regs_set(&regs, 7, sp);
  col_regs_set(&regs, 6, sp + 32);      /* recurse's rbp points at stack[4] */
  struct unw_snapshot snap = {sp, (const uint8_t *)stack, sizeof stack};
  struct unw_ctx *u;
  ASSERT_EQ(unw_ctx_new(&u), 0);
  uint64_t pcs[8];
  size_t n;
  enum unw_end end;
  ASSERT_EQ(unw_unwind(u, map, &regs, &snap, NULL, pcs, 8, &n, &end), 0);
  ASSERT_TRUE(n >= 3);
  ASSERT_U64_EQ(pcs[0], bias + leaf);
  ASSERT_U64_EQ(pcs[1], bias + rec + 19);
  ASSERT_U64_EQ(pcs[2], bias + mainf + 29);
  unw_ctx_free(u);
  col_modmap_free(map);
  col_module_close(m);
}

/* glibc marks the new thread's first frame in clone with an undefined return address: the unwinder
 * must stop there cleanly ("outermost"), which is how every thread's stack ends. */
TEST(x86_64_clone_child_is_outermost)
{
  const char *libc = "/lib/x86_64-linux-gnu/libc.so.6";
  if (access(libc, R_OK) != 0)
    TEST_SKIP("%s not present", libc);
  struct col_module *m = open_fixture(libc);
  uint64_t addr, size;
  ASSERT_EQ(col_module_find_symbol(m, "__clone", &addr, &size), 0);
  uint64_t undef_pc = 0;
  struct cfi_row row;
  for (uint64_t pc = addr; pc < addr + size && !undef_pc; pc++)
    if (cfi_find_row(m, pc, &row) == 0 && row.r[row.ra_reg].kind == CFI_UNDEF)
      undef_pc = pc;
  ASSERT_TRUE(undef_pc != 0);
  struct col_modmap *map;
  ASSERT_EQ(col_modmap_new(&map), 0);
  ASSERT_EQ(col_modmap_add(map, m, 0x7f0000000000ull), 0);
  struct col_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.arch = &arch_x86_64;
  regs.pc = 0x7f0000000000ull + undef_pc;
  col_regs_set(&regs, 7, 0x7ffd00000000ull);
  uint64_t stack[4] = {0x1234, 0x5678, 0, 0};
  struct unw_snapshot snap = {0x7ffd00000000ull, (const uint8_t *)stack, sizeof stack};
  struct unw_ctx *u;
  ASSERT_EQ(unw_ctx_new(&u), 0);
  uint64_t pcs[8];
  size_t n;
  enum unw_end end;
  ASSERT_EQ(unw_unwind(u, map, &regs, &snap, NULL, pcs, 8, &n, &end), 0);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(end, UNW_END_OUTERMOST);
  unw_ctx_free(u);
  col_modmap_free(map);
  col_module_close(m);
}

/* Demangled names take the form gdb's backtrace prints: no parameter list, no Rust hash. */
TEST(demangle_like_gdb)
{
  struct {
    const char *mangled, *want;
  } cases[] = {
      {"_ZNSt6vectorIiSaIiEE9push_backERKi", "std::vector<int, std::allocator<int> >::push_back"},
      {"_ZN4work6Runner3runIiEEvi", "work::Runner::run<int>"},
      {"_ZN8unw_rust6shapes5total17he436b4cdeb64053cE", "unw_rust::shapes::total"},
      {"_ZN67_$LT$unw_rust..shapes..Square$u20$as$u20$unw_rust..shapes..Area$GT$4area17h15e88c794d0529f5E",
       "<unw_rust::shapes::Square as unw_rust::shapes::Area>::area"},
      {"_RNvCs5nUE4qK3bAU_7___rustc12___rust_alloc", "__rustc::__rust_alloc"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *d = col_demangle(cases[i].mangled);
    ASSERT_TRUE(d != NULL);
    ASSERT_STR_EQ(d, cases[i].want);
    free(d);
  }
  ASSERT_TRUE(col_demangle("main") == NULL);
  ASSERT_TRUE(col_demangle("_Znot_mangled_at_all") == NULL);
}
