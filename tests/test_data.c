/* Data sets: IDX (plain, gzip, every malformed header), the real Fashion-MNIST test set,
 * CSV, split, statistics and the mini-batch iterator. */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist/"

static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

static int write_file(const char *path, const void *data, size_t n, int gzip)
{
    if (gzip) {
        gzFile gz = gzopen(path, "wb");
        if (!gz)
            return -1;
        int ok = gzwrite(gz, data, (unsigned)n) == (int)n;
        return gzclose(gz) == Z_OK && ok ? 0 : -1;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = fwrite(data, 1, n, fp);
    return fclose(fp) == 0 && w == n ? 0 : -1;
}

/* An IDX header (magic + dims) followed by `payload` bytes, into buf; returns its size. */
static size_t idx_bytes(unsigned char *buf, int type, int ndim, const unsigned *dims,
                        const void *payload, size_t payload_len)
{
    size_t k = 0;
    buf[k++] = 0, buf[k++] = 0, buf[k++] = (unsigned char)type, buf[k++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[k++] = (unsigned char)(dims[i] >> 24), buf[k++] = (unsigned char)(dims[i] >> 16);
        buf[k++] = (unsigned char)(dims[i] >> 8), buf[k++] = (unsigned char)dims[i];
    }
    memcpy(buf + k, payload, payload_len);
    return k + payload_len;
}

/* 5 images of 2x3 pixels with value 10*i + j, and labels 3 0 4 1 3. */
static void write_small_idx(const char *img, const char *lab, int gzip)
{
    unsigned char pixels[30], labels[5] = {3, 0, 4, 1, 3}, buf[128];
    for (int i = 0; i < 30; i++)
        pixels[i] = (unsigned char)(10 * (i / 6) + i % 6);
    size_t n = idx_bytes(buf, 0x08, 3, (unsigned[]){5, 2, 3}, pixels, 30);
    write_file(img, buf, n, gzip);
    n = idx_bytes(buf, 0x08, 1, (unsigned[]){5}, labels, 5);
    write_file(lab, buf, n, gzip);
}

static void check_small_idx(int gzip)
{
    char img[512], lab[512];
    tmp_path(img, sizeof img, gzip ? "img.gz" : "img");
    tmp_path(lab, sizeof lab, gzip ? "lab.gz" : "lab");
    write_small_idx(img, lab, gzip);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_idx(&d, img, lab, 0.5f));
    CHECK(d.n == 5 && d.ndim == 3 && d.sample_numel == 6);
    CHECK(d.dims[0] == 1 && d.dims[1] == 2 && d.dims[2] == 3);
    CHECK(d.n_classes == 5);
    for (int i = 0; i < 30; i++)
        CHECK_NEAR(d.x[i], 0.5 * (10 * (i / 6) + i % 6), 0);
    const float want_y[] = {3, 0, 4, 1, 3};
    CHECK_ARRAY_NEAR(d.y, want_y, 5, 0);
    nerve_dataset_free(&d);
    CHECK(d.x == NULL && d.n == 0);
}

TEST(idx_plain_file_loads_pixels_scaled_and_labels) { check_small_idx(0); }
TEST(idx_gzip_file_loads_the_same) { check_small_idx(1); }

TEST(idx_without_labels_is_unlabelled)
{
    char img[512], lab[512];
    write_small_idx(tmp_path(img, sizeof img, "i"), tmp_path(lab, sizeof lab, "l"), 0);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_idx(&d, img, NULL, 1.0f));
    CHECK(d.n == 5 && d.n_classes == 0 && d.y[4] == -1.0f && d.x[7] == 11.0f);
    nerve_dataset_free(&d);
}

TEST(idx_float_big_endian_images_and_2d_shape)
{
    /* [3, 2] float32 big-endian: samples get ndim 1 */
    const float vals[6] = {1.5f, -2.0f, 0.25f, 3.0f, 100.0f, -0.125f};
    unsigned char be[24], buf[64];
    for (int i = 0; i < 6; i++) {
        uint32_t b;
        memcpy(&b, &vals[i], 4);
        be[4 * i] = (unsigned char)(b >> 24), be[4 * i + 1] = (unsigned char)(b >> 16);
        be[4 * i + 2] = (unsigned char)(b >> 8), be[4 * i + 3] = (unsigned char)b;
    }
    char img[512];
    size_t n = idx_bytes(buf, 0x0D, 2, (unsigned[]){3, 2}, be, 24);
    CHECK(write_file(tmp_path(img, sizeof img, "f.idx"), buf, n, 1) == 0);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_idx(&d, img, NULL, 2.0f));
    CHECK(d.n == 3 && d.ndim == 1 && d.dims[0] == 2);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(d.x[i], 2.0 * vals[i], 0);
    nerve_dataset_free(&d);
}

/* Loads (images, labels) expecting failure with `status` and a message containing both
 * the offending file's name and `text`. */
static int expect_idx_error(const char *img, const char *lab, int status, const char *file,
                            const char *text)
{
    nerve_dataset d;
    memset(&d, 0x5a, sizeof d);
    int st = nerve_dataset_load_idx(&d, img, lab, 1.0f);
    if (st != status || !strstr(nerve_last_error(), file) || !strstr(nerve_last_error(), text)) {
        test_fail(__FILE__, __LINE__, "status %d (want %d), message '%s' (want '%s' and '%s')",
                  st, status, nerve_last_error(), file, text);
        return 0;
    }
    return d.x == NULL && d.y == NULL && d.n == 0;
}

/* Writes an IDX file named `name` in the temp dir; returns its path in buf. */
static const char *idx_file(char *buf, const char *name, int type, int ndim,
                            const unsigned *dims, const void *payload, size_t len, int gzip)
{
    unsigned char bytes[256];
    size_t n = idx_bytes(bytes, type, ndim, dims, payload, len);
    tmp_path(buf, 512, name);
    write_file(buf, bytes, n, gzip);
    return buf;
}

TEST(idx_rejects_each_malformed_header_and_payload)
{
    size_t held = nerve_alloc_bytes();
    unsigned char px[64] = {0}, lb[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char good_img[512], good_lab[512], p[512], q[512];
    idx_file(good_img, "good-img", 0x08, 3, (unsigned[]){2, 2, 2}, px, 8, 0);
    idx_file(good_lab, "good-lab", 0x08, 1, (unsigned[]){2}, lb, 2, 0);
    CHECK(expect_idx_error(tmp_path(p, sizeof p, "missing"), NULL, NERVE_ERR_IO, "missing",
                           "cannot open"));

    tmp_path(p, sizeof p, "bad-magic");
    write_file(p, "\x01\x02\x08\x03\0\0\0\1\0\0\0\1\0\0\0\1\0", 17, 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "bad-magic", "not an IDX file"));

    idx_file(p, "bad-type", 0x0B, 3, (unsigned[]){2, 2, 2}, px, 16, 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "bad-type", "0x0B"));

    tmp_path(p, sizeof p, "short-hdr");
    write_file(p, "\0\0\x08\x03\0\0\0\2\0\0", 10, 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "short-hdr", "truncated header"));

    tmp_path(p, sizeof p, "tiny");
    write_file(p, "\0\0", 2, 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "tiny", "too short"));

    idx_file(p, "zero-dim", 0x08, 3, (unsigned[]){2, 0, 2}, px, 0, 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "zero-dim", "dimension 1 is 0"));

    idx_file(p, "short-px.gz", 0x08, 3, (unsigned[]){2, 2, 2}, px, 5, 1);
    CHECK(expect_idx_error(p, good_lab, NERVE_ERR_FORMAT, "short-px.gz",
                           "expected 8 bytes of pixel data, found 5"));

    idx_file(p, "extra-px", 0x08, 3, (unsigned[]){2, 2, 2}, px, 11, 0);
    CHECK(expect_idx_error(p, good_lab, NERVE_ERR_FORMAT, "extra-px",
                           "3 bytes of extra data"));

    idx_file(p, "short-float", 0x0D, 2, (unsigned[]){2, 2}, px, 14, 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "short-float",
                           "expected 16 bytes of pixel data, found 14"));

    idx_file(q, "three-labels", 0x08, 1, (unsigned[]){3}, lb, 3, 0);
    CHECK(expect_idx_error(good_img, q, NERVE_ERR_FORMAT, "three-labels", "2 images"));

    idx_file(q, "lab-2d", 0x08, 2, (unsigned[]){2, 1}, lb, 2, 0);
    CHECK(expect_idx_error(good_img, q, NERVE_ERR_FORMAT, "lab-2d", "found 2"));

    idx_file(q, "short-lab", 0x08, 1, (unsigned[]){2}, lb, 1, 0);
    CHECK(expect_idx_error(good_img, q, NERVE_ERR_FORMAT, "short-lab",
                           "expected 2 bytes of label data, found 1"));

    idx_file(p, "img-1d", 0x08, 1, (unsigned[]){2}, px, 2, 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "img-1d", "dimensions"));

    const unsigned char half_label[8] = {0x3f, 0xc0, 0, 0, 0x3f, 0x80, 0, 0}; /* 1.5, 1.0 */
    idx_file(q, "float-lab", 0x0D, 1, (unsigned[]){2}, half_label, 8, 0);
    CHECK(expect_idx_error(good_img, q, NERVE_ERR_FORMAT, "float-lab", "not an integer"));

    /* the good pair still loads, so the failures above are about the defects */
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_idx(&d, good_img, good_lab, 1.0f));
    CHECK(d.n == 2 && d.n_classes == 3);
    nerve_dataset_free(&d);
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(idx_rejects_a_truncated_gzip_stream)
{
    size_t held = nerve_alloc_bytes();
    unsigned char px[2048], buf[2200];
    for (int i = 0; i < 2048; i++)
        px[i] = (unsigned char)(i * 7919 % 251);
    char p[512];
    size_t n = idx_bytes(buf, 0x08, 3, (unsigned[]){2, 32, 32}, px, 2048);
    CHECK(write_file(tmp_path(p, sizeof p, "whole.gz"), buf, n, 1) == 0);
    FILE *fp = fopen(p, "rb");
    unsigned char gz[4096];
    size_t len = fread(gz, 1, sizeof gz, fp);
    fclose(fp);
    CHECK(len > 40);
    /* cut off the 8-byte trailer (CRC and size) and some of the deflate stream */
    CHECK(write_file(tmp_path(p, sizeof p, "cut.gz"), gz, len - 12, 0) == 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "cut.gz", ""));
    /* damage the deflate stream itself */
    for (size_t i = 20; i < len - 8; i += 3)
        gz[i] ^= 0xA5;
    CHECK(write_file(tmp_path(p, sizeof p, "bad.gz"), gz, len, 0) == 0);
    CHECK(expect_idx_error(p, NULL, NERVE_ERR_FORMAT, "bad.gz", "corrupt"));
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(fashion_mnist_test_set_loads_with_ten_balanced_classes)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_idx(&d, FASHION_DIR "t10k-images-idx3-ubyte.gz",
                                    FASHION_DIR "t10k-labels-idx1-ubyte.gz", 1.0f / 255.0f));
    CHECK(d.n == 10000 && d.ndim == 3 && d.sample_numel == 784);
    CHECK(d.dims[0] == 1 && d.dims[1] == 28 && d.dims[2] == 28);
    CHECK(d.n_classes == 10);
    float lo = 1e9f, hi = -1e9f;
    double sum = 0;
    for (size_t i = 0; i < (size_t)d.n * d.sample_numel; i++) {
        lo = fminf(lo, d.x[i]), hi = fmaxf(hi, d.x[i]);
        sum += d.x[i];
    }
    CHECK(lo == 0.0f && hi == 1.0f);
    double mean = sum / (d.n * 784.0); /* Fashion-MNIST's mean pixel is about 0.286 */
    CHECK_MSG(mean > 0.25 && mean < 0.32, "mean pixel %g", mean);
    int count[10] = {0};
    for (int i = 0; i < d.n; i++)
        count[(int)d.y[i]]++;
    for (int c = 0; c < 10; c++)
        CHECK_MSG(count[c] == 1000, "class %d has %d samples", c, count[c]);
    nerve_dataset_free(&d);
}

/* ---- CSV --------------------------------------------------------------------------- */

static const char *csv_file(char *buf, const char *name, const char *text)
{
    tmp_path(buf, 512, name);
    write_file(buf, text, strlen(text), 0);
    return buf;
}

TEST(csv_header_blank_lines_and_label_column_choices)
{
    char p[512];
    csv_file(p, "iris.csv",
             "a, b ,c,label\r\n\r\n1.5,2,3,0\r\n  \n4,-5e-1,6,2\n7,8,9.25,1");
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_csv(&d, p, -1));
    CHECK(d.n == 3 && d.ndim == 1 && d.dims[0] == 3 && d.n_classes == 3);
    const float x[] = {1.5f, 2, 3, 4, -0.5f, 6, 7, 8, 9.25f}, y[] = {0, 2, 1};
    CHECK_ARRAY_NEAR(d.x, x, 9, 0);
    CHECK_ARRAY_NEAR(d.y, y, 3, 0);
    nerve_dataset_free(&d);

    /* as the label column, "b" fails on its first non-integer, on physical line 5 */
    CHECK(nerve_dataset_load_csv(&d, p, 1) == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "iris.csv:5:3: label '-5e-1'") != NULL);
    CHECK(d.x == NULL);
}

TEST(csv_label_column_first_negative_and_none)
{
    char p[512];
    csv_file(p, "num.csv", "2,10,20\n0,30,40\n");
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_csv(&d, p, 0));
    CHECK(d.n == 2 && d.dims[0] == 2 && d.n_classes == 3 && d.y[0] == 2 && d.x[3] == 40);
    nerve_dataset_free(&d);
    CHECK_OK(nerve_dataset_load_csv(&d, p, -3));
    CHECK(d.y[1] == 0 && d.x[0] == 10);
    nerve_dataset_free(&d);
    CHECK_OK(nerve_dataset_load_csv(&d, p, NERVE_CSV_NO_LABEL));
    CHECK(d.n == 2 && d.dims[0] == 3 && d.n_classes == 0 && d.y[0] == -1 && d.x[5] == 40);
    nerve_dataset_free(&d);
}

static int expect_csv_error(const char *path, int label_col, int status, const char *text)
{
    nerve_dataset d;
    int st = nerve_dataset_load_csv(&d, path, label_col);
    if (st != status || !strstr(nerve_last_error(), text)) {
        test_fail(__FILE__, __LINE__, "status %d (want %d), message '%s' (want '%s')", st,
                  status, nerve_last_error(), text);
        return 0;
    }
    return d.x == NULL;
}

TEST(csv_errors_name_file_and_line)
{
    size_t held = nerve_alloc_bytes();
    char p[512];
    csv_file(p, "data.csv", "x,y,z,w,label\n1,2,3,4,0\n\n1,2,3,0\n");
    CHECK(expect_csv_error(p, -1, NERVE_ERR_FORMAT, "data.csv:4: expected 5 fields, found 4"));
    csv_file(p, "data.csv", "1,2,0\n1,abc,1\n");
    CHECK(expect_csv_error(p, -1, NERVE_ERR_FORMAT, "data.csv:2:3: 'abc'"));
    csv_file(p, "data.csv", "1,2,0\n1,,1\n");
    CHECK(expect_csv_error(p, -1, NERVE_ERR_FORMAT, "data.csv:2:3: ''"));
    csv_file(p, "data.csv", "1,2,0\n1,nan,1\n");
    CHECK(expect_csv_error(p, -1, NERVE_ERR_FORMAT, "data.csv:2:3: 'nan'"));
    csv_file(p, "data.csv", "1,2,0\n1,2,1.5\n");
    CHECK(expect_csv_error(p, -1, NERVE_ERR_FORMAT, "data.csv:2:5: label '1.5'"));
    csv_file(p, "data.csv", "1,2,-1\n");
    CHECK(expect_csv_error(p, -1, NERVE_ERR_FORMAT, "data.csv:1:5: label '-1'"));
    csv_file(p, "data.csv", "1,2,3\n");
    CHECK(expect_csv_error(p, 3, NERVE_ERR_ARG, "label column 3 out of range"));
    CHECK(expect_csv_error(p, -4, NERVE_ERR_ARG, "label column -4 out of range"));
    csv_file(p, "data.csv", "a,b\n\n");
    CHECK(expect_csv_error(p, -1, NERVE_ERR_FORMAT, "data.csv: no data rows"));
    CHECK(expect_csv_error("/nonexistent/x.csv", -1, NERVE_ERR_IO, "/nonexistent/x.csv"));
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(csv_handles_many_rows)
{
    /* more rows than the first buffer holds, and a file larger than the first read */
    char p[512];
    tmp_path(p, sizeof p, "big.csv");
    FILE *fp = fopen(p, "w");
    for (int i = 0; i < 5000; i++)
        fprintf(fp, "%d.5,%d,%d\n", i, -i, i % 7);
    fclose(fp);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_csv(&d, p, 2));
    CHECK(d.n == 5000 && d.n_classes == 7);
    CHECK(d.x[2 * 4321] == 4321.5f && d.x[2 * 4321 + 1] == -4321.0f && d.y[4321] == 4321 % 7);
    nerve_dataset_free(&d);
}

/* ---- split, statistics, batches ----------------------------------------------------- */

/* n samples of 2 features; sample i is (i, 100 + i) with label i % 3. */
static int make_ramp(nerve_dataset *d, int n)
{
    int st = nerve_dataset_alloc(d, n, 1, (int[]){2});
    if (st < 0)
        return st;
    for (int i = 0; i < n; i++) {
        d->x[2 * i] = (float)i;
        d->x[2 * i + 1] = 100.0f + i;
        d->y[i] = (float)(i % 3);
    }
    d->n_classes = 3;
    return NERVE_OK;
}

TEST(dataset_alloc_zero_fills_and_marks_unlabelled)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 4, 3, (int[]){1, 2, 2}));
    CHECK(d.n == 4 && d.sample_numel == 4 && d.n_classes == 0);
    for (int i = 0; i < 16; i++)
        CHECK(d.x[i] == 0.0f);
    CHECK(d.y[3] == -1.0f);
    nerve_dataset_free(&d);
    CHECK(nerve_dataset_alloc(&d, 4, 1, (int[]){0}) == NERVE_ERR_ARG);
}

TEST(split_without_seed_moves_the_tail_to_validation)
{
    nerve_dataset d, v;
    CHECK_OK(make_ramp(&d, 10));
    CHECK_OK(nerve_dataset_split(&d, &v, 0.3f, 0));
    CHECK(d.n == 7 && v.n == 3 && v.n_classes == 3 && d.n_classes == 3);
    CHECK(v.ndim == 1 && v.dims[0] == 2 && v.sample_numel == 2);
    for (int i = 0; i < 7; i++)
        CHECK(d.x[2 * i] == i && d.x[2 * i + 1] == 100 + i && d.y[i] == i % 3);
    for (int i = 0; i < 3; i++)
        CHECK(v.x[2 * i] == 7 + i && v.y[i] == (7 + i) % 3);
    nerve_dataset_free(&d);
    nerve_dataset_free(&v);
}

TEST(split_with_seed_is_a_deterministic_partition)
{
    nerve_dataset a, av, b, bv;
    CHECK_OK(make_ramp(&a, 50));
    CHECK_OK(make_ramp(&b, 50));
    CHECK_OK(nerve_dataset_split(&a, &av, 0.2f, 42));
    CHECK_OK(nerve_dataset_split(&b, &bv, 0.2f, 42));
    CHECK(a.n == 40 && av.n == 10);
    CHECK(memcmp(a.x, b.x, 80 * sizeof(float)) == 0 && memcmp(av.y, bv.y, 10 * 4) == 0);
    int seen[50] = {0}, in_order = 1;
    for (int i = 0; i < 50; i++) {
        const nerve_dataset *s = i < 40 ? &a : &av;
        int k = i < 40 ? i : i - 40, id = (int)s->x[2 * k];
        CHECK(s->x[2 * k + 1] == 100 + id && s->y[k] == id % 3); /* rows stay whole */
        seen[id]++;
        in_order &= id == i;
    }
    for (int i = 0; i < 50; i++)
        CHECK(seen[i] == 1);
    CHECK(!in_order);
    nerve_dataset_free(&a), nerve_dataset_free(&av), nerve_dataset_free(&b);
    nerve_dataset_free(&bv);
}

TEST(split_rejects_fractions_that_leave_a_part_empty)
{
    size_t held = nerve_alloc_bytes();
    nerve_dataset d, v;
    CHECK_OK(make_ramp(&d, 4));
    CHECK(nerve_dataset_split(&d, &v, 0.0f, 0) == NERVE_ERR_ARG);
    CHECK(nerve_dataset_split(&d, &v, 1.0f, 0) == NERVE_ERR_ARG);
    CHECK(nerve_dataset_split(&d, &v, 0.05f, 0) == NERVE_ERR_ARG); /* rounds to 0 */
    CHECK(d.n == 4 && d.x[6] == 3.0f); /* untouched */
    nerve_dataset_free(&d);
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(stats_are_population_mean_and_std_without_cancellation)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 4, 1, (int[]){3}));
    const float x[12] = {1, 10000.1f, 5, 2, 10000.2f, 5, 3, 10000.3f, 5, 4, 10000.4f, 5};
    memcpy(d.x, x, sizeof x);
    float mean[3], std[3];
    CHECK_OK(nerve_dataset_stats(&d, mean, std));
    double m1 = ((double)x[1] + x[4] + x[7] + x[10]) / 4, v1 = 0;
    for (int i = 0; i < 4; i++)
        v1 += ((double)x[3 * i + 1] - m1) * ((double)x[3 * i + 1] - m1);
    CHECK_NEAR(mean[0], 2.5, 1e-7);
    CHECK_NEAR(std[0], sqrt(1.25), 1e-7);
    CHECK_NEAR(mean[1], m1, 1e-3);
    CHECK_NEAR(std[1], sqrt(v1 / 4), 1e-6); /* about 0.1118 */
    CHECK(mean[2] == 5.0f && std[2] == 0.0f);
    nerve_dataset_free(&d);
}

TEST(batcher_covers_the_epoch_in_order_without_allocating)
{
    nerve_dataset d;
    CHECK_OK(make_ramp(&d, 10));
    nerve_batcher b;
    CHECK_OK(nerve_batcher_init(&b, &d, 4, 0, 1));
    float x[8], y[4];
    uint64_t before = nerve_alloc_count();
    int sizes[4], next_id = 0;
    for (int k = 0; k < 4; k++) {
        sizes[k] = nerve_batcher_next(&b, x, y);
        for (int i = 0; i < sizes[k]; i++, next_id++)
            CHECK(x[2 * i] == next_id && x[2 * i + 1] == 100 + next_id && y[i] == next_id % 3);
    }
    CHECK(nerve_alloc_count() == before);
    CHECK(sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2 && sizes[3] == 0);
    nerve_batcher_reset(&b);
    CHECK(nerve_batcher_next(&b, x, y) == 4 && x[0] == 0);
    nerve_batcher_free(&b);

    CHECK_OK(nerve_batcher_init(&b, &d, 10, 0, 1)); /* full batch */
    float xf[20], yf[10];
    CHECK(nerve_batcher_next(&b, xf, yf) == 10 && nerve_batcher_next(&b, xf, yf) == 0);
    nerve_batcher_free(&b);
    CHECK_OK(nerve_batcher_init(&b, &d, 1, 0, 1)); /* online */
    int batches = 0;
    while (nerve_batcher_next(&b, x, y) == 1)
        batches++;
    CHECK(batches == 10);
    nerve_batcher_free(&b);
    CHECK(nerve_batcher_init(&b, &d, 0, 0, 1) == NERVE_ERR_ARG);
    nerve_dataset_free(&d);
}

/* Sample ids of one epoch, in batch order. */
static void epoch_ids(nerve_batcher *b, int *ids)
{
    float x[6], y[3];
    int k = 0, got;
    nerve_batcher_reset(b);
    while ((got = nerve_batcher_next(b, x, y)) > 0)
        for (int i = 0; i < got; i++)
            ids[k++] = (int)x[2 * i];
}

TEST(batcher_shuffles_each_epoch_reproducibly)
{
    nerve_dataset d;
    CHECK_OK(make_ramp(&d, 20));
    nerve_batcher a, b;
    CHECK_OK(nerve_batcher_init(&a, &d, 3, 1, 7));
    CHECK_OK(nerve_batcher_init(&b, &d, 3, 1, 7));
    int e1[20], e2[20], f1[20], f2[20];
    epoch_ids(&a, e1);
    epoch_ids(&a, e2);
    epoch_ids(&b, f1);
    epoch_ids(&b, f2);
    CHECK(memcmp(e1, f1, sizeof e1) == 0 && memcmp(e2, f2, sizeof e2) == 0);
    CHECK(memcmp(e1, e2, sizeof e1) != 0);
    int seen[20] = {0}, identity = 1;
    for (int i = 0; i < 20; i++) {
        seen[e1[i]]++;
        identity &= e1[i] == i;
    }
    for (int i = 0; i < 20; i++)
        CHECK(seen[i] == 1);
    CHECK(!identity);
    nerve_batcher_free(&a);
    nerve_batcher_free(&b);
    nerve_dataset_free(&d);
}
