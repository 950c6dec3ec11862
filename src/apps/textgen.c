/* A character-level language model: vocabulary of bytes, one-hot or embedded input, one
 * LSTM layer, a dense layer to the vocabulary, softmax cross-entropy of the next byte.
 *
 * Two graphs share the weights. The training graph reads `batch` streams of `seq` bytes
 * per step with the LSTM state carried between steps (truncated BPTT); the prediction
 * graph reads one byte of one stream per forward pass, its state carried the same way, and
 * serves evaluation, step-by-step prediction and sampling. The training graph is built on
 * the first training call; while it exists it holds the current weights and the
 * prediction graph copies them when it next runs. */
#include "../core/core.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEXTGEN_FORMAT "nerve-textgen-1"
#define MAX_TEXT_BYTES ((size_t)1 << 31) /* a file larger than this is surely a mistake */
#define LN2 0.69314718055994530942

typedef struct lm_graph {
    nerve_graph *g;
    int chars;  /* input [B, T]: vocabulary indices, batch-major */
    int labels; /* input [B, T]: the next byte's index (training graph only, else -1) */
    int rnn;    /* the LSTM node (its carried state is reset through it) */
    int logits; /* [T*B, V], time-major rows */
    int loss;   /* mean NLL in nats (training graph only, else -1) */
} lm_graph;

struct nerve_textgen {
    nerve_textgen_config cfg;
    int n_vocab;
    unsigned char vocab[256];
    int index_of[256]; /* byte -> vocabulary index, -1 when absent */
    lm_graph train;    /* g == NULL until the first training call */
    lm_graph infer;    /* batch 1, one step */
    int infer_stale;   /* the training graph has newer weights */
    float *logits_buf; /* V floats: scores of the last prediction */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nerve_textgen_config nerve_textgen_default(void)
{
    nerve_textgen_config c;
    memset(&c, 0, sizeof c);
    c.hidden = 128;
    c.embed = 0;
    c.seq = 64;
    c.batch = 32;
    c.steps = 1000;
    c.lr = 2e-3f;
    c.clip = 5.0f;
    c.holdout = 0.1f;
    c.eval_every = 100;
    c.seed = 1;
    return c;
}

static int check_config(const nerve_textgen_config *c)
{
    if (c->hidden < 1 || c->hidden > 8192)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: hidden = %d; expected 1..8192", c->hidden);
    if (c->embed < 0 || c->embed > 8192)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: embed = %d; expected 0 (one-hot) .. 8192",
                               c->embed);
    if (c->seq < 1 || c->seq > 1000000)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: seq = %d; expected 1..1000000", c->seq);
    if (c->batch < 1 || c->batch > 65536)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: batch = %d; expected 1..65536", c->batch);
    if (c->steps < 1)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: steps = %" PRId64 "; expected >= 1",
                               c->steps);
    if (!(c->lr > 0) || !isfinite(c->lr))
        return nerve_set_error(NERVE_ERR_ARG, "textgen: the learning rate must be > 0");
    if (!(c->clip >= 0) || !isfinite(c->clip))
        return nerve_set_error(NERVE_ERR_ARG, "textgen: clip must be >= 0 (0: off)");
    if (!(c->holdout >= 0 && c->holdout < 1))
        return nerve_set_error(NERVE_ERR_ARG, "textgen: holdout must be in [0, 1)");
    if (c->eval_every < 0)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: eval_every must be >= 0");
    return NERVE_OK;
}

/* ---- vocabulary ------------------------------------------------------------------------ */

static void set_vocab(nerve_textgen *t, const int *present)
{
    t->n_vocab = 0;
    for (int b = 0; b < 256; b++) {
        t->index_of[b] = present[b] ? t->n_vocab : -1;
        if (present[b])
            t->vocab[t->n_vocab++] = (unsigned char)b;
    }
}

static void vocab_of_text(nerve_textgen *t, const char *text, size_t len)
{
    int present[256] = {0};
    for (size_t i = 0; i < len; i++)
        present[(unsigned char)text[i]] = 1;
    set_vocab(t, present);
}

/* "'x'" for printable bytes, "byte 0x0a" otherwise, for messages. */
static const char *byte_str(int b, char *buf, size_t size)
{
    if (b > 32 && b < 127 && b != '\'')
        snprintf(buf, size, "'%c'", b);
    else
        snprintf(buf, size, "byte 0x%02x", b);
    return buf;
}

/* Maps text to vocabulary indices; a byte outside the vocabulary is an error. */
static int text_to_ids(const nerve_textgen *t, const char *text, size_t len, unsigned char *ids)
{
    for (size_t i = 0; i < len; i++) {
        int k = t->index_of[(unsigned char)text[i]];
        if (k < 0) {
            char b[16];
            return nerve_set_error(NERVE_ERR_ARG,
                                   "textgen: %s at offset %zu is not in the model's vocabulary",
                                   byte_str((unsigned char)text[i], b, sizeof b), i);
        }
        ids[i] = (unsigned char)k;
    }
    return NERVE_OK;
}

/* ---- the graphs ------------------------------------------------------------------------ */

/* The input table: a learned embedding [V, E], or for one-hot inputs the identity [V, V]
 * kept as a state (a one-hot vector times W_ih is the lookup of a column of W_ih). */
static int input_table(nerve_graph *g, const nerve_textgen_config *c, int V, nerve_rng *rng)
{
    if (c->embed > 0) {
        int e = nerve_param(g, "embed.weight", 2, (int[]){V, c->embed});
        if (e < 0 || nerve_init_param(g, e, (nerve_init){NERVE_INIT_NORMAL, 0, 1}, rng) < 0)
            return -1;
        return e;
    }
    int id = nerve_state(g, "onehot", 2, (int[]){V, V});
    if (id < 0)
        return id;
    float *eye = nerve_value(g, id).data;
    for (int i = 0; i < V; i++)
        eye[(size_t)i * V + i] = 1.0f;
    return id;
}

/* The output layer, initialised U(-1/sqrt(H), 1/sqrt(H)) for weights and bias alike. */
static int output_layer(nerve_graph *g, int h, int H, int V, nerve_rng *rng)
{
    float s = 1.0f / sqrtf((float)H);
    nerve_init u = {NERVE_INIT_UNIFORM, -s, s};
    int y = nerve_layer_dense(g, h, V, 1, u, rng, "out");
    int bias = nerve_node_find(g, "out.bias");
    if (y < 0 || bias < 0 || nerve_init_param(g, bias, u, rng) < 0)
        return -1;
    return y;
}

/* chars [B, T] -> transpose [T, B] -> table lookup [T, B, E] -> LSTM (carried) [T, B, H]
 * -> [T*B, H] -> dense [T*B, V]; with a loss, labels [B, T] are put in the same
 * time-major order. */
static int build_lm(lm_graph *m, const nerve_textgen_config *c, int V, int T, int B,
                    int with_loss, nerve_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->labels = m->loss = -1;
    nerve_graph *g = m->g = nerve_graph_create();
    if (!g)
        return nerve_last_status();
    static const int swap[] = {1, 0};
    m->chars = nerve_input(g, "chars", 2, (int[]){B, T});
    int table = input_table(g, c, V, rng);
    int x = m->chars < 0 || table < 0 ? -1 : nerve_transpose(g, m->chars, swap);
    x = x < 0 ? x : nerve_embedding(g, x, table);
    nerve_rnn_config rc = {NERVE_CELL_LSTM, c->hidden, 0, 0, 0, 1};
    m->rnn = x < 0 ? x : nerve_layer_rnn(g, x, -1, &rc, 1, rng, "lstm");
    int h = m->rnn < 0 ? m->rnn : nerve_reshape(g, m->rnn, 2, (int[]){-1, c->hidden});
    m->logits = h < 0 ? h : output_layer(g, h, c->hidden, V, rng);
    if (m->logits < 0)
        return nerve_last_status();
    if (with_loss) {
        m->labels = nerve_input(g, "labels", 2, (int[]){B, T});
        int l = m->labels < 0 ? m->labels : nerve_transpose(g, m->labels, swap);
        l = l < 0 ? l : nerve_reshape(g, l, 1, (int[]){-1});
        m->loss = l < 0 ? l : nerve_softmax_ce_loss(g, m->logits, l, -1, 0.0f);
        if (m->loss < 0)
            return nerve_last_status();
    }
    int st = nerve_graph_compile(g, B);
    /* The carried state must advance in every forward pass; there is no dropout or batch
     * norm, so training mode changes nothing else. */
    nerve_graph_set_training(g, 1);
    return st;
}

static void free_lm(lm_graph *m)
{
    nerve_graph_free(m->g);
    m->g = NULL;
}

/* Copies every parameter of src into the node of the same name in dst. */
static int copy_params(nerve_graph *dst, nerve_graph *src)
{
    int ids[64];
    int n = nerve_graph_params(src, ids, (int)NERVE_ARRAY_LEN(ids));
    if (n > (int)NERVE_ARRAY_LEN(ids))
        return nerve_set_error(NERVE_ERR_STATE, "textgen: too many parameters");
    for (int i = 0; i < n; i++) {
        int d = nerve_node_find(dst, nerve_node_name(src, ids[i]));
        nerve_tensor a = nerve_value(src, ids[i]);
        nerve_tensor b = d < 0 ? (nerve_tensor){0} : nerve_value(dst, d);
        size_t numel = nerve_tensor_numel(&a);
        if (!b.data || nerve_tensor_numel(&b) != numel)
            return nerve_set_error(NERVE_ERR_STATE, "textgen: parameter %s does not match",
                                   nerve_node_name(src, ids[i]));
        memcpy(b.data, a.data, numel * sizeof(float));
    }
    return NERVE_OK;
}

static int sync_infer(nerve_textgen *t)
{
    if (!t->infer_stale)
        return NERVE_OK;
    int st = copy_params(t->infer.g, t->train.g);
    if (st == NERVE_OK)
        t->infer_stale = 0;
    return st;
}

/* ---- creation ---------------------------------------------------------------------------- */

static nerve_textgen *alloc_model(const nerve_textgen_config *c)
{
    if (check_config(c) != NERVE_OK)
        return NULL;
    nerve_textgen *t = nerve_xcalloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cfg = *c;
    return t;
}

/* Builds the prediction graph once the vocabulary is known. */
static nerve_textgen *finish_model(nerve_textgen *t)
{
    nerve_rng rng;
    nerve_rng_seed(&rng, t->cfg.seed);
    t->logits_buf = nerve_xmalloc((size_t)t->n_vocab * sizeof(float));
    if (!t->logits_buf || build_lm(&t->infer, &t->cfg, t->n_vocab, 1, 1, 0, &rng) != NERVE_OK) {
        nerve_textgen_free(t);
        return NULL;
    }
    return t;
}

nerve_textgen *nerve_textgen_create(const char *text, size_t len, const nerve_textgen_config *c)
{
    if (!text || len == 0) {
        nerve_set_error(NERVE_ERR_ARG, "textgen: no text to build a vocabulary from");
        return NULL;
    }
    nerve_textgen_config def = nerve_textgen_default();
    nerve_textgen *t = alloc_model(c ? c : &def);
    if (!t)
        return NULL;
    vocab_of_text(t, text, len);
    return finish_model(t);
}

void nerve_textgen_free(nerve_textgen *t)
{
    if (!t)
        return;
    free_lm(&t->train);
    free_lm(&t->infer);
    nerve_xfree(t->logits_buf);
    nerve_xfree(t);
}

int nerve_textgen_vocab(const nerve_textgen *t, unsigned char *out, int cap)
{
    if (!t)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: null model");
    if (out)
        memcpy(out, t->vocab, (size_t)(cap < t->n_vocab ? (cap > 0 ? cap : 0) : t->n_vocab));
    return t->n_vocab;
}

const nerve_textgen_config *nerve_textgen_get_config(const nerve_textgen *t)
{
    return t ? &t->cfg : NULL;
}

nerve_graph *nerve_textgen_graph(nerve_textgen *t) { return t ? t->infer.g : NULL; }

/* ---- prediction -------------------------------------------------------------------------- */

int nerve_textgen_reset(nerve_textgen *t)
{
    if (!t)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: null model");
    int st = sync_infer(t);
    return st ? st : nerve_rnn_reset_carry(t->infer.g, t->infer.rnn);
}

/* Feeds vocabulary index k; the scores of the next byte land in t->logits_buf. */
static int feed_index(nerve_textgen *t, int k)
{
    nerve_graph *g = t->infer.g;
    nerve_value(g, t->infer.chars).data[0] = (float)k;
    int st = nerve_forward(g, t->infer.logits);
    if (st == NERVE_OK)
        memcpy(t->logits_buf, nerve_value(g, t->infer.logits).data,
               (size_t)t->n_vocab * sizeof(float));
    return st;
}

/* p = softmax(scores / temperature); returns log(sum exp(scores - max)) at temperature 1. */
static void softmax_into(const float *s, int n, float temperature, float *p)
{
    float mx = s[0];
    for (int i = 1; i < n; i++)
        mx = s[i] > mx ? s[i] : mx;
    double z = 0;
    for (int i = 0; i < n; i++) {
        p[i] = expf((s[i] - mx) / temperature);
        z += p[i];
    }
    for (int i = 0; i < n; i++)
        p[i] = (float)(p[i] / z);
}

/* -log softmax(s)[k], computed stably. */
static double nll_of(const float *s, int n, int k)
{
    float mx = s[0];
    for (int i = 1; i < n; i++)
        mx = s[i] > mx ? s[i] : mx;
    double z = 0;
    for (int i = 0; i < n; i++)
        z += exp((double)(s[i] - mx));
    return log(z) - (double)(s[k] - mx);
}

int nerve_textgen_next(nerve_textgen *t, int byte, float *probs)
{
    if (!t)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: null model");
    if (byte < 0 || byte > 255 || t->index_of[byte] < 0) {
        char b[16];
        return nerve_set_error(NERVE_ERR_ARG, "textgen: %s is not in the model's vocabulary",
                               byte < 0 || byte > 255 ? "a value outside 0..255"
                                                      : byte_str(byte, b, sizeof b));
    }
    int st = sync_infer(t);
    if (st == NERVE_OK)
        st = feed_index(t, t->index_of[byte]);
    if (st == NERVE_OK && probs)
        softmax_into(t->logits_buf, t->n_vocab, 1.0f, probs);
    return st;
}

/* Mean NLL (nats) of ids[1..n) given the preceding ids, from a zero state. */
static int mean_nll(nerve_textgen *t, const unsigned char *ids, size_t n, double *out)
{
    int st = nerve_textgen_reset(t);
    double sum = 0;
    for (size_t i = 0; i + 1 < n && st == NERVE_OK; i++) {
        st = feed_index(t, ids[i]);
        sum += nll_of(t->logits_buf, t->n_vocab, ids[i + 1]);
    }
    *out = sum / (double)(n - 1);
    return st;
}

int nerve_textgen_bpc(nerve_textgen *t, const char *text, size_t len, double *bpc)
{
    if (!t || !text || !bpc)
        return nerve_set_error(NERVE_ERR_ARG, "textgen_bpc: null argument");
    if (len < 2)
        return nerve_set_error(NERVE_ERR_ARG, "textgen_bpc: needs at least 2 characters");
    unsigned char *ids = nerve_xmalloc(len);
    if (!ids)
        return NERVE_ERR_NOMEM;
    double nll = 0;
    int st = text_to_ids(t, text, len, ids);
    if (st == NERVE_OK)
        st = mean_nll(t, ids, len, &nll);
    nerve_xfree(ids);
    *bpc = nll / LN2;
    return st;
}

/* A draw from softmax(scores / temperature), or the argmax at temperature 0. */
static int choose(const float *s, int n, float temperature, nerve_rng *rng, float *work)
{
    if (!(temperature > 0)) {
        int best = 0;
        for (int i = 1; i < n; i++)
            best = s[i] > s[best] ? i : best;
        return best;
    }
    softmax_into(s, n, temperature, work);
    float r = nerve_rng_uniform(rng), acc = 0;
    for (int i = 0; i < n; i++) {
        acc += work[i];
        if (r < acc)
            return i;
    }
    return n - 1; /* rounding left r above the last partial sum */
}

int nerve_textgen_sample(nerve_textgen *t, const char *prime, size_t prime_len, int length,
                         float temperature, uint64_t seed, char *out)
{
    if (!t || (!prime && prime_len) || (!out && length > 0) || length < 0)
        return nerve_set_error(NERVE_ERR_ARG, "textgen_sample: bad argument");
    if (!(temperature >= 0) || !isfinite(temperature))
        return nerve_set_error(NERVE_ERR_ARG, "textgen_sample: the temperature must be >= 0");
    for (size_t i = 0; i < prime_len; i++)
        if (t->index_of[(unsigned char)prime[i]] < 0) {
            char b[16];
            return nerve_set_error(NERVE_ERR_ARG,
                                   "the prime's %s (offset %zu) is not in the model's vocabulary",
                                   byte_str((unsigned char)prime[i], b, sizeof b), i);
        }
    float *work = nerve_xmalloc((size_t)t->n_vocab * sizeof(float));
    if (!work)
        return NERVE_ERR_NOMEM;
    int st = nerve_textgen_reset(t);
    int start = t->index_of['\n'] >= 0 ? t->index_of['\n'] : 0;
    for (size_t i = 0; i < prime_len && st == NERVE_OK; i++)
        st = feed_index(t, t->index_of[(unsigned char)prime[i]]);
    if (prime_len == 0 && st == NERVE_OK)
        st = feed_index(t, start);
    nerve_rng rng;
    nerve_rng_seed(&rng, seed);
    int written = 0;
    while (written < length && st == NERVE_OK) {
        int k = choose(t->logits_buf, t->n_vocab, temperature, &rng, work);
        out[written++] = (char)t->vocab[k];
        if (written < length)
            st = feed_index(t, k);
    }
    nerve_xfree(work);
    return st ? st : written;
}

/* ---- training ---------------------------------------------------------------------------- */

/* The training part read as `batch` streams of `stride` bytes. */
typedef struct stream_plan {
    const unsigned char *ids;
    size_t stride;
    int64_t chunks; /* steps per pass over the streams */
} stream_plan;

static int plan_streams(const nerve_textgen_config *c, const unsigned char *ids, size_t n,
                        stream_plan *p)
{
    p->ids = ids;
    p->stride = n / (size_t)c->batch;
    if (p->stride < (size_t)c->seq + 1)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%zu training characters make %d streams of %zu; each needs at "
                               "least seq + 1 = %d (lower batch or seq)",
                               n, c->batch, p->stride, c->seq + 1);
    p->chunks = (int64_t)((p->stride - 1) / (size_t)c->seq);
    return NERVE_OK;
}

/* Inputs and next-byte labels of chunk `chunk` of every stream, [B, T] each. */
static void fill_chunk(const stream_plan *p, int B, int T, int64_t chunk, float *x, float *y)
{
    for (int b = 0; b < B; b++) {
        const unsigned char *s = p->ids + (size_t)b * p->stride + (size_t)chunk * (size_t)T;
        for (int t = 0; t < T; t++) {
            x[(size_t)b * T + t] = s[t];
            y[(size_t)b * T + t] = s[t + 1];
        }
    }
}

static int ensure_train_graph(nerve_textgen *t)
{
    if (t->train.g)
        return NERVE_OK;
    nerve_rng rng;
    nerve_rng_seed(&rng, t->cfg.seed);
    int st = build_lm(&t->train, &t->cfg, t->n_vocab, t->cfg.seq, t->cfg.batch, 1, &rng);
    if (st == NERVE_OK)
        st = copy_params(t->train.g, t->infer.g); /* the prediction graph has the weights */
    if (st != NERVE_OK)
        free_lm(&t->train);
    return st;
}

typedef struct train_run {
    nerve_textgen *t;
    const unsigned char *val;
    size_t n_val;
    nerve_textgen_callback cb;
    void *user;
    nerve_textgen_report rep;
    double loss_sum; /* nats, since the previous report */
    int64_t loss_steps;
} train_run;

static int report(train_run *r)
{
    nerve_textgen_report *rep = &r->rep;
    rep->train_bpc = r->loss_steps ? r->loss_sum / (double)r->loss_steps / LN2 : NAN;
    rep->chars_per_sec = rep->seconds > 0 ? (double)rep->step * r->t->cfg.seq * r->t->cfg.batch /
                                                rep->seconds
                                          : 0;
    rep->val_bpc = NAN;
    if (r->n_val >= 2) {
        double nll;
        int st = mean_nll(r->t, r->val, r->n_val, &nll);
        if (st != NERVE_OK)
            return st;
        rep->val_bpc = nll / LN2;
    }
    r->loss_sum = 0;
    r->loss_steps = 0;
    if (r->cb)
        r->cb(rep, r->user);
    return NERVE_OK;
}

static int train_steps(train_run *r, const stream_plan *plan, nerve_optim *opt)
{
    nerve_textgen *t = r->t;
    const nerve_textgen_config *c = &t->cfg;
    lm_graph *m = &t->train;
    float *x = nerve_value(m->g, m->chars).data, *y = nerve_value(m->g, m->labels).data;
    for (int64_t step = 0; step < c->steps; step++) {
        double t0 = now_seconds();
        int64_t chunk = step % plan->chunks;
        int st = chunk == 0 ? nerve_rnn_reset_carry(m->g, m->rnn) : NERVE_OK;
        fill_chunk(plan, c->batch, c->seq, chunk, x, y);
        nerve_optim_prepare(opt);
        if (st == NERVE_OK)
            st = nerve_forward(m->g, m->loss);
        if (st == NERVE_OK)
            st = nerve_backward(m->g, m->loss);
        if (st != NERVE_OK)
            return st;
        float loss = nerve_value(m->g, m->loss).data[0];
        if (!isfinite(loss))
            return nerve_set_error(NERVE_ERR_NUMERIC,
                                   "textgen: the training loss is %g at step %" PRId64
                                   " (lower the learning rate or clip)", (double)loss, step + 1);
        nerve_optim_step(opt, c->lr);
        t->infer_stale = 1;
        r->loss_sum += loss;
        r->loss_steps++;
        r->rep.step = step + 1;
        r->rep.seconds += now_seconds() - t0;
        int due = c->eval_every > 0 && (step + 1) % c->eval_every == 0;
        if ((due || step + 1 == c->steps) && (st = report(r)) != NERVE_OK)
            return st;
    }
    return NERVE_OK;
}

int nerve_textgen_train(nerve_textgen *t, const char *text, size_t len, nerve_textgen_callback cb,
                        void *user, nerve_textgen_report *last)
{
    if (!t || !text)
        return nerve_set_error(NERVE_ERR_ARG, "textgen_train: null argument");
    unsigned char *ids = nerve_xmalloc(len ? len : 1);
    if (!ids)
        return NERVE_ERR_NOMEM;
    int st = text_to_ids(t, text, len, ids);
    size_t n_val = (size_t)((double)len * t->cfg.holdout);
    stream_plan plan = {NULL, 0, 0};
    if (st == NERVE_OK)
        st = plan_streams(&t->cfg, ids, len - n_val, &plan);
    if (st == NERVE_OK)
        st = ensure_train_graph(t);
    nerve_optim *opt = NULL;
    if (st == NERVE_OK) {
        nerve_optim_config oc = nerve_optim_default(NERVE_OPT_ADAM);
        oc.clip_norm = t->cfg.clip;
        opt = nerve_optim_create(t->train.g, &oc);
        st = opt ? NERVE_OK : nerve_last_status();
    }
    train_run run = {t, ids + (len - n_val), n_val, cb, user, {0}, 0, 0};
    run.rep.steps = t->cfg.steps;
    if (st == NERVE_OK)
        st = train_steps(&run, &plan, opt);
    if (st == NERVE_OK && last)
        *last = run.rep;
    nerve_optim_free(opt);
    nerve_xfree(ids);
    return st;
}

/* ---- files ------------------------------------------------------------------------------- */

/* The whole file as bytes (caller frees); errors name the file. */
static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nerve_set_error(NERVE_ERR_IO, "%s: cannot open the text file", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = nerve_xmalloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap)
            break;
        if (cap >= MAX_TEXT_BYTES) {
            nerve_set_error(NERVE_ERR_FORMAT, "%s: larger than 2 GiB", path);
            nerve_xfree(buf);
            buf = NULL;
            break;
        }
        char *p = nerve_xrealloc(buf, cap * 2);
        if (!p) {
            nerve_xfree(buf);
            buf = NULL;
        } else {
            buf = p;
            cap *= 2;
        }
    }
    if (buf && ferror(fp)) {
        nerve_set_error(NERVE_ERR_IO, "%s: read error", path);
        nerve_xfree(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = n;
    return buf;
}

/* Prefixes the current error message with the file name. */
static void blame_file(const char *path)
{
    char msg[800];
    snprintf(msg, sizeof msg, "%s", nerve_last_error());
    nerve_set_error(nerve_last_status(), "%s: %s", path, msg);
}

nerve_textgen *nerve_textgen_train_file(const char *path, const nerve_textgen_config *c,
                                        nerve_textgen_callback cb, void *user,
                                        nerve_textgen_report *last)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "textgen: null path");
        return NULL;
    }
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text)
        return NULL;
    nerve_textgen *t = NULL;
    if (len == 0)
        nerve_set_error(NERVE_ERR_FORMAT, "%s: the file is empty; there is nothing to learn",
                        path);
    else if ((t = nerve_textgen_create(text, len, c)) != NULL &&
             nerve_textgen_train(t, text, len, cb, user, last) != NERVE_OK) {
        blame_file(path);
        nerve_textgen_free(t);
        t = NULL;
    }
    nerve_xfree(text);
    return t;
}

/* ---- checkpoints ------------------------------------------------------------------------- */

#define CONFIG_FORMAT                                                                          \
    "hidden=%d embed=%d seq=%d batch=%d steps=%" PRId64 " lr=%.9g clip=%.9g holdout=%.9g "     \
    "eval_every=%d seed=%" PRIu64
#define CONFIG_SCAN                                                                            \
    "hidden=%d embed=%d seq=%d batch=%d steps=%" SCNd64 " lr=%g clip=%g holdout=%g "            \
    "eval_every=%d seed=%" SCNu64 "%n"

static int write_meta(nerve_textgen *t, nerve_st_writer *w)
{
    char hex[513], conf[400];
    for (int i = 0; i < t->n_vocab; i++)
        snprintf(hex + 2 * i, 3, "%02x", t->vocab[i]);
    const nerve_textgen_config *c = &t->cfg;
    snprintf(conf, sizeof conf, CONFIG_FORMAT, c->hidden, c->embed, c->seq, c->batch, c->steps,
             (double)c->lr, (double)c->clip, (double)c->holdout, c->eval_every, c->seed);
    int st = nerve_st_writer_meta(w, "nerve.format", TEXTGEN_FORMAT);
    if (st == NERVE_OK)
        st = nerve_st_writer_meta(w, "nerve.textgen.vocab", hex);
    if (st == NERVE_OK)
        st = nerve_st_writer_meta(w, "nerve.textgen.config", conf);
    return st;
}

int nerve_textgen_save(nerve_textgen *t, const char *path)
{
    if (!t || !path)
        return nerve_set_error(NERVE_ERR_ARG, "textgen_save: null argument");
    int st = sync_infer(t);
    if (st != NERVE_OK)
        return st;
    nerve_st_writer *w = nerve_st_writer_create();
    if (!w)
        return nerve_last_status() ? nerve_last_status() : NERVE_ERR_NOMEM;
    nerve_graph *g = t->infer.g;
    int ids[64];
    int n = nerve_graph_params(g, ids, (int)NERVE_ARRAY_LEN(ids));
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        nerve_tensor v = nerve_value(g, ids[i]);
        st = nerve_st_writer_add(w, nerve_node_name(g, ids[i]), v.ndim, v.dims, v.data);
    }
    if (st == NERVE_OK)
        st = write_meta(t, w);
    if (st == NERVE_OK)
        st = nerve_st_writer_save(w, path);
    nerve_st_writer_free(w);
    return st;
}

static int hex_digit(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The vocabulary from its metadata: two lower-case hex digits per byte, increasing. */
static int parse_vocab(nerve_textgen *t, const char *hex)
{
    size_t n = hex ? strlen(hex) : 0;
    if (n == 0 || n % 2 || n > 512)
        return nerve_set_error(NERVE_ERR_FORMAT, "no valid nerve.textgen.vocab metadata");
    int present[256] = {0}, prev = -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
        int b = hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
        if (b <= prev)
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "nerve.textgen.vocab is not increasing hex bytes");
        present[b] = 1;
        prev = b;
    }
    set_vocab(t, present);
    return NERVE_OK;
}

static int parse_config(nerve_textgen_config *c, const char *s)
{
    *c = nerve_textgen_default();
    int used = -1;
    if (!s || sscanf(s, CONFIG_SCAN, &c->hidden, &c->embed, &c->seq, &c->batch, &c->steps, &c->lr,
                     &c->clip, &c->holdout, &c->eval_every, &c->seed, &used) != 10 ||
        used < 0 || s[used] != '\0')
        return nerve_set_error(NERVE_ERR_FORMAT, "no valid nerve.textgen.config metadata");
    return check_config(c);
}

/* Copies every parameter of the prediction graph from the file, checking all shapes first
 * so that a bad file changes nothing. */
static int read_params(nerve_textgen *t, const nerve_st_file *f)
{
    nerve_graph *g = t->infer.g;
    int ids[64], where[64];
    int n = nerve_graph_params(g, ids, (int)NERVE_ARRAY_LEN(ids));
    for (int i = 0; i < n; i++) {
        const char *name = nerve_node_name(g, ids[i]);
        nerve_tensor v = nerve_value(g, ids[i]);
        int k = nerve_st_find(f, name), nd, dims[NERVE_MAX_DIMS];
        if (k < 0)
            return nerve_set_error(NERVE_ERR_FORMAT, "the tensor %s is missing", name);
        nerve_st_shape(f, k, &nd, dims);
        if (nd != v.ndim || memcmp(dims, v.dims, (size_t)nd * sizeof(int)) != 0) {
            char a[64], b[64];
            return nerve_set_error(NERVE_ERR_FORMAT, "the tensor %s has shape %s; expected %s",
                                   name, nerve_shape_str(nd, dims, a, sizeof a),
                                   nerve_shape_str(v.ndim, v.dims, b, sizeof b));
        }
        where[i] = k;
    }
    for (int i = 0; i < n; i++) {
        nerve_tensor v = nerve_value(g, ids[i]);
        int st = nerve_st_read(f, where[i], v.data, nerve_tensor_numel(&v));
        if (st != NERVE_OK)
            return st;
    }
    return NERVE_OK;
}

static nerve_textgen *model_from_file(const nerve_st_file *f)
{
    const char *format = nerve_st_metadata(f, "nerve.format");
    if (!format || strcmp(format, TEXTGEN_FORMAT) != 0) {
        nerve_set_error(NERVE_ERR_FORMAT, "not a nerve text model (nerve.format is %s%s%s)",
                        format ? "'" : "", format ? format : "absent", format ? "'" : "");
        return NULL;
    }
    nerve_textgen_config c;
    if (parse_config(&c, nerve_st_metadata(f, "nerve.textgen.config")) != NERVE_OK)
        return NULL;
    nerve_textgen *t = alloc_model(&c);
    if (!t)
        return NULL;
    if (parse_vocab(t, nerve_st_metadata(f, "nerve.textgen.vocab")) != NERVE_OK) {
        nerve_textgen_free(t);
        return NULL;
    }
    t = finish_model(t);
    if (t && read_params(t, f) != NERVE_OK) {
        nerve_textgen_free(t);
        return NULL;
    }
    return t;
}

nerve_textgen *nerve_textgen_load(const char *path)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "textgen_load: null path");
        return NULL;
    }
    nerve_st_file *f = nerve_st_open(path);
    if (!f)
        return NULL;
    nerve_textgen *t = model_from_file(f);
    nerve_st_close(f);
    if (!t && !strstr(nerve_last_error(), path))
        blame_file(path);
    return t;
}
