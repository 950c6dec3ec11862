/* Shared by the libFuzzer harnesses in tests/fuzz (built by `make fuzz`, see
 * docs/fuzzing.md).
 *
 * The parsers read files by path, so each input is written to an in-memory file (memfd)
 * and handed over as /proc/self/fd/N: no disk traffic per execution.
 *
 * Allocation cap. libFuzzer reports any single allocation above its malloc limit (2 GB) as
 * a finding, and a crafted input may legitimately ask for more than that before the library
 * can refuse it (a cfg of a model with billions of parameters is a valid cfg). The harnesses
 * are linked with -Wl,--wrap for libnerve's allocator entry points (see the Makefile), and
 * the wrappers below fail any request above FUZZ_MAX_ALLOC bytes, or one that would take
 * the library's total above FUZZ_MAX_HELD, the way a real allocation failure would: the
 * library must then return NERVE_ERR_NOMEM cleanly, so the cap also exercises every
 * out-of-memory path the fuzzer reaches. */
#ifndef NERVE_FUZZ_COMMON_H
#define NERVE_FUZZ_COMMON_H

#include "nerve.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef FUZZ_MAX_ALLOC
#define FUZZ_MAX_ALLOC ((size_t)64 << 20)
#endif
#ifndef FUZZ_MAX_HELD
#define FUZZ_MAX_HELD ((size_t)384 << 20)
#endif

void *__real_nerve_xmalloc(size_t bytes);
void *__real_nerve_xcalloc(size_t n, size_t size);
void *__real_nerve_xrealloc(void *p, size_t bytes);
float *__real_nerve_xalloc_floats(size_t n);
void *__wrap_nerve_xmalloc(size_t bytes);
void *__wrap_nerve_xcalloc(size_t n, size_t size);
void *__wrap_nerve_xrealloc(void *p, size_t bytes);
float *__wrap_nerve_xalloc_floats(size_t n);

static inline int fuzz_alloc_refused(size_t bytes)
{
    if (bytes <= FUZZ_MAX_ALLOC && nerve_alloc_bytes() + bytes <= FUZZ_MAX_HELD)
        return 0;
    nerve_set_error(NERVE_ERR_NOMEM, "fuzz harness: allocation of %zu bytes refused", bytes);
    return 1;
}

void *__wrap_nerve_xmalloc(size_t bytes)
{
    return fuzz_alloc_refused(bytes) ? NULL : __real_nerve_xmalloc(bytes);
}

void *__wrap_nerve_xcalloc(size_t n, size_t size)
{
    if (size && n > FUZZ_MAX_ALLOC / size)
        return fuzz_alloc_refused(FUZZ_MAX_ALLOC + 1), NULL;
    return fuzz_alloc_refused(n * size) ? NULL : __real_nerve_xcalloc(n, size);
}

void *__wrap_nerve_xrealloc(void *p, size_t bytes)
{
    return fuzz_alloc_refused(bytes) ? NULL : __real_nerve_xrealloc(p, bytes);
}

float *__wrap_nerve_xalloc_floats(size_t n)
{
    if (n > FUZZ_MAX_ALLOC / sizeof(float))
        return fuzz_alloc_refused(FUZZ_MAX_ALLOC + 1), NULL;
    return fuzz_alloc_refused(n * sizeof(float)) ? NULL : __real_nerve_xalloc_floats(n);
}

/* An in-memory file holding the bytes of the current input. */
typedef struct fuzz_file {
    int fd;
    char path[64];
} fuzz_file;

static inline void fuzz_die(const char *what)
{
    perror(what);
    abort();
}

static inline void fuzz_file_open(fuzz_file *f, const char *name)
{
    f->fd = memfd_create(name, 0);
    if (f->fd < 0)
        fuzz_die("memfd_create");
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replaces the file's content with data[0..size). */
static inline void fuzz_file_set(fuzz_file *f, const void *data, size_t size)
{
    if (ftruncate(f->fd, 0) != 0)
        fuzz_die("ftruncate");
    const unsigned char *p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(f->fd, p + done, size - done, (off_t)done);
        if (n <= 0)
            fuzz_die("pwrite");
        done += (size_t)n;
    }
}

/* A NUL-terminated copy of the input (the caller frees). */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    if (!t)
        abort();
    memcpy(t, data, size);
    t[size] = '\0';
    return t;
}

/* Every library error must leave a message: a failure without one is a finding. */
static inline void fuzz_check_error(int status)
{
    if (status < 0 && nerve_last_error()[0] == '\0') {
        fprintf(stderr, "status %d without an error message\n", status);
        abort();
    }
}

#endif
