/* Convolutional layers of cfg files: [convolutional], [deconvolutional], [maxpool],
 * [avgpool], [local], [normalization], [route], [shortcut], [upsample], [reorg].
 *
 * Each builder reads its section (darknet's keys with darknet's meanings, plus nerve's),
 * adds its nodes after b->x, leaves its output in b->x and sets b->flops. Image layers
 * take [N, C, H, W]. See docs/cfg.md for every key. */
#include "model.h"

#include "../core/core.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_FILTERS (1 << 16)
#define MAX_KERNEL 1024
/* ---- shared pieces ------------------------------------------------------------------ */

/* The input of an image layer: [N, C, H, W]; dims receives that shape (N = 1 as built). */
static int image_input(build_ctx *b, int *dims)
{
    int nd;
    nerve_node_shape(b->g, b->x, &nd, dims);
    if (nd == 4)
        return NERVE_OK;
    char shape[64];
    return cfg_error(b->d, NERVE_ERR_SHAPE, b->s->line,
                     "[%s] needs an image (channels, height, width) per sample; the layer "
                     "before outputs %s per sample", b->s->name,
                     nerve_shape_str(nd - 1, dims + 1, shape, sizeof shape));
}

static int weight_param(build_ctx *b, const char *base, const char *role, int ndim,
                        const int *dims, int *id)
{
    char full[96];
    snprintf(full, sizeof full, "%s.%s", base, role);
    *id = nerve_param(b->g, full, ndim, dims);
    return *id < 0 ? graph_fail(b, *id) : NERVE_OK;
}

/* "<base>.bias" of the given shape, zeros, no decay. */
static int bias_param(build_ctx *b, const char *base, int ndim, const int *dims, int *id)
{
    TRY(weight_param(b, base, "bias", ndim, dims, id));
    nerve_param_set_decay(b->g, *id, 0);
    return NERVE_OK;
}

static int check_weights(build_ctx *b, double n)
{
    if (n <= MAX_WEIGHTS)
        return NERVE_OK;
    return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                     "[%s] needs %.4g weights in one tensor; at most %d", b->s->name, n,
                     MAX_WEIGHTS);
}

/* darknet's pad=1 (padding = size/2) or padding=N (explicit, per side); nerve's same=1. */
static int conv_padding(build_ctx *b, int size, nerve_conv_config *cc)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    int pad = 0, padding = 0;
    GET(has_pad, cfg_get_bool(d, s, "pad", &pad));
    GET(has_padding, cfg_get_int(d, s, "padding", 0, MAX_KERNEL, &padding));
    TRY(cfg_get_bool(d, s, "same", &cc->same));
    if (has_pad && has_padding)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "padding")->line,
                         "give pad= (1: size/2 zeros per side, darknet) or padding= (zeros per "
                         "side), not both");
    if (cc->same && (has_pad || has_padding))
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "same")->line,
                         "same=1 chooses the padding itself; remove pad= / padding=");
    int p = pad ? size / 2 : padding;
    cc->pad_begin[0] = cc->pad_begin[1] = cc->pad_end[0] = cc->pad_end[1] = p;
    return NERVE_OK;
}

/* The settings shared by [convolutional], [deconvolutional] and [local]. */
typedef struct conv_spec {
    int filters, size;
    nerve_conv_config cc;
    nerve_act act;
    nerve_init init;
    int bn, bias;
} conv_spec;

static int parse_conv_spec(build_ctx *b, conv_spec *sp, int grouped)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    memset(sp, 0, sizeof *sp);
    sp->cc = nerve_conv_default();
    sp->size = 1; /* darknet's default */
    sp->bias = 1;
    GET(has_filters, cfg_get_int(d, s, "filters", 1, MAX_FILTERS, &sp->filters));
    if (!has_filters)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "[%s] needs filters= (the number of output channels)", s->name);
    TRY(cfg_get_int(d, s, "size", 1, MAX_KERNEL, &sp->size));
    int stride = 1, dilation = 1;
    TRY(cfg_get_int(d, s, "stride", 1, MAX_KERNEL, &stride));
    sp->cc.stride[0] = sp->cc.stride[1] = stride;
    if (cfg_find(s, "dilation")) {
        TRY(cfg_get_int(d, s, "dilation", 1, MAX_KERNEL, &dilation));
        sp->cc.dilation[0] = sp->cc.dilation[1] = dilation;
    }
    if (grouped)
        TRY(cfg_get_int(d, s, "groups", 1, MAX_FILTERS, &sp->cc.groups));
    TRY(conv_padding(b, sp->size, &sp->cc));
    if (cfg_find(s, "flip"))
        TRY(cfg_get_bool(d, s, "flip", &sp->cc.flip));
    TRY(get_activation(b, &sp->act));
    if (cfg_find(s, "batch_normalize"))
        TRY(cfg_get_bool(d, s, "batch_normalize", &sp->bn));
    GET(has_bias, cfg_get_bool(d, s, "bias", &sp->bias));
    if (sp->bn && has_bias && sp->bias)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "bias")->line,
                         "bias=1 with batch_normalize=1: the batch norm's shift is the bias; "
                         "expected bias=0 or no bias=");
    if (sp->bn)
        sp->bias = 0;
    return get_init(b, sp->act, &sp->init);
}

/* Batch norm "<name>.bn" (batch_normalize=1), then the activation: darknet's order. */
static int norm_and_activate(build_ctx *b, int y, int bn, nerve_act act, const char *base,
                             int *out)
{
    size_t n = sample_numel(b->g, y);
    if (bn) {
        char name[64];
        snprintf(name, sizeof name, "%.50s.bn", base);
        if ((y = nerve_layer_batchnorm(b->g, y, BN_MOMENTUM, BN_EPS, name)) < 0)
            return graph_fail(b, y);
        b->flops += 2.0 * (double)n;
    }
    if (act.type != NERVE_ACT_IDENTITY) {
        if ((y = by_name_act(b->g, y, act)) < 0)
            return graph_fail(b, y);
        b->flops += (double)n;
    }
    *out = y;
    return NERVE_OK;
}

/* A convolution of b->x's image x (channels c) with "<base>.weight" [O, C/G, k, k] and
 * "<base>.bias" [O] when bias != 0; *out receives the conv node. */
static int add_conv(build_ctx *b, int x, int c, const conv_spec *sp, const char *base,
                    int *out)
{
    int groups = sp->cc.groups;
    if (c % groups || sp->filters % groups)
        return cfg_error(b->d, NERVE_ERR_SHAPE, b->s->line,
                         "[%s] groups=%d must divide the %d input channels and the %d filters",
                         b->s->name, groups, c, sp->filters);
    int wd[4] = {sp->filters, c / groups, sp->size, sp->size};
    TRY(check_weights(b, (double)wd[0] * wd[1] * wd[2] * wd[3]));
    int w, bias = -1;
    TRY(weight_param(b, base, "weight", 4, wd, &w));
    if (!b->no_init && nerve_init_param(b->g, w, sp->init, &b->rng) < 0)
        return graph_fail(b, nerve_last_status());
    if (sp->bias)
        TRY(bias_param(b, base, 1, &sp->filters, &bias));
    int y = nerve_conv(b->g, x, w, bias, &sp->cc);
    if (y < 0)
        return graph_fail(b, y);
    double outputs = (double)sample_numel(b->g, y);
    b->flops += 2.0 * outputs * (c / groups) * sp->size * sp->size + (sp->bias ? outputs : 0);
    *out = y;
    return NERVE_OK;
}

/* ---- [convolutional], [deconvolutional], [local] ------------------------------------- */

const char *const convolutional_keys[] = {
    "filters", "size", "stride", "pad", "padding", "dilation", "groups", "same", "flip",
    "batch_normalize", "bias", "activation", "init", "name", NULL};

int build_convolutional(build_ctx *b)
{
    conv_spec sp;
    int dims[NERVE_MAX_DIMS], y = -1;
    TRY(image_input(b, dims));
    TRY(parse_conv_spec(b, &sp, 1));
    TRY(add_conv(b, b->x, dims[1], &sp, b->name, &y));
    TRY(norm_and_activate(b, y, sp.bn, sp.act, b->name, &b->x));
    return NERVE_OK;
}

const char *const deconvolutional_keys[] = {
    "filters", "size", "stride", "pad", "padding", "output_padding", "dilation", "groups",
    "same", "flip", "batch_normalize", "bias", "activation", "init", "name", NULL};

/* Transposed convolution: "<name>.weight" [C, O/G, k, k]. */
int build_deconvolutional(build_ctx *b)
{
    conv_spec sp;
    int dims[NERVE_MAX_DIMS];
    TRY(image_input(b, dims));
    TRY(parse_conv_spec(b, &sp, 1));
    int op = 0, c = dims[1], groups = sp.cc.groups;
    TRY(cfg_get_int(b->d, b->s, "output_padding", 0, MAX_KERNEL, &op));
    if (c % groups || sp.filters % groups)
        return cfg_error(b->d, NERVE_ERR_SHAPE, b->s->line,
                         "[deconvolutional] groups=%d must divide the %d input channels and the "
                         "%d filters", groups, c, sp.filters);
    int wd[4] = {c, sp.filters / groups, sp.size, sp.size};
    TRY(check_weights(b, (double)wd[0] * wd[1] * wd[2] * wd[3]));
    int w, bias = -1;
    TRY(weight_param(b, b->name, "weight", 4, wd, &w));
    if (!b->no_init && nerve_init_param(b->g, w, sp.init, &b->rng) < 0)
        return graph_fail(b, nerve_last_status());
    if (sp.bias)
        TRY(bias_param(b, b->name, 1, &sp.filters, &bias));
    int y = nerve_conv_transpose(b->g, b->x, w, bias, &sp.cc, (int[3]){op, op, 0});
    if (y < 0)
        return graph_fail(b, y);
    double in = (double)sample_numel(b->g, b->x);
    b->flops = 2.0 * in * wd[1] * sp.size * sp.size +
               (sp.bias ? (double)sample_numel(b->g, y) : 0);
    return norm_and_activate(b, y, sp.bn, sp.act, b->name, &b->x);
}

const char *const local_keys[] = {"filters", "size", "stride", "pad", "padding", "same",
                                  "flip", "bias", "activation", "init", "name", NULL};

/* In 64 bits: the sizes come from the cfg (padding, stride up to MAX_KERNEL, maps up to the
 * per-sample limit), and build_local checks the product before it makes a tensor of it. */
static int64_t out_size(int n, int k, int s, int pb, int pe)
{
    return ((int64_t)n + pb + pe - k) / s + 1;
}

/* Locally connected: "<name>.weight" [OH*OW, O, C, k, k] and, as darknet has it, one bias
 * per output element "<name>.bias" [O, OH, OW]. */
int build_local(build_ctx *b)
{
    conv_spec sp;
    int dims[NERVE_MAX_DIMS];
    TRY(image_input(b, dims));
    TRY(parse_conv_spec(b, &sp, 0));
    const nerve_conv_config *cc = &sp.cc;
    int64_t oh = cc->same ? ((int64_t)dims[2] + cc->stride[0] - 1) / cc->stride[0]
                          : out_size(dims[2], sp.size, cc->stride[0], cc->pad_begin[0],
                                     cc->pad_end[0]);
    int64_t ow = cc->same ? ((int64_t)dims[3] + cc->stride[1] - 1) / cc->stride[1]
                          : out_size(dims[3], sp.size, cc->stride[1], cc->pad_begin[1],
                                     cc->pad_end[1]);
    if (oh < 1 || ow < 1)
        return cfg_error(b->d, NERVE_ERR_SHAPE, b->s->line,
                         "[local] a %dx%d kernel does not fit the %dx%d input", sp.size,
                         sp.size, dims[2], dims[3]);
    /* every factor is below 2^28: the double product is exact enough to compare */
    double n = (double)oh * ow * sp.filters * dims[1] * sp.size * sp.size;
    TRY(check_weights(b, n)); /* so oh * ow, a factor of n, fits an int */
    int wd[5] = {(int)(oh * ow), sp.filters, dims[1], sp.size, sp.size};
    int w, bias = -1;
    TRY(weight_param(b, b->name, "weight", 5, wd, &w));
    /* Fans of one position's kernel [O, C, k, k], not of the stacked tensor. */
    if (!b->no_init)
        nerve_init_fill(nerve_value(b->g, w).data, (size_t)n, 4, wd + 1, sp.init, &b->rng);
    if (sp.bias)
        TRY(bias_param(b, b->name, 3, (int[]){sp.filters, (int)oh, (int)ow}, &bias));
    int y = nerve_local(b->g, b->x, w, bias, cc);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = 2.0 * n + (sp.bias ? (double)sample_numel(b->g, y) : 0);
    return norm_and_activate(b, y, 0, sp.act, b->name, &b->x);
}

/* ---- pooling ------------------------------------------------------------------------- */

const char *const maxpool_keys[] = {"size", "stride", "padding", "ceil_mode", "name", NULL};

static int pool_node(build_ctx *b, int x, const nerve_pool_config *pc, int *out)
{
    int y = nerve_pool(b->g, x, pc);
    if (y < 0)
        return graph_fail(b, y);
    *out = y;
    return NERVE_OK;
}

/* ceil_mode=1 (PyTorch's): symmetric padding/2 per side, sizes rounded up. */
static int ceil_pool(build_ctx *b, nerve_pool_config *pc, int total, int *y)
{
    if (total % 2)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "padding")->line,
                         "with ceil_mode=1, padding=%d must be even (padding/2 zeros per side)",
                         total);
    pc->pad[0] = pc->pad[1] = total / 2;
    pc->ceil_mode = 1;
    return pool_node(b, b->x, pc, y);
}

/* darknet's total padding P: windows start at o*s - floor(P/2) and there are
 * floor((n + P - k)/s) + 1 of them; out-of-image positions never win. nerve's pool pads
 * symmetrically, so an odd P is mapped exactly: at stride 1 by padding ceil(P/2) per side
 * and dropping the first row and column, at larger strides by padding floor(P/2) and
 * rounding the size up (ceil mode) when darknet's formula gives one more window. */
static int darknet_pool(build_ctx *b, nerve_pool_config *pc, int total, const int *dims,
                        int *y)
{
    int k = pc->kernel[0], s = pc->stride[0], half = total / 2;
    if (total % 2 && s > 1 && (dims[2] + 2 * half < k || dims[3] + 2 * half < k)) {
        /* a map smaller than the window (darknet: a 2x2 pool of a 1x1 map gives 1x1): the odd
         * pixel of padding darknet adds at the end as a copy of the last row and column,
         * which a max never prefers to what it copies */
        int begin[4] = {0, 0, 0, 0}, end[4] = {0, 0, 1, 1};
        int xp = nerve_pad(b->g, b->x, begin, end, 4, NERVE_PAD_EDGE, 0);
        if (xp < 0)
            return graph_fail(b, xp);
        pc->pad[0] = pc->pad[1] = half;
        return pool_node(b, xp, pc, y);
    }
    if (total % 2 == 0 || s > 1) {
        pc->pad[0] = pc->pad[1] = half;
        int a = dims[2] + 2 * half - k, c = dims[3] + 2 * half - k;
        pc->ceil_mode = total % 2 && ((a + 1) % s == 0 || (c + 1) % s == 0);
        if (pc->ceil_mode && (a + 1) % s != (c + 1) % s)
            return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                             "[maxpool] an odd padding=%d on a non-square %dx%d input cannot be "
                             "mapped; give an even padding", total, dims[2], dims[3]);
        return pool_node(b, b->x, pc, y);
    }
    pc->pad[0] = pc->pad[1] = half + 1;
    int p = -1;
    TRY(pool_node(b, b->x, pc, &p));
    int ph = by_name_slice(b->g, p, 2, 1, dims[2] + total - k + 2);
    int pw = ph < 0 ? ph : by_name_slice(b->g, ph, 3, 1, dims[3] + total - k + 2);
    if (pw < 0)
        return graph_fail(b, pw);
    *y = pw;
    return NERVE_OK;
}

int build_maxpool(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    int dims[NERVE_MAX_DIMS];
    TRY(image_input(b, dims));
    int stride = 1, size = 0, ceil_mode = 0;
    TRY(cfg_get_int(d, s, "stride", 1, MAX_KERNEL, &stride));
    size = stride; /* darknet: size defaults to the stride, the stride to 1 */
    TRY(cfg_get_int(d, s, "size", 1, MAX_KERNEL, &size));
    TRY(cfg_get_bool(d, s, "ceil_mode", &ceil_mode));
    int total = ceil_mode ? 0 : size - 1;
    TRY(cfg_get_int(d, s, "padding", 0, 2 * size - 2, &total));
    if (total / 2 + total % 2 > size / 2)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "padding")->line,
                         "padding=%d is too large for size=%d: at most %d", total, size,
                         size % 2 ? size - 1 : size);
    nerve_pool_config pc = nerve_pool_config_make(NERVE_POOL_MAX, size, stride, 0);
    int y = -1;
    TRY(ceil_mode ? ceil_pool(b, &pc, total, &y) : darknet_pool(b, &pc, total, dims, &y));
    b->flops = (double)sample_numel(b->g, y) * size * size;
    b->x = y;
    return NERVE_OK;
}

const char *const avgpool_keys[] = {"size", "stride", "padding", "ceil_mode",
                                    "count_include_pad", "name", NULL};

/* darknet's [avgpool] is global: [N, C, H, W] -> [N, C, 1, 1], as darknet gives it. size=
 * makes it a windowed average pool (nerve). */
int build_avgpool(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    int dims[NERVE_MAX_DIMS];
    TRY(image_input(b, dims));
    int size = 0, stride = 0, total = 0, y = -1;
    GET(has_size, cfg_get_int(d, s, "size", 1, MAX_KERNEL, &size));
    if (!has_size) {
        for (const char *const *k = avgpool_keys; strcmp(*k, "name"); k++)
            if (strcmp(*k, "size") && cfg_find(s, *k))
                return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, *k)->line,
                                 "%s has no effect on a global [avgpool]; give size= for a "
                                 "windowed one", *k);
        nerve_pool_config pc = nerve_pool_config_make(NERVE_POOL_GLOBAL_AVG, 1, 1, 0);
        TRY(pool_node(b, b->x, &pc, &y));
        b->flops = (double)dims[1] * dims[2] * dims[3];
        b->x = y;
        return NERVE_OK;
    }
    stride = size;
    TRY(cfg_get_int(d, s, "stride", 1, MAX_KERNEL, &stride));
    TRY(cfg_get_int(d, s, "padding", 0, size, &total));
    if (total % 2)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "padding")->line,
                         "[avgpool] padding=%d must be even (padding/2 zeros per side)", total);
    nerve_pool_config pc = nerve_pool_config_make(NERVE_POOL_AVG, size, stride, total / 2);
    TRY(cfg_get_bool(d, s, "ceil_mode", &pc.ceil_mode));
    TRY(cfg_get_bool(d, s, "count_include_pad", &pc.count_include_pad));
    TRY(pool_node(b, b->x, &pc, &y));
    b->flops = (double)sample_numel(b->g, y) * size * size;
    b->x = y;
    return NERVE_OK;
}

/* ---- [normalization]: local response normalisation ---------------------------------- */

const char *const normalization_keys[] = {"size", "alpha", "beta", "kappa", "within_map",
                                          "name", NULL};

int build_normalization(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    int size = 5, within = 0;
    float alpha = 1e-4f, beta = 0.75f, kappa = 1.0f; /* darknet's defaults */
    const cfg_range any_pos = {0, INFINITY, 1, 0}, non_neg = {0, INFINITY, 0, 0};
    TRY(cfg_get_int(d, s, "size", 1, MAX_KERNEL, &size));
    TRY(cfg_get_float(d, s, "alpha", non_neg, &alpha));
    TRY(cfg_get_float(d, s, "beta", non_neg, &beta));
    TRY(cfg_get_float(d, s, "kappa", any_pos, &kappa));
    TRY(cfg_get_bool(d, s, "within_map", &within));
    int y = nerve_lrn(b->g, b->x, size, alpha, beta, kappa, within);
    if (y < 0)
        return graph_fail(b, y);
    double window = within ? (double)size * size : size;
    b->flops = (double)sample_numel(b->g, y) * (2 * window + 4);
    b->x = y;
    return NERVE_OK;
}

/* ---- [route] and [shortcut] ------------------------------------------------------------ */

/* A layer index as darknet reads it: negative is relative to this layer, otherwise
 * absolute (0 = the first layer after [net]); it must name an earlier layer. */
int resolve_layer(build_ctx *b, const char *key, int index, int *layer)
{
    int here = b->m->n_layers, at = index < 0 ? here + index : index;
    if (at < 0 || at >= here)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, key)->line,
                         "%s = %d does not name an earlier layer: this is layer %d, so relative "
                         "indices run from -1 to %d and absolute ones from 0 to %d",
                         key, index, here, -here, here - 1);
    *layer = at;
    return NERVE_OK;
}

static void layer_shape(build_ctx *b, int layer, int *nd, int *dims, char *str, size_t size)
{
    nerve_node_shape(b->g, b->m->layer_out[layer], nd, dims);
    nerve_shape_str(*nd - 1, dims + 1, str, size);
}

const char *const route_keys[] = {"layers", "name", NULL};

/* Concatenation of earlier layers' outputs along the channels; one layer: its output. */
int build_route(build_ctx *b)
{
    int idx[NERVE_MAX_INPUTS], n = 0, xs[NERVE_MAX_INPUTS];
    GET(has, cfg_get_int_list(b->d, b->s, "layers", INT_MIN / 2, INT_MAX / 2, idx,
                              NERVE_MAX_INPUTS, &n));
    if (!has || n == 0)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                         "[route] needs layers= (a comma list of earlier layers: -1 the "
                         "previous one, 0 the first after [net])");
    int nd0, d0[NERVE_MAX_DIMS];
    char s0[64], si[64];
    for (int i = 0; i < n; i++) {
        int at = 0, nd, dims[NERVE_MAX_DIMS];
        TRY(resolve_layer(b, "layers", idx[i], &at));
        xs[i] = b->m->layer_out[at];
        layer_shape(b, at, i ? &nd : &nd0, i ? dims : d0, i ? si : s0, sizeof s0);
        if (i == 0)
            continue;
        int fits = nd == nd0 && nd >= 2;
        for (int k = 2; fits && k < nd; k++)
            fits = dims[k] == d0[k];
        if (!fits)
            return cfg_error(b->d, NERVE_ERR_SHAPE, cfg_find(b->s, "layers")->line,
                             "[route] cannot concatenate layer %d's %s with layer %d's %s along "
                             "the channels: every other axis must match", at, si,
                             idx[0] < 0 ? b->m->n_layers + idx[0] : idx[0], s0);
    }
    int y = n == 1 ? xs[0] : by_name_concat(b->g, n, xs, 1);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = 0; /* a copy */
    b->x = y;
    return NERVE_OK;
}

const char *const shortcut_keys[] = {"from", "activation", "alpha", "beta", "project",
                                     "batch_normalize", "init", "name", NULL};

/* The stride s of a 1x1 projection taking an h x w map to oh x ow: ceil(h/s) == oh and
 * ceil(w/s) == ow; 0 if there is none. */
static int projection_stride(int h, int w, int oh, int ow)
{
    for (int s = 1; s <= h || s <= w; s++)
        if ((h + s - 1) / s == oh && (w + s - 1) / s == ow)
            return s;
    return 0;
}

/* project=1: from's output projected to the previous layer's shape by a 1x1 convolution
 * with the needed stride and channels ("<name>.proj"), batch norm without bias if
 * batch_normalize=1 (nerve's, as ResNet does). */
static int project(build_ctx *b, int src, const int *sd, const int *pd, int *out)
{
    conv_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.cc = nerve_conv_default();
    sp.cc.stride[0] = sp.cc.stride[1] = projection_stride(sd[2], sd[3], pd[2], pd[3]);
    sp.filters = pd[1];
    sp.size = 1;
    TRY(cfg_get_bool(b->d, b->s, "batch_normalize", &sp.bn));
    sp.bias = !sp.bn;
    const cfg_entry *e = cfg_find(b->s, "init");
    char q[80];
    if (nerve_init_parse(e ? e->value : "he", &sp.init) < 0)
        return cfg_error(b->d, NERVE_ERR_FORMAT, e->line, "init = '%s' is unknown",
                         cfg_quote(e->value, q, sizeof q));
    char base[64];
    snprintf(base, sizeof base, "%.40s.proj", b->name);
    int y;
    TRY(add_conv(b, src, sd[1], &sp, base, &y));
    return norm_and_activate(b, y, sp.bn, nerve_act_default(NERVE_ACT_IDENTITY), base, out);
}

/* darknet's shortcut_cpu: from's [c1, h1, w1] added into the previous layer's [c2, h2, w2]
 * where they overlap, without weights: the first min(c1, c2) channels; from read at every
 * stride-th pixel (stride = w1 / w2) or written at every sample-th one (sample = w2 / w1);
 * the rest of the previous layer's values pass unchanged. Returns from's values laid out as
 * [c2, h2, w2] with zeros outside the overlap. */
static int darknet_overlap(build_ctx *b, int src, const int *sd, const int *pd, int *out)
{
    int c1 = sd[1], h1 = sd[2], w1 = sd[3], c2 = pd[1], h2 = pd[2], w2 = pd[3];
    int stride = w1 / w2, sample = w2 / w1;
    if (stride != h1 / h2 || sample != h2 / h1)
        return cfg_error(b->d, NERVE_ERR_SHAPE, cfg_find(b->s, "from")->line,
                         "[shortcut] %dx%d and %dx%d maps: darknet needs the same ratio of "
                         "widths and of heights", h1, w1, h2, w2);
    stride = stride < 1 ? 1 : stride;
    sample = sample < 1 ? 1 : sample;
    int y = src;
    if (stride > 1) {
        nerve_pool_config pc = nerve_pool_config_make(NERVE_POOL_MAX, 1, stride, 0);
        y = nerve_pool(b->g, y, &pc); /* a 1x1 max pool with a stride: every stride-th pixel */
    }
    if (y >= 0 && sample > 1)
        y = by_name_upsample(b->g, y, sample, "bed_of_nails"); /* at every sample-th pixel */
    int nd, dims[NERVE_MAX_DIMS];
    if (y >= 0 && nerve_node_shape(b->g, y, &nd, dims) == 0) {
        int begin[4] = {0, 0, 0, 0}, end[4] = {0, c2 - dims[1], h2 - dims[2], w2 - dims[3]};
        if (end[1] || end[2] || end[3]) /* crop or zero-pad to the previous layer's shape */
            y = nerve_pad(b->g, y, begin, end, 4, NERVE_PAD_CONSTANT, 0.0f);
    }
    if (y < 0)
        return graph_fail(b, y);
    (void)c1;
    *out = y;
    return NERVE_OK;
}

/* Residual addition: activation(alpha * previous layer + beta * layer `from`), darknet's
 * [shortcut]: where the shapes differ, the overlapping part is added (darknet_overlap).
 * project=1: `from` goes through a learned projection instead (nerve's). */
int build_shortcut(build_ctx *b)
{
    int from = 0, at = 0, proj = 0;
    GET(has_from, cfg_get_int(b->d, b->s, "from", INT_MIN / 2, INT_MAX / 2, &from));
    if (!has_from)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                         "[shortcut] needs from= (the earlier layer added to the previous one, "
                         "e.g. -3)");
    TRY(resolve_layer(b, "from", from, &at));
    nerve_act act;
    TRY(get_activation(b, &act));
    float alpha = 1, beta = 1;
    const cfg_range any = {-INFINITY, INFINITY, 0, 0};
    TRY(cfg_get_float(b->d, b->s, "alpha", any, &alpha));
    TRY(cfg_get_float(b->d, b->s, "beta", any, &beta));
    TRY(cfg_get_bool(b->d, b->s, "project", &proj));
    int snd, sd[NERVE_MAX_DIMS], pnd, pd[NERVE_MAX_DIMS];
    char ss[64], ps[64];
    layer_shape(b, at, &snd, sd, ss, sizeof ss);
    nerve_node_shape(b->g, b->x, &pnd, pd);
    nerve_shape_str(pnd - 1, pd + 1, ps, sizeof ps);
    int src = b->m->layer_out[at];
    int same = snd == pnd && !memcmp(sd, pd, (size_t)snd * sizeof(int));
    if (!proj) {
        const cfg_entry *e = cfg_find(b->s, "batch_normalize");
        if (e || (e = cfg_find(b->s, "init")))
            return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                             "%s applies to the projection of project=1 (nerve's); darknet's "
                             "[shortcut] has no weights", e->key);
    }
    if (same && proj)
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "project")->line,
                         "project=1, but layer %d's %s needs none: it already matches the "
                         "previous layer", at, ss);
    if (!same && (snd != 4 || pnd != 4))
        return cfg_error(b->d, NERVE_ERR_SHAPE, cfg_find(b->s, "from")->line,
                         "[shortcut] layer %d's %s and the previous layer's %s: different "
                         "shapes are added where they overlap, which needs images", at, ss, ps);
    if (!same && proj) {
        if (!projection_stride(sd[2], sd[3], pd[2], pd[3]))
            return cfg_error(b->d, NERVE_ERR_SHAPE, cfg_find(b->s, "from")->line,
                             "[shortcut] layer %d's %s cannot be projected onto the previous "
                             "layer's %s: a 1x1 convolution with stride s gives "
                             "ceil(height/s) x ceil(width/s) maps of an image", at, ss, ps);
        TRY(project(b, src, sd, pd, &src));
    } else if (!same) {
        TRY(darknet_overlap(b, src, sd, pd, &src));
    }
    int x = b->x, y = 0;
    if (alpha != 1 && (x = nerve_affine(b->g, x, alpha, 0)) < 0)
        return graph_fail(b, x);
    if (beta != 1 && (src = nerve_affine(b->g, src, beta, 0)) < 0)
        return graph_fail(b, src);
    if ((y = by_name_binary(b->g, "add", x, src)) < 0)
        return graph_fail(b, y);
    b->flops += (double)sample_numel(b->g, y);
    return norm_and_activate(b, y, 0, act, b->name, &b->x);
}

/* ---- [crop] ------------------------------------------------------------------------- */

const char *const crop_keys[] = {"crop_height", "crop_width", "flip", "noadjust", "angle",
                                 "saturation", "exposure", "shift", "name", NULL};

/* darknet's crop layer, the first layer: the crop_height x crop_width centre of the image
 * at evaluation, at a random offset (and mirrored with probability 1/2 if flip=1) in
 * training; values times 2 minus 1 ([0, 1] to [-1, 1]) unless noadjust=1. nerve draws the
 * training offset and mirror through the batch's augmentation (a shift of the image by
 * U{-t..t} pixels per axis, t = (height - crop_height) / 2, then the centre crop: the same
 * windows), per image where darknet draws one per batch. angle, saturation, exposure and
 * shift are read and unused, as darknet's CPU forward does. */
int build_crop(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    int dims[NERVE_MAX_DIMS];
    TRY(image_input(b, dims));
    if (b->x != nerve_model_input(b->m) || b->m->cfg.normalize)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                         "[crop] must be the first layer (it crops the input image)");
    int ch = 1, cw = 1, flip = 0, noadjust = 0; /* darknet's defaults */
    TRY(cfg_get_int(d, s, "crop_height", 1, dims[2], &ch));
    TRY(cfg_get_int(d, s, "crop_width", 1, dims[3], &cw));
    TRY(cfg_get_bool(d, s, "flip", &flip));
    TRY(cfg_get_bool(d, s, "noadjust", &noadjust));
    const cfg_range any = {-INFINITY, INFINITY, 0, 0};
    float unused;
    TRY(cfg_get_float(d, s, "angle", any, &unused));
    TRY(cfg_get_float(d, s, "saturation", any, &unused));
    TRY(cfg_get_float(d, s, "exposure", any, &unused));
    TRY(cfg_get_float(d, s, "shift", any, &unused));
    int mh = dims[2] - ch, mw = dims[3] - cw;
    nerve_augment *a = &b->m->cfg.augment;
    if (mh || mw) {
        if (mh != mw || mh % 2)
            return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                             "[crop] %dx%d of a %dx%d image: nerve draws the random offsets "
                             "for equal, even margins (height - crop_height = width - "
                             "crop_width, even)", ch, cw, dims[2], dims[3]);
        if (a->on & NERVE_AUG_TRANSLATE)
            return cfg_error(d, NERVE_ERR_FORMAT, s->line,
                             "[crop] draws its offsets as augment=translate does; leave "
                             "translate out of [net] augment=");
        a->on |= NERVE_AUG_TRANSLATE;
        a->translate = mh / 2;
    }
    if (flip) {
        if ((a->on & NERVE_AUG_FLIP) && a->flip != 0.5f)
            return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "flip")->line,
                             "[crop] flip=1 mirrors with probability 1/2, [net] flip=%g",
                             (double)a->flip);
        a->on |= NERVE_AUG_FLIP;
        a->flip = 0.5f;
    }
    int top = mh / 2, left = mw / 2;
    int y = nerve_pad(b->g, b->x, (const int[]){0, 0, -top, -left},
                      (const int[]){0, 0, -(mh - top), -(mw - left)}, 4, NERVE_PAD_CONSTANT, 0);
    if (y >= 0 && !noadjust)
        y = nerve_affine(b->g, y, 2.0f, -1.0f);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = noadjust ? 0 : 2.0 * sample_numel(b->g, y);
    b->x = y;
    return NERVE_OK;
}

/* ---- resampling ---------------------------------------------------------------------- */

const char *const upsample_keys[] = {"stride", "mode", "name", NULL};

int build_upsample(build_ctx *b)
{
    static const struct { const char *name; nerve_upsample_mode mode; } modes[] = {
        {"nearest", NERVE_UPSAMPLE_NEAREST},
        {"bilinear", NERVE_UPSAMPLE_BILINEAR},
        {"bed_of_nails", NERVE_UPSAMPLE_BED_OF_NAILS}};
    int dims[NERVE_MAX_DIMS], stride = 2;
    TRY(image_input(b, dims));
    TRY(cfg_get_int(b->d, b->s, "stride", 1, MAX_KERNEL, &stride));
    const cfg_entry *e = cfg_find(b->s, "mode");
    size_t i = 0;
    while (e && i < NERVE_ARRAY_LEN(modes) && strcmp(e->value, modes[i].name))
        i++;
    if (i == NERVE_ARRAY_LEN(modes)) {
        char q[80];
        return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                         "mode = '%s' is unknown; expected nearest, bilinear or bed_of_nails",
                         cfg_quote(e->value, q, sizeof q));
    }
    int y = by_name_upsample(b->g, b->x, stride, modes[i].name);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = modes[i].mode == NERVE_UPSAMPLE_BILINEAR ? 4.0 * (double)sample_numel(b->g, y) : 0;
    b->x = y;
    return NERVE_OK;
}

const char *const unpool_keys[] = {"from", "name", NULL};

/* SegNet's max unpooling: the previous layer's maps put back where the maxima of the
 * [maxpool] layer `from` were (zeros elsewhere), at that pool's input size. */
int build_unpool(build_ctx *b)
{
    int from = 0, at = 0;
    GET(has_from, cfg_get_int(b->d, b->s, "from", INT_MIN / 2, INT_MAX / 2, &from));
    if (!has_from)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line,
                         "[unpool] needs from= (the [maxpool] layer whose maxima positions it "
                         "uses, e.g. -5)");
    TRY(resolve_layer(b, "from", from, &at));
    const char *kind = b->m->layers[at].type;
    if (strcmp(kind, "maxpool"))
        return cfg_error(b->d, NERVE_ERR_FORMAT, cfg_find(b->s, "from")->line,
                         "[unpool] from = %d names layer %d, a [%s]; it must name a [maxpool] "
                         "layer (its maxima positions are what unpooling uses)", from, at, kind);
    int y = nerve_max_unpool(b->g, b->x, b->m->layer_out[at]);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = 0; /* a scatter */
    b->x = y;
    return NERVE_OK;
}

const char *const reorg_keys[] = {"stride", "reverse", "extra", "name", NULL};

/* darknet's extra=N: the input as one vector followed by N zeros (go.cfg's "pass" move);
 * stride and reverse are then unused, as in darknet. */
static int reorg_extra(build_ctx *b, int extra)
{
    const cfg_entry *e = cfg_find(b->s, "reverse");
    if (e)
        return cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                         "reverse has no effect with extra= (the input is copied as a vector)");
    int y = by_name_flatten(b->g, b->x);
    if (y >= 0)
        y = nerve_pad(b->g, y, (const int[]){0, 0}, (const int[]){0, extra}, 2,
                      NERVE_PAD_CONSTANT, 0.0f);
    if (y < 0)
        return graph_fail(b, y);
    b->flops = 0;
    b->x = y;
    return NERVE_OK;
}

/* darknet's reorg by stride (its reorg_cpu as its forward_reorg_layer calls it on the CPU):
 * the output element (k, j, i) of an input C x H x W read as C x H x W is the input element
 * (k % (C/s^2), j*s + (k / (C/s^2)) / s, i*s + (k / (C/s^2)) % s) of the same numbers read
 * as C/s^2 x H*s x W*s, and the output is C*s^2 x H/s x W/s. That is a reshape to
 * [N, C/s^2, H, s, W, s], a transpose to [N, s, s, C/s^2, H, W] and a reshape; reverse=1 is
 * its inverse (a depth-to-space whose channel order is darknet's). Both are permutations,
 * so the backward pass is darknet's too. ONNX's SpaceToDepth/DepthToSpace order is another
 * (nerve_space_to_depth, used by the ONNX importer). */
int build_reorg(build_ctx *b)
{
    int dims[NERVE_MAX_DIMS], stride = 1, reverse = 0, extra = 0;
    TRY(cfg_get_int(b->d, b->s, "extra", 0, 1 << 20, &extra));
    TRY(cfg_get_int(b->d, b->s, "stride", 1, MAX_KERNEL, &stride));
    if (extra)
        return reorg_extra(b, extra);
    TRY(image_input(b, dims));
    TRY(cfg_get_bool(b->d, b->s, "reverse", &reverse));
    b->flops = 0;
    if (stride == 1)
        return NERVE_OK; /* the identity */
    int c = dims[1], h = dims[2], w = dims[3], s2 = stride * stride;
    if (c % s2 || (!reverse && (h % stride || w % stride)))
        return cfg_error(b->d, NERVE_ERR_SHAPE, b->s->line,
                         "[reorg] stride=%d%s of %d x %d x %d: darknet's reorg needs the channels "
                         "divisible by %d%s", stride, reverse ? " reverse=1" : "", c, h, w, s2,
                         reverse ? "" : " and the height and width by the stride");
    int y;
    if (!reverse) {
        y = by_name_reshape(b->g, b->x, 6, (const int[]){-1, c / s2, h, stride, w, stride});
        if (y >= 0)
            y = by_name_transpose(b->g, y, 6, (const int[]){0, 3, 5, 1, 2, 4});
        if (y >= 0)
            y = by_name_reshape(b->g, y, 4, (const int[]){-1, c * s2, h / stride, w / stride});
    } else {
        y = by_name_reshape(b->g, b->x, 6, (const int[]){-1, stride, stride, c / s2, h, w});
        if (y >= 0)
            y = by_name_transpose(b->g, y, 6, (const int[]){0, 3, 4, 1, 5, 2});
        if (y >= 0)
            y = by_name_reshape(b->g, y, 4, (const int[]){-1, c / s2, h * stride, w * stride});
    }
    if (y < 0)
        return graph_fail(b, y);
    b->x = y;
    return NERVE_OK;
}

/* ---- multiply-accumulates ------------------------------------------------------------ */

/* Elements of a node per sample. The model is built at batch 1, so this is the node's
 * whole size: a per-step layer's rows [T, F] (the batch folded with the steps) count T
 * times, as they should. */
static size_t node_sample_numel(const nerve_graph *g, int node)
{
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, node, &nd, dims) < 0 || nd < 1)
        return 0;
    return nerve_shape_numel(nd, dims);
}

static double node_numel(const nerve_graph *g, int node)
{
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, node, &nd, dims) < 0)
        return 0;
    return (double)nerve_shape_numel(nd, dims);
}

static int dim0(const nerve_graph *g, int node)
{
    int nd, dims[NERVE_MAX_DIMS];
    return nerve_node_shape(g, node, &nd, dims) < 0 || nd < 1 ? 1 : dims[0];
}

/* The rnn node's products: every 2-D parameter of the layer (w_ih, w_hh, peephole) is used
 * once per step. */
static double rnn_macs(const nerve_graph *g, int rnn, int first_node)
{
    double per_step = 0;
    for (int i = first_node; i < rnn; i++) {
        int nd, dims[NERVE_MAX_DIMS];
        if (nerve_node_kind(g, i) == NERVE_NODE_PARAM && nerve_node_shape(g, i, &nd, dims) == 0 &&
            nd == 2)
            per_step += (double)dims[0] * dims[1];
    }
    return per_step * dim0(g, nerve_node_input(g, rnn, 0));
}

double model_layer_macs(const nerve_graph *g, int first_node)
{
    double macs = 0;
    for (int i = first_node; i < nerve_node_count(g); i++) {
        const char *op = nerve_node_op(g, i);
        if (!strcmp(op, "dense") || !strcmp(op, "conv")) {
            /* w [O, ...]: each output element costs numel(w) / O */
            int w = nerve_node_input(g, i, 1);
            macs += (double)node_sample_numel(g, i) * node_numel(g, w) / dim0(g, w);
        } else if (!strcmp(op, "conv_transpose")) {
            /* w [C, ...]: each input element scatters numel(w) / C products */
            int x = nerve_node_input(g, i, 0), w = nerve_node_input(g, i, 1);
            macs += (double)node_sample_numel(g, x) * node_numel(g, w) / dim0(g, w);
        } else if (!strcmp(op, "local")) {
            macs += node_numel(g, nerve_node_input(g, i, 1)); /* each weight once */
        } else if (!strcmp(op, "batchnorm")) {
            macs += (double)node_sample_numel(g, i);
        } else if (!strcmp(op, "rnn")) {
            macs += rnn_macs(g, i, first_node);
        }
    }
    return macs;
}
