/* Data files never size memory by their headers alone: a plain IDX file is checked against
 * its size before anything is allocated, a compressed one is read into buffers that grow
 * with the data actually found (so a lying header fails after little work), and training
 * compiles its graph for min(batch, training set). */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

static int write_bytes(const char *path, const void *data, size_t n, int gzip)
{
    if (gzip) {
        gzFile gz = gzopen(path, "wb");
        if (!gz)
            return -1;
        int ok = n == 0 || gzwrite(gz, data, (unsigned)n) == (int)n;
        return gzclose(gz) == Z_OK && ok ? 0 : -1;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = fwrite(data, 1, n, fp);
    return fclose(fp) == 0 && w == n ? 0 : -1;
}

/* An IDX header for ubyte data of the given dims, then `extra` payload bytes of value 7. */
static size_t idx_header(unsigned char *buf, int ndim, const unsigned *dims, size_t extra)
{
    size_t k = 0;
    buf[k++] = 0, buf[k++] = 0, buf[k++] = 0x08, buf[k++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[k++] = (unsigned char)(dims[i] >> 24), buf[k++] = (unsigned char)(dims[i] >> 16);
        buf[k++] = (unsigned char)(dims[i] >> 8), buf[k++] = (unsigned char)dims[i];
    }
    memset(buf + k, 7, extra);
    return k + extra;
}

TEST(idx_21_byte_file_with_a_huge_header_fails_before_allocating)
{
    /* the reproducer: 65535 images of 256x256 announced, 5 bytes present; the
     * loader used to reserve 4.3 GB and fill it before noticing */
    unsigned char buf[64];
    char p[512];
    size_t n = idx_header(buf, 3, (unsigned[]){65535, 256, 256}, 5);
    CHECK(n == 21);
    CHECK(write_bytes(tmp_path(p, sizeof p, "huge.idx"), buf, n, 0) == 0);
    uint64_t allocs = nerve_alloc_count();
    nerve_dataset d;
    int st = nerve_dataset_load_idx(&d, p, NULL, 1.0f);
    CHECK(st == NERVE_ERR_FORMAT);
    CHECK_MSG(strstr(nerve_last_error(), "huge.idx") &&
                  strstr(nerve_last_error(), "expected 4294901760 bytes of pixel data, found 5"),
              "error: %s", nerve_last_error());
    CHECK_MSG(nerve_alloc_count() == allocs, "%llu allocations before the size check",
              (unsigned long long)(nerve_alloc_count() - allocs));
    CHECK(d.x == NULL && d.n == 0);
}

TEST(idx_label_file_shorter_than_its_header_fails_before_allocating)
{
    unsigned char buf[64];
    char img[512], lab[512];
    size_t n = idx_header(buf, 3, (unsigned[]){3, 1, 1}, 3);
    CHECK(write_bytes(tmp_path(img, sizeof img, "i.idx"), buf, n, 0) == 0);
    n = idx_header(buf, 1, (unsigned[]){3}, 2);
    CHECK(write_bytes(tmp_path(lab, sizeof lab, "l.idx"), buf, n, 0) == 0);
    uint64_t allocs = nerve_alloc_count();
    nerve_dataset d;
    CHECK(nerve_dataset_load_idx(&d, img, lab, 1.0f) == NERVE_ERR_FORMAT);
    CHECK_MSG(strstr(nerve_last_error(), "l.idx: expected 3 bytes of label data, found 2"),
              "error: %s", nerve_last_error());
    CHECK(nerve_alloc_count() == allocs);
}

TEST(idx_gzip_with_a_huge_header_fails_after_reading_what_is_there)
{
    /* 2^31 - 1 one-pixel images announced, 5 present: the data set used to be allocated
     * (and its labels filled) for all of them, 8 GB touched; it now grows from 2^20 */
    unsigned char buf[64];
    char p[512];
    size_t n = idx_header(buf, 3, (unsigned[]){0x7fffffffu, 1, 1}, 5);
    CHECK(write_bytes(tmp_path(p, sizeof p, "huge.idx.gz"), buf, n, 1) == 0);
    nerve_dataset d;
    CHECK(nerve_dataset_load_idx(&d, p, NULL, 1.0f) == NERVE_ERR_FORMAT);
    CHECK_MSG(strstr(nerve_last_error(), "expected 2147483647 bytes of pixel data, found 5"),
              "error: %s", nerve_last_error());
    CHECK(d.x == NULL && d.n == 0);
}

TEST(idx_gzip_larger_than_the_first_buffer_loads_whole)
{
    /* 2^18 + 3 images of 2x2 pixels: the first buffer holds 2^20 floats (2^18 images), so
     * the reader grows once; every pixel lands where it belongs */
    int count = (1 << 18) + 3;
    size_t payload = (size_t)count * 4, header = 4 + 3 * 4;
    unsigned char *buf = malloc(header + payload);
    CHECK(buf);
    idx_header(buf, 3, (unsigned[]){(unsigned)count, 2, 2}, 0);
    for (size_t i = 0; i < payload; i++)
        buf[header + i] = (unsigned char)(i % 251);
    char p[512];
    int w = write_bytes(tmp_path(p, sizeof p, "grow.idx.gz"), buf, header + payload, 1);
    free(buf);
    CHECK(w == 0);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_idx(&d, p, NULL, 1.0f));
    int bad = -1;
    for (size_t i = 0; i < payload && bad < 0; i++)
        if (d.x[i] != (float)(i % 251))
            bad = (int)i;
    int n = d.n, ndim = d.ndim;
    nerve_dataset_free(&d);
    CHECK(n == count && ndim == 3);
    CHECK_MSG(bad < 0, "pixel %d differs", bad);
}

TEST(idx_sample_beyond_the_per_sample_limit_is_an_error)
{
    unsigned char buf[64];
    char p[512];
    size_t n = idx_header(buf, 3, (unsigned[]){1, 65536, 65536}, 0); /* 2^32 per sample */
    CHECK(write_bytes(tmp_path(p, sizeof p, "wide.idx.gz"), buf, n, 1) == 0);
    nerve_dataset d;
    CHECK(nerve_dataset_load_idx(&d, p, NULL, 1.0f) == NERVE_ERR_FORMAT);
    CHECK_MSG(strstr(nerve_last_error(), "one sample holds 4294967296 values"), "error: %s",
              nerve_last_error());
}

/* 5 samples of 2 features, labels 0/1. */
static int tiny_set(nerve_dataset *d, int n)
{
    if (nerve_dataset_alloc(d, n, 1, (int[]){2}) != NERVE_OK)
        return -1;
    for (int i = 0; i < n; i++) {
        d->x[2 * i] = (float)i;
        d->x[2 * i + 1] = (float)(n - i);
        d->y[i] = (float)(i % 2);
    }
    d->n_classes = 2;
    return 0;
}

TEST(fit_and_evaluate_compile_for_min_of_batch_and_data_set)
{
    /* batch=4096 in the cfg, 5 samples: buffers for 5, not 4096 (a set of n samples never
     * fills a batch of more than n) */
    const char *cfg = "[net]\ninputs=2\nbatch=4096\nepochs=2\nlearning_rate=0.1\n"
                      "[connected]\noutput=2\n[softmax]\n";
    nerve_model *m = nerve_model_from_cfg(cfg, "tiny.cfg");
    CHECK(m);
    nerve_dataset train;
    CHECK(tiny_set(&train, 5) == 0);
    int st = nerve_fit(m, &train, NULL, NULL, NULL);
    nerve_graph *g = nerve_model_graph(m);
    int six = nerve_graph_set_batch(g, 6), five = nerve_graph_set_batch(g, 5);
    nerve_model_free(m);
    /* evaluation alone compiles the same way */
    m = nerve_model_from_cfg(cfg, "tiny.cfg");
    CHECK(m);
    double loss = 0, acc = 0;
    int ev = nerve_evaluate(m, &train, &loss, &acc, NULL, 0);
    g = nerve_model_graph(m);
    int ev_six = nerve_graph_set_batch(g, 6), ev_five = nerve_graph_set_batch(g, 5);
    nerve_model_free(m);
    nerve_dataset_free(&train);
    CHECK_OK(st);
    CHECK(six == NERVE_ERR_ARG && five == NERVE_OK);
    CHECK_OK(ev);
    CHECK(ev_six == NERVE_ERR_ARG && ev_five == NERVE_OK);
}

TEST(test_time_augmentation_compiles_for_min_of_batch_and_data_set)
{
    nerve_model *m = nerve_model_from_cfg("[net]\nheight=4\nwidth=4\nchannels=1\nbatch=4096\n"
                                          "[convolutional]\nfilters=2\nsize=3\npad=1\n"
                                          "[avgpool]\n[softmax]\n",
                                          "tta.cfg");
    CHECK(m);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 3, 3, (int[]){1, 4, 4}));
    for (int i = 0; i < 48; i++)
        d.x[i] = (float)(i % 7);
    d.y[0] = 0, d.y[1] = 1, d.y[2] = 0;
    d.n_classes = 2;
    double loss = 0, acc = 0;
    int st = nerve_evaluate_tta(m, &d, 4, &loss, &acc);
    nerve_graph *g = nerve_model_graph(m);
    int four = nerve_graph_set_batch(g, 4), three = nerve_graph_set_batch(g, 3);
    nerve_model_free(m);
    nerve_dataset_free(&d);
    CHECK_OK(st);
    CHECK(four == NERVE_ERR_ARG && three == NERVE_OK);
}
