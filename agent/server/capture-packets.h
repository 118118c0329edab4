/* The rsprof-capture packets: QRsprofCapture (what a breakpoint's events record) and qRsprofStats. */
#ifndef RSPROF_AGENT_CAPTURE_PACKETS_H
#define RSPROF_AGENT_CAPTURE_PACKETS_H

#include "session.h"

/* QRsprofCapture:ARGS — sets the reply (OK or E01). */
void agent_handle_capture(struct agent_server *s, const char *args);
/* qRsprofStats — sets the reply. */
void agent_handle_capture_stats(struct agent_server *s);
/* QRsprofInprocess:1 — preload or inject the recorder; sets the reply (OK, E01, E03). */
void agent_handle_inprocess(struct agent_server *s, const char *args);
/* QRsprofRecord:FUNC,ADDR,ID,REGMASK — which breakpoint the recorder's calls stand for; sets the reply. */
void agent_handle_record(struct agent_server *s, const char *args);

#endif
