/* Explanations of a classifier's decision for one input (COURSE.md §11; docs/explain.md):
 * saliency |dS_c/dI| (Simonyan et al. 2014) on the unnormalised class score S_c, maxed over
 * the colour channels; the signed input gradient through plain back-propagation, the
 * deconvnet (Zeiler & Fergus 2014) and guided back-propagation (Springenberg et al. 2015),
 * which differ only in how a ReLU passes a gradient back (nerve_graph_set_relu_backward);
 * SmoothGrad (Smilkov et al. 2017); occlusion sensitivity (Zeiler & Fergus); Grad-CAM
 * (Selvaraju et al. 2017). Each gives one map of the input's height and width; pictures
 * put the input, each map in a colour map and each map over the input side by side, with
 * class names in the captions (drawn on src/io/picture.c's canvas). Also the model-
 * randomisation sanity check (Adebayo et al. 2018): the Spearman rank correlation of a
 * trained model's maps with those of the same network re-initialised. */
#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const METHOD_NAMES[NERVE_EXPLAIN_COUNT] = {
    "saliency", "backprop", "deconvnet", "guided", "smoothgrad", "occlusion", "gradcam"};

const char *nerve_explain_method_name(int method)
{
    return method >= 0 && method < NERVE_EXPLAIN_COUNT ? METHOD_NAMES[method] : "?";
}

int nerve_explain_method_parse(const char *name)
{
    for (int i = 0; name && i < NERVE_EXPLAIN_COUNT; i++)
        if (!strcmp(name, METHOD_NAMES[i]))
            return i;
    return nerve_set_error(NERVE_ERR_ARG, "unknown explanation method '%s'; expected one of: saliency, "
                           "backprop, deconvnet, guided, smoothgrad, occlusion, gradcam", name ? name : "");
}

void nerve_explain_defaults(nerve_explain_options *o)
{
    memset(o, 0, sizeof *o);
    o->target = -1;
    o->samples = 50;
    o->noise = 0.15f;
    o->patch = 0;
    o->stride = 0;
    o->fill = 0.0f;
    o->seed = 1;
}

/* The input as [channels, h, w]: image inputs as they are; a vector of s*s values as one
 * s x s plane (an MLP on flattened images), any other vector as one row. */
int nerve_explain_geometry(nerve_model *m, int *channels, int *h, int *w)
{
    int nd, dims[NERVE_MAX_DIMS];
    if (!m || nerve_node_shape(nerve_model_graph(m), nerve_model_input(m), &nd, dims) < 0)
        return nerve_set_error(NERVE_ERR_ARG, "explain: null model");
    if (nd == 4) {
        *channels = dims[1];
        *h = dims[2];
        *w = dims[3];
        return NERVE_OK;
    }
    if (nd != 2)
        return nerve_set_error(NERVE_ERR_ARG, "explain: inputs of %d dimensions are neither images nor vectors",
                               nd - 1);
    int s = (int)lround(sqrt((double)dims[1]));
    *channels = 1;
    *h = s * s == dims[1] ? s : 1;
    *w = s * s == dims[1] ? s : dims[1];
    return NERVE_OK;
}

int nerve_explain_prepare(nerve_model *m, int max_batch)
{
    if (!m)
        return nerve_set_error(NERVE_ERR_ARG, "explain: null model");
    nerve_head_info h = nerve_model_head(m);
    if (h.task != NERVE_TASK_CLASSIFY || !h.logits)
        return nerve_set_error(NERVE_ERR_ARG, "explanations need a classifier whose output is class scores "
                               "([softmax] head); this model's head solves '%s'", nerve_task_name(h.task));
    nerve_graph *g = nerve_model_graph(m);
    int st = NERVE_OK;
    if (!nerve_graph_is_compiled(g)) {
        nerve_graph_keep_buffers(g, 1); /* Grad-CAM reads a layer's value and gradient */
        st = nerve_model_compile(m, max_batch > 0 ? max_batch : 64);
    }
    if (st == NERVE_OK)
        st = nerve_input_set_requires_grad(g, nerve_model_input(m), 1);
    nerve_graph_set_training(g, 0);
    return st;
}

static int argmax(const float *v, int k)
{
    int b = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[b])
            b = j;
    return b;
}

static int classes_of(nerve_graph *g, int logits)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, logits, &nd, dims);
    return nd == 2 ? dims[1] : -1;
}

/* Forward pass of images x [n, d] (n <= the compiled batch); cls[i] < 0 becomes the
 * predicted class; score[i] (may be NULL) receives S_c. */
static int forward_scores(nerve_model *m, const float *x, int n, size_t d, int *cls, float *score)
{
    nerve_graph *g = nerve_model_graph(m);
    int logits = nerve_model_output(m), k = classes_of(g, logits), st;
    if ((st = nerve_graph_set_batch(g, n)) != NERVE_OK)
        return st;
    memcpy(nerve_value(g, nerve_model_input(m)).data, x, (size_t)n * d * sizeof(float));
    if ((st = nerve_forward(g, logits)) != NERVE_OK)
        return st;
    const float *z = nerve_value(g, logits).data;
    for (int i = 0; i < n; i++) {
        if (cls[i] < 0)
            cls[i] = argmax(z + (size_t)i * k, k);
        if (cls[i] >= k)
            return nerve_set_error(NERVE_ERR_ARG, "explain: class %d, but the model has %d classes", cls[i], k);
        if (score)
            score[i] = z[(size_t)i * k + cls[i]];
    }
    return NERVE_OK;
}

/* dS_c/dx for images x [n, d] into grad [n, d], ReLUs passing gradients back by `mode`;
 * after it the graph holds the forward and backward of this batch (Grad-CAM reads them). */
int nerve_explain_gradient(nerve_model *m, const float *x, int n, const int *cls, int mode, float *grad)
{
    nerve_graph *g = nerve_model_graph(m);
    int input = nerve_model_input(m), logits = nerve_model_output(m), k = classes_of(g, logits);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    size_t d = nerve_shape_numel(nd - 1, dims + 1);
    if (n < 1 || n > 1 << 20 || k < 1)
        return nerve_set_error(NERVE_ERR_ARG, "explain: bad batch %d", n);
    int *c = nerve_xmalloc((size_t)n * sizeof *c);
    float *seed = nerve_xcalloc((size_t)n * k, sizeof *seed);
    int st = c && seed ? NERVE_OK : NERVE_ERR_NOMEM;
    if (st == NERVE_OK) {
        memcpy(c, cls, (size_t)n * sizeof *c);
        st = forward_scores(m, x, n, d, c, NULL);
    }
    for (int i = 0; st == NERVE_OK && i < n; i++)
        seed[(size_t)i * k + c[i]] = 1.0f;
    if (st == NERVE_OK)
        st = nerve_graph_set_relu_backward(g, (nerve_relu_backward)mode);
    if (st == NERVE_OK)
        st = nerve_backward_seeded(g, logits, seed, NERVE_BACKWARD_INPUTS_ONLY);
    nerve_graph_set_relu_backward(g, NERVE_RELU_BACKPROP);
    if (st == NERVE_OK) {
        nerve_tensor gr = nerve_grad(g, input);
        if (!gr.data)
            st = nerve_set_error(NERVE_ERR_STATE, "explain: the input has no gradient (call nerve_explain_prepare)");
        else
            memcpy(grad, gr.data, (size_t)n * d * sizeof(float));
    }
    nerve_xfree(c);
    nerve_xfree(seed);
    return st;
}

/* |g| maxed over channels (absolute) or the signed value of largest magnitude (signed). */
static void channel_max(const float *g, int channels, size_t plane, int absolute, float *map)
{
    for (size_t p = 0; p < plane; p++) {
        float best = g[p];
        for (int c = 1; c < channels; c++) {
            float v = g[(size_t)c * plane + p];
            if (fabsf(v) > fabsf(best))
                best = v;
        }
        map[p] = absolute ? fabsf(best) : best;
    }
}

/* The last layer whose output is a stack of maps [C, H, W]: Grad-CAM's default. */
static int gradcam_layer(nerve_model *m, const char *layer, int *node)
{
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    if (layer) {
        *node = nerve_node_find(g, layer);
        if (*node < 0 || nerve_node_shape(g, *node, &nd, dims) < 0 || nd != 4)
            return nerve_set_error(NERVE_ERR_ARG, "Grad-CAM needs a layer with maps [C, H, W]; '%s' %s", layer,
                                   *node < 0 ? "is not a layer of the model" : "is not one");
        return NERVE_OK;
    }
    *node = -1;
    for (int i = 0; i < nerve_model_layer_count(m); i++) {
        nerve_layer_info li;
        if (nerve_model_layer_info(m, i, &li) == NERVE_OK && li.ndim == 3 && nerve_node_find(g, li.name) >= 0)
            *node = nerve_node_find(g, li.name);
    }
    return *node >= 0 ? NERVE_OK
                      : nerve_set_error(NERVE_ERR_ARG, "Grad-CAM needs a layer with maps [C, H, W]; the model has none");
}

/* Bilinear resize of a [sh, sw] map to [h, w] (pixel centres aligned). */
static void resize_bilinear(const float *src, int sh, int sw, float *dst, int h, int w)
{
    for (int y = 0; y < h; y++) {
        float fy = ((float)y + 0.5f) * (float)sh / (float)h - 0.5f;
        fy = fy < 0 ? 0 : fy > (float)(sh - 1) ? (float)(sh - 1) : fy;
        int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : y0;
        float ty = fy - (float)y0;
        for (int x = 0; x < w; x++) {
            float fx = ((float)x + 0.5f) * (float)sw / (float)w - 0.5f;
            fx = fx < 0 ? 0 : fx > (float)(sw - 1) ? (float)(sw - 1) : fx;
            int x0 = (int)fx, x1 = x0 + 1 < sw ? x0 + 1 : x0;
            float tx = fx - (float)x0;
            float top = src[y0 * sw + x0] * (1 - tx) + src[y0 * sw + x1] * tx;
            float bot = src[y1 * sw + x0] * (1 - tx) + src[y1 * sw + x1] * tx;
            dst[y * w + x] = top * (1 - ty) + bot * ty;
        }
    }
}

static int gradcam(nerve_model *m, const float *x, int cls, const char *layer, int h, int w, float *map)
{
    int node, st = gradcam_layer(m, layer, &node);
    if (st)
        return st;
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, nerve_model_input(m), &nd, dims);
    float *gx = nerve_xmalloc(nerve_shape_numel(nd - 1, dims + 1) * sizeof(float));
    if (!gx)
        return NERVE_ERR_NOMEM;
    st = nerve_explain_gradient(m, x, 1, &cls, NERVE_RELU_BACKPROP, gx);
    nerve_xfree(gx);
    if (st)
        return st;
    nerve_tensor a = nerve_value(g, node), ga = nerve_grad(g, node);
    if (!ga.data)
        return nerve_set_error(NERVE_ERR_STATE, "Grad-CAM: layer '%s' keeps no gradient (prepare the model with "
                               "nerve_explain_prepare before compiling it)", nerve_node_name(g, node));
    int kc = a.dims[1], ah = a.dims[2], aw = a.dims[3];
    size_t plane = (size_t)ah * aw;
    float *cam = nerve_xcalloc(plane, sizeof *cam);
    if (!cam)
        return NERVE_ERR_NOMEM;
    for (int c = 0; c < kc; c++) { /* alpha_c = mean of dS/dA_c over the map */
        double alpha = 0;
        for (size_t p = 0; p < plane; p++)
            alpha += ga.data[(size_t)c * plane + p];
        alpha /= (double)plane;
        for (size_t p = 0; p < plane; p++)
            cam[p] += (float)alpha * a.data[(size_t)c * plane + p];
    }
    for (size_t p = 0; p < plane; p++)
        cam[p] = cam[p] > 0 ? cam[p] : 0;
    resize_bilinear(cam, ah, aw, map, h, w);
    nerve_xfree(cam);
    return NERVE_OK;
}

/* Mean of |dS_c/d(x + noise)| maxed over channels, over o->samples noisy copies. */
static int smoothgrad(nerve_model *m, const float *x, size_t d, int channels, size_t plane, int cls,
                      const nerve_explain_options *o, float *map)
{
    int batch = nerve_graph_batch(nerve_model_graph(m));
    float lo = x[0], hi = x[0];
    for (size_t i = 1; i < d; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    float sigma = o->noise * (hi > lo ? hi - lo : 1.0f);
    float *xs = nerve_xmalloc((size_t)batch * d * sizeof(float)), *gs = nerve_xmalloc((size_t)batch * d * sizeof(float));
    float *one = nerve_xmalloc(plane * sizeof(float));
    int *cs = nerve_xmalloc((size_t)batch * sizeof(int));
    int st = xs && gs && one && cs ? NERVE_OK : NERVE_ERR_NOMEM;
    nerve_rng rng;
    nerve_rng_seed(&rng, o->seed);
    memset(map, 0, plane * sizeof(float));
    int samples = o->samples > 0 ? o->samples : 50;
    for (int done = 0; st == NERVE_OK && done < samples;) {
        int n = samples - done < batch ? samples - done : batch;
        for (int i = 0; i < n; i++) {
            cs[i] = cls;
            for (size_t j = 0; j < d; j++)
                xs[(size_t)i * d + j] = x[j] + sigma * nerve_rng_normal(&rng);
        }
        if ((st = nerve_explain_gradient(m, xs, n, cs, NERVE_RELU_BACKPROP, gs)) != NERVE_OK)
            break;
        for (int i = 0; i < n; i++) {
            channel_max(gs + (size_t)i * d, channels, plane, 1, one);
            for (size_t p = 0; p < plane; p++)
                map[p] += one[p] / (float)samples;
        }
        done += n;
    }
    nerve_xfree(xs);
    nerve_xfree(gs);
    nerve_xfree(one);
    nerve_xfree(cs);
    return st;
}

/* S_c(x) - S_c(x with a patch x patch square set to fill), averaged at each pixel over the
 * squares that cover it (stride apart; the last square touches the far edge). */
static int occlusion(nerve_model *m, const float *x, size_t d, int channels, int h, int w, int cls,
                     float base, const nerve_explain_options *o, float *map)
{
    int patch = o->patch > 0 ? o->patch : (h < w ? h : w) / 4 > 1 ? (h < w ? h : w) / 4 : 1;
    int stride = o->stride > 0 ? o->stride : patch / 3 > 1 ? patch / 3 : 1;
    patch = patch < h ? patch : h;
    int pw = patch < w ? patch : w;
    int ny = (h - patch + stride - 1) / stride + 1, nx = (w - pw + stride - 1) / stride + 1;
    int batch = nerve_graph_batch(nerve_model_graph(m)), total = ny * nx;
    size_t plane = (size_t)h * w;
    float *xs = nerve_xmalloc((size_t)batch * d * sizeof(float)), *sc = nerve_xmalloc((size_t)batch * sizeof(float));
    float *count = nerve_xcalloc(plane, sizeof(float));
    int *cs = nerve_xmalloc((size_t)batch * sizeof(int));
    int st = xs && sc && count && cs ? NERVE_OK : NERVE_ERR_NOMEM;
    memset(map, 0, plane * sizeof(float));
    for (int done = 0; st == NERVE_OK && done < total;) {
        int n = total - done < batch ? total - done : batch;
        for (int i = 0; i < n; i++) {
            int py = (done + i) / nx, px = (done + i) % nx;
            int y0 = py * stride + patch > h ? h - patch : py * stride, x0 = px * stride + pw > w ? w - pw : px * stride;
            float *xi = xs + (size_t)i * d;
            memcpy(xi, x, d * sizeof(float));
            for (int c = 0; c < channels; c++)
                for (int y = y0; y < y0 + patch; y++)
                    for (int xx = x0; xx < x0 + pw; xx++)
                        xi[(size_t)c * plane + (size_t)y * w + xx] = o->fill;
            cs[i] = cls;
        }
        if ((st = forward_scores(m, xs, n, d, cs, sc)) != NERVE_OK)
            break;
        for (int i = 0; i < n; i++) {
            int py = (done + i) / nx, px = (done + i) % nx;
            int y0 = py * stride + patch > h ? h - patch : py * stride, x0 = px * stride + pw > w ? w - pw : px * stride;
            for (int y = y0; y < y0 + patch; y++)
                for (int xx = x0; xx < x0 + pw; xx++) {
                    map[(size_t)y * w + xx] += base - sc[i];
                    count[(size_t)y * w + xx] += 1;
                }
        }
        done += n;
    }
    for (size_t p = 0; st == NERVE_OK && p < plane; p++)
        map[p] = count[p] > 0 ? map[p] / count[p] : 0;
    nerve_xfree(xs);
    nerve_xfree(sc);
    nerve_xfree(count);
    nerve_xfree(cs);
    return st;
}

int nerve_explain(nerve_model *m, const float *image, int method, const nerve_explain_options *opt, float *map,
                  int *cls_out, float *score_out)
{
    if (!m || !image || !map)
        return nerve_set_error(NERVE_ERR_ARG, "explain: null argument");
    if (method < 0 || method >= NERVE_EXPLAIN_COUNT)
        return nerve_set_error(NERVE_ERR_ARG, "explain: unknown method %d", method);
    nerve_explain_options o;
    if (opt)
        o = *opt;
    else
        nerve_explain_defaults(&o);
    nerve_graph *g = nerve_model_graph(m);
    if (!nerve_graph_is_compiled(g) || !nerve_input_requires_grad(g, nerve_model_input(m)))
        return nerve_set_error(NERVE_ERR_STATE, "explain: call nerve_explain_prepare first");
    int channels, h, w, st = nerve_explain_geometry(m, &channels, &h, &w);
    if (st)
        return st;
    size_t plane = (size_t)h * w, d = plane * (size_t)channels;
    int batch = nerve_graph_batch(g), cls = o.target;
    float score = 0;
    int training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    st = forward_scores(m, image, 1, d, &cls, &score);
    float *grad = st == NERVE_OK ? nerve_xmalloc(d * sizeof(float)) : NULL;
    if (st == NERVE_OK && !grad)
        st = NERVE_ERR_NOMEM;
    if (st == NERVE_OK) {
        switch (method) {
        case NERVE_EXPLAIN_SALIENCY:
        case NERVE_EXPLAIN_BACKPROP:
        case NERVE_EXPLAIN_DECONVNET:
        case NERVE_EXPLAIN_GUIDED: {
            int mode = method == NERVE_EXPLAIN_DECONVNET ? NERVE_RELU_DECONVNET
                       : method == NERVE_EXPLAIN_GUIDED  ? NERVE_RELU_GUIDED
                                                         : NERVE_RELU_BACKPROP;
            st = nerve_explain_gradient(m, image, 1, &cls, mode, grad);
            if (st == NERVE_OK)
                channel_max(grad, channels, plane, method == NERVE_EXPLAIN_SALIENCY, map);
            break;
        }
        case NERVE_EXPLAIN_SMOOTHGRAD:
            st = smoothgrad(m, image, d, channels, plane, cls, &o, map);
            break;
        case NERVE_EXPLAIN_OCCLUSION:
            st = occlusion(m, image, d, channels, h, w, cls, score, &o, map);
            break;
        default:
            st = gradcam(m, image, cls, o.layer, h, w, map);
        }
    }
    nerve_xfree(grad);
    int st2 = nerve_graph_set_batch(g, batch);
    nerve_graph_set_training(g, training);
    if (st == NERVE_OK)
        st = st2;
    if (st == NERVE_OK) {
        if (cls_out)
            *cls_out = cls;
        if (score_out)
            *score_out = score;
    }
    return st;
}

/* ---- pictures -------------------------------------------------------------------------- */

static const float INK[3] = {0.1f, 0.1f, 0.1f};

/* The input's pixel (x, y) as RGB in [0, 1] (each image scaled to its own range). */
static void input_rgb(const float *img, int channels, size_t plane, float lo, float hi, size_t p, float rgb[3])
{
    float s = hi > lo ? 1.0f / (hi - lo) : 0.0f;
    for (int k = 0; k < 3; k++) {
        int c = channels == 3 ? k : 0;
        rgb[k] = (img[(size_t)c * plane + p] - lo) * s;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* The colour scale of a map: the 99th percentile of |value| (a few extreme pixels, such as
 * the corners of z-scored images whose tiny spread multiplies the gradient, would otherwise
 * wash out the rest; they saturate instead), or the largest |value| if that is 0. */
static int map_scale(const float *v, size_t n, float *scale)
{
    float *a = nerve_xmalloc(n * sizeof *a);
    if (!a)
        return NERVE_ERR_NOMEM;
    for (size_t p = 0; p < n; p++) {
        if (!isfinite(v[p])) {
            nerve_xfree(a);
            return NERVE_ERR_NUMERIC;
        }
        a[p] = fabsf(v[p]);
    }
    qsort(a, n, sizeof *a, cmp_float);
    *scale = a[(size_t)(0.99 * (double)(n - 1))];
    if (!(*scale > 0))
        *scale = a[n - 1];
    nerve_xfree(a);
    return NERVE_OK;
}

int nerve_explain_picture(const char *path, const float *images, int n, int channels, int h, int w,
                          const float *maps, int k, const char *const *titles, const char *const *captions)
{
    if (!path || !images || !maps || n < 1 || k < 1 || channels < 1 || h < 1 || w < 1)
        return nerve_set_error(NERVE_ERR_ARG, "explain picture: nothing to draw");
    int longer = h > w ? h : w, scale = longer >= 96 ? 1 : (96 + longer - 1) / longer;
    int tw = w * scale, th = h * scale, gap = 6, text = 10, cols = 1 + 2 * k;
    int width = gap + cols * (tw + gap), row_h = 2 * text + th + gap;
    int height = gap + n * row_h;
    nerve_canvas cv;
    int st = nerve_canvas_init(&cv, width, height, 1.0f);
    if (st)
        return st;
    size_t plane = (size_t)h * w;
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        const float *img = images + (size_t)i * channels * plane;
        float lo = img[0], hi = img[0];
        for (size_t p = 0; p < (size_t)channels * plane; p++) {
            lo = fminf(lo, img[p]);
            hi = fmaxf(hi, img[p]);
        }
        int y0 = gap + i * row_h;
        if (captions && captions[i])
            nerve_canvas_text(&cv, gap, y0, captions[i], 1, INK);
        int ty = y0 + 2 * text;
        nerve_canvas_text(&cv, gap, y0 + text, "input", 1, INK);
        for (int col = 0; col < cols; col++) {
            int x0 = gap + col * (tw + gap);
            const float *mp = col ? maps + ((size_t)i * k + (size_t)(col - 1) / 2) * plane : NULL;
            float mx = 0;
            if (mp && (st = map_scale(mp, plane, &mx)) != NERVE_OK) {
                nerve_set_error(NERVE_ERR_NUMERIC, "explain picture: map %d of image %d is not finite",
                                (col - 1) / 2, i);
                break;
            }
            if (col && titles && titles[(col - 1) / 2]) {
                char t[64];
                snprintf(t, sizeof t, "%s%s", titles[(col - 1) / 2], col % 2 ? "" : " over");
                nerve_canvas_text(&cv, x0, y0 + text, t, 1, INK);
            }
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    size_t p = (size_t)y * w + x;
                    float rgb[3], heat[3];
                    input_rgb(img, channels, plane, lo, hi, p, rgb);
                    if (col) {
                        float v = mx > 0 ? mp[p] / mx : 0;
                        nerve_colormap_diverging(v, heat);
                        if (col % 2) /* the map alone */
                            memcpy(rgb, heat, sizeof heat);
                        else { /* over the input, in gray, weighted by |v| */
                            float a = fabsf(v) * 0.85f, gray = (rgb[0] + rgb[1] + rgb[2]) / 3.0f;
                            for (int c = 0; c < 3; c++)
                                rgb[c] = (1 - a) * gray + a * heat[c];
                        }
                    }
                    nerve_canvas_rect(&cv, x0 + x * scale, ty + y * scale, scale, scale, rgb);
                }
        }
    }
    if (st == NERVE_OK)
        st = nerve_canvas_write_png(&cv, path);
    nerve_canvas_free(&cv);
    return st;
}

/* ---- the randomisation sanity check ---------------------------------------------------- */

typedef struct {
    float v;
    int i;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    float x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Ranks 1..n of v with ties given their mean rank. */
static int ranks(const float *v, size_t n, double *r)
{
    ranked *t = nerve_xmalloc(n * sizeof *t);
    if (!t)
        return NERVE_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        t[i].v = v[i];
        t[i].i = (int)i;
    }
    qsort(t, n, sizeof *t, cmp_ranked);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && t[j + 1].v == t[i].v)
            j++;
        double mean = (double)(i + j) / 2.0 + 1.0;
        for (size_t q = i; q <= j; q++)
            r[t[q].i] = mean;
        i = j + 1;
    }
    nerve_xfree(t);
    return NERVE_OK;
}

int nerve_spearman(const float *a, const float *b, size_t n, double *rho)
{
    if (!a || !b || !rho || n < 2 || n > (size_t)1 << 30)
        return nerve_set_error(NERVE_ERR_ARG, "spearman: need two arrays of 2 or more values");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return nerve_set_error(NERVE_ERR_NUMERIC, "spearman: value %zu is not finite", i);
    double *ra = nerve_xmalloc(n * sizeof *ra), *rb = nerve_xmalloc(n * sizeof *rb);
    int st = ra && rb ? ranks(a, n, ra) : NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        st = ranks(b, n, rb);
    if (st == NERVE_OK) { /* Pearson's correlation of the ranks (exact with ties) */
        double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < n; i++) {
            ma += ra[i];
            mb += rb[i];
        }
        ma /= (double)n;
        mb /= (double)n;
        for (size_t i = 0; i < n; i++) {
            sab += (ra[i] - ma) * (rb[i] - mb);
            saa += (ra[i] - ma) * (ra[i] - ma);
            sbb += (rb[i] - mb) * (rb[i] - mb);
        }
        *rho = saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
    }
    nerve_xfree(ra);
    nerve_xfree(rb);
    return st;
}

int nerve_explain_randomization(nerve_model *trained, const nerve_dataset *d, int n, int method,
                                const nerve_explain_options *o, double *mean_rho, double *rhos)
{
    if (!trained || !d || !d->x || !mean_rho || n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "randomization check: null argument or no images");
    if (n > d->n)
        n = d->n;
    /* the same network from its cfg, freshly initialised; the input statistics (a fixed
     * preprocessing step, not learned weights) copied */
    nerve_model *fresh = nerve_model_from_cfg(nerve_model_cfg_text(trained), "<checkpoint cfg>");
    if (!fresh)
        return nerve_last_status() ? nerve_last_status() : NERVE_ERR_NOMEM;
    nerve_graph *gt = nerve_model_graph(trained), *gf = nerve_model_graph(fresh);
    int st = NERVE_OK;
    for (int id = 0; id < nerve_node_count(gt) && st == NERVE_OK; id++) {
        const char *name = nerve_node_name(gt, id);
        if (nerve_node_kind(gt, id) != NERVE_NODE_STATE || strncmp(name, "input.", 6))
            continue;
        int fid = nerve_node_find(gf, name);
        nerve_tensor a = nerve_value(gt, id), b = nerve_value(gf, fid);
        if (fid < 0 || !a.data || !b.data || nerve_tensor_numel(&a) != nerve_tensor_numel(&b))
            st = nerve_set_error(NERVE_ERR_STATE, "randomization check: '%s' differs between the models", name);
        else
            memcpy(b.data, a.data, nerve_tensor_numel(&a) * sizeof(float));
    }
    int batch = nerve_graph_batch(gt);
    if (st == NERVE_OK)
        st = nerve_explain_prepare(fresh, batch > 0 ? batch : 64);
    int channels = 1, h = 1, w = 1;
    if (st == NERVE_OK)
        st = nerve_explain_geometry(trained, &channels, &h, &w);
    size_t plane = (size_t)h * w, dim = plane * (size_t)channels;
    if (st == NERVE_OK && dim != d->sample_numel)
        st = nerve_set_error(NERVE_ERR_SHAPE, "the data has samples of %zu values but the model takes %zu",
                             d->sample_numel, dim);
    float *ma = nerve_xmalloc(plane * sizeof(float)), *mb = nerve_xmalloc(plane * sizeof(float));
    if (st == NERVE_OK && (!ma || !mb))
        st = NERVE_ERR_NOMEM;
    double sum = 0;
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        nerve_explain_options oi = *o;
        int cls = -1;
        const float *x = d->x + (size_t)i * dim;
        /* both maps explain the trained model's predicted class */
        if ((st = nerve_explain(trained, x, method, &oi, ma, &cls, NULL)) != NERVE_OK)
            break;
        oi.target = cls;
        if ((st = nerve_explain(fresh, x, method, &oi, mb, NULL, NULL)) != NERVE_OK)
            break;
        double rho;
        if ((st = nerve_spearman(ma, mb, plane, &rho)) != NERVE_OK)
            break;
        if (rhos)
            rhos[i] = rho;
        sum += rho;
    }
    nerve_xfree(ma);
    nerve_xfree(mb);
    nerve_model_free(fresh);
    if (st == NERVE_OK)
        *mean_rho = sum / n;
    return st;
}
