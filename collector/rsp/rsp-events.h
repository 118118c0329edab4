/* Reading rsprof-capture event batches: the records of one "RsprofEvents:" notification, one at a time. */
#ifndef RSPROF_COL_RSP_EVENTS_H
#define RSPROF_COL_RSP_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "capture-records.h"

#define RSPC_EVENT_MAX_REGS 64

/* One record; pointers borrow from the batch. */
struct rspc_event {
  int kind;           /* enum cap_record_kind; kinds this reader does not know come with only the header */
  int flags;          /* CAP_FLAG_* */
  uint32_t tid, id;
  uint64_t seq, ns;
  uint64_t regmask;   /* ENTRY: registers present (gdb numbers), values in regs[regno] */
  uint64_t regs[RSPC_EVENT_MAX_REGS];
  uint64_t pc, sp, retval; /* RETURN */
  const uint8_t *mem, *stack; /* ENTRY: memory and stack window; RETURN: memory */
  size_t mem_len, stack_len;
  uint64_t stats[CAP_STATS_N]; /* STATS: events, held_ns, parked, watch_overflows, calls, stacks, raw, resets */
};

/* Whether a notification payload is an event batch; *records then points past its name. */
int rspc_events_batch(const uint8_t *payload, size_t len, const uint8_t **records, size_t *records_len);
/* Parses the record at *p (before end), advancing *p past it. Returns 1 with *ev, 0 at the end, or RS_E_PROTO
 * for a record that does not fit its length (the rest of the batch is then unreadable). */
int rspc_next_event(const uint8_t **p, const uint8_t *end, struct rspc_event *ev);

#endif
