/* The RSP server's shared reply helpers: framing and sending replies, thread ids, and the stop reply
 * with the registers, stack window and quiet hits the rsprof extensions add to it. */
#include "session.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "capture-codec.h"
#include "capture-records.h"
#include "errors.h"
#include "hex.h"
#include "log.h"
#include "signals.h"

void agent_send_raw(struct agent_server *s, const void *data, size_t len)
{
  if (s->send)
    s->send(s->send_ctx, data, len);
}

/* Frames and sends the reply buffer. */
void agent_send_reply(struct agent_server *s)
{
  rs_buf_reset(&s->wire);
  if (rsp_encode_packet(&s->wire, s->reply.data ? s->reply.data : (const uint8_t *)"", s->reply.len)) {
    rs_buf_reset(&s->wire);
    rsp_encode_packet(&s->wire, "E01", 3);
  }
  agent_send_raw(s, s->wire.data, s->wire.len);
  rs_buf_reset(&s->reply);
}

/* Frames "%RsprofEvents:" + the records [data, data + len) into s->wire and sends it. Notifications are never
 * acknowledged, so they can go out while the client waits for a stop reply. */
static void send_events(struct agent_server *s, const uint8_t *data, size_t len)
{
  static const char name[] = "RsprofEvents:";
  struct rs_buf *w = &s->wire;
  rs_buf_reset(w);
  if (rs_buf_putc(w, '%') || rsp_escape_binary(w, name, sizeof name - 1) || rsp_escape_binary(w, data, len))
    return; /* cannot happen: a batch fits the wire buffer */
  unsigned sum = 0;
  for (size_t i = 1; i < w->len; i++)
    sum += w->data[i];
  rs_buf_printf(w, "#%02x", sum & 0xff);
  agent_send_raw(s, w->data, w->len);
  rs_buf_reset(w);
}

/* Frames a process marker (CAP_REC_PROCESS) and the records [data, data + len) as one notification. */
static void send_process_events(struct agent_server *s, pid_t pid, const uint8_t *data, size_t len)
{
  if (rs_buf_reserve(&s->doc, len + CAP_REC_HEADER)) {
    send_events(s, data, len);
    return;
  }
  uint8_t *tmp = s->doc.data;
  cap_put_header(tmp, CAP_REC_PROCESS, 0, CAP_REC_HEADER, (uint32_t)pid, 0, 0, inf_monotonic_ns());
  memcpy(tmp + CAP_REC_HEADER, data, len);
  send_events(s, tmp, len + CAP_REC_HEADER);
}

int agent_flush_events(struct agent_server *s, int force)
{
  int sent = 0;
  for (int i = 0; i < s->procs.n; i++) {
    struct inferior *inf = s->procs.p[i];
    struct inf_capture *c = &inf->cap;
    while (c->len > 0 && (force || !s->hold)) {
      size_t n = 0;
      while (n < c->len) {
        size_t l = cap_record_len(c->buf + n, c->len - n);
        if (l == 0) { /* cannot happen: the buffer holds whole records */
          LOG_ERR("capture: a damaged record in the buffer; %zu bytes dropped", c->len - n);
          c->len = n;
          break;
        }
        if (n > 0 && n + l > AGENT_EVENT_BATCH)
          break;
        n += l;
      }
      if (s->follow_fork) /* which process the records are of: the client keeps one image per process */
        send_process_events(s, inf->pid ? inf->pid : inf->gone_pid, c->buf, n);
      else
        send_events(s, c->buf, n);
      inf_cap_consume(inf, n);
      sent = 1;
    }
  }
  return sent;
}

/* A stats record (CAP_REC_STATS) ahead of a stop reply, so the client knows how long the program was held. */
static void send_capture_stats(struct agent_server *s)
{
  const struct inf_capture *c = &s->inf->cap;
  uint8_t rec[CAP_REC_STATS_LEN];
  uint64_t held = c->held_ns + (c->nparked > 0 ? inf_monotonic_ns() - c->held_since : 0);
  cap_put_header(rec, CAP_REC_STATS, 0, CAP_REC_STATS_LEN, 0, 0, 0, inf_monotonic_ns());
  cap_put64(rec + CAP_REC_HEADER, c->events);
  cap_put64(rec + CAP_REC_HEADER + 8, held);
  cap_put64(rec + CAP_REC_HEADER + 16, c->parked);
  cap_put64(rec + CAP_REC_HEADER + 24, c->watch_overflows);
  cap_put64(rec + CAP_REC_HEADER + 32, c->calls);
  cap_put64(rec + CAP_REC_HEADER + 40, c->stacks_interned);
  cap_put64(rec + CAP_REC_HEADER + 48, c->raw_windows);
  cap_put64(rec + CAP_REC_HEADER + 56, c->stack_resets);
  send_events(s, rec, sizeof rec);
}

void agent_put_tid(struct agent_server *s, struct rs_buf *b, pid_t tid)
{
  struct inferior *owner = procs_by_tid(&s->procs, tid);
  if (s->multiprocess)
    rs_buf_printf(b, "p%x.%x", (unsigned)(owner ? owner->pid : s->inf->pid), (unsigned)tid);
  else
    rs_buf_printf(b, "%x", (unsigned)tid);
}

/* The rsprof-stopstack extension: "rsprof-stack:" and then, raw to the end of the packet (the framing escapes
 * it), as much of the stack window at sp as is readable, so a tracing client needs no 'x' round trip. */
static void put_stop_stack(struct agent_server *s, struct rs_buf *b, uint64_t sp)
{
  rs_buf_puts(b, "rsprof-stack:");
  if (rs_buf_reserve(b, s->stop_stack_len))
    return;
  /* One read: /proc/PID/mem stops at the first unreadable page, so a window past the stack's end comes back
   * cut there. */
  long n = inf_read(s->inf, sp, b->data + b->len, s->stop_stack_len);
  if (n > 0)
    b->len += (size_t)n;
  b->data[b->len] = 0;
}

/* The rsprof-quietbreak extension: "rsprof-quiet:" and the queued quiet hits, oldest first, as
 * TID/PC/SP/RETVAL/NS (hex; NS: CLOCK_MONOTONIC nanoseconds when the agent saw the hit) separated by
 * commas, between the separators before and after. Each hit is sent once; nothing is written when none
 * is queued. */
static void put_quiet_hits(struct agent_server *s, struct rs_buf *b, const char *before, const char *after)
{
  int any = 0; /* every process's: thread ids tell them apart */
  for (int k = 0; k < s->procs.n; k++) {
    struct inferior *inf = s->procs.p[k];
    for (int i = 0; i < inf->nquiet; i++) {
      const struct inf_quiet_hit *h = &inf->quiet[i];
      if (!any++) {
        rs_buf_puts(b, before);
        rs_buf_puts(b, "rsprof-quiet:");
      }
      rs_buf_printf(b, "%s%x/%llx/%llx/%llx/%llx", any > 1 ? "," : "", (unsigned)h->tid,
                    (unsigned long long)h->pc, (unsigned long long)h->sp, (unsigned long long)h->retval,
                    (unsigned long long)h->ns);
    }
    inf->nquiet = 0;
  }
  if (any)
    rs_buf_puts(b, after);
}

void agent_stop_reply(struct agent_server *s, const struct inf_stop *st)
{
  struct rs_buf *b = &s->reply;
  rs_buf_reset(b);
  switch (st->kind) {
  case INF_STOP_EXITED:
  case INF_STOP_KILLED:
    rs_buf_printf(b, "%c%02x", st->kind == INF_STOP_EXITED ? 'W' : 'X',
                  st->kind == INF_STOP_EXITED ? st->sig : agent_sig_to_gdb(st->sig));
    if (s->multiprocess)
      rs_buf_printf(b, ";process:%x", (unsigned)st->tid);
    put_quiet_hits(s, b, ";", ""); /* hits just before the exit */
    return;
  case INF_STOP_FORK:
  case INF_STOP_VFORK:
  case INF_STOP_VFORK_DONE:
  case INF_STOP_EXEC:
  case INF_STOP_SIGNAL: {
    rs_buf_printf(b, "T%02x", agent_sig_to_gdb(st->sig));
    if (st->kind == INF_STOP_FORK || st->kind == INF_STOP_VFORK) { /* fork-events, vfork-events: the child */
      rs_buf_printf(b, "%s:p%x.%x;", st->kind == INF_STOP_FORK ? "fork" : "vfork", (unsigned)st->child,
                    (unsigned)st->child);
    } else if (st->kind == INF_STOP_VFORK_DONE) {
      rs_buf_puts(b, "vforkdone:;");
    }
    if (st->kind == INF_STOP_EXEC) { /* exec-events: the new program's path, hex-encoded, as gdbserver */
      char path[64], exe[4096];
      snprintf(path, sizeof path, "/proc/%d/exe", (int)s->inf->pid);
      ssize_t n = readlink(path, exe, sizeof exe);
      rs_buf_puts(b, "exec:");
      rs_buf_put_hex(b, exe, n > 0 ? (size_t)n : 0);
      rs_buf_putc(b, ';');
    }
    struct inf_thread *t = inf_thread(s->inf, st->tid);
    struct ptarch_gregs *r = t ? inf_gregs(s->inf, t) : NULL;
    if (r) {
      /* Expedite what an unwinder needs, so a tracing client often needs no 'g' at all. */
      const struct arch_desc *a = s->inf->arch;
      uint8_t img[1024];
      {
        ptarch_fill_core(r, img);
        int last = a->pc_reg > a->sp_reg ? a->pc_reg : a->sp_reg;
        for (int i = 0; i <= last; i++) {
          long off = arch_reg_offset(a, i);
          rs_buf_printf(b, "%02x:", (unsigned)i);
          rs_buf_put_hex(b, img + off, a->regs[i].bits / 8);
          rs_buf_putc(b, ';');
        }
      }
    }
    rs_buf_puts(b, "thread:");
    agent_put_tid(s, b, st->tid);
    rs_buf_putc(b, ';');
    if (st->swbreak && s->swbreak_ok)
      rs_buf_puts(b, "swbreak:;");
    if (t && s->stop_time) /* rsprof-stoptime: when the agent saw the stop */
      rs_buf_printf(b, "rsprof-time:%llx;", (unsigned long long)t->stop_ns);
    put_quiet_hits(s, b, "", ";");
    if (r && st->swbreak && s->stop_stack_len)
      put_stop_stack(s, b, ptarch_sp(r));
    return;
  }
  default:
    rs_buf_puts(b, "W00");
  }
}

void agent_reply_str(struct agent_server *s, const char *str)
{
  rs_buf_reset(&s->reply);
  rs_buf_puts(&s->reply, str);
}

void agent_reply_err(struct agent_server *s, int code) { agent_reply_str(s, code == 2 ? "E02" : "E01"); }

/* Reports a stop (or exit) to the client and remembers it for '?'. */
void agent_report_stop(struct agent_server *s, const struct inf_stop *st)
{
  s->last = *st;
  if (s->capture_used) { /* every event recorded before the stop reaches the client before the stop itself */
    for (int i = 0; i < s->procs.n; i++)
      while (inf_rec_drain(s->procs.p[i], INF_CAP_BUF) > 0)
        agent_flush_events(s, 1);
    agent_flush_events(s, 1);
    send_capture_stats(s);
  }
  if (st->kind != INF_STOP_EXITED && st->kind != INF_STOP_KILLED)
    s->gthread = s->cthread = st->tid;
  agent_stop_reply(s, st);
  agent_send_reply(s);
  if ((st->kind == INF_STOP_EXITED || st->kind == INF_STOP_KILLED) && s->inf->rec.injected) {
    inf_rec_log_stats(s->inf);
    s->inf->rec.injected = 0;
  }
  if (st->kind == INF_STOP_EXITED || st->kind == INF_STOP_KILLED) {
    if (s->inf == &s->first) /* the agent's own status is the launched program's */
      s->exit_code = st->kind == INF_STOP_EXITED ? st->sig : 128 + st->sig;
    procs_reap(&s->procs);
    s->inf = procs_any(&s->procs);
    if (!s->extended && !s->multi_mode && procs_count(&s->procs) == 0) {
      s->done = 1;
      s->quit = 1;
    }
  }
}

/* Parses a thread id: "p<pid>.<tid>", "p<pid>", "<tid>", "-1" (all) or "0" (any). */
int agent_parse_tid(const char **p, pid_t *tid)
{
  pid_t pid;
  return agent_parse_ptid(p, &pid, tid);
}

int agent_parse_ptid(const char **p, pid_t *pid, pid_t *tid)
{
  const char *q = *p;
  uint64_t v;
  *pid = 0;
  if (*q == '-' && q[1] == '1') {
    *tid = -1;
    *p = q + 2;
    return 0;
  }
  if (*q == 'p') {
    q++;
    if (*q == '-' && q[1] == '1') {
      q += 2;
      v = (uint64_t)-1;
    } else if (hex_parse_u64(&q, &v) || (v > 0x7fffffff && v != (uint64_t)-1)) {
      return RS_E_BAD_ARG;
    }
    *pid = v == (uint64_t)-1 ? -1 : (pid_t)v;
    if (*q != '.') {
      *tid = v == (uint64_t)-1 ? -1 : 0;
      *p = q;
      return 0;
    }
    q++;
    if (*q == '-' && q[1] == '1') {
      *tid = -1;
      *p = q + 2;
      return 0;
    }
  }
  if (hex_parse_u64(&q, &v) || v > 0x7fffffff)
    return RS_E_BAD_ARG;
  *tid = (pid_t)v;
  *p = q;
  return 0;
}

/* The thread register packets act on: the selected one, else the last reporter, else the leader. */
struct inf_thread *agent_cur_thread(struct agent_server *s, pid_t sel)
{
  struct inf_thread *t = sel > 0 ? inf_thread(s->inf, sel) : NULL;
  if (!t && (s->last.kind == INF_STOP_SIGNAL || s->last.kind == INF_STOP_EXEC))
    t = inf_thread(s->inf, s->last.tid);
  if (!t && s->inf->nth > 0)
    t = &s->inf->th[0];
  return t;
}
