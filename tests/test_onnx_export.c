/* ONNX export (src/model/onnx_export.c): every cfg of models/ and small models of every
 * exportable layer kind are built with random weights and non-trivial batch-norm and z-score
 * statistics, exported, imported again by nerve's own importer, and run on the same random
 * batch of 2: both outputs (the model output and, for a classifier, its softmax) must agree
 * with nerve's to 1e-6 of the output's scale. An exported file converts back into a
 * checkpoint with the same weights; what has no ONNX form is refused, naming the layer.
 * (ONNX Runtime and the onnx checker: `make onnx-export-check`, bench/onnx/export_check.sh.) */
#include "test.h"
#include "../src/core/core.h"
#include "../src/io/onnx.h"
#include "../src/model/model.h"

#include <dirent.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOL 1e-6
#define BATCH 2

static unsigned next(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 8) & 0xffff;
}

/* Statistics as if trained: running means and z-score means in [-0.5, 0.5), variances and
 * standard deviations in [0.5, 1.5). */
static void randomise_statistics(nerve_graph *g, unsigned seed)
{
    for (int id = 0; id < nerve_node_count(g); id++) {
        const char *nm = nerve_node_name(g, id);
        if (!strstr(nm, "running_") && !strstr(nm, "input.mean") && !strstr(nm, "input.std"))
            continue;
        int var = strstr(nm, "running_var") || strstr(nm, "input.std");
        nerve_tensor t = nerve_value(g, id);
        for (size_t i = 0; i < nerve_tensor_numel(&t); i++) {
            float u = (float)next(&seed) / 65536.0f;
            t.data[i] = var ? 0.5f + u : u - 0.5f;
        }
    }
}

/* The vocabulary's size when the model reads tokens, else 0. */
static int vocab_of(nerve_model *m)
{
    int n = nerve_model_vocab(m, NULL);
    return n > 0 ? n : 0;
}

static void fill_input(float *x, size_t n, int vocab, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        x[i] = vocab ? (float)((int)(next(&seed) % (unsigned)(vocab + 4)) - 2) /* a few out of range */
                     : (float)next(&seed) / 65536.0f * 2.0f - 1.0f;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d)
            m = d != d ? 1e30 : d;
    }
    return m;
}

/* Softmax over axis `axis` of y [dims], in double. */
static void softmax_ref(const float *y, int nd, const int *dims, int axis, float *out)
{
    size_t outer = 1, inner = 1;
    for (int k = 0; k < axis; k++)
        outer *= (size_t)dims[k];
    for (int k = axis + 1; k < nd; k++)
        inner *= (size_t)dims[k];
    int C = dims[axis];
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const float *p = y + o * C * inner + i;
            double mx = p[0], s = 0;
            for (int c = 1; c < C; c++)
                mx = p[c * inner] > mx ? p[c * inner] : mx;
            for (int c = 0; c < C; c++)
                s += exp(p[c * inner] - mx);
            for (int c = 0; c < C; c++)
                out[o * C * inner + i + c * inner] = (float)(exp(p[c * inner] - mx) / s);
        }
}

/* Exports m, imports the file again and compares outputs on one random batch. Returns 0,
 * or 1 with a message in err. */
static int roundtrip(nerve_model *m, const char *name, char *err, size_t errsz)
{
    nerve_graph *g = nerve_model_graph(m);
    if (nerve_model_compile(m, BATCH) != NERVE_OK) {
        snprintf(err, errsz, "%s: compile: %s", name, nerve_last_error());
        return 1;
    }
    randomise_statistics(g, 7);
    int in = nerve_model_input(m), out = nerve_model_output(m), vocab = vocab_of(m);
    nerve_graph_set_training(g, 0);
    nerve_graph_reset_carry(g);
    nerve_tensor x = nerve_value(g, in);
    size_t xn = nerve_tensor_numel(&x);
    float *xs = malloc(xn * sizeof(float));
    fill_input(xs, xn, vocab, 11);
    memcpy(x.data, xs, xn * sizeof(float));
    nerve_forward(g, out);
    nerve_tensor y = nerve_value(g, out);
    size_t yn = nerve_tensor_numel(&y);
    float *want = malloc(yn * sizeof(float)), *prob = malloc(yn * sizeof(float));
    memcpy(want, y.data, yn * sizeof(float));
    int rc = 1;
    nerve_onnx *o = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    if (model_export_onnx_buffer(m, &buf, &len) != NERVE_OK) {
        snprintf(err, errsz, "%s: export: %s", name, nerve_last_error());
        goto done;
    }
    if (!(o = nerve_import_onnx_buffer(buf, len, name, BATCH))) {
        snprintf(err, errsz, "%s: import: %s", name, nerve_last_error());
        goto done;
    }
    nerve_graph *og = nerve_onnx_graph(o);
    nerve_tensor ox = nerve_value(og, nerve_onnx_input(o, 0));
    if (nerve_tensor_numel(&ox) != xn) {
        snprintf(err, errsz, "%s: the imported input holds %zu values, nerve's %zu", name,
                 nerve_tensor_numel(&ox), xn);
        goto done;
    }
    memcpy(ox.data, xs, xn * sizeof(float));
    double scale = max_abs(want, yn);
    for (int k = 0; k < nerve_onnx_num_outputs(o); k++) {
        if (nerve_onnx_run(o, k) != NERVE_OK) {
            snprintf(err, errsz, "%s: run output %d: %s", name, k, nerve_last_error());
            goto done;
        }
        nerve_tensor oy = nerve_value(og, nerve_onnx_output(o, k));
        if (nerve_tensor_numel(&oy) != yn || oy.ndim != y.ndim) {
            snprintf(err, errsz, "%s: output %d has %zu values (rank %d), nerve's %zu (rank %d)",
                     name, k, nerve_tensor_numel(&oy), oy.ndim, yn, y.ndim);
            goto done;
        }
        const float *ref = want;
        double sc = scale > 1 ? scale : 1;
        if (k == 1) { /* the probabilities */
            softmax_ref(want, y.ndim, y.dims, strcmp(nerve_onnx_output_name(o, 1), "probabilities") ? 1
                        : (nerve_model_head(m).task == NERVE_TASK_LANGUAGE ? y.ndim - 1 : 1), prob);
            ref = prob;
            sc = 1;
        }
        double d = max_diff(oy.data, ref, yn);
        if (!(d <= TOL * sc)) {
            snprintf(err, errsz, "%s: output %d ('%s') differs by %.3g (scale %.3g)", name, k,
                     nerve_onnx_output_name(o, k), d, sc);
            goto done;
        }
    }
    rc = 0;
done:
    nerve_xfree(buf);
    nerve_onnx_free(o);
    free(xs);
    free(want);
    free(prob);
    return rc;
}

static void check_cfg_text(const char *cfg, const char *name)
{
    nerve_model *m = nerve_model_from_cfg(cfg, name);
    CHECK(m != NULL);
    char err[1024];
    int rc = roundtrip(m, name, err, sizeof err);
    nerve_model_free(m);
    CHECK_MSG(rc == 0, "%s", err);
}

/* The cfgs of models/ whose weights run to hundreds of megabytes: checked structurally in
 * make test (check_large), numerically by make onnx-export-check. */
static int is_large(const char *name)
{
    return !strcmp(name, "vgg11") || !strcmp(name, "vgg16") || !strcmp(name, "alexnet");
}

static const char *imagenet_pick; /* the one cfg shipped() runs for is_imagenet */
static int is_imagenet_name(const char *name)
{
    return !strcmp(name, "resnet18") || !strcmp(name, "resnet34") || !strcmp(name, "googlenet") ||
           !strcmp(name, "squeezenet");
}
static int is_imagenet(const char *name) { return imagenet_pick && !strcmp(name, imagenet_pick); }

/* Under qemu-aarch64 (make test-aarch64, NERVE_UNDER_QEMU) an ImageNet-family cfg is built
 * at 56 x 56 instead of 224 x 224: its front upsampling by 8 becomes one by 2. Every layer,
 * weight and op kind is the same (the nets end in a global average pool), at 1/16 of the
 * arithmetic, which emulation makes minutes per model. NULL, with a failure recorded, when
 * the cfg no longer has that upsampling. */
static nerve_model *load_at_56(const char *path)
{
    static const char from[] = "name=fmnist_224\nstride=8\n";
    char *text = test_read_file(path, NULL);
    char *at = text ? strstr(text, from) : NULL;
    if (!at) {
        test_fail(__FILE__, __LINE__, "%s: no '[upsample] name=fmnist_224 stride=8' to scale under qemu", path);
        free(text);
        return NULL;
    }
    at[sizeof from - 3] = '2';
    nerve_model *m = nerve_model_from_cfg(text, path);
    free(text);
    return m;
}

/* Round trip of the cfgs of models/ that `pick` selects; returns how many ran. */
static int shipped(int (*pick)(const char *))
{
    DIR *dir = opendir("models");
    if (!dir) {
        test_fail(__FILE__, __LINE__, "cannot open models/");
        return 0;
    }
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dir))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".cfg"))
            continue;
        char path[512], err[1024], name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 4), de->d_name);
        if (!pick(name))
            continue;
        snprintf(path, sizeof path, "models/%s", de->d_name);
        nerve_model *m = is_imagenet_name(name) && getenv("NERVE_UNDER_QEMU") ? load_at_56(path)
                                                                               : nerve_model_load_cfg(path);
        if (!m) {
            test_fail(__FILE__, __LINE__, "%s: %s", path, nerve_last_error());
            continue;
        }
        if (roundtrip(m, name, err, sizeof err))
            test_fail(__FILE__, __LINE__, "%s", err);
        nerve_model_free(m);
        n++;
    }
    closedir(dir);
    return n;
}

static int pick_small(const char *name) { return !is_large(name) && !is_imagenet_name(name); }

TEST(onnx_export_shipped_models_roundtrip)
{
    int n = shipped(pick_small);
    CHECK_MSG(n >= 15, "models/ holds %d small cfgs", n);
}

/* the ImageNet-family cfgs at their 224 x 224 input (56 x 56 under qemu), one test each */
#define IMAGENET_TEST(NAME)                                                 \
    TEST(onnx_export_shipped_##NAME##_roundtrips)                           \
    {                                                                       \
        imagenet_pick = #NAME;                                              \
        CHECK_MSG(shipped(is_imagenet) == 1, "models/%s.cfg is missing", #NAME); \
    }
IMAGENET_TEST(resnet18)
IMAGENET_TEST(resnet34)
IMAGENET_TEST(googlenet)
IMAGENET_TEST(squeezenet)

/* vgg11, vgg16 and alexnet built without initialising their weights (zeros), exported and
 * parsed again: the input and outputs have the model's shapes with a symbolic batch, every
 * parameter is an initializer (their element total is the model's parameter count), and
 * there is one ONNX Conv / Gemm per conv / dense node. One test per model. */
static void check_large(const char *name)
{
    const char *names[1] = {name};
    for (int k = 0; k < 1; k++) {
        char path[512], out[1024];
        snprintf(path, sizeof path, "models/%s.cfg", names[k]);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        static char text[1 << 16];
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = 0;
        nerve_model *m = model_from_cfg_ex(text, path, NULL, 0);
        CHECK(m != NULL);
        unsigned char *buf = NULL;
        size_t size = 0;
        CHECK_OK(model_export_onnx_buffer(m, &buf, &size));
        snprintf(out, sizeof out, "%s.onnx", names[k]);
        onnx_model *om = onnx_model_parse(buf, size, out);
        nerve_xfree(buf);
        CHECK(om != NULL);
        nerve_graph *g = nerve_model_graph(m);
        int ids[2] = {nerve_model_input(m), nerve_model_output(m)};
        const onnx_value_info *vis[2] = {&om->inputs[0], &om->outputs[0]};
        CHECK(om->n_inputs == 1 && om->n_outputs == 2 && om->opset == 13);
        for (int v = 0; v < 2; v++) {
            int nd, dims[NERVE_MAX_DIMS];
            CHECK_OK(nerve_node_shape(g, ids[v], &nd, dims));
            CHECK(vis[v]->ndim == nd && vis[v]->dims[0] == -1);
            for (int d = 1; d < nd; d++)
                CHECK(vis[v]->dims[d] == dims[d]);
        }
        size_t params = 0, in_file = 0;
        for (int l = 0; l < nerve_model_layer_count(m); l++) {
            nerve_layer_info li;
            CHECK_OK(nerve_model_layer_info(m, l, &li));
            params += li.params;
        }
        for (int t = 0; t < om->n_init; t++)
            if (om->init[t].f && !strchr(om->init[t].name, '/'))
                in_file += om->init[t].n;
        CHECK_MSG(in_file == params, "%s: %zu parameters in the file, %zu in the model", names[k],
                  in_file, params);
        int conv = 0, dense = 0, oconv = 0, ogemm = 0;
        for (int id = 0; id < nerve_node_count(g); id++) {
            const char *op = nerve_node_op(g, id);
            conv += op && !strcmp(op, "conv");
            dense += op && !strcmp(op, "dense");
        }
        for (int t = 0; t < om->n_nodes; t++) {
            oconv += !strcmp(om->nodes[t].op_type, "Conv");
            ogemm += !strcmp(om->nodes[t].op_type, "Gemm");
        }
        CHECK_MSG(conv == oconv && dense == ogemm && conv >= 5, "%s: %d/%d conv, %d/%d dense",
                  names[k], conv, oconv, dense, ogemm);
        onnx_model_free(om);
        nerve_model_free(m);
    }
}

TEST(onnx_export_alexnet_structurally) { check_large("alexnet"); }
TEST(onnx_export_vgg11_structurally) { check_large("vgg11"); }
TEST(onnx_export_vgg16_structurally) { check_large("vgg16"); }

TEST(onnx_export_dense_layers_and_activations)
{
    check_cfg_text("[net]\ninputs=7\nnormalize=1\nclasses=4\n"
                   "[connected]\noutput=9\nactivation=tanh\ndropout=0.3\n"
                   "[connected]\noutput=6\nbatch_normalize=1\nbias=0\nactivation=elu\n"
                   "[prelu]\nper_channel=1\n"
                   "[connected]\noutput=5\nactivation=softplus\n"
                   "[activation]\nactivation=selu\n"
                   "[connected]\noutput=6\nactivation=leaky\n"
                   "[connected]\noutput=6\nactivation=logistic\n"
                   "[connected]\noutput=6\nactivation=softsign\n"
                   "[connected]\noutput=6\nactivation=hardsigmoid\n"
                   "[connected]\noutput=6\nactivation=relu6\n"
                   "[activation]\nactivation=ramp\n"
                   "[prelu]\n"
                   "[connected]\noutput=4\n[softmax]\n",
                   "dense");
}

TEST(onnx_export_convolution_variants)
{
    /* groups, depthwise, dilation, same padding, flip, strides, padding, bias-free with
     * batch norm; max pooling in ceil mode, average pooling counting the padding or not,
     * global pooling; shortcut with and without projection, route, upsample (all three
     * modes), reorg both ways, LRN, transposed convolution */
    check_cfg_text("[net]\nheight=12\nwidth=12\nchannels=2\nnormalize=1\nclasses=3\n"
                   "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
                   "[convolutional]\nfilters=4\nsize=3\npad=1\ngroups=2\nactivation=relu\n"
                   "[convolutional]\nfilters=4\nsize=3\npad=1\ngroups=4\nactivation=relu\n"
                   "[shortcut]\nfrom=-3\n"
                   "[convolutional]\nfilters=6\nsize=3\ndilation=2\nsame=1\nactivation=logistic\n"
                   "[convolutional]\nfilters=6\nsize=3\nstride=2\nsame=1\nflip=1\n"
                   "[normalization]\nsize=3\nalpha=0.001\nbeta=0.75\nkappa=2\n"
                   "[upsample]\nstride=2\n"
                   "[route]\nlayers=-1,-4\n"
                   "[maxpool]\nsize=3\nstride=2\nceil_mode=1\n"
                   "[avgpool]\nsize=3\nstride=1\npadding=2\ncount_include_pad=1\n"
                   "[avgpool]\nsize=3\nstride=1\npadding=2\n"
                   "[convolutional]\nfilters=8\nsize=1\n"
                   "[shortcut]\nfrom=-4\nproject=1\nactivation=relu\n"
                   "[upsample]\nstride=2\nmode=bilinear\n"
                   "[upsample]\nstride=2\nmode=bed_of_nails\n"
                   "[reorg]\nstride=2\n"
                   "[reorg]\nstride=2\nreverse=1\n"
                   "[deconvolutional]\nfilters=3\nsize=3\nstride=2\npadding=1\n"
                   "[maxpool]\nsize=2\nstride=2\n"
                   "[avgpool]\n"
                   "[connected]\noutput=3\n[softmax]\n",
                   "conv");
}

TEST(onnx_export_darknet_shortcut_between_channel_counts)
{
    /* [shortcut] without project=1 adds the overlapping channels (a pad or crop) */
    check_cfg_text("[net]\nheight=6\nwidth=6\nchannels=2\nclasses=3\n"
                   "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=relu\n"
                   "[convolutional]\nfilters=4\nsize=3\npad=1\n"
                   "[shortcut]\nfrom=-2\n"
                   "[convolutional]\nfilters=8\nsize=1\n"
                   "[shortcut]\nfrom=-2\nactivation=relu\n"
                   "[avgpool]\n[connected]\noutput=3\n[softmax]\n",
                   "darknet_shortcut");
}

TEST(onnx_export_recurrent_layers)
{
    check_cfg_text("[net]\nheight=5\nwidth=3\nchannels=2\nclasses=3\n"
                   "[lstm]\noutput=5\npeephole=1\nbidirectional=1\n"
                   "[gru]\noutput=4\n"
                   "[connected]\noutput=3\n[softmax]\n",
                   "stack");
    check_cfg_text("[net]\nheight=4\nwidth=3\nchannels=1\nclasses=2\n"
                   "[gru]\noutput=5\ngru_form=linear_before_reset\nbidirectional=1\n"
                   "[lstm]\noutput=3\ncoupled=1\n"
                   "[rnn]\noutput=4\nbidirectional=1\n"
                   "[connected]\noutput=2\n[softmax]\n",
                   "mixed");
    check_cfg_text("[net]\nheight=6\nwidth=3\nchannels=1\nclasses=2\n"
                   "[lstm]\noutput=4\ncoupled=1\npeephole=1\nbidirectional=1\n"
                   "[connected]\noutput=2\n[softmax]\n",
                   "coupled_peephole");
}

TEST(onnx_export_refuses_what_has_no_onnx_form)
{
    nerve_model *m = nerve_model_from_cfg("[net]\nheight=6\nwidth=6\nchannels=1\nclasses=2\n"
                                          "[convolutional]\nfilters=2\nsize=3\n"
                                          "[local]\nfilters=2\nsize=3\n"
                                          "[connected]\noutput=2\n[softmax]\n",
                                          "local.cfg");
    CHECK(m != NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/local.onnx", test_tmpdir());
    CHECK(nerve_export_onnx(m, path) == NERVE_ERR_ARG);
    const char *e = nerve_last_error();
    CHECK_MSG(strstr(e, "'local'") && strstr(e, "[local]") && strstr(e, "line 9"), "message: %s", e);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f == NULL, "a refused export left %s", path);
    nerve_model_free(m);
}

/* Exports cfg, converts the file back (nerve_onnx_to_model), saves and reloads it as a
 * checkpoint: every parameter and statistic is the same, bit for bit. */
static void check_converts_back(const char *cfg, const char *name)
{
    nerve_model *m = nerve_model_from_cfg(cfg, name);
    CHECK(m != NULL);
    CHECK_OK(nerve_model_compile(m, BATCH));
    nerve_graph *g = nerve_model_graph(m);
    randomise_statistics(g, 3);
    char path[1024], ckpt[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", test_tmpdir(), name);
    snprintf(ckpt, sizeof ckpt, "%s/%s.safetensors", test_tmpdir(), name);
    CHECK_OK(nerve_export_onnx(m, path));
    nerve_model *b = nerve_onnx_to_model(path);
    CHECK(b != NULL);
    CHECK_OK(nerve_model_save(b, ckpt));
    nerve_model *c = nerve_model_load(ckpt);
    CHECK(c != NULL);
    nerve_graph *cg = nerve_model_graph(c);
    int persistent = 0;
    for (int id = 0; id < nerve_node_count(g); id++) {
        int kind = nerve_node_kind(g, id);
        if (kind != NERVE_NODE_PARAM && kind != NERVE_NODE_STATE)
            continue;
        const char *nm = nerve_node_name(g, id);
        int cid = nerve_node_find(cg, nm);
        CHECK_MSG(cid >= 0, "%s missing after conversion", nm);
        nerve_tensor t = nerve_value(g, id), u = nerve_value(cg, cid);
        CHECK(nerve_tensor_numel(&t) == nerve_tensor_numel(&u));
        CHECK_MSG(!memcmp(t.data, u.data, nerve_tensor_numel(&t) * sizeof(float)), "%s differs", nm);
        persistent++;
    }
    CHECK(persistent >= 8);
    nerve_model_free(m);
    nerve_model_free(b);
    nerve_model_free(c);
}

TEST(onnx_export_converts_back_into_the_same_model)
{
    check_converts_back("[net]\nheight=6\nwidth=6\nchannels=2\nnormalize=1\nclasses=3\n"
                        "[convolutional]\nfilters=4\nsize=3\nflip=1\nbatch_normalize=1\n"
                        "[prelu]\nper_channel=1\n"
                        "[connected]\noutput=3\n[softmax]\n",
                        "conv_back");
    check_converts_back("[net]\nheight=5\nwidth=3\nchannels=1\nclasses=3\n"
                        "[lstm]\noutput=4\npeephole=1\nbidirectional=1\n"
                        "[lstm]\noutput=4\npeephole=1\ncoupled=1\n"
                        "[gru]\noutput=3\n"
                        "[rnn]\noutput=3\n"
                        "[connected]\noutput=3\n[softmax]\n",
                        "rnn_back");
}

TEST(onnx_export_only_nerves_files_convert_back)
{
    /* a file without the cfg metadata: written here by the same writer, one Relu */
    onnx_model om;
    memset(&om, 0, sizeof om);
    om.ir_version = 7;
    om.opset = 13;
    onnx_value_info io[2];
    memset(io, 0, sizeof io);
    snprintf(io[0].name, sizeof io[0].name, "x");
    snprintf(io[1].name, sizeof io[1].name, "y");
    for (int k = 0; k < 2; k++) {
        io[k].is_tensor = io[k].has_shape = 1;
        io[k].dtype = ONNX_FLOAT;
        io[k].ndim = 2;
        io[k].dims[0] = -1;
        io[k].dims[1] = 3;
    }
    char *in[1] = {"x"}, *outs[1] = {"y"};
    onnx_node node;
    memset(&node, 0, sizeof node);
    snprintf(node.op_type, sizeof node.op_type, "Relu");
    node.n_in = node.n_out = 1;
    node.in = in;
    node.out = outs;
    om.nodes = &node;
    om.n_nodes = 1;
    om.inputs = &io[0];
    om.outputs = &io[1];
    om.n_inputs = om.n_outputs = 1;
    size_t len = 0;
    unsigned char *buf = onnx_model_write(&om, "test", &len);
    CHECK(buf != NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/relu.onnx", test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(buf, 1, len, f) == len);
    fclose(f);
    nerve_xfree(buf);
    /* it reads back: a symbolic batch, the Relu */
    nerve_onnx *o = nerve_import_onnx(path, 3);
    CHECK(o != NULL);
    nerve_graph *g = nerve_onnx_graph(o);
    nerve_tensor x = nerve_value(g, nerve_onnx_input(o, 0));
    CHECK(nerve_tensor_numel(&x) == 9);
    for (int i = 0; i < 9; i++)
        x.data[i] = (float)i - 4.0f;
    CHECK_OK(nerve_onnx_run(o, 0));
    nerve_tensor y = nerve_value(g, nerve_onnx_output(o, 0));
    for (int i = 0; i < 9; i++)
        CHECK(y.data[i] == (i > 4 ? (float)i - 4.0f : 0.0f));
    nerve_onnx_free(o);
    CHECK(nerve_onnx_to_model(path) == NULL);
    CHECK_MSG(strstr(nerve_last_error(), "nerve.cfg"), "message: %s", nerve_last_error());
}

static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* nerve export-onnx and nerve convert: a cfg to ONNX, ONNX to a checkpoint, the checkpoint
 * to ONNX again; nerve run gives the same outputs from both files; the checkpoint to darknet
 * weights (their round trips: tests/test_darknet.c); an unknown extension is a usage error. */
TEST(onnx_export_commands)
{
    const char *d = test_tmpdir(), *b = test_build_dir();
    char cfg[512], a[512], ck[512], again[512], cmd[4096];
    static char out[16384];
    snprintf(cfg, sizeof cfg, "%s/tiny.cfg", d);
    snprintf(a, sizeof a, "%s/tiny.onnx", d);
    snprintf(ck, sizeof ck, "%s/tiny.safetensors", d);
    snprintf(again, sizeof again, "%s/again.onnx", d);
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL);
    fputs("[net]\ninputs=3\nclasses=2\n[connected]\noutput=4\nactivation=tanh\n"
          "[connected]\noutput=2\n[softmax]\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/nerve export-onnx %s %s 2>&1", b, cfg, a);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "wrote"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve convert %s %s 2>&1", b, a, ck);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve convert %s %s 2>&1", b, ck, again);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "%s", out);
    char txt[512];
    snprintf(txt, sizeof txt, "%s/x.txt", d);
    f = fopen(txt, "w");
    CHECK(f != NULL);
    fputs("0.5 -1 2\n", f);
    fclose(f);
    static char out2[16384];
    snprintf(cmd, sizeof cmd, "%s/nerve run %s %s 2>&1", b, a, txt);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "probabilities [1, 2]"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve run %s %s 2>&1", b, again, txt);
    CHECK_MSG(run_cmd(cmd, out2, sizeof out2) == 0 && !strcmp(out, out2), "%s\n%s", out, out2);
    snprintf(cmd, sizeof cmd, "%s/nerve convert %s %s/tiny.weights 2>&1", b, ck, d);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "wrote"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve convert %s %s/x.txt 2>&1", b, ck, d);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 2, "%s", out);
}
