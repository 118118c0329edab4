/* Unit tests of the session's pure parsers: stop replies, svr4 library lists and ELF build-id notes. */
#include <elf.h>
#include <string.h>

#include "elf-buildid.h"
#include "errors.h"
#include "rsp-client.h"
#include "target.h"
#include "test.h"

static int parse(const char *s, struct rspc_stop *st) { return rspc_parse_stop(s, strlen(s), st); }

TEST(stop_replies)
{
  struct rspc_stop st;
  /* As gdbserver sends it, with run-length encoding already expanded by the codec. */
  ASSERT_EQ(parse("T0506:0000000000000000;07:10e5ffffff7f0000;10:704bfef7ff7f0000;thread:p1ce9.1cea;core:1;", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_SIGNAL);
  ASSERT_EQ(st.signal, 5);
  ASSERT_EQ(st.pid, 0x1ce9);
  ASSERT_EQ(st.tid, 0x1cea);
  ASSERT_EQ(st.nregs, 3);
  uint64_t v;
  ASSERT_TRUE(rspc_stop_reg(&st, 0x10, &v));
  ASSERT_U64_EQ(v, 0x7ffff7fe4b70ULL);
  ASSERT_TRUE(rspc_stop_reg(&st, 7, &v));
  ASSERT_U64_EQ(v, 0x7fffffffe510ULL);
  ASSERT_TRUE(!rspc_stop_reg(&st, 1, &v));
  ASSERT_EQ(st.swbreak, 0);
  ASSERT_EQ(parse("T05swbreak:;thread:a3;", &st), 0);
  ASSERT_EQ(st.swbreak, 1);
  ASSERT_EQ(st.pid, 0);
  ASSERT_EQ(st.tid, 0xa3);
  /* Registers wider than 8 bytes are skipped, not truncated. */
  ASSERT_EQ(parse("T0b20:000102030405060708090a0b0c0d0e0f;thread:p1.1;", &st), 0);
  ASSERT_EQ(st.nregs, 0);
  ASSERT_EQ(st.signal, 11);
  ASSERT_EQ(parse("S02", &st), 0);
  ASSERT_EQ(st.signal, 2);
  ASSERT_EQ(parse("W7;process:b88", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_EXITED);
  ASSERT_EQ(st.exit_code, 7);
  ASSERT_EQ(st.pid, 0xb88);
  ASSERT_EQ(parse("W00", &st), 0);
  ASSERT_EQ(st.exit_code, 0);
  ASSERT_EQ(parse("X09;process:10", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_TERMINATED);
  ASSERT_EQ(st.signal, 9);
  ASSERT_EQ(st.pid, 16);
  ASSERT_EQ(parse("OK", &st), RS_E_PROTO);
  ASSERT_EQ(parse("E01", &st), RS_E_PROTO);
  ASSERT_EQ(parse("T", &st), RS_E_PROTO);
  ASSERT_EQ(parse("Tzz", &st), RS_E_PROTO);
  ASSERT_EQ(parse("T05thread:pzz;", &st), RS_E_PROTO);
}

TEST(svr4_library_list)
{
  static const char xml[] =
      "<library-list-svr4 version=\"1.0\" main-lm=\"0x7ffff7ffe2e0\">"
      "<library name=\"linux-vdso.so.1\" lm=\"0x7ffff7fc5000\" l_addr=\"0x7ffff7fc5000\" l_ld=\"0x7ffff7fc53e0\" "
      "lmid=\"0x0\"/>"
      "<library name=\"/lib/a&amp;b &lt;x&gt;.so\" lm=\"0x10\" l_addr=\"0x20\" l_ld=\"0x30\"/>"
      "<library name='/lib/x86_64-linux-gnu/libc.so.6' lm='0x7ffff7fbf6a0' l_addr='0x7ffff7dc6000' "
      "l_ld='0x7ffff7fa4bc0'/>"
      "</library-list-svr4>";
  struct target_lib *libs;
  size_t n;
  uint64_t main_lm;
  ASSERT_EQ(target_parse_svr4(xml, sizeof xml - 1, &libs, &n, &main_lm), 0);
  ASSERT_EQ(n, 3);
  ASSERT_U64_EQ(main_lm, 0x7ffff7ffe2e0ULL);
  ASSERT_STR_EQ(libs[0].name, "linux-vdso.so.1");
  ASSERT_STR_EQ(libs[1].name, "/lib/a&b <x>.so");
  ASSERT_U64_EQ(libs[1].lm, 0x10);
  ASSERT_U64_EQ(libs[1].l_addr, 0x20);
  ASSERT_U64_EQ(libs[1].l_ld, 0x30);
  ASSERT_STR_EQ(libs[2].name, "/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_U64_EQ(libs[2].l_addr, 0x7ffff7dc6000ULL);
  target_libs_free(libs, n);
  /* An empty list (before the dynamic linker has run). */
  static const char empty[] = "<library-list-svr4 version=\"1.0\"/>";
  ASSERT_EQ(target_parse_svr4(empty, sizeof empty - 1, &libs, &n, &main_lm), 0);
  ASSERT_EQ(n, 0);
  target_libs_free(libs, n);
  static const char broken[] = "<library-list-svr4><library name=\"x\" lm=\"0x1\"/></library-list-svr4>";
  ASSERT_EQ(target_parse_svr4(broken, sizeof broken - 1, &libs, &n, &main_lm), RS_E_FORMAT);
  ASSERT_EQ(target_parse_svr4("<html/>", 7, &libs, &n, &main_lm), RS_E_FORMAT);
}

/* Builds a minimal 64-bit little-endian ELF image with one PT_NOTE segment holding the given notes. */
static size_t make_elf(uint8_t *img, const uint8_t *notes, size_t nlen, uint64_t align)
{
  memset(img, 0, 512);
  Elf64_Ehdr *e = (Elf64_Ehdr *)img;
  memcpy(e->e_ident, ELFMAG, SELFMAG);
  e->e_ident[EI_CLASS] = ELFCLASS64;
  e->e_ident[EI_DATA] = ELFDATA2LSB;
  e->e_type = ET_DYN;
  e->e_machine = EM_AARCH64;
  e->e_phoff = sizeof *e;
  e->e_phentsize = sizeof(Elf64_Phdr);
  e->e_phnum = 1;
  Elf64_Phdr *p = (Elf64_Phdr *)(img + sizeof *e);
  p->p_type = PT_NOTE;
  p->p_offset = 256;
  p->p_filesz = nlen;
  p->p_align = align;
  memcpy(img + 256, notes, nlen);
  return 256 + nlen;
}

TEST(build_id_notes)
{
  /* A GNU property note (8-byte aligned, as in PT_NOTE segments with p_align 8) before the build-id. */
  uint8_t notes[96] = {0};
  uint32_t *w = (uint32_t *)notes;
  w[0] = 4;  /* namesz */
  w[1] = 16; /* descsz */
  w[2] = 5;  /* NT_GNU_PROPERTY_TYPE_0 */
  memcpy(notes + 12, "GNU", 4);
  /* desc at 16 (8-aligned), 16 bytes; the next note starts at 32 */
  w = (uint32_t *)(notes + 32);
  w[0] = 4;
  w[1] = 20;
  w[2] = NT_GNU_BUILD_ID;
  memcpy(notes + 44, "GNU", 4);
  for (int i = 0; i < 20; i++)
    notes[48 + i] = (uint8_t)(0xa0 + i);
  uint8_t img[512], id[ELF_BUILD_ID_MAX];
  size_t len = make_elf(img, notes, 72, 8), idlen = 0;
  ASSERT_EQ(elf_build_id_mem(img, len, id, sizeof id, &idlen), 0);
  ASSERT_EQ(idlen, 20);
  ASSERT_EQ(id[0], 0xa0);
  ASSERT_EQ(id[19], 0xb3);
  char hex[2 * ELF_BUILD_ID_MAX + 1];
  elf_build_id_hex(id, idlen, hex);
  ASSERT_STR_EQ(hex, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3");
  /* Only the build-id, 4-byte alignment. */
  len = make_elf(img, notes + 32, 40, 4);
  ASSERT_EQ(elf_build_id_mem(img, len, id, sizeof id, &idlen), 0);
  ASSERT_EQ(idlen, 20);
  /* No build-id at all, and a note whose sizes run past the segment. */
  len = make_elf(img, notes, 32, 8);
  ASSERT_EQ(elf_build_id_mem(img, len, id, sizeof id, &idlen), RS_E_NOT_FOUND);
  uint8_t bad[40];
  memcpy(bad, notes + 32, 40);
  ((uint32_t *)bad)[1] = 4000;
  len = make_elf(img, bad, 40, 4);
  ASSERT_EQ(elf_build_id_mem(img, len, id, sizeof id, &idlen), RS_E_NOT_FOUND);
  /* A prefix too short for the notes reads as "not found", never past the buffer. */
  len = make_elf(img, notes + 32, 40, 4);
  ASSERT_EQ(elf_build_id_mem(img, 270, id, sizeof id, &idlen), RS_E_NOT_FOUND);
}
