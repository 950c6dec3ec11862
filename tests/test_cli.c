/* The command line explains itself and stays true to its table (cli/commands.c): every
 * command has --help with usage, options and an example; unknown commands and options are
 * usage errors naming the closest valid one; --opt=value works; docs/cli.md and the man page
 * are the table's; the progress output fits a terminal and has no carriage returns in a pipe. */
#define _DEFAULT_SOURCE
#include "test.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

static char out[1 << 18];

/* The command names listed by `nerve help` (the lines under "commands:"). */
static int list_commands(char names[][32], int max)
{
    char cmd[2100];
    snprintf(cmd, sizeof cmd, "%s help", test_nerve());
    if (test_run(cmd, out, sizeof out) != 0)
        return -1;
    const char *p = strstr(out, "\ncommands");
    if (!p)
        return -1;
    p = strchr(p + 1, '\n') + 1;
    int n = 0;
    while (*p && *p != '\n' && n < max) { /* "  name usage", or "        summary" */
        size_t line = strcspn(p, "\n");
        if (p[0] == ' ' && p[1] == ' ' && p[2] != ' ') {
            size_t len = strcspn(p + 2, " \n");
            if (len == 0 || len >= 32)
                return -1;
            if (n == 0 || strncmp(names[n - 1], p + 2, len) || names[n - 1][len]) {
                memcpy(names[n], p + 2, len);
                names[n++][len] = '\0';
            }
        }
        p += line + (p[line] == '\n');
    }
    return n;
}

/* 1 when the option name (e.g. "--out") stands in text as a whole word. */
static int has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        char after = p[n];
        if ((p == text || p[-1] == ' ' || p[-1] == '[' || p[-1] == '|') &&
            (after == ' ' || after == ']' || after == '\n' || after == '=' || after == '|' || after == '\0'))
            return 1;
    }
    return 0;
}

TEST(cli_every_command_has_help_with_usage_options_and_example)
{
    char names[64][32], cmd[2200];
    int n = list_commands(names, 64);
    CHECK_MSG(n >= 11, "nerve help listed %d commands", n);
    for (const char *l = out; *l;) { /* the overview fits an 80-column terminal */
        size_t len = strcspn(l, "\n");
        CHECK_MSG(len <= 79, "nerve help: a line of %zu columns: %.*s", len, (int)len, l);
        l += len + (l[len] == '\n');
    }
    static char help[1 << 16];
    for (int i = 0; i < n; i++) {
        snprintf(cmd, sizeof cmd, "%s %s --help", test_nerve(), names[i]);
        CHECK_MSG(test_run(cmd, help, sizeof help) == 0, "%s: exit status not 0", cmd);
        char want[128];
        snprintf(want, sizeof want, "usage: nerve %.31s", names[i]);
        CHECK_MSG(!strncmp(help, want, strlen(want)), "%s does not start with '%s':\n%s", cmd, want, help);
        snprintf(want, sizeof want, "\nexample:\n  nerve %.31s", names[i]);
        CHECK_MSG(strstr(help, want) != NULL, "%s has no example of the command", cmd);
        CHECK_MSG(strstr(help, "--threads N") && strstr(help, "exit status: 0"), "%s: no global options or "
                  "exit statuses", cmd);
        for (const char *l = help; *l;) { /* fits an 80-column terminal */
            size_t len = strcspn(l, "\n");
            CHECK_MSG(len <= 79, "%s: a line of %zu columns: %.*s", cmd, len, (int)len, l);
            l += len + (l[len] == '\n');
        }
        /* nerve help CMD and -h print the same */
        snprintf(cmd, sizeof cmd, "%s help %s", test_nerve(), names[i]);
        CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && !strcmp(out, help), "%s differs from --help", cmd);
        snprintf(cmd, sizeof cmd, "%s %s -h", test_nerve(), names[i]);
        CHECK_MSG(test_run(cmd, out, sizeof out) == 0 && !strcmp(out, help), "%s differs from --help", cmd);
        /* every --option of the usage lines is described under options:, and the reverse */
        const char *opts = strstr(help, "\noptions:\n"), *global = strstr(help, "\noptions of every command:");
        char usage[4096];
        size_t ulen = (size_t)(strstr(help, "\n\n") - help);
        snprintf(usage, sizeof usage, "%.*s", (int)(ulen < 4000 ? ulen : 4000), help);
        for (const char *p = strstr(usage, "--"); p; p = strstr(p + 2, "--")) {
            char opt[64];
            size_t len = strspn(p, "-abcdefghijklmnopqrstuvwxyz0123456789");
            snprintf(opt, sizeof opt, "%.*s", (int)(len < 60 ? len : 60), p);
            char line[80];
            snprintf(line, sizeof line, "\n  %s", opt);
            CHECK_MSG(opts && strstr(opts, line) && strstr(opts, line) < global, "nerve %s: %s is in the usage "
                      "but not among the options", names[i], opt);
        }
        for (const char *p = opts ? strstr(opts, "\n  --") : NULL; p && p < global; p = strstr(p + 1, "\n  --")) {
            char opt[64];
            size_t len = strspn(p + 3, "-abcdefghijklmnopqrstuvwxyz0123456789");
            snprintf(opt, sizeof opt, "%.*s", (int)(len < 60 ? len : 60), p + 3);
            CHECK_MSG(has_word(usage, opt), "nerve %s: option %s is not in the usage lines", names[i], opt);
        }
    }
}

TEST(cli_unknown_commands_and_options_are_usage_errors_naming_the_closest)
{
    char cmd[2200];
    const struct {
        const char *args, *says;
    } cases[] = {
        {"trian models/mlp.cfg", "unknown command 'trian'; the closest is 'train'"},
        {"frobnicate --help", "unknown command 'frobnicate'"},
        {"help evl", "unknown command 'evl'; the closest is 'eval'"},
        {"train models/mlp.cfg --epoch 1", "unknown option '--epoch'; the closest is --epochs"},
        {"train models/mlp.cfg --epoch=1", "unknown option '--epoch'; the closest is --epochs"},
        {"predict x.safetensors y.csv --topp 3", "unknown option '--topp'; the closest is --top"},
        {"viz filters x.safetensors -l conv1", "unknown option '-l'"},
        {"train models/mlp.cfg --quiet=yes", "--quiet takes no value"},
        {"train models/mlp.cfg --epochs", "--epochs needs a value"},
        {"summary models/mlp.cfg --threads=0", "--threads needs a positive integer"},
        {"version extra", "takes no argument"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", test_nerve(), cases[i].args);
        int st = test_run(cmd, out, sizeof out);
        CHECK_MSG(st == 2, "nerve %s: exit status %d, expected 2 (usage)\n%s", cases[i].args, st, out);
        CHECK_MSG(strstr(out, cases[i].says) != NULL, "nerve %s said\n%s\nexpected '%s'", cases[i].args, out,
                  cases[i].says);
    }
    /* no command at all: the overview on stderr, usage error */
    snprintf(cmd, sizeof cmd, "%s", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 2 && strstr(out, "\ncommands"));
}

/* Three Gaussian blobs in 4-D (n samples, labels in the last column) and a small MLP cfg
 * with the given number of epochs, in the test's directory. */
static void write_problem(int n, int epochs)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/train.csv", test_tmpdir());
    FILE *fp = fopen(path, "w");
    fprintf(fp, "f0,f1,f2,f3,label\n");
    for (int i = 0; i < n; i++)
        fprintf(fp, "%.4f,%.4f,%.4f,%.4f,%d\n", 2.0 * (i % 3 == 0) + test_pseudo((size_t)i, 1),
                2.0 * (i % 3 == 1) + test_pseudo((size_t)i, 2), test_pseudo((size_t)i, 3),
                test_pseudo((size_t)i, 4), i % 3);
    fclose(fp);
    snprintf(path, sizeof path, "%s/mlp.cfg", test_tmpdir());
    fp = fopen(path, "w");
    fprintf(fp, "[net]\ninputs=4\nbatch=8\noptimizer=adam\nlearning_rate=0.01\nepochs=%d\nseed=3\n"
                "validation=0.1\ntrain_csv=train.csv\n\n[connected]\noutput=8\nactivation=relu\n\n"
                "[connected]\noutput=3\n\n[softmax]\n", epochs);
    fclose(fp);
}

TEST(cli_opt_equals_value_works_like_opt_space_value)
{
    char cmd[2400];
    write_problem(200, 3);
    snprintf(cmd, sizeof cmd, "%s train mlp.cfg --epochs=1 --threads=1 --out=run --quiet", test_nerve());
    int st = test_run(cmd, out, sizeof out);
    CHECK_MSG(st == 0, "%s: exit %d\n%s", cmd, st, out);
    CHECK_MSG(strstr(out, "run directory: run\n") && strstr(out, "trained 1 epochs"), "%s printed\n%s", cmd, out);
    snprintf(cmd, sizeof cmd, "%s train mlp.cfg --epochs 1 --threads 1 --out run2 --quiet", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0 && strstr(out, "trained 1 epochs"));
}

/* The terminal's view of a typescript: each line's text after its last carriage return.
 * Returns -1 when a drawn piece of a line that starts with prefix (a progress update) is wider
 * than width - 1 columns; counts the visible lines that start with prefix in *count. */
static int visible_lines(const char *text, int width, const char *prefix, int *count)
{
    *count = 0;
    size_t plen = strlen(prefix);
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        const char *end = line + len;
        if (end > line && end[-1] == '\r')
            end--; /* the pty writes \r\n */
        const char *last = line;
        for (const char *q = line; q <= end; q++)
            if (q == end || *q == '\r') {
                if (q - last > width - 1 && !strncmp(last, prefix, plen))
                    return -1;
                if (q < end)
                    last = q + 1;
            }
        if (!strncmp(last, prefix, plen))
            (*count)++;
        line += len + (line[len] == '\n');
    }
    return 0;
}

TEST(cli_progress_fits_an_80_column_terminal_and_a_pipe_gets_no_carriage_returns)
{
    char cmd[2600];
    write_problem(2000, 3);
    /* a terminal that does not report its size: the width comes from COLUMNS */
    snprintf(cmd, sizeof cmd, "COLUMNS=80 script -qec '%s train mlp.cfg --threads 1 --out tty' /dev/null "
             "< /dev/null", test_nerve());
    int st = test_run(cmd, out, sizeof out);
    CHECK_MSG(st == 0, "%s: exit %d\n%s", cmd, st, out);
    int bars = 0;
    CHECK_MSG(visible_lines(out, 80, "epoch 1/", &bars) == 0 && visible_lines(out, 80, "epoch 3/", &bars) == 0, "a progress update is wider than 79 columns:\n%s",
              out);
    int finished = 0;
    for (int e = 1; e <= 3; e++) {
        char want[64];
        snprintf(want, sizeof want, "epoch %d/3 [", e);
        const char *p = strstr(out, want);
        CHECK_MSG(p != NULL, "no progress bar for epoch %d:\n%s", e, out);
        /* the bar's final state stays as one line, then the epoch's line */
        char done[64];
        snprintf(done, sizeof done, " done");
        finished += strstr(p, done) != NULL;
    }
    CHECK_MSG(finished == 3, "the bars did not finish:\n%s", out);
    int lines = 0;
    visible_lines(out, 80, "epoch 1/3 [", &lines);
    CHECK_MSG(lines == 1, "epoch 1 left %d progress lines in the scrollback:\n%s", lines, out);
    visible_lines(out, 80, "epoch 3/3 [", &lines);
    CHECK_MSG(lines == 1, "epoch 3 left %d progress lines in the scrollback:\n%s", lines, out);
    CHECK_MSG(!strchr(out, '\033'), "escape codes in the output:\n%s", out);
    /* a narrow terminal: still one line per update */
    snprintf(cmd, sizeof cmd, "COLUMNS=40 script -qec '%s train mlp.cfg --threads 1 --epochs 1 --out tty40' "
             "/dev/null < /dev/null", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK_MSG(visible_lines(out, 40, "epoch 1/", &bars) == 0, "wider than 39 columns:\n%s", out);
    /* --quiet: no bar */
    snprintf(cmd, sizeof cmd, "COLUMNS=80 script -qec '%s train mlp.cfg --threads 1 --epochs 1 --quiet --out q' "
             "/dev/null < /dev/null", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK_MSG(!strstr(out, "epoch 1/1 ["), "--quiet drew a bar:\n%s", out);
    /* a pipe: plain lines with samples/s and time left, and no carriage return */
    snprintf(cmd, sizeof cmd, "%s train mlp.cfg --threads 1 --out pipe 2>&1 | cat", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK_MSG(!strchr(out, '\r'), "a carriage return in piped output:\n%s", out);
    CHECK_MSG(strstr(out, "epoch 1/3   10%") && strstr(out, "samples/s  ETA "), "no progress lines:\n%s", out);
}

/* The text between docs/cli.md's markers (caller frees), or NULL. */
static char *generated_section(const char *doc)
{
    const char *b = strstr(doc, "<!-- BEGIN generated by nerve help --markdown");
    const char *e = b ? strstr(b, "\n<!-- END generated") : NULL;
    if (!e)
        return NULL;
    b = strchr(b, '\n') + 1;
    size_t n = (size_t)(e + 1 - b);
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = '\0';
    return s;
}

TEST(cli_docs_reference_is_the_command_table)
{
    char cmd[2200];
    char *doc = test_read_file("docs/cli.md", NULL);
    CHECK(doc != NULL);
    char *section = generated_section(doc);
    free(doc);
    CHECK_MSG(section != NULL, "docs/cli.md has no generated section (BEGIN/END markers)");
    snprintf(cmd, sizeof cmd, "%s help --markdown", test_nerve());
    int st = test_run(cmd, out, sizeof out);
    int same = st == 0 && !strcmp(section, out);
    if (!same) {
        size_t k = 0;
        while (section[k] && section[k] == out[k])
            k++;
        size_t from = k > 60 ? k - 60 : 0;
        test_fail(__FILE__, __LINE__, "docs/cli.md's reference differs from the command table at byte %zu "
                  "(...%.120s... vs ...%.120s...): run make docs", k, section + from, out + from);
    }
    free(section);
}

TEST(cli_man_page_is_the_command_table)
{
    char cmd[2200], names[64][32];
    int n = list_commands(names, 64);
    CHECK(n > 0);
    snprintf(cmd, sizeof cmd, "%s help --man", test_nerve());
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK(!strncmp(out, ".\\\"", 3) && strstr(out, "\n.TH NERVE 1 "));
    for (int i = 0; i < n; i++) {
        char want[96], escaped[64];
        size_t k = 0; /* roff writes a hyphen as \- */
        for (const char *c = names[i]; *c && k + 3 < sizeof escaped; c++) {
            if (*c == '-')
                escaped[k++] = '\\';
            escaped[k++] = *c;
        }
        escaped[k] = 0;
        snprintf(want, sizeof want, "\n.SS %s\n", escaped);
        CHECK_MSG(strstr(out, want), "the man page has no section for %s", names[i]);
    }
    CHECK(strstr(out, ".SH EXIT STATUS") && strstr(out, "\\-\\-epochs"));
    /* the build's nerve.1 (what make install installs) is this text */
    char path[1200];
    snprintf(path, sizeof path, "%s/nerve.1", test_build_dir());
    char *built = test_read_file(path, NULL);
    CHECK_MSG(built && !strcmp(built, out), "%s is missing or differs from nerve help --man", path);
    free(built);
    /* groff (when present) renders it without a warning */
    if (system("command -v groff > /dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "%s help --man | groff -man -Tutf8 -ww -z", test_nerve());
        CHECK(test_run(cmd, out, sizeof out) == 0);
        CHECK_MSG(out[0] == '\0', "groff warns about the man page:\n%s", out);
    }
}

/* Every `int cmd_NAME(int argc, char **argv)` defined in cli/ is the handler of a row of the
 * table, and main.c calls no handler by name: a command cannot bypass its help. */
TEST(cli_every_command_handler_is_in_the_table)
{
    char *table = test_read_file("cli/commands.c", NULL);
    char *main_c = test_read_file("cli/main.c", NULL);
    CHECK(table && main_c);
    CHECK_MSG(!strstr(main_c, "cmd_"), "cli/main.c names a command handler: dispatch through the table");
    DIR *d = opendir("cli");
    CHECK(d != NULL);
    struct dirent *e;
    int handlers = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".c"))
            continue;
        char path[600];
        snprintf(path, sizeof path, "cli/%s", e->d_name);
        char *src = test_read_file(path, NULL);
        for (const char *p = src ? strstr(src, "\nint cmd_") : NULL; p; p = strstr(p + 1, "\nint cmd_")) {
            const char *name = p + 5;
            size_t nlen = strcspn(name, "(");
            const char *eol = strchr(name, '\n');
            if (eol && eol[-1] == ';')
                continue; /* a declaration */
            char want[128];
            snprintf(want, sizeof want, ".run = %.*s,", (int)(nlen < 100 ? nlen : 100), name);
            handlers++;
            if (!strstr(table, want)) {
                test_fail(__FILE__, __LINE__, "%s defines %.*s, which no row of cli/commands.c runs", path,
                          (int)nlen, name);
                free(src);
                closedir(d);
                free(table);
                free(main_c);
                return;
            }
        }
        free(src);
    }
    closedir(d);
    free(table);
    free(main_c);
    CHECK_MSG(handlers >= 9, "found only %d command handlers in cli/", handlers);
}
