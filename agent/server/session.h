/* The state of one RSP server (the traced program, the client's settings, the reply being built) and
 * the reply helpers every packet handler shares. Packet handlers sit above this file, the server's
 * input loop above them. */
#ifndef RSPROF_AGENT_SESSION_H
#define RSPROF_AGENT_SESSION_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "processes.h"
#include "rsp-codec.h"

#define AGENT_PACKET_SIZE 0x20000
#define AGENT_MAX_VFILES 16
#define AGENT_MAX_STOP_STACK AGENT_PACKET_SIZE /* QRsprofStopStack's largest window (fits the reply buffer) */

typedef void (*agent_send_fn)(void *ctx, const void *data, size_t len);

struct agent_server {
  struct inferior *inf;  /* the current process: the last one to stop, or the one Hg selected */
  struct inferior first; /* the launched or attached process's storage */
  struct inf_procs procs; /* every traced process: first, and the children followed (fork-events) */
  struct rsp_decoder dec;
  struct rs_buf in;    /* received bytes not yet processed (packets queued behind a resume) */
  struct rs_buf reply; /* payload being built */
  struct rs_buf wire;  /* framed bytes */
  struct rs_buf doc;   /* qXfer documents */
  int noack, multiprocess, swbreak_ok, extended, multi_mode, disable_aslr;
  int follow_fork;     /* the client asked for fork events (fork-events+ with multiprocess+, no rsprof-detachfork+) */
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
  int hold;              /* the transport's output backlog is over its bound: no packet is processed */
  int spoke;             /* the client has sent a well-formed packet since it connected */
  int capture_used;      /* the client armed a capture breakpoint (rsprof-capture): stop replies follow stats */
};

/* Event batches (rsprof-capture): at most this many record bytes per "%RsprofEvents:" notification; a batch
 * goes out once this much is waiting, or after the transport's short timer. */
#define AGENT_EVENT_BATCH (64u << 10) /* a bigger record (a deep stack) goes alone */

/* Sends bytes to the client as they are (acks); nothing happens while no client is connected. */
void agent_send_raw(struct agent_server *s, const void *data, size_t len);
/* Frames the reply buffer, sends it and empties it. */
void agent_send_reply(struct agent_server *s);
/* Replaces the reply with str. */
void agent_reply_str(struct agent_server *s, const char *str);
/* Replaces the reply with an error reply: "E02" for code 2, "E01" for anything else (what gdbserver
 * answers; clients only test for the 'E'). */
void agent_reply_err(struct agent_server *s, int code);

/* Appends an RSP thread id for tid to b ("pPID.TID" when the client speaks multiprocess). */
void agent_put_tid(struct agent_server *s, struct rs_buf *b, pid_t tid);
/* Parses an RSP thread id at *p (advancing it): -1 means all threads, 0 any. Returns 0 or RS_E_BAD_ARG. */
int agent_parse_tid(const char **p, pid_t *tid);
/* The same, with the process id too ("p<pid>.<tid>"; 0 when the id names none, -1 for all). */
int agent_parse_ptid(const char **p, pid_t *pid, pid_t *tid);
/* The thread that register packets act on when sel (a selected thread id) names none: the last
 * reporter, else the first thread. NULL when there is no process. */
struct inf_thread *agent_cur_thread(struct agent_server *s, pid_t sel);

/* Sends the recorded capture events as "%RsprofEvents:" notifications, in batches of at most AGENT_EVENT_BATCH
 * record bytes: all of them with force (before a stop reply), else while the transport does not hold the
 * server. Returns 1 when something was sent (room was freed), else 0. */
int agent_flush_events(struct agent_server *s, int force);

/* Builds the stop reply for st into s->reply (not sent). */
void agent_stop_reply(struct agent_server *s, const struct inf_stop *st);
/* Sends the stop reply for st, remembers it for '?', and ends the session when the program is gone
 * and the client is not in extended mode. */
void agent_report_stop(struct agent_server *s, const struct inf_stop *st);

#endif
