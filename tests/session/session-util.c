/* Helpers for the session tests: server processes, ptrace probe, /proc maps and ELF look-ups. */
#include "session-util.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "rsp-client.h"
#include "test.h"

/* Servers and directories still alive when a failed assertion exits the test: cleaned up at exit, so a
 * failing test leaves no processes or files behind. */
#define MAX_CLEANUP 16
static pid_t live_servers[MAX_CLEANUP];
static char *live_dirs[MAX_CLEANUP];
static int cleanup_registered;

static void cleanup_at_exit(void)
{
  for (int i = 0; i < MAX_CLEANUP; i++) {
    if (live_servers[i] > 0) {
      kill(-live_servers[i], SIGKILL);
      waitpid(live_servers[i], NULL, 0);
    }
    if (live_dirs[i]) {
      char *d = live_dirs[i];
      live_dirs[i] = NULL;
      char cmd[4200];
      snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
      if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d);
      free(d);
    }
  }
}

static void track(pid_t pid, const char *dir)
{
  if (!cleanup_registered) {
    atexit(cleanup_at_exit);
    cleanup_registered = 1;
  }
  for (int i = 0; i < MAX_CLEANUP; i++) {
    if (pid && !live_servers[i]) {
      live_servers[i] = pid;
      return;
    }
    if (dir && !live_dirs[i]) {
      live_dirs[i] = strdup(dir); /* callers may free theirs once the directory is handed on */
      return;
    }
  }
}

static void untrack(pid_t pid, const char *dir)
{
  for (int i = 0; i < MAX_CLEANUP; i++) {
    if (pid && live_servers[i] == pid)
      live_servers[i] = 0;
    if (dir && live_dirs[i] && strcmp(live_dirs[i], dir) == 0) {
      free(live_dirs[i]);
      live_dirs[i] = NULL;
    }
  }
}

void test_require_ptrace(void)
{
  pid_t pid = fork();
  if (pid == 0) {
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
      _exit(1);
    raise(SIGSTOP);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  int ok = WIFSTOPPED(st);
  if (ok) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  if (!ok)
    TEST_SKIP("ptrace is not permitted here (PTRACE_TRACEME failed; check kernel.yama.ptrace_scope or the "
              "container's seccomp profile)");
  if (access("/usr/bin/gdbserver", X_OK) != 0 && !getenv("RSPROF_SESSION_SERVER"))
    TEST_SKIP("gdbserver is not installed (Debian package gdbserver) and RSPROF_SESSION_SERVER is not set");
}

static uint16_t find_port(const char *line)
{
  const char *p = strstr(line, "port ");
  if (p)
    return (uint16_t)atoi(p + 5);
  if (strstr(line, "isten")) { /* "listening on 127.0.0.1:N" */
    p = strrchr(line, ':');
    if (p)
      return (uint16_t)atoi(p + 1);
  }
  return 0;
}

const char *test_server_command(void)
{
  const char *cmd = getenv("RSPROF_SESSION_SERVER");
  return cmd && *cmd ? cmd : "gdbserver --once 127.0.0.1:0";
}

void test_server_start(struct test_server *s, const char *prog, const char *const *args)
{
  test_server_start_cmd(s, test_server_command(), prog, args);
}

void test_server_start_cmd(struct test_server *s, const char *cmd, const char *prog, const char *const *args)
{
  char *copy = strdup(cmd);
  char *argv[64];
  int argc = 0;
  for (char *tok = strtok(copy, " "); tok && argc < 40; tok = strtok(NULL, " "))
    argv[argc++] = tok;
  argv[argc++] = (char *)prog;
  for (int i = 0; args && args[i] && argc < 62; i++)
    argv[argc++] = (char *)args[i];
  argv[argc] = NULL;
  int fds[2];
  if (pipe(fds) != 0)
    TEST_FAIL("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    setpgid(0, 0);
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  free(copy);
  track(pid, NULL);
  s->pid = pid;
  s->out_fd = fds[0];
  s->port = 0;
  char buf[4096];
  size_t len = 0, scanned = 0;
  while (!s->port) {
    struct pollfd pfd = {fds[0], POLLIN, 0};
    if (poll(&pfd, 1, 20000) <= 0)
      TEST_FAIL("the server did not say which port it listens on; output so far: %.*s", (int)len, buf);
    ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
    if (n <= 0)
      TEST_FAIL("the server exited before listening; output: %.*s", (int)len, buf);
    len += (size_t)n;
    buf[len] = 0;
    char *nl;
    while ((nl = memchr(buf + scanned, '\n', len - scanned)) != NULL && !s->port) {
      *nl = 0;
      s->port = find_port(buf + scanned);
      *nl = '\n';
      scanned = (size_t)(nl + 1 - buf);
    }
    if (len == sizeof buf - 1)
      TEST_FAIL("the server printed too much before listening: %s", buf);
  }
}

void test_server_stop(struct test_server *s, int64_t target_pid)
{
  if (target_pid > 0)
    kill((pid_t)target_pid, SIGKILL);
  if (s->pid > 0) {
    kill(-s->pid, SIGKILL);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    untrack(s->pid, NULL);
    s->pid = 0;
  }
  if (s->out_fd >= 0)
    close(s->out_fd);
  s->out_fd = -1;
}

struct rspc *test_connect(const struct test_server *s)
{
  struct rspc_options o = {.host = "127.0.0.1", .port = s->port, .connect_timeout_ms = 5000,
                           .reply_timeout_ms = 20000};
  struct rspc *c = NULL;
  int rc = rspc_connect(&o, &c);
  if (rc)
    TEST_FAIL("rspc_connect to port %u: %s", s->port, rs_strerror(rc));
  return c;
}

static Elf *open_elf(const char *path, int *fd)
{
  elf_version(EV_CURRENT);
  *fd = open(path, O_RDONLY);
  if (*fd < 0)
    return NULL;
  return elf_begin(*fd, ELF_C_READ, NULL);
}

int test_elf_symbol(const char *path, const char *name, uint64_t *value)
{
  int fd;
  Elf *e = open_elf(path, &fd);
  int found = 0;
  Elf_Scn *scn = NULL;
  while (e && !found && (scn = elf_nextscn(e, scn)) != NULL) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM))
      continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
      GElf_Sym sym;
      gelf_getsym(d, (int)i, &sym);
      const char *s = elf_strptr(e, sh.sh_link, sym.st_name);
      if (s && !strcmp(s, name) && sym.st_shndx != SHN_UNDEF) {
        *value = sym.st_value;
        found = 1;
        break;
      }
    }
  }
  if (e)
    elf_end(e);
  if (fd >= 0)
    close(fd);
  return found ? 0 : -1;
}

int test_elf_section(const char *path, const char *name, uint64_t *addr, uint64_t *offset, uint64_t *size)
{
  int fd;
  Elf *e = open_elf(path, &fd);
  size_t shstrndx;
  int found = 0;
  if (e && elf_getshdrstrndx(e, &shstrndx) == 0) {
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
      GElf_Shdr sh;
      gelf_getshdr(scn, &sh);
      const char *s = elf_strptr(e, shstrndx, sh.sh_name);
      if (s && !strcmp(s, name)) {
        *addr = sh.sh_addr;
        *offset = sh.sh_offset;
        *size = sh.sh_size;
        found = 1;
        break;
      }
    }
  }
  if (e)
    elf_end(e);
  if (fd >= 0)
    close(fd);
  return found ? 0 : -1;
}

uint64_t test_elf_min_load_vaddr(const char *path)
{
  int fd;
  Elf *e = open_elf(path, &fd);
  uint64_t min = UINT64_MAX;
  size_t n = 0;
  if (e && elf_getphdrnum(e, &n) == 0)
    for (size_t i = 0; i < n; i++) {
      GElf_Phdr ph;
      if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && ph.p_vaddr < min)
        min = ph.p_vaddr & ~(uint64_t)0xfff;
    }
  if (e)
    elf_end(e);
  if (fd >= 0)
    close(fd);
  return min;
}

uint64_t test_maps_base(int64_t pid, const char *path)
{
  struct stat want;
  if (stat(path, &want) != 0)
    return 0;
  char mp[64];
  snprintf(mp, sizeof mp, "/proc/%lld/maps", (long long)pid);
  FILE *f = fopen(mp, "r");
  if (!f)
    return 0;
  char line[1024];
  uint64_t best = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long long lo, hi, off, ino;
    unsigned maj, min;
    char perms[8];
    if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi, perms, &off, &maj, &min, &ino) != 7)
      continue;
    if (ino != (unsigned long long)want.st_ino || makedev(maj, min) != want.st_dev)
      continue;
    if (!best || lo < best)
      best = lo;
  }
  fclose(f);
  return best;
}

void *test_read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    TEST_FAIL("cannot open %s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *p = malloc((size_t)n + 1);
  if (fread(p, 1, (size_t)n, f) != (size_t)n)
    TEST_FAIL("short read of %s", path);
  fclose(f);
  *len = (size_t)n;
  return p;
}

char *test_tmpdir(void)
{
  const char *base = getenv("TMPDIR");
  char *t = malloc(4096);
  snprintf(t, 4096, "%s/rsprof-session-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(t))
    TEST_FAIL("mkdtemp: %s", strerror(errno));
  track(0, t);
  return t;
}

void test_rm_rf(const char *dir)
{
  untrack(0, dir);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
}
