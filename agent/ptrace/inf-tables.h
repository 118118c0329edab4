/* The agent's table arena (common/table-arena.h): one bounded memfd mapping, shared, holding the unwind
 * tables the collector uploaded and each traced process's module map. The in-process recorder maps the same
 * memfd read-only; the agent's capture walks with it. One per agent: tables outlive clients and processes. */
#ifndef RSPROF_AGENT_INF_TABLES_H
#define RSPROF_AGENT_INF_TABLES_H

#include <stddef.h>
#include <stdint.h>

#define INF_TABLES_SIZE (4u << 20) /* the arena's bytes (pages are only resident once written) */

/* The arena, created on first use (memfd_create + mmap MAP_SHARED), or NULL when it cannot be (logged once).
 * *size gets its length when size is not NULL. Valid for the agent's life. */
void *inf_tables_arena(size_t *size);
/* The arena's memfd (for the in-process recorder to map read-only) and its size; a negative code when there
 * is no arena. The descriptor stays the agent's: callers dup or pass it, never close it. */
int inf_tables_memfd(size_t *size);

/* Drops the module maps of processes that no longer exist, so that a long-lived agent (--multi) never runs out
 * of the arena's process entries. */
void inf_tables_forget_dead(void);

#endif
