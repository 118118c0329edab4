/* Finding the functions a tracing module wants in one ELF module: by exact name, by Rust path suffix, by regex. */
#ifndef RSPROF_COL_TRACE_FUNCS_H
#define RSPROF_COL_TRACE_FUNCS_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

struct col_module;

/* Link-time addresses of the defined functions called name (linkage or demangled name). With rust_path set, one whose
 * demangled name ends in "::name" matches too (recent Rust mangles even its allocator shims).
 * Distinct addresses only; returns how many were stored (at most max). */
size_t trace_funcs_named(struct col_module *m, const char *name, int rust_path, uint64_t *addrs, size_t max);

/* Calls fn for each distinct function whose demangled (else linkage) name matches re. */
int trace_funcs_matching(struct col_module *m, const regex_t *re,
                         int (*fn)(void *ctx, const char *name, uint64_t addr), void *ctx);

#endif
