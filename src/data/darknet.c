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

/* The label file of image `img` into out (see the top of the file). */
static int label_path(const char *img, char *out, size_t size)
{
    char beside[4096], darknet[4096];
    snprintf(beside, sizeof beside, "%s", img);
    char *dot = strrchr(beside, '.'), *slash = strrchr(beside, '/');
    if (dot && (!slash || dot > slash))
        *dot = '\0';
    if (strlen(beside) + 5 > sizeof beside)
        return nerve_set_error(NERVE_ERR_ARG, "%s: path too long", img);
    strcat(beside, ".txt");
    snprintf(darknet, sizeof darknet, "%s", beside);
    static const char *dirs[] = {"/images/", "/JPEGImages/"};
    for (int i = 0; i < 2; i++) {
        char *hit = NULL, *p = darknet;
        while ((p = strstr(p, dirs[i])) != NULL)
            hit = p++;
        if (hit) {
            size_t tail = strlen(hit + strlen(dirs[i]));
            memmove(hit + 8, hit + strlen(dirs[i]), tail + 1);
            memcpy(hit, "/labels/", 8);
            break;
        }
    }
    const char *found = strcmp(darknet, beside) && exists(darknet) ? darknet
                      : exists(beside)                              ? beside
                                                                    : NULL;
    if (!found) {
        if (strcmp(darknet, beside))
            return nerve_set_error(NERVE_ERR_IO, "%s: no label file (looked for %s and %s)", img,
                                   darknet, beside);
        return nerve_set_error(NERVE_ERR_IO, "%s: no label file (looked for %s)", img, beside);
    }
    if (strlen(found) >= size)
        return nerve_set_error(NERVE_ERR_ARG, "%s: path too long", found);
    snprintf(out, size, "%s", found);
    return NERVE_OK;
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
    size_t len = 0;
    char *text = data_read_file(list, &len);
    if (!text)
        return nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
    char dir[4096] = "";
    const char *slash = strrchr(list, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - list), list);
    strlist paths = {0};
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
            st = strlist_add(&paths, path);
    }
    nerve_xfree(text);
    if (st == NERVE_OK && paths.n == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: no image paths", list);
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

void nerve_boxes_free(nerve_box *b) { nerve_xfree(b); }
