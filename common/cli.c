/* Command-line helpers shared by both programs. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

int cli_option_error(const char *prog, char **argv, int optind_after, int optopt_value, int was_missing_arg)
{
  /* For long options getopt leaves optopt at 0 (or the option's val); the text is the argument it just passed. */
  const char *text = argv[optind_after - 1];
  char shortname[3] = {'-', (char)optopt_value, 0};
  if (optopt_value && optopt_value < 256 && (!text || text[0] != '-' || text[1] != '-'))
    text = shortname;
  if (was_missing_arg)
    fprintf(stderr, "%s: option '%s' needs a value (see --help)\n", prog, text);
  else
    fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, text);
  return CLI_EXIT_USAGE;
}

int cli_parse_host_port(const char *s, char *host, size_t hostlen, uint16_t *port)
{
  const char *colon;
  const char *h = s;
  size_t hlen;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':')
      return RS_E_BAD_ARG;
    h = s + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon)
      return RS_E_BAD_ARG;
    hlen = (size_t)(colon - s);
  }
  char *end;
  errno = 0;
  unsigned long p = strtoul(colon + 1, &end, 10);
  if (errno || *end || end == colon + 1 || p > 65535 || hlen + 1 > hostlen)
    return RS_E_BAD_ARG;
  if (hlen == 0) { /* ":9000" means every local address, as gdbserver reads it */
    snprintf(host, hostlen, "0.0.0.0");
  } else {
    memcpy(host, h, hlen);
    host[hlen] = 0;
  }
  *port = (uint16_t)p;
  return 0;
}

int cli_parse_duration_ms(const char *s, uint64_t *ms)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0)
    return RS_E_BAD_ARG;
  double scale;
  if (*end == 0 || strcmp(end, "s") == 0)
    scale = 1000;
  else if (strcmp(end, "ms") == 0)
    scale = 1;
  else if (strcmp(end, "m") == 0)
    scale = 60000;
  else if (strcmp(end, "h") == 0)
    scale = 3600000;
  else
    return RS_E_BAD_ARG;
  *ms = (uint64_t)(v * scale + 0.5);
  return 0;
}

int cli_parse_size(const char *s, uint64_t *bytes)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || s[0] == '-')
    return RS_E_BAD_ARG;
  int shift = 0;
  switch (*end) {
  case 0: break;
  case 'k': case 'K': shift = 10; break;
  case 'm': case 'M': shift = 20; break;
  case 'g': case 'G': shift = 30; break;
  default: return RS_E_BAD_ARG;
  }
  if (*end && end[1] && !(end[1] == 'B' && end[2] == 0) && !(end[1] == 'i' && end[2] == 'B' && end[3] == 0))
    return RS_E_BAD_ARG;
  if (shift && v > (UINT64_MAX >> shift))
    return RS_E_BAD_ARG;
  *bytes = (uint64_t)v << shift;
  return 0;
}
