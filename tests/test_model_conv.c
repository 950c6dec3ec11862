/* Convolutional networks in cfg files: the classic architectures of models/ (exact
 * parameter totals, ResNet-18's multiply-accumulates), the layer shapes of small cfgs,
 * forward values of conv / shortcut / route / darknet-style max pools against hand
 * computations, and file:line errors. The 224x224 models are built without random
 * initialisation and never compiled, so each test stays fast. */
#include "test.h"

#include "../src/model/model.h"

#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

/* The cfg of models/<name>.cfg built without initialising its weights. */
static nerve_model *load_arch(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "models/%s.cfg", name);
    char *text = read_file(path);
    if (!text) {
        nerve_set_error(NERVE_ERR_IO, "cannot read %s", path);
        return NULL;
    }
    nerve_model *m = model_from_cfg_ex(text, path, NULL, 0);
    free(text);
    return m;
}

static double total_macs(const nerve_model *m)
{
    double t = 0;
    for (int i = 0; i < nerve_model_layer_count(m); i++) {
        nerve_layer_info li;
        nerve_model_layer_info(m, i, &li);
        t += li.macs;
    }
    return t;
}

static int output_is(const nerve_model *m, int c, int h, int w)
{
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(nerve_model_graph((nerve_model *)m), nerve_model_output(m), &nd, dims);
    if (h == 0)
        return nd == 2 && dims[1] == c;
    return nd == 4 && dims[1] == c && dims[2] == h && dims[3] == w;
}

/* Building a model allocates (and zeroes) every parameter and its gradient at once: over
 * 20 M parameters that is 0.2 to 1.1 GB of fresh pages, seconds in a VM however cheap the
 * build. GIANT architectures, and under the sanitizers the MEDIUM ones (6-12 M
 * parameters), are checked only when NERVE_SLOW_TESTS=1 is set. */
enum { SMALL, MEDIUM, GIANT };
#ifdef __SANITIZE_ADDRESS__
#define SKIP_FROM MEDIUM
#else
#define SKIP_FROM GIANT
#endif

static int skip_big(int size)
{
    const char *v = getenv("NERVE_SLOW_TESTS");
    return size >= SKIP_FROM && !(v && strcmp(v, "1") == 0);
}

/* Parameter totals as published / as torchvision counts them (see docs/architectures.md). */
#define ARCH_TEST(test_name, file, params, classes, size)                              \
    TEST(test_name)                                                                    \
    {                                                                                  \
        if (skip_big(size))                                                            \
            return;                                                                    \
        nerve_model *m = load_arch(file);                                              \
        CHECK(m != NULL);                                                              \
        size_t got = nerve_graph_param_count(nerve_model_graph(m));                    \
        int out_ok = output_is(m, classes, 0, 0);                                      \
        nerve_model_free(m);                                                           \
        CHECK_MSG(got == (size_t)(params), "%s: %zu parameters, expected %zu", file,   \
                  got, (size_t)(params));                                              \
        CHECK(out_ok);                                                                 \
    }

ARCH_TEST(arch_alexnet_two_group_params, "alexnet", 60965224, 1000, GIANT)
ARCH_TEST(arch_vgg11_params, "vgg11", 132863336, 1000, GIANT)
ARCH_TEST(arch_vgg16_params, "vgg16", 138357544, 1000, GIANT)
ARCH_TEST(arch_resnet34_params, "resnet34", 21797672, 1000, GIANT)
ARCH_TEST(arch_googlenet_params, "googlenet", 6624904, 1000, MEDIUM)
ARCH_TEST(arch_squeezenet_params, "squeezenet", 1248424, 1000, SMALL)

TEST(arch_resnet18_params_and_macs)
{
    if (skip_big(MEDIUM))
        return;
    nerve_model *m = load_arch("resnet18");
    CHECK(m != NULL);
    size_t params = nerve_graph_param_count(nerve_model_graph(m));
    double macs = total_macs(m);
    nerve_layer_info first, proj;
    /* layers 0 and 1 bring Fashion-MNIST to 224x224x3 (no parameters, no MACs) */
    nerve_model_layer_info(m, 2, &first);
    nerve_model_layer_info(m, 12, &proj);
    nerve_model_free(m);
    CHECK(params == 11689512);
    /* convolutions 1,813,561,344 + fc 512 * 1000 + batch norm one per element of the
     * 20 BN outputs (64x112x112 + 4 x 64x56x56 + 5 x 128x28x28 + 5 x 256x14x14 +
     * 5 x 512x7x7 = 2,483,712) */
    CHECK_NEAR(macs, 1813561344.0 + 512000.0 + 2483712.0, 0);
    /* conv1: 7x7x3 x 64 per output of 112x112, plus its batch norm */
    CHECK_NEAR(first.macs, 112.0 * 112 * 64 * 147 + 64.0 * 112 * 112, 0);
    /* the first projection shortcut: 1x1/2 conv 64 -> 128 without bias + BN */
    CHECK(strcmp(proj.type, "shortcut") == 0 && proj.params == 64 * 128 + 2 * 128);
    CHECK(proj.ndim == 3 && proj.dims[0] == 128 && proj.dims[1] == 28 && proj.dims[2] == 28);
}

/* Parameters of layers first..last of m. */
static size_t layer_params(const nerve_model *m, int first, int last)
{
    size_t total = 0;
    for (int i = first; i <= last; i++) {
        nerve_layer_info li;
        nerve_model_layer_info(m, i, &li);
        total += li.params;
    }
    return total;
}

TEST(arch_course_blocks_params)
{
    /* ResNeXt block on 256x56x56: 1x1 256->128, 3x3 group conv 128->128 in 32 groups of
     * 4 channels, 1x1 128->256, each without bias + BN (2 per channel); layers 2..5, after
     * the upsampling and the stem (3x3 1->256 + BN), before the head (256 -> 10) */
    nerve_model *m = load_arch("resnext_block");
    CHECK(m != NULL);
    size_t rx = layer_params(m, 2, 5), rx_all = nerve_graph_param_count(nerve_model_graph(m));
    nerve_layer_info sc;
    nerve_model_layer_info(m, 5, &sc);
    int rx_shape = output_is(m, 10, 0, 0);
    nerve_model_free(m);
    CHECK(rx == (256 * 128 + 256) + (128 * 4 * 9 + 256) + (128 * 256 + 512));
    CHECK(!strcmp(sc.type, "shortcut") && sc.ndim == 3 && sc.dims[0] == 256 && sc.dims[1] == 56 && sc.dims[2] == 56);
    CHECK(rx_all == rx + (256 * 9 + 512) + (256 * 10 + 10));
    CHECK(rx_shape);
    /* the course's bottleneck 128 -> 16 -> 128 with biases: 1x1, 3x3, 1x1; layers 1..4,
     * after the stem (3x3 1->128), before the head (128 -> 10) */
    m = load_arch("bottleneck");
    CHECK(m != NULL);
    size_t bt = layer_params(m, 1, 4), bt_all = nerve_graph_param_count(nerve_model_graph(m));
    nerve_model_layer_info(m, 4, &sc);
    int bt_shape = output_is(m, 10, 0, 0);
    nerve_model_free(m);
    CHECK(bt == (128 * 16 + 16) + (16 * 16 * 9 + 16) + (16 * 128 + 128));
    CHECK(!strcmp(sc.type, "shortcut") && sc.ndim == 3 && sc.dims[0] == 128 && sc.dims[1] == 28 && sc.dims[2] == 28);
    CHECK(bt_all == bt + (128 * 9 + 128) + (128 * 10 + 10));
    CHECK(bt_shape);
}

TEST(arch_lenet5_layer_table)
{
    nerve_model *m = load_arch("lenet5");
    CHECK(m != NULL);
    static const int want[7][3] = {{6, 28, 28}, {6, 14, 14}, {16, 10, 10}, {16, 5, 5},
                                   {120}, {84}, {10}};
    static const size_t params[7] = {156, 0, 2416, 0, 48120, 10164, 850};
    static const double macs[7] = {28 * 28 * 6 * 25, 0, 10 * 10 * 16 * 150, 0, 400 * 120,
                                   120 * 84, 84 * 10};
    for (int i = 0; i < 7; i++) {
        nerve_layer_info li;
        nerve_model_layer_info(m, i, &li);
        int ok = li.params == params[i] && li.macs == macs[i] &&
                 li.ndim == (want[i][1] ? 3 : 1) && li.dims[0] == want[i][0] &&
                 (li.ndim == 1 || (li.dims[1] == want[i][1] && li.dims[2] == want[i][2]));
        if (!ok)
            nerve_model_free(m);
        CHECK_MSG(ok, "layer %d (%s): %zu params, %.0f MACs, rank %d", i, li.name, li.params,
                  li.macs, li.ndim);
    }
    size_t total = nerve_graph_param_count(nerve_model_graph(m));
    nerve_model_free(m);
    CHECK(total == 61706);
}

TEST(arch_resnet_small_shapes)
{
    nerve_model *m = load_arch("resnet_small");
    CHECK(m != NULL);
    /* stem + 3 stages x 2 blocks x 3 layers, then avgpool, connected, softmax */
    int n = nerve_model_layer_count(m);
    nerve_layer_info stage[3];
    nerve_model_layer_info(m, 6, &stage[0]);  /* the last shortcut of stage 1 */
    nerve_model_layer_info(m, 12, &stage[1]);
    nerve_model_layer_info(m, 18, &stage[2]);
    int out_ok = output_is(m, 10, 0, 0);
    nerve_model_free(m);
    CHECK(n == 22);
    CHECK(out_ok);
    static const int want[3][3] = {{16, 28, 28}, {32, 14, 14}, {64, 7, 7}};
    for (int i = 0; i < 3; i++)
        CHECK(strcmp(stage[i].type, "shortcut") == 0 && stage[i].dims[0] == want[i][0] &&
              stage[i].dims[1] == want[i][1] && stage[i].dims[2] == want[i][2]);
}

/* ---- small graphs, compiled and run -------------------------------------------------- */

static void set_param(nerve_graph *g, const char *name, float v)
{
    nerve_tensor t = nerve_value(g, nerve_node_find(g, name));
    for (size_t i = 0; i < nerve_tensor_numel(&t); i++)
        t.data[i] = v;
}

static const float *layer_value(nerve_model *m, const char *name)
{
    return nerve_value(nerve_model_graph(m), nerve_node_find(nerve_model_graph(m), name)).data;
}

/* Input 1..9 on 3x3; A = 3x3 box sums (ones kernel, pad 1). */
static const float box_sums[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};

TEST(cfg_conv_shortcut_route_forward)
{
    const char *text = "[net]\nheight=3\nwidth=3\nchannels=1\nbatch=1\n"
                       "[convolutional]\nname=a\nfilters=1\nsize=3\npad=1\n"
                       "[convolutional]\nname=b\nfilters=1\nsize=1\n"
                       "[shortcut]\nname=s\nfrom=0\n"
                       "[route]\nname=r\nlayers=0,-1\n"
                       "[maxpool]\nname=p\nsize=2\nstride=2\n"
                       "[avgpool]\nname=gap\n";
    nerve_model *m = nerve_model_from_cfg(text, "t.cfg");
    CHECK(m != NULL);
    nerve_graph *g = nerve_model_graph(m);
    set_param(g, "a.weight", 1);
    set_param(g, "a.bias", 0);
    set_param(g, "b.weight", 2);
    set_param(g, "b.bias", 1);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph_set_training(g, 0);
    float *in = nerve_value(g, nerve_model_input(m)).data;
    for (int i = 0; i < 9; i++)
        in[i] = (float)(i + 1);
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    float s_want[9], r_want[18];
    for (int i = 0; i < 9; i++) {
        s_want[i] = 3 * box_sums[i] + 1; /* (2A + 1) + A */
        r_want[i] = box_sums[i];
        r_want[9 + i] = s_want[i];
    }
    CHECK_ARRAY_NEAR(layer_value(m, "s"), s_want, 9, 1e-4);
    CHECK_ARRAY_NEAR(layer_value(m, "r"), r_want, 18, 1e-4);
    /* darknet's 2x2/2 pool with its default padding 1 on 3x3: 2x2 outputs, the last window
     * clipped to the image */
    const float p_want[8] = {45, 33, 39, 28, 136, 100, 118, 85};
    CHECK_ARRAY_NEAR(layer_value(m, "p"), p_want, 8, 1e-4);
    const float gap_want[2] = {(45 + 33 + 39 + 28) / 4.0f, (136 + 100 + 118 + 85) / 4.0f};
    CHECK_ARRAY_NEAR(nerve_value(g, nerve_model_output(m)).data, gap_want, 2, 1e-3);
    nerve_model_free(m);
}

/* darknet's [shortcut] between different shapes (shortcut_cpu): the first min(c1, c2)
 * channels of `from`, read at every stride-th pixel, are added to the previous layer; the
 * rest passes unchanged; alpha and beta scale the two terms. No parameters. */
TEST(cfg_shortcut_adds_the_overlap_as_darknet_does)
{
    const char *text = "[net]\nheight=4\nwidth=4\nchannels=2\nbatch=1\n"
                       "[activation]\nname=a\nactivation=linear\n"
                       "[convolutional]\nname=c\nfilters=3\nsize=1\nstride=2\n"
                       "[shortcut]\nname=s\nfrom=0\nalpha=2\nbeta=0.5\n"
                       "[maxpool]\nname=m\nsize=1\nstride=1\n"
                       "[shortcut]\nname=u\nfrom=0\n";
    nerve_model *m = nerve_model_from_cfg(text, "t.cfg");
    CHECK(m != NULL);
    if (!m)
        return;
    nerve_layer_info li;
    CHECK_OK(nerve_model_layer_info(m, 2, &li));
    CHECK(li.params == 0 && li.ndim == 3 && li.dims[0] == 3 && li.dims[1] == 2 && li.dims[2] == 2);
    nerve_graph *g = nerve_model_graph(m);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph_set_training(g, 0);
    float *in = nerve_value(g, nerve_model_input(m)).data;
    for (int i = 0; i < 32; i++)
        in[i] = (float)(i + 1) * 0.25f;
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    const float *c = layer_value(m, "c"), *sv = layer_value(m, "s");
    float want[12];
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 2; i++) {
                int o = (k * 2 + j) * 2 + i;
                want[o] = 2 * c[o] + (k < 2 ? 0.5f * in[(k * 4 + 2 * j) * 4 + 2 * i] : 0.0f);
            }
    CHECK_ARRAY_NEAR(sv, want, 12, 1e-5);
    /* alpha = beta = 1 by default */
    const float *u = layer_value(m, "u"), *mv = layer_value(m, "m");
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 2; i++) {
                int o = (k * 2 + j) * 2 + i;
                want[o] = mv[o] + (k < 2 ? in[(k * 4 + 2 * j) * 4 + 2 * i] : 0.0f);
            }
    CHECK_ARRAY_NEAR(u, want, 12, 1e-5);
    nerve_model_free(m);
}

TEST(cfg_maxpool_stride1_odd_padding_keeps_size)
{
    /* darknet's size=2 stride=1 (padding 1 at the end): output 3x3, the last row and
     * column see only the image */
    const char *text = "[net]\nheight=3\nwidth=3\nchannels=1\nbatch=1\n"
                       "[maxpool]\nname=p\nsize=2\nstride=1\n";
    nerve_model *m = nerve_model_from_cfg(text, "t.cfg");
    CHECK(m != NULL);
    nerve_graph *g = nerve_model_graph(m);
    CHECK_OK(nerve_model_compile(m, 1));
    float *in = nerve_value(g, nerve_model_input(m)).data;
    for (int i = 0; i < 9; i++)
        in[i] = box_sums[i];
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    CHECK(output_is(m, 1, 3, 3));
    const float want[9] = {45, 45, 33, 45, 45, 33, 39, 39, 28};
    CHECK_ARRAY_NEAR(nerve_value(g, nerve_model_output(m)).data, want, 9, 0);
    nerve_model_free(m);
}

TEST(cfg_resampling_and_local_layer_shapes)
{
    const char *text = "[net]\nheight=8\nwidth=8\nchannels=4\nbatch=2\n"
                       "[deconvolutional]\nfilters=4\nsize=4\nstride=2\npadding=1\n"
                       "[reorg]\nstride=2\n"
                       "[upsample]\nstride=2\nmode=bilinear\n"
                       "[local]\nfilters=3\nsize=3\nstride=2\nactivation=relu\n"
                       "[normalization]\nsize=3\nkappa=2\n"
                       "[dropout]\nprobability=0.2\nspatial=1\n"
                       "[avgpool]\nsize=2\nstride=1\n"
                       "[convolutional]\nfilters=3\nsize=3\ngroups=3\nsame=1\nbatch_normalize=1\n";
    nerve_model *m = nerve_model_from_cfg(text, "t.cfg");
    CHECK(m != NULL);
    static const int want[8][3] = {{4, 16, 16}, {16, 8, 8}, {16, 16, 16}, {3, 7, 7},
                                   {3, 7, 7},   {3, 7, 7}, {3, 6, 6},   {3, 6, 6}};
    /* deconv: 4 x 4 x 4 x 4 + 4; local: 49 positions x 3 x (16 x 3 x 3) + one bias per
     * output element; depthwise conv 3 x 1 x 3 x 3 without bias + BN */
    static const size_t params[8] = {260, 0, 0, 21168 + 147, 0, 0, 0, 27 + 6};
    int bad = -1;
    for (int i = 0; i < 8 && bad < 0; i++) {
        nerve_layer_info li;
        nerve_model_layer_info(m, i, &li);
        if (li.ndim != 3 || li.dims[0] != want[i][0] || li.dims[1] != want[i][1] ||
            li.dims[2] != want[i][2] || li.params != params[i])
            bad = i;
    }
    /* it also compiles and runs a training step's forward */
    int st = nerve_model_compile(m, 2);
    if (st == NERVE_OK)
        st = nerve_forward(nerve_model_graph(m), nerve_model_output(m));
    nerve_model_free(m);
    CHECK_MSG(bad < 0, "layer %d has the wrong shape or parameter count", bad);
    CHECK_OK(st);
}

/* ---- errors ------------------------------------------------------------------------ */

static void expect_error(const char *text, const char *where, const char *what)
{
    nerve_model *m = nerve_model_from_cfg(text, "e.cfg");
    if (m) {
        nerve_model_free(m);
        test_fail(__FILE__, __LINE__, "cfg accepted; expected '%s'", what);
        return;
    }
    if (!strstr(nerve_last_error(), where) || !strstr(nerve_last_error(), what))
        test_fail(__FILE__, __LINE__, "error '%s' lacks '%s' or '%s'", nerve_last_error(), where,
                  what);
}

#define NET "[net]\nheight=8\nwidth=8\nchannels=4\n" /* lines 1-4 */

TEST(cfg_conv_errors_name_file_and_line)
{
    /* a route to a layer that does not exist yet (line 8: layers=) */
    expect_error(NET "[convolutional]\nfilters=4\n[route]\nlayers=-5\n", "e.cfg:8:",
                 "does not name an earlier layer");
    expect_error(NET "[convolutional]\nfilters=4\n[route]\nlayers=1\n", "e.cfg:8:",
                 "layers = 1");
    /* concatenating 8x8 with 4x4 maps */
    expect_error(NET "[convolutional]\nfilters=4\n[maxpool]\nsize=2\nstride=2\n[route]\n"
                     "layers=-1,-2\n", "e.cfg:11:", "cannot concatenate");
    /* a shortcut from a 4x4 map onto an 8x8 one cannot be projected */
    expect_error(NET "[convolutional]\nfilters=4\n[maxpool]\nsize=2\nstride=2\n[upsample]\n"
                     "[shortcut]\nfrom=-2\nproject=1\n", "e.cfg:12:", "cannot be projected");
    /* nor from a vector */
    expect_error(NET "[connected]\noutput=3\n[convolutional]\nfilters=2\n", "e.cfg:7:",
                 "needs an image");
    expect_error(NET "[convolutional]\nfilters=6\ngroups=4\n", "e.cfg:5:", "groups=4");
    expect_error(NET "[convolutional]\nfilters=6\nsize=3\npad=1\npadding=1\n", "e.cfg:9:",
                 "not both");
    expect_error(NET "[convolutional]\nfilters=6\nbatch_normalize=1\nbias=1\n", "e.cfg:8:",
                 "bias=1 with batch_normalize=1");
    expect_error(NET "[maxpool]\nsize=3\nstride=2\nceil_mode=1\npadding=1\n", "e.cfg:9:",
                 "must be even");
    expect_error(NET "[upsample]\nmode=cubic\n", "e.cfg:6:", "mode = 'cubic'");
    expect_error(NET "[avgpool]\nstride=2\n", "e.cfg:6:", "global [avgpool]");
    expect_error(NET "[shortcut]\nfrom=-1\n", "e.cfg:6:", "does not name an earlier layer");
    expect_error(NET "[convolutional]\nfilters=4\n[shortcut]\nfrom=-1\nproject=1\n",
                 "e.cfg:9:", "needs none");
    expect_error(NET "[convolutional]\nfilters=4\n[shortcut]\nfrom=-1\nbatch_normalize=1\n",
                 "e.cfg:9:", "no weights");
}

/* darknet's [crop] (the centre at evaluation, x * 2 - 1), [reorg] extra= (the input as a
 * vector and zeros), the global [avgpool]'s C x 1 x 1 and [softmax] temperature=. */
TEST(cfg_darknet_crop_reorg_extra_avgpool_and_temperature)
{
    const char *text = "[net]\nheight=4\nwidth=4\nchannels=1\nbatch=1\n"
                       "[crop]\nname=c\ncrop_height=2\ncrop_width=2\nflip=1\n"
                       "[reorg]\nname=r\nextra=2\n"
                       "[softmax]\ntemperature=2\n";
    nerve_model *m = nerve_model_from_cfg(text, "t.cfg");
    CHECK(m != NULL);
    if (!m)
        return;
    const nerve_net_config *c = nerve_model_config(m);
    CHECK((c->augment.on & NERVE_AUG_TRANSLATE) && c->augment.translate == 1);
    CHECK((c->augment.on & NERVE_AUG_FLIP) && c->augment.flip == 0.5f);
    nerve_graph *g = nerve_model_graph(m);
    CHECK_OK(nerve_model_compile(m, 1));
    nerve_graph_set_training(g, 0);
    float *in = nerve_value(g, nerve_model_input(m)).data;
    for (int i = 0; i < 16; i++)
        in[i] = (float)i / 16;
    CHECK_OK(nerve_forward(g, nerve_model_output(m)));
    const float crop_want[4] = {5 / 8.0f - 1, 6 / 8.0f - 1, 9 / 8.0f - 1, 10 / 8.0f - 1};
    CHECK_ARRAY_NEAR(layer_value(m, "c"), crop_want, 4, 1e-6);
    const float r_want[6] = {crop_want[0], crop_want[1], crop_want[2], crop_want[3], 0, 0};
    CHECK_ARRAY_NEAR(layer_value(m, "r"), r_want, 6, 1e-6);
    float out_want[6];
    for (int i = 0; i < 6; i++)
        out_want[i] = r_want[i] / 2;
    CHECK_ARRAY_NEAR(nerve_value(g, nerve_model_output(m)).data, out_want, 6, 1e-6);
    nerve_model_free(m);
    m = nerve_model_from_cfg("[net]\nheight=3\nwidth=3\nchannels=5\n[avgpool]\n[softmax]\n", "t.cfg");
    CHECK(m != NULL);
    if (m) {
        nerve_layer_info li;
        CHECK_OK(nerve_model_layer_info(m, 0, &li));
        CHECK(li.ndim == 3 && li.dims[0] == 5 && li.dims[1] == 1 && li.dims[2] == 1);
        nerve_model_free(m);
    }
    expect_error("[net]\nheight=4\nwidth=4\nchannels=1\n[convolutional]\nfilters=1\n[crop]\n",
                 "e.cfg:7:", "first layer");
    expect_error(NET "[convolutional]\nfilters=4\n[region]\nclasses=2\n", "e.cfg:7:",
                 "set its filters= to 7");
    expect_error(NET "[convolutional]\nfilters=4\n[yolo]\nclasses=2\n", "e.cfg:7:",
                 "set its filters= to 7");
    expect_error(NET "[avgpool]\n[softmax]\ntree=x.tree\n", "e.cfg:7:", "tree = x.tree: no such file");
    expect_error(NET "[avgpool]\n[softmax]\ngroups=2\n", "e.cfg:7:", "groups=2");
}
