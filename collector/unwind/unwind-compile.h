/* Compiles a module's CFI into a compiled unwind table (common/unwind-table.h) and keeps one per module. */
#ifndef RSPROF_COL_UNWIND_COMPILE_H
#define RSPROF_COL_UNWIND_COMPILE_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "cfi.h"
#include "module.h"
#include "unwind-table.h"

/* Translates the interpreter's row at one address into a table row for arch: FRAME when the CFA,
 * return address and frame pointer rules fit the table, END for an undefined return address, HOST
 * otherwise (expressions, another base register, a signal frame, ...). row NULL gives HOST. start is
 * left 0. */
void unw_table_row(const struct cfi_row *row, const struct arch_desc *arch, struct utab_row *out);

/* What compiling a module produced. */
struct unw_table_stats {
  long fdes;         /* FDEs read */
  long cfi_rows;     /* interpreter rows (address ranges) before merging */
  long rows;         /* table rows */
  long host_rows;    /* rows marked HOST */
  long none_rows;    /* gaps between FDEs */
};

/* Compiles m's .eh_frame and .debug_frame. On success *bytes (malloc'd, the caller frees it) holds a
 * sealed table of *len bytes that passes utab_check; stats may be NULL. Returns 0, RS_E_NOT_FOUND when
 * the module has no CFI, RS_E_UNSUPPORTED for an architecture or a module span the format cannot hold,
 * RS_E_DWARF for unparsable CFI, or -ENOMEM. */
int unw_table_compile(struct col_module *m, uint8_t **bytes, size_t *len, struct unw_table_stats *stats);

/* The module's table, compiled on first use and kept in the module until it is closed. NULL when the
 * module has none (no CFI, or it did not compile): then every PC of it is the interpreter's. */
const struct utab *unw_module_table(struct col_module *m);

#endif
