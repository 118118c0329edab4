/* The memtrace marker: an empty function whose calls survive any optimisation, for a breakpoint to catch. */
#include "rsprof_stub.h"

#if defined(__has_attribute)
#if __has_attribute(noipa)
#define RSPROF_NOIPA __attribute__((noipa))
#endif
#endif
#ifndef RSPROF_NOIPA
#define RSPROF_NOIPA
#endif

/* noipa keeps callers from assuming anything about the body (it would otherwise be seen as pure and
 * its calls dropped or its result folded), and the empty asm makes the arguments "used" in registers. */
__attribute__((noinline, used, visibility("default"))) RSPROF_NOIPA void *
__rsprof_memtrace_event(size_t event, size_t size, size_t align, void *ptr)
{
    __asm__ volatile("" : "+r"(ptr) : "r"(event), "r"(size), "r"(align) : "memory");
    return ptr;
}
