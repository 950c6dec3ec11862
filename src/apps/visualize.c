/* What a trained network has learnt, seen through its inputs (COURSE.md §11; docs/explain.md):
 * class model visualisation (Simonyan et al. 2014, with the regularisers of Yosinski et al.
 * 2015: periodic Gaussian blur, clipping of small pixels and of small gradients), DeepDream
 * (Mordvintsev et al. 2015: the gradient at a layer set to its activation), a layer's
 * features for nearest neighbours, the inputs that most activate a unit and the pixels that
 * unit reads. Feature inversion is src/apps/style.c's content loss with its TV prior. */
#include "../core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nerve_dream_defaults(nerve_dream_options *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 300;
    o->lr = 0.02f;
    o->lambda = 0.001f;
    o->blur_every = 4;
    o->blur = 0.5f;
    o->clip_pixels = 0.1f;
    o->clip_grad = 0.1f;
    o->lo = 0;
    o->hi = 1;
}

static int check_model(nerve_model *m, size_t *d)
{
    if (!m)
        return nerve_set_error(NERVE_ERR_ARG, "visualisation: null model");
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) || !nerve_input_requires_grad(g, nerve_model_input(m)))
        return nerve_set_error(NERVE_ERR_STATE, "visualisation: call nerve_explain_prepare first");
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, nerve_model_input(m), &nd, dims);
    *d = nerve_shape_numel(nd - 1, dims + 1);
    return NERVE_OK;
}

static int check_layer(nerve_model *m, int layer, size_t *numel, int *nd, int *dims)
{
    nerve_graph *g = nerve_model_graph(m);
    if (layer < 0 || layer >= nerve_node_count(g) || nerve_node_shape(g, layer, nd, dims) < 0 || *nd < 2)
        return nerve_set_error(NERVE_ERR_ARG, "visualisation: node %d is not a layer of the model", layer);
    *numel = nerve_shape_numel(*nd - 1, dims + 1);
    return NERVE_OK;
}

static int check_options(const nerve_dream_options *o)
{
    if (o->steps < 0 || !(o->lr > 0) || !isfinite(o->lr) || !(o->lo < o->hi) || !isfinite(o->lo) ||
        !isfinite(o->hi) || !(o->lambda >= 0) || !(o->blur >= 0) || !(o->clip_pixels >= 0 && o->clip_pixels < 1) ||
        !(o->clip_grad >= 0 && o->clip_grad < 1))
        return nerve_set_error(NERVE_ERR_ARG, "visualisation: need steps >= 0, lr > 0, lo < hi, lambda and blur >= 0, "
                               "clipped fractions in [0, 1)");
    return NERVE_OK;
}

int nerve_class_model_gradient(nerve_model *m, const float *x, int cls, float lambda, float *grad, double *objective)
{
    size_t d = 0;
    int st = check_model(m, &d);
    if (st)
        return st;
    if (!x || !grad)
        return nerve_set_error(NERVE_ERR_ARG, "class model: null argument");
    if ((st = nerve_explain_gradient(m, x, 1, &cls, NERVE_RELU_BACKPROP, grad)) != NERVE_OK)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    double sq = 0;
    for (size_t i = 0; i < d; i++) {
        sq += (double)x[i] * x[i];
        grad[i] -= 2 * lambda * x[i];
    }
    if (objective)
        *objective = nerve_value(g, nerve_model_output(m)).data[cls] - lambda * sq;
    return NERVE_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* The value below which a fraction q of v[0..n) lies (sorted copy in tmp). */
static float quantile(const float *v, size_t n, float q, float *tmp)
{
    memcpy(tmp, v, n * sizeof *tmp);
    qsort(tmp, n, sizeof *tmp, cmp_float);
    size_t at = (size_t)(q * (float)n);
    return tmp[at < n ? at : n - 1];
}

/* Gaussian blur of every channel plane of x [c, h, w] (edges clamped), sigma in pixels. */
static void blur(float *x, int c, int h, int w, float sigma, float *tmp)
{
    int r = (int)ceilf(3 * sigma);
    if (r < 1)
        return;
    float k[64];
    if (r > 31)
        r = 31;
    double sum = 0;
    for (int i = -r; i <= r; i++)
        sum += k[i + r] = expf(-(float)(i * i) / (2 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++)
        k[i] = (float)(k[i] / sum);
    for (int ch = 0; ch < c; ch++) {
        float *p = x + (size_t)ch * h * w;
        for (int y = 0; y < h; y++) /* rows into tmp */
            for (int xx = 0; xx < w; xx++) {
                float s = 0;
                for (int i = -r; i <= r; i++) {
                    int q = xx + i < 0 ? 0 : xx + i >= w ? w - 1 : xx + i;
                    s += k[i + r] * p[(size_t)y * w + q];
                }
                tmp[(size_t)y * w + xx] = s;
            }
        for (int y = 0; y < h; y++) /* columns back into p */
            for (int xx = 0; xx < w; xx++) {
                float s = 0;
                for (int i = -r; i <= r; i++) {
                    int q = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                    s += k[i + r] * tmp[(size_t)q * w + xx];
                }
                p[(size_t)y * w + xx] = s;
            }
    }
}

/* One Adam (0.9, 0.999) ascent step t (from 0) on x along g, clamped to [lo, hi]: every
 * value moves by about lr, whatever the scale of its gradient (a z-scoring input layer
 * multiplies the gradient of a pixel that barely varies in the training set by one over its
 * tiny spread; a step along the raw gradient would move those pixels only). */
static void adam_ascent(float *x, const float *g, float *m1, float *m2, size_t d, int t, float lr, float lo, float hi)
{
    double b1 = 1 - pow(0.9, t + 1), b2 = 1 - pow(0.999, t + 1);
    for (size_t i = 0; i < d; i++) {
        m1[i] = 0.9f * m1[i] + 0.1f * g[i];
        m2[i] = 0.999f * m2[i] + 0.001f * g[i] * g[i];
        float v = x[i] + lr * (float)((m1[i] / b1) / (sqrt(m2[i] / b2) + 1e-8));
        x[i] = v < lo ? lo : v > hi ? hi : v;
    }
}

int nerve_class_model(nerve_model *m, int cls, const nerve_dream_options *opt, float *image, float *score, float *prob)
{
    nerve_dream_options o;
    if (opt)
        o = *opt;
    else
        nerve_dream_defaults(&o);
    size_t d = 0;
    int st = check_model(m, &d), ch = 1, h = 1, w = 1;
    if (st || (st = check_options(&o)) != NERVE_OK || (st = nerve_explain_geometry(m, &ch, &h, &w)) != NERVE_OK)
        return st;
    if (!image)
        return nerve_set_error(NERVE_ERR_ARG, "class model: null image");
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g);
    size_t plane = (size_t)h * w;
    float *grad = nerve_xmalloc(d * sizeof(float)), *tmp = nerve_xmalloc(d * sizeof(float));
    float *mx = nerve_xmalloc(plane * sizeof(float));
    float *m1 = nerve_xcalloc(d, sizeof(float)), *m2 = nerve_xcalloc(d, sizeof(float));
    if (!grad || !tmp || !mx || !m1 || !m2)
        st = NERVE_ERR_NOMEM;
    for (size_t i = 0; i < d; i++)
        image[i] = o.lo;
    for (int t = 0; st == NERVE_OK && t < o.steps; t++) {
        if ((st = nerve_class_model_gradient(m, image, cls, o.lambda, grad, NULL)) != NERVE_OK)
            break;
        if (o.clip_grad > 0) { /* small gradients to zero */
            for (size_t i = 0; i < d; i++)
                tmp[i] = fabsf(grad[i]);
            float cut = quantile(tmp, d, o.clip_grad, tmp);
            for (size_t i = 0; i < d; i++)
                grad[i] = fabsf(grad[i]) < cut ? 0 : grad[i];
        }
        adam_ascent(image, grad, m1, m2, d, t, o.lr, o.lo, o.hi);
        if (o.blur > 0 && o.blur_every > 0 && (t + 1) % o.blur_every == 0)
            blur(image, ch, h, w, o.blur, tmp);
        if (o.clip_pixels > 0) { /* the faintest pixels to lo */
            for (size_t p = 0; p < plane; p++) {
                mx[p] = image[p];
                for (int c = 1; c < ch; c++)
                    mx[p] = fmaxf(mx[p], image[(size_t)c * plane + p]);
            }
            float cut = quantile(mx, plane, o.clip_pixels, tmp);
            for (size_t p = 0; p < plane; p++)
                if (mx[p] < cut)
                    for (int c = 0; c < ch; c++)
                        image[(size_t)c * plane + p] = o.lo;
        }
    }
    if (st == NERVE_OK && (score || prob)) {
        float lp;
        if ((st = nerve_logprob_gradient(m, image, 1, &cls, NULL, &lp)) == NERVE_OK) {
            if (score)
                *score = nerve_value(g, nerve_model_output(m)).data[cls];
            if (prob)
                *prob = expf(lp);
        }
    }
    nerve_xfree(grad);
    nerve_xfree(tmp);
    nerve_xfree(mx);
    nerve_xfree(m1);
    nerve_xfree(m2);
    int st2 = nerve_graph_set_batch(g, batch);
    return st ? st : st2;
}

int nerve_dream_gradient(nerve_model *m, int layer, const float *x, float *grad, double *objective)
{
    size_t d = 0, f = 0;
    int nd, dims[NERVE_MAX_DIMS];
    int st = check_model(m, &d);
    if (st || (st = check_layer(m, layer, &f, &nd, dims)) != NERVE_OK)
        return st;
    if (!x || !grad)
        return nerve_set_error(NERVE_ERR_ARG, "DeepDream: null argument");
    nerve_graph *g = nerve_model_graph(m);
    int training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    if ((st = nerve_graph_set_batch(g, 1)) == NERVE_OK) {
        memcpy(nerve_value(g, nerve_model_input(m)).data, x, d * sizeof(float));
        st = nerve_forward(g, layer);
    }
    if (st == NERVE_OK) {
        const float *a = nerve_value(g, layer).data;
        double s = 0;
        for (size_t i = 0; i < f; i++)
            s += (double)a[i] * a[i];
        if (objective)
            *objective = 0.5 * s;
        /* the seed is the activation itself: d(1/2 sum f^2)/df = f */
        st = nerve_backward_seeded(g, layer, a, NERVE_BACKWARD_INPUTS_ONLY);
    }
    if (st == NERVE_OK)
        memcpy(grad, nerve_grad(g, nerve_model_input(m)).data, d * sizeof(float));
    nerve_graph_set_training(g, training);
    return st;
}

int nerve_deepdream(nerve_model *m, int layer, const nerve_dream_options *opt, float *image, double *before,
                    double *after)
{
    nerve_dream_options o;
    if (opt)
        o = *opt;
    else {
        nerve_dream_defaults(&o);
        o.steps = 40;
    }
    size_t d = 0;
    int st = check_model(m, &d);
    if (st || (st = check_options(&o)) != NERVE_OK)
        return st;
    if (!image)
        return nerve_set_error(NERVE_ERR_ARG, "DeepDream: null image");
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g);
    float *grad = nerve_xmalloc(d * sizeof(float));
    float *m1 = nerve_xcalloc(d, sizeof(float)), *m2 = nerve_xcalloc(d, sizeof(float));
    if (!grad || !m1 || !m2)
        st = NERVE_ERR_NOMEM;
    double obj = 0;
    for (int t = 0; st == NERVE_OK && t <= o.steps; t++) {
        if ((st = nerve_dream_gradient(m, layer, image, grad, &obj)) != NERVE_OK)
            break;
        if (t == 0 && before)
            *before = obj;
        if (t < o.steps)
            adam_ascent(image, grad, m1, m2, d, t, o.lr, o.lo, o.hi);
    }
    if (st == NERVE_OK && after)
        *after = obj;
    nerve_xfree(grad);
    nerve_xfree(m1);
    nerve_xfree(m2);
    int st2 = nerve_graph_set_batch(g, batch);
    return st ? st : st2;
}

int nerve_layer_features(nerve_model *m, int layer, const float *x, int n, float *out)
{
    size_t d = 0, f = 0;
    int nd, dims[NERVE_MAX_DIMS];
    int st = check_model(m, &d);
    if (st || (st = check_layer(m, layer, &f, &nd, dims)) != NERVE_OK)
        return st;
    if (!x || !out || n < 0)
        return nerve_set_error(NERVE_ERR_ARG, "features: null argument");
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g), training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    for (int first = 0; st == NERVE_OK && first < n; first += batch) {
        int b = n - first < batch ? n - first : batch;
        if ((st = nerve_graph_set_batch(g, b)) != NERVE_OK)
            break;
        memcpy(nerve_value(g, nerve_model_input(m)).data, x + (size_t)first * d, (size_t)b * d * sizeof(float));
        if ((st = nerve_forward(g, layer)) == NERVE_OK)
            memcpy(out + (size_t)first * f, nerve_value(g, layer).data, (size_t)b * f * sizeof(float));
    }
    int st2 = nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    return st ? st : st2;
}

int nerve_nearest(const float *pool, int n, int dim, const float *query, int k, int *idx, float *dist)
{
    if (!pool || !query || !idx || n < 1 || dim < 1 || k < 1 || k > n)
        return nerve_set_error(NERVE_ERR_ARG, "nearest: need a pool, a query and 1 <= k <= n (k %d, n %d)", k, n);
    float *best = nerve_xmalloc((size_t)k * sizeof *best);
    if (!best)
        return NERVE_ERR_NOMEM;
    int found = 0;
    for (int i = 0; i < n; i++) {
        const float *p = pool + (size_t)i * dim;
        double s = 0;
        for (int j = 0; j < dim; j++)
            s += (double)(p[j] - query[j]) * (p[j] - query[j]);
        float v = (float)s;
        if (found == k && !(v < best[k - 1]))
            continue;
        int at = found < k ? found++ : k - 1; /* insertion into the sorted list */
        while (at > 0 && best[at - 1] > v) {
            best[at] = best[at - 1];
            idx[at] = idx[at - 1];
            at--;
        }
        best[at] = v;
        idx[at] = i;
    }
    for (int i = 0; dist && i < k; i++)
        dist[i] = sqrtf(best[i]);
    nerve_xfree(best);
    return NERVE_OK;
}

int nerve_top_activations(nerve_model *m, int layer, int unit, const nerve_dataset *data, int limit, int k, int *idx,
                          float *act, int *pos)
{
    size_t d = 0, f = 0;
    int nd, dims[NERVE_MAX_DIMS];
    int st = check_model(m, &d);
    if (st || (st = check_layer(m, layer, &f, &nd, dims)) != NERVE_OK)
        return st;
    int units = dims[1];
    size_t per = f / (size_t)units; /* positions per unit */
    int n = limit > 0 && limit < (data ? data->n : 0) ? limit : data ? data->n : 0;
    if (!data || !data->x || data->sample_numel != d || !idx || k < 1 || k > n || unit < 0 || unit >= units)
        return nerve_set_error(NERVE_ERR_ARG, "top activations: need data of the model's input size, 1 <= k <= %d "
                               "and a unit in 0..%d (got k %d, unit %d)", n, units - 1, k, unit);
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g);
    float *feat = nerve_xmalloc((size_t)batch * f * sizeof(float)), *best = nerve_xmalloc((size_t)k * sizeof(float));
    int *bpos = nerve_xmalloc((size_t)k * sizeof(int));
    if (!feat || !best || !bpos)
        st = NERVE_ERR_NOMEM;
    int found = 0;
    for (int first = 0; st == NERVE_OK && first < n; first += batch) {
        int b = n - first < batch ? n - first : batch;
        if ((st = nerve_layer_features(m, layer, data->x + (size_t)first * d, b, feat)) != NERVE_OK)
            break;
        for (int i = 0; i < b; i++) {
            const float *u = feat + (size_t)i * f + (size_t)unit * per;
            int at_max = 0;
            for (size_t p = 1; p < per; p++)
                if (u[p] > u[at_max])
                    at_max = (int)p;
            float v = u[at_max];
            if (found == k && !(v > best[k - 1]))
                continue;
            int at = found < k ? found++ : k - 1;
            while (at > 0 && best[at - 1] < v) {
                best[at] = best[at - 1];
                idx[at] = idx[at - 1];
                bpos[at] = bpos[at - 1];
                at--;
            }
            best[at] = v;
            idx[at] = first + i;
            bpos[at] = at_max;
        }
    }
    for (int i = 0; st == NERVE_OK && i < k; i++) {
        if (act)
            act[i] = best[i];
        if (pos)
            pos[i] = bpos[i];
    }
    nerve_xfree(feat);
    nerve_xfree(best);
    nerve_xfree(bpos);
    return st;
}

int nerve_unit_box(nerve_model *m, int layer, int unit, int pos, const float *image, int box[4])
{
    size_t d = 0, f = 0;
    int nd, dims[NERVE_MAX_DIMS], ch, h, w;
    int st = check_model(m, &d);
    if (st || (st = check_layer(m, layer, &f, &nd, dims)) != NERVE_OK ||
        (st = nerve_explain_geometry(m, &ch, &h, &w)) != NERVE_OK)
        return st;
    size_t per = f / (size_t)dims[1];
    if (!image || !box || unit < 0 || unit >= dims[1] || pos < 0 || (size_t)pos >= per)
        return nerve_set_error(NERVE_ERR_ARG, "unit box: unit %d or position %d out of range", unit, pos);
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g), training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    float *seed = nerve_xcalloc(f, sizeof(float));
    if (!seed)
        return NERVE_ERR_NOMEM;
    seed[(size_t)unit * per + pos] = 1;
    if ((st = nerve_graph_set_batch(g, 1)) == NERVE_OK) {
        memcpy(nerve_value(g, nerve_model_input(m)).data, image, d * sizeof(float));
        st = nerve_forward(g, layer);
    }
    if (st == NERVE_OK)
        st = nerve_backward_seeded(g, layer, seed, NERVE_BACKWARD_INPUTS_ONLY);
    if (st == NERVE_OK) {
        const float *gr = nerve_grad(g, nerve_model_input(m)).data;
        box[0] = box[1] = box[2] = box[3] = -1;
        for (int c = 0; c < ch; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    if (gr[((size_t)c * h + y) * w + x] != 0) {
                        if (box[0] < 0) {
                            box[0] = box[2] = y;
                            box[1] = box[3] = x;
                        }
                        box[0] = y < box[0] ? y : box[0];
                        box[1] = x < box[1] ? x : box[1];
                        box[2] = y > box[2] ? y : box[2];
                        box[3] = x > box[3] ? x : box[3];
                    }
    }
    nerve_xfree(seed);
    int st2 = nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    return st ? st : st2;
}
