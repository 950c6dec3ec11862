/* Faster R-CNN from the cfg (docs/cfg.md, docs/detection.md):
 *
 *   backbone layers ... (the shared feature map)
 *   [convolutional] size=3 ...           the RPN's 3 x 3 convolution
 *   [convolutional] size=1 filters=5A    A objectness planes, then 4 offset planes per anchor
 *   [rpn] sizes=... ratios=...           the anchors and the proposals: output [rois, 4]
 *   [roi_pool] from=-4 size=7            (or [roi_align]) the feature map pooled per RoI:
 *                                        output [rois, C*size*size], one row per RoI
 *   [connected] ...                      run on each RoI's row
 *   [connected] output=classes+1+4*classes
 *   [fast_rcnn] classes=...              the head: its loss and the RPN's
 *
 * The truths come from the data set's boxes (the feed below), as corners in the input's
 * pixels. */
#include "model.h"

#include "../graph/graph.h"

#include <limits.h>
#include <math.h>
#include <string.h>

const char *const rpn_keys[] = {"sizes", "ratios", "pre_nms", "post_nms", "nms", "rois",
                                "batch", "pos_iou", "neg_iou", "pos_fraction", "fg_iou",
                                "bg_iou", "fg_fraction", "min_size", "beta", "max", "name", NULL};
const char *const roi_pool_keys[] = {"from", "size", "name", NULL};
const char *const roi_align_keys[] = {"from", "size", "sampling_ratio", "aligned", "name", NULL};
const char *const fast_rcnn_keys[] = {"classes", "weights", "beta", "name", NULL};

int build_rpn(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_model *m = b->m;
    if (m->has_frcnn)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "a second [rpn]; a model has one");
    const nerve_net_config *nc = &m->cfg;
    if (nc->ndim != 3)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[rpn] needs an image input (channels, "
                         "height, width in [net])");
    nerve_frcnn_config c = nerve_frcnn_default();
    c.net_h = nc->dims[1], c.net_w = nc->dims[2];
    float sizes[16] = {128, 256, 512}, ratios[16] = {0.5f, 1, 2};
    int ns = 3, nr = 3;
    const cfg_range pos = {0, INFINITY, 1, 0}, unit = {0, 1, 0, 0}, nonneg = {0, INFINITY, 0, 0};
    TRY(cfg_get_float_list(d, s, "sizes", pos, sizes, 16, &ns));
    TRY(cfg_get_float_list(d, s, "ratios", pos, ratios, 16, &nr));
    TRY(cfg_get_int(d, s, "pre_nms", 1, 1000000, &c.pre_nms));
    TRY(cfg_get_int(d, s, "post_nms", 1, 100000, &c.post_nms));
    TRY(cfg_get_int(d, s, "rois", 1, 100000, &c.rois));
    TRY(cfg_get_int(d, s, "batch", 1, 1000000, &c.rpn_batch));
    TRY(cfg_get_int(d, s, "max", 1, 10000, &c.max_boxes));
    TRY(cfg_get_float(d, s, "nms", unit, &c.rpn_nms));
    TRY(cfg_get_float(d, s, "pos_iou", unit, &c.rpn_pos_iou));
    TRY(cfg_get_float(d, s, "neg_iou", unit, &c.rpn_neg_iou));
    TRY(cfg_get_float(d, s, "pos_fraction", unit, &c.rpn_pos_fraction));
    TRY(cfg_get_float(d, s, "fg_iou", unit, &c.fg_iou));
    TRY(cfg_get_float(d, s, "bg_iou", unit, &c.bg_iou));
    TRY(cfg_get_float(d, s, "fg_fraction", unit, &c.fg_fraction));
    TRY(cfg_get_float(d, s, "min_size", nonneg, &c.min_size));
    TRY(cfg_get_float(d, s, "beta", pos, &c.rpn_beta));
    if (c.rpn_neg_iou > c.rpn_pos_iou)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[rpn] neg_iou=%g is above pos_iou=%g",
                         (double)c.rpn_neg_iou, (double)c.rpn_pos_iou);
    if (c.bg_iou > c.fg_iou)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[rpn] bg_iou=%g is above fg_iou=%g",
                         (double)c.bg_iou, (double)c.fg_iou);
    int nd, dims[NERVE_MAX_DIMS], A = ns * nr;
    nerve_node_shape(b->g, b->x, &nd, dims);
    if (nd != 4 || dims[1] != 5 * A)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[rpn] with %d sizes x %d ratios = %d anchors "
                         "a cell reads 5*%d = %d channels (%d objectness planes, then 4 offsets "
                         "per anchor) of a C x H x W map; the layer before gives %s%d (set its "
                         "filters= to %d)", ns, nr, A, A, 5 * A, A, nd == 4 ? "" : "a non-map of ",
                         nd == 4 ? dims[1] : nd, 5 * A);
    int fh = dims[2], fw = dims[3];
    if (c.net_w % fw || c.net_h % fh || c.net_w / fw != c.net_h / fh)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[rpn]: the %d x %d input is not a whole "
                         "number of the %d x %d map's cells (one stride for both axes), so the "
                         "anchors' centres would not be the cells'", c.net_w, c.net_h, fw, fh);
    int na = nerve_anchors(fh, fw, (float)(c.net_w / fw), sizes, ns, ratios, nr, NULL);
    if (na < 0)
        return graph_fail(b, na);
    char an[96];
    snprintf(an, sizeof an, "%s.anchors", b->name);
    int anchors = nerve_state(b->g, an, 2, (int[]){na, 4});
    if (anchors < 0)
        return graph_fail(b, anchors);
    nerve_anchors(fh, fw, (float)(c.net_w / fw), sizes, ns, ratios, nr, nerve_value(b->g, anchors).data);
    int labels = nerve_input(b->g, "labels", 2, (int[]){1, c.max_boxes * 5});
    if (labels < 0)
        return graph_fail(b, labels);
    int rois = nerve_rpn_proposals(b->g, b->x, anchors, labels, &c);
    if (rois < 0)
        return graph_fail(b, rois);
    m->frcnn = c;
    m->has_frcnn = 1;
    m->frcnn_rpn_in = b->x;
    m->frcnn_anchors = anchors;
    m->frcnn_rois = rois;
    m->frcnn_labels = labels;
    b->flops = (double)na * 20;
    b->x = rois;
    return NERVE_OK;
}

static int build_roi(build_ctx *b, int align)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_model *m = b->m;
    if (m->has_frcnn != 1)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[%s] pools the proposals of an [rpn] "
                         "before it; there is none%s", s->name, m->has_frcnn ? " left" : "");
    if (m->frcnn_per_roi)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "a second [%s]; the head pools once", s->name);
    int from = 0, at = 0, size = 7, ratio = 2, aligned = 0;
    GET(has_from, cfg_get_int(d, s, "from", INT_MIN / 2, INT_MAX / 2, &from));
    if (!has_from)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[%s] needs from= (the layer whose feature "
                         "map it pools, e.g. -4)", s->name);
    TRY(resolve_layer(b, "from", from, &at));
    TRY(cfg_get_int(d, s, "size", 1, 64, &size));
    if (align) {
        TRY(cfg_get_int(d, s, "sampling_ratio", -1, 64, &ratio));
        TRY(cfg_get_bool(d, s, "aligned", &aligned));
    }
    int feat = m->layer_out[at], nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, feat, &nd, dims);
    if (nd != 4)
        return cfg_error(d, NERVE_ERR_SHAPE, cfg_find(s, "from")->line, "[%s] from=%d names layer "
                         "%d, whose output is not a C x H x W map", s->name, from, at);
    const nerve_frcnn_config *c = &m->frcnn;
    if ((int64_t)c->net_w * dims[2] != (int64_t)c->net_h * dims[3] || c->net_w % dims[3])
        return cfg_error(d, NERVE_ERR_SHAPE, cfg_find(s, "from")->line, "[%s]: the %d x %d map of "
                         "layer %d is not the %d x %d input divided by one whole stride", s->name,
                         dims[3], dims[2], at, c->net_w, c->net_h);
    float scale = (float)dims[3] / (float)c->net_w;
    int y = align ? nerve_roi_align(b->g, feat, m->frcnn_rois, size, size, scale, ratio, aligned)
                  : nerve_roi_pool(b->g, feat, m->frcnn_rois, size, size, scale);
    if (y < 0)
        return graph_fail(b, y);
    y = by_name_reshape(b->g, y, 3, (int[]){0, c->rois, dims[1] * size * size});
    if (y < 0)
        return graph_fail(b, y);
    m->frcnn_per_roi = 1;
    b->flops = (double)c->rois * dims[1] * size * size * (align ? 4.0 * ratio * ratio : 4.0);
    b->x = y;
    return NERVE_OK;
}

int build_roi_pool(build_ctx *b) { return build_roi(b, 0); }
int build_roi_align(build_ctx *b) { return build_roi(b, 1); }

/* The target of one sample's boxes: up to max_boxes corners in the input's pixels and the
 * class, then zeros. */
static int frcnn_target(const nerve_box *boxes, int n, const nerve_frcnn_config *c, float *t)
{
    memset(t, 0, (size_t)c->max_boxes * 5 * sizeof *t);
    int k = 0;
    for (int i = 0; i < n && k < c->max_boxes; i++) {
        const nerve_box *bx = &boxes[i];
        if ((int)bx->cls < 0 || (int)bx->cls >= c->classes || bx->cls != (float)(int)bx->cls)
            return nerve_set_error(NERVE_ERR_ARG, "Faster R-CNN target: box %d has class %g, not "
                                   "one of 0..%d", i, (double)bx->cls, c->classes - 1);
        if (!(bx->w > 0) || !(bx->h > 0))
            continue;
        float *r = t + (size_t)k++ * 5;
        nerve_box_corners(bx, (float)c->net_w, (float)c->net_h, r);
        r[4] = bx->cls;
    }
    return NERVE_OK;
}

static int feed_frcnn(nerve_model *m, const nerve_dataset *d, const int *idx, int n, void *user)
{
    (void)user;
    if (!d->box_start)
        return nerve_set_error(NERVE_ERR_STATE, "the data set has no boxes");
    float *t = nerve_value(m->g, m->labels).data;
    size_t per = (size_t)m->frcnn.max_boxes * 5;
    for (int i = 0; i < n; i++) {
        int64_t a = d->box_start[idx[i]], z = d->box_start[idx[i] + 1];
        int st = frcnn_target(d->boxes + a, (int)(z - a), &m->frcnn, t + (size_t)i * per);
        if (st)
            return st;
    }
    return NERVE_OK;
}

int build_fast_rcnn(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_model *m = b->m;
    if (m->has_frcnn != 1 || !m->frcnn_per_roi)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[fast_rcnn] is the head of a Faster R-CNN: "
                         "it needs an [rpn] and a [roi_pool] or [roi_align] before it");
    nerve_frcnn_config c = m->frcnn;
    const cfg_range pos = {0, INFINITY, 1, 0};
    int nw = 0;
    TRY(cfg_get_int(d, s, "classes", 1, 100000, &c.classes));
    GET(has_w, cfg_get_float_list(d, s, "weights", pos, c.weights, 4, &nw));
    if (has_w && nw != 4)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "weights")->line, "[fast_rcnn] "
                         "weights= gives %d values; it takes 4 (x, y, w, h, e.g. 10,10,5,5)", nw);
    TRY(cfg_get_float(d, s, "beta", pos, &c.beta));
    int nd, dims[NERVE_MAX_DIMS], want = c.classes + 1 + 4 * c.classes;
    nerve_node_shape(b->g, b->x, &nd, dims);
    if (nd != 3 || dims[1] != c.rois || dims[2] != want)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[fast_rcnn] classes=%d reads classes + 1 + "
                         "4*classes = %d values per RoI (background, the classes, then 4 offsets "
                         "per class); the layer before gives %s%d (set its output= to %d)",
                         c.classes, want, nd == 3 ? "" : "a non-RoI shape of rank ",
                         nd == 3 ? dims[2] : nd - 1, want);
    nerve_net_config *nc = &m->cfg;
    if (nc->n_classes && nc->n_classes != c.classes)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[fast_rcnn] classes=%d but [net] says "
                         "classes=%d", c.classes, nc->n_classes);
    int st = nerve_frcnn_check(&c);
    if (st)
        return graph_fail(b, st);
    nc->n_classes = c.classes;
    m->frcnn = c;
    /* the attributes of the proposals hold the classes too (they only check them) */
    node *p = graph_node(b->g, m->frcnn_rois);
    p->attr.rcnn.c = c;
    int l1 = nerve_rpn_loss(b->g, m->frcnn_rpn_in, m->frcnn_anchors, m->frcnn_labels, &c);
    if (l1 < 0)
        return graph_fail(b, l1);
    int l2 = nerve_fast_rcnn_loss(b->g, b->x, m->frcnn_rois, m->frcnn_labels, &c);
    if (l2 < 0)
        return graph_fail(b, l2);
    int loss = nerve_add(b->g, l1, l2);
    if (loss < 0)
        return graph_fail(b, loss);
    m->has_frcnn = 2;
    m->frcnn_scores = b->x;
    b->flops = (double)c.rois * want * 4;
    TRY(model_finish_head(b, b->x, m->frcnn_labels, loss, NERVE_TASK_DETECT, NERVE_TARGET_BOXES,
                          "fast_rcnn", 0));
    m->head.feed = feed_frcnn;
    m->head.user = NULL;
    return NERVE_OK;
}

int nerve_model_frcnn(const nerve_model *m, nerve_frcnn_config *out)
{
    if (!m || m->has_frcnn != 2)
        return 0;
    if (out)
        *out = m->frcnn;
    return 1;
}
