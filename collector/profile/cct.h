/* A calling-context tree over raw program counters: identical stack paths share nodes, metrics hang on nodes. */
#ifndef RSPROF_COL_CCT_H
#define RSPROF_COL_CCT_H

#include <stddef.h>
#include <stdint.h>

/* Node ids are dense and nonzero: 1 .. cct_count(t). A child is always created after its parent, so
 * every node's id is larger than its parent's (the order the drcctprof viewer requires). */
struct cct;

enum cct_kind {
  CCT_PROCESS = 1, /* a process root: CCT_ROOT, and one per more process image (cct_add_process_root) */
  CCT_THREAD,      /* one per thread id, child of the process root; cct_pc() gives the tid */
  CCT_FRAME,       /* a code address (return address or, for the leaf, the stop address) */
  CCT_TRUNCATED    /* marks a path whose unwinding stopped early; sits between the thread root and the path */
};

#define CCT_ROOT 1u

/* Flags for cct_insert_path(). */
#define CCT_PATH_TRUNCATED 1u

/* Creates an empty tree (just the process root) whose nodes carry nmetrics int64 metrics each.
 * Returns 0 or -ENOMEM; the caller frees *out with cct_free(). */
int cct_new(size_t nmetrics, struct cct **out);
void cct_free(struct cct *t);

/* Caps the number of nodes (default 1 << 28); inserts that would exceed it fail with RS_E_LIMIT. */
void cct_set_max_nodes(struct cct *t, uint32_t max_nodes);

/* Adds the path pcs[0..n) (innermost first, as unwound; stored outermost first) under the thread root of
 * tid and returns its leaf node in *leaf (the thread root itself when n == 0). Existing prefixes are
 * shared, so the same stack always yields the same leaf. Returns 0, -ENOMEM or RS_E_LIMIT; on failure
 * the nodes created so far stay in the tree (harmlessly, with zero metrics). */
int cct_insert(struct cct *t, uint32_t tid, const uint64_t *pcs, size_t n, uint32_t *leaf);
/* The same with flags: CCT_PATH_TRUNCATED places the path under a "[truncated]" node of the thread, so
 * incomplete stacks are never merged with complete ones that happen to share their outer frames. */
int cct_insert_path(struct cct *t, uint32_t tid, const uint64_t *pcs, size_t n, unsigned flags, uint32_t *leaf);
/* The same under process root root (CCT_ROOT or one from cct_add_process_root). */
int cct_insert_path_under(struct cct *t, uint32_t root, uint32_t tid, const uint64_t *pcs, size_t n, unsigned flags,
                          uint32_t *leaf);
/* Adds a root for another process image (a followed child, or a process after exec): a CCT_PROCESS node with
 * no parent whose cct_pc() is space (nonzero: the writer's profile_info names the image's process by it and
 * symbolizes its frames in it). Returns 0, -ENOMEM or RS_E_LIMIT. */
int cct_add_process_root(struct cct *t, uint64_t space, uint32_t *root);

/* Adds delta to a node's metric. Returns 0, or RS_E_BAD_ARG for an unknown node or metric index. */
int cct_add(struct cct *t, uint32_t node, size_t metric, int64_t delta);
/* A node's own (exclusive) metric value; 0 for an unknown node or metric. */
int64_t cct_get(const struct cct *t, uint32_t node, size_t metric);
/* Nonzero when any metric of the node is nonzero (such nodes become samples in a profile). */
int cct_has_metrics(const struct cct *t, uint32_t node);

/* Iteration. Node ids run from 1 to cct_count(t) inclusive; accessors return 0 for an invalid id. */
size_t cct_nmetrics(const struct cct *t);
uint32_t cct_count(const struct cct *t);
enum cct_kind cct_kind(const struct cct *t, uint32_t node);
uint32_t cct_parent(const struct cct *t, uint32_t node);  /* 0 for the process root */
uint64_t cct_pc(const struct cct *t, uint32_t node);      /* frame pc; tid for a thread root; else 0 */
uint32_t cct_tid(const struct cct *t, uint32_t node);     /* tid of the thread the node lies under */
uint32_t cct_depth(const struct cct *t, uint32_t node);   /* 0 for the process root, 1 for threads */
/* Children in creation order: for (c = cct_first_child(t, n); c; c = cct_next_sibling(t, c)). */
uint32_t cct_first_child(const struct cct *t, uint32_t node);
uint32_t cct_next_sibling(const struct cct *t, uint32_t node);

/* Copies the frame pcs from node up to its thread root into pcs (innermost first, at most max) and
 * returns how many frames the path has (which may exceed max). *truncated (if not NULL) is set to 1 when
 * the path lies under a "[truncated]" node. */
size_t cct_path(const struct cct *t, uint32_t node, uint64_t *pcs, size_t max, int *truncated);

/* Fills incl[0 .. cct_count(t)] (index = node id; incl[0] is set to 0) with each node's inclusive value of
 * metric: its own value plus all of its descendants'. The caller owns incl. */
void cct_inclusive(const struct cct *t, size_t metric, int64_t *incl);

#endif
