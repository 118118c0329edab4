/* Heap accounting: which context allocated each live block, and the run's totals and peak. */
#include "heap.h"

#include <errno.h>
#include <string.h>

#include "summary.h"

int heap_init(struct heap *h, struct trace *tr)
{
  memset(h, 0, sizeof *h);
  u64map_init(&h->size_of);
  u64map_init(&h->node_of);
  u64map_init(&h->inherited);
  h->m_allocs = trace_add_ranked_metric(tr, "allocations", "count", "MOST CALLS TO ALLOCATION FUNCTIONS");
  h->m_bytes = trace_add_ranked_metric(tr, "bytes_allocated", "bytes", "MOST BYTES ALLOCATED");
  h->m_frees = trace_add_metric(tr, "frees", "count");
  h->m_bytes_freed = trace_add_metric(tr, "bytes_freed", "bytes");
  h->m_leaked = trace_add_ranked_metric(tr, "leaked_bytes", "bytes",
                                        "MOST BYTES LEAKED (still allocated at the end)");
  h->m_leaked_blocks = trace_add_metric(tr, "leaked_blocks", "count");
  return h->m_leaked_blocks < 0 ? h->m_leaked_blocks : 0;
}

void heap_destroy(struct heap *h)
{
  u64map_free(&h->size_of);
  u64map_free(&h->node_of);
  u64map_free(&h->inherited);
}

void heap_alloc(struct heap *h, struct trace *tr, uint32_t node, uint64_t ptr, uint64_t size)
{
  if (!ptr)
    return; /* a failed allocation allocates nothing */
  if (u64map_get(&h->size_of, ptr, NULL))
    heap_free(h, tr, ptr); /* its free escaped us (e.g. a nested allocator): retire the old block first */
  u64map_put(&h->size_of, ptr, size);
  u64map_put(&h->node_of, ptr, node);
  h->allocs++;
  h->bytes_allocated += size;
  h->live += size;
  if (h->live > h->peak) {
    h->peak = h->live;
    h->peak_ms = trace_elapsed_ms(tr);
  }
  trace_count(tr, node, h->m_allocs, 1);
  trace_count(tr, node, h->m_bytes, (int64_t)size);
}

void heap_forget(struct heap *h, struct trace *tr, uint64_t ptr)
{
  uint64_t size, node;
  if (!ptr || !u64map_del(&h->size_of, ptr, &size))
    return;
  u64map_del(&h->node_of, ptr, &node);
  h->allocs--;
  h->bytes_allocated -= size;
  h->live -= size;
  trace_count(tr, (uint32_t)node, h->m_allocs, -1);
  trace_count(tr, (uint32_t)node, h->m_bytes, -(int64_t)size);
}

void heap_free(struct heap *h, struct trace *tr, uint64_t ptr)
{
  uint64_t size, node;
  if (!ptr)
    return;
  if (!u64map_del(&h->size_of, ptr, &size)) {
    h->unknown_frees++;
    return;
  }
  u64map_del(&h->node_of, ptr, &node);
  h->frees++;
  h->bytes_freed += size;
  h->live -= size;
  trace_count(tr, (uint32_t)node, h->m_frees, 1);
  trace_count(tr, (uint32_t)node, h->m_bytes_freed, (int64_t)size);
}

int heap_block_size(const struct heap *h, uint64_t ptr, uint64_t *size)
{
  return ptr && u64map_get(&h->size_of, ptr, size);
}

void heap_finish(struct heap *h, struct trace *tr)
{
  size_t pos = 0;
  uint64_t ptr, size, node;
  while (u64map_next(&h->size_of, &pos, &ptr, &size)) {
    uint64_t inh;
    if (!u64map_get(&h->node_of, ptr, &node) || (u64map_get(&h->inherited, ptr, &inh) && inh == node))
      continue;
    trace_count(tr, (uint32_t)node, h->m_leaked, (int64_t)size);
    trace_count(tr, (uint32_t)node, h->m_leaked_blocks, 1);
    h->leaked_bytes += size;
    h->leaked_blocks++;
  }
}

void heap_summary_json(struct heap *h, struct json_out *j)
{
  json_key(j, "memory");
  json_begin_object(j);
  json_key(j, "allocs"), json_uint(j, h->allocs);
  json_key(j, "frees"), json_uint(j, h->frees);
  json_key(j, "bytes_allocated"), json_uint(j, h->bytes_allocated);
  json_key(j, "bytes_freed"), json_uint(j, h->bytes_freed);
  json_key(j, "leaked_bytes"), json_uint(j, h->leaked_bytes);
  json_key(j, "leaked_blocks"), json_uint(j, h->leaked_blocks);
  json_key(j, "peak_bytes"), json_uint(j, h->peak);
  json_key(j, "peak_ms"), json_double(j, h->peak_ms);
  json_key(j, "unknown_frees"), json_uint(j, h->unknown_frees);
  json_end_object(j);
}

void heap_summary_text(struct heap *h, FILE *out)
{
  fprintf(out, "allocations: %llu, frees: %llu\n", (unsigned long long)h->allocs, (unsigned long long)h->frees);
  fprintf(out, "bytes allocated: %llu, freed: %llu\n", (unsigned long long)h->bytes_allocated,
          (unsigned long long)h->bytes_freed);
  fprintf(out, "peak live: %llu bytes at %.1f ms\n", (unsigned long long)h->peak, h->peak_ms);
  fprintf(out, "leaked: %llu bytes in %llu blocks\n", (unsigned long long)h->leaked_bytes,
          (unsigned long long)h->leaked_blocks);
  if (h->unknown_frees)
    fprintf(out, "frees of blocks allocated before tracing: %llu\n", (unsigned long long)h->unknown_frees);
}

int heap_verdict(const struct heap *h, const struct col_options *o)
{
  /* One line per fired threshold, naming it and what was measured, so a failed pipeline says why. */
  int status = 0;
  if (o->fail_on_leak && h->leaked_bytes > 0) {
    fprintf(stderr, "rsprof-collector: --fail-on-leak: %llu bytes in %llu blocks still allocated at the end\n",
            (unsigned long long)h->leaked_bytes, (unsigned long long)h->leaked_blocks);
    status = COL_EXIT_LEAK;
  }
  if (o->max_peak && h->peak > o->max_peak) {
    fprintf(stderr, "rsprof-collector: --max-peak %llu exceeded: peak %llu bytes\n", (unsigned long long)o->max_peak,
            (unsigned long long)h->peak);
    if (!status)
      status = COL_EXIT_PEAK;
  }
  if (o->max_allocs && h->allocs > o->max_allocs) {
    fprintf(stderr, "rsprof-collector: --max-allocs %llu exceeded: %llu allocations\n",
            (unsigned long long)o->max_allocs, (unsigned long long)h->allocs);
    if (!status)
      status = COL_EXIT_ALLOCS;
  }
  return status;
}

int heap_fork(struct heap *child, const struct heap *parent, uint64_t inherited[4])
{
  size_t pos = 0;
  uint64_t k, v;
  while (u64map_next(&parent->size_of, &pos, &k, &v))
    if (u64map_put(&child->size_of, k, v) < 0)
      return -ENOMEM;
  pos = 0;
  while (u64map_next(&parent->node_of, &pos, &k, &v))
    if (u64map_put(&child->node_of, k, v) < 0 || u64map_put(&child->inherited, k, v) < 0)
      return -ENOMEM;
  child->live = parent->live;
  inherited[0] = parent->allocs;
  inherited[1] = parent->frees;
  inherited[2] = parent->bytes_allocated;
  inherited[3] = parent->bytes_freed;
  return 0;
}

void heap_absorb(struct heap *h, const struct heap *other)
{
  h->allocs += other->allocs;
  h->frees += other->frees;
  h->bytes_allocated += other->bytes_allocated;
  h->bytes_freed += other->bytes_freed;
  h->unknown_frees += other->unknown_frees;
  h->leaked_bytes += other->leaked_bytes;
  h->leaked_blocks += other->leaked_blocks;
  if (other->peak > h->peak) {
    h->peak = other->peak;
    h->peak_ms = other->peak_ms;
  }
}
