/* Helpers for the session tests: start an RSP server on a fixture, probe ptrace, read /proc maps and
 * look things up in local ELF files as an independent reference. */
#ifndef RSPROF_TEST_SESSION_UTIL_H
#define RSPROF_TEST_SESSION_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct rspc;

struct test_server {
  pid_t pid;      /* the server process */
  uint16_t port;
  int out_fd;     /* its merged stdout/stderr, after the listening line */
};

/* Skips the test (exit 77 with a reason) when this machine does not allow ptrace. */
void test_require_ptrace(void);
/* Starts the server command from $RSPROF_SESSION_SERVER (default "gdbserver --once 127.0.0.1:0") on
 * prog with args (NULL-terminated) and waits for its "Listening on port N" line. Fails the test on error. */
void test_server_start(struct test_server *s, const char *prog, const char *const *args);
/* The same with an explicit command (split at spaces), e.g. a TLS relay in front of the server. */
void test_server_start_cmd(struct test_server *s, const char *cmd, const char *prog, const char *const *args);
/* The server command in use. */
const char *test_server_command(void);
/* Kills the server (and, if target_pid > 0, the traced program) and reaps it. */
void test_server_stop(struct test_server *s, int64_t target_pid);
/* Connects a client with short timeouts. Fails the test on error. */
struct rspc *test_connect(const struct test_server *s);

/* Symbol value, section address/offset/size, and the lowest PT_LOAD vaddr, from a local ELF file. */
int test_elf_symbol(const char *path, const char *name, uint64_t *value);
int test_elf_section(const char *path, const char *name, uint64_t *addr, uint64_t *offset, uint64_t *size);
uint64_t test_elf_min_load_vaddr(const char *path);
/* Start of the lowest mapping of the file (compared by device and inode) in /proc/PID/maps, or 0. */
uint64_t test_maps_base(int64_t pid, const char *path);
/* Reads a whole file into a malloc'ed buffer. */
void *test_read_file(const char *path, size_t *len);
/* A fresh temporary directory (mkdtemp); removed by test_rm_rf. */
char *test_tmpdir(void);
void test_rm_rf(const char *dir);

#endif
