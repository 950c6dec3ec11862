/* Metrics that follow the task: an accumulator that batches are added to, and the figures
 * read from it (docs/metrics.md has the formulas).
 *
 *   classification: accuracy, top-k, per-class precision / recall / F1, confusion matrix
 *   segmentation and binary masks: pixel accuracy and mean IoU (ignore_index left out)
 *   regression and reconstruction: MSE, MAE, PSNR, R^2 (and the corrupted input's MSE)
 *   language models: bits per character
 *
 * Sums are kept in double (and counts in int64) so that a whole test set adds up without
 * the rounding of float accumulation. */
#include "../core/core.h"

#include <math.h>
#include <string.h>

int nerve_metrics_init(nerve_metrics *mt, nerve_task task, int n_classes, int n_outputs)
{
    if (!mt)
        return nerve_set_error(NERVE_ERR_ARG, "metrics_init: null accumulator");
    memset(mt, 0, sizeof *mt);
    mt->task = task;
    mt->ignore_index = -1;
    int classes = task == NERVE_TASK_CLASSIFY || task == NERVE_TASK_SEGMENT;
    if (task == NERVE_TASK_BINARY_MASK)
        n_classes = 2;
    if (classes || task == NERVE_TASK_BINARY_MASK) {
        if (n_classes < 1 || n_classes > (1 << 15))
            return nerve_set_error(NERVE_ERR_ARG, "metrics_init: %d classes (expected 1 to %d)",
                                   n_classes, 1 << 15);
        if (n_classes == 1) /* one logit: a binary classifier */
            n_classes = 2;
        mt->n_classes = n_classes;
        mt->k = n_classes < 5 ? n_classes : 5;
        mt->confusion = nerve_xcalloc((size_t)n_classes * (size_t)n_classes, sizeof(int64_t));
        if (!mt->confusion)
            return NERVE_ERR_NOMEM;
    }
    if (task == NERVE_TASK_REGRESS || task == NERVE_TASK_RECONSTRUCT) {
        if (n_outputs < 1)
            return nerve_set_error(NERVE_ERR_ARG, "metrics_init: %d outputs per sample", n_outputs);
        mt->n_outputs = n_outputs;
        mt->tsum = nerve_xcalloc((size_t)n_outputs, sizeof(double));
        mt->tsq = nerve_xcalloc((size_t)n_outputs, sizeof(double));
        mt->osse = nerve_xcalloc((size_t)n_outputs, sizeof(double));
        if (!mt->tsum || !mt->tsq || !mt->osse) {
            nerve_metrics_free(mt);
            return NERVE_ERR_NOMEM;
        }
    }
    return NERVE_OK;
}

void nerve_metrics_free(nerve_metrics *mt)
{
    if (!mt)
        return;
    nerve_xfree(mt->confusion);
    nerve_xfree(mt->tsum);
    nerve_xfree(mt->tsq);
    nerve_xfree(mt->osse);
    mt->confusion = NULL;
    mt->tsum = mt->tsq = mt->osse = NULL;
}

void nerve_metrics_reset(nerve_metrics *mt)
{
    if (mt->confusion)
        memset(mt->confusion, 0, (size_t)mt->n_classes * (size_t)mt->n_classes * sizeof(int64_t));
    for (int j = 0; mt->tsum && j < mt->n_outputs; j++)
        mt->tsum[j] = mt->tsq[j] = mt->osse[j] = 0;
    mt->samples = mt->counted = mt->correct = mt->correct_k = mt->values = mt->tokens = 0;
    mt->loss_sum = mt->sse = mt->sae = mt->noisy_sse = mt->nats = 0;
}

/* A label as a class index, or -1 when it is none (unlabelled, ignored or out of range). */
static int label_class(const nerve_metrics *mt, float y)
{
    if (!(y >= 0.0f && y < (float)mt->n_classes) || y != floorf(y))
        return -1;
    return (int)y;
}

/* Counts one prediction: the confusion cell, accuracy and (rank < k) top-k. */
static void count(nerve_metrics *mt, int truth, int pred, int rank)
{
    mt->counted++;
    mt->correct += pred == truth;
    mt->correct_k += rank < mt->k;
    mt->confusion[(size_t)truth * mt->n_classes + pred]++;
}

/* Prediction and the true class's rank among C scores s[0], s[stride], ...: the number of
 * classes ranked before it (a higher score, or an equal one at a lower index: the order in
 * which the first highest score is the prediction). */
static void rank_scores(const float *s, int C, size_t stride, int truth, int *pred, int *rank)
{
    int best = 0, r = 0;
    float st = s[(size_t)truth * stride];
    for (int c = 0; c < C; c++) {
        float v = s[(size_t)c * stride];
        if (v > s[(size_t)best * stride])
            best = c;
        r += v > st || (v == st && c < truth);
    }
    *pred = best;
    *rank = r;
}

void nerve_metrics_add_classes(nerve_metrics *mt, const float *scores, int C, const float *labels,
                               int n)
{
    if (!mt->confusion)
        return;
    mt->samples += n;
    for (int i = 0; i < n; i++) {
        int y = label_class(mt, labels[i]);
        if (y < 0)
            continue;
        const float *s = scores + (size_t)i * C;
        int pred, rank;
        if (C == 1) { /* one logit: class 1 when positive */
            pred = s[0] > 0.0f;
            rank = pred != y;
        } else {
            rank_scores(s, C, 1, y, &pred, &rank);
        }
        count(mt, y, pred, rank);
    }
}

void nerve_metrics_add_pixels(nerve_metrics *mt, const float *scores, int C, size_t P,
                              const float *labels, int n)
{
    if (!mt->confusion)
        return;
    mt->samples += n;
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < P; p++) {
            float label = labels[(size_t)i * P + p];
            if (mt->task == NERVE_TASK_SEGMENT && label == (float)mt->ignore_index)
                continue;
            int y = label_class(mt, label);
            if (y < 0)
                continue;
            const float *s = scores + (size_t)i * C * P + p;
            int pred, rank;
            if (C == 1) {
                pred = s[0] > 0.0f;
                rank = pred != y;
            } else {
                rank_scores(s, C, P, y, &pred, &rank);
            }
            count(mt, y, pred, rank);
        }
}

void nerve_metrics_add_values(nerve_metrics *mt, const float *pred, const float *target,
                              const float *noisy, int n)
{
    if (!mt->tsum)
        return;
    int J = mt->n_outputs;
    mt->samples += n;
    mt->values += (int64_t)n * J;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < J; j++) {
            size_t at = (size_t)i * J + j;
            double t = target[at], e = (double)pred[at] - t;
            mt->sse += e * e;
            mt->sae += fabs(e);
            mt->osse[j] += e * e;
            mt->tsum[j] += t;
            mt->tsq[j] += t * t;
            if (noisy) {
                double en = (double)noisy[at] - t;
                mt->noisy_sse += en * en;
            }
        }
}

void nerve_metrics_add_tokens(nerve_metrics *mt, double nats, int64_t tokens)
{
    mt->nats += nats;
    mt->tokens += tokens;
}

void nerve_metrics_add_loss(nerve_metrics *mt, double mean_loss, int n)
{
    mt->loss_sum += mean_loss * n;
    if (!mt->confusion && !mt->tsum)
        mt->samples += n; /* no other add_* counts these samples */
}

static double ratio(double a, double b) { return b != 0 ? a / b : NAN; }

double nerve_metrics_loss(const nerve_metrics *mt) { return ratio(mt->loss_sum, (double)mt->samples); }
double nerve_metrics_accuracy(const nerve_metrics *mt) { return ratio((double)mt->correct, (double)mt->counted); }
double nerve_metrics_top_k(const nerve_metrics *mt) { return ratio((double)mt->correct_k, (double)mt->counted); }

/* True positives, and the row (truth) and column (prediction) sums of class c. */
static void class_counts(const nerve_metrics *mt, int c, double *tp, double *truth, double *predicted)
{
    int C = mt->n_classes;
    *tp = (double)mt->confusion[(size_t)c * C + c];
    *truth = *predicted = 0;
    for (int j = 0; j < C; j++) {
        *truth += (double)mt->confusion[(size_t)c * C + j];
        *predicted += (double)mt->confusion[(size_t)j * C + c];
    }
}

int nerve_metrics_class(const nerve_metrics *mt, int c, double *precision, double *recall,
                        double *f1)
{
    if (!mt->confusion || c < 0 || c >= mt->n_classes)
        return nerve_set_error(NERVE_ERR_ARG, "metrics_class: class %d is not one of the %d classes",
                               c, mt->n_classes);
    double tp, truth, predicted;
    class_counts(mt, c, &tp, &truth, &predicted);
    double p = ratio(tp, predicted), r = ratio(tp, truth);
    if (precision)
        *precision = p;
    if (recall)
        *recall = r;
    if (f1) /* 2 TP / (2 TP + FP + FN): defined whenever the class appears anywhere */
        *f1 = ratio(2 * tp, truth + predicted);
    return NERVE_OK;
}

double nerve_metrics_macro_f1(const nerve_metrics *mt)
{
    double sum = 0;
    int used = 0;
    for (int c = 0; mt->confusion && c < mt->n_classes; c++) {
        double f1;
        nerve_metrics_class(mt, c, NULL, NULL, &f1);
        if (!isnan(f1)) {
            sum += f1;
            used++;
        }
    }
    return ratio(sum, used);
}

double nerve_metrics_mean_iou(const nerve_metrics *mt)
{
    double sum = 0;
    int used = 0;
    for (int c = 0; mt->confusion && c < mt->n_classes; c++) {
        double tp, truth, predicted;
        class_counts(mt, c, &tp, &truth, &predicted);
        double uni = truth + predicted - tp; /* TP + FN + FP */
        if (uni > 0) {
            sum += tp / uni;
            used++;
        }
    }
    return ratio(sum, used);
}

double nerve_metrics_mse(const nerve_metrics *mt) { return ratio(mt->sse, (double)mt->values); }
double nerve_metrics_mae(const nerve_metrics *mt) { return ratio(mt->sae, (double)mt->values); }
double nerve_metrics_noisy_mse(const nerve_metrics *mt)
{
    return mt->noisy_sse > 0 ? ratio(mt->noisy_sse, (double)mt->values) : NAN;
}

double nerve_metrics_psnr(const nerve_metrics *mt, double peak)
{
    double mse = nerve_metrics_mse(mt);
    return isnan(mse) ? NAN : 10.0 * log10(peak * peak / mse);
}

double nerve_metrics_r2(const nerve_metrics *mt)
{
    if (!mt->tsum || mt->samples < 1)
        return NAN;
    double n = (double)mt->samples, sum = 0;
    for (int j = 0; j < mt->n_outputs; j++) {
        double ss_tot = mt->tsq[j] - mt->tsum[j] * mt->tsum[j] / n;
        if (ss_tot > 1e-12 * (mt->tsq[j] + 1e-300))
            sum += 1.0 - mt->osse[j] / ss_tot;
        else /* constant targets: R^2 is undefined; count an exact fit as 1, else 0 */
            sum += mt->osse[j] == 0 ? 1.0 : 0.0;
    }
    return sum / mt->n_outputs;
}

double nerve_metrics_bpc(const nerve_metrics *mt)
{
    return ratio(mt->nats, (double)mt->tokens) / log(2.0);
}

const char *nerve_metrics_main(const nerve_metrics *mt, double *value, int *higher_better)
{
    const char *name = NULL;
    double v = NAN;
    int up = 1;
    switch (mt->task) {
    case NERVE_TASK_CLASSIFY: name = "acc"; v = nerve_metrics_accuracy(mt); break;
    case NERVE_TASK_REGRESS: name = "r2"; v = nerve_metrics_r2(mt); break;
    case NERVE_TASK_RECONSTRUCT: name = "psnr"; v = nerve_metrics_psnr(mt, 1.0); break;
    case NERVE_TASK_SEGMENT:
    case NERVE_TASK_BINARY_MASK: name = "miou"; v = nerve_metrics_mean_iou(mt); break;
    case NERVE_TASK_LANGUAGE: name = "bpc"; v = nerve_metrics_bpc(mt); up = 0; break;
    default: break;
    }
    if (value)
        *value = v;
    if (higher_better)
        *higher_better = up;
    return name;
}
