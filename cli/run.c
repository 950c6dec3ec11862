/* nerve run MODEL.onnx INPUT...: one forward pass of an imported ONNX model. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An input file: a TensorProto (.pb), else text holding numbers separated by blanks,
 * commas or newlines, which must fill the input exactly. */
static int load_input(const char *path, nerve_tensor *dst)
{
    size_t n = nerve_tensor_numel(dst), len = strlen(path);
    if (len > 3 && !strcmp(path + len - 3, ".pb")) {
        nerve_tensor t;
        if (nerve_onnx_tensor_load(path, &t) < 0)
            return cli_fail(NULL);
        size_t got = nerve_tensor_numel(&t);
        if (got != n) {
            fprintf(stderr, "nerve: %s holds %zu values; the model's input takes %zu\n", path, got, n);
            nerve_tensor_free(&t);
            return 1;
        }
        memcpy(dst->data, t.data, n * sizeof(float));
        nerve_tensor_free(&t);
        return 0;
    }
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "nerve: cannot open %s\n", path);
        return 1;
    }
    size_t k = 0;
    float v;
    int c;
    for (;;) {
        while ((c = fgetc(fp)) == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
            ;
        if (c == EOF)
            break;
        ungetc(c, fp);
        if (fscanf(fp, "%f", &v) != 1) {
            fprintf(stderr, "nerve: %s: value %zu is not a number\n", path, k + 1);
            fclose(fp);
            return 1;
        }
        if (k < n)
            dst->data[k] = v;
        k++;
    }
    fclose(fp);
    if (k != n) {
        fprintf(stderr, "nerve: %s holds %zu values; the model's input takes %zu\n", path, k, n);
        return 1;
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    const char *model = NULL, *out = NULL;
    const char *inputs[64];
    int n_inputs = 0, batch = 1;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = cli_option_value(argc, argv, &i, "--out"))) {
            out = v;
        } else if ((v = cli_option_value(argc, argv, &i, "--batch"))) {
            if ((batch = cli_parse_int("--batch", v)) < 0)
                return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve run: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!model) {
            model = argv[i];
        } else if (n_inputs < 64) {
            inputs[n_inputs++] = argv[i];
        } else {
            fprintf(stderr, "nerve run: more than 64 inputs\n");
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "usage: nerve run MODEL.onnx INPUT... [--out FILE.pb] [--batch N]\n");
        return 2;
    }
    nerve_onnx *m = nerve_import_onnx(model, batch);
    if (!m)
        return cli_fail(NULL);
    nerve_graph *g = nerve_onnx_graph(m);
    int rc = 0;
    if (n_inputs != nerve_onnx_num_inputs(m)) {
        fprintf(stderr, "nerve run: %s takes %d inputs, %d given:", model, nerve_onnx_num_inputs(m),
                n_inputs);
        for (int i = 0; i < nerve_onnx_num_inputs(m); i++)
            fprintf(stderr, " %s", nerve_onnx_input_name(m, i));
        fprintf(stderr, "\n");
        nerve_onnx_free(m);
        return 2;
    }
    for (int i = 0; i < n_inputs && !rc; i++) {
        nerve_tensor t = nerve_value(g, nerve_onnx_input(m, i));
        rc = load_input(inputs[i], &t);
    }
    for (int o = 0; o < nerve_onnx_num_outputs(m) && !rc; o++) {
        if (nerve_onnx_run(m, o) < 0) {
            rc = cli_fail(model);
            break;
        }
        nerve_tensor t = nerve_value(g, nerve_onnx_output(m, o));
        int nd, dims[NERVE_MAX_DIMS];
        nerve_onnx_output_shape(m, o, &nd, dims);
        t.ndim = nd;
        memcpy(t.dims, dims, sizeof dims);
        char shape[128];
        if (o == 0 && out) {
            if (nerve_onnx_tensor_save(out, &t, nerve_onnx_output_name(m, o)) < 0)
                rc = cli_fail(out);
            else
                printf("%s %s -> %s\n", nerve_onnx_output_name(m, o),
                       nerve_shape_str(nd, dims, shape, sizeof shape), out);
            continue;
        }
        printf("%s %s:", nerve_onnx_output_name(m, o), nerve_shape_str(nd, dims, shape, sizeof shape));
        for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
            printf(" %.9g", t.data[k]);
        printf("\n");
    }
    nerve_onnx_free(m);
    return rc;
}
