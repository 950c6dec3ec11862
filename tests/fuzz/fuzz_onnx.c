/* libFuzzer target: ONNX models. The input is a serialised ModelProto: the wire-format
 * reader (src/io/onnx.c) and the importer (src/model/onnx_import.c: constant folding,
 * every operator's attribute checks, graph compile). An imported model whose nodes and
 * constants are small (FUZZ_MAX_VALUES floats in all) is run on every output with inputs
 * filled with fixed values; larger ones are imported but not run, to keep executions
 * short. The first bytes are also read as a TensorProto (the .pb test-data files). A
 * failure must come with a message (fuzz_check_error). A model that parses is written again
 * by the writer of the same file (what export uses) and parsed back: the counts of its
 * parts must survive. */
#include "fuzz_common.h"

#include "../../src/core/core.h"
#include "../../src/io/onnx.h"

#define FUZZ_MAX_VALUES 20000

static size_t graph_values(nerve_graph *g)
{
    size_t total = 0;
    for (int i = 0; i < nerve_node_count(g); i++) {
        int nd, dims[NERVE_MAX_DIMS];
        if (nerve_node_shape(g, i, &nd, dims) < 0)
            abort(); /* every node of a compiled graph has a shape */
        total += nerve_shape_numel(nd, dims);
    }
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    onnx_tensor t;
    int st = onnx_tensor_parse(data, size, "fuzz.pb", &t);
    fuzz_check_error(st);
    if (st == NERVE_OK) {
        if (t.f == NULL && t.i == NULL && !t.unusable)
            abort(); /* a usable tensor has its values */
        onnx_tensor_clear(&t);
    }
    onnx_model *pm = onnx_model_parse(data, size, "fuzz.onnx");
    fuzz_check_error(pm ? NERVE_OK : -1);
    if (pm) {
        size_t len = 0;
        unsigned char *w = onnx_model_write(pm, "fuzz", &len);
        fuzz_check_error(w ? NERVE_OK : -1);
        onnx_model *back = w ? onnx_model_parse(w, len, "rewritten.onnx") : NULL;
        if (w && (!back || back->n_nodes != pm->n_nodes || back->n_init != pm->n_init ||
                  back->n_inputs != pm->n_inputs || back->n_outputs != pm->n_outputs ||
                  back->n_meta != pm->n_meta || back->opset != pm->opset))
            abort(); /* what the writer wrote reads back */
        onnx_model_free(back);
        nerve_xfree(w);
        onnx_model_free(pm);
    }
    nerve_onnx *m = nerve_import_onnx_buffer(data, size, "fuzz.onnx", 2);
    if (!m) {
        fuzz_check_error(-1);
        return 0;
    }
    nerve_graph *g = nerve_onnx_graph(m);
    if (graph_values(g) <= FUZZ_MAX_VALUES) {
        for (int i = 0; i < nerve_onnx_num_inputs(m); i++) {
            nerve_tensor v = nerve_value(g, nerve_onnx_input(m, i));
            for (size_t k = 0; v.data && k < nerve_tensor_numel(&v); k++)
                v.data[k] = (float)((int)(k % 7) - 3) * 0.5f;
        }
        for (int o = 0; o < nerve_onnx_num_outputs(m); o++) {
            st = nerve_onnx_run(m, o);
            fuzz_check_error(st);
        }
    }
    nerve_onnx_free(m);
    return 0;
}
