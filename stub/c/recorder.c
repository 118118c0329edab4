/* The in-process recorder (librsprof_recorder.so): wraps the libc malloc family inside the traced program,
 * unwinds each call in place with the compiled unwind tables the agent shares, and writes one record per call
 * into the shared-memory ring the agent drains (common/recorder-ring.h). Preloaded at launch or injected by
 * the agent with dlopen; it never calls the allocator it wraps while recording. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "recorder-ring.h"
#include "recorder-tables.h"
#include "unwind-table.h"

#define EXPORT __attribute__((visibility("default")))

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

/* ---- bootstrap: dlsym may allocate before the real functions are known ---- */

/* Such allocations are served from this static arena and never recorded: they belong to the recorder, not
 * to the program. Each block carries its size in front so realloc can copy it; free() of one is a no-op. */
#include "boot-arena.h"

/* The thread resolving the real functions, 0 when none. No thread-local variables here: a TLS block in the
 * recorder would change the size of every thread's TLS vector (an allocation the reference tools would see
 * differently), and a dlopen'ed library's dynamic TLS is itself allocated with malloc on first use. */
static long resolving_tid;

static long current_tid(void) { return syscall(SYS_gettid); }

static void *next_sym(const char *name) { return dlsym(RTLD_NEXT, name); }

/* Resolves every real function once; returns 0, or -1 while this thread is still resolving. */
static int resolve(void)
{
  if (__atomic_load_n(&real_free, __ATOMIC_ACQUIRE))
    return 0;
  long self = current_tid();
  if (__atomic_load_n(&resolving_tid, __ATOMIC_RELAXED) == self)
    return -1;
  __atomic_store_n(&resolving_tid, self, __ATOMIC_RELAXED);
  void *m = next_sym("malloc"), *c = next_sym("calloc"), *r = next_sym("realloc");
  void *pm = next_sym("posix_memalign"), *aa = next_sym("aligned_alloc"), *ma = next_sym("memalign");
  void *va = next_sym("valloc"), *pv = next_sym("pvalloc");
  void *f = next_sym("free");
  __atomic_store_n(&real_malloc, (void *(*)(size_t))m, __ATOMIC_RELAXED);
  __atomic_store_n(&real_calloc, (void *(*)(size_t, size_t))c, __ATOMIC_RELAXED);
  __atomic_store_n(&real_realloc, (void *(*)(void *, size_t))r, __ATOMIC_RELAXED);
  __atomic_store_n(&real_posix_memalign, (int (*)(void **, size_t, size_t))pm, __ATOMIC_RELAXED);
  __atomic_store_n(&real_aligned_alloc, (void *(*)(size_t, size_t))aa, __ATOMIC_RELAXED);
  __atomic_store_n(&real_memalign, (void *(*)(size_t, size_t))ma, __ATOMIC_RELAXED);
  __atomic_store_n(&real_valloc, (void *(*)(size_t))va, __ATOMIC_RELAXED);
  __atomic_store_n(&real_pvalloc, (void *(*)(size_t))pv, __ATOMIC_RELAXED);
  /* free last: it is the "resolved" flag the fast path above tests. */
  __atomic_store_n(&real_free, (void (*)(void *))f, __ATOMIC_RELEASE);
  __atomic_store_n(&resolving_tid, 0, __ATOMIC_RELAXED);
  if (!m || !c || !r || !f || !pm || !aa || !ma)
    abort(); /* no libc malloc to forward to: nothing sensible is left to do */
  return 0;
}

/* ---- the ring and the switch ---- */

static struct rring ring;
static int ring_mapped;
static int32_t own_pid;    /* the process that mapped the ring; 0 until then */
static int forked_child;   /* set in a child after fork: it never writes to its parent's ring */
static int start_state;    /* 0: not started yet, 1: a thread is starting, 2: decided (see lazy_start) */
static int constructed;    /* the constructor has run: the environment is there */
static uint64_t self_lo, self_hi; /* the recorder's executable segment */

static void lazy_start(void);

static int recording(void)
{
  if (__builtin_expect(!__atomic_load_n(&ring_mapped, __ATOMIC_ACQUIRE), 0))
    lazy_start();
  return __atomic_load_n(&ring_mapped, __ATOMIC_ACQUIRE) && !__atomic_load_n(&forked_child, __ATOMIC_RELAXED) &&
         __atomic_load_n(&ring.sh->enabled, __ATOMIC_ACQUIRE) && ring.sh->pid == own_pid;
}

static void atfork_child(void) { __atomic_store_n(&forked_child, 1, __ATOMIC_RELAXED); }

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
  uint64_t me = (uint64_t)(uintptr_t)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    uint64_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (me >= lo && me < hi) {
      self_lo = lo;
      self_hi = hi;
      return 1;
    }
  }
  return 0;
}

/* Maps a file read-write and shared (the ring) or read-only (the table arena). Returns the mapping or NULL. */
static void *map_file(const char *path, int writable, size_t *len)
{
  int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  void *p = NULL;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    p = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
      p = NULL;
    else
      *len = (size_t)st.st_size;
  }
  close(fd);
  return p;
}

/* ---- injection: point the loaded modules' GOT entries at the wrappers ---- */

/* A process the recorder was injected into resolved its malloc calls long ago: each module's GOT holds libc's
 * functions. As heaptrack does, every module's relocated slots for the wrapped names are rewritten to the
 * wrappers (mprotect'ing read-only RELRO pages for the write); a preloaded recorder needs none of this. */
static const struct {
  const char *name;
  void *wrapper;
} wrapped[] = {
    {"malloc", (void *)malloc},   {"calloc", (void *)calloc},         {"realloc", (void *)realloc},
    {"free", (void *)free},       {"posix_memalign", (void *)posix_memalign},
    {"aligned_alloc", (void *)aligned_alloc}, {"memalign", (void *)memalign},
    {"valloc", (void *)valloc},   {"pvalloc", (void *)pvalloc},
};

#if defined(__x86_64__)
#define R_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB R_X86_64_GLOB_DAT
#else
#define R_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB R_AARCH64_GLOB_DAT
#endif

static void *wrapper_of(const char *name)
{
  for (size_t i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++)
    if (!strcmp(wrapped[i].name, name))
      return wrapped[i].wrapper;
  return NULL;
}

static void patch_slot(uint64_t addr, void *value)
{
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(page - 1);
  void *cur;
  memcpy(&cur, (void *)(uintptr_t)addr, sizeof cur);
  if (cur == value)
    return;
  /* RELRO pages are read-only; our own store makes them writable for a moment. Leaving them writable
   * afterwards would weaken the program, so they go back to read-only (a page that was writable stays so:
   * mprotect of a writable .got.plt page to read-write changes nothing). */
  int ro = mprotect((void *)lo, (size_t)page, PROT_READ | PROT_WRITE) == 0;
  memcpy((void *)(uintptr_t)addr, &value, sizeof value);
  (void)ro;
}

static void patch_relocs(uint64_t base, const ElfW(Rela) *rel, size_t n, const ElfW(Sym) *syms, const char *strs)
{
  for (size_t i = 0; i < n; i++) {
    unsigned type = (unsigned)ELF64_R_TYPE(rel[i].r_info), si = (unsigned)ELF64_R_SYM(rel[i].r_info);
    if ((type != R_SLOT && type != R_GLOB) || si == 0)
      continue;
    void *w = wrapper_of(strs + syms[si].st_name);
    if (w)
      patch_slot(base + rel[i].r_offset, w);
  }
}

/* Addresses in a module's dynamic section: glibc relocates some in place, others stay link-time. */
static uint64_t dyn_addr(uint64_t base, uint64_t v) { return v < base ? v + base : v; }

/* The dynamic loader calls malloc, calloc, realloc and free through pointers of its own (glibc's __rtld_malloc
 * and the like, hidden in its RELRO data), set to libc's functions once libc was loaded: a new thread's TLS
 * blocks come from there. They are not relocations, so the words of its RELRO range that hold one of those four
 * functions are pointed at the wrappers instead. */
static void patch_loader_pointers(uint64_t lo, uint64_t len)
{
  const void *real[] = {(void *)real_malloc, (void *)real_calloc, (void *)real_realloc, (void *)real_free};
  void *wrap[] = {(void *)malloc, (void *)calloc, (void *)realloc, (void *)free};
  uint64_t a = (lo + 7) & ~(uint64_t)7;
  for (; a + sizeof(void *) <= lo + len; a += sizeof(void *)) {
    void *cur;
    memcpy(&cur, (void *)(uintptr_t)a, sizeof cur);
    for (int k = 0; k < 4; k++)
      if (cur && cur == real[k])
        patch_slot(a, wrap[k]);
  }
}

static void relro_read_only(uint64_t relro_lo, uint64_t relro_len)
{
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t lo = (uintptr_t)relro_lo & ~(uintptr_t)(page - 1);
  uintptr_t hi = ((uintptr_t)relro_lo + relro_len) & ~(uintptr_t)(page - 1); /* ld.so rounds down too */
  if (hi > lo)
    mprotect((void *)lo, hi - lo, PROT_READ);
}

static int patch_module(struct dl_phdr_info *info, size_t size, void *data)
{
  (void)size;
  (void)data;
  uint64_t base = info->dlpi_addr;
  const ElfW(Dyn) *dyn = NULL;
  int relro = 0;
  uint64_t relro_lo = 0, relro_len = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_DYNAMIC)
      dyn = (const ElfW(Dyn) *)(uintptr_t)(base + ph->p_vaddr);
    if (ph->p_type == PT_GNU_RELRO) {
      relro = 1;
      relro_lo = base + ph->p_vaddr;
      relro_len = ph->p_memsz;
    }
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && self_lo >= base + ph->p_vaddr &&
        self_lo < base + ph->p_vaddr + ph->p_memsz)
      return 0; /* the recorder itself */
  }
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  if (strstr(name, "ld-linux") && relro && relro_len) {
    patch_loader_pointers(relro_lo, relro_len);
    relro_read_only(relro_lo, relro_len);
    return 0;
  }
  if (!dyn || strstr(name, "linux-vdso") || strstr(name, "ld-linux"))
    return 0;
  const ElfW(Sym) *syms = NULL;
  const char *strs = NULL;
  const ElfW(Rela) *jmprel = NULL, *rela = NULL;
  size_t jmprel_sz = 0, rela_sz = 0;
  for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
    switch (d->d_tag) {
    case DT_SYMTAB: syms = (const ElfW(Sym) *)(uintptr_t)dyn_addr(base, d->d_un.d_ptr); break;
    case DT_STRTAB: strs = (const char *)(uintptr_t)dyn_addr(base, d->d_un.d_ptr); break;
    case DT_JMPREL: jmprel = (const ElfW(Rela) *)(uintptr_t)dyn_addr(base, d->d_un.d_ptr); break;
    case DT_PLTRELSZ: jmprel_sz = d->d_un.d_val; break;
    case DT_RELA: rela = (const ElfW(Rela) *)(uintptr_t)dyn_addr(base, d->d_un.d_ptr); break;
    case DT_RELASZ: rela_sz = d->d_un.d_val; break;
    default: break;
    }
  }
  if (!syms || !strs)
    return 0;
  if (jmprel)
    patch_relocs(base, jmprel, jmprel_sz / sizeof *jmprel, syms, strs);
  if (rela)
    patch_relocs(base, rela, rela_sz / sizeof *rela, syms, strs);
  if (relro && relro_len)
    relro_read_only(relro_lo, relro_len);
  return 0;
}

static int start(const char *ring_path, const char *arena_path);

/* The agent's entry point after injecting the recorder: starts recording (see start) and points every loaded
 * module's calls of the wrapped functions at the wrappers. Returns 0 or -1. */
EXPORT int rsprof_recorder_attach(const char *ring_path, const char *arena_path)
{
  __atomic_store_n(&start_state, 2, __ATOMIC_RELEASE); /* injected: no environment to start from */
  int rc = start(ring_path, arena_path);
  if (rc == 0)
    dl_iterate_phdr(patch_module, NULL);
  return rc;
}

/* Starts recording into the ring at ring_path, unwinding with the tables at arena_path (NULL: frame pointers
 * only). A preloaded recorder calls it from its constructor with the paths in RSPROF_RECORDER_RING and
 * RSPROF_RECORDER_ARENA. Returns 0, or -1 when the ring cannot be mapped (the recorder then only forwards). */
static int start(const char *ring_path, const char *arena_path)
{
  if (__atomic_load_n(&ring_mapped, __ATOMIC_ACQUIRE))
    return 0;
  resolve();
  size_t len = 0;
  void *mem = map_file(ring_path, 1, &len);
  if (!mem)
    return -1;
  struct rring r;
  /* A ring that is not this process's (a child that inherited the environment, after an exec): nothing of it
   * may change, not even the header. */
  if (rring_open(&r, mem, len) != 0 || r.sh->pid != (int32_t)getpid()) {
    munmap(mem, len);
    return -1;
  }
  if (arena_path && *arena_path)
    rec_tables_open(arena_path);
  dl_iterate_phdr(find_self, (void *)(uintptr_t)&start);
  own_pid = (int32_t)getpid();
  ring = r;
  for (int i = 0; i < RRING_NFUNCS; i++) {
    void *fn[RRING_NFUNCS] = {
        [RRING_MALLOC] = (void *)real_malloc, [RRING_CALLOC] = (void *)real_calloc,
        [RRING_REALLOC] = (void *)real_realloc, [RRING_FREE] = (void *)real_free,
        [RRING_POSIX_MEMALIGN] = (void *)real_posix_memalign, [RRING_ALIGNED_ALLOC] = (void *)real_aligned_alloc,
        [RRING_MEMALIGN] = (void *)real_memalign, [RRING_VALLOC] = (void *)real_valloc,
        [RRING_PVALLOC] = (void *)real_pvalloc,
    };
    ring.sh->real[i] = (uint64_t)(uintptr_t)fn[i];
  }
  ring.sh->recorder_lo = self_lo;
  ring.sh->recorder_hi = self_hi;
  static int atfork_done;
  if (!atfork_done++)
    pthread_atfork(NULL, NULL, atfork_child);
  __atomic_store_n(&ring_mapped, 1, __ATOMIC_RELEASE);
  __atomic_store_n(&ring.sh->recorder_ready, 1, __ATOMIC_RELEASE);
  return 0;
}

/* A preloaded recorder starts at the first call it wraps, or at its constructor: the constructors of the
 * libraries it was loaded before run first, and their blocks count too. Until the environment is set up
 * (ld.so's own early blocks) another try comes later; from the constructor on the first answer is final. */

static void lazy_start(void)
{
  int expect = 0;
  if (!__atomic_compare_exchange_n(&start_state, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
    return; /* decided, or another thread is starting: this call is forwarded */
  const char *ring_path = getenv("RSPROF_RECORDER_RING");
  if (!ring_path || !*ring_path) {
    __atomic_store_n(&start_state, __atomic_load_n(&constructed, __ATOMIC_RELAXED) ? 2 : 0, __ATOMIC_RELEASE);
    return;
  }
  start(ring_path, getenv("RSPROF_RECORDER_ARENA"));
  __atomic_store_n(&start_state, 2, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void recorder_init(void)
{
  resolve();
  __atomic_store_n(&constructed, 1, __ATOMIC_RELAXED);
  lazy_start();
}

/* ---- one record ---- */

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads of the thread's own stack for the walk: only above the walk's first stack pointer and within a bound,
 * so a wrong rule cannot make the program fault. */
struct stack_bounds {
  uint64_t lo, hi;
};

static int read_stack(void *ctx, uint64_t addr, void *buf, size_t len)
{
  const struct stack_bounds *b = ctx;
  if (addr < b->lo || addr + len > b->hi || addr + len < addr || (addr & 7))
    return -1;
  memcpy(buf, (const void *)(uintptr_t)addr, len);
  return 0;
}

#define STACK_BOUND (8u << 20) /* reads stay within this many bytes above the first stack pointer */

/* One frame by the frame-pointer convention, where no table row covers a PC. Returns 0 or -1. */
static int fp_step(const struct utab_memory *mem, const struct utab_regs *in, struct utab_regs *out)
{
  if (!(in->have & UTAB_HAVE_FP) || in->fp < in->sp || (in->fp & 7))
    return -1;
  uint64_t saved[2];
  if (mem->read(mem->ctx, in->fp, saved, sizeof saved))
    return -1;
  *out = (struct utab_regs){.pc = saved[1], .sp = in->fp + 16, .fp = saved[0], .have = UTAB_HAVE_SP | UTAB_HAVE_FP};
  return saved[1] ? 0 : -1;
}

/* Walks the calling thread's stack from regs: pcs[0] = regs->pc, then each caller's return address - 1.
 * Sets RRING_F_FP and RRING_F_TRUNCATED in *flags as the walk goes. Returns the number of PCs. */
static size_t walk(const struct utab_regs *regs, uint64_t *pcs, size_t max, uint8_t *flags)
{
  struct rec_tables tabs;
  rec_tables_view(&tabs);
  struct stack_bounds b = {regs->sp, regs->sp + STACK_BOUND};
  struct utab_memory mem = {read_stack, &b};
  struct utab_regs cur = *regs, next;
  size_t n = 0;
  for (;;) {
    pcs[n] = n == 0 ? cur.pc : cur.pc - 1;
    n++;
    if (n == max) {
      *flags |= RRING_F_TRUNCATED;
      return n;
    }
    int st = utab_step(tabs.mods, tabs.nmods, &mem, n == 1, &cur, &next);
    if (st == UTAB_END)
      return n;
    if (st == UTAB_NEED_HOST && fp_step(&mem, &cur, &next) == 0) {
      if (tabs.nmods)
        __atomic_add_fetch(&ring.sh->fp_frames, 1, __ATOMIC_RELAXED);
      *flags |= RRING_F_FP;
    } else if (st != UTAB_OK) {
      if (st == UTAB_NEED_HOST)
        __atomic_add_fetch(&ring.sh->no_table, 1, __ATOMIC_RELAXED);
      /* Without tables a frame-pointer chain just ends (the outermost frame's saved fp is 0). */
      if (!(st == UTAB_NEED_HOST && !(*flags & RRING_F_FP) && tabs.nmods == 0))
        *flags |= RRING_F_TRUNCATED;
      return n;
    }
    if (next.sp <= cur.sp && n > 1) {
      *flags |= RRING_F_TRUNCATED;
      return n;
    }
    cur = next;
  }
}

/* The registers of this point of the recorder: PC, SP and FP (and x30) read in one asm statement, so they
 * describe the same instruction. */
static inline __attribute__((always_inline)) void here(struct utab_regs *r)
{
#if defined(__x86_64__)
  __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(r->pc), "=r"(r->sp), "=r"(r->fp));
  r->lr = 0;
  r->have = UTAB_HAVE_SP | UTAB_HAVE_FP;
#elif defined(__aarch64__)
  __asm__ volatile("adr %0, .\n\tmov %1, sp\n\tmov %2, x29\n\tmov %3, x30"
                   : "=r"(r->pc), "=r"(r->sp), "=r"(r->fp), "=r"(r->lr));
  r->have = UTAB_HAVE_SP | UTAB_HAVE_FP | UTAB_HAVE_LR;
#else
#error "the recorder knows x86_64 and aarch64"
#endif
}

/* A call in progress: what the wrapper knows before and after forwarding it. */
struct call {
  int func;
  int nargs;
  uint64_t args[RRING_MAX_ARGS];
  uint64_t ns;
  uint64_t marker; /* RRING_MARKER: the marker's address, which stands where its own frame was */
};

/* Waits for room in a full ring: spins a little, then sleeps in short steps; gives up (the record is lost,
 * counted) when recording is turned off or after RRING_WAIT_LIMIT_NS. Returns 0 with *rec, or -1. */
static int reserve_waiting(uint32_t len, uint8_t **rec)
{
  if (rring_reserve(&ring, len, rec) == 0)
    return 0;
  uint64_t start = now_ns(), t = start;
  __atomic_add_fetch(&ring.sh->waits, 1, __ATOMIC_RELAXED);
  for (unsigned i = 0;; i++) {
    if (i < 64) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      __asm__ volatile("yield");
#endif
    } else {
      struct timespec d = {0, 20000};
      nanosleep(&d, NULL);
      t = now_ns();
    }
    if (rring_reserve(&ring, len, rec) == 0) {
      __atomic_add_fetch(&ring.sh->wait_ns, now_ns() - start, __ATOMIC_RELAXED);
      return 0;
    }
    if (!__atomic_load_n(&ring.sh->enabled, __ATOMIC_ACQUIRE) || t - start > RRING_WAIT_LIMIT_NS) {
      __atomic_add_fetch(&ring.sh->wait_ns, now_ns() - start, __ATOMIC_RELAXED);
      __atomic_add_fetch(&ring.sh->lost, 1, __ATOMIC_RELAXED);
      return -1;
    }
  }
}

/* Unwinds the caller of the wrapper and writes the call's record. has_ret: retval (and ret_mem) are the
 * result. Never inlined, so that its frame and the wrapper's are the recorder's only ones on the stack. */
static __attribute__((noinline)) void record(const struct call *c, int has_ret, uint64_t retval, int has_mem,
                                             uint64_t ret_mem)
{
  uint64_t ret_ns = has_ret ? now_ns() : 0;
  uint64_t pcs[RRING_MAX_PCS + 4];
  uint8_t flags = 0;
  struct utab_regs r;
  here(&r);
  size_t n = walk(&r, pcs, RRING_MAX_PCS + 4, &flags);
  /* The recorder's own frames (this function, the wrapper) become the real function's entry, where a
   * breakpoint would have stopped the thread. */
  size_t skip = 0;
  while (skip < n && pcs[skip] >= self_lo && pcs[skip] < self_hi)
    skip++;
  if (skip == 0) /* cannot happen: pcs[0] is here */
    skip = 1;
  if (c->func == RRING_MARKER && skip + 1 < n)
    skip++; /* the marker's frame too: its caller is the program's */
  pcs[skip - 1] = c->func == RRING_MARKER ? c->marker : ring.sh->real[c->func];
  uint64_t *stack = pcs + skip - 1;
  n -= skip - 1;
  if (n > RRING_MAX_PCS) {
    n = RRING_MAX_PCS;
    flags |= RRING_F_TRUNCATED;
  }
  uint32_t len = RRING_CALL_FIXED + 8 * (uint32_t)n;
  uint8_t *p;
  if (reserve_waiting(len, &p))
    return;
  struct rring_call *rc = (struct rring_call *)p;
  rc->kind = RRING_REC_CALL;
  rc->func = (uint8_t)c->func;
  rc->flags = flags | (has_ret ? RRING_F_HAS_RET : 0) | (has_mem ? RRING_F_RET_MEM : 0);
  rc->nargs = (uint8_t)c->nargs;
  rc->tid = (uint32_t)current_tid();
  rc->npcs = (uint32_t)n;
  rc->ns = c->ns;
  rc->ret_ns = ret_ns;
  rc->retval = retval;
  rc->ret_mem = ret_mem;
  memcpy(rc->args, c->args, sizeof rc->args);
  memcpy(rc->pcs, stack, 8 * n);
  rring_commit(p, len);
  __atomic_add_fetch(&ring.sh->records, 1, __ATOMIC_RELAXED);
}

static void begin(struct call *c, int func, int nargs, uint64_t a0, uint64_t a1, uint64_t a2)
{
  c->func = func;
  c->nargs = nargs;
  c->args[0] = a0;
  c->args[1] = a1;
  c->args[2] = a2;
  c->args[3] = 0;
  c->ns = now_ns();
  c->marker = 0;
}

/* The stubs' marker __rsprof_memtrace_event(event, size, align, ptr) calls this, with its own address, while
 * its hook points here (the collector sets it, --capture inprocess): the call is recorded as the marker's, its
 * stack from the marker's caller on. Returns ptr, as the marker does. */
EXPORT void *rsprof_recorder_marker(size_t event, size_t size, size_t align, void *ptr, void *marker)
{
  if (recording()) {
    struct call c;
    begin(&c, RRING_MARKER, 4, event, size, align);
    c.args[3] = (uint64_t)(uintptr_t)ptr;
    c.marker = (uint64_t)(uintptr_t)marker;
    record(&c, 0, 0, 0, 0);
  }
  return ptr;
}

/* ---- the wrappers ---- */

EXPORT void *malloc(size_t size)
{
  if (resolve() < 0)
    return arena_alloc(size, ARENA_ALIGN);
  if (!recording())
    return real_malloc(size);
  struct call c;
  begin(&c, RRING_MALLOC, 1, size, 0, 0);
  void *p = real_malloc(size);
  record(&c, 1, (uint64_t)(uintptr_t)p, 0, 0);
  return p;
}

EXPORT void *calloc(size_t n, size_t size)
{
  if (resolve() < 0) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
      return NULL;
    return arena_alloc(total, ARENA_ALIGN); /* static storage is already zero */
  }
  if (!recording())
    return real_calloc(n, size);
  struct call c;
  begin(&c, RRING_CALLOC, 2, n, size, 0);
  void *p = real_calloc(n, size);
  record(&c, 1, (uint64_t)(uintptr_t)p, 0, 0);
  return p;
}

EXPORT void free(void *p)
{
  if (!p || in_arena(p))
    return;
  if (resolve() < 0)
    return; /* cannot happen: only arena blocks exist before resolving finishes */
  if (recording()) {
    /* Recorded before the call: once free returns, another thread may be handed the same address. */
    struct call c;
    begin(&c, RRING_FREE, 1, (uint64_t)(uintptr_t)p, 0, 0);
    record(&c, 0, 0, 0, 0);
  }
  real_free(p);
}

EXPORT void *realloc(void *old, size_t size)
{
  if (in_arena(old) || resolve() < 0) {
    void *p = malloc(size);
    if (p && old) {
      size_t n = arena_size_of(old);
      memcpy(p, old, n < size ? n : size);
    }
    return p;
  }
  if (!recording())
    return real_realloc(old, size);
  struct call c;
  begin(&c, RRING_REALLOC, 2, (uint64_t)(uintptr_t)old, size, 0);
  void *p = real_realloc(old, size);
  record(&c, 1, (uint64_t)(uintptr_t)p, 0, 0);
  return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
  if (resolve() < 0) {
    void *p = arena_alloc(size, align);
    if (!p)
      return ENOMEM;
    *out = p;
    return 0;
  }
  if (!recording())
    return real_posix_memalign(out, align, size);
  struct call c;
  begin(&c, RRING_POSIX_MEMALIGN, 3, (uint64_t)(uintptr_t)out, align, size);
  int rc = real_posix_memalign(out, align, size);
  record(&c, 1, (uint64_t)(unsigned)rc, 1, rc == 0 ? (uint64_t)(uintptr_t)*out : 0);
  return rc;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
  if (resolve() < 0)
    return arena_alloc(size, align);
  if (!recording())
    return real_aligned_alloc(align, size);
  struct call c;
  begin(&c, RRING_ALIGNED_ALLOC, 2, align, size, 0);
  void *p = real_aligned_alloc(align, size);
  record(&c, 1, (uint64_t)(uintptr_t)p, 0, 0);
  return p;
}

EXPORT void *memalign(size_t align, size_t size)
{
  if (resolve() < 0)
    return arena_alloc(size, align);
  if (!recording())
    return real_memalign(align, size);
  struct call c;
  begin(&c, RRING_MEMALIGN, 2, align, size, 0);
  void *p = real_memalign(align, size);
  record(&c, 1, (uint64_t)(uintptr_t)p, 0, 0);
  return p;
}

EXPORT void *valloc(size_t size)
{
  if (resolve() < 0)
    return arena_alloc(size, 4096);
  if (!real_valloc)
    return real_memalign(4096, size);
  if (!recording())
    return real_valloc(size);
  struct call c;
  begin(&c, RRING_VALLOC, 1, size, 0, 0);
  void *p = real_valloc(size);
  record(&c, 1, (uint64_t)(uintptr_t)p, 0, 0);
  return p;
}

EXPORT void *pvalloc(size_t size)
{
  if (resolve() < 0)
    return arena_alloc((size + 4095) & ~(size_t)4095, 4096);
  if (!real_pvalloc)
    return real_memalign(4096, (size + 4095) & ~(size_t)4095);
  if (!recording())
    return real_pvalloc(size);
  struct call c;
  begin(&c, RRING_PVALLOC, 1, size, 0, 0);
  void *p = real_pvalloc(size);
  record(&c, 1, (uint64_t)(uintptr_t)p, 0, 0);
  return p;
}
