/* Leveled logging to stderr, shared by the agent and the collector. */
#ifndef RSPROF_LOG_H
#define RSPROF_LOG_H

enum rs_log_level { RS_LOG_ERROR, RS_LOG_WARN, RS_LOG_INFO, RS_LOG_DEBUG, RS_LOG_TRACE };

/* The current threshold; messages above it are dropped. Defaults to RS_LOG_WARN. */
extern enum rs_log_level rs_log_threshold;

/* Sets the threshold from a name ("error", "warn", "info", "debug", "trace").
 * Returns 0, or -1 if the name is unknown. */
int rs_log_set_level(const char *name);

/* Sets the program name printed before each message (borrowed; must outlive logging). */
void rs_log_set_program(const char *name);

void rs_log(enum rs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rs_log_enabled(level) ((level) <= rs_log_threshold)
#define LOG_ERR(...) rs_log(RS_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) rs_log(RS_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) \
  do { if (rs_log_enabled(RS_LOG_INFO)) rs_log(RS_LOG_INFO, __VA_ARGS__); } while (0)
#define LOG_DEBUG(...) \
  do { if (rs_log_enabled(RS_LOG_DEBUG)) rs_log(RS_LOG_DEBUG, __VA_ARGS__); } while (0)
#define LOG_TRACE(...) \
  do { if (rs_log_enabled(RS_LOG_TRACE)) rs_log(RS_LOG_TRACE, __VA_ARGS__); } while (0)

#endif
