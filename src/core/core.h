/* Internal services of the core layer: the counted allocator and error helpers.
 * Every allocation in libnerve goes through nerve_xmalloc & co so that tests can prove a
 * compiled training step allocates nothing (nerve_alloc_count()). */
#ifndef NERVE_CORE_H
#define NERVE_CORE_H

#include "nerve.h"

#include <stddef.h>

void *nerve_xmalloc(size_t bytes);             /* NULL + error on failure */
void *nerve_xcalloc(size_t n, size_t size);    /* zeroed */
void *nerve_xrealloc(void *p, size_t bytes);
void nerve_xfree(void *p);
/* 64-byte aligned, zeroed; free with nerve_xfree_aligned. */
float *nerve_xalloc_floats(size_t n);
void nerve_xfree_aligned(void *p);
char *nerve_xstrdup(const char *s);

/* Same rank and dimensions. */
static inline int nerve_same_shape(int na, const int *a, int nb, const int *b)
{
    if (na != nb)
        return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

#define NERVE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
