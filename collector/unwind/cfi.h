/* DWARF call-frame information: finding the FDE for an address in .eh_frame (through .eh_frame_hdr's
 * binary-search table) or .debug_frame, and running its CFA program to the row for that address. */
#ifndef RSPROF_COL_CFI_H
#define RSPROF_COL_CFI_H

#include <stddef.h>
#include <stdint.h>

#include "module.h"

/* Registers the unwinder tracks: DWARF numbers 0..CFI_MAX_REGS-1 (x86_64 0..16, aarch64 x0..x30, sp). */
#define CFI_MAX_REGS 32

enum cfi_rule_kind {
  CFI_SAME = 0,     /* unchanged from the callee (default for unmentioned registers) */
  CFI_UNDEF,        /* no recoverable value; for the return address: outermost frame */
  CFI_OFFSET,       /* saved at CFA + off */
  CFI_VAL_OFFSET,   /* value is CFA + off */
  CFI_REGISTER,     /* value is in register reg */
  CFI_EXPR,         /* saved at the address the expression computes (CFA pushed first) */
  CFI_VAL_EXPR,     /* value is what the expression computes */
};

struct cfi_rule {
  uint8_t kind;
  uint8_t reg;
  uint32_t expr_len;
  int64_t off;
  const uint8_t *expr;  /* borrowed from the module's section data */
};

enum cfi_cfa_kind { CFI_CFA_REG_OFF = 0, CFI_CFA_EXPR };

/* The resolved rule row for one address. */
struct cfi_row {
  uint8_t cfa_kind;
  uint8_t cfa_reg;
  uint8_t ra_reg;        /* return-address column */
  uint8_t signal_frame;  /* the CIE has the 'S' augmentation */
  uint8_t ra_signed;     /* aarch64: the return address carries a pointer-authentication code */
  uint32_t cfa_expr_len;
  int64_t cfa_off;
  const uint8_t *cfa_expr;
  struct cfi_rule r[CFI_MAX_REGS];
};

/* Computes the row that applies at rel_pc (a link-time address of module m). Builds the module's
 * CFI index on first use (kept in the module, freed with it). Returns 0, RS_E_NOT_FOUND when no FDE
 * covers rel_pc, or RS_E_DWARF for malformed data. */
int cfi_find_row(struct col_module *m, uint64_t rel_pc, struct cfi_row *row);

/* Calls fn for every FDE in .eh_frame and .debug_frame (start, end link-time addresses) after
 * checking that its CIE and program parse; returns the number of FDEs or RS_E_DWARF. For tests and tools. */
long cfi_foreach_fde(struct col_module *m, int (*fn)(void *ctx, uint64_t lo, uint64_t hi), void *ctx);

/* Calls fn for every row of every FDE in .eh_frame and .debug_frame: the link-time addresses [lo, hi)
 * where the row applies, and the row cfi_find_row computes there. row is NULL for the part of an FDE
 * after a malformed instruction (the interpreter has no row there). Ranges of one FDE are reported in
 * order and never overlap; different FDEs may. A nonzero result of fn stops the walk and is returned;
 * otherwise returns the number of FDEs, RS_E_DWARF when an entry does not parse, or -ENOMEM. */
long cfi_foreach_row(struct col_module *m, int (*fn)(void *ctx, uint64_t lo, uint64_t hi, const struct cfi_row *row),
                     void *ctx);

#endif
