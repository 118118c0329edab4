/* The rsprof-capture packets: QRsprofCapture turns an inserted breakpoint into one whose hits the agent records
 * and streams itself, and qRsprofStats reports the stream's counters. */
#include "capture-packets.h"

#include <string.h>

#include "errors.h"
#include "hex.h"

/* ";m:REG,OFF,LEN" / ";M:REG,OFF,LEN": memory at a register's value plus an offset. */
static int parse_mem(const char **q, int *reg, uint64_t *off, uint32_t *len)
{
  uint64_t r, o, l;
  if (hex_parse_u64_until(q, &r, ',') || hex_parse_u64_until(q, &o, ',') || hex_parse_u64(q, &l) || r > 63 ||
      l == 0 || l > INF_CAP_MAX_MEM)
    return RS_E_BAD_ARG;
  *reg = (int)r;
  *off = o;
  *len = (uint32_t)l;
  return 0;
}

/* QRsprofCapture:ADDR,ID,REGMASK,STACKLEN,RET[;m:REG,OFF,LEN][;M:REG,OFF,LEN], or QRsprofCapture:ADDR to make it
 * an ordinary breakpoint again (docs/protocol.md). */
void agent_handle_capture(struct agent_server *s, const char *args)
{
  const char *q = args;
  uint64_t addr, id, mask, stack, ret;
  if (hex_parse_u64(&q, &addr)) {
    agent_reply_err(s, 1);
    return;
  }
  if (*q == 0) {
    if (inf_cap_set(s->inf, addr, NULL))
      agent_reply_err(s, 1);
    else
      agent_reply_str(s, "OK");
    return;
  }
  struct inf_cap_spec spec = {.mem_reg = -1, .rmem_reg = -1};
  if (*q++ != ',' || hex_parse_u64_until(&q, &id, ',') || hex_parse_u64_until(&q, &mask, ',') ||
      hex_parse_u64_until(&q, &stack, ',') || hex_parse_u64(&q, &ret) || id > 0xffffffffu || ret > 1 ||
      stack > INF_CAP_MAX_STACK) {
    agent_reply_err(s, 1);
    return;
  }
  spec.id = (uint32_t)id;
  spec.regmask = mask;
  spec.stack_len = (uint32_t)stack;
  spec.ret = (int)ret;
  while (*q == ';') {
    q++;
    int rc = RS_E_BAD_ARG;
    if (q[0] == 'm' && q[1] == ':') {
      q += 2;
      rc = parse_mem(&q, &spec.mem_reg, &spec.mem_off, &spec.mem_len);
    } else if (q[0] == 'M' && q[1] == ':') {
      q += 2;
      rc = parse_mem(&q, &spec.rmem_reg, &spec.rmem_off, &spec.rmem_len);
    }
    if (rc) {
      agent_reply_err(s, 1);
      return;
    }
  }
  if (*q || inf_cap_set(s->inf, addr, &spec)) {
    agent_reply_err(s, 1);
    return;
  }
  s->capture_used = 1;
  agent_reply_str(s, "OK");
}

void agent_handle_capture_stats(struct agent_server *s)
{
  const struct inf_capture *c = &s->inf->cap;
  uint64_t held = c->held_ns;
  if (c->nparked > 0)
    held += inf_monotonic_ns() - c->held_since;
  rs_buf_printf(&s->reply, "events:%llx;held_ns:%llx;parked:%llx;watches:%x;watch_overflows:%llx;queued:%zx",
                (unsigned long long)c->events, (unsigned long long)held, (unsigned long long)c->parked, c->nw,
                (unsigned long long)c->watch_overflows, c->len);
}
