/* An open-addressing hash map from 64-bit keys to 64-bit values, for the collector's per-event lookups. */
#ifndef RSPROF_COL_U64MAP_H
#define RSPROF_COL_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map {
  uint64_t *keys;
  uint64_t *vals;
  uint8_t *used;  /* 0 empty, 1 full, 2 deleted */
  size_t cap;     /* power of two */
  size_t count;
  size_t tombstones;
};

void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m);
/* Sets key to val (inserting or replacing). Returns 0 or -ENOMEM. */
int u64map_put(struct u64map *m, uint64_t key, uint64_t val);
/* Returns 1 and *val when key is present, else 0. */
int u64map_get(const struct u64map *m, uint64_t key, uint64_t *val);
/* Removes key; returns 1 if it was present (and its value in *val if val != NULL). */
int u64map_del(struct u64map *m, uint64_t key, uint64_t *val);
/* Iteration: for (size_t i = 0; u64map_next(m, &i, &k, &v);) ... */
int u64map_next(const struct u64map *m, size_t *pos, uint64_t *key, uint64_t *val);

#endif
