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

/* ---- [yolo] and [region]: darknet's YOLO v3 and v2 heads ------------------------------- */

const char *const yolo_keys[] = {"mask", "anchors", "classes", "num", "jitter", "ignore_thresh",
                                 "truth_thresh", "random", "max", "map", "name", NULL};
const char *const region_keys[] = {"anchors", "classes", "coords", "num", "softmax", "jitter",
                                   "rescore", "object_scale", "noobject_scale", "class_scale",
                                   "coord_scale", "absolute", "thresh", "random", "bias_match",
                                   "max", "log", "sqrt", "background", "classfix", "mask_scale",
                                   "tree", "map", "name", NULL};

/* darknet reads these keys but the layer's forward pass does not depend on them; nerve
 * refuses the ones that would change what the layer computes */
static int refuse_nonzero(build_ctx *b, const char *key, const char *why)
{
    const cfg_entry *e = cfg_find(b->s, key);
    if (!e || !strcmp(e->value, "0"))
        return NERVE_OK;
    return cfg_error(b->d, NERVE_ERR_FORMAT, e->line, "[%s] %s=%s: %s", b->s->name, key, e->value,
                     why);
}

/* [region] tree= and map= (yolo9000.cfg): both files are read and checked (the tree's
 * classes are classes=, the map's entries its classes), and the layer builds and runs
 * forward (its input, the last convolution, is the model's output as for every [region]).
 * darknet's class scores are then a softmax per tree group and its detections walk the
 * tree; nerve's decoder and loss do not, so detection and training are refused naming the
 * line. */
static int region_tree(build_ctx *b, int classes)
{
    const cfg_entry *tree = cfg_find(b->s, "tree"), *map = cfg_find(b->s, "map");
    if (map && !tree)
        return cfg_error(b->d, NERVE_ERR_FORMAT, map->line,
                         "[region] map= without tree= (darknet reads it only for a tree's "
                         "detections) is not supported");
    if (!tree)
        return NERVE_OK;
    darknet_tree t;
    TRY(darknet_tree_of(b, tree, classes, &t));
    int groups = t.groups;
    darknet_tree_free(&t);
    if (map)
        TRY(darknet_map_check(b, map, classes));
    const char *file = b->d->file ? b->d->file : "<cfg>";
    snprintf(b->m->refuse_train, sizeof b->m->refuse_train,
             "%s:%d: [region] tree= (darknet's softmax over %d groups of a word tree) runs "
             "forward only; its loss is not supported", file, tree->line, groups);
    snprintf(b->m->refuse_detect, sizeof b->m->refuse_detect,
             "%s:%d: [region] tree= (darknet's word-tree detections%s) is not decoded",
             file, tree->line, map ? " through map=" : "");
    return NERVE_OK;
}

static int build_yolo_head(build_ctx *b, int region)
{
    const cfg_doc *d = b->d;
    const cfg_section *s = b->s;
    nerve_model *m = b->m;
    nerve_yolo_config c;
    memset(&c, 0, sizeof c);
    const cfg_range nonneg = {0, INFINITY, 0, 0}, unit = {0, 1, 0, 0};
    c.region = region;
    c.classes = 20;
    c.coords = 4;
    c.total = 1;
    c.max_boxes = region ? 30 : 90;
    c.ignore_thresh = 0.5f, c.truth_thresh = 1.0f, c.thresh = 0.5f;
    c.object_scale = c.noobject_scale = c.class_scale = c.coord_scale = 1.0f;
    float jitter = 0.2f;
    int random = 0, flag = 0;
    TRY(cfg_get_int(d, s, "classes", 1, 100000, &c.classes));
    TRY(cfg_get_int(d, s, "num", 1, NERVE_YOLO_MAX_ANCHORS, &c.total));
    TRY(cfg_get_int(d, s, "max", 1, 10000, &c.max_boxes));
    TRY(cfg_get_float(d, s, "jitter", nonneg, &jitter));
    TRY(cfg_get_bool(d, s, "random", &random));
    if (cfg_find(s, "map") && !region)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "map")->line, "[%s] map= (darknet's "
                         "class map file of a combined data set) is not supported yet", s->name);
    if (region) {
        TRY(cfg_get_int(d, s, "coords", 4, 4, &c.coords));
        TRY(cfg_get_bool(d, s, "softmax", &c.softmax));
        TRY(cfg_get_bool(d, s, "rescore", &c.rescore));
        TRY(cfg_get_bool(d, s, "bias_match", &c.bias_match));
        TRY(cfg_get_bool(d, s, "absolute", &flag));
        TRY(cfg_get_float(d, s, "thresh", unit, &c.thresh));
        TRY(cfg_get_float(d, s, "object_scale", nonneg, &c.object_scale));
        TRY(cfg_get_float(d, s, "noobject_scale", nonneg, &c.noobject_scale));
        TRY(cfg_get_float(d, s, "class_scale", nonneg, &c.class_scale));
        TRY(cfg_get_float(d, s, "coord_scale", nonneg, &c.coord_scale));
        TRY(cfg_get_float(d, s, "mask_scale", nonneg, &jitter)); /* read, as darknet (coords 4) */
        TRY(cfg_get_float(d, s, "jitter", nonneg, &jitter));
        TRY(refuse_nonzero(b, "background", "a background class instead of the objectness is "
                           "not supported"));
        TRY(refuse_nonzero(b, "log", "not supported (darknet's region layer has no log boxes)"));
        TRY(refuse_nonzero(b, "sqrt", "not supported (darknet's region layer has no square-root "
                           "boxes)"));
        TRY(refuse_nonzero(b, "classfix", "not supported"));
        TRY(region_tree(b, c.classes));
        c.n = c.total;
    } else {
        int n = 0;
        GET(has_mask, cfg_get_int_list(d, s, "mask", 0, c.total - 1, c.mask,
                                       NERVE_YOLO_MAX_ANCHORS, &n));
        if (!has_mask)
            for (n = 0; n < c.total; n++)
                c.mask[n] = n;
        if (n > NERVE_MAX_DIMS)
            return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "mask")->line, "[yolo] mask= names "
                             "%d anchors; nerve's [yolo] takes at most %d", n, NERVE_MAX_DIMS);
        c.n = n;
        TRY(cfg_get_float(d, s, "ignore_thresh", nonneg, &c.ignore_thresh));
        TRY(cfg_get_float(d, s, "truth_thresh", nonneg, &c.truth_thresh));
        const nerve_net_config *nc = &m->cfg;
        if (nc->ndim != 3)
            return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[yolo] needs an image input "
                             "(channels, height, width in [net])");
        c.net_h = nc->dims[1], c.net_w = nc->dims[2];
    }
    for (int k = 0; k < 2 * c.total; k++)
        c.anchors[k] = 0.5f; /* darknet's value when anchors= is absent */
    int na = 0;
    const cfg_range pos = {0, INFINITY, 1, 0};
    GET(has_anchors, cfg_get_float_list(d, s, "anchors", pos, c.anchors, 2 * NERVE_YOLO_MAX_ANCHORS,
                                        &na));
    if (has_anchors && na != 2 * c.total)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "anchors")->line, "[%s] anchors= gives "
                         "%d values; num=%d anchors need %d (a width and a height each)", s->name, na,
                         c.total, 2 * c.total);
    if (m->n_yolo == (int)(sizeof m->yolo / sizeof m->yolo[0]))
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "more than %d [yolo]/[region] heads",
                         (int)(int)(sizeof m->yolo / sizeof m->yolo[0]));
    if (m->n_yolo && m->yolo[0].max_boxes != c.max_boxes)
        return cfg_error(d, NERVE_ERR_FORMAT, s->line, "[%s] reads %d truth boxes per image and "
                         "an earlier head %d; give them the same max=", s->name, c.max_boxes,
                         m->yolo[0].max_boxes);
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(b->g, b->x, &nd, dims);
    int want = c.n * (c.coords + 1 + c.classes);
    if (nd != 4 || dims[1] != want)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[%s] with %d anchors and classes=%d reads "
                         "%d channels (num*(%d + 1 + classes)) of a C x H x W map; the layer before "
                         "gives %s%d (set its filters= to %d)", s->name, c.n, c.classes, want,
                         c.coords, nd == 4 ? "" : "a non-map of ", nd == 4 ? dims[1] : nd, want);
    nerve_net_config *nc = &m->cfg;
    if (nc->n_classes && nc->n_classes != c.classes)
        return cfg_error(d, NERVE_ERR_SHAPE, s->line, "[%s] classes=%d but [net] or another head "
                         "says classes=%d", s->name, c.classes, nc->n_classes);
    nc->n_classes = c.classes;
    char an[96];
    snprintf(an, sizeof an, "%s.anchors", b->name);
    int anchors = nerve_state(b->g, an, 2, (int[]){c.total, 2});
    if (anchors < 0)
        return graph_fail(b, anchors);
    memcpy(nerve_value(b->g, anchors).data, c.anchors, (size_t)c.total * 2 * sizeof(float));
    int y = nerve_yolo(b->g, b->x, &c);
    if (y < 0)
        return graph_fail(b, y);
    int k = m->n_yolo++;
    m->yolo[k] = c;
    m->yolo_in[k] = b->x;
    m->yolo_anchors[k] = anchors;
    m->yolo_out[k] = y;
    m->yolo_line = s->line;
    b->x = y;
    b->flops = (double)want * dims[2] * dims[3] * 4;
    (void)random;
    return NERVE_OK;
}

int build_yolo(build_ctx *b) { return build_yolo_head(b, 0); }
int build_region(build_ctx *b) { return build_yolo_head(b, 1); }

/* The target of one sample's boxes: up to max_boxes (x, y, w, h, class), then zeros. */
int nerve_yolo_target(const nerve_box *boxes, int n, const nerve_yolo_config *c, float *target)
{
    int st = nerve_yolo_check(c);
    if (st)
        return st;
    memset(target, 0, (size_t)c->max_boxes * 5 * sizeof *target);
    int k = 0;
    for (int i = 0; i < n && k < c->max_boxes; i++) {
        const nerve_box *b = &boxes[i];
        if ((int)b->cls < 0 || (int)b->cls >= c->classes || b->cls != (float)(int)b->cls)
            return nerve_set_error(NERVE_ERR_ARG, "YOLO target: box %d has class %g, not one of "
                                   "0..%d", i, b->cls, c->classes - 1);
        if (!(b->w > 0) || !(b->h > 0))
            continue; /* no size: no box */
        float *t = target + (size_t)k++ * 5;
        t[0] = b->x, t[1] = b->y, t[2] = b->w, t[3] = b->h, t[4] = b->cls;
    }
    return NERVE_OK;
}

static int feed_yolo(nerve_model *m, const nerve_dataset *d, const int *idx, int n, void *user)
{
    (void)user;
    if (!d->box_start)
        return nerve_set_error(NERVE_ERR_STATE, "the data set has no boxes");
    float *t = nerve_value(m->g, m->labels).data;
    size_t per = (size_t)m->yolo[0].max_boxes * 5;
    for (int i = 0; i < n; i++) {
        int64_t a = d->box_start[idx[i]], z = d->box_start[idx[i] + 1];
        int st = nerve_yolo_target(d->boxes + a, (int)(z - a), &m->yolo[0], t + (size_t)i * per);
        if (st)
            return st;
    }
    return NERVE_OK;
}

/* After the last layer: the labels, one loss per head and their sum as the model's loss. */
int finish_yolo(build_ctx *b)
{
    nerve_model *m = b->m;
    int labels = nerve_input(b->g, "labels", 2, (int[]){1, m->yolo[0].max_boxes * 5});
    if (labels < 0)
        return graph_fail(b, labels);
    int loss = -1;
    for (int k = 0; k < m->n_yolo; k++) {
        int l = nerve_yolo_loss(b->g, m->yolo_in[k], m->yolo_anchors[k], labels, &m->yolo[k]);
        if (l < 0)
            return graph_fail(b, l);
        loss = loss < 0 ? l : nerve_add(b->g, loss, l);
        if (loss < 0)
            return graph_fail(b, loss);
    }
    TRY(model_finish_head(b, b->x, labels, loss, NERVE_TASK_DETECT, NERVE_TARGET_BOXES,
                          m->yolo[0].region ? "region" : "yolo", 0));
    m->head.line = m->yolo_line;
    m->head.feed = feed_yolo;
    m->head.user = NULL;
    return NERVE_OK;
}

int nerve_model_yolo_heads(const nerve_model *m, nerve_yolo_config *out, int *nodes, int max)
{
    if (!m)
        return 0;
    for (int k = 0; k < m->n_yolo && k < max; k++) {
        if (out)
            out[k] = m->yolo[k];
        if (nodes)
            nodes[k] = m->yolo_out[k];
    }
    return m->n_yolo;
}
