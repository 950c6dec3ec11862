/* Region-of-interest pooling (docs/detection.md): a fixed-size map per box, from a shared
 * feature map, for Fast and Faster R-CNN heads.
 *
 *   x [N, C, H, W], rois [N, R, 4] -> y [N, R, C, out_h, out_w]
 *
 * rois holds R boxes per image, corners (x1, y1, x2, y2) in the image's pixels;
 * spatial_scale (1 / the feature map's stride) maps them onto x's grid. Both operators
 * follow torchvision.ops (and so Caffe's Fast R-CNN and Detectron's Mask R-CNN):
 *
 * roi_pool: the box's corners are rounded to cells (round half away from zero), its size is
 *   (end - start + 1) cells (at least 1), and bin (i, j) is the max over the cells
 *   [floor(i h / out_h), ceil((i + 1) h / out_h)) (and likewise in x), clipped to the map;
 *   an empty bin gives 0. The argmax (an index into its map, exact as a float below 2^24)
 *   is saved for backward, which adds dy there.
 * roi_align: no rounding; each bin averages sampling_ratio² bilinear samples (sampling_ratio
 *   <= 0: ceil(box size / out size) per axis, per box) at the centres of a regular grid;
 *   aligned = 1 shifts the box by half a cell (the pixel-centre convention of Detectron2),
 *   aligned = 0 keeps torchvision's default and makes every box at least 1 x 1. Samples
 *   outside [-1, H] x [-1, W] are 0; backward spreads dy over the four taps of each sample.
 *
 * The boxes get no gradient (proposals are constants of the step, as in torchvision). */
#include "ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define MAX_MAP_ELEMENTS (1 << 24) /* roi_pool's argmax indices are exact as floats */

enum { ROI_POOL = 0, ROI_ALIGN = 1 };

/* attr: i[0] out_h, i[1] out_w, i[2] sampling_ratio, i[3] aligned, i[4] kind; f[0] scale */

static int roi_infer(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0), *r = node_input(g, n, 1);
    if (x->ndim != 4)
        return op_shape_error(n, "the feature map must be [N, C, H, W], got rank %d", x->ndim);
    if (r->ndim != 3 || r->dims[2] != 4)
        return op_shape_error(n, "the boxes must be [N, R, 4] (x1, y1, x2, y2 per box), got "
                              "rank %d%s", r->ndim, r->ndim == 3 ? " with a last size other than 4" : "");
    if (r->dims[0] != x->dims[0])
        return op_shape_error(n, "%d images of boxes for %d feature maps", r->dims[0], x->dims[0]);
    if (n->attr.roi.kind == ROI_POOL && (int64_t)x->dims[2] * x->dims[3] > MAX_MAP_ELEMENTS)
        return op_shape_error(n, "a %d x %d map is above the %d cells roi_pool can index",
                              x->dims[2], x->dims[3], MAX_MAP_ELEMENTS);
    int64_t per_sample = size_mul64(size_mul64(r->dims[1], x->dims[1]),
                                    (int64_t)n->attr.roi.out_h * n->attr.roi.out_w);
    int st = node_check_size(n, "boxes x channels x out_h x out_w", per_sample);
    if (st)
        return st;
    n->ndim = 5;
    n->dims[0] = x->dims[0];
    n->dims[1] = r->dims[1];
    n->dims[2] = x->dims[1];
    n->dims[3] = n->attr.roi.out_h;
    n->dims[4] = n->attr.roi.out_w;
    return NERVE_OK;
}

static size_t roi_scratch(const nerve_graph *g, const node *n)
{
    (void)g;
    return n->attr.roi.kind == ROI_POOL ? node_numel(n) : 0;
}

/* The bins of one box for roi_pool: start cell and size in cells (float) per axis. */
typedef struct {
    int start_h, start_w;
    float bin_h, bin_w;
} pool_box;

static pool_box pool_geometry(const float *b, float scale, int oh, int ow)
{
    pool_box p;
    int sw = (int)roundf(b[0] * scale), sh = (int)roundf(b[1] * scale);
    int ew = (int)roundf(b[2] * scale), eh = (int)roundf(b[3] * scale);
    int w = ew - sw + 1 > 1 ? ew - sw + 1 : 1, h = eh - sh + 1 > 1 ? eh - sh + 1 : 1;
    p.start_h = sh;
    p.start_w = sw;
    p.bin_h = (float)h / (float)oh;
    p.bin_w = (float)w / (float)ow;
    return p;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The cells of a box coordinate that is not finite or far outside the map: the rounding
 * above must not overflow an int. */
static float sane(float v) { return isfinite(v) ? fminf(fmaxf(v, -1e7f), 1e7f) : 0.0f; }

static void pool_forward(nerve_graph *g, node *n)
{
    const node *x = node_input(g, n, 0), *r = node_input(g, n, 1);
    int N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], R = r->dims[1];
    int oh = n->attr.roi.out_h, ow = n->attr.roi.out_w;
    float scale = n->attr.roi.spatial_scale;
    for (int b = 0; b < N; b++)
        for (int k = 0; k < R; k++) {
            const float *rb = r->value + ((size_t)b * R + k) * 4;
            float box[4] = {sane(rb[0]), sane(rb[1]), sane(rb[2]), sane(rb[3])};
            pool_box p = pool_geometry(box, scale, oh, ow);
            for (int c = 0; c < C; c++) {
                const float *map = x->value + ((size_t)b * C + c) * H * W;
                size_t o = (((size_t)b * R + k) * C + c) * oh * ow;
                for (int i = 0; i < oh; i++) {
                    int h0 = clampi((int)floorf(i * p.bin_h) + p.start_h, 0, H);
                    int h1 = clampi((int)ceilf((i + 1) * p.bin_h) + p.start_h, 0, H);
                    for (int j = 0; j < ow; j++, o++) {
                        int w0 = clampi((int)floorf(j * p.bin_w) + p.start_w, 0, W);
                        int w1 = clampi((int)ceilf((j + 1) * p.bin_w) + p.start_w, 0, W);
                        float best = 0.0f;
                        int arg = -1;
                        for (int y = h0; y < h1; y++)
                            for (int xx = w0; xx < w1; xx++) {
                                float v = map[(size_t)y * W + xx];
                                if (arg < 0 || v > best || (isnan(v) && !isnan(best))) {
                                    best = v;
                                    arg = y * W + xx;
                                }
                            }
                        n->value[o] = best; /* an empty bin: 0 */
                        n->scratch[o] = (float)arg;
                    }
                }
            }
        }
}

static void pool_backward(nerve_graph *g, node *n)
{
    float *dx = node_input_grad(g, n, 0);
    if (!dx)
        return;
    const node *x = node_input(g, n, 0);
    size_t map = (size_t)x->dims[2] * x->dims[3], per_box = (size_t)n->dims[3] * n->dims[4];
    int C = n->dims[2], R = n->dims[1];
    size_t total = node_numel(n);
    for (size_t o = 0; o < total; o++) {
        int a = (int)n->scratch[o];
        if (a < 0)
            continue;
        size_t box = o / per_box;                 /* (b * R + k) * C + c */
        size_t c = box % (size_t)C, b = box / ((size_t)C * R);
        dx[(b * C + c) * map + (size_t)a] += n->grad[o];
    }
}

/* One bilinear sample: up to four taps (index into the map, weight); 0 taps outside. */
typedef struct {
    int n;
    int at[4];
    float w[4];
} taps;

static taps bilinear(float y, float x, int H, int W)
{
    taps t = {0, {0}, {0}};
    if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W)
        return t;
    if (y <= 0)
        y = 0;
    if (x <= 0)
        x = 0;
    int y0 = (int)y, x0 = (int)x, y1, x1;
    if (y0 >= H - 1) {
        y1 = y0 = H - 1;
        y = (float)y0;
    } else {
        y1 = y0 + 1;
    }
    if (x0 >= W - 1) {
        x1 = x0 = W - 1;
        x = (float)x0;
    } else {
        x1 = x0 + 1;
    }
    float ly = y - (float)y0, lx = x - (float)x0, hy = 1.0f - ly, hx = 1.0f - lx;
    t.n = 4;
    t.at[0] = y0 * W + x0, t.w[0] = hy * hx;
    t.at[1] = y0 * W + x1, t.w[1] = hy * lx;
    t.at[2] = y1 * W + x0, t.w[2] = ly * hx;
    t.at[3] = y1 * W + x1, t.w[3] = ly * lx;
    return t;
}

/* Visits every sample of every bin of every box with its weight 1/count: forward gathers,
 * backward scatters. */
static void align_apply(nerve_graph *g, node *n, int backward)
{
    const node *x = node_input(g, n, 0), *r = node_input(g, n, 1);
    float *dx = backward ? node_input_grad(g, n, 0) : NULL;
    if (backward && !dx)
        return;
    int N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], R = r->dims[1];
    int oh = n->attr.roi.out_h, ow = n->attr.roi.out_w, ratio = n->attr.roi.sampling_ratio, aligned = n->attr.roi.aligned;
    float scale = n->attr.roi.spatial_scale, off = aligned ? 0.5f : 0.0f;
    for (int b = 0; b < N; b++)
        for (int k = 0; k < R; k++) {
            const float *rb = r->value + ((size_t)b * R + k) * 4;
            float sw = sane(rb[0]) * scale - off, sh = sane(rb[1]) * scale - off;
            float rw = sane(rb[2]) * scale - off - sw, rh = sane(rb[3]) * scale - off - sh;
            if (!aligned) {
                rw = fmaxf(rw, 1.0f);
                rh = fmaxf(rh, 1.0f);
            }
            float bh = rh / (float)oh, bw = rw / (float)ow;
            /* a box of more than 2^16 cells a bin samples at most 2^16 x 2^16 points */
            int gh = ratio > 0 ? ratio : (int)fminf(fmaxf(ceilf(rh / (float)oh), 0.0f), 65536.0f);
            int gw = ratio > 0 ? ratio : (int)fminf(fmaxf(ceilf(rw / (float)ow), 0.0f), 65536.0f);
            float count = (float)(gh * gw > 1 ? gh * gw : 1);
            for (int c = 0; c < C; c++) {
                size_t m = ((size_t)b * C + c) * H * W;
                size_t o = (((size_t)b * R + k) * C + c) * oh * ow;
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++, o++) {
                        float acc = 0.0f, dy = backward ? n->grad[o] / count : 0.0f;
                        for (int iy = 0; iy < gh; iy++) {
                            float y = sh + i * bh + ((float)iy + 0.5f) * bh / (float)gh;
                            for (int ix = 0; ix < gw; ix++) {
                                float xx = sw + j * bw + ((float)ix + 0.5f) * bw / (float)gw;
                                taps t = bilinear(y, xx, H, W);
                                for (int q = 0; q < t.n; q++) {
                                    if (backward)
                                        dx[m + (size_t)t.at[q]] += t.w[q] * dy;
                                    else
                                        acc += t.w[q] * x->value[m + (size_t)t.at[q]];
                                }
                            }
                        }
                        if (!backward)
                            n->value[o] = acc / count;
                    }
            }
        }
}

static void roi_forward(nerve_graph *g, node *n)
{
    if (n->attr.roi.kind == ROI_POOL)
        pool_forward(g, n);
    else
        align_apply(g, n, 0);
}

static void roi_backward(nerve_graph *g, node *n)
{
    if (n->attr.roi.kind == ROI_POOL)
        pool_backward(g, n);
    else
        align_apply(g, n, 1);
}

static const op_def op_roi_pool = {"roi_pool", roi_infer, roi_scratch, roi_forward, roi_backward, 0};
static const op_def op_roi_align = {"roi_align", roi_infer, roi_scratch, roi_forward,
                                    roi_backward, 0};

static int roi_node(nerve_graph *g, const op_def *op, int kind, int x, int rois, int out_h,
                    int out_w, float scale, int ratio, int aligned)
{
    if (out_h < 1 || out_w < 1 || !(scale > 0) || !isfinite(scale))
        return nerve_set_error(NERVE_ERR_ARG, "%s: output %d x %d and spatial scale %g must be "
                               "above 0", op->name, out_h, out_w, scale);
    node_attr a;
    memset(&a, 0, sizeof a);
    a.roi.out_h = out_h;
    a.roi.out_w = out_w;
    a.roi.sampling_ratio = ratio;
    a.roi.aligned = aligned != 0;
    a.roi.kind = kind;
    a.roi.spatial_scale = scale;
    return graph_add_op(g, op, 2, (int[]){x, rois}, &a, op->name);
}

int nerve_roi_pool(nerve_graph *g, int x, int rois, int out_h, int out_w, float spatial_scale)
{
    return roi_node(g, &op_roi_pool, ROI_POOL, x, rois, out_h, out_w, spatial_scale, 0, 0);
}

int nerve_roi_align(nerve_graph *g, int x, int rois, int out_h, int out_w, float spatial_scale,
                    int sampling_ratio, int aligned)
{
    return roi_node(g, &op_roi_align, ROI_ALIGN, x, rois, out_h, out_w, spatial_scale,
                    sampling_ratio, aligned);
}

const op_def *const ops_roi[] = {&op_roi_pool, &op_roi_align, NULL};
