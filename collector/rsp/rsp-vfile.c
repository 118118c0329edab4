/* vFile host I/O through the RSP client, read-only: open, pread, fstat, readlink, close, and copying a
 * whole remote file with pipelined reads. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "hex.h"
#include "log.h"
#include "rsp-client.h"

#define FETCH_DEPTH 8

/* The errno values a reply may carry: anything else (0, or a number that would not fit an int or would clash
 * with the project's own codes) is reported as EIO rather than negated. */
#define VFILE_MAX_ERRNO (RS_E_BASE - 1)

int rspc_parse_vfile_reply(const char *r, size_t n, long long *result, const char **data, size_t *dlen)
{
  if (n == 0)
    return RS_E_UNSUPPORTED;
  if (r[0] != 'F')
    return RS_E_PROTO;
  const char *p = r + 1;
  int neg = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  uint64_t v;
  if (hex_parse_u64(&p, &v))
    return RS_E_PROTO;
  if (neg) {
    uint64_t e = EIO;
    if (*p == ',') {
      p++;
      if (hex_parse_u64(&p, &e) || e == 0 || e > VFILE_MAX_ERRNO)
        e = EIO;
    }
    return -(int)e;
  }
  if (v > INT64_MAX)
    return RS_E_PROTO;
  *result = (long long)v;
  if (data) {
    if (*p == ';') {
      *data = p + 1;
      *dlen = n - (size_t)(p + 1 - r);
    } else {
      *data = p;
      *dlen = 0;
    }
  }
  return 0;
}

/* Sends "vFile:OP:<hex path>ARGS" and waits for the reply; a path too long for the server's PacketSize is
 * refused with RS_E_TOO_LONG before anything is sent. */
static int path_request(struct rspc *c, const char *op, const char *path, const char *args, const char **r,
                        size_t *n)
{
  if (!rspc_features(c)->vfile)
    return RS_E_UNSUPPORTED;
  size_t pl = strlen(path);
  size_t need = strlen("vFile:") + strlen(op) + 1 + 2 * pl + strlen(args);
  size_t limit = rspc_features(c)->packet_size;
  if (need > limit) {
    LOG_ERR("vfile: cannot %s a %zu-byte path on the target: the request would be %zu bytes, over the server's "
            "PacketSize of %zu bytes (%.60s...)", op, pl, need, limit, path);
    return RS_E_TOO_LONG;
  }
  char *hexpath = malloc(2 * pl + 1);
  if (!hexpath)
    return -ENOMEM;
  hex_encode(hexpath, path, pl);
  hexpath[2 * pl] = 0;
  int rc = rspc_requestf(c, r, n, "vFile:%s:%s%s", op, hexpath, args);
  free(hexpath);
  return rc;
}

int rspc_vfile_open(struct rspc *c, const char *path, int *fd)
{
  const char *r;
  size_t n;
  /* Flags and mode use the protocol's own values: 0 is O_RDONLY there too. */
  int rc = path_request(c, "open", path, ",0,0", &r, &n);
  if (rc)
    return rc;
  long long v;
  rc = rspc_parse_vfile_reply(r, n, &v, NULL, NULL);
  if (rc)
    return rc;
  *fd = (int)v;
  return 0;
}

int rspc_vfile_close(struct rspc *c, int fd)
{
  const char *r;
  size_t n;
  long long v;
  int rc = rspc_requestf(c, &r, &n, "vFile:close:%x", fd);
  return rc ? rc : rspc_parse_vfile_reply(r, n, &v, NULL, NULL);
}

static size_t pread_chunk(struct rspc *c)
{
  /* Escaping can double each byte of the reply; half a packet always fits, so servers do not trim it. */
  size_t ps = rspc_features(c)->packet_size;
  return ps > 128 ? (ps - 64) / 2 : 32;
}

static int pread_reply(const char *r, size_t n, void *buf, size_t len, size_t *got)
{
  long long v;
  const char *data;
  size_t dlen;
  int rc = rspc_parse_vfile_reply(r, n, &v, &data, &dlen);
  if (rc)
    return rc;
  if ((size_t)v != dlen || dlen > len)
    return RS_E_PROTO;
  memcpy(buf, data, dlen);
  *got = dlen;
  return 0;
}

int rspc_vfile_pread(struct rspc *c, int fd, uint64_t offset, void *buf, size_t len, size_t *got)
{
  uint8_t *dst = buf;
  *got = 0;
  while (*got < len) {
    size_t want = len - *got < pread_chunk(c) ? len - *got : pread_chunk(c);
    const char *r;
    size_t n, g;
    int rc = rspc_requestf(c, &r, &n, "vFile:pread:%x,%zx,%llx", fd, want, (unsigned long long)(offset + *got));
    if (rc)
      return rc;
    rc = pread_reply(r, n, dst + *got, want, &g);
    if (rc)
      return rc;
    if (g == 0)
      break;
    *got += g;
  }
  return 0;
}

int rspc_vfile_size(struct rspc *c, int fd, uint64_t *size)
{
  const char *r;
  size_t n;
  int rc = rspc_requestf(c, &r, &n, "vFile:fstat:%x", fd);
  if (rc)
    return rc;
  long long v;
  const char *data;
  size_t dlen;
  rc = rspc_parse_vfile_reply(r, n, &v, &data, &dlen);
  if (rc)
    return rc;
  /* struct fio_stat: big-endian fields; st_size is the 8 bytes at offset 28. */
  if (dlen < 36)
    return RS_E_PROTO;
  uint64_t s = 0;
  for (int i = 0; i < 8; i++)
    s = s << 8 | (uint8_t)data[28 + i];
  *size = s;
  return 0;
}

int rspc_vfile_readlink(struct rspc *c, const char *path, char *out, size_t max)
{
  const char *r;
  size_t n;
  int rc = path_request(c, "readlink", path, "", &r, &n);
  if (rc)
    return rc;
  long long v;
  const char *data;
  size_t dlen;
  rc = rspc_parse_vfile_reply(r, n, &v, &data, &dlen);
  if (rc)
    return rc;
  if (dlen + 1 > max)
    return RS_E_LIMIT;
  memcpy(out, data, dlen);
  out[dlen] = 0;
  return 0;
}

int rspc_vfile_fetch(struct rspc *c, const char *remote_path, const char *local_path)
{
  int fd = -1, out = -1;
  char *tmp = NULL;
  uint8_t *chunk = NULL;
  int rc = rspc_vfile_open(c, remote_path, &fd);
  if (rc) {
    LOG_WARN("vfile: cannot open %s on the target: %s", remote_path, rs_strerror(rc));
    return rc;
  }
  size_t tl = strlen(local_path) + 32;
  tmp = malloc(tl);
  size_t csize = pread_chunk(c);
  chunk = malloc(csize);
  if (!tmp || !chunk) {
    rc = -ENOMEM;
    goto out;
  }
  snprintf(tmp, tl, "%s.part%ld", local_path, (long)getpid());
  out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    rc = -errno;
    LOG_WARN("vfile: cannot create %s: %s", tmp, strerror(errno));
    goto out;
  }
  /* Reads run FETCH_DEPTH ahead: a file of many packets then costs few round trips. */
  uint64_t sent_off = 0, recv_off = 0, total = 0;
  unsigned inflight = 0;
  int eof = 0;
  while (!eof || inflight) {
    while (!eof && inflight < FETCH_DEPTH) {
      char pkt[64];
      int pl = snprintf(pkt, sizeof pkt, "vFile:pread:%x,%zx,%llx", fd, csize, (unsigned long long)sent_off);
      rc = rspc_send(c, pkt, (size_t)pl);
      if (rc)
        goto out;
      sent_off += csize;
      inflight++;
      if (inflight == FETCH_DEPTH)
        break;
    }
    const char *r;
    size_t n, g = 0;
    rc = rspc_recv(c, rspc_reply_timeout(c), &r, &n);
    if (rc)
      goto out;
    inflight--;
    if (eof)
      continue; /* replies past the end of the file */
    rc = pread_reply(r, n, chunk, csize, &g);
    if (rc)
      goto out;
    if (g == 0) {
      eof = 1;
      continue;
    }
    if (pwrite(out, chunk, g, (off_t)recv_off) != (ssize_t)g) {
      rc = -errno;
      goto out;
    }
    recv_off += g;
    total += g;
    if (g < csize) {
      /* A short read is the end of the file or a reply the server trimmed: the pipelined requests assumed
       * full chunks, so drop them, probe one byte, and go on from here. */
      while (inflight) {
        rc = rspc_recv(c, rspc_reply_timeout(c), &r, &n);
        if (rc)
          goto out;
        inflight--;
      }
      sent_off = recv_off;
      eof = 0;
      size_t got2 = 0;
      rc = rspc_vfile_pread(c, fd, recv_off, chunk, 1, &got2);
      if (rc)
        goto out;
      if (got2 == 0)
        eof = 1;
    }
  }
  if (fsync(out) != 0 || close(out) != 0) {
    out = -1;
    rc = -errno;
    goto out;
  }
  out = -1;
  if (rename(tmp, local_path) != 0) {
    rc = -errno;
    goto out;
  }
  LOG_INFO("vfile: fetched %s (%llu bytes) into %s", remote_path, (unsigned long long)total, local_path);
  rc = 0;
out:
  if (out >= 0)
    close(out);
  if (rc && tmp)
    unlink(tmp);
  if (fd >= 0) {
    int crc = rspc_vfile_close(c, fd);
    if (crc && !rc)
      rc = crc;
  }
  free(tmp);
  free(chunk);
  return rc;
}
