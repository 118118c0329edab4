/* The runner behind TEST(): runs the named test (or all of them in turn, for a quick manual run). */
#include <stdio.h>
#include <string.h>

#include "test.h"

#define MAX_TESTS 512

static struct {
  const char *name;
  test_fn fn;
} tests[MAX_TESTS];
static int ntests;

void test_register(const char *name, test_fn fn)
{
  if (ntests == MAX_TESTS) {
    fprintf(stderr, "too many tests in one binary\n");
    exit(1);
  }
  tests[ntests].name = name;
  tests[ntests].fn = fn;
  ntests++;
}

int main(int argc, char **argv)
{
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (int i = 0; i < ntests; i++)
      printf("%s\n", tests[i].name);
    return 0;
  }
  int ran = 0;
  for (int i = 0; i < ntests; i++) {
    if (argc >= 2 && strcmp(argv[1], tests[i].name) != 0)
      continue;
    tests[i].fn();
    printf("ok %s\n", tests[i].name);
    ran++;
  }
  if (ran == 0) {
    fprintf(stderr, "no test named %s\n", argc >= 2 ? argv[1] : "(any)");
    return 1;
  }
  return 0;
}
