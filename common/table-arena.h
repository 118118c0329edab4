/* The table arena: one bounded block of shared memory (the agent's memfd, mapped read-only into traced
 * processes by the in-process recorder) holding the compiled unwind tables uploaded by build-id and each
 * traced process's module map, with a seqlock so that a reader in another process copies a consistent
 * view. Pure C, no allocation: the writer (agent) and readers (agent, recorder) share it. The byte layout
 * is below; docs/protocol.md ("Unwind tables on the board") describes its use. */
#ifndef RSPROF_TABLE_ARENA_H
#define RSPROF_TABLE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "unwind-table.h"

#define TARENA_MAGIC 0x41545352u /* "RSTA" */
#define TARENA_VERSION 1
#define TARENA_MAX_TABLES 256
#define TARENA_MAX_PROCS 16
#define TARENA_MAX_MODS 256   /* per process */
#define TARENA_BUILD_ID_MAX 32
#define TARENA_NO_TABLE 0xffffffffu

/* Layout, host byte order (the arena never leaves the board), every offset from the arena's start:
 * struct tarena_header at 0, then TARENA_MAX_TABLES struct tarena_table, then TARENA_MAX_PROCS struct
 * tarena_proc, then table bytes up to size, each table 8-aligned. */
enum tarena_state { TARENA_EMPTY = 0, TARENA_LOADING = 1, TARENA_READY = 2, TARENA_BAD = 3 };

struct tarena_header {
  uint32_t magic, version;
  uint32_t seq;        /* seqlock: odd while the writer changes the directories or a module map */
  uint32_t ntables;    /* table directory entries used */
  uint64_t size;       /* the arena's length in bytes */
  uint64_t used;       /* table bytes end here (a bump allocator: tables are never freed) */
  uint64_t reserved[4];
};

struct tarena_table {
  uint8_t build_id[TARENA_BUILD_ID_MAX];
  uint8_t build_id_len;
  uint8_t state;       /* enum tarena_state */
  uint8_t pad[6];
  uint64_t off;        /* the table's bytes: [off, off + len) */
  uint32_t len;
  uint32_t received;   /* bytes uploaded so far (LOADING) */
};

struct tarena_mod {
  uint64_t lo, hi, bias; /* runtime addresses [lo, hi) are link-time addresses + bias */
  uint32_t table;        /* directory index, or TARENA_NO_TABLE (no CFI: the walk asks the host) */
  uint32_t pad;
};

struct tarena_proc {
  int32_t pid;           /* 0: a free entry */
  uint32_t nmods;
  struct tarena_mod mods[TARENA_MAX_MODS];
};

#define TARENA_DATA_START \
  ((sizeof(struct tarena_header) + TARENA_MAX_TABLES * sizeof(struct tarena_table) + \
    TARENA_MAX_PROCS * sizeof(struct tarena_proc) + 7) & ~(size_t)7)

/* ---- writer (one, the agent) ---- */

/* Lays out an empty arena in mem[0..len). Returns 0, or RS_E_BAD_ARG when len cannot hold the directories. */
int tarena_init(void *mem, size_t len);
/* The directory index of the table for build-id bid, or -1 (*state gets its state when found). */
long tarena_find(const void *arena, const uint8_t *bid, size_t bid_len, int *state);
/* Receives bytes [off, off + n) of the total-byte table for bid, in order (off = what was received). The
 * first chunk reserves its room. When the last arrives the table is checked (utab_check) and becomes ready.
 * Returns 0 (more expected), 1 (ready), RS_E_LIMIT (no room: nothing kept), RS_E_FORMAT (a bad table: kept
 * as BAD, never used), RS_E_BAD_ARG (out of order, a size change, an oversized build-id). A chunk of a table
 * that is ready already returns 1 and changes nothing. */
int tarena_put_chunk(void *arena, const uint8_t *bid, size_t bid_len, uint32_t off, uint32_t total,
                     const uint8_t *data, size_t n);
/* Empties pid's module map (a new process image, a new client). Returns 0 or RS_E_LIMIT (no process entry). */
int tarena_clear_modules(void *arena, int pid);
/* Adds a module to pid's map, with the ready table of bid or none (bid_len 0, or no such ready table).
 * Returns 1 when it has a table, 0 when not, or RS_E_LIMIT. */
int tarena_add_module(void *arena, int pid, uint64_t lo, uint64_t hi, uint64_t bias, const uint8_t *bid,
                      size_t bid_len);
/* Forgets pid (its process ended). */
void tarena_drop_process(void *arena, int pid);

/* ---- readers ---- */

/* The seqlock's value: a reader's snapshot stays current while it does not change. */
uint32_t tarena_generation(const void *arena);
/* Copies a consistent view of pid's module map into mods[0..*n) (at most max), each module's tab pointing at
 * tabs[i], which borrows the arena's bytes (NULL for a module without a table). Returns 0, RS_E_NOT_FOUND
 * (no such process), RS_E_FORMAT (not an arena, or a table that does not check) or RS_E_TIMEOUT (the writer
 * kept changing it). */
int tarena_snapshot(const void *arena, size_t len, int pid, struct utab_module *mods, struct utab *tabs,
                    size_t max, size_t *n);

#endif
