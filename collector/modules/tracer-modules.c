/* The registry of tracing modules. */
#include <stdio.h>
#include <string.h>

#include "tracer-modules.h"

static const struct tracer_module *const all_modules[] = {
    &tracer_memtrace, &tracer_memory, &tracer_mutex, &tracer_calls, &tracer_clone,
};

const struct tracer_module *tracer_find_module(const char *name)
{
  for (size_t i = 0; i < sizeof all_modules / sizeof all_modules[0]; i++)
    if (strcmp(all_modules[i]->name, name) == 0)
      return all_modules[i];
  return NULL;
}

void tracer_list_modules(FILE *out)
{
  for (size_t i = 0; i < sizeof all_modules / sizeof all_modules[0]; i++)
    fprintf(out, "  %-9s %s\n", all_modules[i]->name, all_modules[i]->help);
}
