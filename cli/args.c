/* Arguments and help, both read from the command table (commands.c): the check of a
 * command's options (`--opt value` and `--opt=value`, unknown options named with the closest
 * valid one), `nerve CMD --help`, the overview of `nerve help`, the man page and the Markdown
 * reference of docs/cli.md. Calls util.c and the library only. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH 79 /* help text is wrapped to fit an 80-column terminal */
#define OPT_COL 22 /* column where an option's description starts */

const cli_command *cli_find_command(const char *name)
{
    for (int i = 0; i < cli_n_commands; i++)
        if (!strcmp(cli_commands[i].name, name))
            return &cli_commands[i];
    return NULL;
}

/* Levenshtein distance of a and b (the lengths are small: names of commands and options). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return la > lb ? la : lb;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cli_closest(const char *word, const char *const *candidates, int n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

static const cli_option *find_option(const cli_option *opts, const char *name, size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && !strncmp(opts->name, name, len))
            return opts;
    return NULL;
}

/* Prints the usage error for an unknown option, naming the closest of the command's and the
 * global options. */
static void unknown_option(const cli_command *c, const char *arg)
{
    const char *names[64];
    int n = 0;
    for (const cli_option *o = c->options; o && o->name && n < 63; o++)
        names[n++] = o->name;
    for (const cli_option *o = cli_global_options; o->name && n < 63; o++)
        names[n++] = o->name;
    char word[128];
    size_t len = strcspn(arg, "=");
    snprintf(word, sizeof word, "%.*s", (int)(len < 100 ? len : 100), arg);
    fprintf(stderr, "nerve %s: unknown option '%s'; the closest is %s (nerve %s --help lists them)\n", c->name,
            word, cli_closest(word, names, n), c->name);
}

int cli_parse_args(const cli_command *c, int argc, char **argv, int *out_argc, char ***out_argv, int *help)
{
    char **out = calloc((size_t)argc * 2 + 1, sizeof *out);
    int n = 0;
    *help = 0;
    if (!out) {
        fprintf(stderr, "nerve: out of memory\n");
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            continue;
        }
        /* positional: anything not starting with '-', "-" itself and negative numbers
         * (which the command then checks like any other value) */
        if (a[0] != '-' || !a[1] || (a[1] >= '0' && a[1] <= '9') || a[1] == '.') {
            out[n++] = a;
            continue;
        }
        if (a[1] != '-') {
            unknown_option(c, a);
            free(out);
            return -1;
        }
        char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const cli_option *o = find_option(c->options, a, len);
        int global = 0;
        if (!o && (o = find_option(cli_global_options, a, len)))
            global = 1;
        if (!o || (global && !strcmp(o->name, "--help"))) {
            unknown_option(c, a);
            free(out);
            return -1;
        }
        const char *value = NULL;
        if (!o->arg) {
            if (eq) {
                fprintf(stderr, "nerve %s: %s takes no value (got '%s')\n", c->name, o->name, a);
                free(out);
                return -1;
            }
        } else if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            fprintf(stderr, "nerve %s: %s needs a value (%s %s)\n", c->name, o->name, o->name, o->arg);
            free(out);
            return -1;
        }
        if (global && !strcmp(o->name, "--threads")) {
            int t = cli_parse_int("--threads", value);
            if (t < 0) {
                free(out);
                return -1;
            }
            nerve_set_threads(t);
            continue;
        }
        out[n++] = (char *)o->name; /* the table's spelling; handlers compare with strcmp */
        if (value)
            out[n++] = (char *)value;
    }
    out[n] = NULL;
    *out_argc = n;
    *out_argv = out;
    return 0;
}

/* ---- plain text ----------------------------------------------------------------------- */

/* Writes text word by word from column col, breaking lines before WIDTH and starting each
 * new line at column indent; a space goes before the first word unless fresh (nothing
 * written yet after the line's indentation or prefix). Returns the column after the last
 * word. */
static int wrap_at(FILE *f, const char *text, int col, int indent, int fresh)
{
    const char *p = text;
    int first = fresh;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (!w)
            break;
        if (!first && col + 1 + (int)w > WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            first = 1;
        }
        if (!first) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, w, f);
        col += (int)w;
        p += w;
        first = 0;
    }
    return col;
}

/* wrap_at, fresh at column 0 and at column indent. */
static int wrap(FILE *f, const char *text, int col, int indent)
{
    return wrap_at(f, text, col, indent, col == 0 || col == indent);
}

static void print_option(FILE *f, const cli_option *o, const char *shown)
{
    char head[96];
    snprintf(head, sizeof head, "  %s%s%s", shown ? shown : o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    int col = (int)strlen(head);
    fputs(head, f);
    if (col >= OPT_COL - 1) {
        fprintf(f, "\n%*s", OPT_COL, "");
        col = OPT_COL;
    } else {
        fprintf(f, "%*s", OPT_COL - col, "");
        col = OPT_COL;
    }
    col = wrap(f, o->help, col, OPT_COL);
    if (o->def) {
        char def[256];
        snprintf(def, sizeof def, "(default: %s)", o->def);
        wrap(f, def, col, OPT_COL);
    }
    fputc('\n', f);
}

/* Each '\n'-separated usage line as "<first|next>nerve <line>"; indent > 0 wraps long lines
 * to fit WIDTH, their continuation starting at column indent. */
static void print_usage_lines(FILE *f, const char *usage, const char *first, const char *next, int indent)
{
    const char *p = usage;
    int k = 0;
    while (*p) {
        size_t len = strcspn(p, "\n");
        char line[600];
        snprintf(line, sizeof line, "%snerve %.*s", k++ ? next : first, (int)(len < 500 ? len : 500), p);
        if (indent > 0) {
            const char *prefix = k > 1 ? next : first;
            fputs(prefix, f);
            wrap_at(f, line + strlen(prefix), (int)strlen(prefix), indent, 1);
            fputc('\n', f);
        } else
            fprintf(f, "%s\n", line);
        p += len;
        if (*p)
            p++;
    }
}

static void print_exit_statuses(FILE *f)
{
    fputs("exit status:", f);
    int col = 12;
    for (const cli_exit_status *e = cli_exit_statuses; e->meaning; e++) {
        char item[80];
        snprintf(item, sizeof item, "%d %s%s", e->code, e->brief, e[1].meaning ? "," : "");
        col = wrap(f, item, col, 2);
    }
    fputc('\n', f);
}

void cli_print_help(FILE *f, const cli_command *c)
{
    print_usage_lines(f, c->usage, "usage: ", "       ", 13);
    fputc('\n', f);
    char summary[512];
    snprintf(summary, sizeof summary, "%s.", c->summary);
    if (summary[0] >= 'a' && summary[0] <= 'z')
        summary[0] = (char)(summary[0] - 'a' + 'A');
    wrap(f, summary, 0, 0);
    if (c->details) {
        fputs("\n", f);
        wrap(f, c->details, 0, 0);
    }
    fputs("\n", f);
    if (c->options && c->options->name) {
        fputs("\noptions:\n", f);
        for (const cli_option *o = c->options; o->name; o++)
            print_option(f, o, NULL);
    }
    fputs("\noptions of every command:\n", f);
    for (const cli_option *o = cli_global_options; o->name; o++)
        print_option(f, o, !strcmp(o->name, "--help") ? "-h, --help" : NULL);
    fprintf(f, "\nexample:\n  %s\n\n", c->example);
    print_exit_statuses(f);
    fputs("Options: --opt VALUE or --opt=VALUE. More: man nerve, docs/cli.md.\n", f);
}

void cli_print_overview(FILE *f)
{
    fputs("usage: nerve <command> [options]\n\n"
          "commands (nerve help CMD: a command's options, their defaults and an example):\n", f);
    for (int i = 0; i < cli_n_commands; i++) {
        const cli_command *c = &cli_commands[i];
        const char *p = c->usage;
        while (*p) {
            size_t len = strcspn(p, "\n");
            char line[600];
            snprintf(line, sizeof line, "%.*s", (int)(len < 500 ? len : 500), p);
            fputs("  ", f);
            wrap_at(f, line, 2, 6, 1);
            fputc('\n', f);
            p += len + (p[len] == '\n');
        }
        fputs("        ", f);
        wrap(f, c->summary, 8, 8);
        fputc('\n', f);
    }
    fputs("\noptions of every command:\n", f);
    for (const cli_option *o = cli_global_options; o->name; o++)
        print_option(f, o, !strcmp(o->name, "--help") ? "-h, --help" : NULL);
    fputc('\n', f);
    print_exit_statuses(f);
    fputs("Options: --opt VALUE or --opt=VALUE. Environment: NERVE_THREADS (the default\n"
          "thread count), COLUMNS (the progress bar width where the terminal says none),\n"
          "NO_COLOR (honoured: nerve prints no colour at all). More: man nerve; docs/.\n", f);
}

/* ---- roff (the man page) -------------------------------------------------------------- */

/* Text escaped for roff: backslashes, hyphens (as \-, so that options can be searched
 * and copied), and a line that would start with a control character. */
static void roff(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else if (*s == '\n') {
            fputc('\n', f);
            if (s[1] == '.' || s[1] == '\'')
                fputs("\\&", f);
        } else
            fputc(*s, f);
    }
}

void cli_print_man(FILE *f)
{
    fprintf(f, ".\\\" Made by `nerve help --man` from cli/commands.c; do not edit.\n"
               ".TH NERVE 1 \"\" \"nerve %s\" \"User Commands\"\n"
               ".SH NAME\nnerve \\- train, evaluate and use neural networks described in cfg files\n"
               ".SH SYNOPSIS\n", NERVE_VERSION);
    for (int i = 0; i < cli_n_commands; i++) {
        const char *p = cli_commands[i].usage;
        while (*p) {
            size_t len = strcspn(p, "\n");
            char line[512];
            snprintf(line, sizeof line, "%.*s", (int)(len < 500 ? len : 500), p);
            fputs(".B nerve\n", f);
            roff(f, line);
            fputs("\n.br\n", f);
            p += len;
            if (*p)
                p++;
        }
    }
    fputs(".SH DESCRIPTION\n"
          "nerve builds the network a cfg file describes, trains it on the data the cfg names, "
          "and evaluates and uses the checkpoints it writes. Every option takes its value as\n"
          ".B \\-\\-opt value\nor\n.BR \\-\\-opt=value .\n"
          "An unknown command or option is a usage error that names the closest valid one.\n"
          ".SH COMMANDS\n", f);
    for (int i = 0; i < cli_n_commands; i++) {
        const cli_command *c = &cli_commands[i];
        fputs(".SS ", f);
        roff(f, c->name);
        fputs("\n", f);
        roff(f, c->summary);
        fputs(".\n", f);
        if (c->details) {
            roff(f, c->details);
            fputs("\n", f);
        }
        for (const cli_option *o = c->options; o && o->name; o++) {
            fputs(".TP\n.B ", f);
            roff(f, o->name);
            if (o->arg) {
                fputs(" \\fI", f);
                roff(f, o->arg);
                fputs("\\fR", f);
            }
            fputs("\n", f);
            roff(f, o->help);
            if (o->def) {
                fputs(" (default: ", f);
                roff(f, o->def);
                fputs(")", f);
            }
            fputs("\n", f);
        }
        fputs(".PP\nExample:\n.nf\n.RS\n", f);
        roff(f, c->example);
        fputs("\n.RE\n.fi\n", f);
    }
    fputs(".SH OPTIONS OF EVERY COMMAND\n", f);
    for (const cli_option *o = cli_global_options; o->name; o++) {
        fputs(".TP\n.B ", f);
        roff(f, o->name);
        if (o->arg) {
            fputs(" \\fI", f);
            roff(f, o->arg);
            fputs("\\fR", f);
        }
        fputs("\n", f);
        roff(f, o->help);
        if (o->def) {
            fputs(" (default: ", f);
            roff(f, o->def);
            fputs(")", f);
        }
        fputs("\n", f);
    }
    fputs(".SH EXIT STATUS\n", f);
    for (const cli_exit_status *e = cli_exit_statuses; e->meaning; e++) {
        fprintf(f, ".TP\n.B %d\n", e->code);
        roff(f, e->meaning);
        fputs("\n", f);
    }
    fputs(".SH ENVIRONMENT\n"
          ".TP\n.B NERVE_THREADS\nthe default thread count (else every core)\n"
          ".TP\n.B COLUMNS\nthe width of the progress bar when the terminal does not report one\n"
          ".TP\n.B NO_COLOR\nhonoured: nerve writes no colour or other escape codes in any case\n"
          ".SH SEE ALSO\n"
          "docs/cli.md, docs/cfg.md and docs/architectures.md of the nerve sources\n", f);
}

/* ---- Markdown (docs/cli.md) ----------------------------------------------------------- */

/* Text for a Markdown table cell or paragraph: '|' escaped, '<' and '>' as entities. */
static void md(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else
            fputc(*s, f);
    }
}

static void md_options(FILE *f, const cli_option *opts)
{
    fputs("| option | default | meaning |\n|---|---|---|\n", f);
    for (const cli_option *o = opts; o->name; o++) {
        fprintf(f, "| `%s%s", o->name, o->arg ? " " : "");
        if (o->arg)
            md(f, o->arg);
        fputs("` | ", f);
        md(f, o->def ? o->def : "");
        fputs(" | ", f);
        md(f, o->help);
        fputs(" |\n", f);
    }
}

void cli_print_markdown(FILE *f)
{
    fputs("```\n", f);
    for (int i = 0; i < cli_n_commands; i++)
        print_usage_lines(f, cli_commands[i].usage, "", "", 0);
    fputs("```\n\nEvery option takes its value as `--opt VALUE` or `--opt=VALUE`; `nerve CMD --help` "
          "(or `nerve help CMD`) prints the command's usage, options with their defaults and an "
          "example. An unknown command or option is a usage error (exit 2) that names the closest "
          "valid one.\n\nOptions of every command:\n\n", f);
    md_options(f, cli_global_options);
    fputs("\nExit status:\n\n| status | meaning |\n|---|---|\n", f);
    for (const cli_exit_status *e = cli_exit_statuses; e->meaning; e++) {
        fprintf(f, "| %d | ", e->code);
        md(f, e->meaning);
        fputs(" |\n", f);
    }
    for (int i = 0; i < cli_n_commands; i++) {
        const cli_command *c = &cli_commands[i];
        fprintf(f, "\n### nerve %s\n\n```\n", c->name);
        print_usage_lines(f, c->usage, "", "", 0);
        fputs("```\n\n", f);
        md(f, c->summary);
        fputs(".", f);
        if (c->details) {
            fputs(" ", f);
            md(f, c->details);
        }
        fputs("\n\n", f);
        if (c->options && c->options->name) {
            md_options(f, c->options);
            fputs("\n", f);
        }
        fprintf(f, "Example: `%s`\n", c->example);
    }
}
