/* Demangling of C++ and Rust (legacy and v0) linkage names into the form gdb prints in backtraces. */
#ifndef RSPROF_COL_DEMANGLE_H
#define RSPROF_COL_DEMANGLE_H

/* Returns a malloc'd demangled name without parameter lists (as gdb's `bt` shows functions), or
 * NULL when name is not mangled or cannot be demangled. The caller frees the result. */
char *col_demangle(const char *name);

#endif
