/* rsprof-collector: command-line entry point. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "version.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: rsprof-collector --connect HOST:PORT [options]\n"
          "  -h, --help      show this help\n"
          "  -V, --version   print the version\n");
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {0},
  };
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
    switch (c) {
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("rsprof-collector %s\n", RSPROF_VERSION);
      return 0;
    case ':':
      return cli_option_error("rsprof-collector", argv, optind, optopt, 1);
    default:
      return cli_option_error("rsprof-collector", argv, optind, optopt, 0);
    }
  }
  usage(stderr);
  return 2;
}
