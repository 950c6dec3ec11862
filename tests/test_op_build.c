/* Operators by name (nerve_op_build, src/ops/registry.c): each name builds the node its
 * direct function builds, bit for bit in forward and backward; every name is an operator of
 * the table and documented in docs/ops.md; every malformed call is an error naming what is
 * wrong. */
#include "test.h"

#include "../src/ops/ops.h"

#include <stdlib.h>
#include <string.h>

/* x, y: inputs [2, 4, 4, 4] that want gradients. */
typedef struct {
    nerve_graph *g;
    int x, y, out;
} pair_graph;

typedef int (*build_fn)(nerve_graph *g, int x, int y, int by_name);

static int make(pair_graph *p, build_fn f, int by_name)
{
    p->g = nerve_graph_create();
    if (!p->g)
        return NERVE_ERR_NOMEM;
    int dims[] = {2, 4, 4, 4};
    p->x = nerve_input(p->g, "x", 4, dims);
    p->y = nerve_input(p->g, "y", 4, dims);
    nerve_input_set_requires_grad(p->g, p->x, 1);
    nerve_input_set_requires_grad(p->g, p->y, 1);
    p->out = f(p->g, p->x, p->y, by_name);
    return p->out;
}

/* Builds both ways, fills every leaf alike, runs forward and backward of sum(out), and
 * compares the node lists, the outputs and the inputs' gradients bit for bit. */
static int same_both_ways(build_fn f, const char *what, char *why, size_t size)
{
    pair_graph a, b;
    int st_a = make(&a, f, 0), st_b = make(&b, f, 1);
    int ok = 0;
    if (st_a < 0 || st_b < 0) {
        snprintf(why, size, "%s: build failed (%d, %d): %s", what, st_a, st_b, nerve_last_error());
        goto done;
    }
    if (nerve_node_count(a.g) != nerve_node_count(b.g)) {
        snprintf(why, size, "%s: %d nodes directly, %d by name", what, nerve_node_count(a.g),
                 nerve_node_count(b.g));
        goto done;
    }
    for (int i = 0; i < nerve_node_count(a.g); i++)
        if (strcmp(nerve_node_op(a.g, i), nerve_node_op(b.g, i)) ||
            strcmp(nerve_node_name(a.g, i), nerve_node_name(b.g, i))) {
            snprintf(why, size, "%s: node %d is %s '%s' directly, %s '%s' by name", what, i,
                     nerve_node_op(a.g, i), nerve_node_name(a.g, i), nerve_node_op(b.g, i),
                     nerve_node_name(b.g, i));
            goto done;
        }
    int dims[NERVE_MAX_DIMS], nd = 0;
    nerve_node_shape(a.g, a.out, &nd, dims);
    int loss_a = nd == 0 ? a.out : nerve_sum(a.g, a.out, NERVE_AXIS_ALL, 0);
    int loss_b = nd == 0 ? b.out : nerve_sum(b.g, b.out, NERVE_AXIS_ALL, 0);
    if (loss_a < 0 || loss_b < 0 || nerve_graph_compile(a.g, 2) < 0 ||
        nerve_graph_compile(b.g, 2) < 0) {
        snprintf(why, size, "%s: compile failed: %s", what, nerve_last_error());
        goto done;
    }
    for (int i = 0; i < nerve_node_count(a.g); i++) {
        if (nerve_node_kind(a.g, i) == NERVE_NODE_OP)
            continue;
        nerve_tensor ta = nerve_value(a.g, i), tb = nerve_value(b.g, i);
        for (size_t k = 0; k < nerve_tensor_numel(&ta); k++)
            ta.data[k] = tb.data[k] = test_pseudo(k, 7u * (unsigned)i + 1u);
    }
    if (nerve_forward(a.g, loss_a) < 0 || nerve_forward(b.g, loss_b) < 0 ||
        nerve_backward(a.g, loss_a) < 0 || nerve_backward(b.g, loss_b) < 0) {
        snprintf(why, size, "%s: forward/backward failed: %s", what, nerve_last_error());
        goto done;
    }
    nerve_tensor va = nerve_value(a.g, loss_a), vb = nerve_value(b.g, loss_b);
    if (nerve_tensor_numel(&va) != nerve_tensor_numel(&vb) ||
        memcmp(va.data, vb.data, nerve_tensor_numel(&va) * sizeof(float))) {
        snprintf(why, size, "%s: outputs differ (%g vs %g)", what, va.data[0], vb.data[0]);
        goto done;
    }
    int inputs[] = {a.x, a.y};
    for (int k = 0; k < 2; k++) {
        nerve_tensor ga = nerve_grad(a.g, inputs[k]), gb = nerve_grad(b.g, inputs[k]);
        if ((ga.data == NULL) != (gb.data == NULL) ||
            (ga.data && memcmp(ga.data, gb.data, nerve_tensor_numel(&ga) * sizeof(float)))) {
            snprintf(why, size, "%s: gradients of input %d differ", what, k);
            goto done;
        }
    }
    ok = 1;
done:
    nerve_graph_free(a.g);
    nerve_graph_free(b.g);
    return ok;
}

#define I(n, v) nerve_attr_int(n, v)
#define F(n, v) nerve_attr_float(n, v)
#define S(n, v) nerve_attr_string(n, v)
#define BUILD(op, ins, attrs)                                                           \
    nerve_op_build(g, op, (const int[])ins, (int)(sizeof((int[])ins) / sizeof(int)),    \
                   (const nerve_attr[])attrs,                                           \
                   (int)(sizeof((nerve_attr[])attrs) / sizeof(nerve_attr)))
#define BUILD0(op, ins)                                                                 \
    nerve_op_build(g, op, (const int[])ins, (int)(sizeof((int[])ins) / sizeof(int)), NULL, 0)
#define ARGS(...) {__VA_ARGS__}

static int c_add(nerve_graph *g, int x, int y, int n) { return n ? BUILD0("add", ARGS(x, y)) : nerve_add(g, x, y); }
static int c_sub(nerve_graph *g, int x, int y, int n) { return n ? BUILD0("sub", ARGS(x, y)) : nerve_sub(g, x, y); }
static int c_mul(nerve_graph *g, int x, int y, int n) { return n ? BUILD0("mul", ARGS(x, y)) : nerve_mul(g, x, y); }
static int c_div(nerve_graph *g, int x, int y, int n)
{
    int d = nerve_affine(g, y, 0.25f, 2.0f); /* away from zero */
    return n ? BUILD0("div", ARGS(x, d)) : nerve_div(g, x, d);
}
static int c_affine(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("affine", ARGS(x), ARGS(F("scale", 2.5f), F("shift", -1.0f)))
             : nerve_affine(g, x, 2.5f, -1.0f);
}
static int c_sum(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("sum", ARGS(x), ARGS(I("axis", 1), I("keepdim", 1))) : nerve_sum(g, x, 1, 1);
}
static int c_mean(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("mean", ARGS(x), ARGS(I("axis", -1))) : nerve_mean(g, x, -1, 0);
}
static int c_reshape(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int64_t shape[] = {0, -1, 8};
    return n ? BUILD("reshape", ARGS(x), ARGS(nerve_attr_ints("shape", shape, 3)))
             : nerve_reshape(g, x, 3, (int[]){0, -1, 8});
}
static int c_flatten(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD0("flatten", ARGS(x)) : nerve_flatten(g, x);
}
static int c_concat(nerve_graph *g, int x, int y, int n)
{
    return n ? BUILD("concat", ARGS(x, y, x), ARGS(I("axis", 1)))
             : nerve_concat(g, 3, (int[]){x, y, x}, 1);
}
static int c_slice(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("slice", ARGS(x), ARGS(I("end", 3), I("axis", 2), I("start", 1)))
             : nerve_slice(g, x, 2, 1, 3);
}
static int c_transpose(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int64_t perm[] = {0, 2, 3, 1};
    return n ? BUILD("transpose", ARGS(x), ARGS(nerve_attr_ints("perm", perm, 4)))
             : nerve_transpose(g, x, (int[]){0, 2, 3, 1});
}
static int c_softmax(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("softmax", ARGS(x), ARGS(I("axis", 1))) : nerve_softmax(g, x, 1);
}
static int c_log_softmax(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("log_softmax", ARGS(x), ARGS(I("axis", -1))) : nerve_log_softmax(g, x, -1);
}
static int c_dropout(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("dropout", ARGS(x), ARGS(F("p", 0.3f), I("spatial", 1)))
             : nerve_dropout(g, x, 0.3f, 1);
}
static int c_upsample(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("upsample", ARGS(x), ARGS(I("scale", 2), S("mode", "bilinear")))
             : nerve_upsample(g, x, 2, NERVE_UPSAMPLE_BILINEAR);
}
static int c_upsample_default(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("upsample", ARGS(x), ARGS(I("scale", 3)))
             : nerve_upsample(g, x, 3, NERVE_UPSAMPLE_NEAREST);
}
static int c_d2s(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("depth_to_space", ARGS(x), ARGS(I("block", 2))) : nerve_depth_to_space(g, x, 2);
}
static int c_s2d(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("space_to_depth", ARGS(x), ARGS(I("block", 2))) : nerve_space_to_depth(g, x, 2);
}
static int c_lrn(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    return n ? BUILD("lrn", ARGS(x), ARGS(I("size", 3), F("k", 1.0f)))
             : nerve_lrn(g, x, 3, NERVE_LRN_ALPHA, NERVE_LRN_BETA, 1.0f, 0);
}
static int c_mse(nerve_graph *g, int x, int y, int n)
{
    return n ? BUILD("mse_loss", ARGS(x, y), ARGS(I("half", 1))) : nerve_mse_loss(g, x, y, 1);
}
static int c_l1(nerve_graph *g, int x, int y, int n) { return n ? BUILD0("l1_loss", ARGS(x, y)) : nerve_l1_loss(g, x, y); }
static int c_bce(nerve_graph *g, int x, int y, int n)
{
    int t = nerve_affine(g, y, 0.5f, 0.5f); /* targets in [0, 1] */
    return n ? BUILD0("bce_logits_loss", ARGS(x, t)) : nerve_bce_logits_loss(g, x, t);
}
static int c_matmul(nerve_graph *g, int x, int y, int n)
{
    int a = nerve_flatten(g, x), b = nerve_flatten(g, y);
    return n ? BUILD("matmul", ARGS(a, b), ARGS(I("trans_b", 1))) : nerve_matmul(g, a, b, 0, 1);
}
static int c_dense(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int w = nerve_param(g, "w", 2, (int[]){3, 64});
    int bias = nerve_param(g, "b", 1, (int[]){3});
    return n ? BUILD0("dense", ARGS(x, w, bias)) : nerve_dense(g, x, w, bias);
}
static int c_dense_no_bias(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int w = nerve_param(g, "w", 2, (int[]){3, 64});
    return n ? BUILD0("dense", ARGS(x, w, -1)) : nerve_dense(g, x, w, -1);
}
static int c_prelu(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int s = nerve_param(g, "slope", 1, (int[]){4});
    return n ? BUILD0("prelu", ARGS(x, s)) : nerve_prelu(g, x, s);
}
static int c_zscore(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int m = nerve_state(g, "m", 3, (int[]){4, 4, 4}), s = nerve_state(g, "s", 3, (int[]){4, 4, 4});
    return n ? BUILD0("zscore", ARGS(x, m, s)) : nerve_zscore(g, x, m, s);
}
static int c_batchnorm(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int c[] = {4};
    int ga = nerve_param(g, "g", 1, c), be = nerve_param(g, "b", 1, c);
    int rm = nerve_state(g, "rm", 1, c), rv = nerve_state(g, "rv", 1, c);
    return n ? BUILD("batchnorm", ARGS(x, ga, be, rm, rv), ARGS(F("momentum", 0.1f), F("eps", 1e-5f)))
             : nerve_batchnorm(g, x, ga, be, rm, rv, 0.1f, 1e-5f);
}

static int c_conv(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int w = nerve_param(g, "w", 4, (int[]){6, 2, 3, 2}), b = nerve_param(g, "b", 1, (int[]){6});
    int64_t strides[] = {2, 1}, pads[] = {1, 0, 2, 1}, dil[] = {1, 2};
    nerve_conv_config c = nerve_conv_default();
    c.stride[0] = 2, c.pad_begin[0] = 1, c.pad_end[0] = 2, c.pad_end[1] = 1, c.dilation[1] = 2;
    c.groups = 2;
    return n ? BUILD("conv", ARGS(x, w, b),
                     ARGS(nerve_attr_ints("strides", strides, 2), nerve_attr_ints("pads", pads, 4),
                          nerve_attr_ints("dilations", dil, 2), I("group", 2)))
             : nerve_conv(g, x, w, b, &c);
}
static int c_conv_same_flip(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int w = nerve_param(g, "w", 4, (int[]){3, 4, 2, 2});
    nerve_conv_config c = nerve_conv_default();
    c.same = 1, c.flip = 1;
    return n ? BUILD("conv", ARGS(x, w, -1), ARGS(I("same", 1), I("flip", 1)))
             : nerve_conv(g, x, w, -1, &c);
}
static int c_conv_transpose(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int w = nerve_param(g, "w", 4, (int[]){4, 3, 3, 3});
    int64_t strides[] = {2, 2}, opad[] = {1, 0};
    nerve_conv_config c = nerve_conv_default();
    c.stride[0] = c.stride[1] = 2;
    return n ? BUILD("conv_transpose", ARGS(x, w),
                     ARGS(nerve_attr_ints("strides", strides, 2),
                          nerve_attr_ints("output_padding", opad, 2)))
             : nerve_conv_transpose(g, x, w, -1, &c, (int[]){1, 0});
}
static int c_local(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int w = nerve_param(g, "w", 5, (int[]){9, 2, 4, 2, 2});
    nerve_conv_config c = nerve_conv_default();
    return n ? BUILD0("local", ARGS(x, w)) : nerve_local(g, x, w, -1, &c);
}
static int c_pool_max(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int64_t k[] = {3, 2}, s[] = {2, 1}, p[] = {1, 0};
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_MAX, 3, 2, 1);
    c.kernel[1] = 2, c.stride[1] = 1, c.pad[1] = 0, c.ceil_mode = 1;
    return n ? BUILD("pool", ARGS(x), ARGS(S("type", "max"), nerve_attr_ints("kernel", k, 2),
                                           nerve_attr_ints("strides", s, 2),
                                           nerve_attr_ints("pads", p, 2), I("ceil_mode", 1)))
             : nerve_pool(g, x, &c);
}
static int c_pool_avg(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    int64_t k[] = {2, 2}, p[] = {1, 1};
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_AVG, 2, 0, 1);
    c.count_include_pad = 1;
    return n ? BUILD("pool", ARGS(x), ARGS(S("type", "avg"), nerve_attr_ints("kernel", k, 2),
                                           nerve_attr_ints("pads", p, 2),
                                           I("count_include_pad", 1)))
             : nerve_pool(g, x, &c);
}
static int c_pool_global(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    nerve_pool_config c = nerve_pool_config_make(NERVE_POOL_GLOBAL_AVG, 1, 0, 0);
    return n ? BUILD("pool", ARGS(x), ARGS(S("type", "global_avg"))) : nerve_pool(g, x, &c);
}

/* Every activation type, through the name nerve_act_name gives it and its parameters. */
static nerve_act act_under_test;
static int c_activation(nerve_graph *g, int x, int y, int n)
{
    (void)y;
    nerve_act a = act_under_test;
    return n ? BUILD("activation", ARGS(x), ARGS(S("type", nerve_act_name(a.type)),
                                                 F("alpha", a.alpha), F("beta", a.beta)))
             : nerve_activation(g, x, a);
}

TEST(op_build_by_name_matches_the_direct_functions_bit_for_bit)
{
    static const struct {
        const char *name;
        build_fn f;
    } cases[] = {
        {"add", c_add}, {"sub", c_sub}, {"mul", c_mul}, {"div", c_div}, {"affine", c_affine},
        {"sum", c_sum}, {"mean", c_mean}, {"reshape", c_reshape}, {"flatten", c_flatten},
        {"concat", c_concat}, {"slice", c_slice}, {"transpose", c_transpose},
        {"softmax", c_softmax}, {"log_softmax", c_log_softmax}, {"dropout", c_dropout},
        {"upsample", c_upsample}, {"upsample (default mode)", c_upsample_default},
        {"depth_to_space", c_d2s}, {"space_to_depth", c_s2d}, {"lrn", c_lrn},
        {"mse_loss", c_mse}, {"l1_loss", c_l1}, {"bce_logits_loss", c_bce},
        {"matmul", c_matmul}, {"dense", c_dense}, {"dense without bias", c_dense_no_bias},
        {"prelu", c_prelu}, {"zscore", c_zscore}, {"batchnorm", c_batchnorm},
        {"conv", c_conv}, {"conv same flip", c_conv_same_flip},
        {"conv_transpose", c_conv_transpose}, {"local", c_local}, {"pool max", c_pool_max},
        {"pool avg", c_pool_avg}, {"pool global_avg", c_pool_global},
    };
    char why[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(same_both_ways(cases[i].f, cases[i].name, why, sizeof why), "%s", why);
    for (int t = 0; t < NERVE_ACT_COUNT; t++) {
        act_under_test = nerve_act_default((nerve_act_type)t);
        CHECK_MSG(same_both_ways(c_activation, nerve_act_name((nerve_act_type)t), why, sizeof why),
                  "%s", why);
    }
    /* Parameters other than the defaults, including a leaky slope that keeps it out of place. */
    act_under_test = (nerve_act){NERVE_ACT_LEAKY_RELU, -0.5f, 0.0f};
    CHECK_MSG(same_both_ways(c_activation, "leaky_relu -0.5", why, sizeof why), "%s", why);
    act_under_test = (nerve_act){NERVE_ACT_ELU, 0.7f, 0.0f};
    CHECK_MSG(same_both_ways(c_activation, "elu 0.7", why, sizeof why), "%s", why);
}

TEST(op_build_names_are_operators_of_the_table_and_documented)
{
    FILE *fp = fopen("docs/ops.md", "rb");
    CHECK_MSG(fp != NULL, "docs/ops.md is missing");
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof doc - 1, fp);
    fclose(fp);
    doc[n] = 0;
    int count = 0;
    for (const char *name; (name = op_buildable_name(count)); count++) {
        CHECK_MSG(op_find(name) != NULL, "'%s' builds by name but is no operator", name);
        char row[96];
        snprintf(row, sizeof row, "| `%s` |", name);
        CHECK_MSG(strstr(doc, row), "docs/ops.md has no row '%s'", row);
    }
    CHECK(count >= 30);
    CHECK(op_buildable_name(-1) == NULL);
    /* And every row of the doc's table is a name the table knows. */
    int rows = 0;
    for (const char *p = strstr(doc, "\n| `"); p; p = strstr(p + 1, "\n| `")) {
        char name[64];
        if (sscanf(p, "\n| `%63[a-z0-9_]`", name) != 1)
            continue;
        rows++;
        int known = 0;
        for (int i = 0; op_buildable_name(i); i++)
            known |= strcmp(op_buildable_name(i), name) == 0;
        CHECK_MSG(known, "docs/ops.md lists '%s', which nerve_op_build does not know", name);
    }
    CHECK(rows == count);
}

/* Expects a build to fail with NERVE_ERR_ARG, a message holding every fragment, and no node
 * added. */
static int fails_with(nerve_graph *g, int st, const char *a, const char *b, char *why, size_t size,
                      int nodes_before)
{
    const char *msg = nerve_last_error();
    if (st != NERVE_ERR_ARG || !strstr(msg, a) || (b && !strstr(msg, b)) ||
        nerve_node_count(g) != nodes_before) {
        snprintf(why, size, "status %d, message '%s' (wanted '%s'%s%s), %d nodes (had %d)", st, msg,
                 a, b ? " and " : "", b ? b : "", nerve_node_count(g), nodes_before);
        return 0;
    }
    return 1;
}

TEST(op_build_errors_name_the_operator_and_the_attribute)
{
    nerve_graph *g = nerve_graph_create();
    int x = nerve_input(g, "x", 2, (int[]){2, 3});
    int y = nerve_input(g, "y", 2, (int[]){2, 3});
    int n0 = nerve_node_count(g);
    char why[512];
    int64_t big[NERVE_MAX_DIMS + 1] = {0};
    int64_t perm3[] = {0, 1, 2};
#define EXPECT_FAIL(call, a, b)                                                         \
    do {                                                                                \
        int st_ = (call);                                                               \
        if (!fails_with(g, st_, a, b, why, sizeof why, n0)) {                           \
            nerve_graph_free(g);                                                        \
            CHECK_MSG(0, "%s: %s", #call, why);                                         \
        }                                                                               \
    } while (0)
    EXPECT_FAIL(BUILD0("frobnicate", ARGS(x)), "unknown operator 'frobnicate'", NULL);
    EXPECT_FAIL(BUILD0("rnn", ARGS(x)), "'rnn' cannot be built by name", NULL);
    EXPECT_FAIL(BUILD0("add", ARGS(x, y, x)), "'add' takes 2 inputs, not 3", NULL);
    EXPECT_FAIL(BUILD("concat", ARGS(x), ARGS(I("axis", 1), I("axes", 1))), "'concat'",
         "no attribute 'axes' (its attributes: axis)");
    EXPECT_FAIL(BUILD("add", ARGS(x, y), ARGS(I("axis", 1))), "no attribute 'axis'", "attributes: none");
    EXPECT_FAIL(BUILD("concat", ARGS(x, y), ARGS(F("axis", 1.0f))), "attribute 'axis' must be an int",
         "not a float");
    EXPECT_FAIL(BUILD("activation", ARGS(x), ARGS(S("type", "relu"), I("alpha", 1))),
         "'alpha' must be a float", "not an int");
    EXPECT_FAIL(BUILD("reshape", ARGS(x), ARGS(I("shape", 6))), "'shape' must be a list of ints", NULL);
    EXPECT_FAIL(BUILD("upsample", ARGS(x), ARGS(I("scale", 2), I("mode", 0))), "'mode' must be a string",
         NULL);
    EXPECT_FAIL(BUILD0("concat", ARGS(x, y)), "'concat' needs attribute 'axis' (an int)", NULL);
    EXPECT_FAIL(BUILD("concat", ARGS(x, y), ARGS(I("axis", 1), I("axis", 0))), "'axis' is given twice",
         NULL);
    EXPECT_FAIL(BUILD("concat", ARGS(x, y), ARGS(I("axis", (int64_t)1 << 40))), "'axis' = 1099511627776",
         "out of range");
    EXPECT_FAIL(BUILD("reshape", ARGS(x), ARGS(nerve_attr_ints("shape", big, NERVE_MAX_DIMS + 1))),
         "'shape' has", NULL);
    EXPECT_FAIL(BUILD("transpose", ARGS(x), ARGS(nerve_attr_ints("perm", perm3, 3))), "'perm' has 3",
         "2 axes");
    EXPECT_FAIL(BUILD("activation", ARGS(x), ARGS(S("type", "relux"))), "'relux'", NULL);
    EXPECT_FAIL(BUILD("upsample", ARGS(x), ARGS(I("scale", 2), S("mode", "cubic"))), "'cubic'", NULL);
    EXPECT_FAIL(BUILD("activation", ARGS(x), ARGS(nerve_attr_string(NULL, "relu"))), "has no name", NULL);
    EXPECT_FAIL(BUILD("activation", ARGS(x), ARGS(nerve_attr_string("type", NULL))), "null string", NULL);
    EXPECT_FAIL(BUILD("activation", ARGS(x), ARGS(((nerve_attr){.name = "type", .type = (nerve_attr_type)99}))),
         "must be a string", "of no known type");
    int w = nerve_param(g, "w", 4, (int[]){3, 3, 2, 2});
    int x4 = nerve_input(g, "x4", 4, (int[]){1, 3, 5, 5});
    n0 = nerve_node_count(g);
    int64_t two[] = {1, 1}, three[] = {1, 1, 1};
    EXPECT_FAIL(BUILD("conv", ARGS(x4, w), ARGS(nerve_attr_ints("strides", three, 3))),
                "'conv': attribute 'strides' has 3 values", "2 spatial axes");
    EXPECT_FAIL(BUILD("conv", ARGS(x4, w), ARGS(nerve_attr_ints("pads", two, 2))),
                "'pads' has 2 values", "(4 values)");
    EXPECT_FAIL(BUILD("conv", ARGS(x4, w), ARGS(I("groups", 1))), "no attribute 'groups'",
                "strides, pads, dilations, group, same, flip");
    EXPECT_FAIL(BUILD("pool", ARGS(x4), ARGS(S("type", "maximum"))), "'maximum'", "global_max");
    EXPECT_FAIL(BUILD("pool", ARGS(x4), ARGS(S("type", "max"))), "type 'max' needs attribute 'kernel'",
                NULL);
    EXPECT_FAIL(BUILD("pool", ARGS(x4), ARGS(S("type", "avg"), nerve_attr_ints("kernel", three, 3))),
                "'kernel' has 3 values", NULL);
    EXPECT_FAIL(nerve_op_build(g, "add", NULL, 2, NULL, 0), "'add': null input list", NULL);
    EXPECT_FAIL(nerve_op_build(g, "flatten", &x, 1, NULL, 3), "'flatten': 3 attributes", NULL);
    EXPECT_FAIL(nerve_op_build(NULL, "add", (int[]){x, y}, 2, NULL, 0), "null graph", NULL);
    EXPECT_FAIL(nerve_op_build(g, NULL, (int[]){x, y}, 2, NULL, 0), "operator name", NULL);
    /* An operator's own checks still apply (a shape error is the direct function's). */
    int bad = BUILD("concat", ARGS(x, y), ARGS(I("axis", 5)));
    CHECK(bad < 0 && nerve_node_count(g) == n0);
    /* A well-formed call succeeds after the failures. */
    CHECK(BUILD("concat", ARGS(x, y), ARGS(I("axis", 1))) == n0);
    nerve_graph_free(g);
}
