/* A growable byte buffer with a hard size limit, so nothing a peer sends can make us allocate without bound. */
#ifndef RSPROF_BUF_H
#define RSPROF_BUF_H

#include <stddef.h>
#include <stdint.h>

struct rs_buf {
  uint8_t *data; /* owned; always NUL-terminated past len when non-NULL */
  size_t len;
  size_t cap;
  size_t limit; /* appends that would exceed this fail with RS_E_LIMIT */
};

/* Initializes an empty buffer that may grow to at most limit bytes. */
void rs_buf_init(struct rs_buf *b, size_t limit);
/* Frees the storage; the buffer may be initialized again. */
void rs_buf_free(struct rs_buf *b);
/* Empties the buffer, keeping its storage. */
static inline void rs_buf_reset(struct rs_buf *b) { b->len = 0; if (b->data) b->data[0] = 0; }

/* Each append returns 0, -ENOMEM, or RS_E_LIMIT (the buffer is then unchanged). */
int rs_buf_reserve(struct rs_buf *b, size_t extra);
int rs_buf_append(struct rs_buf *b, const void *data, size_t n);
int rs_buf_putc(struct rs_buf *b, uint8_t c);
int rs_buf_puts(struct rs_buf *b, const char *s);
int rs_buf_printf(struct rs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n bytes as 2n lowercase hex digits. */
int rs_buf_put_hex(struct rs_buf *b, const void *data, size_t n);
/* Removes the first n bytes (n <= len). */
void rs_buf_consume(struct rs_buf *b, size_t n);

/* Growable arrays: returns arr, or arr reallocated for at least need elements of elem bytes (capacity
 * *cap doubles, starting at first), updating *cap. Returns NULL when out of memory; arr is then
 * unchanged and still owned by the caller. */
void *rs_grow(void *arr, size_t *cap, size_t need, size_t elem, size_t first);

/* Encodes v as a protobuf (LEB128) varint into out, which has room for the longest (10 bytes); returns
 * the length. */
size_t rs_varint(uint8_t out[10], uint64_t v);

/* Decode an unsigned / signed LEB128 number at *p (not past end), advancing *p. Bits beyond 64 are dropped.
 * Return 0, or -1 when the number runs past end. */
int rs_uleb(const uint8_t **p, const uint8_t *end, uint64_t *v);
int rs_sleb(const uint8_t **p, const uint8_t *end, int64_t *v);

#endif
