/* Agent-side capture (rsprof-capture): the agent records each hit on a capture breakpoint and streams it; here
 * each record becomes the trace_hit its handlers would have seen at a stop — registers, the stack window, the
 * memory the spec asked for, the agent's time — and the handlers run on it, in the stream's order. A return
 * record is dispatched like a quiet hit at the return address, where the entry's handler "placed" its return
 * breakpoint (a virtual one: the agent watches the return itself). */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "breakpoints.h"
#include "buf.h"
#include "capture.h"
#include "errors.h"
#include "log.h"
#include "rsp-client.h"
#include "rsp-events.h"

/* The registers of an entry record as the unwinder and hit_arg take them. */
static void regs_from_event(const struct trace *tr, const struct rspc_event *ev, uint64_t bp_addr, struct col_regs *r)
{
  const struct arch_desc *a = tr->arch;
  memset(r, 0, sizeof *r);
  r->arch = a;
  r->pc = bp_addr;
  for (int i = 0; i < 64 && (size_t)i < a->nregs; i++) {
    if (!(ev->regmask >> i & 1))
      continue;
    if (i == a->pc_reg)
      r->pc = ev->regs[i];
    else if (a->regs[i].dwarf >= 0)
      col_regs_set(r, a->regs[i].dwarf, ev->regs[i]);
  }
}

static void on_entry(struct trace *tr, const struct rspc_event *ev)
{
  uint64_t addr;
  struct trace_bp *bp = u64map_get(&tr->capture_addr, ev->id, &addr) ? trace_bp_lookup(tr, addr) : NULL;
  if (!bp)
    return; /* removed since the agent took the hit */
  const struct arch_desc *a = tr->arch;
  const struct trace_capture_spec *s = &bp->cspec;
  struct col_regs regs;
  regs_from_event(tr, ev, bp->addr, &regs);
  uint64_t sp = ev->regs[a->sp_reg];
  trace_capture_stream_window(tr, sp, ev->stack, ev->stack_len, (ev->flags & CAP_FLAG_STACK_END) != 0);
  tr->given_pcs = NULL;
  tr->stream_entry_paired = ev->seq != 0;
  tr->stream_ret_addr = 0;
  if (tr->stream_entry_paired) {
    if (a->lr_reg >= 0)
      tr->stream_ret_addr = ev->regs[a->lr_reg];
    else if (ev->stack_len >= 8)
      memcpy(&tr->stream_ret_addr, ev->stack, 8);
  }
  tr->event_mem = NULL;
  if (s->mem_len && ev->mem_len) {
    tr->event_mem = ev->mem;
    tr->event_mem_addr = ev->regs[a->arg_regs[s->mem_arg]] + s->mem_off;
    tr->event_mem_len = ev->mem_len;
  }
  if (s->rmem_len && ev->seq)
    u64map_put(&tr->ret_mem_addr, ev->seq, ev->regs[a->arg_regs[s->rmem_arg]] + s->rmem_off);
  struct trace_hit hit = {.tid = ev->tid, .addr = bp->addr, .regs = &regs, .ms = trace_hit_time_ms(tr, 1, ev->ns)};
  uint64_t unwound = tr->unwound_stacks;
  tr->stream_entries++;
  tr->hit_stack_used = 0;
  trace_bp_dispatch(tr, bp, &hit);
  tr->stream_unwound += tr->unwound_stacks - unwound; /* a raw window: unwound on the host */
}

/* Runs the handlers of a return at pc (the breakpoint the entry's handler placed there, virtual or not) with
 * the stack pointer after it and the return value; mem is what the agent read at the return. */
static void dispatch_return(struct trace *tr, uint32_t tid, uint64_t pc, uint64_t sp, uint64_t retval, uint64_t ns,
                            const uint8_t *mem, size_t mem_len, int has_mem, uint64_t mem_addr)
{
  struct trace_bp *bp = trace_bp_lookup(tr, pc);
  tr->stream_returns++;
  if (!bp)
    return; /* a nested call's return, or one nobody waits for any more */
  const struct arch_desc *a = tr->arch;
  struct col_regs regs = {.arch = a, .pc = pc};
  col_regs_set(&regs, a->dwarf_sp, sp);
  col_regs_set(&regs, a->regs[a->ret_reg].dwarf, retval);
  tr->hit_stack_valid = 0;
  tr->given_pcs = NULL;
  tr->stream_entry_paired = 0;
  tr->event_mem = has_mem && mem_len ? mem : NULL;
  tr->event_mem_addr = mem_addr;
  tr->event_mem_len = mem_len;
  struct trace_hit hit = {.tid = tid, .addr = pc, .regs = &regs, .ms = trace_hit_time_ms(tr, 1, ns)};
  trace_bp_dispatch(tr, bp, &hit);
}

static void on_return(struct trace *tr, const struct rspc_event *ev)
{
  uint64_t mem_addr = 0;
  int has_mem = ev->seq && u64map_get(&tr->ret_mem_addr, ev->seq, &mem_addr);
  if (has_mem)
    u64map_del(&tr->ret_mem_addr, ev->seq, NULL);
  dispatch_return(tr, ev->tid, ev->pc, ev->sp, ev->retval, ev->ns, ev->mem, ev->mem_len, has_mem, mem_addr);
}

/* The stack pointer a return leaves: x86_64's ret pops the return address, aarch64's leaves SP alone. */
static uint64_t sp_after_return(const struct arch_desc *a, uint64_t sp) { return a->lr_reg >= 0 ? sp : sp + 8; }

/* A compact call (kind 3): the entry's handlers run with the stack the agent unwound (no window, no host
 * unwinding); the return's with it when the record holds it, else at its return record (kind 6). */
static int on_call(struct trace *tr, const struct capc_call *c)
{
  if (c->stack >= tr->nsd)
    return RS_E_PROTO;
  tr->stream_calls++;
  tr->stream_entries++;
  const struct trace_stack_def *sd = &tr->sd[c->stack];
  const uint64_t *pcs = tr->sd_pcs + sd->off;
  uint64_t ra = (c->flags & CAPC_F_RA) ? c->ra : sd->n >= 2 ? pcs[1] + 1 : 0;
  uint64_t sp_after = sp_after_return(tr->arch, c->sp);
  int paired = (c->flags & CAPC_F_PAIRED) != 0;
  if (paired) {
    u64map_put(&tr->ret_addr_of, c->seq, ra);
    u64map_put(&tr->ret_sp_of, c->seq, sp_after);
  }
  uint64_t addr;
  struct trace_bp *bp = u64map_get(&tr->capture_addr, c->id, &addr) ? trace_bp_lookup(tr, addr) : NULL;
  if (!bp)
    return 0; /* removed since the agent took the hit */
  const struct arch_desc *a = tr->arch;
  const struct trace_capture_spec *s = &bp->cspec;
  struct col_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.arch = a;
  regs.pc = bp->addr;
  for (int i = 0; i < 64 && (size_t)i < a->nregs; i++)
    if ((c->regmask >> i & 1) && i != a->pc_reg && a->regs[i].dwarf >= 0)
      col_regs_set(&regs, a->regs[i].dwarf, c->regs[i]);
  col_regs_set(&regs, a->dwarf_sp, c->sp);
  /* Where the call returns: aarch64's link register; on x86_64 the word at sp, as an 8-byte window. */
  uint8_t top[8];
  if (a->lr_reg >= 0) {
    col_regs_set(&regs, a->dwarf_ra_column, ra);
    tr->hit_stack_valid = 0;
  } else {
    memcpy(top, &ra, 8);
    trace_capture_stream_window(tr, c->sp, top, 8, 0);
  }
  tr->given_pcs = pcs;
  tr->given_npcs = sd->n;
  tr->given_truncated = sd->truncated;
  tr->stream_entry_paired = paired || (c->flags & CAPC_F_RET);
  tr->stream_ret_addr = ra;
  tr->event_mem = NULL;
  if (s->mem_len && c->mem_len) {
    tr->event_mem = c->mem;
    tr->event_mem_addr = c->regs[a->arg_regs[s->mem_arg]] + s->mem_off;
    tr->event_mem_len = c->mem_len;
  }
  uint64_t rmem_addr = s->rmem_len ? c->regs[a->arg_regs[s->rmem_arg]] + s->rmem_off : 0;
  if (s->rmem_len && paired)
    u64map_put(&tr->ret_mem_addr, c->seq, rmem_addr);
  struct trace_hit hit = {.tid = c->tid, .addr = bp->addr, .regs = &regs, .ms = trace_hit_time_ms(tr, 1, c->ns)};
  tr->stream_agent_unwound++;
  tr->hit_stack_used = 0;
  trace_bp_dispatch(tr, bp, &hit);
  tr->given_pcs = NULL;
  tr->hit_node_valid = 0;
  if (c->flags & CAPC_F_RET)
    dispatch_return(tr, c->tid, ra, sp_after, c->retval, c->ret_ns, c->ret_mem, c->ret_mem_len,
                    s->rmem_len != 0, rmem_addr);
  return 0;
}

/* A compact return (kind 6) of a paired call. */
static void on_ret(struct trace *tr, const struct capc_ret *r)
{
  uint64_t ra = 0, sp = 0, mem_addr = 0;
  if (!u64map_del(&tr->ret_addr_of, r->seq, &ra) || !u64map_del(&tr->ret_sp_of, r->seq, &sp)) {
    tr->stream_returns++;
    return; /* its call was never seen: nothing waits for it */
  }
  int has_mem = u64map_del(&tr->ret_mem_addr, r->seq, &mem_addr);
  dispatch_return(tr, r->tid, ra, sp, r->retval, r->ns, r->mem, r->mem_len, has_mem, mem_addr);
}

static int on_stack_def(struct trace *tr, const struct capc_rec *rec, const uint64_t *pcs)
{
  if (rec->stack_id != tr->nsd || tr->nsd >= CAPC_MAX_STACKS || rec->npcs > CAPC_MAX_PCS - tr->sd_npcs)
    return RS_E_PROTO; /* out of order, or more than a writer may define without a reset */
  struct trace_stack_def *d = rs_grow(tr->sd, &tr->sd_cap, tr->nsd + 1, sizeof *d, 256);
  if (!d)
    return -ENOMEM;
  tr->sd = d;
  uint64_t *p = rs_grow(tr->sd_pcs, &tr->sd_pcs_cap, tr->sd_npcs + rec->npcs, sizeof *p, 4096);
  if (!p)
    return -ENOMEM;
  tr->sd_pcs = p;
  memcpy(p + tr->sd_npcs, pcs, rec->npcs * sizeof *p);
  tr->sd[tr->nsd++] = (struct trace_stack_def){tr->sd_npcs, rec->npcs, rec->truncated};
  tr->sd_npcs += rec->npcs;
  tr->stream_stack_defs++;
  return 0;
}

/* One compact record at *p. Returns 0 or an error (the rest of the batch is unreadable). */
static int on_compact(struct trace *tr, const uint8_t **p, const uint8_t *end)
{
  struct capc_rec rec;
  if (!tr->sd_decode && !(tr->sd_decode = malloc(CAPC_MAX_FRAMES * sizeof *tr->sd_decode)))
    return -ENOMEM;
  int rc = capc_get(&tr->codec, p, end, &rec, tr->sd_decode, CAPC_MAX_FRAMES);
  if (rc < 0)
    return rc;
  switch (rec.kind) {
  case CAP_REC_CALL:
    return on_call(tr, &rec.call);
  case CAP_REC_RET:
    on_ret(tr, &rec.ret);
    return 0;
  case CAP_REC_STACK_DEF:
    return on_stack_def(tr, &rec, tr->sd_decode);
  case CAP_REC_RESET:
    tr->nsd = tr->sd_npcs = 0;
    tr->stream_resets++;
    return 0;
  default:
    return 0;
  }
}

void trace_stream_free(struct trace *tr)
{
  free(tr->sd);
  free(tr->sd_pcs);
  free(tr->sd_decode);
  tr->sd_decode = NULL;
  tr->sd = NULL;
  tr->sd_pcs = NULL;
  u64map_free(&tr->ret_addr_of);
  u64map_free(&tr->ret_sp_of);
}

/* The rsp layer hands over each notification as it is decoded, ahead of any stop reply that follows it. */
static void on_notification(void *ctx, const uint8_t *payload, size_t len)
{
  struct trace *tr = ctx;
  const uint8_t *p, *end;
  size_t n;
  if (!rspc_events_batch(payload, len, &p, &n)) {
    LOG_DEBUG("ignoring a notification: %.20s", (const char *)payload);
    return;
  }
  end = p + n;
  tr->stream_batches++;
  tr->stream_bytes += len;
  struct rspc_event ev;
  int rc;
  tr->in_stream_event = 1;
  for (;;) {
    if (p < end && capc_is_compact(*p)) {
      rc = on_compact(tr, &p, end);
      tr->hit_node_valid = 0;
      if (rc < 0)
        break;
      continue;
    }
    if ((rc = rspc_next_event(&p, end, &ev)) != 1)
      break;
    switch (ev.kind) {
    case CAP_REC_ENTRY:
      on_entry(tr, &ev);
      break;
    case CAP_REC_RETURN:
      on_return(tr, &ev);
      break;
    case CAP_REC_STATS:
      tr->agent_events = ev.stats[0];
      tr->agent_held_ns = ev.stats[1];
      tr->agent_parked = ev.stats[2];
      tr->agent_calls = ev.stats[4];
      tr->agent_stacks = ev.stats[5];
      tr->agent_raw = ev.stats[6];
      tr->agent_resets = ev.stats[7];
      break;
    default:
      break;
    }
    tr->hit_node_valid = 0;
  }
  tr->in_stream_event = 0;
  tr->stream_entry_paired = 0;
  tr->event_mem = NULL;
  tr->hit_stack_valid = 0;
  if (rc < 0) {
    LOG_ERR("the agent sent a malformed event batch (%zu bytes)", len);
    tr->stream_error = RS_E_PROTO;
  }
}

int trace_stream_init(struct trace *tr)
{
  const struct rspc_features *f = rspc_features(tr->c);
  u64map_init(&tr->capture_addr);
  u64map_init(&tr->ret_mem_addr);
  u64map_init(&tr->ret_addr_of);
  u64map_init(&tr->ret_sp_of);
  capc_reset(&tr->codec);
  tr->rx_at_start = rspc_bytes_received(tr->c);
  if (tr->opt->capture == COL_CAPTURE_ROUNDTRIP)
    return 0;
  if (!f->capture) {
    if (tr->opt->capture == COL_CAPTURE_AGENT) {
      LOG_WARN("--capture agent: the server does not offer rsprof-capture; every event is a round trip");
      return RS_E_UNSUPPORTED;
    }
    return 0;
  }
  tr->agent_capture = 1;
  rspc_on_notification(tr->c, on_notification, tr);
  LOG_INFO("the agent captures events itself and streams them (%zu bytes of stack each)", tr->capture_stack);
  return 0;
}

int trace_stream_before_resume(struct trace *tr)
{
  if (!tr->agent_capture)
    return 0;
  int rc = trace_bp_apply_deferred(tr);
  return rc == RS_E_DISCONNECTED || rc == RS_E_TIMEOUT ? rc : 0; /* a refused one was logged */
}
