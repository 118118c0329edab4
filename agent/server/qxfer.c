/* qXfer objects: target description, auxv, executable name, thread list and the dynamic linker's
 * library list (read from r_debug's link map in target memory, formatted like gdbserver's). */
#include "qxfer.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "hex.h"

static int read_file(const char *path, struct rs_buf *out)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  uint8_t tmp[4096];
  ssize_t n;
  int rc = 0;
  while ((n = read(fd, tmp, sizeof tmp)) > 0)
    if (rs_buf_append(out, tmp, (size_t)n)) {
      rc = -1;
      break;
    }
  close(fd);
  return n < 0 ? -1 : rc;
}

static int rd64(struct inferior *inf, uint64_t addr, uint64_t *v)
{
  return inf_read(inf, addr, v, 8) == 8 ? 0 : -1;
}

static void xml_escaped(struct rs_buf *b, const char *s)
{
  for (; *s; s++) {
    switch (*s) {
    case '<': rs_buf_puts(b, "&lt;"); break;
    case '>': rs_buf_puts(b, "&gt;"); break;
    case '&': rs_buf_puts(b, "&amp;"); break;
    case '"': rs_buf_puts(b, "&quot;"); break;
    case '\'': rs_buf_puts(b, "&apos;"); break;
    default: rs_buf_putc(b, (uint8_t)*s);
    }
  }
}

/* Finds r_debug through the executable's DT_DEBUG entry: AT_PHDR/AT_PHNUM locate the program
 * headers in memory, PT_PHDR gives the load bias, PT_DYNAMIC the dynamic section. Returns 0 when
 * the dynamic linker has not filled it in yet. */
static uint64_t find_r_debug(struct inferior *inf)
{
  struct rs_buf auxv;
  rs_buf_init(&auxv, 1 << 16);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/auxv", (int)inf->pid);
  uint64_t phdr = 0, phnum = 0, result = 0;
  if (read_file(path, &auxv) == 0) {
    for (size_t off = 0; off + 16 <= auxv.len; off += 16) {
      uint64_t k, v;
      memcpy(&k, auxv.data + off, 8);
      memcpy(&v, auxv.data + off + 8, 8);
      if (k == AT_PHDR)
        phdr = v;
      else if (k == AT_PHNUM)
        phnum = v;
    }
  }
  rs_buf_free(&auxv);
  if (!phdr || !phnum || phnum > 256)
    return 0;
  Elf64_Phdr ph[256];
  if (inf_read(inf, phdr, ph, phnum * sizeof ph[0]) != (long)(phnum * sizeof ph[0]))
    return 0;
  uint64_t bias = 0, dyn = 0;
  for (uint64_t i = 0; i < phnum; i++)
    if (ph[i].p_type == PT_PHDR)
      bias = phdr - ph[i].p_vaddr;
  for (uint64_t i = 0; i < phnum; i++)
    if (ph[i].p_type == PT_DYNAMIC)
      dyn = ph[i].p_vaddr + bias;
  if (!dyn)
    return 0;
  for (int i = 0; i < 512; i++) {
    Elf64_Dyn d;
    if (inf_read(inf, dyn + (uint64_t)i * sizeof d, &d, sizeof d) != (long)sizeof d || d.d_tag == DT_NULL)
      break;
    if (d.d_tag == DT_DEBUG) {
      result = d.d_un.d_ptr;
      break;
    }
  }
  return result;
}

static void libraries_svr4(struct agent_server *s, struct rs_buf *b)
{
  struct inferior *inf = s->inf;
  uint64_t rd = find_r_debug(inf), lm = 0;
  if (!rd || rd64(inf, rd + offsetof(struct r_debug, r_map), &lm) || !lm) {
    rs_buf_puts(b, "<library-list-svr4 version=\"1.0\"/>");
    return;
  }
  rs_buf_printf(b, "<library-list-svr4 version=\"1.0\" main-lm=\"0x%llx\">", (unsigned long long)lm);
  /* The first entry is the executable itself (reported as main-lm); walk the rest, bounded. */
  uint64_t prev = lm;
  rd64(inf, lm + offsetof(struct link_map, l_next), &lm);
  for (int n = 0; lm && n < 4096; n++) {
    uint64_t l_addr, l_name, l_ld, l_next, l_prev;
    if (rd64(inf, lm + offsetof(struct link_map, l_addr), &l_addr) ||
        rd64(inf, lm + offsetof(struct link_map, l_name), &l_name) ||
        rd64(inf, lm + offsetof(struct link_map, l_ld), &l_ld) ||
        rd64(inf, lm + offsetof(struct link_map, l_next), &l_next) ||
        rd64(inf, lm + offsetof(struct link_map, l_prev), &l_prev) || l_prev != prev)
      break;
    char name[4096];
    long got = l_name ? inf_read(inf, l_name, name, sizeof name - 1) : 0;
    name[got > 0 ? got : 0] = 0;
    if (name[0]) {
      rs_buf_puts(b, "<library name=\"");
      xml_escaped(b, name);
      /* gdb 13 requires lmid (the namespace); like gdbserver we give the r_debug address. */
      rs_buf_printf(b, "\" lm=\"0x%llx\" l_addr=\"0x%llx\" l_ld=\"0x%llx\" lmid=\"0x%llx\"/>",
                    (unsigned long long)lm, (unsigned long long)l_addr, (unsigned long long)l_ld,
                    (unsigned long long)rd);
    }
    prev = lm;
    lm = l_next;
  }
  rs_buf_puts(b, "</library-list-svr4>");
}

static void threads_xml(struct agent_server *s, struct rs_buf *b)
{
  rs_buf_puts(b, "<?xml version=\"1.0\"?>\n<threads>\n");
  for (int i = 0; i < s->inf->nth; i++) {
    pid_t tid = s->inf->th[i].tid;
    if (s->multiprocess)
      rs_buf_printf(b, "<thread id=\"p%x.%x\"", (unsigned)s->inf->pid, (unsigned)tid);
    else
      rs_buf_printf(b, "<thread id=\"%x\"", (unsigned)tid);
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)s->inf->pid, (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = read(fd, comm, sizeof comm - 1);
      close(fd);
      comm[n > 0 ? n : 0] = 0;
      char *nl = strchr(comm, '\n');
      if (nl)
        *nl = 0;
    }
    if (comm[0]) {
      rs_buf_puts(b, " name=\"");
      xml_escaped(b, comm);
      rs_buf_putc(b, '"');
    }
    rs_buf_puts(b, "/>\n");
  }
  rs_buf_puts(b, "</threads>\n");
}

void agent_handle_qxfer(struct agent_server *s, const char *pkt)
{
  char object[32], annex[256];
  const char *p = strchr(pkt, ':');
  if (!p || (size_t)(p - pkt) >= sizeof object)
    return;
  memcpy(object, pkt, (size_t)(p - pkt));
  object[p - pkt] = 0;
  if (strncmp(p, ":read:", 6)) {
    rs_buf_reset(&s->reply); /* writes are not supported */
    return;
  }
  p += 6;
  const char *colon = strchr(p, ':');
  uint64_t off, len;
  if (!colon || (size_t)(colon - p) >= sizeof annex)
    goto bad;
  memcpy(annex, p, (size_t)(colon - p));
  annex[colon - p] = 0;
  p = colon + 1;
  if (hex_parse_u64_until(&p, &off, ',') || hex_parse_u64(&p, &len) || *p)
    goto bad;
  struct rs_buf *d = &s->doc;
  rs_buf_reset(d);
  if (!strcmp(object, "features")) {
    if (strcmp(annex, "target.xml") || arch_target_xml(s->inf->arch, d))
      goto bad;
  } else if (s->inf->pid == 0 && strcmp(object, "exec-file")) {
    goto bad;
  } else if (!strcmp(object, "auxv")) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/auxv", (int)s->inf->pid);
    if (read_file(path, d))
      goto bad;
  } else if (!strcmp(object, "exec-file")) {
    uint64_t pid = s->inf->pid;
    const char *ap = annex;
    if (annex[0] && hex_parse_u64(&ap, &pid))
      goto bad;
    char path[64], target[4096];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0)
      goto bad;
    rs_buf_append(d, target, (size_t)n);
  } else if (!strcmp(object, "libraries-svr4")) {
    libraries_svr4(s, d);
  } else if (!strcmp(object, "threads")) {
    threads_xml(s, d);
  } else {
    rs_buf_reset(&s->reply);
    return;
  }
  if (len > AGENT_PACKET_SIZE / 2)
    len = AGENT_PACKET_SIZE / 2;
  if (off >= d->len) {
    rs_buf_puts(&s->reply, "l");
    return;
  }
  size_t n = d->len - off < len ? d->len - off : len;
  rs_buf_putc(&s->reply, off + n < d->len ? 'm' : 'l');
  rs_buf_append(&s->reply, d->data + off, n);
  return;
bad:
  rs_buf_reset(&s->reply);
  rs_buf_puts(&s->reply, "E00");
}
