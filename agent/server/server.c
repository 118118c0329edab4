/* The RSP server's input side: buffers what the client sends, decodes packets and hands them to the
 * packet table, holds later packets back while the program runs, and reports stops as they happen. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"

int agent_server_init(struct agent_server *s, char **argv)
{
  memset(s, 0, sizeof *s);
  s->inf = &s->first;
  inf_init(s->inf);
  procs_init(&s->procs, &s->first);
  s->argv = argv;
  for (int i = 0; i < AGENT_MAX_VFILES; i++)
    s->vfd[i] = -1;
  rs_buf_init(&s->in, 4 * AGENT_PACKET_SIZE);
  rs_buf_init(&s->reply, 2 * AGENT_PACKET_SIZE + 64);
  rs_buf_init(&s->wire, 4 * AGENT_PACKET_SIZE + 64);
  rs_buf_init(&s->doc, 1 << 20);
  if (rsp_decoder_init(&s->dec, AGENT_PACKET_SIZE) || rs_buf_reserve(&s->reply, 4096) ||
      rs_buf_reserve(&s->wire, 8192))
    return -ENOMEM;
  return 0;
}

void agent_server_free(struct agent_server *s)
{
  rsp_decoder_free(&s->dec);
  rs_buf_free(&s->in);
  rs_buf_free(&s->reply);
  rs_buf_free(&s->wire);
  rs_buf_free(&s->doc);
  for (int i = 0; i < AGENT_MAX_VFILES; i++)
    if (s->vfd[i] >= 0)
      close(s->vfd[i]);
}

/* Processes buffered input while the program is stopped; stops at a resume so later packets wait. */
static void process_input(struct agent_server *s)
{
  size_t used = 0;
  while (used < s->in.len && !s->done && !s->hold) {
    if (procs_running(&s->procs)) {
      /* Only acks and the interrupt byte matter while running; a packet waits for the stop. */
      uint8_t c = s->in.data[used];
      if (c == '+' || c == '-') {
        used++;
        continue;
      }
      if (c == 0x03) {
        used++;
        struct inf_stop st;
        if (procs_interrupt(&s->procs, &st, &s->inf) == 0)
          agent_report_stop(s, &st);
        continue;
      }
      break;
    }
    const uint8_t *p = s->in.data + used;
    size_t left = s->in.len - used;
    struct rsp_event ev;
    int got = rsp_decoder_next(&s->dec, &p, &left, &ev);
    used = (size_t)(p - s->in.data);
    if (!got)
      break;
    switch (ev.kind) {
    case RSP_EV_PACKET:
      s->spoke = 1;
      if (!s->noack)
        agent_send_raw(s, "+", 1);
      if (ev.len == 0) {
        rs_buf_reset(&s->reply);
        agent_send_reply(s);
      } else {
        agent_dispatch(s, (char *)ev.data, ev.len);
      }
      break;
    case RSP_EV_BAD_CHECKSUM:
    case RSP_EV_MALFORMED:
      LOG_DEBUG("dropping a malformed packet");
      if (!s->noack)
        agent_send_raw(s, "-", 1);
      break;
    case RSP_EV_TOO_LONG:
      LOG_WARN("dropping a packet longer than %d bytes", AGENT_PACKET_SIZE);
      if (!s->noack)
        agent_send_raw(s, "-", 1);
      break;
    case RSP_EV_INTERRUPT:
      if (procs_running(&s->procs)) {
        struct inf_stop st;
        if (procs_interrupt(&s->procs, &st, &s->inf) == 0)
          agent_report_stop(s, &st);
      }
      break;
    default:
      break;
    }
  }
  rs_buf_consume(&s->in, used);
}

void agent_server_connect(struct agent_server *s, agent_send_fn send, void *ctx)
{
  s->send = send;
  s->send_ctx = ctx;
  s->noack = 0;
  s->done = 0;
  s->stop_stack_len = 0;
  s->stop_time = 0;
  s->hold = 0;
  s->spoke = 0;
  s->capture_used = 0;
  s->follow_fork = 0;
  procs_set_follow(&s->procs, 0);
  for (int i = 0; i < s->procs.n; i++) {
    s->procs.p[i]->nquiet = 0;
    inf_cap_reset(s->procs.p[i]);
  }
  s->extended = s->multi_mode;
  rsp_decoder_reset(&s->dec);
  rs_buf_reset(&s->in);
}

void agent_server_disconnect(struct agent_server *s)
{
  s->send = NULL;
  if (procs_count(&s->procs)) {
    if (s->first.pid && s->first.attached) {
      procs_end_all(&s->procs, 0);
    } else {
      LOG_INFO("client gone: killing process %d", (int)s->inf->pid);
      procs_end_all(&s->procs, 1);
      s->exit_code = 128 + SIGKILL;
    }
  }
  s->inf = &s->first;
  for (int i = 0; i < AGENT_MAX_VFILES; i++)
    if (s->vfd[i] >= 0) {
      close(s->vfd[i]);
      s->vfd[i] = -1;
    }
  if (!s->multi_mode)
    s->quit = 1;
}

void agent_server_feed(struct agent_server *s, const void *data, size_t len)
{
  if (rs_buf_append(&s->in, data, len)) {
    /* Only a transport that ignored agent_server_input_room() gets here: drop rather than grow. */
    LOG_WARN("input backlog over the limit; dropping it");
    rs_buf_reset(&s->in);
    rsp_decoder_reset(&s->dec);
    return;
  }
  process_input(s);
}

int agent_server_client_spoke(const struct agent_server *s) { return s->spoke; }

size_t agent_server_input_room(const struct agent_server *s) { return s->in.limit - s->in.len; }

static int poll_child(struct agent_server *s)
{
  struct inf_stop st;
  if (procs_poll(&s->procs, &st, &s->inf) != 1)
    return 0;
  if (s->send) {
    agent_report_stop(s, &st);
    process_input(s);
  } else if (st.kind == INF_STOP_EXITED || st.kind == INF_STOP_KILLED) {
    if (s->inf == &s->first)
      s->exit_code = st.kind == INF_STOP_EXITED ? st.sig : 128 + st.sig;
    procs_reap(&s->procs);
    s->inf = procs_any(&s->procs);
  }
  return 1;
}

/* Sends capture events once min bytes wait (and the transport takes them), and lets threads that waited for
 * room in the record buffer go on once sending freed some. */
static void pump_events(struct agent_server *s, size_t min)
{
  /* The recorder's ring first: its calls join the records the agent made itself. */
  for (int i = 0; i < s->procs.n && s->send; i++)
    for (int round = 0; round < 64 && !s->hold && inf_rec_active(s->procs.p[i]); round++)
      if (inf_rec_drain(s->procs.p[i], INF_CAP_SOFT) == 0 || !agent_flush_events(s, 0))
        break;
  for (int round = 0; round < 8; round++) {
    size_t len = 0;
    int waiting = 0;
    for (int i = 0; i < s->procs.n; i++) {
      len += s->procs.p[i]->cap.len;
      waiting |= inf_cap_waiting(s->procs.p[i]);
    }
    int freed = len >= min && len > 0 && agent_flush_events(s, 0);
    if (!freed || !waiting || !procs_running(&s->procs) || poll_child(s))
      return;
  }
}

void agent_server_hold(struct agent_server *s, int hold)
{
  s->hold = hold;
  if (!hold && s->send) {
    pump_events(s, 1);
    process_input(s);
  }
}

void agent_server_child_event(struct agent_server *s)
{
  if (!poll_child(s))
    pump_events(s, AGENT_EVENT_BATCH);
}

int agent_server_events_waiting(const struct agent_server *s)
{
  for (int i = 0; i < s->procs.n; i++)
    if (s->procs.p[i]->cap.len > 0 || (s->send && inf_rec_active(s->procs.p[i])))
      return 1;
  return 0;
}

void agent_server_flush_events(struct agent_server *s) { pump_events(s, 1); }
