/* A byte-stream connection to the agent (TCP, optionally wrapped in TLS) with a blocking interface over an
 * internal libuv loop; only the transport files see libuv and mbedtls. */
#ifndef RSPROF_COL_TRANSPORT_H
#define RSPROF_COL_TRANSPORT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "transport-options.h"


struct transport;

/* Connects (trying every address of host, then retrying) and completes the TLS handshake when asked.
 * Returns 0 and a new transport in *out (free with transport_close), or -errno (e.g. -ECONNREFUSED),
 * RS_E_TIMEOUT, RS_E_TLS, RS_E_BAD_ARG. Sets SIGPIPE to ignored if it still has its default action, so
 * a peer that hangs up shows as RS_E_DISCONNECTED instead of killing the process. Until transport_connected,
 * a raised cancel flag (transport_set_cancel) ends every wait at once with -EINTR. */
int transport_connect(const struct transport_options *o, struct transport **out);

/* Makes every blocking wait of every transport watch *flag, which a signal handler raises (NULL: none).
 * Once it is nonzero, waits go on for grace_ms more, time to stop the program and leave it politely, and
 * then end at once with -EINTR; a connection attempt ends at once. The flag is checked at least every
 * 100 ms, since a signal does not wake the loop. Process-wide; flag must live as long as the process. */
void transport_set_cancel(volatile sig_atomic_t *flag, unsigned grace_ms);

/* Ends the connection phase that transport_connect began (and the caller's negotiation, if any, continued):
 * from now on a cancel request leaves waits their grace instead of ending them at once. */
void transport_connected(struct transport *t);

/* Queues bytes for sending; they leave while later calls run the loop. Returns 0, RS_E_DISCONNECTED or
 * -errno. The data is copied. */
int transport_write(struct transport *t, const void *data, size_t len);

/* Waits up to timeout_ms (0: only what is already there) for at least one byte and copies up to max bytes
 * into buf. Returns 0 with *got > 0, RS_E_TIMEOUT, RS_E_DISCONNECTED (peer closed, reset, or TLS close),
 * RS_E_TLS, -EINTR (cancelled, see transport_set_cancel) or -errno. */
int transport_read(struct transport *t, unsigned timeout_ms, void *buf, size_t max, size_t *got);

/* Runs the loop until queued bytes have left or timeout_ms passed. Returns 0, RS_E_TIMEOUT, -EINTR or an
 * error. */
int transport_flush(struct transport *t, unsigned timeout_ms);

/* Whether the connection is encrypted (for log messages). */
int transport_is_tls(const struct transport *t);

/* Closes the connection without sending anything more and frees t (NULL is allowed). */
void transport_close(struct transport *t);

#endif
