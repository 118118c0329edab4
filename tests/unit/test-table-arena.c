/* Unit tests of the table arena (common/table-arena.c): chunked uploads by build-id, per-process module maps,
 * the bounds, and snapshots whose modules walk with the uploaded tables. */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "table-arena.h"
#include "test.h"

/* A table of two rows for link-time [0x1000, 0x1100): a frame whose CFA is sp + 8 (the entry), then NONE. */
static size_t make_table(uint8_t *out)
{
  struct utab_row r0 = {.start = 0, .kind = UTAB_ROW_FRAME, .cfa_base = UTAB_CFA_SP, .cfa_off = 8, .ra_off = -8,
                        .fp_rule = UTAB_FP_SAME};
  struct utab_row r1 = {.start = 0x80, .kind = UTAB_ROW_NONE};
  utab_put_header(out, UTAB_MACHINE_X86_64, 2, 0x1000, 0x100);
  utab_put_row(out + UTAB_HEADER_SIZE, &r0, UTAB_MACHINE_X86_64);
  utab_put_row(out + UTAB_HEADER_SIZE + UTAB_ROW_SIZE, &r1, UTAB_MACHINE_X86_64);
  size_t len = UTAB_HEADER_SIZE + 2 * UTAB_ROW_SIZE;
  utab_seal(out, len);
  return len;
}

static int read_words(void *ctx, uint64_t addr, void *buf, size_t len)
{
  const uint64_t *stack = ctx; /* stack[0] is at address 0x7000 */
  if (addr < 0x7000 || addr + len > 0x7000 + 4 * 8)
    return -1;
  memcpy(buf, (const uint8_t *)stack + (addr - 0x7000), len);
  return 0;
}

TEST(table_arena_upload_modules_snapshot)
{
  size_t size = TARENA_DATA_START + 8192;
  uint8_t *arena = calloc(1, size);
  ASSERT_EQ(tarena_init(arena, size), 0);
  uint8_t tab[128];
  size_t len = make_table(tab);
  const uint8_t bid[4] = {0xde, 0xad, 0xbe, 0xef};
  ASSERT_EQ(tarena_put_chunk(arena, bid, 4, 8, (uint32_t)len, tab + 8, 8), RS_E_BAD_ARG); /* not the first */
  ASSERT_EQ(tarena_put_chunk(arena, bid, 4, 0, (uint32_t)len, tab, 20), 0);
  ASSERT_EQ(tarena_put_chunk(arena, bid, 4, 30, (uint32_t)len, tab + 30, 4), RS_E_BAD_ARG); /* a gap */
  ASSERT_EQ(tarena_put_chunk(arena, bid, 4, 20, (uint32_t)len, tab + 20, len - 20), 1);
  ASSERT_EQ(tarena_put_chunk(arena, bid, 4, 0, (uint32_t)len, tab, len), 1); /* again: already there */
  int state;
  ASSERT_EQ(tarena_find(arena, bid, 4, &state), 0);
  ASSERT_EQ(state, TARENA_READY);
  /* A damaged table is kept as bad and never used. */
  const uint8_t bid2[2] = {1, 2};
  tab[UTAB_HEADER_SIZE + 1] ^= 0xff;
  ASSERT_EQ(tarena_put_chunk(arena, bid2, 2, 0, (uint32_t)len, tab, len), RS_E_FORMAT);
  /* No room for a table bigger than what is left. */
  const uint8_t bid3[1] = {9};
  ASSERT_EQ(tarena_put_chunk(arena, bid3, 1, 0, 9000, tab, 10), RS_E_LIMIT);
  ASSERT_EQ(tarena_find(arena, bid3, 1, NULL), -1);

  uint32_t gen = tarena_generation(arena);
  ASSERT_EQ(tarena_add_module(arena, 100, 0x555555555000, 0x555555556000, 0x555555554000, bid, 4), 1);
  ASSERT_EQ(tarena_add_module(arena, 100, 0x7f0000000000, 0x7f0000001000, 0x7f0000000000, bid2, 2), 0);
  ASSERT_EQ(tarena_add_module(arena, 200, 0x400000, 0x401000, 0, bid, 4), 1);
  ASSERT_TRUE(tarena_generation(arena) != gen);
  ASSERT_EQ(tarena_generation(arena) & 1, 0);

  struct utab_module mods[8];
  struct utab tabs[8];
  size_t n;
  ASSERT_EQ(tarena_snapshot(arena, size, 100, mods, tabs, 8, &n), 0);
  ASSERT_EQ(n, 2);
  ASSERT_TRUE(mods[0].tab != NULL);
  ASSERT_TRUE(mods[1].tab == NULL);
  ASSERT_U64_EQ(mods[0].bias, 0x555555554000);
  /* Walk one frame with it: at the function's entry (link 0x1010) the return address is at sp. */
  uint64_t stack[4] = {0x555555555080 + 1, 0, 0, 0};
  struct utab_memory mem = {read_words, stack};
  struct utab_regs regs = {.pc = 0x555555555010, .sp = 0x7000, .have = UTAB_HAVE_SP};
  uint64_t pcs[4];
  size_t np;
  int st = utab_walk(mods, n, &mem, &regs, pcs, 4, &np, NULL);
  ASSERT_EQ(st, UTAB_NEED_HOST); /* the caller's PC is in a NONE row */
  ASSERT_EQ(np, 2);
  ASSERT_U64_EQ(pcs[1], 0x555555555080);
  ASSERT_EQ(tarena_snapshot(arena, size, 300, mods, tabs, 8, &n), RS_E_NOT_FOUND);
  ASSERT_EQ(tarena_clear_modules(arena, 100), 0);
  ASSERT_EQ(tarena_snapshot(arena, size, 100, mods, tabs, 8, &n), 0);
  ASSERT_EQ(n, 0);
  tarena_drop_process(arena, 200);
  ASSERT_EQ(tarena_snapshot(arena, size, 200, mods, tabs, 8, &n), RS_E_NOT_FOUND);
  /* A writer half way through a change: readers wait rather than see it. */
  ((struct tarena_header *)arena)->seq |= 1;
  ASSERT_EQ(tarena_snapshot(arena, size, 100, mods, tabs, 8, &n), RS_E_TIMEOUT);
  free(arena);
}
