/* A GDB remote protocol client over TCP or TLS: qSupported negotiation, no-ack mode, pipelined requests,
 * memory, registers, breakpoints, stop replies, qXfer objects and vFile host I/O. Each call runs the
 * connection's event loop until its reply arrives or the timeout passes, so the interface is blocking. */
#ifndef RSPROF_COL_RSP_CLIENT_H
#define RSPROF_COL_RSP_CLIENT_H

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct rspc_options {
  const char *host;
  uint16_t port;
  const char *tls_ca, *tls_cert, *tls_key, *tls_psk_file, *tls_psk_identity; /* all NULL: plain TCP */
  unsigned connect_timeout_ms; /* 0: 10 s */
  unsigned retries;
  unsigned retry_delay_ms;
  unsigned reply_timeout_ms;   /* every wait for a reply; 0: 10 s */
  unsigned poll_us;            /* see transport_options */
  int detach_fork;             /* offer rsprof-detachfork+: our agent then lets children go itself */
};

/* What the server offered (1 = usable). */
struct rspc_features {
  int no_ack, swbreak, multiprocess, vcont, xfer_features, xfer_auxv, xfer_libraries_svr4, xfer_exec_file,
      xfer_threads, binary_upload /* 'x' */, vfile;
  size_t packet_size; /* the server's PacketSize (400 when it gave none) */
  int rsprof_ext;     /* any rsprof-…+ extension (rsprof-stepover: the server steps over its breakpoints) */
  int stop_stack;     /* rsprof-stopstack: QRsprofStopStack adds the stack window to breakpoint stops */
  int quiet_break;    /* rsprof-quietbreak: QRsprofQuiet makes a breakpoint's hits travel with the next stop */
  int stop_time;      /* rsprof-stoptime: QRsprofStopTime:1 makes stop replies say when the agent saw them */
  int fork_events, vfork_events, exec_events; /* the server stops at a fork, a vfork (and vforkdone), an exec */
  int detach_fork;    /* rsprof-detachfork: the server lets the program's children go itself, breakpoints removed */
  int startup_with_shell; /* QStartupWithShell: only gdbserver offers it (how the summary names the server) */
  char version[32];   /* rsprof-version=V: the agent's version ("" when the server did not say) */
  int capture;        /* rsprof-capture: QRsprofCapture breakpoints whose events stream as notifications */
  int inprocess;      /* rsprof-inprocess: the agent has the in-process recorder (QRsprofInprocess, QRsprofRecord) */
  int tables;         /* rsprof-tables: compiled unwind tables upload to the agent, which then unwinds */
};

struct rspc;

/* Connects, negotiates qSupported (offering multiprocess+;swbreak+;fork-events+;vfork-events+;exec-events+;
 * vContSupported+;xmlRegisters=i386),
 * switches to no-ack mode when offered, and probes vCont? and vFile. Returns 0 and a new client in *out
 * (free with rspc_close), or a transport error (-ECONNREFUSED, RS_E_TIMEOUT, RS_E_TLS, RS_E_DISCONNECTED...)
 * or RS_E_PROTO. */
int rspc_connect(const struct rspc_options *o, struct rspc **out);
/* Makes every client's waits watch *flag, raised by a signal handler: once it is nonzero, requests still get
 * grace_ms to finish (stopping the program, removing breakpoints, detaching), then every wait, and any
 * connection attempt at once, fails with -EINTR. Process-wide (transport_set_cancel). */
void rspc_cancel_on(volatile sig_atomic_t *flag, unsigned grace_ms);
/* Notifications ("%name:data#cs", rsprof-capture's event batches) are handed to fn as they are decoded, in
 * the order of the stream, whatever call is reading: payload borrowed for the call only. fn must not use c.
 * Without a function they are dropped. */
typedef void (*rspc_notify_fn)(void *ctx, const uint8_t *payload, size_t len);
void rspc_on_notification(struct rspc *c, rspc_notify_fn fn, void *ctx);
/* Bytes received from the server since the connection opened (framing, acks and notifications included). */
uint64_t rspc_bytes_received(const struct rspc *c);

/* Closes the connection without sending a packet and frees c (NULL is allowed). */
void rspc_close(struct rspc *c);
/* The negotiated features; borrowed for c's lifetime. */
const struct rspc_features *rspc_features(const struct rspc *c);
/* The full qSupported reply, for diagnostics (borrowed). */
const char *rspc_supported_reply(const struct rspc *c);

/* Sends one packet and waits for its reply (replies still owed to earlier packets are discarded first).
 * *reply and *rlen are borrowed until the next call on c; the reply is NUL-terminated. Returns 0,
 * RS_E_TIMEOUT, RS_E_DISCONNECTED, RS_E_PROTO, -EINTR (cancelled: rspc_cancel_on), or RS_E_TOO_LONG when the framed packet would exceed the
 * server's PacketSize (nothing is sent; it is logged with the limit). An empty reply (unsupported packet) is a
 * success. */
int rspc_request(struct rspc *c, const char *payload, size_t len, const char **reply, size_t *rlen);
int rspc_requestf(struct rspc *c, const char **reply, size_t *rlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sends a formatted packet whose only good reply is "OK". Returns 0, -EIO for any other reply,
 * RS_E_UNSUPPORTED for an empty one, or a transport error. */
int rspc_request_ok(struct rspc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pipelining: rspc_send queues a packet that expects a reply; rspc_recv returns the replies in order.
 * rspc_recv's reply is borrowed like rspc_request's. Both return 0 or the errors above; after RS_E_TIMEOUT
 * the late reply is still owed and the next rspc_recv returns it. */
int rspc_send(struct rspc *c, const char *payload, size_t len);
int rspc_recv(struct rspc *c, unsigned timeout_ms, const char **reply, size_t *rlen);
/* Sends the interrupt byte 0x03 (the stop reply comes through rspc_wait_stop). */
int rspc_interrupt(struct rspc *c);

/* Reads a whole qXfer object (e.g. "features" / "target.xml", "auxv" / "") and appends it to out.
 * Returns 0, RS_E_UNSUPPORTED (empty reply), -EIO (an E reply), RS_E_LIMIT, or a transport error. */
int rspc_qxfer_read(struct rspc *c, const char *object, const char *annex, struct rs_buf *out);

/* Reads target memory ('x' when the server advertised binary-upload+, else 'm'), split by packet size and
 * pipelined. Returns 0 when all len bytes were read; -EFAULT when the target refused part of the range
 * (*got, if not NULL, then says how many leading bytes are valid); or a transport error. */
int rspc_read_memory(struct rspc *c, uint64_t addr, void *buf, size_t len, size_t *got);
/* Writes target memory ('M'). Returns 0, -EFAULT, or a transport error. */
int rspc_write_memory(struct rspc *c, uint64_t addr, const void *buf, size_t len);
/* Software breakpoints: Z0/z0 with the architecture's kind (1 on x86_64, 4 on aarch64).
 * Return 0, RS_E_UNSUPPORTED, -EIO, or a transport error. */
int rspc_insert_breakpoint(struct rspc *c, uint64_t addr, int kind);
int rspc_remove_breakpoint(struct rspc *c, uint64_t addr, int kind);

/* FORK, VFORK, VFORK_DONE and EXEC are T stops (signal 5) whose reason is a process event (fork-events+,
 * vfork-events+, exec-events+): the thread that forked, or the process that executed a new program. */
enum rspc_stop_kind {
  RSPC_STOP_SIGNAL, RSPC_STOP_EXITED, RSPC_STOP_TERMINATED, RSPC_STOP_FORK, RSPC_STOP_VFORK,
  RSPC_STOP_VFORK_DONE, RSPC_STOP_EXEC
};
#define RSPC_MAX_EXPEDITED 64
struct rspc_stop {
  enum rspc_stop_kind kind;
  int signal;     /* RSPC_STOP_SIGNAL and RSPC_STOP_TERMINATED (gdb signal numbers) */
  int exit_code;  /* RSPC_STOP_EXITED */
  int64_t pid, tid; /* 0 when the reply did not say */
  int64_t child_pid, child_tid; /* RSPC_STOP_FORK / RSPC_STOP_VFORK: the new process and its thread */
  int swbreak;    /* the server reported a software breakpoint hit */
  const uint8_t *stack; /* rsprof-stopstack: the stack window at sp, borrowed from the reply (NULL: none) */
  size_t stack_len;
  const char *quiet;    /* rsprof-quietbreak: the hits' text, borrowed from the reply (NULL: none) */
  size_t quiet_len;
  uint64_t time_ns;     /* rsprof-stoptime: the agent's CLOCK_MONOTONIC at the stop (has_time) */
  int has_time;
  int nregs;
  struct {
    int regno;
    uint64_t value;
  } regs[RSPC_MAX_EXPEDITED]; /* expedited registers (gdb numbering, values of at most 8 bytes) */
};
/* Parses a stop reply (S, T, W, X). Returns 0 or RS_E_PROTO. */
int rspc_parse_stop(const char *reply, size_t len, struct rspc_stop *out);
/* One hit on a quiet breakpoint, as a stop reply carries it. */
struct rspc_quiet_hit {
  int64_t tid;
  uint64_t pc, sp, retval;
  uint64_t ns; /* the agent's CLOCK_MONOTONIC at the hit */
};
/* Parses the next hit of a stop's quiet list [*p, end) and advances *p. Returns 1 with *h, 0 at the end,
 * or RS_E_PROTO. */
int rspc_next_quiet_hit(const char **p, const char *end, struct rspc_quiet_hit *h);
/* Looks up an expedited register in a stop; returns 1 and *value when present. */
int rspc_stop_reg(const struct rspc_stop *s, int regno, uint64_t *value);
/* Asks why the target stopped ('?') and parses the answer. */
int rspc_query_stop(struct rspc *c, struct rspc_stop *out);

/* Starts a program in extended mode ('!', then vRun): argv[0..argc) is the program and its arguments; argc 0
 * asks for the program the server was started with. The server kills a process it already had. *out is
 * the new process's first stop. Returns 0, RS_E_UNSUPPORTED (no extended mode), -EIO (the server could
 * not start it), RS_E_LIMIT (the command line does not fit a packet) or a transport error. */
int rspc_run(struct rspc *c, const char *const *argv, size_t argc, struct rspc_stop *out);

/* Resumes all threads (vCont;c when supported, else c; a nonzero signal goes to the last stopped thread)
 * without waiting for the stop; replies still owed to earlier packets are collected after sending (a refused
 * one is logged). Returns 0 or a transport error. */
int rspc_continue(struct rspc *c, int signal);
/* Waits for the next stop reply (console 'O' packets are logged and skipped). Returns 0, RS_E_TIMEOUT,
 * RS_E_DISCONNECTED or RS_E_PROTO. */
int rspc_wait_stop(struct rspc *c, unsigned timeout_ms, struct rspc_stop *out);
/* Single-steps one thread while the others stay stopped (vCont;s:ptid, else Hc + s) and waits for the
 * stop. Used to move off a breakpoint: gdbserver does not step over a client's breakpoint at the PC.
 * Returns like rspc_wait_stop. */
int rspc_step(struct rspc *c, int64_t pid, int64_t tid, unsigned timeout_ms, struct rspc_stop *out);
/* Moves one thread off a breakpoint at addr that the server keeps in place (stock gdbserver): removes it,
 * single-steps the thread (the others stay stopped) and re-inserts it. The removal and the step go out
 * together and the re-insertion's reply is left for the next rspc_continue, so this costs one round trip
 * instead of three. Returns like rspc_wait_stop, or -EIO when the removal was refused. */
int rspc_step_over(struct rspc *c, int64_t pid, int64_t tid, uint64_t addr, int kind, unsigned timeout_ms,
                   struct rspc_stop *out);
/* Selects the thread for later operations: op 'g' (registers, memory) or 'c'. pid 0 without multiprocess;
 * tid -1 means all threads, 0 any. Returns 0, -EIO or a transport error. */
int rspc_select_thread(struct rspc *c, char op, int64_t pid, int64_t tid);
/* Reads the selected thread's registers ('g') as binary little-endian bytes in 'g' order into buf;
 * unavailable registers read as zero. Returns 0 with *len, RS_E_LIMIT when max is too small, -EIO. */
int rspc_read_registers(struct rspc *c, uint8_t *buf, size_t max, size_t *len);
/* Lists thread ids (qfThreadInfo/qsThreadInfo). *pids and *tids are malloc'ed (caller frees); pids may be
 * NULL. Returns 0 or an error. */
int rspc_list_threads(struct rspc *c, int64_t **pids, int64_t **tids, size_t *n);
/* Formats a thread id as H and vCont expect: "pPID.TID" with multiprocess, else "TID" (-1: all). */
void rspc_format_ptid(const struct rspc *c, char *out, size_t max, int64_t pid, int64_t tid);
/* Whether a reply is an error ("Exx" or "E.message"). */
int rspc_is_error(const char *reply, size_t len);
/* The reply timeout from the options, for callers that wait on rspc_recv themselves. */
unsigned rspc_reply_timeout(const struct rspc *c);

/* Reads one stopped thread's registers and the stack window [sp, sp+stack_len) in a single round trip:
 * Hg (when tid > 0), 'g' and the memory reads are pipelined. sp usually comes from the stop reply's
 * expedited registers. *stack_got says how many leading stack bytes are valid (the window may run into
 * unmapped memory; that is not an error). Returns 0, -EIO (no registers), RS_E_LIMIT, or a transport error. */
int rspc_capture(struct rspc *c, int64_t pid, int64_t tid, uint8_t *regs, size_t regs_max, size_t *regs_len,
                 uint64_t sp, uint8_t *stack, size_t stack_len, size_t *stack_got);

/* Kills the target (vKill for the last stopped process with multiprocess, else k) / detaches from it (D).
 * Return 0 or an error; a server that closes the connection after k counts as success. */
int rspc_kill(struct rspc *c);
int rspc_detach(struct rspc *c);

/* vFile host I/O on the target, read-only. Each returns 0 or -errno as the target reported it
 * (RS_E_UNSUPPORTED when the server has no vFile; RS_E_TOO_LONG, with a message naming the limit, when a path
 * does not fit the server's PacketSize). */
int rspc_vfile_open(struct rspc *c, const char *path, int *fd);
/* Reads up to len bytes at offset; *got == 0 at end of file. */
int rspc_vfile_pread(struct rspc *c, int fd, uint64_t offset, void *buf, size_t len, size_t *got);
int rspc_vfile_close(struct rspc *c, int fd);
int rspc_vfile_size(struct rspc *c, int fd, uint64_t *size); /* vFile:fstat's st_size */
/* Reads a symbolic link into out (NUL-terminated). */
int rspc_vfile_readlink(struct rspc *c, const char *path, char *out, size_t max);
/* Parses a vFile reply "F<result>[,<errno>][;<attachment>]". Returns 0 with *result (>= 0) and, when data is
 * not NULL, the attachment in *data and *dlen (borrowed from r); -errno for a failure the target reported (EIO when
 * it gave no usable errno); RS_E_UNSUPPORTED for an empty reply; RS_E_PROTO for anything else. */
int rspc_parse_vfile_reply(const char *r, size_t n, long long *result, const char **data, size_t *dlen);
/* Copies a whole remote file to local_path (written to a temporary name and renamed). */
int rspc_vfile_fetch(struct rspc *c, const char *remote_path, const char *local_path);

#endif
