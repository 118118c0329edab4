/* Unit tests of the compact capture records (common/capture-codec.c) and the interned stack table
 * (common/stack-intern.c): what a writer puts, a reader with its own state gets back, in sizes that keep
 * an event under the wire budget. */
#include <stdlib.h>
#include <string.h>

#include "capture-codec.h"
#include "errors.h"
#include "stack-intern.h"
#include "test.h"

static uint8_t buf[1 << 20];

TEST(capture_codec_round_trip)
{
  struct capc_state w, r;
  capc_reset(&w);
  capc_reset(&r);
  size_t len = 0, n;
  uint64_t pcs[3] = {0x7f0000101000, 0x555555555234, 0x7f00000290ff};
  n = capc_put_stack(&w, buf + len, sizeof buf - len, pcs, 3, 0);
  ASSERT_TRUE(n > 0);
  len += n;
  srand(7);
  enum { CALLS = 2000 };
  static struct capc_call in[CALLS];
  uint64_t ns = 1000000000, ptr = 0x5555555a0000;
  for (int i = 0; i < CALLS; i++) {
    struct capc_call *c = &in[i];
    memset(c, 0, sizeof *c);
    c->tid = 4242 + (i % 3 == 0);
    c->id = (uint32_t)(i % 4);
    ns += (uint64_t)(rand() % 5000);
    c->ns = ns;
    c->stack = 0;
    c->sp = 0x7ffffffde000 - (uint64_t)(rand() % 64) * 16;
    c->regmask = 1u << 5;
    c->regs[5] = c->id == 1 ? ptr : (uint64_t)(rand() % 4096);
    if (i % 2) {
      c->flags = CAPC_F_RET;
      c->ret_ns = ns + 300;
      c->retval = ptr += 48;
    } else {
      c->flags = CAPC_F_PAIRED;
      c->seq = (uint64_t)i + 1;
    }
    if (i % 7 == 0) {
      static const uint8_t m[4] = {1, 2, 3, 4};
      c->mem = m;
      c->mem_len = 4;
    }
    n = capc_put_call(&w, buf + len, sizeof buf - len, c);
    ASSERT_TRUE(n > 0);
    len += n;
    if (c->flags & CAPC_F_PAIRED) {
      struct capc_ret t = {.tid = c->tid, .seq = c->seq, .ns = ns + 200, .retval = ptr += 32};
      n = capc_put_ret(&w, buf + len, sizeof buf - len, &t);
      ASSERT_TRUE(n > 0);
      len += n;
    }
  }
  ASSERT_TRUE(len < (size_t)CALLS * 24); /* a call, its return and its argument in far less than 48 bytes */
  n = capc_put_reset(&w, buf + len, sizeof buf - len);
  ASSERT_EQ(n, 2);
  len += n;
  n = capc_put_stack(&w, buf + len, sizeof buf - len, pcs + 1, 2, 1);
  len += n;

  const uint8_t *p = buf, *end = buf + len;
  struct capc_rec rec;
  uint64_t got[16];
  ASSERT_EQ(capc_get(&r, &p, end, &rec, got, 16), 1);
  ASSERT_EQ(rec.kind, CAP_REC_STACK_DEF);
  ASSERT_EQ(rec.stack_id, 0);
  ASSERT_EQ(rec.npcs, 3);
  ASSERT_MEM_EQ(got, pcs, sizeof pcs);
  for (int i = 0; i < CALLS; i++) {
    const struct capc_call *c = &in[i];
    ASSERT_EQ(cap_record_len(p, (size_t)(end - p)) > 0, 1);
    ASSERT_EQ(capc_get(&r, &p, end, &rec, got, 16), 1);
    ASSERT_EQ(rec.kind, CAP_REC_CALL);
    ASSERT_EQ(rec.call.tid, c->tid);
    ASSERT_EQ(rec.call.id, c->id);
    ASSERT_U64_EQ(rec.call.ns, c->ns);
    ASSERT_U64_EQ(rec.call.sp, c->sp);
    ASSERT_U64_EQ(rec.call.regmask, c->regmask);
    ASSERT_U64_EQ(rec.call.regs[5], c->regs[5]);
    ASSERT_EQ(rec.call.mem_len, c->mem_len);
    if (c->mem_len)
      ASSERT_MEM_EQ(rec.call.mem, c->mem, c->mem_len);
    if (c->flags & CAPC_F_RET) {
      ASSERT_EQ(rec.call.flags & CAPC_F_RET, CAPC_F_RET);
      ASSERT_U64_EQ(rec.call.ret_ns, c->ret_ns);
      ASSERT_U64_EQ(rec.call.retval, c->retval);
    } else {
      ASSERT_U64_EQ(rec.call.seq, c->seq);
      ASSERT_EQ(capc_get(&r, &p, end, &rec, got, 16), 1);
      ASSERT_EQ(rec.kind, CAP_REC_RET);
      ASSERT_U64_EQ(rec.ret.seq, c->seq);
      ASSERT_EQ(rec.ret.tid, c->tid);
    }
  }
  ASSERT_EQ(capc_get(&r, &p, end, &rec, got, 16), 1);
  ASSERT_EQ(rec.kind, CAP_REC_RESET);
  ASSERT_EQ(capc_get(&r, &p, end, &rec, got, 16), 1);
  ASSERT_EQ(rec.stack_id, 0); /* ids start again after a reset */
  ASSERT_EQ(rec.truncated, 1);
  ASSERT_U64_EQ(got[0], pcs[1]);
  ASSERT_TRUE(p == end);
}

TEST(capture_codec_refuses_damage)
{
  struct capc_state w, r;
  capc_reset(&w);
  uint64_t pcs[2] = {0x401000, 0x401234};
  size_t first = capc_put_stack(&w, buf, sizeof buf, pcs, 2, 0), len = first;
  struct capc_call c = {.flags = CAPC_F_RET, .tid = 1, .id = 2, .regmask = 3, .regs = {9, 10}, .retval = 77};
  len += capc_put_call(&w, buf + len, sizeof buf - len, &c);
  /* Every cut and every body-length change is refused, never read past. */
  for (size_t cut = 1; cut < len; cut++) {
    if (cut == first)
      continue; /* a whole record */
    static uint8_t copy[256];
    memcpy(copy, buf, cut);
    const uint8_t *p = copy, *end = copy + cut;
    struct capc_rec rec;
    uint64_t got[4];
    capc_reset(&r);
    int rc = 0;
    while (p < end && (rc = capc_get(&r, &p, end, &rec, got, 4)) == 1)
      ;
    ASSERT_TRUE(p <= end);
    ASSERT_EQ(rc, RS_E_PROTO);
  }
  /* A writer without room writes nothing and keeps its state. */
  struct capc_state before = w;
  ASSERT_EQ(capc_put_call(&w, buf, 3, &c), 0);
  ASSERT_MEM_EQ(&before, &w, sizeof w);
  /* A stack longer than the reader's array is refused. */
  capc_reset(&w);
  capc_reset(&r);
  len = capc_put_stack(&w, buf, sizeof buf, pcs, 2, 0);
  const uint8_t *p = buf;
  struct capc_rec rec;
  uint64_t one[1];
  ASSERT_EQ(capc_get(&r, &p, buf + len, &rec, one, 1), RS_E_PROTO);
}

TEST(stack_intern_finds_adds_and_fills)
{
  static uint32_t slots[64];
  static struct sintern_stack stacks[40];
  static uint64_t pcs[100];
  struct sintern t;
  sintern_init(&t, slots, 64, stacks, 40, pcs, 100);
  uint64_t s[5] = {1, 2, 3, 4, 5};
  ASSERT_EQ(sintern_find(&t, s, 5, 0), -1);
  ASSERT_EQ(sintern_add(&t, s, 5, 0), 0);
  ASSERT_EQ(sintern_find(&t, s, 5, 0), 0);
  ASSERT_EQ(sintern_find(&t, s, 5, 1), -1); /* a truncated walk is another stack */
  ASSERT_EQ(sintern_find(&t, s, 4, 0), -1);
  ASSERT_EQ(sintern_add(&t, s, 4, 0), 1);
  long id = 2;
  for (uint64_t i = 0; sintern_room(&t, 3); i++, id++) {
    uint64_t x[3] = {i, i * 7, 100 + i};
    ASSERT_EQ(sintern_add(&t, x, 3, 0), id);
  }
  ASSERT_EQ(t.npcs <= 100, 1);
  uint64_t x[3] = {999, 998, 997};
  ASSERT_EQ(sintern_add(&t, x, 3, 0), -1); /* full: the caller resets */
  for (uint64_t i = 0; i < (uint64_t)id - 2; i++) {
    uint64_t y[3] = {i, i * 7, 100 + i};
    ASSERT_EQ(sintern_find(&t, y, 3, 0), (long)i + 2);
  }
  sintern_reset(&t);
  ASSERT_EQ(sintern_find(&t, s, 5, 0), -1);
  ASSERT_EQ(sintern_add(&t, s, 5, 0), 0);
}
