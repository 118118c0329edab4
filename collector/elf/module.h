/* One ELF file (executable or shared library) with its call-frame information, symbols and debug info. */
#ifndef RSPROF_COL_MODULE_H
#define RSPROF_COL_MODULE_H

#include <stddef.h>
#include <stdint.h>

struct col_module;

/* Opens path and, if debug_path != NULL, that separate debug file; otherwise looks for one through
 * .gnu_debuglink next to the file (and in its .debug/ folder), under the system debug directory
 * (see col_module_set_system_debug_dir) by build-id and debuglink, and in each of debug_dirs
 * (NULL-terminated, may be NULL). CFI and symbol indexes are built lazily, once, on first use.
 * Returns 0 and a module the caller closes with col_module_close, or RS_E_ELF / -errno. */
int col_module_open(const char *path, const char *debug_path, const char *const *debug_dirs,
                    struct col_module **out);
void col_module_close(struct col_module *m);

/* Sets the system-wide separate debug directory searched by col_module_open ("/usr/lib/debug" by
 * default; NULL turns it off). Not thread-safe: call before opening modules. dir is copied. */
void col_module_set_system_debug_dir(const char *dir);

/* The path given to col_module_open; owned by the module. */
const char *col_module_path(const struct col_module *m);
/* The path of the separate debug file in use, or NULL; owned by the module. */
const char *col_module_debug_path(const struct col_module *m);
/* ELF e_machine (EM_X86_64, EM_AARCH64, ...). */
unsigned col_module_machine(const struct col_module *m);
/* The GNU build-id note's bytes (owned by the module). Returns 0 or RS_E_NOT_FOUND. */
int col_module_build_id(const struct col_module *m, const uint8_t **id, size_t *len);
/* Lowest and highest+1 virtual address of PT_LOAD segments (link-time addresses; add the load bias). */
void col_module_vaddr_range(const struct col_module *m, uint64_t *lo, uint64_t *hi);
/* Nonzero when the module (or its separate debug file) has .debug_info. */
int col_module_has_debug_info(const struct col_module *m);
/* Nonzero when the module (or its separate debug file) has a full symbol table (.symtab), not only the
 * exported functions of .dynsym. */
int col_module_has_symtab(const struct col_module *m);
/* Symbol lookup by exact linkage name (.symtab then .dynsym): link-time address and size of the
 * function. Returns 0, RS_E_NOT_FOUND or -ENOMEM. */
int col_module_find_symbol(struct col_module *m, const char *name, uint64_t *addr, uint64_t *size);
/* A data object's link-time address by exact name (.symtab, else the debug file's; then .dynsym). Returns 0 or
 * RS_E_NOT_FOUND. */
int col_module_find_object(struct col_module *m, const char *name, uint64_t *addr);
/* Calls fn for each function symbol (linkage name, demangled name or NULL, link-time address, size);
 * stops and returns fn's value if it returns nonzero. Returns 0 or a negative error. Strings are
 * owned by the module. */
int col_module_foreach_function(struct col_module *m,
                                int (*fn)(void *ctx, const char *name, const char *demangled,
                                          uint64_t addr, uint64_t size),
                                void *ctx);
/* The function symbol covering addr (link-time), nearest preceding one when sizes are unknown.
 * Returns 0 with borrowed name/demangled (module-owned) and the symbol's address, or RS_E_NOT_FOUND. */
int col_module_symbol_at(struct col_module *m, uint64_t addr, const char **name, const char **demangled,
                         uint64_t *sym_addr);

/* Nonzero when a function symbol at addr (link-time) is a GNU indirect function (STT_GNU_IFUNC): addr is then
 * its resolver, which returns the implementation chosen for the running CPU. */
int col_module_is_ifunc(struct col_module *m, uint64_t addr);
/* The GOT slots the dynamic linker fills with what the resolver at link-time address resolver returns: the
 * module's IRELATIVE relocations whose addend it is (x86_64, aarch64). Stores up to max slot addresses
 * (link-time) and the words the file holds there before relocation; returns how many. */
size_t col_module_irelative_slots(struct col_module *m, uint64_t resolver, uint64_t *slots, uint64_t *file_words,
                                  size_t max);

/* A section's bytes as mapped from the file: data (borrowed, valid while the module is open), size,
 * and its link-time address. from_debug selects the separate debug file (falls back to the main
 * file when there is none). Returns 0 or RS_E_NOT_FOUND. */
struct col_section {
  const uint8_t *data;
  size_t size;
  uint64_t addr;
};
int col_module_section(const struct col_module *m, const char *name, int from_debug, struct col_section *out);

/* Per-module slots for the lazily built CFI and symbolizer state; their owners free them through
 * the destructor given when they are set (run by col_module_close). */
enum col_module_slot { COL_SLOT_CFI, COL_SLOT_SYM, COL_SLOT_UTAB, COL_SLOT_COUNT_ };
void *col_module_slot_get(const struct col_module *m, enum col_module_slot s);
void col_module_slot_set(struct col_module *m, enum col_module_slot s, void *p, void (*destroy)(void *));

#endif
