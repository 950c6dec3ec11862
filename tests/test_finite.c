/* NaN and infinity: in loaded data (a CSV value of 1e39 overflows float; a float IDX file
 * may hold NaN) they are an error naming the file and the sample; in the forward pass, one
 * the loss does not show (here a max pool that picks a finite value over -infinity) stops
 * training at the end of the epoch, naming the first node that holds it. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

static int write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fputs(text, fp);
    return fclose(fp);
}

/* The cfg's data through nerve_config_load_data; returns its status. */
static int load_cfg_data(const char *cfg_text, nerve_dataset *train)
{
    char cfg[512];
    if (write_text(tmp_path(cfg, sizeof cfg, "m.cfg"), cfg_text) != 0)
        return -100;
    nerve_model *m = nerve_model_load_cfg(cfg);
    if (!m)
        return -101;
    int st = nerve_config_load_data(nerve_model_config(m), train, NULL);
    nerve_model_free(m);
    return st;
}

TEST(csv_value_that_overflows_float_is_an_error_naming_file_and_sample)
{
    char csv[512];
    CHECK(write_text(tmp_path(csv, sizeof csv, "big.csv"),
                     "a,b,label\n1,2,0\n3,1e39,1\n5,6,0\n") == 0);
    nerve_dataset train;
    memset(&train, 0, sizeof train);
    int st = load_cfg_data("[net]\ninputs=2\ntrain_csv=big.csv\n[connected]\noutput=2\n"
                           "[softmax]\n", &train);
    CHECK(st == NERVE_ERR_NUMERIC);
    CHECK_MSG(strstr(nerve_last_error(), "big.csv: sample 1 (counting from 0, in file order), "
                                         "input value 1 (from 0) is +infinity"),
              "error: %s", nerve_last_error());
    CHECK(train.x == NULL);
}

TEST(float_idx_with_nan_is_an_error_naming_file_and_sample)
{
    /* 3 samples of 2 floats (big-endian); sample 3's first value is NaN */
    unsigned char buf[64] = {0, 0, 0x0D, 2, 0, 0, 0, 3, 0, 0, 0, 2};
    const float v[6] = {1, 2, 3, 4, NAN, 6};
    for (int i = 0; i < 6; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        for (int b = 0; b < 4; b++)
            buf[12 + 4 * i + b] = (unsigned char)(bits >> (24 - 8 * b));
    }
    char p[512];
    FILE *fp = fopen(tmp_path(p, sizeof p, "nan.idx"), "wb");
    CHECK(fp && fwrite(buf, 1, 36, fp) == 36);
    fclose(fp);
    nerve_dataset train;
    memset(&train, 0, sizeof train);
    int st = load_cfg_data("[net]\ninputs=2\nclasses=2\ntrain_images=nan.idx\n[connected]\noutput=2\n"
                           "[softmax]\n", &train);
    CHECK(st == NERVE_ERR_NUMERIC);
    CHECK_MSG(strstr(nerve_last_error(), "nan.idx: sample 2 (counting from 0, in file order), "
                                         "input value 0 (from 0) is NaN"),
              "error: %s", nerve_last_error());
}

TEST(dataset_check_finite_covers_inputs_labels_and_passes_clean_data)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 4, 1, (int[]){3}));
    for (int i = 0; i < 12; i++)
        d.x[i] = (float)i;
    int clean = nerve_dataset_check_finite(&d, "clean");
    d.x[7] = -INFINITY;
    int inf = nerve_dataset_check_finite(&d, "x.csv");
    char err[300];
    snprintf(err, sizeof err, "%s", nerve_last_error());
    d.x[7] = 0;
    d.y[1] = NAN;
    int lab = nerve_dataset_check_finite(&d, "y.idx");
    char err2[300];
    snprintf(err2, sizeof err2, "%s", nerve_last_error());
    nerve_dataset_free(&d);
    CHECK(clean == NERVE_OK);
    CHECK(inf == NERVE_ERR_NUMERIC && strstr(err, "x.csv: sample 2 (counting from 0, in file "
                                                  "order), input value 1 (from 0) is -infinity"));
    CHECK_MSG(lab == NERVE_ERR_NUMERIC && strstr(err2, "y.idx: sample 1 (counting from 0, in file order), label"),
              "%s", err2);
}

TEST(graph_check_finite_names_the_first_non_finite_node)
{
    /* y = 1e30 x: infinite where x = 1e30; the loss reads only column 1 (finite), so it
     * stays finite while the affine node holds infinity */
    nerve_graph *g = nerve_graph_create();
    CHECK(g);
    int x = nerve_input(g, "x", 2, (int[]){0, 2});
    int t = nerve_input(g, "t", 2, (int[]){0, 1});
    int y = nerve_affine(g, x, 1e30f, 0.0f);
    int s = nerve_slice(g, y, 1, 1, 2);
    int loss = nerve_mse_loss(g, s, t, 0);
    CHECK(loss >= 0);
    CHECK_OK(nerve_graph_compile(g, 2));
    float *xv = nerve_value(g, x).data, *tv = nerve_value(g, t).data;
    xv[0] = 1e-31f, xv[1] = 0, xv[2] = 1e-31f, xv[3] = 0;
    tv[0] = tv[1] = 0;
    CHECK_OK(nerve_forward(g, loss));
    int clean = nerve_graph_check_finite(g, loss);
    char err0[400];
    snprintf(err0, sizeof err0, "%s", clean ? nerve_last_error() : "");
    xv[2] = 1e30f;
    CHECK_OK(nerve_forward(g, loss));
    float l = nerve_value(g, loss).data[0];
    int st = nerve_graph_check_finite(g, loss);
    char err[400];
    snprintf(err, sizeof err, "%s", nerve_last_error());
    nerve_graph_free(g);
    CHECK_MSG(clean == NERVE_OK, "clean: %s", err0);
    CHECK(isfinite(l));
    CHECK(st == NERVE_ERR_NUMERIC);
    CHECK_MSG(strstr(err, "affine 'affine' [2, 2] holds infinity at element 2"), "error: %s", err);
}

TEST(fit_stops_when_a_forward_value_is_non_finite_though_the_loss_is_not)
{
    /* conv (weight 2) of a 2x2 image holding -3e38: -infinity at that pixel, which the 2x2
     * max pool passes over; the loss stays finite, training would go on with it */
    nerve_model *m = nerve_model_from_cfg("[net]\nheight=2\nwidth=2\nchannels=1\nbatch=2\n"
                                          "epochs=3\nlearning_rate=0.01\n"
                                          "[convolutional]\nfilters=1\nsize=1\n"
                                          "[maxpool]\nsize=2\nstride=2\n"
                                          "[connected]\noutput=2\n[softmax]\n",
                                          "m.cfg");
    CHECK(m);
    nerve_graph *g = nerve_model_graph(m);
    int w = nerve_node_find(g, "convolutional1.weight");
    CHECK(w >= 0);
    nerve_value(g, w).data[0] = 2.0f;
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 2, 3, (int[]){1, 2, 2}));
    for (int i = 0; i < 8; i++)
        d.x[i] = 1.0f;
    d.x[5] = -3e38f;
    d.y[0] = 0, d.y[1] = 1;
    d.n_classes = 2;
    nerve_fit_result res;
    int st = nerve_fit(m, &d, NULL, NULL, &res);
    char err[600];
    snprintf(err, sizeof err, "%s", nerve_last_error());
    nerve_model_free(m);
    nerve_dataset_free(&d);
    CHECK(st == NERVE_ERR_NUMERIC);
    CHECK_MSG(strstr(err, "end of epoch 1") && strstr(err, "conv 'convolutional1'") &&
                  strstr(err, "holds infinity at element"),
              "error: %s", err);
}
