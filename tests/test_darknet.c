/* darknet .weights files (src/model/darknet_weights.c, docs/darknet.md): a network whose
 * weights darknet wrote gives darknet's forward output (tests/data/darknet_reference.h,
 * from tests/darknet/gen_reference.sh with Debian's libdarknet); nerve writes the file back
 * byte for byte; short, long, non-finite and mismatched files are refused naming the layer
 * and leave the model unchanged. */
#include "test.h"

#include "data/darknet_reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

TEST(darknet_weights_refuse_a_strided_reorg_before_weights)
{
    /* nerve's space-to-depth orders channels as ONNX does, darknet's otherwise: weights after
     * it would meet other channels, so neither reading nor writing is allowed */
    const char *cfg = "[net]\nbatch=1\nchannels=2\nheight=4\nwidth=4\n"
                      "[reorg]\nstride=2\n[convolutional]\nfilters=3\nsize=1\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "r.cfg");
    CHECK(m);
    char path[600];
    snprintf(path, sizeof path, "%s/r.weights", test_tmpdir());
    CHECK(nerve_model_save_darknet(m, path, 0) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "layer 0 [reorg] (line 6)") && strstr(nerve_last_error(), "not supported yet"));
    unsigned char file[20 + 3 * 4 + 3 * 8 * 4];
    memset(file, 0, sizeof file);
    file[4] = 2; /* version 0.2.0 */
    int64_t seen = 0;
    CHECK(nerve_model_read_darknet(m, file, sizeof file, &seen) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "[reorg]"));
    nerve_model_free(m);
    /* stride 1 is the identity in both: allowed */
    const char *id = "[net]\nbatch=1\nchannels=2\nheight=4\nwidth=4\n"
                     "[reorg]\nstride=1\n[convolutional]\nfilters=3\nsize=1\n";
    CHECK((m = nerve_model_from_cfg(id, "i.cfg")) != NULL);
    CHECK_OK(nerve_model_save_darknet(m, path, 0));
    nerve_model_free(m);
}
