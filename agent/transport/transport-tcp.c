/* TCP transport on libuv: one listening socket, one client at a time (others are refused without
 * disturbing it), SIGCHLD as a loop event so ptrace stops are noticed while serving the socket, and
 * flow control both ways so a client that stops reading costs a bounded amount of memory. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <uv.h>

#include "errors.h"
#include "log.h"
#include "transport.h"

struct net {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_poll_t sigchld;  /* readable signalfd: one poll instead of libuv's signal pipe, on every ptrace stop */
  int sigchld_fd;
  uv_signal_t sigterm, sigint;
  uv_tcp_t client;
  uv_timer_t idle;    /* runs from accept until the client's first well-formed packet */
  uv_timer_t events;  /* sends capture events that wait (rsprof-capture) a moment after they were recorded */
  uv_timer_t linger;  /* the session is over but the client has not received everything yet */
  unsigned lingered_ms;
  int have_client;
  int closing_client;
  struct agent_server *s;
  const struct agent_net_opts *o;
  struct agent_tls_server *tls;
  struct agent_tls_conn *tconn;
  struct rs_buf out;       /* bytes for the client not yet written; the first `inflight` are being written */
  size_t inflight;
  uv_write_t wreq;
  int writing;
  int held;                /* the output backlog passed OUT_BOUND: the server is held (agent_server_hold) */
  int reading;             /* uv_read_start is in effect for the client */
  int broken;              /* output was lost: the connection is closed at the next maybe_finish() */
  int served;
  int deferred; /* a connection is waiting for the previous client's handle to close */
  char rbuf[65536];
};

/* Output flow control. Past OUT_BOUND bytes not accepted by the socket, the server is held: it
 * processes no more packets, so it neither replies nor resumes the program, and the transport stops
 * reading the client, whose requests then wait in its own socket. Below half the bound (hysteresis, so
 * a busy client does not toggle it per reply) both go on. What can still arrive past the bound is the
 * reply being built and one stop reply of a program already running, each at most 4 * PacketSize
 * framed (a little more as TLS records): OUT_CAP leaves room for them, so nothing is ever dropped. */
#define OUT_BOUND (2u << 20)
#define OUT_CAP (OUT_BOUND + 4 * AGENT_PACKET_SIZE * 2 + (64u << 10))
/* After the last reply, how long the agent waits for the client's side to take what it was sent before
 * closing. A socket closed with data the peer has not acknowledged is orphaned, and under memory pressure the
 * kernel resets orphans, dropping that data: a collector stopped for a while (SIGSTOP) while the program ran
 * to its end would lose the events and the exit reply. */
#define LINGER_STEP_MS 10
#define LINGER_MAX_MS 30000
/* How long a capture event may wait for more to share its batch: short next to any round trip. */
#define EVENT_FLUSH_MS 2
/* Ciphertext read ahead of what the server can take (TLS only). */
#define TLS_READ_AHEAD (64u << 10)

static void maybe_finish(struct net *n);
static void on_write_done(uv_write_t *req, int status);
static void accept_client(struct net *n);
static void close_client(struct net *n);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void start_write(struct net *n)
{
  if (n->writing || n->out.len == 0 || !n->have_client || n->closing_client)
    return;
  /* Most replies fit the socket buffer at once: try that before queueing a request. */
  uv_buf_t b = uv_buf_init((char *)n->out.data, (unsigned)n->out.len);
  int w = uv_try_write((uv_stream_t *)&n->client, &b, 1);
  if (w > 0)
    rs_buf_consume(&n->out, (size_t)w);
  if (n->out.len == 0)
    return;
  /* out's storage was reserved whole at start-up, so appends while this write is in flight never
   * move the bytes libuv is writing from. */
  n->inflight = n->out.len;
  b = uv_buf_init((char *)n->out.data, (unsigned)n->inflight);
  n->writing = 1;
  if (uv_write(&n->wreq, (uv_stream_t *)&n->client, &b, 1, on_write_done))
    n->writing = 0;
}

/* Reads take no more than the server (or, with TLS, the read-ahead) can hold. */
static void alloc_cb_fn(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct net *n = h->data;
  size_t room = n->tconn ? sizeof n->rbuf : agent_server_input_room(n->s);
  (void)suggested;
  if (n->held)
    room = 0;
  *buf = uv_buf_init(n->rbuf, (unsigned)(room < sizeof n->rbuf ? room : sizeof n->rbuf));
}

/* What the server may be fed now: nothing while it is held. */
static size_t input_room(void *ctx)
{
  struct net *n = ctx;
  return n->held ? 0 : agent_server_input_room(n->s);
}

/* Holds or releases the server by the output backlog, hands on TLS plaintext that waited for room,
 * and reads from the client only while what it sends can be taken. */
static void flow(struct net *n)
{
  if (!n->have_client || n->closing_client)
    return;
  if (n->held && n->out.len <= OUT_BOUND / 2) {
    n->held = 0;
    agent_server_hold(n->s, 0); /* processes what waited; may produce enough output to hold again */
  }
  if (n->tconn && input_room(n) > 0 && agent_tls_conn_pending(n->tconn) > 0 &&
      agent_tls_conn_feed(n->tconn, NULL, 0)) {
    LOG_WARN("TLS session failed; closing the connection");
    close_client(n);
    return;
  }
  int want = input_room(n) > 0 && (!n->tconn || agent_tls_conn_pending(n->tconn) < TLS_READ_AHEAD);
  if (want && !n->reading && uv_read_start((uv_stream_t *)&n->client, alloc_cb_fn, on_read) == 0)
    n->reading = 1;
  else if (!want && n->reading) {
    uv_read_stop((uv_stream_t *)&n->client);
    n->reading = 0;
  }
}

static void on_write_done(uv_write_t *req, int status)
{
  struct net *n = req->data;
  n->writing = 0;
  rs_buf_consume(&n->out, n->inflight);
  n->inflight = 0;
  if (status < 0)
    LOG_DEBUG("write failed: %s", uv_strerror(status));
  start_write(n);
  flow(n);
  maybe_finish(n);
}

static void wire_out(void *ctx, const void *data, size_t len)
{
  struct net *n = ctx;
  if (!n->have_client || n->closing_client)
    return;
  if (n->broken)
    return;
  if (rs_buf_append(&n->out, data, len)) {
    /* Cannot happen within the bounds above; closing beats a stream with a hole in it. The close
     * waits for maybe_finish(): this runs inside the server, which must not be disconnected under
     * its own feet. */
    LOG_ERR("output backlog over %u bytes; closing the connection", (unsigned)OUT_CAP);
    n->broken = 1;
    return;
  }
  if (!n->held && n->out.len >= OUT_BOUND) {
    n->held = 1;
    agent_server_hold(n->s, 1);
  }
  start_write(n);
}

/* The server's send function: plain TCP writes directly, TLS encrypts first. */
static void server_send(void *ctx, const void *data, size_t len)
{
  struct net *n = ctx;
  if (n->tconn)
    agent_tls_conn_write(n->tconn, data, len);
  else
    wire_out(n, data, len);
}

static void plain_in(void *ctx, const void *data, size_t len)
{
  struct net *n = ctx;
  agent_server_feed(n->s, data, len);
}

static void on_client_closed(uv_handle_t *h)
{
  struct net *n = h->data;
  n->have_client = 0;
  n->closing_client = 0;
  rs_buf_reset(&n->out);
  n->inflight = 0;
  n->writing = 0;
  n->held = 0;
  n->reading = 0;
  n->broken = 0;
  if (n->deferred) {
    n->deferred = 0;
    /* When quitting, closing the listener also closes the connection it holds back. */
    if (!n->s->quit) {
      accept_client(n);
      return;
    }
  }
  maybe_finish(n);
}

static void close_client(struct net *n)
{
  if (!n->have_client || n->closing_client)
    return;
  n->closing_client = 1;
  uv_timer_stop(&n->idle);
  uv_timer_stop(&n->linger);
  n->lingered_ms = 0;
  /* A peer that never completed the TLS handshake, or never sent a well-formed packet, was never a
   * client: it must not be able to end the session (killing a launched program) just by connecting. */
  int was_client = (!n->tconn || agent_tls_conn_established(n->tconn)) && agent_server_client_spoke(n->s);
  if (n->tconn) {
    agent_tls_conn_destroy(n->tconn);
    n->tconn = NULL;
  }
  if (was_client) {
    agent_server_disconnect(n->s);
    if (n->o->once)
      n->s->quit = 1;
  } else {
    n->s->send = NULL;
  }
  uv_close((uv_handle_t *)&n->client, on_client_closed);
}

static void on_closed_noop(uv_handle_t *h) { (void)h; }

/* Bytes written to the client's socket that its peer has not acknowledged yet. */
static int unacknowledged(struct net *n)
{
  uv_os_fd_t fd;
  int queued = 0;
  if (uv_fileno((uv_handle_t *)&n->client, &fd) != 0 || ioctl(fd, SIOCOUTQ, &queued) != 0)
    return 0;
  return queued;
}

static void on_linger(uv_timer_t *h)
{
  struct net *n = h->data;
  n->lingered_ms += LINGER_STEP_MS;
  maybe_finish(n);
}

/* Ends the session when the server is done (after flushing, and once the client has taken it all, within
 * LINGER_MAX_MS), and the loop when it should quit. */
static void maybe_finish(struct net *n)
{
  if (n->have_client && !n->closing_client &&
      (n->broken || (n->s->done && !n->writing && n->out.len == 0))) {
    if (!n->broken && n->lingered_ms < LINGER_MAX_MS && unacknowledged(n) > 0) {
      if (!uv_is_active((uv_handle_t *)&n->linger))
        uv_timer_start(&n->linger, on_linger, LINGER_STEP_MS, 0);
      return;
    }
    n->lingered_ms = 0;
    close_client(n);
  }
  if (n->s->quit && !n->have_client) {
    if (!uv_is_closing((uv_handle_t *)&n->listener))
      uv_close((uv_handle_t *)&n->listener, on_closed_noop);
    uv_handle_t *sigs[] = {(uv_handle_t *)&n->sigchld, (uv_handle_t *)&n->sigterm, (uv_handle_t *)&n->sigint,
                           (uv_handle_t *)&n->idle, (uv_handle_t *)&n->events, (uv_handle_t *)&n->linger};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
      if (!uv_is_closing(sigs[i]))
        uv_close(sigs[i], on_closed_noop);
  }
}

static void arm_event_flush(struct net *n);

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
  struct net *n = st->data;
  if (nread == UV_ENOBUFS) { /* no room (alloc_cb_fn): wait for it */
    flow(n);
    return;
  }
  if (nread < 0) {
    LOG_INFO("client disconnected");
    close_client(n);
    return;
  }
  if (nread == 0)
    return;
  if (n->tconn) {
    if (agent_tls_conn_feed(n->tconn, buf->base, (size_t)nread)) {
      LOG_WARN("TLS session failed; closing the connection");
      close_client(n);
      return;
    }
  } else {
    agent_server_feed(n->s, buf->base, (size_t)nread);
  }
  if (agent_server_client_spoke(n->s))
    uv_timer_stop(&n->idle);
  arm_event_flush(n); /* a resume may have taken hits that waited */
  flow(n);
  maybe_finish(n);
}

static void on_idle(uv_timer_t *h)
{
  struct net *n = h->data;
  if (!n->have_client || n->closing_client || agent_server_client_spoke(n->s))
    return;
  LOG_WARN("closing a connection that sent no valid packet in %u s (--idle-timeout)", n->o->idle_timeout);
  close_client(n);
  maybe_finish(n);
}

/* Makes the pending connection the client. */
static void accept_client(struct net *n)
{
  uv_tcp_init(n->loop, &n->client);
  n->client.data = n;
  if (uv_accept((uv_stream_t *)&n->listener, (uv_stream_t *)&n->client)) {
    uv_close((uv_handle_t *)&n->client, on_closed_noop);
    return;
  }
  n->have_client = 1;
  n->served++;
  /* A silent peer must not hold the one client slot for ever. */
  if (n->o->idle_timeout)
    uv_timer_start(&n->idle, on_idle, (uint64_t)n->o->idle_timeout * 1000, 0);
  uv_tcp_nodelay(&n->client, 1);
  LOG_INFO("client connected");
  if (n->tls) {
    n->tconn = agent_tls_conn_new(n->tls, wire_out, plain_in, input_room, n);
    if (!n->tconn) {
      close_client(n);
      return;
    }
  }
  agent_server_connect(n->s, server_send, n);
  flow(n);
}

static void on_connection(uv_stream_t *srv, int status)
{
  struct net *n = srv->data;
  if (status < 0)
    return;
  if (n->have_client && n->closing_client && !n->s->quit) {
    /* The previous client is on its way out: leave this one pending (libuv stops polling the
     * listener until we accept) and take it once the old handle is closed, rather than refuse it. */
    n->deferred = 1;
    return;
  }
  if (n->have_client || n->s->quit) {
    uv_tcp_t *extra = malloc(sizeof *extra);
    if (!extra)
      return;
    uv_tcp_init(n->loop, extra);
    if (uv_accept(srv, (uv_stream_t *)extra) == 0)
      LOG_WARN("refusing a second connection: a client is already being served");
    uv_close((uv_handle_t *)extra, (uv_close_cb)free);
    return;
  }
  accept_client(n);
}

static void on_events_due(uv_timer_t *h)
{
  struct net *n = h->data;
  agent_server_flush_events(n->s);
  flow(n);
  maybe_finish(n);
  if (n->have_client && !n->closing_client)
    arm_event_flush(n); /* the in-process recorder's ring is drained as long as it runs */
}

static void arm_event_flush(struct net *n)
{
  if (agent_server_events_waiting(n->s) && !uv_is_active((uv_handle_t *)&n->events))
    uv_timer_start(&n->events, on_events_due, EVENT_FLUSH_MS, 0);
}

static void on_sigchld(uv_poll_t *h, int status, int events)
{
  struct net *n = h->data;
  struct signalfd_siginfo si[8];
  (void)status;
  (void)events;
  /* SIGCHLD does not queue: one read takes what is pending; the handler reaps every waiting child. */
  while (read(n->sigchld_fd, si, sizeof si) < 0 && errno == EINTR)
    ;
  agent_server_child_event(n->s);
  arm_event_flush(n);
  flow(n); /* a stop lets the packets that waited for it go on, which frees input room */
  maybe_finish(n);
}

/* SIGTERM/SIGINT: end cleanly, so an attached program is detached with its breakpoints removed
 * (if the agent just died, the kernel would detach it with traps still in its code). */
static void on_terminate(uv_signal_t *h, int signum)
{
  struct net *n = h->data;
  LOG_INFO("signal %d: shutting down", signum);
  n->s->quit = 1;
  if (n->have_client)
    close_client(n);
  maybe_finish(n);
}

static int is_loopback(const char *host)
{
  return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

int agent_net_run(struct agent_server *s, const struct agent_net_opts *o)
{
  struct net *n = calloc(1, sizeof *n);
  if (!n)
    return -ENOMEM;
  int rc = 0;
  n->sigchld_fd = -1;
  n->s = s;
  n->o = o;
  n->wreq.data = n;
  rs_buf_init(&n->out, OUT_CAP);
  /* Reserved whole once: pages are only touched (and resident) as far as the backlog ever reaches. */
  if (rs_buf_reserve(&n->out, OUT_CAP)) {
    free(n);
    return -ENOMEM;
  }
  n->loop = uv_default_loop();
  if (agent_tls_wanted(&o->tls)) {
    rc = agent_tls_server_new(&o->tls, &n->tls);
    if (rc)
      goto out;
    /* A server certificate alone proves the agent to the client, not the client to the agent: as
     * open as no TLS at all (with a PSK too, a client can simply pick a certificate suite). */
    if (o->tls.cert && !o->tls.ca && !o->tls.no_client_auth && !is_loopback(o->host))
      LOG_WARN("*** listening on %s with TLS but without client authentication: anyone who can connect "
               "controls the traced program (add --tls-ca, or --tls-no-client-auth if this is meant) ***",
               o->host);
  } else if (!is_loopback(o->host)) {
    LOG_WARN("*** listening on %s without TLS: anyone who can connect controls the traced program "
             "(use --tls-cert/--tls-key/--tls-ca or --tls-psk-file) ***", o->host);
  }
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_storage sa;
  const char *host = !strcmp(o->host, "localhost") ? "127.0.0.1" : o->host;
  if (uv_ip4_addr(host, o->port, (struct sockaddr_in *)&sa) &&
      uv_ip6_addr(host, o->port, (struct sockaddr_in6 *)&sa)) {
    LOG_ERR("cannot parse listen address %s", o->host);
    rc = RS_E_BAD_ARG;
    goto out;
  }
  uv_tcp_init(n->loop, &n->listener);
  n->listener.data = n;
  int e = uv_tcp_bind(&n->listener, (const struct sockaddr *)&sa, 0);
  if (!e)
    e = uv_listen((uv_stream_t *)&n->listener, 128, on_connection);
  if (e) {
    LOG_ERR("cannot listen on %s:%u: %s", o->host, (unsigned)o->port, uv_strerror(e));
    uv_close((uv_handle_t *)&n->listener, on_closed_noop);
    uv_run(n->loop, UV_RUN_DEFAULT);
    rc = -EADDRINUSE;
    goto out;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&n->listener, (struct sockaddr *)&bound, &blen);
  unsigned port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                     : ((struct sockaddr_in *)&bound)->sin_port);
  fprintf(stderr, "Listening on port %u\n", port);
  if (o->port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", o->port_file);
    FILE *f = fopen(tmp, "w");
    if (f) {
      fprintf(f, "%u\n", port);
      fclose(f);
      rename(tmp, o->port_file);
    }
  }
  /* Blocked, SIGCHLD waits in the signalfd (launched programs get an empty mask back before exec). */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  n->sigchld_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (n->sigchld_fd < 0 || uv_poll_init(n->loop, &n->sigchld, n->sigchld_fd) != 0) {
    LOG_ERR("cannot watch SIGCHLD: %s", strerror(errno));
    rc = -errno;
    goto out;
  }
  n->sigchld.data = n;
  uv_poll_start(&n->sigchld, UV_READABLE, on_sigchld);
  uv_timer_init(n->loop, &n->idle);
  n->idle.data = n;
  uv_timer_init(n->loop, &n->events);
  n->events.data = n;
  uv_timer_init(n->loop, &n->linger);
  n->linger.data = n;
  uv_signal_init(n->loop, &n->sigterm);
  uv_signal_init(n->loop, &n->sigint);
  n->sigterm.data = n->sigint.data = n;
  uv_signal_start(&n->sigterm, on_terminate, SIGTERM);
  uv_signal_start(&n->sigint, on_terminate, SIGINT);
  /* A program may already have exited before anyone connected. */
  agent_server_child_event(s);
  uv_run(n->loop, UV_RUN_DEFAULT);
out:
  if (n->tls)
    agent_tls_server_destroy(n->tls);
  rs_buf_free(&n->out);
  uv_loop_close(n->loop);
  if (n->sigchld_fd >= 0)
    close(n->sigchld_fd);
  free(n);
  return rc;
}
