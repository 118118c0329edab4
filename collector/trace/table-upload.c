/* Uploading compiled unwind tables and the module map to the agent (docs/protocol.md, "Unwind tables on the
 * board"): qRsprofTable asks whether the agent has a build-id's table, QRsprofTable sends it in binary chunks,
 * QRsprofModule adds a module to the process's map. */
#include "table-upload.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "hex.h"
#include "log.h"
#include "module.h"
#include "rsp-client.h"
#include "unwind-compile.h"

#define BUILD_ID_MAX 32

int trace_tables_init(struct trace *tr)
{
  tr->agent_tables = tr->agent_capture && rspc_features(tr->c)->tables && !tr->opt->no_agent_unwind;
  if (tr->agent_tables)
    LOG_INFO("the agent unwinds with tables the collector compiles and uploads (rsprof-tables)");
  return 0;
}

static int transport_error(int rc) { return rc == RS_E_DISCONNECTED || rc == RS_E_TIMEOUT || rc == RS_E_TLS; }

/* Sends the table in chunks that fit the server's packet size even when every byte needs an escape. Returns 0,
 * RS_E_LIMIT (the agent has no room), RS_E_FORMAT (it refused the table) or a transport error. */
static int upload(struct trace *tr, const char *hexid, const struct utab *t)
{
  size_t psize = rspc_features(tr->c)->packet_size;
  size_t chunk = psize > 512 ? (psize - 128) / 2 : 128;
  struct rs_buf pkt;
  rs_buf_init(&pkt, psize + 64);
  int rc = 0;
  for (size_t off = 0; off < t->len && rc == 0; off += chunk) {
    size_t n = t->len - off < chunk ? t->len - off : chunk;
    rs_buf_reset(&pkt);
    rc = rs_buf_printf(&pkt, "QRsprofTable:%s,%zx,%zx:", hexid, off, t->len);
    if (!rc)
      rc = rs_buf_append(&pkt, t->bytes + off, n);
    const char *r;
    size_t rl;
    if (!rc)
      rc = rspc_request(tr->c, (const char *)pkt.data, pkt.len, &r, &rl);
    if (!rc && !(rl == 2 && memcmp(r, "OK", 2) == 0))
      rc = rl == 3 && memcmp(r, "E02", 3) == 0 ? RS_E_LIMIT : RS_E_FORMAT;
  }
  rs_buf_free(&pkt);
  if (rc == 0) {
    tr->tables_uploaded++;
    tr->table_bytes += t->len;
  }
  return rc;
}

int trace_tables_module(struct trace *tr, struct col_module *m, uint64_t bias, int first)
{
  if (!tr->agent_tables)
    return 0;
  int rc;
  if (first && (rc = rspc_request_ok(tr->c, "QRsprofModules")) != 0) {
    LOG_WARN("the agent did not take a new module map: %s", rs_strerror(rc));
    return transport_error(rc) ? rc : 0;
  }
  const uint8_t *id = NULL;
  size_t idlen = 0;
  char hexid[2 * BUILD_ID_MAX + 1] = "";
  if (col_module_build_id(m, &id, &idlen) == 0 && idlen > 0 && idlen <= BUILD_ID_MAX)
    hex_encode(hexid, id, idlen);
  else
    idlen = 0;
  const struct utab *t = idlen ? unw_module_table(m) : NULL;
  if (t) {
    const char *r;
    size_t rl;
    rc = rspc_requestf(tr->c, &r, &rl, "qRsprofTable:%s", hexid);
    if (transport_error(rc))
      return rc;
    if (rc == 0 && rl == 1 && r[0] == '0')
      rc = upload(tr, hexid, t);
    if (transport_error(rc))
      return rc;
    if (rc) {
      if (tr->tables_refused++ == 0)
        LOG_WARN("the agent refused the unwind table of %s (%s): events in it carry raw stack windows",
                 col_module_path(m), rc == RS_E_LIMIT ? "its table store is full" : rs_strerror(rc));
      hexid[0] = 0;
    }
  } else {
    hexid[0] = 0; /* no table: the agent sends raw windows for frames here */
  }
  uint64_t lo, hi;
  col_module_vaddr_range(m, &lo, &hi);
  const char *r;
  size_t rl;
  rc = rspc_requestf(tr->c, &r, &rl, "QRsprofModule:%llx,%llx,%llx%s%s", (unsigned long long)(lo + bias),
                     (unsigned long long)(hi + bias), (unsigned long long)bias, hexid[0] ? "," : "", hexid);
  if (transport_error(rc))
    return rc;
  if (rc == 0 && rl == 1 && r[0] == '1')
    tr->modules_walked++;
  else
    LOG_DEBUG("module %s: the agent's walks stop there (%.*s)", col_module_path(m), (int)rl, rc ? "" : r);
  return 0;
}
