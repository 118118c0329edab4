/* The agent's network side: a libuv loop listening on TCP (optionally wrapped in TLS) that hands one
 * client at a time to the RSP server and wakes it on SIGCHLD. Only transport files include libuv or
 * mbedtls headers. */
#ifndef RSPROF_AGENT_TRANSPORT_H
#define RSPROF_AGENT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

struct agent_tls_opts {
  const char *cert, *key, *ca;       /* PEM files; ca makes client certificates mandatory */
  const char *psk_file, *psk_identity; /* pre-shared key (hex in the file) instead of certificates */
  int no_client_auth;                /* a certificate without ca is meant: no warning */
};

struct agent_net_opts {
  const char *host;
  uint16_t port;
  const char *port_file; /* written with the bound port once listening */
  int once;              /* in multi mode, exit after the first client leaves */
  unsigned idle_timeout; /* seconds a new connection has to send its first well-formed packet, TLS
                            handshake included, before it is closed; 0: no limit */
  struct agent_tls_opts tls;
};

/* Listens and serves clients until the server says quit. Returns 0 or a negative code
 * (listening failed, or the TLS configuration could not be loaded). */
int agent_net_run(struct agent_server *s, const struct agent_net_opts *o);

/* TLS session state per connection, behind a small interface (transport-tls.c). */
struct agent_tls_server;
struct agent_tls_conn;
typedef void (*agent_bytes_fn)(void *ctx, const void *data, size_t len);
typedef size_t (*agent_room_fn)(void *ctx);

/* Whether any TLS option is set. */
int agent_tls_wanted(const struct agent_tls_opts *o);
/* Loads certificates / keys. Returns 0 and a new object in *out, or a negative code. */
int agent_tls_server_new(const struct agent_tls_opts *o, struct agent_tls_server **out);
void agent_tls_server_destroy(struct agent_tls_server *t);
/* Starts a server-side session. Ciphertext for the peer goes to wire(ctx, ...); plaintext from the
 * peer goes to plain(ctx, ...), never more at a time than room(ctx) says it can take (what does not
 * fit stays buffered here). Returns NULL on allocation failure. */
struct agent_tls_conn *agent_tls_conn_new(struct agent_tls_server *t, agent_bytes_fn wire,
                                          agent_bytes_fn plain, agent_room_fn room, void *ctx);
void agent_tls_conn_destroy(struct agent_tls_conn *c);
/* Feeds ciphertext from the peer (len may be 0: only hands on what was buffered, once room allows).
 * Returns 0, or a negative code when the session failed (the handshake was refused or the peer
 * misbehaved): the caller closes the connection. */
int agent_tls_conn_feed(struct agent_tls_conn *c, const void *data, size_t len);
/* Bytes received from the peer and not yet handed to plain() (ciphertext, or decrypted and waiting). */
size_t agent_tls_conn_pending(const struct agent_tls_conn *c);
/* Whether the handshake has completed (only then is the peer a client of the RSP server). */
int agent_tls_conn_established(const struct agent_tls_conn *c);
/* Encrypts plaintext for the peer. Returns 0 or a negative code. */
int agent_tls_conn_write(struct agent_tls_conn *c, const void *data, size_t len);

#endif
