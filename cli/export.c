/* nerve export-c: a checkpoint as one standalone C99 source and header (docs/export-c.md). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cmd_export_c(int argc, char **argv)
{
    const char *ckpt = NULL, *dir = NULL, *name = "model", *v;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--name")))
            name = v;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve export-c: unknown option '%s' (see nerve help)\n", argv[i]);
            return 2;
        } else if (!ckpt)
            ckpt = argv[i];
        else if (!dir)
            dir = argv[i];
        else {
            fprintf(stderr, "nerve export-c: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt || !dir) {
        fprintf(stderr, "nerve export-c: usage: nerve export-c CKPT OUTDIR [--name NAME]\n");
        return 2;
    }
    if (cli_mkdirs(dir) != 0) {
        fprintf(stderr, "nerve export-c: cannot create directory '%s'\n", dir);
        return 1;
    }
    nerve_model *m = nerve_model_load(ckpt);
    if (!m)
        return cli_fail(NULL);
    nerve_export_c_info info;
    int rc = 0;
    if (nerve_export_c(m, dir, name, &info) != NERVE_OK)
        rc = cli_fail("export-c");
    else {
        printf("wrote %s/%s.c and %s/%s.h\n", dir, name, dir, name);
        printf("input: %zu floats, output: %zu floats%s\n", info.in_numel, info.out_numel,
               info.carried ? " (a step model: recurrent state carried between calls)" : "");
        printf("flash, constants: %zu bytes (plus the compiled code)\n", info.weight_bytes);
        printf("RAM, arena: %zu bytes (plus the stack)\n", info.arena_bytes);
    }
    nerve_model_free(m);
    return rc;
}

/* nerve export-onnx and nerve convert (docs/onnx.md, "Export"). */

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* A checkpoint, or a cfg built with freshly initialised weights. */
static nerve_model *load_model(const char *path)
{
    return has_suffix(path, ".cfg") ? nerve_model_load_cfg(path) : nerve_model_load(path);
}

static int two_paths(const char *cmd, int argc, char **argv, const char **a, const char **b)
{
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve %s: unknown option '%s' (see nerve help)\n", cmd, argv[i]);
            return 2;
        } else if (!*a)
            *a = argv[i];
        else if (!*b)
            *b = argv[i];
        else {
            fprintf(stderr, "nerve %s: unexpected argument '%s'\n", cmd, argv[i]);
            return 2;
        }
    }
    if (!*a || !*b) {
        fprintf(stderr, "nerve %s: usage: nerve %s IN OUT\n", cmd, cmd);
        return 2;
    }
    return 0;
}

static int export_onnx_file(const char *cmd, nerve_model *m, const char *out)
{
    if (nerve_export_onnx(m, out) != NERVE_OK)
        return cli_fail(cmd);
    printf("wrote %s (ONNX opset 13)\n", out);
    return 0;
}

int cmd_export_onnx(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int rc = two_paths("export-onnx", argc, argv, &in, &out);
    if (rc)
        return rc;
    nerve_model *m = load_model(in);
    if (!m)
        return cli_fail(NULL);
    rc = export_onnx_file("export-onnx", m, out);
    nerve_model_free(m);
    return rc;
}

enum { FMT_UNKNOWN, FMT_SAFETENSORS, FMT_ONNX, FMT_WEIGHTS, FMT_CFG };

static int format_of(const char *path)
{
    return has_suffix(path, ".safetensors") ? FMT_SAFETENSORS
           : has_suffix(path, ".onnx")      ? FMT_ONNX
           : has_suffix(path, ".weights")   ? FMT_WEIGHTS
           : has_suffix(path, ".cfg")       ? FMT_CFG
                                            : FMT_UNKNOWN;
}

int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *cfg = NULL, *v;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--cfg")))
            cfg = v;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nerve convert: unknown option '%s' (see nerve help convert)\n", argv[i]);
            return 2;
        } else if (!in)
            in = argv[i];
        else if (!out)
            out = argv[i];
        else {
            fprintf(stderr, "nerve convert: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "nerve convert: usage: nerve convert IN OUT [--cfg CFG]\n");
        return 2;
    }
    int fi = format_of(in), fo = format_of(out);
    if (fi == FMT_UNKNOWN || fo == FMT_UNKNOWN || fo == FMT_CFG || fi == fo) {
        fprintf(stderr, "nerve convert: formats are told by the extensions: IN is .safetensors, .onnx "
                        "(one nerve exported), .cfg (fresh weights) or .weights (darknet's, with --cfg), "
                        "OUT another of .safetensors, .onnx and .weights\n");
        return 2;
    }
    if (fi == FMT_WEIGHTS && !cfg) {
        fprintf(stderr, "nerve convert: %s: a darknet .weights file holds numbers only; name the network "
                        "they belong to with --cfg CFG\n", in);
        return 2;
    }
    if (fi != FMT_WEIGHTS && cfg) {
        fprintf(stderr, "nerve convert: --cfg is for a darknet .weights input only (%s carries its "
                        "model)\n", in);
        return 2;
    }
    nerve_model *m = fi == FMT_ONNX ? nerve_onnx_to_model(in) : load_model(fi == FMT_WEIGHTS ? cfg : in);
    if (!m)
        return cli_fail(NULL);
    int rc = 0;
    if (fi == FMT_WEIGHTS && nerve_model_load_darknet(m, in) != NERVE_OK) {
        rc = cli_fail(in);
    } else if (fo == FMT_ONNX) {
        rc = export_onnx_file("convert", m, out);
    } else if (fo == FMT_WEIGHTS) {
        if (nerve_model_save_darknet(m, out, 0) != NERVE_OK)
            rc = cli_fail("convert");
        else
            printf("wrote %s (darknet weights: read them with the same cfg)\n", out);
    } else if (nerve_model_save(m, out) != NERVE_OK) {
        rc = cli_fail("convert");
    } else {
        printf("wrote %s (a checkpoint of the model's weights and cfg, no training state)\n", out);
    }
    nerve_model_free(m);
    return rc;
}
