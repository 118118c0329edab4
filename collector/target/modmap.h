/* The target's address space as the unwinder sees it: modules placed at their load biases. */
#ifndef RSPROF_COL_MODMAP_H
#define RSPROF_COL_MODMAP_H

#include <stdint.h>

#include "module.h"

struct col_modmap;

/* Creates an empty map; free it with col_modmap_free, which does NOT close the modules. Returns 0 or -ENOMEM. */
int col_modmap_new(struct col_modmap **out);
void col_modmap_free(struct col_modmap *map);
/* Places m (borrowed; must outlive its presence in the map) at bias: its range is its PT_LOAD vaddr
 * range plus bias. Returns 0, -ENOMEM, or -EEXIST if the range overlaps a module already present. */
int col_modmap_add(struct col_modmap *map, struct col_module *m, uint64_t bias);
/* Removes m. Returns 0 or RS_E_NOT_FOUND. */
int col_modmap_remove(struct col_modmap *map, struct col_module *m);
/* Finds the module containing pc (binary search); returns it (and its bias in *bias) or NULL. */
struct col_module *col_modmap_find(const struct col_modmap *map, uint64_t pc, uint64_t *bias);

#endif
