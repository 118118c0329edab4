/* Reads an ELF file's entry point address. */
#ifndef RSPROF_COL_ELF_ENTRY_H
#define RSPROF_COL_ELF_ENTRY_H

#include <stdint.h>

/* Stores e_entry (a link-time address) of the ELF file at path. Returns 0, -errno or RS_E_ELF. */
int elf_entry_point(const char *path, uint64_t *entry);

#endif
