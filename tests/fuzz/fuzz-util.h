/* Small helpers shared by the fuzz targets: correcting RSP checksums so mutations reach the code behind
 * the framing, and a scratch folder for targets that need files. */
#ifndef RSPROF_FUZZ_UTIL_H
#define RSPROF_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Rewrites the two checksum digits after each "$...#" frame in buf to the right value, scanning the way
 * the decoder does (an escaped byte never ends a frame). A random checksum is right once in 256 tries,
 * so without this almost every mutated packet would die in the framing. */
static inline void fuzz_fix_checksums(uint8_t *buf, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  int in = 0;
  unsigned sum = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = buf[i];
    if (!in) {
      in = c == '$';
      sum = 0;
      continue;
    }
    if (c == '$') {
      sum = 0;
    } else if (c == '#') {
      if (i + 1 < len)
        buf[i + 1] = (uint8_t)hex[(sum >> 4) & 15];
      if (i + 2 < len)
        buf[i + 2] = (uint8_t)hex[sum & 15];
      i += 2;
      in = 0;
    } else {
      sum += c;
      /* After '}' any byte is data; after '*' any byte but '#' and '$' is the repeat count. */
      if ((c == '}' || (c == '*' && i + 1 < len && buf[i + 1] != '#' && buf[i + 1] != '$')) && i + 1 < len)
        sum += buf[++i];
    }
  }
}

/* The scratch folder scripts/fuzz made for this run (RSPROF_FUZZ_TMP), else a new one under /tmp. */
static inline const char *fuzz_scratch_dir(const char *name)
{
  const char *tmp = getenv("RSPROF_FUZZ_TMP");
  if (tmp)
    return tmp;
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/rsprof-fuzz-%s.XXXXXX", name);
  if (!mkdtemp(dir))
    abort();
  return dir;
}

#endif
