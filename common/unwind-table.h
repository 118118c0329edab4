/* Compiled unwind tables: one module's CFA, return-address and frame-pointer rules as sorted address
 * ranges in a fixed little-endian byte format, their validation, lookup and the one-frame step that
 * walks them. Pure C with no allocation, so the agent, the in-process recorder and the collector share it.
 * The byte format is a wire format; docs/protocol.md ("Compiled unwind tables") specifies it. */
#ifndef RSPROF_UNWIND_TABLE_H
#define RSPROF_UNWIND_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define UTAB_MAGIC "RSUT"
#define UTAB_VERSION 1
#define UTAB_HEADER_SIZE 32
#define UTAB_ROW_SIZE 12

/* ELF machine numbers of the architectures a table may describe (arch_desc.elf_machine in arch.h);
 * repeated here so that this file links without the architecture tables. */
#define UTAB_MACHINE_X86_64 62
#define UTAB_MACHINE_AARCH64 183

/* What a row says about the addresses it covers. */
enum utab_kind {
  UTAB_ROW_NONE = 0,   /* no CFI covers these addresses: the walker asks the host */
  UTAB_ROW_FRAME = 1,  /* an ordinary frame the fields below describe */
  UTAB_ROW_HOST = 2,   /* CFI exists but uses rules the table cannot express: the walker asks the host */
  UTAB_ROW_END = 3,    /* the return address is undefined: the outermost frame (_start, thread start) */
};

enum utab_cfa_base { UTAB_CFA_SP = 0, UTAB_CFA_FP = 1 };  /* FP: rbp on x86_64, x29 on aarch64 */
enum utab_ra_rule { UTAB_RA_AT_CFA = 0, UTAB_RA_IN_LR = 1 };  /* IN_LR: aarch64 only (x30) */
enum utab_fp_rule { UTAB_FP_SAME = 0, UTAB_FP_AT_CFA = 1, UTAB_FP_UNDEF = 2 };

/* One decoded row. start is an offset from the table's base; the row covers [start, next row's start)
 * or, for the last row, [start, size). ra_off and fp_off are byte offsets from the CFA, multiples of 8
 * in -1024..1016 (what fits the encoding); they are meaningful only for the AT_CFA rules. */
struct utab_row {
  uint32_t start;
  uint8_t kind;       /* enum utab_kind */
  uint8_t cfa_base;   /* enum utab_cfa_base */
  uint8_t ra_rule;    /* enum utab_ra_rule */
  uint8_t fp_rule;    /* enum utab_fp_rule */
  uint8_t ra_signed;  /* aarch64: the saved return address carries a pointer-authentication code */
  int32_t cfa_off;
  int16_t ra_off;
  int16_t fp_off;
};

/* A checked table: the bytes stay borrowed from the caller for as long as the table is used. */
struct utab {
  const uint8_t *bytes;
  size_t len;
  uint16_t machine;
  uint32_t nrows;
  uint32_t size;   /* the table covers link-time addresses [base, base + size) */
  uint64_t base;
};

/* Checks that bytes[0..len) is a well-formed table: header, exact length, checksum, rows strictly
 * increasing inside the covered size, every field in range for the architecture. Never reads past len.
 * Returns 0 or RS_E_FORMAT. */
int utab_check(const uint8_t *bytes, size_t len);
/* utab_check, then fills t (which borrows bytes). Returns 0 or RS_E_FORMAT. */
int utab_open(struct utab *t, const uint8_t *bytes, size_t len);

/* Returns 1 when row can be encoded for machine (offsets in range, rules valid for the architecture). */
int utab_row_encodable(const struct utab_row *row, unsigned machine);
/* Writes the header for nrows rows into out[0..UTAB_HEADER_SIZE) (checksum left zero). */
void utab_put_header(uint8_t *out, unsigned machine, uint32_t nrows, uint64_t base, uint32_t size);
/* Writes row i's UTAB_ROW_SIZE bytes. Returns 0 or RS_E_BAD_ARG when the row is not encodable. */
int utab_put_row(uint8_t *out, const struct utab_row *row, unsigned machine);
/* Computes and stores the checksum of a complete table of len bytes (header and rows written). */
void utab_seal(uint8_t *bytes, size_t len);
/* Decodes row i (i < t->nrows) of a checked table. */
void utab_get_row(const struct utab *t, uint32_t i, struct utab_row *row);

/* Finds the row covering off (an offset from t->base) by binary search. Fills *row (kind NONE when no
 * row covers off, including outside [0, size)) and, when end is not NULL, *end with the offset where
 * the row stops applying. Returns the row's index, or RS_E_NOT_FOUND for an uncovered offset. */
long utab_lookup(const struct utab *t, uint64_t off, struct utab_row *row, uint64_t *end);

/* ---- walking ---- */

#define UTAB_HAVE_SP 1u
#define UTAB_HAVE_FP 2u
#define UTAB_HAVE_LR 4u  /* aarch64 x30; after a step also the raw return address on x86_64 */

/* The registers a table walk needs; have says which of sp, fp, lr are known (pc always is). */
struct utab_regs {
  uint64_t pc, sp, fp, lr;
  uint32_t have;
};

/* One module of the process: runtime addresses [lo, hi) map to link-time addresses by subtracting
 * bias. tab may be NULL (a module without a table: the walker asks the host). */
struct utab_module {
  uint64_t bias, lo, hi;
  const struct utab *tab;
};

/* Reads len bytes of target memory at addr into buf; returns 0, or a negative error when any of them
 * cannot be read. For the agent that is /proc/PID/mem or a captured stack window. */
struct utab_memory {
  int (*read)(void *ctx, uint64_t addr, void *buf, size_t len);
  void *ctx;
};

/* Step results: they are outcomes of a walk, not failures, so they are non-negative. */
enum utab_status {
  UTAB_OK = 0,          /* *out holds the caller's registers */
  UTAB_END = 1,         /* the outermost frame: undefined return address, or a return address of 0 */
  UTAB_NEED_HOST = 2,   /* no module, no table or no expressible row for this PC: unwind on the host */
  UTAB_BAD = 3,         /* the rules produced an impossible frame (missing base register, SP not moving up) */
  UTAB_UNREADABLE = 4,  /* the memory callback could not provide a saved value */
  UTAB_FULL = 5,        /* utab_walk only: the PC array is full */
};

/* Computes the caller's registers from in. exact is 1 for a frame whose PC is exact (frame 0): others
 * are looked up at pc - 1, inside their call instruction. Returns an enum utab_status; *out is written
 * only on UTAB_OK. */
int utab_step(const struct utab_module *mods, size_t nmods, const struct utab_memory *mem, int exact,
              const struct utab_regs *in, struct utab_regs *out);

/* Walks from regs as far as the tables reach: pcs[0] = regs->pc, pcs[i > 0] = return address - 1 (inside
 * the call instruction). Stores *n PCs (at most max) and returns the status that ended the walk:
 * UTAB_END, UTAB_NEED_HOST, UTAB_BAD, UTAB_UNREADABLE or UTAB_FULL. *last gets the registers of the
 * last frame stored, so that a host can resume from it; last may be NULL. */
int utab_walk(const struct utab_module *mods, size_t nmods, const struct utab_memory *mem,
              const struct utab_regs *regs, uint64_t *pcs, size_t max, size_t *n, struct utab_regs *last);

#endif
