/* Declarations shared by the agent's RSP server files (dispatch, qXfer objects, host I/O, signals). */
#ifndef RSPROF_AGENT_INTERNAL_H
#define RSPROF_AGENT_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "server.h"

/* Host (Linux) signal number to gdb's numbering and back; unknown numbers map to 0 / themselves. */
int agent_sig_to_gdb(int sig);
int agent_sig_from_gdb(int gsig);

/* Builds the stop reply for st into s->reply (not sent). */
void agent_stop_reply(struct agent_server *s, const struct inf_stop *st);

/* Parses an RSP thread id at *p (advancing it): -1 means all threads, 0 any. Returns 0 or RS_E_BAD_ARG. */
int agent_parse_tid(const char **p, pid_t *tid);

/* qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH (pkt points after "qXfer:"); builds the reply in s->reply. */
void agent_handle_qxfer(struct agent_server *s, const char *pkt);

/* vFile:OPERATION:ARGS (pkt points after "vFile:"), read-only host I/O; builds the reply in s->reply. */
void agent_handle_vfile(struct agent_server *s, char *pkt, size_t len);

#endif
