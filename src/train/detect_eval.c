/* Detections from a YOLO v1 head, and a detection model's mAP on a data set (YOLO v1, [yolo],
 * [region] and Faster R-CNN heads; docs/detection.md). */
#include "../core/core.h"
#include "train.h"

#include <math.h>
#include <string.h>

int nerve_yolo1_decode(const float *pred, const nerve_yolo1_config *c, float width, float height,
                       int image, float thresh, float nms_iou, nerve_detection *out, int max_out)
{
    int st = nerve_yolo1_check(c);
    if (st)
        return st;
    if (!pred || max_out < 0 || (max_out > 0 && !out) || !(width > 0) || !(height > 0))
        return nerve_set_error(NERVE_ERR_ARG, "YOLO v1 decode: bad arguments");
    int S = c->side, B = c->num, C = c->classes;
    size_t cells = (size_t)S * S, cand = cells * B * C;
    if (cand > (size_t)1 << 26)
        return nerve_set_error(NERVE_ERR_ARG, "YOLO v1 decode: %zu candidate boxes", cand);
    const float *cls = pred, *conf = pred + cells * C, *box = pred + cells * (C + B);
    float *boxes = nerve_xmalloc(cand * 4 * sizeof *boxes), *scores = nerve_xmalloc(cand * sizeof *scores);
    int *classes = nerve_xmalloc(cand * sizeof *classes), *keep = nerve_xmalloc(cand * sizeof *keep);
    if (!boxes || !scores || !classes || !keep) {
        st = NERVE_ERR_NOMEM;
        goto done;
    }
    int n = 0;
    for (size_t i = 0; i < cells; i++) {
        int col = (int)(i % S), row = (int)(i / S);
        for (int b = 0; b < B; b++) {
            const float *pb = box + (i * B + b) * 4;
            float w = c->sqrt ? pb[2] * pb[2] : pb[2], h = c->sqrt ? pb[3] * pb[3] : pb[3];
            float cx = (col + pb[0]) / S * width, cy = (row + pb[1]) / S * height;
            w *= width, h *= height;
            for (int k = 0; k < C; k++) {
                float sc = conf[i * B + b] * cls[i * C + k];
                if (!(sc >= thresh) || !isfinite(cx) || !isfinite(cy) || !isfinite(w) || !isfinite(h))
                    continue;
                float *o = boxes + (size_t)n * 4;
                o[0] = fmaxf(cx - w / 2, 0), o[1] = fmaxf(cy - h / 2, 0);
                o[2] = fminf(cx + w / 2, width), o[3] = fminf(cy + h / 2, height);
                scores[n] = sc;
                classes[n] = k;
                n++;
            }
        }
    }
    int nk = n;
    if (nms_iou > 0) {
        if ((st = nerve_nms(boxes, scores, classes, n, nms_iou, keep, &nk)))
            goto done;
    } else { /* in decreasing score all the same */
        for (int i = 0; i < n; i++)
            keep[i] = i;
        if ((st = nerve_nms(boxes, scores, classes, n, 2.0f, keep, &nk))) /* IoU never > 2 */
            goto done;
    }
    if (nk > max_out)
        nk = max_out;
    for (int i = 0; i < nk; i++) {
        int j = keep[i];
        nerve_detection *dt = &out[i];
        dt->image = image;
        dt->cls = classes[j];
        dt->score = scores[j];
        memcpy(dt->box, boxes + (size_t)j * 4, sizeof dt->box);
        dt->difficult = 0;
    }
    st = nk;
done:
    nerve_xfree(boxes);
    nerve_xfree(scores);
    nerve_xfree(classes);
    nerve_xfree(keep);
    return st;
}

/* The detections of a model with [yolo] / [region] heads, batch by batch (run_batches). */
typedef struct yolo_eval {
    float width, height, thresh, nms_iou;
    int max_per_image, nd;
    nerve_detection *dets;
    int (*decode)(nerve_model *m, int sample, float width, float height, float thresh,
                  float nms_iou, nerve_detection *out, int max_out); /* YOLO's or SSD's */
} yolo_eval;

static int yolo_eval_batch(void *ctx, nerve_model *m, int start, int n)
{
    yolo_eval *e = ctx;
    for (int i = 0; i < n; i++) {
        int k = e->decode(m, i, e->width, e->height, e->thresh, e->nms_iou, e->dets + e->nd,
                                  e->max_per_image);
        if (k < 0)
            return k;
        for (int j = 0; j < k; j++)
            e->dets[e->nd + j].image = start + i;
        e->nd += k;
    }
    return NERVE_OK;
}

int nerve_evaluate_detection(nerve_model *m, const nerve_dataset *d, float thresh, float nms_iou,
                             nerve_detection_metrics *out)
{
    return nerve_evaluate_detection_pr(m, d, thresh, nms_iou, out, NULL);
}

int nerve_evaluate_detection_pr(nerve_model *m, const nerve_dataset *d, float thresh, float nms_iou,
                                nerve_detection_metrics *out, const char *pr_svg)
{
    nerve_yolo1_config c;
    nerve_yolo_config heads[8];
    if (!out || !d || !m)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate detection: bad arguments");
    double *ap = out->ap;
    memset(out, 0, sizeof *out);
    out->ap = ap;
    nerve_ssd_config sc;
    nerve_frcnn_config fc;
    int v1 = nerve_model_yolo1(m, &c), nh = v1 ? 0 : nerve_model_yolo_heads(m, heads, NULL, 8);
    int ssd = v1 || nh ? 0 : nerve_model_ssd(m, &sc, NULL, 0);
    int frcnn = nerve_model_frcnn(m, &fc);
    if (!v1 && nh < 1 && !ssd && !frcnn)
        return nerve_set_error(NERVE_ERR_ARG, "evaluate detection: the model has no detection "
                               "head ([detection], [yolo], [region], [ssd] or [fast_rcnn])");
    int classes = v1 ? c.classes : ssd ? sc.classes : frcnn ? fc.classes : heads[0].classes;
    for (int h = 1; h < nh; h++)
        if (heads[h].classes != classes)
            return nerve_set_error(NERVE_ERR_SHAPE, "evaluate detection: the model's heads have %d "
                                   "and %d classes", classes, heads[h].classes);
    if (d->target != NERVE_TARGET_BOXES || !d->box_start)
        return nerve_set_error(NERVE_ERR_SHAPE, "evaluate detection: the data set has no boxes "
                               "(a darknet-style list: test_list=)");
    if (d->ndim < 2)
        return nerve_set_error(NERVE_ERR_SHAPE, "evaluate detection: the samples are not images");
    float H = (float)d->dims[d->ndim - 2], W = (float)d->dims[d->ndim - 1];
    size_t per = v1 ? (size_t)c.side * c.side * ((size_t)c.classes + 5 * (size_t)c.num) : 0;
    const int max_per_image = 100;
    float *pred = v1 ? nerve_xmalloc((size_t)d->n * per * sizeof *pred) : NULL;
    nerve_detection *dets = nerve_xmalloc(((size_t)d->n * max_per_image + 1) * sizeof *dets);
    nerve_detection *truths = nerve_xmalloc(((size_t)d->box_start[d->n] + 1) * sizeof *truths);
    int st = (pred || !v1) && dets && truths ? NERVE_OK : NERVE_ERR_NOMEM;
    int nd = 0, nt = 0;
    if (!st && v1) {
        st = nerve_predict_outputs(m, d, pred, NULL);
        for (int i = 0; i < d->n && !st; i++) {
            int k = nerve_yolo1_decode(pred + (size_t)i * per, &c, W, H, i, thresh, nms_iou,
                                       dets + nd, max_per_image);
            if (k < 0)
                st = k;
            else
                nd += k;
        }
    } else if (!st) {
        yolo_eval e = {W, H, thresh, nms_iou, max_per_image, 0, dets,
                       ssd ? nerve_ssd_decode : frcnn ? nerve_frcnn_decode : nerve_yolo_decode};
        st = run_batches(m, d, yolo_eval_batch, &e);
        nd = e.nd;
    }
    for (int i = 0; i < d->n && !st; i++)
        for (int64_t b = d->box_start[i]; b < d->box_start[i + 1]; b++) {
            nerve_detection *t = &truths[nt++];
            memset(t, 0, sizeof *t);
            t->image = i;
            t->cls = (int)d->boxes[b].cls;
            nerve_box_corners(&d->boxes[b], W, H, t->box);
        }
    if (!st)
        st = nerve_detection_ap(dets, nd, truths, nt, classes, 0.5f, NERVE_AP_VOC07, NULL,
                                &out->map50_voc07);
    if (!st)
        st = nerve_detection_ap(dets, nd, truths, nt, classes, 0.5f, NERVE_AP_ALL_POINT, out->ap,
                                &out->map50);
    if (!st)
        st = nerve_detection_map_coco(dets, nd, truths, nt, classes, &out->map_coco);
    if (!st && pr_svg)
        st = nerve_detection_pr_svg(pr_svg, dets, nd, truths, nt, classes,
                                    d->n_names >= classes ? (const char *const *)d->names : NULL, 0.5f);
    out->detections = nd;
    out->truths = nt;
    nerve_xfree(pred);
    nerve_xfree(dets);
    nerve_xfree(truths);
    return st;
}
