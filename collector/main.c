/* rsprof-collector: command-line entry point (tracing runs and the report subcommand). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "log.h"
#include "options.h"
#include "report.h"
#include "trace.h"
#include "tracer-modules.h"
#include "version.h"

static const char prog[] = "rsprof-collector";

static void usage(FILE *out)
{
  fprintf(out,
          "usage: rsprof-collector --connect HOST:PORT [options]\n"
          "       rsprof-collector report FILE.drcctprof [--format text|folded|json] [--metric NAME]\n"
          "                               [--debug-dir DIR]\n"
          "\n"
          "Connects to rsprof-agent (or gdbserver) on a board, traces the program it controls with the chosen\n"
          "modules, and writes a calling-context profile when the program exits, --duration passes, or on\n"
          "SIGINT/SIGTERM. What was collected so far is always written, also when the server dies or stops\n"
          "answering. SIGINT/SIGTERM end the run within 5 s whatever the server does: up to 1.5 s to stop the\n"
          "program, remove the breakpoints and detach (or kill), then the outputs, and exit status 1.\n"
          "\n"
          "connection:\n"
          "  -c, --connect HOST:PORT    the agent or gdbserver to trace through\n"
          "      --tls-ca FILE          verify the agent's certificate with this CA (enables TLS)\n"
          "      --tls-cert FILE        client certificate (with --tls-key)\n"
          "      --tls-key FILE         client private key\n"
          "      --tls-psk-file FILE    pre-shared key, hex (enables TLS-PSK, ECDHE-PSK suites only; with\n"
          "                             --tls-psk-identity)\n"
          "      --tls-psk-identity ID\n"
          "      --connect-timeout DUR  per attempt (default 5s)\n"
          "      --retries N            connection attempts after the first (default 0)\n"
          "      --reply-timeout DUR    longest wait for any reply (default 10s); while the program runs\n"
          "                             without stopping, the collector interrupts it after DUR of silence and\n"
          "                             takes the server for dead if the stop does not come within DUR\n"
          "      --poll-us N            poll up to N microseconds for each reply before sleeping\n"
          "                             (default 200; 0 never; only with 2 or more CPUs)\n"
          "tracing:\n"
          "  -m, --module LIST          comma-separated tracing modules (default: calls when --trace is given)\n"
          "      --trace NAME           count calls of this function per context (repeatable; calls module);\n"
          "                             an indirect function (IFUNC) counts the implementation it resolved to\n"
          "      --trace-regex RE       count calls of functions matching RE (repeatable; calls module)\n"
          "      --duration DUR         stop after DUR (e.g. 30s, 5m) and detach\n"
          "      --stack-size BYTES     most stack read per event (default 64M: in practice the thread's whole\n"
          "                             stack, whose end is found by reading; 2K first, more if needed)\n"
          "      --max-frames N         deepest stack kept (default 4096)\n"
          "      --kill-at-end          kill the program when tracing stops before it exits (default: detach)\n"
          "      --run PROGRAM [ARGS...] start PROGRAM on the board through an agent in extended mode\n"
          "                             (rsprof-agent --multi, gdbserver --multi); the rest of the command\n"
          "                             line is its arguments. Without it, an agent that has no program\n"
          "                             running starts the one it was given (rsprof-agent --multi -- PROGRAM)\n"
          "      --capture agent|roundtrip|inprocess  who captures each event: agent (the default with an\n"
          "                             agent that offers rsprof-capture) records and streams it, so the\n"
          "                             link's latency costs nothing; roundtrip stops the program and reads\n"
          "                             it from here (stock gdbserver's only way); inprocess: the agent\n"
          "                             preloads or injects its recorder and the memory module's calls are\n"
          "                             recorded inside the program without a stop (other modules: agent)\n"
          "      --agent-unwind yes|no  with --capture agent: yes (the default with an agent that offers\n"
          "                             rsprof-tables) uploads compiled unwind tables so the agent unwinds and\n"
          "                             each stack travels once; no sends every stack window to unwind here\n"
          "      --follow-fork yes|no   yes (default): the program's child processes are traced too, each\n"
          "                             under its own PROCESS[pid] root (a server without fork events: a\n"
          "                             warning, and no); no: they run untraced, our breakpoints removed\n"
          "binaries:\n"
          "      --sysroot DIR          look for the target's files under DIR first\n"
          "      --debug-dir DIR        extra directory of separate debug files (repeatable)\n"
          "      --system-debug-dir DIR the distribution's debug files (default /usr/lib/debug; '' for none)\n"
          "      --cache-dir DIR        cache of fetched binaries (default $XDG_CACHE_HOME/rsprof)\n"
          "      --no-fetch             never download binaries from the target\n"
          "output:\n"
          "  -o, --output FILE          drcctprof profile (EasyView / DrCCTProf viewer)\n"
          "      --pprof FILE           the same profile as gzip'ed profile.proto (go tool pprof, Pyroscope)\n"
          "      --html FILE            a self-contained HTML report with an icicle graph per metric\n"
          "      --summary-json FILE    machine-readable summary\n"
          "      --summary FILE         human-readable summary ('-' for stdout)\n"
          "      --print-stacks FILE    every event (kind, address, size) and its symbolized stack ('-': stdout)\n"
          "      --progress / --no-progress   progress line on stderr (default: when it is a terminal)\n"
          "thresholds:\n"
          "      --fail-on-leak         exit 3 when memory is still allocated at the end\n"
          "      --max-peak BYTES       exit 4 when live heap exceeds BYTES (e.g. 64M)\n"
          "      --max-allocs N         exit 5 when there are more than N allocations\n"
          "other:\n"
          "      --log-level LEVEL      error, warn (default), info, debug, trace\n"
          "  -h, --help                 this help\n"
          "  -V, --version              print the version\n"
          "\n"
          "modules:\n");
  tracer_list_modules(out);
  fprintf(out,
          "\n"
          "exit status: 0 success; 1 error (connection, protocol, a server that stopped answering, an output path\n"
          "not writable: checked before tracing starts) or interrupted by SIGINT/SIGTERM; 2 usage; 3 leak\n"
          "(--fail-on-leak);\n"          "4 peak over --max-peak; 5 allocations over --max-allocs; 6 the program was killed by a signal.\n");
}

enum {
  OPT_TLS_CA = 256, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_PSK_FILE, OPT_TLS_PSK_ID, OPT_CONNECT_TIMEOUT,
  OPT_RETRIES, OPT_REPLY_TIMEOUT, OPT_TRACE, OPT_TRACE_REGEX, OPT_DURATION, OPT_STACK_SIZE, OPT_MAX_FRAMES, OPT_KILL_AT_END,
  OPT_SYSROOT, OPT_DEBUG_DIR, OPT_SYSTEM_DEBUG_DIR, OPT_CACHE_DIR, OPT_NO_FETCH, OPT_SUMMARY_JSON, OPT_PPROF, OPT_HTML, OPT_SUMMARY, OPT_PRINT_STACKS,
  OPT_PROGRESS, OPT_NO_PROGRESS, OPT_FAIL_ON_LEAK, OPT_MAX_PEAK, OPT_MAX_ALLOCS, OPT_LOG_LEVEL, OPT_POLL_US,
  OPT_RUN,
  OPT_FOLLOW_FORK,
  OPT_CAPTURE,
  OPT_AGENT_UNWIND,
};

static const struct option long_opts[] = {
    {"connect", required_argument, NULL, 'c'},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-psk-file", required_argument, NULL, OPT_TLS_PSK_FILE},
    {"tls-psk-identity", required_argument, NULL, OPT_TLS_PSK_ID},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
    {"poll-us", required_argument, NULL, OPT_POLL_US},
    {"module", required_argument, NULL, 'm'},
    {"trace", required_argument, NULL, OPT_TRACE},
    {"break", required_argument, NULL, OPT_TRACE},
    {"trace-regex", required_argument, NULL, OPT_TRACE_REGEX},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"stack-size", required_argument, NULL, OPT_STACK_SIZE},
    {"max-frames", required_argument, NULL, OPT_MAX_FRAMES},
    {"kill-at-end", no_argument, NULL, OPT_KILL_AT_END},
    {"run", required_argument, NULL, OPT_RUN},
    {"follow-fork", required_argument, NULL, OPT_FOLLOW_FORK},
    {"capture", required_argument, NULL, OPT_CAPTURE},
    {"agent-unwind", required_argument, NULL, OPT_AGENT_UNWIND},
    {"sysroot", required_argument, NULL, OPT_SYSROOT},
    {"debug-dir", required_argument, NULL, OPT_DEBUG_DIR},
    {"system-debug-dir", required_argument, NULL, OPT_SYSTEM_DEBUG_DIR},
    {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
    {"no-fetch", no_argument, NULL, OPT_NO_FETCH},
    {"output", required_argument, NULL, 'o'},
    {"summary-json", required_argument, NULL, OPT_SUMMARY_JSON},
    {"pprof", required_argument, NULL, OPT_PPROF},
    {"html", required_argument, NULL, OPT_HTML},
    {"summary", required_argument, NULL, OPT_SUMMARY},
    {"print-stacks", required_argument, NULL, OPT_PRINT_STACKS},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"fail-on-leak", no_argument, NULL, OPT_FAIL_ON_LEAK},
    {"max-peak", required_argument, NULL, OPT_MAX_PEAK},
    {"max-allocs", required_argument, NULL, OPT_MAX_ALLOCS},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {0},
};

static int bad_value(const char *opt, const char *value)
{
  fprintf(stderr, "%s: invalid value '%s' for %s (see --help)\n", prog, value, opt);
  return COL_EXIT_USAGE;
}

/* Splits a comma-separated module list into o->modules (the strings stay in argv). */
static int add_modules(struct col_options *o, char *list)
{
  for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
    if (!tracer_find_module(name)) {
      fprintf(stderr, "%s: unknown module '%s' (see --help)\n", prog, name);
      return COL_EXIT_USAGE;
    }
    if (o->nmodules == COL_MAX_LIST)
      return bad_value("--module", name);
    o->modules[o->nmodules++] = name;
  }
  return 0;
}

static int parse_args(int argc, char **argv, struct col_options *o)
{
  memset(o, 0, sizeof *o);
  o->connect_timeout_ms = 5000;
  o->reply_timeout_ms = 10000;
  o->poll_us = 200;
  o->follow_fork = 1;
  o->stack_bytes = COL_STACK_SIZE_MAX; /* reads stop at the end of the thread's stack anyway */
  o->max_frames = 4096;
  o->progress = -1;
  int have_connect = 0;
  uint64_t v;
  opterr = 0;
  int c;
  /* '+': stop at the first non-option, so nothing after --run PROGRAM is taken for our own options. */
  while (!o->run_argc && (c = getopt_long(argc, argv, "+:c:m:o:hV", long_opts, NULL)) != -1) {
    int rc = 0;
    switch (c) {
    case 'c':
      if (cli_parse_host_port(optarg, o->host, sizeof o->host, &o->port))
        return bad_value("--connect", optarg);
      have_connect = 1;
      break;
    case OPT_TLS_CA: o->tls_ca = optarg; break;
    case OPT_TLS_CERT: o->tls_cert = optarg; break;
    case OPT_TLS_KEY: o->tls_key = optarg; break;
    case OPT_TLS_PSK_FILE: o->tls_psk_file = optarg; break;
    case OPT_TLS_PSK_ID: o->tls_psk_identity = optarg; break;
    case OPT_CONNECT_TIMEOUT:
      if (cli_parse_duration_ms(optarg, &v) || v > 3600000)
        return bad_value("--connect-timeout", optarg);
      o->connect_timeout_ms = (unsigned)v;
      break;
    case OPT_RETRIES:
      if (cli_parse_size(optarg, &v) || v > 1000)
        return bad_value("--retries", optarg);
      o->retries = (unsigned)v;
      break;
    case OPT_REPLY_TIMEOUT:
      if (cli_parse_duration_ms(optarg, &v) || v == 0 || v > 3600000)
        return bad_value("--reply-timeout", optarg);
      o->reply_timeout_ms = (unsigned)v;
      break;
    case OPT_POLL_US:
      if (cli_parse_size(optarg, &v) || v > 1000000)
        return bad_value("--poll-us", optarg);
      o->poll_us = (unsigned)v;
      break;
    case 'm': rc = add_modules(o, optarg); break;
    case OPT_TRACE:
      if (o->ntrace_symbols == COL_MAX_LIST)
        return bad_value("--trace", optarg);
      o->trace_symbols[o->ntrace_symbols++] = optarg;
      break;
    case OPT_TRACE_REGEX:
      if (o->ntrace_regex == COL_MAX_LIST)
        return bad_value("--trace-regex", optarg);
      o->trace_regex[o->ntrace_regex++] = optarg;
      break;
    case OPT_DURATION:
      if (cli_parse_duration_ms(optarg, &o->duration_ms) || o->duration_ms == 0)
        return bad_value("--duration", optarg);
      break;
    case OPT_STACK_SIZE:
      if (cli_parse_size(optarg, &o->stack_bytes) || o->stack_bytes < 64 || o->stack_bytes > COL_STACK_SIZE_MAX)
        return bad_value("--stack-size", optarg);
      break;
    case OPT_MAX_FRAMES:
      if (cli_parse_size(optarg, &v) || v < 1 || v > 65536)
        return bad_value("--max-frames", optarg);
      o->max_frames = (size_t)v;
      break;
    case OPT_KILL_AT_END: o->kill_at_end = 1; break;
    case OPT_RUN:
      if (!*optarg)
        return bad_value("--run", optarg);
      /* PROGRAM is optarg (its own word, or after "--run="); its arguments are whatever follows. */
      argv[optind - 1] = optarg;
      o->run_argv = argv + optind - 1;
      o->run_argc = (size_t)(argc - optind + 1);
      optind = argc;
      break;
    case OPT_FOLLOW_FORK:
      if (!strcmp(optarg, "yes") || !strcmp(optarg, "no"))
        o->follow_fork = !strcmp(optarg, "yes");
      else
        return bad_value("--follow-fork", optarg);
      break;
    case OPT_CAPTURE:
      if (!strcmp(optarg, "agent"))
        o->capture = COL_CAPTURE_AGENT;
      else if (!strcmp(optarg, "roundtrip"))
        o->capture = COL_CAPTURE_ROUNDTRIP;
      else if (!strcmp(optarg, "inprocess"))
        o->capture = COL_CAPTURE_INPROCESS;
      else
        return bad_value("--capture", optarg);
      break;
    case OPT_AGENT_UNWIND:
      if (strcmp(optarg, "yes") && strcmp(optarg, "no"))
        return bad_value("--agent-unwind", optarg);
      o->no_agent_unwind = !strcmp(optarg, "no");
      break;
    case OPT_SYSROOT: o->sysroot = optarg; break;
    case OPT_DEBUG_DIR:
      if (o->ndebug_dirs == COL_MAX_LIST)
        return bad_value("--debug-dir", optarg);
      o->debug_dirs[o->ndebug_dirs++] = optarg;
      break;
    case OPT_SYSTEM_DEBUG_DIR: o->system_debug_dir = optarg; break;
    case OPT_CACHE_DIR: o->cache_dir = optarg; break;
    case OPT_NO_FETCH: o->no_fetch = 1; break;
    case 'o': o->output = optarg; break;
    case OPT_SUMMARY_JSON: o->summary_json = optarg; break;
    case OPT_PPROF: o->pprof = optarg; break;
    case OPT_HTML: o->html = optarg; break;
    case OPT_SUMMARY: o->summary_text = optarg; break;
    case OPT_PRINT_STACKS: o->print_stacks = optarg; break;
    case OPT_PROGRESS: o->progress = 1; break;
    case OPT_NO_PROGRESS: o->progress = 0; break;
    case OPT_FAIL_ON_LEAK: o->fail_on_leak = 1; break;
    case OPT_MAX_PEAK:
      if (cli_parse_size(optarg, &o->max_peak))
        return bad_value("--max-peak", optarg);
      break;
    case OPT_MAX_ALLOCS:
      if (cli_parse_size(optarg, &o->max_allocs))
        return bad_value("--max-allocs", optarg);
      break;
    case OPT_LOG_LEVEL:
      if (rs_log_set_level(optarg))
        return bad_value("--log-level", optarg);
      break;
    case 'h': usage(stdout); exit(0);
    case 'V': printf("%s %s\n", prog, RSPROF_VERSION); exit(0);
    case ':': return cli_option_error(prog, argv, optind, optopt, 1);
    default: return cli_option_error(prog, argv, optind, optopt, 0);
    }
    if (rc)
      return rc;
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[optind]);
    return COL_EXIT_USAGE;
  }
  if (!have_connect) {
    fprintf(stderr, "%s: --connect HOST:PORT is required (see --help)\n", prog);
    return COL_EXIT_USAGE;
  }
  int has_calls = 0;
  for (size_t i = 0; i < o->nmodules; i++)
    has_calls |= strcmp(o->modules[i], "calls") == 0;
  if ((o->ntrace_symbols || o->ntrace_regex) && !has_calls && o->nmodules < COL_MAX_LIST)
    o->modules[o->nmodules++] = "calls";
  if (o->nmodules == 0) {
    fprintf(stderr, "%s: choose at least one --module, or --trace NAME (see --help)\n", prog);
    return COL_EXIT_USAGE;
  }
  if (!o->output && !o->pprof && !o->html && !o->summary_json && !o->summary_text && !o->print_stacks)
    o->summary_text = "-"; /* a run that writes nothing would be wasted */
  return 0;
}

int main(int argc, char **argv)
{
  rs_log_set_program(prog);
  if (argc >= 2 && strcmp(argv[1], "report") == 0)
    return report_main(argc - 1, argv + 1);
  struct col_options o;
  int rc = parse_args(argc, argv, &o);
  if (rc)
    return rc;
  tracer_calls_configure(&o);
  const struct tracer_module *mods[COL_MAX_LIST];
  for (size_t i = 0; i < o.nmodules; i++)
    mods[i] = tracer_find_module(o.modules[i]); /* known: parse_args checked every name */
  return trace_run(&o, mods, o.nmodules);
}
