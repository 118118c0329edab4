/* qXfer objects the agent serves: target description, auxv, executable name, threads, libraries. */
#ifndef RSPROF_AGENT_QXFER_H
#define RSPROF_AGENT_QXFER_H

#include "session.h"

/* qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH (pkt points after "qXfer:"); builds the reply in s->reply. */
void agent_handle_qxfer(struct agent_server *s, const char *pkt);

#endif
