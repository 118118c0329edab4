/* Loads the stack snapshots recorded by record-snapshots.py: modules with biases, registers, stack
 * bytes and gdb's backtrace per stop. Shared by the stack-truth test and the unwind benchmark. */
#ifndef RSPROF_TEST_UNWIND_SNAPSHOT_H
#define RSPROF_TEST_UNWIND_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "modmap.h"
#include "regs.h"

struct snap_frame {
  char *function;  /* gdb's name; "??" when gdb knew none */
  char *file;      /* NULL when gdb printed none */
  int line;
};

struct snap_stop {
  struct col_regs regs;
  uint64_t sp;
  uint8_t *stack;
  size_t len;
  struct snap_frame *bt;
  int nbt;
};

struct snap_set {
  struct col_module *mods[64];
  uint64_t bias[64];
  int nmods;
  struct col_modmap *map;
  struct snap_stop *stops;
  int nstops;
};

/* Loads dir; returns 0 or a negative error (message on stderr). Free with snap_set_free. */
int snap_set_load(const char *dir, struct snap_set *set);
void snap_set_free(struct snap_set *set);

#endif
