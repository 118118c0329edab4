/* Agent-side capture (rsprof-capture): what a hit on a capture breakpoint records — registers, memory, the raw
 * stack window — and the per-call one-shot return breakpoints that pair an entry with its return. Records go
 * into a fixed buffer that the server streams; nothing here allocates. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture-records.h"
#include "errors.h"
#include "inf-tables.h"
#include "inferior.h"
#include "log.h"

uint64_t inf_monotonic_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The registers a record may carry: the core integer ones up to the PC and SP (what ptarch_fill_core writes). */
static int last_core_reg(const struct arch_desc *a) { return a->pc_reg > a->sp_reg ? a->pc_reg : a->sp_reg; }

static uint64_t core_mask(const struct arch_desc *a)
{
  int last = last_core_reg(a);
  return last >= 63 ? ~0ull : (2ull << last) - 1;
}

static uint64_t reg_value(const struct arch_desc *a, const uint8_t *img, int regno)
{
  uint64_t v = 0;
  size_t sz = a->regs[regno].bits / 8;
  memcpy(&v, img + arch_reg_offset(a, regno), sz < 8 ? sz : 8);
  return v;
}

int inf_cap_set(struct inferior *inf, uint64_t addr, const struct inf_cap_spec *spec)
{
  struct inf_bp *b = inf_bp_find(inf, addr);
  if (!b || b->refs == 0)
    return RS_E_NOT_FOUND;
  if (!spec) {
    b->cap.on = 0;
    return 0;
  }
  const struct arch_desc *a = inf->arch;
  int last = last_core_reg(a);
  if ((spec->regmask & ~core_mask(a)) || spec->stack_len > INF_CAP_MAX_STACK || spec->mem_len > INF_CAP_MAX_MEM ||
      spec->rmem_len > INF_CAP_MAX_MEM || spec->mem_reg > last || spec->rmem_reg > last ||
      (spec->mem_len && spec->mem_reg < 0) || (spec->rmem_len && (spec->rmem_reg < 0 || !spec->ret)))
    return RS_E_BAD_ARG;
  b->cap = *spec;
  b->cap.on = 1;
  return 0;
}

static int find_watch(const struct inf_capture *c, pid_t tid, uint64_t addr, uint64_t sp);

int inf_cap_owns(struct inferior *inf, struct inf_thread *t, const struct inf_bp *b)
{
  if (t->pending != INF_EV_BKPT || !b)
    return 0;
  if ((b->cap.on && b->refs > 0) || (b->own_refs > 0 && b->refs == 0))
    return 1;
  if (b->own_refs == 0)
    return 0;
  /* The client's breakpoint and a watched return share the address: ours when this is that return. */
  struct ptarch_gregs *r = inf_gregs(inf, t);
  return r && find_watch(&inf->cap, t->tid, b->addr, ptarch_sp(r)) >= 0;
}

int inf_cap_waiting(const struct inferior *inf) { return inf->cap.nparked > 0; }

static void drop_watch(struct inferior *inf, int i)
{
  struct inf_capture *c = &inf->cap;
  uint64_t addr = c->w[i].ret_addr;
  memmove(&c->w[i], &c->w[i + 1], (size_t)(c->nw - i - 1) * sizeof c->w[0]);
  c->nw--;
  inf_bp_own_release(inf, addr);
}

/* The newest watch of tid whose return is this one (the return address and the stack pointer after it). */
static int find_watch(const struct inf_capture *c, pid_t tid, uint64_t addr, uint64_t sp)
{
  for (int i = c->nw - 1; i >= 0; i--)
    if (c->w[i].tid == tid && c->w[i].ret_addr == addr && c->w[i].sp_after == sp)
      return i;
  return -1;
}

/* The stack table and the walk's buffers, mapped at first use (anonymous memory: zero, and resident only as
 * it is touched). NULL when the mapping fails (logged once): events then carry raw windows. */
static struct inf_cap_store *cap_store(struct inf_capture *c)
{
  static int failed;
  if (c->store || failed)
    return c->store;
  void *p = mmap(NULL, sizeof *c->store, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    failed = 1;
    LOG_WARN("capture: no memory for the stack table (%s); events carry raw stack windows", strerror(errno));
    return NULL;
  }
  c->store = p;
  sintern_init(&c->stacks, c->store->stack_slots, INF_CAP_STACK_SLOTS, c->store->stack_list, INF_CAP_STACKS,
               c->store->stack_pcs, INF_CAP_STACK_PCS);
  return c->store;
}

static int in_list(const uint64_t *l, int n, uint64_t addr)
{
  for (int i = 0; i < n; i++)
    if (l[i] == addr)
      return i;
  return -1;
}

/* Keeps the return breakpoint at ret inserted after its call returns (see struct inf_capture). */
static void keep_return_site(struct inferior *inf, uint64_t ret)
{
  struct inf_capture *c = &inf->cap;
  if (in_list(c->sticky, c->nsticky, ret) >= 0 || in_list(c->strays, c->nstrays, ret) >= 0)
    return;
  if (c->nsticky == INF_CAP_STICKY) {
    inf_bp_own_release(inf, c->sticky[0]);
    memmove(c->sticky, c->sticky + 1, (size_t)(--c->nsticky) * sizeof c->sticky[0]);
  }
  if (inf_bp_own_insert(inf, ret) == 0)
    c->sticky[c->nsticky++] = ret;
}

/* A thread reached a kept return site with no return watched there: stop keeping it. */
static void stray_return_site(struct inferior *inf, uint64_t addr)
{
  struct inf_capture *c = &inf->cap;
  int i = in_list(c->sticky, c->nsticky, addr);
  if (i < 0)
    return;
  memmove(c->sticky + i, c->sticky + i + 1, (size_t)(c->nsticky - i - 1) * sizeof c->sticky[0]);
  c->nsticky--;
  if (c->nstrays == INF_CAP_STICKY)
    memmove(c->strays, c->strays + 1, (size_t)(--c->nstrays) * sizeof c->strays[0]);
  c->strays[c->nstrays++] = addr;
  inf_bp_own_release(inf, addr);
}

void inf_cap_reset(struct inferior *inf)
{
  struct inf_capture *c = &inf->cap;
  while (c->nw > 0)
    drop_watch(inf, c->nw - 1);
  while (c->nsticky > 0)
    inf_bp_own_release(inf, c->sticky[--c->nsticky]);
  c->nstrays = 0;
  c->len = 0;
  c->events = c->parked = c->held_ns = c->watch_overflows = 0;
  c->calls = c->stacks_interned = c->stack_resets = c->raw_windows = 0;
  if (c->store && c->stacks.nstacks)
    sintern_reset(&c->stacks);
  capc_reset(&c->codec);
  c->need_reset = 1; /* records of the old state may have been dropped with the buffer */
  c->nparked = 0;
  for (int i = 0; i < inf->nth; i++)
    inf->th[i].cap_parked = 0;
}

void inf_cap_new_image(struct inferior *inf)
{
  void *arena = inf_tables_arena(NULL);
  if (arena)
    tarena_clear_modules(arena, (int)inf->pid);
  inf->cap.mods_valid = 0;
  inf->cap.nsticky = inf->cap.nstrays = 0; /* their breakpoints went with the old image */
  /* A client that follows processes reads the new image's records afresh: they start with a reset. */
  if (inf->cap.store && inf->cap.stacks.nstacks)
    sintern_reset(&inf->cap.stacks);
  capc_reset(&inf->cap.codec);
  inf->cap.need_reset = 1;
}

void inf_cap_consume(struct inferior *inf, size_t n)
{
  struct inf_capture *c = &inf->cap;
  if (n >= c->len) {
    c->len = 0;
    return;
  }
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

/* The end of the mapping that holds sp: a stack grows down from there, so [sp, end) is all of the thread's
 * stack there is, and a window never needs to go past it (the env strings or TLS above the outermost frame
 * are the only bytes it carries for nothing). Read from /proc/PID/maps once per thread, with a fixed buffer,
 * and again only when sp leaves that mapping. 0 when not found. */
static uint64_t stack_end(struct inferior *inf, struct inf_thread *t, uint64_t sp)
{
  if (sp >= t->stack_lo && sp < t->stack_hi)
    return t->stack_hi;
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)inf->pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  size_t have = 0;
  uint64_t end = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0)
      break;
    have += (size_t)n;
    buf[have] = 0;
    char *line = buf, *nl;
    while (!end && (nl = memchr(line, '\n', (size_t)(buf + have - line))) != NULL) {
      *nl = 0;
      char *dash;
      unsigned long long lo = strtoull(line, &dash, 16), hi = *dash == '-' ? strtoull(dash + 1, NULL, 16) : 0;
      if (sp >= lo && sp < hi) {
        t->stack_lo = lo;
        t->stack_hi = end = hi;
      }
      line = nl + 1;
    }
    if (end)
      break;
    have = (size_t)(buf + have - line);
    memmove(buf, line, have);
    if (have == sizeof buf - 1)
      have = 0; /* a line longer than the buffer (a long path): not a stack's */
  }
  close(fd);
  return end;
}

/* The kernel's start of the main thread's stack (/proc/PID/stat field 28): just above argc, argv, the
 * environment pointers and auxv, below their strings. For a process the agent attached to, whose first stack
 * pointer it never saw. */
static uint64_t start_stack(struct inferior *inf)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)inf->pid);
  if (!inf_read_proc(path, buf, sizeof buf))
    return 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  for (int field = 2; p && field < 28; field++)
    p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* How far from sp a window needs to go: to the thread's first stack pointer (plus a little, for the outermost
 * frame's return-address slot), else to the end of the stack's mapping. */
static uint64_t window_end(struct inferior *inf, struct inf_thread *t, uint64_t sp)
{
  uint64_t end = stack_end(inf, t, sp);
  if (!t->stack_top && t->tid == inf->pid)
    t->stack_top = start_stack(inf);
  uint64_t top = t->stack_top ? t->stack_top + 64 : 0;
  if (top > sp && (!end || top < end))
    end = top;
  return end;
}

/* Reads len bytes at addr into dst; returns what was read (0 when nothing was). */
static size_t read_some(struct inferior *inf, uint64_t addr, uint8_t *dst, size_t len)
{
  if (len == 0)
    return 0;
  long n = inf_read(inf, addr, dst, len);
  return n > 0 ? (size_t)n : 0;
}

static enum inf_cap_result record_return(struct inferior *inf, struct inf_thread *t, int wi, uint64_t retval,
                                         uint64_t sp, size_t limit)
{
  struct inf_capture *c = &inf->cap;
  struct inf_cap_watch w = c->w[wi];
  if (w.compact) {
    uint8_t mem[INF_CAP_MAX_MEM];
    size_t got = read_some(inf, w.mem_addr, mem, w.mem_len);
    struct capc_ret r = {.flags = got < w.mem_len ? CAPC_F_MEM_FAULT : 0, .tid = (uint32_t)t->tid, .seq = w.seq,
                         .ns = t->stop_ns, .retval = retval, .mem = mem, .mem_len = (uint32_t)got};
    if (w.mem_len)
      r.flags |= CAPC_F_MEM;
    size_t n = limit > c->len ? capc_put_ret(&c->codec, c->buf + c->len, limit - c->len, &r) : 0;
    if (!n)
      return INF_CAP_NO_ROOM;
    c->len += n;
    c->events++;
    drop_watch(inf, wi);
    return INF_CAP_DONE;
  }
  size_t need = CAP_REC_RETURN_FIXED + w.mem_len;
  if (c->len + need > limit)
    return INF_CAP_NO_ROOM;
  uint8_t *p = c->buf + c->len;
  size_t got = read_some(inf, w.mem_addr, p + CAP_REC_RETURN_FIXED, w.mem_len);
  int flags = got < w.mem_len ? CAP_FLAG_MEM_FAULT : 0;
  uint32_t len = (uint32_t)(CAP_REC_RETURN_FIXED + got);
  cap_put_header(p, CAP_REC_RETURN, flags, len, (uint32_t)t->tid, w.id, w.seq, t->stop_ns);
  cap_put64(p + CAP_REC_HEADER, w.ret_addr);
  cap_put64(p + CAP_REC_HEADER + 8, sp);
  cap_put64(p + CAP_REC_HEADER + 16, retval);
  cap_put32(p + CAP_REC_HEADER + 24, (uint32_t)got);
  cap_put32(p + CAP_REC_HEADER + 28, 0);
  c->len += len;
  c->events++;
  drop_watch(inf, wi);
  return INF_CAP_DONE;
}

/* Arms the return watch of a call entered now at sp; returns 0, or -1 when it cannot be watched. */
static int watch_return(struct inferior *inf, struct inf_thread *t, const struct inf_bp *b, const uint8_t *img,
                        uint64_t sp, uint64_t seq, const uint8_t *stack, size_t stack_len)
{
  const struct arch_desc *a = inf->arch;
  const struct inf_cap_spec spec = b->cap; /* releases below may move the breakpoint table */
  struct inf_capture *c = &inf->cap;
  uint64_t ret = 0, sp_after;
  if (a->lr_reg >= 0) { /* aarch64: the link register; the return leaves SP as it is at the entry */
    ret = reg_value(a, img, a->lr_reg);
    sp_after = sp;
  } else { /* x86_64: on top of the stack, popped by ret; usually in the window just read */
    if (stack_len >= 8)
      memcpy(&ret, stack, 8);
    else if (inf_read(inf, sp, &ret, 8) != 8)
      return -1;
    sp_after = sp + 8;
  }
  /* Watches of this thread from frames the stack has already left (longjmp, an exception) never return. */
  for (int i = c->nw - 1; i >= 0; i--)
    if (c->w[i].tid == t->tid && c->w[i].entry_sp < sp)
      drop_watch(inf, i);
  if (c->nw == INF_CAP_WATCHES) {
    if (c->watch_overflows++ == 0)
      LOG_WARN("capture: more than %d calls watched at once; dropping the oldest", INF_CAP_WATCHES);
    drop_watch(inf, 0);
  }
  if (inf_bp_own_insert(inf, ret))
    return -1;
  keep_return_site(inf, ret);
  struct inf_cap_watch *w = &c->w[c->nw++];
  w->tid = t->tid;
  w->id = spec.id;
  w->ret_addr = ret;
  w->entry_sp = sp;
  w->sp_after = sp_after;
  w->seq = seq;
  w->mem_len = spec.rmem_len;
  w->mem_addr = spec.rmem_len ? reg_value(a, img, spec.rmem_reg) + spec.rmem_off : 0;
  w->compact = 0;
  return 0;
}

/* The process's module map with its tables, refreshed from the arena when it changed. Returns the number of
 * modules (0: nothing to walk with). */
static size_t walk_modules(struct inferior *inf)
{
  struct inf_capture *c = &inf->cap;
  size_t size;
  void *arena = inf_tables_arena(&size);
  if (!arena)
    return 0;
  uint32_t gen = tarena_generation(arena);
  if (c->mods_valid && gen == c->mods_gen && c->mods_pid == inf->pid)
    return c->nmods;
  size_t n = 0;
  int rc = tarena_snapshot(arena, size, (int)inf->pid, c->mods, c->tabs, TARENA_MAX_MODS, &n);
  c->nmods = rc ? 0 : n;
  c->mods_gen = gen;
  c->mods_pid = inf->pid;
  c->mods_valid = rc == 0 || rc == RS_E_NOT_FOUND;
  return c->nmods;
}

/* A walk's memory: the thread's stack from sp, read into the capture's window once and widened (doubling) as
 * the walk climbs; anything else, or past the window's room, read from /proc/PID/mem directly. */
struct walk_mem {
  struct inferior *inf;
  uint64_t sp, end; /* the stack lies in [sp, end) (end 0: not known) */
  uint8_t *win;
  size_t have;
  uint64_t limit;   /* a window smaller than the most the client asked for: the walk stays in [sp, limit) */
  size_t used;      /* the window's bytes up to the highest one the walk asked for */
};

static int walk_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
  struct walk_mem *m = ctx;
  if (m->limit && (addr < m->sp || addr + len > m->limit))
    return -1; /* the host unwinds it within the window it asked for, and says where it was cut */
  if (addr >= m->sp && addr - m->sp + len <= INF_CAP_MAX_STACK && addr - m->sp + len > m->used)
    m->used = (size_t)(addr - m->sp + len);
  if (addr >= m->sp && addr - m->sp + len > m->have && addr - m->sp + len <= INF_CAP_MAX_STACK &&
      (!m->end || addr + len <= m->end)) {
    size_t want = m->have * 2 > addr - m->sp + len ? m->have * 2 : addr - m->sp + len;
    want = (want + 4095) & ~(size_t)4095;
    if (want > INF_CAP_MAX_STACK)
      want = INF_CAP_MAX_STACK;
    if (m->end && m->end - m->sp < want)
      want = (size_t)(m->end - m->sp);
    m->have += read_some(m->inf, m->sp + m->have, m->win + m->have, want - m->have);
  }
  if (addr >= m->sp && addr - m->sp <= m->have && len <= m->have - (addr - m->sp)) {
    memcpy(buf, m->win + (addr - m->sp), len);
    return 0;
  }
  return inf_read(m->inf, addr, buf, len) == (long)len ? 0 : -1;
}

static enum inf_cap_result emit_call(struct inferior *inf, const struct inf_cap_call *c, uint64_t seq, size_t limit);

#define WALK_FIRST_READ 4096 /* stack bytes read before the walk starts: most stacks need no more */

/* A compact call for a hit on b: the stack walked with the tables (or only the function, without unwinding),
 * interned and sent as kind 3. Returns INF_CAP_DONE, INF_CAP_NO_ROOM, or INF_CAP_NOT_MINE when the walk could
 * not finish (the caller sends the raw window instead). */
static enum inf_cap_result record_compact(struct inferior *inf, struct inf_thread *t, struct inf_bp *b,
                                          const uint8_t *img, uint64_t sp, size_t limit)
{
  const struct arch_desc *a = inf->arch;
  struct inf_capture *c = &inf->cap;
  const struct inf_cap_spec spec = b->cap, *s = &spec; /* watch_return may move the breakpoint table */
  const uint64_t addr = b->addr;
  struct inf_cap_store *st = cap_store(c);
  if (!st)
    return INF_CAP_NOT_MINE;
  struct walk_mem wm = {inf, sp, 0, st->win, 0, s->stack_len < INF_CAP_MAX_STACK ? sp + s->stack_len : 0, 0};
  uint64_t *pcs = st->walk_pcs;
  size_t np = 1;
  int truncated = 0;
  pcs[0] = addr;
  if (s->unwind) {
    size_t nmods = walk_modules(inf);
    if (nmods == 0)
      return INF_CAP_NOT_MINE;
    wm.end = window_end(inf, t, sp);
    size_t first = b->walk_read > WALK_FIRST_READ ? b->walk_read : WALK_FIRST_READ;
    if (first > INF_CAP_MAX_STACK)
      first = INF_CAP_MAX_STACK;
    if (wm.end > sp && wm.end - sp < first)
      first = (size_t)(wm.end - sp);
    wm.have = read_some(inf, sp, wm.win, first);
    struct utab_regs regs = {.pc = addr, .sp = sp, .fp = reg_value(a, img, a->fp_reg),
                             .have = UTAB_HAVE_SP | UTAB_HAVE_FP};
    if (a->lr_reg >= 0) {
      regs.lr = reg_value(a, img, a->lr_reg);
      regs.have |= UTAB_HAVE_LR;
    }
    struct utab_memory mem = {walk_read, &wm};
    int rc = utab_walk(c->mods, nmods, &mem, &regs, pcs, INF_CAP_FRAMES, &np, NULL);
    /* A deep stack is read in one go next time, not grown read by read. */
    b->walk_read = (uint32_t)((wm.used + 4095) & ~(size_t)4095);
    if (rc == UTAB_FULL)
      truncated = 1;
    else if (rc != UTAB_END || np == 0) {
      c->walk_fallbacks++;
      return INF_CAP_NOT_MINE;
    }
  } else if (s->ret && a->lr_reg < 0) {
    wm.have = read_some(inf, sp, wm.win, 8); /* the return address */
  }
  uint64_t seq = 0;
  if (s->ret) {
    if (watch_return(inf, t, b, img, sp, c->seq + 1, wm.win, wm.have) == 0)
      seq = c->seq + 1;
  }
  uint64_t regs[64];
  size_t nregs = 0;
  uint64_t mask = s->argmask & core_mask(a);
  for (int i = 0; i < 64; i++)
    if (mask >> i & 1)
      regs[nregs++] = reg_value(a, img, i);
  uint8_t mem[INF_CAP_MAX_MEM];
  size_t got = s->mem_len ? read_some(inf, reg_value(a, img, s->mem_reg) + s->mem_off, mem, s->mem_len) : 0;
  struct inf_cap_call k = {.tid = t->tid, .id = s->id, .ns = t->stop_ns, .regmask = mask, .regs = regs,
                           .pcs = pcs, .npcs = np, .truncated = truncated, .sp = sp,
                           .mem = mem, .mem_len = (uint32_t)got, .mem_fault = got < s->mem_len};
  if (np < 2 && s->ret) {
    if (a->lr_reg >= 0)
      k.ra = reg_value(a, img, a->lr_reg);
    else if (wm.have >= 8)
      memcpy(&k.ra, wm.win, 8);
  }
  enum inf_cap_result rc = emit_call(inf, &k, seq, limit);
  if (seq) {
    if (rc == INF_CAP_DONE) {
      c->seq = seq;
      c->w[c->nw - 1].compact = 1;
    } else {
      drop_watch(inf, c->nw - 1);
    }
  }
  return rc;
}

/* Writes call c (paired with a later return record by seq when seq is not 0) and whatever it needs first. */
static enum inf_cap_result emit_call(struct inferior *inf, const struct inf_cap_call *c, uint64_t seq, size_t limit)
{
  struct inf_capture *cap = &inf->cap;
  struct sintern *tab = &cap->stacks;
  if (!cap_store(cap) || c->npcs == 0 || c->npcs > CAPC_MAX_FRAMES || c->mem_len > CAPC_MAX_MEM || c->ret_mem_len > CAPC_MAX_MEM ||
      limit <= cap->len)
    return INF_CAP_NO_ROOM;
  uint8_t *out = cap->buf + cap->len;
  size_t room = (limit < INF_CAP_BUF ? limit : INF_CAP_BUF) - cap->len, pos = 0, n;
  struct capc_state st = cap->codec;
  long id = sintern_find(tab, c->pcs, c->npcs, c->truncated);
  int reset = cap->need_reset || (id < 0 && !sintern_room(tab, c->npcs));
  if (reset) {
    if (!(n = capc_put_reset(&st, out, room)))
      return INF_CAP_NO_ROOM;
    pos += n;
    id = -1;
  }
  if (id < 0) {
    id = st.nstacks;
    if (!(n = capc_put_stack(&st, out + pos, room - pos, c->pcs, c->npcs, c->truncated)))
      return INF_CAP_NO_ROOM;
    pos += n;
  }
  struct capc_call k = {.tid = (uint32_t)c->tid, .id = c->id, .stack = (uint32_t)id, .ns = c->ns, .seq = seq,
                        .sp = c->sp, .regmask = c->regmask, .ret_ns = c->ret_ns, .retval = c->retval,
                        .mem = c->mem, .mem_len = c->mem_len, .ret_mem = c->ret_mem, .ret_mem_len = c->ret_mem_len};
  k.flags = (seq ? CAPC_F_PAIRED : 0) | (c->has_ret ? CAPC_F_RET : 0) | (c->mem_fault ? CAPC_F_MEM_FAULT : 0);
  if (c->npcs < 2 && c->ra) {
    k.flags |= CAPC_F_RA;
    k.ra = c->ra;
  }
  size_t i = 0;
  for (int r = 0; r < 64; r++)
    if (c->regmask >> r & 1)
      k.regs[r] = c->regs[i++];
  if (!(n = capc_put_call(&st, out + pos, room - pos, &k)))
    return INF_CAP_NO_ROOM;
  pos += n;
  if (reset) {
    if (!cap->need_reset)
      cap->stack_resets++;
    sintern_reset(tab);
    cap->need_reset = 0;
  }
  if (id == (long)tab->nstacks) {
    sintern_add(tab, c->pcs, c->npcs, c->truncated);
    cap->stacks_interned++;
  }
  cap->codec = st;
  cap->len += pos;
  cap->calls++;
  cap->events += c->has_ret ? 2 : 1;
  return INF_CAP_DONE;
}

enum inf_cap_result inf_cap_emit_call(struct inferior *inf, const struct inf_cap_call *c, size_t limit)
{
  return emit_call(inf, c, 0, limit);
}

static enum inf_cap_result record_entry(struct inferior *inf, struct inf_thread *t, struct inf_bp *b,
                                        const uint8_t *img, uint64_t sp, size_t limit)
{
  const struct arch_desc *a = inf->arch;
  struct inf_capture *c = &inf->cap;
  const struct inf_cap_spec spec = b->cap, *s = &spec; /* watch_return may move the breakpoint table */
  int nregs = __builtin_popcountll(s->regmask);
  size_t fixed = CAP_REC_HEADER + 8 + 8 * (size_t)nregs + 8;
  if (c->len + fixed + s->mem_len + s->stack_len > limit)
    return INF_CAP_NO_ROOM;
  uint8_t *p = c->buf + c->len, *q = p + CAP_REC_HEADER;
  cap_put64(q, s->regmask);
  q += 8;
  for (int i = 0; i < 64; i++)
    if (s->regmask & (1ull << i)) {
      cap_put64(q, reg_value(a, img, i));
      q += 8;
    }
  int flags = 0;
  uint8_t *lens = q;
  q += 8;
  size_t mem = 0;
  if (s->mem_len) {
    mem = read_some(inf, reg_value(a, img, s->mem_reg) + s->mem_off, q, s->mem_len);
    if (mem < s->mem_len)
      flags |= CAP_FLAG_MEM_FAULT;
    q += mem;
  }
  /* One read: /proc/PID/mem stops at the first unreadable page, so a window past the stack's end comes back
   * cut there. */
  uint8_t *window = q;
  size_t want = s->stack_len;
  uint64_t end = want ? window_end(inf, t, sp) : 0;
  if (end > sp && end - sp < want)
    want = (size_t)(end - sp);
  size_t stack = read_some(inf, sp, q, want);
  if (stack < s->stack_len)
    flags |= CAP_FLAG_STACK_END;
  q += stack;
  cap_put32(lens, (uint32_t)mem);
  cap_put32(lens + 4, (uint32_t)stack);
  uint64_t seq = 0;
  if (s->ret) {
    seq = ++c->seq;
    if (watch_return(inf, t, b, img, sp, seq, window, stack)) {
      seq = 0;
      flags |= CAP_FLAG_UNPAIRED;
    }
  }
  uint32_t len = (uint32_t)(q - p);
  cap_put_header(p, CAP_REC_ENTRY, flags, len, (uint32_t)t->tid, s->id, seq, t->stop_ns);
  c->len += len;
  c->events++;
  if (s->stack_len > 8)
    c->raw_windows++;
  return INF_CAP_DONE;
}

enum inf_cap_result inf_cap_record(struct inferior *inf, struct inf_thread *t, struct inf_bp *b, size_t limit)
{
  struct ptarch_gregs *r = inf_gregs(inf, t);
  if (!r)
    return INF_CAP_NOT_MINE;
  uint64_t sp = ptarch_sp(r), addr = b->addr;
  if (b->own_refs > 0) {
    int wi = find_watch(&inf->cap, t->tid, addr, sp);
    if (wi >= 0) {
      enum inf_cap_result rc = record_return(inf, t, wi, ptarch_retval(r), sp, limit);
      if (rc != INF_CAP_DONE)
        return rc;
      b = inf_bp_find(inf, addr); /* the release may have removed it, and moved the table */
      if (!b || b->refs == 0)
        return INF_CAP_DONE;
      if (!b->cap.on)
        return INF_CAP_NOT_MINE; /* the client's own breakpoint is there too */
    } else if (b->refs == 0) {
      stray_return_site(inf, addr); /* may remove the breakpoint: the caller finds none and goes on */
      return INF_CAP_DONE; /* another call passing the return site: nothing to record, step over */
    }
  }
  if (!b->cap.on || b->refs == 0)
    return INF_CAP_NOT_MINE;
  uint8_t img[1024];
  ptarch_fill_core(r, img);
  if (b->cap.compact) {
    enum inf_cap_result rc = record_compact(inf, t, b, img, sp, limit);
    if (rc != INF_CAP_NOT_MINE)
      return rc;
  }
  return record_entry(inf, t, b, img, sp, limit);
}
