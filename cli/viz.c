/* nerve viz filters|activations|reconstruct: PNG pictures of a checkpoint's weights and
 * responses; the modes that ascend or search inputs are cli/viz_ascent.c's. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *VIZ_USAGE = "usage: nerve viz filters CKPT [--layer NAME] [--out FILE.png]\n"
                               "       nerve viz activations CKPT IMAGE-INDEX [--layer NAME] [--out FILE.png]\n"
                               "       nerve viz reconstruct CKPT [--n N] [--scale S] [--out FILE.png]\n"
                               "       nerve viz classmodel|dream|invert|neighbours|top CKPT ... (nerve viz --help)\n";

static int viz_usage(void)
{
    fputs(VIZ_USAGE, stderr);
    return 2;
}

/* Image index: a non-negative integer. */
static int parse_index(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < 0 || v > 1000000000) {
        fprintf(stderr, "nerve viz: IMAGE-INDEX must be an integer >= 0, got '%s'\n", s);
        return -1;
    }
    return (int)v;
}

static int viz_activations(nerve_model *m, int index, const char *layer, const char *out)
{
    nerve_dataset test = {0};
    const nerve_net_config *c = nerve_model_config(m);
    if (!c->test_images[0] && !c->test_csv[0]) {
        fprintf(stderr, "nerve viz: the checkpoint's cfg names no test data (test_images= or test_csv=)\n");
        return 1;
    }
    if (nerve_config_load_data(c, NULL, &test) != NERVE_OK)
        return cli_fail(NULL);
    int tiles = 0, rc = 0;
    if (nerve_viz_activations(m, &test, index, layer, out, &tiles) != NERVE_OK)
        rc = cli_fail("viz activations");
    else
        printf("wrote %s: %d map%s of test image %d (label %d)\n", out, tiles, tiles == 1 ? "" : "s", index,
               test.y ? (int)test.y[index] : -1);
    nerve_dataset_free(&test);
    return rc;
}

/* Rows of noisy (what the model read) / output / clean test images. */
static int viz_reconstruct(nerve_model *m, int n, int scale, const char *out)
{
    nerve_dataset test = {0};
    const nerve_net_config *c = nerve_model_config(m);
    if (!c->test_images[0] && !c->test_csv[0]) {
        fprintf(stderr, "nerve viz: the checkpoint's cfg names no test data (test_images= or test_csv=)\n");
        return 1;
    }
    if (nerve_config_load_data(c, NULL, &test) != NERVE_OK)
        return cli_fail(NULL);
    int rc = 0;
    if (nerve_viz_reconstruct(m, &test, n, scale, out) != NERVE_OK)
        rc = cli_fail("viz reconstruct");
    else
        printf("wrote %s: the first %d test images; rows: the input the model read%s, its output, the "
               "clean image\n", out, n < test.n ? n : test.n, c->noise.kind ? " (corrupted)" : "");
    nerve_dataset_free(&test);
    return rc;
}

int cmd_viz(int argc, char **argv)
{
    const char *what = NULL, *ckpt = NULL, *index_s = NULL, *layer = NULL, *out = NULL, *v;
    int n = 8, scale = 4;
    static const char *const ASCENT[] = {"classmodel", "dream", "invert", "neighbours", "top"};
    for (int i = 0; argc > 0 && i < 5; i++)
        if (!strcmp(argv[0], ASCENT[i]))
            return viz_ascent(argc, argv);
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--layer")))
            layer = v;
        else if ((v = cli_option_value(argc, argv, &i, "--n"))) {
            if ((n = cli_parse_int("--n", v)) < 0)
                return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--scale"))) {
            if ((scale = cli_parse_int("--scale", v)) < 0)
                return 2;
        }
        else if ((v = cli_option_value(argc, argv, &i, "--out")))
            out = v;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "nerve viz: unknown option '%s'\n", argv[i]);
            return viz_usage();
        } else if (!what)
            what = argv[i];
        else if (!ckpt)
            ckpt = argv[i];
        else if (!index_s)
            index_s = argv[i];
        else
            return viz_usage();
    }
    int filters = what && !strcmp(what, "filters"), acts = what && !strcmp(what, "activations");
    int recon = what && !strcmp(what, "reconstruct");
    if (recon && ckpt && !index_s) {
        nerve_model *m = nerve_model_load(ckpt);
        if (!m)
            return cli_fail(NULL);
        int rc = viz_reconstruct(m, n, scale, out ? out : "reconstruct.png");
        nerve_model_free(m);
        return rc;
    }
    if (!ckpt || (!filters && !acts) || (filters && index_s) || (acts && !index_s))
        return viz_usage();
    int index = acts ? parse_index(index_s) : 0;
    if (index < 0)
        return 2;
    if (!out)
        out = filters ? "filters.png" : "activations.png";
    nerve_model *m = nerve_model_load(ckpt);
    if (!m)
        return cli_fail(NULL);
    int rc = 0, tiles = 0;
    if (acts)
        rc = viz_activations(m, index, layer, out);
    else if (nerve_viz_filters(m, layer, out, &tiles) != NERVE_OK)
        rc = cli_fail("viz filters");
    else
        printf("wrote %s: %d filter tile%s\n", out, tiles, tiles == 1 ? "" : "s");
    nerve_model_free(m);
    return rc;
}
