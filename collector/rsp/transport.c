/* The TCP side of the transport: a private libuv loop that each blocking call runs until its condition
 * holds or its deadline passes, with connect retries and an optional TLS layer on top. */
#include "transport.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "buf.h"
#include "errors.h"
#include "log.h"
#include "transport-tls.h"

#define RX_LIMIT (64u << 20) /* unread bytes we hold before refusing more (nothing legitimate comes near) */
#define READ_CHUNK 65536
#define POLL_REST 16 /* reads that sleep at once after a poll ran out */
#define CANCEL_CHECK_MS 100 /* longest sleep between looks at the cancel flag (a signal does not wake libuv) */

/* The caller's "stop now" flag, set by its signal handler (transport_set_cancel). Process-wide, like signals. */
static volatile sig_atomic_t *cancel_flag;
static unsigned cancel_grace_ms;

struct transport {
  uv_loop_t loop;
  uv_tcp_t tcp;
  uv_timer_t timer;
  int tcp_open;      /* tcp handle initialized and not yet closed */
  int connect_status; /* 1 while connecting, then 0 or a libuv error */
  int eof;           /* the peer closed or the connection broke */
  int err;           /* first hard error (negative), reported once rx is drained */
  size_t writes_pending;
  struct rs_buf rx;  /* received bytes (ciphertext under TLS) not yet consumed */
  struct transport_tls *tls;
  unsigned poll_us;  /* 0: never poll */
  unsigned poll_rest; /* reads left that sleep at once, after a poll ran out */
  int connecting;    /* in transport_connect: a cancel ends the wait at once, there is nothing to finish */
  uint64_t cancel_at; /* loop time when the grace after a cancel ends (0: no cancel seen yet) */
  char chunk[READ_CHUNK];
};

struct write_req {
  uv_write_t req;
  struct transport *t;
  char data[];
};

static uint64_t now_ms(struct transport *t)
{
  uv_update_time(&t->loop);
  return uv_now(&t->loop);
}

static void on_timer(uv_timer_t *h) { (void)h; }

static int usable_cpus(void)
{
  cpu_set_t set;
  return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

void transport_set_cancel(volatile sig_atomic_t *flag, unsigned grace_ms)
{
  cancel_flag = flag;
  cancel_grace_ms = grace_ms;
}

/* Whether a cancel request has used up its grace (starting the grace when it is seen first). */
static int cancelled(struct transport *t, uint64_t now)
{
  if (!cancel_flag || !*cancel_flag)
    return 0;
  if (t->connecting)
    return 1;
  if (!t->cancel_at)
    t->cancel_at = now + cancel_grace_ms;
  return now >= t->cancel_at;
}

/* Runs one loop iteration, waking up at the deadline at the latest. Returns RS_E_TIMEOUT once it passed, or
 * -EINTR once a cancel request's grace is over. */
static int pump(struct transport *t, uint64_t deadline)
{
  uint64_t now = now_ms(t);
  if (cancelled(t, now))
    return -EINTR;
  if (now >= deadline)
    return RS_E_TIMEOUT;
  uint64_t wait = deadline - now;
  if (cancel_flag && wait > CANCEL_CHECK_MS)
    wait = CANCEL_CHECK_MS;
  uv_timer_start(&t->timer, on_timer, wait, 0);
  uv_run(&t->loop, UV_RUN_ONCE);
  uv_timer_stop(&t->timer);
  return 0;
}

static int map_uv_error(int e)
{
  switch (e) {
  case UV_EOF:
  case UV_ECONNRESET:
  case UV_EPIPE:
  case UV_ECONNABORTED:
  case UV_ECANCELED:
    return RS_E_DISCONNECTED;
  default:
    return e; /* libuv errors are -errno on Linux */
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct transport *t = h->data;
  (void)suggested;
  *buf = uv_buf_init(t->chunk, sizeof t->chunk);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  struct transport *t = s->data;
  if (n > 0) {
    if (rs_buf_append(&t->rx, buf->base, (size_t)n) != 0) {
      LOG_ERR("transport: the peer sent more than %u bytes that were not read; giving up", RX_LIMIT);
      t->err = RS_E_LIMIT;
      t->eof = 1;
      uv_read_stop(s);
    }
  } else if (n < 0) {
    if (n != UV_EOF)
      LOG_DEBUG("transport: read: %s", uv_strerror((int)n));
    t->eof = 1;
    if (n != UV_EOF && !t->err)
      t->err = map_uv_error((int)n);
    uv_read_stop(s);
  }
}

static void on_write(uv_write_t *req, int status)
{
  struct write_req *w = (struct write_req *)req;
  struct transport *t = w->t;
  t->writes_pending--;
  if (status < 0 && status != UV_ECANCELED) {
    LOG_DEBUG("transport: write: %s", uv_strerror(status));
    t->eof = 1;
    if (!t->err)
      t->err = map_uv_error(status);
  }
  free(w);
}

static int raw_write(struct transport *t, const uint8_t *data, size_t len)
{
  if (t->eof || !t->tcp_open)
    return t->err ? t->err : RS_E_DISCONNECTED;
  size_t done = 0;
  if (t->writes_pending == 0) {
    /* Most packets are small and leave at once; only a remainder needs a queued request. */
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&t->tcp, &b, 1);
    if (n >= 0)
      done = (size_t)n;
    else if (n != UV_EAGAIN)
      return map_uv_error(n);
  }
  if (done == len)
    return 0;
  struct write_req *w = malloc(sizeof *w + (len - done));
  if (!w)
    return -ENOMEM;
  w->t = t;
  memcpy(w->data, data + done, len - done);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)(len - done));
  int rc = uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, on_write);
  if (rc < 0) {
    free(w);
    return map_uv_error(rc);
  }
  t->writes_pending++;
  return 0;
}

static int tls_send_cb(void *ctx, const uint8_t *data, size_t len) { return raw_write(ctx, data, len); }

static long tls_recv_cb(void *ctx, uint8_t *buf, size_t len)
{
  struct transport *t = ctx;
  if (t->rx.len == 0)
    return t->eof ? (t->err ? t->err : RS_E_DISCONNECTED) : 0;
  size_t n = len < t->rx.len ? len : t->rx.len;
  memcpy(buf, t->rx.data, n);
  rs_buf_consume(&t->rx, n);
  return (long)n;
}

static void on_closed(uv_handle_t *h) { (void)h; }

static void close_tcp(struct transport *t)
{
  if (!t->tcp_open)
    return;
  t->tcp_open = 0;
  uv_close((uv_handle_t *)&t->tcp, on_closed);
  /* Closing cancels queued writes; their callbacks free them during this run. */
  uv_run(&t->loop, UV_RUN_DEFAULT);
}

static void on_connect(uv_connect_t *req, int status)
{
  struct transport *t = req->data;
  t->connect_status = status;
}

/* One connection attempt to one address. Returns 0 or a negative error; the tcp handle is closed on failure. */
static int connect_addr(struct transport *t, const struct sockaddr *sa, unsigned timeout_ms)
{
  uv_connect_t req;
  int rc = uv_tcp_init(&t->loop, &t->tcp);
  if (rc < 0)
    return rc;
  t->tcp.data = t;
  t->tcp_open = 1;
  t->connect_status = 1;
  req.data = t;
  rc = uv_tcp_connect(&req, &t->tcp, sa, on_connect);
  if (rc < 0) {
    close_tcp(t);
    return rc;
  }
  uint64_t deadline = now_ms(t) + timeout_ms;
  int waited = 0;
  while (t->connect_status == 1 && (waited = pump(t, deadline)) == 0)
    ;
  if (t->connect_status == 1) {
    close_tcp(t); /* runs the cancelled connect callback too */
    return waited ? waited : RS_E_TIMEOUT;
  }
  if (t->connect_status < 0) {
    rc = t->connect_status;
    close_tcp(t);
    return rc;
  }
  uv_tcp_nodelay(&t->tcp, 1); /* RSP is request/response: never hold a small packet back */
  t->eof = 0;
  t->err = 0;
  return 0;
}

static void sleep_ms(struct transport *t, unsigned ms)
{
  uint64_t deadline = now_ms(t) + ms;
  while (pump(t, deadline) == 0)
    ;
}

static int connect_tcp(struct transport *t, const struct transport_options *o, unsigned timeout_ms)
{
  char port[8];
  snprintf(port, sizeof port, "%u", o->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
  int last = RS_E_NOT_FOUND;
  for (unsigned attempt = 0; attempt <= o->retries; attempt++) {
    if (attempt > 0) {
      LOG_INFO("transport: retrying %s:%u in %u ms (attempt %u of %u)", o->host, o->port, o->retry_delay_ms,
               attempt + 1, o->retries + 1);
      sleep_ms(t, o->retry_delay_ms);
      if (cancelled(t, now_ms(t)))
        return -EINTR;
    }
    uv_getaddrinfo_t gai;
    int rc = uv_getaddrinfo(&t->loop, &gai, NULL, o->host, port, &hints); /* NULL callback: synchronous */
    if (rc < 0) {
      LOG_WARN("transport: cannot resolve %s: %s", o->host, uv_strerror(rc));
      last = rc == UV_EAI_NONAME ? RS_E_NOT_FOUND : rc;
      continue;
    }
    for (struct addrinfo *ai = gai.addrinfo; ai; ai = ai->ai_next) {
      rc = connect_addr(t, ai->ai_addr, timeout_ms);
      if (rc == 0) {
        uv_freeaddrinfo(gai.addrinfo);
        return 0;
      }
      LOG_DEBUG("transport: connect to %s:%u: %s", o->host, o->port, rc == RS_E_TIMEOUT ? "timed out" : uv_strerror(rc));
      last = rc;
      if (rc == -EINTR)
        break;
    }
    uv_freeaddrinfo(gai.addrinfo);
    if (last == -EINTR)
      break;
  }
  return last;
}

/* A peer that hangs up would otherwise kill the whole collector with SIGPIPE on the next write (libuv
 * writes without MSG_NOSIGNAL); an ignored SIGPIPE turns that into EPIPE. A handler someone installed
 * on purpose is left alone. */
static void ignore_sigpipe(void)
{
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

int transport_connect(const struct transport_options *o, struct transport **out)
{
  *out = NULL;
  ignore_sigpipe();
  if (!o->host || !o->port)
    return RS_E_BAD_ARG;
  struct transport *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  int rc = uv_loop_init(&t->loop);
  if (rc < 0) {
    free(t);
    return rc;
  }
  uv_timer_init(&t->loop, &t->timer);
  rs_buf_init(&t->rx, RX_LIMIT);
  t->poll_us = usable_cpus() > 1 ? o->poll_us : 0; /* on one CPU, polling only delays the peer */
  unsigned timeout = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
  t->connecting = 1;

  if (transport_tls_wanted(o)) {
    rc = transport_tls_new(o, tls_send_cb, tls_recv_cb, t, &t->tls);
    if (rc)
      goto fail;
  }
  rc = connect_tcp(t, o, timeout);
  if (rc) {
    LOG_ERR("transport: cannot connect to %s:%u: %s", o->host, o->port,
            rc == RS_E_TIMEOUT || rc == RS_E_NOT_FOUND ? rs_strerror(rc) : rc == -EINTR ? "interrupted" : uv_strerror(rc));
    goto fail;
  }
  uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read);
  if (t->tls) {
    uint64_t deadline = now_ms(t) + timeout;
    for (;;) {
      rc = transport_tls_handshake(t->tls);
      if (rc <= 0)
        break;
      if (t->eof) {
        LOG_ERR("transport: %s:%u closed the connection during the TLS handshake", o->host, o->port);
        rc = RS_E_TLS;
        break;
      }
      if ((rc = pump(t, deadline)) != 0) {
        if (rc == RS_E_TIMEOUT)
          LOG_ERR("transport: TLS handshake with %s:%u timed out", o->host, o->port);
        break;
      }
    }
    if (rc)
      goto fail;
  }
  LOG_INFO("transport: connected to %s:%u%s", o->host, o->port, t->tls ? " (TLS)" : "");
  *out = t;
  return 0;
fail:
  transport_close(t);
  return rc;
}

int transport_write(struct transport *t, const void *data, size_t len)
{
  if (len == 0)
    return 0;
  if (t->tls)
    return transport_tls_write(t->tls, data, len);
  return raw_write(t, data, len);
}

/* Delivers what is already available, without running the loop. Returns 1 with bytes, 0 when none, or an error. */
static int take_available(struct transport *t, void *buf, size_t max, size_t *got)
{
  if (t->tls) {
    long n = transport_tls_read(t->tls, buf, max);
    if (n > 0) {
      *got = (size_t)n;
      return 1;
    }
    return (int)n;
  }
  if (t->rx.len) {
    size_t n = max < t->rx.len ? max : t->rx.len;
    memcpy(buf, t->rx.data, n);
    rs_buf_consume(&t->rx, n);
    *got = n;
    return 1;
  }
  if (t->eof)
    return t->err ? t->err : RS_E_DISCONNECTED;
  return 0;
}

static uint64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Polls for bytes without sleeping for up to poll_us. Returns 1 with bytes, 0 when none came, or an error.
 * When nothing came in time the next POLL_REST reads sleep at once: a slow link or a program that rarely
 * stops does not keep a CPU busy. */
static int poll_briefly(struct transport *t, void *buf, size_t max, size_t *got)
{
  if (!t->poll_us)
    return 0;
  if (t->poll_rest) {
    t->poll_rest--;
    return 0;
  }
  uint64_t until = now_us() + t->poll_us;
  do {
    uv_run(&t->loop, UV_RUN_NOWAIT);
    int rc = take_available(t, buf, max, got);
    if (rc)
      return rc;
  } while (now_us() < until);
  t->poll_rest = POLL_REST;
  return 0;
}

int transport_read(struct transport *t, unsigned timeout_ms, void *buf, size_t max, size_t *got)
{
  *got = 0;
  uint64_t deadline = now_ms(t) + timeout_ms;
  for (;;) {
    int rc = take_available(t, buf, max, got);
    if (rc == 1)
      return 0;
    if (rc < 0)
      return rc;
    if (timeout_ms == 0) {
      uv_run(&t->loop, UV_RUN_NOWAIT);
      rc = take_available(t, buf, max, got);
      return rc == 1 ? 0 : rc < 0 ? rc : RS_E_TIMEOUT;
    }
    rc = poll_briefly(t, buf, max, got);
    if (rc == 1)
      return 0;
    if (rc < 0)
      return rc;
    if ((rc = pump(t, deadline)) != 0)
      return rc;
  }
}

int transport_flush(struct transport *t, unsigned timeout_ms)
{
  uint64_t deadline = now_ms(t) + timeout_ms;
  while (t->writes_pending && !t->eof) {
    int rc = pump(t, deadline);
    if (rc)
      return rc;
  }
  return t->writes_pending ? (t->err ? t->err : RS_E_DISCONNECTED) : 0;
}

void transport_connected(struct transport *t) { t->connecting = 0; }

int transport_is_tls(const struct transport *t) { return t->tls != NULL; }

void transport_close(struct transport *t)
{
  if (!t)
    return;
  close_tcp(t);
  uv_close((uv_handle_t *)&t->timer, on_closed);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&t->loop) != 0)
    LOG_WARN("transport: libuv loop still had open handles at close");
  transport_tls_free(t->tls);
  rs_buf_free(&t->rx);
  free(t);
}
