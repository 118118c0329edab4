/* The fake connection behind the collector session fuzzer: transport.h over an in-memory byte string
 * (linked instead of transport.c, so no socket or event loop is involved), and a wrapped open() that keeps
 * the collector's file access inside the scratch folder. */
#include "fake-transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "transport.h"

struct transport {
  int open;
};

static const uint8_t *serve_data;
static size_t serve_len, serve_pos;
static unsigned serve_rng;
static struct transport the_transport;
static const char *confine_root;
static uint64_t written_sum;
static int echo = -1; /* RSPROF_FUZZ_ECHO=1: show both directions on stdout, for checking a seed */

void fake_transport_serve(const uint8_t *stream, size_t len, unsigned seed)
{
  serve_data = stream;
  serve_len = len;
  serve_pos = 0;
  serve_rng = seed;
}

int transport_connect(const struct transport_options *o, struct transport **out)
{
  (void)o;
  the_transport.open = 1;
  *out = &the_transport;
  return 0;
}

int transport_write(struct transport *t, const void *data, size_t len)
{
  if (!t->open)
    return RS_E_DISCONNECTED;
  /* Read every byte, so ASan checks the whole range the client hands over. */
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++)
    written_sum += p[i];
  if (echo < 0)
    echo = getenv("RSPROF_FUZZ_ECHO") != NULL;
  if (echo && !(len == 1 && p[0] == '+'))
    printf("-> %.*s\n", (int)len, (const char *)p);
  return 0;
}

int transport_read(struct transport *t, unsigned timeout_ms, void *buf, size_t max, size_t *got)
{
  (void)timeout_ms;
  *got = 0;
  if (!t->open || serve_pos >= serve_len)
    return RS_E_DISCONNECTED;
  size_t n = serve_len - serve_pos;
  if (serve_rng) {
    serve_rng = serve_rng * 1103515245u + 12345u;
    size_t piece = 1 + (serve_rng >> 16) % 300;
    if (piece < n)
      n = piece;
  }
  if (n > max)
    n = max;
  memcpy(buf, serve_data + serve_pos, n);
  if (echo > 0)
    printf("<- %.*s\n", (int)n, (const char *)buf);
  serve_pos += n;
  *got = n;
  return 0;
}

int transport_flush(struct transport *t, unsigned timeout_ms)
{
  (void)timeout_ms;
  return t->open ? 0 : RS_E_DISCONNECTED;
}

int transport_is_tls(const struct transport *t)
{
  (void)t;
  return 0;
}

/* No signal can interrupt the fake, and it has no connection phase to end. */
void transport_set_cancel(volatile sig_atomic_t *flag, unsigned grace_ms)
{
  (void)flag;
  (void)grace_ms;
}

void transport_connected(struct transport *t)
{
  (void)t;
}

void transport_close(struct transport *t)
{
  if (t)
    t->open = 0;
}

void fake_transport_confine(const char *root) { confine_root = root; }

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

int __wrap_open(const char *path, int flags, ...)
{
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (confine_root) {
    size_t rl = strlen(confine_root);
    if (strncmp(path, confine_root, rl) || path[rl] != '/' || strstr(path, "/..")) {
      errno = ENOENT;
      return -1;
    }
    flags |= O_NONBLOCK | O_NOCTTY; /* never wait on a FIFO someone left there */
  }
  return __real_open(path, flags, mode);
}
