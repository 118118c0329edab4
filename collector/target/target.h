/* The target as the collector sees it: architecture, process and threads, the executable and the shared
 * libraries with their load biases, and the dynamic linker's breakpoint address for library changes. */
#ifndef RSPROF_COL_TARGET_H
#define RSPROF_COL_TARGET_H

#include <stddef.h>
#include <stdint.h>

struct rspc;
struct binfind;
struct arch_desc;

struct target_lib {
  char *name;      /* path as the dynamic linker knows it (may be empty for the vDSO) */
  uint64_t l_addr; /* load bias */
  uint64_t l_ld;   /* address of its dynamic section */
  uint64_t lm;     /* address of its link_map */
};

struct target {
  const struct arch_desc *arch; /* from target.xml <architecture>, else the executable's ELF machine */
  char *exec_path;              /* qXfer:exec-file, or NULL */
  uint64_t exec_bias;           /* AT_PHDR minus the executable's PT_PHDR vaddr (AT_ENTRY fallback) */
  uint64_t r_brk;               /* dynamic linker's r_debug.r_brk (0 if unknown) */
  struct target_lib *libs;      /* shared libraries, without the executable */
  size_t nlibs;
  int64_t pid;
  int64_t *tids;                /* threads at the last target_load / target_refresh_threads */
  size_t ntids;
  /* Details found on the way, for the module map and diagnostics. */
  uint64_t at_phdr, at_entry, at_base; /* auxv values (0 when absent) */
  uint64_t r_debug;             /* address of r_debug (0 until the dynamic linker has filled DT_DEBUG) */
  uint64_t dynamic;             /* run-time address of the executable's dynamic section, or 0 */
  char *interp;                 /* PT_INTERP of the executable, or NULL */
};

/* Reads all of the above from a stopped target. bf (may be NULL) locates the dynamic linker's file when
 * r_brk must come from its _dl_debug_state symbol (before the linker has run). Returns 0 and *out (free
 * with target_free), or an error (RS_E_UNSUPPORTED when even the architecture cannot be learned). */
int target_load(struct rspc *c, struct binfind *bf, struct target **out);
/* The same for process pid, which the server has selected (Hg) and reported before (a followed child, or a
 * process that executed a new program): the stop is not asked for. */
int target_load_process(struct rspc *c, struct binfind *bf, int64_t pid, struct target **out);
/* Re-reads the library list (after a stop at r_brk: dlopen/dlclose) and r_brk itself while unknown.
 * Returns 0 or an error; t keeps its old list on failure. */
int target_refresh_libraries(struct rspc *c, struct target *t);
/* Re-reads the thread list. */
int target_refresh_threads(struct rspc *c, struct target *t);
void target_free(struct target *t);

/* Reads the library list by walking the dynamic linker's link_map in target memory (what
 * target_refresh_libraries does when the server has no qXfer:libraries-svr4). The executable's own entry
 * is left out. Returns 0 with a malloc'ed array (target_libs_free), an empty list while r_debug is
 * unknown, or a memory error. */
int target_walk_link_map(struct rspc *c, const struct target *t, struct target_lib **libs, size_t *n);

/* Parses a <library-list-svr4> document into a malloc'ed array (free each name and the array, or use
 * target_libs_free). Returns 0 or RS_E_FORMAT / -ENOMEM. *main_lm gets the main-lm attribute (0 if none). */
int target_parse_svr4(const char *xml, size_t len, struct target_lib **libs, size_t *n, uint64_t *main_lm);
void target_libs_free(struct target_lib *libs, size_t n);

#endif
