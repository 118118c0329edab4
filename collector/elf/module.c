/* ELF modules: opening an executable or library (and its separate debug file) with libelf, its
 * load range, build-id, sections and function symbols. */
#include "module.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demangle.h"
#include "errors.h"
#include "log.h"

struct elf_file {
  int fd;
  Elf *elf;
  char *path;
};

struct mod_sym {
  uint64_t addr, size;
  const char *name;
  char *demangled;
  uint8_t demangled_done;
  uint8_t rank;  /* binding preference among aliases: 0 global, 1 weak, 2 local */
  uint8_t ifunc; /* STT_GNU_IFUNC: addr is the resolver's, not the function the program runs */
};

struct col_module {
  struct elf_file file, debug;  /* debug.elf == NULL when there is no separate debug file */
  unsigned machine;
  uint64_t lo, hi;
  uint8_t *build_id;
  size_t build_id_len;
  int syms_built;
  struct mod_sym *syms;   /* sorted by address */
  size_t nsyms;
  void *slot[COL_SLOT_COUNT_];
  void (*slot_free[COL_SLOT_COUNT_])(void *);
};

static char *system_debug_dir;
static int system_debug_dir_set;

void col_module_set_system_debug_dir(const char *dir)
{
  free(system_debug_dir);
  system_debug_dir = dir ? strdup(dir) : NULL;
  system_debug_dir_set = 1;
}

static const char *sys_debug_dir(void)
{
  return system_debug_dir_set ? system_debug_dir : "/usr/lib/debug";
}

static void elf_file_close(struct elf_file *f)
{
  if (f->elf)
    elf_end(f->elf);
  if (f->fd >= 0)
    close(f->fd);
  free(f->path);
  f->elf = NULL;
  f->fd = -1;
  f->path = NULL;
}

static int elf_file_open(const char *path, struct elf_file *f)
{
  f->fd = -1;
  f->elf = NULL;
  f->path = NULL;
  elf_version(EV_CURRENT);
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0)
    return -errno;
  f->elf = elf_begin(f->fd, ELF_C_READ_MMAP, NULL);
  if (f->elf == NULL || elf_kind(f->elf) != ELF_K_ELF) {
    elf_file_close(f);
    return RS_E_ELF;
  }
  f->path = strdup(path);
  if (f->path == NULL) {
    elf_file_close(f);
    return -ENOMEM;
  }
  return 0;
}

static Elf_Scn *find_scn(Elf *elf, const char *name, GElf_Shdr *sh)
{
  size_t shstrndx;
  if (elf == NULL || elf_getshdrstrndx(elf, &shstrndx) != 0)
    return NULL;
  for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
    if (gelf_getshdr(scn, sh) == NULL)
      continue;
    const char *n = elf_strptr(elf, shstrndx, sh->sh_name);
    if (n && strcmp(n, name) == 0)
      return scn;
  }
  return NULL;
}

static int scn_bytes(Elf *elf, const char *name, struct col_section *out)
{
  GElf_Shdr sh;
  Elf_Scn *scn = find_scn(elf, name, &sh);
  if (scn == NULL || sh.sh_type == SHT_NOBITS)
    return RS_E_NOT_FOUND;
  if (sh.sh_flags & SHF_COMPRESSED)
    elf_compress(scn, 0, 0);  /* libelf keeps the inflated copy for the Elf's lifetime */
  Elf_Data *d = elf_getdata(scn, NULL);
  if (d == NULL || d->d_buf == NULL)
    return RS_E_NOT_FOUND;
  out->data = d->d_buf;
  out->size = d->d_size;
  out->addr = sh.sh_addr;
  return 0;
}

int col_module_section(const struct col_module *m, const char *name, int from_debug, struct col_section *out)
{
  if (from_debug && m->debug.elf && scn_bytes(m->debug.elf, name, out) == 0)
    return 0;
  return scn_bytes(m->file.elf, name, out);
}

static void read_build_id(struct col_module *m)
{
  for (size_t i = 0;; i++) {
    GElf_Shdr sh;
    Elf_Scn *scn = NULL;
    size_t n = 0;
    /* Walk every SHT_NOTE section: the build-id note is usually .note.gnu.build-id. */
    for (scn = elf_nextscn(m->file.elf, NULL); scn; scn = elf_nextscn(m->file.elf, scn)) {
      if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_NOTE && n++ == i)
        break;
    }
    if (scn == NULL)
      return;
    Elf_Data *d = elf_getdata(scn, NULL);
    if (d == NULL)
      continue;
    GElf_Nhdr nh;
    size_t off = 0, name_off, desc_off;
    while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          memcmp((const char *)d->d_buf + name_off, "GNU", 4) == 0) {
        m->build_id = malloc(nh.n_descsz);
        if (m->build_id) {
          memcpy(m->build_id, (const char *)d->d_buf + desc_off, nh.n_descsz);
          m->build_id_len = nh.n_descsz;
        }
        return;
      }
    }
  }
}

static int try_debug(struct col_module *m, const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return -1;
  if (m->file.path && strcmp(path, m->file.path) == 0)
    return -1;
  if (elf_file_open(path, &m->debug) != 0)
    return -1;
  LOG_DEBUG("%s: separate debug info in %s", m->file.path, path);
  return 0;
}

static int try_build_id_dir(struct col_module *m, const char *dir)
{
  if (dir == NULL || m->build_id_len < 2)
    return -1;
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/.build-id/%02x/", dir, m->build_id[0]);
  for (size_t i = 1; i < m->build_id_len && n > 0 && (size_t)n < sizeof path - 8; i++)
    n += snprintf(path + n, sizeof path - n, "%02x", m->build_id[i]);
  snprintf(path + n, sizeof path - n, ".debug");
  return try_debug(m, path);
}

static void find_debug_file(struct col_module *m, const char *const *debug_dirs)
{
  const char *sys = sys_debug_dir();
  if (try_build_id_dir(m, sys) == 0)
    return;
  for (size_t i = 0; debug_dirs && debug_dirs[i]; i++)
    if (try_build_id_dir(m, debug_dirs[i]) == 0)
      return;
  struct col_section link;
  if (scn_bytes(m->file.elf, ".gnu_debuglink", &link) != 0 || memchr(link.data, 0, link.size) == NULL)
    return;
  const char *name = (const char *)link.data;
  char dir[4096], path[8192];
  snprintf(dir, sizeof dir, "%s", m->file.path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  else
    snprintf(dir, sizeof dir, ".");
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (try_debug(m, path) == 0)
    return;
  snprintf(path, sizeof path, "%s/.debug/%s", dir, name);
  if (try_debug(m, path) == 0)
    return;
  if (sys) {
    snprintf(path, sizeof path, "%s%s/%s", sys, dir, name);
    if (try_debug(m, path) == 0)
      return;
  }
  for (size_t i = 0; debug_dirs && debug_dirs[i]; i++) {
    snprintf(path, sizeof path, "%s/%s", debug_dirs[i], name);
    if (try_debug(m, path) == 0)
      return;
    snprintf(path, sizeof path, "%s%s/%s", debug_dirs[i], dir, name);
    if (try_debug(m, path) == 0)
      return;
  }
}

int col_module_open(const char *path, const char *debug_path, const char *const *debug_dirs,
                    struct col_module **out)
{
  struct col_module *m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  m->debug.fd = -1;
  int rc = elf_file_open(path, &m->file);
  if (rc != 0)
    goto fail;
  GElf_Ehdr eh;
  size_t nph;
  if (gelf_getehdr(m->file.elf, &eh) == NULL || elf_getphdrnum(m->file.elf, &nph) != 0) {
    rc = RS_E_ELF;
    goto fail;
  }
  m->machine = eh.e_machine;
  m->lo = UINT64_MAX;
  for (size_t i = 0; i < nph; i++) {
    GElf_Phdr ph;
    if (gelf_getphdr(m->file.elf, (int)i, &ph) == NULL || ph.p_type != PT_LOAD)
      continue;
    if (ph.p_vaddr < m->lo)
      m->lo = ph.p_vaddr;
    if (ph.p_vaddr + ph.p_memsz > m->hi)
      m->hi = ph.p_vaddr + ph.p_memsz;
  }
  if (m->lo == UINT64_MAX)
    m->lo = m->hi = 0;
  read_build_id(m);
  if (debug_path) {
    rc = elf_file_open(debug_path, &m->debug);
    if (rc != 0)
      goto fail;
  } else {
    find_debug_file(m, debug_dirs);
  }
  *out = m;
  return 0;
fail:
  col_module_close(m);
  return rc;
}

void col_module_close(struct col_module *m)
{
  if (m == NULL)
    return;
  for (int s = 0; s < COL_SLOT_COUNT_; s++)
    if (m->slot[s] && m->slot_free[s])
      m->slot_free[s](m->slot[s]);
  for (size_t i = 0; i < m->nsyms; i++) {
    free((char *)m->syms[i].name);
    free(m->syms[i].demangled);
  }
  free(m->syms);
  free(m->build_id);
  elf_file_close(&m->debug);
  elf_file_close(&m->file);
  free(m);
}

const char *col_module_path(const struct col_module *m) { return m->file.path; }
const char *col_module_debug_path(const struct col_module *m) { return m->debug.elf ? m->debug.path : NULL; }
unsigned col_module_machine(const struct col_module *m) { return m->machine; }

int col_module_build_id(const struct col_module *m, const uint8_t **id, size_t *len)
{
  if (m->build_id == NULL)
    return RS_E_NOT_FOUND;
  *id = m->build_id;
  *len = m->build_id_len;
  return 0;
}

void col_module_vaddr_range(const struct col_module *m, uint64_t *lo, uint64_t *hi)
{
  *lo = m->lo;
  *hi = m->hi;
}

int col_module_has_symtab(const struct col_module *m)
{
  GElf_Shdr sh;
  Elf_Scn *scn = find_scn(m->file.elf, ".symtab", &sh);
  if (scn == NULL && m->debug.elf)
    scn = find_scn(m->debug.elf, ".symtab", &sh);
  return scn != NULL && sh.sh_type == SHT_SYMTAB;
}

int col_module_has_debug_info(const struct col_module *m)
{
  struct col_section s;
  return col_module_section(m, ".debug_info", 1, &s) == 0 && s.size > 0;
}

void *col_module_slot_get(const struct col_module *m, enum col_module_slot s) { return m->slot[s]; }

void col_module_slot_set(struct col_module *m, enum col_module_slot s, void *p, void (*destroy)(void *))
{
  m->slot[s] = p;
  m->slot_free[s] = destroy;
}

/* Appends the function symbols of one symbol table; returns 0 or -ENOMEM. */
static int add_symtab(struct col_module *m, Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, size_t *cap)
{
  Elf_Data *d = elf_getdata(scn, NULL);
  if (d == NULL || sh->sh_entsize == 0)
    return 0;
  size_t count = sh->sh_size / sh->sh_entsize;
  for (size_t i = 1; i < count; i++) {
    GElf_Sym s;
    if (gelf_getsym(d, (int)i, &s) == NULL)
      continue;
    int type = GELF_ST_TYPE(s.st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF || s.st_value == 0)
      continue;
    const char *name = elf_strptr(elf, sh->sh_link, s.st_name);
    if (name == NULL || name[0] == 0)
      continue;
    if (m->nsyms == *cap) {
      size_t ncap = *cap ? *cap * 2 : 256;
      struct mod_sym *ns = realloc(m->syms, ncap * sizeof *ns);
      if (ns == NULL)
        return -ENOMEM;
      m->syms = ns;
      *cap = ncap;
    }
    struct mod_sym *ms = &m->syms[m->nsyms];
    memset(ms, 0, sizeof *ms);
    ms->addr = s.st_value;
    ms->size = s.st_size;
    int bind = GELF_ST_BIND(s.st_info);
    ms->rank = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
    ms->ifunc = type == STT_GNU_IFUNC;
    ms->name = strdup(name);
    if (ms->name == NULL)
      return -ENOMEM;
    m->nsyms++;
  }
  return 0;
}

static int sym_cmp(const void *a, const void *b)
{
  const struct mod_sym *x = a, *y = b;
  if (x->addr != y->addr)
    return x->addr < y->addr ? -1 : 1;
  /* Sized symbols first, then by binding and name, so duplicates are adjacent and the order is deterministic. */
  if ((x->size == 0) != (y->size == 0))
    return x->size == 0 ? 1 : -1;
  /* Among aliases gdb names a frame after the global symbol (raise, not its weak alias gsignal). */
  if (x->rank != y->rank)
    return x->rank < y->rank ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int build_syms(struct col_module *m)
{
  if (m->syms_built)
    return 0;
  size_t cap = 0;
  GElf_Shdr sh;
  Elf_Scn *scn;
  int rc = 0;
  /* .symtab from the file, or from the debug file when the file is stripped; .dynsym always. */
  if ((scn = find_scn(m->file.elf, ".symtab", &sh)) != NULL && sh.sh_type == SHT_SYMTAB)
    rc = add_symtab(m, m->file.elf, scn, &sh, &cap);
  else if (m->debug.elf && (scn = find_scn(m->debug.elf, ".symtab", &sh)) != NULL && sh.sh_type == SHT_SYMTAB)
    rc = add_symtab(m, m->debug.elf, scn, &sh, &cap);
  if (rc == 0 && (scn = find_scn(m->file.elf, ".dynsym", &sh)) != NULL)
    rc = add_symtab(m, m->file.elf, scn, &sh, &cap);
  if (rc != 0)
    return rc;
  if (m->nsyms > 1)
    qsort(m->syms, m->nsyms, sizeof *m->syms, sym_cmp);
  size_t w = 0;
  for (size_t i = 0; i < m->nsyms; i++) {
    if (w > 0 && m->syms[w - 1].addr == m->syms[i].addr && strcmp(m->syms[w - 1].name, m->syms[i].name) == 0) {
      free((char *)m->syms[i].name);
      continue;
    }
    m->syms[w++] = m->syms[i];
  }
  m->nsyms = w;
  m->syms_built = 1;
  return 0;
}

static const char *sym_demangled(struct mod_sym *s)
{
  if (!s->demangled_done) {
    s->demangled = col_demangle(s->name);
    s->demangled_done = 1;
  }
  return s->demangled;
}

int col_module_find_symbol(struct col_module *m, const char *name, uint64_t *addr, uint64_t *size)
{
  int rc = build_syms(m);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < m->nsyms; i++) {
    if (strcmp(m->syms[i].name, name) == 0) {
      *addr = m->syms[i].addr;
      if (size)
        *size = m->syms[i].size;
      return 0;
    }
  }
  return RS_E_NOT_FOUND;
}

static int find_object_in(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, const char *name, uint64_t *addr)
{
  Elf_Data *d = elf_getdata(scn, NULL);
  if (d == NULL || sh->sh_entsize == 0)
    return RS_E_NOT_FOUND;
  size_t count = sh->sh_size / sh->sh_entsize;
  for (size_t i = 1; i < count; i++) {
    GElf_Sym s;
    if (gelf_getsym(d, (int)i, &s) == NULL || GELF_ST_TYPE(s.st_info) != STT_OBJECT || s.st_shndx == SHN_UNDEF)
      continue;
    const char *n = elf_strptr(elf, sh->sh_link, s.st_name);
    if (n && strcmp(n, name) == 0) {
      *addr = s.st_value;
      return 0;
    }
  }
  return RS_E_NOT_FOUND;
}

int col_module_find_object(struct col_module *m, const char *name, uint64_t *addr)
{
  GElf_Shdr sh;
  Elf_Scn *scn;
  if ((scn = find_scn(m->file.elf, ".symtab", &sh)) != NULL && sh.sh_type == SHT_SYMTAB &&
      find_object_in(m->file.elf, scn, &sh, name, addr) == 0)
    return 0;
  if (m->debug.elf && (scn = find_scn(m->debug.elf, ".symtab", &sh)) != NULL && sh.sh_type == SHT_SYMTAB &&
      find_object_in(m->debug.elf, scn, &sh, name, addr) == 0)
    return 0;
  if ((scn = find_scn(m->file.elf, ".dynsym", &sh)) != NULL && find_object_in(m->file.elf, scn, &sh, name, addr) == 0)
    return 0;
  return RS_E_NOT_FOUND;
}

int col_module_foreach_function(struct col_module *m,
                                int (*fn)(void *ctx, const char *name, const char *demangled,
                                          uint64_t addr, uint64_t size),
                                void *ctx)
{
  int rc = build_syms(m);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < m->nsyms; i++) {
    rc = fn(ctx, m->syms[i].name, sym_demangled(&m->syms[i]), m->syms[i].addr, m->syms[i].size);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int col_module_symbol_at(struct col_module *m, uint64_t addr, const char **name, const char **demangled,
                         uint64_t *sym_addr)
{
  if (build_syms(m) != 0 || m->nsyms == 0)
    return RS_E_NOT_FOUND;
  size_t lo = 0, hi = m->nsyms;
  while (lo < hi) {  /* first symbol above addr */
    size_t mid = (lo + hi) / 2;
    if (m->syms[mid].addr <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return RS_E_NOT_FOUND;
  /* Like gdb's minimal symbols: a sized symbol only covers its own bytes; a zero-sized one covers up to
   * the next symbol. Look back a little for a sized symbol that contains addr (nested aliases). */
  struct mod_sym *s = NULL;
  size_t i = lo - 1;
  if (m->syms[i].size == 0) {
    s = &m->syms[i];
  } else {
    for (size_t k = lo; k > 0 && lo - k < 16; k--) {
      struct mod_sym *c = &m->syms[k - 1];
      if (c->size && addr < c->addr + c->size) {
        s = c;
        while (s > m->syms && s[-1].addr == s->addr && s[-1].size)
          s--;  /* the first of aliases at one address (sized ones sort first) */
        break;
      }
    }
  }
  if (s == NULL || addr >= m->hi)
    return RS_E_NOT_FOUND;
  *name = s->name;
  *demangled = sym_demangled(s);
  if (sym_addr)
    *sym_addr = s->addr;
  return 0;
}

int col_module_is_ifunc(struct col_module *m, uint64_t addr)
{
  if (build_syms(m) != 0)
    return 0;
  for (size_t i = 0; i < m->nsyms; i++)
    if (m->syms[i].addr == addr && m->syms[i].ifunc)
      return 1;
  return 0;
}

/* The file's 8-byte little-endian word at a link-time address, from the section holding it. */
static int file_word(const struct col_module *m, uint64_t vaddr, uint64_t *word)
{
  for (Elf_Scn *scn = elf_nextscn(m->file.elf, NULL); scn; scn = elf_nextscn(m->file.elf, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS || vaddr < sh.sh_addr ||
        vaddr + 8 > sh.sh_addr + sh.sh_size)
      continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    if (!d || !d->d_buf || vaddr - sh.sh_addr + 8 > d->d_size)
      return RS_E_NOT_FOUND;
    const uint8_t *b = (const uint8_t *)d->d_buf + (vaddr - sh.sh_addr);
    *word = 0;
    for (int k = 7; k >= 0; k--)
      *word = *word << 8 | b[k];
    return 0;
  }
  return RS_E_NOT_FOUND;
}

size_t col_module_irelative_slots(struct col_module *m, uint64_t resolver, uint64_t *slots, uint64_t *file_words,
                                  size_t max)
{
  unsigned irelative = m->machine == EM_X86_64 ? R_X86_64_IRELATIVE
                       : m->machine == EM_AARCH64 ? R_AARCH64_IRELATIVE : 0;
  size_t n = 0;
  for (Elf_Scn *scn = elf_nextscn(m->file.elf, NULL); irelative && scn && n < max;
       scn = elf_nextscn(m->file.elf, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
      continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    size_t count = d ? d->d_size / sh.sh_entsize : 0;
    for (size_t i = 0; i < count && n < max; i++) {
      GElf_Rela r;
      if (!gelf_getrela(d, (int)i, &r) || GELF_R_TYPE(r.r_info) != irelative || (uint64_t)r.r_addend != resolver)
        continue;
      uint64_t w = 0;
      if (file_word(m, r.r_offset, &w) != 0)
        continue;
      slots[n] = r.r_offset;
      file_words[n] = w;
      n++;
    }
  }
  return n;
}
