/* Finds a local copy of a target file: the sysroot, the same path on the host when its build-id matches,
 * a cache keyed by build-id, or a download through vFile into that cache. */
#ifndef RSPROF_COL_BINFIND_H
#define RSPROF_COL_BINFIND_H

#include <stddef.h>
#include <stdint.h>

struct rspc;

struct binfind_options {
  const char *sysroot;   /* --sysroot DIR: the target's root as seen from the host; NULL: none */
  const char *cache_dir; /* NULL: $XDG_CACHE_HOME/rsprof, else ~/.cache/rsprof */
  int no_fetch;          /* never download through vFile */
};

struct binfind;

/* Creates a finder that talks to the target through c (borrowed; must outlive bf; may be NULL, then only
 * local files are used and build-ids cannot be checked). Returns 0 or -ENOMEM. */
int binfind_new(struct rspc *c, const struct binfind_options *o, struct binfind **out);
void binfind_free(struct binfind *bf);

/* Returns in *local (owned by bf, valid until binfind_free) a path to a file identical to the target's
 * remote_path, and in *how (static) where it came from: "sysroot", "host", "cache" or "fetched".
 * Order: with a sysroot, DIR/remote_path, and the host's own files are not considered (as gdb does);
 * without one, the same path on the host if its build-id matches the target's. Then the cache, then vFile.
 * A local file whose build-id differs from the target's is reported (LOG_WARN with both ids and the path)
 * and skipped. Results are remembered per path. Returns 0, RS_E_BUILD_ID_MISMATCH (only mismatching copies
 * and no download allowed or possible), or RS_E_NOT_FOUND. */
int binfind_locate(struct binfind *bf, const char *remote_path, const char **local, const char **how);

/* The target file's build-id as the finder read it through vFile (after binfind_locate or on its own).
 * Returns 0 with *len, RS_E_NOT_FOUND (the file has none), RS_E_UNSUPPORTED (no vFile), or an error. */
int binfind_remote_build_id(struct binfind *bf, const char *remote_path, uint8_t *id, size_t max, size_t *len);

/* The cache directory in use (borrowed). */
const char *binfind_cache_dir(const struct binfind *bf);

#endif
