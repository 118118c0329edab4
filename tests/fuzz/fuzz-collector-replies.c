/* Fuzzes the collector's reply parsers directly, without a session around them: stop replies (with the
 * rsprof quiet-hit, stop-time and stack fields) and the svr4 library list document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "errors.h"
#include "rsp-client.h"
#include "target.h"

static void stop_reply(const char *r, size_t len)
{
  struct rspc_stop st;
  if (rspc_parse_stop(r, len, &st) != 0)
    return;
  /* Borrowed fields must lie inside the reply. */
  if (st.stack && (st.stack < (const uint8_t *)r || st.stack + st.stack_len > (const uint8_t *)r + len))
    abort();
  if (st.quiet && (st.quiet < r || st.quiet + st.quiet_len > r + len))
    abort();
  if (st.nregs < 0 || st.nregs > RSPC_MAX_EXPEDITED)
    abort();
  uint64_t v;
  for (int regno = 0; regno < 40; regno++)
    rspc_stop_reg(&st, regno, &v);
  if (st.quiet) {
    const char *p = st.quiet, *end = st.quiet + st.quiet_len;
    struct rspc_quiet_hit h;
    int rc;
    while ((rc = rspc_next_quiet_hit(&p, end, &h)) == 1)
      if (p > end)
        abort();
    if (rc != 0 && rc != RS_E_PROTO)
      abort();
  }
  if (st.stack_len) {
    /* What the tracer does with it: copy the window out. */
    uint8_t *copy = malloc(st.stack_len);
    if (!copy)
      abort();
    memcpy(copy, st.stack, st.stack_len);
    free(copy);
  }
}

static void svr4(const char *xml, size_t len)
{
  struct target_lib *libs;
  size_t n;
  uint64_t main_lm;
  if (target_parse_svr4(xml, len, &libs, &n, &main_lm) != 0)
    return;
  for (size_t i = 0; i < n; i++)
    if (!libs[i].name || strlen(libs[i].name) > len)
      abort();
  target_libs_free(libs, n);
}

/* Input: one selector byte, then the reply. Even selectors hand the parser a NUL-terminated copy (as the
 * RSP client and rs_buf always provide); odd ones an exact-size buffer, for the parsers that take a length. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t sel = data[0];
  data++;
  size--;
  int terminated = !(sel & 1);
  char *buf = malloc(size + terminated);
  if (!buf)
    abort();
  memcpy(buf, data, size);
  if (terminated)
    buf[size] = 0;
  switch ((sel >> 1) % 3) {
  case 0:
    /* rspc_parse_stop reads its reply as a string (strncmp, hex parsing) as the client's replies are. */
    if (terminated)
      stop_reply(buf, size);
    break;
  case 1:
    svr4(buf, size);
    break;
  case 2:
    if (terminated) {
      arch_by_gdb_name(buf);
      arch_by_name(buf);
    }
    break;
  }
  free(buf);
  return 0;
}
