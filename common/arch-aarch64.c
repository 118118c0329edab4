/* The aarch64 table: gdb's aarch64-linux register order, AAPCS64 DWARF numbers and calling convention. */
#include "arch.h"

static const char *const features[] = {
    "org.gnu.gdb.aarch64.core",
    "org.gnu.gdb.aarch64.fpu",
};

#define X(n) {"x" #n, 64, n, "int", NULL, 0}
#define V(n) {"v" #n, 128, 64 + n, "uint128", NULL, 1}

static const struct arch_reg regs[] = {
    X(0), X(1), X(2), X(3), X(4), X(5), X(6), X(7), X(8), X(9), X(10),
    X(11), X(12), X(13), X(14), X(15), X(16), X(17), X(18), X(19), X(20),
    X(21), X(22), X(23), X(24), X(25), X(26), X(27), X(28), X(29), X(30),
    {"sp", 64, 31, "data_ptr", NULL, 0},
    {"pc", 64, -1, "code_ptr", NULL, 0},
    {"cpsr", 32, -1, "int", NULL, 0},
    V(0), V(1), V(2), V(3), V(4), V(5), V(6), V(7), V(8), V(9), V(10),
    V(11), V(12), V(13), V(14), V(15), V(16), V(17), V(18), V(19), V(20),
    V(21), V(22), V(23), V(24), V(25), V(26), V(27), V(28), V(29), V(30), V(31),
    {"fpsr", 32, -1, "int", NULL, 1},
    {"fpcr", 32, -1, "int", NULL, 1},
};

static const uint8_t brk0[] = {0x00, 0x00, 0x20, 0xd4}; /* brk #0 */

const struct arch_desc arch_aarch64 = {
    .name = "aarch64",
    .elf_machine = 183, /* EM_AARCH64 */
    .gdb_arch = "aarch64",
    .osabi = "GNU/Linux",
    .features = features,
    .nfeatures = sizeof features / sizeof features[0],
    .regs = regs,
    .nregs = sizeof regs / sizeof regs[0],
    .ncore_regs = 34, /* x0..x30, sp, pc, cpsr */
    .pc_reg = 32,
    .sp_reg = 31,
    .fp_reg = 29,
    .lr_reg = 30,
    .dwarf_ra_column = 30,
    .dwarf_sp = 31,
    .dwarf_fp = 29,
    .dwarf_max = 32,
    .bkpt = brk0,
    .bkpt_len = 4,
    .pc_after_bkpt = 0,
    .arg_regs = {0, 1, 2, 3, 4, 5, 6, 7},
    .narg_regs = 8,
    .ret_reg = 0,
    .stack_grows_down = 1,
    .insn_align = 4,
};
