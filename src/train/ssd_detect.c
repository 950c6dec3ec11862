/* Detections from [ssd] heads (docs/detection.md): per class, the default boxes whose softmax
 * probability is above the threshold, their 200 best decoded from the offsets, then NMS per
 * class. */
#include "../core/core.h"
#include "../model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TOP_PER_CLASS = 200 };

typedef struct {
    float score;
    int prior;
} scored;

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->prior > y->prior) - (x->prior < y->prior);
}

int nerve_ssd_decode(nerve_model *m, int sample, float width, float height, float thresh,
                     float nms_iou, nerve_detection *out, int max_out)
{
    if (!m || !m->n_ssd)
        return nerve_set_error(NERVE_ERR_ARG, "SSD decode: the model has no [ssd] layer");
    if (max_out < 0 || (max_out > 0 && !out) || !(width > 0) || !(height > 0) || sample < 0 ||
        !(thresh >= 0) || !(nms_iou >= 0))
        return nerve_set_error(NERVE_ERR_ARG, "SSD decode: bad arguments");
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) || sample >= nerve_graph_batch(g))
        return nerve_set_error(NERVE_ERR_STATE, "SSD decode: no sample %d in the last forward "
                               "pass", sample);
    nerve_tensor y = nerve_value(g, m->ssd_out);
    const float *priors = nerve_value(g, m->ssd_priors).data;
    int P = y.dims[1], E = y.dims[2], K = E - 4, C = K - 1;
    const float *x = y.data + (size_t)sample * P * E;
    const float *v = m->ssd.variance;
    const float wts[4] = {1 / v[0], 1 / v[0], 1 / v[1], 1 / v[1]};
    size_t cap = (size_t)C * (P < TOP_PER_CLASS ? P : TOP_PER_CLASS) + 1;
    float *prob = nerve_xmalloc((size_t)P * K * sizeof *prob);
    scored *cand = nerve_xmalloc(((size_t)P + 1) * sizeof *cand);
    float *boxes = nerve_xmalloc(cap * 4 * sizeof *boxes), *scores = nerve_xmalloc(cap * sizeof *scores);
    int *classes = nerve_xmalloc(cap * sizeof *classes), *keep = nerve_xmalloc(cap * sizeof *keep);
    int st = prob && cand && boxes && scores && classes && keep ? NERVE_OK : NERVE_ERR_NOMEM;
    for (int p = 0; p < P && !st; p++) { /* softmax over background and classes */
        const float *s = x + (size_t)p * E + 4;
        float mx = s[0];
        for (int k = 1; k < K; k++)
            mx = fmaxf(mx, s[k]);
        double z = 0;
        for (int k = 0; k < K; k++)
            z += prob[(size_t)p * K + k] = expf(s[k] - mx);
        for (int k = 0; k < K; k++)
            prob[(size_t)p * K + k] = (float)(prob[(size_t)p * K + k] / z);
    }
    int n = 0;
    for (int c = 0; c < C && !st; c++) {
        int nc = 0;
        for (int p = 0; p < P; p++) {
            float sc = prob[(size_t)p * K + 1 + c];
            if (sc > thresh)
                cand[nc++] = (scored){sc, p};
        }
        qsort(cand, (size_t)nc, sizeof *cand, by_score);
        for (int i = 0; i < nc && i < TOP_PER_CLASS; i++) {
            int p = cand[i].prior;
            float b[4];
            nerve_box_decode(priors + (size_t)p * 4, x + (size_t)p * E, wts, b);
            b[0] *= width, b[2] *= width, b[1] *= height, b[3] *= height;
            if (!isfinite(b[0]) || !isfinite(b[1]) || !isfinite(b[2]) || !isfinite(b[3]))
                continue;
            memcpy(boxes + (size_t)n * 4, b, sizeof b);
            scores[n] = cand[i].score;
            classes[n++] = c;
        }
    }
    int nk = 0;
    if (!st) /* nms_iou 0 means no suppression here (IoU is never > 2) */
        st = nerve_nms(boxes, scores, classes, n, nms_iou > 0 ? nms_iou : 2.0f, keep, &nk);
    if (!st) {
        if (nk > max_out)
            nk = max_out;
        for (int i = 0; i < nk; i++) {
            int j = keep[i];
            nerve_detection *d = &out[i];
            memset(d, 0, sizeof *d);
            d->image = sample;
            d->cls = classes[j];
            d->score = scores[j];
            const float *b = boxes + (size_t)j * 4;
            d->box[0] = fminf(fmaxf(b[0], 0), width), d->box[1] = fminf(fmaxf(b[1], 0), height);
            d->box[2] = fminf(fmaxf(b[2], 0), width), d->box[3] = fminf(fmaxf(b[3], 0), height);
        }
        st = nk;
    }
    nerve_xfree(prob);
    nerve_xfree(cand);
    nerve_xfree(boxes);
    nerve_xfree(scores);
    nerve_xfree(classes);
    nerve_xfree(keep);
    return st;
}

int nerve_ssd_detect(nerve_model *m, const float *x, float width, float height, float thresh,
                     float nms_iou, nerve_detection *out, int max_out)
{
    if (!m || !m->n_ssd)
        return nerve_set_error(NERVE_ERR_ARG, "SSD detect: the model has no [ssd] layer");
    return model_detect_one(m, x, nerve_ssd_decode, width, height, thresh, nms_iou, out, max_out);
}
