/* Calling-context tree: merging of identical paths, shared prefixes, thread roots, truncation, id order. */
#include <stdlib.h>
#include <string.h>

#include "cct.h"
#include "errors.h"
#include "test.h"

TEST(same_stack_makes_one_path)
{
  struct cct *t;
  uint64_t pcs[14];
  for (int i = 0; i < 14; i++)
    pcs[i] = 0x401000 + (uint64_t)i * 0x40;
  ASSERT_EQ(cct_new(1, &t), 0);
  uint32_t first = 0;
  for (int i = 0; i < 10000; i++) {
    uint32_t leaf;
    ASSERT_EQ(cct_insert(t, 7, pcs, 14, &leaf), 0);
    if (i == 0)
      first = leaf;
    ASSERT_EQ(leaf, first);
    ASSERT_EQ(cct_add(t, leaf, 0, 1), 0);
  }
  /* process root + thread root + 14 frames, whatever the number of events */
  ASSERT_EQ(cct_count(t), 16);
  ASSERT_EQ(cct_get(t, first, 0), 10000);
  ASSERT_EQ(cct_depth(t, first), 15);
  /* stored outermost first: the thread root's child is the last pc given */
  uint32_t thread = cct_first_child(t, CCT_ROOT);
  ASSERT_EQ(cct_kind(t, thread), CCT_THREAD);
  ASSERT_U64_EQ(cct_pc(t, thread), 7);
  ASSERT_U64_EQ(cct_pc(t, cct_first_child(t, thread)), pcs[13]);
  ASSERT_U64_EQ(cct_pc(t, first), pcs[0]);
  cct_free(t);
}

TEST(different_stacks_share_prefixes)
{
  struct cct *t;
  const uint64_t a[] = {0xa, 0xb, 0xc}; /* innermost first: c calls b calls a */
  const uint64_t d[] = {0xd, 0xb, 0xc};
  const uint64_t e[] = {0xe, 0xc};
  uint32_t la, ld, le;
  ASSERT_EQ(cct_new(1, &t), 0);
  ASSERT_EQ(cct_insert(t, 1, a, 3, &la), 0);
  ASSERT_EQ(cct_insert(t, 1, d, 3, &ld), 0);
  ASSERT_EQ(cct_insert(t, 1, e, 2, &le), 0);
  /* root, thread, c, b, a, d, e */
  ASSERT_EQ(cct_count(t), 7);
  ASSERT_TRUE(la != ld);
  ASSERT_EQ(cct_parent(t, la), cct_parent(t, ld));
  ASSERT_U64_EQ(cct_pc(t, cct_parent(t, la)), 0xb);
  ASSERT_EQ(cct_parent(t, le), cct_parent(t, cct_parent(t, la)));
  uint64_t back[8];
  int truncated;
  ASSERT_EQ(cct_path(t, ld, back, 8, &truncated), 3);
  ASSERT_EQ(truncated, 0);
  ASSERT_MEM_EQ(back, d, sizeof d);
  /* children in creation order */
  uint32_t b = cct_parent(t, la);
  ASSERT_EQ(cct_first_child(t, b), la);
  ASSERT_EQ(cct_next_sibling(t, la), ld);
  ASSERT_EQ(cct_next_sibling(t, ld), 0);
  cct_free(t);
}

TEST(threads_and_truncation_get_their_own_paths)
{
  struct cct *t;
  const uint64_t s[] = {0x10, 0x20};
  uint32_t l1, l2, l3, l4;
  ASSERT_EQ(cct_new(2, &t), 0);
  ASSERT_EQ(cct_insert(t, 1, s, 2, &l1), 0);
  ASSERT_EQ(cct_insert(t, 2, s, 2, &l2), 0);
  ASSERT_EQ(cct_insert_path(t, 1, s, 2, CCT_PATH_TRUNCATED, &l3), 0);
  ASSERT_EQ(cct_insert_path(t, 1, s, 2, CCT_PATH_TRUNCATED, &l4), 0);
  ASSERT_TRUE(l1 != l2 && l1 != l3 && l2 != l3);
  ASSERT_EQ(l3, l4);
  ASSERT_EQ(cct_tid(t, l1), 1);
  ASSERT_EQ(cct_tid(t, l2), 2);
  int truncated;
  uint64_t back[2];
  ASSERT_EQ(cct_path(t, l3, back, 2, &truncated), 2);
  ASSERT_EQ(truncated, 1);
  ASSERT_EQ(cct_kind(t, cct_parent(t, cct_parent(t, l3))), CCT_TRUNCATED);
  /* root, thread 1, 0x20, 0x10, thread 2, 0x20, 0x10, [truncated], 0x20, 0x10 */
  ASSERT_EQ(cct_count(t), 10);
  /* an empty stack is the thread root itself */
  uint32_t lt;
  ASSERT_EQ(cct_insert(t, 2, NULL, 0, &lt), 0);
  ASSERT_EQ(cct_kind(t, lt), CCT_THREAD);
  ASSERT_EQ(cct_count(t), 10);
  cct_free(t);
}

TEST(metrics_add_and_inclusive_sums)
{
  struct cct *t;
  const uint64_t a[] = {0xa, 0xb}, c[] = {0xc, 0xb};
  uint32_t la, lc, lb;
  ASSERT_EQ(cct_new(2, &t), 0);
  ASSERT_EQ(cct_insert(t, 1, a, 2, &la), 0);
  ASSERT_EQ(cct_insert(t, 1, c, 2, &lc), 0);
  ASSERT_EQ(cct_insert(t, 1, a + 1, 1, &lb), 0);
  ASSERT_EQ(cct_add(t, la, 1, 5), 0);
  ASSERT_EQ(cct_add(t, lc, 1, 7), 0);
  ASSERT_EQ(cct_add(t, lb, 1, 1), 0);
  ASSERT_EQ(cct_add(t, la, 0, -3), 0);
  ASSERT_EQ(cct_add(t, 0, 0, 1), RS_E_BAD_ARG);
  ASSERT_EQ(cct_add(t, cct_count(t) + 1, 0, 1), RS_E_BAD_ARG);
  ASSERT_EQ(cct_add(t, la, 2, 1), RS_E_BAD_ARG);
  ASSERT_EQ(cct_get(t, la, 0), -3);
  ASSERT_TRUE(cct_has_metrics(t, la));
  ASSERT_TRUE(!cct_has_metrics(t, CCT_ROOT));
  int64_t incl[16];
  ASSERT_TRUE(cct_count(t) < 16);
  cct_inclusive(t, 1, incl);
  ASSERT_EQ(incl[la], 5);
  ASSERT_EQ(incl[lb], 13);
  ASSERT_EQ(incl[CCT_ROOT], 13);
  cct_free(t);
}

TEST(node_limit_is_enforced)
{
  struct cct *t;
  const uint64_t s[] = {1, 2, 3, 4, 5, 6};
  uint32_t leaf;
  ASSERT_EQ(cct_new(1, &t), 0);
  cct_set_max_nodes(t, 5);
  ASSERT_EQ(cct_insert(t, 1, s, 6, &leaf), RS_E_LIMIT);
  ASSERT_EQ(cct_count(t), 5);
  ASSERT_EQ(cct_insert(t, 1, s + 3, 3, &leaf), 0); /* existing paths still resolve */
  cct_free(t);
}

/* Random stacks against an independent reference: the number of nodes must equal the number of distinct
 * (thread, outer prefix) pairs, counted by sorting the prefixes; every path must read back unchanged. */
struct prefix {
  uint32_t tid;
  size_t len;
  uint64_t pcs[12];
};

static int cmp_prefix(const void *a, const void *b)
{
  const struct prefix *x = a, *y = b;
  if (x->tid != y->tid)
    return x->tid < y->tid ? -1 : 1;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  return memcmp(x->pcs, y->pcs, x->len * sizeof *x->pcs);
}

TEST(random_stacks_match_a_reference_count)
{
  enum { EVENTS = 5000, MAXD = 12 };
  struct cct *t;
  struct prefix *ref = calloc((size_t)EVENTS * MAXD, sizeof *ref);
  size_t nref = 0;
  uint64_t x = 88172645463325252ULL;
  ASSERT_TRUE(ref != NULL);
  ASSERT_EQ(cct_new(1, &t), 0);
  for (int ev = 0; ev < EVENTS; ev++) {
    uint64_t pcs[MAXD];
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint32_t tid = 1 + (uint32_t)(x % 3);
    size_t n = 1 + (size_t)((x >> 8) % MAXD);
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      pcs[i] = 0x1000 + (x % 4) * 0x10 + i; /* few choices per depth: lots of sharing */
    }
    uint32_t leaf;
    ASSERT_EQ(cct_insert(t, tid, pcs, n, &leaf), 0);
    uint64_t back[MAXD];
    ASSERT_EQ(cct_path(t, leaf, back, MAXD, NULL), n);
    ASSERT_MEM_EQ(back, pcs, n * sizeof *pcs);
    ASSERT_EQ(cct_tid(t, leaf), tid);
    for (size_t len = 1; len <= n; len++) { /* outer prefixes, outermost first */
      struct prefix *p = &ref[nref++];
      p->tid = tid;
      p->len = len;
      for (size_t k = 0; k < len; k++)
        p->pcs[k] = pcs[n - 1 - k];
    }
  }
  qsort(ref, nref, sizeof *ref, cmp_prefix);
  size_t distinct = 0;
  uint32_t threads = 0, last_tid = 0;
  for (size_t i = 0; i < nref; i++) {
    if (i == 0 || cmp_prefix(&ref[i - 1], &ref[i]) != 0)
      distinct++;
    if (ref[i].tid != last_tid)
      threads++, last_tid = ref[i].tid;
  }
  ASSERT_EQ(cct_count(t), 1 + threads + distinct);
  for (uint32_t id = 2; id <= cct_count(t); id++)
    ASSERT_TRUE(cct_parent(t, id) < id && cct_parent(t, id) != 0);
  free(ref);
  cct_free(t);
}
