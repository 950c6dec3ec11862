/* Internal helpers shared by the data loaders (src/data). */
#ifndef NERVE_DATA_DATA_H
#define NERVE_DATA_DATA_H

#include "../core/core.h"

#define DATA_TRY(expr)                  \
    do {                                \
        int data_try_st_ = (expr);      \
        if (data_try_st_ < 0)           \
            return data_try_st_;        \
    } while (0)

/* A whole file in memory, NUL-terminated (*len excludes the NUL); NULL + error if it
 * cannot be read. Free with nerve_xfree. */
char *data_read_file(const char *path, size_t *len);

/* A growing list of owned strings. */
typedef struct strlist {
    char **s;
    int n, cap;
} strlist;
int strlist_add(strlist *l, const char *s);
void strlist_sort(strlist *l, int from); /* sorts s[from..n) by strcmp */
void strlist_free(strlist *l);

/* Whether a file name ends in .png, .jpg or .jpeg (any case). */
int data_is_image_name(const char *name);
/* out = dir + "/" + name, or an error when it does not fit. */
int data_join(char *out, size_t size, const char *dir, const char *name);
/* mkdir -p: path and every missing folder above it; an error names the folder. */
int data_make_dir(const char *path);
/* Decodes paths[0..n) (in parallel) into a fresh data set of [c, h, w] samples, labels -1. */
int data_decode_images(nerve_dataset *d, const char *const *paths, int n,
                       const nerve_image_options *o);
/* A class mask PNG (grey or palette, at most 8 bits): one byte a pixel, its raw value, into
 * *out (free with nerve_xfree); anything else is an error naming the file. */
int data_decode_mask(const void *buf, size_t len, const char *name, int *h, int *w,
                     unsigned char **out);

#endif
