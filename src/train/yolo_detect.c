/* Detections from darknet's [yolo] and [region] heads (docs/detection.md): darknet's
 * get_yolo_detections / get_region_detections and its per-class non-maximum suppression;
 * and from a Faster R-CNN head ([fast_rcnn]). */
#include "../core/core.h"
#include "../model/model.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *boxes, *scores;
    int *classes;
    int n, cap;
} cands;

static int push(cands *c, const float box[4], float score, int cls)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 1024;
        float *b = nerve_xrealloc(c->boxes, (size_t)cap * 4 * sizeof *b);
        if (b)
            c->boxes = b;
        float *s = b ? nerve_xrealloc(c->scores, (size_t)cap * sizeof *s) : NULL;
        if (s)
            c->scores = s;
        int *k = s ? nerve_xrealloc(c->classes, (size_t)cap * sizeof *k) : NULL;
        if (!k)
            return NERVE_ERR_NOMEM;
        c->classes = k;
        c->cap = cap;
    }
    memcpy(c->boxes + (size_t)c->n * 4, box, 4 * sizeof *box);
    c->scores[c->n] = score;
    c->classes[c->n++] = cls;
    return NERVE_OK;
}

/* One head's candidates: every (cell, anchor) whose objectness is above thresh, every class
 * whose objectness * probability is above thresh, as corners in width x height. */
static int head_cands(const float *y, int H, int W, const nerve_yolo_config *c, float width,
                      float height, float thresh, cands *out)
{
    size_t hw = (size_t)H * W;
    int E = c->coords + 1 + c->classes;
    for (size_t p = 0; p < hw; p++) {
        int row = (int)(p / W), col = (int)(p % W);
        for (int a = 0; a < c->n; a++) {
            const float *e = y + (size_t)a * E * hw + p;
            float obj = e[(size_t)c->coords * hw];
            if (!(obj > thresh))
                continue;
            int k = c->region ? a : c->mask[a];
            float sw = c->region ? (float)W : (float)c->net_w;
            float sh = c->region ? (float)H : (float)c->net_h;
            float bx = (col + e[0]) / W, by = (row + e[hw]) / H;
            float bw = expf(e[2 * hw]) * c->anchors[2 * k] / sw;
            float bh = expf(e[3 * hw]) * c->anchors[2 * k + 1] / sh;
            float box[4] = {(bx - bw / 2) * width, (by - bh / 2) * height, (bx + bw / 2) * width,
                            (by + bh / 2) * height};
            if (!isfinite(box[0]) || !isfinite(box[1]) || !isfinite(box[2]) || !isfinite(box[3]))
                continue;
            for (int cl = 0; cl < c->classes; cl++) {
                float prob = obj * e[(size_t)(c->coords + 1 + cl) * hw];
                if (prob > thresh) {
                    int st = push(out, box, prob, cl);
                    if (st)
                        return st;
                }
            }
        }
    }
    return NERVE_OK;
}

int nerve_yolo_decode(nerve_model *m, int sample, float width, float height, float thresh,
                      float nms_iou, nerve_detection *out, int max_out)
{
    nerve_yolo_config cfg[8];
    int nodes[8];
    int nh = nerve_model_yolo_heads(m, cfg, nodes, 8);
    if (nh < 1)
        return nerve_set_error(NERVE_ERR_ARG, "YOLO decode: the model has no [yolo] or [region] "
                               "layer");
    if (m->refuse_detect[0])
        return nerve_set_error(NERVE_ERR_STATE, "YOLO decode: %s", m->refuse_detect);
    if (max_out < 0 || (max_out > 0 && !out) || !(width > 0) || !(height > 0) || sample < 0 ||
        !(thresh >= 0) || !(nms_iou >= 0))
        return nerve_set_error(NERVE_ERR_ARG, "YOLO decode: bad arguments");
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) || sample >= nerve_graph_batch(g))
        return nerve_set_error(NERVE_ERR_STATE, "YOLO decode: no sample %d in the last forward "
                               "pass", sample);
    cands c = {0};
    int st = NERVE_OK;
    for (int h = 0; h < nh && !st; h++) {
        nerve_tensor y = nerve_value(g, nodes[h]);
        size_t per = nerve_shape_numel(y.ndim - 1, y.dims + 1);
        st = head_cands(y.data + (size_t)sample * per, y.dims[2], y.dims[3], &cfg[h], width,
                        height, thresh, &c);
    }
    int *keep = st ? NULL : nerve_xmalloc(((size_t)c.n + 1) * sizeof *keep);
    int nk = 0;
    if (!st && !keep)
        st = NERVE_ERR_NOMEM;
    if (!st) /* nms_iou 0 would drop every overlap; 0 means none here, as IoU is never > 2 */
        st = nerve_nms(c.boxes, c.scores, c.classes, c.n, nms_iou > 0 ? nms_iou : 2.0f, keep, &nk);
    if (!st) {
        if (nk > max_out)
            nk = max_out;
        for (int i = 0; i < nk; i++) {
            int j = keep[i];
            nerve_detection *d = &out[i];
            memset(d, 0, sizeof *d);
            d->image = sample;
            d->cls = c.classes[j];
            d->score = c.scores[j];
            const float *b = c.boxes + (size_t)j * 4;
            d->box[0] = fminf(fmaxf(b[0], 0), width), d->box[1] = fminf(fmaxf(b[1], 0), height);
            d->box[2] = fminf(fmaxf(b[2], 0), width), d->box[3] = fminf(fmaxf(b[3], 0), height);
        }
        st = nk;
    }
    nerve_xfree(keep);
    nerve_xfree(c.boxes);
    nerve_xfree(c.scores);
    nerve_xfree(c.classes);
    return st;
}

/* Faster R-CNN: every non-empty RoI of the sample, every class */
int nerve_frcnn_decode(nerve_model *m, int sample, float width, float height, float thresh,
                       float nms_iou, nerve_detection *out, int max_out)
{
    nerve_frcnn_config c;
    if (!nerve_model_frcnn(m, &c))
        return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN decode: the model has no [fast_rcnn] head");
    if (max_out < 0 || (max_out > 0 && !out) || !(width > 0) || !(height > 0) || sample < 0 ||
        !(thresh >= 0) || !(nms_iou >= 0))
        return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN decode: bad arguments");
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) || sample >= nerve_graph_batch(g))
        return nerve_set_error(NERVE_ERR_STATE, "Faster R-CNN decode: no sample %d in the last "
                               "forward pass", sample);
    int R = c.rois, K = c.classes, D = K + 1 + 4 * K;
    const float *rois = nerve_value(g, m->frcnn_rois).data + (size_t)sample * R * 4;
    const float *sc = nerve_value(g, m->frcnn_scores).data + (size_t)sample * R * D;
    float sx = width / (float)c.net_w, sy = height / (float)c.net_h;
    cands cd = {0};
    int st = NERVE_OK;
    for (int r = 0; r < R && !st; r++) {
        const float *b = rois + (size_t)r * 4, *v = sc + (size_t)r * D;
        if (!(b[2] > b[0]) || !(b[3] > b[1]))
            continue;
        float mx = v[0];
        for (int k = 1; k <= K; k++)
            mx = fmaxf(mx, v[k]);
        double z = 0;
        for (int k = 0; k <= K; k++)
            z += exp((double)(v[k] - mx));
        for (int k = 0; k < K && !st; k++) {
            float p = (float)(exp((double)(v[k + 1] - mx)) / z), box[4];
            if (!(p >= thresh))
                continue;
            nerve_box_decode(b, v + K + 1 + 4 * k, c.weights, box);
            box[0] = fminf(fmaxf(box[0], 0), (float)c.net_w) * sx;
            box[2] = fminf(fmaxf(box[2], 0), (float)c.net_w) * sx;
            box[1] = fminf(fmaxf(box[1], 0), (float)c.net_h) * sy;
            box[3] = fminf(fmaxf(box[3], 0), (float)c.net_h) * sy;
            if (isfinite(box[0]) && isfinite(box[1]) && isfinite(box[2]) && isfinite(box[3]))
                st = push(&cd, box, p, k);
        }
    }
    int *keep = st ? NULL : nerve_xmalloc(((size_t)cd.n + 1) * sizeof *keep);
    int nk = 0;
    if (!st && !keep)
        st = NERVE_ERR_NOMEM;
    if (!st)
        st = nerve_nms(cd.boxes, cd.scores, cd.classes, cd.n, nms_iou > 0 ? nms_iou : 2.0f, keep, &nk);
    if (!st) {
        if (nk > max_out)
            nk = max_out;
        for (int i = 0; i < nk; i++) {
            int j = keep[i];
            nerve_detection *d = &out[i];
            memset(d, 0, sizeof *d);
            d->image = sample;
            d->cls = cd.classes[j];
            d->score = cd.scores[j];
            memcpy(d->box, cd.boxes + (size_t)j * 4, sizeof d->box);
        }
        st = nk;
    }
    nerve_xfree(keep);
    nerve_xfree(cd.boxes);
    nerve_xfree(cd.scores);
    nerve_xfree(cd.classes);
    return st;
}

/* one input x at batch 1 in evaluation mode, then `decode` */
int model_detect_one(nerve_model *m, const float *x, model_decode_fn decode, float width,
                     float height, float thresh, float nms_iou, nerve_detection *out, int max_out)
{
    if (!m || !x)
        return nerve_set_error(NERVE_ERR_ARG, "detect: bad arguments");
    nerve_graph *g = nerve_model_graph(m);
    int st = nerve_graph_is_compiled(g) ? NERVE_OK : nerve_model_compile(m, 1);
    if (st)
        return st;
    int max_batch = nerve_graph_batch(g), was = nerve_graph_training(g);
    if ((st = nerve_graph_set_batch(g, 1)))
        return st;
    nerve_tensor in = nerve_value(g, nerve_model_input(m));
    memcpy(in.data, x, nerve_shape_numel(in.ndim - 1, in.dims + 1) * sizeof *x);
    nerve_graph_set_training(g, 0);
    int labels = nerve_model_labels(m);
    if (labels >= 0) { /* no boxes: the loss is computed too, on nothing */
        nerve_tensor t = nerve_value(g, labels);
        memset(t.data, 0, nerve_shape_numel(t.ndim - 1, t.dims + 1) * sizeof *t.data);
    }
    st = nerve_forward(g, -1);
    if (!st)
        st = decode(m, 0, width, height, thresh, nms_iou, out, max_out);
    nerve_graph_set_training(g, was);
    int st2 = nerve_graph_set_batch(g, max_batch);
    return st < 0 ? st : st2 < 0 ? st2 : st;
}

int nerve_yolo_detect(nerve_model *m, const float *x, float width, float height, float thresh,
                      float nms_iou, nerve_detection *out, int max_out)
{
    return model_detect_one(m, x, nerve_yolo_decode, width, height, thresh, nms_iou, out, max_out);
}

int nerve_frcnn_detect(nerve_model *m, const float *x, float width, float height, float thresh,
                       float nms_iou, nerve_detection *out, int max_out)
{
    return model_detect_one(m, x, nerve_frcnn_decode, width, height, thresh, nms_iou, out, max_out);
}
