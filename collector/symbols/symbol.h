/* One symbolized frame: what a code address means in the source, shared by the symbolizer and the writers. */
#ifndef RSPROF_COL_SYMBOL_H
#define RSPROF_COL_SYMBOL_H

#include <stdint.h>

/* A code address resolves to a chain of these: inlined callees first, the physical function last.
 * Strings are owned by the module that produced them and live as long as it does. */
struct sym_frame {
  const char *function;      /* demangled name, or NULL when unknown */
  const char *linkage_name;  /* mangled / linkage name, or NULL */
  const char *file;          /* source file (full path when DWARF gives a directory), or NULL */
  int line;                  /* 0 when unknown */
  int function_line;         /* line where the function starts, 0 when unknown */
  const char *module;        /* path of the ELF module the address belongs to, or NULL */
  uint64_t module_offset;    /* the address minus the module's load bias (its link-time address) */
  const char *build_id;      /* the module's GNU build-id in hex, or NULL */
};

#endif
