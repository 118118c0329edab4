/* How to reach the agent: address, TLS material, timeouts; shared by the TCP and the TLS side of the transport. */
#ifndef RSPROF_COL_TRANSPORT_OPTIONS_H
#define RSPROF_COL_TRANSPORT_OPTIONS_H

#include <stdint.h>

struct transport_options {
  const char *host;
  uint16_t port;
  /* TLS: a CA file verifies the server; cert+key present a client certificate; a PSK file (hex key, or raw
   * bytes when it is not hex) with an identity authenticates both sides without certificates.
   * All NULL: plain TCP. */
  const char *tls_ca, *tls_cert, *tls_key, *tls_psk_file, *tls_psk_identity;
  unsigned connect_timeout_ms; /* per attempt, including the TLS handshake; 0: 10 s */
  unsigned retries;            /* further attempts after a failed connect (not after a TLS failure) */
  unsigned retry_delay_ms;
  /* Before sleeping for bytes, poll the socket for up to this many microseconds (0: never). Replies that
   * come back within it never wait for this process's CPU to wake from idle, the larger part of a
   * loopback round trip on virtual machines. Ignored when the process may use only one CPU. */
  unsigned poll_us;
};

#endif
