/* Shape arithmetic in 64 bits with explicit limits (docs/cfg.md, "Limits"): the crafted
 * cfgs that used to overflow an int ([route] channel sums, [upsample], [deconvolutional])
 * or to accept samples of 2^40 values now fail at build with "file:line: [section] ...",
 * a layer too large for the compiled batch fails at compile in the same terms, and the
 * graph API refuses sizes whose products do not fit (leaves, concat, reshape, convolutions,
 * pooling, resampling). None of these allocates the sizes it refuses, so every test runs
 * under ASan in milliseconds. */
#include "test.h"

#include <limits.h>
#include <string.h>

/* The cfg must be refused, with an error that holds every one of the given pieces. */
static int refused(const char *text, const char *a, const char *b, const char *c)
{
    nerve_model *m = nerve_model_from_cfg(text, "big.cfg");
    if (m) {
        nerve_model_free(m);
        test_fail(__FILE__, __LINE__, "cfg accepted; expected '%s'", b);
        return 0;
    }
    const char *e = nerve_last_error();
    if (!strstr(e, a) || !strstr(e, b) || (c && !strstr(e, c))) {
        test_fail(__FILE__, __LINE__, "error '%s' lacks '%s', '%s' or '%s'", e, a, b,
                  c ? c : "");
        return 0;
    }
    return 1;
}

#define ROUTE8 "layers=-1,-1,-1,-1,-1,-1,-1,-1\n"

TEST(cfg_route_channel_sum_beyond_the_limit_is_an_error)
{
    /* 65536 channels, then x8 per [route]: 2^19, 2^22, 2^25, 2^28 (the limit, accepted),
     * and 2^31, which overflowed an int: concat then wrote past its buffer */
    const char *text = "[net]\nheight=1\nwidth=1\nchannels=1\n"   /* 1-4 */
                       "[convolutional]\nfilters=65536\nsize=1\n"  /* 5-7 */
                       "[route]\n" ROUTE8 "[route]\n" ROUTE8      /* 8-11 */
                       "[route]\n" ROUTE8 "[route]\n" ROUTE8      /* 12-15 */
                       "[route]\n" ROUTE8;                         /* 16-17 */
    refused(text, "big.cfg:16: [route] route6:", "2147483648", "per sample");
    /* the same without the last [route] builds: 2^28 values per sample is allowed */
    char ok[1024];
    const char *last = text;
    for (const char *p = strstr(text, "[route]"); p; p = strstr(p + 1, "[route]"))
        last = p;
    snprintf(ok, sizeof ok, "%.*s", (int)(last - text), text);
    nerve_model *m = nerve_model_from_cfg(ok, "ok.cfg");
    CHECK(m);
    nerve_layer_info li;
    CHECK_OK(nerve_model_layer_info(m, 4, &li));
    nerve_model_free(m);
    CHECK(li.ndim == 3 && li.dims[0] == (1 << 28) && li.dims[1] == 1 && li.dims[2] == 1);
}

TEST(cfg_upsample_beyond_the_limit_is_an_error)
{
    /* 65536 x 1 -> 2^26 x 1024 = 2^36 values per sample; a second one wrapped the int
     * height to 0 (a layer of zero size) */
    refused("[net]\nheight=65536\nwidth=1\nchannels=1\n[upsample]\nstride=1024\n",
            "big.cfg:5: [upsample] upsample1:", "68719476736", "per sample");
}

TEST(cfg_deconvolution_beyond_the_limit_is_an_error)
{
    /* (65536 - 1) * 1024 + 1 = 67107841 rows: allowed; the next one, 6.9e10 rows,
     * overflowed the int output size */
    const char *text = "[net]\nheight=65536\nwidth=1\nchannels=1\n"       /* 1-4 */
                       "[deconvolutional]\nfilters=1\nsize=1\nstride=1024\n" /* 5-8 */
                       "[deconvolutional]\nfilters=1\nsize=1\nstride=1024\n"; /* 9-12 */
    refused(text, "big.cfg:9: [deconvolutional] deconvolutional2:", "68718428161",
            "spatial dim 0");
}

TEST(cfg_sample_of_2_to_the_40_values_is_an_error)
{
    /* 4096 x 4096 x 65536 filters: 2^40 values per sample were accepted */
    refused("[net]\nheight=4096\nwidth=4096\nchannels=1\n[convolutional]\nfilters=65536\n"
            "size=1\n",
            "big.cfg:5: [convolutional] convolutional1:", "1099511627776", "per sample");
    /* and a [connected] layer's input is no way round it: dense weights have their own
     * limit, and the layer before fails first */
    refused("[net]\nheight=4096\nwidth=4096\nchannels=1\n[upsample]\nstride=8\n"
            "[connected]\noutput=1\n",
            "big.cfg:5: [upsample]", "per sample", NULL);
}

TEST(cfg_layer_beyond_the_limit_at_the_batch_is_an_error_at_compile)
{
    /* 256 x 1024 x 1024 = 2^28 per sample (allowed), 2^31 at batch 8: one over the
     * per-layer limit; the error names the layer's line and the batch */
    nerve_model *m = nerve_model_from_cfg("[net]\nheight=1024\nwidth=1024\nchannels=1\nbatch=8\n"
                                          "[convolutional]\nfilters=256\nsize=1\n",
                                          "big.cfg");
    CHECK(m);
    int st = nerve_model_compile(m, 0);
    char err[1024];
    snprintf(err, sizeof err, "%s", nerve_last_error());
    nerve_model_free(m);
    CHECK(st == NERVE_ERR_SHAPE);
    CHECK_MSG(strstr(err, "big.cfg:6: [convolutional] convolutional1 at batch 8:") &&
                  strstr(err, "2147483648") && strstr(err, "per layer"),
              "error: %s", err);
}

/* ---- the graph API -------------------------------------------------------------------- */

TEST(graph_leaves_beyond_the_limits_are_refused)
{
    nerve_graph *g = nerve_graph_create();
    CHECK(g);
    /* 2^96 elements: the size_t product wrapped to 0 and the parameter got a tiny buffer */
    int huge[6] = {65536, 65536, 65536, 65536, 65536, 65536};
    int p = nerve_param(g, "w", 6, huge);
    int q = nerve_param(g, "v", 2, (int[]){65536, 65536}); /* 2^32: over the layer limit */
    int x = nerve_input(g, "x", 3, (int[]){0, 65536, 65536}); /* 2^32 per sample */
    int z = nerve_param(g, "z", 2, (int[]){3, 0});
    int ok = nerve_input(g, "ok", 2, (int[]){0, 1 << 28}); /* at the limit */
    nerve_graph_free(g);
    CHECK(p == NERVE_ERR_SHAPE && q == NERVE_ERR_SHAPE && x == NERVE_ERR_SHAPE);
    CHECK(z == NERVE_ERR_SHAPE);
    CHECK(ok >= 0);
}

TEST(graph_concat_sum_is_checked_in_64_bits)
{
    nerve_graph *g = nerve_graph_create();
    CHECK(g);
    int xs[8];
    for (int i = 0; i < 8; i++)
        xs[i] = nerve_input(g, "x", 2, (int[]){0, 1 << 28});
    int c = nerve_concat(g, 8, xs, 1); /* 2^31 */
    char err[512];
    snprintf(err, sizeof err, "%s", nerve_last_error());
    int two = nerve_concat(g, 2, xs, 0); /* along the batch: 2 rows */
    nerve_graph_free(g);
    CHECK(c == NERVE_ERR_SHAPE);
    CHECK_MSG(strstr(err, "2147483648") && strstr(err, "axis 1"), "error: %s", err);
    CHECK(two >= 0);
}

TEST(graph_reshape_with_huge_dimensions_is_refused)
{
    nerve_graph *g = nerve_graph_create();
    CHECK(g);
    int x = nerve_input(g, "x", 2, (int[]){0, 784});
    int a = nerve_reshape(g, x, 4, (int[]){-1, 1 << 30, 1 << 30, 1 << 30});
    int b = nerve_reshape(g, x, 2, (int[]){0, 0}); /* still fine */
    nerve_graph_free(g);
    CHECK(a == NERVE_ERR_SHAPE);
    CHECK(b >= 0);
}

TEST(graph_convolution_sizes_are_checked_in_64_bits)
{
    nerve_graph *g = nerve_graph_create();
    CHECK(g);
    int x = nerve_input(g, "x", 3, (int[]){0, 1, 3});
    int w = nerve_param(g, "w", 3, (int[]){1, 1, 3});
    nerve_conv_config c = nerve_conv_default();
    c.dilation[0] = INT_MAX; /* extent 2 * (2^31 - 1) + 1 */
    int dil = nerve_conv(g, x, w, -1, &c);
    c = nerve_conv_default();
    c.stride[0] = INT_MAX; /* (3 - 1) * (2^31 - 1) + 3: an int overflow */
    int tr = nerve_conv_transpose(g, x, w, -1, &c, NULL);
    c = nerve_conv_default();
    c.pad_begin[0] = c.pad_end[0] = INT_MAX; /* 3 + 2 * (2^31 - 1) */
    int pad = nerve_conv(g, x, w, -1, &c);
    c = nerve_conv_default();
    int fine = nerve_conv(g, x, w, -1, &c);
    nerve_graph_free(g);
    CHECK(dil < 0 && tr == NERVE_ERR_SHAPE && pad == NERVE_ERR_SHAPE);
    CHECK(fine >= 0);
}

TEST(graph_pool_and_resampling_sizes_are_checked_in_64_bits)
{
    nerve_graph *g = nerve_graph_create();
    CHECK(g);
    int x = nerve_input(g, "x", 4, (int[]){0, 1, 2, 2});
    nerve_pool_config pc = nerve_pool_config_make(NERVE_POOL_MAX, INT_MAX, 1, INT_MAX / 2);
    int pool = nerve_pool(g, x, &pc); /* 2 + 2 * (2^30 - 1): the padded map */
    int up = nerve_upsample(g, x, INT_MAX, NERVE_UPSAMPLE_NEAREST);
    int d2s = nerve_depth_to_space(g, x, 65536); /* block area 2^32 was 0: a division by 0 */
    int s2d = nerve_space_to_depth(g, x, 2);     /* [1, 4, 1, 1]: fine */
    nerve_graph_free(g);
    CHECK(pool == NERVE_ERR_SHAPE && up == NERVE_ERR_SHAPE && d2s == NERVE_ERR_SHAPE);
    CHECK(s2d >= 0);
}

TEST(graph_compile_checks_the_layer_limit_at_the_batch)
{
    nerve_graph *g = nerve_graph_create();
    CHECK(g);
    int x = nerve_input(g, "x", 2, (int[]){0, 1 << 28});
    int y = nerve_affine(g, x, 2.0f, 0.0f);
    CHECK(y >= 0);
    int st = nerve_graph_compile(g, 8); /* the input: 2^31 values */
    char err[512];
    snprintf(err, sizeof err, "%s", nerve_last_error());
    nerve_graph_free(g);
    CHECK(st == NERVE_ERR_SHAPE);
    CHECK_MSG(strstr(err, "per layer") && strstr(err, "batch 8"), "error: %s", err);
}
