/* Reads an ELF file's GNU build-id (and a few header fields) from a file, a memory image, or any reader,
 * looking only at the header, the program headers and the notes, so a remote file needs a few small reads. */
#ifndef RSPROF_COL_ELF_BUILDID_H
#define RSPROF_COL_ELF_BUILDID_H

#include <stddef.h>
#include <stdint.h>

#define ELF_BUILD_ID_MAX 64

/* Reads len bytes at offset; returns 0 with *got (short at end of file) or a negative error. */
typedef int (*elf_read_fn)(void *ctx, uint64_t offset, void *buf, size_t len, size_t *got);

/* Header fields the collector needs before it opens a file with libelf. */
struct elf_basic_info {
  int is_64, big_endian;
  unsigned type;    /* ET_EXEC, ET_DYN... */
  unsigned machine; /* EM_X86_64, EM_AARCH64... */
  uint64_t entry;
  uint64_t phdr_vaddr; /* PT_PHDR's p_vaddr, or UINT64_MAX when absent */
};

/* Finds the NT_GNU_BUILD_ID note (PT_NOTE segments, then SHT_NOTE sections). Copies at most max bytes of
 * it to id and its full length to *len. Returns 0, RS_E_NOT_FOUND (no build-id), RS_E_ELF (not ELF or
 * damaged), or the reader's error. */
int elf_build_id_read(elf_read_fn read, void *ctx, uint8_t *id, size_t max, size_t *len);
int elf_build_id_file(const char *path, uint8_t *id, size_t max, size_t *len);
/* The same on an in-memory prefix of a file (notes beyond len are not found). */
int elf_build_id_mem(const void *elf_image_prefix, size_t len, uint8_t *id, size_t max, size_t *idlen);

/* Reads the header fields. Returns 0, RS_E_ELF or the reader's error. */
int elf_basic_info_read(elf_read_fn read, void *ctx, struct elf_basic_info *out);
int elf_basic_info_file(const char *path, struct elf_basic_info *out);

/* Writes a build-id as lowercase hex (2*len+1 bytes of out needed). */
void elf_build_id_hex(const uint8_t *id, size_t len, char *out);

#endif
