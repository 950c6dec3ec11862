/* Text generation: sampling from an ordinary language-model checkpoint (docs/textgen.md).
 *
 * A language model is any cfg model that reads text (train_text=, so it has a byte
 * vocabulary) and scores the next token at every step ([softmax] target=tokens), trained by
 * nerve_fit like every other model. To predict one byte at a time, the model is rebuilt
 * from its cfg with seq=1 (one step per forward pass) and batch 1, and its weights are
 * copied in; its recurrent layers carry their state from one forward pass to the next (the
 * graph advances carried states in eval mode), so feeding bytes one by one reads them as
 * one sequence. */
#include "../core/core.h"
#include "../model/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LN2 0.69314718055994530942

struct nerve_textgen {
    nerve_model *m;    /* the one-step model */
    nerve_graph *g;
    int input, output; /* [1, 1] token, [1, 1, V] scores */
    int carried;       /* carried recurrent layers (0: every byte is read on its own) */
    nerve_vocab vocab;
    int token[256];    /* byte -> token, -1 when absent */
    float *scores;     /* V floats: scores of the last prediction */
};

/* "'x'" for printable bytes, "byte 0x0a" otherwise, for messages. */
static const char *byte_str(int b, char *buf, size_t size)
{
    if (b > 32 && b < 127 && b != '\'')
        snprintf(buf, size, "'%c'", b);
    else
        snprintf(buf, size, "byte 0x%02x", b);
    return buf;
}

/* Checks that m is a language model and prepares the sampler around it (takes m). */
static nerve_textgen *wrap(nerve_model *m, const char *what)
{
    if (!m)
        return NULL;
    nerve_textgen *t = nerve_xcalloc(1, sizeof *t);
    if (!t) {
        nerve_model_free(m);
        return NULL;
    }
    t->m = m;
    t->g = nerve_model_graph(m);
    t->input = nerve_model_input(m);
    t->output = nerve_model_output(m);
    nerve_model_vocab(m, &t->vocab);
    int nd = 0, dims[NERVE_MAX_DIMS];
    nerve_node_shape(t->g, t->output, &nd, dims);
    int st = NERVE_OK;
    if (t->vocab.n < 1 || nd != 3 || dims[2] != t->vocab.n)
        st = nerve_set_error(NERVE_ERR_FORMAT,
                             "%s is not a language model: it needs a text vocabulary "
                             "(train_text=) and a score per vocabulary byte at every step "
                             "([softmax] target=tokens)", what);
    t->scores = st ? NULL : nerve_xmalloc((size_t)t->vocab.n * sizeof(float));
    if (st == NERVE_OK && !t->scores)
        st = NERVE_ERR_NOMEM;
    if (st == NERVE_OK)
        st = nerve_model_compile(m, 1);
    if (st != NERVE_OK) {
        nerve_textgen_free(t);
        return NULL;
    }
    for (int b = 0; b < 256; b++)
        t->token[b] = nerve_vocab_token(&t->vocab, b);
    /* evaluation (no dropout), with the recurrent state advancing at every byte */
    nerve_graph_set_training(t->g, 0);
    nerve_graph_set_carry_in_eval(t->g, 1);
    t->carried = nerve_graph_reset_carry(t->g);
    return t;
}

nerve_textgen *nerve_textgen_load(const char *path)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "textgen_load: null path");
        return NULL;
    }
    return wrap(model_load_seq(path, 1), path);
}

/* Copies every persistent tensor of src into the node of the same name in dst. */
static int copy_weights(nerve_graph *dst, nerve_graph *src)
{
    int n = nerve_graph_persistent(dst, NULL, 0);
    int *ids = nerve_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!ids)
        return NERVE_ERR_NOMEM;
    nerve_graph_persistent(dst, ids, n);
    int st = NERVE_OK;
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        const char *name = nerve_node_name(dst, ids[i]);
        int k = nerve_node_find(src, name);
        nerve_tensor a = nerve_value(dst, ids[i]);
        nerve_tensor b = k < 0 ? (nerve_tensor){0} : nerve_value(src, k);
        if (!b.data || !nerve_same_shape(a.ndim, a.dims, b.ndim, b.dims))
            st = nerve_set_error(NERVE_ERR_STATE, "textgen: the model's tensor %s does not match",
                                 name);
        else
            memcpy(a.data, b.data, nerve_tensor_numel(&a) * sizeof(float));
    }
    nerve_xfree(ids);
    return st;
}

nerve_textgen *nerve_textgen_from_model(nerve_model *src)
{
    if (!src) {
        nerve_set_error(NERVE_ERR_ARG, "textgen_from_model: null model");
        return NULL;
    }
    if (src->vocab.n < 1) {
        nerve_set_error(NERVE_ERR_FORMAT, "the model is not a language model: it has no text "
                                          "vocabulary (train_text=)");
        return NULL;
    }
    model_build_opts o = {1, &src->vocab, 1};
    nerve_model *m = model_from_cfg_opts(src->text, "<model>", src->base_dir, &o);
    if (m && copy_weights(m->g, src->g) != NERVE_OK) {
        nerve_model_free(m);
        return NULL;
    }
    return wrap(m, "the model");
}

void nerve_textgen_free(nerve_textgen *t)
{
    if (!t)
        return;
    nerve_model_free(t->m);
    nerve_xfree(t->scores);
    nerve_xfree(t);
}

int nerve_textgen_vocab(const nerve_textgen *t, unsigned char *out, int cap)
{
    if (!t)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: null sampler");
    if (out && cap > 0)
        memcpy(out, t->vocab.bytes, (size_t)(cap < t->vocab.n ? cap : t->vocab.n));
    return t->vocab.n;
}

nerve_model *nerve_textgen_model(nerve_textgen *t) { return t ? t->m : NULL; }

/* ---- one byte at a time --------------------------------------------------------------- */

int nerve_textgen_reset(nerve_textgen *t)
{
    if (!t)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: null sampler");
    nerve_graph_reset_carry(t->g);
    return NERVE_OK;
}

/* Feeds token k; the scores of the next byte land in t->scores. */
static int feed_token(nerve_textgen *t, int k)
{
    nerve_value(t->g, t->input).data[0] = (float)k;
    int st = nerve_forward(t->g, t->output);
    if (st == NERVE_OK)
        memcpy(t->scores, nerve_value(t->g, t->output).data, (size_t)t->vocab.n * sizeof(float));
    return st;
}

/* p = softmax(scores / temperature). */
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

static int not_in_vocab(int byte, const char *what, size_t offset)
{
    char b[16];
    return nerve_set_error(NERVE_ERR_ARG, "%s%s (offset %zu) is not in the model's vocabulary",
                           what, byte < 0 || byte > 255 ? "a value outside 0..255"
                                                        : byte_str(byte, b, sizeof b), offset);
}

int nerve_textgen_next(nerve_textgen *t, int byte, float *probs)
{
    if (!t)
        return nerve_set_error(NERVE_ERR_ARG, "textgen: null sampler");
    if (byte < 0 || byte > 255 || t->token[byte] < 0)
        return not_in_vocab(byte, "", 0);
    int st = feed_token(t, t->token[byte]);
    if (st == NERVE_OK && probs)
        softmax_into(t->scores, t->vocab.n, 1.0f, probs);
    return st;
}

int nerve_textgen_bpc(nerve_textgen *t, const char *text, size_t len, double *bpc)
{
    if (!t || !text || !bpc)
        return nerve_set_error(NERVE_ERR_ARG, "textgen_bpc: null argument");
    if (len < 2)
        return nerve_set_error(NERVE_ERR_ARG, "textgen_bpc: needs at least 2 characters");
    for (size_t i = 0; i < len; i++)
        if (t->token[(unsigned char)text[i]] < 0)
            return not_in_vocab((unsigned char)text[i], "the text's ", i);
    int st = nerve_textgen_reset(t);
    double sum = 0;
    for (size_t i = 0; i + 1 < len && st == NERVE_OK; i++) {
        st = feed_token(t, t->token[(unsigned char)text[i]]);
        sum += nll_of(t->scores, t->vocab.n, t->token[(unsigned char)text[i + 1]]);
    }
    *bpc = sum / (double)(len - 1) / LN2;
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
        if (t->token[(unsigned char)prime[i]] < 0)
            return not_in_vocab((unsigned char)prime[i], "the prime's ", i);
    float *work = nerve_xmalloc((size_t)t->vocab.n * sizeof(float));
    if (!work)
        return NERVE_ERR_NOMEM;
    int st = nerve_textgen_reset(t);
    for (size_t i = 0; i < prime_len && st == NERVE_OK; i++)
        st = feed_token(t, t->token[(unsigned char)prime[i]]);
    if (prime_len == 0 && st == NERVE_OK)
        st = feed_token(t, t->token['\n'] >= 0 ? t->token['\n'] : 0);
    nerve_rng rng;
    nerve_rng_seed(&rng, seed);
    int written = 0;
    while (written < length && st == NERVE_OK) {
        int k = choose(t->scores, t->vocab.n, temperature, &rng, work);
        out[written++] = (char)t->vocab.bytes[k];
        if (written < length)
            st = feed_token(t, k);
    }
    nerve_xfree(work);
    return st ? st : written;
}
