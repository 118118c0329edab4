/* The symbolizer: module-relative addresses to inline chains of functions with file:line. */
#ifndef RSPROF_COL_SYMBOLIZE_H
#define RSPROF_COL_SYMBOLIZE_H

#include <stdint.h>

#include "module.h"
#include "symbol.h"

/* Resolves a module-relative address (pc - bias) to its inline chain: frames[0] the innermost inlined
 * callee ... frames[*n-1] the physical function, each with the file:line gdb's `bt` shows for it.
 * Falls back to .symtab/.dynsym (function only, *n = 1), then to nothing (*n = 0). Function names are
 * demangled the way gdb prints them in a backtrace. Strings are owned by the module and live as long
 * as it does. Indexes are built on first use (once per module); results are cached per address.
 * Returns 0 (also when nothing is known) or -ENOMEM. */
int sym_lookup(struct col_module *m, uint64_t rel_pc, struct sym_frame *frames, int max, int *n);

/* Builds the module's symbol indexes now rather than on the first lookup. Returns 0 or -ENOMEM. */
int sym_prepare(struct col_module *m);

#endif
