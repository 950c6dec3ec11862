/* SSD from the cfg (docs/cfg.md, docs/detection.md): each [ssd] section reads the map of the
 * convolution before it, [N, boxes*(4 + 1 + classes), H, W] (per default box: the 4 offsets,
 * the background score, the class scores), and gives it as [N, H*W*boxes, 4 + 1 + classes],
 * cell by cell, then box, the order of its default boxes. After the last layer the heads'
 * predictions are joined, the default boxes of all heads become one state, and one MultiBox
 * loss (src/ops/ssd.c) matches and mines over all of an image's default boxes. */
#include "model.h"
#include "../core/core.h"

#include <math.h>
#include <string.h>

const char *const ssd_keys[] = {"classes", "ratios", "min_scale", "max_scale", "match_thresh",
                                "neg_pos", "variance", "max", "name", NULL};

/* loss settings every head must share, with the key that sets each */
static int same_settings(build_ctx *b, const nerve_ssd_config *c, const float scales[2])
{
    const nerve_model *m = b->m;
    const nerve_ssd_config *o = &m->ssd;
    const char *key = NULL;
    if (o->classes != c->classes)
        key = "classes";
    else if (o->max_boxes != c->max_boxes)
        key = "max";
    else if (o->match_thresh != c->match_thresh)
        key = "match_thresh";
    else if (o->neg_pos != c->neg_pos)
        key = "neg_pos";
    else if (o->variance[0] != c->variance[0] || o->variance[1] != c->variance[1])
        key = "variance";
    else if (m->ssd_scale[0] != scales[0] || m->ssd_scale[1] != scales[1])
        key = scales[0] != m->ssd_scale[0] ? "min_scale" : "max_scale";
    if (!key)
        return NERVE_OK;
    return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line, "[ssd] %s= differs from the first [ssd] "
                     "(line %d); the heads share one loss and one set of scales, so give every "
                     "[ssd] the same %s=", key, m->ssd_line, key);
}

int build_ssd(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_model *m = b->m;
    nerve_ssd_config c;
    memset(&c, 0, sizeof c);
    c.classes = 20, c.max_boxes = 90, c.match_thresh = 0.5f, c.neg_pos = 3;
    c.variance[0] = 0.1f, c.variance[1] = 0.2f;
    float scales[2] = {0.2f, 0.9f};
    nerve_ssd_head h;
    memset(&h, 0, sizeof h);
    h.ratios[0] = 2, h.ratios[1] = 3, h.n_ratios = 2;
    const cfg_range unit = {0, 1, 1, 0}, above1 = {1, 100, 1, 0}, pos = {0, 1e6, 0, 0};
    const cfg_range posv = {0, 100, 1, 0};
    TRY(cfg_get_int(d, s, "classes", 1, 100000, &c.classes));
    TRY(cfg_get_int(d, s, "max", 1, 10000, &c.max_boxes));
    TRY(cfg_get_float(d, s, "match_thresh", unit, &c.match_thresh));
    TRY(cfg_get_float(d, s, "neg_pos", pos, &c.neg_pos));
    TRY(cfg_get_float(d, s, "min_scale", unit, &scales[0]));
    TRY(cfg_get_float(d, s, "max_scale", unit, &scales[1]));
    int nv = 0;
    GET(has_var, cfg_get_float_list(d, s, "variance", posv, c.variance, 2, &nv));
    if (has_var && nv != 2)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "variance")->line, "[ssd] variance= "
                         "takes two values (centre, size), e.g. variance=0.1,0.2");
    GET(has_ratios, cfg_get_float_list(d, s, "ratios", above1, h.ratios, NERVE_SSD_MAX_RATIOS,
                                       &h.n_ratios));
    (void)has_ratios; /* each ratio r > 1 gives boxes of r and 1/r; an empty list is not allowed */
    if (scales[1] < scales[0])
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[ssd] max_scale=%g is below "
                         "min_scale=%g", scales[1], scales[0]);
    if (m->n_yolo)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[ssd] in a model with [yolo] or [region] "
                         "heads; a model has one kind of detection head");
    if (m->n_ssd == (int)NERVE_ARRAY_LEN(m->ssd_head))
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "more than %d [ssd] heads",
                         (int)NERVE_ARRAY_LEN(m->ssd_head));
    if (m->n_ssd)
        TRY(same_settings(b, &c, scales));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    int A = 2 + 2 * h.n_ratios, E = 5 + c.classes;
    if (nd != 4 || dims[1] != A * E)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[ssd] with %d ratios (%d boxes a cell) and "
                         "classes=%d reads %d channels (boxes*(4 + 1 + classes)) of a C x H x W "
                         "map; the layer before gives %s%d (set its filters= to %d)", h.n_ratios,
                         A, c.classes, A * E, nd == 4 ? "" : "a non-map of ", nd == 4 ? dims[1] : nd,
                         A * E);
    nerve_net_config *nc = &m->cfg;
    if (nc->n_classes && nc->n_classes != c.classes)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[ssd] classes=%d but [net] says classes=%d",
                         c.classes, nc->n_classes);
    nc->n_classes = c.classes;
    h.fh = dims[2], h.fw = dims[3];
    int y = nerve_reshape(b->g, b->x, 4, (int[]){-1, A, E, h.fh * h.fw});
    if (y >= 0)
        y = nerve_transpose(b->g, y, (int[]){0, 3, 1, 2});
    if (y >= 0)
        y = nerve_reshape(b->g, y, 3, (int[]){-1, h.fh * h.fw * A, E});
    if (y < 0)
        return graph_fail(b, y);
    int k = m->n_ssd++;
    if (!k) {
        m->ssd = c;
        m->ssd_scale[0] = scales[0], m->ssd_scale[1] = scales[1];
        m->ssd_line = s->line;
    }
    m->ssd_head[k] = h;
    m->ssd_pred[k] = y;
    b->x = y;
    b->flops = 0;
    return NERVE_OK;
}

/* The target of one sample's boxes: up to max_boxes (x, y, w, h, class), then zeros. */
static int ssd_target(const nerve_box *boxes, int n, const nerve_ssd_config *c, float *target)
{
    memset(target, 0, (size_t)c->max_boxes * 5 * sizeof *target);
    int k = 0;
    for (int i = 0; i < n && k < c->max_boxes; i++) {
        const nerve_box *b = &boxes[i];
        if ((int)b->cls < 0 || (int)b->cls >= c->classes || b->cls != (float)(int)b->cls)
            return nerve_set_error(NERVE_ERR_ARG, "SSD target: box %d has class %g, not one of "
                                   "0..%d", i, b->cls, c->classes - 1);
        if (!(b->w > 0) || !(b->h > 0))
            continue; /* no size: no box */
        float *t = target + (size_t)k++ * 5;
        t[0] = b->x, t[1] = b->y, t[2] = b->w, t[3] = b->h, t[4] = b->cls;
    }
    return NERVE_OK;
}

static int feed_ssd(nerve_model *m, const nerve_dataset *d, const int *idx, int n, void *user)
{
    (void)user;
    if (!d->box_start)
        return nerve_set_error(NERVE_ERR_STATE, "the data set has no boxes");
    float *t = nerve_value(m->g, m->labels).data;
    size_t per = (size_t)m->ssd.max_boxes * 5;
    for (int i = 0; i < n; i++) {
        int64_t a = d->box_start[idx[i]], z = d->box_start[idx[i] + 1];
        int st = ssd_target(d->boxes + a, (int)(z - a), &m->ssd, t + (size_t)i * per);
        if (st)
            return st;
    }
    return NERVE_OK;
}

/* After the last layer: the scales of the heads (s_k linear from min_scale to max_scale over
 * the heads, s_(m+1) = 1; one head: min_scale, then max_scale), the joined predictions and
 * default boxes, the loss. */
int finish_ssd(build_ctx *b)
{
    nerve_model *m = b->m;
    int M = m->n_ssd;
    if (b->is_head)
        return cfg_error(b->d, NERVE_ERR_FORMAT, b->s->line, "[%s] after [ssd] heads: the [ssd] "
                         "heads give the model's loss themselves; remove it", b->s->name);
    float lo = m->ssd_scale[0], hi = m->ssd_scale[1];
    int total = 0;
    for (int k = 0; k < M; k++) {
        nerve_ssd_head *h = &m->ssd_head[k];
        h->scale = M == 1 ? lo : lo + (hi - lo) * (float)k / (float)(M - 1);
        h->next_scale = M == 1 ? hi : k + 1 < M ? lo + (hi - lo) * (float)(k + 1) / (float)(M - 1) : 1.0f;
        int n = nerve_ssd_priors(h, NULL);
        if (n < 0 || total > (1 << 24) - n)
            return cfg_error(b->d, NERVE_ERR_SHAPE, m->ssd_line, "[ssd]: %s",
                             n < 0 ? nerve_last_error() : "more than 2^24 default boxes");
        total += n;
    }
    int pred = M == 1 ? m->ssd_pred[0] : nerve_concat(b->g, M, m->ssd_pred, 1);
    if (pred < 0)
        return graph_fail(b, pred);
    int priors = nerve_state(b->g, "ssd.priors", 2, (int[]){total, 4});
    if (priors < 0)
        return graph_fail(b, priors);
    float *pv = nerve_value(b->g, priors).data;
    for (int k = 0, at = 0; k < M; k++)
        at += nerve_ssd_priors(&m->ssd_head[k], pv + (size_t)at * 4);
    int labels = nerve_input(b->g, "labels", 2, (int[]){1, m->ssd.max_boxes * 5});
    if (labels < 0)
        return graph_fail(b, labels);
    int loss = nerve_ssd_loss(b->g, pred, priors, labels, &m->ssd);
    if (loss < 0)
        return graph_fail(b, loss);
    m->ssd_out = pred;
    m->ssd_priors = priors;
    TRY(model_finish_head(b, pred, labels, loss, NERVE_TASK_DETECT, NERVE_TARGET_BOXES, "ssd", 0));
    m->head.line = m->ssd_line;
    m->head.feed = feed_ssd;
    m->head.user = NULL;
    return NERVE_OK;
}

int nerve_model_ssd(const nerve_model *m, nerve_ssd_config *c, nerve_ssd_head *heads, int max)
{
    if (!m || !m->n_ssd)
        return 0;
    if (c)
        *c = m->ssd;
    for (int k = 0; k < m->n_ssd && k < max && heads; k++)
        heads[k] = m->ssd_head[k];
    return m->n_ssd;
}
