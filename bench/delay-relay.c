/* A TCP relay that adds a fixed delay in each direction, to measure tracers over a slow link on a kernel
 * without netem. Each chunk read is stamped on arrival and written out no earlier than stamp + delay, in
 * order; reading never waits for the delay, so the relay adds latency but not a bandwidth cap.
 * Usage: delay-relay --listen HOST:PORT --target HOST:PORT [--delay-us N] [--port-file F] [--once] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct chunk {
  struct chunk *next;
  struct timespec due;
  size_t len; /* 0 marks end of stream */
  char data[];
};

/* One direction of one connection: a reader thread fills the queue, a writer thread drains it on time. */
struct pipe_dir {
  int from, to;
  long delay_us;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct chunk *head, *tail;
};

static void ts_add_us(struct timespec *t, long us)
{
  t->tv_nsec += (us % 1000000) * 1000;
  t->tv_sec += us / 1000000 + t->tv_nsec / 1000000000;
  t->tv_nsec %= 1000000000;
}

static void push(struct pipe_dir *p, struct chunk *c)
{
  pthread_mutex_lock(&p->mu);
  c->next = NULL;
  if (p->tail)
    p->tail->next = c;
  else
    p->head = c;
  p->tail = c;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void *reader(void *arg)
{
  struct pipe_dir *p = arg;
  char buf[65536];
  for (;;) {
    ssize_t n = read(p->from, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    struct chunk *c = malloc(sizeof *c + (n > 0 ? (size_t)n : 0));
    if (!c)
      abort();
    clock_gettime(CLOCK_MONOTONIC, &c->due);
    ts_add_us(&c->due, p->delay_us);
    c->len = n > 0 ? (size_t)n : 0;
    if (n > 0)
      memcpy(c->data, buf, (size_t)n);
    push(p, c);
    if (n <= 0)
      return NULL;
  }
}

static void *writer(void *arg)
{
  struct pipe_dir *p = arg;
  int broken = 0;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    while (!p->head)
      pthread_cond_wait(&p->cv, &p->mu);
    struct chunk *c = p->head;
    p->head = c->next;
    if (!p->head)
      p->tail = NULL;
    pthread_mutex_unlock(&p->mu);

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &c->due, NULL) == EINTR)
      ;
    size_t off = 0;
    while (!broken && off < c->len) {
      ssize_t w = write(p->to, c->data + off, c->len - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        broken = 1;
      else
        off += (size_t)w;
    }
    size_t len = c->len;
    free(c);
    if (len == 0) {
      shutdown(p->to, SHUT_WR);
      return NULL;
    }
    if (broken)
      shutdown(p->from, SHUT_RD); /* make the reader see the end too */
  }
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
  char host[256];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host)
    return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)atoi(colon + 1));
  return inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &a->sin_addr) == 1 ? 0 : -1;
}

static void nodelay(int fd)
{
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void relay(int client, const struct sockaddr_in *target, long delay_us)
{
  int server = socket(AF_INET, SOCK_STREAM, 0);
  if (server < 0 || connect(server, (const struct sockaddr *)target, sizeof *target) < 0) {
    perror("delay-relay: connect to target");
    close(client);
    if (server >= 0)
      close(server);
    return;
  }
  nodelay(client);
  nodelay(server);
  struct pipe_dir up = {client, server, delay_us, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL};
  struct pipe_dir down = {server, client, delay_us, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL};
  pthread_t t[4];
  pthread_create(&t[0], NULL, reader, &up);
  pthread_create(&t[1], NULL, writer, &up);
  pthread_create(&t[2], NULL, reader, &down);
  pthread_create(&t[3], NULL, writer, &down);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  close(client);
  close(server);
}

int main(int argc, char **argv)
{
  const char *listen_s = "127.0.0.1:0", *target_s = NULL, *port_file = NULL;
  long delay_us = 700;
  int once = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--listen") && i + 1 < argc)
      listen_s = argv[++i];
    else if (!strcmp(argv[i], "--target") && i + 1 < argc)
      target_s = argv[++i];
    else if (!strcmp(argv[i], "--delay-us") && i + 1 < argc)
      delay_us = atol(argv[++i]);
    else if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
      port_file = argv[++i];
    else if (!strcmp(argv[i], "--once"))
      once = 1;
    else {
      fprintf(stderr, "usage: delay-relay --listen HOST:PORT --target HOST:PORT [--delay-us N] "
                      "[--port-file F] [--once]\n");
      return 2;
    }
  }
  struct sockaddr_in la, ta;
  if (!target_s || parse_addr(listen_s, &la) < 0 || parse_addr(target_s, &ta) < 0 || delay_us < 0) {
    fprintf(stderr, "delay-relay: bad --listen/--target/--delay-us\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t sl = sizeof la;
  if (ls < 0 || bind(ls, (struct sockaddr *)&la, sizeof la) < 0 || listen(ls, 4) < 0 ||
      getsockname(ls, (struct sockaddr *)&la, &sl) < 0) {
    perror("delay-relay: listen");
    return 1;
  }
  if (port_file) {
    /* Write then rename, so a reader polling for the file never sees it half written. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", ntohs(la.sin_port)) < 0 || fclose(f) != 0 || rename(tmp, port_file) < 0) {
      perror("delay-relay: port file");
      return 1;
    }
  }
  fprintf(stderr, "delay-relay: listening on port %u, %ld us each way\n", ntohs(la.sin_port), delay_us);
  do {
    int c = accept(ls, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR)
        continue;
      perror("delay-relay: accept");
      return 1;
    }
    relay(c, &ta, delay_us);
  } while (!once);
  close(ls);
  return 0;
}
