/* int8 inference operators: qdense and qconv, the quantised forms of dense and conv
 * (docs/quantize.md). A node keeps its inputs (x, w, bias), attributes and shape; what
 * changes is its forward:
 *   1. x (float) -> u8 with the input's calibrated scale and zero point,
 *   2. (conv) the patches of each image as rows of u8, padding reading the zero point,
 *   3. int32 sums of u8 x s8 products by kern_q8_gemm against weights packed once here,
 *   4. requantisation per output channel: (sum + bias32) * mult >> shift + zero point,
 *      clamped (at the zero point too when a ReLU follows), an integer-only step,
 *   5. the u8 outputs written as floats, out_scale * (q - out_zero), for the float
 *      operators around the node.
 * The bias is folded once: bias32[n] = round(b[n] / (in_scale * w_scale[n])) - in_zero *
 * sum_k w[n, k], which removes the activations' zero point from the u8 x s8 sums.
 * Between two int8 nodes joined by nothing but ReLUs, at most one max pool (no padding) and
 * views, the activations stay bytes: the first node requantises its sums (pooled first: the
 * requantisation is nondecreasing, so max and requantisation commute) and maps each byte
 * through a 256-entry table (its dequantisation, the ReLU and the next node's quantisation,
 * the float route's own arithmetic, computed once) straight into the next node's input
 * bytes; the ReLU and pool nodes between are skipped (node.skip_with) whenever the next
 * node runs in the same forward. The bytes are those the float route would give, on every
 * path. A forward that stops at a node between still computes it in float.
 * Forward only: a quantised node has no backward (models refuse to train with one). */
#include "../kernels/kernels.h"
#include "ops.h"

#include <math.h>
#include <string.h>

/* Bytes between int8 nodes (link_graph). A producer's output reaches its consumers through
 * ReLUs, at most one max pool, identity batch norms and views, each read by one node only;
 * the last of them (or the producer itself) is read by int8 nodes only, every one of which
 * takes the same bytes (one table). */
enum { QNEXT = 8, QPATH = 16 };
typedef struct qlink {
    int linked;             /* link_graph ran since the graph's int8 nodes last changed, */
    int link_batch;         /* for this max_batch */
    int next[QNEXT];        /* the int8 nodes reading this one's output as bytes */
    int n_next;
    int prev[2];            /* the int8 node writing input k's bytes (in8[k]), or -1 */
    const uint8_t *in8[2];  /* prev[k]'s out8 */
    kern_q8_pool pool;      /* the max pool between (1 x 1 for none) */
    uint8_t lut[256];       /* this node's output byte -> the next nodes' input byte */
    int lut_id;             /* lut is the identity */
    uint8_t *out8;          /* [max_batch, out8_sample] the next nodes' input bytes */
    size_t out8_sample;
    int bn[4], n_bn;        /* identity batch norms on the link (op_bn_identity) */
    int path[QPATH], n_path; /* the nodes between, skipped when the bytes are written */
} qlink;

typedef struct qlayer {
    const op_def *orig;     /* dense or conv: shapes are inferred by it */
    op_quant_params p;      /* with w and w_scale pointing at the copies below */
    int8_t *w;              /* [N, K] */
    float *w_scale;         /* [N] */
    int N, K, Kp;
    void *packed;           /* kern_q8_pack */
    int32_t *bias, *mult, *shift;
    kern_q8_requant rq;
    float inv_in;
    int threads;            /* workspaces allocated */
    size_t ws_thread;       /* bytes per thread */
    unsigned char *ws;
    uint8_t *a;             /* qdense: [max_batch, Kp] quantised inputs */
    int32_t *c;             /* qdense: [max_batch, N] sums */
    kern_conv_shape ks;     /* qconv: one image */
    int direct;             /* qconv: the direct route fits (it runs on the VNNI path) */
    kern_q8_conv_plan plan;
    int32_t *off;           /* [Kp] tap offsets of the direct route */
    qlink l;                /* bytes from and to other int8 nodes */
    uint8_t *a8;            /* qdense with K % 4: in8's rows copied to Kp bytes */
    float *fbias;           /* [N] p.bias's copy (a folded batch norm), or NULL */
} qlayer;

/* An int8 add (op_qadd): both inputs as bytes, added into the output's scale. */
typedef struct qaddn {
    qlink l;
    const op_def *orig;     /* add: shapes are inferred by it */
    op_quant_add_params p;
    kern_q8_addp k;
    float inv_a, inv_b;
} qaddn;

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static void qlayer_free(void *data)
{
    qlayer *q = data;
    if (!q)
        return;
    nerve_xfree(q->w);
    nerve_xfree(q->w_scale);
    nerve_xfree_aligned(q->packed);
    nerve_xfree(q->bias);
    nerve_xfree(q->mult);
    nerve_xfree(q->shift);
    nerve_xfree_aligned(q->ws);
    nerve_xfree_aligned(q->a);
    nerve_xfree_aligned(q->c);
    nerve_xfree(q->off);
    nerve_xfree_aligned(q->l.out8);
    nerve_xfree_aligned(q->a8);
    nerve_xfree(q->fbias);
    nerve_xfree(q);
}

static qlayer *qof(const node *n) { return n->op_data; }

static int q_infer(nerve_graph *g, node *n) { return qof(n)->orig->infer(g, n); }

static size_t q_scratch(const nerve_graph *g, const node *n)
{
    const op_def *o = qof(n)->orig;
    return o->scratch ? o->scratch(g, n) : 0;
}

static int threads_now(const qlayer *q)
{
    int T = kern_threads();
    return T < q->threads ? T : q->threads;
}

/* ---- bytes between int8 nodes ---------------------------------------------------------- */

static const op_def op_qdense, op_qconv, op_qadd;

static int is_q(const node *n)
{
    return n->op == &op_qdense || n->op == &op_qconv || n->op == &op_qadd;
}

float op_bn_identity_var(float eps)
{
    float v = 1.0f - eps;
    for (int i = 0; i < 8 && !(1.0f / sqrtf(v + eps) == 1.0f); i++) /* v + eps rounds to 1 */
        v = nextafterf(v, v + eps < 1.0f ? 2.0f : 0.0f);
    return v;
}

int op_bn_identity(const nerve_graph *g, const node *n)
{
    if (n->kind != NERVE_NODE_OP || !n->op || strcmp(n->op->name, "batchnorm") || g->training ||
        n->n_in != 5)
        return 0;
    const node *gm = &g->nodes[n->in[1]], *bt = &g->nodes[n->in[2]], *mu = &g->nodes[n->in[3]],
               *var = &g->nodes[n->in[4]];
    size_t C = node_numel(gm);
    if (!gm->value || !bt->value || !mu->value || !var->value)
        return 0;
    for (size_t c = 0; c < C; c++) /* the evaluation forward's scale and shift: 1 and 0 */
        if (!(gm->value[c] == 1.0f && bt->value[c] == 0.0f && mu->value[c] == 0.0f &&
              1.0f / sqrtf(var->value[c] + n->attr.batchnorm.eps) == 1.0f))
            return 0;
    return 1;
}

static qaddn *qaddof(const node *n) { return n->op_data; }

static qlink *lk(const node *n)
{
    return n->op == &op_qadd ? &qaddof(n)->l : &qof(n)->l;
}

/* The scale and zero point of int8 node c's input k. */
static void input_params(const node *c, int k, float *inv, int *zp)
{
    if (c->op == &op_qadd) {
        const qaddn *a = qaddof(c);
        *inv = k ? a->inv_b : a->inv_a;
        *zp = k ? a->p.b_zero : a->p.a_zero;
        return;
    }
    *inv = qof(c)->inv_in;
    *zp = qof(c)->p.in_zero;
}

/* Links int8 node p to the int8 nodes its output reaches through ReLUs, at most one max pool
 * (after a conv), identity batch norms and views, if any: p's output bytes then go straight
 * into those nodes' inputs. */
static void link_node(nerve_graph *g, int p)
{
    node *np = &g->nodes[p];
    qlink *L = lk(np);
    int path[QPATH], n_path = 0, relu = 0, pooled = 0, g6[6], bn[4], n_bn = 0;
    kern_q8_pool pool = {1, 1, 1, 1, 1, 1};
    int cur = p, rd[QNEXT], rk[QNEXT], nr = 0;
    for (;;) {
        int all_q = 1;
        nr = 0;
        for (int i = cur + 1; i < g->n_nodes; i++) {
            const node *n = &g->nodes[i];
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] == cur) {
                    if (nr == QNEXT)
                        return;
                    rd[nr] = i;
                    rk[nr++] = k;
                    all_q &= is_q(n) && (k == 0 || (n->op == &op_qadd && k == 1));
                }
        }
        if (nr == 0)
            return;
        if (all_q)
            break;
        if (nr != 1 || rk[0] != 0 || n_path == QPATH)
            return;
        int r = rd[0];
        node *n = &g->nodes[r];
        if (n->kind != NERVE_NODE_OP)
            return;
        if (n->flags & OP_PLAIN_RELU)
            relu = 1;
        else if (!pooled && np->op == &op_qconv && qof(np)->ks.out[0] == 1 &&
                 op_pool_plain_max(g, n, g6)) {
            pooled = 1;
            pool = (kern_q8_pool){g6[0], g6[1], g6[2], g6[3], g6[4], g6[5]};
        } else if (n_bn < 4 && op_bn_identity(g, n)) {
            bn[n_bn++] = r;
        } else if (!(n->flags & OP_ALIAS_INPUT))
            return;
        path[n_path++] = r;
        cur = r;
    }
    size_t sample;
    float out_scale;
    int out_zero;
    if (np->op == &op_qconv) {
        const qlayer *q = qof(np);
        if (!pooled) /* rows of every depth, then columns (the direct route is 2-D) */
            pool = (kern_q8_pool){1, 1, 1, 1, q->ks.out[0] * q->ks.out[1], q->ks.out[2]};
        sample = (size_t)q->N * pool.OH * pool.OW;
    } else if (np->op == &op_qdense) {
        sample = (size_t)qof(np)->N;
    } else {
        sample = node_numel(np) / (size_t)g->batch;
    }
    if (np->op == &op_qadd) {
        out_scale = qaddof(np)->p.out_scale;
        out_zero = qaddof(np)->p.out_zero;
    } else {
        out_scale = qof(np)->rq.scale;
        out_zero = qof(np)->rq.zp;
    }
    float v[256];
    for (int b = 0; b < 256; b++) {
        float x = out_scale * (float)(b - out_zero); /* as the int8 nodes write it */
        v[b] = relu ? (x > 0.0f ? x : 0.0f) : x;  /* as the ReLU operator computes it */
    }
    uint8_t lut[256];
    for (int j = 0; j < nr; j++) {
        node *c = &g->nodes[rd[j]];
        if (lk(c)->prev[rk[j]] >= 0 ||
            node_numel(&g->nodes[c->in[rk[j]]]) / (size_t)g->batch != sample)
            return;
        float inv;
        int zp;
        input_params(c, rk[j], &inv, &zp);
        uint8_t t[256];
        kern_q8_quantize(v, 256, inv, zp, j ? t : lut);
        if (j && memcmp(t, lut, 256)) /* the readers quantise differently: floats */
            return;
    }
    uint8_t *out8 = (uint8_t *)nerve_xalloc_floats(((size_t)g->max_batch * sample + 3) / 4);
    uint8_t *a8[QNEXT] = {0};
    int ok = out8 != NULL;
    for (int j = 0; j < nr && ok; j++) {
        const node *c = &g->nodes[rd[j]];
        if (c->op == &op_qdense && qof(c)->K != qof(c)->Kp) {
            size_t bytes = (size_t)g->max_batch * qof(c)->Kp;
            ok = (a8[j] = (uint8_t *)nerve_xalloc_floats((bytes + 3) / 4)) != NULL;
            if (ok)
                memset(a8[j], 0, bytes);
        }
    }
    if (!ok) { /* stays on the float route */
        nerve_xfree_aligned(out8);
        for (int j = 0; j < nr; j++)
            nerve_xfree_aligned(a8[j]);
        return;
    }
    memcpy(L->lut, lut, 256);
    L->lut_id = 1;
    for (int b = 0; b < 256; b++)
        L->lut_id &= lut[b] == b;
    L->pool = pool;
    memcpy(L->bn, bn, sizeof bn);
    L->n_bn = n_bn;
    memcpy(L->path, path, sizeof path);
    L->n_path = n_path;
    L->out8 = out8;
    L->out8_sample = sample;
    L->n_next = nr;
    for (int j = 0; j < nr; j++) {
        node *c = &g->nodes[rd[j]];
        L->next[j] = rd[j];
        lk(c)->prev[rk[j]] = p;
        lk(c)->in8[rk[j]] = out8;
        if (a8[j]) {
            nerve_xfree_aligned(qof(c)->a8);
            qof(c)->a8 = a8[j];
        }
    }
}

static int links_off; /* op_quant_links(g, 0): every int8 node takes and gives floats */

/* Undoes every link of the graph's int8 nodes and links them again. */
static void link_graph(nerve_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        n->skip_with = 0;
        if (!is_q(n))
            continue;
        qlink *L = lk(n);
        nerve_xfree_aligned(L->out8);
        L->out8 = NULL;
        if (n->op != &op_qadd) {
            nerve_xfree_aligned(qof(n)->a8);
            qof(n)->a8 = NULL;
        }
        L->in8[0] = L->in8[1] = NULL;
        L->prev[0] = L->prev[1] = -1;
        L->n_next = L->n_bn = L->n_path = 0;
        L->linked = 1;
        L->link_batch = g->max_batch;
    }
    for (int i = 0; i < g->n_nodes && !links_off; i++)
        if (is_q(&g->nodes[i]))
            link_node(g, i);
    /* an identity batch norm running in place over an int8 node's float output (no link
     * through it) leaves the buffer as it is: skipped whenever that node runs */
    for (int i = 0; i < g->n_nodes && !links_off; i++) {
        if (!is_q(&g->nodes[i]) || g->nodes[i].op == &op_qadd)
            continue;
        qlink *L = lk(&g->nodes[i]);
        int r = graph_sole_reader(g, i);
        if (r < 0 || L->n_next > 0 || L->n_bn >= 4)
            continue;
        node *b = &g->nodes[r];
        if (b->in_place && !b->fused_relu && !b->skip_with && op_bn_identity(g, b)) {
            b->skip_with = i + 1;
            L->bn[L->n_bn++] = r;
        }
    }
}

int op_quant_links(nerve_graph *g, int on)
{
    links_off = !on;
    link_graph(g);
    int links = 0;
    for (int i = 0; i < g->n_nodes; i++)
        links += is_q(&g->nodes[i]) && lk(&g->nodes[i])->n_next > 0;
    return links;
}

/* Whether this forward writes the node's output as the next nodes' bytes (and not as
 * floats): when it runs one of them. The nodes between are then skipped. */
static int writes_bytes(nerve_graph *g, const qlink *L)
{
    int c = -1;
    for (int j = 0; j < L->n_next && c < 0; j++)
        if (g->mark[L->next[j]])
            c = L->next[j];
    for (int i = 0; i < L->n_path; i++)
        g->nodes[L->path[i]].skip_with = c + 1;
    return c >= 0;
}

/* Links made again if the graph changed under them: the batch size it was made for, or a
 * batch norm on a link that no longer computes the identity (its statistics changed, or the
 * graph is in training mode). */
static void check_links(nerve_graph *g, const qlink *L)
{
    int stale = !L->linked || L->link_batch != g->max_batch;
    for (int i = 0; i < L->n_bn && !stale; i++)
        stale = !op_bn_identity(g, &g->nodes[L->bn[i]]);
    if (stale)
        link_graph(g);
}

/* The table a producer's bytes go through, NULL for the identity. */
static const uint8_t *lut_of(const qlink *L) { return L->lut_id ? NULL : L->lut; }

/* ---- qdense --------------------------------------------------------------------------- */

typedef struct dense_job {
    qlayer *q;
    const float *x;
    float *y;
    int rows;
    int bytes; /* write q->out8 (writes_bytes) */
} dense_job;

static void dense_task(void *ctx, int t, int T)
{
    dense_job *j = ctx;
    qlayer *q = j->q;
    size_t r0, r1;
    kern_split((size_t)j->rows, t, T, &r0, &r1);
    if (r0 >= r1)
        return;
    const uint8_t *a = q->a + r0 * q->Kp;
    const uint8_t *in8 = q->l.in8[0];
    if (in8 && q->K == q->Kp) { /* the previous int8 node's bytes, rows as they are */
        a = in8 + r0 * q->Kp;
    } else if (in8) {
        a = q->a8 + r0 * q->Kp;
        for (size_t r = r0; r < r1; r++)
            memcpy(q->a8 + r * q->Kp, in8 + r * q->K, (size_t)q->K);
    } else {
        for (size_t r = r0; r < r1; r++)
            kern_q8_quantize(j->x + r * q->K, (size_t)q->K, q->inv_in, q->p.in_zero,
                             q->a + r * q->Kp);
    }
    kern_q8_gemm((int)(r1 - r0), q->N, q->K, a, q->Kp, q->packed, q->c + r0 * q->N, q->N,
                 q->ws + (size_t)t * q->ws_thread);
    if (j->bytes) {
        for (size_t r = r0; r < r1; r++)
            kern_q8_requant_pool(&q->rq, q->N, q->c + r * q->N, 1, 0, 0, &q->l.pool, lut_of(&q->l),
                                 q->l.out8 + r * q->l.out8_sample);
        return;
    }
    kern_q8_requantize(&q->rq, (int)(r1 - r0), q->N, q->c + r0 * q->N, q->N, NULL,
                       j->y + r0 * q->N, q->N, 1);
}

/* Rows per thread below which one thread does the batch. */
enum { DENSE_ROWS_PER_THREAD = 8 };

static void qdense_forward(nerve_graph *g, node *n)
{
    qlayer *q = qof(n);
    check_links(g, &q->l);
    dense_job j = {q, node_input(g, n, 0)->value, n->value, n->dims[0], writes_bytes(g, &q->l)};
    int T = threads_now(q);
    if (j.rows < T * DENSE_ROWS_PER_THREAD)
        T = j.rows / DENSE_ROWS_PER_THREAD > 1 ? j.rows / DENSE_ROWS_PER_THREAD : 1;
    if (T == 1)
        dense_task(&j, 0, 1);
    else
        kern_run(T, dense_task, &j);
}

static const op_def op_qdense = {"qdense", q_infer, q_scratch, qdense_forward, NULL,
                                 OP_OUTPUT_UNREAD};

/* ---- qconv ---------------------------------------------------------------------------- */

/* Per-thread workspace of qconv: the image as u8, its patch rows, the sums, the product's. */
typedef struct conv_ws {
    size_t img, rows, sums, gemm;
} conv_ws;

static size_t conv_positions(const kern_conv_shape *k)
{
    return (size_t)k->out[0] * k->out[1] * k->out[2];
}

static conv_ws conv_ws_of(const qlayer *q)
{
    const kern_conv_shape *k = &q->ks;
    size_t P = conv_positions(k);
    conv_ws w = {round64((size_t)k->channels * k->image[0] * k->image[1] * k->image[2]),
                 round64(P * (size_t)q->Kp), round64(P * (size_t)q->N * sizeof(int32_t)),
                 round64(kern_q8_gemm_ws(q->K))};
    return w;
}

typedef struct conv_job {
    qlayer *q;
    const float *x;
    float *y;
    int images;
    int bytes; /* write q->out8 (writes_bytes) */
} conv_job;

static void conv_task(void *ctx, int t, int T)
{
    conv_job *j = ctx;
    qlayer *q = j->q;
    const kern_conv_shape *k = &q->ks;
    conv_ws w = conv_ws_of(q);
    unsigned char *base = q->ws + (size_t)t * q->ws_thread;
    uint8_t *img = base, *rows = base + w.img;
    int32_t *sums = (int32_t *)(base + w.img + w.rows);
    void *gws = base + w.img + w.rows + w.sums;
    size_t in_plane = (size_t)k->channels * k->image[0] * k->image[1] * k->image[2];
    size_t P = conv_positions(k);
    size_t i0, i1;
    kern_split((size_t)j->images, t, T, &i0, &i1);
    const uint8_t *in8 = q->l.in8[0];
    if (q->direct && kern_q8_conv_direct_runs()) {
        for (size_t i = i0; i < i1; i++) {
            if (!j->bytes && !in8) {
                kern_q8_conv_direct(&q->plan, q->off, j->x + i * in_plane, q->inv_in,
                                    q->p.in_zero, q->packed, &q->rq, j->y + i * P * q->N, base);
                continue;
            }
            const kern_q8_conv_plan *p = &q->plan;
            int32_t *s = kern_q8_conv_direct_sums(p, q->off, in8 ? NULL : j->x + i * in_plane,
                                                  in8 ? in8 + i * in_plane : NULL,
                                                  q->inv_in, q->p.in_zero, q->packed, base);
            if (j->bytes)
                kern_q8_requant_pool(&q->rq, q->N, s, (ptrdiff_t)p->spanp, p->Wp, 1, &q->l.pool,
                                     lut_of(&q->l), q->l.out8 + i * q->l.out8_sample);
            else
                kern_q8_conv_direct_requant(p, s, &q->rq, j->y + i * P * q->N);
        }
        return;
    }
    for (size_t i = i0; i < i1; i++) {
        const uint8_t *im = img;
        if (in8)
            im = in8 + i * in_plane;
        else
            kern_q8_quantize(j->x + i * in_plane, in_plane, q->inv_in, q->p.in_zero, img);
        kern_q8_im2row(k, im, (uint8_t)q->p.in_zero, rows, q->Kp);
        kern_q8_gemm((int)P, q->N, q->K, rows, q->Kp, q->packed, sums, q->N, gws);
        /* sums are [P, N]; the output is channel-major [N, P] */
        if (j->bytes)
            kern_q8_requant_pool(&q->rq, q->N, sums, 1, (ptrdiff_t)k->out[2] * q->N, q->N,
                                 &q->l.pool, lut_of(&q->l), q->l.out8 + i * q->l.out8_sample);
        else
            kern_q8_requantize(&q->rq, (int)P, q->N, sums, q->N, NULL, j->y + i * P * q->N, 1,
                               (ptrdiff_t)P);
    }
}

static void qconv_forward(nerve_graph *g, node *n)
{
    qlayer *q = qof(n);
    check_links(g, &q->l);
    conv_job j = {q, node_input(g, n, 0)->value, n->value, n->dims[0], writes_bytes(g, &q->l)};
    int T = threads_now(q);
    if (T > j.images)
        T = j.images;
    if (T <= 1)
        conv_task(&j, 0, 1);
    else
        kern_run(T, conv_task, &j);
}

static const op_def op_qconv = {"qconv", q_infer, q_scratch, qconv_forward, NULL,
                                OP_OUTPUT_UNREAD | OP_SCRATCH_TRANSIENT};

/* ---- qadd ----------------------------------------------------------------------------- */

static void qadd_free(void *data)
{
    qaddn *q = data;
    if (!q)
        return;
    nerve_xfree_aligned(q->l.out8);
    nerve_xfree(q);
}

static int qadd_infer(nerve_graph *g, node *n) { return qaddof(n)->orig->infer(g, n); }

/* Both inputs as bytes (the int8 nodes' before it, or its float inputs quantised), added
 * and requantised (kern_q8_add), written as the next nodes' bytes or as floats
 * out_scale * (q - out_zero). Elementwise, a chunk at a time: it may run in place. */
static void qadd_forward(nerve_graph *g, node *n)
{
    qaddn *q = qaddof(n);
    check_links(g, &q->l);
    int bytes = writes_bytes(g, &q->l);
    const float *xa = node_input(g, n, 0)->value, *xb = node_input(g, n, 1)->value;
    const uint8_t *lut = lut_of(&q->l);
    size_t total = node_numel(n);
    enum { CHUNK = 4096 };
    uint8_t ba[CHUNK], bb[CHUNK], by[CHUNK];
    for (size_t i = 0; i < total; i += CHUNK) {
        size_t m = total - i < CHUNK ? total - i : CHUNK;
        const uint8_t *a = q->l.in8[0] ? q->l.in8[0] + i : ba, *b = q->l.in8[1] ? q->l.in8[1] + i : bb;
        if (!q->l.in8[0])
            kern_q8_quantize(xa + i, m, q->inv_a, q->p.a_zero, ba);
        if (!q->l.in8[1])
            kern_q8_quantize(xb + i, m, q->inv_b, q->p.b_zero, bb);
        uint8_t *y = bytes ? q->l.out8 + i : by;
        kern_q8_add(&q->k, a, b, m, y);
        if (bytes) {
            if (lut)
                kern_q8_lut(lut, y, m);
            continue;
        }
        float s = q->p.out_scale, *out = n->value + i;
        int z = q->p.out_zero;
        for (size_t j = 0; j < m; j++)
            out[j] = s * (float)(by[j] - z);
    }
}

static const op_def op_qadd = {"qadd", qadd_infer, NULL, qadd_forward, NULL, OP_OUTPUT_UNREAD};

int op_quant_addable(const nerve_graph *g, const node *n)
{
    if (!n->op || strcmp(n->op->name, "add") || n->n_in != 2 || n->kind != NERVE_NODE_OP)
        return 0;
    const node *a = &g->nodes[n->in[0]], *b = &g->nodes[n->in[1]];
    return nerve_same_shape(n->ndim, n->dims, a->ndim, a->dims) &&
           nerve_same_shape(n->ndim, n->dims, b->ndim, b->dims);
}

const op_quant_add_params *op_quant_add_of(const node *n, int32_t ints[3])
{
    if (n->op != &op_qadd)
        return NULL;
    const qaddn *q = qaddof(n);
    if (ints) {
        ints[0] = q->k.ma;
        ints[1] = q->k.mb;
        ints[2] = q->k.shift;
    }
    return &q->p;
}

int op_quantize_add(nerve_graph *g, int id, const op_quant_add_params *p)
{
    if (!g || id < 0 || id >= g->n_nodes || !p)
        return nerve_set_error(NERVE_ERR_ARG, "int8: bad node or parameters");
    node *n = graph_node(g, id);
    if (!g->compiled || !op_quant_addable(g, n))
        return nerve_set_error(NERVE_ERR_ARG, "int8: node '%s' (%s) cannot run as an int8 add "
                               "(an add of two inputs of its shape in a compiled graph can)",
                               n->name, n->op ? n->op->name : "leaf");
    float sc[3] = {p->a_scale, p->b_scale, p->out_scale};
    int zp[3] = {p->a_zero, p->b_zero, p->out_zero};
    for (int i = 0; i < 3; i++)
        if (!(sc[i] > 0) || !isfinite(sc[i]) || zp[i] < 0 || zp[i] > 255)
            return nerve_set_error(NERVE_ERR_ARG, "int8 add '%s': scales must be positive and "
                                   "finite and zero points in 0..255 (%g/%d, %g/%d, out %g/%d)",
                                   n->name, (double)sc[0], zp[0], (double)sc[1], zp[1],
                                   (double)sc[2], zp[2]);
    kern_q8_addp k = {p->a_zero, p->b_zero, p->out_zero, p->relu ? p->out_zero : 0, 0, 0, 0};
    if (kern_q8_add_multipliers((double)p->a_scale / p->out_scale,
                                (double)p->b_scale / p->out_scale, &k.ma, &k.mb, &k.shift))
        return nerve_set_error(NERVE_ERR_ARG, "int8 add '%s': input scales %g and %g against "
                               "the output's %g: a ratio of 2^21 or more has no fixed-point "
                               "multiplier", n->name, (double)p->a_scale, (double)p->b_scale,
                               (double)p->out_scale);
    qaddn *q = nerve_xcalloc(1, sizeof *q);
    if (!q)
        return NERVE_ERR_NOMEM;
    q->orig = n->op;
    q->p = *p;
    q->p.relu = p->relu != 0;
    q->k = k;
    q->inv_a = 1.0f / p->a_scale;
    q->inv_b = 1.0f / p->b_scale;
    q->l.prev[0] = q->l.prev[1] = -1;
    if (n->op_data_free)
        n->op_data_free(n->op_data);
    n->op = &op_qadd;
    n->op_data = q;
    n->op_data_free = qadd_free;
    for (int i = 0; i < g->n_nodes; i++) /* links are made again at the next forward */
        if (is_q(&g->nodes[i]))
            lk(&g->nodes[i])->linked = 0;
    return NERVE_OK;
}

/* ---- making a node int8 ---------------------------------------------------------------- */

int op_quantizable(const nerve_graph *g, const node *n)
{
    if (!n->op)
        return 0;
    if (!strcmp(n->op->name, "dense"))
        return 1;
    if (strcmp(n->op->name, "conv"))
        return 0;
    kern_conv_shape ks;
    int groups;
    return op_conv_shape(g, n, &ks, &groups) == NERVE_OK && groups == 1;
}

const op_quant_params *op_quant_of(const node *n)
{
    return n->op == &op_qdense || n->op == &op_qconv ? &qof(n)->p : NULL;
}

int op_quant_ints(const node *n, const int32_t **bias, const int32_t **mult,
                  const int32_t **shift, float *inv_in)
{
    if (!op_quant_of(n))
        return nerve_set_error(NERVE_ERR_ARG, "node '%s' is not an int8 node", n->name);
    const qlayer *q = qof(n);
    *bias = q->bias;
    *mult = q->mult;
    *shift = q->shift;
    *inv_in = q->inv_in;
    return NERVE_OK;
}

/* The folded int32 bias and the fixed-point multipliers of every output channel. */
static int fold(qlayer *q, const float *b)
{
    const op_quant_params *p = &q->p;
    for (int n = 0; n < q->N; n++) {
        int64_t wsum = 0;
        for (int k = 0; k < q->K; k++)
            wsum += q->w[(size_t)n * q->K + k];
        double step = (double)p->in_scale * p->w_scale[n]; /* the value of one unit of a sum */
        double bq = b ? nearbyint((double)b[n] / step) : 0.0;
        if (!isfinite(bq))
            return nerve_set_error(NERVE_ERR_ARG, "int8: bias %d is not finite in units of "
                                   "%g", n, step);
        bq = fmax(fmin(bq, (double)KERN_Q8_MAX_BIAS), -(double)KERN_Q8_MAX_BIAS);
        /* |in_zero * wsum| <= 255 * 127 * K < 2^30 as well */
        int64_t folded = (int64_t)bq - (int64_t)p->in_zero * wsum;
        folded = folded > KERN_Q8_MAX_BIAS ? KERN_Q8_MAX_BIAS : folded;
        folded = folded < -KERN_Q8_MAX_BIAS ? -KERN_Q8_MAX_BIAS : folded;
        q->bias[n] = (int32_t)folded;
        kern_q8_multiplier(step / p->out_scale, &q->mult[n], &q->shift[n]);
    }
    q->rq = (kern_q8_requant){q->bias, q->mult, q->shift, p->out_zero,
                              p->relu ? p->out_zero : 0, p->out_scale};
    return NERVE_OK;
}

static int check_params(const node *n, const op_quant_params *p, int N)
{
    if (!(p->in_scale > 0) || !isfinite(p->in_scale) || !(p->out_scale > 0) ||
        !isfinite(p->out_scale) || p->in_zero < 0 || p->in_zero > 255 || p->out_zero < 0 ||
        p->out_zero > 255)
        return nerve_set_error(NERVE_ERR_ARG, "int8 node '%s': scales must be positive and "
                               "finite and zero points in 0..255 (in %g/%d, out %g/%d)",
                               n->name, (double)p->in_scale, p->in_zero, (double)p->out_scale,
                               p->out_zero);
    for (int c = 0; c < N; c++)
        if (!(p->w_scale[c] > 0) || !isfinite(p->w_scale[c]))
            return nerve_set_error(NERVE_ERR_ARG, "int8 node '%s': weight scale %d is %g; "
                                   "must be positive and finite", n->name, c,
                                   (double)p->w_scale[c]);
    return NERVE_OK;
}

static int alloc_all(qlayer *q, size_t wn, int N)
{
    q->w = nerve_xmalloc(wn ? wn : 1);
    q->w_scale = nerve_xmalloc((size_t)N * sizeof(float));
    q->bias = nerve_xmalloc((size_t)N * sizeof(int32_t));
    q->mult = nerve_xmalloc((size_t)N * sizeof(int32_t));
    q->shift = nerve_xmalloc((size_t)N * sizeof(int32_t));
    q->packed = nerve_xalloc_floats((kern_q8_pack_size(q->N, q->K) + 3) / 4);
    return q->w && q->w_scale && q->bias && q->mult && q->shift && q->packed ? NERVE_OK
                                                                           : NERVE_ERR_NOMEM;
}

int op_quantize_node(nerve_graph *g, int id, const op_quant_params *p)
{
    if (!g || id < 0 || id >= g->n_nodes || !p)
        return nerve_set_error(NERVE_ERR_ARG, "int8: bad node or parameters");
    node *n = graph_node(g, id);
    if (!g->compiled || !op_quantizable(g, n))
        return nerve_set_error(NERVE_ERR_ARG, "int8: node '%s' (%s) cannot run in int8 (dense "
                               "and one-group conv in a compiled graph can)", n->name,
                               n->op ? n->op->name : "leaf");
    const node *wn = node_input(g, n, 1);
    int N = wn->dims[0];
    size_t numel = node_numel(wn), K = numel / (size_t)N;
    if (K > KERN_Q8_MAX_K)
        return nerve_set_error(NERVE_ERR_ARG, "int8 node '%s': %zu inputs per output; at most "
                               "%d", n->name, K, KERN_Q8_MAX_K);
    int st = check_params(n, p, N);
    if (st)
        return st;
    qlayer *q = nerve_xcalloc(1, sizeof *q);
    if (!q)
        return NERVE_ERR_NOMEM;
    q->orig = n->op;
    q->N = N;
    q->K = (int)K;
    q->Kp = kern_q8_kp(q->K);
    int is_conv = !strcmp(n->op->name, "conv");
    int groups = 1;
    if ((st = alloc_all(q, numel, N)) == NERVE_OK && is_conv)
        st = op_conv_shape(g, n, &q->ks, &groups);
    if (st == NERVE_OK) {
        memcpy(q->w, p->w, numel);
        memcpy(q->w_scale, p->w_scale, (size_t)N * sizeof(float));
        q->p = *p;
        q->p.w = q->w;
        q->p.w_scale = q->w_scale;
        q->inv_in = 1.0f / p->in_scale;
        kern_q8_pack(N, q->K, q->w, q->K, q->packed);
        if (p->bias) {
            q->fbias = nerve_xmalloc((size_t)N * sizeof(float));
            if (q->fbias)
                memcpy(q->fbias, p->bias, (size_t)N * sizeof(float));
            q->p.bias = q->fbias;
        }
        if (p->bias && !q->fbias)
            st = NERVE_ERR_NOMEM;
        else
            st = fold(q, p->bias ? q->fbias : n->n_in == 3 ? node_input(g, n, 2)->value : NULL);
    }
    if (st == NERVE_OK) {
        q->threads = kern_threads();
        if (is_conv) {
            conv_ws w = conv_ws_of(q);
            q->ws_thread = w.img + w.rows + w.sums + w.gemm;
            q->direct = kern_q8_conv_direct_plan(&q->ks, N, &q->plan);
            if (q->direct) {
                size_t d = q->plan.img_bytes + q->plan.panel_bytes + q->plan.sums_bytes;
                q->ws_thread = d > q->ws_thread ? d : q->ws_thread;
                q->off = nerve_xmalloc((size_t)q->Kp * sizeof(int32_t));
                if (!q->off)
                    st = NERVE_ERR_NOMEM;
                else
                    kern_q8_conv_offsets(&q->plan, q->off);
            }
        } else {
            q->ws_thread = round64(kern_q8_gemm_ws(q->K));
            size_t rows = (size_t)g->max_batch;
            q->a = (uint8_t *)nerve_xalloc_floats((rows * (size_t)q->Kp + 3) / 4);
            q->c = (int32_t *)nerve_xalloc_floats(rows * (size_t)N);
            if (!q->a || !q->c)
                st = NERVE_ERR_NOMEM;
        }
        q->ws = (unsigned char *)nerve_xalloc_floats(((size_t)q->threads * q->ws_thread + 3) / 4);
        if (!q->ws)
            st = NERVE_ERR_NOMEM;
    }
    if (st != NERVE_OK) {
        qlayer_free(q);
        return st;
    }
    if (n->op_data_free)
        n->op_data_free(n->op_data);
    q->l.prev[0] = q->l.prev[1] = -1;
    n->op = is_conv ? &op_qconv : &op_qdense;
    n->op_data = q;
    n->op_data_free = qlayer_free;
    for (int i = 0; i < g->n_nodes; i++) /* links are made again at the next forward */
        if (is_q(&g->nodes[i]))
            lk(&g->nodes[i])->linked = 0;
    return NERVE_OK;
}
