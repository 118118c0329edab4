/* RSP framing: an incremental decoder that turns bytes in any split into events, and a packet encoder. */
#include "rsp-codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hex.h"

enum {
  ST_IDLE,    /* between packets: acks, the interrupt byte, noise */
  ST_DATA,    /* after '$' */
  ST_ESCAPE,  /* after '}' */
  ST_RUN,     /* after '*': the next byte is a repeat count */
  ST_CSUM1,   /* after '#' */
  ST_CSUM2,
  ST_SKIP,    /* an over-long packet: drop bytes until the next '$' */
};

/* A run-length count byte n means n - 29 more copies of the previous byte. */
#define RLE_BIAS 29

int rsp_decoder_init(struct rsp_decoder *d, size_t max_payload)
{
  d->payload = malloc(max_payload + 1);
  if (!d->payload)
    return -ENOMEM;
  d->max_payload = max_payload;
  rsp_decoder_reset(d);
  return 0;
}

void rsp_decoder_free(struct rsp_decoder *d)
{
  free(d->payload);
  d->payload = NULL;
}

void rsp_decoder_reset(struct rsp_decoder *d)
{
  d->state = ST_IDLE;
  d->len = 0;
  d->sum = 0;
  d->csum = 0;
  d->malformed = 0;
  d->notify = 0;
}

static void start_packet(struct rsp_decoder *d)
{
  d->state = ST_DATA;
  d->len = 0;
  d->sum = 0;
  d->malformed = 0;
  d->notify = 0;
}

/* Stores one decoded byte; returns 0, or -1 when the packet outgrew the limit. */
static int put_byte(struct rsp_decoder *d, uint8_t c)
{
  if (d->len >= d->max_payload)
    return -1;
  d->payload[d->len++] = c;
  return 0;
}

static void set_event(struct rsp_event *ev, enum rsp_event_kind kind, const struct rsp_decoder *d)
{
  ev->kind = kind;
  int payload = kind == RSP_EV_PACKET || kind == RSP_EV_NOTIFY;
  ev->data = payload ? (const char *)d->payload : NULL;
  ev->len = payload ? d->len : 0;
}

/* The bytes that frame a packet; inside a payload they are escaped. Bitwise, not short-circuit, so the
 * block loops below vectorize. */
static int is_framing_byte(uint8_t c) { return (c == '#') | (c == '$') | (c == '}') | (c == '*'); }

/* Large payloads are handled in blocks: fixed-length loops the compiler vectorizes, then a plain copy. */
enum { BLOCK = 32 };

static int block_has_framing(const uint8_t *p)
{
  int framing = 0;
  for (int i = 0; i < BLOCK; i++)
    framing |= is_framing_byte(p[i]);
  return framing;
}

/* The RSP checksum's running sum (mod 256) over n bytes. */
static uint8_t add_bytes(uint8_t sum, const uint8_t *p, size_t n)
{
  unsigned acc = sum;
  for (; n >= BLOCK; n -= BLOCK, p += BLOCK) {
    unsigned block = 0;
    for (int i = 0; i < BLOCK; i++)
      block += p[i];
    acc += block;
  }
  for (; n; n--)
    acc += *p++;
  return (uint8_t)acc;
}

/* Copies the plain payload bytes from p on (up to a framing byte, the end of the input or the size limit)
 * without the state machine: most of a large reply, such as a stack read, is plain bytes. */
static const uint8_t *copy_plain(struct rsp_decoder *d, const uint8_t *p, const uint8_t *end)
{
  size_t room = d->max_payload - d->len;
  const uint8_t *stop = (size_t)(end - p) > room ? p + room : end;
  uint8_t *out = d->payload + d->len;
  uint8_t sum = d->sum;
  while (stop - p >= BLOCK && !block_has_framing(p)) {
    memcpy(out, p, BLOCK);
    sum = add_bytes(sum, p, BLOCK);
    out += BLOCK;
    p += BLOCK;
  }
  for (; p < stop && !is_framing_byte(*p); p++) {
    *out++ = *p;
    sum = (uint8_t)(sum + *p);
  }
  d->len = (size_t)(out - d->payload);
  d->sum = sum;
  return p;
}

int rsp_decoder_next(struct rsp_decoder *d, const uint8_t **buf, size_t *len, struct rsp_event *ev)
{
  const uint8_t *p = *buf;
  const uint8_t *end = p + *len;
  int have = 0;

  while (p < end && !have) {
    if (d->state == ST_DATA) {
      p = copy_plain(d, p, end);
      if (p == end)
        break;
    }
    uint8_t c = *p++;
    switch (d->state) {
    case ST_IDLE:
    case ST_SKIP:
      if (c == '$')
        start_packet(d);
      else if (d->state == ST_IDLE && c == '%')
        start_packet(d), d->notify = 1;
      else if (d->state == ST_IDLE && c == '+')
        set_event(ev, RSP_EV_ACK, d), have = 1;
      else if (d->state == ST_IDLE && c == '-')
        set_event(ev, RSP_EV_NACK, d), have = 1;
      else if (d->state == ST_IDLE && c == 0x03)
        set_event(ev, RSP_EV_INTERRUPT, d), have = 1;
      /* Anything else between packets is line noise; gdbserver ignores it too. */
      break;
    case ST_DATA:
      if (c == '#') {
        d->state = ST_CSUM1;
        break;
      }
      if (c == '$') { /* an unescaped '$' means the previous packet was cut short: start over */
        start_packet(d);
        break;
      }
      d->sum += c;
      if (c == '}') {
        d->state = ST_ESCAPE;
      } else if (c == '*') {
        d->state = ST_RUN;
      } else if (put_byte(d, c)) {
        d->state = ST_SKIP;
        set_event(ev, RSP_EV_TOO_LONG, d), have = 1;
      }
      break;
    case ST_ESCAPE:
      d->sum += c;
      d->state = ST_DATA;
      if (put_byte(d, c ^ 0x20)) {
        d->state = ST_SKIP;
        set_event(ev, RSP_EV_TOO_LONG, d), have = 1;
      }
      break;
    case ST_RUN: {
      d->sum += c;
      d->state = ST_DATA;
      if (c < RLE_BIAS || d->len == 0 || c == '#' || c == '$') {
        d->malformed = 1;
        if (c == '#')
          d->state = ST_CSUM1;
        else if (c == '$')
          start_packet(d);
        break;
      }
      uint8_t prev = d->payload[d->len - 1];
      for (int i = 0; i < c - RLE_BIAS; i++) {
        if (put_byte(d, prev)) {
          d->state = ST_SKIP;
          set_event(ev, RSP_EV_TOO_LONG, d), have = 1;
          break;
        }
      }
      break;
    }
    case ST_CSUM1:
    case ST_CSUM2: {
      int v = hex_digit(c);
      if (v < 0) { /* not a checksum digit: the packet is damaged */
        if (c == '$')
          start_packet(d); /* and the next one has already begun */
        else
          d->state = ST_IDLE;
        set_event(ev, RSP_EV_BAD_CHECKSUM, d), have = 1;
        break;
      }
      if (d->state == ST_CSUM1) {
        d->csum = (uint8_t)(v << 4);
        d->state = ST_CSUM2;
        break;
      }
      d->csum |= (uint8_t)v;
      d->state = ST_IDLE;
      d->payload[d->len] = 0;
      if (d->csum != d->sum)
        set_event(ev, RSP_EV_BAD_CHECKSUM, d);
      else if (d->malformed)
        set_event(ev, RSP_EV_MALFORMED, d);
      else
        set_event(ev, d->notify ? RSP_EV_NOTIFY : RSP_EV_PACKET, d);
      have = 1;
      break;
    }
    }
  }
  *len -= (size_t)(p - *buf);
  *buf = p;
  if (!have)
    set_event(ev, RSP_EV_NONE, d);
  return have;
}

int rsp_escape_binary(struct rs_buf *out, const void *data, size_t len)
{
  const uint8_t *src = data;
  /* Room for the worst case (every byte escaped) saves a counting pass; near the buffer's limit, count. */
  int rc = len <= SIZE_MAX / 2 ? rs_buf_reserve(out, 2 * len) : RS_E_LIMIT;
  if (rc == RS_E_LIMIT) {
    size_t extra = 0;
    for (size_t i = 0; i < len; i++)
      extra += is_framing_byte(src[i]);
    rc = rs_buf_reserve(out, len + extra);
  }
  if (rc)
    return rc;
  uint8_t *dst = out->data + out->len;
  size_t i = 0;
  while (i < len) {
    if (len - i >= BLOCK && !block_has_framing(src + i)) {
      memcpy(dst, src + i, BLOCK);
      dst += BLOCK;
      i += BLOCK;
      continue;
    }
    size_t chunk_end = len - i >= BLOCK ? i + BLOCK : len;
    for (; i < chunk_end; i++) {
      if (is_framing_byte(src[i])) {
        *dst++ = '}';
        *dst++ = src[i] ^ 0x20;
      } else {
        *dst++ = src[i];
      }
    }
  }
  out->len = (size_t)(dst - out->data);
  out->data[out->len] = 0;
  return 0;
}

long rsp_unescape_binary(uint8_t *data, size_t len)
{
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (data[i] == '}') {
      if (++i == len)
        return RS_E_BAD_ARG;
      data[o++] = data[i] ^ 0x20;
    } else {
      data[o++] = data[i];
    }
  }
  return (long)o;
}

static int encode_framed(struct rs_buf *out, char lead, const void *payload, size_t len)
{
  size_t start = out->len;
  int rc = rs_buf_putc(out, lead);
  if (!rc)
    rc = rsp_escape_binary(out, payload, len);
  if (!rc)
    rc = rs_buf_reserve(out, 3);
  if (rc) {
    out->len = start;
    if (out->data)
      out->data[start] = 0;
    return rc;
  }
  uint8_t sum = add_bytes(0, out->data + start + 1, out->len - start - 1);
  char trailer[3] = {'#'};
  hex_encode(trailer + 1, &sum, 1);
  return rs_buf_append(out, trailer, 3);
}

int rsp_encode_packet(struct rs_buf *out, const void *payload, size_t len)
{
  return encode_framed(out, '$', payload, len);
}

int rsp_encode_notification(struct rs_buf *out, const void *payload, size_t len)
{
  return encode_framed(out, '%', payload, len);
}
