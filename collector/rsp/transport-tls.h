/* The TLS layer of the transport: an mbedtls client session fed from and flushing into byte callbacks,
 * so the TCP side (libuv) and the TLS side never see each other's headers. Internal to the transport. */
#ifndef RSPROF_COL_TRANSPORT_TLS_H
#define RSPROF_COL_TRANSPORT_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "transport-options.h"

struct transport_tls;

/* Queues ciphertext for the socket; returns 0 or a negative error. */
typedef int (*transport_tls_send_fn)(void *ctx, const uint8_t *data, size_t len);
/* Takes up to len received ciphertext bytes; returns how many (0 when none is buffered yet), or a negative
 * error (RS_E_DISCONNECTED once the peer has closed and nothing is left). */
typedef long (*transport_tls_recv_fn)(void *ctx, uint8_t *buf, size_t len);

/* Whether the options ask for TLS at all. */
int transport_tls_wanted(const struct transport_options *o);

/* Loads keys and certificates and prepares a client session. Returns 0 and *out, or RS_E_TLS / -errno
 * (files that cannot be read or parsed are logged with their path). */
int transport_tls_new(const struct transport_options *o, transport_tls_send_fn send, transport_tls_recv_fn recv,
                      void *ctx, struct transport_tls **out);
/* Advances the handshake. Returns 0 when done, 1 when it needs more bytes from the peer, or RS_E_TLS
 * (the reason, e.g. a certificate verification failure, is logged). */
int transport_tls_handshake(struct transport_tls *s);
/* Decrypts up to max bytes. Returns the count, 0 when more ciphertext is needed, RS_E_DISCONNECTED on the
 * peer's close_notify or end of stream, or RS_E_TLS. */
long transport_tls_read(struct transport_tls *s, uint8_t *buf, size_t max);
/* Encrypts all of data and hands it to the send callback. Returns 0 or RS_E_TLS / the callback's error. */
int transport_tls_write(struct transport_tls *s, const uint8_t *data, size_t len);
/* Whether decrypted bytes are waiting inside the TLS layer. */
int transport_tls_pending(const struct transport_tls *s);
void transport_tls_free(struct transport_tls *s);

#endif
