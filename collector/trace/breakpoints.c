/* The session's breakpoint table: placing, sharing, parking and removing breakpoints, and running a hit's
 * owners. */
#include "breakpoints.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
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

enum { OP_INSERT, OP_REMOVE, OP_QUIET_OFF, OP_QUIET_ON, OP_CAPTURE };

/* Tells the agent what a hit on bp records (QRsprofCapture), or that it is an ordinary breakpoint again. With a
 * stack every core register comes, since the unwinder may need any of them. */
static int arm_capture(struct trace *tr, struct trace_bp *bp)
{
  if (!bp->capture)
    return rspc_request_ok(tr->c, "QRsprofCapture:%llx", (unsigned long long)bp->addr);
  const struct arch_desc *a = tr->arch;
  const struct trace_capture_spec *s = &bp->cspec;
  int last = a->pc_reg > a->sp_reg ? a->pc_reg : a->sp_reg;
  uint64_t mask = 1ull << a->sp_reg;
  if (s->stack) {
    mask = last >= 63 ? ~0ull : (2ull << last) - 1;
  } else {
    for (int i = 0; i < s->nargs && i < a->narg_regs; i++)
      mask |= 1ull << a->arg_regs[i];
    if (s->ret && a->lr_reg >= 0)
      mask |= 1ull << a->lr_reg; /* where the call returns to */
  }
  /* Without a window an x86_64 return address still needs the word at sp. */
  size_t stack = s->stack ? tr->capture_stack : s->ret && a->lr_reg < 0 ? 8 : 0;
  char m[64] = "", rm[64] = "", am[64] = "";
  if (tr->agent_tables) { /* compact records: the arguments only, and the stack unwound by the agent */
    uint64_t args = 0;
    for (int i = 0; i < s->nargs && i < a->narg_regs; i++)
      args |= 1ull << a->arg_regs[i];
    snprintf(am, sizeof am, ";a:%llx,%d", (unsigned long long)args, s->stack ? 1 : 0);
  }
  if (s->mem_len)
    snprintf(m, sizeof m, ";m:%x,%llx,%x", (unsigned)a->arg_regs[s->mem_arg], (unsigned long long)s->mem_off,
             (unsigned)s->mem_len);
  if (s->rmem_len)
    snprintf(rm, sizeof rm, ";M:%x,%llx,%x", (unsigned)a->arg_regs[s->rmem_arg], (unsigned long long)s->rmem_off,
             (unsigned)s->rmem_len);
  return rspc_request_ok(tr->c, "QRsprofCapture:%llx,%x,%llx,%zx,%d%s%s%s", (unsigned long long)bp->addr,
                         (unsigned)bp->capture_id, (unsigned long long)mask, stack, s->ret ? 1 : 0, m, rm, am);
}

/* Sends one breakpoint operation, or, while a streamed event's handlers run (the program runs on, so no
 * request can be answered), queues it for the next stop (trace_bp_apply_deferred). */
static int target_op(struct trace *tr, uint64_t addr, int op)
{
  if (tr->in_stream_event) {
    struct trace_deferred_op *n = rs_grow(tr->deferred, &tr->deferred_cap, tr->ndeferred + 1, sizeof *n, 16);
    if (!n)
      return -ENOMEM;
    tr->deferred = n;
    tr->deferred[tr->ndeferred++] = (struct trace_deferred_op){addr, op};
    return 0;
  }
  int kind = (int)tr->arch->bkpt_len;
  switch (op) {
  case OP_INSERT:
    return rspc_insert_breakpoint(tr->c, addr, kind);
  case OP_REMOVE:
    return rspc_remove_breakpoint(tr->c, addr, kind);
  case OP_QUIET_OFF:
  case OP_QUIET_ON:
    return rspc_request_ok(tr->c, "QRsprofQuiet:%llx,%d", (unsigned long long)addr, op == OP_QUIET_ON);
  default: {
    struct trace_bp *bp = trace_bp_lookup(tr, addr);
    return bp ? arm_capture(tr, bp) : 0; /* removed meanwhile: nothing to arm */
  }
  }
}

int trace_bp_apply_deferred(struct trace *tr)
{
  int rc = 0;
  for (size_t i = 0; i < tr->ndeferred; i++) {
    int r = target_op(tr, tr->deferred[i].addr, tr->deferred[i].op);
    if (r && r != RS_E_DISCONNECTED)
      LOG_WARN("breakpoint operation %d at 0x%llx failed: %s", tr->deferred[i].op,
               (unsigned long long)tr->deferred[i].addr, rs_strerror(r));
    rc = rc ? rc : r;
  }
  tr->ndeferred = 0;
  return rc;
}

/* Makes the agent record the breakpoint's hits quietly (1) or report them (0). */
static int set_quiet(struct trace *tr, struct trace_bp *bp, int quiet)
{
  int rc = target_op(tr, bp->addr, quiet ? OP_QUIET_ON : OP_QUIET_OFF);
  if (rc == 0)
    bp->quiet = quiet;
  return rc;
}

/* Whether the breakpoint's hits are the agent's to capture: every owner registered with a spec. */
static int wants_capture(const struct trace *tr, const struct trace_bp *bp)
{
  if (!tr->agent_capture || bp->virtual_bp || bp->nowners == 0)
    return bp->capture && bp->nowners == 0 && !bp->virtual_bp; /* parked: stays as it is */
  for (int i = 0; i < bp->nowners; i++)
    if (!bp->owners[i].capture)
      return 0;
  return 1;
}

/* The owners' specs merged: everything any of them needs. */
static struct trace_capture_spec merged_spec(const struct trace_bp *bp)
{
  struct trace_capture_spec m = {0};
  for (int i = 0; i < bp->nowners; i++) {
    const struct trace_capture_spec *s = &bp->owners[i].spec;
    m.nargs = s->nargs > m.nargs ? s->nargs : m.nargs;
    m.stack |= s->stack;
    m.ret |= s->ret;
    if (s->mem_len && !m.mem_len)
      m.mem_arg = s->mem_arg, m.mem_off = s->mem_off, m.mem_len = s->mem_len;
    if (s->rmem_len && !m.rmem_len)
      m.rmem_arg = s->rmem_arg, m.rmem_off = s->rmem_off, m.rmem_len = s->rmem_len;
  }
  return m;
}

/* Arms, re-arms or disarms the agent's capture of bp after its owners changed. */
static int update_capture(struct trace *tr, struct trace_bp *bp)
{
  int want = wants_capture(tr, bp);
  if (!want && !bp->capture)
    return 0;
  struct trace_capture_spec m = want ? merged_spec(bp) : bp->cspec;
  if (want && bp->nowners == 0)
    return 0; /* parked: keeps its spec */
  if (want == bp->capture && !memcmp(&m, &bp->cspec, sizeof m))
    return 0;
  if (want && !bp->capture_id) {
    bp->capture_id = ++tr->next_capture_id;
    int rc = u64map_put(&tr->capture_addr, bp->capture_id, bp->addr);
    if (rc)
      return rc;
  }
  bp->capture = want;
  bp->cspec = m;
  return target_op(tr, bp->addr, OP_CAPTURE);
}

static int break_at(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data, int quiet,
                    const struct trace_capture_spec *spec, int inprocess)
{
  /* The return of a call the agent pairs with its entry: the return record comes without a breakpoint of ours. */
  int virt = inprocess || (tr->in_stream_event && tr->stream_entry_paired && addr == tr->stream_ret_addr);
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
    int rc = virt ? 0 : target_op(tr, addr, OP_INSERT);
    if (rc) {
      LOG_WARN("cannot place a breakpoint at 0x%llx: %s", (unsigned long long)addr, rs_strerror(rc));
      return rc;
    }
    size_t slot = tr->nfree_slots ? tr->free_slots[--tr->nfree_slots] : tr->nbps++;
    bp = &tr->bps[slot];
    memset(bp, 0, sizeof *bp);
    bp->addr = addr;
    bp->virtual_bp = virt;
    rc = u64map_put(&tr->bp_index, addr, slot);
    if (rc)
      return rc;
  } else if (bp->virtual_bp && !virt) { /* wanted as a real breakpoint now */
    int rc = target_op(tr, addr, OP_INSERT);
    if (rc)
      return rc;
    bp->virtual_bp = 0;
  }
  if (bp->virtual_bp)
    quiet = 0; /* nothing of it is in the target to be quiet */
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
  struct trace_bp_owner *o = &bp->owners[bp->nowners++];
  memset(o, 0, sizeof *o);
  o->fn = fn;
  o->data = data;
  o->refs = 1;
  o->capture = spec != NULL;
  if (spec)
    o->spec = *spec;
  return bp->virtual_bp ? 0 : update_capture(tr, bp);
}

int trace_break(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data)
{
  return break_at(tr, addr, fn, data, 0, NULL, 0);
}

int trace_break_quiet(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data)
{
  return break_at(tr, addr, fn, data, 1, NULL, 0);
}

int trace_break_capture(struct trace *tr, uint64_t addr, trace_bp_fn fn, void *data,
                        const struct trace_capture_spec *spec)
{
  return break_at(tr, addr, fn, data, 0, tr->agent_capture ? spec : NULL, 0);
}

/* Tells the agent which breakpoint the recorder's calls of func through addr stand for: the arguments come in
 * their registers, the stack pointer with them. */
static int arm_record(struct trace *tr, struct trace_bp *bp, int func)
{
  const struct arch_desc *a = tr->arch;
  uint64_t mask = 1ull << a->sp_reg;
  for (int i = 0; i < bp->cspec.nargs && i < a->narg_regs; i++)
    mask |= 1ull << a->arg_regs[i];
  return rspc_request_ok(tr->c, "QRsprofRecord:%x,%llx,%x,%llx", (unsigned)func, (unsigned long long)bp->addr,
                         (unsigned)bp->capture_id, (unsigned long long)mask);
}

int trace_break_inprocess(struct trace *tr, uint64_t addr, int func, trace_bp_fn fn, void *data,
                          const struct trace_capture_spec *spec)
{
  struct trace_bp *bp = trace_bp_lookup(tr, addr);
  if (!tr->inprocess || func < 0 || tr->in_stream_event || (bp && !bp->inprocess))
    return trace_break_capture(tr, addr, fn, data, spec);
  int fresh = !bp;
  int rc = break_at(tr, addr, fn, data, 0, NULL, 1);
  if (rc)
    return rc;
  bp = trace_bp_lookup(tr, addr);
  if (!fresh) /* another name for the same function (glibc's aligned_alloc is memalign): the recorder's calls
                 of this one stand for the same breakpoint */
    return arm_record(tr, bp, func) == RS_E_DISCONNECTED ? RS_E_DISCONNECTED : 0;
  bp->inprocess = 1;
  bp->capture = 1;
  bp->cspec = *spec;
  bp->owners[0].capture = 1;
  bp->owners[0].spec = *spec;
  bp->capture_id = ++tr->next_capture_id;
  rc = u64map_put(&tr->capture_addr, bp->capture_id, bp->addr);
  if (rc)
    return rc;
  rc = arm_record(tr, bp, func);
  if (rc == 0)
    return 0;
  if (rc == RS_E_DISCONNECTED || rc == RS_E_TIMEOUT)
    return rc;
  /* No recorder in this process after all (a static program, a libc that could not load it): a capture
   * breakpoint then, as without --capture inprocess. */
  tr->inprocess_fallbacks++;
  LOG_DEBUG("in-process capture refused at 0x%llx: a capture breakpoint instead", (unsigned long long)addr);
  bp->inprocess = 0;
  bp->capture = 0;
  rc = target_op(tr, addr, OP_INSERT);
  if (rc)
    return rc;
  bp->virtual_bp = 0;
  return update_capture(tr, bp);
}

int trace_inprocess(const struct trace *tr) { return tr->inprocess; }

void trace_note_inprocess(struct trace *tr, const char *name)
{
  for (size_t i = 0; i < tr->ninprocess_mods; i++)
    if (!strcmp(tr->inprocess_mods[i], name))
      return;
  if (tr->ninprocess_mods < TRACE_MAX_TRACERS)
    tr->inprocess_mods[tr->ninprocess_mods++] = name;
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
      if (bp->nowners > 0 && !bp->virtual_bp) {
        int rc = update_capture(tr, bp); /* the owner that needed ordinary stops may be gone */
        if (rc)
          return rc;
      }
    }
    if (bp->nowners == 0 && bp->virtual_bp) { /* nothing in the target: forget it */
      uint64_t slot = (uint64_t)(bp - tr->bps);
      u64map_del(&tr->bp_index, addr, NULL);
      tr->free_slots[tr->nfree_slots++] = (size_t)slot;
      return 0;
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
  struct trace_bp *bp = &tr->bps[slot];
  int rc = bp->virtual_bp ? 0 : target_op(tr, addr, OP_REMOVE);
  if (bp->capture_id)
    u64map_del(&tr->capture_addr, bp->capture_id, NULL);
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
    if (tr->bps[slot].nowners == 0 && !tr->bps[slot].virtual_bp) {
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
    if (tr->bps[slot].virtual_bp)
      continue;
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
    if (tr->bps[slot].virtual_bp)
      continue;
    int r = rspc_insert_breakpoint(tr->c, addr, (int)tr->arch->bkpt_len);
    if (r == 0 && tr->bps[slot].capture)
      r = arm_capture(tr, &tr->bps[slot]); /* a removed breakpoint forgot its capture spec */
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
    if (tr->bps[slot].capture_id)
      u64map_del(&tr->capture_addr, tr->bps[slot].capture_id, NULL);
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
  if (!tr->in_stream_event)
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
