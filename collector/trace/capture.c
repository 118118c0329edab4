/* Capturing a hit: the thread's registers, its stack window (how much to take first, when to read more and
 * widen it), target memory, and the unwind into a calling-context node. */
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cct.h"
#include "errors.h"
#include "frames.h"
#include "log.h"
#include "modmap.h"
#include "rsp-client.h"
#include "stack-window.h"
#include "u64map.h"
#include "unwind.h"

/* The first stack window taken at each hit: enough for a dozen ordinary frames. Moving the whole
 * --stack-size window (16 KiB) at every stop cost about a sixth of each event on loopback. A hit whose
 * stack needs more reads the rest (one more round trip, ~25-50 µs); the window doubles only when, over at
 * least WIDEN_MIN_UNWINDS unwinds of a period, one in WIDEN_SHARE needed more, since a wider window costs
 * every hit (a forced 8 KiB first window costs the bench's C workload ~14 µs per stop more than 2 KiB). */
enum { STACK_WINDOW_START = 2048, WIDEN_MIN_UNWINDS = 64, WIDEN_SHARE = 4, WINDOW_PERIOD = 1024 };
/* The widest window asked of the agent with each stop (it takes up to 128 KiB): deeper stacks read the rest
 * per hit, since a wider window would cost every stop of the program. */
enum { STOP_WINDOW_MAX = 64 * 1024 };
/* What capture breakpoints record of the stack (rsprof-capture). A streamed event's window cannot be read
 * further later, so it asks for all of it: the agent sends the stack from sp to the end of its mapping, which
 * is the thread's whole stack (plus what lies above its outermost frame), up to the agent's largest window. */
enum { CAPTURE_STACK = 128 * 1024 };

int trace_capture_init(struct trace *tr)
{
  const struct col_options *o = tr->opt;
  tr->window = o->stack_bytes < STACK_WINDOW_START ? o->stack_bytes : STACK_WINDOW_START;
  tr->capture_stack = o->stack_bytes < CAPTURE_STACK ? (size_t)o->stack_bytes : CAPTURE_STACK;
  /* Our agent can send the stack window with each breakpoint stop: one round trip per event less. */
  if (rspc_features(tr->c)->stop_stack && tr->window &&
      rspc_request_ok(tr->c, "QRsprofStopStack:%zx", tr->window) == 0) {
    tr->stop_window = tr->window;
    LOG_INFO("the agent sends the first %zu bytes of stack with each breakpoint stop", tr->window);
  }
  return 0;
}

/* A quiet hit's handler asked for the program's state, which has moved on since the hit. */
static int quiet_hit_misuse(const char *what)
{
  LOG_ERR("%s called from a quiet breakpoint's handler (use trace_break for handlers that read the target)", what);
  return RS_E_BAD_ARG;
}

int trace_read_memory(struct trace *tr, uint64_t addr, void *buf, size_t len)
{
  if (tr->in_quiet_hit)
    return quiet_hit_misuse("trace_read_memory");
  if (tr->hit_stack_valid && addr >= tr->hit_stack_base && len <= tr->hit_stack_len &&
      addr - tr->hit_stack_base <= tr->hit_stack_len - len) {
    memcpy(buf, tr->stack_buf + (addr - tr->hit_stack_base), len); /* no round trip */
    return 0;
  }
  if (tr->in_stream_event) {
    /* The program has gone on: only what the record carries is the hit's. */
    if (tr->event_mem && addr >= tr->event_mem_addr && len <= tr->event_mem_len &&
        addr - tr->event_mem_addr <= tr->event_mem_len - len) {
      memcpy(buf, tr->event_mem + (addr - tr->event_mem_addr), len);
      return 0;
    }
    LOG_DEBUG("a streamed event's handler read 0x%llx+%zu, which its record does not carry",
              (unsigned long long)addr, len);
    return -EFAULT;
  }
  size_t got = 0;
  int rc = rspc_read_memory(tr->c, addr, buf, len, &got);
  if (rc)
    return rc;
  return got == len ? 0 : -EIO;
}

int trace_write_memory(struct trace *tr, const void *buf, uint64_t addr, size_t len)
{
  if (tr->in_quiet_hit || tr->in_stream_event)
    return -EBUSY; /* the program is not stopped for this */
  return rspc_write_memory(tr->c, addr, buf, len);
}

/* Sets r's core registers from a 'g' reply's bytes. */
static void regs_from_g(const struct trace *tr, const uint8_t *raw, size_t len, struct col_regs *r)
{
  const struct arch_desc *a = tr->arch;
  size_t off = 0;
  for (size_t i = 0; i < a->ncore_regs && off + a->regs[i].bits / 8 <= len; i++) {
    size_t sz = a->regs[i].bits / 8;
    uint64_t v = 0;
    memcpy(&v, raw + off, sz < 8 ? sz : 8); /* both supported targets are little-endian */
    if ((int)i == a->pc_reg)
      r->pc = v;
    else
      col_regs_set(r, a->regs[i].dwarf, v);
    off += sz;
  }
}

static int fill_regs_from_g(struct trace *tr, struct col_regs *r)
{
  uint8_t raw[4096];
  size_t len = 0;
  int rc = rspc_read_registers(tr->c, raw, sizeof raw, &len);
  if (rc == 0)
    regs_from_g(tr, raw, len, r);
  return rc;
}

/* want bytes of stack from sp, cut at the end of thread tid's stack once a read found it. */
static size_t within_stack(struct trace *tr, int64_t tid, uint64_t sp, size_t want)
{
  uint64_t limit;
  if (u64map_get(&tr->stack_end, (uint64_t)tid, &limit) && limit > sp && limit - sp < want)
    return (size_t)(limit - sp);
  return want;
}

/* Grows stack_buf to hold at least n bytes (never more than --stack-size), keeping its contents; the
 * buffer starts small because most programs never need the whole cap. Returns the bytes it now holds. */
static size_t reserve_stack(struct trace *tr, size_t n)
{
  if (n > tr->opt->stack_bytes)
    n = (size_t)tr->opt->stack_bytes;
  if (n <= tr->stack_alloc)
    return tr->stack_alloc;
  size_t cap = tr->stack_alloc ? tr->stack_alloc : 4096;
  while (cap < n)
    cap *= 2;
  if (cap > tr->opt->stack_bytes)
    cap = (size_t)tr->opt->stack_bytes;
  uint8_t *p = realloc(tr->stack_buf, cap);
  if (!p) {
    LOG_WARN("no memory for a %zu-byte stack window", cap);
    return tr->stack_alloc;
  }
  tr->stack_buf = p;
  tr->stack_alloc = cap;
  return cap;
}

/* Makes [sp, sp + len) of stack_buf the current hit's window; asked is what was requested, so a shorter
 * window ended at the end of the stack. */
static void keep_hit_stack(struct trace *tr, uint64_t sp, size_t len, size_t asked)
{
  tr->hit_stack_base = sp;
  tr->hit_stack_len = len;
  tr->hit_stack_whole = len < asked || asked >= tr->opt->stack_bytes;
  tr->hit_stack_valid = 1;
}

/* Registers and the first stack window in one round trip ('g' and 'x' pipelined), for a server whose stop
 * replies carry neither in full (stock gdbserver): every hit needs registers and most need the stack. */
static int capture_regs_and_stack(struct trace *tr, const struct rspc_stop *st, uint64_t sp, struct col_regs *r)
{
  int64_t tid = st->tid ? st->tid : st->pid;
  size_t want = within_stack(tr, tid, sp, tr->window), got = 0, len = 0;
  if (reserve_stack(tr, want) < want)
    want = tr->stack_alloc;
  uint8_t raw[4096];
  int rc = rspc_capture(tr->c, st->pid, st->tid, raw, sizeof raw, &len, sp, tr->stack_buf, want, &got);
  if (rc)
    return rc;
  if (st->tid)
    tr->g_thread = st->tid;
  regs_from_g(tr, raw, len, r);
  if (got > 0 && got < want)
    u64map_put(&tr->stack_end, (uint64_t)tid, sp + got); /* the stack ends there: later windows stop short */
  keep_hit_stack(tr, sp, got, tr->window);
  return 0;
}

/* Registers for the stopped thread: the stop reply's expedited values when they cover everything the
 * unwinder needs (our agent sends them), else one 'g' request, with the stack window read alongside when
 * with_stack (the breakpoint's handlers used the stack last time). */
int trace_capture_regs(struct trace *tr, const struct rspc_stop *st, int with_stack, struct col_regs *r)
{
  const struct arch_desc *a = tr->arch;
  memset(r, 0, sizeof *r);
  r->arch = a;
  int have_pc = 0;
  for (int i = 0; i < st->nregs; i++) {
    int regno = st->regs[i].regno;
    if (regno < 0 || (size_t)regno >= a->nregs)
      continue;
    if (regno == a->pc_reg) {
      r->pc = st->regs[i].value;
      have_pc = 1;
    } else {
      col_regs_set(r, a->regs[regno].dwarf, st->regs[i].value);
    }
  }
  uint32_t needed = (a->dwarf_max >= 32 ? 0xffffffffu : ((1u << a->dwarf_max) - 1));
  if (a->lr_reg < 0)
    needed &= ~(1u << a->dwarf_ra_column); /* x86_64's return-address column is rip, kept in pc */
  if (have_pc && (r->valid & needed) == needed)
    return 0;
  uint64_t sp;
  if (with_stack && !tr->hit_stack_valid && tr->window && rspc_stop_reg(st, a->sp_reg, &sp))
    return capture_regs_and_stack(tr, st, sp, r);
  if (st->tid && st->tid != tr->g_thread) {
    int rc = rspc_select_thread(tr->c, 'g', st->pid, st->tid);
    if (rc)
      return rc;
    tr->g_thread = st->tid;
  }
  return fill_regs_from_g(tr, r);
}

struct stack_probe {
  struct trace *tr;
  uint64_t sp;
};

static int probe_stack(void *ctx, uint64_t addr, size_t len)
{
  struct stack_probe *p = ctx;
  size_t n = 0;
  return rspc_read_memory(p->tr->c, addr, p->tr->stack_buf + (addr - p->sp), len, &n) == 0 && n == len;
}

/* Reads stack bytes [sp + from, sp + want) into the same offsets of stack_buf and returns the end offset of
 * what was read. Near the top of a stack the read runs past the mapping and fails as a whole, so then find
 * the readable end and remember it for the thread. */
static size_t read_stack(struct trace *tr, int64_t tid, uint64_t sp, size_t from, size_t want)
{
  want = within_stack(tr, tid, sp, want);
  if (reserve_stack(tr, want) < want)
    want = tr->stack_alloc;
  if (want <= from)
    return want;
  size_t got = 0;
  int rc = rspc_read_memory(tr->c, sp + from, tr->stack_buf + from, want - from, &got);
  if (rc == 0 && got == want - from)
    return want;
  struct stack_probe probe = {tr, sp};
  uint64_t end = stack_readable_end(sp + from, want - from, 4096, probe_stack, &probe);
  if (end == sp + from) {
    LOG_DEBUG("stack at 0x%llx is unreadable", (unsigned long long)(sp + from));
    return from;
  }
  u64map_put(&tr->stack_end, (uint64_t)tid, end);
  return (size_t)(end - sp);
}

/* The current hit's stack window, read once per hit. */
static size_t hit_stack(struct trace *tr, const struct trace_hit *hit, uint64_t *sp)
{
  *sp = 0;
  col_regs_get(hit->regs, tr->arch->dwarf_sp, sp);
  tr->hit_stack_used = 1;
  if (!tr->hit_stack_valid && tr->in_stream_event) {
    keep_hit_stack(tr, *sp, 0, 0); /* a record without a window: the program has gone on, nothing to read */
    tr->hit_stack_whole = 1;
  } else if (!tr->hit_stack_valid) {
    keep_hit_stack(tr, *sp, read_stack(tr, hit->tid, *sp, 0, tr->window), tr->window);
  }
  return tr->hit_stack_len;
}

/* A streamed window cannot be read further after the fact: a stack deeper than the whole window the agent
 * sends (128 KiB, or --stack-size) stays truncated, and counts as a refill would. */
static void note_stream_unwind(struct trace *tr, int short_window)
{
  if (short_window)
    tr->window_refills++;
}

void trace_capture_stream_window(struct trace *tr, uint64_t sp, const uint8_t *data, size_t len, int at_end)
{
  tr->hit_stack_valid = 0;
  if (reserve_stack(tr, len) < len)
    len = tr->stack_alloc;
  memcpy(tr->stack_buf, data, len);
  tr->hit_stack_base = sp;
  tr->hit_stack_len = len;
  tr->hit_stack_whole = 1; /* all there is: nothing more can be read */
  tr->hit_stack_valid = 1;
  tr->stream_window_end = at_end;
}

/* Reads more of the hit's stack after an unwind ran out of it: twice what the hit has (at least twice the
 * first window), up to --stack-size or the end of the thread's stack, whichever comes first; the caller
 * unwinds again and calls this until the unwind ends or the whole stack is there. Only the first refill of
 * a hit counts towards widening the window taken first, which doubles (up to --stack-size) when refills
 * recur, telling the agent when it sends the window with each stop. */
static size_t widen_hit_stack(struct trace *tr, const struct trace_hit *hit, uint64_t sp, int first)
{
  size_t cap = (size_t)tr->opt->stack_bytes;
  size_t want = tr->hit_stack_len > tr->window ? tr->hit_stack_len : tr->window;
  want = want <= cap / 2 ? want * 2 : cap;
  size_t len = read_stack(tr, hit->tid, sp, tr->hit_stack_len, want);
  tr->hit_stack_whole = len < want || want >= cap;
  if (len > tr->hit_stack_len)
    tr->hit_stack_len = len;
  if (!first)
    return tr->hit_stack_len;
  tr->window_refills++;
  tr->window_short++;
  size_t wider = tr->window * 2 < cap ? tr->window * 2 : cap;
  if (wider == tr->window || tr->window_hits < WIDEN_MIN_UNWINDS ||
      (uint64_t)tr->window_short * WIDEN_SHARE < tr->window_hits)
    return tr->hit_stack_len;
  tr->window_hits = tr->window_short = 0;
  tr->window = wider;
  LOG_DEBUG("stack window widened to %zu bytes", wider);
  if (tr->stop_window && wider <= STOP_WINDOW_MAX) {
    if (rspc_request_ok(tr->c, "QRsprofStopStack:%zx", wider) == 0)
      tr->stop_window = wider;
    else
      LOG_WARN("the agent refused a %zu-byte stack window; reading the rest of deeper stacks per hit", wider);
  }
  return tr->hit_stack_len;
}

int trace_read_stack(struct trace *tr, const struct trace_hit *hit, uint64_t addr, void *buf, size_t len)
{
  if (tr->in_quiet_hit)
    return quiet_hit_misuse("trace_read_stack");
  uint64_t sp;
  hit_stack(tr, hit, &sp);
  return trace_read_memory(tr, addr, buf, len);
}

/* Unwinds the hit thread's stack into tr->pcs: *n frames, *end why it ended. Reads more stack as the
 * unwind needs it (widen_hit_stack); a failed unwind leaves the PC alone with end UNW_END_BAD. Returns the
 * bytes of stack the unwind had. */
static size_t unwind_hit(struct trace *tr, const struct trace_hit *hit, size_t *n, enum unw_end *end)
{
  if (tr->given_pcs) { /* a compact call: the agent unwound it */
    *n = tr->given_npcs < tr->opt->max_frames ? tr->given_npcs : tr->opt->max_frames;
    memcpy(tr->pcs, tr->given_pcs, *n * sizeof tr->pcs[0]);
    *end = *n < tr->given_npcs ? UNW_END_MAX_FRAMES : tr->given_truncated ? UNW_END_TRUNCATED : UNW_END_OUTERMOST;
    return 0;
  }
  uint64_t sp;
  size_t got = hit_stack(tr, hit, &sp);
  struct unw_snapshot snap = {.base = sp, .data = tr->stack_buf, .len = got};
  *n = 0;
  *end = UNW_END_OUTERMOST;
  int rc = unw_unwind(tr->unw, tr->map, hit->regs, &snap, NULL, tr->pcs, tr->opt->max_frames, n, end);
  if (tr->in_stream_event) {
    note_stream_unwind(tr, rc == 0 && *end == UNW_END_TRUNCATED && !tr->stream_window_end);
  } else if (++tr->window_hits > WINDOW_PERIOD) { /* unwinds in this period, and (below) those that needed more */
    tr->window_hits = tr->window_short = 0;
  }
  for (int first = 1; rc == 0 && *end == UNW_END_TRUNCATED && !tr->hit_stack_whole; first = 0) {
    snap.len = widen_hit_stack(tr, hit, sp, first);
    snap.data = tr->stack_buf; /* reading more may have moved the buffer */
    rc = unw_unwind(tr->unw, tr->map, hit->regs, &snap, NULL, tr->pcs, tr->opt->max_frames, n, end);
  }
  if (rc || *n == 0) {
    tr->pcs[0] = hit->regs->pc;
    *n = 1;
    *end = UNW_END_BAD;
  }
  return snap.len;
}

int trace_context(struct trace *tr, const struct trace_hit *hit, uint32_t *node)
{
  if (tr->in_quiet_hit)
    return quiet_hit_misuse("trace_context");
  if (tr->hit_node_valid) {
    *node = tr->hit_node;
    return 0;
  }
  size_t n;
  enum unw_end end;
  size_t had = unwind_hit(tr, hit, &n, &end);
  int truncated = end == UNW_END_TRUNCATED || end == UNW_END_MAX_FRAMES;
  tr->unwound_stacks++;
  if (truncated) {
    tr->truncated_stacks++;
    if (end == UNW_END_MAX_FRAMES)
      tr->truncated_frames++;
    else if (had > tr->truncated_window)
      tr->truncated_window = had; /* the most stack any of them had */
  }
  int rc = cct_insert_path_under(tr->cct, tr->cct_root ? tr->cct_root : CCT_ROOT, (uint32_t)hit->tid, tr->pcs, n,
                                 truncated ? CCT_PATH_TRUNCATED : 0, node);
  if (rc)
    return rc;
  tr->hit_node = *node;
  tr->hit_node_valid = 1;
  return 0;
}

int trace_stack_within_module(struct trace *tr, const struct trace_hit *hit, uint64_t addr)
{
  uint64_t bias;
  struct col_module *m = col_modmap_find(tr->map, addr, &bias);
  if (tr->in_quiet_hit || !m)
    return 0;
  size_t n;
  enum unw_end end;
  unwind_hit(tr, hit, &n, &end);
  if (end != UNW_END_OUTERMOST)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (col_modmap_find(tr->map, tr->pcs[i], &bias) != m)
      return 0;
  return 1;
}

void trace_event(struct trace *tr, const struct trace_hit *hit, const struct trace_event_desc *ev)
{
  if (tr->stacks_out) {
    size_t n = 0;
    int truncated = 0;
    if (ev->has_node) {
      /* The event's context, as the profile has it (an allocation's is its entry's, caught before the return). */
      n = cct_path(tr->cct, ev->node, tr->pcs, tr->opt->max_frames, &truncated);
      if (n > tr->opt->max_frames)
        n = tr->opt->max_frames;
    } else if (!tr->in_quiet_hit) {
      /* An event without a context of its own (a free): its stack for the listing only, not the profile. */
      enum unw_end end;
      unwind_hit(tr, hit, &n, &end);
      truncated = end == UNW_END_TRUNCATED || end == UNW_END_MAX_FRAMES;
    }
    trace_print_event(tr, hit->tid, ev, tr->pcs, n, truncated);
  }
  tr->events++;
}

double trace_hit_time_ms(struct trace *tr, int has_agent_time, uint64_t agent_ns)
{
  if (!tr->agent_times || !has_agent_time)
    return trace_elapsed_ms(tr);
  double ms = (double)agent_ns / 1e6;
  if (!tr->have_agent_offset) {
    tr->agent_offset_ms = trace_elapsed_ms(tr) - ms;
    tr->have_agent_offset = 1;
  }
  return ms + tr->agent_offset_ms;
}

/* Keeps the stack window that came with the stop (rsprof-stopstack) as the hit's, before any other request
 * reuses the reply buffer it points into. */
void trace_capture_stop_stack(struct trace *tr, const struct rspc_stop *st)
{
  uint64_t sp;
  tr->hit_stack_valid = 0;
  if (!st->stack || st->stack_len == 0 || !rspc_stop_reg(st, (int)tr->arch->sp_reg, &sp))
    return;
  size_t n = st->stack_len < tr->opt->stack_bytes ? st->stack_len : tr->opt->stack_bytes;
  if (reserve_stack(tr, n) < n)
    n = tr->stack_alloc;
  memcpy(tr->stack_buf, st->stack, n);
  keep_hit_stack(tr, sp, n, tr->stop_window);
}
