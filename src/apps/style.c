/* Texture synthesis and neural style transfer (Gatys, Ecker & Bethge 2015, 2016; COURSE.md
 * §11; docs/explain.md). A layer's response to an image is F [N, M]: N maps of M = H W
 * positions. Its Gram matrix G = F F^T [N, N] keeps which features occur together and drops
 * where. Against a style image's Grams A_l the style loss is sum_l w_l E_l with
 * E_l = 1/(4 N_l^2 M_l^2) sum (G_l - A_l)^2, whose gradient is dE_l/dF_l = (G_l - A_l) F_l /
 * (N_l^2 M_l^2); against a content image's response P the content loss is 1/2 sum (F - P)^2,
 * gradient F - P. The image minimises alpha content + beta style (+ tv times the total
 * variation: feature inversion, Mahendran & Vedaldi 2015) by Adam on its pixels,
 * clamped to the valid range; each layer's gradient is back-propagated from that layer
 * (nerve_backward_seeded, inputs only) and the input gradients summed. Any compiled graph
 * whose buffers are private (nerve_graph_keep_buffers) serves: a cfg model, a checkpoint, an
 * ONNX import. */
#include "../core/core.h"
#include "../graph/graph.h"

#include <math.h>
#include <string.h>

int nerve_gram(const float *f, int n, int m, float *gram)
{
    if (!f || !gram || n < 1 || m < 1)
        return nerve_set_error(NERVE_ERR_ARG, "gram: null argument or empty map");
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            const float *a = f + (size_t)i * m, *b = f + (size_t)j * m;
            for (int p = 0; p < m; p++)
                s += (double)a[p] * b[p];
            gram[(size_t)i * n + j] = gram[(size_t)j * n + i] = (float)s;
        }
    return NERVE_OK;
}

void nerve_style_defaults(nerve_style_options *o)
{
    memset(o, 0, sizeof *o);
    o->content_layer = -1;
    o->alpha = 1.0f;
    o->beta = 1e3f;
    o->steps = 500;
    o->lr = 0.02f;
    o->lo = 0;
    o->hi = 1;
    o->seed = 1;
    o->report_every = 50;
}

typedef struct {
    int node, n, m;      /* node, maps, positions */
    float *gram_target;  /* A [n, n], or NULL: not a style layer */
    float weight;        /* w_l */
    float *content;      /* P [n, m], or NULL: not the content layer */
    float *seed, *gram;  /* scratch */
} style_layer;

struct nerve_style {
    nerve_graph *g;
    int input;
    size_t d;
    nerve_style_options o;
    style_layer *l;
    int n_layers;
    float *grad;
    int channels, h, w; /* an image input's geometry (the TV prior) */
};

void nerve_style_free(nerve_style *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_layers; i++) {
        nerve_xfree(s->l[i].gram_target);
        nerve_xfree(s->l[i].content);
        nerve_xfree(s->l[i].seed);
        nerve_xfree(s->l[i].gram);
    }
    nerve_xfree(s->l);
    nerve_xfree(s->grad);
    nerve_xfree(s);
}

/* The index of node in s->l, added if new; -1 after an error. */
static int layer_slot(nerve_style *s, int node)
{
    for (int i = 0; i < s->n_layers; i++)
        if (s->l[i].node == node)
            return i;
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(s->g, node, &nd, dims) < 0 || nd < 2 || dims[0] != 1) {
        nerve_set_error(NERVE_ERR_ARG, "style: node %d ('%s') is not a layer of one sample", node,
                        node >= 0 && node < nerve_node_count(s->g) ? nerve_node_name(s->g, node) : "?");
        return -1;
    }
    style_layer *L = &s->l[s->n_layers];
    memset(L, 0, sizeof *L);
    L->node = node;
    L->n = dims[1]; /* maps [C, H, W]: C maps of H W positions; a vector: C maps of 1 */
    L->m = (int)(nerve_shape_numel(nd - 1, dims + 1) / (size_t)dims[1]);
    L->seed = nerve_xmalloc((size_t)L->n * L->m * sizeof(float));
    L->gram = nerve_xmalloc((size_t)L->n * L->n * sizeof(float));
    if (!L->seed || !L->gram) {
        nerve_xfree(L->seed);
        nerve_xfree(L->gram);
        return -1;
    }
    return s->n_layers++;
}

/* Forward of image x through every layer used (each forward computes its layer's ancestors). */
static int run_layers(nerve_style *s, const float *x)
{
    int st0 = nerve_graph_set_batch(s->g, 1);
    if (st0)
        return st0;
    memcpy(nerve_value(s->g, s->input).data, x, s->d * sizeof(float));
    for (int i = 0; i < s->n_layers; i++) {
        int st = nerve_forward(s->g, s->l[i].node);
        if (st)
            return st;
    }
    return NERVE_OK;
}

nerve_style *nerve_style_create(nerve_graph *g, int input, const nerve_style_options *opt, const float *style_image,
                                const float *content_image)
{
    nerve_style_options o;
    if (opt)
        o = *opt;
    else
        nerve_style_defaults(&o);
    if (!g || (o.n_style > 0 && (!style_image || !o.style_layers)) || o.n_style < 0 || (o.n_style == 0 && !content_image)) {
        nerve_set_error(NERVE_ERR_ARG, "style: need a graph and a style image with style layers, or a content image");
        return NULL;
    }
    if (!nerve_graph_is_compiled(g) || !g->keep_buffers || !nerve_input_requires_grad(g, input)) {
        nerve_set_error(NERVE_ERR_STATE, "style: the graph must be compiled with private buffers "
                        "(nerve_graph_keep_buffers), its input asking for a gradient (nerve_style_prepare "
                        "does both for a model)");
        return NULL;
    }
    if (nerve_graph_set_batch(g, 1) != NERVE_OK)
        return NULL;
    if (content_image && o.content_layer < 0) {
        nerve_set_error(NERVE_ERR_ARG, "style: a content image needs a content layer");
        return NULL;
    }
    if (!(o.lo < o.hi) || !isfinite(o.lo) || !isfinite(o.hi) || !(o.lr > 0) || !isfinite(o.lr) || o.steps < 0 ||
        !isfinite(o.alpha) || !isfinite(o.beta) || !isfinite(o.tv) || o.alpha < 0 || o.beta < 0 || o.tv < 0) {
        nerve_set_error(NERVE_ERR_ARG, "style: need a range lo < hi, a learning rate > 0, steps >= 0 and finite "
                        "weights alpha, beta, tv >= 0");
        return NULL;
    }
    int ind, idims[NERVE_MAX_DIMS];
    if (o.tv > 0 && (nerve_node_shape(g, input, &ind, idims) < 0 || ind != 4)) {
        nerve_set_error(NERVE_ERR_ARG, "style: the total-variation prior needs an image input [C, H, W]");
        return NULL;
    }
    nerve_style *s = nerve_xcalloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->g = g;
    s->input = input;
    s->o = o;
    s->o.style_layers = NULL; /* not kept: the caller's array */
    s->o.style_weights = NULL;
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, input, &nd, dims);
    s->d = nerve_shape_numel(nd - 1, dims + 1);
    if (nd == 4) {
        s->channels = dims[1];
        s->h = dims[2];
        s->w = dims[3];
    }
    s->l = nerve_xcalloc((size_t)o.n_style + 1, sizeof *s->l);
    s->grad = nerve_xmalloc(s->d * sizeof(float));
    int st = s->l && s->grad ? NERVE_OK : NERVE_ERR_NOMEM;
    for (int i = 0; st == NERVE_OK && i < o.n_style; i++) {
        int k = layer_slot(s, o.style_layers[i]);
        if (k < 0) {
            st = NERVE_ERR_ARG;
            break;
        }
        if (s->l[k].gram_target) {
            st = nerve_set_error(NERVE_ERR_ARG, "style: layer '%s' is named twice", nerve_node_name(g, s->l[k].node));
            break;
        }
        s->l[k].weight = o.style_weights ? o.style_weights[i] : 1.0f / (float)o.n_style;
        s->l[k].gram_target = nerve_xmalloc((size_t)s->l[k].n * s->l[k].n * sizeof(float));
        if (!s->l[k].gram_target)
            st = NERVE_ERR_NOMEM;
    }
    int ck = -1;
    if (st == NERVE_OK && content_image && (ck = layer_slot(s, o.content_layer)) < 0)
        st = NERVE_ERR_ARG;
    if (st == NERVE_OK && ck >= 0 && !(s->l[ck].content = nerve_xmalloc((size_t)s->l[ck].n * s->l[ck].m * sizeof(float))))
        st = NERVE_ERR_NOMEM;
    int training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    if (st == NERVE_OK && o.n_style > 0)
        st = run_layers(s, style_image);
    for (int i = 0; st == NERVE_OK && i < s->n_layers; i++)
        if (s->l[i].gram_target)
            st = nerve_gram(nerve_value(g, s->l[i].node).data, s->l[i].n, s->l[i].m, s->l[i].gram_target);
    if (st == NERVE_OK && ck >= 0 && (st = run_layers(s, content_image)) == NERVE_OK)
        memcpy(s->l[ck].content, nerve_value(g, s->l[ck].node).data, (size_t)s->l[ck].n * s->l[ck].m * sizeof(float));
    nerve_graph_set_training(g, training);
    if (st) {
        nerve_style_free(s);
        return NULL;
    }
    return s;
}

/* tv sum over channels and pixels of (x[i][j+1] - x[i][j])^2 + (x[i+1][j] - x[i][j])^2, its
 * gradient times weight added into grad (may be NULL). */
static double total_variation(const nerve_style *s, const float *x, float weight, float *grad)
{
    double sum = 0;
    for (int c = 0; c < s->channels; c++) {
        const float *p = x + (size_t)c * s->h * s->w;
        float *gp = grad ? grad + (size_t)c * s->h * s->w : NULL;
        for (int i = 0; i < s->h; i++)
            for (int j = 0; j < s->w; j++) {
                size_t at = (size_t)i * s->w + j;
                if (j + 1 < s->w) {
                    float e = p[at + 1] - p[at];
                    sum += (double)e * e;
                    if (gp) {
                        gp[at + 1] += 2 * weight * e;
                        gp[at] -= 2 * weight * e;
                    }
                }
                if (i + 1 < s->h) {
                    float e = p[at + s->w] - p[at];
                    sum += (double)e * e;
                    if (gp) {
                        gp[at + s->w] += 2 * weight * e;
                        gp[at] -= 2 * weight * e;
                    }
                }
            }
    }
    return sum;
}

int nerve_style_loss(nerve_style *s, const float *image, double *losses, float *grad)
{
    if (!s || !image)
        return nerve_set_error(NERVE_ERR_ARG, "style loss: null argument");
    nerve_graph *g = s->g;
    int training = nerve_graph_training(g);
    nerve_graph_set_training(g, 0);
    int st = run_layers(s, image);
    double lc = 0, ls = 0;
    if (grad)
        memset(grad, 0, s->d * sizeof(float));
    for (int i = 0; st == NERVE_OK && i < s->n_layers; i++) {
        style_layer *L = &s->l[i];
        const float *f = nerve_value(g, L->node).data;
        size_t nm = (size_t)L->n * L->m;
        memset(L->seed, 0, nm * sizeof(float));
        if (L->content) {
            double sum = 0;
            for (size_t p = 0; p < nm; p++) {
                float e = f[p] - L->content[p];
                sum += (double)e * e;
                L->seed[p] = s->o.alpha * e;
            }
            lc += 0.5 * sum;
        }
        if (L->gram_target) {
            if ((st = nerve_gram(f, L->n, L->m, L->gram)) != NERVE_OK)
                break;
            double nn = (double)L->n * L->n, mm = (double)L->m * L->m, sum = 0;
            for (size_t p = 0; p < (size_t)L->n * L->n; p++) {
                L->gram[p] -= L->gram_target[p]; /* G - A */
                sum += (double)L->gram[p] * L->gram[p];
            }
            ls += L->weight * sum / (4.0 * nn * mm);
            /* beta w_l (G - A) F / (N^2 M^2) */
            float c = (float)(s->o.beta * L->weight / (nn * mm));
            for (int a = 0; a < L->n; a++)
                for (int b = 0; b < L->n; b++) {
                    float gab = c * L->gram[(size_t)a * L->n + b];
                    if (gab == 0)
                        continue;
                    const float *fb = f + (size_t)b * L->m;
                    float *sa = L->seed + (size_t)a * L->m;
                    for (int p = 0; p < L->m; p++)
                        sa[p] += gab * fb[p];
                }
        }
        if (!grad)
            continue;
        if ((st = nerve_backward_seeded(g, L->node, L->seed, NERVE_BACKWARD_INPUTS_ONLY)) != NERVE_OK)
            break;
        const float *gi = nerve_grad(g, s->input).data;
        for (size_t p = 0; p < s->d; p++)
            grad[p] += gi[p];
    }
    nerve_graph_set_training(g, training);
    double tv = st == NERVE_OK && s->o.tv > 0 ? total_variation(s, image, s->o.tv, grad) : 0;
    if (st == NERVE_OK && losses) {
        losses[0] = lc;
        losses[1] = ls;
        losses[2] = tv;
    }
    return st;
}

int nerve_style_run(nerve_style *s, float *image, double *first, double *last)
{
    if (!s || !image)
        return nerve_set_error(NERVE_ERR_ARG, "style: null argument");
    const nerve_style_options *o = &s->o;
    float *m1 = nerve_xcalloc(s->d, sizeof(float)), *m2 = nerve_xcalloc(s->d, sizeof(float));
    int st = m1 && m2 ? NERVE_OK : NERVE_ERR_NOMEM;
    double L[3] = {0, 0, 0};
    for (int t = 0; st == NERVE_OK && t <= o->steps; t++) {
        if ((st = nerve_style_loss(s, image, L, t < o->steps ? s->grad : NULL)) != NERVE_OK)
            break;
        if (!isfinite(L[0]) || !isfinite(L[1]) || !isfinite(L[2])) {
            st = nerve_set_error(NERVE_ERR_NUMERIC, "style: the loss is not finite at step %d", t);
            break;
        }
        if (t == 0 && first)
            memcpy(first, L, sizeof L);
        if (o->progress && ((o->report_every > 0 && t % o->report_every == 0) || t == o->steps) &&
            o->progress(t, L, o->user))
            break;
        if (t == o->steps)
            break;
        /* Adam (0.9, 0.999, 1e-8) on the pixels, then back into the range */
        double b1 = 1 - pow(0.9, t + 1), b2 = 1 - pow(0.999, t + 1);
        for (size_t p = 0; p < s->d; p++) {
            float gp = s->grad[p];
            m1[p] = 0.9f * m1[p] + 0.1f * gp;
            m2[p] = 0.999f * m2[p] + 0.001f * gp * gp;
            float v = image[p] - o->lr * (float)((m1[p] / b1) / (sqrt(m2[p] / b2) + 1e-8));
            image[p] = v < o->lo ? o->lo : v > o->hi ? o->hi : v;
        }
    }
    if (st == NERVE_OK && last)
        memcpy(last, L, sizeof L);
    nerve_xfree(m1);
    nerve_xfree(m2);
    return st;
}

int nerve_style_prepare(nerve_model *m)
{
    if (!m)
        return nerve_set_error(NERVE_ERR_ARG, "style: null model");
    nerve_graph *g = nerve_model_graph(m);
    int st = NERVE_OK;
    if (!nerve_graph_is_compiled(g)) {
        nerve_graph_keep_buffers(g, 1);
        st = nerve_model_compile(m, 1);
    }
    if (st == NERVE_OK)
        st = nerve_graph_set_batch(g, 1);
    if (st == NERVE_OK)
        st = nerve_input_set_requires_grad(g, nerve_model_input(m), 1);
    nerve_graph_set_training(g, 0);
    return st;
}
