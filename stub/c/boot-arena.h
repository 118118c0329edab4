/* The bootstrap arena the preload shim and the recorder serve allocations from while dlsym resolves the real
 * allocator (dlsym itself may allocate): a static block, each allocation with its size in front, never freed. */
#ifndef RSPROF_BOOT_ARENA_H
#define RSPROF_BOOT_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARENA_SIZE (64 * 1024)
#define ARENA_ALIGN 16
static _Alignas(ARENA_ALIGN) unsigned char arena[ARENA_SIZE];
static size_t arena_used;

static inline int in_arena(const void *p)
{
  return (const unsigned char *)p >= arena && (const unsigned char *)p < arena + ARENA_SIZE;
}

static inline void *arena_alloc(size_t size, size_t align)
{
  if (align < ARENA_ALIGN)
    align = ARENA_ALIGN;
  if (size > ARENA_SIZE || align > ARENA_SIZE || (align & (align - 1)) != 0)
    return NULL;
  uintptr_t base = (uintptr_t)arena;
  size_t start = __atomic_load_n(&arena_used, __ATOMIC_RELAXED), p;
  for (;;) {
    p = (size_t)(((base + start + sizeof(size_t) + align - 1) & ~(uintptr_t)(align - 1)) - base);
    if (p + size > ARENA_SIZE)
      return NULL;
    if (__atomic_compare_exchange_n(&arena_used, &start, p + size, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      break;
  }
  memcpy(arena + p - sizeof(size_t), &size, sizeof(size_t));
  return arena + p;
}

static inline size_t arena_size_of(const void *p)
{
  size_t size;
  memcpy(&size, (const unsigned char *)p - sizeof(size_t), sizeof(size_t));
  return size;
}

#endif
