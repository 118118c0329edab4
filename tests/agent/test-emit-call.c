/* Unit tests of the agent's capture writer for complete calls (inf_cap_emit_call: what the in-process
 * recorder's drain uses) read back with the collector's decoder, and of the table arena's memfd as a reader in
 * another mapping sees it. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "capture-codec.h"
#include "errors.h"
#include "inf-tables.h"
#include "inferior.h"
#include "test.h"

static struct inferior inf;

/* The reader's side: its codec state and stack table, as the collector keeps them. */
struct reader {
  struct capc_state st;
  uint64_t pcs[INF_CAP_STACKS][8];
  size_t n[INF_CAP_STACKS];
  size_t nstacks, resets, calls;
  struct capc_call last;
  uint64_t last_pcs[8];
  size_t last_n;
};
static struct reader rd;

/* Decodes and consumes everything in the agent's buffer. */
static void drain(void)
{
  const uint8_t *p = inf.cap.buf, *end = p + inf.cap.len;
  uint64_t pcs[CAPC_MAX_FRAMES];
  while (p < end) {
    struct capc_rec r;
    ASSERT_EQ(capc_get(&rd.st, &p, end, &r, pcs, CAPC_MAX_FRAMES), 1);
    if (r.kind == CAP_REC_RESET) {
      rd.nstacks = 0;
      rd.resets++;
    } else if (r.kind == CAP_REC_STACK_DEF) {
      ASSERT_EQ(r.stack_id, rd.nstacks);
      ASSERT_TRUE(r.npcs <= 8 && rd.nstacks < INF_CAP_STACKS);
      memcpy(rd.pcs[rd.nstacks], pcs, r.npcs * 8);
      rd.n[rd.nstacks++] = r.npcs;
    } else if (r.kind == CAP_REC_CALL) {
      ASSERT_TRUE(r.call.stack < rd.nstacks);
      rd.last = r.call;
      rd.last_n = rd.n[r.call.stack];
      memcpy(rd.last_pcs, rd.pcs[r.call.stack], rd.last_n * 8);
      rd.calls++;
    }
  }
  inf_cap_consume(&inf, inf.cap.len);
}

TEST(emit_call_interns_and_resets)
{
  inf_init(&inf);
  inf_cap_reset(&inf);
  memset(&rd, 0, sizeof rd);
  capc_reset(&rd.st);
  uint64_t pcs[3] = {0x7f0000010000, 0x555555555100, 0x555555555200};
  uint64_t args[2] = {0x1234, 48}; /* by register number: rsi (4), then rdi (5) */
  static const uint8_t memptr[8] = {0x10, 0x20, 0, 0, 0, 0, 0, 0};
  struct inf_cap_call c = {.tid = 77, .id = 3, .ns = 1000, .regmask = (1u << 5) | (1u << 4), .regs = args,
                           .pcs = pcs, .npcs = 3, .has_ret = 1, .ret_ns = 1500, .retval = 0x5555aaaa0000,
                           .ret_mem = memptr, .ret_mem_len = 8};
  /* No room: nothing written, nothing interned. */
  ASSERT_EQ(inf_cap_emit_call(&inf, &c, 4), INF_CAP_NO_ROOM);
  ASSERT_EQ(inf.cap.len, 0);
  ASSERT_EQ(inf_cap_emit_call(&inf, &c, INF_CAP_SOFT), INF_CAP_DONE);
  size_t first = inf.cap.len;
  ASSERT_EQ(inf_cap_emit_call(&inf, &c, INF_CAP_SOFT), INF_CAP_DONE);
  ASSERT_TRUE(inf.cap.len - first < 8 + 16); /* the same stack again: by id; 8 bytes are the memory */
  drain();
  ASSERT_EQ(rd.resets, 1); /* the first record of a connection */
  ASSERT_EQ(rd.nstacks, 1);
  ASSERT_EQ(rd.calls, 2);
  ASSERT_EQ(rd.last.tid, 77);
  ASSERT_EQ(rd.last.id, 3);
  ASSERT_U64_EQ(rd.last.regs[5], 48);
  ASSERT_U64_EQ(rd.last.regs[4], 0x1234);
  ASSERT_EQ(rd.last.flags & CAPC_F_RET, CAPC_F_RET);
  ASSERT_U64_EQ(rd.last.ret_ns, 1500);
  ASSERT_U64_EQ(rd.last.retval, 0x5555aaaa0000);
  ASSERT_EQ(rd.last.ret_mem_len, 8);
  ASSERT_MEM_EQ(rd.last_pcs, pcs, sizeof pcs);

  /* More distinct stacks than the table holds: it starts again, with a reset record, and every call still
   * decodes to its own stack. */
  for (uint64_t i = 0; i < INF_CAP_STACKS + 100; i++) {
    uint64_t s[2] = {0x7f0000010000 + i * 16, 0x555555555100};
    struct inf_cap_call k = {.tid = 77, .id = 1, .ns = 2000 + i, .pcs = s, .npcs = 2};
    ASSERT_EQ(inf_cap_emit_call(&inf, &k, INF_CAP_SOFT), INF_CAP_DONE);
    if (inf.cap.len > INF_CAP_SOFT / 2 || i == INF_CAP_STACKS + 99)
      drain();
    if (inf.cap.len == 0) {
      ASSERT_EQ(rd.last_n, 2);
      ASSERT_U64_EQ(rd.last_pcs[0], s[0]);
    }
  }
  ASSERT_EQ(rd.resets, 2);
  ASSERT_EQ(inf.cap.stack_resets, 1);
  ASSERT_EQ(rd.calls, 2 + INF_CAP_STACKS + 100);
  /* Calls the records cannot hold are refused, not cut. */
  struct inf_cap_call none = {.tid = 1, .pcs = pcs, .npcs = 0};
  ASSERT_EQ(inf_cap_emit_call(&inf, &none, INF_CAP_SOFT), INF_CAP_NO_ROOM);
}

TEST(table_arena_memfd_maps_read_only)
{
  size_t size = 0;
  int fd = inf_tables_memfd(&size);
  ASSERT_TRUE(fd >= 0);
  ASSERT_EQ(size, INF_TABLES_SIZE);
  void *arena = inf_tables_arena(NULL);
  ASSERT_EQ(tarena_add_module(arena, 4321, 0x400000, 0x401000, 0, NULL, 0), 0);
  /* What the in-process recorder does: its own read-only mapping of the same memfd. */
  void *ro = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_TRUE(ro != MAP_FAILED);
  struct utab_module mods[4];
  struct utab tabs[4];
  size_t n;
  ASSERT_EQ(tarena_snapshot(ro, size, 4321, mods, tabs, 4, &n), 0);
  ASSERT_EQ(n, 1);
  ASSERT_U64_EQ(mods[0].lo, 0x400000);
  ASSERT_TRUE(mods[0].tab == NULL);
  munmap(ro, size);
}
