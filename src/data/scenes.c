/* Detection and segmentation data that needs no download (docs/detection.md): scenes
 * composed from the objects of an image/label data set (Fashion-MNIST's 28 x 28 items),
 * written as a darknet-style list data set: PNG images, YOLO label files, a .names file, and
 * one PNG class mask per image (0 background, class k as the value k + 1).
 *
 * Each scene is a dark canvas with min..max objects, each an item scaled to a random side
 * in [min_size, max_size] and put at a random place where its box (the tight box of the
 * pixels above 0.1) overlaps every earlier object's box by at most max_overlap IoU (up to
 * 100 tries; an object that finds no place is left out, the first always fits). A later
 * object is drawn over an earlier one (its pixels above 0.1 replace the canvas and the
 * mask). Clutter adds unlabelled fragments: 5..10-pixel crops of other items at half
 * brightness, left out of boxes and masks. The training scenes take items from the
 * training set only and the test scenes from the test set only. */
#include "../core/core.h"
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define OBJECT_THRESHOLD 0.1f
#define PLACE_TRIES 100

nerve_scenes_options nerve_scenes_default(void)
{
    nerve_scenes_options o;
    memset(&o, 0, sizeof o);
    o.canvas = 96;
    o.n_train = 2000;
    o.n_test = 500;
    o.min_objects = 1;
    o.max_objects = 4;
    o.min_size = 24;
    o.max_size = 48;
    o.max_overlap = 0.2f;
    o.clutter = 0;
    o.seed = 1;
    return o;
}

static int check_options(const nerve_scenes_options *o)
{
    if (!o || !o->train_images || !o->train_labels || !o->test_images || !o->test_labels)
        return nerve_set_error(NERVE_ERR_ARG, "scenes: the training and test image and label "
                               "files are required");
    if (o->canvas < 8 || o->canvas > 4096)
        return nerve_set_error(NERVE_ERR_ARG, "scenes: canvas %d is outside 8..4096", o->canvas);
    if (o->n_train < 0 || o->n_test < 0 || o->n_train > 10000000 || o->n_test > 10000000 ||
        o->n_train + o->n_test < 1)
        return nerve_set_error(NERVE_ERR_ARG, "scenes: %d training and %d test scenes", o->n_train,
                               o->n_test);
    if (o->min_objects < 1 || o->max_objects < o->min_objects || o->max_objects > 64)
        return nerve_set_error(NERVE_ERR_ARG, "scenes: objects %d..%d (1 <= min <= max <= 64)",
                               o->min_objects, o->max_objects);
    if (o->min_size < 4 || o->max_size < o->min_size || o->max_size > o->canvas)
        return nerve_set_error(NERVE_ERR_ARG, "scenes: object sizes %d..%d must lie in 4..%d (the "
                               "canvas)", o->min_size, o->max_size, o->canvas);
    if (!(o->max_overlap >= 0 && o->max_overlap <= 1))
        return nerve_set_error(NERVE_ERR_ARG, "scenes: max_overlap %g is outside [0, 1]",
                               o->max_overlap);
    if (o->clutter < 0 || o->clutter > 64)
        return nerve_set_error(NERVE_ERR_ARG, "scenes: clutter %d is outside 0..64", o->clutter);
    return NERVE_OK;
}

/* One object scaled to side s: the pixels, and the tight box of those above the threshold
 * (x0, y0 inclusive, x1, y1 exclusive); returns 0 if nothing is above it. */
static int scale_object(const nerve_dataset *d, int k, int s, float *dst, int box[4])
{
    const int h = d->dims[d->ndim - 2], w = d->dims[d->ndim - 1];
    nerve_image src = {1, h, w, d->x + (size_t)k * d->sample_numel};
    if (nerve_image_resize(&src, s, s, NERVE_RESIZE_STRETCH, dst) != NERVE_OK)
        return -1;
    box[0] = s, box[1] = s, box[2] = 0, box[3] = 0;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++)
            if (dst[y * s + x] > OBJECT_THRESHOLD) {
                box[0] = x < box[0] ? x : box[0];
                box[1] = y < box[1] ? y : box[1];
                box[2] = x + 1 > box[2] ? x + 1 : box[2];
                box[3] = y + 1 > box[3] ? y + 1 : box[3];
            }
    return box[2] > box[0];
}

typedef struct {
    const nerve_scenes_options *o;
    const nerve_dataset *src;
    float *canvas, *mask, *patch;
    nerve_rng rng;
} composer;

/* Composes one scene into c->canvas / c->mask; boxes (corners, pixels) and their classes
 * into placed[] / cls[]; returns their count or a negative status. */
static int compose(composer *c, float (*placed)[4], int *cls)
{
    const nerve_scenes_options *o = c->o;
    int S = o->canvas, n = 0;
    memset(c->canvas, 0, (size_t)S * S * sizeof(float));
    memset(c->mask, 0, (size_t)S * S * sizeof(float));
    int want = o->min_objects + (int)nerve_rng_below(&c->rng, (uint32_t)(o->max_objects - o->min_objects + 1));
    for (int j = 0; j < o->clutter; j++) { /* under the objects */
        int k = (int)nerve_rng_below(&c->rng, (uint32_t)c->src->n);
        int f = 5 + (int)nerve_rng_below(&c->rng, 6), box[4];
        if (scale_object(c->src, k, 28 < S ? 28 : S, c->patch, box) < 0)
            return nerve_last_status();
        int s = 28 < S ? 28 : S, sx = (int)nerve_rng_below(&c->rng, (uint32_t)(s - f + 1));
        int sy = (int)nerve_rng_below(&c->rng, (uint32_t)(s - f + 1));
        int px = (int)nerve_rng_below(&c->rng, (uint32_t)(S - f + 1));
        int py = (int)nerve_rng_below(&c->rng, (uint32_t)(S - f + 1));
        for (int y = 0; y < f; y++)
            for (int x = 0; x < f; x++) {
                float v = 0.5f * c->patch[(sy + y) * s + sx + x];
                float *p = &c->canvas[(py + y) * S + px + x];
                *p = v > *p ? v : *p;
            }
    }
    for (int j = 0; j < want; j++) {
        int k = (int)nerve_rng_below(&c->rng, (uint32_t)c->src->n);
        int s = o->min_size + (int)nerve_rng_below(&c->rng, (uint32_t)(o->max_size - o->min_size + 1));
        int box[4], r = scale_object(c->src, k, s, c->patch, box);
        if (r < 0)
            return nerve_last_status();
        if (r == 0)
            continue; /* an empty item */
        for (int t = 0; t < PLACE_TRIES; t++) {
            int px = (int)nerve_rng_below(&c->rng, (uint32_t)(S - s + 1));
            int py = (int)nerve_rng_below(&c->rng, (uint32_t)(S - s + 1));
            float b[4] = {(float)(px + box[0]), (float)(py + box[1]), (float)(px + box[2]),
                          (float)(py + box[3])};
            int ok = 1;
            for (int q = 0; q < n && ok; q++)
                ok = nerve_box_iou(b, placed[q]) <= o->max_overlap;
            if (!ok)
                continue;
            int label = (int)c->src->y[k];
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++) {
                    float v = c->patch[y * s + x];
                    if (v > OBJECT_THRESHOLD) {
                        c->canvas[(py + y) * S + px + x] = v;
                        c->mask[(py + y) * S + px + x] = (float)(label + 1) / 255.0f;
                    }
                }
            memcpy(placed[n], b, sizeof b);
            cls[n++] = label;
            break;
        }
    }
    return n;
}

static int write_split(const char *outdir, const char *split, int count, composer *c, FILE *list,
                       int *objects)
{
    const int S = c->o->canvas;
    char dir[3][4200], path[4400];
    const char *kind[3] = {"images", "labels", "masks"};
    for (int i = 0; i < 3; i++) {
        if (snprintf(dir[i], sizeof dir[i], "%s/%s/%s", outdir, kind[i], split) >= (int)sizeof dir[i])
            return nerve_set_error(NERVE_ERR_ARG, "scenes: the output path is too long");
        DATA_TRY(data_make_dir(dir[i]));
    }
    float placed[64][4];
    int cls[64];
    for (int i = 0; i < count; i++) {
        int n = compose(c, placed, cls);
        if (n < 0)
            return n;
        *objects += n;
        snprintf(path, sizeof path, "%s/%06d.png", dir[0], i);
        DATA_TRY(nerve_png_write_gray(path, S, S, c->canvas));
        snprintf(path, sizeof path, "%s/%06d.png", dir[2], i);
        DATA_TRY(nerve_png_write_gray(path, S, S, c->mask));
        snprintf(path, sizeof path, "%s/%06d.txt", dir[1], i);
        FILE *f = fopen(path, "w");
        if (!f)
            return nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        for (int q = 0; q < n; q++)
            fprintf(f, "%d %.6f %.6f %.6f %.6f\n", cls[q], (placed[q][0] + placed[q][2]) / 2 / S,
                    (placed[q][1] + placed[q][3]) / 2 / S, (placed[q][2] - placed[q][0]) / S,
                    (placed[q][3] - placed[q][1]) / S);
        if (fclose(f) != 0)
            return nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        fprintf(list, "images/%s/%06d.png\n", split, i);
    }
    return NERVE_OK;
}

static int check_source(const nerve_dataset *d, const char *what)
{
    if (d->ndim < 2 || d->sample_numel != (size_t)d->dims[d->ndim - 2] * d->dims[d->ndim - 1])
        return nerve_set_error(NERVE_ERR_FORMAT, "scenes: the %s images must be single-channel "
                               "(gray) images", what);
    if (d->n < 1 || d->n_classes < 1 || d->n_classes > 254)
        return nerve_set_error(NERVE_ERR_FORMAT, "scenes: the %s set has %d samples of %d classes "
                               "(1..254 classes: the masks hold class + 1 in a byte)", what, d->n,
                               d->n_classes);
    for (int i = 0; i < d->n; i++)
        if (d->y[i] < 0)
            return nerve_set_error(NERVE_ERR_FORMAT, "scenes: %s sample %d has no label", what, i);
    return NERVE_OK;
}

int nerve_scenes_generate(const char *outdir, const nerve_scenes_options *o, nerve_scenes_stats *stats)
{
    int st = check_options(o);
    if (st)
        return st;
    if (!outdir)
        return nerve_set_error(NERVE_ERR_ARG, "scenes: no output folder");
    nerve_dataset d[2];
    memset(d, 0, sizeof d);
    const char *img[2] = {o->train_images, o->test_images}, *lab[2] = {o->train_labels, o->test_labels};
    const char *split[2] = {"train", "test"};
    const int count[2] = {o->n_train, o->n_test};
    composer c;
    memset(&c, 0, sizeof c);
    c.o = o;
    size_t S2 = (size_t)o->canvas * o->canvas;
    c.canvas = nerve_xmalloc(S2 * sizeof(float));
    c.mask = nerve_xmalloc(S2 * sizeof(float));
    c.patch = nerve_xmalloc(S2 * sizeof(float) + 28 * 28 * sizeof(float));
    if (!c.canvas || !c.mask || !c.patch)
        st = NERVE_ERR_NOMEM;
    if (!st)
        st = data_make_dir(outdir);
    int n_classes = 0;
    for (int s = 0; s < 2 && !st; s++)
        if ((st = nerve_dataset_load_idx(&d[s], img[s], lab[s], 1.0f / 255)) == NERVE_OK)
            st = check_source(&d[s], split[s]);
    if (!st) {
        n_classes = d[0].n_classes > d[1].n_classes ? d[0].n_classes : d[1].n_classes;
        if (o->names && o->n_names < n_classes)
            st = nerve_set_error(NERVE_ERR_ARG, "scenes: %d class names for %d classes", o->n_names,
                                 n_classes);
    }
    if (!st) { /* classes.names */
        char path[4200];
        snprintf(path, sizeof path, "%s/classes.names", outdir);
        FILE *f = fopen(path, "w");
        if (!f)
            st = nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        for (int k = 0; f && k < n_classes; k++) {
            if (o->names)
                fprintf(f, "%s\n", o->names[k]);
            else
                fprintf(f, "class%d\n", k);
        }
        if (f && fclose(f) != 0)
            st = nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    nerve_scenes_stats acc = {0, 0, 0, 0};
    for (int s = 0; s < 2 && !st; s++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.txt", outdir, split[s]);
        FILE *list = fopen(path, "w");
        if (!list) {
            st = nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            break;
        }
        c.src = &d[s];
        nerve_rng_seed(&c.rng, o->seed * 2 + (uint64_t)s);
        int objects = 0;
        st = write_split(outdir, split[s], count[s], &c, list, &objects);
        if (fclose(list) != 0 && !st)
            st = nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        if (s == 0)
            acc.train_scenes = count[s], acc.train_objects = objects;
        else
            acc.test_scenes = count[s], acc.test_objects = objects;
    }
    if (stats)
        *stats = acc;
    nerve_dataset_free(&d[0]);
    nerve_dataset_free(&d[1]);
    nerve_xfree(c.canvas);
    nerve_xfree(c.mask);
    nerve_xfree(c.patch);
    return st;
}
