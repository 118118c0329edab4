/* LD_PRELOAD shim: wraps the libc malloc family and reports every block to the memtrace marker, so
 * unmodified C and C++ programs can be traced with the memtrace module. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rsprof_stub.h"

#define EXPORT __attribute__((visibility("default")))

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

/*
 * dlsym() itself may allocate (glibc's dlerror state uses calloc/malloc), which would re-enter our
 * wrappers before the real functions are known. Such allocations are served from this static arena
 * and never reported: they belong to the shim, not to the traced program. Each block carries its size
 * in front so realloc can copy it; free() of an arena block is a no-op.
 */
#include "boot-arena.h"

/* The thread resolving the real functions, 0 when none. A thread-local flag would be simpler, but a
 * TLS block in the shim would change the size of every thread's TLS vector, an allocation that the
 * traced program makes and the reference tools (valgrind) would then see differently. */
static long resolving_tid;

static long current_tid(void)
{
    return syscall(SYS_gettid);
}

/* Looks up one symbol in the libraries after this one. */
static void *next_sym(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Resolves every real function once; returns 0, or -1 while this thread is still resolving. Two threads
 * racing here store the same values, so atomic stores are enough; a second thread arriving while the
 * first resolves overwrites resolving_tid, which at worst makes the first resolve again. */
static int resolve(void)
{
    if (__atomic_load_n(&real_free, __ATOMIC_ACQUIRE))
        return 0;
    long self = current_tid();
    if (__atomic_load_n(&resolving_tid, __ATOMIC_RELAXED) == self)
        return -1;
    __atomic_store_n(&resolving_tid, self, __ATOMIC_RELAXED);
    void *m = next_sym("malloc"), *c = next_sym("calloc"), *r = next_sym("realloc");
    void *pm = next_sym("posix_memalign"), *aa = next_sym("aligned_alloc"), *ma = next_sym("memalign");
    void *f = next_sym("free");
    __atomic_store_n(&real_malloc, (void *(*)(size_t))m, __ATOMIC_RELAXED);
    __atomic_store_n(&real_calloc, (void *(*)(size_t, size_t))c, __ATOMIC_RELAXED);
    __atomic_store_n(&real_realloc, (void *(*)(void *, size_t))r, __ATOMIC_RELAXED);
    __atomic_store_n(&real_posix_memalign, (int (*)(void **, size_t, size_t))pm, __ATOMIC_RELAXED);
    __atomic_store_n(&real_aligned_alloc, (void *(*)(size_t, size_t))aa, __ATOMIC_RELAXED);
    __atomic_store_n(&real_memalign, (void *(*)(size_t, size_t))ma, __ATOMIC_RELAXED);
    /* free last: it is the "resolved" flag the fast path above tests. */
    __atomic_store_n(&real_free, (void (*)(void *))f, __ATOMIC_RELEASE);
    __atomic_store_n(&resolving_tid, 0, __ATOMIC_RELAXED);
    if (!m || !c || !r || !f || !pm || !aa || !ma)
        abort(); /* no libc malloc to forward to: nothing sensible is left to do */
    return 0;
}

__attribute__((constructor)) static void preload_init(void)
{
    resolve();
}

static void report_alloc(void *p, size_t size, size_t align)
{
    __rsprof_memtrace_event(RSPROF_EVENT_ALLOC, size, align, p);
}

static void report_free(void *p)
{
    __rsprof_memtrace_event(RSPROF_EVENT_DEALLOC, 0, 0, p);
}

EXPORT void *malloc(size_t size)
{
    if (resolve() < 0)
        return arena_alloc(size, ARENA_ALIGN);
    void *p = real_malloc(size);
    report_alloc(p, size, 0);
    return p;
}

EXPORT void *calloc(size_t n, size_t size)
{
    size_t total;
    if (resolve() < 0) {
        if (__builtin_mul_overflow(n, size, &total))
            return NULL;
        return arena_alloc(total, ARENA_ALIGN); /* static storage is already zero */
    }
    void *p = real_calloc(n, size);
    if (__builtin_mul_overflow(n, size, &total))
        total = 0;
    report_alloc(p, total, 0);
    return p;
}

EXPORT void free(void *p)
{
    if (!p || in_arena(p))
        return;
    if (resolve() < 0)
        return; /* cannot happen: only arena blocks exist before resolving finishes */
    report_free(p);
    real_free(p);
}

EXPORT void *realloc(void *old, size_t size)
{
    if (!old)
        return malloc(size);
    if (in_arena(old) || resolve() < 0) {
        void *p = malloc(size);
        if (p && in_arena(old)) {
            size_t n = arena_size_of(old);
            memcpy(p, old, n < size ? n : size);
        }
        return p;
    }
    /* Reported before the call: once realloc returns, another thread may be handed the old address. */
    size_t old_size = malloc_usable_size(old);
    report_free(old);
    void *p = real_realloc(old, size);
    if (p)
        report_alloc(p, size, 0);
    else if (size != 0)
        report_alloc(old, old_size, 0); /* failed: the old block is still there */
    return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (resolve() < 0) {
        void *p = arena_alloc(size, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    int rc = real_posix_memalign(out, align, size);
    report_alloc(rc == 0 ? *out : NULL, size, align);
    return rc;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
    if (resolve() < 0)
        return arena_alloc(size, align);
    void *p = real_aligned_alloc(align, size);
    report_alloc(p, size, align);
    return p;
}

EXPORT void *memalign(size_t align, size_t size)
{
    if (resolve() < 0)
        return arena_alloc(size, align);
    void *p = real_memalign(align, size);
    report_alloc(p, size, align);
    return p;
}
