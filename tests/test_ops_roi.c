/* RoI pooling and RoIAlign (src/ops/roi.c): torchvision's roi_pool / roi_align outputs and
 * input gradients on random maps and boxes (tests/data/roi_reference.h, from
 * tests/gen_roi_reference.py), a hand-worked case, finite-difference gradient checks,
 * shape errors and the operator table. */
#include "test.h"

#include "data/roi_reference.h"

#include <stdint.h>
#include <string.h>

enum { N = 2, C = 3, H = 7, W = 7, R = 3 };

static uint32_t ref_state;
static float ref_next(void)
{
    uint32_t x = ref_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    ref_state = x;
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

static int leaf(nerve_graph *g, int kind, const char *name, int ndim, const int *dims,
                const float *data)
{
    int id = kind == NERVE_NODE_PARAM ? nerve_param(g, name, ndim, dims)
                                      : nerve_state(g, name, ndim, dims);
    if (id >= 0)
        memcpy(nerve_value(g, id).data, data, nerve_shape_numel(ndim, dims) * sizeof(float));
    return id;
}

typedef struct {
    nerve_graph *g;
    int x, y, loss;
} roi_net;

/* x, boxes and loss weights drawn as the generator draws them; kind 0 pool, 1 align. */
static int build(roi_net *m, int kind, int oh, int ow, float scale, int ratio, int aligned)
{
    static float x[N * C * H * W], boxes[N * R * 4], wy[N * R * C * 9];
    ref_state = ROIREF_SEED;
    for (int i = 0; i < N * C * H * W; i++)
        x[i] = ref_next() * 2.0f - 1.0f;
    for (int i = 0; i < N * R; i++) {
        float x1 = ref_next() * 16.0f - 2.0f, y1 = ref_next() * 16.0f - 2.0f;
        float x2 = x1 + ref_next() * 10.0f, y2 = y1 + ref_next() * 10.0f;
        boxes[4 * i] = x1, boxes[4 * i + 1] = y1, boxes[4 * i + 2] = x2, boxes[4 * i + 3] = y2;
    }
    int ny = N * R * C * oh * ow;
    for (int i = 0; i < ny; i++)
        wy[i] = ref_next() * 2.0f - 1.0f;
    m->g = nerve_graph_create();
    m->x = leaf(m->g, NERVE_NODE_PARAM, "x", 4, (int[]){N, C, H, W}, x);
    int b = leaf(m->g, NERVE_NODE_STATE, "boxes", 3, (int[]){N, R, 4}, boxes);
    m->y = kind == 0 ? nerve_roi_pool(m->g, m->x, b, oh, ow, scale)
                     : nerve_roi_align(m->g, m->x, b, oh, ow, scale, ratio, aligned);
    if (m->y < 0)
        return m->y;
    int w = leaf(m->g, NERVE_NODE_STATE, "wy", 5, (int[]){N, R, C, oh, ow}, wy);
    m->loss = nerve_sum(m->g, nerve_mul(m->g, m->y, w), NERVE_AXIS_ALL, 0);
    if (m->loss < 0)
        return m->loss;
    return nerve_graph_compile(m->g, 1);
}

static void check_reference(int kind, int oh, int ow, float scale, int ratio, int aligned,
                            const float *want_y, const float *want_dx)
{
    roi_net m;
    CHECK_OK(build(&m, kind, oh, ow, scale, ratio, aligned));
    CHECK_OK(nerve_forward(m.g, m.loss));
    CHECK_OK(nerve_backward(m.g, m.loss));
    nerve_tensor y = nerve_value(m.g, m.y), dx = nerve_grad(m.g, m.x);
    CHECK(y.ndim == 5 && y.dims[0] == N && y.dims[1] == R && y.dims[2] == C && y.dims[3] == oh &&
          y.dims[4] == ow);
    CHECK_ARRAY_NEAR(y.data, want_y, N * R * C * oh * ow, 2e-6);
    CHECK_ARRAY_NEAR(dx.data, want_dx, N * C * H * W, 2e-6);
    int nonzero = 0;
    for (int i = 0; i < N * C * H * W; i++)
        nonzero += dx.data[i] != 0.0f;
    CHECK(nonzero > 10); /* the boxes reach the maps */
    nerve_graph_free(m.g);
}

TEST(roi_pool_matches_torchvision_forward_and_backward)
{
    check_reference(0, 2, 3, 0.5f, 0, 0, roiref_pool_y, roiref_pool_dx);
}

TEST(roi_align_matches_torchvision_fixed_and_adaptive_sampling)
{
    check_reference(1, 2, 3, 0.5f, 2, 0, roiref_align_y, roiref_align_dx);
    check_reference(1, 3, 2, 0.5f, -1, 1, roiref_align_adaptive_y, roiref_align_adaptive_dx);
}

TEST(roi_pool_and_align_by_hand_on_a_4x4_ramp)
{
    /* map[y][x] = 4y + x; the box (0, 0)-(3, 3) at scale 1 covers the whole map: roi_pool
     * rounds it to 4 x 4 cells and takes the max of each 2 x 2 quadrant */
    float map[16], box[4] = {0, 0, 3, 3};
    for (int i = 0; i < 16; i++)
        map[i] = (float)i;
    nerve_graph *g = nerve_graph_create();
    int x = leaf(g, NERVE_NODE_PARAM, "x", 4, (int[]){1, 1, 4, 4}, map);
    int b = leaf(g, NERVE_NODE_STATE, "b", 3, (int[]){1, 1, 4}, box);
    int p = nerve_roi_pool(g, x, b, 2, 2, 1.0f);
    int a = nerve_roi_align(g, x, b, 2, 2, 1.0f, 1, 0);
    CHECK_OK(p);
    CHECK_OK(a);
    CHECK_OK(nerve_graph_compile(g, 1));
    CHECK_OK(nerve_forward(g, p));
    CHECK_OK(nerve_forward(g, a));
    const float want_p[4] = {5, 7, 13, 15};
    /* align: box 3 x 3 cells, bins 1.5 wide, one sample at 0.75 and 2.25 per axis:
     * 4y + x = 3.75, 5.25, 9.75, 11.25 (bilinear on a linear map is exact) */
    const float want_a[4] = {3.75f, 5.25f, 9.75f, 11.25f};
    CHECK_ARRAY_NEAR(nerve_value(g, p).data, want_p, 4, 0);
    CHECK_ARRAY_NEAR(nerve_value(g, a).data, want_a, 4, 1e-6);
    nerve_graph_free(g);
}

TEST(roi_pool_and_align_pass_gradcheck)
{
    roi_net m;
    CHECK_OK(build(&m, 1, 2, 3, 0.5f, 2, 0));
    CHECK_OK(nerve_gradcheck(m.g, m.loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(m.g);
    CHECK_OK(build(&m, 1, 3, 2, 0.5f, -1, 1));
    CHECK_OK(nerve_gradcheck(m.g, m.loss, 1e-2f, 1e-3f, 1e-2f));
    nerve_graph_free(m.g);
    /* max pooling is piecewise linear: random values are far from ties at eps 1e-3 */
    CHECK_OK(build(&m, 0, 2, 3, 0.5f, 0, 0));
    CHECK_OK(nerve_gradcheck(m.g, m.loss, 1e-3f, 1e-3f, 1e-2f));
    nerve_graph_free(m.g);
}

TEST(roi_ops_shape_errors_and_by_name)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_param(g, "x", 4, (int[]){2, 3, 5, 5});
    int b3 = nerve_state(g, "b3", 3, (int[]){2, 4, 3});
    int b1 = nerve_state(g, "b1", 3, (int[]){1, 4, 4});
    int b = nerve_state(g, "b", 3, (int[]){2, 4, 4});
    CHECK(x >= 0 && b3 >= 0 && b1 >= 0 && b >= 0);
    CHECK(nerve_roi_pool(g, x, b, 0, 2, 1.0f) == NERVE_ERR_ARG);
    CHECK(nerve_roi_align(g, x, b, 2, 2, 0.0f, 0, 0) == NERVE_ERR_ARG);
    /* shapes are checked as the node is added */
    CHECK(nerve_roi_pool(g, x, b3, 2, 2, 1.0f) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "[N, R, 4]") != NULL);
    CHECK(nerve_roi_align(g, x, b1, 2, 2, 1.0f, 0, 0) == NERVE_ERR_SHAPE);
    CHECK(strstr(nerve_last_error(), "1 images of boxes for 2 feature maps") != NULL);
    nerve_graph_free(g);
    /* by name: the same node as the direct call */
    g = nerve_graph_create();
    x = nerve_param(g, "x", 4, (int[]){2, 3, 5, 5});
    b = nerve_state(g, "b", 3, (int[]){2, 4, 4});
    nerve_attr at[5] = {{"out_h", NERVE_ATTR_INT, .i = 3}, {"out_w", NERVE_ATTR_INT, .i = 2},
                        {"spatial_scale", NERVE_ATTR_FLOAT, .f = 0.25f},
                        {"sampling_ratio", NERVE_ATTR_INT, .i = 2},
                        {"aligned", NERVE_ATTR_INT, .i = 1}};
    int y = nerve_op_build(g, "roi_align", (int[]){x, b}, 2, at, 5);
    CHECK_OK(y);
    CHECK_OK(nerve_op_build(g, "roi_pool", (int[]){x, b}, 2, at, 3));
    CHECK_OK(nerve_graph_compile(g, 1));
    int nd, dims[NERVE_MAX_DIMS];
    nerve_node_shape(g, y, &nd, dims);
    CHECK(nd == 5 && dims[0] == 2 && dims[1] == 4 && dims[2] == 3 && dims[3] == 3 && dims[4] == 2);
    nerve_graph_free(g);
}
