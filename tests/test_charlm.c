/* The character model as an ordinary model: text as a token stream (vocabulary, encoding,
 * stream batching), the language-model cfg (train_text=, seq=, carry=, per_step=,
 * target=tokens), training through nerve_fit (carried state reset at every pass, exact
 * resume), the vocabulary in the checkpoint, and sampling (section 15, `nerve sample`). */
#include "test.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[4][1024];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return NULL;
    fwrite(text, 1, len, f);
    fclose(f);
    return p;
}

/* A small language-model cfg on `text_path`. */
static void lm_cfg(char *buf, size_t size, const char *text_path, int hidden, int seq, int batch,
                   float validation, int max_batches, int epochs, float lr)
{
    snprintf(buf, size,
             "[net]\ntrain_text=%s\nvalidation=%g\nbatch=%d\nseq=%d\nmax_batches=%d\n"
             "epochs=%d\nseed=3\noptimizer=adam\nlearning_rate=%g\nclip_norm=5\n"
             "[embedding]\nonehot=1\n"
             "[lstm]\noutput=%d\nreturn_sequences=1\ncarry=1\n"
             "[connected]\noutput=vocab\nper_step=1\ninit=torch\n"
             "[softmax]\ntarget=tokens\n",
             text_path, (double)validation, batch, seq, max_batches, epochs, (double)lr, hidden);
}

static int argmax(const float *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = p[i] > p[best] ? i : best;
    return best;
}

/* ---- text as tokens ------------------------------------------------------------------ */

TEST(charlm_vocab_encode_and_metadata_form)
{
    const unsigned char text[] = "hello, world\n";
    nerve_vocab v;
    const unsigned char want[] = {'\n', ' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w'};
    nerve_vocab_of_text(&v, text, sizeof text - 1);
    CHECK(v.n == 10 && memcmp(v.bytes, want, 10) == 0);
    CHECK(nerve_vocab_token(&v, 'h') == 5 && nerve_vocab_token(&v, 'z') == -1);
    float ids[13];
    CHECK_OK(nerve_vocab_encode(&v, text, 13, ids));
    CHECK(ids[0] == 5 && ids[1] == 4 && ids[12] == 0);
    CHECK(nerve_vocab_encode(&v, (const unsigned char *)"hey", 3, ids) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "'y' at offset 2") != NULL);
    char hex[513];
    nerve_vocab_format(&v, hex);
    CHECK(strcmp(hex, "0a202c6465686c6f7277") == 0);
    nerve_vocab back;
    CHECK_OK(nerve_vocab_parse(&back, hex));
    CHECK(back.n == v.n && memcmp(back.bytes, v.bytes, (size_t)v.n) == 0);
    CHECK(nerve_vocab_parse(&back, "0a0a") == NERVE_ERR_FORMAT); /* not increasing */
    CHECK(nerve_vocab_parse(&back, "0A") == NERVE_ERR_FORMAT);   /* upper case */
    CHECK(nerve_vocab_parse(&back, "0a2") == NERVE_ERR_FORMAT);  /* odd length */
    CHECK(nerve_vocab_parse(&back, "") == NERVE_ERR_FORMAT);
    /* every byte value */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i);
    nerve_vocab_of_text(&v, all, 256);
    nerve_vocab_format(&v, hex);
    CHECK(v.n == 256 && strlen(hex) == 512);
    CHECK_OK(nerve_vocab_parse(&back, hex));
    CHECK(back.n == 256 && back.bytes[255] == 255);
}

/* 20 tokens 0..19 in 2 streams of 10, chunks of 3: stream 0 reads 0..8 (three chunks; its
 * last token 9 only as a target), stream 1 reads 10..18; sample k*2 + s is chunk k of
 * stream s, its targets the inputs shifted by one. */
TEST(charlm_stream_batcher_layout)
{
    float ids[21];
    for (int i = 0; i < 21; i++)
        ids[i] = (float)i;
    nerve_dataset d;
    CHECK_OK(nerve_dataset_text_streams(&d, ids, 21, 2, 3, 21, 0)); /* token 20 is left over */
    CHECK(d.n == 6 && d.streams == 2 && d.target == NERVE_TARGET_TOKENS);
    CHECK(d.sample_numel == 3 && d.target_numel == 3 && d.n_classes == 21);
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < 3; j++) {
                size_t at = (size_t)(k * 2 + s) * 3 + (size_t)j;
                CHECK_MSG(d.x[at] == (float)(10 * s + 3 * k + j) && d.t[at] == d.x[at] + 1,
                          "chunk %d of stream %d, position %d: x %g t %g", k, s, j,
                          (double)d.x[at], (double)d.t[at]);
            }
    /* the batcher keeps the order, so batch k of 2 is chunk k of both streams */
    nerve_batcher b;
    CHECK_OK(nerve_batcher_init(&b, &d, 2, 0, 1));
    float x[6], y[2], t[6];
    CHECK(nerve_batcher_next_target(&b, x, y, t) == 2);
    CHECK(nerve_batcher_next_target(&b, x, y, t) == 2);
    CHECK(x[0] == 3 && x[3] == 13 && t[2] == 6 && t[5] == 16);
    nerve_batcher_free(&b);
    /* a stream is not split by samples */
    nerve_dataset val;
    CHECK(nerve_dataset_split(&d, &val, 0.5f, 1) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "held-out") != NULL);
    nerve_dataset_free(&d);
    /* keep_tail: one stream of 8 tokens in chunks of 3: predictions 0->1 .. 6->7, the last
     * chunk padded (input 0, target -1) */
    CHECK_OK(nerve_dataset_text_streams(&d, ids, 8, 1, 3, 21, 1));
    CHECK(d.n == 3 && d.streams == 1);
    CHECK(d.x[6] == 6 && d.t[6] == 7 && d.x[7] == 0 && d.t[7] == -1 && d.t[8] == -1);
    nerve_dataset_free(&d);
    /* too short: 2 streams of 3 tokens cannot give a chunk of 3 (needs seq + 1) */
    CHECK(nerve_dataset_text_streams(&d, ids, 6, 2, 3, 21, 0) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "lower batch or seq") != NULL);
}

/* ---- the cfg ----------------------------------------------------------------------------- */

TEST(charlm_cfg_builds_the_language_model)
{
    const char *text = write_file("t.txt", "abcabcabd\n", 10);
    char cfg[2048];
    lm_cfg(cfg, sizeof cfg, text, 6, 4, 2, 0.0f, 10, 5, 0.01f);
    nerve_model *m = nerve_model_from_cfg(cfg, "lm.cfg");
    CHECK(m != NULL);
    nerve_vocab v;
    CHECK(nerve_model_vocab(m, &v) == 5 && memcmp(v.bytes, "\nabcd", 5) == 0);
    nerve_graph *g = nerve_model_graph(m);
    int nd, dims[NERVE_MAX_DIMS];
    CHECK_OK(nerve_model_compile(m, 2));
    nerve_node_shape(g, nerve_model_output(m), &nd, dims);
    CHECK(nd == 3 && dims[0] == 2 && dims[1] == 4 && dims[2] == 5);
    nerve_node_shape(g, nerve_model_labels(m), &nd, dims);
    CHECK(nd == 2 && dims[1] == 4);
    /* one-hot table (a state), LSTM, output layer: w_ih [24, 5] */
    int eye = nerve_node_find(g, "embedding1.onehot"), w = nerve_node_find(g, "lstm2.w_ih");
    CHECK(eye >= 0 && nerve_node_kind(g, eye) == NERVE_NODE_STATE);
    CHECK(nerve_value(g, eye).data[6] == 1.0f && nerve_value(g, eye).data[1] == 0.0f);
    nerve_node_shape(g, w, &nd, dims);
    CHECK(dims[0] == 24 && dims[1] == 5);
    /* init=torch: weight and bias in U(-1/sqrt(6), 1/sqrt(6)), the bias not zero */
    nerve_tensor bias = nerve_value(g, nerve_node_find(g, "connected3.bias"));
    float k = 1.0f / sqrtf(6.0f), mx = 0;
    for (int i = 0; i < 5; i++)
        mx = fabsf(bias.data[i]) > mx ? fabsf(bias.data[i]) : mx;
    CHECK(mx > 0 && mx <= k);
    /* carried states: h and c, not persistent */
    CHECK(nerve_graph_carried_states(g, NULL, 0) == 2);
    int ids[32], n = nerve_graph_persistent(g, ids, 32);
    for (int i = 0; i < n; i++)
        CHECK(!strstr(nerve_node_name(g, ids[i]), "carry"));
    nerve_model_free(m);
}

static void expect_cfg_error(const char *cfg, const char *fragment)
{
    nerve_model *m = nerve_model_from_cfg(cfg, "bad.cfg");
    if (m) {
        test_fail(__FILE__, __LINE__, "cfg accepted; expected an error with '%s'", fragment);
        nerve_model_free(m);
        return;
    }
    if (!strstr(nerve_last_error(), fragment))
        test_fail(__FILE__, __LINE__, "error '%s' lacks '%s'", nerve_last_error(), fragment);
}

TEST(charlm_cfg_errors)
{
    const char *text = write_file("t.txt", "abcabcabd\n", 10);
    char cfg[2048];
    expect_cfg_error("[net]\nseq=4\n[embedding]\nonehot=1\n", "needs vocab=");
    expect_cfg_error("[net]\ninputs=3\n[connected]\noutput=vocab\n", "output=vocab needs a text");
    expect_cfg_error("[net]\nseq=4\ninputs=4\n[connected]\noutput=2\n", "does not combine");
    snprintf(cfg, sizeof cfg, "[net]\ntrain_text=%s\n[connected]\noutput=2\n", text);
    expect_cfg_error(cfg, "train_text= needs seq=");
    expect_cfg_error("[net]\nseq=4\ntrain_text=/nonexistent/t.txt\n[embedding]\nonehot=1\n",
                     "/nonexistent/t.txt");
    snprintf(cfg, sizeof cfg, "[net]\nseq=4\ntrain_text=%s\n[embedding]\nvocab=7\nsize=2\n", text);
    expect_cfg_error(cfg, "vocab=7, but the text's vocabulary has 5");
    snprintf(cfg, sizeof cfg,
             "[net]\nseq=4\ntrain_text=%s\n[embedding]\nonehot=1\n[lstm]\noutput=3\n"
             "bidirectional=1\ncarry=1\n", text);
    expect_cfg_error(cfg, "backward direction");
    snprintf(cfg, sizeof cfg,
             "[net]\nseq=4\ntrain_text=%s\n[embedding]\nonehot=1\n[lstm]\noutput=3\n"
             "[connected]\noutput=vocab\n[softmax]\ntarget=tokens\n", text);
    expect_cfg_error(cfg, "needs scores for every step");
    snprintf(cfg, sizeof cfg,
             "[net]\nseq=4\ntrain_text=%s\n[embedding]\nonehot=1\n[lstm]\noutput=3\n"
             "return_sequences=1\n[connected]\noutput=4\nper_step=1\n[softmax]\ntarget=tokens\n",
             text);
    expect_cfg_error(cfg, "vocabulary has 5 bytes");
    expect_cfg_error("[net]\ninputs=4\n[connected]\noutput=4\nper_step=1\n",
                     "per_step=1 needs a sequence");
    expect_cfg_error("[net]\ninputs=4\n[connected]\noutput=4\n[softmax]\ntarget=boxes\n",
                     "expected one of: class, mask, tokens");
}

/* A carried model refuses independent samples; a language model refuses class data. */
TEST(charlm_fit_refuses_mismatched_data)
{
    const char *text = write_file("t.txt", "abcabcabd\nabcabcabd\n", 20);
    char cfg[2048];
    lm_cfg(cfg, sizeof cfg, text, 4, 3, 2, 0.0f, 4, 1, 0.01f);
    nerve_model *m = nerve_model_from_cfg(cfg, "lm.cfg");
    CHECK(m != NULL);
    nerve_dataset train, shuffled;
    CHECK_OK(nerve_model_text_data(m, &train, NULL));
    int idx[] = {1, 0, 2};
    CHECK_OK(nerve_dataset_gather(&shuffled, &train, idx, 3));
    CHECK(shuffled.streams == 0);
    CHECK(nerve_fit(m, &shuffled, NULL, NULL, NULL) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "carry=1") != NULL);
    nerve_dataset cls;
    CHECK_OK(nerve_dataset_alloc(&cls, 4, 1, (int[]){3}));
    cls.n_classes = 2;
    for (int i = 0; i < 4; i++)
        cls.y[i] = (float)(i % 2);
    CHECK(nerve_fit(m, &cls, NULL, NULL, NULL) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "needs a token sequence per sample") != NULL);
    int pred[4];
    CHECK(nerve_predict(m, &train, pred) == NERVE_ERR_ARG);
    nerve_dataset_free(&cls);
    nerve_dataset_free(&shuffled);
    nerve_dataset_free(&train);
    nerve_model_free(m);
}

/* ---- training ------------------------------------------------------------------------- */

/* The course's toy: trained on "hello" (vocabulary [e, h, l, o]), the model predicts e, l,
 * l, o after h, e, l, l (the second l needs memory) and greedy sampling primed with "h"
 * spells "hello". */
TEST(charlm_hello_toy)
{
    const char *text = write_file("hello.txt", "hello", 5);
    char cfg[2048];
    lm_cfg(cfg, sizeof cfg, text, 16, 4, 1, 0.0f, 120, 1000, 0.05f);
    nerve_model *m = nerve_model_from_cfg(cfg, "hello.cfg");
    CHECK(m != NULL);
    nerve_dataset train;
    CHECK_OK(nerve_model_text_data(m, &train, NULL));
    CHECK(train.n == 1 && train.streams == 1); /* one chunk: every epoch is one step */
    nerve_fit_result res;
    CHECK_OK(nerve_fit(m, &train, NULL, NULL, &res));
    CHECK(res.epochs_run == 120);
    double loss, acc;
    CHECK_OK(nerve_evaluate(m, &train, &loss, &acc, NULL, 0));
    CHECK_MSG(loss / log(2.0) < 0.2 && acc == 1.0, "bits/char %.4f accuracy %.3f",
              loss / log(2.0), acc);
    nerve_textgen *t = nerve_textgen_from_model(m);
    CHECK(t != NULL);
    unsigned char vocab[8];
    CHECK(nerve_textgen_vocab(t, vocab, 8) == 4 && memcmp(vocab, "ehlo", 4) == 0);
    const char *in = "hell", *want = "ello";
    float p[4];
    CHECK_OK(nerve_textgen_reset(t));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(nerve_textgen_next(t, in[i], p));
        CHECK_NEAR(p[0] + p[1] + p[2] + p[3], 1.0, 1e-5);
        CHECK_MSG(vocab[argmax(p, 4)] == want[i], "after '%.*s' the model predicts '%c'", i + 1,
                  in, vocab[argmax(p, 4)]);
    }
    char out[4];
    CHECK(nerve_textgen_sample(t, "h", 1, 4, 0.0f, 1, out) == 4);
    CHECK_MSG(memcmp(out, "ello", 4) == 0, "sampled 'h%.4s'", out);
    nerve_textgen_free(t);
    nerve_dataset_free(&train);
    nerve_model_free(m);
}

/* Carried states after the first step of each epoch. */
typedef struct carry_probe {
    nerve_model *m;
    int epoch;
    float first[2][64]; /* h after step 1 of epochs 1 and 2 */
} carry_probe;

static void probe_progress(const nerve_progress *p, void *user)
{
    carry_probe *c = user;
    if (p->done != 2 || p->epoch > 2) /* the first batch (2 streams) of epochs 1, 2 */
        return;
    nerve_graph *g = nerve_model_graph(c->m);
    int ids[4];
    nerve_graph_carried_states(g, ids, 4);
    memcpy(c->first[p->epoch - 1], nerve_value(g, ids[0]).data, 2 * 8 * sizeof(float));
}

/* An epoch is one pass over the streams and starts them from a zero state: with a
 * learning rate too small to move the weights, the state after the first step of epoch 2
 * equals that after the first step of epoch 1 (without the reset it would continue from
 * the end of epoch 1). */
TEST(charlm_state_resets_when_streams_wrap)
{
    char text[200];
    for (int i = 0; i < 200; i++)
        text[i] = "the quick brown fox\n"[i % 20];
    const char *path = write_file("fox.txt", text, sizeof text);
    char cfg[2048];
    lm_cfg(cfg, sizeof cfg, path, 8, 5, 2, 0.0f, 1000, 2, 1e-30f);
    nerve_model *m = nerve_model_from_cfg(cfg, "fox.cfg");
    CHECK(m != NULL);
    nerve_dataset train;
    CHECK_OK(nerve_model_text_data(m, &train, NULL));
    CHECK(train.n == 2 * 19); /* streams of 100: 19 chunks of 5 (99 predictions) */
    carry_probe c = {m, 0, {{0}}};
    nerve_fit_options o = {0};
    o.on_progress = probe_progress;
    o.user = &c;
    o.progress_every = 1;
    CHECK_OK(nerve_fit(m, &train, NULL, &o, NULL));
    float nonzero = 0;
    for (int i = 0; i < 16; i++)
        nonzero += fabsf(c.first[0][i]);
    CHECK(nonzero > 0);
    CHECK_ARRAY_NEAR(c.first[1], c.first[0], 16, 0);
    nerve_dataset_free(&train);
    nerve_model_free(m);
}

/* Bits per character of the held-out stream, read in chunks through the training graph,
 * equal those of reading it one byte at a time (section 15), and max_batches stops the
 * run part-way through an epoch. */
TEST(charlm_held_out_bits_per_character)
{
    char text[600];
    for (int i = 0; i < 600; i++)
        text[i] = "abcb"[i % 4];
    const char *path = write_file("abcb.txt", text, sizeof text);
    char cfg[2048];
    lm_cfg(cfg, sizeof cfg, path, 12, 8, 4, 0.1f, 150, 1000, 0.02f);
    nerve_model *m = nerve_model_from_cfg(cfg, "abcb.cfg");
    CHECK(m != NULL);
    nerve_dataset train, held;
    CHECK_OK(nerve_model_text_data(m, &train, &held));
    CHECK(train.n == 4 * 16 && held.n == 8 && held.streams == 1); /* 540 / 4 = 135: 16 chunks */
    nerve_fit_result res;
    CHECK_OK(nerve_fit(m, &train, &held, NULL, &res));
    CHECK(res.epochs_run == 10); /* 150 steps: 9 epochs of 16 and 6 steps of a tenth */
    double loss, acc;
    CHECK_OK(nerve_evaluate(m, &held, &loss, &acc, NULL, 0));
    CHECK_MSG(loss / log(2.0) < 0.3, "held-out bits/char %.4f", loss / log(2.0));
    nerve_textgen *t = nerve_textgen_from_model(m);
    CHECK(t != NULL);
    double bpc;
    CHECK_OK(nerve_textgen_bpc(t, text + 540, 60, &bpc));
    CHECK_NEAR(bpc, loss / log(2.0), 1e-5);
    nerve_textgen_free(t);
    nerve_dataset_free(&train);
    nerve_dataset_free(&held);
    nerve_model_free(m);
}

/* A run stopped after 2 epochs and resumed ends bit for bit where the uninterrupted run
 * does (the streams, the carried state and the optimiser all pick up exactly). */
TEST(charlm_resume_is_exact)
{
    char text[400];
    for (int i = 0; i < 400; i++)
        text[i] = "one two three four five six\n"[(i * 7 + i / 29) % 28];
    const char *path = write_file("count.txt", text, sizeof text);
    char cfg[2048], a[1100], b[1100];
    lm_cfg(cfg, sizeof cfg, path, 8, 6, 3, 0.1f, 1000, 4, 0.01f);
    snprintf(a, sizeof a, "%s/a.safetensors", test_tmpdir());
    snprintf(b, sizeof b, "%s/b.safetensors", test_tmpdir());
    nerve_model *m1 = nerve_model_from_cfg(cfg, "c.cfg"), *m2 = nerve_model_from_cfg(cfg, "c.cfg");
    CHECK(m1 && m2);
    nerve_dataset train, held;
    CHECK_OK(nerve_model_text_data(m1, &train, &held));
    nerve_fit_options o = {0};
    o.checkpoint = a;
    CHECK_OK(nerve_fit(m1, &train, &held, &o, NULL));
    o.checkpoint = b;
    o.stop_after_epochs = 2;
    CHECK_OK(nerve_fit(m2, &train, &held, &o, NULL));
    nerve_model_free(m2);
    m2 = nerve_model_from_cfg(cfg, "c.cfg");
    o.stop_after_epochs = 0;
    o.resume = b;
    nerve_fit_result res;
    CHECK_OK(nerve_fit(m2, &train, &held, &o, &res));
    CHECK(res.epochs_run == 2);
    nerve_graph *g1 = nerve_model_graph(m1), *g2 = nerve_model_graph(m2);
    int ids[32], n = nerve_graph_persistent(g1, ids, 32);
    CHECK(n >= 5);
    for (int i = 0; i < n; i++) {
        nerve_tensor x = nerve_value(g1, ids[i]);
        nerve_tensor y = nerve_value(g2, nerve_node_find(g2, nerve_node_name(g1, ids[i])));
        CHECK_MSG(memcmp(x.data, y.data, nerve_tensor_numel(&x) * sizeof(float)) == 0,
                  "%s differs after resume", nerve_node_name(g1, ids[i]));
    }
    nerve_dataset_free(&train);
    nerve_dataset_free(&held);
    nerve_model_free(m1);
    nerve_model_free(m2);
}

/* Sets the interrupt flag after step 5 of epoch 2 (a stream's middle). */
typedef struct interrupter {
    volatile sig_atomic_t flag;
} interrupter;

static void interrupt_mid_epoch(const nerve_progress *p, void *user)
{
    if (p->epoch == 2 && p->done == 5 * 3)
        ((interrupter *)user)->flag = 1;
}

/* Interrupted inside an epoch (the streams half read, the state carried) and resumed, the
 * run ends bit for bit where the uninterrupted run does: the checkpoint holds the carried
 * states and the resumed epoch goes on from them instead of zeroing them. */
TEST(charlm_resume_inside_an_epoch_is_exact)
{
    char text[400];
    for (int i = 0; i < 400; i++)
        text[i] = "one two three four five six\n"[(i * 7 + i / 29) % 28];
    const char *path = write_file("count.txt", text, sizeof text);
    char cfg[2048], a[1100], b[1100];
    lm_cfg(cfg, sizeof cfg, path, 8, 6, 3, 0.1f, 1000, 3, 0.01f);
    snprintf(a, sizeof a, "%s/a.safetensors", test_tmpdir());
    snprintf(b, sizeof b, "%s/b.safetensors", test_tmpdir());
    nerve_model *m1 = nerve_model_from_cfg(cfg, "c.cfg"), *m2 = nerve_model_from_cfg(cfg, "c.cfg");
    CHECK(m1 && m2);
    nerve_dataset train, held;
    CHECK_OK(nerve_model_text_data(m1, &train, &held));
    CHECK(train.n == 3 * 19); /* 360 / 3 = 120 per stream: 19 steps per epoch */
    nerve_fit_options o = {0};
    o.checkpoint = a;
    CHECK_OK(nerve_fit(m1, &train, &held, &o, NULL));
    interrupter stop = {0};
    o.checkpoint = b;
    o.interrupt = &stop.flag;
    o.on_progress = interrupt_mid_epoch;
    o.user = &stop;
    o.progress_every = 1;
    nerve_fit_result res;
    CHECK_OK(nerve_fit(m2, &train, &held, &o, &res));
    CHECK(res.interrupted && res.interrupted_epoch == 2 && res.interrupted_batch == 5);
    nerve_model_free(m2);
    m2 = nerve_model_from_cfg(cfg, "c.cfg");
    memset(&o, 0, sizeof o);
    o.checkpoint = b;
    o.resume = b;
    CHECK_OK(nerve_fit(m2, &train, &held, &o, &res));
    nerve_graph *g1 = nerve_model_graph(m1), *g2 = nerve_model_graph(m2);
    int ids[32], n = nerve_graph_persistent(g1, ids, 32);
    for (int i = 0; i < n; i++) {
        nerve_tensor x = nerve_value(g1, ids[i]);
        nerve_tensor y = nerve_value(g2, nerve_node_find(g2, nerve_node_name(g1, ids[i])));
        CHECK_MSG(memcmp(x.data, y.data, nerve_tensor_numel(&x) * sizeof(float)) == 0,
                  "%s differs after resuming inside an epoch", nerve_node_name(g1, ids[i]));
    }
    nerve_dataset_free(&train);
    nerve_dataset_free(&held);
    nerve_model_free(m1);
    nerve_model_free(m2);
}

/* ---- checkpoints and sampling --------------------------------------------------------- */

/* The checkpoint keeps the vocabulary: after the text is gone, the model loads, samples
 * and gives the same predictions as the model it was saved from. */
TEST(charlm_vocabulary_round_trip_through_the_checkpoint)
{
    const char *text = "the cat sat on the mat.\nthe dog sat on the log.\n";
    size_t len = strlen(text);
    const char *path = write_file("cats.txt", text, len);
    char cfg[2048], ckpt[1100];
    lm_cfg(cfg, sizeof cfg, path, 10, 6, 2, 0.0f, 12, 1000, 0.01f);
    snprintf(ckpt, sizeof ckpt, "%s/lm.safetensors", test_tmpdir());
    nerve_model *m = nerve_model_from_cfg(cfg, "cats.cfg");
    CHECK(m != NULL);
    nerve_dataset train;
    CHECK_OK(nerve_model_text_data(m, &train, NULL));
    nerve_fit_options o = {0};
    o.checkpoint = ckpt;
    CHECK_OK(nerve_fit(m, &train, NULL, &o, NULL));
    CHECK(unlink(path) == 0); /* sampling needs no text */
    nerve_st_file *f = nerve_st_open(ckpt);
    CHECK(f != NULL);
    nerve_vocab v;
    CHECK(nerve_model_vocab(m, &v) == 15);
    char hex[513];
    nerve_vocab_format(&v, hex);
    CHECK(nerve_st_metadata(f, "nerve.vocab") && strcmp(nerve_st_metadata(f, "nerve.vocab"), hex) == 0);
    nerve_st_close(f);
    nerve_model *back = nerve_model_load(ckpt);
    CHECK(back != NULL);
    nerve_vocab w;
    CHECK(nerve_model_vocab(back, &w) == 15 && memcmp(w.bytes, v.bytes, 15) == 0);
    nerve_model_free(back);
    nerve_textgen *t = nerve_textgen_from_model(m), *u = nerve_textgen_load(ckpt);
    CHECK(t && u);
    unsigned char vb[256];
    CHECK(nerve_textgen_vocab(u, vb, 256) == 15 && memcmp(vb, v.bytes, 15) == 0);
    float pa[15], pb[15];
    CHECK_OK(nerve_textgen_reset(t));
    CHECK_OK(nerve_textgen_reset(u));
    for (const char *s = "the "; *s; s++) {
        CHECK_OK(nerve_textgen_next(t, *s, pa));
        CHECK_OK(nerve_textgen_next(u, *s, pb));
        CHECK_ARRAY_NEAR(pb, pa, 15, 0);
    }
    char sa[40], sb[40];
    CHECK(nerve_textgen_sample(t, "the", 3, 40, 1.0f, 9, sa) == 40);
    CHECK(nerve_textgen_sample(u, "the", 3, 40, 1.0f, 9, sb) == 40);
    CHECK(memcmp(sa, sb, 40) == 0);
    nerve_textgen_free(u);
    nerve_textgen_free(t);
    nerve_dataset_free(&train);
    nerve_model_free(m);
    /* a classifier's checkpoint is not a language model */
    m = nerve_model_from_cfg("[net]\ninputs=2\n[connected]\noutput=1\n", "x.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_save(m, ckpt));
    nerve_model_free(m);
    CHECK(nerve_textgen_load(ckpt) == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "not a language model") && strstr(nerve_last_error(), ckpt));
    CHECK(nerve_textgen_load("/nonexistent/lm.safetensors") == NULL);
}

TEST(charlm_sampling_is_seeded)
{
    const char *text = "abcdefghij klmnop\nabcdefghij klmnop\n";
    const char *path = write_file("alpha.txt", text, strlen(text));
    char cfg[2048];
    lm_cfg(cfg, sizeof cfg, path, 8, 4, 1, 0.0f, 1, 1, 0.01f);
    nerve_model *m = nerve_model_from_cfg(cfg, "alpha.cfg");
    CHECK(m != NULL);
    nerve_textgen *t = nerve_textgen_from_model(m);
    CHECK(t != NULL);
    char a[64], b[64], d[64];
    CHECK(nerve_textgen_sample(t, "ab", 2, 64, 1.0f, 42, a) == 64);
    CHECK(nerve_textgen_sample(t, "ab", 2, 64, 1.0f, 42, b) == 64);
    CHECK(memcmp(a, b, 64) == 0);
    CHECK(nerve_textgen_sample(t, "ab", 2, 64, 1.0f, 43, d) == 64);
    CHECK(memcmp(a, d, 64) != 0);
    for (int i = 0; i < 64; i++)
        CHECK(strchr(text, a[i]) != NULL); /* only vocabulary bytes */
    /* greedy sampling ignores the seed */
    CHECK(nerve_textgen_sample(t, "", 0, 64, 0.0f, 1, a) == 64);
    CHECK(nerve_textgen_sample(t, NULL, 0, 64, 0.0f, 2, b) == 64);
    CHECK(memcmp(a, b, 64) == 0);
    /* bytes outside the vocabulary */
    CHECK(nerve_textgen_sample(t, "xyz", 3, 4, 1.0f, 1, a) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "'x'") != NULL);
    CHECK(nerve_textgen_next(t, 'Z', NULL) == NERVE_ERR_ARG);
    CHECK(nerve_textgen_sample(t, "ab", 2, 4, -1.0f, 1, a) == NERVE_ERR_ARG);
    nerve_textgen_free(t);
    nerve_model_free(m);
}

/* ---- the commands ------------------------------------------------------------------------ */

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(charlm_cli_train_eval_and_sample)
{
    char text[2000];
    for (int i = 0; i < 2000; i++)
        text[i] = "to be or not to be\n"[i % 19];
    const char *file = write_file("be.txt", text, sizeof text);
    char cfg[2048];
    lm_cfg(cfg, sizeof cfg, file, 16, 16, 4, 0.1f, 60, 1000, 0.01f);
    const char *cfg_path = write_file("be.cfg", cfg, strlen(cfg));
    char cmd[4096], out[16384];
    snprintf(cmd, sizeof cmd, "%s/nerve train %s --out %s/run --threads 1 2>&1", test_build_dir(),
             cfg_path, test_tmpdir());
    CHECK_MSG(run(cmd, out, sizeof out) == 0, "%s\n%s", cmd, out);
    CHECK_MSG(strstr(out, "vocabulary 8 bytes") && strstr(out, "chars/s") &&
                  strstr(out, "held-out bits per character: "),
              "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve eval %s/run/model.safetensors 2>&1", test_build_dir(),
             test_tmpdir());
    CHECK_MSG(run(cmd, out, sizeof out) == 0 && strstr(out, "bits per character: ") &&
                  strstr(out, "199 characters predicted"),
              "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s/nerve sample %s/run/model.safetensors --prime 'to be' --length 30 "
             "--temperature 0.5 --seed 3",
             test_build_dir(), test_tmpdir());
    CHECK_MSG(run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strncmp(out, "to be", 5) == 0 && strlen(out) == 36, "'%s'", out);
    char again[8192];
    snprintf(cmd, sizeof cmd,
             "%s/nerve textgen sample %s/run/model.safetensors --prime 'to be' --length 30 "
             "--temperature 0.5 --seed 3",
             test_build_dir(), test_tmpdir());
    CHECK(run(cmd, again, sizeof again) == 0 && strcmp(out, again) == 0);
    snprintf(cmd, sizeof cmd, "%s/nerve sample %s/run/model.safetensors --prime Q 2>&1",
             test_build_dir(), test_tmpdir());
    CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "'Q'"));
    snprintf(cmd, sizeof cmd, "%s/nerve textgen train x.txt 2>&1", test_build_dir());
    CHECK(run(cmd, out, sizeof out) == 2 && strstr(out, "models/charlm.cfg"));
    snprintf(cmd, sizeof cmd, "%s/nerve help", test_build_dir());
    CHECK(run(cmd, out, sizeof out) == 0 && strstr(out, "sample CKPT"));
}
