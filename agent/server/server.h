/* The RSP server: turns decoded packets into process-control calls and replies. It owns no socket;
 * the transport feeds it bytes and gives it a function to send bytes with. */
#ifndef RSPROF_AGENT_SERVER_H
#define RSPROF_AGENT_SERVER_H

#include <stddef.h>

#include "session.h"

/* Prepares a server. argv (borrowed, NULL-terminated) is the program vRun starts by default.
 * Returns 0 or -ENOMEM. */
int agent_server_init(struct agent_server *s, char **argv);
void agent_server_free(struct agent_server *s);

/* A new client connected; send is used for all output until agent_server_disconnect(). */
void agent_server_connect(struct agent_server *s, agent_send_fn send, void *ctx);
/* The client went away: kill a launched program, detach from an attached one. */
void agent_server_disconnect(struct agent_server *s);

/* Whether the client has sent one well-formed packet since it connected. A peer that has not was
 * never a client (a port scan, a stuck handshake): the transport may drop it without
 * agent_server_disconnect(), leaving the session as it was. */
int agent_server_client_spoke(const struct agent_server *s);

/* Bytes arrived from the client (at most agent_server_input_room() of them, or some are dropped). */
void agent_server_feed(struct agent_server *s, const void *data, size_t len);
/* How many bytes agent_server_feed() can take now. Input waits in the server while the program runs
 * or while held; a transport that stops reading when this is 0 drops nothing and lets TCP push back. */
size_t agent_server_input_room(const struct agent_server *s);
/* Flow control from the transport: with hold set (its output backlog passed its bound) the server
 * processes no more packets, so it produces no replies beyond the current one and resumes nothing;
 * clearing it processes what waited. A stop reply of a program already running is still sent. */
void agent_server_hold(struct agent_server *s, int hold);
/* Wait statuses may be available (SIGCHLD): report a stop if one happened. */
void agent_server_child_event(struct agent_server *s);
/* Whether capture events (rsprof-capture) wait to be sent: the transport then calls agent_server_flush_events
 * within a few milliseconds, so events of a program that runs on without hitting more breakpoints still go. */
int agent_server_events_waiting(const struct agent_server *s);
void agent_server_flush_events(struct agent_server *s);

#endif
