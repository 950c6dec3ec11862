/* YOLO v1's loss (Redmon et al. 2016; darknet's [detection] layer), docs/detection.md.
 *
 *   pred [N, S*S*(C + B + 4B)], target [N, S*S*6] -> a scalar
 *
 * pred is laid out as darknet's [detection] layer reads its input: the class scores of
 * every cell ([S*S][C]), then the confidences ([S*S][B]), then the boxes ([S*S][B][4]: x, y
 * as offsets in the cell, w, h relative to the image, or their square roots with sqrt = 1).
 * target holds per cell (obj, x, y, w, h, class): obj 1 where a truth box's centre falls in
 * the cell, its centre as an offset in the cell, its size relative to the image.
 *
 * Per sample, the loss of the paper:
 *   coord_scale  * sum over responsible boxes (x - x̂)² + (y - ŷ)² + (√w - √ŵ)² + (√h - √ĥ)²
 * + object_scale * sum over responsible boxes (C - Ĉ)²   (Ĉ: the IoU with the truth if
 *                                                         rescore, else 1)
 * + noobject_scale * sum over the other boxes C²
 * + class_scale * sum over cells with an object, over classes (p_c - [c = class])²
 * averaged over the batch. The responsible box of a cell is its predictor of highest IoU
 * with the truth (ties: the first; if every IoU is 0, the nearest in squared coordinates).
 * As in darknet, that choice and the rescore target are constants of the step: the
 * gradient does not flow through them. Without sqrt the size terms are (w - ŵ)², (h - ĥ)². */
#include "ops.h"

#include <math.h>
#include <string.h>

/* attr.yolo1: the configuration, sqrt and rescore as 0 or 1 */

static size_t cell_values(const node *n)
{
    return (size_t)n->attr.yolo1.classes + (size_t)n->attr.yolo1.num * 5;
}

static int yolo1_infer(nerve_graph *g, node *n)
{
    const node *p = node_input(g, n, 0), *t = node_input(g, n, 1);
    int S = n->attr.yolo1.side;
    size_t cells = (size_t)S * S, per = node_numel(p) / (size_t)p->dims[0];
    if (per != cells * cell_values(n))
        return op_shape_error(n, "the layer before gives %zu values per sample; a %d x %d grid "
                              "of %d boxes and %d classes needs side*side*(classes + 5*num) = %zu",
                              per, S, S, n->attr.yolo1.num, n->attr.yolo1.classes,
                              cells * cell_values(n));
    if (t->dims[0] != p->dims[0] || node_numel(t) / (size_t)t->dims[0] != cells * 6)
        return op_shape_error(n, "the target must hold %zu values per sample (6 per cell)",
                              cells * 6);
    n->ndim = 0;
    return NERVE_OK;
}

typedef struct {
    const float *cls, *conf, *box; /* this sample's blocks */
} pred_view;

static pred_view view(const node *n, const float *p)
{
    int S = n->attr.yolo1.side, B = n->attr.yolo1.num, C = n->attr.yolo1.classes;
    size_t cells = (size_t)S * S;
    pred_view v = {p, p + cells * C, p + cells * (C + B)};
    return v;
}

/* IoU of two corner boxes (src/core/boxes.c has the public one) */
static float iou_of(const float *a, const float *b)
{
    float iw = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), ih = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    float inter = iw > 0 && ih > 0 ? iw * ih : 0.0f;
    float u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return u > 0 ? inter / u : 0.0f;
}

/* corners of a box given as centre offsets in cell (col, row) and size */
static void corners(float x, float y, float w, float h, int col, int row, int S, float *c)
{
    float cx = (col + x) / S, cy = (row + y) / S;
    c[0] = cx - w / 2, c[1] = cy - h / 2, c[2] = cx + w / 2, c[3] = cy + h / 2;
}

/* The responsible predictor of cell i and its IoU with the truth t (obj, x, y, w, h, cls). */
static int responsible(const node *n, const pred_view *v, int i, const float *t, float *iou)
{
    int S = n->attr.yolo1.side, B = n->attr.yolo1.num, sq = n->attr.yolo1.sqrt;
    int col = i % S, row = i / S, best = 0;
    float tc[4], best_iou = -1.0f, best_d = INFINITY;
    corners(t[1], t[2], t[3], t[4], col, row, S, tc);
    for (int b = 0; b < B; b++) {
        const float *pb = v->box + ((size_t)i * B + b) * 4;
        float w = sq ? pb[2] * pb[2] : pb[2], h = sq ? pb[3] * pb[3] : pb[3], pc[4];
        corners(pb[0], pb[1], w, h, col, row, S, pc);
        float o = iou_of(pc, tc);
        if (o > best_iou) {
            best_iou = o;
            best = b;
        }
    }
    if (!(best_iou > 0)) { /* no overlap anywhere: the nearest predictor */
        for (int b = 0; b < B; b++) {
            const float *pb = v->box + ((size_t)i * B + b) * 4;
            float d = 0;
            for (int k = 0; k < 4; k++) {
                float want = k < 2 ? t[1 + k] : (sq ? sqrtf(t[1 + k]) : t[1 + k]);
                d += (pb[k] - want) * (pb[k] - want);
            }
            if (d < best_d) {
                best_d = d;
                best = b;
            }
        }
        best_iou = 0;
    }
    *iou = best_iou;
    return best;
}

/* One sample's loss; with grad != NULL, adds scale * dL/dpred into grad. */
static double sample_loss(const node *n, const float *p, const float *t, float *grad, float scale)
{
    const attr_yolo1 *a = &n->attr.yolo1;
    int S = a->side, B = a->num, C = a->classes, sq = a->sqrt;
    int rescore = a->rescore;
    float lc = a->coord_scale, lo = a->object_scale, ln = a->noobject_scale, lk = a->class_scale;
    pred_view v = view(n, p), gv = grad ? view(n, grad) : v;
    double L = 0;
    for (int i = 0; i < S * S; i++) {
        const float *tc = t + (size_t)i * 6;
        int obj = tc[0] > 0.5f, resp = -1;
        float iou = 0;
        if (obj) {
            resp = responsible(n, &v, i, tc, &iou);
            int cls = (int)tc[5];
            for (int c = 0; c < C; c++) {
                float d = v.cls[(size_t)i * C + c] - (c == cls ? 1.0f : 0.0f);
                L += lk * d * d;
                if (grad)
                    ((float *)gv.cls)[(size_t)i * C + c] += scale * 2 * lk * d;
            }
            const float *pb = v.box + ((size_t)i * B + resp) * 4;
            for (int k = 0; k < 4; k++) {
                float want = k < 2 ? tc[1 + k] : (sq ? sqrtf(tc[1 + k]) : tc[1 + k]);
                float d = pb[k] - want;
                L += lc * d * d;
                if (grad)
                    ((float *)gv.box)[((size_t)i * B + resp) * 4 + k] += scale * 2 * lc * d;
            }
        }
        for (int b = 0; b < B; b++) {
            float c = v.conf[(size_t)i * B + b];
            float want = b == resp ? (rescore ? iou : 1.0f) : 0.0f, k = b == resp ? lo : ln;
            float d = c - want;
            L += k * d * d;
            if (grad)
                ((float *)gv.conf)[(size_t)i * B + b] += scale * 2 * k * d;
        }
    }
    return L;
}

static void yolo1_forward(nerve_graph *g, node *n)
{
    const node *p = node_input(g, n, 0), *t = node_input(g, n, 1);
    int N = p->dims[0];
    size_t per = node_numel(p) / (size_t)N, tper = node_numel(t) / (size_t)N;
    double L = 0;
    for (int s = 0; s < N; s++)
        L += sample_loss(n, p->value + s * per, t->value + s * tper, NULL, 0);
    n->value[0] = (float)(L / N);
}

static void yolo1_backward(nerve_graph *g, node *n)
{
    float *dp = node_input_grad(g, n, 0);
    if (!dp)
        return;
    const node *p = node_input(g, n, 0), *t = node_input(g, n, 1);
    int N = p->dims[0];
    size_t per = node_numel(p) / (size_t)N, tper = node_numel(t) / (size_t)N;
    float scale = n->grad[0] / (float)N;
    for (int s = 0; s < N; s++)
        sample_loss(n, p->value + s * per, t->value + s * tper, dp + s * per, scale);
}

static const op_def op_yolo1_loss = {"yolo1_loss", yolo1_infer, NULL, yolo1_forward,
                                     yolo1_backward, 0};

nerve_yolo1_config nerve_yolo1_default(void)
{
    nerve_yolo1_config c = {7, 2, 20, 1, 1, 5.0f, 1.0f, 0.5f, 1.0f};
    return c;
}

int nerve_yolo1_check(const nerve_yolo1_config *c)
{
    if (!c || c->side < 1 || c->side > 1024 || c->num < 1 || c->num > 64 || c->classes < 1 ||
        c->classes > 100000)
        return nerve_set_error(NERVE_ERR_ARG, "YOLO v1: side %d (1..1024), num %d (1..64) and "
                               "classes %d (1..100000)", c ? c->side : 0, c ? c->num : 0,
                               c ? c->classes : 0);
    const float s[4] = {c->coord_scale, c->object_scale, c->noobject_scale, c->class_scale};
    for (int k = 0; k < 4; k++)
        if (!(s[k] >= 0) || !isfinite(s[k]))
            return nerve_set_error(NERVE_ERR_ARG, "YOLO v1: the loss scales must be finite and "
                                   ">= 0");
    return NERVE_OK;
}

int nerve_yolo1_loss(nerve_graph *g, int pred, int target, const nerve_yolo1_config *c)
{
    int st = nerve_yolo1_check(c);
    if (st)
        return st;
    node_attr a;
    memset(&a, 0, sizeof a);
    a.yolo1 = *c;
    a.yolo1.sqrt = c->sqrt != 0;
    a.yolo1.rescore = c->rescore != 0;
    return graph_add_op(g, &op_yolo1_loss, 2, (int[]){pred, target}, &a, "yolo1_loss");
}

const op_def *const ops_detection[] = {&op_yolo1_loss, NULL};
