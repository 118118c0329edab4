/* The C side of rsprof's memtrace stub: the marker function the tracer breaks on, and its event codes. */
#ifndef RSPROF_STUB_H
#define RSPROF_STUB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A block was allocated; reported after the allocation, ptr is the block (NULL if it failed). */
#define RSPROF_EVENT_ALLOC 0
/* A block is about to be freed; reported before the free, ptr is the block. */
#define RSPROF_EVENT_DEALLOC 1

/*
 * The function rsprof's memtrace module sets its breakpoint on; it only returns ptr.
 * event is RSPROF_EVENT_*, size and align describe the block (0 when unknown, e.g. the size of a
 * C free() or the alignment of a plain malloc()). Same C ABI as the Rust crate rsprof-stub, so one
 * collector module serves both. Never inlined, never optimised away; linking the static library
 * also exports it in .dynsym so a stripped program can still be traced.
 */
void *__rsprof_memtrace_event(size_t event, size_t size, size_t align, void *ptr);

#ifdef __cplusplus
}
#endif

#endif
