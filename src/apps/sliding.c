/* Sliding-window detection (COURSE.md §8; docs/detection.md): a classifier of object
 * classes and background, run on every window of a fixed set of shapes placed on a grid of
 * the scene, each window warped (bilinear) to the classifier's input; a window's class
 * probabilities are its scores, a per-class heat map collects them by window centre, and
 * greedy NMS per class turns the windows into detections. The training crops come from the
 * same windows of the training scenes, so the classifier sees what the detector will show
 * it: a window that overlaps an object by IoU >= pos_iou is that object's class, one that
 * overlaps every object by less than neg_iou is background (the last class). */
#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nerve_sliding_options nerve_sliding_default(void)
{
    nerve_sliding_options o;
    memset(&o, 0, sizeof o);
    o.n_shapes = 1;
    o.shapes[0][0] = o.shapes[0][1] = 28;
    o.stride = 4;
    o.crop = 32;
    o.context = 0.125f;
    o.pos_iou = 0.6f;
    o.neg_iou = 0.3f;
    o.negatives = 8;
    o.positives = 4;
    o.seed = 1;
    return o;
}

int nerve_sliding_parse_shapes(const char *s, nerve_sliding_options *o)
{
    if (!s || !o)
        return nerve_set_error(NERVE_ERR_ARG, "window shapes: bad arguments");
    int n = 0, shapes[NERVE_SLIDING_MAX_SHAPES][2];
    const char *p = s;
    while (*p) {
        char *end;
        long w = strtol(p, &end, 10);
        if (end == p || (*end != 'x' && *end != 'X'))
            break;
        p = end + 1;
        long h = strtol(p, &end, 10);
        if (end == p || w < 1 || h < 1 || w > 4096 || h > 4096 || n == NERVE_SLIDING_MAX_SHAPES)
            break;
        shapes[n][0] = (int)w, shapes[n][1] = (int)h;
        n++;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            break;
        else {
            memcpy(o->shapes, shapes, sizeof shapes);
            o->n_shapes = n;
            return NERVE_OK;
        }
    }
    return nerve_set_error(NERVE_ERR_ARG, "window shapes '%s': expected up to %d shapes WxH (1 to 4096 "
                           "pixels), separated by commas, e.g. 28x28,14x28", s, NERVE_SLIDING_MAX_SHAPES);
}

static int check_options(const nerve_sliding_options *o)
{
    if (!o || o->n_shapes < 1 || o->n_shapes > NERVE_SLIDING_MAX_SHAPES || o->stride < 1 || o->crop < 1 ||
        o->crop > 1024 || !(o->context >= 0 && o->context <= 4) || !(o->neg_iou >= 0) || !(o->pos_iou <= 1) || !(o->neg_iou <= o->pos_iou) ||
        o->negatives < 0 || o->positives < 0)
        return nerve_set_error(NERVE_ERR_ARG, "sliding windows: bad options (1 to %d shapes, stride >= 1, "
                               "0 <= neg_iou <= pos_iou <= 1, context in [0, 4])", NERVE_SLIDING_MAX_SHAPES);
    for (int s = 0; s < o->n_shapes; s++)
        if (o->shapes[s][0] < 1 || o->shapes[s][1] < 1 || o->shapes[s][0] > 4096 || o->shapes[s][1] > 4096)
            return nerve_set_error(NERVE_ERR_ARG, "sliding windows: shape %d is %d x %d", s, o->shapes[s][0],
                                   o->shapes[s][1]);
    return NERVE_OK;
}

/* The windows of an H x W scene, as corners: for each shape that fits, left edges 0, stride,
 * ... and the last one flush with the right edge (the same for tops). Returns the count
 * (out may be NULL to count). */
static size_t windows(const nerve_sliding_options *o, int H, int W, float *out)
{
    size_t n = 0;
    for (int s = 0; s < o->n_shapes; s++) {
        int w = o->shapes[s][0], h = o->shapes[s][1];
        if (w > W || h > H)
            continue;
        for (int y = 0;; y += o->stride) {
            if (y > H - h)
                y = H - h;
            for (int x = 0;; x += o->stride) {
                if (x > W - w)
                    x = W - w;
                if (out) {
                    float *b = out + n * 4;
                    b[0] = (float)x, b[1] = (float)y, b[2] = (float)(x + w), b[3] = (float)(y + h);
                }
                n++;
                if (x == W - w)
                    break;
            }
            if (y == H - h)
                break;
        }
    }
    return n;
}

/* Window b of image x [C, H, W] with `context` of its width and height added on each side,
 * warped to [C, S, S]: bilinear, sampling at pixel centres, the edge pixels repeated outside
 * the image. */
static void warp(const float *x, int C, int H, int W, const float *win, float context, int S, float *out)
{
    float mx = context * (win[2] - win[0]), my = context * (win[3] - win[1]);
    const float b[4] = {win[0] - mx, win[1] - my, win[2] + mx, win[3] + my};
    float sx = (b[2] - b[0]) / S, sy = (b[3] - b[1]) / S;
    for (int i = 0; i < S; i++) {
        float fy = b[1] + (i + 0.5f) * sy - 0.5f;
        fy = fminf(fmaxf(fy, 0), (float)(H - 1));
        int y0 = (int)fy, y1 = y0 + 1 < H ? y0 + 1 : y0;
        float ay = fy - y0;
        for (int j = 0; j < S; j++) {
            float fx = b[0] + (j + 0.5f) * sx - 0.5f;
            fx = fminf(fmaxf(fx, 0), (float)(W - 1));
            int x0 = (int)fx, x1 = x0 + 1 < W ? x0 + 1 : x0;
            float ax = fx - x0;
            for (int c = 0; c < C; c++) {
                const float *p = x + (size_t)c * H * W;
                float top = p[(size_t)y0 * W + x0] * (1 - ax) + p[(size_t)y0 * W + x1] * ax;
                float bot = p[(size_t)y1 * W + x0] * (1 - ax) + p[(size_t)y1 * W + x1] * ax;
                out[((size_t)c * S + i) * S + j] = top * (1 - ay) + bot * ay;
            }
        }
    }
}

static int scene_shape(const nerve_dataset *d, int *C, int *H, int *W)
{
    if (!d || d->target != NERVE_TARGET_BOXES || !d->box_start || d->ndim != 3)
        return nerve_set_error(NERVE_ERR_SHAPE, "sliding windows: the scenes must be images [C, H, W] "
                               "with boxes (a darknet-style list)");
    *C = d->dims[0], *H = d->dims[1], *W = d->dims[2];
    return NERVE_OK;
}

int nerve_sliding_crops(const nerve_dataset *scenes, int n_classes, const nerve_sliding_options *o,
                        nerve_dataset *out)
{
    int C = 0, H = 0, W = 0, st;
    if (!out || n_classes < 1)
        return nerve_set_error(NERVE_ERR_ARG, "sliding-window crops: bad arguments");
    memset(out, 0, sizeof *out);
    if ((st = check_options(o)) || (st = scene_shape(scenes, &C, &H, &W)))
        return st;
    size_t nw = windows(o, H, W, NULL);
    if (nw == 0)
        return nerve_set_error(NERVE_ERR_ARG, "sliding-window crops: no window shape fits the %d x %d scenes",
                               W, H);
    float *win = nerve_xmalloc(nw * 4 * sizeof *win);
    int *label = nerve_xmalloc(nw * sizeof *label), *idx = nerve_xmalloc(nw * sizeof *idx);
    /* first pass counts, second fills: the same generator stream both times */
    size_t total = 0;
    st = win && label && idx ? NERVE_OK : NERVE_ERR_NOMEM;
    if (!st)
        windows(o, H, W, win);
    for (int pass = 0; pass < 2 && !st; pass++) {
        nerve_rng r;
        nerve_rng_seed(&r, o->seed);
        size_t k = 0;
        for (int i = 0; i < scenes->n; i++) {
            int64_t b0 = scenes->box_start[i], b1 = scenes->box_start[i + 1];
            float t[4];
            for (size_t w = 0; w < nw; w++) {
                float best = 0;
                int cls = -1;
                for (int64_t b = b0; b < b1; b++) {
                    nerve_box_corners(&scenes->boxes[b], (float)W, (float)H, t);
                    float iou = nerve_box_iou(win + w * 4, t);
                    if (iou > best)
                        best = iou, cls = (int)scenes->boxes[b].cls;
                }
                if (cls >= n_classes) {
                    st = nerve_set_error(NERVE_ERR_ARG, "sliding-window crops: scene %d has class %d, not "
                                         "below %d", i, cls, n_classes);
                    break;
                }
                label[w] = best >= o->pos_iou && cls >= 0 ? cls : best < o->neg_iou ? n_classes : -1;
            }
            if (st)
                break;
            /* positives: up to `positives` windows per object (those of highest IoU first would
             * favour one shape; a random choice among the qualifying ones instead), then up to
             * `negatives` background windows */
            for (int64_t b = b0; b <= b1; b++) {
                int want = b < b1 ? o->positives : o->negatives, m = 0;
                if (b < b1)
                    nerve_box_corners(&scenes->boxes[b], (float)W, (float)H, t);
                for (size_t w = 0; w < nw; w++) {
                    if (b == b1 ? label[w] != n_classes
                                : label[w] != (int)scenes->boxes[b].cls || nerve_box_iou(win + w * 4, t) < o->pos_iou)
                        continue;
                    idx[m++] = (int)w;
                }
                nerve_rng_shuffle(&r, idx, m);
                if (m > want)
                    m = want;
                for (int j = 0; j < m; j++, k++)
                    if (pass == 1) {
                        warp(scenes->x + (size_t)i * scenes->sample_numel, C, H, W, win + (size_t)idx[j] * 4,
                             o->context, o->crop, out->x + k * out->sample_numel);
                        out->y[k] = (float)(b == b1 ? n_classes : (int)scenes->boxes[b].cls);
                    }
            }
        }
        if (st)
            break;
        if (pass == 0) {
            total = k;
            if (total == 0 || total > (size_t)1 << 28) {
                st = nerve_set_error(NERVE_ERR_ARG, "sliding-window crops: %zu crops", total);
                break;
            }
            int dims[3] = {C, o->crop, o->crop};
            if ((st = nerve_dataset_alloc(out, (int)total, 3, dims)))
                break;
            out->n_classes = n_classes + 1;
        }
    }
    if (!st && scenes->names && scenes->n_names >= n_classes) {
        const char **names = nerve_xmalloc(((size_t)n_classes + 1) * sizeof *names);
        if (!names)
            st = NERVE_ERR_NOMEM;
        else {
            for (int c = 0; c < n_classes; c++)
                names[c] = scenes->names[c];
            names[n_classes] = "background";
            st = nerve_dataset_set_names(out, n_classes + 1, names);
            nerve_xfree(names);
        }
    }
    if (st)
        nerve_dataset_free(out);
    nerve_xfree(win);
    nerve_xfree(label);
    nerve_xfree(idx);
    return st;
}

/* The classifier's class count (its output values per sample) and input side. */
static int classifier_shape(nerve_model *m, int C, int *classes, int *side)
{
    const nerve_net_config *c = nerve_model_config(m);
    if (c->ndim != 3 || c->dims[0] != C || c->dims[1] != c->dims[2])
        return nerve_set_error(NERVE_ERR_SHAPE, "sliding windows: the classifier must take square images "
                               "of the scenes' %d channel(s)", C);
    nerve_graph *g = nerve_model_graph(m);
    int st = nerve_graph_is_compiled(g) ? NERVE_OK : nerve_model_compile(m, 64);
    if (st)
        return st;
    nerve_tensor t = nerve_value(g, nerve_model_output(m));
    if (t.ndim != 2)
        return nerve_set_error(NERVE_ERR_SHAPE, "sliding windows: the model is not a classifier (its output "
                               "has %d dimensions)", t.ndim);
    *classes = t.dims[1];
    *side = c->dims[1];
    return NERVE_OK;
}

int nerve_sliding_detect(nerve_model *m, const float *image, int C, int H, int W, int n_classes,
                         const nerve_sliding_options *o, float *heat, nerve_detection *out, int max_out)
{
    int st, K = 0, S = 0;
    if (!m || !image || C < 1 || H < 1 || W < 1 || n_classes < 1 || max_out < 0 || (max_out && !out))
        return nerve_set_error(NERVE_ERR_ARG, "sliding windows: bad arguments");
    if ((st = check_options(o)) || (st = classifier_shape(m, C, &K, &S)))
        return st;
    if (K != n_classes + 1)
        return nerve_set_error(NERVE_ERR_SHAPE, "sliding windows: the classifier gives %d classes; the scenes "
                               "have %d, and the classifier needs one more, background, last", K, n_classes);
    size_t nw = windows(o, H, W, NULL);
    if (nw == 0 || nw > (size_t)1 << 22)
        return nerve_set_error(NERVE_ERR_ARG, "sliding windows: %zu windows in a %d x %d image", nw, W, H);
    nerve_dataset d;
    int dims[3] = {C, S, S};
    if ((st = nerve_dataset_alloc(&d, (int)nw, 3, dims)))
        return st;
    float *win = nerve_xmalloc(nw * 4 * sizeof *win), *prob = nerve_xmalloc(nw * (size_t)K * sizeof *prob);
    float *boxes = nerve_xmalloc(nw * (size_t)n_classes * 4 * sizeof *boxes);
    float *scores = nerve_xmalloc(nw * (size_t)n_classes * sizeof *scores);
    int *cls = nerve_xmalloc(nw * (size_t)n_classes * sizeof *cls), *keep = nerve_xmalloc(nw * (size_t)n_classes * sizeof *keep);
    st = win && prob && boxes && scores && cls && keep ? NERVE_OK : NERVE_ERR_NOMEM;
    if (!st) {
        windows(o, H, W, win);
        for (size_t w = 0; w < nw; w++)
            warp(image, C, H, W, win + w * 4, o->context, S, d.x + w * d.sample_numel);
        st = nerve_predict_outputs(m, &d, prob, NULL);
    }
    int n = 0, nk = 0;
    if (!st && heat) /* each window's probabilities over the stride x stride square at its centre */
        for (int k = 0; k < n_classes; k++)
            for (size_t i = 0; i < (size_t)H * W; i++)
                heat[(size_t)k * H * W + i] = 0;
    for (size_t w = 0; w < nw && !st; w++) {
        const float *p = prob + w * K, *b = win + w * 4;
        if (heat) {
            int cx = (int)floorf((b[0] + b[2]) / 2), cy = (int)floorf((b[1] + b[3]) / 2), r0 = o->stride / 2;
            for (int y = cy - r0; y < cy - r0 + o->stride; y++)
                for (int x = cx - r0; x < cx - r0 + o->stride; x++)
                    if (y >= 0 && y < H && x >= 0 && x < W)
                        for (int k = 0; k < n_classes; k++) {
                            float *h = heat + ((size_t)k * H + y) * W + x;
                            *h = fmaxf(*h, p[k]);
                        }
        }
        for (int k = 0; k < n_classes; k++)
            if (p[k] >= o->thresh && p[k] > 0) {
                memcpy(boxes + (size_t)n * 4, b, 4 * sizeof *b);
                scores[n] = p[k];
                cls[n] = k;
                n++;
            }
    }
    if (!st)
        st = nerve_nms(boxes, scores, cls, n, o->nms_iou > 0 ? o->nms_iou : 2.0f, keep, &nk);
    if (!st) {
        if (nk > max_out)
            nk = max_out;
        for (int i = 0; i < nk; i++) {
            nerve_detection *dt = &out[i];
            memset(dt, 0, sizeof *dt);
            dt->cls = cls[keep[i]];
            dt->score = scores[keep[i]];
            memcpy(dt->box, boxes + (size_t)keep[i] * 4, sizeof dt->box);
        }
    }
    nerve_dataset_free(&d);
    nerve_xfree(win);
    nerve_xfree(prob);
    nerve_xfree(boxes);
    nerve_xfree(scores);
    nerve_xfree(cls);
    nerve_xfree(keep);
    return st ? st : nk;
}

int nerve_evaluate_sliding(nerve_model *m, const nerve_dataset *scenes, int n_classes,
                           const nerve_sliding_options *o, nerve_detection_metrics *out, const char *pr_svg)
{
    int C = 0, H = 0, W = 0, st;
    if (!out || !m || n_classes < 1)
        return nerve_set_error(NERVE_ERR_ARG, "sliding windows: bad arguments");
    double *ap = out->ap;
    memset(out, 0, sizeof *out);
    out->ap = ap;
    if ((st = scene_shape(scenes, &C, &H, &W)))
        return st;
    const int max_per_image = 100;
    nerve_detection *dets = nerve_xmalloc(((size_t)scenes->n * max_per_image + 1) * sizeof *dets);
    nerve_detection *truths = nerve_xmalloc(((size_t)scenes->box_start[scenes->n] + 1) * sizeof *truths);
    st = dets && truths ? NERVE_OK : NERVE_ERR_NOMEM;
    int nd = 0, nt = 0;
    for (int i = 0; i < scenes->n && !st; i++) {
        int k = nerve_sliding_detect(m, scenes->x + (size_t)i * scenes->sample_numel, C, H, W, n_classes, o,
                                     NULL, dets + nd, max_per_image);
        if (k < 0)
            st = k;
        for (int j = 0; j < k; j++)
            dets[nd + j].image = i;
        nd += k > 0 ? k : 0;
        for (int64_t b = scenes->box_start[i]; b < scenes->box_start[i + 1] && !st; b++) {
            nerve_detection *t = &truths[nt++];
            memset(t, 0, sizeof *t);
            t->image = i;
            t->cls = (int)scenes->boxes[b].cls;
            nerve_box_corners(&scenes->boxes[b], (float)W, (float)H, t->box);
        }
    }
    if (!st)
        st = nerve_detection_ap(dets, nd, truths, nt, n_classes, 0.5f, NERVE_AP_VOC07, NULL, &out->map50_voc07);
    if (!st)
        st = nerve_detection_ap(dets, nd, truths, nt, n_classes, 0.5f, NERVE_AP_ALL_POINT, out->ap, &out->map50);
    if (!st)
        st = nerve_detection_map_coco(dets, nd, truths, nt, n_classes, &out->map_coco);
    if (!st && pr_svg)
        st = nerve_detection_pr_svg(pr_svg, dets, nd, truths, nt, n_classes,
                                    scenes->n_names >= n_classes ? (const char *const *)scenes->names : NULL, 0.5f);
    out->detections = nd;
    out->truths = nt;
    nerve_xfree(dets);
    nerve_xfree(truths);
    return st;
}
