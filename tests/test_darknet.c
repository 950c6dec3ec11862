/* darknet .weights files (src/model/darknet_weights.c, docs/darknet.md): a network whose
 * weights darknet wrote gives darknet's forward output (tests/data/darknet_reference.h,
 * from tests/darknet/gen_reference.sh with Debian's libdarknet); nerve writes the file back
 * byte for byte; short, long, non-finite and mismatched files are refused naming the layer
 * and leave the model unchanged. */
#include "test.h"

#include "../src/model/model.h"

#include "data/darknet_reference.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMALL_CFG "tests/data/darknet/small.cfg"
#define SMALL_WEIGHTS "tests/data/darknet/small.weights"

static nerve_model *small_model(void)
{
    nerve_model *m = nerve_model_load_cfg(SMALL_CFG);
    if (!m)
        test_fail(__FILE__, __LINE__, "%s", nerve_last_error());
    return m;
}

TEST(darknet_weights_written_by_darknet_give_darknets_output)
{
    nerve_model *m = small_model();
    if (!m)
        return;
    CHECK_OK(nerve_model_load_darknet(m, SMALL_WEIGHTS));
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_training(g, 0);
    memcpy(nerve_value(g, nerve_model_input(m)).data, darknet_small_input,
           sizeof darknet_small_input);
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    const float *z = nerve_value(g, nerve_model_output(m)).data; /* logits: softmax here */
    float p[5], mx = z[0], sum = 0;
    for (int i = 1; i < 5; i++)
        mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < 5; i++)
        sum += p[i] = expf(z[i] - mx);
    for (int i = 0; i < 5; i++)
        p[i] /= sum;
    CHECK_ARRAY_NEAR(p, darknet_small_output, 5, 1e-4);
    nerve_model_free(m);
}

/* cfg's model with darknet's NAME.weights at batch `batch` over `steps` steps: darknet's
 * input and output are time-major ([T][N][F]), nerve's batch-major; softmax rows of `k` */
static void check_against_darknet(const char *name, int batch, int steps, const float *in,
                                  size_t n_in, const float *want, size_t n_out, int k)
{
    char cfg[256], weights[256];
    snprintf(cfg, sizeof cfg, "tests/data/darknet/%s.cfg", name);
    snprintf(weights, sizeof weights, "tests/data/darknet/%s.weights", name);
    nerve_model *m = nerve_model_load_cfg(cfg);
    CHECK_MSG(m != NULL, "%s", nerve_last_error());
    if (!m)
        return;
    CHECK_OK(nerve_model_load_darknet(m, weights));
    CHECK_OK(nerve_model_compile(m, batch));
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_training(g, 0);
    nerve_tensor x = nerve_value(g, nerve_model_input(m));
    CHECK(nerve_tensor_numel(&x) == n_in);
    size_t f = n_in / (size_t)(batch * steps), rows = n_out / (size_t)k;
    for (int t = 0; t < steps; t++)
        for (int b = 0; b < batch; b++)
            memcpy(x.data + ((size_t)b * steps + t) * f, in + ((size_t)t * batch + b) * f,
                   f * sizeof *in);
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    nerve_tensor y = nerve_value(g, nerve_model_output(m));
    CHECK(nerve_tensor_numel(&y) == n_out);
    float *p = malloc(n_out * sizeof *p);
    for (size_t r = 0; r < rows; r++) { /* nerve's row r = (b, t) is darknet's (t, b) */
        size_t b = r / (size_t)steps, t = r % (size_t)steps;
        const float *z = y.data + r * (size_t)k;
        float *q = p + (t * (size_t)batch + b) * (size_t)k, mx = z[0], sum = 0;
        for (int i = 1; i < k; i++)
            mx = z[i] > mx ? z[i] : mx;
        for (int i = 0; i < k; i++)
            sum += q[i] = expf(z[i] - mx);
        for (int i = 0; i < k; i++)
            q[i] /= sum;
    }
    CHECK_ARRAY_NEAR(p, want, n_out, 1e-4);
    free(p);
    nerve_model_free(m);
}

TEST(darknet_reorg_weights_written_by_darknet_give_darknets_output)
{
    check_against_darknet("reorg", 1, 1, darknet_reorg_input, 256, darknet_reorg_output, 5, 5);
}

TEST(darknet_rnn_weights_written_by_darknet_give_darknets_output)
{
    /* two [rnn] (batch norm and leaky; logistic with shortcut=1), 2 sequences of 3 steps */
    check_against_darknet("rnn", 2, 3, darknet_rnn_input, 36, darknet_rnn_output, 18, 3);
}

TEST(darknet_gru_weights_written_by_darknet_give_darknets_output)
{
    /* two [gru] (batch norm; tanh=1), 2 sequences of 3 steps */
    check_against_darknet("gru", 2, 3, darknet_gru_input, 36, darknet_gru_output, 18, 3);
}

TEST(darknet_tree_softmax_weights_written_by_darknet_give_darknets_output)
{
    /* [softmax] tree=small.tree (read beside the cfg): a softmax per group of 3, 2, 3 and 2 */
    nerve_model *m = nerve_model_load_cfg("tests/data/darknet/tree.cfg");
    CHECK_MSG(m != NULL, "%s", nerve_last_error());
    if (!m)
        return;
    CHECK_OK(nerve_model_load_darknet(m, "tests/data/darknet/tree.weights"));
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    nerve_graph_set_training(g, 0);
    memcpy(nerve_value(g, nerve_model_input(m)).data, darknet_tree_input,
           sizeof darknet_tree_input);
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    const float *p = nerve_value(g, nerve_model_output(m)).data; /* probabilities */
    CHECK_ARRAY_NEAR(p, darknet_tree_output, 10, 1e-4);
    CHECK_NEAR(p[3] + p[4], 1.0, 1e-5);
    /* training with a tree is refused, naming the line */
    float x[6] = {0}, y[1] = {0};
    nerve_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = 1;
    ds.ndim = 1;
    ds.dims[0] = 6;
    ds.sample_numel = 6;
    ds.x = x;
    ds.y = y;
    ds.n_classes = 10;
    CHECK(nerve_fit(m, &ds, NULL, NULL, NULL) == NERVE_ERR_STATE);
    CHECK(strstr(nerve_last_error(), "tree.cfg:13: [softmax] tree="));
    nerve_model_free(m);
    /* a missing tree file names the cfg line and where it looked */
    CHECK(!nerve_model_from_cfg("[net]\ninputs=4\n[connected]\noutput=3\n[softmax]\n"
                                "tree=no-such.tree\n", "t.cfg"));
    CHECK(strstr(nerve_last_error(), "t.cfg:6: tree = no-such.tree: no such file"));
    /* a tree of another size */
    CHECK(!nerve_model_from_cfg("[net]\ninputs=4\n[connected]\noutput=3\n[softmax]\n"
                                "tree=small.tree\n", "tests/data/darknet/t.cfg"));
    CHECK(strstr(nerve_last_error(), "has 10 classes but the layer has 3 scores"));
}

TEST(darknet_region_tree_and_map_build_and_refuse_detection_naming_the_line)
{
    const char *cfg = "[net]\nwidth=8\nheight=8\nchannels=3\n"
                      "[convolutional]\nfilters=15\nsize=1\n"
                      "[region]\nanchors=1,1\nclasses=10\nnum=1\nsoftmax=1\n"
                      "tree=small.tree\nmap=small.map\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "tests/data/darknet/r.cfg");
    CHECK_MSG(m != NULL, "%s", nerve_last_error());
    if (!m)
        return;
    float x[3 * 8 * 8] = {0};
    nerve_detection d[4];
    CHECK(nerve_yolo_detect(m, x, 8, 8, 0.5f, 0.45f, d, 4) == NERVE_ERR_STATE);
    CHECK(strstr(nerve_last_error(), "r.cfg:13: [region] tree="));
    nerve_model_free(m);
    /* a map entry outside the tree */
    char bad[512];
    snprintf(bad, sizeof bad, "%s", cfg);
    *strstr(bad, "classes=10") = 0;
    strcat(bad, "classes=10\nnum=1\ntree=small.tree\nmap=small.tree\n");
    CHECK(!nerve_model_from_cfg(bad, "tests/data/darknet/r.cfg"));
    CHECK(strstr(nerve_last_error(), "r.cfg:13: map = small.tree, line 1: expected one class number"));
}

TEST(darknet_tree_parser_takes_darknets_groups_and_refuses_the_rest)
{
    darknet_tree t;
    const char *ok = "a -1\nb -1\na1 0\na2 0\nb1 1\na11 2\r\n";
    CHECK_OK(darknet_tree_parse(ok, strlen(ok), "ok.tree", &t));
    CHECK(t.n == 6 && t.groups == 4);
    CHECK(t.group_offset[0] == 0 && t.group_size[0] == 2 && t.group_offset[1] == 2 &&
          t.group_size[1] == 2 && t.group_size[2] == 1 && t.group_offset[3] == 5);
    darknet_tree_free(&t);
    static const char *const bad[] = {"a 0\n", "a -1\nb 2\n", "a\n", "a -1 x\n", " -1\n",
                                      "a -1\n\n", "a 99999999999999999999\n", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(darknet_tree_parse(bad[i], strlen(bad[i]), "bad.tree", &t) == NERVE_ERR_FORMAT,
                  "case %zu", i);
        CHECK(strstr(nerve_last_error(), "bad.tree"));
        CHECK(t.n == 0 && !t.parent);
    }
}

TEST(darknet_rnn_gru_reorg_weights_round_trip_byte_for_byte)
{
    static const char *const names[] = {"reorg", "rnn", "gru"};
    for (int i = 0; i < 3; i++) {
        char cfg[256], weights[256], path[600];
        snprintf(cfg, sizeof cfg, "tests/data/darknet/%s.cfg", names[i]);
        snprintf(weights, sizeof weights, "tests/data/darknet/%s.weights", names[i]);
        snprintf(path, sizeof path, "%s/%s.weights", test_tmpdir(), names[i]);
        nerve_model *m = nerve_model_load_cfg(cfg);
        CHECK(m);
        if (!m)
            continue;
        CHECK_OK(nerve_model_load_darknet(m, weights));
        CHECK_OK(nerve_model_save_darknet(m, path, 0));
        size_t a = 0, b = 0;
        char *orig = test_read_file(weights, &a), *copy = test_read_file(path, &b);
        CHECK(orig && copy && a == b && a > 20 && memcmp(orig, copy, a) == 0);
        free(orig);
        free(copy);
        nerve_model_free(m);
    }
}

TEST(darknet_weights_round_trip_byte_for_byte)
{
    nerve_model *m = small_model();
    if (!m)
        return;
    CHECK_OK(nerve_model_load_darknet(m, SMALL_WEIGHTS));
    char path[256];
    snprintf(path, sizeof path, "%s/copy.weights", test_tmpdir());
    CHECK_OK(nerve_model_save_darknet(m, path, 0));
    size_t a = 0, b = 0;
    char *orig = test_read_file(SMALL_WEIGHTS, &a), *copy = test_read_file(path, &b);
    CHECK(orig && copy && a == b && a == 16656 && memcmp(orig, copy, a) == 0);
    free(orig);
    free(copy);
    nerve_model_free(m);
}

static float first_weight(nerve_model *m)
{
    nerve_graph *g = nerve_model_graph(m);
    return nerve_value(g, nerve_node_find(g, "convolutional1.weight")).data[0];
}

TEST(darknet_weights_refuse_other_files_and_change_nothing)
{
    nerve_model *m = small_model();
    if (!m)
        return;
    size_t len = 0;
    unsigned char *buf = (unsigned char *)test_read_file(SMALL_WEIGHTS, &len);
    CHECK(buf && len == 16656);
    if (!buf) {
        nerve_model_free(m);
        return;
    }
    float before = first_weight(m);
    /* one float short: the last layer ends early */
    CHECK(nerve_model_read_darknet(m, buf, len - 4, NULL) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "layer 9") && strstr(nerve_last_error(), "another cfg"));
    CHECK(first_weight(m) == before);
    /* a float too many */
    unsigned char *longer = malloc(len + 4);
    memcpy(longer, buf, len);
    memset(longer + len, 0, 4);
    CHECK(nerve_model_read_darknet(m, longer, len + 4, NULL) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "4 bytes after the last layer"));
    free(longer);
    /* a NaN in the last layer's weights: refused, nothing copied */
    unsigned char saved[4];
    memcpy(saved, buf + len - 4, 4);
    const unsigned char nan_le[4] = {0, 0, 0xc0, 0x7f};
    memcpy(buf + len - 4, nan_le, 4);
    CHECK(nerve_model_read_darknet(m, buf, len, NULL) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "connected10") && strstr(nerve_last_error(), "nan"));
    CHECK(first_weight(m) == before);
    memcpy(buf + len - 4, saved, 4);
    /* header: version 0.1 keeps seen in 32 bits (4 bytes fewer) */
    int64_t seen = -1;
    unsigned char *old = malloc(len - 4);
    memcpy(old, buf, 12);
    memset(old + 4, 0, 4);   /* minor 0: major*10 + minor < 2 */
    memcpy(old + 12, buf + 12, 4);
    memcpy(old + 16, buf + 20, len - 20);
    CHECK_OK(nerve_model_read_darknet(m, old, len - 4, &seen));
    CHECK(seen == 0);
    CHECK(first_weight(m) != before);
    free(old);
    /* too short for a header (version 0.2 takes 20 bytes) */
    CHECK(nerve_model_read_darknet(m, buf, 10, NULL) == NERVE_ERR_FORMAT);
    CHECK(nerve_model_read_darknet(m, buf, 18, NULL) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "takes 20"));
    free(buf);
    nerve_model_free(m);
    /* a layer darknet's file has no place for */
    m = nerve_model_from_cfg("[net]\ninputs=4\n[prelu]\n[connected]\noutput=2\n", "p.cfg");
    CHECK(m != NULL);
    if (m) {
        unsigned char h[20] = {0, 0, 0, 0, 2};
        CHECK(nerve_model_read_darknet(m, h, sizeof h, NULL) == NERVE_ERR_ARG);
        CHECK(strstr(nerve_last_error(), "prelu"));
        nerve_model_free(m);
    }
}

/* Connected weights of a file whose major or minor version is above 1000 are stored
 * [inputs x outputs] (darknet transposes them when it reads such a file). */
TEST(darknet_weights_transpose_old_connected_layouts)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=3\n[connected]\noutput=2\n", "t.cfg");
    CHECK(m != NULL);
    if (!m)
        return;
    float file[5 + 2 + 6] = {0};
    int32_t head[3] = {0, 1001, 0};
    memcpy(file, head, sizeof head); /* version 0.1001: seen in 32 bits */
    float *body = file + 4;          /* 12 + 4 bytes of header */
    body[0] = 0.5f, body[1] = -0.5f; /* biases */
    for (int i = 0; i < 6; i++)
        body[2 + i] = (float)i; /* [in][out]: w[o][i] = file[i * 2 + o] */
    CHECK_OK(nerve_model_read_darknet(m, file, (4 + 8) * sizeof(float), NULL));
    nerve_graph *g = nerve_model_graph(m);
    const float *w = nerve_value(g, nerve_node_find(g, "connected1.weight")).data;
    const float want[6] = {0, 2, 4, 1, 3, 5};
    CHECK_ARRAY_NEAR(w, want, 6, 0);
    nerve_model_free(m);
}

/* darknet's reorg_cpu(x, w, h, c, batch, stride, forward, out) as its layer calls it: the
 * index of the C x H x W element (k, j, i) and of its partner in the same numbers read as
 * C/s^2 x H*s x W*s */
static void darknet_reorg(const float *x, int c, int h, int w, int s, int reverse, float *out)
{
    int oc = c / (s * s);
    for (int k = 0; k < c; k++)
        for (int j = 0; j < h; j++)
            for (int i = 0; i < w; i++) {
                int in = i + w * (j + h * k), off = k / oc;
                int w2 = i * s + off % s, h2 = j * s + off / s;
                int o = w2 + w * s * (h2 + h * s * (k % oc));
                if (reverse)
                    out[o] = x[in];
                else
                    out[in] = x[o];
            }
}

TEST(darknet_reorg_orders_elements_as_darknet)
{
    /* [reorg] stride=2 of 8 x 4 x 6, then reverse=1 of its 32 x 2 x 3 output (which is not
     * its inverse in darknet: the two read the numbers with other shapes) */
    const char *cfg = "[net]\nbatch=1\nchannels=8\nheight=4\nwidth=6\n"
                      "[reorg]\nstride=2\n[reorg]\nstride=2\nreverse=1\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "r.cfg");
    CHECK(m);
    if (!m)
        return;
    nerve_layer_info a, b;
    CHECK_OK(nerve_model_layer_info(m, 0, &a));
    CHECK_OK(nerve_model_layer_info(m, 1, &b));
    CHECK(a.ndim == 3 && a.dims[0] == 32 && a.dims[1] == 2 && a.dims[2] == 3);
    CHECK(b.ndim == 3 && b.dims[0] == 8 && b.dims[1] == 4 && b.dims[2] == 6);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph *g = nerve_model_graph(m);
    float x[192], mid[192], want[192];
    for (int i = 0; i < 192; i++)
        x[i] = (float)i;
    memcpy(nerve_value(g, nerve_model_input(m)).data, x, sizeof x);
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    darknet_reorg(x, 8, 4, 6, 2, 0, mid);
    darknet_reorg(mid, 32, 2, 3, 2, 1, want);
    CHECK_ARRAY_NEAR(nerve_value(g, nerve_model_output(m)).data, want, 192, 0);
    int first = nerve_node_find(g, a.name);
    CHECK(first >= 0);
    if (first >= 0)
        CHECK_ARRAY_NEAR(nerve_value(g, first).data, mid, 192, 0);
    nerve_model_free(m);
    /* channels that do not split into stride^2 groups: an error naming the line */
    CHECK(!nerve_model_from_cfg("[net]\nbatch=1\nchannels=3\nheight=4\nwidth=4\n"
                                "[reorg]\nstride=2\n", "odd.cfg"));
    CHECK(strstr(nerve_last_error(), "odd.cfg:6:") && strstr(nerve_last_error(), "divisible by 4"));
}

/* nerve convert: darknet weights to a checkpoint and to ONNX with --cfg, and back to .weights
 * byte for byte; a .weights input without --cfg, or with the cfg of another network, is
 * refused naming the file. */
TEST(cli_convert_darknet_weights_both_ways_byte_for_byte)
{
    char cwd[PATH_MAX], dir[PATH_MAX + 32], cmd[4 * PATH_MAX], text[8192], out[700];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(dir, sizeof dir, "%s/tests/data/darknet", cwd);
    const char *t = test_tmpdir(), *nerve = test_nerve();
    static const char *const names[] = {"small", "reorg", "rnn"};
    static const char *const via[] = {"safetensors", "onnx", "onnx"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s convert %s/%s.weights %s/%s.%s --cfg %s/%s.cfg", nerve, dir, names[i], t,
                 names[i], via[i], dir, names[i]);
        CHECK_MSG(test_run(cmd, text, sizeof text) == 0, "%s\n%s", cmd, text);
        snprintf(cmd, sizeof cmd, "%s convert %s/%s.%s %s/%s.back.weights", nerve, t, names[i], via[i], t,
                 names[i]);
        CHECK_MSG(test_run(cmd, text, sizeof text) == 0, "%s\n%s", cmd, text);
        char orig_path[PATH_MAX + 80];
        snprintf(orig_path, sizeof orig_path, "%s/%s.weights", dir, names[i]);
        snprintf(out, sizeof out, "%s/%s.back.weights", t, names[i]);
        size_t a = 0, b = 0;
        char *orig = test_read_file(orig_path, &a), *copy = test_read_file(out, &b);
        CHECK_MSG(orig && copy && a == b && a > 20 && memcmp(orig, copy, a) == 0, "%s: %zu and %zu bytes",
                  names[i], a, b);
        free(orig);
        free(copy);
    }
    snprintf(cmd, sizeof cmd, "%s convert %s/small.weights %s/x.safetensors", nerve, dir, t);
    CHECK(test_run(cmd, text, sizeof text) == 2);
    CHECK_MSG(strstr(text, "small.weights") && strstr(text, "--cfg"), "%s", text);
    snprintf(cmd, sizeof cmd, "%s convert %s/small.weights %s/x.safetensors --cfg %s/rnn.cfg", nerve, dir, t, dir);
    CHECK(test_run(cmd, text, sizeof text) == 1);
    CHECK_MSG(strstr(text, "small.weights") && strstr(text, "another cfg"), "%s", text);
    snprintf(cmd, sizeof cmd, "%s convert %s/small.safetensors %s/x.onnx --cfg %s/small.cfg", nerve, t, t, dir);
    CHECK(test_run(cmd, text, sizeof text) == 2);
}
