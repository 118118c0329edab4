/* Builds the target model from RSP queries: target.xml for the architecture, exec-file, auxv and the
 * executable's program headers in memory for its bias, and the svr4 library list (or a walk of the
 * dynamic linker's link_map when the server has no such list). */
#include "target.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch.h"
#include "binfind.h"
#include "elf-buildid.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "rsp-client.h"

#define XFER_LIMIT (16u << 20)
#define MAX_PHDRS 256
#define MAX_PHENT 1024 /* an Elf64_Phdr is 56 bytes */
#define MAX_DYN 512
#define MAX_LINK_MAPS 4096

void target_libs_free(struct target_lib *libs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(libs[i].name);
  free(libs);
}

void target_free(struct target *t)
{
  if (!t)
    return;
  free(t->exec_path);
  free(t->interp);
  target_libs_free(t->libs, t->nlibs);
  free(t->tids);
  free(t);
}

/* ---- XML: only what library lists and target descriptions use. ---- */

/* Decodes the predefined entities and numeric references of an attribute value. */
static char *xml_unescape(const char *s, size_t n)
{
  char *out = malloc(n + 1), *o = out;
  if (!out)
    return NULL;
  for (size_t i = 0; i < n;) {
    if (s[i] != '&') {
      *o++ = s[i++];
      continue;
    }
    static const struct { const char *name; char c; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    int done = 0;
    for (size_t k = 0; k < sizeof ents / sizeof ents[0] && !done; k++) {
      size_t el = strlen(ents[k].name);
      if (n - i >= el && !memcmp(s + i, ents[k].name, el)) {
        *o++ = ents[k].c;
        i += el;
        done = 1;
      }
    }
    if (!done && n - i > 3 && s[i + 1] == '#') {
      char *end;
      int hex = s[i + 2] == 'x';
      unsigned long v = strtoul(s + i + 2 + hex, &end, hex ? 16 : 10);
      if (*end == ';' && v > 0 && v < 128) {
        *o++ = (char)v;
        i = (size_t)(end + 1 - s);
        done = 1;
      }
    }
    if (!done)
      *o++ = s[i++];
  }
  *o = 0;
  return out;
}

/* Finds attribute name="..." inside one tag [tag, end). Returns a pointer to the value and its length. */
static const char *xml_attr(const char *tag, const char *end, const char *name, size_t *vlen)
{
  size_t nl = strlen(name);
  for (const char *p = tag + 1; p + nl + 2 < end; p++) { /* tag points at "<", so p[-1] is in bounds */
    if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n' || p[-1] == '\r') && !memcmp(p, name, nl) &&
        p[nl] == '=' && (p[nl + 1] == '"' || p[nl + 1] == '\'')) {
      char q = p[nl + 1];
      const char *v = p + nl + 2;
      const char *ve = memchr(v, q, (size_t)(end - v));
      if (!ve)
        return NULL;
      *vlen = (size_t)(ve - v);
      return v;
    }
  }
  return NULL;
}

static int xml_attr_u64(const char *tag, const char *end, const char *name, uint64_t *out)
{
  size_t vl;
  const char *v = xml_attr(tag, end, name, &vl);
  *out = 0;
  if (!v)
    return RS_E_NOT_FOUND;
  char tmp[32];
  if (vl == 0 || vl >= sizeof tmp)
    return RS_E_FORMAT;
  memcpy(tmp, v, vl);
  tmp[vl] = 0;
  char *e;
  errno = 0;
  unsigned long long x = strtoull(tmp, &e, 0);
  if (*e || errno)
    return RS_E_FORMAT;
  *out = x;
  return 0;
}

int target_parse_svr4(const char *xml, size_t len, struct target_lib **libs, size_t *n, uint64_t *main_lm)
{
  *libs = NULL;
  *n = 0;
  *main_lm = 0;
  const char *end = xml + len;
  const char *root = memmem(xml, len, "<library-list-svr4", 18);
  if (!root)
    return RS_E_FORMAT;
  const char *rend = memchr(root, '>', (size_t)(end - root));
  if (!rend)
    return RS_E_FORMAT;
  xml_attr_u64(root, rend, "main-lm", main_lm);
  struct target_lib *v = NULL;
  size_t count = 0, cap = 0;
  int rc = 0;
  for (const char *p = rend; (p = memmem(p, (size_t)(end - p), "<library", 8)) != NULL;) {
    const char *te = memchr(p, '>', (size_t)(end - p));
    if (!te) {
      rc = RS_E_FORMAT;
      break;
    }
    if (p[8] != ' ' && p[8] != '\t' && p[8] != '\n') {
      p = te; /* <library-list...> itself */
      continue;
    }
    size_t nl;
    const char *name = xml_attr(p, te, "name", &nl);
    struct target_lib lib = {0};
    if (!name || xml_attr_u64(p, te, "lm", &lib.lm) || xml_attr_u64(p, te, "l_addr", &lib.l_addr) ||
        xml_attr_u64(p, te, "l_ld", &lib.l_ld)) {
      rc = RS_E_FORMAT;
      break;
    }
    lib.name = xml_unescape(name, nl);
    if (!lib.name) {
      rc = -ENOMEM;
      break;
    }
    if (count == cap) {
      cap = cap ? cap * 2 : 16;
      struct target_lib *nv = realloc(v, cap * sizeof *nv);
      if (!nv) {
        free(lib.name);
        rc = -ENOMEM;
        break;
      }
      v = nv;
    }
    v[count++] = lib;
    p = te;
  }
  if (rc) {
    target_libs_free(v, count);
    return rc;
  }
  *libs = v;
  *n = count;
  return 0;
}

/* ---- memory helpers (64-bit little-endian targets: x86_64 and aarch64) ---- */

static int read_u64(struct rspc *c, uint64_t addr, uint64_t *v)
{
  uint8_t b[8];
  int rc = rspc_read_memory(c, addr, b, 8, NULL);
  if (rc)
    return rc;
  *v = 0;
  for (int i = 7; i >= 0; i--)
    *v = *v << 8 | b[i];
  return 0;
}

static uint64_t le(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static int read_string(struct rspc *c, uint64_t addr, char **out)
{
  char buf[4096];
  size_t got = 0;
  /* A read may stop at an unmapped page; what came before the fault is still good. */
  rspc_read_memory(c, addr, buf, sizeof buf - 1, &got);
  buf[got] = 0;
  if (!memchr(buf, 0, got + 1) || got == 0)
    return RS_E_NOT_FOUND;
  *out = strdup(buf);
  return *out ? 0 : -ENOMEM;
}

/* ---- auxv and the executable's program headers ---- */

static int load_auxv(struct rspc *c, struct target *t, uint64_t *phent, uint64_t *phnum)
{
  struct rs_buf b;
  rs_buf_init(&b, XFER_LIMIT);
  int rc = rspc_qxfer_read(c, "auxv", "", &b);
  if (rc) {
    rs_buf_free(&b);
    return rc;
  }
  for (size_t i = 0; i + 16 <= b.len; i += 16) {
    uint64_t type = le(b.data + i, 8), val = le(b.data + i + 8, 8);
    if (type == AT_NULL)
      break;
    switch (type) {
    case AT_PHDR: t->at_phdr = val; break;
    case AT_PHENT: *phent = val; break;
    case AT_PHNUM: *phnum = val; break;
    case AT_ENTRY: t->at_entry = val; break;
    case AT_BASE: t->at_base = val; break;
    default: break;
    }
  }
  rs_buf_free(&b);
  return 0;
}

/* Reads the executable's program headers from memory, where the dynamic linker and the kernel find them
 * too: the bias, the dynamic section, the interpreter and the ELF header need no local file. */
static int scan_exec_phdrs(struct rspc *c, struct target *t, uint64_t phent, uint64_t phnum, unsigned *machine)
{
  /* AT_PHENT comes from the target: a huge one would make phent * phnum wrap (or allocate without bound). */
  if (!t->at_phdr || phent < 56 || phent > MAX_PHENT || phnum == 0 || phnum > MAX_PHDRS)
    return RS_E_NOT_FOUND;
  size_t size = (size_t)(phent * phnum);
  uint8_t *ph = malloc(size);
  if (!ph)
    return -ENOMEM;
  int rc = rspc_read_memory(c, t->at_phdr, ph, size, NULL);
  if (rc) {
    free(ph);
    return rc;
  }
  int have_bias = 0;
  uint64_t dyn_vaddr = 0, interp_vaddr = 0, first_load = UINT64_MAX;
  int have_dyn = 0, have_interp = 0;
  for (uint64_t i = 0; i < phnum; i++) {
    const uint8_t *p = ph + i * phent;
    uint32_t type = (uint32_t)le(p, 4);
    uint64_t off = le(p + 8, 8), vaddr = le(p + 16, 8);
    if (type == PT_PHDR) {
      t->exec_bias = t->at_phdr - vaddr;
      have_bias = 1;
    } else if (type == PT_DYNAMIC) {
      dyn_vaddr = vaddr;
      have_dyn = 1;
    } else if (type == PT_INTERP) {
      interp_vaddr = vaddr;
      have_interp = 1;
    } else if (type == PT_LOAD && off == 0 && first_load == UINT64_MAX) {
      first_load = vaddr;
    }
  }
  free(ph);
  if (!have_bias)
    return RS_E_NOT_FOUND;
  if (have_dyn)
    t->dynamic = t->exec_bias + dyn_vaddr;
  if (have_interp)
    read_string(c, t->exec_bias + interp_vaddr, &t->interp);
  if (first_load != UINT64_MAX) { /* the ELF header is mapped at the start of the first segment */
    uint8_t e[20];
    if (rspc_read_memory(c, t->exec_bias + first_load, e, sizeof e, NULL) == 0 && !memcmp(e, ELFMAG, SELFMAG))
      *machine = (unsigned)le(e + 18, 2);
  }
  return 0;
}

/* The executable's DT_DEBUG entry points at r_debug once the dynamic linker has started. */
static void find_r_debug(struct rspc *c, struct target *t)
{
  if (!t->dynamic || t->r_debug)
    return;
  uint8_t d[16 * 32];
  for (unsigned base = 0; base < MAX_DYN; base += 32) {
    if (rspc_read_memory(c, t->dynamic + base * 16, d, sizeof d, NULL))
      return;
    for (unsigned i = 0; i < 32; i++) {
      uint64_t tag = le(d + i * 16, 8), val = le(d + i * 16 + 8, 8);
      if (tag == DT_NULL)
        return;
      if (tag == DT_DEBUG) {
        t->r_debug = val;
        return;
      }
    }
  }
}

/* Looks a symbol up in a local ELF file (.symtab, then .dynsym). */
static int elf_symbol(const char *path, const char *name, uint64_t *value)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  elf_version(EV_CURRENT);
  Elf *e = elf_begin(fd, ELF_C_READ, NULL);
  int rc = RS_E_NOT_FOUND;
  for (int pass = 0; e && pass < 2 && rc; pass++) {
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(e, scn)) != NULL && rc) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh) || sh.sh_type != (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM) || !sh.sh_entsize)
        continue;
      Elf_Data *data = elf_getdata(scn, NULL);
      size_t n = data ? data->d_size / sh.sh_entsize : 0;
      for (size_t i = 0; i < n; i++) {
        GElf_Sym sym;
        if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
          continue;
        const char *s = elf_strptr(e, sh.sh_link, sym.st_name);
        if (s && strcmp(s, name) == 0) {
          *value = sym.st_value;
          rc = 0;
          break;
        }
      }
    }
  }
  if (e)
    elf_end(e);
  close(fd);
  return rc;
}

static void find_r_brk(struct rspc *c, struct target *t, struct binfind *bf)
{
  find_r_debug(c, t);
  if (t->r_debug) {
    uint64_t v = 0;
    if (read_u64(c, t->r_debug + 16, &v) == 0 && v) { /* struct r_debug: version, r_map, r_brk */
      t->r_brk = v;
      return;
    }
  }
  /* Before the dynamic linker has run, r_debug is empty: use the function it calls at each change,
   * found in its own file (the linker is loaded at AT_BASE, linked at 0). */
  if (!bf || !t->interp || !t->at_base)
    return;
  const char *local, *how;
  if (binfind_locate(bf, t->interp, &local, &how) != 0)
    return;
  static const char *const names[] = {"_dl_debug_state", "_r_debug_state", "r_debug_state", "_rtld_debug_state"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    uint64_t v = 0;
    if (elf_symbol(local, names[i], &v) == 0) {
      t->r_brk = t->at_base + v;
      LOG_DEBUG("target: r_brk at %#llx (%s in %s)", (unsigned long long)t->r_brk, names[i], local);
      return;
    }
  }
}

/* Walks r_debug.r_map: for servers without qXfer:libraries-svr4. */
int target_walk_link_map(struct rspc *c, const struct target *t, struct target_lib **libs, size_t *n)
{
  *libs = NULL;
  *n = 0;
  if (!t->r_debug)
    return 0;
  uint64_t lm;
  int rc = read_u64(c, t->r_debug + 8, &lm);
  if (rc)
    return rc;
  struct target_lib *v = NULL;
  size_t count = 0;
  for (int i = 0; lm && i < MAX_LINK_MAPS; i++) {
    uint8_t m[40]; /* l_addr, l_name, l_ld, l_next, l_prev */
    rc = rspc_read_memory(c, lm, m, sizeof m, NULL);
    if (rc)
      break;
    if (i > 0) { /* the first entry is the executable */
      struct target_lib lib = {.l_addr = le(m, 8), .l_ld = le(m + 16, 8), .lm = lm};
      if (read_string(c, le(m + 8, 8), &lib.name) != 0)
        lib.name = strdup("");
      struct target_lib *nv = lib.name ? realloc(v, (count + 1) * sizeof *nv) : NULL;
      if (!nv) {
        free(lib.name);
        rc = -ENOMEM;
        break;
      }
      v = nv;
      v[count++] = lib;
    }
    lm = le(m + 24, 8);
  }
  if (rc) {
    target_libs_free(v, count);
    return rc;
  }
  *libs = v;
  *n = count;
  return 0;
}

int target_refresh_libraries(struct rspc *c, struct target *t)
{
  struct target_lib *libs = NULL;
  size_t n = 0;
  int rc;
  if (!t->r_debug || !t->r_brk) {
    uint64_t old = t->r_brk;
    t->r_brk = 0;
    find_r_brk(c, t, NULL);
    if (!t->r_brk)
      t->r_brk = old;
  }
  if (rspc_features(c)->xfer_libraries_svr4) {
    struct rs_buf b;
    rs_buf_init(&b, XFER_LIMIT);
    rc = rspc_qxfer_read(c, "libraries-svr4", "", &b);
    uint64_t main_lm = 0;
    if (rc == 0)
      rc = target_parse_svr4((const char *)b.data, b.len, &libs, &n, &main_lm);
    if (rc)
      LOG_WARN("target: cannot read the library list: %s", rs_strerror(rc));
    rs_buf_free(&b);
  } else {
    rc = target_walk_link_map(c, t, &libs, &n);
  }
  if (rc)
    return rc;
  target_libs_free(t->libs, t->nlibs);
  t->libs = libs;
  t->nlibs = n;
  LOG_DEBUG("target: %zu shared libraries", n);
  return 0;
}

int target_refresh_threads(struct rspc *c, struct target *t)
{
  int64_t *tids = NULL;
  size_t n = 0;
  int rc = rspc_list_threads(c, NULL, &tids, &n);
  if (rc)
    return rc;
  free(t->tids);
  t->tids = tids;
  t->ntids = n;
  return 0;
}

static const struct arch_desc *arch_from_description(struct rspc *c)
{
  if (!rspc_features(c)->xfer_features)
    return NULL;
  struct rs_buf b;
  rs_buf_init(&b, XFER_LIMIT);
  const struct arch_desc *a = NULL;
  if (rspc_qxfer_read(c, "features", "target.xml", &b) == 0 && b.len) {
    const char *s = memmem(b.data, b.len, "<architecture>", 14);
    const char *e = s ? strstr(s, "</architecture>") : NULL;
    if (s && e) {
      char name[64];
      size_t n = (size_t)(e - (s + 14));
      if (n < sizeof name) {
        memcpy(name, s + 14, n);
        name[n] = 0;
        a = arch_by_gdb_name(name);
        if (!a)
          LOG_WARN("target: unknown architecture \"%s\" in the target description", name);
      }
    }
  }
  rs_buf_free(&b);
  return a;
}

static int load(struct rspc *c, struct binfind *bf, int64_t pid, struct target **out)
{
  *out = NULL;
  struct target *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  struct rspc_stop st;
  int rc = 0;
  if (pid > 0) { /* a process the server already reported (a followed child, or one that executed) */
    memset(&st, 0, sizeof st);
    st.kind = RSPC_STOP_SIGNAL;
    st.pid = pid;
    st.tid = pid;
  } else if ((rc = rspc_query_stop(c, &st)) != 0) {
    goto fail;
  }
  t->pid = st.pid > 0 ? st.pid : st.tid; /* without multiprocess the first thread's id is the pid */
  if (st.kind != RSPC_STOP_SIGNAL) {
    rc = RS_E_NO_PROCESS;
    goto fail;
  }
  const struct rspc_features *f = rspc_features(c);
  t->arch = arch_from_description(c);

  if (f->xfer_exec_file) {
    struct rs_buf b;
    rs_buf_init(&b, 1 << 16);
    char annex[24] = "";
    if (t->pid > 0)
      snprintf(annex, sizeof annex, "%llx", (unsigned long long)t->pid);
    if (rspc_qxfer_read(c, "exec-file", annex, &b) == 0 && b.len)
      t->exec_path = strdup((const char *)b.data);
    rs_buf_free(&b);
  }

  uint64_t phent = 0, phnum = 0;
  unsigned machine = 0;
  if (f->xfer_auxv && load_auxv(c, t, &phent, &phnum) == 0) {
    if (scan_exec_phdrs(c, t, phent, phnum, &machine) != 0 && t->at_entry && bf && t->exec_path) {
      /* No PT_PHDR: the entry point relates the file to memory just as well. */
      const char *local, *how;
      struct elf_basic_info info;
      if (binfind_locate(bf, t->exec_path, &local, &how) == 0 && elf_basic_info_file(local, &info) == 0) {
        t->exec_bias = t->at_entry - info.entry;
        machine = info.machine;
      }
    }
  }
  if (!t->arch && machine)
    t->arch = arch_by_elf_machine(machine);
  if (!t->arch) {
    LOG_ERR("target: cannot tell the target's architecture (no target description, no ELF header)");
    rc = RS_E_UNSUPPORTED;
    goto fail;
  }
  find_r_brk(c, t, bf);
  rc = target_refresh_libraries(c, t);
  if (rc && rc != RS_E_UNSUPPORTED)
    goto fail;
  if (target_refresh_threads(c, t) != 0 && st.tid > 0) {
    t->tids = malloc(sizeof *t->tids);
    if (t->tids) {
      t->tids[0] = st.tid;
      t->ntids = 1;
    }
  }
  LOG_INFO("target: pid %lld, %s, %s, bias %#llx, %zu libraries, r_brk %#llx", (long long)t->pid,
           t->arch->name, t->exec_path ? t->exec_path : "(unknown executable)",
           (unsigned long long)t->exec_bias, t->nlibs, (unsigned long long)t->r_brk);
  *out = t;
  return 0;
fail:
  target_free(t);
  return rc;
}

int target_load(struct rspc *c, struct binfind *bf, struct target **out) { return load(c, bf, 0, out); }

int target_load_process(struct rspc *c, struct binfind *bf, int64_t pid, struct target **out)
{
  return load(c, bf, pid, out);
}
