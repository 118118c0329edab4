/* Growable byte buffer with a hard limit. */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hex.h"

void rs_buf_init(struct rs_buf *b, size_t limit)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->limit = limit;
}

void rs_buf_free(struct rs_buf *b)
{
  free(b->data);
  rs_buf_init(b, b->limit);
}

int rs_buf_reserve(struct rs_buf *b, size_t extra)
{
  if (extra > b->limit || b->len > b->limit - extra)
    return RS_E_LIMIT;
  size_t need = b->len + extra + 1; /* +1 keeps room for the terminating NUL */
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  if (cap > b->limit + 1)
    cap = b->limit + 1;
  uint8_t *p = realloc(b->data, cap);
  if (!p)
    return -ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int rs_buf_append(struct rs_buf *b, const void *data, size_t n)
{
  int rc = rs_buf_reserve(b, n);
  if (rc)
    return rc;
  if (n)
    memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int rs_buf_putc(struct rs_buf *b, uint8_t c)
{
  return rs_buf_append(b, &c, 1);
}

int rs_buf_puts(struct rs_buf *b, const char *s)
{
  return rs_buf_append(b, s, strlen(s));
}

int rs_buf_printf(struct rs_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -EINVAL;
  int rc = rs_buf_reserve(b, (size_t)n);
  if (rc)
    return rc;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int rs_buf_put_hex(struct rs_buf *b, const void *data, size_t n)
{
  if (n > SIZE_MAX / 2)
    return RS_E_LIMIT;
  int rc = rs_buf_reserve(b, 2 * n);
  if (rc)
    return rc;
  hex_encode((char *)b->data + b->len, data, n);
  b->len += 2 * n;
  b->data[b->len] = 0;
  return 0;
}

void *rs_grow(void *arr, size_t *cap, size_t need, size_t elem, size_t first)
{
  if (need <= *cap)
    return arr;
  size_t n = *cap ? *cap : first ? first : 1;
  while (n < need) {
    if (n > SIZE_MAX / 2 / elem)
      return NULL;
    n *= 2;
  }
  if (n > SIZE_MAX / elem)
    return NULL;
  void *p = realloc(arr, n * elem);
  if (p)
    *cap = n;
  return p;
}

void rs_buf_consume(struct rs_buf *b, size_t n)
{
  if (n >= b->len) {
    rs_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = 0;
}

size_t rs_varint(uint8_t out[10], uint64_t v)
{
  size_t n = 0;
  do {
    out[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v)
      out[n] |= 0x80;
    n++;
  } while (v);
  return n;
}

int rs_uleb(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  uint64_t r = 0;
  for (unsigned shift = 0; *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    if (shift < 64)
      r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return 0;
    }
  }
  return -1;
}

int rs_sleb(const uint8_t **p, const uint8_t *end, int64_t *v)
{
  uint64_t r = 0;
  for (unsigned shift = 0; *p < end;) {
    uint8_t b = *(*p)++;
    if (shift < 64)
      r |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) {
      if (shift < 64 && (b & 0x40))
        r |= ~(uint64_t)0 << shift; /* sign-extend */
      *v = (int64_t)r;
      return 0;
    }
  }
  return -1;
}
