/* Unit tests of the RSP codec on frames recorded between gdb and gdbserver, and on hand-made edge cases. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "rsp-codec.h"
#include "test.h"

#define CAP 65536

struct frame {
  char dir;
  uint8_t *bytes;
  size_t len;
};

static struct frame *frames;
static size_t nframes;

/* Loads tests/unit/data/gdb-gdbserver.frames once. */
static void load_frames(void)
{
  if (frames)
    return;
  FILE *f = fopen(RSPROF_TEST_DATA_DIR "/gdb-gdbserver.frames", "r");
  ASSERT_TRUE(f != NULL);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  size_t alloc = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    if (line[0] == '#')
      continue;
    if (nframes == alloc) {
      alloc = alloc ? alloc * 2 : 256;
      frames = realloc(frames, alloc * sizeof *frames);
    }
    size_t hexlen = (size_t)n - 3;
    while (hexlen && (line[2 + hexlen - 1] == '\n'))
      hexlen--;
    struct frame *fr = &frames[nframes++];
    fr->dir = line[0];
    fr->len = hexlen / 2;
    fr->bytes = malloc(fr->len);
    for (size_t i = 0; i < fr->len; i++)
      sscanf(line + 2 + 2 * i, "%2hhx", &fr->bytes[i]);
  }
  free(line);
  fclose(f);
  ASSERT_TRUE(nframes > 400);
}

/* Events collected from decoding one input, with copies of packet payloads. */
struct events {
  int kind[64];
  char *data[64];
  size_t len[64];
  int n;
};

static void events_free(struct events *e)
{
  for (int i = 0; i < e->n; i++)
    free(e->data[i]);
  e->n = 0;
}

static void feed(struct rsp_decoder *d, const uint8_t *buf, size_t len, struct events *out)
{
  struct rsp_event ev;
  while (rsp_decoder_next(d, &buf, &len, &ev)) {
    ASSERT_TRUE(out->n < 64);
    out->kind[out->n] = ev.kind;
    out->data[out->n] = NULL;
    out->len[out->n] = ev.len;
    if (ev.kind == RSP_EV_PACKET || ev.kind == RSP_EV_NOTIFY) {
      out->data[out->n] = malloc(ev.len + 1);
      memcpy(out->data[out->n], ev.data, ev.len + 1);
    }
    out->n++;
  }
  ASSERT_EQ(len, 0);
}

static void assert_same_events(const struct events *a, const struct events *b)
{
  ASSERT_EQ(a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    ASSERT_EQ(a->kind[i], b->kind[i]);
    ASSERT_EQ(a->len[i], b->len[i]);
    if (a->data[i])
      ASSERT_MEM_EQ(a->data[i], b->data[i], a->len[i] + 1);
  }
}

static void decode_all(const void *bytes, size_t len, size_t cap, struct events *out)
{
  struct rsp_decoder d;
  ASSERT_EQ(rsp_decoder_init(&d, cap), 0);
  feed(&d, bytes, len, out);
  rsp_decoder_free(&d);
}

TEST(corpus_checksums_verify)
{
  /* gdb and gdbserver computed these checksums: each frame must decode to exactly one valid event. */
  load_frames();
  int packets = 0;
  for (size_t i = 0; i < nframes; i++) {
    struct events e = {0};
    decode_all(frames[i].bytes, frames[i].len, CAP, &e);
    ASSERT_EQ(e.n, 1);
    if (frames[i].bytes[0] == '$') {
      ASSERT_EQ(e.kind[0], RSP_EV_PACKET);
      packets++;
    } else {
      ASSERT_EQ(e.kind[0], frames[i].bytes[0] == '+' ? RSP_EV_ACK : RSP_EV_NACK);
    }
    events_free(&e);
  }
  ASSERT_TRUE(packets > 200);
}

TEST(corpus_split_at_every_position)
{
  load_frames();
  for (size_t i = 0; i < nframes; i++) {
    const struct frame *fr = &frames[i];
    struct events whole = {0};
    decode_all(fr->bytes, fr->len, CAP, &whole);
    for (size_t cut = 0; cut <= fr->len; cut++) {
      struct rsp_decoder d;
      struct events parts = {0};
      ASSERT_EQ(rsp_decoder_init(&d, CAP), 0);
      feed(&d, fr->bytes, cut, &parts);
      feed(&d, fr->bytes + cut, fr->len - cut, &parts);
      assert_same_events(&whole, &parts);
      events_free(&parts);
      rsp_decoder_free(&d);
    }
    events_free(&whole);
  }
}

TEST(corpus_stream_in_random_chunks)
{
  /* Each direction's frames back to back, fed in random-sized chunks, yield the frames' packets in order. */
  load_frames();
  srand(7);
  for (int dir = 0; dir < 2; dir++) {
    char tag = dir ? '<' : '>';
    struct rsp_decoder d;
    ASSERT_EQ(rsp_decoder_init(&d, CAP), 0);
    for (size_t i = 0; i < nframes; i++) {
      if (frames[i].dir != tag)
        continue;
      struct events expect = {0}, got = {0};
      decode_all(frames[i].bytes, frames[i].len, CAP, &expect);
      size_t off = 0;
      while (off < frames[i].len) {
        size_t chunk = 1 + (size_t)rand() % 17;
        if (chunk > frames[i].len - off)
          chunk = frames[i].len - off;
        feed(&d, frames[i].bytes + off, chunk, &got);
        off += chunk;
      }
      assert_same_events(&expect, &got);
      events_free(&expect);
      events_free(&got);
    }
    rsp_decoder_free(&d);
  }
}

TEST(corpus_run_length_and_escapes_decoded)
{
  /* The 'g' reply in the corpus is run-length encoded; decoded it must be exactly 2 hex digits per byte. */
  load_frames();
  int saw_rle = 0, saw_escape = 0;
  for (size_t i = 0; i < nframes; i++) {
    const struct frame *fr = &frames[i];
    if (fr->bytes[0] != '$')
      continue;
    int has_star = memchr(fr->bytes, '*', fr->len) != NULL;
    int has_escape = memchr(fr->bytes, '}', fr->len) != NULL;
    struct events e = {0};
    decode_all(fr->bytes, fr->len, CAP, &e);
    ASSERT_EQ(e.kind[0], RSP_EV_PACKET);
    if (has_star && fr->dir == '<' && !has_escape) {
      saw_rle++;
      ASSERT_TRUE(memchr(e.data[0], '*', e.len[0]) == NULL);
      ASSERT_TRUE(e.len[0] > fr->len - 4);
    }
    if (has_escape)
      saw_escape++;
    events_free(&e);
  }
  ASSERT_TRUE(saw_rle > 10);
  ASSERT_TRUE(saw_escape >= 2);
}

TEST(encoder_matches_gdb_bytes)
{
  /* Re-encoding each payload gdb sent (gdb never run-length encodes) gives gdb's exact frame. */
  load_frames();
  int checked = 0;
  for (size_t i = 0; i < nframes; i++) {
    const struct frame *fr = &frames[i];
    if (fr->dir != '>' || fr->bytes[0] != '$')
      continue;
    struct events e = {0};
    decode_all(fr->bytes, fr->len, CAP, &e);
    struct rs_buf out;
    rs_buf_init(&out, CAP * 2);
    ASSERT_EQ(rsp_encode_packet(&out, e.data[0], e.len[0]), 0);
    ASSERT_EQ(out.len, fr->len);
    ASSERT_MEM_EQ(out.data, fr->bytes, fr->len);
    rs_buf_free(&out);
    events_free(&e);
    checked++;
  }
  ASSERT_TRUE(checked > 100);
}

TEST(manual_examples)
{
  /* From the GDB manual's Remote Protocol appendix: "0* " is a run-length encoding of "0000";
   * '}' escapes the next byte XORed with 0x20. */
  struct events e = {0};
  const char *rle = "$0* #";
  uint8_t sum = (uint8_t)('0' + '*' + ' ');
  char frame[16];
  snprintf(frame, sizeof frame, "%s%02x", rle, sum);
  decode_all(frame, strlen(frame), CAP, &e);
  ASSERT_EQ(e.kind[0], RSP_EV_PACKET);
  ASSERT_STR_EQ(e.data[0], "0000");
  events_free(&e);

  const uint8_t esc[] = {'$', 'X', '}', 0x5d, '#', '0', '0'}; /* }] decodes to '}' */
  uint8_t buf[sizeof esc + 1]; /* room for snprintf's NUL after the checksum */
  memcpy(buf, esc, sizeof esc);
  uint8_t s = (uint8_t)('X' + '}' + 0x5d);
  snprintf((char *)buf + 5, 3, "%02x", s);
  decode_all(buf, sizeof esc, CAP, &e);
  ASSERT_EQ(e.kind[0], RSP_EV_PACKET);
  ASSERT_EQ(e.len[0], 2);
  ASSERT_EQ(e.data[0][1], '}');
  events_free(&e);

  decode_all("$OK#9a", 6, CAP, &e);
  ASSERT_STR_EQ(e.data[0], "OK");
  events_free(&e);
}

TEST(corrupted_checksum_gives_nack_event_and_no_packet)
{
  struct events e = {0};
  const char *bad = "$OK#9b$OK#9a";
  decode_all(bad, strlen(bad), CAP, &e);
  ASSERT_EQ(e.n, 2);
  ASSERT_EQ(e.kind[0], RSP_EV_BAD_CHECKSUM);
  ASSERT_TRUE(e.data[0] == NULL);
  ASSERT_EQ(e.kind[1], RSP_EV_PACKET);
  ASSERT_STR_EQ(e.data[1], "OK");
  events_free(&e);

  /* A non-hex checksum digit is damage too. */
  decode_all("$OK#zz", 6, CAP, &e);
  ASSERT_EQ(e.n, 1);
  ASSERT_EQ(e.kind[0], RSP_EV_BAD_CHECKSUM);
  events_free(&e);
}

TEST(corpus_corrupted_frames_never_yield_packets)
{
  /* Flip one payload byte in every recorded packet: the checksum must catch it. */
  load_frames();
  for (size_t i = 0; i < nframes; i++) {
    const struct frame *fr = &frames[i];
    if (fr->bytes[0] != '$' || fr->len < 5)
      continue;
    uint8_t *copy = malloc(fr->len);
    memcpy(copy, fr->bytes, fr->len);
    copy[1] ^= 0x01;
    if (copy[1] == '#' || copy[1] == '$' || copy[1] == '}' || copy[1] == '*' || fr->bytes[1] == '}' ||
        fr->bytes[1] == '*') {
      free(copy);
      continue;
    }
    struct events e = {0};
    decode_all(copy, fr->len, CAP, &e);
    for (int k = 0; k < e.n; k++)
      ASSERT_TRUE(e.kind[k] != RSP_EV_PACKET);
    events_free(&e);
    free(copy);
  }
}

TEST(oversized_packet_reports_and_recovers)
{
  struct rsp_decoder d;
  ASSERT_EQ(rsp_decoder_init(&d, 100), 0);
  struct rs_buf big;
  rs_buf_init(&big, 1 << 20);
  char payload[300];
  memset(payload, 'a', sizeof payload);
  ASSERT_EQ(rsp_encode_packet(&big, payload, sizeof payload), 0);
  ASSERT_EQ(rsp_encode_packet(&big, "OK", 2), 0);
  struct events e = {0};
  feed(&d, big.data, big.len, &e);
  ASSERT_EQ(e.n, 2);
  ASSERT_EQ(e.kind[0], RSP_EV_TOO_LONG);
  ASSERT_EQ(e.kind[1], RSP_EV_PACKET);
  ASSERT_STR_EQ(e.data[1], "OK");
  events_free(&e);

  /* Run-length expansion counts against the cap too: "a*~" repeated grows 98 bytes per 3 sent. */
  rs_buf_reset(&big);
  char rle[64] = "";
  for (int i = 0; i < 5; i++)
    strcat(rle, "a*~");
  ASSERT_EQ(rs_buf_putc(&big, '$'), 0);
  ASSERT_EQ(rs_buf_puts(&big, rle), 0);
  ASSERT_EQ(rs_buf_puts(&big, "#00$OK#9a"), 0);
  feed(&d, big.data, big.len, &e);
  ASSERT_EQ(e.n, 2);
  ASSERT_EQ(e.kind[0], RSP_EV_TOO_LONG);
  ASSERT_STR_EQ(e.data[1], "OK");
  events_free(&e);
  rs_buf_free(&big);
  rsp_decoder_free(&d);
}

TEST(binary_payload_every_byte_round_trips)
{
  uint8_t payload[256 * 3];
  for (int i = 0; i < (int)sizeof payload; i++)
    payload[i] = (uint8_t)(i % 256);
  struct rs_buf out;
  rs_buf_init(&out, 1 << 20);
  ASSERT_EQ(rsp_encode_packet(&out, payload, sizeof payload), 0);
  /* The encoded frame must contain no bare framing byte inside the payload. */
  for (size_t i = 1; i + 3 < out.len; i++)
    ASSERT_TRUE(out.data[i] != '$' && out.data[i] != '#');
  struct events e = {0};
  for (size_t cut = 0; cut <= out.len; cut += 7) {
    struct rsp_decoder d;
    ASSERT_EQ(rsp_decoder_init(&d, sizeof payload), 0);
    feed(&d, out.data, cut, &e);
    feed(&d, out.data + cut, out.len - cut, &e);
    ASSERT_EQ(e.n, 1);
    ASSERT_EQ(e.kind[0], RSP_EV_PACKET);
    ASSERT_EQ(e.len[0], sizeof payload);
    ASSERT_MEM_EQ(e.data[0], payload, sizeof payload);
    events_free(&e);
    rsp_decoder_free(&d);
  }
  rs_buf_free(&out);
}

/* Decodes one encoded frame fed in random chunks with the given cap; returns the events. */
static void decode_in_random_chunks(const struct rs_buf *frame, size_t cap, struct events *e)
{
  struct rsp_decoder d;
  ASSERT_EQ(rsp_decoder_init(&d, cap), 0);
  for (size_t at = 0; at < frame->len;) {
    size_t chunk = 1 + (size_t)rand() % 4096;
    if (chunk > frame->len - at)
      chunk = frame->len - at;
    feed(&d, frame->data + at, chunk, e);
    at += chunk;
  }
  rsp_decoder_free(&d);
}

TEST(large_payloads_round_trip_at_every_framing_density)
{
  /* The encoder and decoder handle plain stretches in blocks: cover block edges, payloads exactly at the
   * cap, and framing bytes from none at all to every byte. */
  static const size_t lengths[] = {1, 31, 32, 33, 63, 64, 65, 1000, 16384 + 7};
  static const int per_mille[] = {0, 1, 20, 250, 1000};
  static const uint8_t framing[] = {'$', '#', '}', '*'};
  srand(777);
  uint8_t *payload = malloc(16384 + 7);
  for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
    for (size_t di = 0; di < sizeof per_mille / sizeof *per_mille; di++) {
      size_t len = lengths[li], nframing = 0;
      for (size_t i = 0; i < len; i++) {
        if (rand() % 1000 < per_mille[di]) {
          payload[i] = framing[rand() % 4];
          nframing++;
        } else {
          do
            payload[i] = (uint8_t)rand();
          while (payload[i] == '$' || payload[i] == '#' || payload[i] == '}' || payload[i] == '*');
        }
      }
      struct rs_buf out;
      rs_buf_init(&out, 1 << 20);
      ASSERT_EQ(rsp_encode_packet(&out, payload, len), 0);
      ASSERT_EQ(out.len, 1 + len + nframing + 3); /* '$', payload with one '}' per framing byte, '#xx' */
      struct events e = {0};
      decode_in_random_chunks(&out, len, &e); /* exactly at the cap: accepted */
      ASSERT_EQ(e.n, 1);
      ASSERT_EQ(e.kind[0], RSP_EV_PACKET);
      ASSERT_EQ(e.len[0], len);
      ASSERT_MEM_EQ(e.data[0], payload, len);
      events_free(&e);
      decode_in_random_chunks(&out, len - 1, &e); /* one byte over: the size error, no packet */
      ASSERT_EQ(e.n, 1);
      ASSERT_EQ(e.kind[0], RSP_EV_TOO_LONG);
      events_free(&e);
      rs_buf_free(&out);
    }
  free(payload);
}

TEST(escape_and_unescape_binary)
{
  uint8_t data[256];
  for (int i = 0; i < 256; i++)
    data[i] = (uint8_t)i;
  struct rs_buf out;
  rs_buf_init(&out, 4096);
  ASSERT_EQ(rsp_escape_binary(&out, data, sizeof data), 0);
  ASSERT_EQ(out.len, 256 + 4);
  long n = rsp_unescape_binary(out.data, out.len);
  ASSERT_EQ(n, 256);
  ASSERT_MEM_EQ(out.data, data, 256);
  uint8_t dangling[] = {'a', '}'};
  ASSERT_EQ(rsp_unescape_binary(dangling, 2), RS_E_BAD_ARG);
  rs_buf_free(&out);
}

/* The escaper reserves room for every byte escaped; a buffer whose limit is below that but above what the
 * payload needs still takes it (then it counts first), and one below what it needs refuses, unchanged. */
TEST(escape_near_the_buffer_limit)
{
  uint8_t data[1000];
  for (int i = 0; i < 1000; i++)
    data[i] = i % 100 == 7 ? '#' : (uint8_t)('a' + i % 26); /* 10 bytes to escape */
  struct rs_buf out;
  rs_buf_init(&out, 1010);
  ASSERT_EQ(rsp_escape_binary(&out, data, sizeof data), 0);
  ASSERT_EQ(out.len, 1010);
  ASSERT_EQ(rsp_unescape_binary(out.data, out.len), 1000);
  ASSERT_MEM_EQ(out.data, data, 1000);
  rs_buf_free(&out);
  rs_buf_init(&out, 1009);
  ASSERT_EQ(rs_buf_puts(&out, "$"), 0);
  ASSERT_EQ(rsp_escape_binary(&out, data, sizeof data), RS_E_LIMIT);
  ASSERT_EQ(out.len, 1);
  ASSERT_STR_EQ((char *)out.data, "$");
  rs_buf_free(&out);
}

TEST(acks_and_interrupt_between_packets)
{
  struct events e = {0};
  const char *in = "+-\x03junk$OK#9a+";
  decode_all(in, strlen(in), CAP, &e);
  ASSERT_EQ(e.n, 5);
  ASSERT_EQ(e.kind[0], RSP_EV_ACK);
  ASSERT_EQ(e.kind[1], RSP_EV_NACK);
  ASSERT_EQ(e.kind[2], RSP_EV_INTERRUPT);
  ASSERT_EQ(e.kind[3], RSP_EV_PACKET);
  ASSERT_EQ(e.kind[4], RSP_EV_ACK);
  events_free(&e);
}

TEST(truncated_packet_restarts_at_next_dollar)
{
  struct events e = {0};
  const char *in = "$m1234,$OK#9a";
  decode_all(in, strlen(in), CAP, &e);
  ASSERT_EQ(e.n, 1);
  ASSERT_STR_EQ(e.data[0], "OK");
  events_free(&e);
}

TEST(invalid_run_length_is_malformed)
{
  struct events e = {0};
  char frame[32];
  /* A '*' with nothing before it, and a count below the bias. */
  const char *bodies[] = {"*!", "a*\x10"};
  for (int i = 0; i < 2; i++) {
    uint8_t sum = 0;
    for (const char *p = bodies[i]; *p; p++)
      sum += (uint8_t)*p;
    int n = snprintf(frame, sizeof frame, "$%s#%02x", bodies[i], sum);
    decode_all(frame, (size_t)n, CAP, &e);
    ASSERT_EQ(e.n, 1);
    ASSERT_EQ(e.kind[0], RSP_EV_MALFORMED);
    events_free(&e);
  }
}

TEST(random_bytes_never_crash_or_exceed_cap)
{
  /* 100 000 random byte strings, biased toward framing bytes, fed in random splits. */
  enum { ROUNDS = 100000, MAXLEN = 200, SMALL_CAP = 64 };
  static const uint8_t interesting[] = {'$', '#', '}', '*', '+', '-', 0x03, '0', 'a', 'f'};
  srand(12345);
  struct rsp_decoder d;
  ASSERT_EQ(rsp_decoder_init(&d, SMALL_CAP), 0);
  uint8_t buf[MAXLEN];
  long packets = 0;
  for (int r = 0; r < ROUNDS; r++) {
    size_t len = (size_t)rand() % MAXLEN;
    for (size_t i = 0; i < len; i++)
      buf[i] = rand() % 3 ? interesting[rand() % sizeof interesting] : (uint8_t)rand();
    const uint8_t *p = buf;
    size_t left = len;
    while (left) {
      size_t chunk = 1 + (size_t)rand() % (left < 32 ? left : 32);
      const uint8_t *cp = p;
      size_t cl = chunk;
      struct rsp_event ev;
      while (rsp_decoder_next(&d, &cp, &cl, &ev)) {
        ASSERT_TRUE(d.len <= SMALL_CAP);
        if (ev.kind == RSP_EV_PACKET) {
          ASSERT_TRUE(ev.len <= SMALL_CAP);
          ASSERT_EQ(ev.data[ev.len], 0);
          packets++;
        }
      }
      p += chunk;
      left -= chunk;
    }
  }
  rsp_decoder_free(&d);
  printf("random decode produced %ld valid packets\n", packets);
}

TEST(notification_round_trip_binary)
{
  /* "%RsprofEvents:" batches carry raw binary records: every framing byte must survive, in any split, and
   * a notification next to a packet must come out as its own kind. */
  uint8_t payload[300];
  memcpy(payload, "RsprofEvents:", 13);
  for (size_t i = 13; i < sizeof payload; i++)
    payload[i] = (uint8_t)(i * 7);
  payload[20] = '#', payload[21] = '$', payload[22] = '}', payload[23] = '*', payload[24] = '%';
  struct rs_buf out;
  rs_buf_init(&out, 4096);
  ASSERT_EQ(rsp_encode_notification(&out, payload, sizeof payload), 0);
  ASSERT_EQ(out.data[0], '%');
  ASSERT_EQ(rsp_encode_packet(&out, "OK", 2), 0);
  for (size_t split = 0; split <= out.len; split++) {
    struct rsp_decoder d;
    struct events e = {0};
    ASSERT_EQ(rsp_decoder_init(&d, 4096), 0);
    feed(&d, out.data, split, &e);
    feed(&d, out.data + split, out.len - split, &e);
    ASSERT_EQ(e.n, 2);
    ASSERT_EQ(e.kind[0], RSP_EV_NOTIFY);
    ASSERT_EQ(e.len[0], sizeof payload);
    ASSERT_MEM_EQ(e.data[0], payload, sizeof payload);
    ASSERT_EQ(e.kind[1], RSP_EV_PACKET);
    ASSERT_STR_EQ(e.data[1], "OK");
    events_free(&e);
    rsp_decoder_free(&d);
  }
  rs_buf_free(&out);
}
