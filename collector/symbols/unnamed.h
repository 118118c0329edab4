/* Names for code addresses no symbol covers: the module's file name and the offset from its load address,
 * the same in every run whatever ASLR did, with the build-id alongside for a later re-symbolization. */
#ifndef RSPROF_COL_UNNAMED_H
#define RSPROF_COL_UNNAMED_H

#include <stddef.h>
#include <stdint.h>

/* Formats the names of a frame at link-time address offset in the module at module_path with this build-id
 * (may be NULL / 0 long): name "prog+0x1fc9" (the base name of module_path) and system_name
 * "prog+0x1fc9@<build-id in hex>" ("prog+0x1fc9" without a build-id). Returns 0, or RS_E_LIMIT when a buffer
 * is too small. */
int sym_unnamed_format(const char *module_path, const uint8_t *build_id, size_t build_id_len, uint64_t offset,
                       char *name, size_t name_len, char *system_name, size_t system_name_len);

/* Parses such a system_name (or a bare name): the module's base name (into base), the offset, and the
 * build-id's hex digits (into build_id, "" when there is none). Returns 0, or RS_E_NOT_FOUND when
 * system_name is not of that form. */
int sym_unnamed_parse(const char *system_name, char *base, size_t base_len, uint64_t *offset, char *build_id,
                      size_t build_id_len);

#endif
