/* Fuzzes the collector's side of a session: the input is what the agent answers, and the collector runs
 * its usual requests against it (negotiation, target model with qXfer documents and link-map walks,
 * stop replies, registers and stack capture, memory, breakpoints, stepping, vFile reads and fetches,
 * build-id lookups through binfind), over a fake connection (fake-transport.c). */
#include <dirent.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binfind.h"
#include "buf.h"
#include "fake-transport.h"
#include "fuzz-util.h"
#include "log.h"
#include "rsp-client.h"
#include "rsp-codec.h"
#include "target.h"

static char scratch[512], sysroot[600], cache[600], fetched[600];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  /* Every message is formatted, so the log lines that quote replies are fuzzed too; scripts/fuzz
   * discards the target's stderr (-close_fd_mask=2), where they would only be noise. */
  rs_log_threshold = RS_LOG_TRACE;
  snprintf(scratch, sizeof scratch, "%s", fuzz_scratch_dir("session"));
  snprintf(sysroot, sizeof sysroot, "%s/sysroot", scratch);
  snprintf(cache, sizeof cache, "%s/cache", scratch);
  snprintf(fetched, sizeof fetched, "%s/fetched", scratch);
  mkdir(sysroot, 0755);
  return 0;
}

/* Empties the download cache, so one input's fetch never decides another's outcome. */
static void clear_dir(const char *path)
{
  DIR *d = opendir(path);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    if (e->d_type == DT_DIR) {
      clear_dir(sub);
      rmdir(sub);
    } else {
      unlink(sub);
    }
  }
  closedir(d);
}

/* The requests a tracing session makes, in a plausible order; each works with whatever came back. */
static void session(struct rspc *c)
{
  struct binfind_options bo = {.sysroot = sysroot, .cache_dir = cache};
  struct binfind *bf = NULL;
  if (binfind_new(c, &bo, &bf))
    abort();
  struct target *t = NULL;
  if (target_load(c, bf, &t) == 0) {
    target_refresh_threads(c, t);
    target_refresh_libraries(c, t);
    for (size_t i = 0; i < t->nlibs && i < 4; i++) {
      const char *local, *how;
      binfind_locate(bf, t->libs[i].name, &local, &how);
    }
    if (t->exec_path) {
      const char *local, *how;
      binfind_locate(bf, t->exec_path, &local, &how);
    }
  }
  struct rspc_stop st;
  int64_t pid = t ? t->pid : 0, tid = 0;
  uint64_t sp = 0x7ffd00008000;
  if (rspc_wait_stop(c, 1000, &st) == 0) {
    pid = st.pid ? st.pid : pid;
    tid = st.tid;
    rspc_stop_reg(&st, 7, &sp);
    const char *p = st.quiet, *end = st.quiet ? st.quiet + st.quiet_len : NULL;
    struct rspc_quiet_hit h;
    while (p && rspc_next_quiet_hit(&p, end, &h) == 1)
      ;
  }
  uint8_t regs[1024], stack[8192], mem[3000] = {0};
  size_t rl, sg, got;
  rspc_capture(c, pid, tid, regs, sizeof regs, &rl, sp, stack, sizeof stack, &sg);
  rspc_read_registers(c, regs, sizeof regs, &rl);
  rspc_read_memory(c, 0x400000, mem, sizeof mem, &got);
  rspc_write_memory(c, 0x400000, mem, 100);
  rspc_insert_breakpoint(c, 0x401000, 1);
  rspc_step_over(c, pid, tid, 0x401000, 1, 1000, &st);
  rspc_step(c, pid, tid, 1000, &st);
  rspc_continue(c, 5);
  rspc_wait_stop(c, 1000, &st);
  rspc_select_thread(c, 'g', pid, tid);
  int64_t *pids = NULL, *tids = NULL;
  size_t n;
  if (rspc_list_threads(c, &pids, &tids, &n) == 0) {
    free(pids);
    free(tids);
  }
  struct rs_buf doc;
  rs_buf_init(&doc, 1 << 20);
  rspc_qxfer_read(c, "threads", "", &doc);
  rs_buf_free(&doc);
  int fd;
  if (rspc_vfile_open(c, "/bin/true", &fd) == 0) {
    uint64_t size;
    rspc_vfile_size(c, fd, &size);
    rspc_vfile_pread(c, fd, 0, mem, sizeof mem, &got);
    rspc_vfile_close(c, fd);
  }
  char link[256];
  rspc_vfile_readlink(c, "/proc/1/exe", link, sizeof link);
  rspc_vfile_fetch(c, "/lib/libfake.so", fetched);
  uint8_t id[64];
  size_t idlen;
  binfind_remote_build_id(bf, "/lib/libother.so", id, sizeof id, &idlen);
  rspc_detach(c);
  rspc_kill(c);
  target_free(t);
  binfind_free(bf);
}

/* Input: one byte of settings, then the agent's side. Without setting 1 the rest is a list of replies
 * separated by '\n', each framed here (any byte but '\n' can appear, escapes are made as needed); with it
 * the rest is the raw byte stream (setting 2 then corrects its checksums). The other bits pick how
 * the stream is cut into reads. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  data++;
  size--;
  struct rs_buf stream;
  rs_buf_init(&stream, 4 * size + 64);
  if (flags & 1) {
    rs_buf_append(&stream, data, size);
    if (flags & 2)
      fuzz_fix_checksums(stream.data, stream.len);
  } else {
    for (size_t pos = 0; pos <= size;) {
      const uint8_t *nl = memchr(data + pos, '\n', size - pos);
      size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
      if (rsp_encode_packet(&stream, data + pos, n))
        abort();
      pos += n + 1;
    }
  }
  clear_dir(cache);
  unlink(fetched);
  fake_transport_confine(scratch);
  fake_transport_serve(stream.data ? stream.data : (const uint8_t *)"", stream.len, flags >> 2);
  struct rspc_options o = {.host = "fuzz", .port = 1, .reply_timeout_ms = 1000};
  struct rspc *c;
  if (rspc_connect(&o, &c) == 0) {
    session(c);
    rspc_close(c);
  }
  fake_transport_confine(NULL);
  rs_buf_free(&stream);
  return 0;
}
