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

/* rsprof-tables (docs/protocol.md, "Unwind tables on the board"); each sets the reply.
 * qRsprofTable:BUILDID — 1 when the table is there, 0 when it is to be uploaded. */
void agent_handle_table_query(struct agent_server *s, const char *args);
/* QRsprofTable:BUILDID,OFF,TOTAL:bytes (len: the bytes of args, binary) — OK, E02 no room, E03 a bad table. */
void agent_handle_table_chunk(struct agent_server *s, const char *args, size_t len);
/* QRsprofModule:LO,HI,BIAS[,BUILDID] — 1 (walks with its table), 0 (no table: the host unwinds), E02 full. */
void agent_handle_module(struct agent_server *s, const char *args);
/* QRsprofModules — empties the process's module map (before the collector sends it again). */
void agent_handle_modules_clear(struct agent_server *s);

#endif
