/* The x86_64 table: gdb's amd64-linux register order, System V DWARF numbers and calling convention. */
#include "arch.h"

static const char *const features[] = {
    "org.gnu.gdb.i386.core",
    "org.gnu.gdb.i386.sse",
    "org.gnu.gdb.i386.linux",
    "org.gnu.gdb.i386.segments",
};

#define GPR(n, d) {n, 64, d, "int64", NULL, 0}
#define SEG(n, d) {n, 32, d, "int32", NULL, 0}
#define X87(n, d) {n, 80, d, "i387_ext", NULL, 0}
#define FPC(n, d) {n, 32, d, "int", "float", 0}
#define XMM(n, d) {n, 128, d, "uint128", NULL, 1}

static const struct arch_reg regs[] = {
    GPR("rax", 0), GPR("rbx", 3), GPR("rcx", 2), GPR("rdx", 1),
    GPR("rsi", 4), GPR("rdi", 5), {"rbp", 64, 6, "data_ptr", NULL, 0}, {"rsp", 64, 7, "data_ptr", NULL, 0},
    GPR("r8", 8), GPR("r9", 9), GPR("r10", 10), GPR("r11", 11),
    GPR("r12", 12), GPR("r13", 13), GPR("r14", 14), GPR("r15", 15),
    {"rip", 64, 16, "code_ptr", NULL, 0}, {"eflags", 32, 49, "int32", NULL, 0},
    SEG("cs", 51), SEG("ss", 52), SEG("ds", 53), SEG("es", 50), SEG("fs", 54), SEG("gs", 55),
    X87("st0", 33), X87("st1", 34), X87("st2", 35), X87("st3", 36),
    X87("st4", 37), X87("st5", 38), X87("st6", 39), X87("st7", 40),
    FPC("fctrl", 65), FPC("fstat", 66), FPC("ftag", -1), FPC("fiseg", -1),
    FPC("fioff", -1), FPC("foseg", -1), FPC("fooff", -1), FPC("fop", -1),
    XMM("xmm0", 17), XMM("xmm1", 18), XMM("xmm2", 19), XMM("xmm3", 20),
    XMM("xmm4", 21), XMM("xmm5", 22), XMM("xmm6", 23), XMM("xmm7", 24),
    XMM("xmm8", 25), XMM("xmm9", 26), XMM("xmm10", 27), XMM("xmm11", 28),
    XMM("xmm12", 29), XMM("xmm13", 30), XMM("xmm14", 31), XMM("xmm15", 32),
    {"mxcsr", 32, 64, "int", "vector", 1},
    {"orig_rax", 64, -1, "int", "system", 2},
    {"fs_base", 64, 58, "int", NULL, 3},
    {"gs_base", 64, 59, "int", NULL, 3},
};

static const uint8_t int3[] = {0xcc};

const struct arch_desc arch_x86_64 = {
    .name = "x86_64",
    .elf_machine = 62, /* EM_X86_64 */
    .gdb_arch = "i386:x86-64",
    .osabi = "GNU/Linux",
    .features = features,
    .nfeatures = sizeof features / sizeof features[0],
    .regs = regs,
    .nregs = sizeof regs / sizeof regs[0],
    .ncore_regs = 24, /* rax..gs */
    .pc_reg = 16,
    .sp_reg = 7,
    .fp_reg = 6,
    .lr_reg = -1,
    .dwarf_ra_column = 16,
    .dwarf_sp = 7,
    .dwarf_fp = 6,
    .dwarf_max = 17,
    .bkpt = int3,
    .bkpt_len = 1,
    .pc_after_bkpt = 1,
    .arg_regs = {5, 4, 3, 2, 8, 9}, /* rdi, rsi, rdx, rcx, r8, r9 */
    .narg_regs = 6,
    .ret_reg = 0,
    .stack_grows_down = 1,
    .insn_align = 1,
};
