/* String interning with an open-addressing table of indexes into an insertion-ordered key array. */
#include "profile-strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: short strings, no need for more */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h ^ (h >> 32);
}

void pstrmap_init(struct pstrmap *m)
{
  memset(m, 0, sizeof *m);
}

void pstrmap_free(struct pstrmap *m)
{
  for (size_t i = 0; i < m->count; i++)
    free(m->keys[i]);
  free(m->keys);
  free(m->slots);
  pstrmap_init(m);
}

static int rehash(struct pstrmap *m)
{
  size_t n = m->nslots ? m->nslots * 2 : 256;
  uint32_t *s = calloc(n, sizeof *s);
  if (!s)
    return -ENOMEM;
  for (size_t k = 0; k < m->count; k++) {
    size_t i = hash_str(m->keys[k]) & (n - 1);
    while (s[i])
      i = (i + 1) & (n - 1);
    s[i] = (uint32_t)k + 1;
  }
  free(m->slots);
  m->slots = s;
  m->nslots = n;
  return 0;
}

static size_t probe(const struct pstrmap *m, const char *s, int *found)
{
  size_t i = hash_str(s) & (m->nslots - 1);
  for (; m->slots[i]; i = (i + 1) & (m->nslots - 1)) {
    if (strcmp(m->keys[m->slots[i] - 1], s) == 0) {
      *found = 1;
      return i;
    }
  }
  *found = 0;
  return i;
}

int pstrmap_find(const struct pstrmap *m, const char *s, uint32_t *index)
{
  int found;
  if (!m->nslots)
    return 0;
  size_t i = probe(m, s, &found);
  if (found)
    *index = m->slots[i] - 1;
  return found;
}

int pstrmap_intern(struct pstrmap *m, const char *s, uint32_t *index, int *added)
{
  int found, rc;
  if (added)
    *added = 0;
  if ((m->count + 1) * 2 > m->nslots && (rc = rehash(m)) < 0)
    return rc;
  size_t i = probe(m, s, &found);
  if (found) {
    *index = m->slots[i] - 1;
    return 0;
  }
  if (m->count >= UINT32_MAX - 1)
    return -ENOMEM;
  if (m->count == m->keys_cap) {
    size_t cap = m->keys_cap ? m->keys_cap * 2 : 64;
    char **k = realloc(m->keys, cap * sizeof *k);
    if (!k)
      return -ENOMEM;
    m->keys = k;
    m->keys_cap = cap;
  }
  char *copy = strdup(s);
  if (!copy)
    return -ENOMEM;
  m->keys[m->count] = copy;
  m->slots[i] = (uint32_t)m->count + 1;
  *index = (uint32_t)m->count++;
  if (added)
    *added = 1;
  return 0;
}
