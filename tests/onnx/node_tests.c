/* ONNX backend test runner (make onnx-test): imports every test model of the given
 * directories (each holds test_NAME/model.onnx and test_NAME/test_data_set_N/{input,output}_K.pb,
 * the layout of Debian's libonnx-testdata), feeds each data set's inputs, runs every output
 * and compares it with the expected tensor: same shape, and |got - want| <= atol + rtol |want|
 * elementwise (NaN equals NaN), rtol = 1e-3 and atol = 1e-7 as ONNX's own backend tests use.
 *
 * A test is PASS, FAIL (a wrong value or shape, or an error other than "not supported") or
 * UNSUPPORTED (the importer refused an operator, attribute or type it does not cover). The
 * report groups tests by operator (the first non-Constant node of the model; an
 * "<name>_expanded" test counts for the operator of test "<name>") and gives totals per
 * directory.
 *
 * usage: node_tests [-v] [-l LIST] DIR...   (-v: one line per test; -l: only the tests
 * named in file LIST, one per line) */
#include "nerve.h"
#include "../../src/io/onnx.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RTOL 1e-3
#define ATOL 1e-7

enum { PASS, FAIL, UNSUP };
static const char *const verdict_name[] = {"PASS", "FAIL", "UNSUPPORTED"};

typedef struct op_count {
    char op[64];
    int n[3];
} op_count;

static op_count ops[512];
static int n_ops;

static void count_op(const char *op, int v)
{
    for (int k = 0; k < n_ops; k++)
        if (!strcmp(ops[k].op, op)) {
            ops[k].n[v]++;
            return;
        }
    if (n_ops < (int)(sizeof ops / sizeof ops[0])) {
        snprintf(ops[n_ops].op, sizeof ops[n_ops].op, "%s", op);
        ops[n_ops++].n[v]++;
    }
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static int exists(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0;
}

/* The operator a test is about (see the header). */
static void test_op(const char *dir, const char *name, char *op, size_t size)
{
    char path[1024];
    const char *suffix = "_expanded";
    size_t nl = strlen(name), sl = strlen(suffix);
    snprintf(path, sizeof path, "%s/%s/model.onnx", dir, name);
    if (nl > sl && !strcmp(name + nl - sl, suffix)) {
        char base[512];
        snprintf(base, sizeof base, "%.*s", (int)(nl - sl), name);
        char bp[1024];
        snprintf(bp, sizeof bp, "%s/%s/model.onnx", dir, base);
        if (exists(bp))
            snprintf(path, sizeof path, "%s", bp);
    }
    snprintf(op, size, "?");
    size_t len;
    unsigned char *buf = read_file(path, &len);
    if (!buf)
        return;
    onnx_model *m = onnx_model_parse(buf, len, path);
    free(buf);
    if (!m)
        return;
    for (int k = 0; k < m->n_nodes; k++)
        if (strcmp(m->nodes[k].op_type, "Constant")) {
            snprintf(op, size, "%s", m->nodes[k].op_type);
            break;
        }
    if (!strcmp(op, "?") && m->n_nodes)
        snprintf(op, size, "%s", m->nodes[0].op_type);
    onnx_model_free(m);
}

static int load_tensor(const char *path, onnx_tensor *t, char *why, size_t size)
{
    size_t len;
    unsigned char *buf = read_file(path, &len);
    if (!buf) {
        snprintf(why, size, "cannot read %s", path);
        return -1;
    }
    int st = onnx_tensor_parse(buf, len, path, t);
    free(buf);
    if (st < 0) {
        snprintf(why, size, "%s", nerve_last_error());
        return -1;
    }
    if (t->unusable || (!t->f && !t->i)) {
        snprintf(why, size, "%s: tensor of type %s not supported", path, onnx_dtype_name(t->dtype));
        return -2;
    }
    return 0;
}

/* The graph inputs that are no initializers, in order: input_K.pb feeds the K-th. */
static char input_names[64][ONNX_MAX_NAME];
static int n_input_names;

static void list_inputs(const onnx_model *pm)
{
    n_input_names = 0;
    for (int k = 0; k < pm->n_inputs && n_input_names < 64; k++) {
        int is_init = 0;
        for (int j = 0; j < pm->n_init; j++)
            is_init |= !strcmp(pm->init[j].name, pm->inputs[k].name);
        if (!is_init)
            snprintf(input_names[n_input_names++], ONNX_MAX_NAME, "%s", pm->inputs[k].name);
    }
}

static int input_index(const char *name)
{
    for (int k = 0; k < n_input_names; k++)
        if (!strcmp(input_names[k], name))
            return k;
    return -1;
}

/* One data set: feed, run, compare. */
static int run_set(nerve_onnx *m, const char *set, char *why, size_t size)
{
    nerve_graph *g = nerve_onnx_graph(m);
    char path[1200];
    for (int i = 0; i < nerve_onnx_num_inputs(m); i++) {
        onnx_tensor t;
        snprintf(path, sizeof path, "%s/input_%d.pb", set, input_index(nerve_onnx_input_name(m, i)));
        int st = load_tensor(path, &t, why, size);
        if (st < 0)
            return st == -2 ? UNSUP : FAIL;
        nerve_tensor v = nerve_value(g, nerve_onnx_input(m, i));
        if (nerve_tensor_numel(&v) != t.n) {
            snprintf(why, size, "input %d has %zu values, the model %zu", i, t.n,
                     nerve_tensor_numel(&v));
            onnx_tensor_clear(&t);
            return FAIL;
        }
        for (size_t k = 0; k < t.n; k++)
            v.data[k] = t.f ? t.f[k] : (float)t.i[k];
        onnx_tensor_clear(&t);
    }
    for (int o = 0; o < nerve_onnx_num_outputs(m); o++) {
        onnx_tensor t;
        snprintf(path, sizeof path, "%s/output_%d.pb", set, o);
        int st = load_tensor(path, &t, why, size);
        if (st < 0)
            return st == -2 ? UNSUP : FAIL;
        int nd, dims[NERVE_MAX_DIMS];
        nerve_onnx_output_shape(m, o, &nd, dims);
        int same = nd == t.ndim;
        for (int i = 0; same && i < nd; i++)
            same = dims[i] == t.dims[i];
        if (!same) {
            char a[96];
            snprintf(why, size, "output %d has shape %s, expected rank %d", o,
                     nerve_shape_str(nd, dims, a, sizeof a), t.ndim);
            onnx_tensor_clear(&t);
            return FAIL;
        }
        if (nerve_onnx_run(m, o) < 0) {
            snprintf(why, size, "run: %s", nerve_last_error());
            onnx_tensor_clear(&t);
            return FAIL;
        }
        nerve_tensor v = nerve_value(g, nerve_onnx_output(m, o));
        int verdict = PASS;
        for (size_t k = 0; k < t.n && verdict == PASS; k++) {
            double want = t.f ? (double)t.f[k] : (double)t.i[k], got = v.data[k];
            int ok = (isnan(want) && isnan(got)) || want == got ||
                     fabs(got - want) <= ATOL + RTOL * fabs(want);
            if (!ok) {
                snprintf(why, size, "output %d element %zu: %.9g, expected %.9g", o, k, got, want);
                verdict = FAIL;
            }
        }
        onnx_tensor_clear(&t);
        if (verdict != PASS)
            return verdict;
    }
    return PASS;
}

static int n_bound_tests;

/* Imports the model; an input whose value the importer needs (a shape, axes, pads: "input
 * K ('name') is computed at run time") is bound to its value in test_data_set_0 and the
 * import retried. */
static nerve_onnx *import_binding(const char *dir, const char *name, int *bound)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/model.onnx", dir, name);
    size_t len;
    unsigned char *buf = read_file(path, &len);
    *bound = 0;
    if (!buf) {
        nerve_set_error(NERVE_ERR_IO, "%s: cannot read", path);
        return NULL;
    }
    onnx_model *pm = onnx_model_parse(buf, len, path);
    if (!pm) {
        free(buf);
        return NULL;
    }
    list_inputs(pm);
    onnx_model_free(pm);
    const char *names[16];
    nerve_tensor vals[16];
    char name_store[16][ONNX_MAX_NAME];
    int nb = 0;
    nerve_onnx *m = NULL;
    for (;;) {
        m = nerve_import_onnx_bound(buf, len, path, 1, nb, names, vals);
        if (m || nb == 16)
            break;
        const char *e = nerve_last_error(), *q = strstr(e, "('"), *q2 = q ? strstr(q, "') is computed at run time") : NULL;
        if (!q2)
            break;
        snprintf(name_store[nb], ONNX_MAX_NAME, "%.*s", (int)(q2 - q - 2), q + 2);
        int idx = input_index(name_store[nb]);
        if (idx < 0)
            break;
        char tp[1200];
        snprintf(tp, sizeof tp, "%s/%s/test_data_set_0/input_%d.pb", dir, name, idx);
        onnx_tensor t;
        char why[256];
        if (load_tensor(tp, &t, why, sizeof why) < 0 || t.ndim > NERVE_MAX_DIMS)
            break;
        nerve_tensor v = {0};
        v.ndim = t.ndim;
        for (int i = 0; i < t.ndim; i++)
            v.dims[i] = (int)t.dims[i];
        v.data = malloc((t.n ? t.n : 1) * sizeof(float));
        for (size_t k = 0; k < t.n; k++)
            v.data[k] = t.f ? t.f[k] : (float)t.i[k];
        onnx_tensor_clear(&t);
        names[nb] = name_store[nb];
        vals[nb++] = v;
    }
    char err[1024];
    snprintf(err, sizeof err, "%s", nerve_last_error());
    for (int k = 0; k < nb; k++)
        free(vals[k].data);
    free(buf);
    *bound = nb;
    if (!m)
        nerve_set_error(NERVE_ERR_FORMAT, "%s", err);
    return m;
}

static int run_test(const char *dir, const char *name, char *why, size_t size)
{
    int bound;
    nerve_onnx *m = import_binding(dir, name, &bound);
    if (!m) {
        const char *e = nerve_last_error();
        snprintf(why, size, "%s", e);
        return strstr(e, "not supported") ? UNSUP : FAIL;
    }
    n_bound_tests += bound > 0;
    int verdict = PASS, sets = 0;
    for (int s = 0; s < 16 && verdict == PASS; s++) {
        char set[1100];
        snprintf(set, sizeof set, "%s/%s/test_data_set_%d", dir, name, s);
        if (!exists(set))
            break;
        sets++;
        verdict = run_set(m, set, why, size);
    }
    if (!sets) {
        snprintf(why, size, "no test_data_set_0");
        verdict = FAIL;
    }
    nerve_onnx_free(m);
    return verdict;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_op(const void *a, const void *b)
{
    return strcmp(((const op_count *)a)->op, ((const op_count *)b)->op);
}

static char **list = NULL;
static int n_list = 0;

static int listed(const char *name)
{
    if (!list)
        return 1;
    for (int k = 0; k < n_list; k++)
        if (!strcmp(list[k], name))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int verbose = 0, first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "-v")) {
            verbose = 1;
        } else if (!strcmp(argv[first], "-l") && first + 1 < argc) {
            size_t len;
            char *text = (char *)read_file(argv[++first], &len);
            if (!text) {
                fprintf(stderr, "node_tests: cannot read %s\n", argv[first]);
                return 2;
            }
            text = realloc(text, len + 1);
            text[len] = 0;
            list = malloc(sizeof(char *) * (len + 1));
            for (char *tok = strtok(text, "\n"); tok; tok = strtok(NULL, "\n"))
                if (tok[0] && tok[0] != '#')
                    list[n_list++] = tok;
        } else {
            fprintf(stderr, "usage: node_tests [-v] [-l LIST] DIR...\n");
            return 2;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "usage: node_tests [-v] [-l LIST] DIR...\n");
        return 2;
    }
    nerve_set_threads(1);
    int total[3] = {0, 0, 0}, failures = 0;
    for (int d = first; d < argc; d++) {
        DIR *dp = opendir(argv[d]);
        if (!dp) {
            fprintf(stderr, "node_tests: cannot open %s\n", argv[d]);
            return 2;
        }
        char **names = NULL;
        int n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(dp))) {
            if (strncmp(e->d_name, "test_", 5) || !listed(e->d_name))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                names = realloc(names, (size_t)cap * sizeof *names);
            }
            names[n++] = strdup(e->d_name);
        }
        closedir(dp);
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        int counts[3] = {0, 0, 0};
        for (int k = 0; k < n; k++) {
            char why[1024] = "", op[64];
            int v = run_test(argv[d], names[k], why, sizeof why);
            test_op(argv[d], names[k], op, sizeof op);
            counts[v]++;
            count_op(op, v);
            if (verbose || (list && v != PASS))
                printf("%-11s %-60s %-24s %s\n", verdict_name[v], names[k], op,
                       v == PASS ? "" : why);
            free(names[k]);
        }
        free(names);
        printf("%s: %d tests, %d pass, %d fail, %d unsupported\n", argv[d], n, counts[PASS],
               counts[FAIL], counts[UNSUP]);
        for (int v = 0; v < 3; v++)
            total[v] += counts[v];
        failures += list ? counts[FAIL] + counts[UNSUP] : 0;
    }
    qsort(ops, (size_t)n_ops, sizeof ops[0], cmp_op);
    printf("\n%-28s %5s %5s %5s\n", "operator", "pass", "fail", "unsup");
    for (int k = 0; k < n_ops; k++)
        printf("%-28s %5d %5d %5d\n", ops[k].op, ops[k].n[PASS], ops[k].n[FAIL], ops[k].n[UNSUP]);
    printf("\ntotal: %d pass, %d fail, %d unsupported (%d tests with inputs bound at import)\n",
           total[PASS], total[FAIL], total[UNSUP], n_bound_tests);
    /* with a list (the quick subset of make test), every listed test must pass */
    return failures ? 1 : 0;
}
