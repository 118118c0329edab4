/* Screens a module's DWARF for damage that Debian 12's libdwarf mishandles (memory corruption, not an error). */
#ifndef RSPROF_COL_DWARF_SCREEN_H
#define RSPROF_COL_DWARF_SCREEN_H

#include "module.h"

/* Returns 0 when m's (or its debug file's) .debug_rnglists and .debug_line headers are safe to give libdwarf,
 * else -1 with *why naming what is damaged (a static string). */
int dwarf_screen(const struct col_module *m, const char **why);

#endif
