/* Architecture tables: register layouts, DWARF numbering, breakpoint instructions and calling conventions.
 * They are data, chosen at run time from an ELF machine or a name, so one collector serves any board. */
#ifndef RSPROF_ARCH_H
#define RSPROF_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* One register in the order of the 'g' packet (which is also gdb's register numbering). */
struct arch_reg {
  const char *name;
  uint16_t bits;
  int16_t dwarf;       /* DWARF register number, or -1 */
  const char *type;    /* target description type: int, code_ptr, data_ptr, i387_ext, ... */
  const char *group;   /* target description group, or NULL */
  uint8_t feature;     /* index into arch_desc.features */
};

#define ARCH_MAX_ARGS 8

struct arch_desc {
  const char *name;          /* "x86_64", "aarch64" */
  uint16_t elf_machine;      /* EM_X86_64, EM_AARCH64 */
  const char *gdb_arch;      /* <architecture> in the target description */
  const char *osabi;         /* "GNU/Linux" */
  const char *const *features; /* feature names, indexed by arch_reg.feature */
  size_t nfeatures;
  const struct arch_reg *regs; /* in 'g' packet order */
  size_t nregs;
  size_t ncore_regs;         /* the leading registers every gdbserver sends at the same offsets */
  int pc_reg, sp_reg, fp_reg; /* register numbers (indexes into regs) */
  int lr_reg;                /* link register, or -1 when the return address is on the stack */
  int dwarf_ra_column;       /* CFI column of the return address */
  int dwarf_sp, dwarf_fp;    /* DWARF numbers of SP and FP */
  int dwarf_max;             /* highest DWARF number the unwinder tracks, plus one */
  const uint8_t *bkpt;       /* software breakpoint instruction */
  size_t bkpt_len;
  size_t pc_after_bkpt;      /* how far the PC has moved past the breakpoint address at the trap */
  int arg_regs[ARCH_MAX_ARGS]; /* integer argument registers (register numbers) */
  int narg_regs;
  int ret_reg;               /* integer return value register */
  int stack_grows_down;
  size_t insn_align;         /* minimum instruction alignment */
};

extern const struct arch_desc arch_x86_64;
extern const struct arch_desc arch_aarch64;

/* Looks an architecture up; each returns NULL when unknown. */
const struct arch_desc *arch_by_name(const char *name);
const struct arch_desc *arch_by_elf_machine(unsigned machine);
/* Accepts gdb's names from a target description ("i386:x86-64", "aarch64"). */
const struct arch_desc *arch_by_gdb_name(const char *gdb_arch);
/* The architecture this program was compiled for, or NULL. */
const struct arch_desc *arch_native(void);

/* Byte offset of register regno in the 'g' packet's binary form, or -1 if out of range. */
long arch_reg_offset(const struct arch_desc *a, int regno);
/* Total size in bytes of all registers in the 'g' packet. */
size_t arch_regs_size(const struct arch_desc *a);
/* Register number (index into regs) for a DWARF number, or -1. */
int arch_reg_by_dwarf(const struct arch_desc *a, int dwarf);
/* Register number for a name, or -1. */
int arch_reg_by_name(const struct arch_desc *a, const char *name);

/* Appends the target description XML (gdb's "target.xml") for this architecture. */
int arch_target_xml(const struct arch_desc *a, struct rs_buf *out);

#endif
