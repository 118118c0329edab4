/* Architecture lookup and the pieces derived from the register tables. */
#include "arch.h"

#include <string.h>

#include "errors.h"

static const struct arch_desc *const all_arches[] = {&arch_x86_64, &arch_aarch64};
#define NARCHES (sizeof all_arches / sizeof all_arches[0])

const struct arch_desc *arch_by_name(const char *name)
{
  for (size_t i = 0; i < NARCHES; i++)
    if (strcmp(all_arches[i]->name, name) == 0)
      return all_arches[i];
  if (strcmp(name, "arm64") == 0 || strcmp(name, "amd64") == 0)
    return arch_by_name(name[1] == 'r' ? "aarch64" : "x86_64");
  return NULL;
}

const struct arch_desc *arch_by_elf_machine(unsigned machine)
{
  for (size_t i = 0; i < NARCHES; i++)
    if (all_arches[i]->elf_machine == machine)
      return all_arches[i];
  return NULL;
}

const struct arch_desc *arch_by_gdb_name(const char *gdb_arch)
{
  for (size_t i = 0; i < NARCHES; i++)
    if (strcmp(all_arches[i]->gdb_arch, gdb_arch) == 0)
      return all_arches[i];
  return arch_by_name(gdb_arch);
}

const struct arch_desc *arch_native(void)
{
#if defined(__x86_64__)
  return &arch_x86_64;
#elif defined(__aarch64__)
  return &arch_aarch64;
#else
  return NULL;
#endif
}

long arch_reg_offset(const struct arch_desc *a, int regno)
{
  if (regno < 0 || (size_t)regno >= a->nregs)
    return -1;
  long off = 0;
  for (int i = 0; i < regno; i++)
    off += a->regs[i].bits / 8;
  return off;
}

size_t arch_regs_size(const struct arch_desc *a)
{
  return (size_t)arch_reg_offset(a, (int)a->nregs - 1) + a->regs[a->nregs - 1].bits / 8;
}

int arch_reg_by_dwarf(const struct arch_desc *a, int dwarf)
{
  for (size_t i = 0; i < a->nregs; i++)
    if (a->regs[i].dwarf == dwarf)
      return (int)i;
  return -1;
}

int arch_reg_by_name(const struct arch_desc *a, const char *name)
{
  for (size_t i = 0; i < a->nregs; i++)
    if (strcmp(a->regs[i].name, name) == 0)
      return (int)i;
  return -1;
}

int arch_target_xml(const struct arch_desc *a, struct rs_buf *out)
{
  int rc = rs_buf_printf(out,
                         "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
                         "<target version=\"1.0\">\n<architecture>%s</architecture>\n"
                         "<osabi>%s</osabi>\n",
                         a->gdb_arch, a->osabi);
  for (size_t f = 0; f < a->nfeatures && !rc; f++) {
    rc = rs_buf_printf(out, "<feature name=\"%s\">\n", a->features[f]);
    for (size_t i = 0; i < a->nregs && !rc; i++) {
      const struct arch_reg *r = &a->regs[i];
      if (r->feature != f)
        continue;
      rc = rs_buf_printf(out, "<reg name=\"%s\" bitsize=\"%u\" type=\"%s\" regnum=\"%zu\"%s%s%s/>\n", r->name,
                         r->bits, r->type, i, r->group ? " group=\"" : "", r->group ? r->group : "",
                         r->group ? "\"" : "");
    }
    if (!rc)
      rc = rs_buf_puts(out, "</feature>\n");
  }
  if (!rc)
    rc = rs_buf_puts(out, "</target>\n");
  return rc;
}
