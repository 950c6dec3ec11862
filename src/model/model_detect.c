/* Detection heads from the cfg (docs/cfg.md, docs/detection.md): [detection], darknet's
 * YOLO v1 layer, with darknet's keys and meanings. The layer before it gives
 * side*side*(classes + 5*num) values per sample (a [connected] layer in darknet's cfgs);
 * the head's target is the data set's boxes, which it turns into a per-cell target itself
 * (the feed function below), so any darknet-style list data set trains it. */
#include "model.h"

#include <math.h>
#include <string.h>

const char *const detection_keys[] = {"classes", "coords", "rescore", "side", "num", "softmax",
                                      "sqrt", "jitter", "object_scale", "noobject_scale",
                                      "class_scale", "coord_scale", "name", NULL};

/* The per-cell target of one sample's boxes: (obj, x, y, w, h, class) per cell, the box whose
 * centre falls in the cell (a later box of the same cell replaces an earlier one, as in
 * darknet). */
int nerve_yolo1_target(const nerve_box *boxes, int n, const nerve_yolo1_config *c, float *target)
{
    int st = nerve_yolo1_check(c);
    if (st)
        return st;
    int S = c->side;
    memset(target, 0, (size_t)S * S * 6 * sizeof(float));
    for (int k = 0; k < n; k++) {
        const nerve_box *b = &boxes[k];
        if ((int)b->cls < 0 || (int)b->cls >= c->classes)
            return nerve_set_error(NERVE_ERR_ARG, "YOLO v1 target: box %d has class %g, not one "
                                   "of 0..%d", k, b->cls, c->classes - 1);
        int col = (int)floorf(b->x * S), row = (int)floorf(b->y * S);
        col = col < 0 ? 0 : col >= S ? S - 1 : col;
        row = row < 0 ? 0 : row >= S ? S - 1 : row;
        float *t = target + ((size_t)row * S + col) * 6;
        t[0] = 1.0f;
        t[1] = b->x * S - col;
        t[2] = b->y * S - row;
        t[3] = b->w;
        t[4] = b->h;
        t[5] = b->cls;
    }
    return NERVE_OK;
}

static int feed_yolo1(nerve_model *m, const nerve_dataset *d, const int *idx, int n, void *user)
{
    (void)user;
    if (!d->box_start)
        return nerve_set_error(NERVE_ERR_STATE, "the data set has no boxes");
    float *t = nerve_value(m->g, m->labels).data;
    size_t per = (size_t)m->yolo1.side * m->yolo1.side * 6;
    for (int i = 0; i < n; i++) {
        int64_t a = d->box_start[idx[i]], z = d->box_start[idx[i] + 1];
        int st = nerve_yolo1_target(d->boxes + a, (int)(z - a), &m->yolo1, t + (size_t)i * per);
        if (st)
            return st;
    }
    return NERVE_OK;
}

int build_detection(build_ctx *b)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_yolo1_config c = nerve_yolo1_default();
    int coords = 4, softmax = 0;
    float jitter = 0;
    const cfg_range nonneg = {0, INFINITY, 0, 0};
    TRY(cfg_get_int(d, s, "classes", 1, 100000, &c.classes));
    TRY(cfg_get_int(d, s, "side", 1, 1024, &c.side));
    TRY(cfg_get_int(d, s, "num", 1, 64, &c.num));
    TRY(cfg_get_int(d, s, "coords", 4, 4, &coords));
    TRY(cfg_get_bool(d, s, "rescore", &c.rescore));
    TRY(cfg_get_bool(d, s, "sqrt", &c.sqrt));
    TRY(cfg_get_bool(d, s, "softmax", &softmax));
    TRY(cfg_get_float(d, s, "jitter", nonneg, &jitter));
    TRY(cfg_get_float(d, s, "object_scale", nonneg, &c.object_scale));
    TRY(cfg_get_float(d, s, "noobject_scale", nonneg, &c.noobject_scale));
    TRY(cfg_get_float(d, s, "class_scale", nonneg, &c.class_scale));
    TRY(cfg_get_float(d, s, "coord_scale", nonneg, &c.coord_scale));
    if (softmax)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "softmax")->line,
                         "[detection] softmax=1 (a softmax over each cell's class scores) is not "
                         "supported yet; darknet's YOLO v1 cfgs use softmax=0");
    size_t want = (size_t)c.side * c.side * ((size_t)c.classes + 5 * (size_t)c.num);
    size_t got = sample_numel(b->g, b->x);
    if (got != want)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line,
                         "[detection] side=%d num=%d classes=%d reads side*side*(classes + 5*num) "
                         "= %zu values per sample, but the layer before gives %zu (set its "
                         "output= to %zu)", c.side, c.num, c.classes, want, got, want);
    nerve_net_config *nc = &b->m->cfg;
    if (nc->n_classes && nc->n_classes != c.classes)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[detection] classes=%d but [net] says "
                         "classes=%d", c.classes, nc->n_classes);
    nc->n_classes = c.classes;
    int labels = nerve_input(b->g, "labels", 2, (int[]){1, c.side * c.side * 6});
    if (labels < 0)
        return graph_fail(b, labels);
    int loss = nerve_yolo1_loss(b->g, b->x, labels, &c);
    if (loss < 0)
        return graph_fail(b, loss);
    b->m->yolo1 = c;
    b->m->has_yolo1 = 1;
    b->flops = (double)want * 4;
    TRY(model_finish_head(b, b->x, labels, loss, NERVE_TASK_DETECT, NERVE_TARGET_BOXES,
                          "yolo1", 0));
    b->m->head.feed = feed_yolo1;
    b->m->head.user = NULL;
    return NERVE_OK;
}

int nerve_model_yolo1(const nerve_model *m, nerve_yolo1_config *out)
{
    if (!m || !m->has_yolo1)
        return 0;
    if (out)
        *out = m->yolo1;
    return 1;
}
