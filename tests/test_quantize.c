/* nerve_model_quantize and int8 checkpoints (docs/quantize.md): a quantised CNN and MLP
 * follow their float models within a few quantisation steps; every kernel path gives the
 * same outputs bit for bit; the int8 checkpoint reloads to the same outputs bit for bit,
 * carries I8 weights and nerve.quantized, and every route into training refuses it. */
#include "../src/kernels/kernels.h"
#include "../src/ops/ops.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char *const cnn_cfg =
    "[net]\nheight=10\nwidth=10\nchannels=2\nnormalize=1\nclasses=4\nbatch=8\n"
    "[convolutional]\nfilters=5\nsize=3\npad=1\nactivation=relu\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=17\nsize=3\nstride=2\nactivation=leaky\n"
    "[connected]\noutput=20\nactivation=relu\n"
    "[connected]\noutput=4\n[softmax]\n";

static const char *const mlp_cfg =
    "[net]\ninputs=30\nclasses=3\nbatch=16\n"
    "[connected]\noutput=40\nactivation=relu\n"
    "[connected]\noutput=33\nactivation=tanh\n"
    "[connected]\noutput=3\n[softmax]\n";

/* Convolutions with batch norms (folded into them at quantisation), a ReLU, a pool and a
 * leaky activation between them, a dense head. */
static const char *const bn_cfg =
    "[net]\nheight=10\nwidth=10\nchannels=2\nnormalize=1\nclasses=4\nbatch=8\n"
    "[convolutional]\nfilters=6\nsize=3\npad=1\nbatch_normalize=1\nactivation=relu\n"
    "[convolutional]\nfilters=7\nsize=3\npad=1\nbatch_normalize=1\nactivation=relu\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=5\nsize=3\nstride=2\nbatch_normalize=1\nactivation=leaky\n"
    "[connected]\noutput=4\n[softmax]\n";

/* Residual blocks (docs/quantize.md): a stem, a block whose shortcut is the identity and a
 * strided one with a projection (1x1/2 convolution and batch norm), ReLUs after the adds,
 * a global average pool and a dense head. The adds run in int8; bytes reach them from both
 * sides and leave the first one for both readers of its output. */
static const char *const res_cfg =
    "[net]\nheight=10\nwidth=10\nchannels=2\nnormalize=1\nclasses=4\nbatch=8\n"
    "[convolutional]\nfilters=6\nsize=3\npad=1\nbatch_normalize=1\nactivation=relu\n"
    "[convolutional]\nfilters=6\nsize=3\npad=1\nbatch_normalize=1\nactivation=relu\n"
    "[convolutional]\nfilters=6\nsize=3\npad=1\nbatch_normalize=1\nactivation=linear\n"
    "[shortcut]\nfrom=-3\nactivation=relu\n"
    "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=relu\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=linear\n"
    "[shortcut]\nfrom=-3\nactivation=relu\nproject=1\nbatch_normalize=1\n"
    "[avgpool]\n[connected]\noutput=4\n[softmax]\n";

static int ends_with(const char *s, const char *end)
{
    size_t a = strlen(s), b = strlen(end);
    return a >= b && !strcmp(s + a - b, end);
}

/* Batch norm statistics and affine parameters away from the identity (a fresh model's). */
static void randomise_bn(nerve_graph *g)
{
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    for (int id = 0; id < nerve_node_count(g); id++) {
        const char *name = nerve_node_name(g, id);
        if (!strstr(name, ".bn."))
            continue;
        nerve_tensor t = nerve_value(g, id);
        for (size_t i = 0; i < nerve_tensor_numel(&t); i++) {
            float u = nerve_rng_uniform(&r);
            t.data[i] = ends_with(name, "running_var") ? 0.3f + 2 * u
                        : ends_with(name, "weight")    ? 2 * u - 0.5f
                                                       : u - 0.5f;
        }
    }
}

/* n samples of uniform noise in [-0.5, 1.5), labels cycling through the classes; the batch
 * norms, if any, randomised. */
static int make_data(nerve_model *m, int n, nerve_dataset *d)
{
    nerve_graph *g = nerve_model_graph(m);
    randomise_bn(g);
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, nerve_model_input(m), &nd, dims) != NERVE_OK ||
        nerve_dataset_alloc(d, n, nd - 1, dims + 1) != NERVE_OK)
        return -1;
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    for (size_t i = 0; i < (size_t)n * d->sample_numel; i++)
        d->x[i] = nerve_rng_uniform(&r) * 2 - 0.5f;
    return 0;
}

static size_t out_numel(nerve_model *m)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph(m), nerve_model_output(m), &nd, dims);
    return nerve_shape_numel(nd - 1, dims + 1);
}

/* Quantises cfg on its own data and checks it against float, across paths and through a
 * checkpoint. */
static void check_quantized(const char *cfg, int n, double tol)
{
    nerve_model *m = nerve_model_from_cfg(cfg, "q.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 0));
    nerve_dataset d = {0};
    CHECK(make_data(m, n, &d) == 0);
    size_t k = out_numel(m), total = (size_t)n * k;
    float *want = malloc(total * sizeof(float)), *got = malloc(total * sizeof(float)),
          *ref = malloc(total * sizeof(float));
    CHECK(want && got && ref);
    CHECK_OK(nerve_predict_outputs(m, &d, want, NULL));
    CHECK(nerve_model_quantized(m) == 0);
    nerve_quantize_info qi;
    CHECK_OK(nerve_model_quantize(m, &d, 3, &qi));
    CHECK(qi.nodes + qi.adds == nerve_model_quantized(m) && qi.nodes >= 3);
    CHECK(qi.samples > 0);
    /* the reference: the portable path */
    CHECK(kern_set_isa("portable"));
    CHECK_OK(nerve_predict_outputs(m, &d, ref, NULL));
    double worst = 0;
    for (size_t i = 0; i < total; i++)
        worst = fabs(ref[i] - want[i]) > worst ? fabs(ref[i] - want[i]) : worst;
    CHECK_MSG(worst <= tol, "int8 probabilities differ from float by %g (tolerance %g)", worst,
              tol);
    CHECK_MSG(worst > 0, "int8 outputs equal float ones exactly: nothing was quantised?");
    static const char *const isas[] = {"avx2", "avx512", "auto"};
    for (size_t p = 0; p < sizeof isas / sizeof *isas; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        CHECK_OK(nerve_predict_outputs(m, &d, got, NULL));
        CHECK_MSG(!memcmp(got, ref, total * sizeof(float)),
                  "path %s (int8 %s) differs from the portable one", isas[p], kern_q8_path());
    }
    /* on one thread and on several: the same bytes */
    nerve_set_threads(1);
    CHECK_OK(nerve_predict_outputs(m, &d, got, NULL));
    nerve_set_threads(0);
    CHECK(!memcmp(got, ref, total * sizeof(float)));
    /* the int8 checkpoint */
    char path[1024];
    snprintf(path, sizeof path, "%s/q.safetensors", test_tmpdir());
    CHECK_OK(nerve_model_save(m, path));
    nerve_model *back = nerve_model_load(path);
    CHECK(back != NULL);
    CHECK(nerve_model_quantized(back) == qi.nodes + qi.adds);
    CHECK_OK(nerve_predict_outputs(back, &d, got, NULL));
    CHECK_MSG(!memcmp(got, ref, total * sizeof(float)), "the reloaded int8 model differs");
    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL);
    CHECK(nerve_st_metadata(f, "nerve.quantized") != NULL);
    nerve_st_close(f);
    /* nothing trains from it */
    nerve_model *fresh = nerve_model_from_cfg(cfg, "q.cfg");
    CHECK(fresh != NULL);
    CHECK(nerve_model_load_weights(fresh, path, 1) != NERVE_OK);
    CHECK_MSG(strstr(nerve_last_error(), "int8 checkpoint"), "message: %s", nerve_last_error());
    int loaded = 0, skipped = 0;
    CHECK(nerve_model_load_matching(fresh, path, 1, &loaded, &skipped) != NERVE_OK);
    CHECK(strstr(nerve_last_error(), "int8 checkpoint"));
    for (int i = 0; i < d.n; i++)
        d.y[i] = (float)(i % 3);
    d.n_classes = 3;
    nerve_fit_options fo = {0};
    fo.max_epochs = 1;
    CHECK(nerve_fit(back, &d, NULL, &fo, NULL) != NERVE_OK);
    CHECK(strstr(nerve_last_error(), "int8"));
    CHECK(nerve_model_quantize(back, &d, 1, NULL) != NERVE_OK);
    nerve_model_free(fresh);
    nerve_model_free(back);
    free(want);
    free(got);
    free(ref);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

TEST(quantize_cnn_follows_float_on_every_path)
{
    check_quantized(cnn_cfg, 37, 0.08);
}

TEST(quantize_bn_cnn_follows_float_on_every_path)
{
    check_quantized(bn_cfg, 37, 0.08);
}

TEST(quantize_residual_cnn_follows_float_on_every_path)
{
    check_quantized(res_cfg, 37, 0.08);
}

/* Residual adds in int8: both inputs as bytes (one through an identity batch norm, one
 * through a projection), the first add's bytes read by two convolutions and the second's by
 * the next add: outputs bit for bit those of the float route between the int8 nodes, on
 * every path and thread count; a checkpoint of another int8 version is refused. */
TEST(quantize_residual_adds_run_in_int8_and_link)
{
    nerve_model *m = nerve_model_from_cfg(res_cfg, "q.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 0));
    nerve_dataset d = {0};
    CHECK(make_data(m, 29, &d) == 0);
    nerve_graph *g = nerve_model_graph(m);
    nerve_quantize_info qi;
    CHECK_OK(nerve_model_quantize(m, &d, 2, &qi));
    CHECK_MSG(qi.nodes == 7 && qi.adds == 2 && qi.folded == 6, "%d nodes, %d adds, %d folded",
              qi.nodes, qi.adds, qi.folded);
    int adds = 0;
    for (int id = 0; id < nerve_node_count(g); id++) {
        const char *op = nerve_node_op(g, id);
        adds += op && !strcmp(op, "qadd");
        CHECK(!op || strcmp(op, "add"));
    }
    CHECK(adds == 2);
    nerve_graph_set_training(g, 0); /* links pass through batch norms in evaluation only */
    size_t k = out_numel(m), total = (size_t)d.n * k;
    float *ref = malloc(total * sizeof(float)), *got = malloc(total * sizeof(float));
    CHECK(ref && got);
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    for (size_t p = 0; p < sizeof isas / sizeof *isas; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            nerve_set_threads(threads);
            CHECK(op_quant_links(g, 0) == 0);
            CHECK_OK(nerve_predict_outputs(m, &d, ref, NULL));
            /* stem, block 1's convolutions and add, block 2's convolutions and projection */
            CHECK_MSG(op_quant_links(g, 1) == 7, "%d links", op_quant_links(g, 1));
            CHECK_OK(nerve_predict_outputs(m, &d, got, NULL));
            CHECK_MSG(!memcmp(got, ref, total * sizeof(float)),
                      "path %s, %d threads: bytes through the adds change the outputs", isas[p],
                      threads);
        }
    }
    nerve_set_threads(0);
    kern_set_isa("auto");
    /* the checkpoint says int8-3; one that says int8-2 with an int8 add is refused */
    char path[1024], bad[1024];
    snprintf(path, sizeof path, "%s/qres.safetensors", test_tmpdir());
    snprintf(bad, sizeof bad, "%s/qres2.safetensors", test_tmpdir());
    CHECK_OK(nerve_model_save(m, path));
    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL);
    CHECK(!strcmp(nerve_st_metadata(f, "nerve.quantized"), "int8-3"));
    nerve_st_writer *w = nerve_st_writer_create();
    CHECK(w != NULL);
    for (int i = 0; i < nerve_st_count(f); i++) {
        int nd, dims[NERVE_MAX_DIMS];
        CHECK_OK(nerve_st_shape(f, i, &nd, dims));
        size_t n = nerve_shape_numel(nd, dims);
        float *v = malloc((n ? n : 1) * sizeof(float));
        CHECK(v != NULL);
        CHECK_OK(nerve_st_read(f, i, v, n));
        CHECK_OK(nerve_st_writer_add(w, nerve_st_name(f, i), nd, dims, v));
        free(v);
    }
    CHECK_OK(nerve_st_writer_meta(w, "nerve.quantized", "int8-2"));
    CHECK_OK(nerve_st_writer_meta(w, "nerve.cfg", nerve_st_metadata(f, "nerve.cfg")));
    nerve_st_close(f);
    CHECK_OK(nerve_st_writer_save(w, bad));
    nerve_st_writer_free(w);
    CHECK(nerve_model_load(bad) == NULL);
    CHECK_MSG(strstr(nerve_last_error(), "int8-3"), "message: %s", nerve_last_error());
    free(ref);
    free(got);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

TEST(quantize_mlp_follows_float_on_every_path)
{
    check_quantized(mlp_cfg, 50, 0.08);
}

/* A file claiming int8 with weights that are not int8 values is refused, naming them. */
TEST(quantize_checkpoint_with_bad_weights_is_refused)
{
    nerve_model *m = nerve_model_from_cfg(mlp_cfg, "q.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 0));
    nerve_dataset d = {0};
    CHECK(make_data(m, 20, &d) == 0);
    CHECK_OK(nerve_model_quantize(m, &d, 1, NULL));
    char path[1024];
    snprintf(path, sizeof path, "%s/q.safetensors", test_tmpdir());
    /* rewrite the checkpoint with its first weight holding 0.5 */
    CHECK_OK(nerve_model_save(m, path));
    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL);
    nerve_st_writer *w = nerve_st_writer_create();
    int changed = 0;
    for (int i = 0; i < nerve_st_count(f); i++) {
        int nd, dims[NERVE_MAX_DIMS];
        CHECK_OK(nerve_st_shape(f, i, &nd, dims));
        size_t n = nerve_shape_numel(nd, dims);
        float *v = malloc((n ? n : 1) * sizeof(float));
        CHECK_OK(nerve_st_read(f, i, v, n));
        const char *name = nerve_st_name(f, i);
        if (!changed && strstr(name, "weight") && !strstr(name, "quant.")) {
            v[0] = 0.5f;
            changed = 1;
        }
        CHECK_OK(nerve_st_writer_add(w, name, nd, dims, v));
        free(v);
    }
    CHECK(changed);
    CHECK_OK(nerve_st_writer_meta(w, "nerve.cfg", nerve_st_metadata(f, "nerve.cfg")));
    CHECK_OK(nerve_st_writer_meta(w, "nerve.quantized", nerve_st_metadata(f, "nerve.quantized")));
    nerve_st_close(f);
    CHECK_OK(nerve_st_writer_save(w, path));
    nerve_st_writer_free(w);
    CHECK(nerve_model_load(path) == NULL);
    CHECK_MSG(strstr(nerve_last_error(), "not an int8 weight"), "message: %s", nerve_last_error());
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

/* ---- nerve export-c of an int8 model ---------------------------------------------------- */

#include <sys/wait.h>

static int sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Exports m (int8) as NAME, compiles it with a driver (-std=c99 -Wall -Wextra -Werror),
 * runs d's samples through it and reads the outputs into got. */
static int export_run(nerve_model *m, const char *name, const nerve_dataset *d, float *got,
                      size_t out_numel)
{
    const char *dir = test_tmpdir();
    nerve_export_c_info info;
    if (nerve_export_c(m, dir, name, &info) != NERVE_OK)
        return -1;
    char path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/drv_%s.c", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "#include \"%s.h\"\n#include <stdio.h>\nint main(int argc, char **argv)\n{\n"
               "    static float in[%zu], out[%zu];\n    FILE *a, *b;\n    if (argc != 3) return 2;\n"
               "    a = fopen(argv[1], \"rb\"); b = fopen(argv[2], \"wb\");\n    if (!a || !b) return 1;\n"
               "    while (fread(in, sizeof(float), %zu, a) == %zu) {\n        %s_run(in, out);\n"
               "        if (fwrite(out, sizeof(float), %zu, b) != %zu) return 1;\n    }\n"
               "    fclose(a);\n    return fclose(b) ? 1 : 0;\n}\n",
            name, info.in_numel, info.out_numel, info.in_numel, info.in_numel, name, info.out_numel,
            info.out_numel);
    fclose(f);
    if (info.out_numel != out_numel || info.in_numel != d->sample_numel)
        return -1;
    snprintf(cmd, sizeof cmd, "cd %s && cc -std=c99 -Wall -Wextra -Werror -O1 -o run_%s drv_%s.c %s.c -lm",
             dir, name, name, name);
    if (sh(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/in_%s.bin", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(d->x, sizeof(float), (size_t)d->n * d->sample_numel, f) != (size_t)d->n * d->sample_numel)
        return -1;
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/run_%s %s/in_%s.bin %s/out_%s.bin", dir, name, dir, name, dir, name);
    if (sh(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/out_%s.bin", dir, name);
    f = fopen(path, "rb");
    size_t got_n = f ? fread(got, sizeof(float), (size_t)d->n * out_numel, f) : 0;
    if (f)
        fclose(f);
    return got_n == (size_t)d->n * out_numel ? 0 : -1;
}

/* cfg quantised, exported and run: outputs bit for bit nerve's when the output is an int8
 * layer's (a regression head), within 1e-6 after a softmax. */
/* Between consecutive int8 layers (ReLUs, 2x2 max pools, convolutions on the direct and the
 * patch routes, dense layers whose depth is not a multiple of 4) the activations stay bytes:
 * the outputs are those of the float route between them, bit for bit, on every path and
 * thread count; and a forward that stops between two int8 nodes still computes it in float. */
TEST(quantize_bytes_between_layers_change_no_bit)
{
    static const char *const cfg =
        "[net]\nheight=12\nwidth=12\nchannels=2\nnormalize=1\nclasses=4\nbatch=8\n"
        "[convolutional]\nfilters=5\nsize=3\npad=1\nactivation=relu\n"
        "[maxpool]\nsize=2\nstride=2\n"
        "[convolutional]\nfilters=7\nsize=3\npad=1\nactivation=relu\n"
        "[convolutional]\nfilters=6\nsize=3\nstride=2\nactivation=relu\n"
        "[connected]\noutput=21\nactivation=relu\n"
        "[connected]\noutput=9\nactivation=relu\n"
        "[connected]\noutput=4\n[softmax]\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "q.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 0));
    nerve_dataset d = {0};
    CHECK(make_data(m, 29, &d) == 0);
    CHECK_OK(nerve_model_quantize(m, &d, 2, NULL));
    nerve_graph *g = nerve_model_graph(m);
    size_t k = out_numel(m), total = (size_t)d.n * k;
    float *ref = malloc(total * sizeof(float)), *got = malloc(total * sizeof(float));
    CHECK(ref && got);
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    for (size_t p = 0; p < sizeof isas / sizeof *isas; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            nerve_set_threads(threads);
            CHECK(op_quant_links(g, 0) == 0);
            CHECK_OK(nerve_predict_outputs(m, &d, ref, NULL));
            CHECK_MSG(op_quant_links(g, 1) == 5, "%d links", op_quant_links(g, 1));
            CHECK_OK(nerve_predict_outputs(m, &d, got, NULL));
            CHECK_MSG(!memcmp(got, ref, total * sizeof(float)),
                      "path %s, %d threads: bytes between layers change the outputs", isas[p],
                      threads);
        }
    }
    /* a forward to the pool between the first two convolutions computes the pool */
    int pool = -1, conv = -1;
    for (int id = 0; id < nerve_node_count(g) && pool < 0; id++) {
        const char *op = nerve_node_op(g, id);
        if (op && !strcmp(op, "qconv"))
            conv = id;
        if (op && !strcmp(op, "pool"))
            pool = id;
    }
    CHECK(pool > conv && conv >= 0);
    nerve_graph_set_training(g, 0);
    CHECK_OK(nerve_graph_set_batch(g, 1));
    nerve_tensor in = nerve_value(g, nerve_model_input(m));
    memcpy(in.data, d.x, d.sample_numel * sizeof(float));
    CHECK_OK(nerve_forward(g, pool));
    nerve_tensor pv = nerve_value(g, pool), cv = nerve_value(g, conv);
    int C = 5, H = 12, W = 12;
    CHECK(nerve_tensor_numel(&pv) == (size_t)C * 6 * 6);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 6; x++) {
                const float *a = cv.data + ((size_t)c * H + 2 * y) * W + 2 * x;
                float mx = fmaxf(fmaxf(a[0], a[1]), fmaxf(a[W], a[W + 1]));
                CHECK(pv.data[((size_t)c * 6 + y) * 6 + x] == mx);
            }
    nerve_set_threads(0);
    kern_set_isa("auto");
    free(ref);
    free(got);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

/* Batch norms folded at quantisation: left as the identity, the int8 nodes carry their
 * bias; links of bytes pass through them, bit for bit the float route on every path; a batch
 * norm changed afterwards is computed again (the links through it are dropped). */
TEST(quantize_folds_batch_norms_and_links_through_them)
{
    nerve_model *m = nerve_model_from_cfg(bn_cfg, "q.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 0));
    nerve_dataset d = {0};
    CHECK(make_data(m, 29, &d) == 0);
    nerve_graph *g = nerve_model_graph(m);
    nerve_quantize_info qi;
    CHECK_OK(nerve_model_quantize(m, &d, 2, &qi));
    CHECK(qi.nodes == 4 && qi.folded == 3);
    int bns = 0, first_bn = -1;
    nerve_graph_set_training(g, 0);
    for (int id = 0; id < nerve_node_count(g); id++) {
        const char *op = nerve_node_op(g, id);
        if (op && !strcmp(op, "batchnorm")) {
            CHECK(op_bn_identity(g, graph_node(g, id)));
            first_bn = first_bn < 0 ? id : first_bn;
            bns++;
        }
        if (op && !strcmp(op, "qconv"))
            CHECK(op_quant_of(graph_node(g, id))->bias != NULL);
    }
    CHECK(bns == 3);
    size_t k = out_numel(m), total = (size_t)d.n * k;
    float *ref = malloc(total * sizeof(float)), *got = malloc(total * sizeof(float)),
          *before = malloc(total * sizeof(float));
    CHECK(ref && got && before);
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    for (size_t p = 0; p < sizeof isas / sizeof *isas; p++) {
        if (!kern_set_isa(isas[p]))
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            nerve_set_threads(threads);
            CHECK(op_quant_links(g, 0) == 0);
            CHECK_OK(nerve_predict_outputs(m, &d, ref, NULL));
            CHECK_MSG(op_quant_links(g, 1) == 2, "%d links", op_quant_links(g, 1));
            CHECK_OK(nerve_predict_outputs(m, &d, got, NULL));
            CHECK_MSG(!memcmp(got, ref, total * sizeof(float)),
                      "path %s, %d threads: bytes through batch norms change the outputs",
                      isas[p], threads);
        }
    }
    nerve_set_threads(0);
    kern_set_isa("auto");
    memcpy(before, got, total * sizeof(float));
    /* the first batch norm scaled after quantisation: computed, not skipped */
    nerve_tensor gamma = nerve_value(g, graph_node(g, first_bn)->in[1]);
    for (size_t c = 0; c < nerve_tensor_numel(&gamma); c++)
        gamma.data[c] = 1.5f;
    CHECK(!op_bn_identity(g, graph_node(g, first_bn)));
    CHECK_OK(nerve_predict_outputs(m, &d, got, NULL));
    CHECK(op_quant_links(g, 0) == 0);
    CHECK_OK(nerve_predict_outputs(m, &d, ref, NULL));
    CHECK_MSG(!memcmp(got, ref, total * sizeof(float)), "a changed batch norm was skipped");
    CHECK(memcmp(got, before, total * sizeof(float)) != 0);
    op_quant_links(g, 1);
    free(ref);
    free(got);
    free(before);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

static void check_export(const char *cfg, const char *name, int exact)
{
    nerve_model *m = nerve_model_from_cfg(cfg, "q.cfg");
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, 0));
    nerve_dataset d = {0};
    CHECK(make_data(m, 23, &d) == 0);
    CHECK_OK(nerve_model_quantize(m, &d, 2, NULL));
    size_t k = out_numel(m), total = (size_t)d.n * k;
    float *want = malloc(total * sizeof(float)), *got = malloc(total * sizeof(float));
    CHECK(want && got);
    CHECK_OK(nerve_predict_outputs(m, &d, want, NULL));
    CHECK_MSG(export_run(m, name, &d, got, k) == 0, "%s: export, compile or run failed: %s", name,
              nerve_last_error());
    for (size_t i = 0; i < total; i++)
        CHECK_MSG(exact ? !memcmp(&got[i], &want[i], sizeof(float)) : fabsf(got[i] - want[i]) <= 1e-6f,
                  "%s: output %zu is %.9g, nerve's %.9g", name, i, got[i], want[i]);
    free(want);
    free(got);
    nerve_dataset_free(&d);
    nerve_model_free(m);
}

TEST(quantize_export_c_gives_nerves_int8_outputs)
{
    check_export(cnn_cfg, "qcnn", 0);
    check_export(mlp_cfg, "qmlp", 0);
    /* the output an int8 layer's: the same bits */
    check_export("[net]\nheight=9\nwidth=9\nchannels=2\n"
                 "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=relu\n"
                 "[convolutional]\nfilters=5\nsize=2\nstride=2\nflip=1\nactivation=relu\n"
                 "[connected]\noutput=7\n[cost]\ntype=l1\ntarget=values\n",
                 "qreg", 1);
    /* batch norms folded into the int8 layers: the exported program follows */
    check_export(bn_cfg, "qbn", 0);
    /* int8 residual adds */
    check_export(res_cfg, "qres", 0);
    check_export("[net]\nheight=9\nwidth=9\nchannels=2\n"
                 "[convolutional]\nfilters=6\nsize=3\npad=1\nbatch_normalize=1\nactivation=relu\n"
                 "[convolutional]\nfilters=5\nsize=2\nstride=2\nbatch_normalize=1\n"
                 "activation=relu\n[connected]\noutput=7\n[cost]\ntype=l1\ntarget=values\n",
                 "qbnreg", 1);
}
