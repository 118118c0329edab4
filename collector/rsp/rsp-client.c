/* The RSP client: packet exchange over a transport with acks, pipelining and timeouts, plus the typed
 * requests the collector needs (memory, registers, breakpoints, resume and stop replies). */
#include "rsp-client.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "hex.h"
#include "log.h"
#include "rsp-codec.h"
#include "transport.h"

#define MAX_PAYLOAD (1u << 20) /* largest reply we accept */
#define DEFAULT_TIMEOUT_MS 10000
#define PIPELINE_DEPTH 16

struct rspc {
  struct transport *t;
  struct rsp_decoder dec;
  struct rs_buf out;       /* the last framed packet, kept for a retransmission in ack mode */
  uint8_t ibuf[65536];     /* received bytes not yet fed to the decoder: ibuf[ipos..ilen) */
  size_t ipos, ilen;
  int ack_mode;
  unsigned owed;           /* replies owed to packets already sent */
  unsigned reply_timeout_ms;
  struct rspc_features features;
  char *supported;         /* the qSupported reply */
  int64_t pid, tid;        /* from the last stop reply */
  rspc_notify_fn notify;
  void *notify_ctx;
  uint64_t rx_bytes;
};

void rspc_on_notification(struct rspc *c, rspc_notify_fn fn, void *ctx)
{
  c->notify = fn;
  c->notify_ctx = ctx;
}

uint64_t rspc_bytes_received(const struct rspc *c) { return c->rx_bytes; }

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const struct rspc_features *rspc_features(const struct rspc *c) { return &c->features; }
const char *rspc_supported_reply(const struct rspc *c) { return c->supported ? c->supported : ""; }
unsigned rspc_reply_timeout(const struct rspc *c) { return c->reply_timeout_ms; }
void rspc_cancel_on(volatile sig_atomic_t *flag, unsigned grace_ms) { transport_set_cancel(flag, grace_ms); }

static int send_raw(struct rspc *c, const void *data, size_t len)
{
  int rc = transport_write(c->t, data, len);
  if (rc < 0 && rc != RS_E_DISCONNECTED && rc != RS_E_TLS)
    rc = RS_E_DISCONNECTED;
  return rc;
}

/* Frames and sends one packet, keeping a copy for a retransmission in ack mode. A packet longer than the
 * server's PacketSize is refused here: a server drops it (in no-ack mode without a word), and both sides
 * would wait for ever. */
static int send_packet(struct rspc *c, const char *payload, size_t len)
{
  rs_buf_reset(&c->out);
  int rc = rsp_encode_packet(&c->out, payload, len);
  if (rc)
    return rc;
  size_t framed = c->out.len - 4; /* between '$' and "#xx", escapes included */
  if (c->features.packet_size && framed > c->features.packet_size) {
    LOG_ERR("rsp: a %zu-byte packet (%.20s...) exceeds the server's PacketSize of %zu bytes; not sent", framed,
            payload, c->features.packet_size);
    rs_buf_reset(&c->out);
    return RS_E_TOO_LONG;
  }
  LOG_TRACE("rsp -> %.*s", (int)(len > 200 ? 200 : len), payload);
  return send_raw(c, c->out.data, c->out.len);
}

/* Returns the next packet from the server, handling acks and retransmissions. The payload is borrowed
 * from the decoder until the next call. */
static int next_packet(struct rspc *c, unsigned timeout_ms, const char **reply, size_t *rlen)
{
  uint64_t deadline = mono_ms() + timeout_ms;
  int late_reads = 0;
  for (;;) {
    while (c->ipos < c->ilen) {
      const uint8_t *b = c->ibuf + c->ipos;
      size_t l = c->ilen - c->ipos;
      struct rsp_event ev;
      int have = rsp_decoder_next(&c->dec, &b, &l, &ev);
      c->ipos = c->ilen - l;
      if (!have)
        break;
      switch (ev.kind) {
      case RSP_EV_PACKET:
        if (c->ack_mode) {
          int rc = send_raw(c, "+", 1);
          if (rc)
            return rc;
        }
        LOG_TRACE("rsp <- %.*s", (int)(ev.len > 200 ? 200 : ev.len), ev.data);
        *reply = ev.data;
        *rlen = ev.len;
        return 0;
      case RSP_EV_NOTIFY: /* never acknowledged */
        if (c->notify)
          c->notify(c->notify_ctx, (const uint8_t *)ev.data, ev.len);
        break;
      case RSP_EV_NACK:
        if (c->ack_mode && c->out.len) {
          int rc = send_raw(c, c->out.data, c->out.len);
          if (rc)
            return rc;
        }
        break;
      case RSP_EV_BAD_CHECKSUM:
      case RSP_EV_MALFORMED:
        if (!c->ack_mode) {
          LOG_ERR("rsp: damaged packet from the server in no-ack mode");
          return RS_E_PROTO;
        }
        {
          int rc = send_raw(c, "-", 1);
          if (rc)
            return rc;
        }
        break;
      case RSP_EV_TOO_LONG:
        LOG_ERR("rsp: the server sent a packet over %u bytes", MAX_PAYLOAD);
        return RS_E_TOO_LONG;
      default:
        break; /* acks and stray bytes */
      }
    }
    c->ipos = c->ilen = 0;
    /* Past the deadline, what has already arrived is still taken: after this process was stopped (SIGSTOP,
     * a loaded host) the reply is usually waiting, and the server did nothing wrong. One such look only: a
     * server that never stops streaming notifications must not hold the caller past its timeout (--duration
     * and the liveness probe are checked between waits). */
    uint64_t now = mono_ms();
    if (now >= deadline && late_reads++)
      return RS_E_TIMEOUT;
    int rc = transport_read(c->t, now < deadline ? (unsigned)(deadline - now) : 0, c->ibuf, sizeof c->ibuf, &c->ilen);
    c->rx_bytes += c->ilen;
    if (rc == RS_E_DISCONNECTED || rc == -ECONNRESET || rc == -EPIPE)
      return RS_E_DISCONNECTED;
    if (rc)
      return rc;
  }
}

int rspc_send(struct rspc *c, const char *payload, size_t len)
{
  int rc = send_packet(c, payload, len);
  if (rc == 0)
    c->owed++;
  return rc;
}

int rspc_recv(struct rspc *c, unsigned timeout_ms, const char **reply, size_t *rlen)
{
  int rc = next_packet(c, timeout_ms, reply, rlen);
  if (rc == 0 && c->owed)
    c->owed--;
  return rc;
}

/* Takes the replies still owed to packets sent before (a caller that timed out, a pipelined request), which
 * would otherwise be taken for the next request's. Returns 0 or the receive error. */
static int drain_owed(struct rspc *c)
{
  const char *r;
  size_t n;
  while (c->owed) {
    int rc = rspc_recv(c, c->reply_timeout_ms, &r, &n);
    if (rc)
      return rc;
  }
  return 0;
}

int rspc_request(struct rspc *c, const char *payload, size_t len, const char **reply, size_t *rlen)
{
  const char *r;
  size_t n;
  int rc = drain_owed(c);
  if (rc)
    return rc;
  rc = rspc_send(c, payload, len);
  if (rc)
    return rc;
  rc = rspc_recv(c, c->reply_timeout_ms, &r, &n);
  if (rc)
    return rc;
  if (reply)
    *reply = r;
  if (rlen)
    *rlen = n;
  return 0;
}

static int vrequestf(struct rspc *c, const char **reply, size_t *rlen, const char *fmt, va_list ap)
{
  char small[512];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return RS_E_BAD_ARG;
  }
  if ((size_t)n < sizeof small) {
    va_end(ap2);
    return rspc_request(c, small, (size_t)n, reply, rlen);
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    va_end(ap2);
    return -ENOMEM;
  }
  vsnprintf(big, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  int rc = rspc_request(c, big, (size_t)n, reply, rlen);
  free(big);
  return rc;
}

int rspc_requestf(struct rspc *c, const char **reply, size_t *rlen, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int rc = vrequestf(c, reply, rlen, fmt, ap);
  va_end(ap);
  return rc;
}

static int expect_ok(const char *r, size_t n, int unsupported_ok);

int rspc_request_ok(struct rspc *c, const char *fmt, ...)
{
  const char *r;
  size_t n;
  va_list ap;
  va_start(ap, fmt);
  int rc = vrequestf(c, &r, &n, fmt, ap);
  va_end(ap);
  return rc ? rc : expect_ok(r, n, 0);
}

int rspc_interrupt(struct rspc *c) { return send_raw(c, "\x03", 1); }

/* An "Exx" error reply (and "E.text" from newer servers). */
int rspc_is_error(const char *r, size_t n)
{
  return n >= 1 && r[0] == 'E' && (n == 3 || (n > 1 && r[1] == '.'));
}

/* The qSupported "name+" features the client uses, and where each is recorded. */
static const struct {
  const char *name;
  size_t offset;
} feature_flags[] = {
    {"QStartNoAckMode", offsetof(struct rspc_features, no_ack)},
    {"swbreak", offsetof(struct rspc_features, swbreak)},
    {"multiprocess", offsetof(struct rspc_features, multiprocess)},
    {"qXfer:features:read", offsetof(struct rspc_features, xfer_features)},
    {"qXfer:auxv:read", offsetof(struct rspc_features, xfer_auxv)},
    {"qXfer:libraries-svr4:read", offsetof(struct rspc_features, xfer_libraries_svr4)},
    {"qXfer:exec-file:read", offsetof(struct rspc_features, xfer_exec_file)},
    {"qXfer:threads:read", offsetof(struct rspc_features, xfer_threads)},
    {"binary-upload", offsetof(struct rspc_features, binary_upload)},
    {"rsprof-stopstack", offsetof(struct rspc_features, stop_stack)},
    {"rsprof-quietbreak", offsetof(struct rspc_features, quiet_break)},
    {"rsprof-stoptime", offsetof(struct rspc_features, stop_time)},
    {"rsprof-detachfork", offsetof(struct rspc_features, detach_fork)},
    {"rsprof-capture", offsetof(struct rspc_features, capture)},
    {"rsprof-inprocess", offsetof(struct rspc_features, inprocess)},
    {"rsprof-tables", offsetof(struct rspc_features, tables)},
    {"fork-events", offsetof(struct rspc_features, fork_events)},
    {"vfork-events", offsetof(struct rspc_features, vfork_events)},
    {"exec-events", offsetof(struct rspc_features, exec_events)},
    {"QStartupWithShell", offsetof(struct rspc_features, startup_with_shell)},
};

static void parse_supported(struct rspc *c, const char *r)
{
  struct rspc_features *f = &c->features;
  f->packet_size = 400;
  const char *p = r;
  while (*p) {
    const char *end = strchr(p, ';');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char item[128];
    if (n < sizeof item) {
      memcpy(item, p, n);
      item[n] = 0;
      if (strncmp(item, "PacketSize=", 11) == 0) {
        const char *v = item + 11;
        uint64_t sz;
        if (hex_parse_u64(&v, &sz) == 0 && sz >= 64)
          f->packet_size = sz > MAX_PAYLOAD / 2 ? MAX_PAYLOAD / 2 : (size_t)sz;
      } else if (strncmp(item, "rsprof-version=", 15) == 0) {
        /* Printable characters only, and short: the version goes into the summaries as it came. */
        size_t k = 0;
        for (const char *v = item + 15; *v && k + 1 < sizeof f->version; v++)
          if (*v > ' ' && *v < 0x7f && *v != '"' && *v != '\\')
            f->version[k++] = *v;
        f->version[k] = 0;
      } else if (n > 1 && item[n - 1] == '+') {
        item[n - 1] = 0;
        for (size_t k = 0; k < sizeof feature_flags / sizeof feature_flags[0]; k++)
          if (!strcmp(item, feature_flags[k].name))
            *(int *)((char *)f + feature_flags[k].offset) = 1;
        if (!strncmp(item, "rsprof-", 7))
          f->rsprof_ext = 1;
      }
    }
    p = end ? end + 1 : p + n;
  }
}

int rspc_connect(const struct rspc_options *o, struct rspc **out)
{
  *out = NULL;
  struct rspc *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->ack_mode = 1;
  c->reply_timeout_ms = o->reply_timeout_ms ? o->reply_timeout_ms : DEFAULT_TIMEOUT_MS;
  rs_buf_init(&c->out, MAX_PAYLOAD * 2 + 8);
  int rc = rsp_decoder_init(&c->dec, MAX_PAYLOAD);
  if (rc) {
    free(c);
    return rc;
  }
  struct transport_options to = {
      .host = o->host, .port = o->port, .tls_ca = o->tls_ca, .tls_cert = o->tls_cert, .tls_key = o->tls_key,
      .tls_psk_file = o->tls_psk_file, .tls_psk_identity = o->tls_psk_identity,
      .connect_timeout_ms = o->connect_timeout_ms, .retries = o->retries, .retry_delay_ms = o->retry_delay_ms,
      .poll_us = o->poll_us};
  rc = transport_connect(&to, &c->t);
  if (rc)
    goto fail;

  const char *r;
  size_t n;
  /* The process events let the collector take its breakpoints out of a child before detaching it, as gdb
   * does; a server that reports none leaves the children to die at the first trap they inherit. */
  char offer[160];
  int olen = snprintf(offer, sizeof offer, "qSupported:multiprocess+;swbreak+;fork-events+;vfork-events+;exec-events+;"
                      "vContSupported+;xmlRegisters=i386%s", o->detach_fork ? ";rsprof-detachfork+" : "");
  rc = rspc_request(c, offer, (size_t)olen, &r, &n);
  if (rc)
    goto fail_log;
  c->supported = strdup(r);
  if (!c->supported) {
    rc = -ENOMEM;
    goto fail;
  }
  parse_supported(c, r);
  LOG_DEBUG("rsp: qSupported: %s", r);
  if (c->features.no_ack) {
    rc = rspc_request(c, "QStartNoAckMode", 15, &r, &n);
    if (rc)
      goto fail_log;
    if (n == 2 && !memcmp(r, "OK", 2))
      c->ack_mode = 0;
    else
      c->features.no_ack = 0;
  }
  rc = rspc_request(c, "vCont?", 6, &r, &n);
  if (rc)
    goto fail_log;
  c->features.vcont = strstr(r, ";c") && strstr(r, ";C");
  /* gdbserver serves vFile without advertising it: an F reply to a harmless close shows it is there. */
  rc = rspc_request(c, "vFile:close:7ffffff0", 20, &r, &n);
  if (rc)
    goto fail_log;
  c->features.vfile = n > 0 && r[0] == 'F';
  transport_connected(c->t);
  *out = c;
  return 0;
fail_log:
  LOG_ERR("rsp: negotiation with %s:%u failed: %s", o->host, o->port, rs_strerror(rc));
fail:
  rspc_close(c);
  return rc;
}

void rspc_close(struct rspc *c)
{
  if (!c)
    return;
  transport_close(c->t);
  rsp_decoder_free(&c->dec);
  rs_buf_free(&c->out);
  free(c->supported);
  free(c);
}

/* Formats a thread id for H and vCont: "pPID.TID" with multiprocess, else "TID"; -1 stays "-1". */
void rspc_format_ptid(const struct rspc *c, char *out, size_t max, int64_t pid, int64_t tid)
{
  char t[24];
  if (tid < 0)
    snprintf(t, sizeof t, "-1");
  else
    snprintf(t, sizeof t, "%llx", (unsigned long long)tid);
  if (c->features.multiprocess && pid != 0) {
    if (pid < 0)
      snprintf(out, max, "p-1.%s", t);
    else
      snprintf(out, max, "p%llx.%s", (unsigned long long)pid, t);
  } else {
    snprintf(out, max, "%s", t);
  }
}

/* Parses "pPID.TID", "pPID" or "TID" (hex, or -1). */
static int parse_ptid(const char **p, int64_t *pid, int64_t *tid)
{
  uint64_t v;
  *pid = 0;
  if (**p == 'p') {
    (*p)++;
    if (**p == '-' && (*p)[1] == '1') {
      *pid = -1;
      *p += 2;
    } else {
      if (hex_parse_u64(p, &v))
        return RS_E_PROTO;
      *pid = (int64_t)v;
    }
    if (**p != '.') {
      *tid = -1;
      return 0;
    }
    (*p)++;
  }
  if (**p == '-' && (*p)[1] == '1') {
    *tid = -1;
    *p += 2;
    return 0;
  }
  if (hex_parse_u64(p, &v))
    return RS_E_PROTO;
  *tid = (int64_t)v;
  return 0;
}

int rspc_parse_stop(const char *reply, size_t len, struct rspc_stop *out)
{
  memset(out, 0, sizeof *out);
  if (len < 2)
    return RS_E_PROTO;
  uint64_t code;
  const char *p;
  const char *end = reply + len;
  if (reply[0] == 'S' || reply[0] == 'T') {
    if (len < 3)
      return RS_E_PROTO;
    char num[3] = {reply[1], reply[2], 0};
    const char *q = num;
    if (hex_parse_u64(&q, &code) || *q)
      return RS_E_PROTO;
    p = reply + 3;
  } else {
    /* W and X carry a number of any width ("W7;process:b88" from gdbserver). */
    p = reply + 1;
    if (hex_parse_u64(&p, &code))
      return RS_E_PROTO;
  }
  switch (reply[0]) {
  case 'S':
  case 'T':
    out->kind = RSPC_STOP_SIGNAL;
    out->signal = (int)code;
    break;
  case 'W':
    out->kind = RSPC_STOP_EXITED;
    out->exit_code = (int)code;
    break;
  case 'X':
    out->kind = RSPC_STOP_TERMINATED;
    out->signal = (int)code;
    break;
  default:
    return RS_E_PROTO;
  }
  if (reply[0] == 'W' || reply[0] == 'X') {
    while (p < end && *p == ';') { /* ;process:PID and ;rsprof-quiet:… */
      p++;
      const char *semi = memchr(p, ';', (size_t)(end - p));
      if (!semi)
        semi = end;
      if (!strncmp(p, "process:", 8)) {
        const char *v = p + 8;
        uint64_t pid;
        if (hex_parse_u64(&v, &pid) == 0)
          out->pid = (int64_t)pid;
      } else if (!strncmp(p, "rsprof-quiet:", 13)) {
        out->quiet = p + 13;
        out->quiet_len = (size_t)(semi - out->quiet);
      }
      p = semi;
    }
    return 0;
  }
  if (reply[0] == 'S')
    return 0;
  /* T: "n:r;" pairs. Registers are hex numbers; everything else is a named key. */
  while (p < end) {
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *semi = memchr(p, ';', (size_t)(end - p));
    if (!semi)
      semi = end;
    if (!colon || colon > semi) {
      p = semi + 1;
      continue;
    }
    size_t klen = (size_t)(colon - p);
    const char *val = colon + 1;
    if (klen == 12 && !memcmp(p, "rsprof-stack", 12)) { /* binary, and always last */
      out->stack = (const uint8_t *)val;
      out->stack_len = (size_t)(end - val);
      break;
    }
    size_t vlen = (size_t)(semi - val);
    int is_reg = klen > 0;
    for (size_t i = 0; i < klen; i++)
      if (hex_digit(p[i]) < 0)
        is_reg = 0;
    if (is_reg) {
      uint64_t regno = 0;
      for (size_t i = 0; i < klen; i++)
        regno = regno * 16 + (uint64_t)hex_digit(p[i]);
      uint64_t value;
      if (vlen >= 2 && vlen <= 16 && vlen % 2 == 0 && out->nregs < RSPC_MAX_EXPEDITED &&
          hex_decode_le(val, vlen / 2, &value) == 0) {
        out->regs[out->nregs].regno = (int)regno;
        out->regs[out->nregs].value = value;
        out->nregs++;
      }
    } else if (klen == 6 && !memcmp(p, "thread", 6)) {
      char tmp[64];
      if (vlen < sizeof tmp) {
        memcpy(tmp, val, vlen);
        tmp[vlen] = 0;
        const char *t = tmp;
        if (parse_ptid(&t, &out->pid, &out->tid))
          return RS_E_PROTO;
      }
    } else if (klen == 7 && !memcmp(p, "swbreak", 7)) {
      out->swbreak = 1;
    } else if ((klen == 4 && !memcmp(p, "fork", 4)) || (klen == 5 && !memcmp(p, "vfork", 5))) {
      char tmp[64];
      if (vlen >= sizeof tmp)
        return RS_E_PROTO;
      memcpy(tmp, val, vlen);
      tmp[vlen] = 0;
      const char *t = tmp;
      if (parse_ptid(&t, &out->child_pid, &out->child_tid))
        return RS_E_PROTO;
      if (out->child_pid == 0) /* no multiprocess: the thread id is the process id */
        out->child_pid = out->child_tid;
      if (out->child_pid <= 0)
        return RS_E_PROTO;
      out->kind = klen == 4 ? RSPC_STOP_FORK : RSPC_STOP_VFORK;
    } else if (klen == 9 && !memcmp(p, "vforkdone", 9)) {
      out->kind = RSPC_STOP_VFORK_DONE;
    } else if (klen == 4 && !memcmp(p, "exec", 4)) {
      out->kind = RSPC_STOP_EXEC; /* the path (hex) is not needed: the new image is read through qXfer */
    } else if (klen == 12 && !memcmp(p, "rsprof-quiet", 12)) {
      out->quiet = val;
      out->quiet_len = vlen;
    } else if (klen == 11 && !memcmp(p, "rsprof-time", 11)) {
      const char *v = val;
      out->has_time = hex_parse_u64(&v, &out->time_ns) == 0 && v == semi;
    }
    p = semi + 1;
  }
  return 0;
}

int rspc_next_quiet_hit(const char **p, const char *end, struct rspc_quiet_hit *h)
{
  if (*p >= end)
    return 0;
  enum { FIELDS = 5 }; /* TID/PC/SP/RET/NS */
  uint64_t v[FIELDS];
  const char *q = *p;
  for (int i = 0; i < FIELDS; i++) {
    const char *stop = memchr(q, i < FIELDS - 1 ? '/' : ',', (size_t)(end - q));
    if (!stop)
      stop = end;
    char tmp[20];
    size_t n = (size_t)(stop - q);
    if (n == 0 || n >= sizeof tmp || (i < FIELDS - 1 && stop == end))
      return RS_E_PROTO;
    memcpy(tmp, q, n);
    tmp[n] = 0;
    const char *t = tmp;
    if (hex_parse_u64(&t, &v[i]) || *t)
      return RS_E_PROTO;
    q = stop < end ? stop + 1 : end;
  }
  *h = (struct rspc_quiet_hit){(int64_t)v[0], v[1], v[2], v[3], v[4]};
  *p = q;
  return 1;
}

int rspc_stop_reg(const struct rspc_stop *s, int regno, uint64_t *value)
{
  for (int i = 0; i < s->nregs; i++)
    if (s->regs[i].regno == regno) {
      *value = s->regs[i].value;
      return 1;
    }
  return 0;
}

static void remember_stop(struct rspc *c, const struct rspc_stop *s)
{
  if (s->pid > 0)
    c->pid = s->pid;
  if (s->tid > 0)
    c->tid = s->tid;
}

int rspc_query_stop(struct rspc *c, struct rspc_stop *out)
{
  const char *r;
  size_t n;
  int rc = rspc_request(c, "?", 1, &r, &n);
  if (rc)
    return rc;
  rc = rspc_parse_stop(r, n, out);
  if (rc) {
    LOG_ERR("rsp: unexpected answer to '?': %.80s", r);
    return rc;
  }
  remember_stop(c, out);
  return 0;
}

int rspc_continue(struct rspc *c, int signal)
{
  char pkt[96];
  int n;
  if (c->features.vcont) {
    if (signal && c->tid > 0) {
      char ptid[48];
      rspc_format_ptid(c, ptid, sizeof ptid, c->pid, c->tid);
      n = snprintf(pkt, sizeof pkt, "vCont;C%02x:%s;c", signal & 0xff, ptid);
    } else if (signal) {
      n = snprintf(pkt, sizeof pkt, "vCont;C%02x", signal & 0xff);
    } else {
      n = snprintf(pkt, sizeof pkt, "vCont;c");
    }
  } else {
    n = signal ? snprintf(pkt, sizeof pkt, "C%02x", signal & 0xff) : snprintf(pkt, sizeof pkt, "c");
  }
  /* Replies still owed (a breakpoint re-inserted after a step, say) come before the stop reply: collect
   * them after sending, so the resume does not wait a round trip for them. */
  int rc = send_packet(c, pkt, (size_t)n);
  const char *r;
  size_t rl;
  while (rc == 0 && c->owed) {
    rc = rspc_recv(c, c->reply_timeout_ms, &r, &rl);
    if (rc == 0 && rspc_is_error(r, rl))
      LOG_WARN("rsp: the server refused a request sent before resuming (%.*s)", (int)rl, r);
  }
  return rc;
}

int rspc_step_over(struct rspc *c, int64_t pid, int64_t tid, uint64_t addr, int kind, unsigned timeout_ms,
                   struct rspc_stop *out)
{
  if (!c->features.vcont) { /* Hc + s: no pipelining, the plain sequence */
    int rc = rspc_remove_breakpoint(c, addr, kind);
    if (rc == 0)
      rc = rspc_step(c, pid, tid, timeout_ms, out);
    return rc ? rc : rspc_insert_breakpoint(c, addr, kind);
  }
  int owed_rc = drain_owed(c);
  if (owed_rc)
    return owed_rc;
  const char *r;
  size_t rl;
  char pkt[96], ptid[48];
  rspc_format_ptid(c, ptid, sizeof ptid, pid, tid);
  int n = snprintf(pkt, sizeof pkt, "z0,%llx,%x", (unsigned long long)addr, kind);
  int rc = rspc_send(c, pkt, (size_t)n);
  n = snprintf(pkt, sizeof pkt, "vCont;s:%s", ptid);
  if (rc == 0)
    rc = send_packet(c, pkt, (size_t)n);
  if (rc == 0)
    rc = rspc_recv(c, c->reply_timeout_ms, &r, &rl);
  int removed = rc == 0 && expect_ok(r, rl, 0) == 0;
  if (rc == 0)
    rc = rspc_wait_stop(c, timeout_ms, out);
  if (rc)
    return rc;
  if (!removed)
    return -EIO; /* the thread trapped on the breakpoint again instead of stepping */
  if (out->kind != RSPC_STOP_SIGNAL)
    return 0; /* the process ended during the step: nothing to re-insert */
  n = snprintf(pkt, sizeof pkt, "Z0,%llx,%x", (unsigned long long)addr, kind);
  return rspc_send(c, pkt, (size_t)n);
}

int rspc_step(struct rspc *c, int64_t pid, int64_t tid, unsigned timeout_ms, struct rspc_stop *out)
{
  char pkt[96];
  int n;
  if (c->features.vcont) {
    char ptid[48];
    rspc_format_ptid(c, ptid, sizeof ptid, pid, tid);
    n = snprintf(pkt, sizeof pkt, "vCont;s:%s", ptid);
  } else {
    int rc = rspc_select_thread(c, 'c', pid, tid);
    if (rc)
      return rc;
    n = snprintf(pkt, sizeof pkt, "s");
  }
  int owed_rc = drain_owed(c);
  if (owed_rc)
    return owed_rc;
  int rc = send_packet(c, pkt, (size_t)n);
  return rc ? rc : rspc_wait_stop(c, timeout_ms, out);
}

int rspc_wait_stop(struct rspc *c, unsigned timeout_ms, struct rspc_stop *out)
{
  uint64_t deadline = mono_ms() + timeout_ms;
  for (;;) {
    uint64_t now = mono_ms();
    const char *r;
    size_t n;
    int rc = next_packet(c, now < deadline ? (unsigned)(deadline - now) : 0, &r, &n);
    if (rc)
      return rc;
    if (n > 1 && r[0] == 'O' && !(n == 2 && r[1] == 'K')) {
      LOG_DEBUG("rsp: console output from the target (%zu hex digits)", n - 1);
      continue;
    }
    rc = rspc_parse_stop(r, n, out);
    if (rc) {
      LOG_ERR("rsp: expected a stop reply, got: %.80s", r);
      return rc;
    }
    remember_stop(c, out);
    return 0;
  }
}

static int expect_ok(const char *r, size_t n, int unsupported_ok)
{
  if (n == 2 && !memcmp(r, "OK", 2))
    return 0;
  if (n == 0)
    return unsupported_ok ? 0 : RS_E_UNSUPPORTED;
  return -EIO;
}

int rspc_select_thread(struct rspc *c, char op, int64_t pid, int64_t tid)
{
  char ptid[48];
  rspc_format_ptid(c, ptid, sizeof ptid, pid, tid);
  const char *r;
  size_t n;
  int rc = rspc_requestf(c, &r, &n, "H%c%s", op, ptid);
  return rc ? rc : expect_ok(r, n, 0);
}

static int decode_registers(const char *r, size_t n, uint8_t *buf, size_t max, size_t *len)
{
  *len = 0;
  if (n == 0 || rspc_is_error(r, n) || n % 2)
    return -EIO;
  if (n / 2 > max)
    return RS_E_LIMIT;
  for (size_t i = 0; i < n / 2; i++) {
    if (r[2 * i] == 'x') { /* unavailable register bytes */
      buf[i] = 0;
      continue;
    }
    if (hex_decode(&buf[i], r + 2 * i, 1))
      return RS_E_BAD_HEX;
  }
  *len = n / 2;
  return 0;
}

int rspc_read_registers(struct rspc *c, uint8_t *buf, size_t max, size_t *len)
{
  const char *r;
  size_t n;
  *len = 0;
  int rc = rspc_request(c, "g", 1, &r, &n);
  return rc ? rc : decode_registers(r, n, buf, max, len);
}

/* Memory reads: chunks are requested PIPELINE_DEPTH at a time so a long read costs few round trips. */
static int memory_chunk_reply(struct rspc *c, int binary, uint8_t *dst, size_t want, size_t *got)
{
  const char *r;
  size_t n;
  *got = 0;
  int rc = rspc_recv(c, c->reply_timeout_ms, &r, &n);
  if (rc)
    return rc;
  if (rspc_is_error(r, n))
    return -EFAULT;
  if (binary) {
    if (n == 0 || r[0] != 'b')
      return n == 0 ? -EFAULT : RS_E_PROTO;
    size_t m = n - 1 < want ? n - 1 : want;
    memcpy(dst, r + 1, m);
    *got = m;
    return 0;
  }
  if (n % 2)
    return RS_E_PROTO;
  size_t m = n / 2 < want ? n / 2 : want;
  if (hex_decode(dst, r, m))
    return RS_E_BAD_HEX;
  *got = m;
  return n == 0 ? -EFAULT : 0;
}

/* After a chunk failed: some servers (gdbserver) refuse a whole read that runs into unmapped memory, so
 * read on page by page to find exactly how much of the range is readable. Returns the bytes read. */
static size_t salvage(struct rspc *c, uint64_t addr, uint8_t *dst, size_t len)
{
  const uint64_t page = 4096;
  size_t done = 0;
  while (done < len) {
    uint64_t a = addr + done;
    size_t want = (size_t)(page - (a & (page - 1)));
    if (want > len - done)
      want = len - done;
    char pkt[64];
    int pl = snprintf(pkt, sizeof pkt, "%c%llx,%zx", c->features.binary_upload ? 'x' : 'm', (unsigned long long)a,
                      want);
    size_t g = 0;
    if (rspc_send(c, pkt, (size_t)pl) != 0 ||
        memory_chunk_reply(c, c->features.binary_upload, dst + done, want, &g) != 0)
      break;
    done += g;
    if (g < want)
      break;
  }
  return done;
}

int rspc_read_memory(struct rspc *c, uint64_t addr, void *buf, size_t len, size_t *got)
{
  int binary = c->features.binary_upload;
  size_t room = c->features.packet_size > 64 ? c->features.packet_size - 32 : 32;
  size_t chunk = room / 2; /* hex doubles each byte, and escaping can double a binary reply too */
  uint8_t *dst = buf;
  size_t done = 0, sent = 0;
  size_t nchunks = (len + chunk - 1) / chunk, next_send = 0, next_recv = 0;
  int rc = 0, failed = 0;
  if (got)
    *got = 0;
  if ((rc = drain_owed(c)))
    return rc;
  while (next_recv < nchunks) {
    while (next_send < nchunks && next_send - next_recv < PIPELINE_DEPTH && !failed) {
      size_t off = next_send * chunk;
      size_t n = len - off < chunk ? len - off : chunk;
      char pkt[64];
      int pl = snprintf(pkt, sizeof pkt, "%c%llx,%zx", binary ? 'x' : 'm', (unsigned long long)(addr + off), n);
      rc = rspc_send(c, pkt, (size_t)pl);
      if (rc)
        return rc;
      next_send++;
      sent++;
    }
    if (next_recv >= next_send)
      break;
    size_t off = next_recv * chunk;
    size_t want = len - off < chunk ? len - off : chunk;
    size_t g;
    int crc = memory_chunk_reply(c, binary, dst + off, want, &g);
    next_recv++;
    if (crc == RS_E_TIMEOUT || crc == RS_E_DISCONNECTED || crc == RS_E_TLS || crc == RS_E_TOO_LONG)
      return crc;
    if (!failed) {
      done += g;
      if (crc || g < want) {
        failed = 1;
        rc = crc ? crc : -EFAULT;
      }
    }
  }
  if (failed && rc != RS_E_PROTO && rc != RS_E_BAD_HEX) {
    done += salvage(c, addr + done, dst + done, len - done);
    if (done == len)
      failed = 0;
  }
  if (got)
    *got = done;
  return failed ? (rc == RS_E_PROTO || rc == RS_E_BAD_HEX ? rc : -EFAULT) : 0;
}

int rspc_write_memory(struct rspc *c, uint64_t addr, const void *buf, size_t len)
{
  size_t room = c->features.packet_size > 96 ? c->features.packet_size - 64 : 32;
  size_t chunk = room / 2;
  const uint8_t *src = buf;
  struct rs_buf pkt;
  rs_buf_init(&pkt, c->features.packet_size + 64);
  int rc = 0;
  for (size_t off = 0; off < len || (len == 0 && off == 0); off += chunk) {
    size_t n = len - off < chunk ? len - off : chunk;
    rs_buf_reset(&pkt);
    rc = rs_buf_printf(&pkt, "M%llx,%zx:", (unsigned long long)(addr + off), n);
    if (!rc)
      rc = rs_buf_put_hex(&pkt, src + off, n);
    if (rc)
      break;
    const char *r;
    size_t rl;
    rc = rspc_request(c, (const char *)pkt.data, pkt.len, &r, &rl);
    if (rc)
      break;
    if (!(rl == 2 && !memcmp(r, "OK", 2))) {
      rc = -EFAULT;
      break;
    }
    if (len == 0)
      break;
  }
  rs_buf_free(&pkt);
  return rc;
}

static int breakpoint(struct rspc *c, char op, uint64_t addr, int kind)
{
  return rspc_request_ok(c, "%c0,%llx,%x", op, (unsigned long long)addr, kind);
}

int rspc_insert_breakpoint(struct rspc *c, uint64_t addr, int kind) { return breakpoint(c, 'Z', addr, kind); }
int rspc_remove_breakpoint(struct rspc *c, uint64_t addr, int kind) { return breakpoint(c, 'z', addr, kind); }

int rspc_list_threads(struct rspc *c, int64_t **pids, int64_t **tids, size_t *count)
{
  size_t n = 0, cap = 0;
  int64_t *pv = NULL, *tv = NULL;
  const char *query = "qfThreadInfo";
  int rc = 0;
  for (int rounds = 0; rounds < 100000; rounds++) {
    const char *r;
    size_t rl;
    rc = rspc_request(c, query, strlen(query), &r, &rl);
    if (rc)
      goto out;
    query = "qsThreadInfo";
    if (rl == 1 && r[0] == 'l')
      break;
    if (rl == 0 || r[0] != 'm') {
      rc = rl == 0 ? RS_E_UNSUPPORTED : RS_E_PROTO;
      goto out;
    }
    const char *p = r + 1;
    while (*p) {
      int64_t pid, tid;
      if (parse_ptid(&p, &pid, &tid)) {
        rc = RS_E_PROTO;
        goto out;
      }
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        int64_t *np = realloc(pv, cap * sizeof *np);
        if (np)
          pv = np;
        int64_t *nt = realloc(tv, cap * sizeof *nt);
        if (nt)
          tv = nt;
        if (!np || !nt) {
          rc = -ENOMEM;
          goto out;
        }
      }
      pv[n] = pid;
      tv[n] = tid;
      n++;
      if (*p == ',')
        p++;
      else if (*p) {
        rc = RS_E_PROTO;
        goto out;
      }
    }
  }
out:
  if (rc) {
    free(pv);
    free(tv);
    return rc;
  }
  if (pids)
    *pids = pv;
  else
    free(pv);
  *tids = tv;
  *count = n;
  return 0;
}

int rspc_kill(struct rspc *c)
{
  const char *r;
  size_t n;
  int rc;
  if (c->features.multiprocess && c->pid > 0) {
    rc = rspc_requestf(c, &r, &n, "vKill;%llx", (unsigned long long)c->pid);
    if (rc == RS_E_DISCONNECTED)
      return 0;
    return rc ? rc : expect_ok(r, n, 0);
  }
  /* Servers answer 'k' differently (nothing, a stop reply, or closing the connection): any is fine. */
  rc = send_packet(c, "k", 1);
  if (rc)
    return rc == RS_E_DISCONNECTED ? 0 : rc;
  rc = next_packet(c, 1000, &r, &n);
  return rc == RS_E_TIMEOUT || rc == RS_E_DISCONNECTED ? 0 : rc;
}

int rspc_detach(struct rspc *c)
{
  const char *r;
  size_t n;
  int rc;
  if (c->features.multiprocess && c->pid > 0)
    rc = rspc_requestf(c, &r, &n, "D;%llx", (unsigned long long)c->pid);
  else
    rc = rspc_request(c, "D", 1, &r, &n);
  return rc ? rc : expect_ok(r, n, 0);
}

int rspc_qxfer_read(struct rspc *c, const char *object, const char *annex, struct rs_buf *out)
{
  size_t chunk = c->features.packet_size > 64 ? c->features.packet_size - 16 : 48;
  uint64_t offset = 0;
  for (;;) {
    const char *r;
    size_t n;
    int rc = rspc_requestf(c, &r, &n, "qXfer:%s:read:%s:%llx,%zx", object, annex ? annex : "",
                           (unsigned long long)offset, chunk);
    if (rc)
      return rc;
    if (n == 0)
      return RS_E_UNSUPPORTED;
    if (r[0] == 'E')
      return -EIO;
    if (r[0] != 'm' && r[0] != 'l')
      return RS_E_PROTO;
    rc = rs_buf_append(out, r + 1, n - 1);
    if (rc)
      return rc;
    offset += n - 1;
    if (r[0] == 'l')
      return 0;
    if (n == 1)
      return RS_E_PROTO; /* 'm' with no data would loop forever */
  }
}

int rspc_capture(struct rspc *c, int64_t pid, int64_t tid, uint8_t *regs, size_t regs_max, size_t *regs_len,
                 uint64_t sp, uint8_t *stack, size_t stack_len, size_t *stack_got)
{
  const char *r;
  size_t n;
  *regs_len = 0;
  *stack_got = 0;
  int rc = drain_owed(c);
  if (rc)
    return rc;
  if (tid > 0) {
    char pkt[64], ptid[48];
    rspc_format_ptid(c, ptid, sizeof ptid, pid, tid);
    int pl = snprintf(pkt, sizeof pkt, "Hg%s", ptid);
    if ((rc = rspc_send(c, pkt, (size_t)pl)) != 0)
      return rc;
  }
  if ((rc = rspc_send(c, "g", 1)) != 0)
    return rc;
  size_t room = c->features.packet_size > 64 ? c->features.packet_size - 32 : 32;
  size_t chunk = room / 2;
  size_t nchunks = stack_len ? (stack_len + chunk - 1) / chunk : 0;
  /* The window is small (a few KiB), so every chunk goes out at once. */
  for (size_t i = 0; i < nchunks; i++) {
    size_t off = i * chunk, want = stack_len - off < chunk ? stack_len - off : chunk;
    char pkt[64];
    int pl = snprintf(pkt, sizeof pkt, "%c%llx,%zx", c->features.binary_upload ? 'x' : 'm',
                      (unsigned long long)(sp + off), want);
    if ((rc = rspc_send(c, pkt, (size_t)pl)) != 0)
      return rc;
  }
  int result = 0;
  if (tid > 0) {
    if ((rc = rspc_recv(c, c->reply_timeout_ms, &r, &n)) != 0)
      return rc;
    if (!(n == 2 && !memcmp(r, "OK", 2)))
      result = -EIO;
  }
  if ((rc = rspc_recv(c, c->reply_timeout_ms, &r, &n)) != 0)
    return rc;
  if (!result)
    result = decode_registers(r, n, regs, regs_max, regs_len);
  int stack_done = 0;
  for (size_t i = 0; i < nchunks; i++) {
    size_t off = i * chunk, want = stack_len - off < chunk ? stack_len - off : chunk, g = 0;
    rc = memory_chunk_reply(c, c->features.binary_upload, stack + off, want, &g);
    if (rc == RS_E_TIMEOUT || rc == RS_E_DISCONNECTED || rc == RS_E_TLS || rc == RS_E_TOO_LONG)
      return rc;
    if (!stack_done) {
      *stack_got += g;
      stack_done = rc != 0 || g < want;
    }
  }
  if (stack_done && *stack_got < stack_len)
    *stack_got += salvage(c, sp + *stack_got, stack + *stack_got, stack_len - *stack_got);
  return result;
}

int rspc_run(struct rspc *c, const char *const *argv, size_t argc, struct rspc_stop *out)
{
  const char *r;
  size_t n;
  /* vRun is an extended-mode packet: gdbserver refuses it until '!' turned the mode on. */
  int rc = rspc_request(c, "!", 1, &r, &n);
  if (rc)
    return rc;
  if (n != 2 || memcmp(r, "OK", 2) != 0)
    return RS_E_UNSUPPORTED;
  struct rs_buf pkt;
  rs_buf_init(&pkt, c->features.packet_size ? c->features.packet_size : 400);
  rc = rs_buf_puts(&pkt, "vRun");
  if (argc == 0 && !rc)
    rc = rs_buf_putc(&pkt, ';'); /* an empty file name: the program the server was started with */
  for (size_t i = 0; i < argc && !rc; i++) {
    rc = rs_buf_putc(&pkt, ';');
    if (!rc)
      rc = rs_buf_put_hex(&pkt, argv[i], strlen(argv[i]));
  }
  if (rc) {
    rs_buf_free(&pkt);
    return RS_E_LIMIT;
  }
  rc = rspc_request(c, (const char *)pkt.data, pkt.len, &r, &n);
  rs_buf_free(&pkt);
  if (rc)
    return rc;
  if (rspc_is_error(r, n))
    return -EIO;
  rc = rspc_parse_stop(r, n, out);
  if (rc) {
    LOG_ERR("rsp: unexpected answer to vRun: %.80s", r);
    return rc;
  }
  remember_stop(c, out);
  return 0;
}
