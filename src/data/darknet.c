/* darknet-style detection data: a list file of image paths (one a line), a YOLO label file
 * beside each image ("class cx cy w h" a line, coordinates relative to the image, 0..1), and
 * the class names of a .names file. The label file of an image is found as darknet finds it
 * (the last "/images/" or "/JPEGImages/" of the path replaced by "/labels/", the extension by
 * ".txt"), else beside the image (the extension replaced by ".txt"); an image with neither is
 * an error naming both paths (an empty label file is an image without objects). */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int nerve_boxes_parse(const char *text, size_t len, const char *name, int n_classes,
                      nerve_box **out, int *count)
{
    if (!out || !count || (!text && len) || n_classes < 1)
        return nerve_set_error(NERVE_ERR_ARG, "boxes: bad arguments");
    *out = NULL;
    *count = 0;
    if (!name)
        name = "<labels>";
    nerve_box *b = NULL;
    int n = 0, cap = 0, line = 0, st = NERVE_OK;
    for (size_t pos = 0; pos < len && st == NERVE_OK;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t m = nl ? (size_t)(nl - s) : len - pos;
        pos += m + 1;
        line++;
        char buf[512];
        if (m >= sizeof buf) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: a line of %zu bytes", name, line, m);
            break;
        }
        memcpy(buf, s, m);
        buf[m] = '\0';
        if (memchr(buf, '\0', m)) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: a NUL byte", name, line);
            break;
        }
        double v[5];
        int k = 0;
        char *p = buf, *end;
        while (k < 6) {
            while (*p == ' ' || *p == '\t' || *p == '\r')
                p++;
            if (!*p)
                break;
            if (k == 5) {
                k = 6;
                break;
            }
            errno = 0;
            v[k] = strtod(p, &end);
            if (end == p || !isfinite(v[k]) || (*end && *end != ' ' && *end != '\t' && *end != '\r')) {
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: field %d is not a number", name,
                                     line, k + 1);
                break;
            }
            p = end;
            k++;
        }
        if (st)
            break;
        if (k == 0)
            continue; /* blank line */
        if (k != 5) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: expected 'class cx cy w h' (5 numbers), "
                                 "found %s", name, line, k > 5 ? "more" : "fewer");
            break;
        }
        if (!(v[0] >= 0 && v[0] < n_classes && v[0] == floor(v[0]))) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: class %g is not one of 0..%d (the "
                                 "names file has %d)", name, line, v[0], n_classes - 1, n_classes);
            break;
        }
        for (int j = 1; j < 5 && st == NERVE_OK; j++)
            if (!(v[j] >= 0 && v[j] <= 1) || (j >= 3 && (float)v[j] == 0.0f))
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: %s = %g is outside %s (YOLO "
                                     "coordinates are relative to the image)", name, line,
                                     (const char *[]){"", "cx", "cy", "w", "h"}[j], v[j],
                                     j >= 3 ? "(0, 1] (a float above zero)" : "[0, 1]");
        if (st)
            break;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            nerve_box *nb = nerve_xrealloc(b, (size_t)cap * sizeof *nb);
            if (!nb) {
                st = NERVE_ERR_NOMEM;
                break;
            }
            b = nb;
        }
        if (n == 1000000) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: more than a million boxes", name);
            break;
        }
        b[n++] = (nerve_box){(float)v[0], (float)v[1], (float)v[2], (float)v[3], (float)v[4]};
    }
    if (st < 0) {
        nerve_xfree(b);
        return st;
    }
    *out = b;
    *count = n;
    return NERVE_OK;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The file that goes with image `img`, found as darknet finds its label file: the last
 * "/images/" of the path replaced by "/<to[0]>/" (or the last "/JPEGImages/" by
 * "/<to[1]>/") and the extension by `ext`; else beside the image, the extension replaced by
 * `ext_beside`. `what` names the file in the error when there is neither. */
static int sibling_path(const char *img, const char *const to[2], const char *ext,
                        const char *ext_beside, const char *what, char *out, size_t size)
{
    char stem[4096], beside[4096], darknet[4096];
    snprintf(stem, sizeof stem, "%s", img);
    char *dot = strrchr(stem, '.'), *slash = strrchr(stem, '/');
    if (dot && (!slash || dot > slash))
        *dot = '\0';
    if (strlen(stem) + strlen(ext) + strlen(ext_beside) + 1 > sizeof stem)
        return nerve_set_error(NERVE_ERR_ARG, "%s: path too long", img);
    snprintf(beside, sizeof beside, "%s%s", stem, ext_beside);
    snprintf(darknet, sizeof darknet, "%s%s", stem, ext);
    static const char *dirs[] = {"/images/", "/JPEGImages/"};
    for (int i = 0; i < 2; i++) {
        char *hit = NULL, *p = darknet;
        while ((p = strstr(p, dirs[i])) != NULL)
            hit = p++;
        if (hit) {
            char sub[64];
            snprintf(sub, sizeof sub, "/%s/", to[i]);
            size_t tail = strlen(hit + strlen(dirs[i]));
            if ((size_t)(hit - darknet) + strlen(sub) + tail + 1 > sizeof darknet)
                return nerve_set_error(NERVE_ERR_ARG, "%s: path too long", img);
            memmove(hit + strlen(sub), hit + strlen(dirs[i]), tail + 1);
            memcpy(hit, sub, strlen(sub));
            break;
        }
    }
    const char *found = strcmp(darknet, beside) && exists(darknet) ? darknet
                      : exists(beside)                              ? beside
                                                                    : NULL;
    if (!found) {
        if (strcmp(darknet, beside))
            return nerve_set_error(NERVE_ERR_IO, "%s: no %s (looked for %s and %s)", img, what,
                                   darknet, beside);
        return nerve_set_error(NERVE_ERR_IO, "%s: no %s (looked for %s)", img, what, beside);
    }
    if (strlen(found) >= size)
        return nerve_set_error(NERVE_ERR_ARG, "%s: path too long", found);
    snprintf(out, size, "%s", found);
    return NERVE_OK;
}

static int label_path(const char *img, char *out, size_t size)
{
    static const char *const to[2] = {"labels", "labels"};
    return sibling_path(img, to, ".txt", ".txt", "label file", out, size);
}

/* The image paths of a list file (relative ones taken from the list's folder). */
static int read_list(const char *list, strlist *paths)
{
    size_t len = 0;
    char *text = data_read_file(list, &len);
    if (!text)
        return nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
    char dir[4096] = "";
    const char *slash = strrchr(list, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - list), list);
    int st = NERVE_OK, line = 0;
    for (size_t pos = 0; pos < len && st == NERVE_OK;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t m = nl ? (size_t)(nl - s) : len - pos;
        pos += m + 1;
        line++;
        while (m && (s[m - 1] == '\r' || s[m - 1] == ' ' || s[m - 1] == '\t'))
            m--;
        while (m && (*s == ' ' || *s == '\t')) {
            s++;
            m--;
        }
        if (!m)
            continue;
        char path[4096];
        int k = s[0] == '/' || !dir[0] ? snprintf(path, sizeof path, "%.*s", (int)m, s)
                                       : snprintf(path, sizeof path, "%s/%.*s", dir, (int)m, s);
        if (k < 0 || (size_t)k >= sizeof path || memchr(s, '\0', m))
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: a bad or overlong path", list, line);
        else if (!exists(path))
            st = nerve_set_error(NERVE_ERR_IO, "%s:%d: %s: no such image file", list, line, path);
        else
            st = strlist_add(paths, path);
    }
    nerve_xfree(text);
    if (st == NERVE_OK && paths->n == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: no image paths", list);
    return st;
}

int nerve_dataset_load_list(nerve_dataset *d, const char *list, const char *const *names,
                            int n_names, const nerve_image_options *o)
{
    if (!d || !list || !names || n_names < 1)
        return nerve_set_error(NERVE_ERR_ARG, "list: a list file and class names are needed");
    memset(d, 0, sizeof *d);
    if (o && o->resize != NERVE_RESIZE_NONE && o->resize != NERVE_RESIZE_STRETCH)
        return nerve_set_error(NERVE_ERR_ARG, "%s: resize=crop or pad would move the boxes off their "
                               "objects; use resize=stretch (relative box coordinates stay valid) "
                               "or images of the model's size", list);
    strlist paths = {0};
    int st = read_list(list, &paths);
    int *counts = st == NERVE_OK ? nerve_xcalloc((size_t)paths.n, sizeof *counts) : NULL;
    nerve_box *all = NULL;
    int total = 0;
    if (st == NERVE_OK && !counts)
        st = NERVE_ERR_NOMEM;
    for (int i = 0; st == NERVE_OK && i < paths.n; i++) {
        char lp[4096];
        size_t ll = 0;
        char *lt = NULL;
        nerve_box *b = NULL;
        if ((st = label_path(paths.s[i], lp, sizeof lp)) != NERVE_OK)
            break;
        if (!(lt = data_read_file(lp, &ll))) {
            st = nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
            break;
        }
        st = nerve_boxes_parse(lt, ll, lp, n_names, &b, &counts[i]);
        nerve_xfree(lt);
        if (st == NERVE_OK && counts[i]) {
            nerve_box *grown = nerve_xrealloc(all, (size_t)(total + counts[i]) * sizeof *grown);
            if (!grown)
                st = NERVE_ERR_NOMEM;
            else {
                all = grown;
                memcpy(all + total, b, (size_t)counts[i] * sizeof *b);
                total += counts[i];
            }
        }
        nerve_xfree(b);
    }
    if (st == NERVE_OK)
        st = data_decode_images(d, (const char *const *)paths.s, paths.n, o);
    if (st == NERVE_OK && (st = nerve_dataset_set_boxes(d, counts, all)) == NERVE_OK &&
        (st = nerve_dataset_set_names(d, n_names, names)) == NERVE_OK)
        d->n_classes = n_names;
    if (st < 0)
        nerve_dataset_free(d);
    nerve_xfree(all);
    nerve_xfree(counts);
    strlist_free(&paths);
    return st;
}

/* One image's mask into t (h x w labels as floats), checked against the class count. */
static int read_mask(const char *img, int h, int w, int n_names, float *t)
{
    static const char *const to[2] = {"masks", "SegmentationClass"};
    char mp[4096];
    size_t len = 0;
    int mh = 0, mw = 0;
    unsigned char *px = NULL;
    int st = sibling_path(img, to, ".png", "_mask.png", "class mask", mp, sizeof mp);
    char *buf = st == NERVE_OK ? data_read_file(mp, &len) : NULL;
    if (st == NERVE_OK && !buf)
        st = nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
    if (st == NERVE_OK)
        st = data_decode_mask(buf, len, mp, &mh, &mw, &px);
    nerve_xfree(buf);
    if (st == NERVE_OK && (mh != h || mw != w))
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: the mask is %dx%d (height x width) and its "
                             "image %s is %dx%d; a mask labels its image's pixels one for one",
                             mp, mh, mw, img, h, w);
    for (int y = 0; st == NERVE_OK && y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = px[(size_t)y * w + x];
            if (v == 255) {
                t[(size_t)y * w + x] = -1.0f;
            } else if (v <= n_names) {
                t[(size_t)y * w + x] = (float)v;
            } else {
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s: pixel (x %d, y %d) holds %d, which is no "
                                     "class: a mask holds 0 for the background, 1..%d for the %d "
                                     "classes of the names file, 255 for unlabelled pixels",
                                     mp, x, y, v, n_names, n_names);
                break;
            }
        }
    nerve_xfree(px);
    return st;
}

int nerve_dataset_load_list_masks(nerve_dataset *d, const char *list, const char *const *names,
                                  int n_names, const nerve_image_options *o)
{
    if (!d || !list || !names || n_names < 1 || n_names > 254)
        return nerve_set_error(NERVE_ERR_ARG, "list masks: a list file and 1..254 class names "
                               "are needed");
    memset(d, 0, sizeof *d);
    if (o && o->resize != NERVE_RESIZE_NONE)
        return nerve_set_error(NERVE_ERR_ARG, "%s: resizing images would leave their masks behind; "
                               "use images of the model's size (resize=none)", list);
    strlist paths = {0};
    int st = read_list(list, &paths);
    if (st == NERVE_OK)
        st = data_decode_images(d, (const char *const *)paths.s, paths.n, o);
    int h = d->dims[1], w = d->dims[2], dims[2] = {h, w};
    if (st == NERVE_OK)
        st = nerve_dataset_alloc_target(d, NERVE_TARGET_MASK, 2, dims);
    for (int i = 0; st == NERVE_OK && i < paths.n; i++)
        st = read_mask(paths.s[i], h, w, n_names, d->t + (size_t)i * h * w);
    const char **all = st == NERVE_OK ? nerve_xmalloc((size_t)(n_names + 1) * sizeof *all) : NULL;
    if (st == NERVE_OK && !all)
        st = NERVE_ERR_NOMEM;
    if (st == NERVE_OK) {
        all[0] = "background";
        memcpy(all + 1, names, (size_t)n_names * sizeof *all);
        d->ignore_index = -1;
        if ((st = nerve_dataset_set_names(d, n_names + 1, all)) == NERVE_OK)
            d->n_classes = n_names + 1;
    }
    nerve_xfree(all);
    if (st < 0)
        nerve_dataset_free(d);
    strlist_free(&paths);
    return st;
}

void nerve_boxes_free(nerve_box *b) { nerve_xfree(b); }
