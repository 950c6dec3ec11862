/* Writing a data set of images as a folder tree, root/<class>/<index>.png|jpg: the image
 * folder that nerve_dataset_load_image_folder reads back (docs/data.md). Files are written
 * in parallel on the library's threads; values are clamped to [0, 1] and rounded to 8 bits,
 * so an IDX set loaded with input_scale 1/255 comes back bit for bit from PNG. */
#include "../core/core.h"
#include "../kernels/kernels.h"
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct export_job {
    const nerve_dataset *d;
    const char *root;
    char **dirs; /* per class: the folder's name */
    int jpeg, quality;
    int c, h, w;
    int *status; /* per sample: 0 ok, else failed */
} export_job;

static int class_of(const nerve_dataset *d, int i)
{
    float y = d->y[i];
    return y >= 0 && y < (float)d->n_classes ? (int)y : -1;
}

static int write_one(const export_job *j, int i, char *msg, size_t n)
{
    char path[4200];
    int k = class_of(j->d, i);
    snprintf(path, sizeof path, "%s/%s/%05d.%s", j->root, j->dirs[k], i, j->jpeg ? "jpg" : "png");
    const float *x = j->d->x + (size_t)i * j->d->sample_numel;
    int st = j->jpeg ? nerve_jpeg_write(path, j->w, j->h, j->c, x, j->quality)
                     : (j->c == 1 ? nerve_png_write_gray(path, j->w, j->h, x)
                                  : nerve_png_write_rgb(path, j->w, j->h, x));
    if (st && msg)
        snprintf(msg, n, "%s", nerve_last_error());
    return st;
}

static void write_range(void *ctx, size_t begin, size_t end)
{
    export_job *j = ctx;
    for (size_t i = begin; i < end; i++)
        j->status[i] = write_one(j, (int)i, NULL, 0);
}

/* A class name is a folder name: no '/', not empty, not "." or "..". */
static int check_dir_name(const char *s, int k)
{
    if (!s[0] || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
        return nerve_set_error(NERVE_ERR_ARG, "export: class %d's name '%s' cannot be a folder "
                               "name (no '/', not empty, not . or ..)", k, s);
    return NERVE_OK;
}

/* mkdir -p (data.h) */
int data_make_dir(const char *path)
{
    char buf[4200];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return nerve_set_error(NERVE_ERR_ARG, "export: path too long");
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return nerve_set_error(NERVE_ERR_IO, "%s: cannot create the folder: %s", buf,
                                       strerror(errno));
            *p = '/';
        }
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot create the folder: %s", path,
                               strerror(errno));
    return NERVE_OK;
}

int nerve_dataset_export_images(const nerve_dataset *d, const char *root, const char *format,
                                int quality, const char *const *names, int n_names)
{
    if (!d || !root || !format || !d->x || !d->y)
        return nerve_set_error(NERVE_ERR_ARG, "export: null argument");
    int jpeg = !strcmp(format, "jpg") || !strcmp(format, "jpeg");
    if (!jpeg && strcmp(format, "png"))
        return nerve_set_error(NERVE_ERR_ARG, "export: format '%s' (png or jpg)", format);
    if (jpeg && (quality < 1 || quality > 100))
        return nerve_set_error(NERVE_ERR_ARG, "export: JPEG quality %d outside 1..100", quality);
    int c, h, w;
    if (d->ndim == 2) {
        c = 1, h = d->dims[0], w = d->dims[1];
    } else if (d->ndim == 3 && (d->dims[0] == 1 || d->dims[0] == 3)) {
        c = d->dims[0], h = d->dims[1], w = d->dims[2];
    } else {
        char s[64];
        return nerve_set_error(NERVE_ERR_SHAPE, "export: samples of shape %s are not images "
                               "([H, W] or [C, H, W] with C 1 or 3)",
                               nerve_shape_str(d->ndim, d->dims, s, sizeof s));
    }
    if (d->n_classes < 1)
        return nerve_set_error(NERVE_ERR_ARG, "export: the data set has no labels (an image "
                               "folder has one subfolder per class)");
    if (!names && d->n_names) {
        names = (const char *const *)d->names;
        n_names = d->n_names;
    }
    if (names && n_names < d->n_classes)
        return nerve_set_error(NERVE_ERR_ARG, "export: %d class names for %d classes", n_names,
                               d->n_classes);
    for (int i = 0; i < d->n; i++)
        if (class_of(d, i) < 0)
            return nerve_set_error(NERVE_ERR_ARG, "export: sample %d has no class (label %g)", i,
                                   (double)d->y[i]);
    export_job j = {d, root, NULL, jpeg, quality, c, h, w, NULL};
    j.dirs = nerve_xcalloc((size_t)d->n_classes, sizeof *j.dirs);
    j.status = nerve_xcalloc((size_t)(d->n ? d->n : 1), sizeof *j.status);
    int st = j.dirs && j.status ? data_make_dir(root) : NERVE_ERR_NOMEM;
    char path[4200];
    for (int k = 0; st == NERVE_OK && k < d->n_classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        const char *name = names ? names[k] : num;
        if ((st = check_dir_name(name, k)) != NERVE_OK)
            break;
        for (int q = 0; q < k && st == NERVE_OK; q++)
            if (!strcmp(j.dirs[q], name))
                st = nerve_set_error(NERVE_ERR_ARG, "export: classes %d and %d are both named "
                                     "'%s'", q, k, name);
        if (st == NERVE_OK && !(j.dirs[k] = nerve_xstrdup(name)))
            st = NERVE_ERR_NOMEM;
        if (st == NERVE_OK && snprintf(path, sizeof path, "%s/%s", root, name) >= (int)sizeof path)
            st = nerve_set_error(NERVE_ERR_ARG, "export: path too long");
        if (st == NERVE_OK)
            st = data_make_dir(path);
    }
    if (st == NERVE_OK)
        kern_parallel_for((size_t)d->n, 64, write_range, &j);
    for (int i = 0; st == NERVE_OK && i < d->n; i++)
        if (j.status[i]) { /* again on this thread, for the message */
            char msg[600] = "";
            st = write_one(&j, i, msg, sizeof msg);
            st = nerve_set_error(st < 0 ? st : NERVE_ERR_IO, "%s", msg[0] ? msg : "export failed");
        }
    for (int k = 0; j.dirs && k < d->n_classes; k++)
        nerve_xfree(j.dirs[k]);
    nerve_xfree(j.dirs);
    nerve_xfree(j.status);
    return st;
}
