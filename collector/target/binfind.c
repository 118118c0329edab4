/* Local copies of target files: checks every candidate's build-id against the target's (read through
 * vFile from the first pages of the remote file) and keeps downloads in a cache keyed by build-id. */
#include "binfind.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf-buildid.h"
#include "errors.h"
#include "log.h"
#include "rsp-client.h"

struct entry {
  char *remote;
  char *local;
  const char *how;
};

struct binfind {
  struct rspc *c;
  char *sysroot;
  char *cache_dir;
  int no_fetch;
  struct entry *entries;
  size_t nentries;
};

const char *binfind_cache_dir(const struct binfind *bf) { return bf->cache_dir; }

static char *default_cache_dir(void)
{
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  char path[PATH_MAX];
  if (xdg && *xdg)
    snprintf(path, sizeof path, "%s/rsprof", xdg);
  else if (home && *home)
    snprintf(path, sizeof path, "%s/.cache/rsprof", home);
  else
    snprintf(path, sizeof path, "/tmp/rsprof-cache-%ld", (long)getuid());
  return strdup(path);
}

int binfind_new(struct rspc *c, const struct binfind_options *o, struct binfind **out)
{
  *out = NULL;
  struct binfind *bf = calloc(1, sizeof *bf);
  if (!bf)
    return -ENOMEM;
  bf->c = c;
  bf->no_fetch = o ? o->no_fetch : 0;
  bf->sysroot = o && o->sysroot ? strdup(o->sysroot) : NULL;
  bf->cache_dir = o && o->cache_dir ? strdup(o->cache_dir) : default_cache_dir();
  if ((o && o->sysroot && !bf->sysroot) || !bf->cache_dir) {
    binfind_free(bf);
    return -ENOMEM;
  }
  *out = bf;
  return 0;
}

void binfind_free(struct binfind *bf)
{
  if (!bf)
    return;
  for (size_t i = 0; i < bf->nentries; i++) {
    free(bf->entries[i].remote);
    free(bf->entries[i].local);
  }
  free(bf->entries);
  free(bf->sysroot);
  free(bf->cache_dir);
  free(bf);
}

struct remote_ctx {
  struct rspc *c;
  int fd;
};

static int remote_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *got)
{
  struct remote_ctx *r = ctx;
  return rspc_vfile_pread(r->c, r->fd, off, buf, len, got);
}

int binfind_remote_build_id(struct binfind *bf, const char *remote_path, uint8_t *id, size_t max, size_t *len)
{
  if (!bf->c || !rspc_features(bf->c)->vfile)
    return RS_E_UNSUPPORTED;
  struct remote_ctx r = {bf->c, -1};
  int rc = rspc_vfile_open(bf->c, remote_path, &r.fd);
  if (rc)
    return rc == -ENOENT ? RS_E_NOT_FOUND : rc;
  rc = elf_build_id_read(remote_read, &r, id, max, len);
  int crc = rspc_vfile_close(bf->c, r.fd);
  return rc ? rc : crc;
}

/* mkdir -p. */
static int make_dirs(const char *path)
{
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
    return -ENAMETOOLONG;
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static int remember(struct binfind *bf, const char *remote, const char *local, const char *how, const char **out)
{
  struct entry *n = realloc(bf->entries, (bf->nentries + 1) * sizeof *n);
  if (!n)
    return -ENOMEM;
  bf->entries = n;
  struct entry *e = &bf->entries[bf->nentries];
  e->remote = strdup(remote);
  e->local = strdup(local);
  e->how = how;
  if (!e->remote || !e->local) {
    free(e->remote);
    free(e->local);
    return -ENOMEM;
  }
  bf->nentries++;
  *out = e->local;
  return 0;
}

/* Checks a local candidate. Returns 1 when usable, 0 when absent, -1 when its build-id differs (reported). */
static int check_candidate(const char *path, const uint8_t *rid, size_t rlen, int have_rid, const char *what)
{
  if (access(path, R_OK) != 0)
    return 0;
  if (!have_rid)
    return 1; /* nothing to compare with: the caller has said why */
  uint8_t lid[ELF_BUILD_ID_MAX];
  size_t llen = 0;
  int rc = elf_build_id_file(path, lid, sizeof lid, &llen);
  char rhex[2 * ELF_BUILD_ID_MAX + 1], lhex[2 * ELF_BUILD_ID_MAX + 1];
  elf_build_id_hex(rid, rlen > ELF_BUILD_ID_MAX ? ELF_BUILD_ID_MAX : rlen, rhex);
  if (rc == 0 && llen == rlen && memcmp(lid, rid, rlen) == 0)
    return 1;
  if (rc == 0)
    elf_build_id_hex(lid, llen > ELF_BUILD_ID_MAX ? ELF_BUILD_ID_MAX : llen, lhex);
  else
    snprintf(lhex, sizeof lhex, "(%s)", rs_strerror(rc));
  LOG_WARN("binfind: not using %s copy %s: its build-id %s differs from the target's %s", what, path, lhex, rhex);
  return -1;
}

int binfind_locate(struct binfind *bf, const char *remote_path, const char **local, const char **how)
{
  *local = NULL;
  *how = NULL;
  for (size_t i = 0; i < bf->nentries; i++)
    if (strcmp(bf->entries[i].remote, remote_path) == 0) {
      *local = bf->entries[i].local;
      *how = bf->entries[i].how;
      return 0;
    }

  uint8_t rid[ELF_BUILD_ID_MAX];
  size_t rlen = 0;
  int rrc = binfind_remote_build_id(bf, remote_path, rid, sizeof rid, &rlen);
  int have_rid = rrc == 0;
  if (rlen > sizeof rid)
    have_rid = 0; /* longer than any real build-id: do not trust a truncated comparison */
  if (rrc && rrc != RS_E_UNSUPPORTED)
    LOG_DEBUG("binfind: no build-id for the target's %s: %s", remote_path, rs_strerror(rrc));
  int mismatch = 0;
  char path[PATH_MAX];

  if (bf->sysroot) {
    if (snprintf(path, sizeof path, "%s%s%s", bf->sysroot, remote_path[0] == '/' ? "" : "/", remote_path) <
        (int)sizeof path) {
      int k = check_candidate(path, rid, rlen, have_rid, "sysroot");
      if (k > 0) {
        if (!have_rid)
          LOG_INFO("binfind: using %s without a build-id check (%s)", path, rs_strerror(rrc));
        *how = "sysroot";
        return remember(bf, remote_path, path, *how, local);
      }
      mismatch |= k < 0;
    }
  } else {
    int k = check_candidate(remote_path, rid, rlen, have_rid, "host");
    if (k > 0) {
      if (!have_rid)
        LOG_INFO("binfind: using the host's %s without a build-id check (%s)", remote_path, rs_strerror(rrc));
      *how = "host";
      LOG_DEBUG("binfind: %s: the host's copy matches", remote_path);
      return remember(bf, remote_path, remote_path, *how, local);
    }
    mismatch |= k < 0;
  }

  if (!have_rid) {
    /* Without a build-id the cache cannot tell versions apart, and there is nothing safe to fetch into. */
    return mismatch ? RS_E_BUILD_ID_MISMATCH : RS_E_NOT_FOUND;
  }
  char idhex[2 * ELF_BUILD_ID_MAX + 1];
  elf_build_id_hex(rid, rlen, idhex);
  const char *base = strrchr(remote_path, '/');
  base = base ? base + 1 : remote_path;
  if (!*base)
    base = "file";
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s/%.2s/%s", bf->cache_dir, idhex, idhex + 2) >= (int)sizeof dir ||
      snprintf(path, sizeof path, "%s/%s", dir, base) >= (int)sizeof path)
    return -ENAMETOOLONG;
  int k = check_candidate(path, rid, rlen, 1, "cached");
  if (k > 0) {
    LOG_INFO("binfind: %s: using the cached copy %s", remote_path, path);
    *how = "cache";
    return remember(bf, remote_path, path, *how, local);
  }
  if (bf->no_fetch || !bf->c) {
    if (mismatch)
      LOG_ERR("binfind: no usable copy of the target's %s (build-id %s) and downloads are off", remote_path, idhex);
    return mismatch ? RS_E_BUILD_ID_MISMATCH : RS_E_NOT_FOUND;
  }
  int rc = make_dirs(dir);
  if (rc) {
    LOG_WARN("binfind: cannot create the cache directory %s: %s", dir, strerror(-rc));
    return mismatch ? RS_E_BUILD_ID_MISMATCH : RS_E_NOT_FOUND;
  }
  rc = rspc_vfile_fetch(bf->c, remote_path, path);
  if (rc == 0)
    k = check_candidate(path, rid, rlen, 1, "downloaded");
  if (rc || k <= 0) {
    /* A file replaced on the target between the two reads would land here: never keep it. */
    unlink(path);
    LOG_WARN("binfind: downloading the target's %s failed: %s", remote_path, rc ? rs_strerror(rc) : "build-id changed");
    return mismatch ? RS_E_BUILD_ID_MISMATCH : RS_E_NOT_FOUND;
  }
  LOG_INFO("binfind: %s: fetched from the target into %s", remote_path, path);
  *how = "fetched";
  return remember(bf, remote_path, path, *how, local);
}
