/* Function lookup for tracing modules, on top of the module's symbol tables. */
#include "trace-funcs.h"

#include <string.h>

#include "module.h"

struct named_search {
  const char *name;
  size_t name_len;
  int rust_path;
  uint64_t *addrs;
  size_t n, max;
};

static void add_unique(struct named_search *s, uint64_t addr)
{
  for (size_t i = 0; i < s->n; i++)
    if (s->addrs[i] == addr)
      return;
  if (s->n < s->max)
    s->addrs[s->n++] = addr;
}

static int ends_with_path(const char *demangled, const char *name, size_t name_len)
{
  size_t len = strlen(demangled);
  return len > name_len + 2 && strcmp(demangled + len - name_len, name) == 0 &&
         demangled[len - name_len - 1] == ':' && demangled[len - name_len - 2] == ':';
}

static int match_named(void *ctx, const char *name, const char *demangled, uint64_t addr, uint64_t size)
{
  struct named_search *s = ctx;
  if (addr == 0)
    return 0; /* undefined (imported) symbols have no address of their own */
  if (strcmp(name, s->name) == 0 || (demangled && strcmp(demangled, s->name) == 0) ||
      (s->rust_path && demangled && ends_with_path(demangled, s->name, s->name_len)))
    add_unique(s, addr);
  return 0;
}

size_t trace_funcs_named(struct col_module *m, const char *name, int rust_path, uint64_t *addrs, size_t max)
{
  struct named_search s = {name, strlen(name), rust_path, addrs, 0, max};
  col_module_foreach_function(m, match_named, &s);
  return s.n;
}

struct regex_search {
  const regex_t *re;
  int (*fn)(void *ctx, const char *name, uint64_t addr);
  void *ctx;
  uint64_t seen[4096];
  size_t nseen;
};

static int match_regex(void *ctx, const char *name, const char *demangled, uint64_t addr, uint64_t size)
{
  struct regex_search *s = ctx;
  if (addr == 0)
    return 0;
  const char *text = demangled ? demangled : name;
  if (regexec(s->re, text, 0, NULL, 0) != 0 && (!demangled || regexec(s->re, name, 0, NULL, 0) != 0))
    return 0;
  for (size_t i = 0; i < s->nseen; i++)
    if (s->seen[i] == addr)
      return 0;
  if (s->nseen < sizeof s->seen / sizeof s->seen[0])
    s->seen[s->nseen++] = addr;
  return s->fn(s->ctx, text, addr);
}

int trace_funcs_matching(struct col_module *m, const regex_t *re,
                         int (*fn)(void *ctx, const char *name, uint64_t addr), void *ctx)
{
  static struct regex_search s; /* large; the collector is single-threaded */
  s.re = re;
  s.fn = fn;
  s.ctx = ctx;
  s.nseen = 0;
  return col_module_foreach_function(m, match_regex, &s);
}
