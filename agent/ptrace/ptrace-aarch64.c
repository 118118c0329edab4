/* aarch64 ptrace access: NT_PRSTATUS and NT_FPREGSET register sets mapped to gdb's register order,
 * and emulation of common function-prologue instructions so a breakpoint can be passed without a step. */
#include <elf.h>
#include <errno.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <asm/ptrace.h>

#include "ptrace-arch.h"

_Static_assert(sizeof(struct user_pt_regs) <= sizeof(struct ptarch_gregs), "gregs too small");

#define U(r) (&(r)->k)
#define UC(r) (&(r)->k)

const struct arch_desc *ptarch_desc(void) { return &arch_aarch64; }

int ptarch_get_gregs(pid_t tid, struct ptarch_gregs *r)
{
  struct iovec io = {&r->k, sizeof r->k};
  return ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &io) < 0 ? -errno : 0;
}

int ptarch_set_gregs(pid_t tid, const struct ptarch_gregs *r)
{
  struct iovec io = {(void *)&r->k, sizeof r->k};
  return ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &io) < 0 ? -errno : 0;
}

uint64_t ptarch_pc(const struct ptarch_gregs *r) { return UC(r)->pc; }
uint64_t ptarch_sp(const struct ptarch_gregs *r) { return UC(r)->sp; }
uint64_t ptarch_retval(const struct ptarch_gregs *r) { return UC(r)->regs[0]; }
void ptarch_set_pc(struct ptarch_gregs *r, uint64_t pc) { U(r)->pc = pc; }

int ptarch_prepare_call(pid_t tid, struct ptarch_gregs *r, uint64_t fn, const uint64_t *args, int nargs, uint64_t sp,
                        ptarch_write_fn wr, void *ctx, long *sys_state)
{
  (void)wr;
  (void)ctx;
  if (nargs > 6)
    return -EINVAL;
  for (int i = 0; i < nargs; i++)
    U(r)->regs[i] = args[i];
  U(r)->regs[30] = 0; /* the return address: the call ends with a fault at 0 */
  U(r)->sp = sp;
  U(r)->pc = fn;
  int nr = -1; /* not in a system call: nothing to restart */
  struct iovec io = {&nr, sizeof nr};
  if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_ARM_SYSTEM_CALL, &io) < 0)
    return -errno;
  *sys_state = nr;
  nr = -1;
  io.iov_len = sizeof nr;
  return ptrace(PTRACE_SETREGSET, tid, (void *)NT_ARM_SYSTEM_CALL, &io) < 0 ? -errno : 0;
}

int ptarch_finish_call(pid_t tid, long sys_state)
{
  int nr = (int)sys_state;
  struct iovec io = {&nr, sizeof nr};
  return ptrace(PTRACE_SETREGSET, tid, (void *)NT_ARM_SYSTEM_CALL, &io) < 0 ? -errno : 0;
}

/* The 'g' image: x0..x30, sp, pc (8 bytes each), cpsr 4, v0..v31 16 each, fpsr 4, fpcr 4. */
#define OFF_CPSR (33 * 8)
#define OFF_V (OFF_CPSR + 4)
#define OFF_FPSR (OFF_V + 32 * 16)

void ptarch_fill_core(const struct ptarch_gregs *r, uint8_t *out)
{
  memcpy(out, UC(r)->regs, 31 * 8);
  memcpy(out + 31 * 8, &UC(r)->sp, 8);
  memcpy(out + 32 * 8, &UC(r)->pc, 8);
}

int ptarch_fill_all(pid_t tid, const struct ptarch_gregs *r, uint8_t *out)
{
  memcpy(out, UC(r)->regs, 31 * 8);
  memcpy(out + 31 * 8, &UC(r)->sp, 8);
  memcpy(out + 32 * 8, &UC(r)->pc, 8);
  uint32_t cpsr = (uint32_t)UC(r)->pstate;
  memcpy(out + OFF_CPSR, &cpsr, 4);
  struct user_fpsimd_state fp;
  struct iovec io = {&fp, sizeof fp};
  if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_FPREGSET, &io) < 0)
    return -errno;
  memcpy(out + OFF_V, fp.vregs, 32 * 16);
  memcpy(out + OFF_FPSR, &fp.fpsr, 4);
  memcpy(out + OFF_FPSR + 4, &fp.fpcr, 4);
  return 0;
}

int ptarch_store_all(pid_t tid, struct ptarch_gregs *r, const uint8_t *in)
{
  memcpy(U(r)->regs, in, 31 * 8);
  memcpy(&U(r)->sp, in + 31 * 8, 8);
  memcpy(&U(r)->pc, in + 32 * 8, 8);
  uint32_t cpsr;
  memcpy(&cpsr, in + OFF_CPSR, 4);
  U(r)->pstate = cpsr;
  int rc = ptarch_set_gregs(tid, r);
  if (rc)
    return rc;
  struct user_fpsimd_state fp;
  struct iovec io = {&fp, sizeof fp};
  memcpy(fp.vregs, in + OFF_V, 32 * 16);
  memcpy(&fp.fpsr, in + OFF_FPSR, 4);
  memcpy(&fp.fpcr, in + OFF_FPSR + 4, 4);
  return ptrace(PTRACE_SETREGSET, tid, (void *)NT_FPREGSET, &io) < 0 ? -errno : 0;
}

int ptarch_indirect_jump_slot(const struct ptarch_gregs *r, const uint8_t *p, size_t n, uint64_t *slot)
{
  (void)r, (void)p, (void)n, (void)slot;
  return 0; /* a load and a br are two instructions: nothing to take at once */
}

int ptarch_emulate(struct ptarch_gregs *r, const uint8_t *p, size_t n, ptarch_write_fn wr, void *ctx)
{
  if (n < 4)
    return 0;
  uint32_t insn;
  memcpy(&insn, p, 4);
  struct user_pt_regs *u = U(r);
  /* Hint space: nop, bti (any target), paciasp. paciasp signs x30 with a key only the kernel
   * knows, so it can be skipped only on cores without pointer authentication; we step it instead. */
  if (insn == 0xd503201f || (insn & 0xffffff3f) == 0xd503241f) { /* nop, bti {c,j,jc} */
    u->pc += 4;
    return 1;
  }
  if ((insn & 0xffc07fff) == 0xa9807bfd) { /* stp x29, x30, [sp, #imm]! */
    int64_t imm7 = (int64_t)((insn >> 15) & 0x7f);
    if (imm7 & 0x40)
      imm7 -= 0x80;
    uint64_t addr = u->sp + (uint64_t)(imm7 * 8);
    uint64_t pair[2] = {u->regs[29], u->regs[30]};
    int rc = wr(ctx, addr, pair, sizeof pair);
    if (rc)
      return rc;
    u->sp = addr;
    u->pc += 4;
    return 1;
  }
  if (insn == 0x910003fd) { /* mov x29, sp */
    u->regs[29] = u->sp;
    u->pc += 4;
    return 1;
  }
  /* What a call's return site usually starts with: mov xd, xm (orr xd, xzr, xm) and cbz/cbnz on the
   * result. Register 31 is xzr in both. */
  if ((insn & 0x7fe0ffe0) == 0x2a0003e0) { /* mov wd, wm / mov xd, xm */
    unsigned d = insn & 31, m = (insn >> 16) & 31;
    uint64_t v = m == 31 ? 0 : u->regs[m];
    if (!(insn >> 31))
      v &= 0xffffffffu; /* a 32-bit write zero-extends */
    if (d != 31)
      u->regs[d] = v;
    u->pc += 4;
    return 1;
  }
  if ((insn & 0x7e000000) == 0x34000000) { /* cbz / cbnz, 32- or 64-bit */
    unsigned t = insn & 31;
    uint64_t v = t == 31 ? 0 : u->regs[t];
    if (!(insn >> 31))
      v &= 0xffffffffu;
    int64_t off = (int64_t)((insn >> 5) & 0x7ffff);
    if (off & 0x40000)
      off -= 0x80000;
    int nonzero = (insn >> 24) & 1; /* cbnz */
    u->pc += (v != 0) == nonzero ? (uint64_t)(off * 4) : 4;
    return 1;
  }
  return 0;
}
