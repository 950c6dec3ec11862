/* The CIFAR binary format: records of 1 label byte + 3072 pixel bytes (CIFAR-10), or a
 * coarse and a fine label byte + 3072 pixel bytes (CIFAR-100); the pixels are 32x32 planes
 * of R, G and B (CHW already). The record size is found from the file size (a whole number
 * of 3073- or 3074-byte records) unless the caller says which; a file that is neither, or
 * whose labels are out of range, is an error saying what it looks like. */
#include "data.h"

#include <string.h>

#define PIXELS 3072

/* How plausible it is that buf holds records of `rec` bytes: the fraction of record starts
 * (among the whole records present) whose label bytes are in range. */
static double label_fit(const unsigned char *buf, size_t len, size_t rec)
{
    size_t n = len / rec, good = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = buf + i * rec;
        good += rec == PIXELS + 1 ? r[0] < 10 : (r[0] < 20 && r[1] < 100);
    }
    return n ? (double)good / (double)n : 0;
}

static int detect(const unsigned char *buf, size_t len, const char *name, int *kind)
{
    int ten = len % (PIXELS + 1) == 0, hundred = len % (PIXELS + 2) == 0;
    if (len == 0)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: empty file (CIFAR binary files hold "
                               "records of 3073 or 3074 bytes)", name);
    if (ten && hundred)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: %zu bytes are a whole number of both "
                               "CIFAR-10 (3073-byte) and CIFAR-100 (3074-byte) records; say "
                               "which (cifar_label=fine or coarse for CIFAR-100)", name, len);
    if (ten || hundred) {
        *kind = ten ? 10 : 100;
        return NERVE_OK;
    }
    double f10 = label_fit(buf, len, PIXELS + 1), f100 = label_fit(buf, len, PIXELS + 2);
    size_t rec = f100 > f10 ? PIXELS + 2 : PIXELS + 1;
    return nerve_set_error(NERVE_ERR_FORMAT,
                           "%s: %zu bytes are not a whole number of CIFAR records; it looks "
                           "like CIFAR-%d (labels in range at every %zu bytes) cut after %zu "
                           "records with %zu bytes over: a truncated or damaged file",
                           name, len, rec == PIXELS + 1 ? 10 : 100, rec, len / rec, len % rec);
}

/* Appends the records of one buffer to d (which has room from row `at`). */
static int fill(nerve_dataset *d, int at, const unsigned char *buf, size_t len, const char *name,
                int kind, int coarse, float scale)
{
    size_t rec = kind == 10 ? PIXELS + 1 : PIXELS + 2, n = len / rec;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = buf + i * rec;
        int label = kind == 10 ? r[0] : coarse ? r[0] : r[1];
        int limit = kind == 10 ? 10 : coarse ? 20 : 100;
        if (label >= limit)
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: record %zu (byte %zu): %s label %d is "
                                   "not 0..%d", name, i, i * rec,
                                   kind == 10 ? "the" : coarse ? "the coarse" : "the fine", label,
                                   limit - 1);
        if (kind == 100 && (r[0] >= 20 || r[1] >= 100))
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: record %zu (byte %zu): labels %d, %d "
                                   "are not a CIFAR-100 pair (coarse 0..19, fine 0..99)", name, i,
                                   i * rec, r[0], r[1]);
        d->y[at + (int)i] = (float)label;
        float *x = d->x + (size_t)(at + (int)i) * PIXELS;
        const unsigned char *p = r + rec - PIXELS;
        for (int k = 0; k < PIXELS; k++)
            x[k] = p[k] * scale;
    }
    return NERVE_OK;
}

static int check_kind(int kind, int coarse, const char *name)
{
    if (kind != 0 && kind != 10 && kind != 100)
        return nerve_set_error(NERVE_ERR_ARG, "cifar: kind %d (10, 100 or 0 to detect)", kind);
    if (coarse && kind == 10)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: CIFAR-10 records have no coarse label "
                               "(cifar_label=coarse is for CIFAR-100 files)", name);
    return NERVE_OK;
}

int nerve_dataset_parse_cifar(nerve_dataset *d, const void *buf, size_t len, const char *name,
                              int kind, int coarse, float scale)
{
    if (!d || (!buf && len))
        return nerve_set_error(NERVE_ERR_ARG, "cifar: null argument");
    memset(d, 0, sizeof *d);
    if (!name)
        name = "<cifar>";
    if (kind == 0)
        DATA_TRY(detect(buf, len, name, &kind));
    DATA_TRY(check_kind(kind, coarse, name));
    size_t rec = kind == 10 ? PIXELS + 1 : PIXELS + 2;
    if (len == 0 || len % rec)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: %zu bytes are not a whole number of "
                               "CIFAR-%d records of %zu bytes (%zu records, %zu bytes over)", name,
                               len, kind, rec, len / rec, len % rec);
    if (len / rec > (size_t)1 << 30)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: too many records", name);
    DATA_TRY(nerve_dataset_alloc(d, (int)(len / rec), 3, (int[]){3, 32, 32}));
    int st = fill(d, 0, buf, len, name, kind, coarse, scale);
    d->n_classes = kind == 10 ? 10 : coarse ? 20 : 100;
    if (st < 0)
        nerve_dataset_free(d);
    return st;
}

int nerve_dataset_load_cifar(nerve_dataset *d, const char *const *paths, int n, int kind,
                             int coarse, float scale)
{
    if (!d || !paths || n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "cifar: no files");
    memset(d, 0, sizeof *d);
    nerve_dataset *parts = nerve_xcalloc((size_t)n, sizeof *parts);
    if (!parts)
        return NERVE_ERR_NOMEM;
    int st = NERVE_OK, total = 0, kinds = kind;
    for (int i = 0; st == NERVE_OK && i < n; i++) {
        size_t len = 0;
        char *buf = data_read_file(paths[i], &len);
        if (!buf) {
            st = nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
            break;
        }
        st = nerve_dataset_parse_cifar(&parts[i], buf, len, paths[i], kinds, coarse, scale);
        nerve_xfree(buf);
        if (st == NERVE_OK && i > 0 && parts[i].n_classes != parts[0].n_classes)
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: a CIFAR file of %d classes after %s of %d",
                                 paths[i], parts[i].n_classes, paths[0], parts[0].n_classes);
        if (st == NERVE_OK) {
            kinds = parts[i].n_classes == 10 ? 10 : 100;
            if (parts[i].n > 0x7fffffff - total)
                st = nerve_set_error(NERVE_ERR_FORMAT, "cifar: too many records");
            else
                total += parts[i].n;
        }
    }
    if (st == NERVE_OK)
        st = nerve_dataset_alloc(d, total, 3, (int[]){3, 32, 32});
    for (int i = 0, at = 0; st == NERVE_OK && i < n; at += parts[i].n, i++) {
        memcpy(d->x + (size_t)at * PIXELS, parts[i].x, (size_t)parts[i].n * PIXELS * sizeof(float));
        memcpy(d->y + at, parts[i].y, (size_t)parts[i].n * sizeof(float));
        d->n_classes = parts[i].n_classes;
    }
    for (int i = 0; i < n; i++)
        nerve_dataset_free(&parts[i]);
    nerve_xfree(parts);
    if (st < 0)
        nerve_dataset_free(d);
    return st;
}
