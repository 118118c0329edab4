/* A thread's register set as the collector's unwinder sees it: values by DWARF register number plus the PC. */
#ifndef RSPROF_COL_REGS_H
#define RSPROF_COL_REGS_H

#include <stdint.h>

#include "arch.h"

/* Enough for aarch64's x0..x30 and sp (DWARF 0..31); x86_64 uses 0..16. */
#define COL_MAX_DWARF_REGS 32

struct col_regs {
  const struct arch_desc *arch;
  uint64_t pc;                          /* program counter (x86_64: rip; aarch64: pc) */
  uint64_t val[COL_MAX_DWARF_REGS];     /* by DWARF register number */
  uint32_t valid;                       /* bit n set: val[n] is known */
};

static inline void col_regs_set(struct col_regs *r, int dwarf, uint64_t v)
{
  if (dwarf >= 0 && dwarf < COL_MAX_DWARF_REGS) {
    r->val[dwarf] = v;
    r->valid |= 1u << dwarf;
  }
}

static inline int col_regs_get(const struct col_regs *r, int dwarf, uint64_t *v)
{
  if (dwarf < 0 || dwarf >= COL_MAX_DWARF_REGS || !(r->valid & (1u << dwarf)))
    return -1;
  *v = r->val[dwarf];
  return 0;
}

#endif
