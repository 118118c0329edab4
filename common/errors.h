/* Error codes shared by every part of rsprof: negative errno values or project codes from one list. */
#ifndef RSPROF_ERRORS_H
#define RSPROF_ERRORS_H

/* Project error codes. Functions return 0 on success, -errno for system
 * failures, or one of these (all below RS_E_BASE, so they never clash with
 * errno values). The same list generates rs_strerror()'s messages. */
#define RS_ERRORS(X)                                                          \
  X(PROTO, "protocol error")                                                  \
  X(TOO_LONG, "packet exceeds the size limit")                                \
  X(CHECKSUM, "packet checksum mismatch")                                     \
  X(BAD_HEX, "malformed hexadecimal data")                                    \
  X(BAD_ARG, "malformed packet arguments")                                    \
  X(UNSUPPORTED, "not supported")                                             \
  X(NO_PROCESS, "no process is being debugged")                               \
  X(EXITED, "the traced program has exited")                                  \
  X(DISCONNECTED, "connection closed by peer")                                \
  X(TIMEOUT, "timed out")                                                     \
  X(TLS, "TLS failure")                                                       \
  X(ELF, "not a usable ELF file")                                             \
  X(DWARF, "malformed or unsupported DWARF data")                             \
  X(NO_DEBUG_INFO, "no debug information")                                    \
  X(BUILD_ID_MISMATCH, "local file has a different build-id than the target") \
  X(NOT_FOUND, "not found")                                                   \
  X(TRUNCATED, "stack window exhausted")                                      \
  X(FORMAT, "malformed file")                                                 \
  X(LIMIT, "a configured limit was reached")

#define RS_E_BASE 10000

enum rs_error {
  RS_E_FIRST_ = -RS_E_BASE,
#define RS_ERROR_ENUM(name, msg) RS_E_##name,
  RS_ERRORS(RS_ERROR_ENUM)
#undef RS_ERROR_ENUM
  RS_E_LAST_
};

/* Returns a static message for any code this project returns: 0, -errno or RS_E_*. */
const char *rs_strerror(int code);

#endif
