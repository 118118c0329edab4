/* Unit tests of the recorder's shared-memory ring: wrapping, a full ring, and four writer threads against one
 * reader losing nothing and keeping each thread's order. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "recorder-ring.h"
#include "test.h"

enum { CAP = 1 << 14 };

static struct rring *new_ring(void)
{
  static struct rring r;
  void *mem = calloc(1, rring_map_size(CAP));
  if (!mem || rring_init(mem, CAP, 1) || rring_open(&r, mem, rring_map_size(CAP)))
    return NULL;
  return &r;
}

TEST(rring_wraps_and_fills)
{
  struct rring *r = new_ring();
  ASSERT_TRUE(r != NULL);
  uint8_t *rec;
  const uint8_t *got;
  uint32_t len;
  ASSERT_EQ(rring_peek(r, &got, &len), 0);
  uint64_t written = 0, read = 0;
  for (int round = 0; round < 50; round++) {
    uint32_t n = 8 * (uint32_t)(10 + round * 7 % 90);
    int k = 0;
    while (rring_reserve(r, n, &rec) == 0) {
      if (k == 0)
        ASSERT_EQ(rring_peek(r, &got, &len), 2); /* reserved, not committed */
      memset(rec + 8, (int)(written & 0xff), n - 8);
      rec[4] = RRING_REC_CALL;
      rring_commit(rec, n);
      written++;
      k++;
      if (k == 3)
        break;
    }
    while (rring_peek(r, &got, &len) == 1) {
      ASSERT_EQ(len, n);
      ASSERT_EQ(got[8], (uint8_t)(read & 0xff));
      ASSERT_EQ(got[len - 1], (uint8_t)(read & 0xff));
      rring_release(r, len);
      read++;
    }
    ASSERT_U64_EQ(rring_used(r), 0);
  }
  ASSERT_U64_EQ(read, written);
  /* A full ring refuses, and takes again once the reader made room. */
  int n = 0;
  while (rring_reserve(r, 1024, &rec) == 0) {
    rring_commit(rec, 1024);
    n++;
  }
  ASSERT_TRUE(n >= CAP / 1024 - 1);
  ASSERT_EQ(rring_peek(r, &got, &len), 1);
  rring_release(r, len);
  ASSERT_EQ(rring_reserve(r, 1024, &rec), 0);
}

enum { WRITERS = 4, PER_WRITER = 100000 };
static struct rring *shared_ring;

static void *writer(void *arg)
{
  uint32_t id = (uint32_t)(uintptr_t)arg;
  for (uint32_t i = 0; i < PER_WRITER; i++) {
    uint32_t n = 24 + 8 * (i % 13);
    uint8_t *rec;
    while (rring_reserve(shared_ring, n, &rec))
      ; /* spin: the reader makes room */
    rec[4] = RRING_REC_CALL;
    memcpy(rec + 8, &id, 4);
    memcpy(rec + 12, &i, 4);
    rring_commit(rec, n);
  }
  return NULL;
}

TEST(rring_four_writers_lose_nothing)
{
  shared_ring = new_ring();
  ASSERT_TRUE(shared_ring != NULL);
  pthread_t th[WRITERS];
  for (int i = 0; i < WRITERS; i++)
    ASSERT_EQ(pthread_create(&th[i], NULL, writer, (void *)(uintptr_t)i), 0);
  uint32_t next[WRITERS] = {0};
  uint64_t total = 0;
  while (total < (uint64_t)WRITERS * PER_WRITER) {
    const uint8_t *rec;
    uint32_t len, id, seq;
    if (rring_peek(shared_ring, &rec, &len) != 1)
      continue;
    memcpy(&id, rec + 8, 4);
    memcpy(&seq, rec + 12, 4);
    ASSERT_TRUE(id < WRITERS);
    ASSERT_EQ(seq, next[id]);
    ASSERT_EQ(len, 24 + 8 * (seq % 13));
    next[id]++;
    total++;
    rring_release(shared_ring, len);
  }
  for (int i = 0; i < WRITERS; i++)
    pthread_join(th[i], NULL);
  ASSERT_U64_EQ(rring_used(shared_ring), 0);
}
