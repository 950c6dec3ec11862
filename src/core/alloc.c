/* The counted allocator. A small header in front of each block records its size so that
 * nerve_alloc_bytes() can report what is held. */
#include "core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

float *nerve_xalloc_floats(size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes + 64) != 0) {
        nerve_set_error(NERVE_ERR_NOMEM, "out of memory allocating %zu floats", n);
        return NULL;
    }
    memcpy(p, &bytes, sizeof bytes);
    memset((char *)p + 64, 0, bytes);
    atomic_fetch_add(&alloc_count, 1);
    atomic_fetch_add(&alloc_bytes, bytes);
    return (float *)((char *)p + 64);
}

void nerve_xfree_aligned(void *p)
{
    if (!p)
        return;
    char *base = (char *)p - 64;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    atomic_fetch_sub(&alloc_bytes, bytes);
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
