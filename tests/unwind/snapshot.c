/* Reading recorded snapshots from the files record-snapshots.py writes. */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

static uint8_t *read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t cap = 65536, n = 0;
  uint8_t *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (nb == NULL) {
        free(buf);
        buf = NULL;
      }
      buf = nb;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

static int load_stop(const char *dir, int i, const struct arch_desc *arch, struct snap_stop *s)
{
  char path[4096], line[4096];
  memset(s, 0, sizeof *s);
  s->regs.arch = arch;
  snprintf(path, sizeof path, "%s/stop-%d.regs", dir, i);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -errno;
  while (fgets(line, sizeof line, f)) {
    char name[64];
    uint64_t v;
    if (sscanf(line, "%63s %" SCNx64, name, &v) != 2)
      continue;
    if (strcmp(name, "rip") == 0 || strcmp(name, "pc") == 0)
      s->regs.pc = v;
    int r = arch_reg_by_name(arch, name);
    if (r >= 0 && arch->regs[r].dwarf >= 0)
      col_regs_set(&s->regs, arch->regs[r].dwarf, v);
  }
  fclose(f);
  snprintf(path, sizeof path, "%s/stop-%d.sp", dir, i);
  f = fopen(path, "r");
  if (f == NULL || fscanf(f, "%" SCNx64, &s->sp) != 1) {
    if (f)
      fclose(f);
    return RS_E_FORMAT;
  }
  fclose(f);
  snprintf(path, sizeof path, "%s/stop-%d.stack", dir, i);
  s->stack = read_file(path, &s->len);
  if (s->stack == NULL)
    return RS_E_FORMAT;
  snprintf(path, sizeof path, "%s/stop-%d.bt", dir, i);
  f = fopen(path, "r");
  if (f == NULL)
    return -errno;
  s->bt = calloc(256, sizeof *s->bt);
  while (s->bt && s->nbt < 256 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *fn = strtok(line, "\t"), *file = strtok(NULL, "\t"), *ln = strtok(NULL, "\t");
    if (fn == NULL || file == NULL || ln == NULL)
      continue;
    struct snap_frame *fr = &s->bt[s->nbt++];
    fr->function = strdup(fn);
    fr->file = strcmp(file, "-") ? strdup(file) : NULL;
    fr->line = atoi(ln);
  }
  fclose(f);
  return 0;
}

int snap_set_load(const char *dir, struct snap_set *set)
{
  char path[4096], line[4096];
  memset(set, 0, sizeof *set);
  int rc = col_modmap_new(&set->map);
  if (rc)
    return rc;
  snprintf(path, sizeof path, "%s/modules.txt", dir);
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -errno;
  }
  while (fgets(line, sizeof line, f) && set->nmods < 64) {
    uint64_t start;
    char mpath[4096];
    if (sscanf(line, "%" SCNx64 " %4095s", &start, mpath) != 2)
      continue;
    struct col_module *m;
    if (col_module_open(mpath, NULL, NULL, &m) != 0)
      continue;  /* not an ELF file we can read (e.g. a data file mapped by the program) */
    uint64_t lo, hi;
    col_module_vaddr_range(m, &lo, &hi);
    uint64_t bias = start - (lo & ~(uint64_t)0xfff);
    if (col_modmap_add(set->map, m, bias) != 0) {
      col_module_close(m);
      continue;
    }
    set->mods[set->nmods] = m;
    set->bias[set->nmods++] = bias;
  }
  fclose(f);
  if (set->nmods == 0)
    return RS_E_NOT_FOUND;
  const struct arch_desc *arch = arch_by_elf_machine(col_module_machine(set->mods[0]));
  if (arch == NULL)
    return RS_E_UNSUPPORTED;
  snprintf(path, sizeof path, "%s/count", dir);
  f = fopen(path, "r");
  int count = 0;
  if (f == NULL || fscanf(f, "%d", &count) != 1 || count <= 0) {
    if (f)
      fclose(f);
    return RS_E_FORMAT;
  }
  fclose(f);
  set->stops = calloc((size_t)count, sizeof *set->stops);
  if (set->stops == NULL)
    return -ENOMEM;
  for (int i = 0; i < count; i++) {
    rc = load_stop(dir, i, arch, &set->stops[i]);
    if (rc != 0) {
      fprintf(stderr, "%s: stop %d: %s\n", dir, i, rs_strerror(rc));
      return rc;
    }
    set->nstops++;
  }
  return 0;
}

void snap_set_free(struct snap_set *set)
{
  for (int i = 0; i < set->nstops; i++) {
    struct snap_stop *s = &set->stops[i];
    for (int k = 0; k < s->nbt; k++) {
      free(s->bt[k].function);
      free(s->bt[k].file);
    }
    free(s->bt);
    free(s->stack);
  }
  free(set->stops);
  col_modmap_free(set->map);
  for (int i = 0; i < set->nmods; i++)
    col_module_close(set->mods[i]);
}
