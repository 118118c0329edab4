/* Calling-context tree: nodes in one array (id = index), children found through one open-addressing hash
 * table keyed by (parent, kind, pc), so inserting a stack costs one probe per frame and no allocation once
 * the path exists. */
#include "cct.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

struct cct_node {
  uint64_t pc;
  uint32_t parent;
  uint32_t first_child, last_child, next_sibling;
  uint32_t tid;
  uint16_t depth; /* depth saturates at 65535; only display code uses it */
  uint8_t kind;
};

/* A hash slot repeats its node's key, so a lookup touches only the table until the key matches. */
struct cct_slot {
  uint64_t pc;
  uint32_t parent;
  uint32_t id;
};

struct cct {
  struct cct_node *nodes; /* nodes[0] is unused so that ids are nonzero */
  int64_t *metrics;       /* nmetrics per node, same indexing */
  uint32_t count, cap, max_nodes;
  size_t nmetrics;
  struct cct_slot *slots; /* id 0 = empty */
  uint32_t nslots;        /* power of two, kept at most half full */
};

static inline uint32_t hash_key(uint32_t parent, uint8_t kind, uint64_t pc, uint32_t mask)
{
  uint64_t h = pc ^ ((uint64_t)parent << 32 | (uint64_t)parent >> 3) ^ ((uint64_t)kind << 61);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 29;
  return (uint32_t)h & mask;
}

static int grow_slots(struct cct *t)
{
  uint32_t n = t->nslots ? t->nslots * 2 : 1024;
  struct cct_slot *s = calloc(n, sizeof *s);
  if (!s)
    return -ENOMEM;
  for (uint32_t id = 2; id <= t->count; id++) { /* the process root has no parent and is not hashed */
    const struct cct_node *nd = &t->nodes[id];
    uint32_t i = hash_key(nd->parent, nd->kind, nd->pc, n - 1);
    while (s[i].id)
      i = (i + 1) & (n - 1);
    s[i] = (struct cct_slot){nd->pc, nd->parent, id};
  }
  free(t->slots);
  t->slots = s;
  t->nslots = n;
  return 0;
}

static int grow_nodes(struct cct *t)
{
  uint32_t cap = t->cap ? t->cap * 2 : 1024;
  struct cct_node *n = realloc(t->nodes, (size_t)cap * sizeof *n);
  if (!n)
    return -ENOMEM;
  t->nodes = n;
  int64_t *m = realloc(t->metrics, (size_t)cap * (t->nmetrics ? t->nmetrics : 1) * sizeof *m);
  if (!m)
    return -ENOMEM;
  t->metrics = m;
  t->cap = cap;
  return 0;
}

/* Appends a node; the caller has checked that it does not exist yet. */
static int new_node(struct cct *t, uint32_t parent, uint8_t kind, uint64_t pc, uint32_t tid, uint32_t *id)
{
  if (t->count >= t->max_nodes)
    return RS_E_LIMIT;
  if (t->count + 1 >= t->cap) {
    int rc = grow_nodes(t);
    if (rc < 0)
      return rc;
  }
  if ((uint64_t)(t->count + 1) * 2 > t->nslots) {
    int rc = grow_slots(t);
    if (rc < 0)
      return rc;
  }
  uint32_t nid = ++t->count;
  struct cct_node *nd = &t->nodes[nid];
  nd->pc = pc;
  nd->parent = parent;
  nd->first_child = nd->last_child = nd->next_sibling = 0;
  nd->tid = tid;
  nd->kind = kind;
  nd->depth = 0;
  if (t->nmetrics)
    memset(&t->metrics[(size_t)nid * t->nmetrics], 0, t->nmetrics * sizeof *t->metrics);
  if (parent) {
    struct cct_node *p = &t->nodes[parent];
    nd->depth = p->depth == UINT16_MAX ? UINT16_MAX : (uint16_t)(p->depth + 1);
    if (p->last_child)
      t->nodes[p->last_child].next_sibling = nid;
    else
      p->first_child = nid;
    p->last_child = nid;
    uint32_t i = hash_key(parent, kind, pc, t->nslots - 1);
    while (t->slots[i].id)
      i = (i + 1) & (t->nslots - 1);
    t->slots[i] = (struct cct_slot){pc, parent, nid};
  }
  *id = nid;
  return 0;
}

/* Finds or creates the child (kind, pc) of parent. */
static inline int child(struct cct *t, uint32_t parent, uint8_t kind, uint64_t pc, uint32_t tid, uint32_t *id)
{
  uint32_t mask = t->nslots - 1;
  for (uint32_t i = hash_key(parent, kind, pc, mask);; i = (i + 1) & mask) {
    const struct cct_slot *sl = &t->slots[i];
    if (!sl->id)
      break;
    /* The kind only separates a "[truncated]" marker from a frame at pc 0, so it is checked last. */
    if (sl->pc == pc && sl->parent == parent && t->nodes[sl->id].kind == kind) {
      *id = sl->id;
      return 0;
    }
  }
  return new_node(t, parent, kind, pc, tid, id);
}

int cct_new(size_t nmetrics, struct cct **out)
{
  struct cct *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  t->nmetrics = nmetrics;
  t->max_nodes = 1u << 28;
  uint32_t root;
  int rc = grow_slots(t);
  if (rc == 0)
    rc = new_node(t, 0, CCT_PROCESS, 0, 0, &root);
  if (rc < 0) {
    cct_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

void cct_free(struct cct *t)
{
  if (!t)
    return;
  free(t->nodes);
  free(t->metrics);
  free(t->slots);
  free(t);
}

void cct_set_max_nodes(struct cct *t, uint32_t max_nodes)
{
  t->max_nodes = max_nodes ? max_nodes : 1;
}

int cct_insert_path(struct cct *t, uint32_t tid, const uint64_t *pcs, size_t n, unsigned flags, uint32_t *leaf)
{
  return cct_insert_path_under(t, CCT_ROOT, tid, pcs, n, flags, leaf);
}

int cct_add_process_root(struct cct *t, uint64_t space, uint32_t *root)
{
  return new_node(t, 0, CCT_PROCESS, space, 0, root);
}

int cct_insert_path_under(struct cct *t, uint32_t root, uint32_t tid, const uint64_t *pcs, size_t n, unsigned flags,
                          uint32_t *leaf)
{
  uint32_t node;
  int rc = child(t, root, CCT_THREAD, tid, tid, &node);
  if (rc == 0 && (flags & CCT_PATH_TRUNCATED))
    rc = child(t, node, CCT_TRUNCATED, 0, tid, &node);
  for (size_t i = n; rc == 0 && i-- > 0;)
    rc = child(t, node, CCT_FRAME, pcs[i], tid, &node);
  if (rc < 0)
    return rc;
  *leaf = node;
  return 0;
}

int cct_insert(struct cct *t, uint32_t tid, const uint64_t *pcs, size_t n, uint32_t *leaf)
{
  return cct_insert_path(t, tid, pcs, n, 0, leaf);
}

int cct_add(struct cct *t, uint32_t node, size_t metric, int64_t delta)
{
  if (node == 0 || node > t->count || metric >= t->nmetrics)
    return RS_E_BAD_ARG;
  /* Wrap instead of overflowing (undefined behaviour); no real run gets near 2^63. */
  int64_t *v = &t->metrics[(size_t)node * t->nmetrics + metric];
  *v = (int64_t)((uint64_t)*v + (uint64_t)delta);
  return 0;
}

int64_t cct_get(const struct cct *t, uint32_t node, size_t metric)
{
  if (node == 0 || node > t->count || metric >= t->nmetrics)
    return 0;
  return t->metrics[(size_t)node * t->nmetrics + metric];
}

int cct_has_metrics(const struct cct *t, uint32_t node)
{
  if (node == 0 || node > t->count)
    return 0;
  for (size_t m = 0; m < t->nmetrics; m++)
    if (t->metrics[(size_t)node * t->nmetrics + m])
      return 1;
  return 0;
}

size_t cct_nmetrics(const struct cct *t) { return t->nmetrics; }
uint32_t cct_count(const struct cct *t) { return t->count; }

#define NODE_FIELD(t, node, field) ((node) == 0 || (node) > (t)->count ? 0 : (t)->nodes[node].field)

enum cct_kind cct_kind(const struct cct *t, uint32_t node) { return (enum cct_kind)NODE_FIELD(t, node, kind); }
uint32_t cct_parent(const struct cct *t, uint32_t node) { return NODE_FIELD(t, node, parent); }
uint64_t cct_pc(const struct cct *t, uint32_t node) { return NODE_FIELD(t, node, pc); }
uint32_t cct_tid(const struct cct *t, uint32_t node) { return NODE_FIELD(t, node, tid); }
uint32_t cct_depth(const struct cct *t, uint32_t node) { return NODE_FIELD(t, node, depth); }
uint32_t cct_first_child(const struct cct *t, uint32_t node) { return NODE_FIELD(t, node, first_child); }
uint32_t cct_next_sibling(const struct cct *t, uint32_t node) { return NODE_FIELD(t, node, next_sibling); }

size_t cct_path(const struct cct *t, uint32_t node, uint64_t *pcs, size_t max, int *truncated)
{
  size_t n = 0;
  if (truncated)
    *truncated = 0;
  for (; node && node <= t->count; node = t->nodes[node].parent) {
    const struct cct_node *nd = &t->nodes[node];
    if (nd->kind == CCT_FRAME) {
      if (n < max)
        pcs[n] = nd->pc;
      n++;
    } else if (nd->kind == CCT_TRUNCATED && truncated) {
      *truncated = 1;
    }
  }
  return n;
}

void cct_inclusive(const struct cct *t, size_t metric, int64_t *incl)
{
  incl[0] = 0;
  for (uint32_t id = 1; id <= t->count; id++)
    incl[id] = cct_get(t, id, metric);
  /* Children have larger ids than their parents, so one backward pass folds every subtree upward. */
  for (uint32_t id = t->count; id > 1; id--)
    incl[t->nodes[id].parent] = (int64_t)((uint64_t)incl[t->nodes[id].parent] + (uint64_t)incl[id]);
}
