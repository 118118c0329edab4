/* Module+offset names for frames without a symbol, and their parser for re-symbolization. */
#include "unnamed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

int sym_unnamed_format(const char *module_path, const uint8_t *build_id, size_t build_id_len, uint64_t offset,
                       char *name, size_t name_len, char *system_name, size_t system_name_len)
{
  const char *slash = strrchr(module_path, '/');
  const char *base = slash ? slash + 1 : module_path;
  int n = snprintf(name, name_len, "%s+0x%" PRIx64, base, offset);
  if (n < 0 || (size_t)n >= name_len)
    return RS_E_LIMIT;
  int k = snprintf(system_name, system_name_len, "%s", name);
  if (k < 0 || (size_t)k >= system_name_len)
    return RS_E_LIMIT;
  if (build_id && build_id_len) {
    if ((size_t)k + 2 + 2 * build_id_len > system_name_len)
      return RS_E_LIMIT;
    system_name[k++] = '@';
    for (size_t i = 0; i < build_id_len; i++, k += 2)
      snprintf(system_name + k, 3, "%02x", build_id[i]);
  }
  return 0;
}

int sym_unnamed_parse(const char *system_name, char *base, size_t base_len, uint64_t *offset, char *build_id,
                      size_t build_id_len)
{
  const char *at = strrchr(system_name, '@');
  const char *plus = strrchr(system_name, '+');
  if (!plus || plus == system_name || (at && at < plus) || strncmp(plus, "+0x", 3) != 0)
    return RS_E_NOT_FOUND;
  char *end;
  uint64_t off = strtoull(plus + 3, &end, 16);
  if (end == plus + 3 || end != (at ? at : plus + strlen(plus)))
    return RS_E_NOT_FOUND;
  size_t idlen = at ? strlen(at + 1) : 0;
  if (idlen % 2 || idlen >= build_id_len || strspn(at ? at + 1 : "", "0123456789abcdef") != idlen)
    return RS_E_NOT_FOUND;
  size_t blen = (size_t)(plus - system_name);
  if (blen >= base_len || memchr(system_name, '/', blen))
    return RS_E_NOT_FOUND;
  memcpy(base, system_name, blen);
  base[blen] = 0;
  memcpy(build_id, at ? at + 1 : "", idlen + 1);
  *offset = off;
  return 0;
}
