/* ONNX import (src/io/onnx.c, src/model/onnx_import.c, docs/onnx.md): a model written
 * here byte by byte (the protobuf wire format) imports and runs; every truncation and a
 * few corruptions of it are refused with a message, never read out of bounds; tensor
 * files round-trip; `nerve run` runs a model; and the backend tests of Debian's
 * libonnx-testdata listed in tests/onnx/passing.txt all pass (scripts/deps.sh installs the
 * package; `make onnx-test` runs every test and reports per operator). */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---- a tiny protobuf writer ------------------------------------------------------------- */

typedef struct buf {
    unsigned char b[4096];
    size_t n;
} buf;

static void put_varint(buf *o, uint64_t v)
{
    do {
        unsigned char c = v & 0x7f;
        v >>= 7;
        o->b[o->n++] = c | (v ? 0x80 : 0);
    } while (v);
}
static void put_int(buf *o, int field, uint64_t v)
{
    put_varint(o, (uint64_t)field << 3);
    put_varint(o, v);
}
static void put_bytes(buf *o, int field, const void *p, size_t n)
{
    put_varint(o, (uint64_t)field << 3 | 2);
    put_varint(o, n);
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put_str(buf *o, int field, const char *s) { put_bytes(o, field, s, strlen(s)); }
static void put_msg(buf *o, int field, const buf *m) { put_bytes(o, field, m->b, m->n); }

/* ValueInfoProto of a float tensor [d0, d1]. */
static void value_info(buf *o, int field, const char *name, int d0, int d1)
{
    buf dim0 = {0}, dim1 = {0}, shape = {0}, tt = {0}, type = {0}, vi = {0};
    put_int(&dim0, 1, (uint64_t)d0);
    put_int(&dim1, 1, (uint64_t)d1);
    put_msg(&shape, 1, &dim0);
    put_msg(&shape, 1, &dim1);
    put_int(&tt, 1, 1); /* float */
    put_msg(&tt, 2, &shape);
    put_msg(&type, 1, &tt);
    put_str(&vi, 1, name);
    put_msg(&vi, 2, &type);
    put_msg(o, field, &vi);
}

/* y = Relu(x) * w + Reshape(Shape(x)) folding check: z = Reshape(y, Concat(Shape(x)[1:], [-1]))
 * Simplified: model of two nodes, y = Relu(x) and z = Add(y, w) with w an initializer [3]. */
static void build_model(buf *m)
{
    buf node1 = {0}, node2 = {0}, init = {0}, graph = {0}, opset = {0};
    put_str(&node1, 1, "x");
    put_str(&node1, 2, "y");
    put_str(&node1, 4, "Relu");
    put_str(&node2, 1, "y");
    put_str(&node2, 1, "w");
    put_str(&node2, 2, "z");
    put_str(&node2, 4, "Add");
    put_int(&init, 1, 3); /* dims */
    put_int(&init, 2, 1); /* float */
    put_str(&init, 8, "w");
    const float w[3] = {0.5f, -1.0f, 2.0f};
    put_bytes(&init, 9, w, sizeof w); /* raw_data, little-endian */
    put_msg(&graph, 1, &node1);
    put_msg(&graph, 1, &node2);
    put_str(&graph, 2, "g");
    put_msg(&graph, 5, &init);
    value_info(&graph, 11, "x", 2, 3);
    value_info(&graph, 12, "z", 2, 3);
    put_int(&opset, 2, 13);
    memset(m, 0, sizeof *m);
    put_int(m, 1, 8); /* ir_version */
    put_msg(m, 7, &graph);
    put_msg(m, 8, &opset);
}

TEST(onnx_model_written_by_hand_imports_and_runs)
{
    buf m;
    build_model(&m);
    nerve_onnx *o = nerve_import_onnx_buffer(m.b, m.n, "hand.onnx", 1);
    CHECK(o != NULL);
    CHECK(nerve_onnx_opset(o) == 13);
    CHECK(nerve_onnx_num_inputs(o) == 1 && nerve_onnx_num_outputs(o) == 1);
    CHECK(!strcmp(nerve_onnx_input_name(o, 0), "x") && !strcmp(nerve_onnx_output_name(o, 0), "z"));
    nerve_graph *g = nerve_onnx_graph(o);
    int nd, dims[NERVE_MAX_DIMS];
    CHECK_OK(nerve_onnx_output_shape(o, 0, &nd, dims));
    CHECK(nd == 2 && dims[0] == 2 && dims[1] == 3);
    const float x[6] = {-1, 2, 3, 4, -5, 0.25f};
    memcpy(nerve_value(g, nerve_onnx_input(o, 0)).data, x, sizeof x);
    CHECK_OK(nerve_onnx_run(o, 0));
    const float want[6] = {0.5f, 1, 5, 4.5f, -1, 2.25f};
    CHECK_ARRAY_NEAR(nerve_value(g, nerve_onnx_output(o, 0)).data, want, 6, 0);
    /* the initializer is a parameter of the graph under its ONNX name */
    int w = nerve_node_find(g, "w");
    CHECK(w >= 0 && nerve_node_kind(g, w) == NERVE_NODE_PARAM);
    nerve_onnx_free(o);
    CHECK(nerve_import_onnx_buffer(m.b, m.n, "hand.onnx", 0) == NULL);
}

TEST(onnx_reader_refuses_every_truncation_and_corruption_with_a_message)
{
    buf m;
    build_model(&m);
    /* every prefix: either a valid message (a field boundary) that the importer may still
     * refuse, or a malformed one; never a crash, always a message */
    for (size_t len = 0; len < m.n; len++) {
        nerve_onnx *o = nerve_import_onnx_buffer(m.b, len, "cut.onnx", 1);
        if (o) {
            nerve_onnx_free(o);
            continue;
        }
        CHECK_MSG(strstr(nerve_last_error(), "cut.onnx") != NULL,
                  "prefix %zu: message '%s' does not name the source", len, nerve_last_error());
    }
    /* a length that runs past the end of the buffer */
    buf bad = {0};
    put_varint(&bad, 7 << 3 | 2);
    put_varint(&bad, 1000);
    CHECK(nerve_import_onnx_buffer(bad.b, bad.n, "bad.onnx", 1) == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "runs past the end") != NULL);
    /* a group (wire type 3) and a 10-byte varint overflow */
    const unsigned char group[] = {7 << 3 | 3, 0};
    CHECK(nerve_import_onnx_buffer(group, sizeof group, "group.onnx", 1) == NULL);
    const unsigned char longv[] = {1 << 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1};
    CHECK(nerve_import_onnx_buffer(longv, sizeof longv, "varint.onnx", 1) == NULL);
    CHECK(strstr(nerve_last_error(), "varint") != NULL);
    /* raw data of the wrong size: the initializer claims 3 floats, holds 2 */
    buf init = {0}, graph = {0}, model = {0};
    put_int(&init, 1, 3);
    put_int(&init, 2, 1);
    put_str(&init, 8, "w");
    put_bytes(&init, 9, (float[]){1, 2}, 8);
    put_msg(&graph, 5, &init);
    put_msg(&model, 7, &graph);
    CHECK(nerve_import_onnx_buffer(model.b, model.n, "raw.onnx", 1) == NULL);
    CHECK(strstr(nerve_last_error(), "raw_data size") != NULL);
}

TEST(onnx_import_refuses_unknown_operators_naming_the_node)
{
    buf node = {0}, graph = {0}, opset = {0}, model = {0};
    put_str(&node, 1, "x");
    put_str(&node, 2, "y");
    put_str(&node, 3, "mystery");
    put_str(&node, 4, "Frobnicate");
    put_msg(&graph, 1, &node);
    value_info(&graph, 11, "x", 2, 3);
    value_info(&graph, 12, "y", 2, 3);
    put_int(&opset, 2, 13);
    put_msg(&model, 7, &graph);
    put_msg(&model, 8, &opset);
    CHECK(nerve_import_onnx_buffer(model.b, model.n, "u.onnx", 1) == NULL);
    const char *e = nerve_last_error();
    CHECK_MSG(strstr(e, "u.onnx") && strstr(e, "mystery") && strstr(e, "Frobnicate") &&
                  strstr(e, "not supported"),
              "message: %s", e);
}

TEST(onnx_tensor_files_round_trip)
{
    char path[512];
    snprintf(path, sizeof path, "%s/t.pb", test_tmpdir());
    nerve_tensor t = nerve_tensor_create(2, (int[]){2, 3});
    for (int k = 0; k < 6; k++)
        t.data[k] = 0.5f * (float)k - 1.0f;
    CHECK_OK(nerve_onnx_tensor_save(path, &t, "values"));
    nerve_tensor u;
    CHECK_OK(nerve_onnx_tensor_load(path, &u));
    CHECK(u.ndim == 2 && u.dims[0] == 2 && u.dims[1] == 3);
    CHECK_ARRAY_NEAR(u.data, t.data, 6, 0);
    nerve_tensor_free(&t);
    nerve_tensor_free(&u);
    CHECK(nerve_onnx_tensor_load("/nonexistent/t.pb", &u) == NERVE_ERR_IO);
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

TEST(nerve_run_runs_an_onnx_model_on_text_and_pb_inputs)
{
    buf m;
    build_model(&m);
    char model[512], input[512], pb[512], cmd[2048];
    static char out[8192];
    snprintf(model, sizeof model, "%s/m.onnx", test_tmpdir());
    snprintf(input, sizeof input, "%s/x.txt", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/z.pb", test_tmpdir());
    FILE *fp = fopen(model, "wb");
    CHECK(fp && fwrite(m.b, 1, m.n, fp) == m.n);
    fclose(fp);
    fp = fopen(input, "w");
    CHECK(fp);
    fputs("-1, 2, 3\n4 -5 0.25\n", fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/nerve run %s %s 2>&1", test_build_dir(), model, input);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strstr(out, "z [2, 3]: 0.5 1 5 4.5 -1 2.25") != NULL, "output: %s", out);
    snprintf(cmd, sizeof cmd, "%s/nerve run %s %s --out %s 2>&1", test_build_dir(), model, input, pb);
    CHECK_MSG(run_cmd(cmd, out, sizeof out) == 0, "%s", out);
    nerve_tensor z;
    CHECK_OK(nerve_onnx_tensor_load(pb, &z));
    CHECK(z.ndim == 2 && z.data[2] == 5.0f);
    nerve_tensor_free(&z);
    /* too few values: refused with the counts */
    fp = fopen(input, "w");
    fputs("1 2 3\n", fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/nerve run %s %s 2>&1", test_build_dir(), model, input);
    CHECK(run_cmd(cmd, out, sizeof out) == 1);
    CHECK_MSG(strstr(out, "holds 3 values") && strstr(out, "takes 6"), "output: %s", out);
}

#define TESTDATA "/usr/share/libonnx-testdata/data"

TEST(onnx_backend_tests_listed_as_passing_pass)
{
    FILE *fp = fopen(TESTDATA "/node/test_relu/model.onnx", "rb");
    CHECK_MSG(fp != NULL, "Debian's libonnx-testdata is not installed (scripts/deps.sh installs "
                          "it for the tests)");
    fclose(fp);
    char cmd[1024];
    static char out[1 << 16];
    snprintf(cmd, sizeof cmd,
             "%s/onnx_node_tests -l tests/onnx/passing.txt " TESTDATA "/node " TESTDATA
             "/pytorch-converted " TESTDATA "/pytorch-operator " TESTDATA "/simple 2>&1",
             test_build_dir());
    int listed = 0;
    char line[512];
    fp = fopen("tests/onnx/passing.txt", "r");
    CHECK(fp != NULL);
    while (fgets(line, sizeof line, fp))
        listed += line[0] == 't';
    fclose(fp);
    CHECK(listed > 700);
    int rc = run_cmd(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "exit %d:\n%s", rc, out);
    char want[96];
    snprintf(want, sizeof want, "total: %d pass, 0 fail, 0 unsupported", listed);
    CHECK_MSG(strstr(out, want), "wanted '%s':\n%s", want, out);
}
