/* The fake traced process behind the agent server fuzzer: inferior.h implemented over a small made-up
 * program image (ELF header, program headers, dynamic section, r_debug and a link map) and a stack, with
 * deterministic stops, plus a ptrace() and wrapped open()/readlink() that never reach the real system
 * outside the fake process and the scratch folder. */
#include "fake-inferior.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "errors.h"
#include "inferior.h"

#define FAKE_NTHREADS 3
#define IMAGE_BASE 0x400000ull
#define IMAGE_SIZE 0x8000u
#define STACK_BASE 0x7ffd00000000ull
#define STACK_SIZE 0x10000u
#define ENTRY (IMAGE_BASE + 0x1000)

static char scratch[PATH_MAX];
static int sandbox;

/* The process's memory: two regions, restored from their pristine copies at each launch or attach. */
static uint8_t image[IMAGE_SIZE], image0[IMAGE_SIZE];
static uint8_t stack[STACK_SIZE], stack0[STACK_SIZE];

/* What the kernel holds per fake thread: its registers (ptrace reads and writes these) and FP state. */
static struct {
  pid_t tid;
  struct ptarch_gregs regs;
  uint8_t fp[1024];
} kthreads[FAKE_NTHREADS];

static unsigned resumes, polls_left;
static uint64_t clock_ns;

/* ---- the program image ---- */

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void phdr(int i, uint32_t type, uint64_t off, uint64_t vaddr, uint64_t size)
{
  uint8_t *p = image0 + 0x40 + 56 * i;
  put32(p, type);
  put64(p + 8, off);
  put64(p + 16, vaddr);
  put64(p + 32, size);
  put64(p + 40, size);
}

/* link_map: l_addr, l_name, l_ld, l_next, l_prev. */
static void link_map(uint32_t at, uint64_t l_addr, uint64_t name, uint64_t next, uint64_t prev)
{
  uint8_t *p = image0 + at;
  put64(p, l_addr);
  put64(p + 8, name);
  put64(p + 16, IMAGE_BASE + 0x2000);
  put64(p + 24, next);
  put64(p + 32, prev);
}

static void build_image(void)
{
  memcpy(image0, ELFMAG, SELFMAG);
  image0[EI_CLASS] = ELFCLASS64;
  image0[EI_DATA] = ELFDATA2LSB;
  put16(image0 + 16, ET_DYN);
  put16(image0 + 18, ptarch_desc()->elf_machine);
  put64(image0 + 24, ENTRY - IMAGE_BASE);
  put64(image0 + 32, 0x40);
  put16(image0 + 56, 4);
  phdr(0, PT_PHDR, 0x40, 0x40, 4 * 56);
  phdr(1, PT_LOAD, 0, 0, IMAGE_SIZE);
  phdr(2, PT_DYNAMIC, 0x2000, 0x2000, 0x40);
  phdr(3, PT_INTERP, 0x1f00, 0x1f00, 0x20);
  strcpy((char *)image0 + 0x1f00, "/lib64/ld-linux-x86-64.so.2");
  /* Code at the entry: push %rbp; mov %rsp,%rbp; sub $0x10,%rsp; ... ret (the step-over emulation's kind). */
  static const uint8_t code[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x90, 0x90, 0xc9, 0xc3};
  for (unsigned off = 0x1000; off + sizeof code <= 0x1f00; off += sizeof code)
    memcpy(image0 + off, code, sizeof code);
  /* Dynamic section: DT_DEBUG points at r_debug. */
  put64(image0 + 0x2000, DT_NEEDED);
  put64(image0 + 0x2008, 1);
  put64(image0 + 0x2010, DT_DEBUG);
  put64(image0 + 0x2018, IMAGE_BASE + 0x3000);
  put64(image0 + 0x2020, DT_NULL);
  /* r_debug: r_version, r_map, r_brk. */
  put32(image0 + 0x3000, 1);
  put64(image0 + 0x3008, IMAGE_BASE + 0x4000);
  put64(image0 + 0x3010, ENTRY + 0x100);
  /* The executable, two libraries (one whose name needs XML escaping) and a nameless vDSO entry. */
  link_map(0x4000, 0, IMAGE_BASE + 0x5000, IMAGE_BASE + 0x4100, 0);
  link_map(0x4100, 0x7f0000000000, IMAGE_BASE + 0x5010, IMAGE_BASE + 0x4200, IMAGE_BASE + 0x4000);
  link_map(0x4200, 0x7f0000100000, IMAGE_BASE + 0x5100, IMAGE_BASE + 0x4300, IMAGE_BASE + 0x4100);
  link_map(0x4300, 0x7fff00000000, IMAGE_BASE + 0x5000, 0, IMAGE_BASE + 0x4200);
  strcpy((char *)image0 + 0x5010, "/lib/x86_64-linux-gnu/libc.so.6");
  strcpy((char *)image0 + 0x5100, "/opt/a&b<c>\"d'e.so");
  /* The stack: return addresses into the code and a recognisable filler. */
  for (unsigned i = 0; i + 8 <= STACK_SIZE; i += 8)
    put64(stack0 + i, i % 32 == 8 ? ENTRY + 0x20 + i % 0x100 : 0x5a5a5a5a00000000ull | i);
}

static uint8_t *mem_at(uint64_t addr, size_t *room)
{
  if (addr >= IMAGE_BASE && addr < IMAGE_BASE + IMAGE_SIZE) {
    *room = (size_t)(IMAGE_BASE + IMAGE_SIZE - addr);
    return image + (addr - IMAGE_BASE);
  }
  if (addr >= STACK_BASE && addr < STACK_BASE + STACK_SIZE) {
    *room = (size_t)(STACK_BASE + STACK_SIZE - addr);
    return stack + (addr - STACK_BASE);
  }
  return NULL;
}

/* ---- files: the scratch folder and the fake process's /proc entries ---- */

static int write_file(const char *name, const void *data, size_t len)
{
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", scratch, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  ssize_t n = write(fd, data, len);
  close(fd);
  return n == (ssize_t)len ? 0 : -EIO;
}

int fake_setup(const char *dir)
{
  /* No chdir: libFuzzer may have been given relative corpus paths. */
  if (!realpath(dir, scratch))
    return -errno;
  build_image();
  uint64_t auxv[] = {AT_PHDR, IMAGE_BASE + 0x40, AT_PHENT, 56, AT_PHNUM, 4, AT_ENTRY, ENTRY,
                     AT_BASE, 0x7fff10000000, AT_NULL, 0};
  static char big[200000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 7 + i / 251);
  int rc = write_file("proc-auxv", auxv, sizeof auxv);
  if (!rc)
    rc = write_file("proc-comm", "fake<&>\n", 8);
  if (!rc)
    rc = write_file("small", "#!/bin/sh\necho small\n", 21);
  if (!rc)
    rc = write_file("empty", "", 0);
  if (!rc)
    rc = write_file("big", big, sizeof big);
  if (!rc)
    rc = write_file("bin", image0, sizeof image0);
  if (rc)
    return rc;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/dir", scratch);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/link", scratch);
  unlink(path);
  if (symlink("small", path))
    return -errno;
  return 0;
}

void fake_sandbox(int on) { sandbox = on; }

static int is_fake_pid(long pid) { return pid >= FAKE_PID && pid < FAKE_PID + 16; }

/* Maps a path the agent asks for to one inside the scratch folder; returns 0, or -1 for a path that
 * must look absent. Only relative paths without ".." and the fake process's /proc files get through. */
static int map_path(const char *path, char *out, size_t max)
{
  if (!strncmp(path, "/proc/", 6)) {
    char *end;
    long pid = strtol(path + 6, &end, 10);
    if (!is_fake_pid(pid))
      return -1;
    const char *name = NULL;
    if (!strcmp(end, "/auxv"))
      name = "proc-auxv";
    else if (!strncmp(end, "/task/", 6) && is_fake_pid(strtol(end + 6, &end, 10)) && !strcmp(end, "/comm"))
      name = "proc-comm";
    if (!name)
      return -1;
    snprintf(out, max, "%s/%s", scratch, name);
    return 0;
  }
  if (path[0] == '/' || strstr(path, ".."))
    return -1;
  if ((size_t)snprintf(out, max, "%s/%s", scratch, path) >= max)
    return -1;
  return 0;
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
ssize_t __real_readlink(const char *path, char *buf, size_t len);
ssize_t __wrap_readlink(const char *path, char *buf, size_t len);

int __wrap_open(const char *path, int flags, ...)
{
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (!sandbox)
    return __real_open(path, flags, mode);
  char mapped[PATH_MAX];
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT) || map_path(path, mapped, sizeof mapped)) {
    errno = ENOENT;
    return -1;
  }
  /* Never block: a FIFO opened for reading would wait for a writer forever. */
  return __real_open(mapped, flags | O_NONBLOCK | O_NOCTTY);
}

ssize_t __wrap_readlink(const char *path, char *buf, size_t len)
{
  if (!sandbox)
    return __real_readlink(path, buf, len);
  static const char exe[] = "/usr/bin/fake program";
  if (!strncmp(path, "/proc/", 6)) {
    char *end;
    if (is_fake_pid(strtol(path + 6, &end, 10)) && !strcmp(end, "/exe")) {
      size_t n = sizeof exe - 1 < len ? sizeof exe - 1 : len;
      memcpy(buf, exe, n);
      return (ssize_t)n;
    }
  }
  char mapped[PATH_MAX];
  if (map_path(path, mapped, sizeof mapped)) {
    errno = ENOENT;
    return -1;
  }
  return __real_readlink(mapped, buf, len);
}

/* ---- ptrace: only the fake threads exist ---- */

static int kthread_index(pid_t tid)
{
  for (int i = 0; i < FAKE_NTHREADS; i++)
    if (kthreads[i].tid && kthreads[i].tid == tid)
      return i;
  return -1;
}

long ptrace(enum __ptrace_request req, ...)
{
  va_list ap;
  va_start(ap, req);
  pid_t tid = va_arg(ap, pid_t);
  void *addr = va_arg(ap, void *);
  void *data = va_arg(ap, void *);
  va_end(ap);
  int i = kthread_index(tid);
  if (i < 0) {
    errno = ESRCH;
    return -1;
  }
  switch ((int)req) {
#if defined(__x86_64__)
  case PTRACE_GETREGS:
    memcpy(data, &kthreads[i].regs.k, sizeof kthreads[i].regs.k);
    return 0;
  case PTRACE_SETREGS:
    memcpy(&kthreads[i].regs.k, data, sizeof kthreads[i].regs.k);
    return 0;
  case PTRACE_GETFPREGS:
    memcpy(data, kthreads[i].fp, sizeof(struct user_fpregs_struct));
    return 0;
  case PTRACE_SETFPREGS:
    memcpy(kthreads[i].fp, data, sizeof(struct user_fpregs_struct));
    return 0;
#endif
  case PTRACE_GETREGSET:
  case PTRACE_SETREGSET: {
    struct iovec *iov = data;
    uint8_t *store = (long)addr == NT_PRSTATUS ? (uint8_t *)&kthreads[i].regs.k : kthreads[i].fp;
    size_t cap = (long)addr == NT_PRSTATUS ? sizeof kthreads[i].regs.k : sizeof kthreads[i].fp;
    if (iov->iov_len > cap)
      iov->iov_len = cap;
    if (req == PTRACE_GETREGSET)
      memcpy(iov->iov_base, store, iov->iov_len);
    else
      memcpy(store, iov->iov_base, iov->iov_len);
    return 0;
  }
  default:
    errno = EIO;
    return -1;
  }
}

static void set_sp(struct ptarch_gregs *r, uint64_t sp)
{
#if defined(__x86_64__)
  r->k.rsp = sp;
#elif defined(__aarch64__)
  r->k.sp = sp;
#endif
}

/* ---- inferior.h ---- */

void fake_reset(void)
{
  memset(kthreads, 0, sizeof kthreads);
  resumes = 0;
  polls_left = 0;
  clock_ns = 1000;
}

void inf_init(struct inferior *inf)
{
  memset(inf, 0, sizeof *inf);
  inf->memfd = -1;
  inf->arch = ptarch_desc();
}

struct inf_thread *inf_thread(struct inferior *inf, pid_t tid)
{
  for (int i = 0; i < inf->nth; i++)
    if (inf->th[i].tid == tid)
      return &inf->th[i];
  return NULL;
}

static void forget(struct inferior *inf)
{
  memset(kthreads, 0, sizeof kthreads);
  inf->pid = 0;
  inf->nth = 0;
  inf->nbp = 0;
  inf->running = 0;
}

/* A fresh process pid with its threads stopped at the entry point. */
static void start(struct inferior *inf, pid_t pid, int attached)
{
  forget(inf);
  memcpy(image, image0, sizeof image);
  memcpy(stack, stack0, sizeof stack);
  inf->pid = pid;
  inf->attached = attached;
  inf->exited = 0;
  inf->nquiet = 0;
  for (int i = 0; i < FAKE_NTHREADS; i++) {
    kthreads[i].tid = pid + i;
    for (int w = 0; w < 64; w++)
      kthreads[i].regs.w[w] = 0x1111111111111111ull * (uint64_t)(w % 15) + (uint64_t)i;
    ptarch_set_pc(&kthreads[i].regs, ENTRY + 4 * (uint64_t)i);
    set_sp(&kthreads[i].regs, STACK_BASE + STACK_SIZE / 2 - 0x100 * (uint64_t)i);
    for (size_t b = 0; b < sizeof kthreads[i].fp; b++)
      kthreads[i].fp[b] = (uint8_t)(b * 13 + i);
    struct inf_thread *t = &inf->th[inf->nth++];
    memset(t, 0, sizeof *t);
    t->tid = pid + i;
  }
}

int inf_launch(struct inferior *inf, char *const argv[], int disable_aslr)
{
  (void)disable_aslr;
  if (!argv[0] || !strcmp(argv[0], "missing"))
    return -ENOENT;
  start(inf, FAKE_PID, 0);
  return 0;
}

int inf_attach(struct inferior *inf, pid_t pid)
{
  if (!is_fake_pid(pid) || pid + FAKE_NTHREADS > FAKE_PID + 16)
    return -ESRCH;
  start(inf, pid, 1);
  return 0;
}

int inf_detach(struct inferior *inf)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  forget(inf);
  return 0;
}

void inf_kill(struct inferior *inf)
{
  if (inf->pid == 0)
    return;
  inf->exit_status = SIGKILL;
  inf->exited = 1;
  forget(inf);
}

struct ptarch_gregs *inf_gregs(struct inferior *inf, struct inf_thread *t)
{
  (void)inf;
  if (!t->regs_valid) {
    if (ptarch_get_gregs(t->tid, &t->regs))
      return NULL;
    t->regs_valid = 1;
  }
  return &t->regs;
}

static struct inf_bp *bp_find(struct inferior *inf, uint64_t addr)
{
  for (int i = 0; i < inf->nbp; i++)
    if (inf->bp[i].addr == addr)
      return &inf->bp[i];
  return NULL;
}

long inf_read(struct inferior *inf, uint64_t addr, void *out, size_t len)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  size_t room;
  uint8_t *p = mem_at(addr, &room);
  if (!p)
    return -EIO;
  size_t n = len < room ? len : room;
  memcpy(out, p, n);
  /* Like the real one: bytes under inserted breakpoints read as the original instructions. */
  size_t bl = inf->arch->bkpt_len;
  for (int i = 0; i < inf->nbp; i++)
    for (size_t k = 0; k < bl; k++) {
      uint64_t a = inf->bp[i].addr + k;
      if (a >= addr && a - addr < n)
        ((uint8_t *)out)[a - addr] = inf->bp[i].orig[k];
    }
  return (long)n;
}

int inf_write(struct inferior *inf, uint64_t addr, const void *data, size_t len)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  size_t room;
  uint8_t *p = mem_at(addr, &room);
  if (!p || room < len)
    return -EIO;
  memcpy(p, data, len);
  size_t bl = inf->arch->bkpt_len;
  for (int i = 0; i < inf->nbp; i++)
    for (size_t k = 0; k < bl; k++) {
      uint64_t a = inf->bp[i].addr + k;
      if (a >= addr && a - addr < len) {
        inf->bp[i].orig[k] = p[a - addr];
        p[a - addr] = inf->arch->bkpt[k];
      }
    }
  return 0;
}

int inf_bp_insert(struct inferior *inf, uint64_t addr)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (b) {
    b->refs++;
    return 0;
  }
  if (inf->nbp >= INF_MAX_BPS)
    return RS_E_LIMIT;
  size_t bl = inf->arch->bkpt_len, room;
  uint8_t *p = mem_at(addr, &room);
  if (!p || room < bl)
    return -EIO;
  b = &inf->bp[inf->nbp++];
  memset(b, 0, sizeof *b);
  b->addr = addr;
  b->refs = 1;
  memcpy(b->orig, p, bl);
  memcpy(p, inf->arch->bkpt, bl);
  return 0;
}

int inf_bp_set_quiet(struct inferior *inf, uint64_t addr, int quiet)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (!b)
    return RS_E_NOT_FOUND;
  b->quiet = quiet;
  return 0;
}

int inf_bp_remove(struct inferior *inf, uint64_t addr)
{
  struct inf_bp *b = bp_find(inf, addr);
  if (!b || --b->refs > 0)
    return 0;
  size_t room;
  uint8_t *p = mem_at(addr, &room);
  if (p)
    memcpy(p, b->orig, inf->arch->bkpt_len);
  *b = inf->bp[--inf->nbp];
  return 0;
}

static void stopped_thread(struct inferior *inf, int i, uint64_t pc)
{
  struct inf_thread *t = &inf->th[i];
  int k = kthread_index(t->tid);
  if (k >= 0 && pc)
    ptarch_set_pc(&kthreads[k].regs, pc);
  t->regs_valid = 0;
  t->running = 0;
  t->stop_ns = clock_ns += 1234;
}

static void fill_exit(struct inferior *inf, struct inf_stop *st, enum inf_stop_kind kind, int code)
{
  st->kind = kind;
  st->sig = code;
  st->tid = inf->pid;
  st->swbreak = 0;
  inf->exit_status = code;
  inf->exited = 1;
  forget(inf);
}

/* What a resumed process does next: each breakpoint in turn is hit (quiet ones only queue a hit and the
 * program goes on); when every one was quiet, or there is none, the program exits. */
static void next_event(struct inferior *inf, struct inf_stop *st)
{
  inf->running = 0;
  for (int k = 0; k < inf->nbp; k++) {
    struct inf_bp *b = &inf->bp[(resumes + (unsigned)k) % (unsigned)inf->nbp];
    int ti = (int)((resumes + (unsigned)k) % (unsigned)inf->nth);
    if (b->quiet && inf->nquiet < INF_MAX_QUIET_HITS) {
      struct inf_thread *t = &inf->th[ti];
      struct ptarch_gregs *r = inf_gregs(inf, t);
      inf->quiet[inf->nquiet++] = (struct inf_quiet_hit){
          t->tid, b->addr, r ? ptarch_sp(r) : 0, r ? ptarch_retval(r) : 0, clock_ns += 100};
      continue;
    }
    stopped_thread(inf, ti, b->addr);
    *st = (struct inf_stop){INF_STOP_SIGNAL, SIGTRAP, inf->th[ti].tid, 1};
    inf->th[ti].reported_bp = b->addr;
    return;
  }
  fill_exit(inf, st, INF_STOP_EXITED, (int)(resumes & 0xff));
}

int inf_resume(struct inferior *inf, const struct inf_resume *acts, int n, struct inf_stop *st)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  resumes++;
  for (int a = 0; a < n; a++) {
    if (acts[a].tid != -1 && !inf_thread(inf, acts[a].tid))
      continue; /* like the real one: actions for unknown threads apply to nobody */
    if (acts[a].act == INF_ACT_STEP) {
      int ti = acts[a].tid == -1 ? 0 : (int)(inf_thread(inf, acts[a].tid) - inf->th);
      struct ptarch_gregs *r = inf_gregs(inf, &inf->th[ti]);
      stopped_thread(inf, ti, r ? ptarch_pc(r) + 1 : 0);
      *st = (struct inf_stop){INF_STOP_SIGNAL, SIGTRAP, inf->th[ti].tid, 0};
      return 1;
    }
    if (acts[a].sig == SIGKILL) {
      fill_exit(inf, st, INF_STOP_KILLED, SIGKILL);
      return 1;
    }
    if (acts[a].sig == SIGSEGV) { /* a signal already queued: reported at once */
      stopped_thread(inf, 0, 0);
      *st = (struct inf_stop){INF_STOP_SIGNAL, SIGSEGV, inf->th[0].tid, 0};
      return 1;
    }
  }
  for (int i = 0; i < inf->nth; i++)
    inf->th[i].running = 1;
  inf->running = 1;
  /* The stop shows up at the second poll, so an interrupt byte right after the resume finds it running. */
  polls_left = 2;
  return 0;
}

int inf_poll(struct inferior *inf, struct inf_stop *st)
{
  if (!inf->running || inf->pid == 0)
    return 0;
  if (polls_left > 1) {
    polls_left--;
    return 0;
  }
  next_event(inf, st);
  return 1;
}

int inf_interrupt(struct inferior *inf, struct inf_stop *st)
{
  if (inf->pid == 0)
    return RS_E_NO_PROCESS;
  for (int i = 0; i < inf->nth; i++)
    stopped_thread(inf, i, 0);
  inf->running = 0;
  *st = (struct inf_stop){INF_STOP_SIGNAL, SIGINT, inf->th[0].tid, 0};
  return 0;
}

/* Agent-side capture: the fake accepts capture specifications and never records an event (the record
 * encoder needs a traced thread), so the server's QRsprofCapture and stream paths run without one. */
int inf_cap_set(struct inferior *inf, uint64_t addr, const struct inf_cap_spec *spec)
{
  (void)spec;
  return inf_bp_insert(inf, addr) < 0 ? -EINVAL : 0;
}

void inf_cap_reset(struct inferior *inf)
{
  (void)inf;
}

void inf_cap_consume(struct inferior *inf, size_t n)
{
  (void)inf;
  (void)n;
}

int inf_cap_waiting(const struct inferior *inf)
{
  (void)inf;
  return 0;
}

uint64_t inf_monotonic_ns(void)
{
  static uint64_t now;
  return now += 1000; /* deterministic, so a crash replays the same way */
}

/* In-process capture: the fake has no recorder library (inf->rec.lib stays NULL), so QRsprofInprocess is refused
 * and QRsprofRecord finds no recorder; the packets' parsing still runs. */
int inf_rec_check_program(const char *path)
{
  (void)path;
  return RS_E_UNSUPPORTED;
}

int inf_rec_create_ring(struct inferior *inf)
{
  (void)inf;
  return RS_E_UNSUPPORTED;
}

int inf_rec_inject(struct inferior *inf)
{
  (void)inf;
  return RS_E_UNSUPPORTED;
}

int inf_rec_loaded(struct inferior *inf)
{
  (void)inf;
  return 0;
}

int inf_rec_set_target(struct inferior *inf, unsigned func, uint64_t addr, uint32_t id, uint64_t regmask)
{
  (void)inf;
  (void)func;
  (void)addr;
  (void)id;
  (void)regmask;
  return RS_E_BAD_ARG;
}

int inf_rec_active(const struct inferior *inf)
{
  (void)inf;
  return 0;
}

size_t inf_rec_drain(struct inferior *inf, size_t limit)
{
  (void)inf;
  (void)limit;
  return 0;
}

void inf_rec_log_stats(const struct inferior *inf)
{
  (void)inf;
}

/* The process table's hooks (agent/ptrace/processes.c): the fake program never forks. */
void inf_on_status(struct inferior *inf, pid_t tid, int status)
{
  (void)inf;
  (void)tid;
  (void)status;
}

void inf_stop_all(struct inferior *inf) { inf->running = 0; }

int inf_adopt_child(struct inferior *child, struct inferior *parent, pid_t pid, int vfork)
{
  (void)child;
  (void)parent;
  (void)pid;
  (void)vfork;
  return -ENOSYS;
}

void inf_release(struct inferior *inf) { inf->pid = 0; }

size_t inf_read_proc(const char *path, char *buf, size_t len)
{
  (void)path;
  if (len)
    buf[0] = 0;
  return 0;
}

pid_t inf_task_tgid(pid_t tid)
{
  (void)tid;
  return 0; /* the fake program has no tasks the kernel knows */
}
