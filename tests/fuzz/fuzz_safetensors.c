/* libFuzzer target: the safetensors reader. Opens the input as a file; for an accepted
 * file checks what the reader promises (names unique and found again, shapes within
 * limits and matching their element count, every tensor readable), then writes the tensors
 * back with the writer, reopens the copy and compares: a wrong value is a finding too. */
#include "fuzz_common.h"

#include <math.h>

static fuzz_file in;
static char out_dir[256], out_path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_file_open(&in, "safetensors");
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(out_dir, sizeof out_dir, "%s/nerve-fuzz-st-XXXXXX", base);
    if (!mkdtemp(out_dir))
        fuzz_die("mkdtemp");
    snprintf(out_path, sizeof out_path, "%s/copy.safetensors", out_dir);
    return 0;
}

static int same_bits(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))))
            return 0;
    return 1;
}

/* Writes f's tensors and metadata with the writer and checks the copy reads the same. */
static void round_trip(const nerve_st_file *f, float **vals, size_t *numel)
{
    nerve_st_writer *w = nerve_st_writer_create();
    if (!w)
        return;
    int n = nerve_st_count(f), st = NERVE_OK;
    for (int i = 0; i < n && st == NERVE_OK; i++) {
        int nd, dims[NERVE_MAX_DIMS];
        nerve_st_shape(f, i, &nd, dims);
        st = nerve_st_writer_add(w, nerve_st_name(f, i), nd, dims, vals[i]);
    }
    const char *keys[] = {"nerve.format", "nerve.cfg", "format", ""};
    for (size_t k = 0; k < sizeof keys / sizeof *keys && st == NERVE_OK; k++) {
        const char *v = nerve_st_metadata(f, keys[k]);
        if (v)
            st = nerve_st_writer_meta(w, keys[k], v);
    }
    if (st == NERVE_OK)
        st = nerve_st_writer_save(w, out_path);
    nerve_st_writer_free(w);
    fuzz_check_error(st);
    if (st != NERVE_OK)
        return; /* the writer may refuse what the reader accepts (e.g. empty names) */
    nerve_st_file *g = nerve_st_open(out_path);
    if (!g || nerve_st_count(g) != n) {
        fprintf(stderr, "round trip: %s\n", g ? "tensor count differs" : nerve_last_error());
        abort();
    }
    for (int i = 0; i < n; i++) {
        int k = nerve_st_find(g, nerve_st_name(f, i));
        float *v = malloc((numel[i] ? numel[i] : 1) * sizeof *v);
        if (!v)
            abort();
        if (k < 0 || nerve_st_read(g, k, v, numel[i]) != NERVE_OK ||
            !same_bits(v, vals[i], numel[i])) {
            fprintf(stderr, "round trip: tensor '%s' differs\n", nerve_st_name(f, i));
            abort();
        }
        free(v);
    }
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *a = nerve_st_metadata(f, keys[k]), *b = nerve_st_metadata(g, keys[k]);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) {
            fprintf(stderr, "round trip: metadata '%s' differs\n", keys[k]);
            abort();
        }
    }
    nerve_st_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file_set(&in, data, size);
    nerve_clear_error();
    nerve_st_file *f = nerve_st_open(in.path);
    if (!f) {
        fuzz_check_error(-1);
        return 0;
    }
    int n = nerve_st_count(f);
    float **vals = calloc((size_t)n + 1, sizeof *vals);
    size_t *numel = calloc((size_t)n + 1, sizeof *numel);
    if (!vals || !numel)
        abort();
    for (int i = 0; i < n; i++) {
        const char *name = nerve_st_name(f, i);
        if (!name || nerve_st_find(f, name) != i)
            abort(); /* names are unique, so each is found at its own index */
        int nd = -1, dims[NERVE_MAX_DIMS];
        if (nerve_st_shape(f, i, &nd, dims) != NERVE_OK || nd < 0 || nd > NERVE_MAX_DIMS)
            abort();
        size_t count = 1;
        for (int k = 0; k < nd; k++) {
            if (dims[k] < 0)
                abort();
            count *= (size_t)dims[k];
        }
        if (count > size)
            abort(); /* every element takes at least one byte of the file */
        numel[i] = count;
        vals[i] = malloc((count ? count : 1) * sizeof(float));
        if (!vals[i])
            abort();
        if (nerve_st_read(f, i, vals[i], count) != NERVE_OK)
            abort();
        if (count && nerve_st_read(f, i, vals[i], count - 1) == NERVE_OK)
            abort(); /* a wrong element count must be refused */
    }
    nerve_st_find(f, "");
    nerve_st_find(f, "\xff");
    nerve_st_metadata(f, "nerve.cfg");
    round_trip(f, vals, numel);
    for (int i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    free(numel);
    nerve_st_close(f);
    return 0;
}
