/* Open-addressing hash map from 64-bit keys to 64-bit values with linear probing. */
#include "u64map.h"

#include <errno.h>
#include <stdlib.h>

enum { SLOT_EMPTY, SLOT_FULL, SLOT_DELETED };

static size_t slot_of(uint64_t key, size_t cap)
{
  key ^= key >> 33; /* a 64-bit mix so aligned addresses spread over the table */
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return (size_t)key & (cap - 1);
}

void u64map_init(struct u64map *m)
{
  m->keys = m->vals = NULL;
  m->used = NULL;
  m->cap = m->count = m->tombstones = 0;
}

void u64map_free(struct u64map *m)
{
  free(m->keys);
  free(m->vals);
  free(m->used);
  u64map_init(m);
}

static int grow(struct u64map *m, size_t cap)
{
  struct u64map n;
  n.keys = malloc(cap * sizeof *n.keys);
  n.vals = malloc(cap * sizeof *n.vals);
  n.used = calloc(cap, 1);
  if (!n.keys || !n.vals || !n.used) {
    free(n.keys);
    free(n.vals);
    free(n.used);
    return -ENOMEM;
  }
  n.cap = cap;
  n.count = n.tombstones = 0;
  for (size_t i = 0; i < m->cap; i++) {
    if (m->used[i] != SLOT_FULL)
      continue;
    size_t s = slot_of(m->keys[i], cap);
    while (n.used[s])
      s = (s + 1) & (cap - 1);
    n.used[s] = SLOT_FULL;
    n.keys[s] = m->keys[i];
    n.vals[s] = m->vals[i];
    n.count++;
  }
  u64map_free(m);
  *m = n;
  return 0;
}

int u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
  if ((m->count + m->tombstones + 1) * 4 >= m->cap * 3) {
    size_t cap = m->cap ? m->cap : 64;
    while ((m->count + 1) * 2 >= cap)
      cap *= 2;
    int rc = grow(m, cap);
    if (rc)
      return rc;
  }
  size_t s = slot_of(key, m->cap);
  size_t first_free = (size_t)-1;
  while (m->used[s] != SLOT_EMPTY) {
    if (m->used[s] == SLOT_FULL && m->keys[s] == key) {
      m->vals[s] = val;
      return 0;
    }
    if (m->used[s] == SLOT_DELETED && first_free == (size_t)-1)
      first_free = s;
    s = (s + 1) & (m->cap - 1);
  }
  if (first_free != (size_t)-1) {
    s = first_free;
    m->tombstones--;
  }
  m->used[s] = SLOT_FULL;
  m->keys[s] = key;
  m->vals[s] = val;
  m->count++;
  return 0;
}

static size_t find(const struct u64map *m, uint64_t key)
{
  if (!m->cap)
    return (size_t)-1;
  size_t s = slot_of(key, m->cap);
  while (m->used[s] != SLOT_EMPTY) {
    if (m->used[s] == SLOT_FULL && m->keys[s] == key)
      return s;
    s = (s + 1) & (m->cap - 1);
  }
  return (size_t)-1;
}

int u64map_get(const struct u64map *m, uint64_t key, uint64_t *val)
{
  size_t s = find(m, key);
  if (s == (size_t)-1)
    return 0;
  if (val)
    *val = m->vals[s];
  return 1;
}

int u64map_del(struct u64map *m, uint64_t key, uint64_t *val)
{
  size_t s = find(m, key);
  if (s == (size_t)-1)
    return 0;
  if (val)
    *val = m->vals[s];
  m->used[s] = SLOT_DELETED;
  m->count--;
  m->tombstones++;
  return 1;
}

int u64map_next(const struct u64map *m, size_t *pos, uint64_t *key, uint64_t *val)
{
  for (size_t i = *pos; i < m->cap; i++) {
    if (m->used[i] == SLOT_FULL) {
      *key = m->keys[i];
      *val = m->vals[i];
      *pos = i + 1;
      return 1;
    }
  }
  *pos = m->cap;
  return 0;
}
