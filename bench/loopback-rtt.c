/* Measures one TCP loopback round trip between two processes (1-byte ping-pong, TCP_NODELAY), the unit of
 * cost of every RSP exchange between collector and agent on this machine.
 * Usage: loopback-rtt [--same-cpu] [ROUNDS]; prints "rtt_us=X" (the median of 5 batches). With --same-cpu
 * both processes are pinned to the first CPU they may use, which shows what cross-CPU wake-ups cost. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCHES 5

static void die(const char *what)
{
  perror(what);
  exit(1);
}

static void nodelay(int fd)
{
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
    die("setsockopt");
}

static void pin_to_first_cpu(void)
{
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set))
    die("sched_getaffinity");
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
    if (CPU_ISSET(cpu, &set)) {
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      if (sched_setaffinity(0, sizeof set, &set))
        die("sched_setaffinity");
      return;
    }
}

/* The child echoes every byte until the connection closes. */
static void echo(const struct sockaddr_in *addr)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)addr, sizeof *addr))
    die("connect");
  nodelay(fd);
  char c;
  while (read(fd, &c, 1) == 1)
    if (write(fd, &c, 1) != 1)
      break;
  _exit(0);
}

static double now_us(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
  int same_cpu = argc > 1 && !strcmp(argv[1], "--same-cpu");
  long rounds = argc > 1 + same_cpu ? atol(argv[1 + same_cpu]) : 20000;
  if (rounds < 1) {
    fprintf(stderr, "usage: loopback-rtt [--same-cpu] [ROUNDS]\n");
    return 2;
  }
  if (same_cpu)
    pin_to_first_cpu(); /* the child inherits the mask */
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof addr;
  if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) || getsockname(ls, (struct sockaddr *)&addr, &alen) ||
      listen(ls, 1))
    die("listen");
  pid_t child = fork();
  if (child < 0)
    die("fork");
  if (child == 0)
    echo(&addr);
  int fd = accept(ls, NULL, NULL);
  if (fd < 0)
    die("accept");
  nodelay(fd);
  double per_batch[BATCHES];
  long per = rounds / BATCHES > 0 ? rounds / BATCHES : 1;
  for (int b = 0; b < BATCHES; b++) {
    double t0 = now_us();
    char c = 'x';
    for (long i = 0; i < per; i++)
      if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
        die("ping-pong");
    per_batch[b] = (now_us() - t0) / (double)per;
  }
  close(fd);
  waitpid(child, NULL, 0);
  qsort(per_batch, BATCHES, sizeof *per_batch, cmp_double);
  printf("rtt_us=%.1f\n", per_batch[BATCHES / 2]);
  return 0;
}
