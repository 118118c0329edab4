/* The recorder's view of the unwind tables the agent shares: the table arena mapped read-only, and the
 * modules of this process with their tables, ready for utab_step. */
#ifndef RSPROF_RECORDER_TABLES_H
#define RSPROF_RECORDER_TABLES_H

#include <stddef.h>

#include "unwind-table.h"

/* The modules of this process as the walk takes them. The arrays stay valid until the next view is taken
 * by the same thread, whatever other threads do. */
struct rec_tables {
  const struct utab_module *mods;
  size_t nmods;
};

/* Maps the agent's table arena at path read-only. Returns 0 or -1 (the walk then uses frame pointers). */
int rec_tables_open(const char *path);
/* The current modules and tables (none before rec_tables_open succeeded). Signal-safe, allocation-free. */
void rec_tables_view(struct rec_tables *t);

#endif
