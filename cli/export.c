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
