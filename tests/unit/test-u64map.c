/* Unit tests of the collector's u64 hash map, checked against a plain array model. */
#include <stdlib.h>

#include "test.h"
#include "u64map.h"

TEST(u64map_matches_model_under_churn)
{
  enum { KEYS = 5000, OPS = 200000 };
  static uint64_t model[KEYS];
  static int present[KEYS];
  struct u64map m;
  u64map_init(&m);
  srand(3);
  size_t count = 0;
  for (int i = 0; i < OPS; i++) {
    int k = rand() % KEYS;
    uint64_t key = 0x7f0000000000ULL + (uint64_t)k * 16; /* heap-like, aligned keys */
    if (rand() % 3) {
      uint64_t v = (uint64_t)rand();
      ASSERT_EQ(u64map_put(&m, key, v), 0);
      count += !present[k];
      present[k] = 1;
      model[k] = v;
    } else {
      uint64_t v;
      int had = u64map_del(&m, key, &v);
      ASSERT_EQ(had, present[k]);
      if (had)
        ASSERT_U64_EQ(v, model[k]);
      count -= (size_t)present[k];
      present[k] = 0;
    }
  }
  ASSERT_EQ(m.count, count);
  for (int k = 0; k < KEYS; k++) {
    uint64_t v = 0;
    ASSERT_EQ(u64map_get(&m, 0x7f0000000000ULL + (uint64_t)k * 16, &v), present[k]);
    if (present[k])
      ASSERT_U64_EQ(v, model[k]);
  }
  size_t pos = 0, seen = 0;
  uint64_t key, val;
  while (u64map_next(&m, &pos, &key, &val))
    seen++;
  ASSERT_EQ(seen, count);
  u64map_free(&m);
}
