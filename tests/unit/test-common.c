/* Unit tests of the common helpers: hex, bounded buffers, error messages, command-line parsing, arch tables. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "buf.h"
#include "cli.h"
#include "errors.h"
#include "hex.h"
#include "test.h"

TEST(hex_round_trip_and_errors)
{
  uint8_t in[] = {0x00, 0x7f, 0x80, 0xff, 0x12};
  char out[11] = {0};
  hex_encode(out, in, sizeof in);
  ASSERT_STR_EQ(out, "007f80ff12");
  uint8_t back[5];
  ASSERT_EQ(hex_decode(back, "007F80fF12", 5), 0);
  ASSERT_MEM_EQ(back, in, 5);
  ASSERT_EQ(hex_decode(back, "0g", 1), RS_E_BAD_HEX);
}

TEST(hex_parse_numbers)
{
  const char *p = "7ffff7dd1000,2d8";
  uint64_t addr, len;
  ASSERT_EQ(hex_parse_u64_until(&p, &addr, ','), 0);
  ASSERT_EQ(hex_parse_u64(&p, &len), 0);
  ASSERT_U64_EQ(addr, 0x7ffff7dd1000ULL);
  ASSERT_EQ(len, 0x2d8);
  ASSERT_EQ(*p, 0);
  const char *overflow = "11112222333344445";
  ASSERT_EQ(hex_parse_u64(&overflow, &addr), RS_E_BAD_HEX);
  const char *empty = ",5";
  ASSERT_EQ(hex_parse_u64(&empty, &addr), RS_E_BAD_HEX);
  const char *wrong_sep = "12;5";
  ASSERT_EQ(hex_parse_u64_until(&wrong_sep, &addr, ','), RS_E_BAD_HEX);
}

TEST(hex_little_endian_registers)
{
  /* The stop reply "07:d0e6ffffff7f0000" carries rsp = 0x7fffffffe6d0 in target byte order. */
  uint64_t v;
  ASSERT_EQ(hex_decode_le("d0e6ffffff7f0000", 8, &v), 0);
  ASSERT_U64_EQ(v, 0x7fffffffe6d0ULL);
  char out[17] = {0};
  hex_encode_le(out, v, 8);
  ASSERT_STR_EQ(out, "d0e6ffffff7f0000");
}

TEST(buf_respects_limit)
{
  struct rs_buf b;
  rs_buf_init(&b, 10);
  ASSERT_EQ(rs_buf_puts(&b, "0123456789"), 0);
  ASSERT_EQ(rs_buf_putc(&b, 'x'), RS_E_LIMIT);
  ASSERT_EQ(b.len, 10);
  ASSERT_STR_EQ((char *)b.data, "0123456789");
  rs_buf_consume(&b, 4);
  ASSERT_STR_EQ((char *)b.data, "456789");
  ASSERT_EQ(rs_buf_printf(&b, "%d", 1234), 0);
  ASSERT_EQ(rs_buf_printf(&b, "%d", 5), RS_E_LIMIT);
  ASSERT_TRUE(b.cap <= 11);
  rs_buf_free(&b);
}

TEST(grow_doubles_keeps_contents_and_refuses_overflow)
{
  size_t cap = 0;
  uint32_t *a = rs_grow(NULL, &cap, 1, sizeof *a, 4);
  ASSERT_TRUE(a != NULL);
  ASSERT_EQ(cap, 4);
  for (uint32_t i = 0; i < 4; i++)
    a[i] = i * 7;
  ASSERT_TRUE(rs_grow(a, &cap, 4, sizeof *a, 4) == a); /* room already: unchanged */
  uint32_t *b = rs_grow(a, &cap, 9, sizeof *b, 4);
  ASSERT_TRUE(b != NULL);
  ASSERT_EQ(cap, 16); /* 4 -> 8 -> 16 */
  for (uint32_t i = 0; i < 4; i++)
    ASSERT_EQ(b[i], i * 7);
  size_t before = cap;
  ASSERT_TRUE(rs_grow(b, &cap, SIZE_MAX / 2, sizeof *b, 4) == NULL); /* would overflow size_t */
  ASSERT_EQ(cap, before);
  free(b);
}

TEST(error_messages_cover_both_ranges)
{
  ASSERT_STR_EQ(rs_strerror(RS_E_CHECKSUM), "packet checksum mismatch");
  ASSERT_STR_EQ(rs_strerror(RS_E_LIMIT), "a configured limit was reached");
  ASSERT_STR_EQ(rs_strerror(-ENOENT), strerror(ENOENT));
  ASSERT_STR_EQ(rs_strerror(0), "success");
  ASSERT_STR_EQ(rs_strerror(12345678), "unknown error");
}

TEST(cli_host_port)
{
  char host[64];
  uint16_t port;
  ASSERT_EQ(cli_parse_host_port("board:9000", host, sizeof host, &port), 0);
  ASSERT_STR_EQ(host, "board");
  ASSERT_EQ(port, 9000);
  ASSERT_EQ(cli_parse_host_port("[::1]:22", host, sizeof host, &port), 0);
  ASSERT_STR_EQ(host, "::1");
  ASSERT_EQ(cli_parse_host_port(":1234", host, sizeof host, &port), 0);
  ASSERT_STR_EQ(host, "0.0.0.0");
  ASSERT_EQ(cli_parse_host_port("board", host, sizeof host, &port), RS_E_BAD_ARG);
  ASSERT_EQ(cli_parse_host_port("board:70000", host, sizeof host, &port), RS_E_BAD_ARG);
  ASSERT_EQ(cli_parse_host_port("board:", host, sizeof host, &port), RS_E_BAD_ARG);
}

TEST(cli_durations_and_sizes)
{
  uint64_t v;
  ASSERT_EQ(cli_parse_duration_ms("30s", &v), 0);
  ASSERT_EQ(v, 30000);
  ASSERT_EQ(cli_parse_duration_ms("250ms", &v), 0);
  ASSERT_EQ(v, 250);
  ASSERT_EQ(cli_parse_duration_ms("1.5m", &v), 0);
  ASSERT_EQ(v, 90000);
  ASSERT_EQ(cli_parse_duration_ms("10", &v), 0);
  ASSERT_EQ(v, 10000);
  ASSERT_EQ(cli_parse_duration_ms("3 days", &v), RS_E_BAD_ARG);
  ASSERT_EQ(cli_parse_size("64K", &v), 0);
  ASSERT_EQ(v, 65536);
  ASSERT_EQ(cli_parse_size("10MiB", &v), 0);
  ASSERT_EQ(v, 10 << 20);
  ASSERT_EQ(cli_parse_size("-1", &v), RS_E_BAD_ARG);
  ASSERT_EQ(cli_parse_size("5X", &v), RS_E_BAD_ARG);
}

TEST(arch_x86_64_matches_gdbserver_layout)
{
  /* gdbserver's amd64 'g' packet: 16 GPRs then rip at byte 128, eflags at 136, cs at 140 ... gs at 160,
   * st0 at 164; rsp is DWARF register 7 and rip the return-address column 16. */
  const struct arch_desc *a = arch_by_elf_machine(62);
  ASSERT_TRUE(a == &arch_x86_64);
  ASSERT_EQ(arch_reg_offset(a, a->pc_reg), 128);
  ASSERT_EQ(arch_reg_offset(a, arch_reg_by_name(a, "eflags")), 136);
  ASSERT_EQ(arch_reg_offset(a, arch_reg_by_name(a, "gs")), 160);
  ASSERT_EQ(arch_reg_offset(a, arch_reg_by_name(a, "st0")), 164);
  ASSERT_EQ(arch_reg_by_dwarf(a, 7), a->sp_reg);
  ASSERT_EQ(arch_reg_by_dwarf(a, 16), a->pc_reg);
  ASSERT_STR_EQ(a->regs[arch_reg_by_dwarf(a, 3)].name, "rbx");
  ASSERT_STR_EQ(a->regs[a->arg_regs[0]].name, "rdi");
  ASSERT_STR_EQ(a->regs[a->arg_regs[3]].name, "rcx");
  ASSERT_EQ(a->bkpt[0], 0xcc);
  ASSERT_TRUE(arch_by_gdb_name("i386:x86-64") == a);
}

TEST(arch_aarch64_layout)
{
  const struct arch_desc *a = arch_by_name("aarch64");
  ASSERT_TRUE(a != NULL);
  ASSERT_TRUE(arch_by_elf_machine(183) == a);
  ASSERT_EQ(arch_reg_offset(a, a->sp_reg), 31 * 8);
  ASSERT_EQ(arch_reg_offset(a, a->pc_reg), 32 * 8);
  ASSERT_EQ(arch_reg_offset(a, arch_reg_by_name(a, "v0")), 32 * 8 + 8 + 4);
  ASSERT_EQ(arch_reg_by_dwarf(a, 30), a->lr_reg);
  ASSERT_EQ(a->bkpt_len, 4);
  ASSERT_EQ(a->bkpt[3], 0xd4);
  ASSERT_TRUE(arch_by_name("arm64") == a);
}

TEST(arch_target_xml_lists_every_register)
{
  const struct arch_desc *arches[] = {&arch_x86_64, &arch_aarch64};
  for (int k = 0; k < 2; k++) {
    struct rs_buf x;
    rs_buf_init(&x, 1 << 16);
    ASSERT_EQ(arch_target_xml(arches[k], &x), 0);
    const char *xml = (const char *)x.data;
    ASSERT_TRUE(strstr(xml, arches[k]->gdb_arch) != NULL);
    for (size_t i = 0; i < arches[k]->nregs; i++) {
      char needle[64];
      snprintf(needle, sizeof needle, "<reg name=\"%s\" bitsize=\"%u\"", arches[k]->regs[i].name,
               arches[k]->regs[i].bits);
      ASSERT_TRUE(strstr(xml, needle) != NULL);
    }
    rs_buf_free(&x);
  }
}

TEST(varint_matches_protobuf_encoding)
{
  /* Reference encodings from the protobuf encoding guide's rules: 7 bits a byte, low first, high bit = more. */
  const struct {
    uint64_t v;
    size_t n;
    uint8_t bytes[10];
  } cases[] = {
      {0, 1, {0x00}},
      {1, 1, {0x01}},
      {127, 1, {0x7f}},
      {128, 2, {0x80, 0x01}},
      {300, 2, {0xac, 0x02}},
      {16384, 3, {0x80, 0x80, 0x01}},
      {UINT64_MAX, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t out[10];
    ASSERT_EQ(rs_varint(out, cases[i].v), cases[i].n);
    ASSERT_EQ(memcmp(out, cases[i].bytes, cases[i].n), 0);
  }
}

TEST(leb128_decodes_dwarf_examples_and_stops_at_the_end)
{
  /* The DWARF standard's examples (section 7.6) and a truncated number. */
  const uint8_t u[] = {0x02, 0x7f, 0x80, 0x01, 0xe5, 0x8e, 0x26};
  const uint8_t *p = u, *end = u + sizeof u;
  uint64_t v;
  ASSERT_EQ(rs_uleb(&p, end, &v), 0);
  ASSERT_U64_EQ(v, 2);
  ASSERT_EQ(rs_uleb(&p, end, &v), 0);
  ASSERT_U64_EQ(v, 127);
  ASSERT_EQ(rs_uleb(&p, end, &v), 0);
  ASSERT_U64_EQ(v, 128);
  ASSERT_EQ(rs_uleb(&p, end, &v), 0);
  ASSERT_U64_EQ(v, 624485);
  ASSERT_TRUE(p == end);
  const uint8_t s[] = {0x02, 0x7e, 0xff, 0x00, 0x81, 0x7f, 0x80, 0x7f};
  const int64_t want[] = {2, -2, 127, -127, -128};
  p = s;
  end = s + sizeof s;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    int64_t sv;
    ASSERT_EQ(rs_sleb(&p, end, &sv), 0);
    ASSERT_EQ(sv, want[i]);
  }
  const uint8_t cut[] = {0x80, 0x80};
  p = cut;
  ASSERT_EQ(rs_uleb(&p, cut + sizeof cut, &v), -1);
}
