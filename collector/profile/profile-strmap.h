/* A string-interning map for the profile writers and readers: each distinct string gets the next index. */
#ifndef RSPROF_COL_PROFILE_STRMAP_H
#define RSPROF_COL_PROFILE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct pstrmap {
  char **keys;       /* owned copies, in insertion order: keys[index] */
  size_t count, keys_cap;
  uint32_t *slots;   /* index + 1; 0 = empty */
  size_t nslots;     /* power of two, at most half full */
};

void pstrmap_init(struct pstrmap *m);
void pstrmap_free(struct pstrmap *m);
/* Returns in *index the index of s (copied in when new; *added says whether it was). Returns 0 or -ENOMEM. */
int pstrmap_intern(struct pstrmap *m, const char *s, uint32_t *index, int *added);
/* Returns 1 and *index when s is present, else 0. */
int pstrmap_find(const struct pstrmap *m, const char *s, uint32_t *index);

#endif
