/* Read-only host I/O (vFile) so a client can fetch the target's binaries. */
#ifndef RSPROF_AGENT_VFILE_H
#define RSPROF_AGENT_VFILE_H

#include <stddef.h>

#include "session.h"

/* vFile:OPERATION:ARGS (pkt points after "vFile:"), read-only host I/O; builds the reply in s->reply. */
void agent_handle_vfile(struct agent_server *s, char *pkt, size_t len);

#endif
