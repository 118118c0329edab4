/* Per-thread return watching with one-shot return breakpoints. */
#include "retwatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"

uint64_t hit_arg(const struct trace_hit *hit, int i)
{
  const struct arch_desc *a = hit->regs->arch;
  uint64_t v = 0;
  col_regs_get(hit->regs, a->regs[a->arg_regs[i]].dwarf, &v);
  return v;
}

uint64_t hit_result(const struct trace_hit *hit)
{
  const struct arch_desc *a = hit->regs->arch;
  uint64_t v = 0;
  col_regs_get(hit->regs, a->regs[a->ret_reg].dwarf, &v);
  return v;
}

uint64_t hit_sp(const struct trace_hit *hit)
{
  uint64_t sp = 0;
  col_regs_get(hit->regs, hit->regs->arch->dwarf_sp, &sp);
  return sp;
}

void retwatch_init(struct retwatch *w, trace_bp_fn on_return, void *owner)
{
  memset(w, 0, sizeof *w);
  u64map_init(&w->slot_of);
  w->on_return = on_return;
  w->owner = owner;
}

void retwatch_destroy(struct retwatch *w)
{
  u64map_free(&w->slot_of);
  free(w->calls);
}

/* Where the call returns to, and the stack pointer it will have there. */
static int return_site(struct trace *tr, const struct trace_hit *hit, uint64_t *ret, uint64_t *sp_after)
{
  const struct arch_desc *a = hit->regs->arch;
  uint64_t sp = hit_sp(hit);
  if (a->lr_reg >= 0) { /* aarch64: in the link register, SP unchanged by the return */
    *sp_after = sp;
    return col_regs_get(hit->regs, a->dwarf_ra_column, ret) ? RS_E_NOT_FOUND : 0;
  }
  *sp_after = sp + 8; /* x86_64: on top of the stack, popped by ret */
  return trace_read_stack(tr, hit, sp, ret, 8);
}

int retwatch_enter(struct retwatch *w, struct trace *tr, const struct trace_hit *hit, int quiet,
                   struct rw_call **call)
{
  *call = NULL;
  uint64_t ret, sp_after;
  int rc = return_site(tr, hit, &ret, &sp_after);
  if (rc)
    return rc;
  uint64_t idx;
  if (u64map_get(&w->slot_of, (uint64_t)hit->tid, &idx)) {
    if (sp_after < w->calls[idx].sp_at_return) {
      w->calls[idx].nested++; /* nested inside the watched call */
      return 0;
    }
    /* A stale record whose return never came (longjmp, exception): forget it. */
    trace_unbreak(tr, w->calls[idx].ret_addr, w->on_return, w->owner);
  } else {
    struct rw_call *n = rs_grow(w->calls, &w->cap, w->n + 1, sizeof *n, 16);
    if (!n)
      return -ENOMEM;
    w->calls = n;
    idx = w->n++;
    rc = u64map_put(&w->slot_of, (uint64_t)hit->tid, idx);
    if (rc)
      return rc;
  }
  struct rw_call *c = &w->calls[idx];
  memset(c, 0, sizeof *c);
  c->ret_addr = ret;
  c->sp_at_return = sp_after;
  c->tid = hit->tid;
  c->t0_ms = hit->ms;
  rc = quiet ? trace_break_quiet(tr, ret, w->on_return, w->owner) : trace_break(tr, ret, w->on_return, w->owner);
  if (rc)
    return rc;
  *call = c;
  return 0;
}

struct rw_call *retwatch_current(struct retwatch *w, int64_t tid)
{
  uint64_t idx;
  return u64map_get(&w->slot_of, (uint64_t)tid, &idx) ? &w->calls[idx] : NULL;
}

struct rw_call *retwatch_match(struct retwatch *w, const struct trace_hit *hit)
{
  uint64_t idx;
  if (!u64map_get(&w->slot_of, (uint64_t)hit->tid, &idx))
    return NULL;
  struct rw_call *c = &w->calls[idx];
  if (c->ret_addr != hit->addr || c->sp_at_return != hit_sp(hit))
    return NULL;
  return c;
}

void retwatch_done(struct retwatch *w, struct trace *tr, struct rw_call *call)
{
  trace_unbreak(tr, call->ret_addr, w->on_return, w->owner);
  size_t idx = (size_t)(call - w->calls);
  u64map_del(&w->slot_of, (uint64_t)call->tid, NULL);
  size_t last = --w->n;
  if (idx != last) { /* keep the array dense: move the last record into the freed slot */
    w->calls[idx] = w->calls[last];
    u64map_put(&w->slot_of, (uint64_t)w->calls[idx].tid, idx);
  }
}
