/* Session tests against a live RSP server (stock gdbserver unless RSPROF_SESSION_SERVER names another):
 * negotiation, registers, memory, libraries and biases against /proc, dlopen, binary lookup and failures. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "arch.h"
#include "binfind.h"
#include "buf.h"
#include "elf-buildid.h"
#include "errors.h"
#include "log.h"
#include "rsp-client.h"
#include "session-util.h"
#include "target.h"
#include "test.h"

static int server_is_gdbserver(void)
{
  const char *s = getenv("RSPROF_SESSION_SERVER");
  return !s || !*s || strstr(s, "gdbserver") != NULL;
}

/* Connects to a fresh server on prog and loads the target model. */
static void start(struct test_server *s, struct rspc **c, struct target **t, struct binfind **bf, const char *prog,
                  const char *const *args)
{
  test_require_ptrace();
  test_server_start(s, prog, args);
  *c = test_connect(s);
  struct binfind_options bo = {0};
  char *cache = test_tmpdir();
  bo.cache_dir = cache;
  ASSERT_EQ(binfind_new(*c, &bo, bf), 0);
  free(cache);
  int rc = target_load(*c, *bf, t);
  if (rc)
    TEST_FAIL("target_load: %s", rs_strerror(rc));
}

static void finish(struct test_server *s, struct rspc *c, struct target *t, struct binfind *bf)
{
  int64_t pid = t ? t->pid : 0;
  if (c) {
    rspc_kill(c);
    rspc_close(c);
  }
  if (bf) {
    test_rm_rf(binfind_cache_dir(bf));
    binfind_free(bf);
  }
  target_free(t);
  test_server_stop(s, pid);
}

/* Runs to the first hit of a function of the executable; returns the stop. */
static void run_to(struct rspc *c, struct target *t, const char *exe, const char *fn, struct rspc_stop *st)
{
  uint64_t sym;
  ASSERT_EQ(test_elf_symbol(exe, fn, &sym), 0);
  uint64_t addr = t->exec_bias + sym;
  ASSERT_EQ(rspc_insert_breakpoint(c, addr, (int)t->arch->bkpt_len), 0);
  ASSERT_EQ(rspc_continue(c, 0), 0);
  ASSERT_EQ(rspc_wait_stop(c, 20000, st), 0);
  ASSERT_EQ(st->kind, RSPC_STOP_SIGNAL);
  ASSERT_EQ(st->signal, SIGTRAP);
  uint64_t pc = 0;
  ASSERT_TRUE(rspc_stop_reg(st, t->arch->pc_reg, &pc));
  ASSERT_U64_EQ(pc, addr);
  ASSERT_EQ(rspc_remove_breakpoint(c, addr, (int)t->arch->bkpt_len), 0);
}

TEST(connect_negotiates_features)
{
  struct test_server s;
  test_require_ptrace();
  test_server_start(&s, FIX_SPIN, NULL);
  struct rspc *c = test_connect(&s);
  const struct rspc_features *f = rspc_features(c);
  const char *q = rspc_supported_reply(c);
  printf("server offers: %s\nvCont %d, vFile %d, binary upload %d\n", q, f->vcont, f->vfile, f->binary_upload);
  /* Each flag must agree with the raw reply... */
  ASSERT_EQ(f->no_ack, strstr(q, "QStartNoAckMode+") != NULL);
  ASSERT_EQ(f->multiprocess, strstr(q, "multiprocess+") != NULL);
  ASSERT_EQ(f->swbreak, strstr(q, "swbreak+") != NULL);
  ASSERT_EQ(f->xfer_features, strstr(q, "qXfer:features:read+") != NULL);
  ASSERT_EQ(f->xfer_auxv, strstr(q, "qXfer:auxv:read+") != NULL);
  ASSERT_EQ(f->xfer_libraries_svr4, strstr(q, "qXfer:libraries-svr4:read+") != NULL);
  ASSERT_EQ(f->xfer_exec_file, strstr(q, "qXfer:exec-file:read+") != NULL);
  ASSERT_EQ(f->xfer_threads, strstr(q, "qXfer:threads:read+") != NULL);
  ASSERT_EQ(f->binary_upload, strstr(q, "binary-upload+") != NULL);
  const char *ps = strstr(q, "PacketSize=");
  ASSERT_TRUE(ps != NULL);
  ASSERT_EQ(f->packet_size, strtoul(ps + 11, NULL, 16));
  /* ...and stock gdbserver 13 offers all of these (but not 'x', and vFile only by probing). */
  if (server_is_gdbserver()) {
    ASSERT_TRUE(f->no_ack && f->multiprocess && f->swbreak && f->xfer_features && f->xfer_auxv &&
                f->xfer_libraries_svr4 && f->xfer_exec_file && f->xfer_threads);
    ASSERT_EQ(f->vcont, 1);
    ASSERT_EQ(f->vfile, 1);
    ASSERT_EQ(f->rsprof_ext, 0);
  }
  /* The session still works after the switch to no-ack mode. */
  struct rspc_stop st;
  ASSERT_EQ(rspc_query_stop(c, &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_SIGNAL);
  ASSERT_TRUE(st.tid > 0);
  rspc_kill(c);
  rspc_close(c);
  test_server_stop(&s, st.pid > 0 ? st.pid : st.tid);
}

TEST(target_load_reads_arch_exec_and_bias)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN, NULL);
  ASSERT_TRUE(t->arch == arch_native());
  char real[PATH_MAX];
  ASSERT_TRUE(realpath(FIX_SPIN, real) != NULL);
  ASSERT_STR_EQ(t->exec_path, real);
  ASSERT_TRUE(t->pid > 0);
  /* The bias is where the kernel mapped the file's first page, minus that page's link-time address. */
  ASSERT_U64_EQ(t->exec_bias, test_maps_base(t->pid, FIX_SPIN) - test_elf_min_load_vaddr(FIX_SPIN));
  ASSERT_TRUE(t->exec_bias != 0); /* PIE */
  ASSERT_TRUE(t->r_brk != 0);     /* from the dynamic linker's _dl_debug_state before it has run */
  ASSERT_TRUE(t->ntids == 1 && t->tids[0] > 0);
  finish(&s, c, t, bf);
}

TEST(non_pie_bias_is_zero)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN_NOPIE, NULL);
  ASSERT_U64_EQ(t->exec_bias, 0);
  ASSERT_U64_EQ(test_maps_base(t->pid, FIX_SPIN_NOPIE), test_elf_min_load_vaddr(FIX_SPIN_NOPIE));
  struct rspc_stop st;
  run_to(c, t, FIX_SPIN_NOPIE, "session_mark", &st);
  finish(&s, c, t, bf);
}

TEST(registers_match_stop_reply)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN, NULL);
  struct rspc_stop st;
  run_to(c, t, FIX_SPIN, "session_mark", &st);
  ASSERT_TRUE(st.nregs >= 2);
  ASSERT_EQ(rspc_select_thread(c, 'g', st.pid, st.tid), 0);
  uint8_t regs[4096];
  size_t len = 0;
  ASSERT_EQ(rspc_read_registers(c, regs, sizeof regs, &len), 0);
  ASSERT_TRUE(len >= arch_regs_size(t->arch) / 2);
  /* Every expedited register equals the same register in the 'g' reply. */
  for (int i = 0; i < st.nregs; i++) {
    long off = arch_reg_offset(t->arch, st.regs[i].regno);
    ASSERT_TRUE(off >= 0 && (size_t)off + 8 <= len);
    uint64_t v = 0;
    memcpy(&v, regs + off, t->arch->regs[st.regs[i].regno].bits / 8 >= 8 ? 8 : 4);
    ASSERT_U64_EQ(v, st.regs[i].value);
  }
  uint64_t pc;
  ASSERT_TRUE(rspc_stop_reg(&st, t->arch->pc_reg, &pc));
  /* The first argument of session_mark(0). */
  uint64_t arg0 = 0;
  memcpy(&arg0, regs + arch_reg_offset(t->arch, t->arch->arg_regs[0]), 8);
  ASSERT_U64_EQ(arg0, 0);
  /* The next hit passes 1 (step off the breakpoint's address first, as gdb does). */
  uint64_t sym;
  ASSERT_EQ(test_elf_symbol(FIX_SPIN, "session_mark", &sym), 0);
  struct rspc_stop step;
  ASSERT_EQ(rspc_step(c, st.pid, st.tid, 20000, &step), 0);
  ASSERT_EQ(step.signal, SIGTRAP);
  uint64_t pc2 = 0;
  ASSERT_TRUE(rspc_stop_reg(&step, t->arch->pc_reg, &pc2));
  ASSERT_TRUE(pc2 != pc);
  ASSERT_EQ(rspc_insert_breakpoint(c, t->exec_bias + sym, (int)t->arch->bkpt_len), 0);
  ASSERT_EQ(rspc_continue(c, 0), 0);
  ASSERT_EQ(rspc_wait_stop(c, 20000, &st), 0);
  ASSERT_EQ(rspc_read_registers(c, regs, sizeof regs, &len), 0);
  memcpy(&arg0, regs + arch_reg_offset(t->arch, t->arch->arg_regs[0]), 8);
  ASSERT_U64_EQ(arg0, 1);
  finish(&s, c, t, bf);
}

/* Compares target memory with the bytes of a section in the file mapped at bias. */
static void compare_section(struct rspc *c, const char *file, uint64_t bias, const char *section, size_t max)
{
  uint64_t addr, off, size;
  ASSERT_EQ(test_elf_section(file, section, &addr, &off, &size), 0);
  if (size > max)
    size = max;
  size_t flen;
  uint8_t *img = test_read_file(file, &flen);
  ASSERT_TRUE(off + size <= flen);
  uint8_t *mem = malloc(size);
  size_t got = 0;
  ASSERT_EQ(rspc_read_memory(c, bias + addr, mem, size, &got), 0);
  ASSERT_EQ(got, size);
  ASSERT_MEM_EQ(mem, img + off, size);
  free(mem);
  free(img);
}

TEST(memory_matches_elf_files)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN, NULL);
  compare_section(c, FIX_SPIN, t->exec_bias, ".text", 1 << 20);
  compare_section(c, FIX_SPIN, t->exec_bias, ".rodata", 1 << 20);
  struct rspc_stop st;
  run_to(c, t, FIX_SPIN, "session_mark", &st);
  ASSERT_EQ(target_refresh_libraries(c, t), 0);
  /* 256 KiB of libc's code: many packets, pipelined. */
  int seen = 0;
  for (size_t i = 0; i < t->nlibs; i++)
    if (strstr(t->libs[i].name, "libc.so")) {
      compare_section(c, t->libs[i].name, t->libs[i].l_addr, ".text", 256 << 10);
      seen = 1;
    }
  ASSERT_TRUE(seen);
  /* A read that runs into unmapped memory reports how much was good. */
  uint8_t buf[64];
  size_t got = 99;
  ASSERT_EQ(rspc_read_memory(c, 0, buf, sizeof buf, &got), -EFAULT);
  ASSERT_EQ(got, 0);
  finish(&s, c, t, bf);
}

TEST(pipelined_requests_answer_in_order)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN, NULL);
  uint64_t sym;
  ASSERT_EQ(test_elf_symbol(FIX_SPIN, "session_pattern", &sym), 0);
  char pkt[64];
  for (int i = 0; i < 12; i++) {
    int n = snprintf(pkt, sizeof pkt, "m%llx,1", (unsigned long long)(t->exec_bias + sym + (unsigned)i));
    ASSERT_EQ(rspc_send(c, pkt, (size_t)n), 0);
  }
  static const char *const want[] = {"01", "02", "03", "04", "05", "06", "07", "08", "de", "ad", "be", "ef"};
  for (int i = 0; i < 12; i++) {
    const char *r;
    size_t n;
    ASSERT_EQ(rspc_recv(c, 20000, &r, &n), 0);
    ASSERT_STR_EQ(r, want[i]);
  }
  finish(&s, c, t, bf);
}

static const struct target_lib *find_lib(const struct target *t, const char *needle)
{
  for (size_t i = 0; i < t->nlibs; i++)
    if (strstr(t->libs[i].name, needle))
      return &t->libs[i];
  return NULL;
}

static void check_lib_bias(const struct target *t, const struct target_lib *l)
{
  uint64_t base = test_maps_base(t->pid, l->name);
  ASSERT_TRUE(base != 0);
  ASSERT_U64_EQ(l->l_addr, base - test_elf_min_load_vaddr(l->name));
}

TEST(libraries_match_proc_maps)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN, NULL);
  struct rspc_stop st;
  run_to(c, t, FIX_SPIN, "session_mark", &st);
  ASSERT_EQ(target_refresh_libraries(c, t), 0);
  const struct target_lib *libc = find_lib(t, "libc.so.6");
  const struct target_lib *ld = find_lib(t, "ld-linux");
  ASSERT_TRUE(libc != NULL);
  ASSERT_TRUE(ld != NULL);
  check_lib_bias(t, libc);
  check_lib_bias(t, ld);
  ASSERT_U64_EQ(ld->l_addr, t->at_base);
  ASSERT_TRUE(t->r_debug != 0);
  /* Walking link_map in memory (for servers without the svr4 list) gives the server's list. */
  struct target_lib *walked;
  size_t nw;
  ASSERT_EQ(target_walk_link_map(c, t, &walked, &nw), 0);
  ASSERT_EQ(nw, t->nlibs);
  for (size_t i = 0; i < nw; i++) {
    ASSERT_STR_EQ(walked[i].name, t->libs[i].name);
    ASSERT_U64_EQ(walked[i].l_addr, t->libs[i].l_addr);
    ASSERT_U64_EQ(walked[i].l_ld, t->libs[i].l_ld);
    ASSERT_U64_EQ(walked[i].lm, t->libs[i].lm);
  }
  target_libs_free(walked, nw);
  /* Once the linker has run, r_brk comes from r_debug and must equal the symbol-based guess. */
  uint64_t sym;
  ASSERT_EQ(test_elf_symbol(ld->name, "_dl_debug_state", &sym), 0);
  ASSERT_U64_EQ(t->r_brk, ld->l_addr + sym);
  finish(&s, c, t, bf);
}

TEST(dlopen_library_appears_after_r_brk)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  const char *args[] = {FIX_LIB, NULL};
  start(&s, &c, &t, &bf, FIX_DL, args);
  struct rspc_stop st;
  run_to(c, t, FIX_DL, "session_before_dlopen", &st);
  ASSERT_EQ(target_refresh_libraries(c, t), 0);
  ASSERT_TRUE(find_lib(t, "libc.so.6") != NULL);
  ASSERT_TRUE(find_lib(t, "session-fix-lib") == NULL);
  /* Stop at each change the dynamic linker announces, as the collector does. */
  ASSERT_TRUE(t->r_brk != 0);
  int kind = (int)t->arch->bkpt_len;
  ASSERT_EQ(rspc_insert_breakpoint(c, t->r_brk, kind), 0);
  int found = 0;
  for (int i = 0; i < 10 && !found; i++) {
    ASSERT_EQ(rspc_continue(c, 0), 0);
    ASSERT_EQ(rspc_wait_stop(c, 20000, &st), 0);
    ASSERT_EQ(st.kind, RSPC_STOP_SIGNAL);
    uint64_t pc = 0;
    ASSERT_TRUE(rspc_stop_reg(&st, t->arch->pc_reg, &pc));
    ASSERT_U64_EQ(pc, t->r_brk);
    ASSERT_EQ(target_refresh_libraries(c, t), 0);
    found = find_lib(t, "session-fix-lib") != NULL;
  }
  ASSERT_TRUE(found);
  ASSERT_EQ(rspc_remove_breakpoint(c, t->r_brk, kind), 0);
  run_to(c, t, FIX_DL, "session_after_dlopen", &st);
  ASSERT_EQ(target_refresh_libraries(c, t), 0);
  const struct target_lib *lib = find_lib(t, "session-fix-lib");
  ASSERT_TRUE(lib != NULL);
  check_lib_bias(t, lib);
  /* The program finishes normally: its exit status comes through. */
  ASSERT_EQ(rspc_continue(c, 0), 0);
  ASSERT_EQ(rspc_wait_stop(c, 20000, &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_EXITED);
  ASSERT_EQ(st.exit_code, 0);
  finish(&s, c, t, bf);
}

TEST(exit_status_and_threads)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN, NULL);
  int64_t *tids = NULL;
  size_t n = 0;
  ASSERT_EQ(rspc_list_threads(c, NULL, &tids, &n), 0);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(tids[0], t->pid);
  free(tids);
  struct rspc_stop st;
  ASSERT_EQ(rspc_continue(c, 0), 0);
  ASSERT_EQ(rspc_wait_stop(c, 20000, &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_EXITED);
  ASSERT_EQ(st.exit_code, 7);
  rspc_close(c);
  c = NULL;
  finish(&s, c, t, bf);
}

TEST(threads_match_proc_task)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_THREADS, NULL);
  struct rspc_stop st;
  run_to(c, t, FIX_THREADS, "session_all_running", &st);
  ASSERT_EQ(target_refresh_threads(c, t), 0);
  ASSERT_EQ(t->ntids, 4);
  /* The same ids as the kernel lists for the process. */
  for (size_t i = 0; i < t->ntids; i++) {
    char path[96];
    snprintf(path, sizeof path, "/proc/%lld/task/%lld", (long long)t->pid, (long long)t->tids[i]);
    ASSERT_TRUE(access(path, F_OK) == 0);
  }
  /* Each thread's registers can be read after selecting it, and they differ (own stacks). */
  uint64_t sps[4];
  for (size_t i = 0; i < 4; i++) {
    uint8_t regs[4096];
    size_t len;
    ASSERT_EQ(rspc_select_thread(c, 'g', t->pid, t->tids[i]), 0);
    ASSERT_EQ(rspc_read_registers(c, regs, sizeof regs, &len), 0);
    memcpy(&sps[i], regs + arch_reg_offset(t->arch, t->arch->sp_reg), 8);
    for (size_t j = 0; j < i; j++)
      ASSERT_TRUE(sps[i] != sps[j]);
  }
  finish(&s, c, t, bf);
}

TEST(build_id_matches_readelf)
{
  uint8_t id[ELF_BUILD_ID_MAX];
  size_t len = 0;
  ASSERT_EQ(elf_build_id_file(FIX_SPIN, id, sizeof id, &len), 0);
  char hex[2 * ELF_BUILD_ID_MAX + 1];
  elf_build_id_hex(id, len, hex);
  char cmd[1024], line[256] = "";
  snprintf(cmd, sizeof cmd, "readelf -n '%s' | sed -n 's/.*Build ID: *//p'", FIX_SPIN);
  FILE *p = popen(cmd, "r");
  ASSERT_TRUE(p != NULL);
  if (!fgets(line, sizeof line, p))
    line[0] = 0;
  pclose(p);
  line[strcspn(line, "\n")] = 0;
  if (!line[0])
    TEST_SKIP("readelf (binutils) is not available to cross-check");
  ASSERT_STR_EQ(hex, line);
  size_t flen, mlen = 0;
  uint8_t *img = test_read_file(FIX_SPIN, &flen);
  uint8_t mid[ELF_BUILD_ID_MAX];
  ASSERT_EQ(elf_build_id_mem(img, flen, mid, sizeof mid, &mlen), 0);
  ASSERT_EQ(mlen, len);
  ASSERT_MEM_EQ(mid, id, len);
  ASSERT_EQ(elf_build_id_mem(img, 16, mid, sizeof mid, &mlen), RS_E_ELF);
  img[0] = 0;
  ASSERT_EQ(elf_build_id_mem(img, flen, mid, sizeof mid, &mlen), RS_E_ELF);
  free(img);
  uint8_t other[ELF_BUILD_ID_MAX];
  size_t olen;
  ASSERT_EQ(elf_build_id_file(FIX_OTHER, other, sizeof other, &olen), 0);
  ASSERT_TRUE(olen != len || memcmp(other, id, len) != 0);
}

/* Copies a file, creating the parent directories. */
static void copy_to(const char *from, const char *to)
{
  char cmd[16384];
  snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\" && cp '%s' '%s'", to, from, to);
  ASSERT_EQ(system(cmd), 0);
}

TEST(binfind_fetches_then_uses_cache)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *unused;
  start(&s, &c, &t, &unused, FIX_SPIN, NULL);
  char *sysroot = test_tmpdir(), *cache = test_tmpdir();
  /* An empty sysroot: the host's own copy is not considered, so the file must come over vFile. */
  struct binfind_options o = {.sysroot = sysroot, .cache_dir = cache};
  struct binfind *bf;
  ASSERT_EQ(binfind_new(c, &o, &bf), 0);
  const char *local, *how;
  ASSERT_EQ(binfind_locate(bf, t->exec_path, &local, &how), 0);
  ASSERT_STR_EQ(how, "fetched");
  ASSERT_TRUE(strncmp(local, cache, strlen(cache)) == 0);
  size_t a, b;
  uint8_t *orig = test_read_file(FIX_SPIN, &a), *copy = test_read_file(local, &b);
  ASSERT_EQ(a, b);
  ASSERT_MEM_EQ(copy, orig, a);
  free(copy);
  /* The same answer from memory the second time. */
  const char *local2, *how2;
  ASSERT_EQ(binfind_locate(bf, t->exec_path, &local2, &how2), 0);
  ASSERT_TRUE(local2 == local);
  /* The dynamic linker too (larger, many packets). */
  ASSERT_TRUE(t->interp != NULL);
  ASSERT_EQ(binfind_locate(bf, t->interp, &local2, &how2), 0);
  ASSERT_STR_EQ(how2, "fetched");
  uint8_t *ld_orig = test_read_file(t->interp, &a), *ld_copy = test_read_file(local2, &b);
  ASSERT_EQ(a, b);
  ASSERT_MEM_EQ(ld_copy, ld_orig, a);
  free(ld_orig);
  free(ld_copy);
  binfind_free(bf);
  /* A new session finds it in the cache. */
  ASSERT_EQ(binfind_new(c, &o, &bf), 0);
  ASSERT_EQ(binfind_locate(bf, t->exec_path, &local, &how), 0);
  ASSERT_STR_EQ(how, "cache");
  copy = test_read_file(local, &b);
  ASSERT_MEM_EQ(copy, orig, a < b ? a : b);
  free(copy);
  free(orig);
  binfind_free(bf);
  /* Without a sysroot the host's identical file is used as is. */
  struct binfind_options h = {.cache_dir = cache};
  ASSERT_EQ(binfind_new(c, &h, &bf), 0);
  ASSERT_EQ(binfind_locate(bf, t->exec_path, &local, &how), 0);
  ASSERT_STR_EQ(how, "host");
  ASSERT_STR_EQ(local, t->exec_path);
  binfind_free(bf);
  test_rm_rf(sysroot);
  test_rm_rf(cache);
  free(sysroot);
  free(cache);
  finish(&s, c, t, unused);
}

/* Runs binfind_locate with stderr captured into log (at most max bytes). */
static int locate_capturing(struct binfind *bf, const char *path, const char **local, const char **how, char *log,
                            size_t max)
{
  fflush(stderr);
  char tmpl[] = "/tmp/rsprof-session-log-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_TRUE(fd >= 0);
  int saved = dup(2);
  dup2(fd, 2);
  int rc = binfind_locate(bf, path, local, how);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  ssize_t n = pread(fd, log, max - 1, 0);
  log[n > 0 ? n : 0] = 0;
  close(fd);
  unlink(tmpl);
  fputs(log, stderr);
  return rc;
}

TEST(binfind_refuses_other_build_id)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *unused;
  start(&s, &c, &t, &unused, FIX_SPIN, NULL);
  char *sysroot = test_tmpdir(), *cache = test_tmpdir();
  char wrong[PATH_MAX + 64];
  snprintf(wrong, sizeof wrong, "%s%s", sysroot, t->exec_path);
  copy_to(FIX_OTHER, wrong);
  uint8_t rid[ELF_BUILD_ID_MAX], lid[ELF_BUILD_ID_MAX];
  size_t rlen, llen;
  ASSERT_EQ(elf_build_id_file(FIX_SPIN, rid, sizeof rid, &rlen), 0);
  ASSERT_EQ(elf_build_id_file(FIX_OTHER, lid, sizeof lid, &llen), 0);
  char rhex[2 * ELF_BUILD_ID_MAX + 1], lhex[2 * ELF_BUILD_ID_MAX + 1];
  elf_build_id_hex(rid, rlen, rhex);
  elf_build_id_hex(lid, llen, lhex);

  struct binfind_options o = {.sysroot = sysroot, .cache_dir = cache, .no_fetch = 1};
  struct binfind *bf;
  ASSERT_EQ(binfind_new(c, &o, &bf), 0);
  const char *local = NULL, *how = NULL;
  char log[8192];
  enum rs_log_level saved = rs_log_threshold;
  rs_log_threshold = RS_LOG_WARN;
  ASSERT_EQ(locate_capturing(bf, t->exec_path, &local, &how, log, sizeof log), RS_E_BUILD_ID_MISMATCH);
  ASSERT_TRUE(local == NULL);
  /* The message names the file and both build-ids. */
  ASSERT_TRUE(strstr(log, wrong) != NULL);
  ASSERT_TRUE(strstr(log, rhex) != NULL);
  ASSERT_TRUE(strstr(log, lhex) != NULL);
  binfind_free(bf);
  /* With downloads allowed, the wrong copy is still skipped and the right file is fetched. */
  o.no_fetch = 0;
  ASSERT_EQ(binfind_new(c, &o, &bf), 0);
  ASSERT_EQ(locate_capturing(bf, t->exec_path, &local, &how, log, sizeof log), 0);
  ASSERT_STR_EQ(how, "fetched");
  uint8_t fid[ELF_BUILD_ID_MAX];
  size_t flen;
  ASSERT_EQ(elf_build_id_file(local, fid, sizeof fid, &flen), 0);
  ASSERT_EQ(flen, rlen);
  ASSERT_MEM_EQ(fid, rid, rlen);
  binfind_free(bf);
  rs_log_threshold = saved;
  test_rm_rf(sysroot);
  test_rm_rf(cache);
  free(sysroot);
  free(cache);
  finish(&s, c, t, unused);
}

/* ---- failures: a scripted server that misbehaves in one chosen way ---- */

enum fake_mode { FAKE_SILENT, FAKE_CLOSE, FAKE_CLOSE_AFTER_NEGOTIATION, FAKE_ACK_ERRORS, FAKE_SMALL_PACKETS };

static int fake_send(int fd, const char *reply, int corrupt)
{
  char out[512];
  unsigned sum = 0;
  for (const char *p = reply; *p; p++)
    sum += (unsigned char)*p;
  int m = snprintf(out, sizeof out, "$%s#%02x", reply, (sum + (corrupt ? 1 : 0)) & 0xff);
  return write(fd, out, (size_t)m) == m ? 0 : -1;
}

/* A server that stays in ack mode and damages the first exchange of "m1000,4" both ways: it rejects the
 * client's first copy with '-', then sends a reply with a bad checksum and only answers properly once the
 * client has asked for it again with '-'. */
static void fake_serve_acks(int fd)
{
  char pkt[1024];
  size_t plen = 0;
  int in_packet = 0, csum_left = 0, m_seen = 0, waiting_nack = 0;
  for (;;) {
    char ch;
    if (read(fd, &ch, 1) != 1)
      return;
    if (!in_packet && !csum_left) {
      if (ch == '-' && waiting_nack) {
        waiting_nack = 0;
        if (fake_send(fd, "01020304", 0))
          return;
      } else if (ch == '$') {
        in_packet = 1;
        plen = 0;
      }
      continue;
    }
    if (in_packet) {
      if (ch == '#') {
        in_packet = 0;
        csum_left = 2;
      } else if (plen < sizeof pkt - 1) {
        pkt[plen++] = ch;
      }
      continue;
    }
    if (--csum_left)
      continue;
    pkt[plen] = 0;
    if (!strcmp(pkt, "m1000,4") && m_seen++ == 0) {
      if (write(fd, "-", 1) != 1) /* "your packet arrived damaged" */
        return;
      continue;
    }
    if (write(fd, "+", 1) != 1)
      return;
    const char *reply = "";
    if (!strncmp(pkt, "qSupported", 10))
      reply = "PacketSize=400;swbreak+";
    else if (!strcmp(pkt, "m1000,4")) {
      waiting_nack = 1;
      if (fake_send(fd, "01020304", 1))
        return;
      continue;
    } else if (!strcmp(pkt, "?"))
      reply = "S05";
    if (fake_send(fd, reply, 0))
      return;
  }
}

#define FAKE_PACKET_SIZE 0x100

/* A server that advertises PacketSize=100 (256 bytes) and, like our agent in no-ack mode, drops longer packets
 * without a word, so a client that sends one waits in vain. It answers vFile with "no such file", memory
 * writes with OK and memory reads with zeros. */
static void fake_serve_small(int fd)
{
  char pkt[FAKE_PACKET_SIZE + 1];
  size_t plen = 0;
  int in_packet = 0, csum_left = 0, too_long = 0, ack = 1;
  for (;;) {
    char ch;
    if (read(fd, &ch, 1) != 1)
      return;
    if (!in_packet && !csum_left) {
      if (ch == '$') {
        in_packet = 1;
        plen = 0;
        too_long = 0;
      }
      continue;
    }
    if (in_packet) {
      if (ch == '#') {
        in_packet = 0;
        csum_left = 2;
      } else if (plen < FAKE_PACKET_SIZE) {
        pkt[plen++] = ch;
      } else {
        too_long = 1;
      }
      continue;
    }
    if (--csum_left || too_long)
      continue;
    pkt[plen] = 0;
    if (ack && write(fd, "+", 1) != 1)
      return;
    char reply[2 * FAKE_PACKET_SIZE];
    unsigned long long addr;
    size_t len;
    snprintf(reply, sizeof reply, "%s", "");
    if (!strncmp(pkt, "qSupported", 10))
      snprintf(reply, sizeof reply, "PacketSize=%x;QStartNoAckMode+", FAKE_PACKET_SIZE);
    else if (!strcmp(pkt, "QStartNoAckMode"))
      snprintf(reply, sizeof reply, "OK");
    else if (!strncmp(pkt, "vFile:close", 11))
      snprintf(reply, sizeof reply, "F-1,9");
    else if (!strncmp(pkt, "vFile:", 6))
      snprintf(reply, sizeof reply, "F-1,2");
    else if (pkt[0] == 'M')
      snprintf(reply, sizeof reply, "OK");
    else if (sscanf(pkt, "m%llx,%zx", &addr, &len) == 2 && 2 * len < sizeof reply) {
      memset(reply, '0', 2 * len);
      reply[2 * len] = 0;
    }
    if (fake_send(fd, reply, 0))
      return;
    if (!strcmp(pkt, "QStartNoAckMode"))
      ack = 0;
  }
}

/* Answers the negotiation like a minimal stub; returns when told to stop. */
static void fake_serve(int fd, enum fake_mode mode)
{
  if (mode == FAKE_CLOSE)
    return;
  if (mode == FAKE_ACK_ERRORS) {
    fake_serve_acks(fd);
    return;
  }
  if (mode == FAKE_SMALL_PACKETS) {
    fake_serve_small(fd);
    return;
  }
  char buf[4096];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0)
      return;
    len += (size_t)n;
    buf[len] = 0;
    char *start, *hash;
    while ((start = strchr(buf, '$')) != NULL && (hash = strchr(start, '#')) != NULL && hash[1] && hash[2]) {
      *hash = 0;
      const char *payload = start + 1, *reply;
      if (mode == FAKE_SILENT)
        reply = NULL;
      else if (!strncmp(payload, "qSupported", 10))
        reply = "PacketSize=400;QStartNoAckMode+";
      else if (!strcmp(payload, "QStartNoAckMode"))
        reply = "OK";
      else if (!strcmp(payload, "vCont?") || !strncmp(payload, "vFile", 5))
        reply = "";
      else
        return; /* anything after the negotiation: hang up */
      if (reply) {
        char out[512];
        unsigned sum = 0;
        for (const char *p = reply; *p; p++)
          sum += (unsigned char)*p;
        int m = snprintf(out, sizeof out, "+$%s#%02x", reply, sum & 0xff);
        if (write(fd, out, (size_t)m) != m)
          return;
      }
      size_t used = (size_t)(hash + 3 - buf);
      memmove(buf, buf + used, len - used + 1);
      len -= used;
    }
  }
}

/* Starts the scripted server in a child process; returns its pid and port. */
static pid_t fake_start(enum fake_mode mode, uint16_t *port)
{
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT_EQ(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
  ASSERT_EQ(listen(ls, 4), 0);
  socklen_t sl = sizeof sa;
  ASSERT_EQ(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
  *port = ntohs(sa.sin_port);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = accept(ls, NULL, NULL);
    fake_serve(fd, mode);
    close(fd);
    _exit(0);
  }
  close(ls);
  return pid;
}

static void fake_stop(pid_t pid)
{
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

TEST(silent_server_times_out)
{
  uint16_t port;
  pid_t pid = fake_start(FAKE_SILENT, &port);
  struct rspc_options o = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000, .reply_timeout_ms = 300};
  struct rspc *c = NULL;
  ASSERT_EQ(rspc_connect(&o, &c), RS_E_TIMEOUT);
  ASSERT_TRUE(c == NULL);
  fake_stop(pid);
}

TEST(server_closing_at_once_is_disconnected)
{
  uint16_t port;
  pid_t pid = fake_start(FAKE_CLOSE, &port);
  struct rspc_options o = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000, .reply_timeout_ms = 20000};
  struct rspc *c = NULL;
  ASSERT_EQ(rspc_connect(&o, &c), RS_E_DISCONNECTED);
  fake_stop(pid);
}

TEST(server_closing_mid_session_is_disconnected)
{
  uint16_t port;
  pid_t pid = fake_start(FAKE_CLOSE_AFTER_NEGOTIATION, &port);
  struct rspc_options o = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000, .reply_timeout_ms = 20000};
  struct rspc *c = NULL;
  ASSERT_EQ(rspc_connect(&o, &c), 0);
  ASSERT_EQ(rspc_features(c)->no_ack, 1);
  ASSERT_EQ(rspc_features(c)->packet_size, 0x400);
  ASSERT_EQ(rspc_features(c)->vfile, 0);
  uint8_t buf[4096];
  size_t got = 1;
  ASSERT_EQ(rspc_read_memory(c, 0x1000, buf, sizeof buf, &got), RS_E_DISCONNECTED);
  struct rspc_stop st;
  ASSERT_EQ(rspc_query_stop(c, &st), RS_E_DISCONNECTED);
  ASSERT_EQ(rspc_wait_stop(c, 20000, &st), RS_E_DISCONNECTED);
  rspc_close(c);
  fake_stop(pid);
}

TEST(ack_mode_retransmits_damaged_packets)
{
  uint16_t port;
  pid_t pid = fake_start(FAKE_ACK_ERRORS, &port);
  struct rspc_options o = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000, .reply_timeout_ms = 5000};
  struct rspc *c = NULL;
  ASSERT_EQ(rspc_connect(&o, &c), 0);
  ASSERT_EQ(rspc_features(c)->no_ack, 0);
  ASSERT_EQ(rspc_features(c)->swbreak, 1);
  uint8_t buf[4];
  size_t got = 0;
  ASSERT_EQ(rspc_read_memory(c, 0x1000, buf, 4, &got), 0);
  ASSERT_EQ(got, 4);
  ASSERT_EQ(buf[0], 1);
  ASSERT_EQ(buf[3], 4);
  struct rspc_stop st;
  ASSERT_EQ(rspc_query_stop(c, &st), 0); /* the stream is still in step */
  ASSERT_EQ(st.signal, 5);
  rspc_close(c);
  fake_stop(pid);
}

/* Nothing the client sends exceeds the server's PacketSize: a path that cannot fit is refused at once with an
 * error (instead of a request the server drops, and a wait for its reply), and memory reads and writes are
 * split into pieces that fit. */
TEST(requests_fit_the_servers_packet_size)
{
  uint16_t port;
  pid_t pid = fake_start(FAKE_SMALL_PACKETS, &port);
  struct rspc_options o = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000, .reply_timeout_ms = 3000};
  struct rspc *c = NULL;
  ASSERT_EQ(rspc_connect(&o, &c), 0);
  ASSERT_EQ(rspc_features(c)->packet_size, FAKE_PACKET_SIZE);
  ASSERT_EQ(rspc_features(c)->vfile, 1);
  int fd = -1;
  ASSERT_EQ(rspc_vfile_open(c, "/lib/short.so", &fd), -ENOENT); /* small requests still go through */
  size_t n = 100000;
  char *path = malloc(n + 1);
  ASSERT_TRUE(path != NULL);
  memset(path, 'a', n);
  path[0] = '/';
  path[n] = 0;
  ASSERT_EQ(rspc_vfile_open(c, path, &fd), RS_E_TOO_LONG);
  char link[64];
  ASSERT_EQ(rspc_vfile_readlink(c, path, link, sizeof link), RS_E_TOO_LONG);
  free(path);
  /* A long path just under the limit still fits: 115 bytes make 230 hex digits plus "vFile:open:" and ",0,0". */
  char edge[116];
  memset(edge, 'b', sizeof edge - 1);
  edge[sizeof edge - 1] = 0;
  ASSERT_EQ(rspc_vfile_open(c, edge, &fd), -ENOENT);
  uint8_t buf[4096];
  memset(buf, 0x5a, sizeof buf);
  ASSERT_EQ(rspc_write_memory(c, 0x10000, buf, sizeof buf), 0);
  size_t got = 0;
  ASSERT_EQ(rspc_read_memory(c, 0x10000, buf, sizeof buf, &got), 0);
  ASSERT_EQ(got, sizeof buf);
  ASSERT_EQ(buf[0], 0);
  ASSERT_EQ(buf[sizeof buf - 1], 0);
  const char *r;
  size_t rl;
  ASSERT_EQ(rspc_request(c, "QStartNoAckMode", 15, &r, &rl), 0); /* the stream is still in step */
  ASSERT_EQ(rl, 2);
  rspc_close(c);
  fake_stop(pid);
}

TEST(refused_connection_after_retries)
{
  uint16_t port;
  pid_t pid = fake_start(FAKE_CLOSE, &port);
  fake_stop(pid); /* the listening socket died with the child: nothing listens on port now */
  struct rspc_options o = {.host = "127.0.0.1", .port = port, .connect_timeout_ms = 5000, .retries = 2,
                           .retry_delay_ms = 10, .reply_timeout_ms = 1000};
  struct rspc *c = NULL;
  ASSERT_EQ(rspc_connect(&o, &c), -ECONNREFUSED);
  ASSERT_TRUE(c == NULL);
}

TEST(interrupt_and_server_death_while_running)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  const char *args[] = {"forever", NULL};
  start(&s, &c, &t, &bf, FIX_SPIN, args);
  struct rspc_stop st;
  ASSERT_EQ(rspc_continue(c, 0), 0);
  ASSERT_EQ(rspc_wait_stop(c, 200, &st), RS_E_TIMEOUT); /* still running: nothing to report */
  ASSERT_EQ(rspc_interrupt(c), 0);
  ASSERT_EQ(rspc_wait_stop(c, 20000, &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_SIGNAL);
  ASSERT_EQ(st.signal, SIGINT);
  ASSERT_EQ(st.tid, t->pid);
  ASSERT_EQ(rspc_continue(c, 0), 0);
  kill(s.pid, SIGKILL);
  ASSERT_EQ(rspc_wait_stop(c, 20000, &st), RS_E_DISCONNECTED);
  const char *r;
  size_t n;
  ASSERT_EQ(rspc_request(c, "?", 1, &r, &n), RS_E_DISCONNECTED);
  rspc_close(c);
  c = NULL;
  finish(&s, c, t, bf);
}

/* ---- TLS: a relay terminates TLS in front of the server ---- */

struct tls_env {
  char *dir;
  char ca[PATH_MAX], other_ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], psk[PATH_MAX];
};

static void tls_setup(struct tls_env *e)
{
  test_require_ptrace();
  if (system("python3 -c 'import ssl' >/dev/null 2>&1") != 0 || system("openssl version >/dev/null 2>&1") != 0)
    TEST_SKIP("python3 with ssl and the openssl tool are needed to stand up a TLS server");
  e->dir = test_tmpdir();
  char cmd[PATH_MAX + 128];
  snprintf(cmd, sizeof cmd, "sh '%s/tls-certs.sh' '%s'", SESSION_SRC_DIR, e->dir);
  ASSERT_EQ(system(cmd), 0);
  snprintf(e->ca, sizeof e->ca, "%s/ca.pem", e->dir);
  snprintf(e->other_ca, sizeof e->other_ca, "%s/other-ca.pem", e->dir);
  snprintf(e->cert, sizeof e->cert, "%s/client.pem", e->dir);
  snprintf(e->key, sizeof e->key, "%s/client.key", e->dir);
  snprintf(e->psk, sizeof e->psk, "%s/psk.hex", e->dir);
}

/* Starts relay(options) -> server -> FIX_SPIN. */
static void tls_server(struct test_server *s, const struct tls_env *e, const char *relay_opts)
{
  char cmd[8 * PATH_MAX];
  snprintf(cmd, sizeof cmd, "python3 %s/tls-relay.py %s -- %s", SESSION_SRC_DIR, relay_opts, test_server_command());
  (void)e;
  test_server_start_cmd(s, cmd, FIX_SPIN, NULL);
}

static int tls_connect(const struct test_server *s, const struct rspc_options *base, struct rspc **c)
{
  struct rspc_options o = *base;
  o.host = "localhost";
  o.port = s->port;
  o.connect_timeout_ms = 20000;
  o.reply_timeout_ms = 20000;
  return rspc_connect(&o, c);
}

/* A working TLS session: negotiation, the target model and 256 KiB of memory through the tunnel. */
static void tls_session_works(struct rspc *c)
{
  struct target *t;
  ASSERT_EQ(target_load(c, NULL, &t), 0);
  ASSERT_TRUE(rspc_features(c)->no_ack);
  compare_section(c, FIX_SPIN, t->exec_bias, ".text", 1 << 20);
  struct rspc_stop st;
  run_to(c, t, FIX_SPIN, "session_mark", &st);
  ASSERT_EQ(target_refresh_libraries(c, t), 0);
  const struct target_lib *libc = find_lib(t, "libc.so.6");
  ASSERT_TRUE(libc != NULL);
  compare_section(c, libc->name, libc->l_addr, ".text", 256 << 10);
  rspc_kill(c);
  target_free(t);
}

TEST(tls_server_certificate_verified)
{
  struct tls_env e;
  tls_setup(&e);
  char opts[3 * PATH_MAX];
  snprintf(opts, sizeof opts, "--cert %s/server.pem --key %s/server.key", e.dir, e.dir);
  struct test_server s;
  tls_server(&s, &e, opts);
  struct rspc_options o = {.tls_ca = e.ca};
  struct rspc *c = NULL;
  ASSERT_EQ(tls_connect(&s, &o, &c), 0);
  tls_session_works(c);
  rspc_close(c);
  test_server_stop(&s, 0);
  /* A server certificate from another CA is refused. */
  tls_server(&s, &e, opts);
  o.tls_ca = e.other_ca;
  c = NULL;
  ASSERT_EQ(tls_connect(&s, &o, &c), RS_E_TLS);
  ASSERT_TRUE(c == NULL);
  test_server_stop(&s, 0);
  test_rm_rf(e.dir);
  free(e.dir);
}

TEST(tls_client_certificate)
{
  struct tls_env e;
  tls_setup(&e);
  char opts[4 * PATH_MAX];
  snprintf(opts, sizeof opts, "--cert %s/server.pem --key %s/server.key --client-ca %s", e.dir, e.dir, e.ca);
  struct test_server s;
  /* Without a client certificate the server ends the handshake. */
  tls_server(&s, &e, opts);
  struct rspc_options o = {.tls_ca = e.ca};
  struct rspc *c = NULL;
  int rc = tls_connect(&s, &o, &c);
  ASSERT_TRUE(rc == RS_E_TLS || rc == RS_E_DISCONNECTED);
  ASSERT_TRUE(c == NULL);
  test_server_stop(&s, 0);
  /* With one it works. */
  tls_server(&s, &e, opts);
  o.tls_cert = e.cert;
  o.tls_key = e.key;
  ASSERT_EQ(tls_connect(&s, &o, &c), 0);
  tls_session_works(c);
  rspc_close(c);
  test_server_stop(&s, 0);
  test_rm_rf(e.dir);
  free(e.dir);
}

TEST(tls_pre_shared_key)
{
  struct tls_env e;
  tls_setup(&e);
  struct test_server s;
  const char *opts = "--psk-hex 00112233445566778899aabbccddeeff --psk-identity rsprof";
  tls_server(&s, &e, opts);
  struct rspc_options o = {.tls_psk_file = e.psk, .tls_psk_identity = "rsprof"};
  struct rspc *c = NULL;
  ASSERT_EQ(tls_connect(&s, &o, &c), 0);
  tls_session_works(c);
  rspc_close(c);
  test_server_stop(&s, 0);
  /* The wrong key fails the handshake. */
  tls_server(&s, &e, opts);
  FILE *f = fopen(e.psk, "w");
  fputs("ffeeddccbbaa99887766554433221100\n", f);
  fclose(f);
  c = NULL;
  int rc = tls_connect(&s, &o, &c);
  ASSERT_TRUE(rc == RS_E_TLS || rc == RS_E_DISCONNECTED);
  ASSERT_TRUE(c == NULL);
  test_server_stop(&s, 0);
  test_rm_rf(e.dir);
  free(e.dir);
}

TEST(tls_options_are_checked)
{
  struct rspc_options o = {.host = "127.0.0.1", .port = 9, .tls_cert = "/nonexistent.pem"};
  struct rspc *c = NULL;
  ASSERT_EQ(rspc_connect(&o, &c), RS_E_BAD_ARG); /* a certificate without its key */
  struct rspc_options p = {.host = "127.0.0.1", .port = 9, .tls_psk_file = "/nonexistent"};
  ASSERT_EQ(rspc_connect(&p, &c), RS_E_BAD_ARG); /* a PSK without an identity */
  struct rspc_options q = {.host = "127.0.0.1", .port = 9, .tls_ca = "/nonexistent/ca.pem"};
  ASSERT_EQ(rspc_connect(&q, &c), RS_E_TLS);
  ASSERT_TRUE(c == NULL);
}

/* ---- the board's files differ from the host's: a private mount namespace plays the board ---- */

TEST(binfind_host_copy_absent_or_different)
{
  test_require_ptrace();
  if (system("unshare -m true >/dev/null 2>&1") != 0)
    TEST_SKIP("cannot create a mount namespace here (unshare -m needs root or user namespaces)");
  char *dir = test_tmpdir(), *cache = test_tmpdir();
  const char *base = strrchr(FIX_SPIN, '/') + 1;
  char prog[PATH_MAX + 64], cmd[8 * PATH_MAX];
  snprintf(prog, sizeof prog, "%s/%s", dir, base);
  snprintf(cmd, sizeof cmd, "unshare -m sh %s/private-mount.sh %s %s %s", SESSION_SRC_DIR, dir, FIX_SPIN,
           test_server_command());
  struct test_server s;
  test_server_start_cmd(&s, cmd, prog, NULL);
  struct rspc *c = test_connect(&s);
  ASSERT_TRUE(rspc_features(c)->vfile);
  struct target *t;
  ASSERT_EQ(target_load(c, NULL, &t), 0);
  ASSERT_STR_EQ(t->exec_path, prog);
  ASSERT_TRUE(access(prog, F_OK) != 0); /* the host does not see the target's file */

  /* Absent on the host: fetched over vFile into the cache, identical to what the target runs. */
  struct binfind_options o = {.cache_dir = cache};
  struct binfind *bf;
  const char *local, *how;
  ASSERT_EQ(binfind_new(c, &o, &bf), 0);
  ASSERT_EQ(binfind_locate(bf, prog, &local, &how), 0);
  ASSERT_STR_EQ(how, "fetched");
  size_t a, b;
  uint8_t *orig = test_read_file(FIX_SPIN, &a), *copy = test_read_file(local, &b);
  ASSERT_EQ(a, b);
  ASSERT_MEM_EQ(copy, orig, a);
  free(orig);
  free(copy);
  binfind_free(bf);
  test_rm_rf(cache);

  /* A different program at the same path on the host: refused with both build-ids in the message. */
  copy_to(FIX_OTHER, prog);
  o.no_fetch = 1;
  ASSERT_EQ(binfind_new(c, &o, &bf), 0);
  char log[8192];
  enum rs_log_level saved = rs_log_threshold;
  rs_log_threshold = RS_LOG_WARN;
  ASSERT_EQ(locate_capturing(bf, prog, &local, &how, log, sizeof log), RS_E_BUILD_ID_MISMATCH);
  ASSERT_TRUE(strstr(log, prog) != NULL);
  ASSERT_TRUE(strstr(log, "build-id") != NULL);
  binfind_free(bf);
  o.no_fetch = 0;
  ASSERT_EQ(binfind_new(c, &o, &bf), 0);
  ASSERT_EQ(locate_capturing(bf, prog, &local, &how, log, sizeof log), 0);
  ASSERT_STR_EQ(how, "fetched");
  ASSERT_TRUE(strcmp(local, prog) != 0);
  binfind_free(bf);
  rs_log_threshold = saved;

  int64_t pid = t->pid;
  rspc_kill(c);
  rspc_close(c);
  target_free(t);
  test_server_stop(&s, pid);
  test_rm_rf(dir);
  test_rm_rf(cache);
  free(dir);
  free(cache);
}

/* End of the [stack] mapping in /proc/PID/maps. */
static uint64_t stack_end(int64_t pid)
{
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%lld/maps", (long long)pid);
  FILE *f = fopen(path, "r");
  uint64_t end = 0;
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "[stack]")) {
      unsigned long long lo, hi;
      if (sscanf(line, "%llx-%llx", &lo, &hi) == 2)
        end = hi;
    }
  if (f)
    fclose(f);
  return end;
}

TEST(capture_equals_separate_reads)
{
  struct test_server s;
  struct rspc *c;
  struct target *t;
  struct binfind *bf;
  start(&s, &c, &t, &bf, FIX_SPIN, NULL);
  struct rspc_stop st;
  run_to(c, t, FIX_SPIN, "session_mark", &st);
  uint64_t sp;
  ASSERT_TRUE(rspc_stop_reg(&st, t->arch->sp_reg, &sp));
  uint8_t regs[4096], regs2[4096], stack[8192], stack2[8192];
  size_t rl, rl2, got;
  ASSERT_EQ(rspc_capture(c, st.pid, st.tid, regs, sizeof regs, &rl, sp, stack, sizeof stack, &got), 0);
  ASSERT_EQ(rspc_read_registers(c, regs2, sizeof regs2, &rl2), 0);
  ASSERT_EQ(rl, rl2);
  ASSERT_MEM_EQ(regs, regs2, rl);
  uint64_t top = stack_end(t->pid);
  ASSERT_TRUE(top > sp);
  size_t want = top - sp < sizeof stack ? (size_t)(top - sp) : sizeof stack;
  ASSERT_EQ(got, want);
  ASSERT_EQ(rspc_read_memory(c, sp, stack2, want, NULL), 0);
  ASSERT_MEM_EQ(stack, stack2, want);
  /* A window that runs off the top of the stack stops exactly at the end of the mapping. */
  ASSERT_EQ(rspc_capture(c, st.pid, st.tid, regs, sizeof regs, &rl, top - 100, stack, sizeof stack, &got), 0);
  ASSERT_EQ(got, 100);
  finish(&s, c, t, bf);
}
