/* x86_64 ptrace access: user_regs_struct and fxsave layouts mapped to gdb's register order, and
 * emulation of common function-prologue instructions so a breakpoint can be passed without a step. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>

#include "ptrace-arch.h"

_Static_assert(sizeof(struct user_regs_struct) <= sizeof(struct ptarch_gregs), "gregs too small");

#define U(r) (&(r)->k)
#define UC(r) (&(r)->k)

const struct arch_desc *ptarch_desc(void) { return &arch_x86_64; }

int ptarch_get_gregs(pid_t tid, struct ptarch_gregs *r)
{
  return ptrace(PTRACE_GETREGS, tid, NULL, &r->k) < 0 ? -errno : 0;
}

int ptarch_set_gregs(pid_t tid, const struct ptarch_gregs *r)
{
  return ptrace(PTRACE_SETREGS, tid, NULL, (void *)&r->k) < 0 ? -errno : 0;
}

uint64_t ptarch_pc(const struct ptarch_gregs *r) { return UC(r)->rip; }
uint64_t ptarch_sp(const struct ptarch_gregs *r) { return UC(r)->rsp; }
uint64_t ptarch_retval(const struct ptarch_gregs *r) { return UC(r)->rax; }
void ptarch_set_pc(struct ptarch_gregs *r, uint64_t pc) { U(r)->rip = pc; }

int ptarch_prepare_call(pid_t tid, struct ptarch_gregs *r, uint64_t fn, const uint64_t *args, int nargs, uint64_t sp,
                        ptarch_write_fn wr, void *ctx, long *sys_state)
{
  (void)tid;
  *sys_state = 0;
  static const size_t arg_off[6] = {
      offsetof(struct user_regs_struct, rdi), offsetof(struct user_regs_struct, rsi),
      offsetof(struct user_regs_struct, rdx), offsetof(struct user_regs_struct, rcx),
      offsetof(struct user_regs_struct, r8),  offsetof(struct user_regs_struct, r9),
  };
  if (nargs > 6)
    return -EINVAL;
  for (int i = 0; i < nargs; i++)
    memcpy((uint8_t *)U(r) + arg_off[i], &args[i], 8);
  uint64_t zero = 0;
  int rc = wr(ctx, sp - 8, &zero, 8); /* the return address: the call ends with a fault at 0 */
  if (rc)
    return rc;
  U(r)->rsp = sp - 8; /* as after a call: rsp + 8 is 16-byte aligned */
  U(r)->rip = fn;
  U(r)->rax = 0;
  U(r)->orig_rax = (unsigned long long)-1; /* not in a system call: nothing to restart */
  return 0;
}

int ptarch_finish_call(pid_t tid, long sys_state)
{
  (void)tid;
  (void)sys_state;
  return 0; /* orig_rax travels with the register set */
}

/* Offsets of rax..rip in user_regs_struct, in gdb's order. */
static const size_t gpr_off[17] = {
    offsetof(struct user_regs_struct, rax), offsetof(struct user_regs_struct, rbx),
    offsetof(struct user_regs_struct, rcx), offsetof(struct user_regs_struct, rdx),
    offsetof(struct user_regs_struct, rsi), offsetof(struct user_regs_struct, rdi),
    offsetof(struct user_regs_struct, rbp), offsetof(struct user_regs_struct, rsp),
    offsetof(struct user_regs_struct, r8),  offsetof(struct user_regs_struct, r9),
    offsetof(struct user_regs_struct, r10), offsetof(struct user_regs_struct, r11),
    offsetof(struct user_regs_struct, r12), offsetof(struct user_regs_struct, r13),
    offsetof(struct user_regs_struct, r14), offsetof(struct user_regs_struct, r15),
    offsetof(struct user_regs_struct, rip),
};
static const size_t seg_off[6] = {
    offsetof(struct user_regs_struct, cs), offsetof(struct user_regs_struct, ss),
    offsetof(struct user_regs_struct, ds), offsetof(struct user_regs_struct, es),
    offsetof(struct user_regs_struct, fs), offsetof(struct user_regs_struct, gs),
};

/* The 'g' image: 17 x 8 GPRs, eflags + 6 segments x 4, 8 x 10 st, 8 x 4 control, 16 x 16 xmm,
 * mxcsr 4, orig_rax 8, fs_base 8, gs_base 8. */
#define OFF_EFLAGS (17 * 8)
#define OFF_ST (OFF_EFLAGS + 7 * 4)
#define OFF_FCTRL (OFF_ST + 80)
#define OFF_XMM (OFF_FCTRL + 32)
#define OFF_MXCSR (OFF_XMM + 256)
#define OFF_ORIG (OFF_MXCSR + 4)

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

void ptarch_fill_core(const struct ptarch_gregs *r, uint8_t *out)
{
  const uint8_t *u = (const uint8_t *)&r->k;
  for (int i = 0; i < 17; i++)
    memcpy(out + i * 8, u + gpr_off[i], 8);
}

int ptarch_fill_all(pid_t tid, const struct ptarch_gregs *r, uint8_t *out)
{
  const uint8_t *u = (const uint8_t *)&r->k;
  for (int i = 0; i < 17; i++)
    memcpy(out + i * 8, u + gpr_off[i], 8);
  put32(out + OFF_EFLAGS, (uint32_t)UC(r)->eflags);
  for (int i = 0; i < 6; i++) {
    uint64_t v;
    memcpy(&v, u + seg_off[i], 8);
    put32(out + OFF_EFLAGS + 4 + i * 4, (uint32_t)v);
  }
  struct user_fpregs_struct fp;
  if (ptrace(PTRACE_GETFPREGS, tid, NULL, &fp) < 0)
    return -errno;
  for (int i = 0; i < 8; i++)
    memcpy(out + OFF_ST + i * 10, (const uint8_t *)fp.st_space + i * 16, 10);
  /* gdb wants the full i387 tag word; fxsave keeps one "not empty" bit per register. We report
   * empty (3) or valid (0), which is what matters for printing the stack. */
  uint32_t tag = 0;
  for (int i = 0; i < 8; i++)
    tag |= (fp.ftw & (1u << i)) ? 0u : (3u << (2 * i));
  put32(out + OFF_FCTRL + 0, fp.cwd);
  put32(out + OFF_FCTRL + 4, fp.swd);
  put32(out + OFF_FCTRL + 8, tag);
  put32(out + OFF_FCTRL + 12, (uint32_t)(fp.rip >> 32) & 0xffff);
  put32(out + OFF_FCTRL + 16, (uint32_t)fp.rip);
  put32(out + OFF_FCTRL + 20, (uint32_t)(fp.rdp >> 32) & 0xffff);
  put32(out + OFF_FCTRL + 24, (uint32_t)fp.rdp);
  put32(out + OFF_FCTRL + 28, fp.fop & 0x7ff);
  memcpy(out + OFF_XMM, fp.xmm_space, 256);
  put32(out + OFF_MXCSR, fp.mxcsr);
  memcpy(out + OFF_ORIG, &UC(r)->orig_rax, 8);
  memcpy(out + OFF_ORIG + 8, &UC(r)->fs_base, 8);
  memcpy(out + OFF_ORIG + 16, &UC(r)->gs_base, 8);
  return 0;
}

int ptarch_store_all(pid_t tid, struct ptarch_gregs *r, const uint8_t *in)
{
  uint8_t *u = (uint8_t *)&r->k;
  for (int i = 0; i < 17; i++)
    memcpy(u + gpr_off[i], in + i * 8, 8);
  U(r)->eflags = get32(in + OFF_EFLAGS);
  /* Segment selectors are left alone: the kernel rejects most changes and gdb never needs them. */
  memcpy(&U(r)->orig_rax, in + OFF_ORIG, 8);
  memcpy(&U(r)->fs_base, in + OFF_ORIG + 8, 8);
  memcpy(&U(r)->gs_base, in + OFF_ORIG + 16, 8);
  int rc = ptarch_set_gregs(tid, r);
  if (rc)
    return rc;
  struct user_fpregs_struct fp;
  if (ptrace(PTRACE_GETFPREGS, tid, NULL, &fp) < 0)
    return -errno;
  for (int i = 0; i < 8; i++)
    memcpy((uint8_t *)fp.st_space + i * 16, in + OFF_ST + i * 10, 10);
  fp.cwd = (uint16_t)get32(in + OFF_FCTRL);
  fp.swd = (uint16_t)get32(in + OFF_FCTRL + 4);
  uint32_t tag = get32(in + OFF_FCTRL + 8);
  fp.ftw = 0;
  for (int i = 0; i < 8; i++)
    if (((tag >> (2 * i)) & 3) != 3)
      fp.ftw |= (uint16_t)(1u << i);
  memcpy(fp.xmm_space, in + OFF_XMM, 256);
  fp.mxcsr = get32(in + OFF_MXCSR);
  return ptrace(PTRACE_SETFPREGS, tid, NULL, &fp) < 0 ? -errno : 0;
}

/* Register slots for the 3-bit register numbers of push (with REX.B extending to r8..r15). */
static unsigned long long *gpr_by_num(struct user_regs_struct *u, unsigned n)
{
  switch (n) {
  case 0: return &u->rax;
  case 1: return &u->rcx;
  case 2: return &u->rdx;
  case 3: return &u->rbx;
  case 4: return &u->rsp;
  case 5: return &u->rbp;
  case 6: return &u->rsi;
  case 7: return &u->rdi;
  case 8: return &u->r8;
  case 9: return &u->r9;
  case 10: return &u->r10;
  case 11: return &u->r11;
  case 12: return &u->r12;
  case 13: return &u->r13;
  case 14: return &u->r14;
  default: return &u->r15;
  }
}

static int parity8(uint64_t v)
{
  return !(__builtin_popcount((unsigned)(v & 0xff)) & 1);
}

/* Flags of a 64-bit add or sub, computed the way the CPU does, because a prologue's sub rsp may in
 * principle feed a later conditional (rare, but emulation must be exact or not happen). */
static void set_arith_flags(struct user_regs_struct *u, uint64_t a, uint64_t b, uint64_t res, int sub)
{
  uint64_t f = u->eflags & ~(uint64_t)(0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800);
  int cf = sub ? (a < b) : (res < a);
  int of = sub ? (int)((((a ^ b) & (a ^ res)) >> 63) & 1) : (int)(((~(a ^ b) & (a ^ res)) >> 63) & 1);
  int af = (int)(((a ^ b ^ res) >> 4) & 1);
  f |= cf ? 0x1 : 0;
  f |= parity8(res) ? 0x4 : 0;
  f |= af ? 0x10 : 0;
  f |= res == 0 ? 0x40 : 0;
  f |= (res >> 63) ? 0x80 : 0;
  f |= of ? 0x800 : 0;
  u->eflags = f;
}

/* Flags of a 64- or 32-bit `test` (an `and` that keeps no result): CF, OF and AF cleared. */
static void set_logic_flags(struct user_regs_struct *u, uint64_t res, int wide)
{
  uint64_t f = u->eflags & ~(uint64_t)(0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800);
  f |= parity8(res) ? 0x4 : 0;
  f |= res == 0 ? 0x40 : 0;
  f |= (res >> (wide ? 63 : 31)) & 1 ? 0x80 : 0;
  u->eflags = f;
}

/* Register-to-register `mov` and `test` (opcodes 89, 8b, 85 with mod = 11, 64- or 32-bit): what a call's
 * return site usually starts with (`test rax, rax`, `mov rbx, rax`) and what free() begins with. Returns
 * 1 when emulated, 0 for any other form. */
static int emulate_reg_reg(struct user_regs_struct *u, const uint8_t *p, size_t n)
{
  unsigned rex = 0, len = 0;
  if (n >= 1 && (p[0] & 0xf0) == 0x40) {
    rex = p[0];
    len = 1;
  }
  if (n < len + 2 || (p[len] != 0x89 && p[len] != 0x8b && p[len] != 0x85) || (p[len + 1] >> 6) != 3)
    return 0;
  uint8_t op = p[len], modrm = p[len + 1];
  int wide = (rex & 8) != 0;
  unsigned reg = ((modrm >> 3) & 7) | ((rex & 4) << 1), rm = (modrm & 7) | ((rex & 1) << 3);
  uint64_t mask = wide ? ~0ull : 0xffffffffull;
  uint64_t vreg = *gpr_by_num(u, reg) & mask, vrm = *gpr_by_num(u, rm) & mask;
  if (op == 0x85)
    set_logic_flags(u, vreg & vrm, wide);
  else if (op == 0x89)
    *gpr_by_num(u, rm) = vreg; /* a 32-bit mov zero-extends into the whole register */
  else
    *gpr_by_num(u, reg) = vrm;
  u->rip += len + 2;
  return 1;
}

/* A register stored to the stack frame (opcode 89, 64- or 32-bit, to rbp or rsp + disp8/disp32): what a
 * call's return site starts with in unoptimized code (`mov %rax,-8(%rbp)`). Only those bases: writes through
 * /proc/PID/mem succeed even on read-only pages, so a store the CPU would fault on must not be emulated,
 * and frame addresses are writable. Returns 1 when emulated, 0 for any other form, or the write's error. */
static int emulate_frame_store(struct user_regs_struct *u, const uint8_t *p, size_t n, ptarch_write_fn wr,
                               void *ctx)
{
  unsigned rex = 0, len = 0;
  if (n >= 1 && (p[0] & 0xf0) == 0x40) {
    rex = p[0];
    len = 1;
  }
  if (rex & 3) /* REX.X or REX.B: an index register, or r12/r13 as the base */
    return 0;
  if (n < len + 2 || p[len] != 0x89)
    return 0;
  uint8_t modrm = p[len + 1];
  unsigned mod = modrm >> 6, rm = modrm & 7;
  len += 2;
  uint64_t base;
  if (mod != 1 && mod != 2)
    return 0; /* registers (mod 11), no displacement or RIP-relative (mod 00): not a frame slot */
  if (rm == 5) {
    base = u->rbp;
  } else if (rm == 4 && n > len && p[len] == 0x24) { /* SIB: base rsp, no index */
    base = u->rsp;
    len++;
  } else {
    return 0;
  }
  int32_t disp;
  if (mod == 1) {
    if (n < len + 1)
      return 0;
    disp = (int8_t)p[len];
    len += 1;
  } else {
    if (n < len + 4)
      return 0;
    memcpy(&disp, p + len, 4);
    len += 4;
  }
  uint64_t v = *gpr_by_num(u, ((modrm >> 3) & 7u) | ((rex & 4u) << 1));
  int rc = wr(ctx, base + (uint64_t)(int64_t)disp, &v, (rex & 8) ? 8 : 4);
  if (rc)
    return rc;
  u->rip += len;
  return 1;
}

int ptarch_indirect_jump_slot(const struct ptarch_gregs *r, const uint8_t *p, size_t n, uint64_t *slot)
{
  size_t len = n >= 1 && p[0] == 0xf2 ? 1 : 0; /* a bnd prefix, as in some PLTs */
  if (n < len + 6 || p[len] != 0xff || p[len + 1] != 0x25)
    return 0;
  int32_t disp;
  memcpy(&disp, p + len + 2, 4);
  *slot = UC(r)->rip + len + 6 + (uint64_t)(int64_t)disp;
  return 1;
}

int ptarch_emulate(struct ptarch_gregs *r, const uint8_t *p, size_t n, ptarch_write_fn wr, void *ctx)
{
  struct user_regs_struct *u = U(r);
  if (n >= 4 && p[0] == 0xf3 && p[1] == 0x0f && p[2] == 0x1e && p[3] == 0xfa) { /* endbr64 */
    u->rip += 4;
    return 1;
  }
  if (n >= 1 && p[0] == 0x90) { /* nop */
    u->rip += 1;
    return 1;
  }
  if (n >= 5 && p[0] == 0xe9) { /* jmp rel32: a tail call (Rust's __rust_alloc to __rdl_alloc) */
    int32_t rel;
    memcpy(&rel, p + 1, 4);
    u->rip += 5 + (uint64_t)(int64_t)rel;
    return 1;
  }
  if (n >= 2 && p[0] == 0xeb) { /* jmp rel8 */
    u->rip += 2 + (uint64_t)(int64_t)(int8_t)p[1];
    return 1;
  }
  unsigned rex_b = 0, len = 0;
  if (n >= 2 && p[0] == 0x41 && p[1] >= 0x50 && p[1] <= 0x57) {
    rex_b = 8;
    len = 1;
  }
  if (n > len && p[len] >= 0x50 && p[len] <= 0x57) { /* push reg */
    uint64_t v = *gpr_by_num(u, (p[len] - 0x50u) | rex_b);
    int rc = wr(ctx, u->rsp - 8, &v, 8);
    if (rc)
      return rc;
    u->rsp -= 8;
    u->rip += len + 1;
    return 1;
  }
  if (emulate_reg_reg(u, p, n)) /* mov rbp, rsp among them */
    return 1;
  int rc = emulate_frame_store(u, p, n, wr, ctx);
  if (rc)
    return rc;
  if (n >= 4 && p[0] == 0x48 && (p[1] == 0x83 || p[1] == 0x81) && (p[2] == 0xec || p[2] == 0xc4)) {
    uint64_t imm;
    unsigned ilen;
    if (p[1] == 0x83) {
      imm = (uint64_t)(int64_t)(int8_t)p[3];
      ilen = 4;
    } else {
      if (n < 7)
        return 0;
      int32_t v;
      memcpy(&v, p + 3, 4);
      imm = (uint64_t)(int64_t)v;
      ilen = 7;
    }
    uint64_t a = u->rsp, res;
    int sub = p[2] == 0xec;
    res = sub ? a - imm : a + imm;
    set_arith_flags(u, a, imm, res, sub);
    u->rsp = res;
    u->rip += ilen;
    return 1;
  }
  return 0;
}
