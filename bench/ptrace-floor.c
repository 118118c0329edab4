/* The floor of any breakpoint-based allocation tracer on this machine: a minimal ptrace tracer that stops at
 * every malloc/calloc/realloc/free, reads the registers and 8 KiB of stack, steps over the breakpoint with a
 * single-step and continues. With --emulate it instead executes the displaced first instruction itself when it
 * is a simple one (endbr64, push reg, test reg,reg), as an agent can, and single-steps only otherwise.
 * Usage: ptrace-floor [--stack BYTES] [--emulate] -- PROGRAM [ARGS...]; prints its hit counts on stderr as
 * "floor: hits=N malloc=... calloc=... realloc=... free=... emulated=N". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* process_vm_readv */
#endif
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define NFUNCS 4
static const char *const func_names[NFUNCS] = {"malloc", "calloc", "realloc", "free"};

struct bp {
  uint64_t addr;
  long orig_word; /* the word at addr before the int3 went in */
  uint64_t hits;
};

static void die(const char *what)
{
  fprintf(stderr, "ptrace-floor: %s: %s\n", what, strerror(errno));
  exit(2);
}

/* Finds the file and load base of the mapping whose path contains "libc.so" (the one at file offset 0). */
static int find_libc(pid_t pid, char *path, size_t pathlen, uint64_t *base)
{
  char name[64];
  snprintf(name, sizeof name, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(name, "r");
  if (!f)
    return -1;
  char line[1024];
  int found = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, off;
    char file[512] = "";
    if (sscanf(line, "%lx-%*x %*s %lx %*s %*s %511s", &lo, &off, file) < 2)
      continue;
    if (off == 0 && strstr(file, "/libc.so")) {
      snprintf(path, pathlen, "%s", file);
      *base = lo;
      found = 0;
      break;
    }
  }
  fclose(f);
  return found;
}

/* Looks the allocator functions up in the libc file's .dynsym; fills offs[] (0 when missing). */
static int resolve_dynsym(const char *path, uint64_t offs[NFUNCS])
{
  elf_version(EV_CURRENT);
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  Elf *e = elf_begin(fd, ELF_C_READ, NULL);
  Elf_Scn *scn = NULL;
  int rc = -1;
  while (e && (scn = elf_nextscn(e, scn)) != NULL) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM)
      continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
    for (size_t i = 0; d && i < n; i++) {
      GElf_Sym s;
      if (!gelf_getsym(d, (int)i, &s) || GELF_ST_TYPE(s.st_info) != STT_FUNC || s.st_value == 0)
        continue;
      const char *nm = elf_strptr(e, sh.sh_link, s.st_name);
      for (int k = 0; nm && k < NFUNCS; k++)
        if (strcmp(nm, func_names[k]) == 0)
          offs[k] = s.st_value;
    }
    rc = 0;
  }
  if (e)
    elf_end(e);
  close(fd);
  return rc;
}

static long int3_word(long w) { return (w & ~0xffL) | 0xcc; }

/* Reads the auxiliary vector's AT_ENTRY: the program's entry point, reached after libc is mapped. */
static uint64_t entry_point(pid_t pid)
{
  char name[64];
  snprintf(name, sizeof name, "/proc/%d/auxv", (int)pid);
  int fd = open(name, O_RDONLY);
  uint64_t av[2], entry = 0;
  while (fd >= 0 && read(fd, av, sizeof av) == sizeof av)
    if (av[0] == 9 /* AT_ENTRY */)
      entry = av[1];
  if (fd >= 0)
    close(fd);
  return entry;
}

/* The value of general register number r (0-15, x86 encoding order). */
static unsigned long long *gpr(struct user_regs_struct *g, unsigned r)
{
  unsigned long long *const map[16] = {&g->rax, &g->rcx, &g->rdx, &g->rbx, &g->rsp, &g->rbp, &g->rsi, &g->rdi,
                                       &g->r8,  &g->r9,  &g->r10, &g->r11, &g->r12, &g->r13, &g->r14, &g->r15};
  return map[r & 15];
}

/* Executes the instruction whose first bytes are code (saved before the int3 went in) on the stopped
 * thread's registers. Returns 1 when done (registers updated, rip past it), 0 when the instruction is not
 * one we emulate and must be single-stepped. */
static int emulate(pid_t pid, struct user_regs_struct *g, const uint8_t *code)
{
  if (code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && code[3] == 0xfa) { /* endbr64 */
    g->rip += 4;
    return 1;
  }
  unsigned rex = (code[0] & 0xf0) == 0x40 ? code[0] : 0, i = rex ? 1 : 0;
  if (code[i] >= 0x50 && code[i] <= 0x57 && !(rex & 0x08)) { /* push r64 */
    unsigned long long v = *gpr(g, (code[i] - 0x50) | ((rex & 1) << 3));
    if (ptrace(PTRACE_POKEDATA, pid, (void *)(g->rsp - 8), (void *)v) < 0)
      return 0;
    g->rsp -= 8;
    g->rip += i + 1;
    return 1;
  }
  if ((rex & 0x08) && code[i] == 0x85 && (code[i + 1] & 0xc0) == 0xc0) { /* test r64, r64 */
    unsigned a = (code[i + 1] & 7) | ((rex & 1) << 3), b = ((code[i + 1] >> 3) & 7) | ((rex & 4) << 1);
    unsigned long long v = *gpr(g, a) & *gpr(g, b);
    unsigned long long f = g->eflags & ~(0x1ULL | 0x4ULL | 0x40ULL | 0x80ULL | 0x800ULL); /* CF PF ZF SF OF */
    if (v == 0)
      f |= 0x40;
    if (v >> 63)
      f |= 0x80;
    if (!(__builtin_popcount((unsigned)(v & 0xff)) & 1))
      f |= 0x4;
    g->eflags = f;
    g->rip += i + 2;
    return 1;
  }
  return 0;
}

static int wait_stop(pid_t pid, int *status)
{
  if (waitpid(pid, status, 0) != pid)
    die("waitpid");
  return WIFSTOPPED(*status);
}

int main(int argc, char **argv)
{
  size_t stack_bytes = 8192;
  int argi = 1, emulate_first = 0;
  for (; argi < argc; argi++) {
    if (strcmp(argv[argi], "--stack") == 0 && argi + 1 < argc)
      stack_bytes = strtoul(argv[++argi], NULL, 0);
    else if (strcmp(argv[argi], "--emulate") == 0)
      emulate_first = 1;
    else if (strcmp(argv[argi], "--") == 0) {
      argi++;
      break;
    } else
      break;
  }
  if (argi >= argc) {
    fprintf(stderr, "usage: ptrace-floor [--stack BYTES] [--emulate] -- PROGRAM [ARGS...]\n");
    return 2;
  }

  pid_t pid = fork();
  if (pid < 0)
    die("fork");
  if (pid == 0) {
    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    execvp(argv[argi], argv + argi);
    _exit(127);
  }
  int status;
  if (!wait_stop(pid, &status))
    die("program did not stop at exec");
  ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)PTRACE_O_EXITKILL);

  /* Run to the entry point so the dynamic loader has mapped libc. */
  uint64_t entry = entry_point(pid);
  errno = 0;
  long entry_word = ptrace(PTRACE_PEEKTEXT, pid, (void *)entry, NULL);
  if (errno)
    die("peek entry");
  ptrace(PTRACE_POKETEXT, pid, (void *)entry, (void *)int3_word(entry_word));
  ptrace(PTRACE_CONT, pid, NULL, NULL);
  if (!wait_stop(pid, &status) || WSTOPSIG(status) != SIGTRAP)
    die("program did not reach its entry point");
  struct user_regs_struct regs;
  ptrace(PTRACE_GETREGS, pid, NULL, &regs);
  ptrace(PTRACE_POKETEXT, pid, (void *)entry, (void *)entry_word);
  regs.rip = entry;
  ptrace(PTRACE_SETREGS, pid, NULL, &regs);

  char libc_path[512];
  uint64_t base, offs[NFUNCS] = {0};
  if (find_libc(pid, libc_path, sizeof libc_path, &base) < 0 || resolve_dynsym(libc_path, offs) < 0) {
    fprintf(stderr, "ptrace-floor: cannot find libc's allocator in the program\n");
    kill(pid, SIGKILL);
    return 2;
  }
  struct bp bps[NFUNCS];
  for (int k = 0; k < NFUNCS; k++) {
    bps[k].addr = offs[k] ? base + offs[k] : 0;
    bps[k].hits = 0;
    if (!bps[k].addr)
      continue;
    errno = 0;
    bps[k].orig_word = ptrace(PTRACE_PEEKTEXT, pid, (void *)bps[k].addr, NULL);
    if (errno)
      die("peek breakpoint");
    ptrace(PTRACE_POKETEXT, pid, (void *)bps[k].addr, (void *)int3_word(bps[k].orig_word));
  }

  char *stack = malloc(stack_bytes);
  uint64_t sink = 0, hits = 0, emulated = 0;
  int deliver = 0;
  for (;;) {
    ptrace(PTRACE_CONT, pid, NULL, (void *)(long)deliver);
    deliver = 0;
    if (!wait_stop(pid, &status))
      break; /* exited or killed */
    if (WSTOPSIG(status) != SIGTRAP) {
      deliver = WSTOPSIG(status);
      continue;
    }
    ptrace(PTRACE_GETREGS, pid, NULL, &regs);
    uint64_t at = regs.rip - 1;
    int k = 0;
    while (k < NFUNCS && bps[k].addr != at)
      k++;
    if (k == NFUNCS)
      continue;
    bps[k].hits++;
    hits++;

    /* What a stack-capturing tracer needs: the registers (above) and a window of stack from SP. */
    struct iovec local = {stack, stack_bytes}, remote = {(void *)regs.rsp, stack_bytes};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got > 0)
      sink += (uint8_t)stack[got - 1];

    /* Step over without a single-step when the displaced instruction is simple enough to emulate. */
    regs.rip = at;
    if (emulate_first && emulate(pid, &regs, (const uint8_t *)&bps[k].orig_word)) {
      ptrace(PTRACE_SETREGS, pid, NULL, &regs);
      emulated++;
      continue;
    }
    /* Step over: put the original instruction back, execute it alone, re-insert the breakpoint. */
    ptrace(PTRACE_POKETEXT, pid, (void *)at, (void *)bps[k].orig_word);
    ptrace(PTRACE_SETREGS, pid, NULL, &regs);
    ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL);
    if (!wait_stop(pid, &status))
      break;
    ptrace(PTRACE_POKETEXT, pid, (void *)at, (void *)int3_word(bps[k].orig_word));
  }
  fprintf(stderr, "floor: hits=%llu malloc=%llu calloc=%llu realloc=%llu free=%llu emulated=%llu (sink %llu)\n",
          (unsigned long long)hits, (unsigned long long)bps[0].hits, (unsigned long long)bps[1].hits,
          (unsigned long long)bps[2].hits, (unsigned long long)bps[3].hits, (unsigned long long)emulated,
          (unsigned long long)(sink & 1));
  free(stack);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
