/* The RSP server's packet dispatch: one handler per packet family, replies built into a bounded
 * buffer and framed with the common codec. Packets that arrive while the program runs wait in
 * order until the stop reply has been sent. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-internal.h"
#include "errors.h"
#include "hex.h"
#include "log.h"

int agent_server_init(struct agent_server *s, char **argv)
{
  memset(s, 0, sizeof *s);
  inf_init(&s->inf);
  s->argv = argv;
  for (int i = 0; i < AGENT_MAX_VFILES; i++)
    s->vfd[i] = -1;
  rs_buf_init(&s->in, 4 * AGENT_PACKET_SIZE);
  rs_buf_init(&s->reply, 2 * AGENT_PACKET_SIZE + 64);
  rs_buf_init(&s->wire, 4 * AGENT_PACKET_SIZE + 64);
  rs_buf_init(&s->doc, 1 << 20);
  if (rsp_decoder_init(&s->dec, AGENT_PACKET_SIZE) || rs_buf_reserve(&s->reply, 4096) ||
      rs_buf_reserve(&s->wire, 8192))
    return -ENOMEM;
  return 0;
}

void agent_server_free(struct agent_server *s)
{
  rsp_decoder_free(&s->dec);
  rs_buf_free(&s->in);
  rs_buf_free(&s->reply);
  rs_buf_free(&s->wire);
  rs_buf_free(&s->doc);
  for (int i = 0; i < AGENT_MAX_VFILES; i++)
    if (s->vfd[i] >= 0)
      close(s->vfd[i]);
}

static void send_raw(struct agent_server *s, const void *data, size_t len)
{
  if (s->send)
    s->send(s->send_ctx, data, len);
}

/* Frames and sends the reply buffer. */
static void send_reply(struct agent_server *s)
{
  rs_buf_reset(&s->wire);
  if (rsp_encode_packet(&s->wire, s->reply.data ? s->reply.data : (const uint8_t *)"", s->reply.len)) {
    rs_buf_reset(&s->wire);
    rsp_encode_packet(&s->wire, "E01", 3);
  }
  send_raw(s, s->wire.data, s->wire.len);
  rs_buf_reset(&s->reply);
}

static void put_tid(struct agent_server *s, struct rs_buf *b, pid_t tid)
{
  if (s->multiprocess)
    rs_buf_printf(b, "p%x.%x", (unsigned)s->inf.pid, (unsigned)tid);
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
  long n = inf_read(&s->inf, sp, b->data + b->len, s->stop_stack_len);
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
  struct inferior *inf = &s->inf;
  if (inf->nquiet == 0)
    return;
  rs_buf_puts(b, before);
  rs_buf_puts(b, "rsprof-quiet:");
  for (int i = 0; i < inf->nquiet; i++) {
    const struct inf_quiet_hit *h = &inf->quiet[i];
    rs_buf_printf(b, "%s%x/%llx/%llx/%llx/%llx", i ? "," : "", (unsigned)h->tid, (unsigned long long)h->pc,
                  (unsigned long long)h->sp, (unsigned long long)h->retval, (unsigned long long)h->ns);
  }
  rs_buf_puts(b, after);
  inf->nquiet = 0;
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
  case INF_STOP_EXEC:
  case INF_STOP_SIGNAL: {
    rs_buf_printf(b, "T%02x", agent_sig_to_gdb(st->sig));
    if (st->kind == INF_STOP_EXEC) { /* exec-events: the new program's path, hex-encoded, as gdbserver */
      char path[64], exe[4096];
      snprintf(path, sizeof path, "/proc/%d/exe", (int)s->inf.pid);
      ssize_t n = readlink(path, exe, sizeof exe);
      rs_buf_puts(b, "exec:");
      rs_buf_put_hex(b, exe, n > 0 ? (size_t)n : 0);
      rs_buf_putc(b, ';');
    }
    struct inf_thread *t = inf_thread(&s->inf, st->tid);
    struct ptarch_gregs *r = t ? inf_gregs(&s->inf, t) : NULL;
    if (r) {
      /* Expedite what an unwinder needs, so a tracing client often needs no 'g' at all. */
      const struct arch_desc *a = s->inf.arch;
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
    put_tid(s, b, st->tid);
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

static void reply_str(struct agent_server *s, const char *str)
{
  rs_buf_reset(&s->reply);
  rs_buf_puts(&s->reply, str);
}

static void reply_err(struct agent_server *s, int code) { reply_str(s, code == 2 ? "E02" : "E01"); }

/* Reports a stop (or exit) to the client and remembers it for '?'. */
static void report_stop(struct agent_server *s, const struct inf_stop *st)
{
  s->last = *st;
  if (st->kind == INF_STOP_SIGNAL || st->kind == INF_STOP_EXEC)
    s->gthread = s->cthread = st->tid;
  agent_stop_reply(s, st);
  send_reply(s);
  if (st->kind == INF_STOP_EXITED || st->kind == INF_STOP_KILLED) {
    s->exit_code = st->kind == INF_STOP_EXITED ? st->sig : 128 + st->sig;
    if (!s->extended && !s->multi_mode) {
      s->done = 1;
      s->quit = 1;
    }
  }
}

/* Parses a thread id: "p<pid>.<tid>", "p<pid>", "<tid>", "-1" (all) or "0" (any). */
int agent_parse_tid(const char **p, pid_t *tid)
{
  const char *q = *p;
  uint64_t v;
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
    } else if (hex_parse_u64(&q, &v)) {
      return RS_E_BAD_ARG;
    }
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
static struct inf_thread *cur_thread(struct agent_server *s, pid_t sel)
{
  struct inf_thread *t = sel > 0 ? inf_thread(&s->inf, sel) : NULL;
  if (!t && (s->last.kind == INF_STOP_SIGNAL || s->last.kind == INF_STOP_EXEC))
    t = inf_thread(&s->inf, s->last.tid);
  if (!t && s->inf.nth > 0)
    t = &s->inf.th[0];
  return t;
}

static int parse_addr_len(const char **p, uint64_t *addr, uint64_t *len, char end)
{
  if (hex_parse_u64_until(p, addr, ','))
    return RS_E_BAD_ARG;
  if (end ? hex_parse_u64_until(p, len, end) : hex_parse_u64(p, len))
    return RS_E_BAD_ARG;
  if (!end && **p)
    return RS_E_BAD_ARG;
  return 0;
}

static void handle_regs(struct agent_server *s, const char *pkt, size_t len)
{
  const struct arch_desc *a = s->inf.arch;
  struct inf_thread *t = cur_thread(s, s->gthread);
  uint8_t img[1024];
  size_t size = arch_regs_size(a);
  struct ptarch_gregs *r = t ? inf_gregs(&s->inf, t) : NULL;
  if (!r || ptarch_fill_all(t->tid, r, img)) {
    reply_err(s, 1);
    return;
  }
  if (pkt[0] == 'g') {
    rs_buf_put_hex(&s->reply, img, size);
    return;
  }
  if (pkt[0] == 'G') {
    if (len - 1 != 2 * size || hex_decode(img, pkt + 1, size)) {
      reply_err(s, 1);
      return;
    }
  } else {
    const char *p = pkt + 1;
    uint64_t n;
    if (hex_parse_u64(&p, &n) || n >= a->nregs || (pkt[0] == 'p' && *p) || (pkt[0] == 'P' && *p != '=')) {
      reply_err(s, 1);
      return;
    }
    long off = arch_reg_offset(a, (int)n);
    size_t rsz = a->regs[n].bits / 8;
    if (pkt[0] == 'p') {
      rs_buf_put_hex(&s->reply, img + off, rsz);
      return;
    }
    p++;
    if (strlen(p) != 2 * rsz || hex_decode(img + off, p, rsz)) {
      reply_err(s, 1);
      return;
    }
  }
  int rc = ptarch_store_all(t->tid, r, img);
  t->regs_valid = 0;
  if (rc)
    reply_err(s, 1);
  else
    reply_str(s, "OK");
}

static void handle_mem(struct agent_server *s, char *pkt, size_t len)
{
  const char *p = pkt + 1;
  uint64_t addr, n;
  char kind = pkt[0];
  if (parse_addr_len(&p, &addr, &n, (kind == 'M' || kind == 'X') ? ':' : 0)) {
    reply_err(s, 1);
    return;
  }
  if (kind == 'm' || kind == 'x') {
    if (n > AGENT_PACKET_SIZE / 2)
      n = AGENT_PACKET_SIZE / 2;
    uint8_t *buf = s->doc.data;
    if (rs_buf_reserve(&s->doc, n + 1)) {
      reply_err(s, 1);
      return;
    }
    buf = s->doc.data;
    long got = n ? inf_read(&s->inf, addr, buf, n) : 0;
    if (got < 0 || (got == 0 && n > 0)) {
      reply_err(s, 1);
      return;
    }
    if (kind == 'm') {
      rs_buf_put_hex(&s->reply, buf, (size_t)got);
    } else {
      rs_buf_putc(&s->reply, 'b');
      rs_buf_append(&s->reply, buf, (size_t)got);
    }
    return;
  }
  size_t datalen = len - (size_t)(p - pkt);
  uint8_t *data = (uint8_t *)p;
  if (kind == 'M') {
    if (datalen != 2 * n || hex_decode(data, p, n)) {
      reply_err(s, 1);
      return;
    }
  } else {
    /* The codec already removed the framing escapes: X data arrives as raw bytes. */
    if (datalen != n) {
      reply_err(s, 1);
      return;
    }
  }
  if (n == 0) {
    reply_str(s, "OK");
    return;
  }
  reply_str(s, inf_write(&s->inf, addr, data, n) ? "E01" : "OK");
}

static void handle_bp(struct agent_server *s, const char *pkt)
{
  if (pkt[1] != '0') {
    rs_buf_reset(&s->reply); /* only software breakpoints are supported */
    return;
  }
  const char *p = pkt + 2;
  uint64_t addr, kind;
  if (*p != ',' || (p++, hex_parse_u64_until(&p, &addr, ',')) || hex_parse_u64(&p, &kind) ||
      (*p && *p != ';')) {
    reply_err(s, 1);
    return;
  }
  if (s->inf.pid == 0) {
    reply_err(s, 1);
    return;
  }
  int rc = pkt[0] == 'Z' ? inf_bp_insert(&s->inf, addr) : inf_bp_remove(&s->inf, addr);
  reply_str(s, rc ? "E01" : "OK");
}

/* Starts the resume described by acts; replies at once only if a stop is already known. */
static void do_resume(struct agent_server *s, struct inf_resume *acts, int n)
{
  struct inf_stop st;
  if (s->inf.pid == 0) {
    reply_err(s, 1);
    return;
  }
  int rc = inf_resume(&s->inf, acts, n, &st);
  if (rc == 1) {
    report_stop(s, &st);
  } else if (rc < 0) {
    reply_err(s, 1);
    send_reply(s);
  }
  /* Otherwise the stop reply follows from agent_server_child_event(). */
}

static void handle_simple_resume(struct agent_server *s, const char *pkt)
{
  struct inf_resume act[2];
  const char *p = pkt + 1;
  int sig = 0;
  if (pkt[0] == 'C' || pkt[0] == 'S') {
    uint64_t v;
    if (hex_parse_u64(&p, &v) || v > 255) {
      reply_err(s, 1);
      send_reply(s);
      return;
    }
    sig = agent_sig_from_gdb((int)v);
    if (*p == ';')
      p++;
  }
  if (*p) {
    /* Resuming at another address: set the PC of the thread first. */
    uint64_t addr;
    struct inf_thread *t = cur_thread(s, s->cthread);
    struct ptarch_gregs *r = t ? inf_gregs(&s->inf, t) : NULL;
    if (hex_parse_u64(&p, &addr) || !r) {
      reply_err(s, 1);
      send_reply(s);
      return;
    }
    ptarch_set_pc(r, addr);
    ptarch_set_gregs(t->tid, r);
  }
  int step = pkt[0] == 's' || pkt[0] == 'S';
  if (step) {
    struct inf_thread *t = cur_thread(s, s->cthread);
    act[0] = (struct inf_resume){t ? t->tid : -1, INF_ACT_STEP, sig};
    do_resume(s, act, 1);
  } else {
    act[0] = (struct inf_resume){-1, INF_ACT_CONT, sig};
    do_resume(s, act, 1);
  }
}

static void handle_vcont(struct agent_server *s, const char *pkt)
{
  struct inf_resume acts[64];
  int n = 0;
  const char *p = pkt + 5;
  while (*p == ';' && n < 64) {
    p++;
    enum inf_action act;
    int sig = 0;
    char c = *p++;
    if (c == 'c' || c == 'C')
      act = INF_ACT_CONT;
    else if (c == 's' || c == 'S')
      act = INF_ACT_STEP;
    else if (c == 't')
      act = INF_ACT_STOP;
    else
      goto bad;
    if (c == 'C' || c == 'S') {
      uint64_t v;
      if (hex_parse_u64(&p, &v) || v > 255)
        goto bad;
      sig = agent_sig_from_gdb((int)v);
    }
    pid_t tid = -1;
    if (*p == ':') {
      p++;
      if (agent_parse_tid(&p, &tid))
        goto bad;
      if (tid == 0)
        tid = -1;
    }
    acts[n++] = (struct inf_resume){tid, act, sig};
  }
  if (*p || n == 0)
    goto bad;
  do_resume(s, acts, n);
  return;
bad:
  reply_err(s, 1);
  send_reply(s);
}

static void list_threads(struct agent_server *s)
{
  rs_buf_putc(&s->reply, 'm');
  for (int i = 0; i < s->inf.nth; i++) {
    if (i)
      rs_buf_putc(&s->reply, ',');
    put_tid(s, &s->reply, s->inf.th[i].tid);
  }
}

static void handle_qsupported(struct agent_server *s, const char *pkt)
{
  s->multiprocess = strstr(pkt, "multiprocess+") != NULL;
  s->swbreak_ok = strstr(pkt, "swbreak+") != NULL;
  s->inf.report_exec = strstr(pkt, "exec-events+") != NULL;
  rs_buf_printf(&s->reply,
                "PacketSize=%x;QStartNoAckMode+;qXfer:features:read+;qXfer:auxv:read+;"
                "qXfer:libraries-svr4:read+;qXfer:exec-file:read+;qXfer:threads:read+;"
                "swbreak+;vContSupported+;binary-upload+;QPassSignals+;QDisableRandomization+;rsprof-stepover+;"
                "rsprof-stopstack+;rsprof-quietbreak+;rsprof-stoptime+;rsprof-detachfork+%s%s",
                AGENT_PACKET_SIZE, s->multiprocess ? ";multiprocess+" : "", s->inf.report_exec ? ";exec-events+" : "");
}

static void handle_passsignals(struct agent_server *s, const char *p)
{
  memset(s->inf.pass_sig, 0, sizeof s->inf.pass_sig);
  while (*p) {
    uint64_t v;
    if (hex_parse_u64(&p, &v)) {
      reply_err(s, 1);
      return;
    }
    int sig = agent_sig_from_gdb((int)(v & 0xff));
    if (sig > 0 && sig < 65)
      s->inf.pass_sig[sig] = 1;
    if (*p == ';')
      p++;
    else if (*p) {
      reply_err(s, 1);
      return;
    }
  }
  reply_str(s, "OK");
}

/* vRun;PROG;ARG... with hex-encoded fields; an empty PROG means the program from the command line. */
static void handle_vrun(struct agent_server *s, char *pkt)
{
  char *argv[64];
  int argc = 0;
  char *f = pkt + 4;
  if (*f == ';') {
    f++;
    while (argc < 63) {
      char *end = strchr(f, ';');
      if (end)
        *end = 0;
      size_t hl = strlen(f);
      /* In-place decoding is safe: byte i is written after hex digits 2i and 2i+1 were read. */
      if (hl % 2 || hex_decode(f, f, hl / 2)) {
        reply_err(s, 1);
        return;
      }
      f[hl / 2] = 0;
      argv[argc++] = f;
      if (!end)
        break;
      f = end + 1;
    }
  }
  argv[argc] = NULL;
  if (argc == 0 || argv[0][0] == 0) {
    if (!s->argv || !s->argv[0]) {
      reply_err(s, 1);
      return;
    }
    if (argc == 0)
      argc = 1;
    argv[0] = s->argv[0];
    if (argc == 1)
      for (int i = 1; s->argv[i] && argc < 63; i++)
        argv[argc++] = s->argv[i];
    argv[argc] = NULL;
  }
  if (s->inf.pid)
    inf_kill(&s->inf);
  int rc = inf_launch(&s->inf, argv, s->disable_aslr);
  if (rc) {
    reply_err(s, 1);
    return;
  }
  struct inf_stop st = {INF_STOP_SIGNAL, SIGTRAP, s->inf.pid, 0};
  s->last = st;
  s->gthread = s->cthread = s->inf.pid;
  agent_stop_reply(s, &st);
}

static void handle_vattach(struct agent_server *s, const char *pkt)
{
  const char *p = pkt + 8;
  uint64_t pid;
  if (hex_parse_u64(&p, &pid) || *p || pid == 0 || pid > 0x7fffffff) {
    reply_err(s, 1);
    return;
  }
  if (s->inf.pid)
    inf_kill(&s->inf);
  if (inf_attach(&s->inf, (pid_t)pid)) {
    reply_err(s, 1);
    return;
  }
  struct inf_stop st = {INF_STOP_SIGNAL, 0, (pid_t)pid, 0};
  s->last = st;
  s->gthread = s->cthread = (pid_t)pid;
  agent_stop_reply(s, &st);
}

/* Handles one packet; the reply (possibly empty) is sent unless a resume left the program running. */
static void dispatch(struct agent_server *s, char *pkt, size_t len)
{
  rs_buf_reset(&s->reply);
  if (rs_log_enabled(RS_LOG_TRACE))
    LOG_DEBUG("<- %.*s", (int)(len > 200 ? 200 : len), pkt);
  switch (pkt[0]) {
  case '?':
    if (s->inf.pid == 0)
      reply_str(s, "W00");
    else
      agent_stop_reply(s, &s->last);
    break;
  case 'g':
  case 'G':
  case 'p':
  case 'P':
    if (s->inf.pid == 0 || (pkt[0] == 'g' && len != 1))
      reply_err(s, 1);
    else
      handle_regs(s, pkt, len);
    break;
  case 'm':
  case 'M':
  case 'X':
  case 'x':
    if (s->inf.pid == 0)
      reply_err(s, 1);
    else
      handle_mem(s, pkt, len);
    break;
  case 'Z':
  case 'z':
    handle_bp(s, pkt);
    break;
  case 'c':
  case 'C':
  case 's':
  case 'S':
    handle_simple_resume(s, pkt);
    return;
  case 'H': {
    const char *p = pkt + 2;
    pid_t tid;
    if ((pkt[1] != 'g' && pkt[1] != 'c') || agent_parse_tid(&p, &tid) || *p) {
      reply_err(s, 1);
      break;
    }
    if (pkt[1] == 'g')
      s->gthread = tid;
    else
      s->cthread = tid;
    reply_str(s, "OK");
    break;
  }
  case 'T': {
    const char *p = pkt + 1;
    pid_t tid;
    if (agent_parse_tid(&p, &tid) || *p)
      reply_err(s, 1);
    else
      reply_str(s, inf_thread(&s->inf, tid) ? "OK" : "E01");
    break;
  }
  case 'k':
    if (s->inf.pid) {
      inf_kill(&s->inf);
      s->exit_code = 128 + SIGKILL;
    }
    if (!s->extended) {
      s->done = 1;
      s->quit = 1;
    }
    return; /* 'k' has no reply */
  case 'D':
    if (s->inf.pid == 0) {
      reply_err(s, 1);
      break;
    }
    if (!s->inf.attached)
      s->detached_child = s->inf.pid;
    inf_detach(&s->inf);
    reply_str(s, "OK");
    if (!s->extended) {
      s->done = 1;
      s->quit = 1;
    }
    break;
  case '!':
    s->extended = 1;
    reply_str(s, "OK");
    break;
  case 'q':
    if (!strncmp(pkt, "qSupported", 10))
      handle_qsupported(s, pkt);
    else if (!strcmp(pkt, "qC")) {
      struct inf_thread *t = cur_thread(s, 0);
      if (t) {
        rs_buf_puts(&s->reply, "QC");
        put_tid(s, &s->reply, t->tid);
      }
    } else if (!strcmp(pkt, "qfThreadInfo"))
      list_threads(s);
    else if (!strcmp(pkt, "qsThreadInfo"))
      reply_str(s, "l");
    else if (!strncmp(pkt, "qAttached", 9))
      reply_str(s, s->inf.attached ? "1" : "0");
    else if (!strncmp(pkt, "qXfer:", 6))
      agent_handle_qxfer(s, pkt + 6);
    else if (!strncmp(pkt, "qSymbol:", 8))
      reply_str(s, "OK");
    break;
  case 'Q':
    if (!strcmp(pkt, "QStartNoAckMode")) {
      reply_str(s, "OK");
      send_reply(s);
      s->noack = 1;
      return;
    } else if (!strncmp(pkt, "QPassSignals:", 13))
      handle_passsignals(s, pkt + 13);
    else if (!strncmp(pkt, "QRsprofStopStack:", 17)) {
      const char *q = pkt + 17;
      uint64_t n;
      if (hex_parse_u64(&q, &n) || *q || n > AGENT_MAX_STOP_STACK)
        reply_err(s, 22);
      else {
        s->stop_stack_len = (size_t)n;
        reply_str(s, "OK");
      }
    } else if (!strncmp(pkt, "QRsprofStopTime:", 16)) {
      if ((pkt[16] != '0' && pkt[16] != '1') || pkt[17])
        reply_err(s, 1);
      else {
        s->stop_time = pkt[16] == '1';
        reply_str(s, "OK");
      }
    } else if (!strncmp(pkt, "QRsprofQuiet:", 13)) {
      const char *q = pkt + 13;
      uint64_t addr, flag;
      if (hex_parse_u64_until(&q, &addr, ',') || hex_parse_u64(&q, &flag) || *q || flag > 1 ||
          inf_bp_set_quiet(&s->inf, addr, (int)flag))
        reply_err(s, 1);
      else
        reply_str(s, "OK");
    } else if (!strncmp(pkt, "QDisableRandomization:", 22)) {
      s->disable_aslr = pkt[22] == '1';
      reply_str(s, "OK");
    }
    break;
  case 'v':
    if (!strncmp(pkt, "vCont?", 6))
      reply_str(s, "vCont;c;C;s;S;t");
    else if (!strncmp(pkt, "vCont;", 6)) {
      handle_vcont(s, pkt);
      return;
    } else if (!strncmp(pkt, "vFile:", 6))
      agent_handle_vfile(s, pkt + 6, len - 6);
    else if (!strncmp(pkt, "vRun", 4) && (pkt[4] == ';' || !pkt[4]))
      handle_vrun(s, pkt);
    else if (!strncmp(pkt, "vAttach;", 8))
      handle_vattach(s, pkt);
    else if (!strncmp(pkt, "vKill", 5)) {
      if (s->inf.pid)
        inf_kill(&s->inf);
      reply_str(s, "OK");
      if (!s->extended) {
        s->done = 1;
        s->quit = 1;
      }
    }
    break;
  default:
    break;
  }
  send_reply(s);
}

/* Processes buffered input while the program is stopped; stops at a resume so later packets wait. */
static void process_input(struct agent_server *s)
{
  size_t used = 0;
  while (used < s->in.len && !s->done) {
    if (s->inf.running) {
      /* Only acks and the interrupt byte matter while running; a packet waits for the stop. */
      uint8_t c = s->in.data[used];
      if (c == '+' || c == '-') {
        used++;
        continue;
      }
      if (c == 0x03) {
        used++;
        struct inf_stop st;
        if (inf_interrupt(&s->inf, &st) == 0)
          report_stop(s, &st);
        continue;
      }
      break;
    }
    const uint8_t *p = s->in.data + used;
    size_t left = s->in.len - used;
    struct rsp_event ev;
    int got = rsp_decoder_next(&s->dec, &p, &left, &ev);
    used = (size_t)(p - s->in.data);
    if (!got)
      break;
    switch (ev.kind) {
    case RSP_EV_PACKET:
      if (!s->noack)
        send_raw(s, "+", 1);
      if (ev.len == 0) {
        rs_buf_reset(&s->reply);
        send_reply(s);
      } else {
        dispatch(s, (char *)ev.data, ev.len);
      }
      break;
    case RSP_EV_BAD_CHECKSUM:
    case RSP_EV_MALFORMED:
      LOG_DEBUG("dropping a malformed packet");
      if (!s->noack)
        send_raw(s, "-", 1);
      break;
    case RSP_EV_TOO_LONG:
      LOG_WARN("dropping a packet longer than %d bytes", AGENT_PACKET_SIZE);
      if (!s->noack)
        send_raw(s, "-", 1);
      break;
    case RSP_EV_INTERRUPT:
      if (s->inf.running) {
        struct inf_stop st;
        if (inf_interrupt(&s->inf, &st) == 0)
          report_stop(s, &st);
      }
      break;
    default:
      break;
    }
  }
  rs_buf_consume(&s->in, used);
}

void agent_server_connect(struct agent_server *s, agent_send_fn send, void *ctx)
{
  s->send = send;
  s->send_ctx = ctx;
  s->noack = 0;
  s->done = 0;
  s->stop_stack_len = 0;
  s->stop_time = 0;
  s->inf.nquiet = 0;
  s->extended = s->multi_mode;
  rsp_decoder_reset(&s->dec);
  rs_buf_reset(&s->in);
}

void agent_server_disconnect(struct agent_server *s)
{
  s->send = NULL;
  if (s->inf.pid) {
    if (s->inf.attached) {
      inf_detach(&s->inf);
    } else {
      LOG_INFO("client gone: killing process %d", (int)s->inf.pid);
      inf_kill(&s->inf);
      s->exit_code = 128 + SIGKILL;
    }
  }
  for (int i = 0; i < AGENT_MAX_VFILES; i++)
    if (s->vfd[i] >= 0) {
      close(s->vfd[i]);
      s->vfd[i] = -1;
    }
  if (!s->multi_mode)
    s->quit = 1;
}

void agent_server_feed(struct agent_server *s, const void *data, size_t len)
{
  if (rs_buf_append(&s->in, data, len)) {
    /* The client sent far more than it could have pending: drop the backlog rather than grow. */
    LOG_WARN("input backlog over the limit; dropping it");
    rs_buf_reset(&s->in);
    rsp_decoder_reset(&s->dec);
    return;
  }
  process_input(s);
}

void agent_server_child_event(struct agent_server *s)
{
  struct inf_stop st;
  if (inf_poll(&s->inf, &st) == 1) {
    if (s->send) {
      report_stop(s, &st);
      process_input(s);
    } else if (st.kind == INF_STOP_EXITED || st.kind == INF_STOP_KILLED) {
      s->exit_code = st.kind == INF_STOP_EXITED ? st.sig : 128 + st.sig;
    }
  }
}
