/* The collector's settings, filled from the command line and read by the tracing session. */
#ifndef RSPROF_COL_OPTIONS_H
#define RSPROF_COL_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define COL_MAX_LIST 64
#define COL_STACK_SIZE_MAX (64u << 20) /* --stack-size's largest value and its default */

/* Exit statuses of rsprof-collector (documented in --help and the README). */
enum col_exit {
  COL_EXIT_OK = 0,
  COL_EXIT_ERROR = 1,     /* could not connect, protocol failure, unwritable output */
  COL_EXIT_USAGE = 2,     /* bad command line */
  COL_EXIT_LEAK = 3,      /* --fail-on-leak and bytes were still live at the end */
  COL_EXIT_PEAK = 4,      /* --max-peak exceeded */
  COL_EXIT_ALLOCS = 5,    /* --max-allocs exceeded */
  COL_EXIT_TARGET = 6,    /* the traced program was killed by a signal */
};

/* --capture: who captures an event. */
enum col_capture {
  COL_CAPTURE_AUTO = 0,  /* the agent when it offers rsprof-capture, else round trips */
  COL_CAPTURE_AGENT,     /* the agent records each event and streams it (falls back, with a warning) */
  COL_CAPTURE_ROUNDTRIP, /* every event is a stop the collector handles (stock gdbserver's only way) */
  COL_CAPTURE_INPROCESS, /* the recorder inside the program for the memory module, the agent for the rest */
};

struct col_options {
  char host[256];
  uint16_t port;
  const char *tls_ca, *tls_cert, *tls_key, *tls_psk_file, *tls_psk_identity;
  unsigned connect_timeout_ms, retries;
  unsigned reply_timeout_ms; /* --reply-timeout: longest wait for any reply, and for proof of life while running */
  unsigned poll_us; /* see transport_options */
  const char *modules[COL_MAX_LIST]; /* tracing module names */
  size_t nmodules;
  const char *trace_symbols[COL_MAX_LIST]; /* --trace / --break */
  size_t ntrace_symbols;
  const char *trace_regex[COL_MAX_LIST]; /* --trace-regex */
  size_t ntrace_regex;
  const char *output;        /* -o FILE.drcctprof */
  const char *pprof;         /* --pprof FILE: the profile as pprof's profile.proto */
  const char *html;          /* --html FILE: the self-contained HTML report */
  const char *summary_json;  /* --summary-json FILE */
  const char *summary_text;  /* --summary FILE ("-" for stdout) */
  const char *print_stacks;  /* --print-stacks FILE: every event's symbolized stack, for inspection and tests */
  uint64_t duration_ms;      /* 0: until the program exits */
  uint64_t stack_bytes;      /* most stack read per event (the window grows up to it, or the stack's end) */
  size_t max_frames;
  const char *sysroot;
  const char *cache_dir;
  const char *debug_dirs[COL_MAX_LIST + 1]; /* NULL-terminated */
  size_t ndebug_dirs;
  const char *system_debug_dir; /* NULL: the default (/usr/lib/debug); "": none */
  int no_fetch;
  int kill_at_end;           /* 1: kill the program when tracing stops early; 0: detach */
  int fail_on_leak;
  uint64_t max_peak;         /* 0: no limit */
  uint64_t max_allocs;       /* 0: no limit */
  int progress;              /* -1 auto (terminal), 0 off, 1 on */
  int capture;               /* --capture: enum col_capture */
  int no_agent_unwind;       /* --agent-unwind no: no tables for the agent, every stack window to the host */
  int follow_fork;           /* --follow-fork: 1 yes (the default, when the server can), 0 no */
  char *const *run_argv;     /* --run PROGRAM ARGS...: start this through vRun (points into argv) */
  size_t run_argc;           /* 0: trace the server's process, or start its own program when it has none */
};

#endif
