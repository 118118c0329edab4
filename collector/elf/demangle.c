/* Demangling through libiberty, which understands Itanium C++ and both Rust manglings. */
#include "demangle.h"

#include <libiberty/demangle.h>
#include <stddef.h>

char *col_demangle(const char *name)
{
  if (name == NULL || name[0] != '_')
    return NULL;
  /* No DMGL_PARAMS: gdb's backtrace prints the function's name without its parameter types, and
   * Rust's legacy hash suffix is dropped unless DMGL_VERBOSE is given. */
  return cplus_demangle(name, DMGL_ANSI | DMGL_AUTO);
}
