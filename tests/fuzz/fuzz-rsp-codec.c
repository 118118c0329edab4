/* Fuzzes the RSP codec: decoding must not depend on how the byte stream is split, every packet decoded
 * must survive encode-then-decode unchanged, and binary escaping must round-trip; hex parsers ride along. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hex.h"
#include "rsp-codec.h"

/* Events of one decoding, with copies of the payloads (the decoder's are borrowed until the next call). */
struct trace {
  struct rsp_event *ev;
  uint8_t **data;
  size_t n, cap;
};

static void trace_add(struct trace *t, const struct rsp_event *ev)
{
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->ev = realloc(t->ev, t->cap * sizeof *t->ev);
    t->data = realloc(t->data, t->cap * sizeof *t->data);
    if (!t->ev || !t->data)
      abort();
  }
  t->ev[t->n] = *ev;
  t->data[t->n] = NULL;
  if (ev->kind == RSP_EV_PACKET) {
    /* The payload is NUL-terminated by contract: copy the terminator too, so ASan checks it is there. */
    t->data[t->n] = malloc(ev->len + 1);
    if (!t->data[t->n])
      abort();
    memcpy(t->data[t->n], ev->data, ev->len + 1);
    if (t->data[t->n][ev->len] != 0)
      abort();
  }
  t->n++;
}

static void trace_free(struct trace *t)
{
  for (size_t i = 0; i < t->n; i++)
    free(t->data[i]);
  free(t->ev);
  free(t->data);
}

/* Decodes data in pieces whose sizes come from a small generator seeded by seed (0: one piece). */
static void decode(size_t max_payload, const uint8_t *data, size_t len, unsigned seed, struct trace *t)
{
  struct rsp_decoder d;
  if (rsp_decoder_init(&d, max_payload))
    abort();
  unsigned x = seed * 2654435761u + 1;
  size_t pos = 0;
  while (pos < len) {
    size_t piece = len - pos;
    if (seed) {
      x = x * 1103515245u + 12345u;
      size_t want = 1 + (x >> 16) % 17;
      if (want < piece)
        piece = want;
    }
    const uint8_t *p = data + pos;
    size_t left = piece;
    struct rsp_event ev;
    while (rsp_decoder_next(&d, &p, &left, &ev))
      trace_add(t, &ev);
    if (left != 0 || ev.kind != RSP_EV_NONE)
      abort(); /* 0 means every byte was consumed */
    pos += piece;
  }
  rsp_decoder_free(&d);
}

static int same_trace(const struct trace *a, const struct trace *b)
{
  if (a->n != b->n)
    return 0;
  for (size_t i = 0; i < a->n; i++) {
    if (a->ev[i].kind != b->ev[i].kind || a->ev[i].len != b->ev[i].len)
      return 0;
    if (a->ev[i].kind == RSP_EV_PACKET && memcmp(a->data[i], b->data[i], a->ev[i].len))
      return 0;
  }
  return 1;
}

/* Encodes payload, decodes the frame, and checks one packet with the same bytes comes back. */
static void round_trip(const uint8_t *payload, size_t len, size_t max_payload)
{
  struct rs_buf out;
  rs_buf_init(&out, 2 * len + 16);
  if (rsp_encode_packet(&out, payload, len))
    abort();
  struct trace t = {0};
  decode(max_payload, out.data, out.len, 0, &t);
  if (t.n != 1 || t.ev[0].kind != RSP_EV_PACKET || t.ev[0].len != len || memcmp(t.data[0], payload, len))
    abort();
  trace_free(&t);
  rs_buf_free(&out);
}

static void hex_parsers(const uint8_t *data, size_t len)
{
  char *s = malloc(len + 1);
  if (!s)
    abort();
  memcpy(s, data, len);
  s[len] = 0;
  const char *p = s;
  uint64_t v;
  while (*p) {
    const char *before = p;
    if (hex_parse_u64(&p, &v) == 0) {
      char tmp[17];
      int n = snprintf(tmp, sizeof tmp, "%llx", (unsigned long long)v);
      /* Leading zeros aside, the digits read are the value's digits. */
      if (n > p - before)
        abort();
    } else if (p != before) {
      abort(); /* a failed parse leaves *p unchanged */
    }
    if (*p)
      p++;
  }
  p = s;
  while (*p && hex_parse_u64_until(&p, &v, ',') == 0)
    ;
  uint8_t out[64];
  size_t n = len / 2 < sizeof out ? len / 2 : sizeof out;
  hex_decode(out, s, n);
  uint64_t le;
  if (len >= 16)
    hex_decode_le(s, 8, &le);
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2)
    return 0;
  /* Byte 0 picks the payload limit (small ones reach the over-long paths), byte 1 the split pattern. */
  static const size_t limits[] = {1, 2, 3, 8, 31, 32, 33, 64, 100, 4096};
  size_t max_payload = limits[data[0] % (sizeof limits / sizeof limits[0])];
  unsigned seed = data[1];
  data += 2;
  size -= 2;

  struct trace whole = {0}, split = {0};
  decode(max_payload, data, size, 0, &whole);
  decode(max_payload, data, size, seed ? seed : 1, &split);
  if (!same_trace(&whole, &split))
    abort();
  for (size_t i = 0; i < whole.n; i++)
    if (whole.ev[i].kind == RSP_EV_PACKET) {
      if (whole.ev[i].len > max_payload)
        abort();
      round_trip(whole.data[i], whole.ev[i].len, max_payload);
    }
  trace_free(&whole);
  trace_free(&split);

  /* The raw input as a binary payload: escape, unescape, compare; then as a whole packet. */
  struct rs_buf esc;
  rs_buf_init(&esc, 2 * size + 16);
  if (rsp_escape_binary(&esc, data, size))
    abort();
  long back = rsp_unescape_binary(esc.data, esc.len);
  if (back != (long)size || memcmp(esc.data, data, size))
    abort();
  rs_buf_free(&esc);
  round_trip(data, size, size ? size : 1);

  /* Unescaping arbitrary bytes only shrinks them (or refuses a dangling escape). */
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy)
    abort();
  memcpy(copy, data, size);
  long un = rsp_unescape_binary(copy, size);
  if (un > (long)size)
    abort();
  free(copy);

  hex_parsers(data, size);

  /* An encoder with a tight limit must fail cleanly and leave the buffer as it was. */
  struct rs_buf small;
  rs_buf_init(&small, size / 2 + 4);
  rs_buf_puts(&small, "x");
  int rc = rsp_encode_packet(&small, data, size);
  if (rc && (small.len != 1 || small.data[0] != 'x' || small.data[1] != 0))
    abort();
  rs_buf_free(&small);
  return 0;
}
