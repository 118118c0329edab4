/* The GDB Remote Serial Protocol codec: framing, checksums, escapes and run-length decoding, with no I/O. */
#ifndef RSPROF_RSP_CODEC_H
#define RSPROF_RSP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* What the decoder found in the byte stream. */
enum rsp_event_kind {
  RSP_EV_NONE,         /* all input consumed, nothing complete yet */
  RSP_EV_PACKET,       /* a whole packet with a valid checksum: payload is in data/len */
  RSP_EV_ACK,          /* '+' */
  RSP_EV_NACK,         /* '-' */
  RSP_EV_INTERRUPT,    /* the 0x03 byte outside a packet */
  RSP_EV_BAD_CHECKSUM, /* a whole packet whose checksum did not match: answer '-' in ack mode */
  RSP_EV_MALFORMED,    /* a whole packet with an invalid run-length encoding: answer '-' in ack mode */
  RSP_EV_TOO_LONG,     /* a packet grew past the limit: it is dropped, decoding resumes at the next '$' */
  RSP_EV_NOTIFY,       /* a whole notification ("%payload#cs", never acknowledged): payload in data/len */
};

struct rsp_event {
  enum rsp_event_kind kind;
  /* For RSP_EV_PACKET and RSP_EV_NOTIFY: the payload with escapes and run lengths decoded, NUL-terminated.
   * Borrowed from the decoder; valid until the next rsp_decoder_next() call. */
  const char *data;
  size_t len;
};

struct rsp_decoder {
  uint8_t *payload; /* owned, max_payload + 1 bytes */
  size_t len;
  size_t max_payload;
  int state;
  uint8_t sum;  /* running checksum of the raw bytes */
  uint8_t csum; /* checksum received after '#' */
  int malformed;
  int notify;   /* the packet being decoded began with '%' (a notification) */
};

/* Prepares a decoder that accepts decoded payloads of up to max_payload bytes.
 * Returns 0 or -ENOMEM. */
int rsp_decoder_init(struct rsp_decoder *d, size_t max_payload);
void rsp_decoder_free(struct rsp_decoder *d);
/* Forgets any partial packet (for example after a reconnect). */
void rsp_decoder_reset(struct rsp_decoder *d);

/* Consumes bytes from *buf (advancing *buf and *len) until one event completes,
 * and describes it in *ev. Returns 1 with an event, or 0 when all input was consumed
 * without completing one (ev->kind is then RSP_EV_NONE). Call it in a loop until it returns 0. */
int rsp_decoder_next(struct rsp_decoder *d, const uint8_t **buf, size_t *len, struct rsp_event *ev);

/* Appends "$payload#cs" to out, escaping '$', '#', '}' and '*' so that any binary payload
 * survives. Returns 0, -ENOMEM or RS_E_LIMIT. */
int rsp_encode_packet(struct rs_buf *out, const void *payload, size_t len);

/* Appends "%payload#cs" (an asynchronous notification, as RSP's non-stop "%Stop:" ones), escaped like
 * rsp_encode_packet. Returns 0, -ENOMEM or RS_E_LIMIT. */
int rsp_encode_notification(struct rs_buf *out, const void *payload, size_t len);

/* Appends binary data escaped for use inside a payload (as in X packets and 'x' replies),
 * without framing. Returns 0, -ENOMEM or RS_E_LIMIT. */
int rsp_escape_binary(struct rs_buf *out, const void *data, size_t len);

/* Decodes escaped binary data in place; returns the decoded length or RS_E_BAD_ARG for a dangling '}'. */
long rsp_unescape_binary(uint8_t *data, size_t len);

#endif
