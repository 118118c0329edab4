/* Fuzzes what the collector reads from ELF files: build-id and header parsing (from memory and from a
 * file), the module loader, the CFI index and rule rows, the symbolizer (DWARF line and inline info,
 * symbol tables, demangling) and an unwind over a made-up stack. The input is the file's bytes; the
 * loaders take a path, so it is written to a scratch file first. */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch.h"
#include "cfi.h"
#include "elf-buildid.h"
#include "elf-entry.h"
#include "log.h"
#include "modmap.h"
#include "module.h"
#include "regs.h"
#include "symbolize.h"
#include "unwind.h"

#include "fuzz-util.h"

static char path[600];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  rs_log_threshold = RS_LOG_TRACE; /* scripts/fuzz discards stderr; the messages are formatted anyway */
  snprintf(path, sizeof path, "%s/module.elf", fuzz_scratch_dir("elf"));
  /* No separate debug files from the system: only what the input itself names. */
  col_module_set_system_debug_dir(NULL);
  return 0;
}

struct mem_file {
  const uint8_t *data;
  size_t len;
};

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *got)
{
  const struct mem_file *f = ctx;
  *got = 0;
  if (off >= f->len)
    return 0;
  size_t n = f->len - off < len ? (size_t)(f->len - off) : len;
  memcpy(buf, f->data + off, n);
  *got = n;
  return 0;
}

struct fdes {
  uint64_t lo[8], hi[8];
  int n;
};

static int keep_fde(void *ctx, uint64_t lo, uint64_t hi)
{
  struct fdes *f = ctx;
  if (f->n < 8) {
    f->lo[f->n] = lo;
    f->hi[f->n] = hi;
    f->n++;
  }
  return 0;
}

struct funcs {
  uint64_t addr[8];
  int n;
};

static int keep_function(void *ctx, const char *name, const char *demangled, uint64_t addr, uint64_t size)
{
  (void)size;
  struct funcs *f = ctx;
  if (name)
    (void)strlen(name);
  if (demangled)
    (void)strlen(demangled);
  if (f->n < 8)
    f->addr[f->n++] = addr;
  return 0;
}


static void lookups(struct col_module *m, uint64_t pc)
{
  struct cfi_row row;
  cfi_find_row(m, pc, &row);
  struct sym_frame fr[16];
  int n = 0;
  if (sym_lookup(m, pc, fr, 16, &n) == 0)
    for (int i = 0; i < n; i++) {
      /* Strings the module owns must be readable as long as it is open. */
      if (fr[i].function)
        (void)strlen(fr[i].function);
      if (fr[i].file)
        (void)strlen(fr[i].file);
      if (fr[i].linkage_name)
        (void)strlen(fr[i].linkage_name);
    }
  const char *name, *dem;
  uint64_t at;
  col_module_symbol_at(m, pc, &name, &dem, &at);
}

/* The unwinder on the module at bias 0, from pc with a stack of a repeating pattern, no other memory. */
static void unwind_from(struct col_module *m, uint64_t pc)
{
  const struct arch_desc *a = arch_by_elf_machine(col_module_machine(m));
  if (!a)
    return;
  struct col_modmap *map;
  struct unw_ctx *u;
  if (col_modmap_new(&map))
    abort();
  if (unw_ctx_new(&u))
    abort();
  if (col_modmap_add(map, m, 0) == 0) {
    static uint8_t stack[2048];
    uint64_t lo, hi;
    col_module_vaddr_range(m, &lo, &hi);
    for (size_t i = 0; i + 8 <= sizeof stack; i += 8) {
      uint64_t v = i % 24 == 16 ? pc + i : 0x7ffd00000000 + i + 64;
      memcpy(stack + i, &v, 8);
    }
    struct col_regs regs = {.arch = a, .pc = pc};
    for (int r = 0; r < COL_MAX_DWARF_REGS; r++)
      col_regs_set(&regs, r, 0x7ffd00000000 + 8 * (uint64_t)r);
    struct unw_snapshot snap = {0x7ffd00000000, stack, sizeof stack};
    struct unw_memory mem = {NULL, NULL};
    uint64_t pcs[32];
    size_t n;
    enum unw_end end;
    unw_unwind(u, map, &regs, &snap, &mem, pcs, 32, &n, &end);
  }
  unw_ctx_free(u);
  col_modmap_free(map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* The header parsers on memory first: they must cope with any prefix. */
  uint8_t id[ELF_BUILD_ID_MAX];
  size_t idlen;
  elf_build_id_mem(data, size, id, sizeof id, &idlen);
  struct mem_file mf = {data, size};
  struct elf_basic_info info;
  elf_basic_info_read(mem_read, &mf, &info);

  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, data, size) != (ssize_t)size)
    abort();
  close(fd);
  elf_build_id_file(path, id, sizeof id, &idlen);
  elf_basic_info_file(path, &info);
  uint64_t entry;
  elf_entry_point(path, &entry);

  struct col_module *m;
  if (col_module_open(path, NULL, NULL, &m) != 0)
    return 0;
  const uint8_t *bid;
  size_t blen;
  col_module_build_id(m, &bid, &blen);
  uint64_t lo, hi;
  col_module_vaddr_range(m, &lo, &hi);
  col_module_has_debug_info(m);
  uint64_t addr, sz;
  col_module_find_symbol(m, "main", &addr, &sz);
  struct funcs fn = {0};
  col_module_foreach_function(m, keep_function, &fn);

  struct fdes f = {0};
  cfi_foreach_fde(m, keep_fde, &f);
  sym_prepare(m); /* damaged .debug_rnglists is refused by the symbolizer itself (libdwarf's double free) */
  for (int i = 0; i < f.n; i++) {
    lookups(m, f.lo[i]);
    lookups(m, f.lo[i] + (f.hi[i] - f.lo[i]) / 2);
    lookups(m, f.hi[i] - 1);
  }
  for (int i = 0; i < fn.n; i++)
    lookups(m, fn.addr[i] + 1);
  lookups(m, entry);
  lookups(m, lo);
  if (f.n)
    unwind_from(m, f.lo[f.n - 1] + 1);
  else if (fn.n)
    unwind_from(m, fn.addr[0] + 1);
  col_module_close(m);
  return 0;
}
