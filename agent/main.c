/* rsprof-agent: command-line entry point; launches or attaches, then serves RSP clients. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "errors.h"
#include "log.h"
#include "server.h"
#include "transport.h"
#include "version.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: rsprof-agent [options] --listen HOST:PORT -- PROGRAM [ARGS...]\n"
          "       rsprof-agent [options] --listen HOST:PORT --attach PID\n"
          "       rsprof-agent [options] --listen HOST:PORT --multi [-- PROGRAM [ARGS...]]\n"
          "  -l, --listen HOST:PORT   address to listen on (port 0 picks a free port)\n"
          "  -a, --attach PID         attach to a running process\n"
          "      --multi              extended mode: stay up across clients, clients start programs\n"
          "      --once               with --multi: exit after the first client leaves\n"
          "      --port-file FILE     write the bound port number to FILE\n"
          "      --idle-timeout SECONDS  close a connection that sends no valid packet within\n"
          "                           SECONDS of connecting, TLS handshake included\n"
          "                           (default 10; 0: wait for ever)\n"
          "      --env NAME=VALUE     add to the launched program's environment (repeatable),\n"
          "                           e.g. --env LD_PRELOAD=/usr/local/lib/librsprof_preload.so\n"
          "      --tls-cert FILE      server certificate (PEM); enables TLS\n"
          "      --tls-key FILE       server private key (PEM)\n"
          "      --tls-ca FILE        require client certificates signed by this CA\n"
          "      --tls-no-client-auth  certificate TLS without --tls-ca on purpose (no warning)\n"
          "      --tls-psk-file FILE  pre-shared key (hex) instead of certificates\n"
          "      --tls-psk-identity ID  identity expected with the pre-shared key\n"
          "      --recorder PATH      the in-process recorder (librsprof_recorder.so) for --capture inprocess\n"
          "                           (default: found next to the agent, in ../lib or ../lib/<multiarch>)\n"
          "      --log-level LEVEL    error, warn, info, debug or trace\n"
          "  -h, --help               show this help\n"
          "  -V, --version            print the version\n"
          "Anyone who can connect controls the traced program: listen on loopback, or use TLS\n"
          "with client authentication (--tls-ca, or a pre-shared key).\n");
}

/* The in-process recorder installed with the agent: ../lib/ (or ../lib/<multiarch>/) from the agent's own
 * executable, or beside it (a build tree keeps it in ../stub/). NULL when there is none. */
static const char *find_recorder(void)
{
  static char found[4096];
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return NULL;
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash)
    return NULL;
  *slash = 0;
  static const char *const rel[] = {
      "/../lib/librsprof_recorder.so", "/../lib/" RSPROF_MULTIARCH "/librsprof_recorder.so",
      "/librsprof_recorder.so", "/../stub/librsprof_recorder.so",
  };
  for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
    snprintf(found, sizeof found, "%s%s", exe, rel[i]);
    char *real = realpath(found, NULL);
    if (real && access(real, R_OK) == 0) {
      snprintf(found, sizeof found, "%s", real);
      free(real);
      return found;
    }
    free(real);
  }
  return NULL;
}

enum { OPT_MULTI = 256, OPT_ONCE, OPT_PORT_FILE, OPT_CERT, OPT_KEY, OPT_CA, OPT_PSK, OPT_PSK_ID, OPT_LOG, OPT_ENV, OPT_IDLE, OPT_NO_CLIENT_AUTH, OPT_RECORDER };
enum { MAX_ENV = 64 };

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {"listen", required_argument, NULL, 'l'},
      {"attach", required_argument, NULL, 'a'},
      {"multi", no_argument, NULL, OPT_MULTI},
      {"once", no_argument, NULL, OPT_ONCE},
      {"port-file", required_argument, NULL, OPT_PORT_FILE},
      {"tls-cert", required_argument, NULL, OPT_CERT},
      {"tls-key", required_argument, NULL, OPT_KEY},
      {"tls-ca", required_argument, NULL, OPT_CA},
      {"tls-psk-file", required_argument, NULL, OPT_PSK},
      {"tls-psk-identity", required_argument, NULL, OPT_PSK_ID},
      {"log-level", required_argument, NULL, OPT_LOG},
      {"env", required_argument, NULL, OPT_ENV},
      {"idle-timeout", required_argument, NULL, OPT_IDLE},
      {"tls-no-client-auth", no_argument, NULL, OPT_NO_CLIENT_AUTH},
      {"recorder", required_argument, NULL, OPT_RECORDER},
      {0},
  };
  struct agent_net_opts net;
  memset(&net, 0, sizeof net);
  net.idle_timeout = 10;
  const char *listen = NULL;
  const char *recorder = NULL;
  long attach = 0;
  int multi = 0;
  static char *launch_env[MAX_ENV + 1];
  int nenv = 0;
  char host[256];
  rs_log_set_program("rsprof-agent");
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+:hVl:a:", opts, NULL)) != -1) {
    switch (c) {
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("rsprof-agent %s\n", RSPROF_VERSION);
      return 0;
    case 'l':
      listen = optarg;
      break;
    case 'a': {
      char *end;
      attach = strtol(optarg, &end, 10);
      if (*end || attach <= 0) {
        fprintf(stderr, "rsprof-agent: invalid process id '%s'\n", optarg);
        return CLI_EXIT_USAGE;
      }
      break;
    }
    case OPT_MULTI: multi = 1; break;
    case OPT_ONCE: net.once = 1; break;
    case OPT_PORT_FILE: net.port_file = optarg; break;
    case OPT_CERT: net.tls.cert = optarg; break;
    case OPT_KEY: net.tls.key = optarg; break;
    case OPT_CA: net.tls.ca = optarg; break;
    case OPT_NO_CLIENT_AUTH: net.tls.no_client_auth = 1; break;
    case OPT_RECORDER:
      if (access(optarg, R_OK) != 0 || optarg[0] != '/') {
        fprintf(stderr, "rsprof-agent: --recorder needs an absolute path to a readable file, not '%s'\n", optarg);
        return CLI_EXIT_USAGE;
      }
      recorder = optarg;
      break;
    case OPT_PSK: net.tls.psk_file = optarg; break;
    case OPT_PSK_ID: net.tls.psk_identity = optarg; break;
    case OPT_ENV:
      if (!strchr(optarg, '=') || optarg[0] == '=' || nenv == MAX_ENV) {
        fprintf(stderr, "rsprof-agent: invalid value '%s' for --env (NAME=VALUE, at most %d)\n", optarg, MAX_ENV);
        return CLI_EXIT_USAGE;
      }
      launch_env[nenv++] = optarg;
      break;
    case OPT_IDLE: {
      char *end;
      errno = 0;
      unsigned long v = strtoul(optarg, &end, 10);
      if (!*optarg || *end || optarg[0] == '-' || errno || v > 86400) {
        fprintf(stderr, "rsprof-agent: invalid value '%s' for --idle-timeout (seconds, 0 to 86400)\n", optarg);
        return CLI_EXIT_USAGE;
      }
      net.idle_timeout = (unsigned)v;
      break;
    }
    case OPT_LOG:
      if (rs_log_set_level(optarg)) {
        fprintf(stderr, "rsprof-agent: unknown log level '%s'\n", optarg);
        return CLI_EXIT_USAGE;
      }
      break;
    case ':':
      return cli_option_error("rsprof-agent", argv, optind, optopt, 1);
    default:
      return cli_option_error("rsprof-agent", argv, optind, optopt, 0);
    }
  }
  char **prog = optind < argc ? argv + optind : NULL;
  if (!listen || (!prog && !attach && !multi) || (prog && attach)) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_parse_host_port(listen, host, sizeof host, &net.port)) {
    fprintf(stderr, "rsprof-agent: invalid --listen address '%s'\n", listen);
    return CLI_EXIT_USAGE;
  }
  if ((net.tls.cert != NULL) != (net.tls.key != NULL) || (net.tls.psk_file != NULL) != (net.tls.psk_identity != NULL)) {
    fprintf(stderr, "rsprof-agent: --tls-cert needs --tls-key, --tls-psk-file needs --tls-psk-identity\n");
    return CLI_EXIT_USAGE;
  }
  if (net.tls.no_client_auth && (net.tls.ca || !net.tls.cert)) {
    fprintf(stderr, "rsprof-agent: --tls-no-client-auth goes with --tls-cert and without --tls-ca\n");
    return CLI_EXIT_USAGE;
  }
  net.host = host;

  static struct agent_server s;
  if (agent_server_init(&s, prog)) {
    fprintf(stderr, "rsprof-agent: out of memory\n");
    return 1;
  }
  s.multi_mode = multi;
  s.inf->launch_env = launch_env;
  s.inf->rec.lib = recorder ? recorder : find_recorder();
  int rc = 0;
  if (prog && !multi) {
    rc = inf_launch(s.inf, prog, 0);
    if (rc) {
      fprintf(stderr, "rsprof-agent: cannot start %s: %s\n", prog[0], rs_strerror(rc));
      agent_server_free(&s);
      return 1;
    }
    s.last = (struct inf_stop){INF_STOP_SIGNAL, 5, s.inf->pid, 0, 0};
    fprintf(stderr, "Process %s created; pid = %d\n", prog[0], (int)s.inf->pid);
  } else if (attach) {
    rc = inf_attach(s.inf, (pid_t)attach);
    if (rc) {
      fprintf(stderr, "rsprof-agent: cannot attach to process %ld: %s\n", attach, rs_strerror(rc));
      agent_server_free(&s);
      return 1;
    }
    s.last = (struct inf_stop){INF_STOP_SIGNAL, 0, (pid_t)attach, 0, 0};
    fprintf(stderr, "Attached; pid = %ld\n", attach);
  }
  rc = agent_net_run(&s, &net);
  if (s.inf->pid) {
    if (s.inf->attached) {
      inf_detach(s.inf);
    } else {
      inf_kill(s.inf);
      s.exit_code = 128 + SIGKILL;
    }
  }
  int code = rc ? 1 : (prog && !multi ? s.exit_code : 0);
  if (rc == 0 && prog && !multi && s.detached_child > 0) {
    /* The client detached and the program runs on; its exit status is still the agent's to report. */
    LOG_INFO("waiting for process %d to exit", (int)s.detached_child);
    int status;
    if (waitpid(s.detached_child, &status, 0) == s.detached_child)
      code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  agent_server_free(&s);
  return code;
}
