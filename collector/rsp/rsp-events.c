/* Parsing rsprof-capture records (layout in common/capture-records.h and docs/protocol.md), with every length
 * checked against the record's own, so a damaged batch is refused rather than read past. */
#include "rsp-events.h"

#include <string.h>

#include "capture-codec.h"
#include "errors.h"

static const char batch_name[] = "RsprofEvents:";

int rspc_events_batch(const uint8_t *payload, size_t len, const uint8_t **records, size_t *records_len)
{
  size_t n = sizeof batch_name - 1;
  if (len < n || memcmp(payload, batch_name, n) != 0)
    return 0;
  *records = payload + n;
  *records_len = len - n;
  return 1;
}

static int parse_entry(const uint8_t *b, size_t len, struct rspc_event *ev)
{
  if (len < 8)
    return RS_E_PROTO;
  ev->regmask = cap_get64(b);
  size_t off = 8;
  for (int r = 0; r < 64; r++) {
    if (!(ev->regmask >> r & 1))
      continue;
    if (off + 8 > len)
      return RS_E_PROTO;
    ev->regs[r] = cap_get64(b + off);
    off += 8;
  }
  if (off + 8 > len)
    return RS_E_PROTO;
  ev->mem_len = cap_get32(b + off);
  ev->stack_len = cap_get32(b + off + 4);
  off += 8;
  if (ev->mem_len > len - off || ev->stack_len != len - off - ev->mem_len)
    return RS_E_PROTO;
  ev->mem = b + off;
  ev->stack = b + off + ev->mem_len;
  return 0;
}

int rspc_next_event(const uint8_t **p, const uint8_t *end, struct rspc_event *ev)
{
  const uint8_t *r = *p;
  if (r >= end)
    return 0;
  if (capc_is_compact(r[0])) { /* read with capc_get, which keeps the stream's state: here only skipped */
    size_t l = cap_record_len(r, (size_t)(end - r));
    if (l == 0)
      return RS_E_PROTO;
    memset(ev, 0, offsetof(struct rspc_event, regs));
    ev->kind = r[0];
    *p = r + l;
    return 1;
  }
  if ((size_t)(end - r) < CAP_REC_HEADER)
    return RS_E_PROTO;
  uint32_t len = cap_get32(r + 4);
  if (len < CAP_REC_HEADER || len > (size_t)(end - r))
    return RS_E_PROTO;
  memset(ev, 0, offsetof(struct rspc_event, regs));
  ev->kind = r[0];
  ev->flags = r[1];
  ev->tid = cap_get32(r + 8);
  ev->id = cap_get32(r + 12);
  ev->seq = cap_get64(r + 16);
  ev->ns = cap_get64(r + 24);
  ev->pc = ev->sp = ev->retval = 0;
  ev->mem = ev->stack = NULL;
  ev->mem_len = ev->stack_len = 0;
  const uint8_t *b = r + CAP_REC_HEADER;
  size_t blen = len - CAP_REC_HEADER;
  int rc = 0;
  switch (ev->kind) {
  case CAP_REC_ENTRY:
    rc = parse_entry(b, blen, ev);
    break;
  case CAP_REC_RETURN:
    if (blen < 32 || cap_get32(b + 24) != blen - 32)
      return RS_E_PROTO;
    ev->pc = cap_get64(b);
    ev->sp = cap_get64(b + 8);
    ev->retval = cap_get64(b + 16);
    ev->mem_len = blen - 32;
    ev->mem = b + 32;
    break;
  case CAP_REC_STATS:
    if (blen < 32)
      return RS_E_PROTO;
    for (int i = 0; i < CAP_STATS_N && (size_t)(8 * i + 8) <= blen; i++)
      ev->stats[i] = cap_get64(b + 8 * i);
    break;
  default:
    break; /* a kind from a newer agent: skipped by its length */
  }
  if (rc)
    return rc;
  *p = r + len;
  return 1;
}
