/* nerve experiment NAME: one of the course's experiments (docs/experiments.md), its figures
 * printed as they come and its plots written as SVG files. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_line(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

int cmd_experiment(int argc, char **argv)
{
    nerve_experiment_options o;
    nerve_experiment_defaults(&o);
    o.out_dir = ".";
    o.print = print_line;
    const char *name = NULL, *v;
    int bad = 0;
    for (int i = 0; i < argc; i++) {
        if ((v = cli_option_value(argc, argv, &i, "--out")))
            o.out_dir = v;
        else if ((v = cli_option_value(argc, argv, &i, "--data")))
            o.data_dir = v;
        else if ((v = cli_option_value(argc, argv, &i, "--digits")))
            o.digits = v;
        else if ((v = cli_option_value(argc, argv, &i, "--epochs")))
            bad |= (o.epochs = cli_parse_int("--epochs", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--train")))
            bad |= (o.train = cli_parse_int("--train", v)) < 0;
        else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            int seed = cli_parse_int("--seed", v);
            bad |= seed < 0;
            o.seed = (uint64_t)seed;
        }
        else if (!strcmp(argv[i], "--quick"))
            o.quick = 1;
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, "nerve experiment: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (bad)
        return 2;
    if (!name) {
        fprintf(stderr, "nerve experiment: which one? (");
        for (int i = 0; nerve_experiment_name(i); i++)
            fprintf(stderr, "%s%s", i ? ", " : "", nerve_experiment_name(i));
        fprintf(stderr, ")\n");
        return 2;
    }
    int known = 0;
    for (int i = 0; nerve_experiment_name(i); i++)
        known |= !strcmp(name, nerve_experiment_name(i));
    if (!known) /* said before any folder is made */
        return nerve_experiment_run(name, &o) != NERVE_OK ? cli_fail(NULL) : 0;
    if (cli_mkdirs(o.out_dir) != 0) {
        fprintf(stderr, "nerve experiment: cannot create the folder %s\n", o.out_dir);
        return 1;
    }
    if (nerve_experiment_run(name, &o) != NERVE_OK)
        return cli_fail(name);
    return 0;
}
