/* Reads an ELF file's entry point address with libelf. */
#include "elf-entry.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include "errors.h"

int elf_entry_point(const char *path, uint64_t *entry)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = RS_E_ELF;
  elf_version(EV_CURRENT);
  Elf *e = elf_begin(fd, ELF_C_READ, NULL);
  GElf_Ehdr eh;
  if (e && gelf_getehdr(e, &eh)) {
    *entry = eh.e_entry;
    rc = 0;
  }
  if (e)
    elf_end(e);
  close(fd);
  return rc;
}
