/* The session's breakpoint table: placing, sharing, parking and removing breakpoints, and running a hit's
 * owners. */
#include "breakpoints.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "rsp-client.h"
#include "u64map.h"

struct trace_bp *trace_bp_lookup(struct trace *tr, uint64_t addr)
{
  uint64_t idx;
  if (!u64map_get(&tr->bp_index, addr, &idx))
    return NULL;
  return &tr->bps[idx];
}

/* Owner-less breakpoints kept inserted at most; beyond this they are all removed. */
enum { MAX_PARKED_BPS = 4096 };
/* A parked breakpoint hit this often in a row without being wanted again is removed: its site is reached by
 * other paths too (a return site after a call that only sometimes ends in the watched function, by a tail
 * call), and each of those hits is a stop for nothing. */
enum { MAX_IDLE_HITS = 8 };

static int remove_parked(struct trace *tr);

/* Makes the agent record the breakpoint's hits quietly (1) or report them (0). */
static int set_quiet(struct trace *tr, struct trace_bp *bp, int quiet)
{
  int rc = rspc_request_ok(tr->c, "QRsprofQuiet:%llx,%d", (unsigned long long)bp->addr, quiet);
  if (rc == 0)
    bp->quiet = quiet;
  return rc;
}

static int break_at(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data, int quiet)
{
  struct trace_bp *bp = trace_bp_lookup(tr, addr);
  int fresh = !bp || bp->nowners == 0;
  if (bp && bp->nowners == 0) {
    tr->nparked--;
    bp->idle_hits = 0;
  }
  if (!bp) {
    if (tr->nfree_slots == 0 && tr->nbps == tr->bps_cap) {
      size_t cap = tr->bps_cap ? tr->bps_cap * 2 : 64;
      struct trace_bp *n = realloc(tr->bps, cap * sizeof *n);
      if (!n)
        return -ENOMEM;
      tr->bps = n;
      size_t *f = realloc(tr->free_slots, cap * sizeof *f); /* every slot may become free at once */
      if (!f)
        return -ENOMEM;
      tr->free_slots = f;
      tr->bps_cap = cap;
    }
    int rc = rspc_insert_breakpoint(tr->c, addr, (int)tr->arch->bkpt_len);
    if (rc) {
      LOG_WARN("cannot place a breakpoint at 0x%llx: %s", (unsigned long long)addr, rs_strerror(rc));
      return rc;
    }
    size_t slot = tr->nfree_slots ? tr->free_slots[--tr->nfree_slots] : tr->nbps++;
    bp = &tr->bps[slot];
    memset(bp, 0, sizeof *bp);
    bp->addr = addr;
    rc = u64map_put(&tr->bp_index, addr, slot);
    if (rc)
      return rc;
  }
  /* Quiet while every owner is: a first quiet owner makes it so, any ordinary owner ends it. */
  int want_quiet = quiet && rspc_features(tr->c)->quiet_break && (fresh || bp->quiet);
  if (want_quiet != bp->quiet) {
    int rc = set_quiet(tr, bp, want_quiet);
    if (rc && !want_quiet) {
      LOG_WARN("cannot make the breakpoint at 0x%llx report its hits: %s", (unsigned long long)addr, rs_strerror(rc));
      return rc;
    }
  }
  for (int i = 0; i < bp->nowners; i++)
    if (bp->owners[i].fn == fn && bp->owners[i].data == data) {
      bp->owners[i].refs++;
      return 0;
    }
  if (bp->nowners == TRACE_MAX_BP_OWNERS)
    return RS_E_LIMIT;
  bp->owners[bp->nowners].fn = fn;
  bp->owners[bp->nowners].data = data;
  bp->owners[bp->nowners].refs = 1;
  bp->nowners++;
  return 0;
}

int trace_break(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data)
{
  return break_at(tr, addr, fn, data, 0);
}

int trace_break_quiet(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data)
{
  return break_at(tr, addr, fn, data, 1);
}

int trace_unbreak(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data)
{
  struct trace_bp *bp = trace_bp_lookup(tr, addr);
  if (!bp)
    return RS_E_NOT_FOUND;
  for (int i = 0; i < bp->nowners; i++) {
    if (bp->owners[i].fn != fn || bp->owners[i].data != data)
      continue;
    if (--bp->owners[i].refs == 0) {
      bp->owners[i] = bp->owners[--bp->nowners];
    }
    if (bp->nowners == 0) {
      /* Parked, not removed: a return breakpoint is wanted again at the next call from the same site, and
       * leaving it in place saves two round trips per event. A parked hit is simply resumed. */
      if (++tr->nparked > MAX_PARKED_BPS)
        return remove_parked(tr);
    }
    return 0;
  }
  return RS_E_NOT_FOUND;
}

/* Removes one breakpoint from the target and the table; its slot is reused later. */
static int remove_bp(struct trace *tr, uint64_t addr, uint64_t slot)
{
  int rc = rspc_remove_breakpoint(tr->c, addr, (int)tr->arch->bkpt_len);
  u64map_del(&tr->bp_index, addr, NULL);
  tr->free_slots[tr->nfree_slots++] = (size_t)slot; /* room reserved when the table grew */
  return rc;
}

static int remove_parked(struct trace *tr)
{
  int rc = 0;
  size_t pos = 0;
  uint64_t addr, slot;
  while (u64map_next(&tr->bp_index, &pos, &addr, &slot)) {
    if (tr->bps[slot].nowners == 0) {
      int r = remove_bp(tr, addr, slot);
      rc = rc ? rc : r; /* deleting leaves a tombstone, so the walk goes on safely */
    }
  }
  tr->nparked = 0;
  return rc;
}

int trace_remove_owner(struct trace *tr, trace_bp_fn fn, void *data)
{
  int rc = 0;
  size_t pos = 0;
  uint64_t addr, slot;
  while (u64map_next(&tr->bp_index, &pos, &addr, &slot)) {
    struct trace_bp *bp = &tr->bps[slot];
    for (int i = 0; i < bp->nowners; i++) {
      if (bp->owners[i].fn != fn || bp->owners[i].data != data)
        continue;
      bp->owners[i] = bp->owners[--bp->nowners];
      if (bp->nowners == 0) {
        int r = remove_bp(tr, addr, slot);
        rc = rc ? rc : r; /* deleting leaves a tombstone, so the walk goes on safely */
      }
      break;
    }
  }
  return rc;
}

void trace_bp_remove_all(struct trace *tr)
{
  size_t pos = 0;
  uint64_t addr, idx;
  while (u64map_next(&tr->bp_index, &pos, &addr, &idx))
    remove_bp(tr, addr, idx);
  tr->nparked = 0;
}

int trace_bp_uninsert_all(struct trace *tr)
{
  int rc = 0;
  size_t pos = 0;
  uint64_t addr, slot;
  while (u64map_next(&tr->bp_index, &pos, &addr, &slot)) {
    int r = rspc_remove_breakpoint(tr->c, addr, (int)tr->arch->bkpt_len);
    rc = rc ? rc : r;
  }
  return rc;
}

int trace_bp_reinsert_all(struct trace *tr)
{
  int rc = 0;
  size_t pos = 0;
  uint64_t addr, slot;
  while (u64map_next(&tr->bp_index, &pos, &addr, &slot)) {
    int r = rspc_insert_breakpoint(tr->c, addr, (int)tr->arch->bkpt_len);
    if (r)
      LOG_WARN("cannot put the breakpoint at 0x%llx back: %s", (unsigned long long)addr, rs_strerror(r));
    rc = rc ? rc : r;
  }
  return rc;
}

void trace_bp_forget_all(struct trace *tr)
{
  size_t pos = 0;
  uint64_t addr, slot;
  while (u64map_next(&tr->bp_index, &pos, &addr, &slot)) {
    u64map_del(&tr->bp_index, addr, NULL);
    tr->free_slots[tr->nfree_slots++] = (size_t)slot;
  }
  tr->nparked = 0;
}

struct trace_bp *trace_bp_at_trap(struct trace *tr, uint64_t pc)
{
  struct trace_bp *bp = trace_bp_lookup(tr, pc);
  if (!bp && tr->arch->pc_after_bkpt)
    bp = trace_bp_lookup(tr, pc - tr->arch->pc_after_bkpt);
  return bp;
}

int trace_bp_dispatch(struct trace *tr, struct trace_bp *bp, const struct trace_hit *hit)
{
  tr->breakpoint_stops++;
  if (bp->nowners == 0 && ++bp->idle_hits >= MAX_IDLE_HITS) {
    uint64_t slot = (uint64_t)(bp - tr->bps);
    tr->nparked--;
    return remove_bp(tr, bp->addr, slot);
  }
  tr->hit_node_valid = 0;
  /* Handlers may add or remove breakpoints (and so move the table): work on a copy of the owners. */
  struct trace_bp_owner owners[TRACE_MAX_BP_OWNERS];
  int nowners = bp->nowners;
  memcpy(owners, bp->owners, sizeof owners);
  for (int i = 0; i < nowners; i++) {
    int rc = owners[i].fn(tr, hit, owners[i].data);
    if (rc)
      LOG_WARN("handler at 0x%llx failed: %s", (unsigned long long)hit->addr, rs_strerror(rc));
  }
  return 0;
}
