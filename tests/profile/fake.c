/* The profile tests' fake symbolizer and hand-built tree. */
#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

const struct profile_metric fake_metrics[2] = {{"allocs", "count"}, {"bytes", "bytes"}};

/* pcs and what they mean. 0x2000 is an inlined call: inl_helper (util.h) inlined into caller_b. 0x3004
 * is a second address in the same line as 0x3000, so two contexts print the same folded stack. 0x4000
 * is unknown to the symbolizer; 0x5000 is known only by its module. */
#define NAME_WITH_SEMICOLON "core::array<[u8; 4]>"
#define NAME_TO_ESCAPE "op\"quote\\back\x01" "ctl\ttab\xff"

static struct {
  uint64_t pc;
  int calls;
} seen[64];

int fake_calls(uint64_t pc)
{
  for (size_t i = 0; i < 64; i++)
    if (seen[i].pc == pc)
      return seen[i].calls;
  return 0;
}

void fake_reset_calls(void)
{
  memset(seen, 0, sizeof seen);
}

static void count_call(uint64_t pc)
{
  for (size_t i = 0; i < 64; i++) {
    if (seen[i].pc == pc || seen[i].pc == 0) {
      seen[i].pc = pc;
      seen[i].calls++;
      return;
    }
  }
}

int fake_symbolize(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n)
{
  (void)ctx;
  count_call(pc);
  ASSERT_TRUE(max >= 2);
  memset(frames, 0, 2 * sizeof *frames);
  *n = 1;
  switch (pc) {
  case 0x1000:
    frames[0] = (struct sym_frame){"main", "main", "/src/app/main.c", 10, 5, "/bin/app", pc - 0x1000, FAKE_APP_BUILD_ID};
    return 0;
  case 0x2000:
    frames[0] = (struct sym_frame){"inl_helper", "_Z10inl_helperv", "/src/app/util.h", 3, 1, "/bin/app", pc - 0x1000, FAKE_APP_BUILD_ID};
    frames[1] = (struct sym_frame){"caller_b", "caller_b", "/src/app/b.c", 20, 15, "/bin/app", pc - 0x1000, FAKE_APP_BUILD_ID};
    *n = 2;
    return 0;
  case 0x3000:
  case 0x3004:
    frames[0] = (struct sym_frame){"leaf_alloc", "leaf_alloc", "/src/app/alloc.c", 7, 6, "/bin/app", pc - 0x1000, FAKE_APP_BUILD_ID};
    return 0;
  case 0x5000:
    frames[0] = (struct sym_frame){NULL, NULL, NULL, 0, 0, "/usr/lib/libfoo.so.1", pc - 0x5000, NULL};
    return 0;
  case 0x6000:
    frames[0] = (struct sym_frame){NAME_WITH_SEMICOLON, "_RNvXs_array", "/rustc/core/array.rs", 0, 0, "/bin/app", pc - 0x1000, FAKE_APP_BUILD_ID};
    return 0;
  case 0x7000:
    frames[0] = (struct sym_frame){NAME_TO_ESCAPE, NAME_TO_ESCAPE, "/src/app/x.c", 9, 9, "/bin/app", pc - 0x1000, FAKE_APP_BUILD_ID};
    return 0;
  default:
    *n = 0;
    return -1;
  }
}

const struct fake_event fake_events[] = {
  {100, 0, {0x3000, 0x2000, 0x1000}, 1, 16},
  {100, 0, {0x3000, 0x2000, 0x1000}, 1, 16},
  {100, 0, {0x3000, 0x2000, 0x1000}, 1, 16},
  {100, 0, {0x4000, 0x2000, 0x1000}, 1, 100},
  {100, 0, {0x2000, 0x1000}, 1, 8},                 /* an event on an interior node */
  {100, 1, {0x3000, 0x2000}, 1, 4},                 /* truncated: not merged with the full stack */
  {100, 0, {0x3004, 0x2000, 0x1000}, 2, 32},        /* prints like 0x3000: merged in folded output */
  {200, 0, {0x3000, 0x2000, 0x1000}, 1, 16},
  {200, 0, {0x3000, 0x2000, 0x1000}, 1, 16},
  {200, 0, {0x6000, 0x5000, 0x1000}, 5, 500},
  {200, 0, {0x7000, 0x1000}, 0, 7},                 /* only bytes: absent from the allocs flame graph */
};
const size_t fake_nevents = sizeof fake_events / sizeof *fake_events;

struct cct *fake_tree(void)
{
  struct cct *t;
  ASSERT_EQ(cct_new(2, &t), 0);
  for (size_t i = 0; i < fake_nevents; i++) {
    const struct fake_event *e = &fake_events[i];
    size_t n = 0;
    while (n < 4 && e->pcs[n])
      n++;
    uint32_t leaf;
    ASSERT_EQ(cct_insert_path(t, e->tid, e->pcs, n, e->truncated ? CCT_PATH_TRUNCATED : 0, &leaf), 0);
    ASSERT_EQ(cct_add(t, leaf, 0, e->allocs), 0);
    ASSERT_EQ(cct_add(t, leaf, 1, e->bytes), 0);
  }
  return t;
}

const char *const fake_folded_allocs[] = {
  "THREAD[100];[truncated];caller_b;inl_helper;leaf_alloc 1",
  "THREAD[100];main;caller_b;inl_helper 1",
  "THREAD[100];main;caller_b;inl_helper;0x4000 1",
  "THREAD[100];main;caller_b;inl_helper;leaf_alloc 5",
  "THREAD[200];main;0x5000 [libfoo.so.1];core::array<[u8: 4]> 5",
  "THREAD[200];main;caller_b;inl_helper;leaf_alloc 2",
  NULL,
};

const char *const fake_folded_bytes[] = {
  "THREAD[100];[truncated];caller_b;inl_helper;leaf_alloc 4",
  "THREAD[100];main;caller_b;inl_helper 8",
  "THREAD[100];main;caller_b;inl_helper;0x4000 100",
  "THREAD[100];main;caller_b;inl_helper;leaf_alloc 80",
  "THREAD[200];main;0x5000 [libfoo.so.1];core::array<[u8: 4]> 500",
  "THREAD[200];main;caller_b;inl_helper;leaf_alloc 32",
  "THREAD[200];main;" NAME_TO_ESCAPE " 7",
  NULL,
};

static char tmp_dir[64], tmp_path[512];

static void remove_tmp(void)
{
  unlink(tmp_path);
  rmdir(tmp_dir);
}

const char *fake_tmp_path(const char *name)
{
  ASSERT_TRUE(tmp_dir[0] == 0); /* one per test process */
  snprintf(tmp_dir, sizeof tmp_dir, "%s", "/tmp/rsprof-profile-test.XXXXXX");
  ASSERT_TRUE(mkdtemp(tmp_dir) != NULL);
  snprintf(tmp_path, sizeof tmp_path, "%s/%s", tmp_dir, name);
  atexit(remove_tmp);
  return tmp_path;
}
