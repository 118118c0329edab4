/* Read-only host I/O (vFile): lets a client fetch the target's binaries. Anything that would
 * modify the board's files is refused with EACCES, and only regular files and directories are opened. */
#include "vfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hex.h"

#define FIO_EACCES 13
#define FIO_EBADF 9
#define FIO_EINVAL 22
#define FIO_ENOENT 2

/* gdb's File-I/O errno values (the "Errno Values" table of the Remote Protocol appendix) are Linux's
 * numbers except ENAMETOOLONG; an errno the table lacks is sent as EUNKNOWN. */
#define FIO_ENAMETOOLONG 91
#define FIO_EUNKNOWN 9999

static int fio_errno(int e)
{
  switch (e) {
  case EPERM: case ENOENT: case EINTR: case EBADF: case EACCES: case EFAULT: case EBUSY:
  case EEXIST: case ENODEV: case ENOTDIR: case EISDIR: case EINVAL: case ENFILE: case EMFILE:
  case EFBIG: case ENOSPC: case ESPIPE: case EROFS:
    return e;
  case ENAMETOOLONG:
    return FIO_ENAMETOOLONG;
  default:
    return FIO_EUNKNOWN;
  }
}

static void fail(struct agent_server *s, int fio)
{
  rs_buf_reset(&s->reply);
  rs_buf_printf(&s->reply, "F-1,%x", (unsigned)fio);
}

/* Decodes a hex-encoded path in place. Returns it or NULL. */
static char *hex_path(char *p, char **end)
{
  char *e = p;
  while (hex_digit(*e) >= 0)
    e++;
  size_t hl = (size_t)(e - p);
  if (hl % 2 || hl == 0 || hex_decode(p, p, hl / 2))
    return NULL;
  *end = e;
  p[hl / 2] = 0;
  return p;
}

/* Only regular files and directories are served. Opening a FIFO blocks until a writer appears (the
 * agent's only thread, with the program stopped), and opening a device can act on it (a watchdog
 * starts counting), so the type is checked with stat() before open() touches anything, and again on
 * the descriptor in case the path changed in between; O_NONBLOCK keeps that second look from
 * blocking. Returns the descriptor or a negative errno (-EINVAL for other file types). */
static int open_servable(const char *path)
{
  struct stat st;
  if (stat(path, &st))
    return -errno;
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    return -EINVAL;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
    close(fd);
    return -EINVAL;
  }
  return fd;
}

static void put_be(struct rs_buf *b, uint64_t v, int bytes)
{
  uint8_t tmp[8];
  for (int i = 0; i < bytes; i++)
    tmp[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
  rs_buf_append(b, tmp, (size_t)bytes);
}

void agent_handle_vfile(struct agent_server *s, char *pkt, size_t len)
{
  (void)len;
  char *end;
  const char *p;
  uint64_t a, b, c;
  if (!strncmp(pkt, "open:", 5)) {
    char *path = hex_path(pkt + 5, &end);
    p = end;
    if (!path || *p != ',' || (p++, hex_parse_u64_until(&p, &a, ',')) || hex_parse_u64(&p, &b) || *p)
      return fail(s, FIO_EINVAL);
    /* RSP flags: 1 write-only, 2 read-write, 0x8 append, 0x200 create, 0x400 truncate. */
    if (a & (0x3 | 0x8 | 0x200 | 0x400))
      return fail(s, FIO_EACCES);
    int slot = -1;
    for (int i = 0; i < AGENT_MAX_VFILES; i++)
      if (s->vfd[i] < 0) {
        slot = i;
        break;
      }
    if (slot < 0)
      return fail(s, 24); /* EMFILE */
    int fd = open_servable(path);
    if (fd < 0)
      return fail(s, fio_errno(-fd));
    s->vfd[slot] = fd;
    rs_buf_printf(&s->reply, "F%x", (unsigned)slot);
  } else if (!strncmp(pkt, "pread:", 6)) {
    p = pkt + 6;
    if (hex_parse_u64_until(&p, &a, ',') || hex_parse_u64_until(&p, &b, ',') || hex_parse_u64(&p, &c) || *p)
      return fail(s, FIO_EINVAL);
    if (a >= AGENT_MAX_VFILES || s->vfd[a] < 0)
      return fail(s, FIO_EBADF);
    if (b > AGENT_PACKET_SIZE / 2)
      b = AGENT_PACKET_SIZE / 2;
    rs_buf_reset(&s->doc);
    if (rs_buf_reserve(&s->doc, b + 1))
      return fail(s, FIO_EUNKNOWN);
    ssize_t n = pread(s->vfd[a], s->doc.data, b, (off_t)c);
    if (n < 0)
      return fail(s, fio_errno(errno));
    rs_buf_printf(&s->reply, "F%x;", (unsigned)n);
    rs_buf_append(&s->reply, s->doc.data, (size_t)n);
  } else if (!strncmp(pkt, "close:", 6)) {
    p = pkt + 6;
    if (hex_parse_u64(&p, &a) || *p)
      return fail(s, FIO_EINVAL);
    if (a >= AGENT_MAX_VFILES || s->vfd[a] < 0)
      return fail(s, FIO_EBADF);
    close(s->vfd[a]);
    s->vfd[a] = -1;
    rs_buf_puts(&s->reply, "F0");
  } else if (!strncmp(pkt, "fstat:", 6)) {
    p = pkt + 6;
    if (hex_parse_u64(&p, &a) || *p)
      return fail(s, FIO_EINVAL);
    struct stat st;
    if (a >= AGENT_MAX_VFILES || s->vfd[a] < 0)
      return fail(s, FIO_EBADF);
    if (fstat(s->vfd[a], &st))
      return fail(s, fio_errno(errno));
    /* struct gdb fio stat: big-endian fields, 64 bytes. */
    rs_buf_puts(&s->reply, "F40;");
    put_be(&s->reply, st.st_dev, 4);
    put_be(&s->reply, st.st_ino, 4);
    put_be(&s->reply, st.st_mode, 4);
    put_be(&s->reply, st.st_nlink, 4);
    put_be(&s->reply, st.st_uid, 4);
    put_be(&s->reply, st.st_gid, 4);
    put_be(&s->reply, st.st_rdev, 4);
    put_be(&s->reply, (uint64_t)st.st_size, 8);
    put_be(&s->reply, (uint64_t)st.st_blksize, 8);
    put_be(&s->reply, (uint64_t)st.st_blocks, 8);
    put_be(&s->reply, (uint64_t)st.st_atime, 4);
    put_be(&s->reply, (uint64_t)st.st_mtime, 4);
    put_be(&s->reply, (uint64_t)st.st_ctime, 4);
  } else if (!strncmp(pkt, "readlink:", 9)) {
    char *path = hex_path(pkt + 9, &end);
    if (!path || *end)
      return fail(s, FIO_EINVAL);
    char target[4096];
    ssize_t n = readlink(path, target, sizeof target);
    if (n < 0)
      return fail(s, fio_errno(errno));
    rs_buf_printf(&s->reply, "F%x;", (unsigned)n);
    rs_buf_append(&s->reply, target, (size_t)n);
  } else if (!strncmp(pkt, "setfs:", 6)) {
    /* Paths are always resolved in the agent's own filesystem view; the traced program shares it. */
    rs_buf_puts(&s->reply, "F0");
  } else if (!strncmp(pkt, "pwrite:", 7) || !strncmp(pkt, "unlink:", 7)) {
    fail(s, FIO_EACCES);
  }
}
