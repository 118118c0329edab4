/* Unit tests of stop-reply parsing: the rsprof extensions' fields (quiet hits, stop time) next to the
 * standard ones, malformed quiet-hit lists refused rather than half read, and the process events (fork, vfork,
 * vforkdone, exec). */
#include <string.h>

#include "errors.h"
#include "rsp-client.h"
#include "test.h"

static int parse(const char *reply, struct rspc_stop *st) { return rspc_parse_stop(reply, strlen(reply), st); }

TEST(stop_reply_with_quiet_hits_time_and_stack)
{
  const char *reply = "T0510:2200000000000000;thread:p10.11;swbreak:;rsprof-time:1f4;"
                      "rsprof-quiet:11/4005d0/7ffe10/2a/1f0,12/4005d0/7ffe80/0/1f2;rsprof-stack:AB;CD";
  struct rspc_stop st;
  ASSERT_EQ(parse(reply, &st), 0);
  ASSERT_EQ(st.signal, 5);
  ASSERT_TRUE(st.swbreak);
  ASSERT_U64_EQ((uint64_t)st.tid, 0x11);
  ASSERT_TRUE(st.has_time);
  ASSERT_U64_EQ(st.time_ns, 0x1f4);
  ASSERT_EQ((int)st.stack_len, 5); /* raw to the end of the packet, ';' included */
  const char *p = st.quiet, *end = st.quiet + st.quiet_len;
  struct rspc_quiet_hit h;
  ASSERT_EQ(rspc_next_quiet_hit(&p, end, &h), 1);
  ASSERT_U64_EQ((uint64_t)h.tid, 0x11);
  ASSERT_U64_EQ(h.pc, 0x4005d0);
  ASSERT_U64_EQ(h.sp, 0x7ffe10);
  ASSERT_U64_EQ(h.retval, 0x2a);
  ASSERT_U64_EQ(h.ns, 0x1f0);
  ASSERT_EQ(rspc_next_quiet_hit(&p, end, &h), 1);
  ASSERT_U64_EQ((uint64_t)h.tid, 0x12);
  ASSERT_U64_EQ(h.retval, 0);
  ASSERT_U64_EQ(h.ns, 0x1f2);
  ASSERT_EQ(rspc_next_quiet_hit(&p, end, &h), 0);
}

TEST(exit_reply_carries_the_last_quiet_hits)
{
  struct rspc_stop st;
  ASSERT_EQ(parse("W00;process:2a;rsprof-quiet:2a/1000/2000/7/9", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_EXITED);
  ASSERT_U64_EQ((uint64_t)st.pid, 0x2a);
  const char *p = st.quiet, *end = st.quiet + st.quiet_len;
  struct rspc_quiet_hit h;
  ASSERT_EQ(rspc_next_quiet_hit(&p, end, &h), 1);
  ASSERT_U64_EQ(h.retval, 7);
  ASSERT_EQ(rspc_next_quiet_hit(&p, end, &h), 0);
  ASSERT_EQ(parse("W00", &st), 0);
  ASSERT_TRUE(st.quiet == NULL);
}

TEST(malformed_quiet_hits_are_refused)
{
  const char *bad[] = {"11/4005d0/7ffe10/2a",          /* a field short */
                       "11/4005d0//2a/1",              /* an empty field */
                       "11/4005d0/7ffe10/2a/zz",       /* not hex */
                       "11/4005d0/7ffe10/2a/11111111111111111"}; /* over 64 bits */
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *p = bad[i], *end = bad[i] + strlen(bad[i]);
    struct rspc_quiet_hit h;
    ASSERT_EQ(rspc_next_quiet_hit(&p, end, &h), RS_E_PROTO);
  }
}

TEST(process_event_stops_name_the_child)
{
  struct rspc_stop st;
  /* gdbserver's order: the event first, then the registers and the reporting (parent) thread. */
  ASSERT_EQ(parse("T05fork:p1f5.1f5;06:0000000000000000;thread:p1f0.1f2;", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_FORK);
  ASSERT_EQ(st.signal, 5);
  ASSERT_U64_EQ((uint64_t)st.child_pid, 0x1f5);
  ASSERT_U64_EQ((uint64_t)st.child_tid, 0x1f5);
  ASSERT_U64_EQ((uint64_t)st.pid, 0x1f0);
  ASSERT_U64_EQ((uint64_t)st.tid, 0x1f2);
  ASSERT_EQ(parse("T05vfork:p30.30;thread:p20.21;", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_VFORK);
  ASSERT_U64_EQ((uint64_t)st.child_pid, 0x30);
  ASSERT_EQ(parse("T05vforkdone:;thread:p20.21;", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_VFORK_DONE);
  ASSERT_U64_EQ((uint64_t)st.tid, 0x21);
  ASSERT_EQ(parse("T05exec:2f62696e2f6c73;thread:p20.20;", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_EXEC);
  /* Without multiprocess the child's thread id is its process id. */
  ASSERT_EQ(parse("T05fork:44;thread:40;", &st), 0);
  ASSERT_U64_EQ((uint64_t)st.child_pid, 0x44);
  /* A fork without a usable child is refused, not taken for a signal stop. */
  ASSERT_EQ(parse("T05fork:;thread:p20.21;", &st), RS_E_PROTO);
  ASSERT_EQ(parse("T05fork:zz;thread:p20.21;", &st), RS_E_PROTO);
  /* An ordinary breakpoint stop stays a signal stop. */
  ASSERT_EQ(parse("T05thread:p20.21;swbreak:;", &st), 0);
  ASSERT_EQ(st.kind, RSPC_STOP_SIGNAL);
}
