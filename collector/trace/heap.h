/* Heap accounting shared by the memory and memtrace modules: live blocks, per-context metrics, totals, peak. */
#ifndef RSPROF_COL_HEAP_H
#define RSPROF_COL_HEAP_H

#include <stdint.h>
#include <stdio.h>

#include "trace.h"
#include "u64map.h"

struct heap {
  struct u64map size_of;   /* live pointer -> size */
  struct u64map node_of;   /* live pointer -> allocating context */
  int m_allocs, m_bytes, m_frees, m_bytes_freed, m_leaked, m_leaked_blocks; /* metric indexes */
  uint64_t allocs, frees, bytes_allocated, bytes_freed;
  uint64_t live, peak;
  double peak_ms;          /* when the peak was reached, ms after tracing started */
  uint64_t unknown_frees;  /* frees of blocks allocated before tracing began (or by untraced code) */
  uint64_t leaked_bytes, leaked_blocks;
  struct u64map inherited; /* a forked child's: blocks its parent allocated -> their context (heap_fork) */
};

/* Registers the memory metrics with the session and prepares the maps. */
int heap_init(struct heap *h, struct trace *tr);
void heap_destroy(struct heap *h);
/* Records a successful allocation of size bytes at ptr, made at context node. */
void heap_alloc(struct heap *h, struct trace *tr, uint32_t node, uint64_t ptr, uint64_t size);
/* Records a free; pointers not known to be live (NULL, or allocated before tracing) change nothing but a counter. */
void heap_free(struct heap *h, struct trace *tr, uint64_t ptr);
/* Takes back heap_alloc of a live block counted twice (its allocation and its bytes; no free is counted). */
void heap_forget(struct heap *h, struct trace *tr, uint64_t ptr);
/* Whether ptr is a live block we saw allocated; its size in *size. */
int heap_block_size(const struct heap *h, uint64_t ptr, uint64_t *size);
/* Attributes every block still live to its allocating context as leaked (a forked child's inherited blocks
 * are its parent's to leak, so they are left out). */
void heap_finish(struct heap *h, struct trace *tr);
void heap_summary_json(struct heap *h, struct json_out *j);
/* A forked child's heap: a copy of the parent's live blocks (its frees of them are known frees), with the
 * parent's totals at the fork kept in inherited[4] (allocs, frees, bytes allocated, bytes freed) as the
 * child's own allocator would count them. Returns 0 or -ENOMEM. */
int heap_fork(struct heap *child, const struct heap *parent, uint64_t inherited[4]);
/* Adds other's totals (its own events) to h, for the summaries' overall figures; the peak is the larger. */
void heap_absorb(struct heap *h, const struct heap *other);
void heap_summary_text(struct heap *h, FILE *out);
/* The exit status the first fired threshold asks for (leak, peak, allocations), or 0; prints one line on
 * stderr for each threshold that fired. */
int heap_verdict(const struct heap *h, const struct col_options *o);

#endif
