/* Test driver: "profile-demo write FILE" writes the hand-built profile of fake.c; "profile-demo report ..."
 * runs the report subcommand, so a script can check the output with an independent parser. */
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "fake.h"
#include "report.h"

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "write") == 0) {
    struct cct *t = fake_tree();
    struct profile_info info = {.program = "./app", .pid = 77};
    int rc = profile_write_drcctprof(t, fake_metrics, 2, fake_symbolize, NULL, &info, argv[2]);
    cct_free(t);
    if (rc < 0) {
      fprintf(stderr, "profile-demo: %s\n", rs_strerror(rc));
      return 1;
    }
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "report") == 0)
    return report_main(argc - 1, argv + 1);
  fprintf(stderr, "usage: profile-demo write FILE | profile-demo report ARGS...\n");
  return 2;
}
