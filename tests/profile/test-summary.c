/* JSON emitter (escaping, structure, misuse) and the text list of top contexts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fake.h"
#include "summary.h"
#include "test.h"

struct capture {
  char *buf;
  size_t len;
  FILE *f;
};

static void cap_open(struct capture *c)
{
  c->buf = NULL;
  c->len = 0;
  c->f = open_memstream(&c->buf, &c->len);
  ASSERT_TRUE(c->f != NULL);
}

static char *cap_close(struct capture *c)
{
  fclose(c->f);
  return c->buf;
}

TEST(json_escapes_quotes_backslashes_and_control_characters)
{
  struct capture c;
  cap_open(&c);
  json_write_escaped(c.f, "a\"b\\c/\n\r\t\b\f\x01\x1f\x7f");
  char *out = cap_close(&c);
  ASSERT_STR_EQ(out, "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"");
  free(out);
}

TEST(json_keeps_valid_utf8_and_replaces_invalid_bytes)
{
  struct capture c;
  cap_open(&c);
  /* é (2 bytes), € (3), 😀 (4) are kept; a lone continuation byte, 0xff, an overlong "/" (c0 af), a
   * UTF-16 surrogate (ed a0 80) and a cut sequence (e2 82 at the end) are replaced byte by byte. */
  json_write_escaped(c.f, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
  char *out = cap_close(&c);
  ASSERT_STR_EQ(out, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\ufffd|\\ufffd|\\ufffd\\ufffd|"
                     "\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
  free(out);
}

TEST(json_structure_compact_and_pretty)
{
  for (int pretty = 0; pretty < 2; pretty++) {
    struct capture c;
    struct json_out j;
    cap_open(&c);
    json_init(&j, c.f, pretty);
    json_begin_object(&j);
    json_key(&j, "program");
    json_begin_object(&j);
    json_kv_int(&j, "exit_code", -1);
    json_kv_string(&j, "name", "a \"b\"");
    json_end_object(&j);
    json_kv_uint(&j, "events", UINT64_MAX);
    json_key(&j, "list");
    json_begin_array(&j);
    json_double(&j, 0.5);
    json_double(&j, 1.0 / 0.0);
    json_bool(&j, 1);
    json_null(&j);
    json_string(&j, NULL);
    json_begin_array(&j);
    json_end_array(&j);
    json_end_array(&j);
    json_kv_bool(&j, "ok", 0);
    json_key(&j, "empty");
    json_begin_object(&j);
    json_end_object(&j);
    json_end_object(&j);
    ASSERT_EQ(json_finish(&j), 0);
    char *out = cap_close(&c);
    if (!pretty)
      ASSERT_STR_EQ(out, "{\"program\":{\"exit_code\":-1,\"name\":\"a \\\"b\\\"\"},\"events\":18446744073709551615,"
                         "\"list\":[0.5,null,true,null,null,[]],\"ok\":false,\"empty\":{}}\n");
    else
      ASSERT_STR_EQ(out, "{\n  \"program\": {\n    \"exit_code\": -1,\n    \"name\": \"a \\\"b\\\"\"\n  },\n"
                         "  \"events\": 18446744073709551615,\n  \"list\": [\n    0.5,\n    null,\n    true,\n"
                         "    null,\n    null,\n    []\n  ],\n  \"ok\": false,\n  \"empty\": {}\n}\n");
    free(out);
  }
}

TEST(json_misuse_is_reported)
{
  struct capture c;
  struct json_out j;
  cap_open(&c);
  json_init(&j, c.f, 0);
  json_begin_object(&j);
  json_int(&j, 1); /* a value without a key */
  ASSERT_EQ(json_finish(&j), RS_E_BAD_ARG);
  json_init(&j, c.f, 0);
  json_begin_array(&j);
  json_end_object(&j); /* wrong closer */
  ASSERT_EQ(json_finish(&j), RS_E_BAD_ARG);
  json_init(&j, c.f, 0);
  json_begin_object(&j); /* never closed */
  ASSERT_EQ(json_finish(&j), RS_E_BAD_ARG);
  json_init(&j, c.f, 0);
  json_int(&j, 1);
  json_int(&j, 2); /* two top-level values */
  ASSERT_EQ(json_finish(&j), RS_E_BAD_ARG);
  json_init(&j, c.f, 0);
  for (int i = 0; i <= JSON_MAX_DEPTH; i++)
    json_begin_array(&j);
  ASSERT_EQ(json_finish(&j), RS_E_BAD_ARG);
  free(cap_close(&c));
}

TEST(top_contexts_text)
{
  struct cct *t = fake_tree();
  struct capture c;
  cap_open(&c);
  ASSERT_EQ(summary_top_contexts(c.f, t, fake_metrics, 1, 2, "top by bytes:", fake_symbolize, NULL), 0);
  char *out = cap_close(&c);
  /* the two largest byte counts of fake_events: 500 (0x6000 in thread 200) and 100 (0x4000 in thread 100) */
  ASSERT_STR_EQ(out, "top by bytes:\n"
                     "  #1: 500 bytes  allocs=5\n"
                     "    at core::array<[u8; 4]> (/rustc/core/array.rs:0)\n"
                     "    at 0x5000 (/usr/lib/libfoo.so.1)\n"
                     "    at main (/src/app/main.c:10)\n"
                     "    in thread 200\n"
                     "  #2: 100 bytes  allocs=1\n"
                     "    at 0x4000\n"
                     "    at inl_helper (/src/app/util.h:3) [inlined]\n"
                     "    at caller_b (/src/app/b.c:20)\n"
                     "    at main (/src/app/main.c:10)\n"
                     "    in thread 100\n");
  free(out);
  cap_open(&c);
  ASSERT_EQ(summary_top_contexts(c.f, t, fake_metrics, 0, 10, NULL, NULL, NULL), 0);
  out = cap_close(&c);
  ASSERT_TRUE(strstr(out, "[truncated") != NULL);
  ASSERT_EQ(summary_top_contexts(c.f, t, fake_metrics, 2, 10, NULL, NULL, NULL), RS_E_BAD_ARG);
  free(out);
  char b[32];
  ASSERT_STR_EQ(summary_format_bytes(b, sizeof b, 1023), "1023 B");
  ASSERT_STR_EQ(summary_format_bytes(b, sizeof b, 1536), "1.5 KiB");
  ASSERT_STR_EQ(summary_format_bytes(b, sizeof b, 3 * 1048576), "3.0 MiB");
  cct_free(t);
}

TEST(top_contexts_json)
{
  struct cct *t = fake_tree();
  struct capture c;
  struct json_out j;
  cap_open(&c);
  json_init(&j, c.f, 0);
  json_begin_object(&j);
  json_key(&j, "top");
  ASSERT_EQ(summary_top_contexts_json(&j, t, fake_metrics, 0, 1, fake_symbolize, NULL), 0);
  json_end_object(&j);
  ASSERT_EQ(json_finish(&j), 0);
  char *out = cap_close(&c);
  /* the largest alloc count of fake_events: 5 at 0x6000 <- 0x5000 <- 0x1000 in thread 200, node 16 (nodes
   * are numbered in insertion order: 1 root, 2-10 thread 100 with its truncated branch, 11-17 thread 200) */
  ASSERT_STR_EQ(out, "{\"top\":[{\"node\":16,\"thread\":200,\"truncated\":false,"
                     "\"metrics\":{\"allocs\":5,\"bytes\":500},\"stack\":["
                     "{\"function\":\"core::array<[u8; 4]>\",\"file\":\"/rustc/core/array.rs\",\"line\":0,"
                     "\"inlined\":false,\"pc\":\"0x6000\"},"
                     "{\"function\":\"0x5000\",\"file\":null,\"line\":0,\"inlined\":false,\"pc\":\"0x5000\"},"
                     "{\"function\":\"main\",\"file\":\"/src/app/main.c\",\"line\":10,\"inlined\":false,"
                     "\"pc\":\"0x1000\"}]}]}\n");
  free(out);
  cct_free(t);
}
