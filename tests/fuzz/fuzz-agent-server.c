/* Fuzzes the agent's RSP server: the input is what a client sends, fed to agent_server_feed() in pieces,
 * with a fake process behind it (fake-inferior.c) so every packet family runs without ptrace or fork. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-inferior.h"
#include "fuzz-util.h"
#include "log.h"
#include "rsp-codec.h"
#include "server.h"

static struct agent_server server; /* large (fixed thread and breakpoint tables): not on the stack */
static uint64_t out_sum;
static int echo; /* RSPROF_FUZZ_ECHO=1: show the replies on stdout, for checking what a seed reaches */

/* Output goes nowhere, but every byte is read so ASan checks the whole range the server handed over. */
static void discard(void *ctx, const void *data, size_t len)
{
  (void)ctx;
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++)
    out_sum += p[i];
  if (echo)
    fprintf(stdout, "%.*s\n", (int)len, p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  /* Every message is formatted, so the log lines that quote packets are fuzzed too; scripts/fuzz
   * discards the target's stderr (-close_fd_mask=2). */
  rs_log_threshold = RS_LOG_TRACE;
  echo = getenv("RSPROF_FUZZ_ECHO") != NULL;
  const char *tmp = fuzz_scratch_dir("agent");
  if (fake_setup(tmp)) {
    fprintf(stderr, "fuzz-agent-server: cannot prepare %s\n", tmp);
    abort();
  }
  return 0;
}

/* Input: one byte of settings (1: --multi, 2: start with a launched program, 4: no default program,
 * 8: correct the checksums), then client bytes. Each '\n' ends a piece: the piece is fed, then the
 * server is told a child event may have happened (the fake process reports a resume's stop at the
 * second such call, so a 0x03 right after a resume finds the program running). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  uint8_t *copy = malloc(size);
  if (!copy)
    abort();
  memcpy(copy, data + 1, size - 1);
  size--;
  if (flags & 8)
    fuzz_fix_checksums(copy, size);
  data = copy;

  static char *prog[] = {"fake-program", "--flag", "arg", NULL};
  fake_reset();
  if (agent_server_init(&server, flags & 4 ? NULL : prog))
    abort();
  server.multi_mode = flags & 1; /* --multi: extended mode, clients start programs */
  fake_sandbox(1);
  agent_server_connect(&server, discard, NULL);
  if (flags & 2) { /* begin with a launched program, as the agent's command line does */
    struct rs_buf vrun;
    rs_buf_init(&vrun, 64);
    rsp_encode_packet(&vrun, "vRun;", 5);
    agent_server_feed(&server, vrun.data, vrun.len);
    rs_buf_free(&vrun);
  }
  size_t pos = 0;
  while (pos < size && !server.done) {
    const uint8_t *nl = memchr(data + pos, '\n', size - pos);
    size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
    agent_server_feed(&server, data + pos, n);
    agent_server_child_event(&server);
    pos += n + (nl != NULL);
  }
  agent_server_disconnect(&server);
  agent_server_free(&server);
  fake_sandbox(0);
  free(copy);
  return 0;
}
