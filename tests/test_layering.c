/* The layering check: dependencies point down the layer table of docs/ARCHITECTURE.md.
 *
 * Two scans, both against the order of that table (a row may use the rows above it):
 * - every .c and .h file of src/<folder> (and of cli) is read for `#include "../<folder>/..."`; an
 *   include of a header of a higher layer, or of a folder the table does not list, fails
 *   naming file:line;
 * - the object files of the library (nm) show which folder defines each symbol and which
 *   folders use it: a call into a higher layer through the public header, invisible to the
 *   include scan, fails naming the object and the symbol.
 * The negative tests feed the same checker synthetic violating text, so the check can fail. */
#define _DEFAULT_SOURCE
#include "test.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_LAYERS 32

typedef struct {
    char name[MAX_LAYERS][32]; /* folder name: "core" for src/core, "cli" for cli/ */
    int n;
} layer_table;

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, fp) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(fp);
    return s;
}

/* Copies cell `col` (0-based) of a markdown table row, trimmed, into out. */
static int table_cell(const char *line, size_t len, int col, char *out, size_t size)
{
    const char *p = line, *end = line + len;
    if (p >= end || *p != '|')
        return 0;
    p++;
    for (int c = 0; c < col; c++) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        if (!bar)
            return 0;
        p = bar + 1;
    }
    const char *bar = memchr(p, '|', (size_t)(end - p));
    if (!bar)
        return 0;
    while (p < bar && *p == ' ')
        p++;
    const char *q = bar;
    while (q > p && q[-1] == ' ')
        q--;
    if ((size_t)(q - p) >= size)
        return 0;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return 1;
}

/* Reads the table under "## Layers": row order is layer order, lowest first; the folder
 * column ("src/core", "cli/") names the layer. Returns the number of layers (0: none). */
static int parse_layers(const char *md, layer_table *t)
{
    t->n = 0;
    const char *p = strstr(md, "\n## Layers");
    if (!p)
        return 0;
    p = strchr(p + 1, '\n');
    int in_table = 0;
    while (p && *p) {
        p++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len == 0 || *p != '|') {
            if (in_table)
                break;
            p = eol;
            continue;
        }
        in_table = 1;
        char folder[64];
        if (table_cell(p, len, 1, folder, sizeof folder) && strncmp(folder, "---", 3) != 0 &&
            strcmp(folder, "folder") != 0) {
            size_t fl = strlen(folder);
            while (fl > 0 && folder[fl - 1] == '/')
                folder[--fl] = 0;
            const char *base = strrchr(folder, '/');
            base = base ? base + 1 : folder;
            if (t->n == MAX_LAYERS || strlen(base) >= sizeof t->name[0])
                return 0;
            strcpy(t->name[t->n++], base);
        }
        p = eol;
    }
    return t->n;
}

static int layer_rank(const layer_table *t, const char *name, size_t len)
{
    for (int i = 0; i < t->n; i++)
        if (strlen(t->name[i]) == len && strncmp(t->name[i], name, len) == 0)
            return i;
    return -1;
}

/* Appends a line to a report buffer (kept short: the first violations are enough). */
static void report(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(char *buf, size_t size, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
}

/* Scans the text of `path` (a file of layer `folder`) for includes of a higher layer or an
 * unlisted folder. Returns the number of violations; describes them in msg. */
static int check_includes(const layer_table *t, const char *path, const char *folder,
                          const char *text, char *msg, size_t size)
{
    int own = layer_rank(t, folder, strlen(folder));
    if (own < 0) {
        report(msg, size, "%s:1: folder %s is in no row of the layer table\n", path, folder);
        return 1;
    }
    int bad = 0, line = 1;
    for (const char *p = text; *p; line++) {
        const char *eol = strchr(p, '\n');
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '#') {
            q++;
            while (*q == ' ' || *q == '\t')
                q++;
            if (strncmp(q, "include", 7) == 0) {
                q += 7;
                while (*q == ' ' || *q == '\t')
                    q++;
                if (strncmp(q, "\"../", 4) == 0) {
                    /* from cli/, a library folder is ../src/<folder>/ */
                    const char *name = q + 4 + (strncmp(q + 4, "src/", 4) == 0 ? 4 : 0);
                    const char *slash = strchr(name, '/');
                    const char *quote = strchr(name, '"');
                    if (slash && (!quote || slash < quote) && (!eol || slash < eol)) {
                        char inc[64];
                        size_t n = (size_t)(slash - name);
                        snprintf(inc, sizeof inc, "%.*s", (int)n, name);
                        int r = layer_rank(t, name, n);
                        if (r < 0) {
                            report(msg, size, "%s:%d: includes ../%s/, a folder in no row of the "
                                   "layer table\n", path, line, inc);
                            bad++;
                        } else if (r > own) {
                            report(msg, size, "%s:%d: includes a header of layer %s, above %s\n",
                                   path, line, inc, folder);
                            bad++;
                        }
                    }
                }
            }
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return bad;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Checks every .c / .h of dir (a layer's folder); returns violations, counts files. */
static int check_folder(const layer_table *t, const char *dir, const char *folder, char *msg,
                        size_t size, int *files)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!has_suffix(e->d_name, ".c") && !has_suffix(e->d_name, ".h"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = slurp(path);
        if (!text)
            continue;
        bad += check_includes(t, path, folder, text, msg, size);
        (*files)++;
        free(text);
    }
    closedir(d);
    return bad;
}

static int load_table(layer_table *t)
{
    char *md = slurp("docs/ARCHITECTURE.md");
    if (!md)
        return 0;
    int n = parse_layers(md, t);
    free(md);
    return n;
}

TEST(layer_table_is_read_from_the_architecture_doc)
{
    layer_table t;
    CHECK_MSG(load_table(&t) >= 5, "no layer table under '## Layers' in docs/ARCHITECTURE.md");
    CHECK(strcmp(t.name[0], "core") == 0);
    CHECK(strcmp(t.name[t.n - 1], "cli") == 0);
    /* Every folder under src/ is a row of the table. */
    DIR *d = opendir("src");
    CHECK(d != NULL);
    struct dirent *e;
    int folders = 0;
    while ((e = readdir(d))) {
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "src/%s", e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        folders++;
        if (layer_rank(&t, e->d_name, strlen(e->d_name)) < 0) {
            closedir(d);
            CHECK_MSG(0, "src/%s is in no row of the layer table of docs/ARCHITECTURE.md",
                      e->d_name);
        }
    }
    closedir(d);
    CHECK(folders >= 5);
}

TEST(no_source_includes_a_header_of_a_higher_layer)
{
    layer_table t;
    CHECK(load_table(&t) >= 5);
    static char msg[4096];
    msg[0] = 0;
    int bad = 0, files = 0;
    for (int i = 0; i < t.n; i++) {
        char dir[64];
        snprintf(dir, sizeof dir, strcmp(t.name[i], "cli") == 0 ? "%s" : "src/%s", t.name[i]);
        bad += check_folder(&t, dir, t.name[i], msg, sizeof msg, &files);
    }
    CHECK_MSG(files >= 50, "only %d source files scanned", files);
    CHECK_MSG(bad == 0, "%d includes point up the layer table:\n%s", bad, msg);
}

TEST(the_include_check_catches_a_violation)
{
    layer_table t;
    const char *md = "# x\n\n## Layers (down)\n\n| layer | folder | owns |\n|---|---|---|\n"
                     "| core | src/core | a |\n| graph | src/graph | b |\n| train | src/train | c |\n"
                     "| cli | cli/ | d |\n\n## Next\n| not | a/layer | row |\n";
    CHECK(parse_layers(md, &t) == 4);
    CHECK(strcmp(t.name[1], "graph") == 0 && strcmp(t.name[3], "cli") == 0);
    char msg[1024] = "";
    const char *ok = "#include \"../core/core.h\"\n#include \"graph.h\"\n#include <stdio.h>\n";
    CHECK(check_includes(&t, "src/graph/x.c", "graph", ok, msg, sizeof msg) == 0);
    CHECK(msg[0] == 0);
    const char *up = "/* a */\n#include \"../core/core.h\"\n  #  include \"../train/fit.h\"\n";
    CHECK(check_includes(&t, "src/graph/x.c", "graph", up, msg, sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "src/graph/x.c:3:") && strstr(msg, "train"), "message: %s", msg);
    msg[0] = 0;
    const char *unknown = "#include \"../nowhere/y.h\"\n";
    CHECK(check_includes(&t, "src/core/y.c", "core", unknown, msg, sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "src/core/y.c:1:") && strstr(msg, "nowhere"), "message: %s", msg);
    msg[0] = 0;
    CHECK(check_includes(&t, "src/extra/z.c", "extra", ok, msg, sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "extra"), "message: %s", msg);
    /* The top layer may include anything listed, also as ../src/<folder>/ */
    CHECK(check_includes(&t, "cli/m.c", "cli", up, msg, sizeof msg) == 0);
    const char *via_src = "#include \"../src/train/fit.h\"\n";
    CHECK(check_includes(&t, "cli/m.c", "cli", via_src, msg, sizeof msg) == 0);
    msg[0] = 0;
    CHECK(check_includes(&t, "src/graph/x.c", "graph", via_src, msg, sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "src/graph/x.c:1:") && strstr(msg, "train"), "message: %s", msg);
}

/* ---- the symbol scan --------------------------------------------------------------------- */

typedef struct {
    char sym[96];
    int rank;
} def_entry;

static int cmp_def(const void *a, const void *b)
{
    return strcmp(((const def_entry *)a)->sym, ((const def_entry *)b)->sym);
}

typedef struct {
    char obj[160];
    char sym[96];
    int rank;
} use_entry;

/* Parses `nm -A` output lines "<dir>/obj/src/<folder>/<file>.o: <addr> <T> <sym>" or
 * "...: U <sym>" into definitions and uses with their layer ranks. Objects of folders or
 * sources that no longer exist (stale objects of moved files) are skipped by the caller's
 * `exists` test. Returns the number of upward uses; describes them in msg. */
static int check_symbols(const layer_table *t, const char *nm_out, int (*exists)(const char *obj),
                         char *msg, size_t size)
{
    size_t cap_d = 1024, cap_u = 1024, nd = 0, nu = 0;
    def_entry *defs = malloc(cap_d * sizeof *defs);
    use_entry *uses = malloc(cap_u * sizeof *uses);
    int bad = 0;
    for (const char *p = nm_out; p && *p;) {
        const char *eol = strchr(p, '\n');
        char line[512];
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
        p = eol ? eol + 1 : NULL;
        char *colon = strstr(line, ".o:");
        if (!colon)
            continue;
        colon[2] = 0;
        const char *obj = line, *src = strstr(line, "/src/");
        if (!src || (exists && !exists(obj)))
            continue;
        const char *folder = src + 5, *slash = strchr(folder, '/');
        if (!slash)
            continue;
        int rank = layer_rank(t, folder, (size_t)(slash - folder));
        char *fields[3];
        int nf = 0;
        for (char *tok = strtok(colon + 3, " \t"); tok && nf < 3; tok = strtok(NULL, " \t"))
            fields[nf++] = tok;
        const char *type = nf == 3 ? fields[1] : nf == 2 ? fields[0] : NULL;
        const char *sym = nf == 3 ? fields[2] : nf == 2 ? fields[1] : NULL;
        if (!type || strlen(sym) >= sizeof defs[0].sym)
            continue;
        if (strcmp(type, "U") == 0) {
            if (nu == cap_u)
                uses = realloc(uses, (cap_u *= 2) * sizeof *uses);
            snprintf(uses[nu].obj, sizeof uses[nu].obj, "%.159s", obj);
            strcpy(uses[nu].sym, sym);
            uses[nu++].rank = rank;
        } else if (strchr("TDBR", type[0]) && type[1] == 0) {
            if (nd == cap_d)
                defs = realloc(defs, (cap_d *= 2) * sizeof *defs);
            strcpy(defs[nd].sym, sym);
            defs[nd++].rank = rank;
        }
    }
    qsort(defs, nd, sizeof *defs, cmp_def);
    for (size_t i = 0; i < nu; i++) {
        def_entry key;
        strcpy(key.sym, uses[i].sym);
        def_entry *d = bsearch(&key, defs, nd, sizeof *defs, cmp_def);
        if (!d || d->rank <= uses[i].rank)
            continue;
        bad++;
        report(msg, size, "%s: uses %s, defined in layer %s\n", uses[i].obj, uses[i].sym,
               d->rank >= 0 ? t->name[d->rank] : "?");
    }
    free(defs);
    free(uses);
    return bad;
}

/* 1 when the object's source file still exists (build/obj/src/a/b.o -> src/a/b.c). */
static int source_exists(const char *obj)
{
    const char *src = strstr(obj, "/obj/");
    if (!src)
        return 0;
    char path[256];
    snprintf(path, sizeof path, "%s", src + 5);
    size_t n = strlen(path);
    if (n < 2)
        return 0;
    path[n - 1] = 'c';
    struct stat st;
    return stat(path, &st) == 0;
}

TEST(no_library_object_calls_into_a_higher_layer)
{
    layer_table t;
    CHECK(load_table(&t) >= 5);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "nm -A %s/obj/src/*/*.o 2>/dev/null", test_build_dir());
    FILE *fp = popen(cmd, "r");
    CHECK(fp != NULL);
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + n, 1, cap - n - 1, fp)) > 0) {
        n += got;
        if (n + 1 == cap)
            out = realloc(out, cap *= 2);
    }
    out[n] = 0;
    int rc = pclose(fp);
    if (rc != 0 || n == 0) {
        free(out);
        CHECK_MSG(0, "'%s' failed (status %d)", cmd, rc);
    }
    static char msg[4096];
    msg[0] = 0;
    int bad = check_symbols(&t, out, source_exists, msg, sizeof msg);
    int objects = 0;
    for (const char *p = out; (p = strstr(p, ".o:")); p++)
        objects++;
    free(out);
    CHECK_MSG(objects > 100, "nm listed only %d symbols", objects);
    CHECK_MSG(bad == 0, "%d uses point up the layer table:\n%s", bad, msg);
}

TEST(the_symbol_check_catches_a_violation)
{
    layer_table t;
    const char *md = "\n## Layers\n\n| layer | folder | owns |\n|---|---|---|\n"
                     "| core | src/core | a |\n| graph | src/graph | b |\n| train | src/train | c |\n";
    CHECK(parse_layers(md, &t) == 3);
    const char *nm = "build/obj/src/core/a.o:0000000000000000 T nerve_a\n"
                     "build/obj/src/core/a.o:                 U nerve_fit\n"
                     "build/obj/src/graph/g.o:0000000000000010 T nerve_g\n"
                     "build/obj/src/graph/g.o:                 U nerve_a\n"
                     "build/obj/src/train/f.o:0000000000000000 T nerve_fit\n"
                     "build/obj/src/train/f.o:                 U nerve_g\n"
                     "build/obj/src/train/f.o:                 U memcpy\n";
    char msg[1024] = "";
    CHECK(check_symbols(&t, nm, NULL, msg, sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "src/core/a.o") && strstr(msg, "nerve_fit") && strstr(msg, "train"),
              "message: %s", msg);
}
