/* Screens a module's DWARF for the damage that Debian 12's libdwarf (20210528) mishandles, so that a crafted
 * binary fetched from a board cannot corrupt the collector's memory: such a module is named from its
 * symbol table instead. Each check was found by fuzzing (tests/fuzz/regress/elf-module). */
#include "dwarf-screen.h"

#include <stddef.h>
#include <string.h>

#include "buf.h"

/* A bounded little-endian reader over one section. */
struct rd {
  const uint8_t *p, *end;
  int bad;
};

static uint64_t rd_n(struct rd *r, size_t n)
{
  uint64_t v = 0;
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return v;
}

static uint64_t rd_uleb(struct rd *r)
{
  uint64_t v = 0;
  if (!r->bad && rs_uleb(&r->p, r->end, &v))
    r->bad = 1;
  return v;
}

static void rd_skip_string(struct rd *r)
{
  const uint8_t *nul = r->bad ? NULL : memchr(r->p, 0, (size_t)(r->end - r->p));
  if (!nul)
    r->bad = 1;
  else
    r->p = nul + 1;
}

/* libdwarf 20210528 frees a .debug_rnglists context twice when a unit header is damaged (its error path
 * misses a return; fixed upstream in 0.3.4), and reads those headers as soon as it loads .debug_info:
 * every header must pass the checks libdwarf makes (a 32-bit unit length within the section, version 5,
 * address size 2, 4 or 8). */
static int rnglists_sane(const struct col_section *sec)
{
  const uint8_t *p = sec->data;
  for (size_t off = 0; off < sec->size;) {
    uint32_t len;
    uint16_t version;
    if (sec->size - off < 12)
      return 0;
    memcpy(&len, p + off, 4);
    memcpy(&version, p + off + 4, 2);
    uint8_t asize = p[off + 6];
    if (len >= 0xfffffff0u || len > sec->size - off - 4 || version != 5 || (asize != 2 && asize != 4 && asize != 8))
      return 0;
    off += 4 + (size_t)len;
  }
  return 1;
}

/* Skips one attribute value of a DWARF 5 line-table entry; returns its value for the constant forms. */
static uint64_t skip_form(struct rd *r, uint64_t form, size_t offset_size)
{
  switch (form) {
  case 0x08: /* DW_FORM_string */
    rd_skip_string(r);
    return 0;
  case 0x0e: /* DW_FORM_strp */
  case 0x1f: /* DW_FORM_line_strp */
  case 0x17: /* DW_FORM_sec_offset */
    return rd_n(r, offset_size);
  case 0x0b: return rd_n(r, 1); /* data1 */
  case 0x05: return rd_n(r, 2); /* data2 */
  case 0x06: return rd_n(r, 4); /* data4 */
  case 0x07: return rd_n(r, 8); /* data8 */
  case 0x1e: /* data16 */
    rd_n(r, 8);
    rd_n(r, 8);
    return 0;
  case 0x0f: return rd_uleb(r); /* udata */
  case 0x09: { /* block */
    uint64_t n = rd_uleb(r);
    if (!r->bad && n > (uint64_t)(r->end - r->p))
      r->bad = 1;
    else if (!r->bad)
      r->p += n;
    return 0;
  }
  default:
    r->bad = 1; /* a form a line table has no business using */
    return 0;
  }
}

/* One DWARF 5 entry table (directories or files). With check_dirs, every DW_LNCT_directory_index must be
 * below dirs. Returns the number of entries, or -1 when the table is damaged. */
static long entry_table(struct rd *r, size_t offset_size, int check_dirs, uint64_t dirs)
{
  uint64_t types[32], forms[32];
  unsigned nformats = (unsigned)rd_n(r, 1);
  if (nformats > 32)
    return -1;
  for (unsigned i = 0; i < nformats; i++) {
    types[i] = rd_uleb(r);
    forms[i] = rd_uleb(r);
  }
  uint64_t count = rd_uleb(r);
  if (r->bad || count > (uint64_t)(r->end - r->p))
    return -1;
  for (uint64_t e = 0; e < count && !r->bad; e++)
    for (unsigned i = 0; i < nformats; i++) {
      uint64_t v = skip_form(r, forms[i], offset_size);
      if (types[i] == 2 /* DW_LNCT_directory_index */ && check_dirs && v >= dirs)
        return -1;
    }
  return r->bad ? -1 : (long)count;
}

/* libdwarf 20210528's dwarf_srcfiles follows a wild pointer when a DWARF 5 file entry names a directory
 * the table does not have: every line-table header must parse, and every directory index be in range. */
static int line_tables_sane(const struct col_section *sec)
{
  struct rd all = {sec->data, sec->data + sec->size, 0};
  while (all.p < all.end) {
    uint64_t len = rd_n(&all, 4);
    size_t offset_size = 4;
    if (len == 0xffffffffu) {
      len = rd_n(&all, 8);
      offset_size = 8;
    }
    if (all.bad || len > (uint64_t)(all.end - all.p))
      return 0;
    struct rd r = {all.p, all.p + len, 0};
    all.p += len;
    uint64_t version = rd_n(&r, 2);
    if (version < 5)
      continue; /* the older layouts index directories the same way but libdwarf checks them */
    if (version > 5)
      return 0;
    rd_n(&r, 2);                      /* address size, segment selector size */
    rd_n(&r, offset_size);            /* header length */
    rd_n(&r, 5);                      /* min inst length, max ops, default is_stmt, line base, line range */
    uint64_t opcode_base = rd_n(&r, 1);
    if (opcode_base > 0 && !r.bad) {
      if (opcode_base - 1 > (uint64_t)(r.end - r.p))
        return 0;
      r.p += opcode_base - 1;
    }
    long dirs = entry_table(&r, offset_size, 0, 0);
    if (dirs < 0 || entry_table(&r, offset_size, 1, (uint64_t)dirs) < 0)
      return 0;
  }
  return !all.bad;
}

int dwarf_screen(const struct col_module *m, const char **why)
{
  struct col_section sec;
  if (col_module_section(m, ".debug_rnglists", 1, &sec) == 0 && !rnglists_sane(&sec)) {
    *why = "damaged .debug_rnglists";
    return -1;
  }
  if (col_module_section(m, ".debug_line", 1, &sec) == 0 && !line_tables_sane(&sec)) {
    *why = "damaged .debug_line header";
    return -1;
  }
  return 0;
}
