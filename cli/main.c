/* nerve: train, evaluate, summarise and use neural networks described in cfg files.
 * Dispatch only: the commands, their options and their help are the rows of the table in
 * commands.c; args.c checks the arguments against it. */
#include "cli.h"
#include "../src/dist/dist_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the usage error for an unknown command, naming the closest one. */
static int unknown_command(const char *cmd)
{
    const char *names[128];
    int n = 0;
    for (int i = 0; i < cli_n_commands && n < 128; i++)
        names[n++] = cli_commands[i].name;
    fprintf(stderr, "nerve: unknown command '%s'; the closest is '%s' (nerve help lists the commands)\n", cmd,
            cli_closest(cmd, names, n));
    return 2;
}

/* nerve help [CMD | --man | --markdown] (arguments already checked against the help row) */
static int run_help(int argc, char **argv)
{
    int man = 0, markdown = 0;
    const char *topic = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--man"))
            man = 1;
        else if (!strcmp(argv[i], "--markdown"))
            markdown = 1;
        else if (!topic)
            topic = argv[i];
        else {
            fprintf(stderr, "nerve help: one command at a time (got '%s' and '%s')\n", topic, argv[i]);
            return 2;
        }
    }
    if (man + markdown + (topic != NULL) > 1) {
        fprintf(stderr, "nerve help: CMD, --man and --markdown go alone\n");
        return 2;
    }
    if (man)
        cli_print_man(stdout);
    else if (markdown)
        cli_print_markdown(stdout);
    else if (topic) {
        const cli_command *c = cli_find_command(topic);
        if (!c)
            return unknown_command(topic);
        cli_print_help(stdout, c);
    } else
        cli_print_overview(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    cli_program = argv[0];
    if (argc < 2) {
        cli_print_overview(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        cmd = "help";
    else if (!strcmp(cmd, "--version"))
        cmd = "version";
    const cli_command *c = cli_find_command(cmd);
    if (!c)
        return unknown_command(cmd);
    int nargc, help;
    char **nargv;
    if (cli_parse_args(c, argc - 2, argv + 2, &nargc, &nargv, &help) != 0)
        return 2;
    int rc;
    if (help) {
        cli_print_help(stdout, c);
        rc = 0;
    } else if (!strcmp(c->name, "help"))
        rc = run_help(nargc, nargv);
    else if (!strcmp(c->name, "version")) {
        rc = nargc ? 2 : 0;
        if (nargc)
            fprintf(stderr, "nerve version: takes no argument (got '%s')\n", nargv[0]);
        else
            printf("nerve %s\ndata-parallel training under mpirun: %s\nkernel instruction set: %s "
                   "(NERVE_ISA=portable|avx2|avx512|neon chooses)\n",
                   NERVE_VERSION,
                   nerve_mpi_built() ? "built in (Open MPI)" : "not built in (no Open MPI headers at build time)",
                   nerve_isa_name());
    } else
        rc = c->run(nargc, nargv);
    free(nargv);
    return rc;
}
