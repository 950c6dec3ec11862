/* Data sets of image files: a folder of class subfolders, or a list of paths. Every image
 * is decoded once, at load time, in parallel on the library's threads (each thread decodes
 * a fixed range of files into its own rows of x, so the result does not depend on the
 * thread count), so that training from images runs at the speed of training from IDX. */
#include "data.h"

#include "../kernels/kernels.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- growing lists of strings ---------------------------------------------------------- */

void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        nerve_xfree(l->s[i]);
    nerve_xfree(l->s);
    memset(l, 0, sizeof *l);
}

int strlist_add(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **p = nerve_xrealloc(l->s, (size_t)cap * sizeof *p);
        if (!p)
            return NERVE_ERR_NOMEM;
        l->s = p;
        l->cap = cap;
    }
    if (!(l->s[l->n] = nerve_xstrdup(s)))
        return NERVE_ERR_NOMEM;
    l->n++;
    return NERVE_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strlist_sort(strlist *l, int from)
{
    if (l->n - from > 1)
        qsort(l->s + from, (size_t)(l->n - from), sizeof *l->s, cmp_str);
}

int data_is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

int data_join(char *out, size_t size, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    int k = snprintf(out, size, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
    if (k < 0 || (size_t)k >= size)
        return nerve_set_error(NERVE_ERR_ARG, "%s/%s: path too long", dir, name);
    return NERVE_OK;
}

/* Entries of dir (not starting with '.'), sorted; *dirs gets subfolders, *files the image
 * files, *others the count of anything else. */
static int list_dir(const char *dir, strlist *dirs, strlist *files, int *others)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open the folder: %s", dir,
                               strerror(errno));
    int st = NERVE_OK, dirs_from = dirs ? dirs->n : 0, files_from = files->n;
    struct dirent *e;
    char path[4096];
    while (st == NERVE_OK && (e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if ((st = data_join(path, sizeof path, dir, e->d_name)) != NERVE_OK)
            break;
        struct stat sb;
        if (stat(path, &sb) != 0) {
            st = nerve_set_error(NERVE_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (S_ISDIR(sb.st_mode)) {
            if (dirs)
                st = strlist_add(dirs, e->d_name);
        } else if (data_is_image_name(e->d_name)) {
            st = strlist_add(files, path);
        } else if (others) {
            (*others)++;
        }
    }
    closedir(dp);
    if (dirs)
        strlist_sort(dirs, dirs_from);
    strlist_sort(files, files_from);
    return st;
}

/* ---- decoding every image into a data set ---------------------------------------------- */

typedef struct decode_job {
    const char *const *paths;
    const nerve_image_options *o;
    int c, h, w;
    float scale;
    float *x;
    signed char *status; /* per image: 0 ok, 1 decode error, 2 other size */
    int *size;           /* per image: h, w when status 2 */
} decode_job;

static int decode_one(const decode_job *j, size_t i, int *h, int *w)
{
    nerve_image im;
    int st = nerve_image_load(j->paths[i], j->c, &im);
    if (st)
        return st;
    *h = im.h;
    *w = im.w;
    float *dst = j->x + i * (size_t)j->c * j->h * j->w;
    if (im.h != j->h || im.w != j->w) {
        if (j->o->resize == NERVE_RESIZE_NONE) {
            nerve_image_free(&im);
            return 1;
        }
        st = nerve_image_resize(&im, j->h, j->w, j->o->resize, dst);
    } else {
        memcpy(dst, im.data, (size_t)j->c * j->h * j->w * sizeof(float));
    }
    nerve_image_free(&im);
    if (st == NERVE_OK && j->scale != 1.0f)
        for (size_t k = 0; k < (size_t)j->c * j->h * j->w; k++)
            dst[k] *= j->scale;
    return st;
}

static void decode_range(void *ctx, size_t begin, size_t end)
{
    decode_job *j = ctx;
    for (size_t i = begin; i < end; i++) {
        int h = 0, w = 0;
        int st = decode_one(j, i, &h, &w);
        j->status[i] = (signed char)(st < 0 ? 1 : st == 1 ? 2 : 0);
        j->size[2 * i] = h;
        j->size[2 * i + 1] = w;
    }
}

int data_decode_images(nerve_dataset *d, const char *const *paths, int n,
                       const nerve_image_options *opt)
{
    memset(d, 0, sizeof *d);
    if (n < 1)
        return nerve_set_error(NERVE_ERR_FORMAT, "no image files");
    nerve_image_options o = {0};
    if (opt)
        o = *opt;
    if (o.channels != 0 && o.channels != 1 && o.channels != 3)
        return nerve_set_error(NERVE_ERR_ARG, "images: channels must be 1 or 3, not %d", o.channels);
    if ((o.height > 0) != (o.width > 0) || o.height < 0 || o.width < 0)
        return nerve_set_error(NERVE_ERR_ARG, "images: give both height and width (or neither)");
    int c = o.channels, h = o.height, w = o.width;
    if (!c || !h) { /* learn what is missing from the first image */
        nerve_image first;
        DATA_TRY(nerve_image_load(paths[0], c, &first));
        c = first.c;
        if (!h) {
            h = first.h;
            w = first.w;
        }
        nerve_image_free(&first);
    }
    DATA_TRY(nerve_dataset_alloc(d, n, 3, (int[]){c, h, w}));
    decode_job j = {paths, &o, c, h, w, o.scale > 0 ? o.scale : 1.0f, d->x, NULL, NULL};
    j.status = nerve_xcalloc((size_t)n, 1);
    j.size = nerve_xcalloc((size_t)n * 2, sizeof(int));
    int st = j.status && j.size ? NERVE_OK : NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        kern_parallel_for((size_t)n, 16, decode_range, &j);
    for (int i = 0; st == NERVE_OK && i < n; i++) {
        if (j.status[i] == 1) { /* again on this thread, for the message */
            int hh, ww;
            st = decode_one(&j, (size_t)i, &hh, &ww);
            if (st >= 0)
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s: could not be decoded", paths[i]);
        } else if (j.status[i] == 2) {
            st = nerve_set_error(NERVE_ERR_SHAPE,
                                 "%s is %dx%d (width x height) but %s is %dx%d: the images differ in size; set "
                                 "resize=stretch, crop or pad (with the model's height and width) "
                                 "to bring them to one size",
                                 paths[i], j.size[2 * i + 1], j.size[2 * i],
                                 o.height ? "the model's input" : paths[0], w, h);
        }
    }
    nerve_xfree(j.status);
    nerve_xfree(j.size);
    if (st < 0)
        nerve_dataset_free(d);
    return st;
}

/* ---- the two loaders ------------------------------------------------------------------- */

int nerve_dataset_load_image_folder(nerve_dataset *d, const char *root,
                                    const nerve_image_options *o)
{
    if (!d || !root)
        return nerve_set_error(NERVE_ERR_ARG, "image folder: null argument");
    memset(d, 0, sizeof *d);
    strlist classes = {0}, loose = {0}, files = {0};
    int *labels = NULL, st = list_dir(root, &classes, &loose, NULL);
    if (st == NERVE_OK && loose.n)
        st = nerve_set_error(NERVE_ERR_FORMAT,
                             "%s: an image outside the class subfolders (an image folder holds "
                             "one subfolder of images per class)",
                             loose.s[0]);
    if (st == NERVE_OK && classes.n == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT,
                             "%s: no class subfolders (an image folder holds one subfolder of "
                             "images per class: %s/<class>/*.png|*.jpg)",
                             root, root);
    char dir[4096];
    for (int k = 0; st == NERVE_OK && k < classes.n; k++) {
        int before = files.n;
        st = data_join(dir, sizeof dir, root, classes.s[k]);
        if (st == NERVE_OK)
            st = list_dir(dir, NULL, &files, NULL);
        if (st == NERVE_OK && files.n == before)
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: no .png, .jpg or .jpeg files in this class "
                                 "folder", dir);
        if (st == NERVE_OK) {
            int *l = nerve_xrealloc(labels, (size_t)files.n * sizeof *l);
            if (!l)
                st = NERVE_ERR_NOMEM;
            else
                for (labels = l; before < files.n; before++)
                    labels[before] = k;
        }
    }
    if (st == NERVE_OK)
        st = data_decode_images(d, (const char *const *)files.s, files.n, o);
    if (st == NERVE_OK) {
        for (int i = 0; i < d->n; i++)
            d->y[i] = (float)labels[i];
        d->n_classes = classes.n;
        st = nerve_dataset_set_names(d, classes.n, (const char *const *)classes.s);
        if (st < 0)
            nerve_dataset_free(d);
    }
    nerve_xfree(labels);
    strlist_free(&classes);
    strlist_free(&loose);
    strlist_free(&files);
    return st;
}

int nerve_dataset_load_images(nerve_dataset *d, const char *const *paths, int n,
                              const nerve_image_options *o)
{
    if (!d || (n > 0 && !paths) || n < 0)
        return nerve_set_error(NERVE_ERR_ARG, "load images: bad arguments");
    memset(d, 0, sizeof *d);
    strlist files = {0};
    int st = NERVE_OK;
    for (int i = 0; st == NERVE_OK && i < n; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0)
            st = nerve_set_error(NERVE_ERR_IO, "%s: %s", paths[i], strerror(errno));
        else if (S_ISDIR(sb.st_mode)) {
            int before = files.n;
            st = list_dir(paths[i], NULL, &files, NULL);
            if (st == NERVE_OK && files.n == before)
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s: no .png, .jpg or .jpeg files in this "
                                     "folder", paths[i]);
        } else
            st = strlist_add(&files, paths[i]);
    }
    if (st == NERVE_OK)
        st = data_decode_images(d, (const char *const *)files.s, files.n, o);
    strlist_free(&files);
    return st;
}
