/* In-process capture, the agent's side: the recorder's shared ring (a memfd the recorder opens through
 * /proc/AGENT/fd), the environment that preloads the recorder at a launch, its injection into an attached
 * process (a stopped thread calls dlopen, then the recorder's attach function, and gets its registers back),
 * and the drain that turns each recorded call into a complete call of the event stream. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "inf-tables.h"
#include "inferior.h"
#include "log.h"

void inf_rec_init(struct inf_recorder *r)
{
  memset(r, 0, sizeof *r);
  r->fd = -1;
}

/* Where the recorder finds the table arena: the agent's memfd, opened through /proc. */
static void set_arena_path(struct inf_recorder *r)
{
  int fd = inf_tables_memfd(NULL);
  if (fd >= 0)
    snprintf(r->arena_path, sizeof r->arena_path, "/proc/%d/fd/%d", (int)getpid(), fd);
  else
    r->arena_path[0] = 0;
}

int inf_rec_create_ring(struct inferior *inf)
{
  struct inf_recorder *r = &inf->rec;
  set_arena_path(r);
  if (r->map) { /* a fresh ring for a new process: nothing of the last one's may remain */
    memset(r->map, 0, r->map_len);
    rring_init(r->map, INF_REC_RING_CAP, 0);
    rring_open(&r->ring, r->map, r->map_len);
    r->stuck_since = 0;
    return 0;
  }
  int fd = memfd_create("rsprof-ring", MFD_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t len = rring_map_size(INF_REC_RING_CAP);
  void *map = MAP_FAILED;
  if (ftruncate(fd, (off_t)len) == 0)
    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    int e = -errno;
    close(fd);
    return e;
  }
  rring_init(map, INF_REC_RING_CAP, 0);
  rring_open(&r->ring, map, len);
  r->fd = fd;
  r->map = map;
  r->map_len = len;
  snprintf(r->ring_path, sizeof r->ring_path, "/proc/%d/fd/%d", (int)getpid(), fd);
  return 0;
}

void inf_rec_close(struct inferior *inf)
{
  struct inf_recorder *r = &inf->rec;
  if (r->map)
    munmap(r->map, r->map_len);
  if (r->fd >= 0)
    close(r->fd);
  r->map = NULL;
  r->fd = -1;
  r->injected = 0;
  memset(r->nt, 0, sizeof r->nt);
}

void inf_rec_child_env(const struct inferior *inf)
{
  const struct inf_recorder *r = &inf->rec;
  if (!r->want || !r->map || !r->lib)
    return;
  /* After fork, before exec: the child is single-threaded, so setenv may allocate. The recorder goes first
   * so that its malloc is the one every other library calls. */
  const char *old = getenv("LD_PRELOAD");
  char buf[8192];
  if (old && *old && strlen(old) + strlen(r->lib) + 2 <= sizeof buf) {
    size_t l = strlen(r->lib);
    memcpy(buf, r->lib, l);
    buf[l] = ':';
    memcpy(buf + l + 1, old, strlen(old) + 1);
    setenv("LD_PRELOAD", buf, 1);
  } else {
    setenv("LD_PRELOAD", r->lib, 1);
  }
  setenv("RSPROF_RECORDER_RING", r->ring_path, 1);
  if (r->arena_path[0])
    setenv("RSPROF_RECORDER_ARENA", r->arena_path, 1);
}

void inf_rec_launched(struct inferior *inf, pid_t pid)
{
  struct inf_recorder *r = &inf->rec;
  if (!r->want || !r->map || !r->lib)
    return;
  r->ring.sh->pid = (int32_t)pid;
  __atomic_store_n(&r->ring.sh->enabled, 1, __ATOMIC_RELEASE);
  r->injected = 1;
}

int inf_rec_check_program(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  Elf64_Ehdr eh;
  int rc = RS_E_UNSUPPORTED;
  if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
      eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr)) {
    for (unsigned i = 0; i < eh.e_phnum; i++) {
      Elf64_Phdr ph;
      if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph)
        break;
      if (ph.p_type == PT_INTERP) {
        rc = 0;
        break;
      }
    }
  } else if (pread(fd, &eh, 2, 0) == 2 && memcmp(&eh, "#!", 2) == 0) {
    rc = 0; /* a script: its interpreter is what runs, and it takes LD_PRELOAD if it can */
  }
  close(fd);
  return rc;
}

int inf_rec_set_target(struct inferior *inf, unsigned func, uint64_t addr, uint32_t id, uint64_t regmask)
{
  struct inf_recorder *r = &inf->rec;
  if (func >= RRING_NFUNCS)
    return RS_E_BAD_ARG;
  for (int i = 0; i < r->nt[func]; i++)
    if (r->t[func][i].addr == addr) {
      r->t[func][i].id = id;
      r->t[func][i].regmask = regmask;
      return 0;
    }
  if (r->nt[func] == INF_REC_TARGETS)
    return RS_E_LIMIT;
  r->t[func][r->nt[func]++] = (struct inf_rec_target){addr, id, regmask};
  return 0;
}

int inf_rec_active(const struct inferior *inf)
{
  const struct inf_recorder *r = &inf->rec;
  return r->map && ((r->injected && inf->pid) || rring_used(&r->ring) > 0);
}

void inf_rec_log_stats(const struct inferior *inf)
{
  const struct inf_recorder *r = &inf->rec;
  if (!r->map)
    return;
  const struct rring_shared *sh = r->ring.sh;
  LOG_INFO("recorder: %llu records, %llu waited for room (%.1f ms in all), %llu lost; %llu drained, %llu of "
           "functions no breakpoint stands for; %llu frames by frame pointers, %llu walks without a table",
           (unsigned long long)sh->records, (unsigned long long)sh->waits, (double)sh->wait_ns / 1e6,
           (unsigned long long)sh->lost, (unsigned long long)r->drained, (unsigned long long)r->unclaimed,
           (unsigned long long)sh->fp_frames, (unsigned long long)sh->no_table);
}

void inf_rec_disable(struct inferior *inf)
{
  if (inf->rec.injected)
    inf_rec_log_stats(inf);
  struct inf_recorder *r = &inf->rec;
  if (r->map)
    __atomic_store_n(&r->ring.sh->enabled, 0, __ATOMIC_RELEASE);
  r->injected = 0;
}

/* The breakpoint a call stands for: the one at the real function the recorder forwarded to (a marker call's:
 * the marker, its record's first PC). */
static const struct inf_rec_target *target_of(const struct inf_recorder *r, const struct rring_call *rc)
{
  unsigned func = rc->func;
  if (func >= RRING_NFUNCS || rc->npcs == 0)
    return NULL;
  uint64_t real = func == RRING_MARKER ? rc->pcs[0] : r->ring.sh->real[func];
  for (int i = 0; i < r->nt[func]; i++)
    if (r->t[func][i].addr == real)
      return &r->t[func][i];
  return NULL;
}

/* A record whose writer reserved it and never finished (a thread killed inside the recorder) is skipped once
 * the process is gone, or after this long. */
#define STUCK_NS (2000ull * 1000000ull)

static int emit(struct inferior *inf, const struct rring_call *rc, uint32_t len, size_t limit)
{
  struct inf_recorder *r = &inf->rec;
  const struct inf_rec_target *t = target_of(r, rc);
  if (!t || rc->npcs == 0 || RRING_CALL_FIXED + 8ull * rc->npcs > len) {
    r->unclaimed++;
    return 0;
  }
  const struct arch_desc *a = inf->arch;
  uint64_t regs[64];
  int n = 0;
  for (int i = 0; i < 64; i++) {
    if (!(t->regmask >> i & 1))
      continue;
    uint64_t v = 0;
    for (int k = 0; k < a->narg_regs && k < rc->nargs && k < RRING_MAX_ARGS; k++)
      if (a->arg_regs[k] == i)
        v = rc->args[k];
    regs[n++] = v;
  }
  struct inf_cap_call c = {
      .tid = (pid_t)rc->tid,
      .id = t->id,
      .ns = rc->ns,
      .regmask = t->regmask,
      .regs = regs,
      .pcs = rc->pcs,
      .npcs = rc->npcs > CAPC_MAX_FRAMES ? CAPC_MAX_FRAMES : rc->npcs,
      .truncated = (rc->flags & RRING_F_TRUNCATED) != 0 || rc->npcs > CAPC_MAX_FRAMES,
      .has_ret = (rc->flags & RRING_F_HAS_RET) != 0,
      .ret_ns = rc->ret_ns,
      .retval = rc->retval,
      .ret_mem = (rc->flags & RRING_F_RET_MEM) ? (const uint8_t *)&rc->ret_mem : NULL,
      .ret_mem_len = (rc->flags & RRING_F_RET_MEM) ? 8 : 0,
  };
  return inf_cap_emit_call(inf, &c, limit) == INF_CAP_DONE ? 0 : -1;
}

size_t inf_rec_drain(struct inferior *inf, size_t limit)
{
  struct inf_recorder *r = &inf->rec;
  if (!r->map)
    return 0;
  size_t taken = 0;
  for (;;) {
    const uint8_t *rec;
    uint32_t len;
    int st = rring_peek(&r->ring, &rec, &len);
    if (st == 0)
      break;
    if (st == 2) {
      uint64_t now = inf_monotonic_ns();
      if (!r->stuck_since)
        r->stuck_since = now;
      if (len && (inf->pid == 0 || now - r->stuck_since > STUCK_NS)) {
        LOG_WARN("recorder: a record never finished (its thread died inside the recorder); skipping it");
        rring_release(&r->ring, len);
        r->stuck_since = 0;
        continue;
      }
      break;
    }
    r->stuck_since = 0;
    if (emit(inf, (const struct rring_call *)rec, len, limit)) {
      if (inf->cap.len > 0)
        break; /* no room until the stream is sent */
      r->unclaimed++; /* cannot be sent even alone */
    }
    rring_release(&r->ring, len);
    r->drained++;
    taken++;
  }
  return taken;
}

/* ---- injection ---- */

/* The ELF file and load address of the first mapping of the process whose path ends in name (a path
 * component: "/libc.so.6"). Returns 0 or RS_E_NOT_FOUND. */
static int find_module(pid_t pid, const char *name, char *path, size_t path_len, uint64_t *base)
{
  char maps[64];
  snprintf(maps, sizeof maps, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(maps, "re");
  if (!f)
    return -errno;
  char line[4096];
  int rc = RS_E_NOT_FOUND;
  size_t nl = strlen(name);
  while (fgets(line, sizeof line, f)) {
    unsigned long long lo, hi, off;
    char perms[8];
    int pos = 0;
    if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &lo, &hi, perms, &off, &pos) < 4 || pos == 0)
      continue;
    char *p = line + pos;
    p[strcspn(p, "\n")] = 0;
    size_t pl = strlen(p);
    if (off != 0 || pl < nl || strcmp(p + pl - nl, name) != 0 || pl >= path_len)
      continue;
    memcpy(path, p, pl + 1);
    *base = lo;
    rc = 0;
    break;
  }
  fclose(f);
  return rc;
}

/* The value of a defined dynamic symbol of the ELF file at path (through /proc/PID/root, so the process's own
 * view of the file system counts). Returns 0 or RS_E_NOT_FOUND. */
static int dynsym_value(pid_t pid, const char *path, const char *sym, uint64_t *value, uint64_t *first_vaddr)
{
  char full[4200];
  snprintf(full, sizeof full, "/proc/%d/root%s", (int)pid, path);
  int fd = open(full, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  int rc = RS_E_NOT_FOUND;
  if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
    close(fd);
    return RS_E_FORMAT;
  }
  size_t size = (size_t)st.st_size;
  const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED)
    return -errno;
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)m;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > size ||
      eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size) {
    rc = RS_E_FORMAT;
    goto out;
  }
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(m + eh->e_phoff);
  *first_vaddr = 0;
  for (unsigned i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD) {
      *first_vaddr = ph[i].p_vaddr & ~(uint64_t)0xfff;
      break;
    }
  const Elf64_Shdr *sh = (const Elf64_Shdr *)(m + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum && rc; i++) {
    if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum || sh[i].sh_entsize != sizeof(Elf64_Sym))
      continue;
    const Elf64_Shdr *strs = &sh[sh[i].sh_link];
    if (sh[i].sh_offset + sh[i].sh_size > size || strs->sh_offset + strs->sh_size > size)
      break;
    const Elf64_Sym *syms = (const Elf64_Sym *)(m + sh[i].sh_offset);
    const char *names = (const char *)(m + strs->sh_offset);
    size_t nsyms = sh[i].sh_size / sizeof(Elf64_Sym);
    for (size_t k = 0; k < nsyms; k++) {
      if (syms[k].st_name >= strs->sh_size || syms[k].st_shndx == SHN_UNDEF ||
          ELF64_ST_TYPE(syms[k].st_info) != STT_FUNC)
        continue;
      const char *nm = names + syms[k].st_name;
      if (strnlen(nm, strs->sh_size - syms[k].st_name) < strs->sh_size - syms[k].st_name && strcmp(nm, sym) == 0) {
        *value = syms[k].st_value;
        rc = 0;
        break;
      }
    }
  }
out:
  munmap((void *)m, size);
  return rc;
}

/* The runtime address of a function exported by the module whose path ends in name. */
static int remote_func(pid_t pid, const char *name, const char *sym, uint64_t *addr)
{
  char path[4096];
  uint64_t base = 0, value = 0, vaddr = 0;
  int rc = find_module(pid, name, path, sizeof path, &base);
  if (!rc)
    rc = dynsym_value(pid, path, sym, &value, &vaddr);
  if (!rc)
    *addr = base - vaddr + value;
  return rc;
}

static int write_mem(void *ctx, uint64_t addr, const void *data, size_t len)
{
  return inf_write(ctx, addr, data, len);
}

#define CALL_TIMEOUT_MS 10000

/* Makes thread t call fn(args) with strings copied below its stack, and waits for the return (the fault at
 * address 0 it returns to). The thread's registers are restored whatever happens. *ret gets the result. */
static int remote_call(struct inferior *inf, struct inf_thread *t, uint64_t fn, const uint64_t *args, int nargs,
                       uint64_t *ret)
{
  struct ptarch_gregs saved, r;
  if (ptarch_get_gregs(t->tid, &saved))
    return -errno;
  r = saved;
  long sys_state = 0;
  /* Below the red zone (128 bytes on x86_64) and what the strings take, 16-byte aligned. */
  uint64_t sp = (ptarch_sp(&saved) - 1024) & ~(uint64_t)15;
  int rc = ptarch_prepare_call(t->tid, &r, fn, args, nargs, sp, write_mem, inf, &sys_state);
  if (!rc)
    rc = ptarch_set_gregs(t->tid, &r);
  if (rc)
    goto restore;
  int sig = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) < 0) {
      rc = -errno;
      goto restore;
    }
    sig = 0;
    int status;
    pid_t w;
    for (;;) {
      w = waitpid(t->tid, &status, __WALL | WNOHANG);
      if (w != 0)
        break;
      struct timespec now, d = {0, 1000000};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > CALL_TIMEOUT_MS) {
        LOG_ERR("recorder: the injected call did not return within %d s (a lock held by a stopped thread?)",
                CALL_TIMEOUT_MS / 1000);
        ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL);
        waitpid(t->tid, &status, __WALL);
        rc = RS_E_TIMEOUT;
        goto restore;
      }
      nanosleep(&d, NULL);
    }
    if (w < 0 || !WIFSTOPPED(status)) {
      rc = RS_E_EXITED;
      inf->exited = 1;
      return rc;
    }
    int s = WSTOPSIG(status);
    if (status >> 16) /* a ptrace event (a clone, an exec): nothing of ours, go on */
      continue;
    struct ptarch_gregs now;
    if (ptarch_get_gregs(t->tid, &now)) {
      rc = -errno;
      goto restore;
    }
    if ((s == SIGSEGV || s == SIGBUS) && ptarch_pc(&now) == 0) {
      *ret = ptarch_retval(&now);
      rc = 0;
      break;
    }
    if (s == SIGSEGV || s == SIGBUS || s == SIGTRAP || s == SIGILL) {
      LOG_ERR("recorder: the injected call stopped with signal %d at 0x%llx", s,
              (unsigned long long)ptarch_pc(&now));
      rc = RS_E_PROTO;
      goto restore;
    }
    sig = s == SIGSTOP ? 0 : s; /* the program's own signals reach their handlers on top of the call */
  }
restore:
  ptarch_finish_call(t->tid, sys_state);
  ptarch_set_gregs(t->tid, &saved);
  t->regs_valid = 0;
  return rc;
}

int inf_rec_loaded(struct inferior *inf)
{
  char path[4096];
  uint64_t base;
  return inf->pid && find_module(inf->pid, "/librsprof_recorder.so", path, sizeof path, &base) == 0;
}

/* Whether pc lies in the executable mapping of a module whose path ends in one of names. */
static int pc_in_modules(pid_t pid, uint64_t pc, const char *const *names, size_t nnames)
{
  char maps[64], line[4096];
  snprintf(maps, sizeof maps, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(maps, "re");
  if (!f)
    return 0;
  int in = 0;
  while (!in && fgets(line, sizeof line, f)) {
    unsigned long long lo, hi;
    char perms[8];
    int pos = 0;
    if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %n", &lo, &hi, perms, &pos) < 3 || pos == 0 || perms[2] != 'x' ||
        pc < lo || pc >= hi)
      continue;
    char *p = line + pos;
    p[strcspn(p, "\n")] = 0;
    size_t pl = strlen(p);
    for (size_t i = 0; i < nnames; i++) {
      size_t nl = strlen(names[i]);
      if (pl >= nl && strcmp(p + pl - nl, names[i]) == 0)
        in = 1;
    }
  }
  fclose(f);
  return in;
}

/* Whether thread t may call dlopen now: not inside libc or the dynamic loader (it could be in the middle of
 * malloc, with the allocator's state half updated or its lock held, or hold the loader's lock), unless it is
 * blocked in a system call there (the wrapper holds nothing). */
static int safe_point(struct inferior *inf, struct inf_thread *t)
{
  struct ptarch_gregs r;
  if (ptarch_get_gregs(t->tid, &r))
    return 0;
  static const char *const libs[] = {"/libc.so.6", "/ld-linux-x86-64.so.2", "/ld-linux-aarch64.so.1"};
  if (!pc_in_modules(inf->pid, ptarch_pc(&r), libs, sizeof libs / sizeof libs[0]))
    return 1;
  char path[96], text[256];
  snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", (int)inf->pid, (int)t->tid);
  size_t n = inf_read_proc(path, text, sizeof text);
  return n > 0 && text[0] >= '0' && text[0] <= '9'; /* a system call number: blocked in it */
}

#define SAFE_POINT_TRIES 2000

/* Lets thread t run in short slices (every other thread stays stopped) until it stands at a safe point.
 * Returns 0, or RS_E_TIMEOUT. */
static int reach_safe_point(struct inferior *inf, struct inf_thread *t)
{
  int sig = 0;
  for (int i = 0; i < SAFE_POINT_TRIES; i++) {
    if (safe_point(inf, t))
      return 0;
    if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) < 0)
      return -errno;
    sig = 0;
    struct timespec d = {0, 20000 + (i % 7) * 15000};
    nanosleep(&d, NULL);
    ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL);
    int status;
    for (;;) {
      pid_t w = waitpid(t->tid, &status, __WALL);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 || !WIFSTOPPED(status))
        return RS_E_EXITED;
      if (status >> 16) /* the interrupt's stop (or another ptrace event): stopped as it was */
        break;
      /* A signal for the program arrived meanwhile: handed back to it at the next slice, then stop again. */
      sig = WSTOPSIG(status) == SIGSTOP ? 0 : WSTOPSIG(status);
      if (ptrace(PTRACE_CONT, t->tid, NULL, (void *)(long)sig) < 0)
        return -errno;
      sig = 0;
    }
  }
  return RS_E_TIMEOUT;
}

int inf_rec_inject(struct inferior *inf)
{
  struct inf_recorder *r = &inf->rec;
  if (!inf->pid || inf->nth == 0)
    return RS_E_NO_PROCESS;
  if (!r->lib)
    return RS_E_NOT_FOUND;
  uint64_t dlopen_addr;
  /* glibc 2.34 and later export dlopen from libc itself; older ones from libdl when the program links it. */
  int rc = remote_func(inf->pid, "/libc.so.6", "dlopen", &dlopen_addr);
  if (rc)
    rc = remote_func(inf->pid, "/libdl.so.2", "dlopen", &dlopen_addr);
  if (rc) {
    LOG_WARN("recorder: process %d has no dlopen (statically linked, or a libc without it)", (int)inf->pid);
    return RS_E_UNSUPPORTED;
  }
  rc = inf_rec_create_ring(inf);
  if (rc)
    return rc;
  r->ring.sh->pid = (int32_t)inf->pid;
  struct inf_thread *t = &inf->th[0];
  rc = reach_safe_point(inf, t);
  if (rc) {
    LOG_WARN("recorder: thread %d of process %d never stopped outside libc and the loader", (int)t->tid,
             (int)inf->pid);
    return rc;
  }
  t->regs_valid = 0;
  struct ptarch_gregs cur;
  if (ptarch_get_gregs(t->tid, &cur))
    return -errno;
  /* The strings go below the stack pointer, under the call's own frame area (remote_call starts 1 KiB down). */
  uint64_t strs = (ptarch_sp(&cur) - 1024 + 64) & ~(uint64_t)15;
  size_t ll = strlen(r->lib) + 1, rl = strlen(r->ring_path) + 1, al = strlen(r->arena_path) + 1;
  if (ll + rl + al + 32 > 800) /* the strings end above the red zone below sp */
    return RS_E_LIMIT;
  uint64_t lib_at = strs, ring_at = strs + ((ll + 15) & ~(size_t)15), arena_at = ring_at + ((rl + 15) & ~(size_t)15);
  if (inf_write(inf, lib_at, r->lib, ll) || inf_write(inf, ring_at, r->ring_path, rl) ||
      inf_write(inf, arena_at, r->arena_path, al))
    return RS_E_PROTO;
  uint64_t handle = 0, ok = 0, attach_addr;
  uint64_t args[2] = {lib_at, 2 /* RTLD_NOW */};
  rc = remote_call(inf, t, dlopen_addr, args, 2, &handle);
  if (!rc && !handle) {
    LOG_WARN("recorder: dlopen of %s failed in process %d (its libc cannot load it)", r->lib, (int)inf->pid);
    rc = RS_E_UNSUPPORTED;
  }
  if (!rc)
    rc = remote_func(inf->pid, "/librsprof_recorder.so", "rsprof_recorder_attach", &attach_addr);
  if (!rc) {
    uint64_t a2[2] = {ring_at, r->arena_path[0] ? arena_at : 0};
    rc = remote_call(inf, t, attach_addr, a2, 2, &ok);
  }
  if (!rc && (int)ok != 0) {
    LOG_WARN("recorder: the recorder in process %d could not map the ring", (int)inf->pid);
    rc = RS_E_UNSUPPORTED;
  }
  if (rc)
    return rc;
  __atomic_store_n(&r->ring.sh->enabled, 1, __ATOMIC_RELEASE);
  r->injected = 1;
  LOG_INFO("recorder loaded into process %d", (int)inf->pid);
  return 0;
}
