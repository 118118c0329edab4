/* The RSP server: turns decoded packets into process-control calls and replies. It owns no socket;
 * the transport feeds it bytes and gives it a function to send bytes with. */
#ifndef RSPROF_AGENT_SERVER_H
#define RSPROF_AGENT_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "inferior.h"
#include "rsp-codec.h"

#define AGENT_PACKET_SIZE 0x20000
#define AGENT_MAX_VFILES 16
#define AGENT_MAX_STOP_STACK AGENT_PACKET_SIZE /* QRsprofStopStack's largest window (fits the reply buffer) */

typedef void (*agent_send_fn)(void *ctx, const void *data, size_t len);

struct agent_server {
  struct inferior inf;
  struct rsp_decoder dec;
  struct rs_buf in;    /* received bytes not yet processed (packets queued behind a resume) */
  struct rs_buf reply; /* payload being built */
  struct rs_buf wire;  /* framed bytes */
  struct rs_buf doc;   /* qXfer documents */
  int noack, multiprocess, swbreak_ok, extended, multi_mode, disable_aslr;
  pid_t gthread, cthread;
  struct inf_stop last;
  int vfd[AGENT_MAX_VFILES];
  char **argv;         /* program to launch when vRun names none; borrowed */
  agent_send_fn send;
  void *send_ctx;
  int done;            /* the session is over: the transport closes the connection */
  int quit;            /* the agent should exit once the connection is closed */
  int exit_code;       /* the launched program's exit status, for the agent's own */
  pid_t detached_child; /* a launched program the client detached from: still the agent's child */
  size_t stop_stack_len; /* QRsprofStopStack: stack bytes appended to breakpoint stop replies (0: off) */
  int stop_time;         /* QRsprofStopTime: breakpoint and signal stop replies say when the agent saw the stop */
};

/* Prepares a server. argv (borrowed, NULL-terminated) is the program vRun starts by default.
 * Returns 0 or -ENOMEM. */
int agent_server_init(struct agent_server *s, char **argv);
void agent_server_free(struct agent_server *s);

/* A new client connected; send is used for all output until agent_server_disconnect(). */
void agent_server_connect(struct agent_server *s, agent_send_fn send, void *ctx);
/* The client went away: kill a launched program, detach from an attached one. */
void agent_server_disconnect(struct agent_server *s);

/* Bytes arrived from the client. */
void agent_server_feed(struct agent_server *s, const void *data, size_t len);
/* Wait statuses may be available (SIGCHLD): report a stop if one happened. */
void agent_server_child_event(struct agent_server *s);

#endif
