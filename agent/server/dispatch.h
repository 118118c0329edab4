/* The RSP packet table: which handler answers which packet, and what each one needs first. */
#ifndef RSPROF_AGENT_DISPATCH_H
#define RSPROF_AGENT_DISPATCH_H

#include <stddef.h>

#include "session.h"

/* Handles one packet (pkt NUL-terminated, len bytes): the reply, possibly empty, is sent unless the
 * packet resumed the program (its stop reply comes later) or has no reply ('k'). */
void agent_dispatch(struct agent_server *s, char *pkt, size_t len);

#endif
