/* nerve quantize: post-training int8 quantisation of a float checkpoint (docs/quantize.md). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* CKPT with ".safetensors" replaced by "-int8.safetensors" (or the suffix appended). */
static void default_out(const char *ckpt, char *out, size_t size)
{
    const char *ext = ".safetensors";
    size_t n = strlen(ckpt), e = strlen(ext);
    if (n > e && !strcmp(ckpt + n - e, ext))
        snprintf(out, size, "%.*s-int8%s", (int)(n - e), ckpt, ext);
    else
        snprintf(out, size, "%s-int8%s", ckpt, ext);
}

static int test_accuracy(nerve_model *m, const nerve_dataset *test, double *acc)
{
    double loss;
    return nerve_evaluate(m, test, &loss, acc, NULL, 0);
}

int cmd_quantize(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *v;
    int batches = 16;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--calib"))) {
            if ((batches = cli_parse_int("--calib", v)) < 1)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--out")))
            out = v;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve quantize: unknown option '%s' (nerve quantize --help)\n", argv[i]);
            return 2;
        } else if (!ckpt)
            ckpt = argv[i];
        else {
            fprintf(stderr, "nerve quantize: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "nerve quantize: usage: nerve quantize CKPT [--calib N] [--out Q]\n");
        return 2;
    }
    char def[1100];
    if (!out) {
        default_out(ckpt, def, sizeof def);
        out = def;
    }
    nerve_model *m = nerve_model_load(ckpt);
    if (!m)
        return cli_fail(NULL);
    if (nerve_model_quantized(m)) {
        fprintf(stderr, "nerve quantize: %s is an int8 checkpoint already\n", ckpt);
        nerve_model_free(m);
        return 1;
    }
    nerve_dataset train = {0}, test = {0};
    const nerve_net_config *c = nerve_model_config(m);
    int has_test = c->test_images[0] || c->test_csv[0] || c->data.test_folder[0] ||
                   c->data.test_list[0] || c->data.test_cifar[0];
    int rc = 0;
    double acc_float = 0, acc_int8 = 0;
    nerve_quantize_info qi;
    if (nerve_config_load_data(c, &train, has_test ? &test : NULL) != NERVE_OK)
        rc = cli_fail(NULL);
    else if (has_test && test_accuracy(m, &test, &acc_float) != NERVE_OK)
        rc = cli_fail("evaluation");
    else if (nerve_model_quantize(m, &train, batches, &qi) != NERVE_OK)
        rc = cli_fail("quantize");
    else if (has_test && test_accuracy(m, &test, &acc_int8) != NERVE_OK)
        rc = cli_fail("evaluation");
    else if (nerve_model_save(m, out) != NERVE_OK)
        rc = cli_fail("save");
    else {
        printf("calibrated on %d training samples (%d batches of at most %d; ranges: min/max)\n",
               qi.samples, batches, c->batch);
        printf("int8 nodes: %d", qi.nodes);
        if (qi.folded)
            printf(", %d batch norms folded into them", qi.folded);
        if (qi.adds)
            printf(", %d residual adds", qi.adds);
        if (qi.skipped)
            printf(" (%d grouped convolutions stay float)", qi.skipped);
        printf("\n");
        if (has_test)
            printf("test accuracy: float %.4f, int8 %.4f (%+.2f points)\n", acc_float, acc_int8,
                   100.0 * (acc_int8 - acc_float));
        printf("wrote %s\n", out);
    }
    nerve_dataset_free(&train);
    nerve_dataset_free(&test);
    nerve_model_free(m);
    return rc;
}
