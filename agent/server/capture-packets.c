/* The rsprof-capture packets: QRsprofCapture turns an inserted breakpoint into one whose hits the agent records
 * and streams itself, qRsprofStats reports the stream's counters; the rsprof-tables packets, which upload
 * compiled unwind tables and the process's module map into the table arena; and QRsprofInprocess /
 * QRsprofRecord, which set up in-process capture (the recorder in the program, its calls streamed as
 * breakpoints' events). */
#include "capture-packets.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "hex.h"
#include "inf-tables.h"
#include "log.h"
#include "table-arena.h"

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
    } else if (q[0] == 'a' && q[1] == ':') { /* rsprof-tables: compact records, with these argument registers */
      q += 2;
      uint64_t unwind;
      rc = hex_parse_u64_until(&q, &spec.argmask, ',') || hex_parse_u64(&q, &unwind) || unwind > 1 ? RS_E_BAD_ARG : 0;
      spec.compact = rc == 0;
      spec.unwind = rc == 0 && unwind;
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
  rs_buf_printf(&s->reply,
                "events:%llx;held_ns:%llx;parked:%llx;watches:%x;watch_overflows:%llx;queued:%zx;calls:%llx;"
                "stacks:%llx;raw_windows:%llx;walk_fallbacks:%llx;stack_resets:%llx",
                (unsigned long long)c->events, (unsigned long long)held, (unsigned long long)c->parked, c->nw,
                (unsigned long long)c->watch_overflows, c->len, (unsigned long long)c->calls,
                (unsigned long long)c->stacks_interned, (unsigned long long)c->raw_windows,
                (unsigned long long)c->walk_fallbacks, (unsigned long long)c->stack_resets);
}

/* Starts the agent's own program again, this time with the recorder preloaded: it is still stopped at its
 * first instruction, so nothing of it has run and nothing the client knows of it changes but the pid. */
static int relaunch(struct agent_server *s)
{
  char exe[64], path[4096];
  snprintf(exe, sizeof exe, "/proc/%d/exe", (int)s->inf->pid);
  ssize_t n = readlink(exe, path, sizeof path - 1);
  if (n <= 0)
    return RS_E_NOT_FOUND;
  path[n] = 0;
  int rc = inf_rec_check_program(path);
  if (rc) {
    LOG_WARN("recorder: %s is statically linked (or not an ELF program): no in-process capture", path);
    return rc;
  }
  rc = inf_rec_create_ring(s->inf);
  if (rc)
    return rc;
  inf_kill(s->inf);
  s->inf->rec.want = 1;
  rc = inf_launch(s->inf, s->argv, s->disable_aslr);
  if (rc) {
    LOG_ERR("recorder: cannot start %s again with the recorder: %s", s->argv[0], rs_strerror(rc));
    return rc;
  }
  s->last = (struct inf_stop){.kind = INF_STOP_SIGNAL, .sig = SIGTRAP, .tid = s->inf->pid};
  s->gthread = s->cthread = s->inf->pid;
  LOG_INFO("started %s again as process %d with the recorder preloaded", s->argv[0], (int)s->inf->pid);
  return 0;
}

/* QRsprofInprocess:1 — in-process capture: the recorder is preloaded into the program (started again when it
 * has not run yet, or at the next vRun), or injected into an attached one. OK, or E03 when it cannot be (no
 * recorder on this machine, a static program, a process without dlopen, a launched program that already ran). */
void agent_handle_inprocess(struct agent_server *s, const char *args)
{
  struct inferior *inf = s->inf;
  if (strcmp(args, "1") != 0) {
    agent_reply_err(s, 1);
    return;
  }
  int rc = 0;
  if (!inf->rec.lib) {
    LOG_WARN("recorder: librsprof_recorder.so not found next to the agent (give --recorder PATH)");
    rc = RS_E_NOT_FOUND;
  } else if (inf->rec.injected) {
    rc = 0;
  } else if (!inf->pid) {
    inf->rec.want = 1; /* the next vRun preloads it */
    rc = inf_rec_create_ring(inf);
  } else if (inf->ran) {
    LOG_WARN("recorder: the program has already run; in-process capture needs it from its start or attached");
    rc = RS_E_UNSUPPORTED;
  } else if (inf->attached) {
    rc = inf_rec_inject(inf);
    if (rc)
      LOG_WARN("recorder: cannot load the recorder into process %d: %s", (int)inf->pid, rs_strerror(rc));
  } else if (s->argv && s->argv[0]) {
    rc = relaunch(s);
  } else {
    rc = RS_E_UNSUPPORTED;
  }
  if (rc)
    agent_reply_str(s, "E03");
  else
    agent_reply_str(s, "OK");
}

/* A hex build-id up to the next stop character (or the end); returns its length in bytes, or -1. */
static long parse_build_id(const char **q, uint8_t *bid, char stop)
{
  const char *e = *q;
  while (*e && *e != stop)
    e++;
  size_t digits = (size_t)(e - *q);
  if (digits % 2 || digits / 2 > TARENA_BUILD_ID_MAX || hex_decode(bid, *q, digits / 2))
    return -1;
  *q = e;
  return (long)(digits / 2);
}

void agent_handle_table_query(struct agent_server *s, const char *args)
{
  uint8_t bid[TARENA_BUILD_ID_MAX];
  const char *q = args;
  long n = parse_build_id(&q, bid, 0);
  void *arena = inf_tables_arena(NULL);
  int state = 0;
  if (n <= 0 || !arena) {
    agent_reply_err(s, 1);
    return;
  }
  agent_reply_str(s, tarena_find(arena, bid, (size_t)n, &state) >= 0 && state == TARENA_READY ? "1" : "0");
}

void agent_handle_table_chunk(struct agent_server *s, const char *args, size_t len)
{
  uint8_t bid[TARENA_BUILD_ID_MAX];
  const char *q = args, *end = args + len;
  uint64_t off, total;
  long n = parse_build_id(&q, bid, ',');
  void *arena = inf_tables_arena(NULL);
  if (n <= 0 || *q++ != ',' || hex_parse_u64_until(&q, &off, ',') || hex_parse_u64_until(&q, &total, ':') ||
      q > end || total > 0xffffffffu || off > total || !arena) {
    agent_reply_err(s, 1);
    return;
  }
  /* The codec removed the framing escapes: the rest of the packet is the chunk's raw bytes. */
  int rc = tarena_put_chunk(arena, bid, (size_t)n, (uint32_t)off, (uint32_t)total, (const uint8_t *)q,
                            (size_t)(end - q));
  if (rc == RS_E_LIMIT)
    agent_reply_err(s, 2);
  else if (rc == RS_E_FORMAT)
    agent_reply_err(s, 3);
  else if (rc < 0)
    agent_reply_err(s, 1);
  else
    agent_reply_str(s, "OK");
}

/* QRsprofRecord:FUNC,ADDR,ID,REGMASK — the recorder's calls of function FUNC (enum rring_func) that went to
 * the real function at ADDR are events of breakpoint ID with the registers of REGMASK. OK, E01 (malformed),
 * E03 (no recorder in this process: the client places a capture breakpoint instead). */
void agent_handle_record(struct agent_server *s, const char *args)
{
  const char *q = args;
  uint64_t func, addr, id, mask;
  if (hex_parse_u64_until(&q, &func, ',') || hex_parse_u64_until(&q, &addr, ',') ||
      hex_parse_u64_until(&q, &id, ',') || hex_parse_u64(&q, &mask) || *q || id > 0xffffffffu ||
      func >= RRING_NFUNCS) {
    agent_reply_err(s, 1);
    return;
  }
  if (!s->inf->rec.injected || !inf_rec_loaded(s->inf)) {
    agent_reply_str(s, "E03");
    return;
  }
  if (inf_rec_set_target(s->inf, (unsigned)func, addr, (uint32_t)id, mask)) {
    agent_reply_err(s, 1);
    return;
  }
  s->capture_used = 1;
  agent_reply_str(s, "OK");
}

void agent_handle_module(struct agent_server *s, const char *args)
{
  uint8_t bid[TARENA_BUILD_ID_MAX];
  const char *q = args;
  uint64_t lo, hi, bias;
  void *arena = inf_tables_arena(NULL);
  long n = 0;
  if (!arena || hex_parse_u64_until(&q, &lo, ',') || hex_parse_u64_until(&q, &hi, ',') ||
      hex_parse_u64(&q, &bias) || lo >= hi) {
    agent_reply_err(s, 1);
    return;
  }
  if (*q == ',' && (q++, n = parse_build_id(&q, bid, 0)) < 0) {
    agent_reply_err(s, 1);
    return;
  }
  if (*q) {
    agent_reply_err(s, 1);
    return;
  }
  int rc = tarena_add_module(arena, (int)s->inf->pid, lo, hi, bias, bid, (size_t)n);
  if (rc < 0)
    agent_reply_err(s, 2);
  else
    agent_reply_str(s, rc ? "1" : "0");
}

void agent_handle_modules_clear(struct agent_server *s)
{
  void *arena = inf_tables_arena(NULL);
  inf_tables_forget_dead();
  if (!arena || tarena_clear_modules(arena, (int)s->inf->pid))
    agent_reply_err(s, 2);
  else
    agent_reply_str(s, "OK");
}
