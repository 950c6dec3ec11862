/* Detection metrics (docs/detection.md): average precision per class from scored
 * detections and ground-truth boxes, as PASCAL VOC 2007 (11-point), VOC 2010+ (all-point)
 * and COCO (101-point, mAP over IoU 0.50:0.05:0.95) compute it, and precision-recall curves.
 *
 * Matching, per class: detections in decreasing score (ties in input order); a detection
 * is compared with the ground truths of its image and class. VOC rule: the truth of highest
 * IoU is taken; IoU >= threshold and not yet matched gives a true positive, otherwise a
 * false positive; a match to a "difficult" truth counts neither way. COCO rule: the
 * unmatched truth of highest IoU >= threshold is taken (non-difficult ones first). */
#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int *det;      /* detection indices of the class, by decreasing score */
    int nd;
    int *gt;       /* truth indices of the class, by image */
    int ng;
    int npos;      /* non-difficult truths */
    double *rec, *prec; /* nd points */
    int np;        /* points kept (ignored detections dropped) */
} class_pr;

static void free_pr(class_pr *p)
{
    nerve_xfree(p->det);
    nerve_xfree(p->gt);
    nerve_xfree(p->rec);
    nerve_xfree(p->prec);
    memset(p, 0, sizeof *p);
}

/* stable merge sort of idx by key(idx) ascending (desc = 0) or descending (desc = 1) */
static int sort_idx(int *idx, int n, const nerve_detection *v, int by_score)
{
    if (n < 2)
        return NERVE_OK;
    int *tmp = nerve_xmalloc((size_t)n * sizeof *tmp);
    if (!tmp)
        return NERVE_ERR_NOMEM;
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int take_j = by_score ? v[idx[j]].score > v[idx[i]].score
                                      : v[idx[j]].image < v[idx[i]].image;
                tmp[k++] = take_j ? idx[j++] : idx[i++];
            }
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
    nerve_xfree(tmp);
    return NERVE_OK;
}

static int check_input(const nerve_detection *dets, int nd, const nerve_detection *gts, int ng,
                       int n_classes)
{
    if (nd < 0 || ng < 0 || n_classes < 1 || (nd > 0 && !dets) || (ng > 0 && !gts))
        return nerve_set_error(NERVE_ERR_ARG, "average precision: bad arguments");
    for (int i = 0; i < nd + ng; i++) {
        const nerve_detection *d = i < nd ? &dets[i] : &gts[i - nd];
        const char *what = i < nd ? "detection" : "ground truth";
        int k = i < nd ? i : i - nd;
        if (d->cls < 0 || d->cls >= n_classes)
            return nerve_set_error(NERVE_ERR_ARG, "average precision: %s %d has class %d, not "
                                   "one of 0..%d", what, k, d->cls, n_classes - 1);
        if ((i < nd && isnan(d->score)) || !isfinite(d->box[0]) || !isfinite(d->box[1]) ||
            !isfinite(d->box[2]) || !isfinite(d->box[3]))
            return nerve_set_error(NERVE_ERR_ARG, "average precision: %s %d has a non-finite "
                                   "box or a NaN score", what, k);
    }
    return NERVE_OK;
}

/* The precision-recall points of class c at one IoU threshold. */
static int class_curve(const nerve_detection *dets, int nd, const nerve_detection *gts, int ng,
                       int c, float iou, int coco, class_pr *p)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < nd; i++)
        p->nd += dets[i].cls == c;
    for (int i = 0; i < ng; i++)
        if (gts[i].cls == c) {
            p->ng++;
            p->npos += !gts[i].difficult;
        }
    p->det = nerve_xmalloc(((size_t)p->nd + 1) * sizeof *p->det);
    p->gt = nerve_xmalloc(((size_t)p->ng + 1) * sizeof *p->gt);
    p->rec = nerve_xmalloc(((size_t)p->nd + 1) * sizeof *p->rec);
    p->prec = nerve_xmalloc(((size_t)p->nd + 1) * sizeof *p->prec);
    unsigned char *used = nerve_xcalloc((size_t)p->ng + 1, 1);
    if (!p->det || !p->gt || !p->rec || !p->prec || !used) {
        nerve_xfree(used);
        free_pr(p);
        return NERVE_ERR_NOMEM;
    }
    int k = 0;
    for (int i = 0; i < nd; i++)
        if (dets[i].cls == c)
            p->det[k++] = i;
    k = 0;
    for (int i = 0; i < ng; i++)
        if (gts[i].cls == c)
            p->gt[k++] = i;
    int st = sort_idx(p->det, p->nd, dets, 1);
    if (!st)
        st = sort_idx(p->gt, p->ng, gts, 0);
    if (st) {
        nerve_xfree(used);
        free_pr(p);
        return st;
    }
    long tp = 0, fp = 0;
    for (int a = 0; a < p->nd; a++) {
        const nerve_detection *d = &dets[p->det[a]];
        /* the truths of d's image: a binary search in the image-sorted list */
        int lo = 0, hi = p->ng;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (gts[p->gt[mid]].image < d->image)
                lo = mid + 1;
            else
                hi = mid;
        }
        int best = -1;
        double best_iou = -1.0;
        if (!coco) {
            for (int j = lo; j < p->ng && gts[p->gt[j]].image == d->image; j++) {
                double o = nerve_box_iou(d->box, gts[p->gt[j]].box);
                if (o > best_iou)
                    best_iou = o, best = j;
            }
            if (best >= 0 && !(best_iou >= iou))
                best = -1;
        } else {
            for (int pass = 0; pass < 2 && best < 0; pass++) /* non-difficult truths first */
                for (int j = lo; j < p->ng && gts[p->gt[j]].image == d->image; j++) {
                    if (used[j] || (gts[p->gt[j]].difficult != 0) != pass)
                        continue;
                    double o = nerve_box_iou(d->box, gts[p->gt[j]].box);
                    if (o >= iou && o > best_iou)
                        best_iou = o, best = j;
                }
        }
        if (best >= 0 && gts[p->gt[best]].difficult)
            continue; /* neither true nor false */
        if (best >= 0 && !used[best]) {
            used[best] = 1;
            tp++;
        } else {
            fp++;
        }
        p->rec[p->np] = p->npos > 0 ? (double)tp / p->npos : 0.0;
        p->prec[p->np] = (double)tp / (double)(tp + fp);
        p->np++;
    }
    nerve_xfree(used);
    return NERVE_OK;
}

static double ap_of(const class_pr *p, nerve_ap_mode mode)
{
    if (p->npos == 0)
        return NAN;
    if (p->np == 0)
        return 0.0;
    if (mode == NERVE_AP_VOC07) {
        double s = 0.0;
        for (int t = 0; t <= 10; t++) {
            double r = t / 10.0, best = 0.0;
            for (int i = 0; i < p->np; i++)
                if (p->rec[i] >= r - 1e-12 && p->prec[i] > best)
                    best = p->prec[i];
            s += best;
        }
        return s / 11.0;
    }
    /* the precision envelope: the best precision at this recall or any higher one */
    double *env = nerve_xmalloc((size_t)p->np * sizeof *env);
    if (!env)
        return NAN;
    env[p->np - 1] = p->prec[p->np - 1];
    for (int i = p->np - 2; i >= 0; i--)
        env[i] = fmax(p->prec[i], env[i + 1]);
    double s = 0.0;
    if (mode == NERVE_AP_ALL_POINT) {
        double prev = 0.0;
        for (int i = 0; i < p->np; i++) {
            s += (p->rec[i] - prev) * env[i];
            prev = p->rec[i];
        }
    } else { /* COCO: 101 recall points, each taking the envelope at the first point that
              * reaches it */
        int i = 0;
        for (int t = 0; t <= 100; t++) {
            double r = t / 100.0;
            while (i < p->np && p->rec[i] < r - 1e-12)
                i++;
            if (i == p->np)
                break;
            s += env[i];
        }
        s /= 101.0;
    }
    nerve_xfree(env);
    return s;
}

int nerve_detection_ap(const nerve_detection *dets, int n_dets, const nerve_detection *truths,
                       int n_truths, int n_classes, float iou_threshold, nerve_ap_mode mode,
                       double *ap, double *map)
{
    int st = check_input(dets, n_dets, truths, n_truths, n_classes);
    if (st)
        return st;
    if (!(iou_threshold > 0 && iou_threshold <= 1) ||
        (mode != NERVE_AP_VOC07 && mode != NERVE_AP_ALL_POINT && mode != NERVE_AP_COCO))
        return nerve_set_error(NERVE_ERR_ARG, "average precision: IoU threshold %g or mode %d",
                               iou_threshold, (int)mode);
    double sum = 0.0;
    int counted = 0;
    for (int c = 0; c < n_classes; c++) {
        class_pr p;
        if ((st = class_curve(dets, n_dets, truths, n_truths, c, iou_threshold,
                              mode == NERVE_AP_COCO, &p)))
            return st;
        double a = ap_of(&p, mode);
        free_pr(&p);
        if (ap)
            ap[c] = a;
        if (!isnan(a)) {
            sum += a;
            counted++;
        }
    }
    if (map)
        *map = counted ? sum / counted : NAN;
    return NERVE_OK;
}

int nerve_detection_map_coco(const nerve_detection *dets, int n_dets,
                             const nerve_detection *truths, int n_truths, int n_classes,
                             double *map)
{
    double total = 0.0;
    int counted = 0;
    for (int t = 0; t < 10; t++) {
        double m;
        int st = nerve_detection_ap(dets, n_dets, truths, n_truths, n_classes,
                                    (float)(0.5 + 0.05 * t), NERVE_AP_COCO, NULL, &m);
        if (st)
            return st;
        if (!isnan(m)) {
            total += m;
            counted++;
        }
    }
    if (map)
        *map = counted ? total / counted : NAN;
    return NERVE_OK;
}

int nerve_detection_pr(const nerve_detection *dets, int n_dets, const nerve_detection *truths,
                       int n_truths, int n_classes, int cls, float iou_threshold,
                       double **recall, double **precision, int *n)
{
    if (!recall || !precision || !n)
        return nerve_set_error(NERVE_ERR_ARG, "precision-recall: bad arguments");
    *recall = *precision = NULL;
    *n = 0;
    int st = check_input(dets, n_dets, truths, n_truths, n_classes);
    if (st)
        return st;
    if (cls < 0 || cls >= n_classes)
        return nerve_set_error(NERVE_ERR_ARG, "precision-recall: class %d, not one of 0..%d", cls,
                               n_classes - 1);
    class_pr p;
    if ((st = class_curve(dets, n_dets, truths, n_truths, cls, iou_threshold, 0, &p)))
        return st;
    *recall = p.rec;
    *precision = p.prec;
    *n = p.np;
    p.rec = p.prec = NULL;
    free_pr(&p);
    return NERVE_OK;
}

void nerve_detection_pr_free(double *recall, double *precision)
{
    nerve_xfree(recall);
    nerve_xfree(precision);
}

int nerve_detection_pr_svg(const char *path, const nerve_detection *dets, int n_dets,
                           const nerve_detection *truths, int n_truths, int n_classes,
                           const char *const *names, float iou_threshold)
{
    if (!path)
        return nerve_set_error(NERVE_ERR_ARG, "precision-recall plot: no path");
    int st = check_input(dets, n_dets, truths, n_truths, n_classes);
    if (st)
        return st;
    /* the envelope at 101 recall points, so every class shares the x axis; at most 12
     * classes (the plot's limit): the first 12 that have ground truth */
    enum { PTS = 101, MAXS = 12 };
    double x[PTS], y[MAXS][PTS];
    char label[MAXS][96];
    nerve_series series[MAXS];
    int ns = 0;
    for (int i = 0; i < PTS; i++)
        x[i] = i / 100.0;
    for (int c = 0; c < n_classes && ns < MAXS; c++) {
        class_pr p;
        if ((st = class_curve(dets, n_dets, truths, n_truths, c, iou_threshold, 0, &p)))
            return st;
        if (p.npos == 0) {
            free_pr(&p);
            continue;
        }
        double a = ap_of(&p, NERVE_AP_ALL_POINT);
        for (int t = 0; t < PTS; t++) {
            double best = NAN;
            for (int i = 0; i < p.np; i++)
                if (p.rec[i] >= x[t] - 1e-12 && (isnan(best) || p.prec[i] > best))
                    best = p.prec[i];
            y[ns][t] = best;
        }
        free_pr(&p);
        snprintf(label[ns], sizeof label[ns], "%s (AP %.3f)",
                 names && names[c] ? names[c] : "class", a);
        if (!names || !names[c])
            snprintf(label[ns], sizeof label[ns], "class %d (AP %.3f)", c, a);
        series[ns] = (nerve_series){label[ns], y[ns]};
        ns++;
    }
    char title[96];
    snprintf(title, sizeof title, "precision-recall at IoU %.2f (precision envelope)",
             iou_threshold);
    return nerve_svg_lineplot(path, title, "recall", x, PTS, series, ns);
}
