/* Per-architecture ptrace access: register sets in 'g' packet layout and emulation of simple
 * instructions displaced by a breakpoint. One implementation per architecture, chosen by the build. */
#ifndef RSPROF_AGENT_PTRACE_ARCH_H
#define RSPROF_AGENT_PTRACE_ARCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch.h"

#if defined(__x86_64__)
#include <sys/user.h>
#elif defined(__aarch64__)
#include <asm/ptrace.h>
#endif

/* The kernel's general register set for one thread; only the architecture's own file looks inside. */
struct ptarch_gregs {
  union {
    uint64_t w[64];
#if defined(__x86_64__)
    struct user_regs_struct k;
#elif defined(__aarch64__)
    struct user_pt_regs k;
#endif
  };
};

/* Writes len bytes of target memory; used by emulation (push/stp store to the stack). Returns 0 or -errno. */
typedef int (*ptarch_write_fn)(void *ctx, uint64_t addr, const void *data, size_t len);

/* The architecture table this agent was built for. */
const struct arch_desc *ptarch_desc(void);

/* Fetches or stores the general registers of a stopped thread. Return 0 or -errno. */
int ptarch_get_gregs(pid_t tid, struct ptarch_gregs *r);
int ptarch_set_gregs(pid_t tid, const struct ptarch_gregs *r);

/* Program counter and the value of register regno (only core integer registers up to the PC). */
uint64_t ptarch_pc(const struct ptarch_gregs *r);
uint64_t ptarch_sp(const struct ptarch_gregs *r);
uint64_t ptarch_retval(const struct ptarch_gregs *r); /* the integer return-value register (rax, x0) */
void ptarch_set_pc(struct ptarch_gregs *r, uint64_t pc);

/* Sets r up for a call of fn(args[0..nargs)) (nargs at most 6) with the stack pointer at sp (16-byte aligned,
 * below anything in use) that returns to address 0, where the thread faults and the caller takes it back, and
 * keeps the kernel from restarting a system call the thread was stopped in (what it was goes to *sys_state). x86_64 writes the return address
 * at sp - 8 through wr. Returns 0 or -errno. */
int ptarch_prepare_call(pid_t tid, struct ptarch_gregs *r, uint64_t fn, const uint64_t *args, int nargs, uint64_t sp,
                        ptarch_write_fn wr, void *ctx, long *sys_state);
/* Restores the system-call state prepare_call saved (aarch64 keeps it outside the register set). */
int ptarch_finish_call(pid_t tid, long sys_state);

/* Writes the core integer registers up to and including the PC and SP, in 'g' layout, into out
 * (no system call: for expedited registers in stop replies). */
void ptarch_fill_core(const struct ptarch_gregs *r, uint8_t *out);

/* Writes every register in 'g' order (arch_regs_size() bytes) into out, fetching the floating-point
 * set from the thread. Returns 0 or -errno. */
int ptarch_fill_all(pid_t tid, const struct ptarch_gregs *r, uint8_t *out);
/* Stores a whole 'g' image into the thread (general and floating-point sets) and updates *r.
 * Returns 0 or -errno. */
int ptarch_store_all(pid_t tid, struct ptarch_gregs *r, const uint8_t *in);

/* Emulates the instruction insn (n bytes available) found at pc, if it is one of the simple
 * prologue or return-site instructions we know, updating *r and writing memory through wr. Returns 1 when emulated,
 * 0 when the caller must single-step instead, or -errno when a memory write failed. */
int ptarch_emulate(struct ptarch_gregs *r, const uint8_t *insn, size_t n, ptarch_write_fn wr, void *ctx);
/* Whether insn at the PC of r is a jump through a memory slot whose address it names without other registers
 * (x86_64 `jmp *disp32(%rip)`, a tail call through the GOT, as Rust's allocator shims make): then *slot gets
 * the slot's address, and emulating it is reading the slot into the PC. Returns 1 or 0. */
int ptarch_indirect_jump_slot(const struct ptarch_gregs *r, const uint8_t *insn, size_t n, uint64_t *slot);

#endif
