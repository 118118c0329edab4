/* Unit tests of the aarch64 step-over emulation (built and run under qemu-aarch64 by tests/cross):
 * each emulated instruction must leave registers and memory as the CPU would. */
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
  r.k.pc = 0x400000;
  r.k.sp = 0x7ffff000;
  r.k.regs[29] = 0x1111;
  r.k.regs[30] = 0x400abc;
  return r;
}

static void put(uint8_t *b, uint32_t insn) { memcpy(b, &insn, 4); }

TEST(hints_only_advance)
{
  const uint32_t hints[] = {0xd503201f /* nop */, 0xd503245f /* bti c */, 0xd503249f /* bti j */,
                            0xd50324df /* bti jc */};
  for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
    struct ptarch_gregs r = base_regs();
    uint8_t b[4];
    put(b, hints[i]);
    ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, NULL), 1);
    ASSERT_U64_EQ(r.k.pc, 0x400004);
    ASSERT_U64_EQ(r.k.sp, 0x7ffff000);
  }
}

TEST(stp_fp_lr_pre_index_stores_the_pair)
{
  struct ptarch_gregs r = base_regs();
  struct fake_mem m = {0};
  uint8_t b[4];
  put(b, 0xa9bd7bfd); /* stp x29, x30, [sp, #-48]! */
  ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, &m), 1);
  ASSERT_U64_EQ(r.k.sp, 0x7ffff000 - 48);
  ASSERT_U64_EQ(m.addr, 0x7ffff000 - 48);
  uint64_t pair[2];
  memcpy(pair, m.data, 16);
  ASSERT_U64_EQ(pair[0], 0x1111);
  ASSERT_U64_EQ(pair[1], 0x400abc);
  ASSERT_U64_EQ(r.k.pc, 0x400004);
}

TEST(mov_fp_sp)
{
  struct ptarch_gregs r = base_regs();
  uint8_t b[4];
  put(b, 0x910003fd); /* mov x29, sp */
  ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.regs[29], 0x7ffff000);
  ASSERT_U64_EQ(r.k.pc, 0x400004);
}

TEST(mov_register_both_widths)
{
  struct ptarch_gregs r = base_regs();
  r.k.regs[0] = 0xfedcba9876543210ull;
  r.k.regs[19] = 0x5555;
  uint8_t b[4];
  put(b, 0xaa0003f3); /* mov x19, x0 */
  ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.regs[19], 0xfedcba9876543210ull);
  put(b, 0x2a0003e1); /* mov w1, w0: zero-extends */
  r.k.regs[1] = ~0ull;
  ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.regs[1], 0x76543210ull);
  put(b, 0xaa1f03e2); /* mov x2, xzr */
  r.k.regs[2] = 7;
  ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, NULL), 1);
  ASSERT_U64_EQ(r.k.regs[2], 0);
  ASSERT_U64_EQ(r.k.pc, 0x400000 + 12);
}

TEST(cbz_and_cbnz_branch_on_the_register)
{
  uint8_t b[4];
  struct {
    uint32_t insn;
    uint64_t x0;
    uint64_t pc_after;
  } cases[] = {
      {0xb4000100, 0, 0x400000 + 0x20},          /* cbz x0, +0x20: taken */
      {0xb4000100, 1, 0x400004},                 /* not taken */
      {0xb5000100, 1, 0x400000 + 0x20},          /* cbnz x0, +0x20: taken */
      {0xb5fffe00, 5, 0x400000 - 0x40},          /* cbnz x0, -0x40: backwards */
      {0x34000100, 0x100000000ull, 0x400000 + 0x20}, /* cbz w0: only the low half counts */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct ptarch_gregs r = base_regs();
    r.k.regs[0] = cases[i].x0;
    put(b, cases[i].insn);
    ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, NULL), 1);
    ASSERT_U64_EQ(r.k.pc, cases[i].pc_after);
    ASSERT_U64_EQ(r.k.regs[0], cases[i].x0);
  }
}

TEST(paciasp_and_others_are_left_to_single_step)
{
  const uint32_t others[] = {0xd503233f /* paciasp */, 0x94000000 /* bl */, 0xa9017bfd /* stp, no writeback */,
                             0xd10043ff /* sub sp, sp, #16 */};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    struct ptarch_gregs r = base_regs(), before = r;
    uint8_t b[4];
    put(b, others[i]);
    ASSERT_EQ(ptarch_emulate(&r, b, 4, fake_write, NULL), 0);
    ASSERT_MEM_EQ(&r, &before, sizeof r);
  }
}
