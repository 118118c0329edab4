/* Summary writers: a small streaming JSON emitter for --summary-json, and a text listing of the top
 * calling contexts by a metric (in the spirit of heaptrack_print). */
#ifndef RSPROF_COL_SUMMARY_H
#define RSPROF_COL_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

#include "cct.h"
#include "profile-write.h"

#define JSON_MAX_DEPTH 32

/* Emits one JSON document to a FILE. Calls after an error do nothing; json_finish() reports it. Misuse
 * (a value where a key is needed, unbalanced ends, nesting deeper than JSON_MAX_DEPTH) is an error too,
 * so a caller's bug shows as a failed write rather than as a malformed file. */
struct json_out {
  FILE *f;         /* borrowed */
  int pretty;      /* indent with two spaces per level */
  int depth;
  int err;         /* first error: RS_E_BAD_ARG for misuse, -errno for I/O */
  char kind[JSON_MAX_DEPTH + 1];   /* 'o' object, 'a' array per level ('\0' at top level) */
  uint8_t count[JSON_MAX_DEPTH + 1]; /* values written at each level, saturating (only 0 vs >0 matters) */
  uint8_t have_key[JSON_MAX_DEPTH + 1];
  int done;        /* the top-level value is complete */
};

void json_init(struct json_out *j, FILE *f, int pretty);
void json_begin_object(struct json_out *j);
void json_end_object(struct json_out *j);
void json_begin_array(struct json_out *j);
void json_end_array(struct json_out *j);
/* The key of the next value inside an object. */
void json_key(struct json_out *j, const char *key);
/* Values. Strings are escaped (quotes, backslashes, control characters; invalid UTF-8 becomes U+FFFD);
 * NULL is written as null; a double that is not finite is written as null. */
void json_string(struct json_out *j, const char *s);
void json_int(struct json_out *j, int64_t v);
void json_uint(struct json_out *j, uint64_t v);
void json_double(struct json_out *j, double v);
void json_bool(struct json_out *j, int v);
void json_null(struct json_out *j);
/* key + value shorthands. */
void json_kv_string(struct json_out *j, const char *key, const char *s);
void json_kv_int(struct json_out *j, const char *key, int64_t v);
void json_kv_uint(struct json_out *j, const char *key, uint64_t v);
void json_kv_double(struct json_out *j, const char *key, double v);
void json_kv_bool(struct json_out *j, const char *key, int v);
/* Ends the document (a newline after it) and flushes. Returns 0, or the first error (including an
 * unfinished document). Does not close the FILE. */
int json_finish(struct json_out *j);

/* Writes s as a JSON string literal (with quotes) to f; the escaping json_string uses. */
void json_write_escaped(FILE *f, const char *s);

/* Prints the top n contexts of t by their own value of metric (largest first; ties by node id; zero and
 * negative values skipped) under the heading title. Each entry shows that value, the node's other
 * nonzero metrics as "name=value", then its stack innermost first, one "    at function (file:line)" line
 * per frame including inline frames. metrics has cct_nmetrics(t) entries; bytes units print in KiB/MiB
 * too. sym may be NULL (frames print as addresses). Returns 0, -ENOMEM or RS_E_BAD_ARG. */
int summary_top_contexts(FILE *out, const struct cct *t, const struct profile_metric *metrics, size_t metric,
                         size_t n, const char *title, profile_symbolize_fn sym, void *sym_ctx);

/* The same selection as a JSON array value (write the key first when inside an object): each element is
 * {"node":id,"thread":tid,"truncated":bool,"metrics":{"name":value,...},"stack":[{"function":..,
 * "file":..,"line":..,"inlined":bool,"pc":"0x.."},...]} with the stack innermost first and every metric
 * included. Returns 0, -ENOMEM or RS_E_BAD_ARG (the emitter's own errors show in json_finish). */
int summary_top_contexts_json(struct json_out *j, const struct cct *t, const struct profile_metric *metrics,
                              size_t metric, size_t n, profile_symbolize_fn sym, void *sym_ctx);

/* Formats a byte count as "12.3 MiB" (or "123 B") into buf; returns buf. */
const char *summary_format_bytes(char *buf, size_t len, int64_t bytes);

#endif
