/* The counted allocator. A small header in front of each block records its size so that
 * nerve_alloc_bytes() can report what is held. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static atomic_uint_fast64_t alloc_count;
static atomic_size_t alloc_bytes;

#define HEADER 16 /* keeps malloc's 16-byte alignment for the caller */

void *nerve_xmalloc(size_t bytes)
{
    unsigned char *p = malloc(bytes + HEADER);
    if (!p) {
        nerve_set_error(NERVE_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memcpy(p, &bytes, sizeof bytes);
    atomic_fetch_add(&alloc_count, 1);
    atomic_fetch_add(&alloc_bytes, bytes);
    return p + HEADER;
}

void *nerve_xcalloc(size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size) {
        nerve_set_error(NERVE_ERR_NOMEM, "allocation size overflow");
        return NULL;
    }
    void *p = nerve_xmalloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void nerve_xfree(void *p)
{
    if (!p)
        return;
    unsigned char *base = (unsigned char *)p - HEADER;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    atomic_fetch_sub(&alloc_bytes, bytes);
    free(base);
}

void *nerve_xrealloc(void *p, size_t bytes)
{
    if (!p)
        return nerve_xmalloc(bytes);
    unsigned char *base = (unsigned char *)p - HEADER;
    size_t old;
    memcpy(&old, base, sizeof old);
    unsigned char *q = realloc(base, bytes + HEADER);
    if (!q) {
        nerve_set_error(NERVE_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memcpy(q, &bytes, sizeof bytes);
    atomic_fetch_add(&alloc_count, 1);
    atomic_fetch_sub(&alloc_bytes, old);
    atomic_fetch_add(&alloc_bytes, bytes);
    return q + HEADER;
}

/* Float blocks carry a 64-byte header (the size, then how the block was obtained) so that
 * the data stays 64-byte aligned. Blocks of at least LAZY_BYTES come straight from mmap:
 * anonymous pages are zero already and cost no resident memory until touched, so a large
 * buffer that is never written (an input's gradient nobody asks for) stays free and
 * compiling a big graph does not sweep gigabytes with memset. */
#define FLOAT_HEADER 64
#define LAZY_BYTES ((size_t)1 << 20)
enum { BLOCK_HEAP, BLOCK_MAPPED };

static void *alloc_zeroed_block(size_t total, int *how)
{
    if (total >= LAZY_BYTES) {
        void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        *how = BLOCK_MAPPED;
        return p == MAP_FAILED ? NULL : p;
    }
    void *p = NULL;
    *how = BLOCK_HEAP;
    if (posix_memalign(&p, 64, total) != 0)
        return NULL;
    memset(p, 0, total);
    return p;
}

float *nerve_xalloc_floats(size_t n)
{
    if (n > ((size_t)-1 - 2 * FLOAT_HEADER) / sizeof(float)) {
        nerve_set_error(NERVE_ERR_NOMEM, "allocation size overflow (%zu floats)", n);
        return NULL;
    }
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    int how;
    char *p = alloc_zeroed_block(bytes + FLOAT_HEADER, &how);
    if (!p) {
        nerve_set_error(NERVE_ERR_NOMEM, "out of memory allocating %zu floats", n);
        return NULL;
    }
    memcpy(p, &bytes, sizeof bytes);
    memcpy(p + sizeof bytes, &how, sizeof how);
    atomic_fetch_add(&alloc_count, 1);
    atomic_fetch_add(&alloc_bytes, bytes);
    return (float *)(p + FLOAT_HEADER);
}

void nerve_xfree_aligned(void *p)
{
    if (!p)
        return;
    char *base = (char *)p - FLOAT_HEADER;
    size_t bytes;
    int how;
    memcpy(&bytes, base, sizeof bytes);
    memcpy(&how, base + sizeof bytes, sizeof how);
    atomic_fetch_sub(&alloc_bytes, bytes);
    if (how == BLOCK_MAPPED)
        munmap(base, bytes + FLOAT_HEADER);
    else
        free(base);
}

char *nerve_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = nerve_xmalloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

uint64_t nerve_alloc_count(void) { return atomic_load(&alloc_count); }
size_t nerve_alloc_bytes(void) { return atomic_load(&alloc_bytes); }
