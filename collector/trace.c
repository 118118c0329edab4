/* The tracing session: connect, load the target's modules, place breakpoints, capture and unwind at each hit,
 * aggregate into the calling-context tree, and write everything out however the run ends. */
#include "trace.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "binfind.h"
#include "buf.h"
#include "cct.h"
#include "elf-entry.h"
#include "errors.h"
#include "log.h"
#include "modmap.h"
#include "module.h"
#include "profile-write.h"
#include "rsp-client.h"
#include "stack-window.h"
#include "summary.h"
#include "symbolize.h"
#include "target.h"
#include "trace-internal.h"
#include "u64map.h"
#include "unwind.h"

/* Signal numbers as the remote protocol carries them (gdb's numbering, not the host's). */
enum { GDB_SIGINT = 2, GDB_SIGTRAP = 5, GDB_SIGSTOP = 17 };

/* The first stack window taken at each hit: enough for a dozen ordinary frames. Moving the whole
 * --stack-size window (16 KiB) at every stop cost about a sixth of each event on loopback. A hit whose
 * stack needs more reads the rest (one more round trip, ~25-50 µs); the window doubles only when, over at
 * least WIDEN_MIN_UNWINDS unwinds of a period, one in WIDEN_SHARE needed more, since a wider window costs
 * every hit (a forced 8 KiB first window costs the bench's C workload ~14 µs per stop more than 2 KiB). */
enum { STACK_WINDOW_START = 2048, WIDEN_MIN_UNWINDS = 64, WIDEN_SHARE = 4, WINDOW_PERIOD = 1024 };

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
  stop_signal = sig;
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double trace_elapsed_ms(const struct trace *tr)
{
  return now_ms() - tr->start_ms;
}

void trace_event(struct trace *tr)
{
  tr->events++;
}

int trace_add_metric(struct trace *tr, const char *name, const char *unit)
{
  if (tr->cct || tr->nmetrics == TRACE_MAX_METRICS)
    return RS_E_LIMIT;
  tr->metrics[tr->nmetrics].name = name;
  tr->metrics[tr->nmetrics].unit = unit;
  tr->metric_titles[tr->nmetrics] = NULL;
  return (int)tr->nmetrics++;
}

int trace_add_ranked_metric(struct trace *tr, const char *name, const char *unit, const char *title)
{
  int m = trace_add_metric(tr, name, unit);
  if (m >= 0)
    tr->metric_titles[m] = title;
  return m;
}

void trace_count(struct trace *tr, uint32_t node, int metric, int64_t delta)
{
  cct_add(tr->cct, node, (size_t)metric, delta);
}

int64_t trace_metric_value(struct trace *tr, uint32_t node, int metric)
{
  return cct_get(tr->cct, node, (size_t)metric);
}

int trace_exact_times(const struct trace *tr) { return tr->agent_times; }

/* A hit's time on trace_elapsed_ms's scale: the agent's clock at the stop when it sends one, shifted by the
 * offset seen at the first such stop; otherwise now. */
static double hit_time_ms(struct trace *tr, int has_agent_time, uint64_t agent_ns)
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
  size_t got = 0;
  int rc = rspc_read_memory(tr->c, addr, buf, len, &got);
  if (rc)
    return rc;
  return got == len ? 0 : -EIO;
}

/* ---- breakpoints ---- */

static struct trace_bp *bp_lookup(struct trace *tr, uint64_t addr)
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
  struct trace_bp *bp = bp_lookup(tr, addr);
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
  struct trace_bp *bp = bp_lookup(tr, addr);
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

static void remove_all_breakpoints(struct trace *tr)
{
  size_t pos = 0;
  uint64_t addr, idx;
  while (u64map_next(&tr->bp_index, &pos, &addr, &idx))
    remove_bp(tr, addr, idx);
  tr->nparked = 0;
}

/* ---- modules of the target ---- */

int trace_find_function(struct col_module *m, const char *name, uint64_t *addr)
{
  uint64_t size;
  return col_module_find_symbol(m, name, addr, &size);
}

static int load_one_module(struct trace *tr, const char *remote_path, uint64_t bias)
{
  for (size_t i = 0; i < tr->nloaded; i++)
    if (tr->loaded[i].bias == bias && strcmp(tr->loaded[i].remote, remote_path) == 0)
      return 0;
  const char *local = NULL, *how = NULL;
  int rc = binfind_locate(tr->bf, remote_path, &local, &how);
  if (rc) {
    LOG_WARN("no usable copy of %s: %s; its frames stay unsymbolized", remote_path, rs_strerror(rc));
    return rc;
  }
  LOG_INFO("module %s: using %s (%s), bias 0x%llx", remote_path, local, how, (unsigned long long)bias);
  struct col_module *m;
  rc = col_module_open(local, NULL, tr->opt->debug_dirs[0] ? tr->opt->debug_dirs : NULL, &m);
  if (rc) {
    LOG_WARN("cannot read %s: %s", local, rs_strerror(rc));
    return rc;
  }
  if (!col_module_has_debug_info(m))
    LOG_INFO("%s has no debug info: function names come from its symbol table", remote_path);
  if (tr->nloaded == TRACE_MAX_MODULES) {
    col_module_close(m);
    return RS_E_LIMIT;
  }
  struct trace_loaded *l = &tr->loaded[tr->nloaded++];
  l->remote = strdup(remote_path);
  l->bias = bias;
  l->module = m;
  rc = col_modmap_add(tr->map, m, bias);
  if (rc)
    return rc;
  for (size_t k = 0; k < tr->nmods; k++) {
    if (!tr->mods[k].mod->module_loaded)
      continue;
    rc = tr->mods[k].mod->module_loaded(tr, tr->mods[k].state, m, bias);
    if (rc)
      LOG_WARN("module %s could not set up in %s: %s", tr->mods[k].mod->name, remote_path, rs_strerror(rc));
  }
  return 0;
}

static int load_target_modules(struct trace *tr)
{
  if (tr->target->exec_path)
    load_one_module(tr, tr->target->exec_path, tr->target->exec_bias);
  for (size_t i = 0; i < tr->target->nlibs; i++) {
    const struct target_lib *lib = &tr->target->libs[i];
    if (!lib->name || !lib->name[0] || strstr(lib->name, "linux-vdso") || strstr(lib->name, "linux-gate"))
      continue;
    if (tr->target->exec_path && strcmp(lib->name, tr->target->exec_path) == 0)
      continue;
    load_one_module(tr, lib->name, lib->l_addr);
  }
  return 0;
}

/* The dynamic linker calls r_brk after each change to its list: re-read it so dlopen'ed libraries are known. */
static int on_dl_event(struct trace *tr, const struct trace_hit *hit, void *data)
{
  int rc = target_refresh_libraries(tr->c, tr->target);
  if (rc) {
    LOG_WARN("cannot re-read the library list: %s", rs_strerror(rc));
    return 0;
  }
  return load_target_modules(tr);
}

static int watch_dynamic_linker(struct trace *tr)
{
  if (!tr->target->r_brk || tr->watching_r_brk)
    return 0;
  tr->watching_r_brk = 1;
  return trace_break(tr, tr->target->r_brk, on_dl_event, NULL);
}

/* At the program's entry point the dynamic linker has mapped every DT_NEEDED library and set up r_debug. */
static int on_entry(struct trace *tr, const struct trace_hit *hit, void *data)
{
  trace_unbreak(tr, hit->addr, on_entry, NULL);
  int rc = target_refresh_libraries(tr->c, tr->target);
  if (rc)
    LOG_WARN("cannot read the library list: %s", rs_strerror(rc));
  load_target_modules(tr);
  return watch_dynamic_linker(tr);
}

/* ---- registers and stacks ---- */

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
static int thread_regs(struct trace *tr, const struct rspc_stop *st, int with_stack, struct col_regs *r)
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

static int write_stack_text(struct trace *tr, int64_t tid, const uint64_t *pcs, size_t n, int truncated);

/* The current hit's stack window, read once per hit. */
static size_t hit_stack(struct trace *tr, const struct trace_hit *hit, uint64_t *sp)
{
  *sp = 0;
  col_regs_get(hit->regs, tr->arch->dwarf_sp, sp);
  tr->hit_stack_used = 1;
  if (!tr->hit_stack_valid)
    keep_hit_stack(tr, *sp, read_stack(tr, hit->tid, *sp, 0, tr->window), tr->window);
  return tr->hit_stack_len;
}

/* Reads the rest of the hit's stack window after an unwind ran out of it, and doubles the window taken
 * first from now on when that happens often (telling the agent, when it sends the window with each stop). */
static size_t widen_hit_stack(struct trace *tr, const struct trace_hit *hit, uint64_t sp)
{
  tr->window_refills++;
  tr->window_short++;
  tr->hit_stack_len = read_stack(tr, hit->tid, sp, tr->hit_stack_len, tr->opt->stack_bytes);
  tr->hit_stack_whole = 1;
  size_t wider = tr->window * 2 < tr->opt->stack_bytes ? tr->window * 2 : tr->opt->stack_bytes;
  if (wider == tr->window || tr->window_hits < WIDEN_MIN_UNWINDS ||
      (uint64_t)tr->window_short * WIDEN_SHARE < tr->window_hits)
    return tr->hit_stack_len;
  tr->window_hits = tr->window_short = 0;
  tr->window = wider;
  LOG_DEBUG("stack window widened to %zu bytes", wider);
  if (tr->stop_window) {
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

int trace_context(struct trace *tr, const struct trace_hit *hit, uint32_t *node)
{
  if (tr->in_quiet_hit)
    return quiet_hit_misuse("trace_context");
  if (tr->hit_node_valid) {
    *node = tr->hit_node;
    return 0;
  }
  uint64_t sp;
  size_t got = hit_stack(tr, hit, &sp);
  struct unw_snapshot snap = {.base = sp, .data = tr->stack_buf, .len = got};
  size_t n = 0;
  enum unw_end end = UNW_END_OUTERMOST;
  int rc = unw_unwind(tr->unw, tr->map, hit->regs, &snap, NULL, tr->pcs, tr->opt->max_frames, &n, &end);
  if (++tr->window_hits > WINDOW_PERIOD) /* unwinds in this period, and (below) those that needed more */
    tr->window_hits = tr->window_short = 0;
  if (rc == 0 && end == UNW_END_TRUNCATED && !tr->hit_stack_whole) {
    snap.len = widen_hit_stack(tr, hit, sp);
    rc = unw_unwind(tr->unw, tr->map, hit->regs, &snap, NULL, tr->pcs, tr->opt->max_frames, &n, &end);
  }
  if (rc || n == 0) {
    tr->pcs[0] = hit->regs->pc;
    n = 1;
    end = UNW_END_BAD;
  }
  int truncated = end == UNW_END_TRUNCATED || end == UNW_END_MAX_FRAMES;
  if (truncated)
    tr->truncated_stacks++;
  rc = cct_insert_path(tr->cct, (uint32_t)hit->tid, tr->pcs, n, truncated ? CCT_PATH_TRUNCATED : 0, node);
  if (rc)
    return rc;
  if (tr->stacks_out)
    write_stack_text(tr, hit->tid, tr->pcs, n, truncated);
  tr->hit_node = *node;
  tr->hit_node_valid = 1;
  return 0;
}

/* ---- symbolization for the writers ---- */

static int symbolize_pc(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n)
{
  struct trace *tr = ctx;
  uint64_t bias = 0;
  struct col_module *m = col_modmap_find(tr->map, pc, &bias);
  *n = 0;
  if (!m)
    return 0;
  int rc = sym_lookup(m, pc - bias, frames, max, n);
  if (rc)
    *n = 0;
  if (*n == 0 && max > 0) {
    memset(&frames[0], 0, sizeof frames[0]);
    frames[0].module = col_module_path(m);
    *n = 1;
  }
  for (int i = 0; i < *n; i++)
    frames[i].module = col_module_path(m);
  return 0;
}

static int write_stack_text(struct trace *tr, int64_t tid, const uint64_t *pcs, size_t n, int truncated)
{
  FILE *f = tr->stacks_out;
  fprintf(f, "event %llu thread %lld\n", (unsigned long long)tr->events, (long long)tid);
  int frame_no = 0;
  for (size_t i = 0; i < n; i++) {
    struct sym_frame frames[16];
    int nf = 0;
    symbolize_pc(tr, pcs[i], frames, 16, &nf);
    if (nf == 0) {
      fprintf(f, "#%d 0x%llx ??\n", frame_no++, (unsigned long long)pcs[i]);
      continue;
    }
    for (int k = 0; k < nf; k++) {
      fprintf(f, "#%d 0x%llx %s", frame_no++, (unsigned long long)pcs[i],
              frames[k].function ? frames[k].function : "??");
      if (frames[k].file && frames[k].line)
        fprintf(f, " at %s:%d", frames[k].file, frames[k].line);
      fputc('\n', f);
    }
  }
  if (truncated)
    fprintf(f, "#%d [truncated]\n", frame_no);
  fputc('\n', f);
  return 0;
}

/* ---- the event loop ---- */

/* Stock gdbserver leaves a breakpoint at the PC in place when resuming, so the thread would trap again at
 * once: take it out, step that one thread past it (the others stay stopped), and put it back, as gdb does.
 * Our agent steps over breakpoints itself (it advertises rsprof-), which saves these round trips. */
static int step_over(struct trace *tr, const struct rspc_stop *st, uint64_t addr)
{
  struct rspc_stop after;
  tr->hit_stack_valid = 0;
  int rc = rspc_step_over(tr->c, st->pid, st->tid, addr, (int)tr->arch->bkpt_len, rspc_reply_timeout(tr->c), &after);
  if (rc)
    return rc;
  if (after.kind != RSPC_STOP_SIGNAL) {
    tr->program_ended = 1;
    tr->exit_code = after.kind == RSPC_STOP_EXITED ? after.exit_code : -1;
    tr->term_signal = after.kind == RSPC_STOP_TERMINATED ? after.signal : 0;
    return 0;
  }
  if (after.signal != GDB_SIGTRAP)
    tr->signal_to_deliver = after.signal; /* the program's own signal arrived during the step */
  return 0;
}

/* Keeps the stack window that came with the stop (rsprof-stopstack) as the hit's, before any other request
 * reuses the reply buffer it points into. */
static void take_stop_stack(struct trace *tr, const struct rspc_stop *st)
{
  uint64_t sp;
  tr->hit_stack_valid = 0;
  if (!st->stack || st->stack_len == 0 || !rspc_stop_reg(st, (int)tr->arch->sp_reg, &sp))
    return;
  size_t n = st->stack_len < tr->opt->stack_bytes ? st->stack_len : tr->opt->stack_bytes;
  memcpy(tr->stack_buf, st->stack, n);
  keep_hit_stack(tr, sp, n, tr->stop_window);
}

/* Counts a hit at bp and runs its owners; a breakpoint parked for MAX_IDLE_HITS hits in a row is removed
 * instead. Returns 0 or the removal's error. */
static int dispatch_hit(struct trace *tr, struct trace_bp *bp, const struct trace_hit *hit)
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

/* Copies the stop's quiet hits out of its reply, before any request reuses the reply buffer. */
static int take_quiet_hits(struct trace *tr, const struct rspc_stop *st)
{
  tr->nquiet = 0;
  if (!st->quiet)
    return 0;
  const char *p = st->quiet, *end = st->quiet + st->quiet_len;
  struct rspc_quiet_hit h;
  int rc;
  while ((rc = rspc_next_quiet_hit(&p, end, &h)) == 1) {
    struct rspc_quiet_hit *n = rs_grow(tr->quiet, &tr->quiet_cap, tr->nquiet + 1, sizeof *n, 64);
    if (!n)
      return -ENOMEM;
    tr->quiet = n;
    tr->quiet[tr->nquiet++] = h;
  }
  if (rc < 0) {
    int shown = end - st->quiet > 200 ? 200 : (int)(end - st->quiet);
    LOG_ERR("a stop reply has a malformed list of quiet breakpoint hits: %.*s", shown, st->quiet);
  }
  return rc;
}

/* Runs the handlers of the hits the agent recorded at quiet breakpoints before this stop, in their order.
 * Their handlers see the thread, PC, SP and return register only (trace_break_quiet). */
static int run_quiet_hits(struct trace *tr)
{
  const struct arch_desc *a = tr->arch;
  int rc = 0;
  tr->in_quiet_hit = 1;
  for (size_t i = 0; i < tr->nquiet && rc == 0; i++) {
    const struct rspc_quiet_hit *q = &tr->quiet[i];
    struct trace_bp *bp = bp_lookup(tr, q->pc);
    if (!bp)
      continue; /* removed since */
    struct col_regs regs = {.arch = a, .pc = q->pc};
    col_regs_set(&regs, a->dwarf_sp, q->sp);
    col_regs_set(&regs, a->regs[a->ret_reg].dwarf, q->retval);
    struct trace_hit hit = {.tid = q->tid, .addr = q->pc, .regs = &regs, .ms = hit_time_ms(tr, 1, q->ns)};
    tr->quiet_stops++;
    rc = dispatch_hit(tr, bp, &hit);
  }
  tr->in_quiet_hit = 0;
  tr->nquiet = 0;
  return rc;
}

/* Our breakpoint a thread trapped on with the PC at pc (some servers report it past the trap instruction). */
static struct trace_bp *bp_at_trap(struct trace *tr, uint64_t pc)
{
  struct trace_bp *bp = bp_lookup(tr, pc);
  if (!bp && tr->arch->pc_after_bkpt)
    bp = bp_lookup(tr, pc - tr->arch->pc_after_bkpt);
  return bp;
}

static int handle_trap(struct trace *tr, const struct rspc_stop *st)
{
  struct col_regs regs;
  uint64_t pc;
  struct trace_bp *bp = rspc_stop_reg(st, tr->arch->pc_reg, &pc) ? bp_at_trap(tr, pc) : NULL;
  int rc = thread_regs(tr, st, bp && bp->used_stack, &regs);
  if (rc)
    return rc;
  bp = bp_at_trap(tr, regs.pc);
  if (!bp) {
    LOG_DEBUG("SIGTRAP at 0x%llx is not one of our breakpoints", (unsigned long long)regs.pc);
    return 0;
  }
  struct trace_hit hit = {.tid = st->tid ? st->tid : st->pid, .addr = bp->addr, .regs = &regs,
                          .ms = hit_time_ms(tr, st->has_time, st->time_ns)};
  tr->hit_stack_used = 0;
  rc = dispatch_hit(tr, bp, &hit);
  if (rc)
    return rc;
  bp = bp_lookup(tr, hit.addr); /* still inserted (owned or parked) */
  if (bp)
    bp->used_stack = tr->hit_stack_used;
  if (bp && !rspc_features(tr->c)->rsprof_ext)
    return step_over(tr, st, hit.addr);
  return 0;
}

static void show_progress(struct trace *tr, int final)
{
  if (!tr->progress)
    return;
  double t = now_ms();
  if (!final && t - tr->last_progress_ms < 1000)
    return;
  double rate = (tr->events - tr->last_progress_events) * 1000.0 / (t - tr->last_progress_ms + 1e-9);
  fprintf(stderr, "\rrsprof: %llu events (%.0f/s)%s", (unsigned long long)tr->events, rate, final ? "\n" : "");
  tr->last_progress_ms = t;
  tr->last_progress_events = tr->events;
}

/* Runs until the program exits, the duration passes, or a signal asks us to stop. */
static int event_loop(struct trace *tr)
{
  int sig_to_deliver = 0;
  for (;;) {
    tr->hit_stack_valid = 0; /* the program runs again: the captured window goes stale */
    int rc = rspc_continue(tr->c, sig_to_deliver);
    if (rc)
      return rc;
    sig_to_deliver = 0;
    struct rspc_stop st;
    for (;;) {
      rc = rspc_wait_stop(tr->c, 200, &st);
      if (rc != RS_E_TIMEOUT)
        break;
      show_progress(tr, 0);
      int over_time = tr->opt->duration_ms && trace_elapsed_ms(tr) >= (double)tr->opt->duration_ms;
      if ((stop_signal || over_time) && !tr->interrupting) {
        LOG_INFO("stopping: %s", stop_signal ? "signal received" : "duration reached");
        tr->interrupting = 1;
        rspc_interrupt(tr->c);
      }
    }
    if (rc)
      return rc;
    /* Copy what the reply carries before any request reuses its buffer; the quiet hits happened first. */
    take_stop_stack(tr, &st);
    rc = take_quiet_hits(tr, &st);
    if (rc == 0)
      rc = run_quiet_hits(tr);
    if (rc)
      return rc;
    if (st.kind == RSPC_STOP_EXITED || st.kind == RSPC_STOP_TERMINATED) {
      tr->program_ended = 1;
      tr->exit_code = st.kind == RSPC_STOP_EXITED ? st.exit_code : -1;
      tr->term_signal = st.kind == RSPC_STOP_TERMINATED ? st.signal : 0;
      return 0;
    }
    if (st.signal == GDB_SIGTRAP) {
      rc = handle_trap(tr, &st);
      if (rc)
        return rc;
      if (tr->program_ended)
        return 0;
      sig_to_deliver = tr->signal_to_deliver;
      tr->signal_to_deliver = 0;
    } else if (!(tr->interrupting && (st.signal == GDB_SIGINT || st.signal == GDB_SIGSTOP || st.signal == 0))) {
      sig_to_deliver = st.signal; /* the program's own signal: pass it on, as gdb does by default */
    }
    if (tr->interrupting || stop_signal ||
        (tr->opt->duration_ms && trace_elapsed_ms(tr) >= (double)tr->opt->duration_ms))
      return 0;
  }
}

static int start_modules(struct trace *tr)
{
  for (size_t i = 0; i < tr->opt->nmodules; i++) {
    const struct tracer_module *m = trace_find_module(tr->opt->modules[i]);
    if (!m) {
      LOG_ERR("unknown tracing module '%s' (see --help)", tr->opt->modules[i]);
      return RS_E_BAD_ARG;
    }
    tr->mods[tr->nmods].mod = m;
    int rc = m->init(tr, &tr->mods[tr->nmods].state);
    if (rc) {
      LOG_ERR("module %s: %s", m->name, rs_strerror(rc));
      return rc;
    }
    tr->nmods++;
  }
  return 0;
}

static void write_outputs(struct trace *tr)
{
  for (size_t k = 0; k < tr->nmods; k++)
    if (tr->mods[k].mod->finish)
      tr->mods[k].mod->finish(tr, tr->mods[k].state);
  if (tr->opt->output) {
    struct profile_info info = {.program = tr->target && tr->target->exec_path ? tr->target->exec_path : "program",
                                .pid = tr->target ? tr->target->pid : 0};
    int rc = profile_write_drcctprof(tr->cct, tr->metrics, tr->nmetrics, symbolize_pc, tr, &info, tr->opt->output);
    if (rc)
      LOG_ERR("cannot write %s: %s", tr->opt->output, rs_strerror(rc));
    else
      LOG_INFO("wrote %s", tr->opt->output);
  }
  trace_write_summaries(tr, symbolize_pc);
}

static void end_program(struct trace *tr)
{
  if (tr->program_ended || !tr->c)
    return;
  /* The program is stopped (we interrupted it, or an error stopped us at a stop): leave it running or gone. */
  remove_all_breakpoints(tr);
  if (tr->opt->kill_at_end) {
    rspc_kill(tr->c);
    LOG_INFO("killed the program");
  } else {
    rspc_detach(tr->c);
    LOG_INFO("detached; the program keeps running");
  }
}

static int connect_and_load(struct trace *tr)
{
  const struct col_options *o = tr->opt;
  struct rspc_options ro = {
      .host = o->host, .port = o->port, .tls_ca = o->tls_ca, .tls_cert = o->tls_cert, .tls_key = o->tls_key,
      .tls_psk_file = o->tls_psk_file, .tls_psk_identity = o->tls_psk_identity,
      .connect_timeout_ms = o->connect_timeout_ms, .retries = o->retries, .retry_delay_ms = 500,
      .reply_timeout_ms = 10000, .poll_us = o->poll_us,
  };
  int rc = rspc_connect(&ro, &tr->c);
  if (rc) {
    LOG_ERR("cannot connect to %s:%u: %s", o->host, o->port, rs_strerror(rc));
    return rc;
  }
  const char *reply;
  size_t rlen;
  rc = rspc_request(tr->c, "?", 1, &reply, &rlen);
  if (rc)
    return rc;
  struct rspc_stop st;
  if (rspc_parse_stop(reply, rlen, &st) == 0 && st.kind != RSPC_STOP_SIGNAL) {
    LOG_ERR("the program is not running (it has already exited)");
    tr->program_ended = 1;
    return RS_E_EXITED;
  }
  /* Our agent can send the stack window with each breakpoint stop: one round trip per event less. */
  tr->window = o->stack_bytes < STACK_WINDOW_START ? o->stack_bytes : STACK_WINDOW_START;
  if (rspc_features(tr->c)->stop_stack && tr->window &&
      rspc_request_ok(tr->c, "QRsprofStopStack:%zx", tr->window) == 0) {
    tr->stop_window = tr->window;
    LOG_INFO("the agent sends the first %zu bytes of stack with each breakpoint stop", tr->window);
  }
  /* ... and when it saw each stop, so durations between stops leave out the trip to us. */
  if (rspc_features(tr->c)->stop_time && rspc_request_ok(tr->c, "QRsprofStopTime:1") == 0)
    tr->agent_times = 1;
  struct binfind_options bo = {.sysroot = o->sysroot, .cache_dir = o->cache_dir, .no_fetch = o->no_fetch};
  rc = binfind_new(tr->c, &bo, &tr->bf);
  if (rc)
    return rc;
  rc = target_load(tr->c, tr->bf, &tr->target);
  if (rc) {
    LOG_ERR("cannot read the target's state: %s", rs_strerror(rc));
    return rc;
  }
  tr->arch = tr->target->arch;
  return 0;
}

/* Before the dynamic linker has run, only the executable is known: break at its entry to learn the rest. */
static int plan_library_discovery(struct trace *tr)
{
  load_target_modules(tr);
  if (tr->target->nlibs > 0 && tr->target->r_brk)
    return watch_dynamic_linker(tr);
  if (tr->nloaded == 0)
    return 0;
  uint64_t entry = 0;
  if (elf_entry_point(col_module_path(tr->loaded[0].module), &entry) == 0)
    return trace_break(tr, entry + tr->loaded[0].bias, on_entry, NULL);
  return 0;
}

static int trace_init(struct trace *tr, const struct col_options *o)
{
  memset(tr, 0, sizeof *tr);
  tr->opt = o;
  tr->start_ms = now_ms();
  u64map_init(&tr->bp_index);
  u64map_init(&tr->stack_end);
  tr->stack_buf = malloc(o->stack_bytes ? o->stack_bytes : 1);
  tr->pcs = malloc((o->max_frames ? o->max_frames : 1) * sizeof *tr->pcs);
  if (!tr->stack_buf || !tr->pcs)
    return -ENOMEM;
  tr->progress = o->progress < 0 ? isatty(STDERR_FILENO) : o->progress;
  tr->last_progress_ms = tr->start_ms;
  int rc = col_modmap_new(&tr->map);
  if (!rc)
    rc = unw_ctx_new(&tr->unw);
  return rc;
}

static void trace_destroy(struct trace *tr)
{
  for (size_t k = 0; k < tr->nmods; k++)
    if (tr->mods[k].mod->destroy)
      tr->mods[k].mod->destroy(tr->mods[k].state);
  if (tr->stacks_out && tr->stacks_out != stdout)
    fclose(tr->stacks_out);
  if (tr->c)
    rspc_close(tr->c);
  if (tr->cct)
    cct_free(tr->cct);
  if (tr->unw)
    unw_ctx_free(tr->unw);
  if (tr->map)
    col_modmap_free(tr->map);
  for (size_t i = 0; i < tr->nloaded; i++) {
    col_module_close(tr->loaded[i].module);
    free(tr->loaded[i].remote);
  }
  if (tr->target)
    target_free(tr->target);
  if (tr->bf)
    binfind_free(tr->bf);
  u64map_free(&tr->bp_index);
  u64map_free(&tr->stack_end);
  free(tr->bps);
  free(tr->free_slots);
  free(tr->stack_buf);
  free(tr->quiet);
  free(tr->pcs);
}

int trace_run(const struct col_options *o)
{
  struct trace tr;
  int rc = trace_init(&tr, o);
  int status = COL_EXIT_ERROR;
  if (rc)
    goto out;
  struct sigaction sa = {.sa_handler = on_stop_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (o->system_debug_dir)
    col_module_set_system_debug_dir(o->system_debug_dir[0] ? o->system_debug_dir : NULL);
  rc = start_modules(&tr);
  if (rc)
    goto out;
  rc = cct_new(tr.nmetrics, &tr.cct);
  if (rc)
    goto out;
  if (o->print_stacks) {
    tr.stacks_out = strcmp(o->print_stacks, "-") == 0 ? stdout : fopen(o->print_stacks, "w");
    if (!tr.stacks_out) {
      LOG_ERR("cannot write %s: %s", o->print_stacks, strerror(errno));
      goto out;
    }
  }
  rc = connect_and_load(&tr);
  if (rc)
    goto out;
  rc = plan_library_discovery(&tr);
  if (rc)
    LOG_WARN("library discovery: %s", rs_strerror(rc));
  rc = event_loop(&tr);
  if (rc)
    LOG_ERR("tracing stopped early: %s; writing what was collected", rs_strerror(rc));
  end_program(&tr);
  show_progress(&tr, 1);
  write_outputs(&tr);
  status = rc ? COL_EXIT_ERROR : COL_EXIT_OK;
  if (!rc) {
    for (size_t k = 0; k < tr.nmods && status == COL_EXIT_OK; k++)
      if (tr.mods[k].mod->verdict)
        status = tr.mods[k].mod->verdict(&tr, tr.mods[k].state, o);
    if (status == COL_EXIT_OK && tr.term_signal)
      status = COL_EXIT_TARGET;
  }
out:
  trace_destroy(&tr);
  return status;
}
