/* Box geometry for detection (docs/detection.md): IoU and GIoU, greedy non-maximum
 * suppression (one class or per class), the R-CNN box coding t_x, t_y, t_w, t_h, anchors
 * over a feature map, and what the anchor-based detectors share: the matching of anchors
 * (or proposals) to truths, its random sampling and the smooth L1 loss. Boxes here are
 * corners (x1, y1, x2, y2) in any unit; the YOLO-style nerve_box (centre and size relative
 * to the image) converts with nerve_box_corners. It sits in core, below the detection
 * operators that use it. */
#include "core.h"

#include <math.h>
#include <string.h>

static double area(const float *b)
{
    double w = (double)b[2] - b[0], h = (double)b[3] - b[1];
    return w > 0 && h > 0 ? w * h : 0.0;
}

static double inter_area(const float *a, const float *b)
{
    double w = fmin(a[2], b[2]) - fmax(a[0], b[0]), h = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    return w > 0 && h > 0 ? w * h : 0.0;
}

float nerve_box_iou(const float *a, const float *b)
{
    double i = inter_area(a, b), u = area(a) + area(b) - i;
    return u > 0 ? (float)(i / u) : 0.0f;
}

float nerve_box_giou(const float *a, const float *b)
{
    double i = inter_area(a, b), u = area(a) + area(b) - i;
    float hull[4] = {fminf(a[0], b[0]), fminf(a[1], b[1]), fmaxf(a[2], b[2]), fmaxf(a[3], b[3])};
    double c = area(hull);
    if (!(u > 0) || !(c > 0))
        return 0.0f;
    return (float)(i / u - (c - u) / c);
}

void nerve_box_corners(const nerve_box *b, float width, float height, float out[4])
{
    out[0] = (b->x - b->w / 2) * width;
    out[1] = (b->y - b->h / 2) * height;
    out[2] = (b->x + b->w / 2) * width;
    out[3] = (b->y + b->h / 2) * height;
}

/* Order of candidates: decreasing score, then increasing index (so equal scores keep their
 * input order and the result never depends on the sort's stability). */
static void sort_by_score(int *idx, int n, const float *scores)
{
    /* a bottom-up merge sort: O(n log n) and stable, which qsort does not promise */
    if (n < 2)
        return;
    int *tmp = nerve_xmalloc((size_t)n * sizeof *tmp);
    if (!tmp) { /* fall back to a stable insertion sort: slow but correct */
        for (int i = 1; i < n; i++) {
            int v = idx[i], j = i - 1;
            while (j >= 0 && scores[idx[j]] < scores[v])
                idx[j + 1] = idx[j], j--;
            idx[j + 1] = v;
        }
        return;
    }
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = scores[idx[j]] > scores[idx[i]] ? idx[j++] : idx[i++];
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
    nerve_xfree(tmp);
}

int nerve_nms(const float *boxes, const float *scores, const int *classes, int n,
              float iou_threshold, int *keep, int *n_keep)
{
    if (n_keep)
        *n_keep = 0;
    if (n < 0 || !n_keep || (n > 0 && (!boxes || !scores || !keep)))
        return nerve_set_error(NERVE_ERR_ARG, "nms: bad arguments");
    for (int i = 0; i < n; i++)
        if (isnan(scores[i]) || !isfinite(boxes[4 * i]) || !isfinite(boxes[4 * i + 1]) ||
            !isfinite(boxes[4 * i + 2]) || !isfinite(boxes[4 * i + 3]))
            return nerve_set_error(NERVE_ERR_ARG, "nms: box %d has a non-finite coordinate or a "
                                   "NaN score", i);
    if (n == 0)
        return NERVE_OK;
    int *idx = nerve_xmalloc((size_t)n * sizeof *idx);
    unsigned char *gone = nerve_xcalloc((size_t)n, 1);
    if (!idx || !gone) {
        nerve_xfree(idx);
        nerve_xfree(gone);
        return NERVE_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++)
        idx[i] = i;
    sort_by_score(idx, n, scores);
    int k = 0;
    for (int a = 0; a < n; a++) {
        if (gone[a])
            continue;
        int i = idx[a];
        keep[k++] = i;
        for (int b = a + 1; b < n; b++) {
            int j = idx[b];
            if (!gone[b] && (!classes || classes[j] == classes[i]) &&
                nerve_box_iou(boxes + 4 * i, boxes + 4 * j) > iou_threshold)
                gone[b] = 1;
        }
    }
    *n_keep = k;
    nerve_xfree(idx);
    nerve_xfree(gone);
    return NERVE_OK;
}

/* centre form of corners: cx, cy, w, h */
static void centre(const float *b, double *c)
{
    c[2] = (double)b[2] - b[0];
    c[3] = (double)b[3] - b[1];
    c[0] = b[0] + 0.5 * c[2];
    c[1] = b[1] + 0.5 * c[3];
}

int nerve_box_encode(const float *proposal, const float *truth, const float *weights, float t[4])
{
    double p[4], g[4];
    centre(proposal, p);
    centre(truth, g);
    if (!(p[2] > 0 && p[3] > 0 && g[2] > 0 && g[3] > 0))
        return nerve_set_error(NERVE_ERR_ARG, "box encode: a box of zero or negative size "
                               "(%g x %g, %g x %g)", p[2], p[3], g[2], g[3]);
    double w[4] = {1, 1, 1, 1};
    if (weights)
        for (int i = 0; i < 4; i++)
            w[i] = weights[i];
    t[0] = (float)(w[0] * (g[0] - p[0]) / p[2]);
    t[1] = (float)(w[1] * (g[1] - p[1]) / p[3]);
    t[2] = (float)(w[2] * log(g[2] / p[2]));
    t[3] = (float)(w[3] * log(g[3] / p[3]));
    return NERVE_OK;
}

void nerve_box_decode(const float *proposal, const float *t, const float *weights, float out[4])
{
    double p[4], w[4] = {1, 1, 1, 1};
    centre(proposal, p);
    if (weights)
        for (int i = 0; i < 4; i++)
            w[i] = weights[i];
    /* a size step above log(1000/16) (a box grown more than 62x) is clamped there, so a
     * wild regression output cannot overflow exp() */
    const double clamp = log(1000.0 / 16.0);
    double dw = fmin(t[2] / w[2], clamp), dh = fmin(t[3] / w[3], clamp);
    double cx = t[0] / w[0] * p[2] + p[0], cy = t[1] / w[1] * p[3] + p[1];
    double bw = exp(dw) * p[2], bh = exp(dh) * p[3];
    out[0] = (float)(cx - 0.5 * bw);
    out[1] = (float)(cy - 0.5 * bh);
    out[2] = (float)(cx + 0.5 * bw);
    out[3] = (float)(cy + 0.5 * bh);
}

int nerve_anchors(int fh, int fw, float stride, const float *sizes, int n_sizes,
                  const float *ratios, int n_ratios, float *out)
{
    if (fh < 1 || fw < 1 || !(stride > 0) || n_sizes < 1 || n_ratios < 1 || !sizes || !ratios)
        return nerve_set_error(NERVE_ERR_ARG, "anchors: bad arguments");
    for (int s = 0; s < n_sizes; s++)
        if (!(sizes[s] > 0) || !isfinite(sizes[s]))
            return nerve_set_error(NERVE_ERR_ARG, "anchors: size %d is %g, not above 0", s, sizes[s]);
    for (int r = 0; r < n_ratios; r++)
        if (!(ratios[r] > 0) || !isfinite(ratios[r]))
            return nerve_set_error(NERVE_ERR_ARG, "anchors: ratio %d is %g, not above 0", r, ratios[r]);
    int64_t total = (int64_t)fh * fw * n_sizes * n_ratios;
    if (total > (int64_t)1 << 28)
        return nerve_set_error(NERVE_ERR_ARG, "anchors: %lld anchors is too many",
                               (long long)total);
    if (!out)
        return (int)total;
    float *o = out;
    for (int y = 0; y < fh; y++)
        for (int x = 0; x < fw; x++) {
            double cx = (x + 0.5) * stride, cy = (y + 0.5) * stride;
            for (int s = 0; s < n_sizes; s++)
                for (int r = 0; r < n_ratios; r++) {
                    /* area sizes², height / width = ratio */
                    double w = sizes[s] / sqrt(ratios[r]), h = sizes[s] * sqrt(ratios[r]);
                    *o++ = (float)(cx - 0.5 * w);
                    *o++ = (float)(cy - 0.5 * h);
                    *o++ = (float)(cx + 0.5 * w);
                    *o++ = (float)(cy + 0.5 * h);
                }
        }
    return (int)total;
}

/* ---- shared by the anchor-based detectors (Faster R-CNN, SSD) ------------------------- */

float nerve_smooth_l1(float d, float beta, float *grad)
{
    float a = fabsf(d);
    if (a < beta) {
        if (grad)
            *grad = d / beta;
        return 0.5f * d * d / beta;
    }
    if (grad)
        *grad = d > 0 ? 1.0f : d < 0 ? -1.0f : 0.0f;
    return a - 0.5f * beta;
}

int nerve_match_boxes(const float *boxes, int n, const float *truths, int nt, float hi, float lo,
                      int best_per_truth, int *match, float *iou)
{
    if (n < 0 || nt < 0 || (n > 0 && (!boxes || !match)) || (nt > 0 && !truths) || !(lo <= hi))
        return nerve_set_error(NERVE_ERR_ARG, "match boxes: bad arguments (thresholds %g, %g)",
                               (double)lo, (double)hi);
    for (int i = 0; i < n; i++) {
        float best = 0;
        int bt = -1;
        for (int t = 0; t < nt; t++) {
            float o = nerve_box_iou(boxes + (size_t)i * 4, truths + (size_t)t * 4);
            if (bt < 0 || o > best)
                best = o, bt = t;
        }
        match[i] = bt >= 0 && best >= hi ? bt : best < lo ? -1 : -2;
        if (iou)
            iou[i] = best;
    }
    if (!best_per_truth)
        return NERVE_OK;
    for (int t = 0; t < nt; t++) {
        float best = 0;
        for (int i = 0; i < n; i++)
            best = fmaxf(best, nerve_box_iou(boxes + (size_t)i * 4, truths + (size_t)t * 4));
        if (!(best > 0))
            continue;
        for (int i = 0; i < n; i++)
            if (nerve_box_iou(boxes + (size_t)i * 4, truths + (size_t)t * 4) == best)
                match[i] = t;
    }
    return NERVE_OK;
}

/* Knuth's selection sampling: keeps k of the entries for which `is(m)`, uniformly */
static int select_k(int *match, int n, int positive, int k, nerve_rng *rng)
{
    int total = 0;
    for (int i = 0; i < n; i++)
        total += positive ? match[i] >= 0 : match[i] == -1;
    if (k >= total)
        return total;
    int seen = 0, kept = 0;
    for (int i = 0; i < n; i++) {
        if (!(positive ? match[i] >= 0 : match[i] == -1))
            continue;
        if ((int)nerve_rng_below(rng, (uint32_t)(total - seen)) < k - kept)
            kept++;
        else
            match[i] = -2;
        seen++;
    }
    return kept;
}

int nerve_sample_matches(int *match, int n, int batch, float pos_fraction, nerve_rng *rng,
                         int *n_pos, int *n_neg)
{
    if (n < 0 || (n > 0 && !match) || batch < 0 || !(pos_fraction >= 0 && pos_fraction <= 1) || !rng)
        return nerve_set_error(NERVE_ERR_ARG, "sample matches: bad arguments");
    int np = select_k(match, n, 1, (int)floorf((float)batch * pos_fraction), rng);
    int nn = select_k(match, n, 0, batch - np, rng);
    if (n_pos)
        *n_pos = np;
    if (n_neg)
        *n_neg = nn;
    return NERVE_OK;
}
