/* A fake connection for fuzzing the collector's RSP client: transport.h served from a byte string (what
 * "the agent" sends), with writes read and dropped, plus file access confined to a scratch folder. */
#ifndef RSPROF_FUZZ_FAKE_TRANSPORT_H
#define RSPROF_FUZZ_FAKE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

/* The next connection delivers stream (borrowed until the connection closes) in reads of sizes drawn from
 * seed (0: as much as the reader asks for), then reports the peer gone. */
void fake_transport_serve(const uint8_t *stream, size_t len, unsigned seed);

/* While root is not NULL, open() in the collector's code refuses paths outside root (or with ".."), so a
 * path from a reply cannot reach a device or a file elsewhere. root is borrowed. */
void fake_transport_confine(const char *root);

#endif
