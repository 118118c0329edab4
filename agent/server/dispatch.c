/* The RSP packet table and its handlers: each packet the agent answers is registered once with the
 * handler that answers it and what it needs first (a process, a thread with registers), so the
 * protocol's surface reads as one table. */
#include "dispatch.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "capture-packets.h"
#include "errors.h"
#include "hex.h"
#include "log.h"
#include "qxfer.h"
#include "signals.h"
#include "version.h"
#include "vfile.h"

/* One received packet as a handler sees it. */
struct packet {
  char *data;                /* the whole payload, NUL-terminated (binary packets may hold more NULs) */
  size_t len;
  char *args;                /* what follows the table's prefix */
  struct inf_thread *thread; /* PK_THREAD: the thread register packets act on */
  struct ptarch_gregs *regs; /* PK_THREAD: its general registers */
};

typedef void (*packet_fn)(struct agent_server *s, struct packet *p);

enum {
  PK_EXACT = 1 << 0,     /* the packet is the prefix and nothing more */
  PK_PROCESS = 1 << 1,   /* needs a traced process, else "E01" */
  PK_THREAD = 1 << 2,    /* needs the selected (Hg) thread's registers, else "E01" */
  PK_OWN_REPLY = 1 << 3, /* the handler sends its reply itself, later (a resume's stop reply), or never */
};

struct packet_handler {
  const char *prefix;
  size_t prefix_len;
  packet_fn fn;
  unsigned flags;
};

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

/* An unsupported variant of a known packet: the empty reply says so. */
static void h_unsupported(struct agent_server *s, struct packet *p) { rs_buf_reset(&s->reply); }

static void h_ok(struct agent_server *s, struct packet *p) { agent_reply_str(s, "OK"); }

static void h_stop_reason(struct agent_server *s, struct packet *p)
{
  if (procs_count(&s->procs) == 0)
    agent_reply_str(s, "W00");
  else
    agent_stop_reply(s, &s->last);
}

/* Registers: every packet reads the whole 'g' image first, so writes of one register keep the rest. */
static int regs_image(struct agent_server *s, struct packet *p, uint8_t *img)
{
  if (ptarch_fill_all(p->thread->tid, p->regs, img)) {
    agent_reply_err(s, 1);
    return -1;
  }
  return 0;
}

static void store_regs(struct agent_server *s, struct packet *p, const uint8_t *img)
{
  int rc = ptarch_store_all(p->thread->tid, p->regs, img);
  p->thread->regs_valid = 0;
  if (rc)
    agent_reply_err(s, 1);
  else
    agent_reply_str(s, "OK");
}

/* Parses the register number of 'p'/'P' at *q; returns it or -1 (the reply is then set). */
static int reg_number(struct agent_server *s, const char **q, char end)
{
  uint64_t n;
  if (hex_parse_u64(q, &n) || n >= (uint64_t)s->inf->arch->nregs || **q != end) {
    agent_reply_err(s, 1);
    return -1;
  }
  return (int)n;
}

static void h_read_regs(struct agent_server *s, struct packet *p)
{
  uint8_t img[1024];
  if (p->len != 1) {
    agent_reply_err(s, 1);
    return;
  }
  if (regs_image(s, p, img) == 0)
    rs_buf_put_hex(&s->reply, img, arch_regs_size(s->inf->arch));
}

static void h_write_regs(struct agent_server *s, struct packet *p)
{
  uint8_t img[1024];
  size_t size = arch_regs_size(s->inf->arch);
  if (regs_image(s, p, img))
    return;
  if (p->len - 1 != 2 * size || hex_decode(img, p->args, size)) {
    agent_reply_err(s, 1);
    return;
  }
  store_regs(s, p, img);
}

static void h_read_reg(struct agent_server *s, struct packet *p)
{
  const struct arch_desc *a = s->inf->arch;
  uint8_t img[1024];
  const char *q = p->args;
  int n;
  if (regs_image(s, p, img) || (n = reg_number(s, &q, 0)) < 0)
    return;
  rs_buf_put_hex(&s->reply, img + arch_reg_offset(a, n), a->regs[n].bits / 8);
}

static void h_write_reg(struct agent_server *s, struct packet *p)
{
  const struct arch_desc *a = s->inf->arch;
  uint8_t img[1024];
  const char *q = p->args;
  int n;
  if (regs_image(s, p, img) || (n = reg_number(s, &q, '=')) < 0)
    return;
  q++;
  size_t rsz = a->regs[n].bits / 8;
  if (strlen(q) != 2 * rsz || hex_decode(img + arch_reg_offset(a, n), q, rsz)) {
    agent_reply_err(s, 1);
    return;
  }
  store_regs(s, p, img);
}

/* 'm' (hex) and 'x' (binary) reads, cut to what fits a reply. */
static void h_read_mem(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  uint64_t addr, n;
  if (parse_addr_len(&q, &addr, &n, 0)) {
    agent_reply_err(s, 1);
    return;
  }
  if (n > AGENT_PACKET_SIZE / 2)
    n = AGENT_PACKET_SIZE / 2;
  if (rs_buf_reserve(&s->doc, n + 1)) {
    agent_reply_err(s, 1);
    return;
  }
  uint8_t *buf = s->doc.data;
  long got = n ? inf_read(s->inf, addr, buf, n) : 0;
  if (got < 0 || (got == 0 && n > 0)) {
    agent_reply_err(s, 1);
    return;
  }
  if (p->data[0] == 'm') {
    rs_buf_put_hex(&s->reply, buf, (size_t)got);
  } else {
    rs_buf_putc(&s->reply, 'b');
    rs_buf_append(&s->reply, buf, (size_t)got);
  }
}

/* 'M' (hex) and 'X' (binary) writes. */
static void h_write_mem(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  uint64_t addr, n;
  if (parse_addr_len(&q, &addr, &n, ':')) {
    agent_reply_err(s, 1);
    return;
  }
  size_t datalen = p->len - (size_t)(q - p->data);
  uint8_t *data = (uint8_t *)q;
  if (p->data[0] == 'M') {
    if (datalen != 2 * n || hex_decode(data, q, n)) {
      agent_reply_err(s, 1);
      return;
    }
  } else if (datalen != n) {
    /* The codec already removed the framing escapes: X data arrives as raw bytes. */
    agent_reply_err(s, 1);
    return;
  }
  if (n == 0) {
    agent_reply_str(s, "OK");
    return;
  }
  agent_reply_str(s, inf_write(s->inf, addr, data, n) ? "E01" : "OK");
}

/* Z0/z0: software breakpoints (the only kind supported; other kinds get the empty reply). */
static void h_breakpoint(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  uint64_t addr, kind;
  if (*q != ',' || (q++, hex_parse_u64_until(&q, &addr, ',')) || hex_parse_u64(&q, &kind) ||
      (*q && *q != ';')) {
    agent_reply_err(s, 1);
    return;
  }
  int rc = p->data[0] == 'Z' ? inf_bp_insert(s->inf, addr) : inf_bp_remove(s->inf, addr);
  agent_reply_str(s, rc ? "E01" : "OK");
}

/* Starts the resume described by acts; replies at once only if a stop is already known. */
static void do_resume(struct agent_server *s, struct inf_resume *acts, int n)
{
  struct inf_stop st;
  int rc = procs_resume(&s->procs, acts, n, &st, &s->inf);
  if (rc == 1) {
    agent_report_stop(s, &st);
  } else if (rc < 0) {
    agent_reply_err(s, 1);
    agent_send_reply(s);
  }
  /* Otherwise the stop reply follows from agent_server_child_event(). */
}

static void resume_error(struct agent_server *s)
{
  agent_reply_err(s, 1);
  agent_send_reply(s);
}

/* c, C, s, S: [SIG][;ADDR] for the whole process (a step only moves the selected thread). */
static void h_resume(struct agent_server *s, struct packet *p)
{
  struct inf_resume act;
  const char *q = p->args;
  char kind = p->data[0];
  int sig = 0;
  if (kind == 'C' || kind == 'S') {
    uint64_t v;
    /* A signal the host cannot deliver is refused before anything changes (PTRACE_CONT would fail
     * with the program left stopped and no reply). */
    if (hex_parse_u64(&q, &v) || v > 255 || (sig = agent_sig_from_gdb((int)v)) < 0)
      return resume_error(s);
    if (*q == ';')
      q++;
  }
  if (*q) {
    /* Resuming at another address: set the PC of the thread first. */
    uint64_t addr;
    struct inf_thread *t = agent_cur_thread(s, s->cthread);
    struct ptarch_gregs *r = t ? inf_gregs(s->inf, t) : NULL;
    if (hex_parse_u64(&q, &addr) || !r)
      return resume_error(s);
    ptarch_set_pc(r, addr);
    ptarch_set_gregs(t->tid, r);
  }
  if (kind == 's' || kind == 'S') {
    struct inf_thread *t = agent_cur_thread(s, s->cthread);
    act = (struct inf_resume){t ? t->tid : -1, INF_ACT_STEP, sig};
  } else {
    act = (struct inf_resume){-1, INF_ACT_CONT, sig};
  }
  do_resume(s, &act, 1);
}

/* vCont;ACTION[:TID]... */
static void h_vcont(struct agent_server *s, struct packet *p)
{
  struct inf_resume acts[64];
  int n = 0;
  const char *q = p->args - 1; /* at the first ';' */
  while (*q == ';' && n < 64) {
    q++;
    enum inf_action act;
    int sig = 0;
    char c = *q++;
    if (c == 'c' || c == 'C')
      act = INF_ACT_CONT;
    else if (c == 's' || c == 'S')
      act = INF_ACT_STEP;
    else if (c == 't')
      act = INF_ACT_STOP;
    else
      return resume_error(s);
    if (c == 'C' || c == 'S') {
      uint64_t v;
      if (hex_parse_u64(&q, &v) || v > 255 || (sig = agent_sig_from_gdb((int)v)) < 0)
        return resume_error(s);
    }
    pid_t tid = -1;
    if (*q == ':') {
      q++;
      if (agent_parse_tid(&q, &tid))
        return resume_error(s);
      if (tid == 0)
        tid = -1;
    }
    acts[n++] = (struct inf_resume){tid, act, sig};
  }
  if (*q || n == 0)
    return resume_error(s);
  do_resume(s, acts, n);
}

static void h_vcont_query(struct agent_server *s, struct packet *p) { agent_reply_str(s, "vCont;c;C;s;S;t"); }

/* Hg / Hc: the thread later register packets or resumes act on. */
static void h_set_thread(struct agent_server *s, struct packet *p)
{
  const char *q = p->data + 2;
  pid_t pid, tid;
  char which = p->data[1];
  if ((which != 'g' && which != 'c') || agent_parse_ptid(&q, &pid, &tid) || *q) {
    agent_reply_err(s, 1);
    return;
  }
  /* The thread's process is the one later memory, register and breakpoint packets act on. */
  struct inferior *owner = pid > 0 ? procs_by_pid(&s->procs, pid) : tid > 0 ? procs_by_tid(&s->procs, tid) : NULL;
  if (owner)
    s->inf = owner;
  if (which == 'g')
    s->gthread = tid;
  else
    s->cthread = tid;
  agent_reply_str(s, "OK");
}

static void h_thread_alive(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  pid_t tid;
  if (agent_parse_tid(&q, &tid) || *q)
    agent_reply_err(s, 1);
  else
    agent_reply_str(s, procs_by_tid(&s->procs, tid) ? "OK" : "E01");
}

/* 'k' has no reply; outside extended mode it ends the session. */
static void h_kill(struct agent_server *s, struct packet *p)
{
  if (procs_count(&s->procs)) {
    procs_end_all(&s->procs, 1);
    s->inf = &s->first;
    s->exit_code = 128 + SIGKILL;
  }
  if (!s->extended) {
    s->done = 1;
    s->quit = 1;
  }
}

static void h_vkill(struct agent_server *s, struct packet *p)
{
  const char *q = p->data + 5;
  uint64_t pid = 0;
  struct inferior *one = *q == ';' && (q++, hex_parse_u64(&q, &pid) == 0) ? procs_by_pid(&s->procs, (pid_t)pid) : NULL;
  if (one && procs_count(&s->procs) > 1) { /* vKill;PID of one of several processes */
    inf_kill(one);
    procs_reap(&s->procs);
    s->inf = procs_any(&s->procs);
    agent_reply_str(s, "OK");
    return;
  }
  if (procs_count(&s->procs)) {
    procs_end_all(&s->procs, 1);
    s->inf = &s->first;
    s->exit_code = 128 + SIGKILL; /* as for 'k': the killed program's status is the agent's */
  }
  agent_reply_str(s, "OK");
  if (!s->extended) {
    s->done = 1;
    s->quit = 1;
  }
}

static void h_detach(struct agent_server *s, struct packet *p)
{
  const char *q = p->data + 1;
  uint64_t pid = 0;
  struct inferior *one = *q == ';' && (q++, hex_parse_u64(&q, &pid) == 0) ? procs_by_pid(&s->procs, (pid_t)pid) : NULL;
  if (one && procs_count(&s->procs) > 1) { /* D;PID of one of several processes: the others stay traced */
    if (one == &s->first && !one->attached)
      s->detached_child = one->pid;
    inf_detach(one);
    procs_reap(&s->procs);
    s->inf = procs_any(&s->procs);
    agent_reply_str(s, "OK");
    return;
  }
  if (!s->first.attached && s->first.pid)
    s->detached_child = s->first.pid;
  procs_end_all(&s->procs, 0);
  s->inf = &s->first;
  agent_reply_str(s, "OK");
  if (!s->extended) {
    s->done = 1;
    s->quit = 1;
  }
}

static void h_extended(struct agent_server *s, struct packet *p)
{
  s->extended = 1;
  agent_reply_str(s, "OK");
}

static void h_qsupported(struct agent_server *s, struct packet *p)
{
  s->multiprocess = strstr(p->data, "multiprocess+") != NULL;
  s->swbreak_ok = strstr(p->data, "swbreak+") != NULL;
  s->inf->report_exec = strstr(p->data, "exec-events+") != NULL;
  /* Children are followed for a client that asks for their events; rsprof-detachfork+ from the client says it
   * wants them let go by the agent instead (our collector with --follow-fork no). */
  s->follow_fork = s->multiprocess && strstr(p->data, "fork-events+") && !strstr(p->data, "rsprof-detachfork+");
  procs_set_follow(&s->procs, s->follow_fork);
  for (int i = 0; i < s->procs.n; i++)
    s->procs.p[i]->report_exec = s->inf->report_exec;
  rs_buf_printf(&s->reply,
                "PacketSize=%x;QStartNoAckMode+;qXfer:features:read+;qXfer:auxv:read+;"
                "qXfer:libraries-svr4:read+;qXfer:exec-file:read+;qXfer:threads:read+;"
                "swbreak+;vContSupported+;binary-upload+;QPassSignals+;QDisableRandomization+;rsprof-stepover+;"
                "rsprof-stopstack+;rsprof-quietbreak+;rsprof-stoptime+;rsprof-detachfork+;rsprof-capture+;rsprof-tables+;"
                "rsprof-version=" RSPROF_VERSION "%s%s%s%s",
                AGENT_PACKET_SIZE, s->inf->rec.lib ? ";rsprof-inprocess+" : "", s->multiprocess ? ";multiprocess+" : "",
                s->inf->report_exec ? ";exec-events+" : "", s->follow_fork ? ";fork-events+;vfork-events+" : "");
}

static void h_current_thread(struct agent_server *s, struct packet *p)
{
  struct inf_thread *t = agent_cur_thread(s, 0);
  if (t) {
    rs_buf_puts(&s->reply, "QC");
    agent_put_tid(s, &s->reply, t->tid);
  }
}

static void h_thread_list_first(struct agent_server *s, struct packet *p)
{
  rs_buf_putc(&s->reply, 'm');
  int k = 0;
  for (int j = 0; j < s->procs.n; j++)
    for (int i = 0; i < s->procs.p[j]->nth; i++) {
      if (k++)
        rs_buf_putc(&s->reply, ',');
      agent_put_tid(s, &s->reply, s->procs.p[j]->th[i].tid);
    }
}

/* Every thread went into the first answer. */
static void h_thread_list_next(struct agent_server *s, struct packet *p) { agent_reply_str(s, "l"); }

static void h_attached(struct agent_server *s, struct packet *p)
{
  agent_reply_str(s, s->inf->attached ? "1" : "0");
}

static void h_qxfer(struct agent_server *s, struct packet *p) { agent_handle_qxfer(s, p->args); }

static void h_vfile(struct agent_server *s, struct packet *p)
{
  agent_handle_vfile(s, p->args, p->len - (size_t)(p->args - p->data));
}

/* The OK goes out with acks still on; only what follows it is unacknowledged. */
static void h_no_ack_mode(struct agent_server *s, struct packet *p)
{
  agent_reply_str(s, "OK");
  agent_send_reply(s);
  s->noack = 1;
}

static void h_pass_signals(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  memset(s->inf->pass_sig, 0, sizeof s->inf->pass_sig);
  while (*q) {
    uint64_t v;
    if (hex_parse_u64(&q, &v)) {
      agent_reply_err(s, 1);
      return;
    }
    int sig = agent_sig_from_gdb((int)(v & 0xff));
    if (sig > 0 && sig < 65)
      s->inf->pass_sig[sig] = 1;
    if (*q == ';')
      q++;
    else if (*q) {
      agent_reply_err(s, 1);
      return;
    }
  }
  agent_reply_str(s, "OK");
}

static void h_stop_stack(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  uint64_t n;
  if (hex_parse_u64(&q, &n) || *q || n > AGENT_MAX_STOP_STACK) {
    agent_reply_err(s, 22);
    return;
  }
  s->stop_stack_len = (size_t)n;
  agent_reply_str(s, "OK");
}

static void h_stop_time(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  if ((q[0] != '0' && q[0] != '1') || q[1]) {
    agent_reply_err(s, 1);
    return;
  }
  s->stop_time = q[0] == '1';
  agent_reply_str(s, "OK");
}

static void h_quiet(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  uint64_t addr, flag;
  if (hex_parse_u64_until(&q, &addr, ',') || hex_parse_u64(&q, &flag) || *q || flag > 1 ||
      inf_bp_set_quiet(s->inf, addr, (int)flag))
    agent_reply_err(s, 1);
  else
    agent_reply_str(s, "OK");
}

static void h_capture(struct agent_server *s, struct packet *p) { agent_handle_capture(s, p->args); }

static void h_capture_stats(struct agent_server *s, struct packet *p) { agent_handle_capture_stats(s); }

static void h_inprocess(struct agent_server *s, struct packet *p) { agent_handle_inprocess(s, p->args); }

static void h_record(struct agent_server *s, struct packet *p) { agent_handle_record(s, p->args); }

static void h_table_query(struct agent_server *s, struct packet *p) { agent_handle_table_query(s, p->args); }

static void h_table_chunk(struct agent_server *s, struct packet *p)
{
  agent_handle_table_chunk(s, p->args, p->len - (size_t)(p->args - p->data));
}

static void h_module(struct agent_server *s, struct packet *p) { agent_handle_module(s, p->args); }

static void h_modules_clear(struct agent_server *s, struct packet *p) { agent_handle_modules_clear(s); }

static void h_disable_aslr(struct agent_server *s, struct packet *p)
{
  s->disable_aslr = p->args[0] == '1';
  agent_reply_str(s, "OK");
}

/* vRun;PROG;ARG... with hex-encoded fields; an empty PROG means the program from the command line. */
static void h_vrun(struct agent_server *s, struct packet *p)
{
  char *argv[64];
  int argc = 0;
  char *f = p->data + 4;
  if (*f == ';') {
    f++;
    while (argc < 63) {
      char *end = strchr(f, ';');
      if (end)
        *end = 0;
      size_t hl = strlen(f);
      /* In-place decoding is safe: byte i is written after hex digits 2i and 2i+1 were read. */
      if (hl % 2 || hex_decode(f, f, hl / 2)) {
        agent_reply_err(s, 1);
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
      agent_reply_err(s, 1);
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
  procs_end_all(&s->procs, 1);
  s->inf = &s->first;
  int rc = inf_launch(s->inf, argv, s->disable_aslr);
  if (rc) {
    LOG_WARN("vRun: cannot start %s: %s", argv[0], rs_strerror(rc));
    agent_reply_err(s, 1);
    return;
  }
  struct inf_stop st = {INF_STOP_SIGNAL, SIGTRAP, s->inf->pid, 0, 0};
  s->last = st;
  s->gthread = s->cthread = s->inf->pid;
  agent_stop_reply(s, &st);
}

static void h_vattach(struct agent_server *s, struct packet *p)
{
  const char *q = p->args;
  uint64_t pid;
  if (hex_parse_u64(&q, &pid) || *q || pid == 0 || pid > 0x7fffffff) {
    agent_reply_err(s, 1);
    return;
  }
  procs_end_all(&s->procs, 1);
  s->inf = &s->first;
  if (inf_attach(s->inf, (pid_t)pid)) {
    agent_reply_err(s, 1);
    return;
  }
  struct inf_stop st = {INF_STOP_SIGNAL, 0, (pid_t)pid, 0, 0};
  s->last = st;
  s->gthread = s->cthread = (pid_t)pid;
  agent_stop_reply(s, &st);
}

#define PK(prefix, fn, flags) {prefix, sizeof prefix - 1, fn, flags}

/* The first entry whose prefix matches answers; a packet no entry matches gets the empty reply. A
 * guard that fails is answered (and sent) at once, also for the handlers that send their own reply. */
static const struct packet_handler packets[] = {
    PK("?", h_stop_reason, 0),
    PK("g", h_read_regs, PK_PROCESS | PK_THREAD),
    PK("G", h_write_regs, PK_PROCESS | PK_THREAD),
    PK("p", h_read_reg, PK_PROCESS | PK_THREAD),
    PK("P", h_write_reg, PK_PROCESS | PK_THREAD),
    PK("m", h_read_mem, PK_PROCESS),
    PK("x", h_read_mem, PK_PROCESS),
    PK("M", h_write_mem, PK_PROCESS),
    PK("X", h_write_mem, PK_PROCESS),
    PK("Z0", h_breakpoint, PK_PROCESS),
    PK("z0", h_breakpoint, PK_PROCESS),
    PK("Z", h_unsupported, 0),
    PK("z", h_unsupported, 0),
    PK("c", h_resume, PK_PROCESS | PK_OWN_REPLY),
    PK("C", h_resume, PK_PROCESS | PK_OWN_REPLY),
    PK("s", h_resume, PK_PROCESS | PK_OWN_REPLY),
    PK("S", h_resume, PK_PROCESS | PK_OWN_REPLY),
    PK("vCont;", h_vcont, PK_PROCESS | PK_OWN_REPLY),
    PK("vCont?", h_vcont_query, 0),
    PK("H", h_set_thread, 0),
    PK("T", h_thread_alive, 0),
    PK("k", h_kill, PK_OWN_REPLY),
    PK("D", h_detach, PK_PROCESS),
    PK("!", h_extended, 0),
    PK("qSupported", h_qsupported, 0),
    PK("qC", h_current_thread, PK_EXACT),
    PK("qfThreadInfo", h_thread_list_first, PK_EXACT),
    PK("qsThreadInfo", h_thread_list_next, PK_EXACT),
    PK("qAttached", h_attached, 0),
    PK("qXfer:", h_qxfer, 0),
    PK("qSymbol:", h_ok, 0),
    PK("QStartNoAckMode", h_no_ack_mode, PK_EXACT | PK_OWN_REPLY),
    PK("QPassSignals:", h_pass_signals, 0),
    PK("QRsprofStopStack:", h_stop_stack, 0),
    PK("QRsprofStopTime:", h_stop_time, 0),
    PK("QRsprofQuiet:", h_quiet, 0),
    PK("QRsprofCapture:", h_capture, PK_PROCESS),
    PK("qRsprofStats", h_capture_stats, PK_EXACT),
    PK("QRsprofInprocess:", h_inprocess, 0),
    PK("QRsprofRecord:", h_record, PK_PROCESS),
    PK("qRsprofTable:", h_table_query, 0),
    PK("QRsprofTable:", h_table_chunk, 0),
    PK("QRsprofModule:", h_module, PK_PROCESS),
    PK("QRsprofModules", h_modules_clear, PK_PROCESS | PK_EXACT),
    PK("QDisableRandomization:", h_disable_aslr, 0),
    PK("vFile:", h_vfile, 0),
    PK("vRun;", h_vrun, 0),
    PK("vRun", h_vrun, PK_EXACT),
    PK("vAttach;", h_vattach, 0),
    PK("vKill", h_vkill, 0),
};

static const struct packet_handler *find_handler(const char *pkt)
{
  for (size_t i = 0; i < sizeof packets / sizeof packets[0]; i++) {
    const struct packet_handler *h = &packets[i];
    if (!strncmp(pkt, h->prefix, h->prefix_len) && (!(h->flags & PK_EXACT) || pkt[h->prefix_len] == 0))
      return h;
  }
  return NULL;
}

/* Checks what the handler needs; returns 0, or -1 with the error reply set. */
static int check_guards(struct agent_server *s, const struct packet_handler *h, struct packet *p)
{
  if ((h->flags & PK_PROCESS) && s->inf->pid == 0)
    goto fail;
  if (h->flags & PK_THREAD) {
    p->thread = agent_cur_thread(s, s->gthread);
    p->regs = p->thread ? inf_gregs(s->inf, p->thread) : NULL;
    if (!p->regs)
      goto fail;
  }
  return 0;
fail:
  agent_reply_err(s, 1);
  return -1;
}

void agent_dispatch(struct agent_server *s, char *pkt, size_t len)
{
  rs_buf_reset(&s->reply);
  if (rs_log_enabled(RS_LOG_TRACE))
    LOG_DEBUG("<- %.*s", (int)(len > 200 ? 200 : len), pkt);
  const struct packet_handler *h = find_handler(pkt);
  if (!h) {
    agent_send_reply(s); /* the empty reply: not supported */
    return;
  }
  struct packet p = {pkt, len, pkt + h->prefix_len, NULL, NULL};
  if (check_guards(s, h, &p)) {
    agent_send_reply(s);
    return;
  }
  h->fn(s, &p);
  if (!(h->flags & PK_OWN_REPLY))
    agent_send_reply(s);
}
