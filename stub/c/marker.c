/* The memtrace marker: an empty function whose calls survive any optimisation, for a breakpoint to catch. */
#include "rsprof_stub.h"

#include <stdint.h>

#if defined(__has_attribute)
#if __has_attribute(noipa)
#define RSPROF_NOIPA __attribute__((noipa))
#endif
#endif
#ifndef RSPROF_NOIPA
#define RSPROF_NOIPA
#endif

/* Where the marker hands its calls while rsprof's in-process recorder runs in the program: 0, or the recorder's
 * rsprof_recorder_marker(event, size, align, ptr, marker). Only the tracer writes it (--capture inprocess). */
__attribute__((used, visibility("default"))) volatile uintptr_t __rsprof_memtrace_hook;

typedef void *(*rsprof_marker_hook)(size_t event, size_t size, size_t align, void *ptr, void *marker);

/* noipa keeps callers from assuming anything about the body (it would otherwise be seen as pure and
 * its calls dropped or its result folded), and the empty asm makes the arguments "used" in registers. */
__attribute__((noinline, used, visibility("default"))) RSPROF_NOIPA void *
__rsprof_memtrace_event(size_t event, size_t size, size_t align, void *ptr)
{
    uintptr_t hook = __rsprof_memtrace_hook;
    if (hook) {
        void *r = ((rsprof_marker_hook)hook)(event, size, align, ptr, (void *)(uintptr_t)__rsprof_memtrace_event);
        __asm__ volatile("" : "+r"(r) : : "memory"); /* never a tail call: the marker's frame stays */
        return r;
    }
    __asm__ volatile("" : "+r"(ptr) : "r"(event), "r"(size), "r"(align) : "memory");
    return ptr;
}
