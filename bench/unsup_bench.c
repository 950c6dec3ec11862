/* Benchmarks of PCA and t-SNE on Fashion-MNIST (make bench; bench/unsup_compare.py runs the
 * reference and compares). Writes raw little-endian float32 files into OUTDIR:
 *   pca OUTDIR N       PCA of the first N training images (784-D): eigvals.f64 (784 doubles),
 *                      prints "pca_seconds S"
 *   tsne OUTDIR N ITER the first N test images, PCA to 50 (x50.f32, [N, 50], labels.i32), then
 *                      Barnes-Hut t-SNE (perplexity 30, PCA initialisation): y.f32 [N, 2];
 *                      prints "tsne_seconds S" and "tsne_kl KL" */
#include "nerve.h"
#include "bench_util.h"

#include <stdio.h>
#include <string.h>

#define FM "/usr/share/datasets/fashion-mnist/"

static int write_file(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, bytes, fp) != bytes) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    return fclose(fp) != 0;
}

static int run_pca(const char *dir, int n)
{
    nerve_dataset d;
    if (nerve_dataset_load_idx(&d, FM "train-images-idx3-ubyte.gz", NULL, 1.0f / 255) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    if (n > d.n)
        n = d.n;
    nerve_pca p;
    double t0 = now();
    if (nerve_pca_fit(&p, d.x, n, 784, 0, NERVE_PCA_COVARIANCE) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    printf("pca_seconds %.3f\n", now() - t0);
    printf("pca_samples %d\n", n);
    int bad = write_file(dir, "eigvals.f64", p.eigval, sizeof(double) * 784);
    nerve_pca_free(&p);
    nerve_dataset_free(&d);
    return bad;
}

static int run_tsne(const char *dir, int n, int iters)
{
    nerve_dataset d;
    if (nerve_dataset_load_idx(&d, FM "t10k-images-idx3-ubyte.gz", FM "t10k-labels-idx1-ubyte.gz",
                               1.0f / 255) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    if (n > d.n)
        n = d.n;
    nerve_pca p;
    float *x50 = malloc(sizeof(float) * n * 50), *y = malloc(sizeof(float) * n * 2);
    int *lab = malloc(sizeof(int) * n);
    if (nerve_pca_fit(&p, d.x, n, 784, 50, NERVE_PCA_COVARIANCE) < 0 ||
        nerve_pca_transform(&p, d.x, n, 50, 0, x50) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    for (int i = 0; i < n; i++)
        lab[i] = (int)d.y[i];
    nerve_tsne_options o;
    nerve_tsne_defaults(&o);
    o.iterations = iters;
    double kl, t0 = now();
    if (nerve_tsne(x50, n, 50, &o, y, &kl) < 0) {
        fprintf(stderr, "%s\n", nerve_last_error());
        return 1;
    }
    printf("tsne_seconds %.3f\n", now() - t0);
    printf("tsne_kl %.6f\n", kl);
    int bad = write_file(dir, "x50.f32", x50, sizeof(float) * n * 50) ||
              write_file(dir, "y.f32", y, sizeof(float) * n * 2) ||
              write_file(dir, "labels.i32", lab, sizeof(int) * n);
    nerve_pca_free(&p);
    nerve_dataset_free(&d);
    free(x50), free(y), free(lab);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "pca"))
        return run_pca(argv[2], atoi(argv[3]));
    if (argc >= 5 && !strcmp(argv[1], "tsne"))
        return run_tsne(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: unsup_bench pca OUTDIR N | tsne OUTDIR N ITERATIONS\n");
    return 2;
}
