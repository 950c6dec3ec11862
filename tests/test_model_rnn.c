/* Recurrent layers in cfg files: [rnn], [lstm], [gru] and [embedding] sections, the layer
 * table (shapes, parameter counts, FLOPs), images read row by row, stacking, and errors
 * with file:line. */
#include "test.h"

#include <math.h>
#include <string.h>

static int layer(nerve_model *m, int i, nerve_layer_info *li)
{
    return nerve_model_layer_info(m, i, li);
}

/* Expects the cfg to be rejected with a message starting "<prefix>" and containing part. */
static int rejects(const char *text, const char *prefix, const char *part)
{
    nerve_model *m = nerve_model_from_cfg(text, "rnn.cfg");
    if (m) {
        nerve_model_free(m);
        fprintf(stderr, "  accepted, expected '%s ... %s'\n", prefix, part);
        return 0;
    }
    const char *msg = nerve_last_error();
    if (strncmp(msg, prefix, strlen(prefix)) != 0 || !strstr(msg, part)) {
        fprintf(stderr, "  got '%s', expected '%s ... %s'\n", msg, prefix, part);
        return 0;
    }
    return 1;
}

/* The shipped sequence classifier: 28 rows of 28 pixels into an LSTM of 128 units. */
TEST(model_rnn_lstm_rows_layer_table)
{
    const char *text = "[net]\nheight=28\nwidth=28\nchannels=1\nbatch=4\n"
                       "[lstm]\noutput=128\n"
                       "[connected]\noutput=10\n"
                       "[softmax]\n";
    nerve_model *m = nerve_model_from_cfg(text, "rows.cfg");
    CHECK(m != NULL);
    CHECK(nerve_model_layer_count(m) == 3);
    nerve_layer_info li;
    CHECK_OK(layer(m, 0, &li));
    CHECK(!strcmp(li.type, "lstm") && !strcmp(li.name, "lstm1") && li.line == 6);
    CHECK(li.ndim == 1 && li.dims[0] == 128);
    /* 4H(F + H) weights and PyTorch's two biases, 8H. */
    CHECK(li.params == (size_t)(4 * 128 * (28 + 128) + 8 * 128));
    CHECK_NEAR(li.flops, 28.0 * (2.0 * 4 * 128 * (28 + 128) + 2.0 * 4 * 128 + 9.0 * 128), 0);
    CHECK_OK(layer(m, 1, &li));
    CHECK(li.ndim == 1 && li.dims[0] == 10 && li.params == 1290);
    nerve_graph *g = nerve_model_graph(m);
    CHECK(nerve_node_find(g, "lstm1.w_ih") >= 0 && nerve_node_find(g, "lstm1.b_hh") >= 0);
    CHECK(nerve_graph_param_count(g) == (size_t)(80896 + 1290));
    CHECK_OK(nerve_model_compile(m, 4));
    int nd, dims[NERVE_MAX_DIMS];
    CHECK_OK(nerve_node_shape(g, nerve_model_output(m), &nd, dims));
    CHECK(nd == 2 && dims[0] == 4 && dims[1] == 10);
    nerve_model_free(m);
}

/* An embedding feeding a stacked GRU and a bidirectional LSTM: return_sequences defaults
 * to 1 before another recurrent layer, 0 otherwise. */
TEST(model_rnn_stacked_embedding_gru_lstm)
{
    const char *text = "[net]\ninputs=12\nbatch=3\n"
                       "[embedding]\nvocab=50\nsize=16\n"
                       "[gru]\noutput=32\ngru_form=linear_before_reset\n"
                       "[lstm]\noutput=8\nbidirectional=1\npeephole=1\n"
                       "[connected]\noutput=2\n"
                       "[softmax]\n";
    nerve_model *m = nerve_model_from_cfg(text, "stack.cfg");
    CHECK(m != NULL);
    nerve_layer_info li;
    CHECK_OK(layer(m, 0, &li));
    CHECK(!strcmp(li.type, "embedding") && li.ndim == 2 && li.dims[0] == 12 && li.dims[1] == 16);
    CHECK(li.params == 50 * 16);
    CHECK_OK(layer(m, 1, &li));
    CHECK(!strcmp(li.type, "gru") && li.ndim == 2 && li.dims[0] == 12 && li.dims[1] == 32);
    CHECK(li.params == (size_t)(3 * 32 * (16 + 32) + 6 * 32));
    CHECK_OK(layer(m, 2, &li));
    CHECK(li.ndim == 1 && li.dims[0] == 16);
    /* two directions, each 4H(F + H) + 8H and 3H peephole weights */
    CHECK(li.params == (size_t)(2 * (4 * 8 * (32 + 8) + 8 * 8 + 3 * 8)));
    nerve_graph *g = nerve_model_graph(m);
    CHECK(nerve_node_find(g, "lstm3.reverse.w_ih") >= 0);
    CHECK(nerve_node_find(g, "lstm3.peephole") >= 0);
    CHECK_OK(nerve_model_compile(m, 3));
    float *x = nerve_value(g, nerve_model_input(m)).data;
    for (int i = 0; i < 3 * 12; i++)
        x[i] = (float)((i * 7) % 50);
    nerve_value(g, nerve_model_labels(m)).data[0] = 1;
    CHECK_OK(nerve_forward(g, nerve_model_loss(m)));
    CHECK(isfinite(nerve_value(g, nerve_model_loss(m)).data[0]));
    CHECK_OK(nerve_backward(g, nerve_model_loss(m)));
    nerve_model_free(m);
}

/* return_sequences=1 before [connected]: the connected layer sees all T*H values. */
TEST(model_rnn_return_sequences_flattens_into_connected)
{
    const char *text = "[net]\nheight=5\nwidth=3\nbatch=2\n"
                       "[rnn]\noutput=4\nreturn_sequences=1\n"
                       "[connected]\noutput=6\n";
    nerve_model *m = nerve_model_from_cfg(text, "seq.cfg");
    CHECK(m != NULL);
    nerve_layer_info li;
    CHECK_OK(layer(m, 0, &li));
    CHECK(li.ndim == 2 && li.dims[0] == 5 && li.dims[1] == 4);
    CHECK(li.params == (size_t)(4 * (3 + 4) + 2 * 4));
    CHECK_NEAR(li.flops, 5.0 * (2.0 * 4 * (3 + 4) + 2.0 * 4 + 4), 0);
    CHECK_OK(layer(m, 1, &li));
    CHECK(li.params == (size_t)(5 * 4 * 6 + 6));
    nerve_model_free(m);
}

/* An image [N, C, H, W] is read row by row: step h sees the C*W values of row h, channel
 * by channel. Checked against the RNN recurrence computed here from the parameters. */
TEST(model_rnn_reads_images_row_by_row)
{
    enum { N = 2, C = 2, HT = 3, W = 2, F = C * W, H = 4 };
    const char *text = "[net]\nheight=3\nwidth=2\nchannels=2\nbatch=2\nseed=7\n"
                       "[rnn]\noutput=4\nreturn_sequences=1\nname=r\n";
    nerve_model *m = nerve_model_from_cfg(text, "img.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, N));
    nerve_graph *g = nerve_model_graph(m);
    float *x = nerve_value(g, nerve_model_input(m)).data;
    for (int i = 0; i < N * C * HT * W; i++)
        x[i] = sinf(0.7f * (float)i);
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    const float *w_ih = nerve_value(g, nerve_node_find(g, "r.w_ih")).data;
    const float *w_hh = nerve_value(g, nerve_node_find(g, "r.w_hh")).data;
    const float *b_ih = nerve_value(g, nerve_node_find(g, "r.b_ih")).data;
    const float *b_hh = nerve_value(g, nerve_node_find(g, "r.b_hh")).data;
    nerve_tensor y = nerve_value(g, nerve_model_output(m)); /* [N, T, H] */
    CHECK(y.ndim == 3 && y.dims[0] == N && y.dims[1] == HT && y.dims[2] == H);
    for (int n = 0; n < N; n++) {
        double h[H] = {0};
        for (int t = 0; t < HT; t++) {
            double feat[F], next[H];
            for (int c = 0; c < C; c++)
                for (int w = 0; w < W; w++)
                    feat[c * W + w] = x[((n * C + c) * HT + t) * W + w];
            for (int j = 0; j < H; j++) {
                double a = b_ih[j] + b_hh[j];
                for (int f = 0; f < F; f++)
                    a += w_ih[j * F + f] * feat[f];
                for (int k = 0; k < H; k++)
                    a += w_hh[j * H + k] * h[k];
                next[j] = tanh(a);
            }
            for (int j = 0; j < H; j++) {
                h[j] = next[j];
                CHECK_NEAR(y.data[(n * HT + t) * H + j], h[j], 1e-5);
            }
        }
    }
    nerve_model_free(m);
}

/* A short LSTM training on a task that needs memory: the class is the sign of the first
 * row's sum, which the last step must remember. */
TEST(model_rnn_lstm_learns_to_remember_the_first_row)
{
    const char *text = "[net]\nheight=6\nwidth=2\nbatch=32\nseed=3\noptimizer=adam\n"
                       "learning_rate=0.02\n"
                       "[lstm]\noutput=16\n"
                       "[connected]\noutput=2\n"
                       "[softmax]\n";
    nerve_model *m = nerve_model_from_cfg(text, "mem.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 32));
    nerve_graph *g = nerve_model_graph(m);
    nerve_optim *o = nerve_optim_create(g, &nerve_model_config(m)->optim);
    CHECK(o != NULL);
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    float *x = nerve_value(g, nerve_model_input(m)).data;
    float *lab = nerve_value(g, nerve_model_labels(m)).data;
    int loss = nerve_model_loss(m);
    double late = 0; /* mean loss of the last 30 steps (chance: ln 2 = 0.69) */
    for (int step = 0; step < 250; step++) {
        for (int i = 0; i < 32 * 12; i++)
            x[i] = nerve_rng_uniform(&r) * 2 - 1;
        for (int n = 0; n < 32; n++)
            lab[n] = x[n * 12] + x[n * 12 + 1] > 0;
        CHECK_OK(nerve_forward(g, loss));
        CHECK_OK(nerve_backward(g, loss));
        nerve_optim_step(o, 0.02f);
        if (step >= 220)
            late += nerve_value(g, loss).data[0] / 30.0;
    }
    nerve_optim_free(o);
    CHECK_MSG(late < 0.2, "mean loss of steps 221..250: %.4f", late);
    nerve_model_free(m);
}

TEST(model_rnn_cfg_errors_name_file_and_line)
{
    const char *img = "[net]\nheight=4\nwidth=4\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%s[gru]\noutput=8\npeephole=1\n", img);
    CHECK(rejects(buf, "rnn.cfg:6: unknown key 'peephole' in [gru]", "gru_form"));
    snprintf(buf, sizeof buf, "%s[gru]\noutput=8\ngru_form=cho\n", img);
    CHECK(rejects(buf, "rnn.cfg:6: gru_form = 'cho' is unknown", "linear_before_reset"));
    snprintf(buf, sizeof buf, "%s[lstm]\nbidirectional=1\n", img);
    CHECK(rejects(buf, "rnn.cfg:4: [lstm] needs output=", "hidden size"));
    snprintf(buf, sizeof buf, "%s[lstm]\noutput=0\n", img);
    CHECK(rejects(buf, "rnn.cfg:5: output", ""));
    snprintf(buf, sizeof buf, "%s[lstm]\noutput=4\nreturn_sequences=2\n", img);
    CHECK(rejects(buf, "rnn.cfg:6: return_sequences", ""));
    /* a vector per sample makes [rnn] darknet's layer, which has no cell keys */
    snprintf(buf, sizeof buf, "%s[connected]\noutput=5\n[rnn]\noutput=3\nreturn_sequences=1\n", img);
    CHECK(rejects(buf, "rnn.cfg:8: return_sequences= belongs to nerve's recurrent cell", "darknet's"));
    snprintf(buf, sizeof buf, "[net]\ninputs=5\n[embedding]\nsize=4\n");
    CHECK(rejects(buf, "rnn.cfg:3: [embedding] needs vocab=", "size="));
    snprintf(buf, sizeof buf, "%s[lstmm]\noutput=4\n", img);
    CHECK(rejects(buf, "rnn.cfg:4: unknown section [lstmm]", "rnn, lstm, gru, embedding"));
}

TEST(model_rnn_darknet_layers_are_darknets_and_cell_keys_stay_apart)
{
    /* darknet's [rnn]/[gru] (time_steps= in [net]) are stacks of connected layers: 3 x (in x
     * out + 2 out) with batch norm ... */
    const char *rnn = "[net]\ninputs=4\ntime_steps=5\nbatch=2\n[rnn]\noutput=8\nbatch_normalize=1\n"
                      "[connected]\noutput=2\n[softmax]\n";
    nerve_model *m = nerve_model_from_cfg(rnn, "r.cfg");
    CHECK(m);
    nerve_layer_info li;
    if (m) {
        CHECK_OK(nerve_model_layer_info(m, 0, &li));
        CHECK(li.ndim == 2 && li.dims[0] == 5 && li.dims[1] == 8);
        CHECK(li.params == 4 * 8 + 8 * 8 * 2 + 3 * 2 * 8);
        CHECK_OK(nerve_model_layer_info(m, 1, &li)); /* connected per step */
        CHECK(li.ndim == 2 && li.dims[0] == 5 && li.dims[1] == 2 && li.params == 8 * 2 + 2);
        nerve_model_free(m);
    }
    /* ... and six linear ones without: 3 (in x out + out) + 3 (out x out + out) */
    const char *gru = "[net]\ninputs=4\ntime_steps=5\nbatch=2\n[gru]\noutput=8\n[connected]\noutput=2\n[softmax]\n";
    CHECK((m = nerve_model_from_cfg(gru, "g.cfg")) != NULL);
    if (m) {
        CHECK_OK(nerve_model_layer_info(m, 0, &li));
        CHECK(li.params == 3 * (4 * 8 + 8) + 3 * (8 * 8 + 8));
        nerve_model_free(m);
    }
    /* one step per sample (time_steps=1): darknet's too */
    CHECK((m = nerve_model_from_cfg("[net]\ninputs=4\n[gru]\noutput=3\n", "one.cfg")) != NULL);
    nerve_model_free(m);
    /* nerve's cell keys in darknet's layer, darknet's keys in nerve's cell: refused */
    CHECK(!nerve_model_from_cfg("[net]\ninputs=4\ntime_steps=5\n[rnn]\noutput=8\nbidirectional=1\n",
                                "b.cfg"));
    CHECK(strstr(nerve_last_error(), "b.cfg:6: bidirectional= belongs to nerve's recurrent cell"));
    const char *rows = "[net]\nheight=5\nwidth=4\nchannels=1\nbatch=2\n[rnn]\noutput=8\n";
    char buf[256];
    snprintf(buf, sizeof buf, "%sactivation=leaky\n", rows);
    CHECK(!nerve_model_from_cfg(buf, "c.cfg"));
    CHECK(strstr(nerve_last_error(), "c.cfg:8: activation= belongs to darknet's [rnn]"));
    /* nerve's cell over the same sequence, given as rows of an image */
    snprintf(buf, sizeof buf, "%s[connected]\noutput=2\n[softmax]\n", rows);
    CHECK((m = nerve_model_from_cfg(buf, "rows.cfg")) != NULL);
    nerve_model_free(m);
}

/* darknet's [rnn] and [gru] are graph operators over the steps: their gradients (through
 * the shared sub-layers, the state and per-step batch norm in training) against finite
 * differences */
TEST(model_rnn_darknet_layers_gradcheck)
{
    static const char *const cfgs[] = {
        "[net]\ninputs=3\ntime_steps=3\nbatch=2\n[rnn]\noutput=4\nactivation=tanh\nshortcut=1\n"
        "[gru]\noutput=3\n[connected]\noutput=2\n[softmax]\n",
        "[net]\ninputs=3\ntime_steps=2\nbatch=3\n[gru]\noutput=3\nbatch_normalize=1\ntanh=1\n"
        "[rnn]\noutput=3\nbatch_normalize=1\n[connected]\noutput=2\n[softmax]\n",
    };
    for (int c = 0; c < 2; c++) {
        nerve_model *m = nerve_model_from_cfg(cfgs[c], "gc.cfg");
        CHECK_MSG(m != NULL, "%s", nerve_last_error());
        if (!m)
            continue;
        int batch = c ? 3 : 2;
        CHECK_OK(nerve_model_compile(m, batch));
        nerve_graph *g = nerve_model_graph(m);
        nerve_graph_set_training(g, 1);
        nerve_rng r;
        nerve_rng_seed(&r, 3 + c);
        nerve_tensor x = nerve_value(g, nerve_model_input(m));
        for (size_t i = 0; i < nerve_tensor_numel(&x); i++)
            x.data[i] = 2 * nerve_rng_uniform(&r) - 1;
        nerve_tensor l = nerve_value(g, nerve_model_labels(m));
        for (size_t i = 0; i < nerve_tensor_numel(&l); i++)
            l.data[i] = (float)(i % 2);
        int st = nerve_gradcheck(g, nerve_model_loss(m), 1e-2f, 1e-3f, 2e-2f);
        CHECK_MSG(st == NERVE_OK, "cfg %d: %s", c, nerve_last_error());
        nerve_model_free(m);
    }
}
