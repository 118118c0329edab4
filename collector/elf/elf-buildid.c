/* GNU build-id and ELF header reading through a reader callback, independent of libelf so that the same
 * code serves local files, memory images and remote files fetched piecewise over vFile. */
#include "elf-buildid.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "hex.h"

#define NOTES_MAX (256u << 10) /* larger note areas are not worth scanning */

struct hdr {
  int is_64, be;
  unsigned type, machine;
  uint64_t entry, phoff, shoff;
  unsigned phentsize, phnum, shentsize, shnum;
};

static uint64_t get(const uint8_t *p, size_t n, int be)
{
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t)p[be ? n - 1 - i : i] << (8 * i);
  return v;
}

static int read_exact(elf_read_fn rd, void *ctx, uint64_t off, void *buf, size_t len)
{
  size_t got = 0;
  int rc = rd(ctx, off, buf, len, &got);
  if (rc)
    return rc;
  return got == len ? 0 : RS_E_ELF;
}

static int read_hdr(elf_read_fn rd, void *ctx, struct hdr *h)
{
  uint8_t e[64];
  size_t got = 0;
  int rc = rd(ctx, 0, e, sizeof e, &got);
  if (rc)
    return rc;
  if (got < 52 || memcmp(e, ELFMAG, SELFMAG) != 0)
    return RS_E_ELF;
  if (e[EI_CLASS] != ELFCLASS32 && e[EI_CLASS] != ELFCLASS64)
    return RS_E_ELF;
  if (e[EI_DATA] != ELFDATA2LSB && e[EI_DATA] != ELFDATA2MSB)
    return RS_E_ELF;
  h->is_64 = e[EI_CLASS] == ELFCLASS64;
  h->be = e[EI_DATA] == ELFDATA2MSB;
  if (h->is_64 && got < 64)
    return RS_E_ELF;
  int be = h->be;
  h->type = (unsigned)get(e + 16, 2, be);
  h->machine = (unsigned)get(e + 18, 2, be);
  if (h->is_64) {
    h->entry = get(e + 24, 8, be);
    h->phoff = get(e + 32, 8, be);
    h->shoff = get(e + 40, 8, be);
    h->phentsize = (unsigned)get(e + 54, 2, be);
    h->phnum = (unsigned)get(e + 56, 2, be);
    h->shentsize = (unsigned)get(e + 58, 2, be);
    h->shnum = (unsigned)get(e + 60, 2, be);
  } else {
    h->entry = get(e + 24, 4, be);
    h->phoff = get(e + 28, 4, be);
    h->shoff = get(e + 32, 4, be);
    h->phentsize = (unsigned)get(e + 42, 2, be);
    h->phnum = (unsigned)get(e + 44, 2, be);
    h->shentsize = (unsigned)get(e + 46, 2, be);
    h->shnum = (unsigned)get(e + 48, 2, be);
  }
  if (h->phnum == PN_XNUM)
    h->phnum = 0; /* the real count lives in section 0; such files have no notes we need */
  return 0;
}

/* Scans a note area for the GNU build-id. Returns 0 when found. */
static int scan_notes(const uint8_t *n, size_t size, size_t align, int be, uint8_t *id, size_t max, size_t *len)
{
  size_t pos = 0;
  if (align != 8)
    align = 4;
  while (pos + 12 <= size) {
    uint64_t namesz = get(n + pos, 4, be), descsz = get(n + pos + 4, 4, be), type = get(n + pos + 8, 4, be);
    size_t name = pos + 12;
    /* Padding aligns the descriptor relative to the note area (which starts aligned), not to the name. */
    size_t desc = (size_t)((name + namesz + align - 1) & ~(uint64_t)(align - 1));
    if (namesz > size || descsz > size || desc > size || desc + descsz > size)
      break;
    if (type == NT_GNU_BUILD_ID && namesz == 4 && memcmp(n + name, "GNU", 4) == 0 && descsz > 0) {
      memcpy(id, n + desc, descsz < max ? descsz : max);
      *len = descsz;
      return 0;
    }
    pos = (size_t)((desc + descsz + align - 1) & ~(uint64_t)(align - 1));
  }
  return RS_E_NOT_FOUND;
}

static int notes_at(elf_read_fn rd, void *ctx, uint64_t off, uint64_t size, uint64_t align, int be, uint8_t *id,
                    size_t max, size_t *len)
{
  if (size == 0 || size > NOTES_MAX)
    return RS_E_NOT_FOUND;
  uint8_t *buf = malloc(size);
  if (!buf)
    return -ENOMEM;
  size_t got = 0;
  int rc = rd(ctx, off, buf, size, &got);
  if (rc == 0)
    rc = scan_notes(buf, got, align, be, id, max, len);
  free(buf);
  return rc;
}

int elf_build_id_read(elf_read_fn rd, void *ctx, uint8_t *id, size_t max, size_t *len)
{
  struct hdr h;
  int rc = read_hdr(rd, ctx, &h);
  if (rc)
    return rc;
  size_t phsz = h.is_64 ? 56 : 32, shsz = h.is_64 ? 64 : 40;
  if (h.phnum && h.phentsize >= phsz) {
    for (unsigned i = 0; i < h.phnum; i++) {
      uint8_t p[56];
      rc = read_exact(rd, ctx, h.phoff + (uint64_t)i * h.phentsize, p, phsz);
      if (rc)
        return rc;
      if (get(p, 4, h.be) != PT_NOTE)
        continue;
      uint64_t off = h.is_64 ? get(p + 8, 8, h.be) : get(p + 4, 4, h.be);
      uint64_t size = h.is_64 ? get(p + 32, 8, h.be) : get(p + 16, 4, h.be);
      uint64_t align = h.is_64 ? get(p + 48, 8, h.be) : get(p + 28, 4, h.be);
      rc = notes_at(rd, ctx, off, size, align, h.be, id, max, len);
      if (rc != RS_E_NOT_FOUND)
        return rc;
    }
  }
  /* Separate debug files and relocatable objects may carry the note only as a section. */
  if (h.shnum && h.shentsize >= shsz && h.shnum < 65280) {
    for (unsigned i = 0; i < h.shnum; i++) {
      uint8_t s[64];
      if (read_exact(rd, ctx, h.shoff + (uint64_t)i * h.shentsize, s, shsz))
        break;
      if (get(s + 4, 4, h.be) != SHT_NOTE)
        continue;
      uint64_t off = h.is_64 ? get(s + 24, 8, h.be) : get(s + 16, 4, h.be);
      uint64_t size = h.is_64 ? get(s + 32, 8, h.be) : get(s + 20, 4, h.be);
      uint64_t align = h.is_64 ? get(s + 48, 8, h.be) : get(s + 32, 4, h.be);
      rc = notes_at(rd, ctx, off, size, align, h.be, id, max, len);
      if (rc != RS_E_NOT_FOUND)
        return rc;
    }
  }
  return RS_E_NOT_FOUND;
}

int elf_basic_info_read(elf_read_fn rd, void *ctx, struct elf_basic_info *out)
{
  struct hdr h;
  int rc = read_hdr(rd, ctx, &h);
  if (rc)
    return rc;
  out->is_64 = h.is_64;
  out->big_endian = h.be;
  out->type = h.type;
  out->machine = h.machine;
  out->entry = h.entry;
  out->phdr_vaddr = UINT64_MAX;
  size_t phsz = h.is_64 ? 56 : 32;
  for (unsigned i = 0; h.phentsize >= phsz && i < h.phnum; i++) {
    uint8_t p[56];
    rc = read_exact(rd, ctx, h.phoff + (uint64_t)i * h.phentsize, p, phsz);
    if (rc)
      return rc;
    if (get(p, 4, h.be) == PT_PHDR) {
      out->phdr_vaddr = h.is_64 ? get(p + 16, 8, h.be) : get(p + 8, 4, h.be);
      break;
    }
  }
  return 0;
}

static int file_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *got)
{
  int fd = *(int *)ctx;
  *got = 0;
  while (*got < len) {
    ssize_t n = pread(fd, (uint8_t *)buf + *got, len - *got, (off_t)(off + *got));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      break;
    *got += (size_t)n;
  }
  return 0;
}

struct mem_ctx {
  const uint8_t *p;
  size_t len;
};

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *got)
{
  const struct mem_ctx *m = ctx;
  *got = 0;
  if (off >= m->len)
    return 0;
  *got = m->len - off < len ? (size_t)(m->len - off) : len;
  memcpy(buf, m->p + off, *got);
  return 0;
}

int elf_build_id_file(const char *path, uint8_t *id, size_t max, size_t *len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? RS_E_NOT_FOUND : -errno;
  int rc = elf_build_id_read(file_read, &fd, id, max, len);
  close(fd);
  return rc;
}

int elf_basic_info_file(const char *path, struct elf_basic_info *out)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? RS_E_NOT_FOUND : -errno;
  int rc = elf_basic_info_read(file_read, &fd, out);
  close(fd);
  return rc;
}

int elf_build_id_mem(const void *image, size_t len, uint8_t *id, size_t max, size_t *idlen)
{
  struct mem_ctx m = {image, len};
  return elf_build_id_read(mem_read, &m, id, max, idlen);
}

void elf_build_id_hex(const uint8_t *id, size_t len, char *out)
{
  hex_encode(out, id, len);
  out[2 * len] = 0;
}
