/* drcctprof writer: the file decodes with protobuf-c and follows every rule the viewer relies on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drcctprof.pb-c.h"
#include "fake.h"
#include "profile-write.h"
#include "test.h"

static uint8_t *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ASSERT_TRUE(f != NULL);
  ASSERT_EQ(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  ASSERT_TRUE(n > 0);
  rewind(f);
  uint8_t *b = malloc((size_t)n);
  ASSERT_TRUE(b != NULL);
  ASSERT_EQ(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static Drcctprof__Profile__Profile *write_and_decode(struct cct *t, const struct profile_info *info)
{
  const char *path = fake_tmp_path("out.drcctprof");
  ASSERT_EQ(profile_write_drcctprof(t, fake_metrics, 2, fake_symbolize, NULL, info, path), 0);
  size_t len;
  uint8_t *data = slurp(path, &len);
  Drcctprof__Profile__Profile *pb = drcctprof__profile__profile__unpack(NULL, len, data);
  free(data);
  ASSERT_TRUE(pb != NULL);
  return pb;
}

static const Drcctprof__Profile__Context *find_context(const Drcctprof__Profile__Profile *pb, uint64_t id)
{
  for (size_t i = 0; i < pb->n_context; i++)
    if (pb->context[i]->id == id)
      return pb->context[i];
  TEST_FAIL("no context %llu", (unsigned long long)id);
}

static const Drcctprof__Profile__Location *find_location(const Drcctprof__Profile__Profile *pb, uint64_t id)
{
  for (size_t i = 0; i < pb->n_location; i++)
    if (pb->location[i]->id == id)
      return pb->location[i];
  TEST_FAIL("no location %llu", (unsigned long long)id);
}

static const Drcctprof__Profile__Function *find_function(const Drcctprof__Profile__Profile *pb, uint64_t id)
{
  for (size_t i = 0; i < pb->n_function; i++)
    if (pb->function[i]->id == id)
      return pb->function[i];
  TEST_FAIL("no function %llu", (unsigned long long)id);
}

static const Drcctprof__Profile__SourceFile *find_file(const Drcctprof__Profile__Profile *pb, uint64_t id)
{
  for (size_t i = 0; i < pb->n_source_file; i++)
    if (pb->source_file[i]->id == id)
      return pb->source_file[i];
  TEST_FAIL("no source file %llu", (unsigned long long)id);
}

static const char *str(const Drcctprof__Profile__Profile *pb, int64_t idx)
{
  ASSERT_TRUE(idx >= 0 && (uint64_t)idx < pb->n_string_table);
  return pb->string_table[idx];
}

/* The name of a context's physical (last) function. */
static const char *context_name(const Drcctprof__Profile__Profile *pb, const Drcctprof__Profile__Context *c)
{
  const Drcctprof__Profile__Location *l = find_location(pb, c->location_id);
  ASSERT_TRUE(l->n_line >= 1);
  return str(pb, find_function(pb, l->line[l->n_line - 1]->function_id)->name);
}

TEST(ids_parents_and_roots_follow_the_viewer_rules)
{
  struct cct *t = fake_tree();
  struct profile_info info = {.program = "./app", .pid = 4242};
  Drcctprof__Profile__Profile *pb = write_and_decode(t, &info);

  ASSERT_TRUE(pb->n_string_table > 0);
  ASSERT_STR_EQ(pb->string_table[0], "");
  ASSERT_EQ(pb->n_context, cct_count(t));
  size_t roots = 0;
  const Drcctprof__Profile__Context *root = NULL;
  for (size_t i = 0; i < pb->n_context; i++) {
    const Drcctprof__Profile__Context *c = pb->context[i];
    ASSERT_TRUE(c->id != 0);
    ASSERT_TRUE(c->location_id != 0);
    ASSERT_TRUE(c->parent_id < c->id);
    if (c->parent_id == 0) {
      roots++;
      root = c;
    } else {
      /* the parent lists this context among its children, exactly once */
      const Drcctprof__Profile__Context *p = find_context(pb, c->parent_id);
      size_t seen = 0;
      for (size_t k = 0; k < p->n_children_id; k++)
        seen += p->children_id[k] == c->id;
      ASSERT_EQ(seen, 1);
    }
    for (size_t k = 0; k < c->n_children_id; k++)
      ASSERT_EQ(find_context(pb, c->children_id[k])->parent_id, c->id);
    for (size_t k = 0; k < i; k++)
      ASSERT_TRUE(pb->context[k]->id != c->id);
  }
  ASSERT_EQ(roots, 1);
  ASSERT_STR_EQ(context_name(pb, root), "PROCESS[4242] app");
  ASSERT_EQ(root->n_children_id, 2);
  ASSERT_STR_EQ(context_name(pb, find_context(pb, root->children_id[0])), "THREAD[100]");
  ASSERT_STR_EQ(context_name(pb, find_context(pb, root->children_id[1])), "THREAD[200]");
  for (size_t i = 0; i < pb->n_location; i++)
    ASSERT_TRUE(pb->location[i]->id != 0);
  for (size_t i = 0; i < pb->n_function; i++)
    ASSERT_TRUE(pb->function[i]->id != 0);
  for (size_t i = 0; i < pb->n_source_file; i++)
    ASSERT_TRUE(pb->source_file[i]->id != 0);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  cct_free(t);
}

TEST(locations_functions_and_files)
{
  struct cct *t = fake_tree();
  Drcctprof__Profile__Profile *pb = write_and_decode(t, NULL);
  int saw_inline = 0, saw_unknown = 0, saw_module = 0;
  for (size_t i = 0; i < pb->n_location; i++) {
    const Drcctprof__Profile__Location *l = pb->location[i];
    ASSERT_TRUE(l->n_line >= 1);
    for (size_t k = 0; k < l->n_line; k++)
      ASSERT_TRUE(l->line[k]->line >= 0 && l->line[k]->line < 100000); /* never -1 cast to unsigned */
    const Drcctprof__Profile__Function *inner = find_function(pb, l->line[0]->function_id);
    const char *name = str(pb, inner->name);
    if (strcmp(name, "inl_helper") == 0) {
      /* inlined callee first, physical caller last, each with its own line */
      saw_inline = 1;
      ASSERT_EQ(l->n_line, 2);
      ASSERT_EQ(l->line[0]->line, 3);
      const Drcctprof__Profile__Function *outer = find_function(pb, l->line[1]->function_id);
      ASSERT_STR_EQ(str(pb, outer->name), "caller_b");
      ASSERT_EQ(l->line[1]->line, 20);
      ASSERT_EQ(outer->start_line, 15);
      ASSERT_STR_EQ(str(pb, inner->system_name), "_Z10inl_helperv");
      ASSERT_EQ(inner->start_line, 1);
      const Drcctprof__Profile__SourceFile *sf = find_file(pb, inner->source_file_id);
      /* the full path in both, as DrCCTProf's writer has it: the viewer opens location_path */
      ASSERT_STR_EQ(str(pb, sf->filename), "/src/app/util.h");
      ASSERT_STR_EQ(str(pb, sf->location_path), "/src/app/util.h");
    } else if (strcmp(name, "0x4000") == 0) {
      saw_unknown = 1;
      ASSERT_EQ(l->line[0]->line, 0);
      /* no file: the empty entry, which exists (the viewer follows every function's file id) */
      const Drcctprof__Profile__SourceFile *sf = find_file(pb, inner->source_file_id);
      ASSERT_STR_EQ(str(pb, sf->location_path), "");
    } else if (strcmp(name, "0x5000 [libfoo.so.1]") == 0) {
      saw_module = 1;
      ASSERT_EQ(l->line[0]->line, 0);
    }
  }
  ASSERT_TRUE(saw_inline && saw_unknown && saw_module);
  /* functions are shared: 0x3000 and 0x3004 are one function; util.h is one source file */
  size_t leaf_alloc = 0, util_h = 0;
  for (size_t i = 0; i < pb->n_function; i++)
    leaf_alloc += strcmp(str(pb, pb->function[i]->name), "leaf_alloc") == 0;
  for (size_t i = 0; i < pb->n_source_file; i++)
    util_h += strcmp(str(pb, pb->source_file[i]->filename), "/src/app/util.h") == 0;
  ASSERT_EQ(leaf_alloc, 1);
  ASSERT_EQ(util_h, 1);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  cct_free(t);
}

/* What the viewer needs beyond the schema: every source-file id a function names exists, each file's
 * location_path is its full path, and no root's name holds a '/' (the viewer cuts names at the last one). */
TEST(viewer_follows_every_file_id_and_name)
{
  struct cct *t = fake_tree();
  struct profile_info info = {.program = "/usr/local/bin/my-app", .pid = 4242};
  Drcctprof__Profile__Profile *pb = write_and_decode(t, &info);
  ASSERT_TRUE(pb->n_function > 0);
  for (size_t i = 0; i < pb->n_function; i++) {
    const Drcctprof__Profile__Function *f = pb->function[i];
    const Drcctprof__Profile__SourceFile *sf = find_file(pb, f->source_file_id); /* fails when missing */
    ASSERT_TRUE(sf->id != 0);
    ASSERT_STR_EQ(str(pb, sf->location_path), str(pb, sf->filename));
    const char *path = str(pb, sf->location_path);
    ASSERT_TRUE(path[0] == '\0' || path[0] == '/'); /* the fixture's files are absolute: kept whole */
  }
  int saw_process = 0;
  for (size_t i = 0; i < pb->n_context; i++) {
    const Drcctprof__Profile__Context *c = pb->context[i];
    if (c->parent_id != 0 && find_context(pb, c->parent_id)->parent_id != 0)
      continue; /* roots: the process and its threads */
    const char *name = context_name(pb, c);
    ASSERT_TRUE(strchr(name, '/') == NULL);
    if (c->parent_id == 0) {
      ASSERT_STR_EQ(name, "PROCESS[4242] my-app");
      saw_process = 1;
    }
  }
  ASSERT_TRUE(saw_process);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  cct_free(t);
}

/* rsprof's additions, which the viewer skips: each location names its module (a mapping with the build-id)
 * and the offset in it. */
TEST(locations_carry_their_module_and_offset)
{
  struct cct *t = fake_tree();
  Drcctprof__Profile__Profile *pb = write_and_decode(t, NULL);
  int saw_app = 0, saw_lib = 0;
  for (size_t i = 0; i < pb->n_location; i++) {
    const Drcctprof__Profile__Location *l = pb->location[i];
    const char *name = str(pb, find_function(pb, l->line[0]->function_id)->name);
    if (strcmp(name, "leaf_alloc") != 0 && strcmp(name, "0x5000 [libfoo.so.1]") != 0)
      continue;
    const Drcctprof__Profile__Mapping *m = NULL;
    for (size_t k = 0; k < pb->n_mapping; k++)
      if (pb->mapping[k]->id == l->mapping_id)
        m = pb->mapping[k];
    ASSERT_TRUE(m != NULL);
    if (strcmp(name, "leaf_alloc") == 0) {
      ASSERT_STR_EQ(str(pb, m->filename), "/bin/app");
      ASSERT_STR_EQ(str(pb, m->build_id), FAKE_APP_BUILD_ID);
      ASSERT_TRUE(l->address == 0x2000 || l->address == 0x2004); /* 0x3000 and 0x3004 */
      saw_app = 1;
    } else {
      ASSERT_STR_EQ(str(pb, m->filename), "/usr/lib/libfoo.so.1");
      ASSERT_STR_EQ(str(pb, m->build_id), "");
      ASSERT_EQ(l->address, 0);
      saw_lib = 1;
    }
  }
  ASSERT_TRUE(saw_app && saw_lib);
  ASSERT_EQ(pb->n_mapping, 2);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  cct_free(t);
}

/* The stack of a context as "THREAD[100]/main/caller_b/0x3000"-like text, from the file alone: thread
 * name, then the physical function of each frame context, then "!T" when under [truncated]. */
static void stack_key(const Drcctprof__Profile__Profile *pb, uint64_t id, char *buf, size_t len)
{
  const char *parts[32];
  size_t n = 0;
  for (const Drcctprof__Profile__Context *c = find_context(pb, id); c->parent_id; c = find_context(pb, c->parent_id)) {
    ASSERT_TRUE(n < 32);
    parts[n++] = context_name(pb, c);
  }
  buf[0] = 0;
  while (n--) {
    strncat(buf, parts[n], len - strlen(buf) - 1);
    if (n)
      strncat(buf, "/", len - strlen(buf) - 1);
  }
}

TEST(samples_carry_exact_sums_in_both_fields)
{
  /* Expected sums per distinct stack, added up by hand from fake_events: 0x3000 and 0x3004 stay distinct
   * contexts here (the tree is per address); names shown are each frame context's physical function. */
  static const struct {
    const char *key;
    int64_t allocs, bytes;
  } want[] = {
    {"THREAD[100]/main/caller_b/leaf_alloc", 3, 48},   /* 0x3000 */
    {"THREAD[100]/main/caller_b/0x4000", 1, 100},
    {"THREAD[100]/main/caller_b", 1, 8},
    {"THREAD[100]/[truncated]/caller_b/leaf_alloc", 1, 4},
    {"THREAD[100]/main/caller_b/leaf_alloc", 2, 32},   /* 0x3004 */
    {"THREAD[200]/main/caller_b/leaf_alloc", 2, 32},
    {"THREAD[200]/main/0x5000 [libfoo.so.1]/core::array<[u8; 4]>", 5, 500},
  };
  size_t nwant = sizeof want / sizeof *want;
  int matched[16] = {0};
  struct cct *t = fake_tree();
  Drcctprof__Profile__Profile *pb = write_and_decode(t, NULL);

  ASSERT_EQ(pb->n_metric_type, 2);
  ASSERT_STR_EQ(str(pb, pb->metric_type[0]->des), "allocs");
  ASSERT_STR_EQ(str(pb, pb->metric_type[0]->unit), "count");
  ASSERT_STR_EQ(str(pb, pb->metric_type[1]->des), "bytes");
  ASSERT_STR_EQ(str(pb, pb->metric_type[1]->unit), "bytes");
  /* nwant stacks plus the bytes-only one at 0x7000 */
  ASSERT_EQ(pb->n_sample, nwant + 1);
  for (size_t i = 0; i < pb->n_sample; i++) {
    const Drcctprof__Profile__Sample *s = pb->sample[i];
    for (size_t k = 0; k < i; k++)
      ASSERT_TRUE(pb->sample[k]->context_id != s->context_id);
    ASSERT_EQ(s->n_metric, 2);
    for (size_t m = 0; m < 2; m++)
      ASSERT_U64_EQ(s->metric[m]->uint_value, (uint64_t)s->metric[m]->int_value);
    char key[512];
    stack_key(pb, s->context_id, key, sizeof key);
    if (s->metric[0]->int_value == 0) {
      ASSERT_EQ(s->metric[1]->int_value, 7);
      continue;
    }
    size_t w = 0;
    /* two expected entries share a key (0x3000 and 0x3004): match the first unused one with equal values */
    for (; w < nwant; w++)
      if (!matched[w] && strcmp(want[w].key, key) == 0 && want[w].allocs == s->metric[0]->int_value)
        break;
    if (w == nwant)
      TEST_FAIL("unexpected sample %s allocs=%lld", key, (long long)s->metric[0]->int_value);
    matched[w] = 1;
    ASSERT_EQ(s->metric[1]->int_value, want[w].bytes);
  }
  for (size_t w = 0; w < nwant; w++)
    ASSERT_TRUE(matched[w]);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  cct_free(t);
}

TEST(symbolizer_runs_once_per_distinct_pc)
{
  struct cct *t = fake_tree();
  fake_reset_calls();
  Drcctprof__Profile__Profile *pb = write_and_decode(t, NULL);
  static const uint64_t pcs[] = {0x1000, 0x2000, 0x3000, 0x3004, 0x4000, 0x5000, 0x6000, 0x7000};
  for (size_t i = 0; i < sizeof pcs / sizeof *pcs; i++)
    ASSERT_EQ(fake_calls(pcs[i]), 1);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  cct_free(t);
}

TEST(same_stack_10000_times_is_one_path_in_the_file)
{
  struct cct *t;
  uint64_t pcs[14];
  for (int i = 0; i < 14; i++)
    pcs[i] = 0x900000 + (uint64_t)i;
  ASSERT_EQ(cct_new(2, &t), 0);
  for (int i = 0; i < 10000; i++) {
    uint32_t leaf;
    ASSERT_EQ(cct_insert(t, 5, pcs, 14, &leaf), 0);
    ASSERT_EQ(cct_add(t, leaf, 0, 1), 0);
    ASSERT_EQ(cct_add(t, leaf, 1, 3), 0);
  }
  Drcctprof__Profile__Profile *pb = write_and_decode(t, NULL);
  ASSERT_EQ(pb->n_context, 16);
  ASSERT_EQ(pb->n_sample, 1);
  ASSERT_U64_EQ(pb->sample[0]->metric[0]->uint_value, 10000);
  ASSERT_U64_EQ(pb->sample[0]->metric[1]->uint_value, 30000);
  /* 14 unknown pcs, the process root and the thread root */
  ASSERT_EQ(pb->n_location, 16);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  cct_free(t);
}

TEST(write_is_atomic_and_leaves_no_temporary)
{
  struct cct *t = fake_tree();
  const char *path = fake_tmp_path("p.drcctprof");
  /* a directory in the way: the rename fails, and neither the file nor a temporary may remain */
  ASSERT_EQ(mkdir(path, 0700), 0);
  ASSERT_TRUE(profile_write_drcctprof(t, fake_metrics, 2, fake_symbolize, NULL, NULL, path) < 0);
  char dir[512];
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = 0;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
  ASSERT_EQ(system(cmd), 0);
  ASSERT_EQ(rmdir(path), 0);
  /* wrong metric count */
  ASSERT_TRUE(profile_write_drcctprof(t, fake_metrics, 1, NULL, NULL, NULL, path) < 0);
  ASSERT_EQ(profile_write_drcctprof(t, fake_metrics, 2, NULL, NULL, NULL, path), 0);
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0);
  ASSERT_TRUE(st.st_size > 0);
  cct_free(t);
}

/* A FIFO (like /dev/null or /dev/stdout, which the collector must never replace) is written in place: it is still
 * a FIFO afterwards, and the reader at its other end got the whole profile. */
TEST(device_or_fifo_is_written_in_place)
{
  struct cct *t = fake_tree();
  const char *fifo = fake_tmp_path("p.fifo");
  char copy[512];
  snprintf(copy, sizeof copy, "%s.copy", fifo);
  unlink(fifo);
  ASSERT_EQ(mkfifo(fifo, 0600), 0);
  pid_t reader = fork();
  ASSERT_TRUE(reader >= 0);
  if (reader == 0) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cat '%s' > '%s'", fifo, copy);
    _exit(system(cmd) == 0 ? 0 : 1);
  }
  ASSERT_EQ(profile_write_drcctprof(t, fake_metrics, 2, fake_symbolize, NULL, NULL, fifo), 0);
  int status;
  ASSERT_EQ(waitpid(reader, &status, 0), reader);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct stat st;
  ASSERT_EQ(stat(fifo, &st), 0);
  ASSERT_TRUE(S_ISFIFO(st.st_mode));
  size_t len;
  uint8_t *data = slurp(copy, &len);
  Drcctprof__Profile__Profile *pb = drcctprof__profile__profile__unpack(NULL, len, data);
  ASSERT_TRUE(pb != NULL);
  ASSERT_TRUE(pb->n_context > 0);
  drcctprof__profile__profile__free_unpacked(pb, NULL);
  free(data);
  unlink(copy);
  unlink(fifo);
  cct_free(t);
}
