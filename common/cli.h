/* Command-line helpers shared by both programs: option errors, host:port, durations and sizes. */
#ifndef RSPROF_CLI_H
#define RSPROF_CLI_H

#include <stddef.h>
#include <stdint.h>

/* Exit status for command-line usage errors, in both programs. */
#define CLI_EXIT_USAGE 2

/* Reports the option getopt_long() rejected (opterr must be 0) as one line on stderr:
 * "PROG: unknown option '--foo' (see --help)" or "PROG: option '-o' needs a value".
 * Returns CLI_EXIT_USAGE for the caller to exit with. */
int cli_option_error(const char *prog, char **argv, int optind_after, int optopt_value, int was_missing_arg);

/* Splits "HOST:PORT" or "[V6ADDR]:PORT" into host and port. Returns 0 or RS_E_BAD_ARG. */
int cli_parse_host_port(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Parses a duration such as "250ms", "30s", "5m", "1h" (no unit: seconds) into milliseconds.
 * Returns 0 or RS_E_BAD_ARG. */
int cli_parse_duration_ms(const char *s, uint64_t *ms);

/* Parses a byte size such as "4096", "64K", "10M", "2G" (binary multiples). Returns 0 or RS_E_BAD_ARG. */
int cli_parse_size(const char *s, uint64_t *bytes);

#endif
