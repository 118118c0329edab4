/* Leveled logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum rs_log_level rs_log_threshold = RS_LOG_WARN;
static const char *log_program = "rsprof";
static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int rs_log_set_level(const char *name)
{
  for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strcmp(name, level_names[i]) == 0) {
      rs_log_threshold = (enum rs_log_level)i;
      return 0;
    }
  }
  return -1;
}

void rs_log_set_program(const char *name)
{
  log_program = name;
}

void rs_log(enum rs_log_level level, const char *fmt, ...)
{
  if (!rs_log_enabled(level))
    return;
  /* One buffered write per message keeps lines from different processes whole. */
  char line[2048];
  int n = snprintf(line, sizeof line, "%s: %s: ", log_program, level_names[level]);
  va_list ap;
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < sizeof line)
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", line);
}
