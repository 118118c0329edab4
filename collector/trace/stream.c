/* Agent-side capture (rsprof-capture): the agent records each hit on a capture breakpoint and streams it; here
 * each record becomes the trace_hit its handlers would have seen at a stop — registers, the stack window, the
 * memory the spec asked for, the agent's time — and the handlers run on it, in the stream's order. A return
 * record is dispatched like a quiet hit at the return address, where the entry's handler "placed" its return
 * breakpoint (a virtual one: the agent watches the return itself). */
#include "stream.h"

#include <string.h>

#include "breakpoints.h"
#include "capture.h"
#include "errors.h"
#include "log.h"
#include "rsp-client.h"
#include "processes.h"
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
  tr->stream_unwound += tr->unwound_stacks - unwound; /* every one on the host, until the agent unwinds */
}

static void on_return(struct trace *tr, const struct rspc_event *ev)
{
  uint64_t mem_addr = 0;
  int has_mem = ev->seq && u64map_get(&tr->ret_mem_addr, ev->seq, &mem_addr);
  if (has_mem)
    u64map_del(&tr->ret_mem_addr, ev->seq, NULL);
  struct trace_bp *bp = trace_bp_lookup(tr, ev->pc);
  tr->stream_returns++;
  if (!bp)
    return; /* a nested call's return, or one nobody waits for any more */
  const struct arch_desc *a = tr->arch;
  struct col_regs regs = {.arch = a, .pc = ev->pc};
  col_regs_set(&regs, a->dwarf_sp, ev->sp);
  col_regs_set(&regs, a->regs[a->ret_reg].dwarf, ev->retval);
  tr->hit_stack_valid = 0;
  tr->stream_entry_paired = 0;
  tr->event_mem = has_mem && ev->mem_len ? ev->mem : NULL;
  tr->event_mem_addr = mem_addr;
  tr->event_mem_len = ev->mem_len;
  struct trace_hit hit = {.tid = ev->tid, .addr = ev->pc, .regs = &regs, .ms = trace_hit_time_ms(tr, 1, ev->ns)};
  trace_bp_dispatch(tr, bp, &hit);
}

/* The rsp layer hands over each notification as it is decoded, ahead of any stop reply that follows it. */
static void on_notification(void *ctx, const uint8_t *payload, size_t len)
{
  struct trace *root = ctx, *tr = root;
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
  while ((rc = rspc_next_event(&p, end, &ev)) == 1) {
    switch (ev.kind) {
    case CAP_REC_ENTRY:
      on_entry(tr, &ev);
      break;
    case CAP_REC_RETURN:
      on_return(tr, &ev);
      break;
    case CAP_REC_STATS:
      root->agent_events = ev.stats[0];
      root->agent_held_ns = ev.stats[1];
      root->agent_parked = ev.stats[2];
      break;
    case CAP_REC_PROCESS: /* the records that follow are this process's (children followed) */
      tr->in_stream_event = 0;
      tr = trace_proc_of_pid(root, ev.tid);
      if (!tr)
        LOG_DEBUG("events of process %u, which is not traced", (unsigned)ev.tid);
      tr = tr ? tr : root;
      tr->in_stream_event = 1;
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
    root->stream_error = RS_E_PROTO;
  }
}

int trace_stream_init(struct trace *tr)
{
  const struct rspc_features *f = rspc_features(tr->c);
  u64map_init(&tr->capture_addr);
  u64map_init(&tr->ret_mem_addr);
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
