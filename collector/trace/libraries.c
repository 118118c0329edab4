/* The target's ELF modules in the session: local copies, the address map, the tracing modules' set-up per
 * module, and the dynamic linker's library changes. */
#include "libraries.h"

#include <stdlib.h>
#include <string.h>

#include "binfind.h"
#include "elf-entry.h"
#include "errors.h"
#include "log.h"
#include "modmap.h"
#include "module.h"
#include "table-upload.h"
#include "target.h"

int trace_find_function(struct col_module *m, const char *name, uint64_t *addr)
{
  uint64_t size;
  return col_module_find_symbol(m, name, addr, &size);
}

static int load_one_module(struct trace *tr, const char *remote_path, uint64_t bias)
{
  for (size_t i = 0; i < tr->nloaded; i++)
    if (tr->loaded[i].bias == bias && strcmp(tr->loaded[i].remote, remote_path) == 0)
      return 0;
  const char *local = NULL, *how = NULL;
  int rc = binfind_locate(tr->bf, remote_path, &local, &how);
  if (rc) {
    LOG_WARN("no usable copy of %s: %s; its frames stay unsymbolized", remote_path, rs_strerror(rc));
    return rc;
  }
  LOG_INFO("module %s: using %s (%s), bias 0x%llx", remote_path, local, how, (unsigned long long)bias);
  struct col_module *m;
  rc = col_module_open(local, NULL, tr->opt->debug_dirs[0] ? tr->opt->debug_dirs : NULL, &m);
  if (rc) {
    LOG_WARN("cannot read %s: %s", local, rs_strerror(rc));
    return rc;
  }
  if (!col_module_has_debug_info(m) && col_module_has_symtab(m))
    LOG_INFO("%s has no debug info: function names come from its symbol table, without file:line", remote_path);
  else if (!col_module_has_debug_info(m))
    LOG_INFO("%s has no debug info and no symbol table: only its exported (.dynsym) functions have names, "
             "other frames are named module+offset (see --debug-dir)", remote_path);
  if (tr->nloaded == TRACE_MAX_MODULES) {
    col_module_close(m);
    return RS_E_LIMIT;
  }
  struct trace_loaded *l = &tr->loaded[tr->nloaded++];
  l->remote = strdup(remote_path);
  l->bias = bias;
  l->module = m;
  rc = col_modmap_add(tr->map, m, bias);
  if (rc)
    return rc;
  /* Before the module's code runs (the linker's hook stops before its constructors), so the agent can walk it. */
  rc = trace_tables_module(tr, m, bias, tr->nloaded == 1);
  if (rc)
    return rc;
  for (size_t k = 0; k < tr->nmods; k++) {
    if (!tr->mods[k].mod->module_loaded)
      continue;
    rc = tr->mods[k].mod->module_loaded(tr, tr->mods[k].state, m, bias);
    if (rc)
      LOG_WARN("module %s could not set up in %s: %s", tr->mods[k].mod->name, remote_path, rs_strerror(rc));
  }
  return 0;
}

static int load_target_modules(struct trace *tr)
{
  if (tr->target->exec_path)
    load_one_module(tr, tr->target->exec_path, tr->target->exec_bias);
  for (size_t i = 0; i < tr->target->nlibs; i++) {
    const struct target_lib *lib = &tr->target->libs[i];
    if (!lib->name || !lib->name[0] || strstr(lib->name, "linux-vdso") || strstr(lib->name, "linux-gate"))
      continue;
    if (tr->target->exec_path && strcmp(lib->name, tr->target->exec_path) == 0)
      continue;
    load_one_module(tr, lib->name, lib->l_addr);
  }
  return 0;
}

/* The dynamic linker calls r_brk after each change to its list: re-read it so dlopen'ed libraries are known. */
static int on_dl_event(struct trace *tr, const struct trace_hit *hit, void *data)
{
  int rc = target_refresh_libraries(tr->c, tr->target);
  if (rc) {
    LOG_WARN("cannot re-read the library list: %s", rs_strerror(rc));
    return 0;
  }
  return load_target_modules(tr);
}

static int watch_dynamic_linker(struct trace *tr)
{
  if (!tr->target->r_brk || tr->watching_r_brk)
    return 0;
  tr->watching_r_brk = 1;
  return trace_break(tr, tr->target->r_brk, on_dl_event, NULL);
}

/* At the program's entry point the dynamic linker has mapped every DT_NEEDED library and set up r_debug. */
static int on_entry(struct trace *tr, const struct trace_hit *hit, void *data)
{
  trace_unbreak(tr, hit->addr, on_entry, NULL);
  int rc = target_refresh_libraries(tr->c, tr->target);
  if (rc)
    LOG_WARN("cannot read the library list: %s", rs_strerror(rc));
  load_target_modules(tr);
  return watch_dynamic_linker(tr);
}

/* Before the dynamic linker has run, only the executable is known. The linker calls r_brk (_dl_debug_state)
 * twice while it starts a launched program: with r_state RT_ADD before it maps the DT_NEEDED libraries (the
 * list holds the linker alone), and with RT_CONSISTENT once every library is mapped and relocated and before
 * any constructor or preinit_array entry runs (glibc's init_complete probe sits right after it). Stopping
 * there, rather than at the executable's entry point, places each library's breakpoints before its own
 * constructors or libstdc++'s emergency pool allocate. The entry point remains for programs without a
 * dynamic linker whose r_brk we could find. */
int trace_libs_discover(struct trace *tr)
{
  load_target_modules(tr);
  if (tr->target->r_brk)
    return watch_dynamic_linker(tr);
  if (tr->nloaded == 0)
    return 0;
  uint64_t entry = 0;
  if (elf_entry_point(col_module_path(tr->loaded[0].module), &entry) == 0)
    return trace_break(tr, entry + tr->loaded[0].bias, on_entry, NULL);
  return 0;
}
