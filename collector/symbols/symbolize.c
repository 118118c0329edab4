/* The symbolizer: reads .debug_info (functions and inlined-subroutine trees) and .debug_line once per
 * module through libdwarf into sorted arrays, then answers address queries by binary search with a
 * per-address cache. Without DWARF it falls back to the ELF symbol tables. */
#include "symbolize.h"

#include <errno.h>
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "demangle.h"
#include "dwarf-screen.h"
#include "errors.h"
#include "log.h"

struct fn {
  uint64_t self_off, origin_off;  /* DIE offsets used to resolve names after the walk */
  const char *name;               /* display name, as gdb prints it */
  const char *linkage;
  int decl_line;
};

struct phys {  /* one address range of an out-of-line function */
  uint64_t lo, hi;
  uint32_t fn, inl_first, inl_count;
};

struct inl {  /* one address range of an inlined call */
  uint64_t lo, hi;
  uint32_t fn;
  int depth;
  const char *call_file;
  int call_line;
};

struct line_row {
  uint64_t addr;
  const char *file;
  uint32_t seq;   /* original order, for a stable sort */
  int line;
  uint8_t end, stmt;
};

struct decl {  /* any DW_TAG_subprogram: what a reference to it contributes */
  uint64_t off, ref;
  const char *qname, *linkage;
  int decl_line;
};

struct cache_slot {
  uint64_t key;
  uint32_t first;  /* index into frames */
  uint16_t count;
  uint8_t used;
};

struct sym_state {
  struct fn *fns; size_t nfns, capfns;
  struct phys *phys; size_t nphys, capphys;
  struct inl *inl; size_t ninl, capinl;
  struct line_row *lines; size_t nlines, caplines;
  struct decl *decls; size_t ndecls, capdecls;   /* sorted by offset after the walk */
  char **strs; size_t nstrs, capstrs;             /* every string we own */
  struct cache_slot *cache; size_t cache_cap, cache_count;
  struct sym_frame *frames; size_t nframes, capframes;
  const char *module_path;
  int oom;
};

#define GROW(s, arr, n, cap)                                                 \
  ((s)->n < (s)->cap ? 0 : grow_array((void **)&(s)->arr, &(s)->cap, sizeof *(s)->arr, &(s)->oom))

static int grow_array(void **p, size_t *cap, size_t elem, int *oom)
{
  size_t ncap = *cap ? *cap * 2 : 64;
  void *np = realloc(*p, ncap * elem);
  if (np == NULL) {
    *oom = 1;
    return -1;
  }
  *p = np;
  *cap = ncap;
  return 0;
}

static const char *own_str(struct sym_state *s, char *str)
{
  if (str == NULL)
    return NULL;
  if (GROW(s, strs, nstrs, capstrs)) {
    free(str);
    return NULL;
  }
  s->strs[s->nstrs++] = str;
  return str;
}

static const char *copy_str(struct sym_state *s, const char *str)
{
  return str ? own_str(s, strdup(str)) : NULL;
}

static void state_free(void *p)
{
  struct sym_state *s = p;
  for (size_t i = 0; i < s->nstrs; i++)
    free(s->strs[i]);
  free(s->strs);
  free(s->fns);
  free(s->phys);
  free(s->inl);
  free(s->lines);
  free(s->decls);
  free(s->cache);
  free(s->frames);
  free(s);
}

/* ---- the DWARF walk ---- */

struct cu_info {
  Dwarf_Debug dbg;
  struct col_module *m;
  int version;
  int lang;
  uint64_t base;  /* CU base address for range lists */
  char **files;
  Dwarf_Signed nfiles;
  struct col_section ranges, rnglists;
};

static void drop_err(Dwarf_Debug dbg, Dwarf_Error *err)
{
  if (*err) {
    dwarf_dealloc_error(dbg, *err);
    *err = NULL;
  }
}

static int attr_udata(struct cu_info *cu, Dwarf_Die die, Dwarf_Half name, uint64_t *v)
{
  Dwarf_Attribute a;
  Dwarf_Error err = NULL;
  int ok = -1;
  if (dwarf_attr(die, name, &a, &err) != DW_DLV_OK) {
    drop_err(cu->dbg, &err);
    return -1;
  }
  Dwarf_Unsigned u;
  Dwarf_Signed sv;
  if (dwarf_formudata(a, &u, &err) == DW_DLV_OK) {
    *v = u;
    ok = 0;
  } else {
    drop_err(cu->dbg, &err);
    if (dwarf_formsdata(a, &sv, &err) == DW_DLV_OK) {
      *v = (uint64_t)sv;
      ok = 0;
    } else {
      drop_err(cu->dbg, &err);
    }
  }
  dwarf_dealloc(cu->dbg, a, DW_DLA_ATTR);
  return ok;
}

static int attr_ref(struct cu_info *cu, Dwarf_Die die, Dwarf_Half name, uint64_t *off)
{
  Dwarf_Attribute a;
  Dwarf_Error err = NULL;
  if (dwarf_attr(die, name, &a, &err) != DW_DLV_OK) {
    drop_err(cu->dbg, &err);
    return -1;
  }
  Dwarf_Off o;
  int rc = dwarf_global_formref(a, &o, &err);
  drop_err(cu->dbg, &err);
  dwarf_dealloc(cu->dbg, a, DW_DLA_ATTR);
  if (rc != DW_DLV_OK)
    return -1;
  *off = o;
  return 0;
}

static char *attr_string(struct cu_info *cu, Dwarf_Die die, Dwarf_Half name)
{
  Dwarf_Attribute a;
  Dwarf_Error err = NULL;
  if (dwarf_attr(die, name, &a, &err) != DW_DLV_OK) {
    drop_err(cu->dbg, &err);
    return NULL;
  }
  char *str = NULL;
  if (dwarf_formstring(a, &str, &err) != DW_DLV_OK) {
    drop_err(cu->dbg, &err);
    str = NULL;
  }
  dwarf_dealloc(cu->dbg, a, DW_DLA_ATTR);
  return str;  /* points into the string section: valid until dwarf_finish */
}

static uint64_t rd_le(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

typedef int (*range_fn)(void *ctx, uint64_t lo, uint64_t hi);

/* Reads the DIE's address ranges (low/high PC or a range list) and calls fn for each nonempty one. */
static int die_ranges(struct cu_info *cu, Dwarf_Die die, range_fn fn, void *ctx)
{
  Dwarf_Error err = NULL;
  Dwarf_Addr lo, hi;
  Dwarf_Half form;
  enum Dwarf_Form_Class cls;
  if (dwarf_lowpc(die, &lo, &err) == DW_DLV_OK) {
    if (dwarf_highpc_b(die, &hi, &form, &cls, &err) != DW_DLV_OK) {
      drop_err(cu->dbg, &err);
      return 0;
    }
    if (cls == DW_FORM_CLASS_CONSTANT)
      hi += lo;
    if (hi > lo && lo != 0)
      fn(ctx, lo, hi);
    return 0;
  }
  drop_err(cu->dbg, &err);
  uint64_t off;
  if (attr_ref(cu, die, DW_AT_ranges, &off) != 0 && attr_udata(cu, die, DW_AT_ranges, &off) != 0)
    return 0;
  uint64_t base = cu->base;
  if (cu->version < 5) {
    if (off >= cu->ranges.size)
      return 0;
    for (const uint8_t *p = cu->ranges.data + off; p + 16 <= cu->ranges.data + cu->ranges.size; p += 16) {
      uint64_t a = rd_le(p, 8), b = rd_le(p + 8, 8);
      if (a == 0 && b == 0)
        break;
      if (a == UINT64_MAX) {
        base = b;
        continue;
      }
      if (b > a && base + a != 0)
        fn(ctx, base + a, base + b);
    }
    return 0;
  }
  if (off >= cu->rnglists.size)
    return 0;
  const uint8_t *p = cu->rnglists.data + off, *end = cu->rnglists.data + cu->rnglists.size;
  while (p < end) {
    uint8_t kind = *p++;
    uint64_t a, b;
    switch (kind) {
    case DW_RLE_end_of_list: return 0;
    case DW_RLE_offset_pair:
      if (rs_uleb(&p, end, &a) || rs_uleb(&p, end, &b)) return 0;
      if (b > a) fn(ctx, base + a, base + b);
      break;
    case DW_RLE_base_address:
      if (end - p < 8) return 0;
      base = rd_le(p, 8); p += 8;
      break;
    case DW_RLE_start_end:
      if (end - p < 16) return 0;
      a = rd_le(p, 8); b = rd_le(p + 8, 8); p += 16;
      if (b > a) fn(ctx, a, b);
      break;
    case DW_RLE_start_length:
      if (end - p < 8) return 0;
      a = rd_le(p, 8); p += 8;
      if (rs_uleb(&p, end, &b)) return 0;
      if (b) fn(ctx, a, a + b);
      break;
    default:
      return 0;  /* index forms (split DWARF) are not used by non-split GCC/LLVM output */
    }
  }
  return 0;
}

static const char *cu_file(struct cu_info *cu, uint64_t idx)
{
  int64_t i = cu->version >= 5 ? (int64_t)idx : (int64_t)idx - 1;
  if (cu->files == NULL || i < 0 || i >= cu->nfiles)
    return NULL;
  return cu->files[i];
}

struct walk {
  struct sym_state *s;
  struct cu_info *cu;
  const char **files_owned;  /* this CU's file names, copied into the state */
  /* the physical function being walked */
  uint32_t cur_fn;
  /* for range callbacks */
  uint32_t fn_idx;
  int depth;
  const char *call_file;
  int call_line;
};

static int add_inl_range(void *ctx, uint64_t lo, uint64_t hi)
{
  struct walk *w = ctx;
  struct sym_state *s = w->s;
  if (GROW(s, inl, ninl, capinl))
    return -1;
  s->inl[s->ninl++] = (struct inl){lo, hi, w->fn_idx, w->depth, w->call_file, w->call_line};
  return 0;
}

struct phys_ctx {
  struct sym_state *s;
  uint32_t fn, first, count;
};

static int add_phys_range(void *ctx, uint64_t lo, uint64_t hi)
{
  struct phys_ctx *p = ctx;
  if (GROW(p->s, phys, nphys, capphys))
    return -1;
  p->s->phys[p->s->nphys++] = (struct phys){lo, hi, p->fn, p->first, p->count};
  return 0;
}

static int new_fn(struct sym_state *s, uint64_t self, uint64_t origin, uint32_t *idx)
{
  if (GROW(s, fns, nfns, capfns))
    return -1;
  s->fns[s->nfns] = (struct fn){self, origin, NULL, NULL, 0};
  *idx = (uint32_t)s->nfns++;
  return 0;
}

static char *join_name(const char *prefix, const char *name)
{
  if (name == NULL)
    return NULL;
  size_t a = prefix ? strlen(prefix) : 0, b = strlen(name);
  char *r = malloc(a + b + 3);
  if (r == NULL)
    return NULL;
  if (a) {
    memcpy(r, prefix, a);
    memcpy(r + a, "::", 2);
    a += 2;
  }
  memcpy(r + a, name, b + 1);
  return r;
}

static void walk_die(struct walk *w, Dwarf_Die die, const char *prefix, int depth);

static void walk_children(struct walk *w, Dwarf_Die die, const char *prefix, int depth)
{
  Dwarf_Die child = NULL, next;
  Dwarf_Error err = NULL;
  if (dwarf_child(die, &child, &err) != DW_DLV_OK) {
    drop_err(w->cu->dbg, &err);
    return;
  }
  while (child) {
    walk_die(w, child, prefix, depth);
    int rc = dwarf_siblingof_b(w->cu->dbg, child, 1, &next, &err);
    dwarf_dealloc_die(child);
    if (rc != DW_DLV_OK) {
      drop_err(w->cu->dbg, &err);
      break;
    }
    child = next;
  }
}

static void walk_die(struct walk *w, Dwarf_Die die, const char *prefix, int depth)
{
  struct sym_state *s = w->s;
  struct cu_info *cu = w->cu;
  Dwarf_Half tag;
  Dwarf_Error err = NULL;
  Dwarf_Off off;
  if (s->oom || dwarf_tag(die, &tag, &err) != DW_DLV_OK || dwarf_dieoffset(die, &off, &err) != DW_DLV_OK) {
    drop_err(cu->dbg, &err);
    return;
  }
  switch (tag) {
  case DW_TAG_namespace:
  case DW_TAG_structure_type:
  case DW_TAG_class_type:
  case DW_TAG_union_type:
  case DW_TAG_enumeration_type: {
    if (depth > 0 && tag == DW_TAG_enumeration_type)
      return;  /* no member functions; classes local to functions (lambdas) declare the ones code refers to */
    char *name = attr_string(cu, die, DW_AT_name);
    char *q = join_name(prefix, name ? name : (tag == DW_TAG_namespace ? "(anonymous namespace)" : NULL));
    if (q || name == NULL)
      walk_children(w, die, q ? q : prefix, depth);
    free(q);
    return;
  }
  case DW_TAG_subprogram: {
    if (GROW(s, decls, ndecls, capdecls))
      return;
    struct decl *d = &s->decls[s->ndecls++];
    memset(d, 0, sizeof *d);
    d->off = off;
    char *name = attr_string(cu, die, DW_AT_name);
    d->qname = name ? own_str(s, join_name(prefix, name)) : NULL;
    char *link = attr_string(cu, die, DW_AT_linkage_name);
    if (link == NULL)
      link = attr_string(cu, die, DW_AT_MIPS_linkage_name);
    d->linkage = copy_str(s, link);
    uint64_t v;
    if (attr_udata(cu, die, DW_AT_decl_line, &v) == 0)
      d->decl_line = (int)v;
    if (attr_ref(cu, die, DW_AT_specification, &d->ref) != 0)
      attr_ref(cu, die, DW_AT_abstract_origin, &d->ref);
    uint32_t fi;
    if (new_fn(s, off, 0, &fi))
      return;
    uint32_t saved = w->cur_fn;
    size_t first = s->ninl;
    w->cur_fn = fi;
    walk_children(w, die, prefix, depth + 1);
    w->cur_fn = saved;
    struct phys_ctx pc = {s, fi, (uint32_t)first, (uint32_t)(s->ninl - first)};
    die_ranges(cu, die, add_phys_range, &pc);
    return;
  }
  case DW_TAG_inlined_subroutine: {
    uint64_t origin = 0, cf = 0, cl = 0;
    attr_ref(cu, die, DW_AT_abstract_origin, &origin);
    attr_udata(cu, die, DW_AT_call_file, &cf);
    attr_udata(cu, die, DW_AT_call_line, &cl);
    uint32_t fi;
    if (new_fn(s, 0, origin, &fi))
      return;
    w->fn_idx = fi;
    w->depth = depth;
    w->call_file = w->files_owned ? (cu_file(cu, cf) ? w->files_owned[cu->version >= 5 ? cf : cf - 1] : NULL) : NULL;
    w->call_line = (int)cl;
    die_ranges(cu, die, add_inl_range, w);
    walk_children(w, die, prefix, depth + 1);
    return;
  }
  case DW_TAG_lexical_block:
  case DW_TAG_compile_unit:
  case DW_TAG_partial_unit:
    walk_children(w, die, prefix, depth);
    return;
  default:
    return;
  }
}

static int line_cmp(const void *a, const void *b)
{
  const struct line_row *x = a, *y = b;
  if (x->addr != y->addr)
    return x->addr < y->addr ? -1 : 1;
  if (x->end != y->end)
    return x->end ? -1 : 1;  /* a sequence's end sorts before the next one's start at the same address */
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void read_lines(struct sym_state *s, struct cu_info *cu, Dwarf_Die cu_die, const char **files)
{
  Dwarf_Unsigned version;
  Dwarf_Small count;
  Dwarf_Line_Context ctx;
  Dwarf_Error err = NULL;
  if (dwarf_srclines_b(cu_die, &version, &count, &ctx, &err) != DW_DLV_OK) {
    drop_err(cu->dbg, &err);
    return;
  }
  Dwarf_Line *lines;
  Dwarf_Signed n;
  size_t first_row = s->nlines;
  if (dwarf_srclines_from_linecontext(ctx, &lines, &n, &err) == DW_DLV_OK) {
    for (Dwarf_Signed i = 0; i < n; i++) {
      Dwarf_Addr addr;
      Dwarf_Unsigned lineno = 0, fileno = 0;
      Dwarf_Bool end = 0, stmt = 1;
      if (dwarf_lineaddr(lines[i], &addr, &err) != DW_DLV_OK) {
        drop_err(cu->dbg, &err);
        continue;
      }
      dwarf_lineno(lines[i], &lineno, &err);
      drop_err(cu->dbg, &err);
      dwarf_line_srcfileno(lines[i], &fileno, &err);
      drop_err(cu->dbg, &err);
      dwarf_lineendsequence(lines[i], &end, &err);
      drop_err(cu->dbg, &err);
      dwarf_linebeginstatement(lines[i], &stmt, &err);
      drop_err(cu->dbg, &err);
      /* Rows just before their sequence's end at the same address cover no bytes; kept, they would sort
       * after the end row and claim the addresses up to the next sequence. */
      while (end && s->nlines > first_row && !s->lines[s->nlines - 1].end && s->lines[s->nlines - 1].addr == addr)
        s->nlines--;
      if (GROW(s, lines, nlines, caplines))
        break;
      int64_t fi = version >= 5 ? (int64_t)fileno : (int64_t)fileno - 1;
      const char *file = fi >= 0 && fi < cu->nfiles ? files[fi] : NULL;
      s->lines[s->nlines] = (struct line_row){addr, file, (uint32_t)s->nlines, (int)lineno, (uint8_t)!!end,
                                              (uint8_t)!!stmt};
      s->nlines++;
    }
  } else {
    drop_err(cu->dbg, &err);
  }
  dwarf_srclines_dealloc_b(ctx);
}

static int decl_cmp(const void *a, const void *b)
{
  const struct decl *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

static const struct decl *find_decl(const struct sym_state *s, uint64_t off)
{
  size_t lo = 0, hi = s->ndecls;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (s->decls[mid].off < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < s->ndecls && s->decls[lo].off == off ? &s->decls[lo] : NULL;
}

/* Resolves every function's name through DW_AT_specification / DW_AT_abstract_origin chains. */
static void resolve_names(struct sym_state *s, int rust)
{
  for (size_t i = 0; i < s->nfns; i++) {
    struct fn *f = &s->fns[i];
    const char *qname = NULL, *linkage = NULL;
    int decl_line = 0;
    uint64_t off = f->self_off ? f->self_off : f->origin_off;
    for (int hop = 0; off && hop < 8; hop++) {
      const struct decl *d = find_decl(s, off);
      if (d == NULL)
        break;
      if (!qname)
        qname = d->qname;
      if (!linkage)
        linkage = d->linkage;
      if (!decl_line)
        decl_line = d->decl_line;
      off = d->ref;
    }
    f->linkage = linkage;
    f->decl_line = decl_line;
    f->name = qname;
    if (linkage && !rust) {
      char *dm = col_demangle(linkage);
      if (dm)
        f->name = own_str(s, dm);
    }
    if (f->name == NULL)
      f->name = linkage;
  }
}

static int phys_cmp(const void *a, const void *b)
{
  const struct phys *x = a, *y = b;
  if (x->lo != y->lo)
    return x->lo < y->lo ? -1 : 1;
  return x->hi < y->hi ? -1 : x->hi > y->hi;
}

static void load_dwarf(struct sym_state *s, struct col_module *m)
{
  const char *path = col_module_debug_path(m);
  if (path == NULL)
    path = col_module_path(m);
  if (!col_module_has_debug_info(m))
    return;
  const char *why;
  if (dwarf_screen(m, &why)) {
    LOG_WARN("%s: %s; its functions are named from the symbol table", path, why);
    return;
  }
  Dwarf_Debug dbg = NULL;
  Dwarf_Error err = NULL;
  if (dwarf_init_path(path, NULL, 0, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &dbg, NULL, 0, NULL, &err) !=
      DW_DLV_OK) {
    LOG_WARN("%s: cannot read DWARF", path);
    drop_err(dbg, &err);
    return;
  }
  struct cu_info cu;
  memset(&cu, 0, sizeof cu);
  cu.dbg = dbg;
  cu.m = m;
  col_module_section(m, ".debug_ranges", 1, &cu.ranges);
  col_module_section(m, ".debug_rnglists", 1, &cu.rnglists);
  int rust = 0;
  for (;;) {
    Dwarf_Unsigned hlen, typeoff, next;
    Dwarf_Half version, addr_size, len_size, ext_size, cu_type;
    Dwarf_Off abbrev;
    Dwarf_Sig8 sig;
    int rc = dwarf_next_cu_header_d(dbg, 1, &hlen, &version, &abbrev, &addr_size, &len_size, &ext_size, &sig,
                                    &typeoff, &next, &cu_type, &err);
    if (rc != DW_DLV_OK) {
      drop_err(dbg, &err);
      break;
    }
    Dwarf_Die cu_die = NULL;
    if (dwarf_siblingof_b(dbg, NULL, 1, &cu_die, &err) != DW_DLV_OK) {
      drop_err(dbg, &err);
      continue;
    }
    cu.version = version;
    uint64_t lang = 0;
    attr_udata(&cu, cu_die, DW_AT_language, &lang);
    cu.lang = (int)lang;
    if (lang == DW_LANG_Rust)
      rust = 1;
    Dwarf_Addr base = 0;
    if (dwarf_lowpc(cu_die, &base, &err) != DW_DLV_OK)
      drop_err(dbg, &err);
    cu.base = base;
    cu.files = NULL;
    cu.nfiles = 0;
    if (dwarf_srcfiles(cu_die, &cu.files, &cu.nfiles, &err) != DW_DLV_OK) {
      drop_err(dbg, &err);
      cu.files = NULL;
      cu.nfiles = 0;
    }
    const char **files = cu.nfiles > 0 ? calloc((size_t)cu.nfiles, sizeof *files) : NULL;
    for (Dwarf_Signed i = 0; files && i < cu.nfiles; i++)
      files[i] = copy_str(s, cu.files[i]);
    struct walk w = {s, &cu, files, 0, 0, 0, NULL, 0};
    walk_children(&w, cu_die, NULL, 0);
    read_lines(s, &cu, cu_die, files);
    for (Dwarf_Signed i = 0; i < cu.nfiles; i++)
      dwarf_dealloc(dbg, cu.files[i], DW_DLA_STRING);
    if (cu.files)
      dwarf_dealloc(dbg, cu.files, DW_DLA_LIST);
    free(files);
    dwarf_dealloc_die(cu_die);
  }
  if (s->ndecls > 1)
    qsort(s->decls, s->ndecls, sizeof *s->decls, decl_cmp);
  resolve_names(s, rust);
  if (s->nphys > 1)
    qsort(s->phys, s->nphys, sizeof *s->phys, phys_cmp);
  if (s->nlines > 1)
    qsort(s->lines, s->nlines, sizeof *s->lines, line_cmp);
  /* decls were only needed to resolve names */
  free(s->decls);
  s->decls = NULL;
  s->ndecls = s->capdecls = 0;
  dwarf_finish(dbg, &err);
}

static struct sym_state *get_state(struct col_module *m)
{
  struct sym_state *s = col_module_slot_get(m, COL_SLOT_SYM);
  if (s)
    return s;
  s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->module_path = col_module_path(m);
  load_dwarf(s, m);
  if (s->oom) {
    state_free(s);
    return NULL;
  }
  col_module_slot_set(m, COL_SLOT_SYM, s, state_free);
  return s;
}

int sym_prepare(struct col_module *m)
{
  return get_state(m) ? 0 : -ENOMEM;
}

/* ---- queries ---- */

static int find_line(const struct sym_state *s, uint64_t pc, const char **file, int *line)
{
  size_t lo = 0, hi = s->nlines;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (s->lines[mid].addr <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return -1;
  size_t i = lo - 1;
  if (s->lines[i].end)
    return -1;
  /* Like gdb: a non-statement row defers to a statement row at the same address. */
  if (!s->lines[i].stmt) {
    size_t j = i;
    while (j > 0 && s->lines[j - 1].addr == s->lines[j].addr && !s->lines[j].stmt && !s->lines[j - 1].end)
      j--;
    if (s->lines[j].stmt)
      i = j;
  }
  *file = s->lines[i].file;
  *line = s->lines[i].line;
  return 0;
}

static const struct phys *find_phys(const struct sym_state *s, uint64_t pc)
{
  size_t lo = 0, hi = s->nphys;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (s->phys[mid].lo <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* The innermost range wins when ranges nest (nested functions); look back a few entries. */
  for (size_t i = lo; i > 0 && lo - i < 16; i--)
    if (pc < s->phys[i - 1].hi)
      return &s->phys[i - 1];
  return NULL;
}

#define MAX_CHAIN 64

/* Computes the chain for pc into out (innermost first); returns its length. */
static int compute(struct sym_state *s, struct col_module *m, uint64_t pc, struct sym_frame *out)
{
  const struct phys *p = find_phys(s, pc);
  const char *file = NULL;
  int line = 0;
  find_line(s, pc, &file, &line);
  if (p == NULL) {
    const char *name, *dem;
    if (col_module_symbol_at(m, pc, &name, &dem, NULL) != 0)
      return 0;
    out[0] = (struct sym_frame){.function = dem ? dem : name, .linkage_name = name, .file = file, .line = line,
                                .module = s->module_path};
    return 1;
  }
  /* The inlined ranges containing pc, one per depth (they nest). */
  const struct inl *chain[MAX_CHAIN];
  int nchain = 0;
  for (uint32_t i = p->inl_first; i < p->inl_first + p->inl_count; i++) {
    const struct inl *e = &s->inl[i];
    if (pc < e->lo || pc >= e->hi)
      continue;
    int placed = 0;
    for (int k = 0; k < nchain; k++) {
      if (chain[k]->depth == e->depth) {
        chain[k] = e;
        placed = 1;
        break;
      }
    }
    if (!placed && nchain < MAX_CHAIN)
      chain[nchain++] = e;
  }
  /* Order outermost (smallest depth) first, then emit innermost first. */
  for (int a = 1; a < nchain; a++)
    for (int b = a; b > 0 && chain[b - 1]->depth > chain[b]->depth; b--) {
      const struct inl *t = chain[b];
      chain[b] = chain[b - 1];
      chain[b - 1] = t;
    }
  int n = 0;
  for (int k = nchain - 1; k >= 0; k--) {
    const struct fn *f = &s->fns[chain[k]->fn];
    out[n++] = (struct sym_frame){.function = f->name, .linkage_name = f->linkage, .file = file, .line = line,
                                  .function_line = f->decl_line, .module = s->module_path};
    file = chain[k]->call_file;
    line = chain[k]->call_line;
  }
  const struct fn *f = &s->fns[p->fn];
  out[n++] = (struct sym_frame){.function = f->name, .linkage_name = f->linkage, .file = file, .line = line,
                                  .function_line = f->decl_line, .module = s->module_path};
  return n;
}

static uint64_t hash64(uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static struct cache_slot *cache_find(struct sym_state *s, uint64_t key, int *found)
{
  if (s->cache_count * 2 >= s->cache_cap) {
    size_t ncap = s->cache_cap ? s->cache_cap * 2 : 1024;
    struct cache_slot *nc = calloc(ncap, sizeof *nc);
    if (nc == NULL)
      return NULL;
    for (size_t i = 0; i < s->cache_cap; i++) {
      if (!s->cache[i].used)
        continue;
      size_t j = hash64(s->cache[i].key) & (ncap - 1);
      while (nc[j].used)
        j = (j + 1) & (ncap - 1);
      nc[j] = s->cache[i];
    }
    free(s->cache);
    s->cache = nc;
    s->cache_cap = ncap;
  }
  size_t j = hash64(key) & (s->cache_cap - 1);
  while (s->cache[j].used && s->cache[j].key != key)
    j = (j + 1) & (s->cache_cap - 1);
  *found = s->cache[j].used;
  return &s->cache[j];
}

int sym_lookup(struct col_module *m, uint64_t rel_pc, struct sym_frame *frames, int max, int *n)
{
  *n = 0;
  struct sym_state *s = get_state(m);
  if (s == NULL)
    return -ENOMEM;
  int found;
  struct cache_slot *slot = cache_find(s, rel_pc, &found);
  if (slot == NULL)
    return -ENOMEM;
  if (!found) {
    struct sym_frame tmp[MAX_CHAIN + 1];
    int k = compute(s, m, rel_pc, tmp);
    while (s->nframes + (size_t)k > s->capframes)
      if (grow_array((void **)&s->frames, &s->capframes, sizeof *s->frames, &s->oom))
        return -ENOMEM;
    if (k > 0)
      memcpy(s->frames + s->nframes, tmp, (size_t)k * sizeof *tmp);
    slot->key = rel_pc;
    slot->first = (uint32_t)s->nframes;
    slot->count = (uint16_t)k;
    slot->used = 1;
    s->nframes += (size_t)k;
    s->cache_count++;
  }
  int k = slot->count < max ? slot->count : max;
  if (k > 0)
    memcpy(frames, s->frames + slot->first, (size_t)k * sizeof *frames);
  *n = k;
  return 0;
}
