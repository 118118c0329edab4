/* Reading profiles back: folded/text/json output of a hand-built tree, and clean errors (never a crash)
 * for missing, foreign, truncated, corrupted and inconsistent files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drcctprof.pb-c.h"
#include "errors.h"
#include "fake.h"
#include "profile-read.h"
#include "report.h"
#include "test.h"

static const char *write_fake(void)
{
  struct cct *t = fake_tree();
  struct profile_info info = {.program = "./app", .pid = 77};
  const char *path = fake_tmp_path("fake.drcctprof");
  ASSERT_EQ(profile_write_drcctprof(t, fake_metrics, 2, fake_symbolize, NULL, &info, path), 0);
  cct_free(t);
  return path;
}

static char *print(const struct prof *p, enum report_format fmt, size_t metric)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ASSERT_TRUE(f != NULL);
  ASSERT_EQ(report_print(f, p, fmt, metric), 0);
  fclose(f);
  return buf;
}

static void expect_lines(const char *out, const char *const *want)
{
  size_t n = 0;
  const char *s = out;
  for (; want[n]; n++) {
    size_t wl = strlen(want[n]);
    if (strncmp(s, want[n], wl) != 0 || s[wl] != '\n')
      TEST_FAIL("line %zu: expected \"%s\", output from there:\n%s", n + 1, want[n], s);
    s += wl + 1;
  }
  if (*s)
    TEST_FAIL("unexpected extra output:\n%s", s);
}

TEST(folded_lists_each_distinct_stack_once)
{
  const char *path = write_fake();
  struct prof *p;
  char err[256];
  ASSERT_EQ(prof_read(path, &p, err, sizeof err), 0);
  ASSERT_EQ(p->nmetrics, 2);
  ASSERT_STR_EQ(p->metric_name[1], "bytes");
  char *out = print(p, REPORT_FOLDED, 0);
  expect_lines(out, (const char *const *)fake_folded_allocs);
  free(out);
  out = print(p, REPORT_FOLDED, (size_t)prof_metric_index(p, "bytes"));
  expect_lines(out, (const char *const *)fake_folded_bytes);
  free(out);
  prof_free(p);
}

TEST(text_shows_tree_with_inclusive_and_self_values)
{
  const char *path = write_fake();
  struct prof *p;
  char err[256];
  ASSERT_EQ(prof_read(path, &p, err, sizeof err), 0);
  char *out = print(p, REPORT_TEXT, 0);
  /* Totals by hand from fake_events: 15 allocs, 731 bytes; thread 100: 8 allocs, 192 bytes; caller_b
   * under main in thread 100: 7 allocs (1 its own), 188 bytes (8 its own). */
  ASSERT_TRUE(strstr(out, "\nPROCESS[77] app  allocs=15(0)  bytes=731(0)\n") != NULL);
  ASSERT_TRUE(strstr(out, "\n  THREAD[100]  allocs=8(0)  bytes=192(0)\n") != NULL);
  ASSERT_TRUE(strstr(out, "\n      caller_b (/src/app/b.c:20)  allocs=7(1)  bytes=188(8)\n"
                          "        inl_helper (/src/app/util.h:3) [inlined]\n"
                          "          leaf_alloc (/src/app/alloc.c:7)  allocs=3(3)  bytes=48(48)\n") != NULL);
  ASSERT_TRUE(strstr(out, "\n    [truncated]  allocs=1(0)  bytes=4(0)\n") != NULL);
  free(out);
  prof_free(p);
}

/* Runs report_main with stdout and stderr captured; returns its exit status. */
static int run_report(char **argv, int argc, char *out, size_t outlen, char *errout, size_t errlen)
{
  char opath[] = "/tmp/rsprof-report-out.XXXXXX", epath[] = "/tmp/rsprof-report-err.XXXXXX";
  int ofd = mkstemp(opath), efd = mkstemp(epath);
  ASSERT_TRUE(ofd >= 0 && efd >= 0);
  fflush(stdout);
  fflush(stderr);
  int so = dup(1), se = dup(2);
  dup2(ofd, 1);
  dup2(efd, 2);
  int rc = report_main(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(so, 1);
  dup2(se, 2);
  close(so);
  close(se);
  ssize_t n = pread(ofd, out, outlen - 1, 0);
  out[n > 0 ? n : 0] = 0;
  n = pread(efd, errout, errlen - 1, 0);
  errout[n > 0 ? n : 0] = 0;
  close(ofd);
  close(efd);
  unlink(opath);
  unlink(epath);
  return rc;
}

TEST(report_command_line)
{
  const char *path = write_fake();
  static char out[16384], err[4096];
  char *a1[] = {"report", (char *)path, "--format", "folded", "--metric=bytes"};
  ASSERT_EQ(run_report(a1, 5, out, sizeof out, err, sizeof err), 0);
  ASSERT_TRUE(strstr(out, "THREAD[200];main;0x5000 [libfoo.so.1];core::array<[u8: 4]> 500\n") != NULL);
  char *a2[] = {"report", "/nonexistent/x.drcctprof"};
  ASSERT_EQ(run_report(a2, 2, out, sizeof out, err, sizeof err), 1);
  ASSERT_TRUE(strstr(err, "cannot open /nonexistent/x.drcctprof") != NULL);
  char *a3[] = {"report", (char *)path, "--format", "svg"};
  ASSERT_EQ(run_report(a3, 4, out, sizeof out, err, sizeof err), 2);
  ASSERT_TRUE(strstr(err, "unknown format") != NULL);
  char *a4[] = {"report", (char *)path, "--metric", "nope"};
  ASSERT_EQ(run_report(a4, 4, out, sizeof out, err, sizeof err), 2);
  ASSERT_TRUE(strstr(err, "no metric \"nope\"; it has: allocs bytes") != NULL);
  char *a5[] = {"report", "/tmp"};
  ASSERT_EQ(run_report(a5, 2, out, sizeof out, err, sizeof err), 1);
  ASSERT_TRUE(strstr(err, "not a regular file") != NULL);
  char *a6[] = {"report"};
  ASSERT_EQ(run_report(a6, 1, out, sizeof out, err, sizeof err), 2);
  /* the program's whole command line works as well */
  char *a7[] = {"rsprof-collector", "report", "--format=folded", (char *)path};
  ASSERT_EQ(run_report(a7, 4, out, sizeof out, err, sizeof err), 0);
  ASSERT_TRUE(strstr(out, "THREAD[200];main;caller_b;inl_helper;leaf_alloc 2\n") != NULL);
}

TEST(foreign_file_is_rejected)
{
  char err[256];
  struct prof *p;
  static const uint8_t text[] = "this is not a profile at all\n";
  ASSERT_EQ(prof_parse(text, sizeof text - 1, &p, err, sizeof err), RS_E_FORMAT);
  ASSERT_TRUE(strstr(err, "not a drcctprof profile") != NULL);
  /* an empty file decodes as an empty message: still not a profile */
  ASSERT_EQ(prof_parse(text, 0, &p, err, sizeof err), RS_E_FORMAT);
  ASSERT_TRUE(strstr(err, "not a drcctprof profile") != NULL);
}

static uint8_t *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ASSERT_TRUE(f != NULL);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  rewind(f);
  uint8_t *b = malloc(*len);
  ASSERT_TRUE(b != NULL);
  ASSERT_EQ(fread(b, 1, *len, f), *len);
  fclose(f);
  return b;
}

TEST(every_truncation_is_an_error)
{
  size_t len;
  uint8_t *data = slurp(write_fake(), &len);
  char err[256];
  struct prof *p;
  ASSERT_EQ(prof_parse(data, len, &p, err, sizeof err), 0);
  prof_free(p);
  for (size_t n = 0; n < len; n++) {
    /* a copy of exactly n bytes, so ASan sees any read past the end */
    uint8_t *cut = malloc(n ? n : 1);
    memcpy(cut, data, n);
    int rc = prof_parse(cut, n, &p, err, sizeof err);
    if (rc == 0)
      TEST_FAIL("a file cut to %zu of %zu bytes was accepted", n, len);
    ASSERT_EQ(rc, RS_E_FORMAT);
    free(cut);
  }
  free(data);
}

TEST(corrupted_bytes_never_crash)
{
  size_t len;
  uint8_t *data = slurp(write_fake(), &len);
  char err[256];
  size_t rejected = 0;
  for (size_t i = 0; i < len; i++) {
    static const uint8_t flips[] = {0xff, 0x80, 0x01, 0x7f};
    for (size_t f = 0; f < sizeof flips; f++) {
      uint8_t *bad = malloc(len);
      memcpy(bad, data, len);
      bad[i] ^= flips[f];
      struct prof *p;
      if (prof_parse(bad, len, &p, err, sizeof err) == 0) {
        /* accepted: then it must be walkable like any good profile */
        char *out = print(p, REPORT_FOLDED, 0);
        free(out);
        out = print(p, REPORT_TEXT, 0);
        free(out);
        prof_free(p);
      } else {
        rejected++;
      }
      free(bad);
    }
  }
  ASSERT_TRUE(rejected > 0);
  free(data);
}

/* A minimal valid profile built by hand, then broken in one way at a time. */
struct mini {
  Drcctprof__Profile__Profile pb;
  Drcctprof__Profile__MetricType mt, *mtp[1];
  Drcctprof__Profile__Context c[3], *cp[3];
  uint64_t kids0[1], kids1[1];
  Drcctprof__Profile__Location l, *lp[1];
  Drcctprof__Profile__Line line, *linep[1];
  Drcctprof__Profile__Function fn, *fnp[1];
  Drcctprof__Profile__Sample s, *sp[1];
  Drcctprof__Profile__Metric m, *mp[1];
  char *strings[3];
};

static void mini_init(struct mini *x)
{
  Drcctprof__Profile__Profile pb = DRCCTPROF__PROFILE__PROFILE__INIT;
  Drcctprof__Profile__MetricType mt = DRCCTPROF__PROFILE__METRIC_TYPE__INIT;
  Drcctprof__Profile__Context c = DRCCTPROF__PROFILE__CONTEXT__INIT;
  Drcctprof__Profile__Location l = DRCCTPROF__PROFILE__LOCATION__INIT;
  Drcctprof__Profile__Line line = DRCCTPROF__PROFILE__LINE__INIT;
  Drcctprof__Profile__Function fn = DRCCTPROF__PROFILE__FUNCTION__INIT;
  Drcctprof__Profile__Sample s = DRCCTPROF__PROFILE__SAMPLE__INIT;
  Drcctprof__Profile__Metric m = DRCCTPROF__PROFILE__METRIC__INIT;
  x->pb = pb;
  x->strings[0] = "";
  x->strings[1] = "count";
  x->strings[2] = "f";
  x->pb.n_string_table = 3;
  x->pb.string_table = x->strings;
  x->mt = mt;
  x->mt.unit = 1;
  x->mt.des = 2;
  x->mtp[0] = &x->mt;
  x->pb.n_metric_type = 1;
  x->pb.metric_type = x->mtp;
  x->fn = fn;
  x->fn.id = 1;
  x->fn.name = x->fn.system_name = 2;
  x->fnp[0] = &x->fn;
  x->pb.n_function = 1;
  x->pb.function = x->fnp;
  x->line = line;
  x->line.function_id = 1;
  x->linep[0] = &x->line;
  x->l = l;
  x->l.id = 1;
  x->l.n_line = 1;
  x->l.line = x->linep;
  x->lp[0] = &x->l;
  x->pb.n_location = 1;
  x->pb.location = x->lp;
  for (int i = 0; i < 3; i++) {
    x->c[i] = c;
    x->c[i].id = (uint64_t)i + 1;
    x->c[i].parent_id = (uint64_t)i;
    x->c[i].location_id = 1;
    x->cp[i] = &x->c[i];
  }
  x->kids0[0] = 2;
  x->kids1[0] = 3;
  x->c[0].n_children_id = x->c[1].n_children_id = 1;
  x->c[0].children_id = x->kids0;
  x->c[1].children_id = x->kids1;
  x->pb.n_context = 3;
  x->pb.context = x->cp;
  x->m = m;
  x->m.uint_value = x->m.int_value = 9;
  x->mp[0] = &x->m;
  x->s = s;
  x->s.context_id = 3;
  x->s.n_metric = 1;
  x->s.metric = x->mp;
  x->sp[0] = &x->s;
  x->pb.n_sample = 1;
  x->pb.sample = x->sp;
}

static int mini_parse(struct mini *x, char *err, size_t errlen)
{
  size_t len = drcctprof__profile__profile__get_packed_size(&x->pb);
  uint8_t *buf = malloc(len + 1);
  drcctprof__profile__profile__pack(&x->pb, buf);
  struct prof *p;
  int rc = prof_parse(buf, len, &p, err, errlen);
  free(buf);
  if (rc == 0)
    prof_free(p);
  return rc;
}

#define EXPECT_INCONSISTENT(x, words)                                  \
  do {                                                                 \
    char err_[256];                                                    \
    ASSERT_EQ(mini_parse(x, err_, sizeof err_), RS_E_FORMAT);          \
    if (!strstr(err_, words))                                          \
      TEST_FAIL("message \"%s\" lacks \"%s\"", err_, words);           \
  } while (0)

TEST(inconsistent_profiles_are_rejected_with_a_reason)
{
  struct mini x;
  char err[256];
  mini_init(&x);
  ASSERT_EQ(mini_parse(&x, err, sizeof err), 0);

  mini_init(&x);
  x.c[2].parent_id = 3; /* its own parent */
  EXPECT_INCONSISTENT(&x, "not smaller than its id");
  mini_init(&x);
  x.c[1].id = 5; /* now context 3's parent (2) is missing, and 1 lists a missing child */
  x.kids0[0] = 5;
  EXPECT_INCONSISTENT(&x, "parent 2, which does not exist");
  mini_init(&x);
  x.c[1].location_id = 4;
  EXPECT_INCONSISTENT(&x, "location 4, which does not exist");
  mini_init(&x);
  x.line.function_id = 8;
  EXPECT_INCONSISTENT(&x, "function 8, which does not exist");
  mini_init(&x);
  x.kids0[0] = 3;
  EXPECT_INCONSISTENT(&x, "child 3, whose parent is 2");
  mini_init(&x);
  x.kids1[0] = 30;
  EXPECT_INCONSISTENT(&x, "child 30, which does not exist");
  mini_init(&x);
  x.s.n_metric = 0;
  EXPECT_INCONSISTENT(&x, "has 0 metrics");
  mini_init(&x);
  x.s.context_id = 4;
  EXPECT_INCONSISTENT(&x, "context 4, which does not exist");
  mini_init(&x);
  x.fn.name = 3;
  EXPECT_INCONSISTENT(&x, "string that does not exist");
  mini_init(&x);
  x.mt.des = -1;
  EXPECT_INCONSISTENT(&x, "string that does not exist");
  mini_init(&x);
  x.c[1].id = 1; /* duplicate id */
  EXPECT_INCONSISTENT(&x, "two contexts have id 1");
  mini_init(&x);
  x.fn.id = 0;
  x.line.function_id = 0;
  EXPECT_INCONSISTENT(&x, "has id 0");
  mini_init(&x);
  x.strings[0] = "x";
  ASSERT_EQ(mini_parse(&x, err, sizeof err), RS_E_FORMAT);
  ASSERT_TRUE(strstr(err, "not a drcctprof profile") != NULL);
}
