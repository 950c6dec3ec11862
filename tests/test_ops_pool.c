/* Pooling family: max / average / L2 / global pooling, ceil mode and padding, and
 * unpooling (nearest, bed of nails, max unpooling through a paired pool). The course's
 * test vectors, values worked out by hand below, and finite-difference gradient checks. */
#include "test.h"

#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* Distinct values 0.1 apart in a random order (centred on 0): no two elements of a max
 * window are closer than a finite-difference step, so the argmax never flips. */
static void fill_distinct(nerve_graph *g, int id, nerve_rng *r)
{
    nerve_tensor t = nerve_value(g, id);
    size_t n = nerve_tensor_numel(&t);
    int order[512];
    for (size_t k = 0; k < n; k++)
        order[k] = (int)k;
    nerve_rng_shuffle(r, order, (int)n);
    for (size_t k = 0; k < n; k++)
        t.data[k] = 0.1f * (float)order[k] - 0.05f * (float)n;
}

static nerve_pool_config pool_cfg(nerve_pool_type type, int k, int s, int p, int ceil_mode,
                                  int include_pad)
{
    nerve_pool_config c = nerve_pool_config_make(type, k, s, p);
    c.ceil_mode = ceil_mode;
    c.count_include_pad = include_pad;
    return c;
}

/* Pools a single map of h x w given row-major into out (the output's numel). */
static int pool_map(const nerve_pool_config *c, int h, int w, const float *x, float *out,
                    int *oh, int *ow)
{
    nerve_graph *g = nerve_graph_create();
    int in = nerve_input(g, "x", 4, (int[]){1, 1, h, w});
    int y = nerve_pool(g, in, c);
    int st = y < 0 ? y : nerve_graph_compile(g, 1);
    if (st >= 0) {
        test_set_values(g, in, x, (size_t)h * w);
        nerve_forward(g, y);
        nerve_tensor t = nerve_value(g, y);
        *oh = t.dims[2];
        *ow = t.dims[3];
        memcpy(out, t.data, nerve_tensor_numel(&t) * sizeof(float));
    }
    nerve_graph_free(g);
    return st;
}

/* ---- forward values ---------------------------------------------------------------------- */

TEST(max_pool_matches_the_course_vector)
{
    const float x[] = {1, 0, 2, 3, 4, 6, 6, 8, 3, 1, 1, 0, 1, 2, 2, 4};
    const float want[] = {6, 8, 3, 4};
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_MAX, 2, 0, 0);
    float y[16];
    int oh, ow;
    CHECK_OK(pool_map(&c, 4, 4, x, y, &oh, &ow));
    CHECK(oh == 2 && ow == 2);
    CHECK_ARRAY_NEAR(y, want, 4, 0);
}

TEST(average_pool_counts_padding_only_when_asked)
{
    /* [[1,2,3],[4,5,6],[7,8,9]], 2x2 windows, stride 2, padding 1: the windows hold
     * {1}, {2,3}, {4,7}, {5,6,8,9}; padded, each window has 4 places. */
    const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const float real[] = {1, 2.5f, 5.5f, 7}, padded[] = {0.25f, 1.25f, 2.75f, 7};
    float y[16];
    int oh, ow;
    nerve_pool_config c = pool_cfg(NERVE_POOL_AVG, 2, 2, 1, 0, 0);
    CHECK_OK(pool_map(&c, 3, 3, x, y, &oh, &ow));
    CHECK(oh == 2 && ow == 2);
    CHECK_ARRAY_NEAR(y, real, 4, 1e-6);
    c.count_include_pad = 1;
    CHECK_OK(pool_map(&c, 3, 3, x, y, &oh, &ow));
    CHECK_ARRAY_NEAR(y, padded, 4, 1e-6);
}

TEST(ceil_mode_average_windows_stop_at_the_padded_edge)
{
    /* 5x5 map x[i][j] = 5i + j, 2x2/2, ceil mode: 3x3 outputs; the last row/column of
     * windows holds one real row/column, and even with count_include_pad the divisor only
     * counts places inside the (unpadded) map, since the window overhangs no padding. */
    float x[25], y[16];
    for (int i = 0; i < 25; i++)
        x[i] = (float)i;
    const float want[] = {3, 5, 6.5f, 13, 15, 16.5f, 20.5f, 22.5f, 24};
    for (int include = 0; include <= 1; include++) {
        nerve_pool_config c = pool_cfg(NERVE_POOL_AVG, 2, 2, 0, 1, include);
        int oh, ow;
        CHECK_OK(pool_map(&c, 5, 5, x, y, &oh, &ow));
        CHECK(oh == 3 && ow == 3);
        CHECK_ARRAY_NEAR(y, want, 9, 1e-6);
    }
}

TEST(ceil_mode_output_sizes_round_up_and_drop_windows_in_the_padding)
{
    float x[36] = {0}, y[64];
    int oh, ow;
    for (int i = 0; i < 36; i++)
        x[i] = (float)i; /* x[i][j] = 6i + j */
    /* 3x3/2 on 6x6: floor((6 - 3) / 2) + 1 = 2, ceil: 3 */
    nerve_pool_config c = pool_cfg(NERVE_POOL_MAX, 3, 2, 0, 0, 0);
    CHECK_OK(pool_map(&c, 6, 6, x, y, &oh, &ow));
    CHECK(oh == 2 && ow == 2);
    const float floor_want[] = {14, 16, 26, 28};
    CHECK_ARRAY_NEAR(y, floor_want, 4, 0);
    c.ceil_mode = 1;
    CHECK_OK(pool_map(&c, 6, 6, x, y, &oh, &ow));
    CHECK(oh == 3 && ow == 3);
    const float ceil_want[] = {14, 16, 17, 26, 28, 29, 32, 34, 35}; /* last windows: 2 wide */
    CHECK_ARRAY_NEAR(y, ceil_want, 9, 0);
    /* 2x2/2 with padding 1 on 5x5: ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would
     * start at 5 = in + pad, entirely in the padding: dropped, so 3 (as floor gives). */
    c = pool_cfg(NERVE_POOL_MAX, 2, 2, 1, 1, 0);
    CHECK_OK(pool_map(&c, 5, 5, x, y, &oh, &ow));
    CHECK(oh == 3 && ow == 3);
    /* 2x2/2 with padding 1 on 4x4, ceil: ceil(4/2) + 1 = 3, last starts at 3 < 5: kept */
    CHECK_OK(pool_map(&c, 4, 4, x, y, &oh, &ow));
    CHECK(oh == 3 && ow == 3);
}

TEST(l2_pool_is_the_root_of_the_sum_of_squares)
{
    const float x[] = {3, 0, 1, 2, 4, 0, 2, 4}; /* 2x4: windows {3,0,4,0}, {1,2,2,4} */
    const float want[] = {5, 5};
    float y[4];
    int oh, ow;
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_L2, 2, 2, 0);
    CHECK_OK(pool_map(&c, 2, 4, x, y, &oh, &ow));
    CHECK(oh == 1 && ow == 2);
    CHECK_ARRAY_NEAR(y, want, 2, 1e-6);
}

TEST(global_pools_reduce_each_map_to_one_value)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 2, 2, 3});
    nerve_pool_config avg = {.type = NERVE_POOL_GLOBAL_AVG};
    nerve_pool_config max = {.type = NERVE_POOL_GLOBAL_MAX};
    int ya = nerve_pool(g, x, &avg), ym = nerve_pool(g, x, &max);
    CHECK_OK(ya);
    CHECK_OK(ym);
    CHECK_OK(nerve_graph_compile(g, 2));
    const float v[] = {1, 2, 3, 4, 5, 6, -1, -7, -3, -2, -5, -6, /* sample 0 */
                       0, 0, 0, 0, 0, 12, 9, 1, 1, 1, 1, 1};      /* sample 1 */
    test_set_values(g, x, v, 24);
    CHECK_OK(nerve_forward(g, -1));
    int nd, dims[NERVE_MAX_DIMS];
    CHECK_OK(nerve_node_shape(g, ya, &nd, dims));
    CHECK(nd == 4 && dims[0] == 2 && dims[1] == 2 && dims[2] == 1 && dims[3] == 1);
    const float want_avg[] = {3.5f, -4, 2, 14.0f / 6}, want_max[] = {6, -1, 12, 9};
    CHECK_ARRAY_NEAR(nerve_value(g, ya).data, want_avg, 4, 1e-6);
    CHECK_ARRAY_NEAR(nerve_value(g, ym).data, want_max, 4, 0);
    nerve_graph_free(g);
}

TEST(one_dimensional_pooling_uses_the_first_configuration_entries)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 3, (int[]){1, 1, 5});
    nerve_pool_config c = pool_cfg(NERVE_POOL_MAX, 2, 2, 0, 0, 0);
    c.kernel[1] = c.stride[1] = 99; /* ignored for [N, C, L] */
    int y = nerve_pool(g, x, &c);
    CHECK_OK(y);
    c.ceil_mode = 1;
    int yc = nerve_pool(g, x, &c);
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (const float[]){1, 3, 2, 5, 4}, 5);
    CHECK_OK(nerve_forward(g, -1));
    nerve_tensor t = nerve_value(g, y), tc = nerve_value(g, yc);
    CHECK(t.ndim == 3 && t.dims[2] == 2 && tc.dims[2] == 3);
    CHECK_ARRAY_NEAR(t.data, ((const float[]){3, 5}), 2, 0);
    CHECK_ARRAY_NEAR(tc.data, ((const float[]){3, 5, 4}), 3, 0);
    nerve_graph_free(g);
}

/* ---- gradients --------------------------------------------------------------------------- */

TEST(overlapping_max_windows_accumulate_the_gradient_at_a_shared_maximum)
{
    /* 3x3 map, 2x2 windows at stride 1: the centre 9 is the maximum of all four windows
     * and receives all four output gradients 1 + 2 + 3 + 4. */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 1, 3, 3});
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_MAX, 2, 1, 0);
    int y = nerve_pool(g, x, &c), w;
    int loss = test_linear_loss(g, y, &w);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (const float[]){1, 2, 3, 4, 9, 5, 6, 7, 8}, 9);
    test_set_values(g, w, (const float[]){1, 2, 3, 4}, 4);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, ((const float[]){9, 9, 9, 9}), 4, 0);
    CHECK_OK(nerve_backward(g, loss));
    const float want[] = {0, 0, 0, 0, 10, 0, 0, 0, 0};
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, want, 9, 0);
    nerve_graph_free(g);
}

TEST(max_pool_ties_route_the_gradient_to_the_first_maximum_in_row_major_order)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 1, 2, 4});
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_MAX, 2, 2, 0);
    int y = nerve_pool(g, x, &c), w;
    int loss = test_linear_loss(g, y, &w);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (const float[]){5, 5, 1, 7, 5, 5, 7, 7}, 8);
    test_set_values(g, w, (const float[]){1, 1}, 2);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, ((const float[]){1, 0, 0, 1, 0, 0, 0, 0}), 8, 0);
    nerve_value(g, x).data[4] = NAN; /* a NaN shows in its window's output */
    CHECK_OK(nerve_forward(g, y));
    CHECK(isnan(nerve_value(g, y).data[0]) && nerve_value(g, y).data[1] == 7);
    nerve_graph_free(g);
}

TEST(average_and_l2_pool_gradients_match_hand_values)
{
    /* avg 2x2/2 pad 1 over 3x3 without padding counted: each real element of a window of
     * m real elements gets dy/m. L2 2x2/2 on [[3,0],[4,0]]: dx = dy x / 5. */
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 1, 3, 3});
    int x2 = nerve_input(g, "x2", 4, (int[]){1, 1, 2, 2});
    nerve_pool_config avg = pool_cfg(NERVE_POOL_AVG, 2, 2, 1, 0, 0);
    nerve_pool_config l2 = nerve_pool_config_make(NERVE_POOL_L2, 2, 2, 0);
    int ya = nerve_pool(g, x, &avg), yl = nerve_pool(g, x2, &l2), wa;
    int la = test_linear_loss(g, ya, &wa);
    int ll = nerve_sum(g, yl, NERVE_AXIS_ALL, 0);
    CHECK_OK(la);
    CHECK_OK(ll);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_input_set_requires_grad(g, x2, 1));
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (const float[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, 9);
    test_set_values(g, wa, (const float[]){1, 2, 3, 4}, 4);
    test_set_values(g, x2, (const float[]){3, 0, 4, 0}, 4);
    CHECK_OK(nerve_forward(g, -1));
    CHECK_OK(nerve_backward(g, la));
    const float want_a[] = {1, 1, 1, 1.5f, 1, 1, 1.5f, 1, 1};
    CHECK_ARRAY_NEAR(nerve_grad(g, x).data, want_a, 9, 1e-6);
    CHECK_OK(nerve_backward(g, ll));
    CHECK_ARRAY_NEAR(nerve_grad(g, x2).data, ((const float[]){0.6f, 0, 0.8f, 0}), 4, 1e-6);
    nerve_graph_free(g);
}

/* Builds x [N, 2, h, w] (or [N, 2, w] if h == 0) -> pool(c) -> linear loss and runs the
 * finite-difference check on x and the loss weights. */
static int pool_gradcheck(const nerve_pool_config *c, int h, int w, int N)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 7);
    int x = h ? nerve_input(g, "x", 4, (int[]){1, 2, h, w}) : nerve_input(g, "x", 3, (int[]){1, 2, w});
    int y = nerve_pool(g, x, c), lw = -1;
    int loss = y < 0 ? y : test_linear_loss(g, y, &lw);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st >= 0)
        st = nerve_graph_compile(g, N);
    if (st >= 0) {
        fill_distinct(g, x, &r);
        test_fill_uniform(g, lw, -1, 1, &r);
        st = nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f);
    }
    nerve_graph_free(g);
    return st;
}

TEST(every_pool_type_passes_gradcheck_with_padding_ceil_mode_and_overlap)
{
    for (int type = NERVE_POOL_MAX; type <= NERVE_POOL_GLOBAL_MAX; type++)
        for (int include = 0; include <= 1; include++) {
            nerve_pool_config c = pool_cfg((nerve_pool_type)type, 3, 2, 1, 1, include);
            int st = pool_gradcheck(&c, 5, 6, 2);
            CHECK_MSG(st == NERVE_OK, "type %d include_pad %d: %s", type, include, nerve_last_error());
            c.kernel[1] = 2, c.stride[1] = 1, c.pad[1] = 0, c.ceil_mode = 0; /* non-square */
            st = pool_gradcheck(&c, 5, 6, 1);
            CHECK_MSG(st == NERVE_OK, "type %d rectangular: %s", type, nerve_last_error());
            st = pool_gradcheck(&c, 0, 7, 2); /* 1-D */
            CHECK_MSG(st == NERVE_OK, "type %d 1-D: %s", type, nerve_last_error());
        }
}

/* ---- unpooling --------------------------------------------------------------------------- */

static int upsample_map(nerve_upsample_mode mode, const float *x, float *out)
{
    nerve_graph *g = nerve_graph_create();
    int in = nerve_input(g, "x", 4, (int[]){1, 1, 2, 2});
    int y = nerve_upsample(g, in, 2, mode);
    int st = y < 0 ? y : nerve_graph_compile(g, 1);
    if (st >= 0) {
        test_set_values(g, in, x, 4);
        nerve_forward(g, y);
        memcpy(out, nerve_value(g, y).data, 16 * sizeof(float));
    }
    nerve_graph_free(g);
    return st;
}

TEST(nearest_and_bed_of_nails_unpooling_match_the_course_vectors)
{
    const float x[] = {1, 2, 3, 4};
    const float nearest[] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    const float nails[] = {1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
    float y[16];
    CHECK_OK(upsample_map(NERVE_UPSAMPLE_NEAREST, x, y));
    CHECK_ARRAY_NEAR(y, nearest, 16, 0);
    CHECK_OK(upsample_map(NERVE_UPSAMPLE_BED_OF_NAILS, x, y));
    CHECK_ARRAY_NEAR(y, nails, 16, 0);
}

TEST(max_unpooling_puts_values_at_the_paired_pools_argmax)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 1, 4, 4});
    int u = nerve_input(g, "u", 4, (int[]){1, 1, 2, 2});
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_MAX, 2, 2, 0);
    int p = nerve_pool(g, x, &c);
    int y = nerve_max_unpool(g, u, p), w;
    int loss = test_linear_loss(g, y, &w);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, u, 1));
    CHECK_OK(nerve_graph_compile(g, 1));
    test_set_values(g, x, (const float[]){1, 2, 6, 3, 3, 5, 2, 1, 1, 2, 2, 1, 7, 3, 4, 8}, 16);
    test_set_values(g, u, (const float[]){1, 2, 3, 4}, 4);
    for (int i = 0; i < 16; i++)
        nerve_value(g, w).data[i] = (float)(i + 1);
    CHECK_OK(nerve_forward(g, loss)); /* the pool runs first: it is an input of y */
    CHECK_ARRAY_NEAR(nerve_value(g, p).data, ((const float[]){5, 6, 7, 8}), 4, 0);
    const float want[] = {0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 4};
    CHECK_ARRAY_NEAR(nerve_value(g, y).data, want, 16, 0);
    /* du[o] = w at o's argmax: positions 5, 2, 12, 15 (0-based), weights i + 1 */
    CHECK_OK(nerve_backward(g, loss));
    CHECK_ARRAY_NEAR(nerve_grad(g, u).data, ((const float[]){6, 3, 13, 16}), 4, 0);
    nerve_graph_free(g);
}

TEST(max_unpooling_passes_gradcheck_and_rejects_a_non_max_pool)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    int x = nerve_input(g, "x", 4, (int[]){1, 3, 5, 5});
    nerve_pool_config c = pool_cfg(NERVE_POOL_MAX, 3, 2, 1, 1, 0); /* overlapping windows */
    int p = nerve_pool(g, x, &c);
    int y = nerve_max_unpool(g, p, p), w; /* SegNet-style: unpool the pooled values */
    int loss = test_linear_loss(g, y, &w);
    CHECK_OK(loss);
    nerve_pool_config avg = nerve_pool_config_make(NERVE_POOL_AVG, 2, 2, 0);
    int pa = nerve_pool(g, x, &avg);
    CHECK(nerve_max_unpool(g, pa, pa) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "max-pool") != NULL);
    CHECK(nerve_max_unpool(g, x, p) == NERVE_ERR_SHAPE); /* wrong shape */
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 2));
    fill_distinct(g, x, &r);
    test_fill_uniform(g, w, -1, 1, &r);
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

TEST(pool_configuration_errors_are_reported)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, 1, 4, 4});
    int x2 = nerve_input(g, "x2", 2, (int[]){1, 4});
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_MAX, 2, 2, 2);
    CHECK(nerve_pool(g, x, &c) == NERVE_ERR_ARG); /* padding more than half the kernel */
    c = nerve_pool_config_make(NERVE_POOL_MAX, 0, 1, 0);
    CHECK(nerve_pool(g, x, &c) == NERVE_ERR_ARG);
    c = nerve_pool_config_make(NERVE_POOL_MAX, 5, 1, 0);
    CHECK(nerve_pool(g, x, &c) == NERVE_ERR_SHAPE); /* window larger than the map */
    c = nerve_pool_config_make(NERVE_POOL_MAX, 2, 2, 0);
    CHECK(nerve_pool(g, x2, &c) == NERVE_ERR_SHAPE);
    CHECK(nerve_pool(g, x, NULL) == NERVE_ERR_ARG);
    nerve_graph_free(g);
}

TEST(pooling_follows_batch_changes_without_allocating)
{
    nerve_graph *g = nerve_graph_create();
    nerve_rng r;
    nerve_rng_seed(&r, 11);
    int x = nerve_input(g, "x", 4, (int[]){1, 2, 6, 6});
    nerve_pool_config cm = pool_cfg(NERVE_POOL_MAX, 3, 2, 1, 1, 0);
    nerve_pool_config ca = pool_cfg(NERVE_POOL_AVG, 2, 2, 0, 0, 1);
    nerve_pool_config cg = {.type = NERVE_POOL_GLOBAL_AVG};
    int pm = nerve_pool(g, x, &cm);
    int un = nerve_max_unpool(g, pm, pm);
    int pa = nerve_pool(g, un, &ca);
    int pg = nerve_pool(g, pa, &cg), w;
    int loss = test_linear_loss(g, pg, &w);
    CHECK_OK(loss);
    CHECK_OK(nerve_input_set_requires_grad(g, x, 1));
    CHECK_OK(nerve_graph_compile(g, 3));
    fill_distinct(g, x, &r);
    test_fill_uniform(g, w, -1, 1, &r);
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    float first[2 * 2];
    memcpy(first, nerve_value(g, pg).data, sizeof first); /* samples 0 and 1 */
    uint64_t allocs = nerve_alloc_count();
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK_OK(nerve_graph_set_batch(g, 2));
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK(nerve_alloc_count() == allocs);
    nerve_tensor t = nerve_value(g, pg);
    CHECK(t.dims[0] == 2);
    CHECK_ARRAY_NEAR(t.data, first, 4, 0); /* the first two samples are unchanged */
    CHECK_OK(nerve_gradcheck(g, loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(g);
}

/* ---- interior fast paths and threads ------------------------------------------------------ */

/* The definition, written independently of the library: max = the first maximum of the
 * clipped window in row-major order (a NaN wins and stays), avg = double sum / divisor.
 * Backward: dx += dy at the argmax, or dy / divisor over the window, windows in row-major
 * order (the order fixes the float sums, so results compare bit for bit). */
static void ref_pool_map(const nerve_pool_config *c, int H, int W, int OH, int OW,
                         const float *x, const float *dy, float *y, float *dx)
{
    int k = c->kernel[0], s = c->stride[0], p = c->pad[0];
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            int ys = oy * s - p, xs = ox * s - p;
            int ye = ys + k < H + p ? ys + k : H + p, xe = xs + k < W + p ? xs + k : W + p;
            int padded = (ye - ys) * (xe - xs);
            int y0 = ys > 0 ? ys : 0, x0 = xs > 0 ? xs : 0;
            int y1 = ye < H ? ye : H, x1 = xe < W ? xe : W;
            int best = y0 * W + x0, o = oy * OW + ox;
            double sum = 0;
            for (int i = y0; i < y1; i++)
                for (int j = x0; j < x1; j++) {
                    float v = x[i * W + j], b = x[best];
                    if (v > b || (isnan(v) && !isnan(b)))
                        best = i * W + j;
                    sum += v;
                }
            int divisor = c->count_include_pad ? padded : (y1 - y0) * (x1 - x0);
            if (c->type == NERVE_POOL_MAX) {
                y[o] = x[best];
                if (dx)
                    dx[best] += dy[o];
                continue;
            }
            y[o] = (float)(sum / divisor);
            for (int i = y0; dx && i < y1; i++)
                for (int j = x0; j < x1; j++)
                    dx[i * W + j] += dy[o] / (float)divisor;
        }
}

/* Pools x [N, C, H, W] with the given thread count: y and the input gradient for
 * loss = sum(y * w), w of one sample's output shape (so dy = w in every sample). wv must
 * hold C * OH * OW floats; returns the output size in oh, ow. */
static int pool_run(const nerve_pool_config *c, int threads, int N, int C, int H, int W,
                    const float *xv, const float *wv, float *y, float *dx, int *oh, int *ow)
{
    nerve_set_threads(threads);
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 4, (int[]){1, C, H, W});
    int p = nerve_pool(g, x, c), w;
    int loss = p < 0 ? p : test_linear_loss(g, p, &w);
    int st = loss < 0 ? loss : nerve_input_set_requires_grad(g, x, 1);
    if (st == NERVE_OK)
        st = nerve_graph_compile(g, N);
    if (st == NERVE_OK) {
        nerve_tensor t = nerve_value(g, p);
        *oh = t.dims[2];
        *ow = t.dims[3];
        test_set_values(g, x, xv, (size_t)N * C * H * W);
        test_set_values(g, w, wv, (size_t)C * *oh * *ow);
        st = nerve_forward(g, loss);
        memcpy(y, t.data, nerve_tensor_numel(&t) * sizeof(float));
    }
    if (st == NERVE_OK)
        st = nerve_backward(g, loss);
    if (st == NERVE_OK)
        memcpy(dx, nerve_grad(g, x).data, (size_t)N * C * H * W * sizeof(float));
    nerve_graph_free(g);
    nerve_set_threads(0);
    return st;
}

enum { FP_N = 2, FP_C = 3, FP_MAX = FP_N * FP_C * 12 * 12 };

TEST(interior_fast_paths_match_the_definition_bit_for_bit)
{
    /* The shapes with fast paths (2x2/2, 3x3/2 with padding 0 and 1) and one without
     * (3x3/1), on even and odd maps, ceil mode on and off, with and without padding in the
     * divisor; values drawn from a few integers (ties, -0 next to +0) so that the first
     * maximum matters. */
    static const int shapes[][3] = {{2, 2, 0}, {3, 2, 0}, {3, 2, 1}, {3, 1, 1}};
    static const int maps[][2] = {{8, 8}, {11, 9}, {12, 7}};
    static float xv[FP_MAX], wv[FP_MAX], y[FP_MAX], dx[FP_MAX], ry[FP_MAX], rdx[FP_MAX];
    nerve_rng r;
    nerve_rng_seed(&r, 5);
    for (int i = 0; i < FP_MAX; i++) {
        int v = (int)nerve_rng_below(&r, 5) - 2;
        xv[i] = v == 0 && (i & 1) ? -0.0f : (float)v;
        wv[i] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
    }
    for (int type = NERVE_POOL_MAX; type <= NERVE_POOL_AVG; type++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t m = 0; m < sizeof maps / sizeof maps[0]; m++)
                for (int mode = 0; mode < 4; mode++) {
                    nerve_pool_config c = pool_cfg((nerve_pool_type)type, shapes[s][0],
                                                   shapes[s][1], shapes[s][2], mode & 1, mode >> 1);
                    int H = maps[m][0], W = maps[m][1], oh, ow;
                    CHECK_OK(pool_run(&c, 1, FP_N, FP_C, H, W, xv, wv, y, dx, &oh, &ow));
                    size_t in_map = (size_t)H * W, out_map = (size_t)oh * ow;
                    memset(rdx, 0, sizeof rdx);
                    for (size_t k = 0; k < (size_t)FP_N * FP_C; k++)
                        ref_pool_map(&c, H, W, oh, ow, xv + k * in_map, wv + (k % FP_C) * out_map,
                                     ry + k * out_map, rdx + k * in_map);
                    size_t ny = FP_N * FP_C * out_map, nx = FP_N * FP_C * in_map;
                    CHECK_MSG(memcmp(y, ry, ny * sizeof(float)) == 0,
                              "type %d k%d s%d p%d on %dx%d mode %d: forward differs", type,
                              shapes[s][0], shapes[s][1], shapes[s][2], H, W, mode);
                    CHECK_MSG(memcmp(dx, rdx, nx * sizeof(float)) == 0,
                              "type %d k%d s%d p%d on %dx%d mode %d: backward differs", type,
                              shapes[s][0], shapes[s][1], shapes[s][2], H, W, mode);
                }
}

TEST(max_pool_fast_path_keeps_the_first_nan)
{
    /* 4x4 map, 2x2/2 (all windows interior): a NaN wins its window, the first of two NaNs
     * stays (its gradient goes there), and -0 before +0 stays -0. */
    const float nan = NAN;
    const float x[] = {1, nan, 0, 3, nan, 2, 0, 0, -0.0f, 0, -1, -1, 0, 0, -2, -1};
    nerve_pool_config c = pool_cfg(NERVE_POOL_MAX, 2, 2, 0, 0, 0);
    float y[4];
    int oh, ow;
    CHECK_OK(pool_map(&c, 4, 4, x, y, &oh, &ow));
    CHECK(isnan(y[0]) && y[1] == 3 && y[3] == -1);
    CHECK(y[2] == 0 && signbit(y[2])); /* the first of -0, 0, 0, 0 */
    /* The gradient goes to each window's argmax: dy = w = 1, 2, 3, 4. */
    const float w[] = {1, 2, 3, 4};
    float y2[4], dx[16];
    CHECK_OK(pool_run(&c, 1, 1, 1, 4, 4, x, w, y2, dx, &oh, &ow));
    CHECK(dx[1] == 1 && dx[4] == 0); /* the NaN at index 1 came first */
    CHECK(dx[3] == 2 && dx[8] == 3 && dx[9] == 0 && dx[10] == 4 && dx[15] == 0);
}

TEST(pooling_on_two_threads_matches_one_thread_bit_for_bit)
{
    /* [8, 16, 24, 24]: 73728 input elements, split by maps across two threads. */
    enum { N = 8, C = 16, H = 24, W = 24, COUNT = N * C * H * W };
    static float xv[COUNT], wv[C * H * W], y1[COUNT], d1[COUNT], y2[COUNT], d2[COUNT];
    nerve_rng r;
    nerve_rng_seed(&r, 9);
    for (int i = 0; i < COUNT; i++)
        xv[i] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < C * H * W; i++)
        wv[i] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
    nerve_pool_config cfgs[] = {
        pool_cfg(NERVE_POOL_MAX, 2, 2, 0, 0, 0), pool_cfg(NERVE_POOL_MAX, 3, 2, 1, 1, 0),
        pool_cfg(NERVE_POOL_AVG, 2, 2, 0, 0, 0), pool_cfg(NERVE_POOL_AVG, 3, 2, 1, 0, 1),
        pool_cfg(NERVE_POOL_L2, 3, 1, 1, 0, 0),  {.type = NERVE_POOL_GLOBAL_AVG},
        {.type = NERVE_POOL_GLOBAL_MAX},
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        int oh, ow, oh2, ow2;
        CHECK_OK(pool_run(&cfgs[k], 1, N, C, H, W, xv, wv, y1, d1, &oh, &ow));
        CHECK_OK(pool_run(&cfgs[k], 2, N, C, H, W, xv, wv, y2, d2, &oh2, &ow2));
        CHECK(oh == oh2 && ow == ow2);
        CHECK_MSG(memcmp(y1, y2, (size_t)N * C * oh * ow * sizeof(float)) == 0,
                  "config %zu: forward differs across threads", k);
        CHECK_MSG(memcmp(d1, d2, sizeof d1) == 0, "config %zu: backward differs across threads", k);
    }
}

/* Inputs of a few integers with -0, +-inf and NaNs, so that ties, "a NaN wins" and the
 * first of two NaNs all occur within and across the vectors; random output gradients. */
enum { WIDE_N = 2, WIDE_C = 2, WIDE_MAX = WIDE_N * WIDE_C * 28 * 28 };
static float wide_x[WIDE_MAX], wide_w[WIDE_MAX];

static void wide_fill(uint64_t seed)
{
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    for (int i = 0; i < WIDE_MAX; i++) {
        int v = (int)nerve_rng_below(&r, 9) - 4;
        wide_x[i] = v == 0 && (i & 1) ? -0.0f : v == 4 ? NAN : v == -4 ? -INFINITY : (float)v;
        wide_w[i] = 2.0f * nerve_rng_uniform(&r) - 1.0f;
    }
}

/* Pooling c of [2, 2, H, W] on `threads` threads against the definition, bit for bit
 * (memcmp: NaNs compare by their bits, and the outputs keep the inputs' bits). */
static void check_wide_pool(const nerve_pool_config *c, int threads, int H, int W)
{
    static float y[WIDE_MAX], dx[WIDE_MAX], ry[WIDE_MAX], rdx[WIDE_MAX];
    int oh, ow;
    CHECK(WIDE_N * WIDE_C * H * W <= WIDE_MAX);
    CHECK_OK(pool_run(c, threads, WIDE_N, WIDE_C, H, W, wide_x, wide_w, y, dx, &oh, &ow));
    size_t in_map = (size_t)H * W, out_map = (size_t)oh * ow, maps = WIDE_N * WIDE_C;
    memset(rdx, 0, sizeof rdx);
    for (size_t k = 0; k < maps; k++)
        ref_pool_map(c, H, W, oh, ow, wide_x + k * in_map, wide_w + (k % WIDE_C) * out_map,
                     ry + k * out_map, rdx + k * in_map);
    CHECK_MSG(memcmp(y, ry, maps * out_map * sizeof(float)) == 0,
              "type %d %dx%d/%d pad %d on %dx%d: forward differs", c->type, c->kernel[0],
              c->kernel[1], c->stride[0], c->pad[0], H, W);
    CHECK_MSG(memcmp(dx, rdx, maps * in_map * sizeof(float)) == 0,
              "type %d %dx%d/%d pad %d on %dx%d: backward differs", c->type, c->kernel[0],
              c->kernel[1], c->stride[0], c->pad[0], H, W);
}

TEST(two_by_two_pools_on_wide_rows_match_the_definition_bit_for_bit)
{
    /* 2x2/2 windows take a vector route of 16 outputs per step (two input rows, 32 floats
     * each): rows of 14 and 5 outputs (LeNet's maps), 16 exactly, and 18 and 33 (a full
     * step and a short tail), odd sizes leaving a border column and row; rows of at most 8
     * outputs (5, 3, 8) take several output rows per vector. */
    static const int maps[][2] = {{28, 28}, {10, 10}, {4, 32}, {5, 37}, {3, 67}, {9, 11},
                                  {14, 6}, {12, 16}};
    wide_fill(21);
    for (int type = NERVE_POOL_MAX; type <= NERVE_POOL_AVG; type++)
        for (size_t m = 0; m < sizeof maps / sizeof maps[0]; m++) {
            nerve_pool_config c = pool_cfg((nerve_pool_type)type, 2, 2, 0, m & 1, 0);
            check_wide_pool(&c, 1, maps[m][0], maps[m][1]);
        }
    /* The average's double sum starts at +0: windows of -0 average to +0. */
    float zeros[2 * 34], avg[17];
    for (int i = 0; i < 2 * 34; i++)
        zeros[i] = -0.0f;
    nerve_pool_config c = pool_cfg(NERVE_POOL_AVG, 2, 2, 0, 0, 0);
    int oh, ow;
    CHECK_OK(pool_map(&c, 2, 34, zeros, avg, &oh, &ow));
    CHECK(oh == 1 && ow == 17);
    for (int i = 0; i < 17; i++)
        CHECK_MSG(avg[i] == 0 && !signbit(avg[i]), "output %d is -0", i);
}

TEST(three_by_three_stride_two_max_pools_on_wide_rows_match_the_definition_bit_for_bit)
{
    /* 3x3/2 max windows (ResNet's stem pooling) take a vector route of 16 outputs per step
     * (2 * 16 + 1 floats of each window row): rows of 16 outputs exactly, a full step and a
     * tail, padding 0 and 1, ceil mode, on two threads. */
    static const int maps[][2] = {{6, 112}, {7, 35}, {5, 33}, {9, 67}, {4, 66}, {8, 19}};
    wide_fill(22);
    for (int pad = 0; pad <= 1; pad++)
        for (size_t m = 0; m < sizeof maps / sizeof maps[0]; m++) {
            nerve_pool_config c = pool_cfg(NERVE_POOL_MAX, 3, 2, pad, m & 1, 0);
            check_wide_pool(&c, 2, maps[m][0], maps[m][1]);
        }
}
