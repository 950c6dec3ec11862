/* Helpers that many test files share: reading a file, running a command, finding the CLI,
 * filling nodes and the losses the operator tests differentiate. */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *s = malloc(cap);
    while (s && (got = fread(s + n, 1, cap - n - 1, fp)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *t = realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    fclose(fp);
    if (s) {
        s[n] = '\0';
        if (len)
            *len = n;
    }
    return s;
}

int test_run(const char *cmd, char *out, size_t n)
{
    size_t full_n = strlen(cmd) + strlen(test_tmpdir()) + 32;
    char *full = malloc(full_n);
    if (!full)
        return -1;
    snprintf(full, full_n, "cd '%s' && %s 2>&1", test_tmpdir(), cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p)
        return -1;
    size_t used = 0, got;
    char sink[4096];
    while (used + 1 < n && (got = fread(out + used, 1, n - 1 - used, p)) > 0)
        used += got;
    while (fread(sink, 1, sizeof sink, p) > 0) /* the rest is dropped, but read to the end */
        ;
    if (n)
        out[used] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *test_bin_dir(void)
{
    static char abs[2048];
    char cwd[1024];
    const char *b = test_build_dir();
    if (b[0] != '/' && getcwd(cwd, sizeof cwd))
        snprintf(abs, sizeof abs, "%.1000s/%.1000s", cwd, b);
    else
        snprintf(abs, sizeof abs, "%.2000s", b);
    return abs;
}

const char *test_nerve(void)
{
    static char path[2100];
    snprintf(path, sizeof path, "%s/nerve", test_bin_dir());
    return path;
}

/* A gray IDX pair of n 12 x 12 items: class k % 2 is a wide bar or a tall bar. */
void test_write_bar_items(const char *path_images, const char *path_labels, int n)
{
    FILE *f = fopen(path_images, "wb");
    unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n, 0, 0, 0, 12, 0, 0, 0, 12};
    fwrite(head, 1, 16, f);
    for (int k = 0; k < n; k++)
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 12; x++) {
                int wide = k % 2 == 0;
                int on = wide ? (y >= 4 && y < 8 && x >= 1 && x < 11) : (x >= 4 && x < 8 && y >= 1 && y < 11);
                fputc(on ? 230 : 0, f);
            }
    fclose(f);
    f = fopen(path_labels, "wb");
    unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n};
    fwrite(lh, 1, 8, f);
    for (int k = 0; k < n; k++)
        fputc(k % 2, f);
    fclose(f);
}

void test_set_values(nerve_graph *g, int id, const float *v, size_t n)
{
    memcpy(nerve_value(g, id).data, v, n * sizeof(float));
}

void test_fill_uniform(nerve_graph *g, int id, float lo, float hi, nerve_rng *r)
{
    nerve_tensor t = nerve_value(g, id);
    for (size_t k = 0; k < nerve_tensor_numel(&t); k++)
        t.data[k] = lo + (hi - lo) * nerve_rng_uniform(r);
}

int test_linear_loss(nerve_graph *g, int y, int *w)
{
    int nd, dims[NERVE_MAX_DIMS];
    *w = -1;
    if (nerve_node_shape(g, y, &nd, dims) < 0)
        return nerve_last_status();
    *w = nerve_param(g, "loss_w", nd - 1, dims + 1);
    return nerve_sum(g, nerve_mul(g, y, *w), NERVE_AXIS_ALL, 0);
}

int test_row_weight(nerve_graph *g, int y, const char *name)
{
    int nd, dims[NERVE_MAX_DIMS];
    if (nerve_node_shape(g, y, &nd, dims) < 0)
        return nerve_last_status();
    return nerve_param(g, name, 2, (int[]){1, (int)nerve_shape_numel(nd - 1, dims + 1)});
}

int test_scalar_loss(nerve_graph *g, int y, int *w)
{
    *w = test_row_weight(g, y, "loss_w");
    int s = nerve_dense(g, y, *w, -1);
    return nerve_matmul(g, s, s, 1, 0); /* [1,N] x [N,1] */
}

/* An IDX pair DIR/STEM-images.idx and DIR/STEM-labels.idx of n 8 x 8 gray images of 3 classes:
 * class i % 3 has a bright 3 x 3 square at a corner of its own, on noise (seeded). */
void test_write_corner_squares(const char *dir, const char *stem, int n, uint64_t seed)
{
    char path[600];
    nerve_rng r;
    nerve_rng_seed(&r, seed);
    snprintf(path, sizeof path, "%s/%s-images.idx", dir, stem);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels.idx", dir, stem);
    FILE *fl = fopen(path, "wb");
    unsigned char hi[16] = {0, 0, 8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)n, 0, 0, 0, 8, 0, 0, 0, 8};
    unsigned char hl[8] = {0, 0, 8, 1, 0, 0, (unsigned char)(n >> 8), (unsigned char)n};
    fwrite(hi, 1, 16, fi);
    fwrite(hl, 1, 8, fl);
    for (int i = 0; i < n; i++) {
        int c = i % 3, oy = c == 2 ? 4 : 1, ox = c == 1 ? 4 : 1;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++) {
                int in = y >= oy && y < oy + 3 && x >= ox && x < ox + 3;
                float v = (in ? 170.0f : 60.0f) + 15.0f * nerve_rng_normal(&r);
                fputc(v < 0 ? 0 : v > 255 ? 255 : (int)v, fi);
            }
        fputc(c, fl);
    }
    fclose(fi);
    fclose(fl);
}
