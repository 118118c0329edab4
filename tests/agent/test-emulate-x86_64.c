/* Unit tests of the x86_64 step-over emulation: each emulated instruction must leave registers,
 * flags and memory exactly as the CPU would (flags are checked against the CPU itself). */
#include <stdint.h>
#include <string.h>

#include "ptrace-arch.h"
#include "test.h"

struct fake_mem {
  uint64_t addr;
  uint8_t data[16];
  size_t len;
};

static int fake_write(void *ctx, uint64_t addr, const void *data, size_t len)
{
  struct fake_mem *m = ctx;
  m->addr = addr;
  m->len = len;
  memcpy(m->data, data, len);
  return 0;
}

static struct ptarch_gregs base_regs(void)
{
  struct ptarch_gregs r;
  memset(&r, 0, sizeof r);
  r.k.rip = 0x1000;
  r.k.rsp = 0x7ffc0000;
  r.k.rbp = 0x1234;
  r.k.rbx = 0x1111222233334444ull;
  r.k.r12 = 0xaaaabbbbccccddddull;
  r.k.eflags = 0x202;
  return r;
}

TEST(endbr64_and_nop_only_advance)
{
  struct ptarch_gregs r = base_regs(), before = r;
  struct fake_mem m = {0};
  const uint8_t endbr[] = {0xf3, 0x0f, 0x1e, 0xfa, 0x55};
  ASSERT_EQ(ptarch_emulate(&r, endbr, sizeof endbr, fake_write, &m), 1);
  ASSERT_U64_EQ(r.k.rip, before.k.rip + 4);
  ASSERT_U64_EQ(r.k.rsp, before.k.rsp);
  const uint8_t nop[] = {0x90};
  ASSERT_EQ(ptarch_emulate(&r, nop, 1, fake_write, &m), 1);
  ASSERT_U64_EQ(r.k.rip, before.k.rip + 5);
  ASSERT_EQ((int)m.len, 0);
}

TEST(push_stores_the_register_below_rsp)
{
  struct ptarch_gregs r = base_regs();
  struct fake_mem m = {0};
  const uint8_t push_rbx[] = {0x53};
  ASSERT_EQ(ptarch_emulate(&r, push_rbx, 1, fake_write, &m), 1);
  ASSERT_U64_EQ(r.k.rsp, 0x7ffc0000 - 8);
  ASSERT_U64_EQ(m.addr, 0x7ffc0000 - 8);
  uint64_t v;
  memcpy(&v, m.data, 8);
  ASSERT_U64_EQ(v, 0x1111222233334444ull);
  ASSERT_U64_EQ(r.k.rip, 0x1001);
  const uint8_t push_r12[] = {0x41, 0x54};
  ASSERT_EQ(ptarch_emulate(&r, push_r12, 2, fake_write, &m), 1);
  memcpy(&v, m.data, 8);
  ASSERT_U64_EQ(v, 0xaaaabbbbccccddddull);
  ASSERT_U64_EQ(r.k.rip, 0x1003);
  ASSERT_U64_EQ(r.k.rsp, 0x7ffc0000 - 16);
}

TEST(mov_rbp_rsp)
{
  struct ptarch_gregs r = base_regs();
  const uint8_t insn[] = {0x48, 0x89, 0xe5};
  ASSERT_EQ(ptarch_emulate(&r, insn, 3, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.rbp, r.k.rsp);
  ASSERT_U64_EQ(r.k.rip, 0x1003);
}

/* What the CPU itself computes for `sub`/`add` of imm on a 64-bit register, flags included. */
static uint64_t cpu_arith(uint64_t a, int64_t imm, int sub, uint64_t *flags)
{
  uint64_t res = a, f;
  if (sub)
    __asm__ volatile("sub %2, %0\n\tpushfq\n\tpopq %1" : "+r"(res), "=r"(f) : "r"(imm) : "cc");
  else
    __asm__ volatile("add %2, %0\n\tpushfq\n\tpopq %1" : "+r"(res), "=r"(f) : "r"(imm) : "cc");
  *flags = f;
  return res;
}

TEST(sub_and_add_rsp_match_the_cpu_including_flags)
{
  const uint64_t rsps[] = {0x7ffc0000, 0x10, 0x0, 0x8000000000000008ull, 0xffffffffffffffffull};
  const int64_t imms[] = {0x18, -8, 0x7f, 0x12345, -0x80000000ll, 0};
  const uint64_t mask = 0x8d5; /* CF PF AF ZF SF OF */
  for (size_t i = 0; i < sizeof rsps / sizeof rsps[0]; i++) {
    for (size_t j = 0; j < sizeof imms / sizeof imms[0]; j++) {
      for (int sub = 0; sub < 2; sub++) {
        struct ptarch_gregs r = base_regs();
        r.k.rsp = rsps[i];
        uint8_t insn[7] = {0x48, 0, (uint8_t)(sub ? 0xec : 0xc4)};
        size_t len;
        int64_t imm = imms[j];
        if (imm >= -128 && imm <= 127) {
          insn[1] = 0x83;
          insn[3] = (uint8_t)(int8_t)imm;
          len = 4;
        } else {
          insn[1] = 0x81;
          int32_t v = (int32_t)imm;
          memcpy(insn + 3, &v, 4);
          len = 7;
        }
        ASSERT_EQ(ptarch_emulate(&r, insn, len, fake_write, NULL), 1);
        uint64_t flags;
        uint64_t res = cpu_arith(rsps[i], imm, sub, &flags);
        ASSERT_U64_EQ(r.k.rsp, res);
        ASSERT_U64_EQ(r.k.eflags & mask, flags & mask);
        ASSERT_U64_EQ(r.k.rip, 0x1000 + len);
      }
    }
  }
}

/* What the CPU computes for `test a, b` (64-bit, or 32-bit on the low halves): the flags register. */
static uint64_t cpu_test(uint64_t a, uint64_t b, int wide)
{
  uint64_t f;
  if (wide)
    __asm__ volatile("test %1, %2\n\tpushfq\n\tpopq %0" : "=r"(f) : "r"(a), "r"(b) : "cc");
  else
    __asm__ volatile("test %k1, %k2\n\tpushfq\n\tpopq %0" : "=r"(f) : "r"(a), "r"(b) : "cc");
  return f;
}

TEST(test_reg_reg_matches_the_cpu_including_flags)
{
  const uint64_t vals[] = {0, 1, 0x80, 0xff, 0x80000000ull, 0xffffffffull, 0x100000000ull, 0x8000000000000000ull,
                           0xffffffffffffffffull, 0x1234567887654321ull};
  const uint64_t mask = 0x8d5; /* CF PF AF ZF SF OF */
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    for (size_t j = 0; j < sizeof vals / sizeof vals[0]; j++) {
      for (int wide = 0; wide < 2; wide++) {
        struct ptarch_gregs r = base_regs();
        r.k.eflags = 0x202 | 0x8d5; /* every arithmetic flag set before: each must be recomputed */
        r.k.rax = vals[i];
        r.k.r9 = vals[j];
        /* test r9, rax: REX.B for r9 (plus W for 64 bits), 85 /r with mod 11, reg = rax, rm = r9 */
        const uint8_t insn[] = {(uint8_t)(wide ? 0x49 : 0x41), 0x85, 0xc1};
        ASSERT_EQ(ptarch_emulate(&r, insn, sizeof insn, fake_write, NULL), 1);
        ASSERT_U64_EQ(r.k.eflags & mask, cpu_test(vals[i], vals[j], wide) & mask);
        ASSERT_U64_EQ(r.k.rax, vals[i]);
        ASSERT_U64_EQ(r.k.r9, vals[j]);
        ASSERT_U64_EQ(r.k.rip, 0x1003);
      }
    }
  }
  struct ptarch_gregs r = base_regs();
  r.k.rdi = 0;
  const uint8_t test_rdi[] = {0x48, 0x85, 0xff}; /* free()'s first instruction */
  ASSERT_EQ(ptarch_emulate(&r, test_rdi, sizeof test_rdi, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.eflags & 0x40, 0x40);
}

TEST(mov_reg_reg_in_both_directions_and_widths)
{
  struct ptarch_gregs r = base_regs();
  r.k.rax = 0xfedcba9876543210ull;
  const uint8_t mov_rbx_rax[] = {0x48, 0x89, 0xc3}; /* 89 /r: rm (rbx) <- reg (rax) */
  ASSERT_EQ(ptarch_emulate(&r, mov_rbx_rax, 3, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.rbx, 0xfedcba9876543210ull);
  const uint8_t mov_r12_rax[] = {0x4c, 0x8b, 0xe0}; /* 8b /r: reg (r12, REX.R) <- rm (rax) */
  ASSERT_EQ(ptarch_emulate(&r, mov_r12_rax, 3, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.r12, 0xfedcba9876543210ull);
  const uint8_t mov_edi_eax[] = {0x89, 0xc7}; /* 32-bit: zero-extends into rdi */
  r.k.rdi = ~0ull;
  ASSERT_EQ(ptarch_emulate(&r, mov_edi_eax, 2, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.rdi, 0x76543210ull);
  ASSERT_U64_EQ(r.k.rip, 0x1000 + 3 + 3 + 2);
  ASSERT_U64_EQ(r.k.eflags, 0x202); /* mov leaves the flags alone */
}

/* Encodings as GNU as emits them; each must store the register's bytes at the address the CPU would. */
TEST(register_stores_to_the_stack_frame)
{
  struct {
    uint8_t insn[8];
    size_t len;
    uint64_t addr; /* from base_regs() below */
    size_t width;
    uint64_t value;
  } cases[] = {
      {{0x48, 0x89, 0x45, 0xf8}, 4, 0x1234 - 8, 8, 0xfedcba9876543210ull},            /* mov %rax,-0x8(%rbp) */
      {{0x89, 0x7d, 0xfc}, 3, 0x1234 - 4, 4, 0x0bad0bad},                            /* mov %edi,-0x4(%rbp) */
      {{0x48, 0x89, 0x44, 0x24, 0x10}, 5, 0x7ffc0000 + 16, 8, 0xfedcba9876543210ull}, /* mov %rax,0x10(%rsp) */
      {{0x4c, 0x89, 0xa5, 0x00, 0xff, 0xff, 0xff}, 7, 0x1234 - 0x100, 8, 0xaaaabbbbccccddddull}, /* %r12,-0x100(%rbp) */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct ptarch_gregs r = base_regs();
    r.k.rax = 0xfedcba9876543210ull;
    r.k.rdi = 0xffffffff0bad0badull;
    r.k.r13 = 0x5000;
    struct ptarch_gregs before = r;
    struct fake_mem m = {0};
    ASSERT_EQ(ptarch_emulate(&r, cases[i].insn, cases[i].len, fake_write, &m), 1);
    ASSERT_U64_EQ(m.addr, cases[i].addr);
    ASSERT_EQ(m.len, cases[i].width);
    uint64_t v = 0;
    memcpy(&v, m.data, m.len);
    ASSERT_U64_EQ(v, cases[i].value);
    ASSERT_U64_EQ(r.k.rip, 0x1000 + cases[i].len);
    r.k.rip = before.k.rip;
    ASSERT_MEM_EQ(&r, &before, sizeof r); /* nothing else changes: no register, no flag */
  }
}

TEST(other_instructions_are_left_to_single_step)
{
  struct ptarch_gregs r = base_regs(), before = r;
  const uint8_t call[] = {0xe8, 0, 0, 0, 0};
  const uint8_t load[] = {0x48, 0x8b, 0x45, 0xf8};             /* mov -0x8(%rbp),%rax: reads memory */
  const uint8_t sub_rax[] = {0x48, 0x83, 0xe8, 0x08};
  const uint8_t indexed[] = {0x48, 0x89, 0x04, 0xcb};          /* mov %rax,(%rbx,%rcx,8) */
  const uint8_t absolute[] = {0x48, 0x89, 0x04, 0x25, 0, 0, 0, 0}; /* mov %rax,0x0 */
  const uint8_t rip_rel[] = {0x48, 0x89, 0x05, 0x00, 0x10, 0, 0};  /* mov %rax,0x1000(%rip): maybe read-only */
  const uint8_t via_rbx[] = {0x48, 0x89, 0x03};                    /* mov %rax,(%rbx): not a frame slot */
  const uint8_t via_r13[] = {0x4d, 0x89, 0xa5, 0x00, 0x01, 0, 0};  /* mov %r12,0x100(%r13) */
  const uint8_t cut_short[] = {0x48, 0x89, 0x85, 0x00, 0x01};  /* disp32 missing its last bytes */
  const uint8_t test_byte[] = {0x84, 0xc0};                    /* test al, al */
  const uint8_t mov_16[] = {0x66, 0x89, 0xc3};                  /* mov bx, ax */
  ASSERT_EQ(ptarch_emulate(&r, load, sizeof load, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, indexed, sizeof indexed, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, absolute, sizeof absolute, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, rip_rel, sizeof rip_rel, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, via_rbx, sizeof via_rbx, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, via_r13, sizeof via_r13, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, cut_short, sizeof cut_short, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, test_byte, sizeof test_byte, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, mov_16, sizeof mov_16, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, call, sizeof call, fake_write, NULL), 0);
  ASSERT_EQ(ptarch_emulate(&r, sub_rax, sizeof sub_rax, fake_write, NULL), 0);
  ASSERT_MEM_EQ(&r, &before, sizeof r);
}

TEST(jump_through_rip_relative_slot)
{
  struct ptarch_gregs r = base_regs();
  uint64_t slot = 0;
  /* Rust's __rdl_dealloc: jmp *0x2f4ca(%rip), the GOT slot of free. */
  const uint8_t jmp[] = {0xff, 0x25, 0xca, 0xf4, 0x02, 0x00, 0xcc};
  ASSERT_EQ(ptarch_indirect_jump_slot(&r, jmp, sizeof jmp, &slot), 1);
  ASSERT_U64_EQ(slot, 0x1000 + 6 + 0x2f4ca);
  const uint8_t bnd[] = {0xf2, 0xff, 0x25, 0xf0, 0xff, 0xff, 0xff}; /* bnd jmp *-0x10(%rip) */
  ASSERT_EQ(ptarch_indirect_jump_slot(&r, bnd, sizeof bnd, &slot), 1);
  ASSERT_U64_EQ(slot, 0x1000 + 7 - 0x10);
  const uint8_t reg[] = {0xff, 0xe0, 0, 0, 0, 0}; /* jmp *%rax: not a slot */
  ASSERT_EQ(ptarch_indirect_jump_slot(&r, reg, sizeof reg, &slot), 0);
  const uint8_t cut[] = {0xff, 0x25, 0xca};
  ASSERT_EQ(ptarch_indirect_jump_slot(&r, cut, sizeof cut, &slot), 0);
}

TEST(direct_jumps_move_the_pc_only)
{
  struct ptarch_gregs r = base_regs(), before = r;
  struct fake_mem m = {0};
  const uint8_t jmp32[] = {0xe9, 0x4b, 0x5e, 0x01, 0x00}; /* __rust_alloc: jmp __rdl_alloc */
  ASSERT_EQ(ptarch_emulate(&r, jmp32, sizeof jmp32, fake_write, &m), 1);
  ASSERT_U64_EQ(r.k.rip, before.k.rip + 5 + 0x15e4b);
  r = before;
  const uint8_t back[] = {0xe9, 0xf0, 0xff, 0xff, 0xff}; /* backwards */
  ASSERT_EQ(ptarch_emulate(&r, back, sizeof back, fake_write, &m), 1);
  ASSERT_U64_EQ(r.k.rip, before.k.rip + 5 - 0x10);
  r = before;
  const uint8_t jmp8[] = {0xeb, 0xfe};
  ASSERT_EQ(ptarch_emulate(&r, jmp8, sizeof jmp8, fake_write, &m), 1);
  ASSERT_U64_EQ(r.k.rip, before.k.rip);
  ASSERT_U64_EQ(r.k.rsp, before.k.rsp);
  ASSERT_U64_EQ(r.k.eflags, before.k.eflags);
  ASSERT_EQ((int)m.len, 0);
  const uint8_t cut[] = {0xe9, 0x01};
  ASSERT_EQ(ptarch_emulate(&r, cut, sizeof cut, fake_write, &m), 0);
}
