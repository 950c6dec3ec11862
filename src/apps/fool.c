/* Fooling images and the adversarial patch (COURSE.md §11; docs/explain.md). Both ascend
 * log p_t, the log-softmax of a target class, with respect to the input: fooling images
 * (Nguyen et al. 2015) from uniform noise until the model is confident; the patch (Brown et
 * al. 2017) as one square shared by every image, trained at random places, then at the place
 * where it works best. The gradient of log p_t back-propagates the seed onehot(t) - softmax
 * at the class scores (nerve_backward_seeded, inputs only). */
#include "../core/core.h"

#include <math.h>
#include <string.h>

static int classes_of(nerve_graph *g, int logits)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, logits, &nd, dims);
    return nd == 2 ? dims[1] : -1;
}

static int check_prepared(nerve_model *m)
{
    if (!m)
        return nerve_set_error(NERVE_ERR_ARG, "fooling: null model");
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) || !nerve_input_requires_grad(g, nerve_model_input(m)))
        return nerve_set_error(NERVE_ERR_STATE, "fooling: call nerve_explain_prepare first");
    return NERVE_OK;
}

int nerve_logprob_gradient(nerve_model *m, const float *x, int n, const int *targets, float *grad, float *logp)
{
    int st = check_prepared(m);
    if (st)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    int input = nerve_model_input(m), logits = nerve_model_output(m), k = classes_of(g, logits);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    size_t d = nerve_shape_numel(nd - 1, dims + 1);
    if (!x || !targets || n < 1 || k < 1)
        return nerve_set_error(NERVE_ERR_ARG, "log-probability gradient: null argument or empty batch");
    for (int i = 0; i < n; i++)
        if (targets[i] < 0 || targets[i] >= k)
            return nerve_set_error(NERVE_ERR_ARG, "target class %d, but the model has %d classes", targets[i], k);
    if ((st = nerve_graph_set_batch(g, n)) != NERVE_OK)
        return st;
    nerve_graph_set_training(g, 0);
    memcpy(nerve_value(g, input).data, x, (size_t)n * d * sizeof(float));
    if ((st = nerve_forward(g, logits)) != NERVE_OK)
        return st;
    float *seed = nerve_xmalloc((size_t)n * k * sizeof *seed);
    if (!seed)
        return NERVE_ERR_NOMEM;
    const float *z = nerve_value(g, logits).data;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * k;
        float mx = zi[0];
        for (int j = 1; j < k; j++)
            mx = zi[j] > mx ? zi[j] : mx;
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += exp((double)zi[j] - mx);
        double lse = mx + log(sum);
        if (logp)
            logp[i] = (float)(zi[targets[i]] - lse);
        for (int j = 0; j < k; j++)
            seed[(size_t)i * k + j] = (j == targets[i]) - (float)exp((double)zi[j] - lse);
    }
    if (grad) {
        st = nerve_backward_seeded(g, logits, seed, NERVE_BACKWARD_INPUTS_ONLY);
        if (st == NERVE_OK)
            memcpy(grad, nerve_grad(g, input).data, (size_t)n * d * sizeof(float));
    }
    nerve_xfree(seed);
    return st;
}

void nerve_fool_defaults(nerve_fool_options *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 1000;
    o->step = 0.01f;
    o->confidence = 0.99f;
    o->lo = 0;
    o->hi = 1;
    o->seed = 1;
}

static int input_dim(nerve_model *m, size_t *d)
{
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(nerve_model_graph(m), nerve_model_input(m), &nd, dims) < 0)
        return nerve_set_error(NERVE_ERR_ARG, "fooling: the model has no input shape");
    *d = nerve_shape_numel(nd - 1, dims + 1);
    return NERVE_OK;
}

int nerve_fool(nerve_model *m, const int *targets, int n, const nerve_fool_options *opt, float *images, float *conf,
               int *steps)
{
    nerve_fool_options o;
    if (opt)
        o = *opt;
    else
        nerve_fool_defaults(&o);
    size_t d = 0;
    int st = check_prepared(m);
    if (st || (st = input_dim(m, &d)) != NERVE_OK)
        return st;
    if (!targets || !images || n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "fooling: null argument or no target");
    if (o.steps < 0 || !(o.step > 0) || !isfinite(o.step) || !(o.lo < o.hi) || !isfinite(o.lo) || !isfinite(o.hi) ||
        !(o.confidence > 0 && o.confidence <= 1))
        return nerve_set_error(NERVE_ERR_ARG, "fooling: steps >= 0, a step > 0, a range lo < hi and a confidence "
                               "in (0, 1] are needed");
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g), training = nerve_graph_training(g);
    float *grad = nerve_xalloc_floats((size_t)batch * d), *lp = nerve_xalloc_floats((size_t)batch);
    int *active = nerve_xmalloc((size_t)batch * sizeof *active);
    if (!grad || !lp || !active)
        st = NERVE_ERR_NOMEM;
    nerve_rng rng;
    nerve_rng_seed(&rng, o.seed);
    for (size_t i = 0; st == NERVE_OK && i < (size_t)n * d; i++)
        images[i] = o.lo + (o.hi - o.lo) * nerve_rng_uniform(&rng);
    float want = logf(o.confidence);
    for (int first = 0; st == NERVE_OK && first < n; first += batch) {
        int b = n - first < batch ? n - first : batch;
        float *x = images + (size_t)first * d;
        const int *t = targets + first;
        for (int i = 0; i < b; i++)
            active[i] = 1;
        for (int s = 0; st == NERVE_OK; s++) {
            if ((st = nerve_logprob_gradient(m, x, b, t, grad, lp)) != NERVE_OK)
                break;
            int left = 0;
            for (int i = 0; i < b; i++) {
                if (active[i] && (lp[i] >= want || s == o.steps)) {
                    active[i] = 0;
                    if (conf)
                        conf[first + i] = expf(lp[i]);
                    if (steps)
                        steps[first + i] = s;
                }
                if (!active[i])
                    continue;
                left++;
                float *xi = x + (size_t)i * d;
                const float *gi = grad + (size_t)i * d;
                for (size_t j = 0; j < d; j++) {
                    float v = xi[j] + o.step * (gi[j] > 0 ? 1.0f : gi[j] < 0 ? -1.0f : 0.0f);
                    xi[j] = v < o.lo ? o.lo : v > o.hi ? o.hi : v;
                }
            }
            if (!left)
                break;
        }
    }
    nerve_xfree_aligned(grad);
    nerve_xfree_aligned(lp);
    nerve_xfree(active);
    int st2 = nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    return st ? st : st2;
}

/* ---- the patch ------------------------------------------------------------------------- */

void nerve_patch_defaults(nerve_patch_options *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 400;
    o->step = 0.02f;
    o->stride = 2;
    o->search = 256;
    o->lo = 0;
    o->hi = 1;
    o->seed = 1;
}

void nerve_patch_paste(float *image, int channels, int h, int w, const float *patch, int size, int py, int px)
{
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < size && py + y < h; y++)
            for (int x = 0; x < size && px + x < w; x++)
                image[((size_t)c * h + py + y) * w + px + x] = patch[((size_t)c * size + y) * size + x];
}

typedef struct {
    int channels, h, w, size, batch;
    size_t d;
} patch_geom;

static int patch_setup(nerve_model *m, const nerve_dataset *data, nerve_patch_options *o, patch_geom *pg)
{
    int st = check_prepared(m);
    if (st)
        return st;
    if (!data || !data->x || data->n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "patch attack: no images");
    if ((st = nerve_explain_geometry(m, &pg->channels, &pg->h, &pg->w)) != NERVE_OK)
        return st;
    pg->d = (size_t)pg->channels * pg->h * pg->w;
    if (pg->d != data->sample_numel)
        return nerve_set_error(NERVE_ERR_SHAPE, "the data has samples of %zu values but the model takes %zu",
                               data->sample_numel, pg->d);
    int shorter = pg->h < pg->w ? pg->h : pg->w;
    if (o->size <= 0)
        o->size = shorter / 4 > 1 ? shorter / 4 : 1;
    pg->size = o->size;
    int k = classes_of(nerve_model_graph(m), nerve_model_output(m));
    if (o->size > shorter || o->target < 0 || o->target >= k || o->steps < 1 || o->stride < 1 ||
        !(o->step > 0) || !isfinite(o->step) || !(o->lo < o->hi) || !isfinite(o->lo) || !isfinite(o->hi))
        return nerve_set_error(NERVE_ERR_ARG, "patch attack: need a target class in 0..%d (got %d), a size of 1.."
                               "%d (got %d), steps and a stride >= 1, a step > 0 and a range lo < hi", k - 1,
                               o->target, shorter, o->size);
    pg->batch = nerve_graph_batch(nerve_model_graph(m));
    if (o->batch > 0 && o->batch < pg->batch)
        pg->batch = o->batch;
    return NERVE_OK;
}

/* Mean log p_t over the first n samples of d with the patch at (py, px). */
static int score_place(nerve_model *m, const nerve_dataset *data, const patch_geom *pg, const float *patch, int t,
                       int n, int py, int px, float *x, float *lp, int *tg, double *mean)
{
    double sum = 0;
    for (int first = 0; first < n; first += pg->batch) {
        int b = n - first < pg->batch ? n - first : pg->batch;
        memcpy(x, data->x + (size_t)first * pg->d, (size_t)b * pg->d * sizeof(float));
        for (int i = 0; i < b; i++) {
            nerve_patch_paste(x + (size_t)i * pg->d, pg->channels, pg->h, pg->w, patch, pg->size, py, px);
            tg[i] = t;
        }
        int st = nerve_logprob_gradient(m, x, b, tg, NULL, lp);
        if (st)
            return st;
        for (int i = 0; i < b; i++)
            sum += lp[i];
    }
    *mean = sum / n;
    return NERVE_OK;
}

int nerve_patch_train(nerve_model *m, const nerve_dataset *train, const nerve_patch_options *opt, float *patch,
                      int *py_out, int *px_out)
{
    nerve_patch_options o;
    if (opt)
        o = *opt;
    else
        nerve_patch_defaults(&o);
    patch_geom pg;
    int st = patch_setup(m, train, &o, &pg);
    if (st)
        return st;
    if (!patch)
        return nerve_set_error(NERVE_ERR_ARG, "patch attack: null patch");
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g), training = nerve_graph_training(g), s = pg.size;
    size_t psz = (size_t)pg.channels * s * s;
    float *x = nerve_xalloc_floats((size_t)pg.batch * pg.d), *grad = nerve_xalloc_floats((size_t)pg.batch * pg.d);
    float *pgrad = nerve_xalloc_floats(psz), *lp = nerve_xalloc_floats((size_t)pg.batch);
    int *tg = nerve_xmalloc((size_t)pg.batch * sizeof *tg), *ys = nerve_xmalloc((size_t)pg.batch * sizeof *ys);
    int *xs = nerve_xmalloc((size_t)pg.batch * sizeof *xs);
    if (!x || !grad || !pgrad || !lp || !tg || !ys || !xs)
        st = NERVE_ERR_NOMEM;
    nerve_rng rng;
    nerve_rng_seed(&rng, o.seed);
    for (size_t i = 0; i < psz; i++)
        patch[i] = o.lo + (o.hi - o.lo) * nerve_rng_uniform(&rng);
    int half = o.steps / 2, py = 0, px = 0, ny = pg.h - s + 1, nx = pg.w - s + 1;
    for (int step = 0; st == NERVE_OK && step < o.steps; step++) {
        if (step == half) { /* the placement: the best of the grid over `search` images */
            int n = o.search < train->n ? (o.search > 0 ? o.search : 1) : train->n;
            double best = -INFINITY;
            for (int y = 0; st == NERVE_OK && y < ny; y += o.stride)
                for (int xx = 0; st == NERVE_OK && xx < nx; xx += o.stride) {
                    double mean;
                    st = score_place(m, train, &pg, patch, o.target, n, y, xx, x, lp, tg, &mean);
                    if (st == NERVE_OK && mean > best) {
                        best = mean;
                        py = y;
                        px = xx;
                    }
                }
            if (st)
                break;
        }
        int b = pg.batch;
        for (int i = 0; i < b; i++) {
            int j = (int)nerve_rng_below(&rng, (uint32_t)train->n);
            memcpy(x + (size_t)i * pg.d, train->x + (size_t)j * pg.d, pg.d * sizeof(float));
            ys[i] = step < half ? (int)nerve_rng_below(&rng, (uint32_t)ny) : py;
            xs[i] = step < half ? (int)nerve_rng_below(&rng, (uint32_t)nx) : px;
            nerve_patch_paste(x + (size_t)i * pg.d, pg.channels, pg.h, pg.w, patch, s, ys[i], xs[i]);
            tg[i] = o.target;
        }
        if ((st = nerve_logprob_gradient(m, x, b, tg, grad, lp)) != NERVE_OK)
            break;
        /* d(mean log p_t)/d(patch): the input gradient summed over the pasted copies */
        memset(pgrad, 0, psz * sizeof(float));
        for (int i = 0; i < b; i++)
            for (int c = 0; c < pg.channels; c++)
                for (int y = 0; y < s; y++)
                    for (int xx = 0; xx < s; xx++)
                        pgrad[((size_t)c * s + y) * s + xx] +=
                            grad[(size_t)i * pg.d + ((size_t)c * pg.h + ys[i] + y) * pg.w + xs[i] + xx];
        float lr = o.step * (1.0f - 0.9f * (float)step / (float)o.steps);
        for (size_t i = 0; i < psz; i++) {
            float v = patch[i] + lr * (pgrad[i] > 0 ? 1.0f : pgrad[i] < 0 ? -1.0f : 0.0f);
            patch[i] = v < o.lo ? o.lo : v > o.hi ? o.hi : v;
        }
    }
    nerve_xfree_aligned(x);
    nerve_xfree_aligned(grad);
    nerve_xfree_aligned(pgrad);
    nerve_xfree_aligned(lp);
    nerve_xfree(tg);
    nerve_xfree(ys);
    nerve_xfree(xs);
    int st2 = nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    if (st == NERVE_OK && st2 == NERVE_OK) {
        if (py_out)
            *py_out = py;
        if (px_out)
            *px_out = px;
    }
    return st ? st : st2;
}

int nerve_patch_evaluate(nerve_model *m, const nerve_dataset *data, const nerve_patch_options *opt,
                         const float *patch, int py, int px, int limit, double *at_place, double *at_random,
                         int *counted)
{
    nerve_patch_options o;
    if (opt)
        o = *opt;
    else
        nerve_patch_defaults(&o);
    patch_geom pg;
    int st = patch_setup(m, data, &o, &pg);
    if (st)
        return st;
    if (!patch || !data->y || py < 0 || px < 0 || py + pg.size > pg.h || px + pg.size > pg.w)
        return nerve_set_error(NERVE_ERR_ARG, "patch evaluation: null patch, no labels, or a place (%d, %d) that "
                               "does not hold a %d-pixel patch in %dx%d", py, px, pg.size, pg.h, pg.w);
    nerve_graph *g = nerve_model_graph(m);
    int batch = nerve_graph_batch(g), training = nerve_graph_training(g);
    int logits = nerve_model_output(m), k = classes_of(g, logits);
    float *x = nerve_xalloc_floats((size_t)pg.batch * pg.d);
    if (!x)
        st = NERVE_ERR_NOMEM;
    nerve_rng rng;
    nerve_rng_seed(&rng, o.seed + 1);
    int n = limit > 0 && limit < data->n ? limit : data->n, total = 0, hit[2] = {0, 0};
    nerve_graph_set_training(g, 0);
    for (int mode = 0; mode < 2 && st == NERVE_OK; mode++) {
        if (mode == 1 && !at_random)
            break;
        for (int first = 0; st == NERVE_OK && first < n;) {
            int b = 0;
            for (; first < n && b < pg.batch; first++) {
                if ((int)data->y[first] == o.target)
                    continue;
                float *xi = x + (size_t)b++ * pg.d;
                memcpy(xi, data->x + (size_t)first * pg.d, pg.d * sizeof(float));
                int y = mode ? (int)nerve_rng_below(&rng, (uint32_t)(pg.h - pg.size + 1)) : py;
                int xx = mode ? (int)nerve_rng_below(&rng, (uint32_t)(pg.w - pg.size + 1)) : px;
                nerve_patch_paste(xi, pg.channels, pg.h, pg.w, patch, pg.size, y, xx);
            }
            if (!b)
                break;
            if ((st = nerve_graph_set_batch(g, b)) != NERVE_OK)
                break;
            memcpy(nerve_value(g, nerve_model_input(m)).data, x, (size_t)b * pg.d * sizeof(float));
            if ((st = nerve_forward(g, logits)) != NERVE_OK)
                break;
            const float *z = nerve_value(g, logits).data;
            for (int i = 0; i < b; i++) {
                int best = 0;
                for (int j = 1; j < k; j++)
                    if (z[(size_t)i * k + j] > z[(size_t)i * k + best])
                        best = j;
                hit[mode] += best == o.target;
            }
            if (!mode)
                total += b;
        }
    }
    nerve_xfree_aligned(x);
    int st2 = nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    if (st == NERVE_OK && !total)
        st = nerve_set_error(NERVE_ERR_ARG, "patch evaluation: every sample is of the target class");
    if (st == NERVE_OK) {
        if (at_place)
            *at_place = (double)hit[0] / total;
        if (at_random)
            *at_random = (double)hit[1] / total;
        if (counted)
            *counted = total;
    }
    return st ? st : st2;
}
