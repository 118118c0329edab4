/* The module map: a sorted array of address ranges, searched by binary search for every frame. */
#include "modmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

struct modmap_entry {
  uint64_t lo, hi, bias;
  struct col_module *m;
};

struct col_modmap {
  struct modmap_entry *e;
  size_t n, cap;
};

int col_modmap_new(struct col_modmap **out)
{
  *out = calloc(1, sizeof **out);
  return *out ? 0 : -ENOMEM;
}

void col_modmap_free(struct col_modmap *map)
{
  if (map) {
    free(map->e);
    free(map);
  }
}

int col_modmap_add(struct col_modmap *map, struct col_module *m, uint64_t bias)
{
  uint64_t lo, hi;
  col_module_vaddr_range(m, &lo, &hi);
  lo += bias;
  hi += bias;
  size_t pos = 0;
  while (pos < map->n && map->e[pos].lo < lo)
    pos++;
  if ((pos > 0 && map->e[pos - 1].hi > lo) || (pos < map->n && map->e[pos].lo < hi))
    return -EEXIST;
  if (map->n == map->cap) {
    size_t ncap = map->cap ? map->cap * 2 : 16;
    struct modmap_entry *ne = realloc(map->e, ncap * sizeof *ne);
    if (ne == NULL)
      return -ENOMEM;
    map->e = ne;
    map->cap = ncap;
  }
  memmove(&map->e[pos + 1], &map->e[pos], (map->n - pos) * sizeof *map->e);
  map->e[pos] = (struct modmap_entry){lo, hi, bias, m};
  map->n++;
  return 0;
}

int col_modmap_remove(struct col_modmap *map, struct col_module *m)
{
  for (size_t i = 0; i < map->n; i++) {
    if (map->e[i].m == m) {
      memmove(&map->e[i], &map->e[i + 1], (map->n - i - 1) * sizeof *map->e);
      map->n--;
      return 0;
    }
  }
  return RS_E_NOT_FOUND;
}

struct col_module *col_modmap_find(const struct col_modmap *map, uint64_t pc, uint64_t *bias)
{
  size_t lo = 0, hi = map->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (map->e[mid].lo <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0 || pc >= map->e[lo - 1].hi)
    return NULL;
  if (bias)
    *bias = map->e[lo - 1].bias;
  return map->e[lo - 1].m;
}
