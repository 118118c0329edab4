/* Unit tests of the stack window's readable-end search, against a model mapping that ends at a known page. */
#include "stack-window.h"
#include "test.h"

enum { PAGE = 4096 };

struct model_stack {
  uint64_t readable_end; /* bytes below this address are readable */
  int probes;
  int empty_probes;
};

static int model_probe(void *ctx, uint64_t addr, size_t len)
{
  struct model_stack *m = ctx;
  m->probes++;
  if (len == 0)
    m->empty_probes++;
  return addr + len <= m->readable_end;
}

/* Every window length (including ones not a whole number of pages, which used to make the search probe
 * empty ranges forever) and every mapping end inside the window gives the exact readable end. */
TEST(finds_exact_end_for_every_window_and_mapping_end)
{
  const uint64_t base = 0x7ffd00000000ULL;
  for (uint64_t sp_off = 0; sp_off < PAGE; sp_off += 1000) {
    uint64_t sp = base + sp_off;
    for (size_t len = PAGE; len <= 9 * PAGE; len += 1000) {
      for (uint64_t end = base + PAGE; end < sp + len; end += PAGE) {
        if (end <= sp)
          continue;
        struct model_stack m = {end, 0, 0};
        ASSERT_U64_EQ(stack_readable_end(sp, len, PAGE, model_probe, &m), end);
        ASSERT_EQ(m.empty_probes, 0);
        ASSERT_TRUE(m.probes <= 8); /* logarithmic in the window's pages */
      }
    }
  }
}

TEST(unreadable_first_page_gives_start)
{
  struct model_stack m = {0x1000, 0, 0};
  ASSERT_U64_EQ(stack_readable_end(0x5000 + 16, 3 * PAGE, PAGE, model_probe, &m), 0x5000 + 16);
}

TEST(window_inside_first_page_gives_start)
{
  /* The caller only asks after a failed read; a window that ends inside sp's page has nothing smaller. */
  struct model_stack m = {0x5000, 0, 0};
  ASSERT_U64_EQ(stack_readable_end(0x4f00, 0x80, PAGE, model_probe, &m), 0x4f00);
  ASSERT_EQ(m.probes, 0);
}
