/* Data sources: CSV per RFC 4180, class-name files, PNG/JPEG decoding and resizing, image
 * folders, the layout and pixel-scale rules, and targets/names kept by gather, split and
 * bootstrap. Every parser is also fed malformed and truncated input: errors, never crashes. */
#include "test.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *tmp(char *buf, const char *name)
{
    snprintf(buf, 512, "%s/%s", test_tmpdir(), name);
    return buf;
}

static void put_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fwrite(data, 1, n, fp);
        fclose(fp);
    }
}

static void put_text(const char *path, const char *text) { put_file(path, text, strlen(text)); }

static int parse(nerve_dataset *d, const char *text, const nerve_csv_options *o)
{
    return nerve_dataset_parse_csv(d, text, strlen(text), "t.csv", o);
}

static int error_has(int st, int want, const char *text)
{
    if (st != want || !strstr(nerve_last_error(), text)) {
        test_fail(__FILE__, __LINE__, "status %d (want %d), message '%s' (want '%s')", st, want,
                  nerve_last_error(), text);
        return 0;
    }
    return 1;
}

/* ---- CSV ------------------------------------------------------------------------------ */

TEST(csv_quoted_fields_hold_separators_quotes_and_line_breaks)
{
    const char *text = "\"a,1\",b,\"the \"\"label\"\"\"\r\n"
                       "\"1,5\" ,2,\"x\"\r\n"
                       "3,\"4\",\"two\nlines\"\r\n"
                       "\" 5 \",6,x\n";
    nerve_csv_options o = nerve_csv_default();
    o.header = NERVE_CSV_HEADER_YES;
    o.label = "the \"label\"";
    nerve_dataset d;
    /* "1,5" is not a number: a quoted field keeps its separator */
    CHECK(error_has(parse(&d, text, &o), NERVE_ERR_FORMAT, "t.csv:2:1: '1,5' is not a number"));
    o.sep = ';';
    const char *semi = "\"a;1\";b;\"the \"\"label\"\"\"\r\n"
                       "\"1.5\" ;2;\"x\"\r\n"
                       "3;\"4\";\"two\nlines\"\r\n"
                       "\" 5 \";6;x\n";
    CHECK_OK(parse(&d, semi, &o));
    CHECK(d.n == 3 && d.dims[0] == 2);
    const float x[] = {1.5f, 2, 3, 4, 5, 6};
    CHECK_ARRAY_NEAR(d.x, x, 6, 0);
    /* class names, sorted: "two\nlines" < "x" */
    CHECK(d.n_classes == 2 && d.n_names == 2);
    CHECK(!strcmp(d.names[0], "two\nlines") && !strcmp(d.names[1], "x"));
    CHECK(d.y[0] == 1 && d.y[1] == 0 && d.y[2] == 1);
    nerve_dataset_free(&d);
}

TEST(csv_string_labels_map_to_sorted_names_or_a_given_order)
{
    const char *text = "sl,sw,species\n5.1,3.5,setosa\n6.3,2.9,virginica\n5.9,3.0,versicolor\n"
                       "5.0,3.4,setosa\n";
    nerve_dataset d;
    CHECK_OK(parse(&d, text, NULL));
    CHECK(d.n == 4 && d.dims[0] == 2 && d.n_classes == 3 && d.n_names == 3);
    CHECK(!strcmp(d.names[0], "setosa") && !strcmp(d.names[1], "versicolor") &&
          !strcmp(d.names[2], "virginica"));
    const float y[] = {0, 2, 1, 0};
    CHECK_ARRAY_NEAR(d.y, y, 4, 0);
    nerve_dataset_free(&d);

    const char *order[] = {"virginica", "setosa", "versicolor", "unseen"};
    nerve_csv_options o = nerve_csv_default();
    o.class_names = order;
    o.n_class_names = 4;
    CHECK_OK(parse(&d, text, &o));
    const float y2[] = {1, 0, 2, 1};
    CHECK_ARRAY_NEAR(d.y, y2, 4, 0);
    CHECK(d.n_classes == 4 && !strcmp(d.names[3], "unseen"));
    nerve_dataset_free(&d);
    o.n_class_names = 2;
    CHECK(error_has(parse(&d, text, &o), NERVE_ERR_FORMAT, "'versicolor' is not one of the 2"));

    /* without a header, a text label column is still data (the second row agrees) */
    CHECK_OK(parse(&d, "1,2,cat\n3,4,dog\n", NULL));
    CHECK(d.n == 2 && d.y[0] == 0 && d.y[1] == 1);
    nerve_dataset_free(&d);
    /* numbers and names mixed in a label column: refused, naming both places */
    CHECK(error_has(parse(&d, "1,2,cat\n3,4,dog\n5,6,1\n", NULL), NERVE_ERR_FORMAT,
                    "t.csv:3:5: label '1' is a number while the label at 1:5 is a name"));
}

TEST(csv_label_and_target_columns_by_name_or_index)
{
    const char *text = "a,b,y1,c,y2\n1,2,0.5,3,-1\n4,5,1.5,6,-2\n";
    nerve_csv_options o = nerve_csv_default();
    o.targets = "y1,y2";
    nerve_dataset d;
    CHECK_OK(parse(&d, text, &o));
    CHECK(d.n == 2 && d.dims[0] == 3 && d.n_classes == 0 && d.y[0] == -1);
    CHECK(d.target == NERVE_TARGET_VALUES && d.target_numel == 2 && d.tdims[0] == 2);
    const float x[] = {1, 2, 3, 4, 5, 6}, t[] = {0.5f, -1, 1.5f, -2};
    CHECK_ARRAY_NEAR(d.x, x, 6, 0);
    CHECK_ARRAY_NEAR(d.t, t, 4, 0);
    nerve_dataset_free(&d);
    /* targets by index (negative from the end) plus a label by index */
    o.targets = "-1";
    o.label = "0";
    CHECK_OK(parse(&d, "1,2,3,4.5\n0,7,8,9\n", &o));
    CHECK(d.dims[0] == 2 && d.y[0] == 1 && d.y[1] == 0 && d.t[0] == 4.5f && d.t[1] == 9);
    nerve_dataset_free(&d);
    o.label = "2";
    o.targets = "c";
    CHECK(error_has(parse(&d, "1,2,3\n", &o), NERVE_ERR_ARG, "target column 'c' is not a number"));
    o.targets = "2";
    CHECK(error_has(parse(&d, "1,2,3\n", &o), NERVE_ERR_ARG, "both the label and a target"));
    o.targets = "5";
    CHECK(error_has(parse(&d, "1,2,3\n", &o), NERVE_ERR_ARG, "target column 5 out of range"));
    o.targets = "a,a";
    o.label = "";
    CHECK(error_has(parse(&d, "a,b\n1,2\n", &o), NERVE_ERR_ARG, "named twice"));
    o.targets = NULL;
    o.label = "nope";
    CHECK(error_has(parse(&d, "a,b\n1,2\n", &o), NERVE_ERR_ARG, "label column 'nope' is not a name"));
}

TEST(csv_header_and_skip_and_separator_options)
{
    nerve_csv_options o = nerve_csv_default();
    nerve_dataset d;
    /* header=0: a text first row is data, and fails as such */
    o.header = NERVE_CSV_HEADER_NO;
    CHECK(error_has(parse(&d, "a,b,0\n1,2,1\n", &o), NERVE_ERR_FORMAT, "t.csv:1:1: 'a' is not"));
    /* header=1: a numeric first row is taken as names */
    o.header = NERVE_CSV_HEADER_YES;
    CHECK_OK(parse(&d, "10,20,30\n1,2,1\n", &o));
    CHECK(d.n == 1 && d.x[0] == 1);
    nerve_dataset_free(&d);
    /* sklearn's first line "n_samples,n_features,names..." skipped */
    o = nerve_csv_default();
    o.skip = 1;
    CHECK_OK(parse(&d, "3,2,a,b\n1,2,0\n3,4,1\n5,6,0\n", &o));
    CHECK(d.n == 3 && d.dims[0] == 2 && d.y[1] == 1);
    nerve_dataset_free(&d);
    o.skip = 5;
    CHECK(error_has(parse(&d, "1,2\n", &o), NERVE_ERR_FORMAT, "csv_skip=5"));
    /* tabs: a tab separator is not trimmed as a blank */
    o = nerve_csv_default();
    o.sep = '\t';
    CHECK_OK(parse(&d, "1\t 2 \t3\n4\t\t6\n", &o) == NERVE_ERR_FORMAT ? NERVE_OK : -99);
    CHECK(strstr(nerve_last_error(), "t.csv:2:3: '' is not a number"));
    CHECK_OK(parse(&d, "1\t 2 \t3\n", &o));
    CHECK(d.x[1] == 2 && d.y[0] == 3);
    nerve_dataset_free(&d);
}

TEST(csv_malformed_quotes_and_rows_are_errors_with_line_and_column)
{
    nerve_dataset d;
    CHECK(error_has(parse(&d, "1,2,0\n1,\"2,0\n", NULL), NERVE_ERR_FORMAT,
                    "t.csv:2:3: the quote opened here is never closed"));
    CHECK(error_has(parse(&d, "1,2,0\n1,2\"x,0\n", NULL), NERVE_ERR_FORMAT,
                    "t.csv:2:4: a quote inside an unquoted field"));
    CHECK(error_has(parse(&d, "1,2,0\n1,\"2\"x,0\n", NULL), NERVE_ERR_FORMAT,
                    "t.csv:2:6: 'x' after a closing quote"));
    CHECK(error_has(parse(&d, "1,2,0\n1,2\n", NULL), NERVE_ERR_FORMAT,
                    "t.csv:2: expected 3 fields, found 2"));
    CHECK(error_has(parse(&d, "1,2,0\n1,2,\n", NULL), NERVE_ERR_FORMAT, "t.csv:2:5: label '' is empty"));
    CHECK(error_has(parse(&d, "", NULL), NERVE_ERR_FORMAT, "no data rows"));
    CHECK(error_has(parse(&d, "\n\r\n  \n", NULL), NERVE_ERR_FORMAT, "no data rows"));
    CHECK(error_has(parse(&d, "5\n", NULL), NERVE_ERR_FORMAT, "no feature column"));
    nerve_csv_options o = nerve_csv_default();
    o.sep = '"';
    CHECK(error_has(parse(&d, "1\n", &o), NERVE_ERR_ARG, "separator"));
    /* a line count survives quoted line breaks: the error is on physical line 4 */
    CHECK(error_has(parse(&d, "1,2,\"a\nb\"\n2,3,c\n3,x,c\n", NULL), NERVE_ERR_FORMAT,
                    "t.csv:4:3: 'x' is not a number"));
}

TEST(csv_every_prefix_of_a_valid_file_parses_or_fails_cleanly)
{
    const char *text = "\"f 1\",f2,label\r\n1.5,\"2\",\"a \"\"b\"\"\"\r\n3,4,\"c\nd\"\r\n"
                       "5,6,\"a \"\"b\"\"\"\n";
    size_t n = strlen(text), held = nerve_alloc_bytes();
    int ok = 0;
    for (size_t k = 0; k <= n; k++) {
        /* a copy of exactly k bytes, so that any read past the end is an ASan error */
        char *buf = malloc(k ? k : 1);
        memcpy(buf, text, k);
        nerve_dataset d;
        int st = nerve_dataset_parse_csv(&d, buf, k, "p.csv", NULL);
        free(buf);
        CHECK_MSG(st == NERVE_OK || st == NERVE_ERR_FORMAT || st == NERVE_ERR_ARG,
                  "prefix %zu: status %d", k, st);
        if (st == NERVE_OK) {
            ok++;
            CHECK(d.n >= 1 && d.dims[0] == 2);
            nerve_dataset_free(&d);
        } else {
            CHECK(d.x == NULL && strstr(nerve_last_error(), "p.csv"));
        }
    }
    CHECK(ok > 10);
    CHECK(nerve_alloc_bytes() == held);
}

TEST(csv_reads_the_sklearn_iris_file_with_one_line_skipped)
{
    const char *iris = "/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv";
    FILE *fp = fopen(iris, "r");
    if (!fp) {
        test_fail(__FILE__, __LINE__, "%s is missing (python3-sklearn)", iris);
        return;
    }
    fclose(fp);
    nerve_csv_options o = nerve_csv_default();
    o.skip = 1;
    nerve_dataset d;
    CHECK_OK(nerve_dataset_load_csv_ex(&d, iris, &o));
    CHECK(d.n == 150 && d.dims[0] == 4 && d.n_classes == 3);
    CHECK_NEAR(d.x[0], 5.1, 1e-6);
    CHECK(d.y[0] == 0 && d.y[149] == 2);
    nerve_dataset_free(&d);
}

/* ---- names files ------------------------------------------------------------------------ */

TEST(names_files_are_one_name_a_line_and_refuse_gaps_and_duplicates)
{
    char **names;
    int n;
    const char *ok = "  cat \r\ndog\nbird\n\n\n";
    CHECK_OK(nerve_names_parse(ok, strlen(ok), "a.names", &names, &n));
    CHECK(n == 3 && !strcmp(names[0], "cat") && !strcmp(names[2], "bird"));
    nerve_names_free(names, n);
    CHECK(error_has(nerve_names_parse("a\n\nb\n", 5, "a.names", &names, &n), NERVE_ERR_FORMAT,
                    "a.names:2: an empty line"));
    CHECK(error_has(nerve_names_parse("a\nb\na\n", 6, "a.names", &names, &n), NERVE_ERR_FORMAT,
                    "a.names:3: 'a' is also the name of class 0"));
    CHECK(error_has(nerve_names_parse("\n \n", 3, "a.names", &names, &n), NERVE_ERR_FORMAT,
                    "no class names"));
    CHECK(error_has(nerve_names_parse("a\0b", 3, "a.names", &names, &n), NERVE_ERR_FORMAT, "NUL"));
    CHECK(names == NULL && n == 0);
    char p[512];
    CHECK(error_has(nerve_names_load(tmp(p, "none.names"), &names, &n), NERVE_ERR_IO, "none.names"));
}

TEST(use_names_remaps_own_names_and_checks_plain_labels)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 3, 1, (int[]){1}));
    const char *own[] = {"b", "c"};
    CHECK_OK(nerve_dataset_set_names(&d, 2, own));
    d.y[0] = 0, d.y[1] = 1, d.y[2] = 0;
    const char *list[] = {"c", "a", "b"};
    CHECK_OK(nerve_dataset_use_names(&d, list, 3, "x.names"));
    CHECK(d.y[0] == 2 && d.y[1] == 0 && d.y[2] == 2 && d.n_classes == 3 && d.n_names == 3);
    const char *short_list[] = {"c", "a"};
    CHECK(error_has(nerve_dataset_use_names(&d, short_list, 2, "x.names"), NERVE_ERR_FORMAT,
                    "class 'b' of the data is not in x.names"));
    nerve_dataset_free(&d);
    CHECK_OK(nerve_dataset_alloc(&d, 2, 1, (int[]){1}));
    d.y[0] = 0, d.y[1] = 3;
    CHECK(error_has(nerve_dataset_use_names(&d, list, 3, "x.names"), NERVE_ERR_FORMAT,
                    "sample 1 has class 3 but x.names has 3 names"));
    nerve_dataset_free(&d);
}

/* ---- images --------------------------------------------------------------------------- */

/* A PNG written with libpng directly: any colour type and depth. rows: h rows of packed
 * samples (16-bit big-endian). */
static int write_raw_png(const char *path, int w, int h, int type, int depth,
                         const unsigned char *data, const png_color *palette, int n_palette)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    int ch = type == PNG_COLOR_TYPE_RGB ? 3 : type == PNG_COLOR_TYPE_RGBA ? 4 :
             type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t row = (size_t)w * ch * (depth == 16 ? 2 : 1);
    for (int y = 0; y < h; y++)
        png_write_row(png, data + y * row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(fp);
}

TEST(png_decodes_gray_rgb_alpha_palette_and_16_bit_with_the_channel_rule)
{
    char p[512];
    /* RGBA 2x1: alpha dropped */
    const unsigned char rgba[] = {255, 0, 0, 7, 0, 51, 102, 200};
    CHECK(write_raw_png(tmp(p, "rgba.png"), 2, 1, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0) == 0);
    nerve_image im;
    CHECK_OK(nerve_image_load(p, 0, &im));
    CHECK(im.c == 3 && im.h == 1 && im.w == 2);
    const float want[] = {1, 0, 0, 0.2f, 0, 0.4f}; /* planes R, G, B */
    CHECK_ARRAY_NEAR(im.data, want, 6, 1e-6);
    nerve_image_free(&im);
    /* to gray: 0.299 R + 0.587 G + 0.114 B */
    CHECK_OK(nerve_image_load(p, 1, &im));
    CHECK(im.c == 1);
    CHECK_NEAR(im.data[0], 0.299, 1e-6);
    CHECK_NEAR(im.data[1], 0.587 * 0.2 + 0.114 * 0.4, 1e-6);
    nerve_image_free(&im);
    /* gray to RGB copies the plane */
    const unsigned char gray[] = {0, 128, 255};
    CHECK(write_raw_png(tmp(p, "g.png"), 3, 1, PNG_COLOR_TYPE_GRAY, 8, gray, NULL, 0) == 0);
    CHECK_OK(nerve_image_load(p, 3, &im));
    const float g3[] = {0, 128 / 255.f, 1, 0, 128 / 255.f, 1, 0, 128 / 255.f, 1};
    CHECK(im.c == 3);
    CHECK_ARRAY_NEAR(im.data, g3, 9, 1e-7);
    nerve_image_free(&im);
    /* 16-bit gray: / 65535 */
    const unsigned char g16[] = {0x80, 0x01, 0xFF, 0xFF};
    CHECK(write_raw_png(tmp(p, "g16.png"), 2, 1, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0) == 0);
    CHECK_OK(nerve_image_load(p, 0, &im));
    CHECK(im.c == 1);
    CHECK_NEAR(im.data[0], 0x8001 / 65535.0, 1e-7);
    CHECK_NEAR(im.data[1], 1.0, 0);
    nerve_image_free(&im);
    /* palette */
    png_color pal[2] = {{10, 20, 30}, {255, 255, 0}};
    const unsigned char idx[] = {1, 0};
    CHECK(write_raw_png(tmp(p, "pal.png"), 2, 1, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 2) == 0);
    CHECK_OK(nerve_image_load(p, 0, &im));
    CHECK(im.c == 3);
    CHECK_NEAR(im.data[0], 1, 1e-7);
    CHECK_NEAR(im.data[1], 10 / 255.0, 1e-7);
    CHECK_NEAR(im.data[5], 30 / 255.0, 1e-7);
    nerve_image_free(&im);
    CHECK(error_has(nerve_image_load(p, 2, &im), NERVE_ERR_ARG, "channels must be 1 or 3"));
}

TEST(png_and_jpeg_written_by_nerve_decode_back)
{
    char p[512];
    float img[3 * 6 * 5];
    for (int i = 0; i < 90; i++)
        img[i] = (float)((i * 37) % 256) / 255.0f;
    CHECK_OK(nerve_png_write_rgb(tmp(p, "w.png"), 5, 6, img));
    nerve_image im;
    CHECK_OK(nerve_image_load(p, 0, &im));
    CHECK(im.c == 3 && im.h == 6 && im.w == 5);
    CHECK_ARRAY_NEAR(im.data, img, 90, 1e-7); /* lossless */
    nerve_image_free(&im);
    /* JPEG is lossy: a smooth gray ramp comes back within a few levels */
    float ramp[16 * 16];
    for (int i = 0; i < 256; i++)
        ramp[i] = (float)((i % 16) * 16 + i / 16) / 255.0f;
    CHECK_OK(nerve_jpeg_write(tmp(p, "r.jpg"), 16, 16, 1, ramp, 95));
    CHECK_OK(nerve_image_load(p, 0, &im));
    CHECK(im.c == 1 && im.h == 16 && im.w == 16);
    CHECK_ARRAY_NEAR(im.data, ramp, 256, 6.0 / 255);
    nerve_image_free(&im);
    CHECK_OK(nerve_jpeg_write(tmp(p, "c.jpg"), 5, 6, 3, img, 90));
    CHECK_OK(nerve_image_load(p, 0, &im));
    CHECK(im.c == 3 && im.h == 6 && im.w == 5);
    nerve_image_free(&im);
    CHECK(error_has(nerve_jpeg_write(p, 5, 6, 2, img, 90), NERVE_ERR_ARG, "bad arguments"));
    CHECK(error_has(nerve_jpeg_write("/nonexistent/x.jpg", 5, 6, 3, img, 90), NERVE_ERR_IO,
                    "/nonexistent/x.jpg"));
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

/* Every truncation of a valid file decodes to an error (or, at full length, the image). */
static int truncations_fail_cleanly(const char *path)
{
    size_t n;
    unsigned char *full = slurp(path, &n);
    if (!full)
        return 0;
    size_t held = nerve_alloc_bytes();
    int ok = 1;
    for (size_t k = 0; k < n && ok; k += k < 64 ? 1 : 7) {
        unsigned char *buf = malloc(k ? k : 1);
        memcpy(buf, full, k);
        nerve_image im;
        int st = nerve_image_decode(buf, k, "cut", 0, &im);
        free(buf);
        if (st != NERVE_ERR_FORMAT || im.data) {
            test_fail(__FILE__, __LINE__, "%s cut at %zu of %zu bytes: status %d (%s)", path, k, n,
                      st, nerve_last_error());
            ok = 0;
        }
    }
    /* a corrupted byte in the middle: an error or an image, never a crash */
    for (size_t k = 8; k < n && ok; k += 13) {
        unsigned char saved = full[k];
        full[k] ^= 0x5A;
        nerve_image im;
        if (nerve_image_decode(full, n, "flip", 0, &im) == NERVE_OK)
            nerve_image_free(&im);
        full[k] = saved;
    }
    free(full);
    return ok && nerve_alloc_bytes() == held;
}

TEST(truncated_or_corrupt_png_and_jpeg_are_errors_never_crashes)
{
    char p[512];
    float img[3 * 12 * 10];
    for (int i = 0; i < 360; i++)
        img[i] = (float)((i * 53) % 256) / 255.0f;
    CHECK_OK(nerve_png_write_rgb(tmp(p, "t.png"), 10, 12, img));
    CHECK(truncations_fail_cleanly(p));
    CHECK_OK(nerve_jpeg_write(tmp(p, "t.jpg"), 10, 12, 3, img, 80));
    CHECK(truncations_fail_cleanly(p));
    nerve_image im;
    CHECK(error_has(nerve_image_decode("GIF89a....", 10, "x.gif", 0, &im), NERVE_ERR_FORMAT,
                    "x.gif: neither a PNG nor a JPEG"));
    CHECK(error_has(nerve_image_load(tmp(p, "missing.png"), 0, &im), NERVE_ERR_IO, "missing.png"));
}

TEST(resize_policies_stretch_crop_and_pad)
{
    /* a 2x4 image (h 2, w 4): left half 0, right half 1 */
    float px[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    nerve_image src = {1, 2, 4, px};
    float out[16];
    /* stretch to 2x2: box average of each 1x2 pair */
    CHECK_OK(nerve_image_resize(&src, 2, 2, NERVE_RESIZE_STRETCH, out));
    const float s[] = {0, 1, 0, 1};
    CHECK_ARRAY_NEAR(out, s, 4, 1e-6);
    /* pad to 4x4: scaled to 2x4 (already), centred rows 1..2, zeros above and below */
    for (int i = 0; i < 8; i++)
        px[i] += 0.5f;
    CHECK_OK(nerve_image_resize(&src, 4, 4, NERVE_RESIZE_PAD, out));
    const float p[] = {0, 0, 0, 0, 0.5f, 0.5f, 1.5f, 1.5f, 0.5f, 0.5f, 1.5f, 1.5f, 0, 0, 0, 0};
    CHECK_ARRAY_NEAR(out, p, 16, 1e-6);
    /* crop to 2x2: covers at scale 1 (2x4), centre columns 1..2 */
    CHECK_OK(nerve_image_resize(&src, 2, 2, NERVE_RESIZE_CROP, out));
    const float c[] = {0.5f, 1.5f, 0.5f, 1.5f};
    CHECK_ARRAY_NEAR(out, c, 4, 1e-6);
    CHECK(error_has(nerve_image_resize(&src, 3, 3, NERVE_RESIZE_NONE, out), NERVE_ERR_SHAPE,
                    "resize=stretch|crop|pad"));
    nerve_resize r;
    CHECK_OK(nerve_resize_parse("crop", &r));
    CHECK(r == NERVE_RESIZE_CROP);
    CHECK(error_has(nerve_resize_parse("zoom", &r), NERVE_ERR_ARG, "'zoom'"));
}

/* ---- image folders -------------------------------------------------------------------- */

/* root/<cls>/<i>.png with a 4x3 gray image of value (10 k + i) / 255. */
static void make_folder(const char *root, const char *const *classes, int k, int per_class)
{
    mkdir(root, 0777);
    char dir[700], path[800];
    for (int c = 0; c < k; c++) {
        snprintf(dir, sizeof dir, "%s/%s", root, classes[c]);
        mkdir(dir, 0777);
        for (int i = 0; i < per_class; i++) {
            float px[12];
            for (int j = 0; j < 12; j++)
                px[j] = (float)(10 * c + i + j) / 255.0f;
            snprintf(path, sizeof path, "%s/%d.png", dir, i);
            nerve_png_write_gray(path, 3, 4, px);
        }
    }
}

TEST(image_folder_classes_are_sorted_subfolders_and_images_decode_once)
{
    char root[512], path[600];
    tmp(root, "imgs");
    const char *classes[] = {"zebra", "ant", "moth"};
    make_folder(root, classes, 3, 5);
    snprintf(path, sizeof path, "%s/ant/readme.txt", root);
    put_text(path, "not an image"); /* ignored */
    nerve_dataset d;
    nerve_image_options o = {1, 0, 0, NERVE_RESIZE_NONE, 1};
    CHECK_OK(nerve_dataset_load_image_folder(&d, root, &o));
    CHECK(d.n == 15 && d.ndim == 3 && d.dims[0] == 1 && d.dims[1] == 4 && d.dims[2] == 3);
    CHECK(d.n_classes == 3 && d.n_names == 3);
    CHECK(!strcmp(d.names[0], "ant") && !strcmp(d.names[1], "moth") && !strcmp(d.names[2], "zebra"));
    /* sample 5 is moth/0.png: written as class index 2 of make_folder */
    CHECK(d.y[0] == 0 && d.y[5] == 1 && d.y[14] == 2);
    CHECK_NEAR(d.x[5 * 12 + 3], (20 + 0 + 3) / 255.0, 1e-7);
    /* the same on one thread */
    nerve_set_threads(1);
    nerve_dataset d1;
    CHECK_OK(nerve_dataset_load_image_folder(&d1, root, &o));
    nerve_set_threads(0);
    CHECK(memcmp(d.x, d1.x, 15 * 12 * sizeof(float)) == 0);
    nerve_dataset_free(&d1);
    nerve_dataset_free(&d);
    /* RGB from gray, scaled */
    o.channels = 3;
    o.scale = 2;
    CHECK_OK(nerve_dataset_load_image_folder(&d, root, &o));
    CHECK(d.dims[0] == 3 && d.x[12 + 3] == d.x[3]);
    CHECK_NEAR(d.x[3], 2 * 13 / 255.0, 1e-6);
    nerve_dataset_free(&d);
}

TEST(image_folder_of_mixed_sizes_needs_a_resize_policy)
{
    char root[512], path[600];
    tmp(root, "mixed");
    const char *classes[] = {"a", "b"};
    make_folder(root, classes, 2, 2);
    float big[6 * 8] = {0};
    snprintf(path, sizeof path, "%s/b/9.png", root);
    nerve_png_write_gray(path, 8, 6, big);
    nerve_dataset d;
    nerve_image_options o = {1, 0, 0, NERVE_RESIZE_NONE, 1};
    CHECK(error_has(nerve_dataset_load_image_folder(&d, root, &o), NERVE_ERR_SHAPE,
                    "b/9.png is 8x6 (width x height) but"));
    CHECK(strstr(nerve_last_error(), "set resize=stretch, crop or pad"));
    o.height = 4;
    o.width = 3;
    o.resize = NERVE_RESIZE_STRETCH;
    CHECK_OK(nerve_dataset_load_image_folder(&d, root, &o));
    CHECK(d.n == 5 && d.dims[1] == 4 && d.dims[2] == 3);
    nerve_dataset_free(&d);
}

TEST(image_folder_errors_name_the_path)
{
    char root[512], path[600];
    nerve_dataset d;
    nerve_image_options o = {1, 0, 0, NERVE_RESIZE_NONE, 1};
    CHECK(error_has(nerve_dataset_load_image_folder(&d, tmp(root, "nowhere"), &o), NERVE_ERR_IO,
                    "nowhere: cannot open the folder"));
    tmp(root, "flat");
    mkdir(root, 0777);
    CHECK(error_has(nerve_dataset_load_image_folder(&d, root, &o), NERVE_ERR_FORMAT,
                    "no class subfolders"));
    float px[4] = {0};
    snprintf(path, sizeof path, "%s/loose.png", root);
    nerve_png_write_gray(path, 2, 2, px);
    CHECK(error_has(nerve_dataset_load_image_folder(&d, root, &o), NERVE_ERR_FORMAT,
                    "loose.png: an image outside the class subfolders"));
    tmp(root, "emptyclass");
    mkdir(root, 0777);
    snprintf(path, sizeof path, "%s/cls", root);
    mkdir(path, 0777);
    CHECK(error_has(nerve_dataset_load_image_folder(&d, root, &o), NERVE_ERR_FORMAT,
                    "cls: no .png, .jpg or .jpeg files"));
    snprintf(path, sizeof path, "%s/cls/bad.jpg", root);
    put_text(path, "\xFF\xD8\xFF garbage");
    CHECK(error_has(nerve_dataset_load_image_folder(&d, root, &o), NERVE_ERR_FORMAT, "bad.jpg: JPEG"));
    CHECK(d.x == NULL);
}

TEST(load_images_takes_files_and_folders_unlabelled)
{
    char root[512], a[600], b[600];
    tmp(root, "plain");
    mkdir(root, 0777);
    float px[4] = {0.2f, 0.4f, 0.6f, 0.8f};
    snprintf(a, sizeof a, "%s/b.png", root);
    nerve_png_write_gray(a, 2, 2, px);
    snprintf(b, sizeof b, "%s/a.jpg", root);
    nerve_jpeg_write(b, 2, 2, 1, px, 100);
    const char *paths[] = {a, root};
    nerve_dataset d;
    nerve_image_options o = {1, 0, 0, NERVE_RESIZE_NONE, 1};
    CHECK_OK(nerve_dataset_load_images(&d, paths, 2, &o));
    CHECK(d.n == 3 && d.y[0] == -1 && d.n_classes == 0);
    CHECK_NEAR(d.x[1], 0.4, 1e-6);  /* b.png first, as given */
    CHECK_NEAR(d.x[4 + 1], 0.4, 0.02); /* then the folder sorted: a.jpg, b.png */
    nerve_dataset_free(&d);
}

/* ---- layout and scale rules -------------------------------------------------------------- */

TEST(fit_layout_reads_chw_transposes_hwc_on_request_and_refuses_ambiguity)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 1, 3, (int[]){2, 3, 2})); /* [H 2, W 3, C 2] */
    for (int i = 0; i < 12; i++)
        d.x[i] = (float)i;
    CHECK(error_has(nerve_dataset_fit_layout(&d, "f.idx", 2, 2, 3, NERVE_LAYOUT_AUTO), NERVE_ERR_SHAPE,
                    "f.idx: dimensions [1, 2, 3, 2] are [N, H, W, C]"));
    CHECK(strstr(nerve_last_error(), "set layout=hwc"));
    CHECK(error_has(nerve_dataset_fit_layout(&d, "f.idx", 2, 2, 3, NERVE_LAYOUT_CHW), NERVE_ERR_SHAPE,
                    "do not fit"));
    CHECK_OK(nerve_dataset_fit_layout(&d, "f.idx", 2, 2, 3, NERVE_LAYOUT_HWC));
    CHECK(d.dims[0] == 2 && d.dims[1] == 2 && d.dims[2] == 3);
    /* channel 0 is the even values, channel 1 the odd ones */
    const float want[] = {0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11};
    CHECK_ARRAY_NEAR(d.x, want, 12, 0);
    CHECK_OK(nerve_dataset_fit_layout(&d, "f.idx", 2, 2, 3, NERVE_LAYOUT_AUTO)); /* now CHW */
    nerve_dataset_free(&d);
    CHECK_OK(nerve_dataset_alloc(&d, 1, 3, (int[]){2, 2, 2}));
    CHECK(error_has(nerve_dataset_fit_layout(&d, "g.idx", 2, 2, 2, NERVE_LAYOUT_AUTO), NERVE_ERR_SHAPE,
                    "both as [N, C, H, W] and as [N, H, W, C]; set layout=chw or layout=hwc"));
    CHECK_OK(nerve_dataset_fit_layout(&d, "g.idx", 2, 2, 2, NERVE_LAYOUT_CHW));
    nerve_dataset_free(&d);
    /* [H, W] for one channel, flat rows */
    CHECK_OK(nerve_dataset_alloc(&d, 1, 2, (int[]){4, 5}));
    CHECK_OK(nerve_dataset_fit_layout(&d, "h.idx", 1, 4, 5, NERVE_LAYOUT_AUTO));
    CHECK(d.ndim == 3 && d.dims[0] == 1);
    nerve_dataset_free(&d);
    CHECK_OK(nerve_dataset_alloc(&d, 1, 1, (int[]){20}));
    CHECK_OK(nerve_dataset_fit_layout(&d, "i.idx", 1, 4, 5, NERVE_LAYOUT_AUTO));
    CHECK(error_has(nerve_dataset_fit_layout(&d, "i.idx", 1, 5, 5, NERVE_LAYOUT_AUTO), NERVE_ERR_SHAPE,
                    "do not fit"));
    nerve_dataset_free(&d);
}

/* An IDX ubyte file of n images [dims] with pixel (i, j) = (7 i + 13 j) mod 256. */
static void write_idx_images(const char *path, int n, int ndim, const int *dims)
{
    FILE *fp = fopen(path, "wb");
    unsigned char head[4] = {0, 0, 8, (unsigned char)(ndim + 1)};
    fwrite(head, 1, 4, fp);
    int all[5] = {n};
    memcpy(all + 1, dims, (size_t)ndim * sizeof(int));
    size_t m = 1;
    for (int i = 0; i <= ndim; i++) {
        unsigned char b[4] = {(unsigned char)(all[i] >> 24), (unsigned char)(all[i] >> 16),
                              (unsigned char)(all[i] >> 8), (unsigned char)all[i]};
        fwrite(b, 1, 4, fp);
        if (i)
            m *= (size_t)all[i];
    }
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++)
            fputc((int)((7 * i + 13 * j + (j % 5 == 0 ? 100 : 0) + (i % 3) * 31) % 256), fp);
    fclose(fp);
}

static void write_idx_labels(const char *path, int n, int classes)
{
    FILE *fp = fopen(path, "wb");
    unsigned char head[8] = {0, 0, 8, 1, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n};
    fwrite(head, 1, 8, fp);
    for (int i = 0; i < n; i++)
        fputc(i % 3 % classes, fp);
    fclose(fp);
}

static const char *IMAGE_NET = "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n\n"
                               "[maxpool]\nsize=2\nstride=2\n\n[connected]\noutput=3\n\n[softmax]\n";

static nerve_model *cfg_model(const char *name, const char *net_keys)
{
    char path[512], text[8192];
    snprintf(text, sizeof text, "[net]\nbatch=8\nepochs=2\nseed=3\nlearning_rate=0.05\n%s\n%s",
             net_keys, IMAGE_NET);
    put_text(tmp(path, name), text);
    return nerve_model_load_cfg(path);
}

TEST(csv_pixels_need_input_scale_and_then_match_idx_exactly)
{
    char img[512], lab[512], csvp[512], keys[4096];
    int dims[3] = {1, 4, 4};
    write_idx_images(tmp(img, "px.idx"), 24, 3, dims);
    write_idx_labels(tmp(lab, "lb.idx"), 24, 3);
    nerve_dataset idx;
    CHECK_OK(nerve_dataset_load_idx(&idx, img, lab, 1.0f));
    FILE *fp = fopen(tmp(csvp, "px.csv"), "w");
    for (int i = 0; i < 24; i++) {
        for (int j = 0; j < 16; j++)
            fprintf(fp, "%d,", (int)idx.x[i * 16 + j]);
        fprintf(fp, "%d\n", (int)idx.y[i]);
    }
    fclose(fp);
    nerve_dataset_free(&idx);

    /* without input_scale: refused, saying what to set */
    snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=1\ntrain_csv=%s\n", csvp);
    nerve_model *m = cfg_model("csv0.cfg", keys);
    CHECK(m);
    nerve_dataset a, b;
    CHECK(error_has(nerve_config_load_data(nerve_model_config(m), &a, NULL), NERVE_ERR_FORMAT,
                    "px.csv: every value is an integer in 0..255"));
    CHECK(strstr(nerve_last_error(), "input_scale=0.00392157"));
    nerve_model_free(m);

    /* with input_scale=1/255 the CSV run and the IDX run give the same losses */
    double loss[2];
    for (int k = 0; k < 2; k++) {
        if (k == 0)
            snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=1\ninput_scale=0.00392157\n"
                     "train_csv=%s\ntest_csv=%s\n", csvp, csvp);
        else
            snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=1\ninput_scale=0.00392157\n"
                     "train_images=%s\ntrain_labels=%s\ntest_images=%s\ntest_labels=%s\n", img, lab,
                     img, lab);
        m = cfg_model(k ? "idx.cfg" : "csv.cfg", keys);
        CHECK(m);
        CHECK_OK(nerve_config_load_data(nerve_model_config(m), &a, &b));
        nerve_fit_options fo = {0};
        CHECK_OK(nerve_fit(m, &a, NULL, &fo, NULL));
        double acc;
        CHECK_OK(nerve_evaluate(m, &b, &loss[k], &acc, NULL, 0));
        nerve_dataset_free(&a);
        nerve_dataset_free(&b);
        nerve_model_free(m);
    }
    CHECK_MSG(loss[0] == loss[1], "CSV loss %.9g, IDX loss %.9g", loss[0], loss[1]);
}

TEST(an_hwc_idx_file_is_refused_or_transposed_by_layout)
{
    char img[512], lab[512], keys[4096];
    write_idx_images(tmp(img, "hwc.idx"), 6, 3, (int[]){4, 4, 3});
    write_idx_labels(tmp(lab, "hwc_l.idx"), 6, 3);
    snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=3\ntrain_images=%s\ntrain_labels=%s\n",
             img, lab);
    nerve_model *m = cfg_model("hwc.cfg", keys);
    CHECK(m);
    nerve_dataset a;
    CHECK(error_has(nerve_config_load_data(nerve_model_config(m), &a, NULL), NERVE_ERR_SHAPE,
                    "hwc.idx: dimensions [6, 4, 4, 3] are [N, H, W, C]"));
    nerve_model_free(m);
    snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=3\nlayout=hwc\ntrain_images=%s\n"
             "train_labels=%s\n", img, lab);
    m = cfg_model("hwc2.cfg", keys);
    CHECK(m);
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &a, NULL));
    CHECK(a.dims[0] == 3 && a.dims[1] == 4 && a.dims[2] == 4);
    /* sample 1, channel 2, row 1, column 3 = file element ((1*4+3)*3+2) of image 1 */
    size_t j = (size_t)((1 * 4 + 3) * 3 + 2);
    float want = (float)((7 * 1 + 13 * j + (j % 5 == 0 ? 100 : 0) + 31) % 256) / 255.0f;
    CHECK_NEAR(a.x[48 + 2 * 16 + 1 * 4 + 3], want, 1e-7);
    nerve_dataset_free(&a);
    nerve_model_free(m);
    snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=3\nlayout=sideways\n"
             "train_images=%s\n", img);
    CHECK(cfg_model("hwc3.cfg", keys) == NULL);
    CHECK(strstr(nerve_last_error(), "layout=sideways: expected chw or hwc"));
}

TEST(a_cfg_trains_from_an_image_folder_with_names_and_resize)
{
    char root[512], names[512], keys[4096];
    tmp(root, "train");
    const char *classes[] = {"b", "a", "c"};
    make_folder(root, classes, 3, 4);
    put_text(tmp(names, "cls.names"), "c\nb\na\n");
    snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=1\nresize=pad\ntrain_folder=%s\n"
             "test_folder=%s\nnames=%s\n", root, root, names);
    nerve_model *m = cfg_model("folder.cfg", keys);
    CHECK(m);
    CHECK_NEAR(nerve_model_config(m)->input_scale, 1 / 255.0, 1e-9);
    nerve_dataset a, b;
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &a, &b));
    CHECK(a.n == 12 && a.dims[1] == 4 && a.dims[2] == 4 && a.n_classes == 3);
    CHECK(!strcmp(a.names[0], "c") && !strcmp(a.names[2], "a"));
    /* folder "a" (sorted first) holds class index 1 of make_folder's list: value 10/255 at
     * (0,0); with the names file it is class 2; padding puts it in column 1 */
    CHECK(a.y[0] == 2 && a.y[4] == 1 && a.y[8] == 0);
    CHECK_NEAR(a.x[0], 10 / 255.0, 1e-6);
    CHECK(a.x[3] == 0 && a.x[7] == 0); /* 4x3 padded to 4x4: the last column */
    nerve_fit_options fo = {0};
    CHECK_OK(nerve_fit(m, &a, NULL, &fo, NULL));
    nerve_dataset_free(&a);
    nerve_dataset_free(&b);
    nerve_model_free(m);
    /* two sources for one set */
    snprintf(keys, sizeof keys, "height=4\nwidth=4\nchannels=1\ntrain_folder=%s\ntrain_csv=x.csv\n",
             root);
    m = cfg_model("two.cfg", keys);
    CHECK(m);
    CHECK(error_has(nerve_config_load_data(nerve_model_config(m), &a, NULL), NERVE_ERR_ARG,
                    "names 2 sources of train data"));
    nerve_model_free(m);
}

/* ---- targets and names through gather, split, bootstrap -------------------------------- */

TEST(gather_split_and_bootstrap_keep_values_boxes_and_names)
{
    nerve_dataset d, v, g, bs;
    CHECK_OK(nerve_dataset_alloc(&d, 10, 1, (int[]){2}));
    CHECK_OK(nerve_dataset_alloc_target(&d, NERVE_TARGET_VALUES, 1, (int[]){3}));
    for (int i = 0; i < 10; i++) {
        d.x[2 * i] = (float)i;
        d.y[i] = (float)(i % 2);
        for (int k = 0; k < 3; k++)
            d.t[3 * i + k] = (float)(100 * i + k);
    }
    d.n_classes = 2;
    const char *names[] = {"even", "odd"};
    CHECK_OK(nerve_dataset_set_names(&d, 2, names));
    int idx[3] = {7, 2, 7};
    CHECK_OK(nerve_dataset_gather(&g, &d, idx, 3));
    CHECK(g.n == 3 && g.target == NERVE_TARGET_VALUES && g.t[3] == 200 && g.t[8] == 702);
    CHECK(g.n_names == 2 && !strcmp(g.names[1], "odd") && g.y[0] == 1);
    nerve_dataset_free(&g);
    CHECK_OK(nerve_dataset_bootstrap(&d, &bs, 5));
    for (int i = 0; i < bs.n; i++) {
        int src = (int)bs.x[2 * i];
        CHECK(bs.t[3 * i + 2] == 100 * src + 2 && bs.y[i] == src % 2);
    }
    CHECK(bs.n_names == 2);
    nerve_dataset_free(&bs);
    CHECK_OK(nerve_dataset_split(&d, &v, 0.3f, 11));
    CHECK(d.n == 7 && v.n == 3 && v.n_names == 2 && d.n_names == 2);
    for (int i = 0; i < v.n; i++)
        CHECK(v.t[3 * i + 1] == 100 * v.x[2 * i] + 1);
    nerve_dataset_free(&v);
    nerve_dataset_free(&d);

    /* boxes: 0, 2, 1 boxes per sample */
    CHECK_OK(nerve_dataset_alloc(&d, 3, 1, (int[]){1}));
    nerve_box boxes[3] = {{1, .5f, .5f, .2f, .2f}, {0, .1f, .1f, .1f, .1f}, {2, .9f, .9f, .1f, .1f}};
    CHECK_OK(nerve_dataset_set_boxes(&d, (int[]){0, 2, 1}, boxes));
    int idx2[2] = {2, 1};
    CHECK_OK(nerve_dataset_gather(&g, &d, idx2, 2));
    CHECK(g.target == NERVE_TARGET_BOXES && g.box_start[1] == 1 && g.box_start[2] == 3);
    CHECK(g.boxes[0].cls == 2 && g.boxes[1].cls == 1 && g.boxes[2].x == .1f);
    nerve_dataset_free(&g);
    CHECK_OK(nerve_dataset_split(&d, &v, 0.34f, 0));
    CHECK(d.n == 2 && v.n == 1 && v.box_start[1] == 1 && v.boxes[0].cls == 2);
    CHECK(d.box_start[2] == 2);
    nerve_dataset_free(&v);
    nerve_dataset_free(&d);
}

/* ---- export ----------------------------------------------------------------------------- */

TEST(export_writes_a_folder_tree_that_loads_back_bit_for_bit_from_png)
{
    nerve_dataset d, back;
    CHECK_OK(nerve_dataset_alloc(&d, 7, 2, (int[]){5, 4}));
    for (int i = 0; i < 7; i++) {
        d.y[i] = (float)(i % 3);
        for (int j = 0; j < 20; j++)
            d.x[i * 20 + j] = (float)((i * 31 + j * 17) % 256) * (1.0f / 255);
    }
    d.n_classes = 3;
    char root[512];
    const char *names[] = {"zz", "aa", "mm"};
    CHECK_OK(nerve_dataset_export_images(&d, tmp(root, "out/deep/tree"), "png", 0, names, 3));
    char path[700];
    snprintf(path, sizeof path, "%s/zz/00003.png", root);
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    fclose(fp);
    nerve_image_options o = {1, 0, 0, NERVE_RESIZE_NONE, 1};
    CHECK_OK(nerve_dataset_load_image_folder(&back, root, &o));
    CHECK(back.n == 7 && back.dims[1] == 5 && back.dims[2] == 4);
    /* folders sorted aa (class 1), mm (2), zz (0); within, by sample index */
    CHECK_OK(nerve_dataset_use_names(&back, names, 3, "names"));
    int order[7] = {1, 4, 2, 5, 0, 3, 6};
    for (int k = 0; k < 7; k++) {
        int i = order[k];
        CHECK(back.y[k] == d.y[i]);
        CHECK(memcmp(back.x + k * 20, d.x + i * 20, 20 * sizeof(float)) == 0);
    }
    nerve_dataset_free(&back);
    /* JPEG, classes named by index */
    CHECK_OK(nerve_dataset_export_images(&d, tmp(root, "jp"), "jpg", 90, NULL, 0));
    CHECK_OK(nerve_dataset_load_image_folder(&back, root, &o));
    CHECK(back.n == 7 && !strcmp(back.names[2], "2"));
    nerve_dataset_free(&back);
    const char *bad[] = {"a", "b/c", "d"};
    CHECK(error_has(nerve_dataset_export_images(&d, root, "png", 0, bad, 3), NERVE_ERR_ARG,
                    "'b/c' cannot be a folder name"));
    const char *dup[] = {"a", "b", "a"};
    CHECK(error_has(nerve_dataset_export_images(&d, root, "png", 0, dup, 3), NERVE_ERR_ARG,
                    "both named 'a'"));
    CHECK(error_has(nerve_dataset_export_images(&d, root, "gif", 0, NULL, 0), NERVE_ERR_ARG, "'gif'"));
    d.y[2] = -1;
    CHECK(error_has(nerve_dataset_export_images(&d, root, "png", 0, NULL, 0), NERVE_ERR_ARG,
                    "sample 2 has no class"));
    nerve_dataset_free(&d);
}

TEST(cli_data_export_then_train_from_the_folder)
{
    char img[512], lab[512], out[512], cmd[4096];
    write_idx_images(tmp(img, "e_img.idx"), 12, 2, (int[]){4, 4});
    write_idx_labels(tmp(lab, "e_lab.idx"), 12, 3);
    tmp(out, "exported");
    char names[512];
    put_text(tmp(names, "e.names"), "one\ntwo\nthree\n");
    snprintf(cmd, sizeof cmd, "%s/nerve data export %s %s %s --names %s > %s/out.txt 2>&1",
             test_build_dir(), img, lab, out, names, test_tmpdir());
    CHECK(system(cmd) == 0);
    char path[700];
    snprintf(path, sizeof path, "%s/three/00002.png", out);
    nerve_image im;
    CHECK_OK(nerve_image_load(path, 0, &im));
    nerve_dataset idx;
    CHECK_OK(nerve_dataset_load_idx(&idx, img, lab, 1.0f / 255));
    CHECK(memcmp(im.data, idx.x + 2 * 16, 16 * sizeof(float)) == 0);
    nerve_image_free(&im);
    nerve_dataset_free(&idx);
    snprintf(cmd, sizeof cmd, "%s/nerve data export %s %s %s --format gif > /dev/null 2>&1",
             test_build_dir(), img, lab, out);
    CHECK(system(cmd) != 0);
}

/* ---- CIFAR ------------------------------------------------------------------------------- */

/* n records; CIFAR-10 label i % 10, CIFAR-100 coarse i % 20, fine (7 i) % 100; pixel k of
 * record i = (i + k) % 256. */
static size_t cifar_bytes(unsigned char *buf, int n, int kind)
{
    size_t rec = kind == 10 ? 3073 : 3074, k = 0;
    for (int i = 0; i < n; i++) {
        if (kind == 10)
            buf[k++] = (unsigned char)(i % 10);
        else {
            buf[k++] = (unsigned char)(i % 20);
            buf[k++] = (unsigned char)((7 * i) % 100);
        }
        for (int p = 0; p < 3072; p++)
            buf[k++] = (unsigned char)((i + p) % 256);
    }
    return rec * (size_t)n;
}

TEST(cifar_10_and_100_records_and_labels)
{
    unsigned char *buf = malloc(3074 * 12);
    size_t len = cifar_bytes(buf, 12, 10);
    nerve_dataset d;
    CHECK_OK(nerve_dataset_parse_cifar(&d, buf, len, "b.bin", 0, 0, 1.0f / 255));
    CHECK(d.n == 12 && d.n_classes == 10 && d.dims[0] == 3 && d.dims[1] == 32 && d.y[11] == 1);
    CHECK_NEAR(d.x[5 * 3072 + 1024 + 3], ((5 + 1024 + 3) % 256) / 255.0, 1e-7); /* G plane */
    nerve_dataset_free(&d);
    CHECK(error_has(nerve_dataset_parse_cifar(&d, buf, len, "b.bin", 0, 1, 1), NERVE_ERR_FORMAT,
                    "CIFAR-10 records have no coarse label"));
    len = cifar_bytes(buf, 12, 100);
    CHECK_OK(nerve_dataset_parse_cifar(&d, buf, len, "c.bin", 0, 0, 1));
    CHECK(d.n == 12 && d.n_classes == 100 && d.y[3] == 21 && d.x[3 * 3072] == 3);
    nerve_dataset_free(&d);
    CHECK_OK(nerve_dataset_parse_cifar(&d, buf, len, "c.bin", 0, 1, 1));
    CHECK(d.n_classes == 20 && d.y[3] == 3);
    nerve_dataset_free(&d);
    /* truncated: says what it looks like and where it is cut */
    CHECK(error_has(nerve_dataset_parse_cifar(&d, buf, len - 100, "c.bin", 0, 0, 1), NERVE_ERR_FORMAT,
                    "looks like CIFAR-100 (labels in range at every 3074 bytes) cut after 11 records"));
    len = cifar_bytes(buf, 12, 10);
    CHECK(error_has(nerve_dataset_parse_cifar(&d, buf, len - 5, "b.bin", 0, 0, 1), NERVE_ERR_FORMAT,
                    "looks like CIFAR-10"));
    CHECK(error_has(nerve_dataset_parse_cifar(&d, buf, len, "b.bin", 100, 0, 1), NERVE_ERR_FORMAT,
                    "not a whole number of CIFAR-100 records"));
    buf[3073 * 4] = 10; /* record 4's label */
    CHECK(error_has(nerve_dataset_parse_cifar(&d, buf, len, "b.bin", 10, 0, 1), NERVE_ERR_FORMAT,
                    "b.bin: record 4 (byte 12292): the label 10 is not 0..9"));
    CHECK(error_has(nerve_dataset_parse_cifar(&d, buf, 0, "e.bin", 0, 0, 1), NERVE_ERR_FORMAT,
                    "empty file"));
    /* every prefix: an error or records, never a crash */
    for (size_t k = 0; k < 3 * 3073; k += 97) {
        if (nerve_dataset_parse_cifar(&d, buf, k, "p.bin", 0, 0, 1) == NERVE_OK)
            nerve_dataset_free(&d);
    }
    free(buf);
}

TEST(a_cfg_reads_several_cifar_files_and_needs_a_3x32x32_input)
{
    unsigned char *buf = malloc(3073 * 5);
    char a[512], b[512], keys[2048];
    put_file(tmp(a, "data_batch_1.bin"), buf, cifar_bytes(buf, 5, 10));
    put_file(tmp(b, "data_batch_2.bin"), buf, cifar_bytes(buf, 3, 10));
    free(buf);
    snprintf(keys, sizeof keys, "height=32\nwidth=32\nchannels=3\ntrain_cifar=%s,%s\n", a, b);
    nerve_model *m = cfg_model("cifar.cfg", keys);
    CHECK(m);
    nerve_dataset d;
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &d, NULL));
    CHECK(d.n == 8 && d.n_classes == 10 && d.y[6] == 1);
    CHECK_NEAR(d.x[3072], 1 / 255.0, 1e-7);
    nerve_dataset_free(&d);
    nerve_model_free(m);
    snprintf(keys, sizeof keys, "height=28\nwidth=28\nchannels=3\ntrain_cifar=%s\n", a);
    m = cfg_model("cifar2.cfg", keys);
    CHECK(m);
    CHECK(error_has(nerve_config_load_data(nerve_model_config(m), &d, NULL), NERVE_ERR_ARG,
                    "train_cifar: CIFAR images are [3, 32, 32]"));
    nerve_model_free(m);
}

/* ---- darknet lists and boxes --------------------------------------------------------------- */

TEST(yolo_label_files_parse_and_refuse_bad_classes_and_coordinates)
{
    nerve_box *b;
    int n;
    const char *ok = "0 0.5 0.5 0.2 0.4\r\n\n2 0.1 0.9 1 0.05\n";
    CHECK_OK(nerve_boxes_parse(ok, strlen(ok), "a.txt", 3, &b, &n));
    CHECK(n == 2 && b[1].cls == 2 && b[1].x == 0.1f && b[1].w == 1.0f);
    nerve_boxes_free(b);
    CHECK(error_has(nerve_boxes_parse("3 0.5 0.5 0.1 0.1\n", 18, "a.txt", 3, &b, &n), NERVE_ERR_FORMAT,
                    "a.txt:1: class 3 is not one of 0..2"));
    CHECK(error_has(nerve_boxes_parse("0 0.5 0.5 0.1 0.1\n1 1.5 0.5 0.1 0.1\n", 36, "a.txt", 3, &b, &n),
                    NERVE_ERR_FORMAT, "a.txt:2: cx = 1.5 is outside [0, 1]"));
    CHECK(error_has(nerve_boxes_parse("0 0.5 0.5 0 0.1\n", 16, "a.txt", 3, &b, &n), NERVE_ERR_FORMAT,
                    "w = 0 is outside (0, 1]"));
    /* a width above zero as a double that rounds to 0 as a float (found by fuzz_boxes) */
    CHECK(error_has(nerve_boxes_parse("0 0.5 0.5 1e-60 0.1\n", 20, "a.txt", 3, &b, &n),
                    NERVE_ERR_FORMAT, "a.txt:1: w = 1e-60 is outside (0, 1]"));
    CHECK(error_has(nerve_boxes_parse("0 0.5 0.5 0.1\n", 14, "a.txt", 3, &b, &n), NERVE_ERR_FORMAT,
                    "a.txt:1: expected 'class cx cy w h' (5 numbers), found fewer"));
    CHECK(error_has(nerve_boxes_parse("0 0.5 0.5 0.1 0.1 7\n", 20, "a.txt", 3, &b, &n), NERVE_ERR_FORMAT,
                    "found more"));
    CHECK(error_has(nerve_boxes_parse("0.5 0.5 0.5 0.1 0.1\n", 20, "a.txt", 3, &b, &n), NERVE_ERR_FORMAT,
                    "class 0.5"));
    CHECK(error_has(nerve_boxes_parse("0 0.5 x 0.1 0.1\n", 16, "a.txt", 3, &b, &n), NERVE_ERR_FORMAT,
                    "a.txt:1: field 3 is not a number"));
    CHECK(error_has(nerve_boxes_parse("0 nan 0.5 0.1 0.1\n", 18, "a.txt", 3, &b, &n), NERVE_ERR_FORMAT,
                    "field 2"));
    /* every prefix of a valid file: boxes or an error, never a crash */
    for (size_t k = 0; k <= strlen(ok); k++) {
        char *buf = malloc(k ? k : 1);
        memcpy(buf, ok, k);
        if (nerve_boxes_parse(buf, k, "p.txt", 3, &b, &n) == NERVE_OK)
            nerve_boxes_free(b);
        free(buf);
    }
}

TEST(a_darknet_list_finds_labels_under_labels_or_beside_the_image)
{
    char root[512], p[800], list[800], keys[4096];
    tmp(root, "voc");
    snprintf(p, sizeof p, "%s/images", root);
    mkdir(root, 0777);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/labels", root);
    mkdir(p, 0777);
    float px[8 * 8] = {0};
    snprintf(p, sizeof p, "%s/images/a.png", root);
    nerve_png_write_gray(p, 8, 8, px);
    snprintf(p, sizeof p, "%s/labels/a.txt", root);
    put_text(p, "1 0.5 0.5 0.25 0.5\n0 0.25 0.25 0.1 0.1\n");
    snprintf(p, sizeof p, "%s/b.jpg", root);
    nerve_jpeg_write(p, 8, 8, 1, px, 90);
    snprintf(p, sizeof p, "%s/b.txt", root);
    put_text(p, "");
    snprintf(list, sizeof list, "%s/train.txt", root);
    put_text(list, "images/a.png\n\n  b.jpg \n");
    char names[512];
    put_text(tmp(names, "voc.names"), "cat\ndog\n");
    snprintf(keys, sizeof keys, "height=8\nwidth=8\nchannels=1\ntrain_list=%s\nnames=%s\n", list, names);
    nerve_model *m = cfg_model("list.cfg", keys);
    CHECK(m);
    nerve_dataset d;
    CHECK_OK(nerve_config_load_data(nerve_model_config(m), &d, NULL));
    CHECK(d.n == 2 && d.target == NERVE_TARGET_BOXES && d.n_classes == 2 && d.n_names == 2);
    CHECK(d.box_start[1] == 2 && d.box_start[2] == 2 && d.boxes[0].cls == 1 && d.boxes[1].x == 0.25f);
    nerve_dataset_free(&d);
    nerve_model_free(m);
    /* a box of class 2 with 2 names; a missing label file; a missing image */
    snprintf(p, sizeof p, "%s/labels/a.txt", root);
    put_text(p, "2 0.5 0.5 0.25 0.5\n");
    const char *nm[] = {"cat", "dog"};
    CHECK(error_has(nerve_dataset_load_list(&d, list, nm, 2, NULL), NERVE_ERR_FORMAT,
                    "labels/a.txt:1: class 2 is not one of 0..1"));
    remove(p);
    CHECK(error_has(nerve_dataset_load_list(&d, list, nm, 2, NULL), NERVE_ERR_IO,
                    "images/a.png: no label file (looked for"));
    put_text(list, "images/a.png\nnope.png\n");
    CHECK(error_has(nerve_dataset_load_list(&d, list, nm, 2, NULL), NERVE_ERR_IO,
                    "train.txt:2:"));
    nerve_image_options o = {1, 8, 8, NERVE_RESIZE_CROP, 1};
    CHECK(error_has(nerve_dataset_load_list(&d, list, nm, 2, &o), NERVE_ERR_ARG,
                    "resize=crop or pad would move the boxes"));
}

/* The bounding box (in pixels) of the values above 0.5 in plane x [h, w]. */
static void bright_box(const float *x, int h, int w, int *y0, int *x0, int *y1, int *x1)
{
    *y0 = h, *x0 = w, *y1 = -1, *x1 = -1;
    for (int y = 0; y < h; y++)
        for (int i = 0; i < w; i++)
            if (x[y * w + i] > 0.5f) {
                *y0 = y < *y0 ? y : *y0;
                *x0 = i < *x0 ? i : *x0;
                *y1 = y > *y1 ? y : *y1;
                *x1 = i > *x1 ? i : *x1;
            }
}

TEST(geometric_augmentation_moves_boxes_with_the_image)
{
    enum { H = 20, W = 24 };
    struct { int flip; float scale; int dy, dx; } cases[] = {
        {0, 1, 0, 0}, {1, 1, 0, 0}, {0, 1, 3, -5}, {1, 1, -2, 4}, {0, 2, 0, 0}, {1, 0.5f, 2, 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float img[H * W] = {0};
        /* a bright rectangle, rows 4..11, columns 6..13 (pixel edges 4..12, 6..14) */
        for (int y = 4; y < 12; y++)
            for (int i = 6; i < 14; i++)
                img[y * W + i] = 1;
        nerve_box b = {3, 10.0f / W, 8.0f / H, 8.0f / W, 8.0f / H};
        int n = nerve_aug_geometric_boxes(img, 1, H, W, &b, 1, cases[k].flip, cases[k].scale,
                                          cases[k].dy, cases[k].dx, NULL);
        CHECK(n == 1 && b.cls == 3);
        int y0, x0, y1, x1;
        bright_box(img, H, W, &y0, &x0, &y1, &x1);
        /* the box edges and the bright pixels' edges agree within one pixel (bilinear) */
        CHECK_NEAR((b.x - b.w / 2) * W, x0, 1.0);
        CHECK_NEAR((b.x + b.w / 2) * W, x1 + 1, 1.0);
        CHECK_NEAR((b.y - b.h / 2) * H, y0, 1.0);
        CHECK_NEAR((b.y + b.h / 2) * H, y1 + 1, 1.0);
    }
    /* flip is exact: x -> 1 - x */
    nerve_box b = {0, 0.2f, 0.3f, 0.1f, 0.2f};
    CHECK(nerve_boxes_transform(&b, 1, H, W, 1, 1, 0, 0) == 1);
    CHECK_NEAR(b.x, 0.8, 1e-6);
    CHECK_NEAR(b.y, 0.3, 1e-6);
    /* a box shifted out of the image is dropped; one half out is clipped */
    nerve_box two[2] = {{0, 0.1f, 0.5f, 0.1f, 0.1f}, {1, 0.5f, 0.5f, 0.2f, 0.2f}};
    CHECK(nerve_boxes_transform(two, 2, 10, 10, 0, 1, 0, -5) == 1);
    CHECK(two[0].cls == 1);
    CHECK_NEAR(two[0].x, 0.05, 1e-6); /* pixels 4..6 moved to -1..1, clipped to 0..1 */
    CHECK_NEAR(two[0].w, 0.1, 1e-6);
    CHECK_NEAR(two[0].y, 0.5, 1e-6);
}

/* ---- loading ahead ----------------------------------------------------------------------- */

TEST(prefetched_batches_equal_the_serial_ones_bit_for_bit_with_augmentation)
{
    nerve_dataset d;
    CHECK_OK(nerve_dataset_alloc(&d, 37, 3, (int[]){1, 6, 6}));
    CHECK_OK(nerve_dataset_alloc_target(&d, NERVE_TARGET_VALUES, 1, (int[]){2}));
    for (int i = 0; i < 37; i++) {
        d.y[i] = (float)(i % 4);
        d.t[2 * i] = (float)i;
        for (int j = 0; j < 36; j++)
            d.x[i * 36 + j] = test_pseudo((size_t)(i * 36 + j), 5);
    }
    nerve_augment a = nerve_augment_default();
    CHECK_OK(nerve_augment_parse("flip,translate,noise", &a));
    nerve_prefetch *p = nerve_prefetch_create(&d, 8, &a, 1, 6, 6, 42);
    CHECK(p);
    nerve_batcher b;
    CHECK_OK(nerve_batcher_init(&b, &d, 8, 1, 42));
    float x1[8 * 36], y1[8], t1[16], x2[8 * 36], y2[8], t2[16];
    float *scratch = malloc(nerve_augment_scratch(1, 6, 6, 0) * sizeof(float));
    for (int epoch = 1; epoch <= 3; epoch++) {
        uint64_t order_seed = 42 * 0x9E3779B97F4A7C15ull + (uint64_t)epoch;
        CHECK_OK(nerve_prefetch_start(p, order_seed, epoch, 0));
        nerve_rng_seed(&b.rng, order_seed);
        nerve_batcher_reset(&b);
        int batch = 0, n;
        while ((n = nerve_batcher_next_target(&b, x1, y1, t1)) > 0) {
            nerve_rng r;
            nerve_augment_seed(&r, 42, epoch, batch);
            CHECK_OK(nerve_augment_apply(&a, x1, NULL, n, 1, 6, 6, 0, &r, scratch));
            int m = nerve_prefetch_next(p, x2, y2, t2);
            CHECK_MSG(m == n, "epoch %d batch %d: %d samples, serial %d", epoch, batch, m, n);
            CHECK(memcmp(x1, x2, (size_t)n * 36 * sizeof(float)) == 0);
            CHECK(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0);
            CHECK(memcmp(t1, t2, (size_t)n * 2 * sizeof(float)) == 0);
            int k1, k2;
            const int *i1 = nerve_batcher_last_indices(&b, &k1), *i2 = nerve_prefetch_last_indices(p, &k2);
            CHECK(k1 == k2 && memcmp(i1, i2, (size_t)k1 * sizeof(int)) == 0);
            batch++;
        }
        CHECK(nerve_prefetch_next(p, x2, y2, t2) == 0);
        CHECK(batch == 5);
    }
    /* an epoch restarted in the middle starts afresh */
    CHECK_OK(nerve_prefetch_start(p, 1, 1, 0));
    CHECK(nerve_prefetch_next(p, x2, y2, NULL) == 8);
    CHECK(nerve_prefetch_next(p, x2, y2, NULL) == 8);
    CHECK_OK(nerve_prefetch_start(p, 1, 1, 0));
    float x3[8 * 36];
    CHECK(nerve_prefetch_next(p, x3, NULL, NULL) == 8);
    CHECK(nerve_prefetch_next(p, x3, NULL, NULL) == 8);
    CHECK(memcmp(x2, x3, sizeof x3) == 0);
    /* a resumed epoch starting at batch 3: the serial batches 3 and 4 */
    CHECK_OK(nerve_prefetch_start(p, 1, 1, 3));
    CHECK(nerve_prefetch_next(p, x3, NULL, NULL) == 8);
    CHECK(nerve_prefetch_next(p, x3, NULL, NULL) == 5);
    CHECK(nerve_prefetch_next(p, x3, NULL, NULL) == 0);
    free(scratch);
    nerve_batcher_free(&b);
    nerve_prefetch_free(p);
    nerve_dataset_free(&d);
}

/* ---- names end to end: train on string labels, predict prints them ------------------------ */

TEST(a_string_labelled_csv_trains_and_predict_prints_the_names)
{
    char train[512], cfg[512], cmd[4096], out_dir[512];
    FILE *fp = fopen(tmp(train, "flowers.csv"), "w");
    fprintf(fp, "petal length,petal width,\"species, as named\"\n");
    nerve_rng r;
    nerve_rng_seed(&r, 3);
    const char *sp[] = {"virginica", "setosa", "versicolor"};
    for (int i = 0; i < 90; i++) {
        int c = i % 3;
        fprintf(fp, "%.3f,%.3f,%s\n", 1.5 + 2.0 * c + 0.3 * nerve_rng_normal(&r),
                0.2 + 0.8 * c + 0.1 * nerve_rng_normal(&r), sp[c]);
    }
    fclose(fp);
    char text[4096];
    snprintf(text, sizeof text, "[net]\ninputs=2\nbatch=8\nepochs=30\nseed=1\noptimizer=adam\n"
             "learning_rate=0.05\ntrain_csv=%s\ntest_csv=%s\n\n[connected]\noutput=3\n\n[softmax]\n",
             train, train);
    put_text(tmp(cfg, "flowers.cfg"), text);
    tmp(out_dir, "flowers_run");
    snprintf(cmd, sizeof cmd, "%s/nerve train %s --out %s --quiet > %s/train.txt 2>&1", test_build_dir(),
             cfg, out_dir, test_tmpdir());
    CHECK(system(cmd) == 0);
    char q[512];
    put_text(tmp(q, "query.csv"), "1.5,0.2\n5.5,1.8\n3.5,1.0\n");
    snprintf(cmd, sizeof cmd, "%s/nerve predict %s/model.safetensors %s --top 2 > %s/pred.txt 2>&1",
             test_build_dir(), out_dir, q, test_tmpdir());
    CHECK(system(cmd) == 0);
    char pred[512];
    size_t n;
    unsigned char *txt = slurp(tmp(pred, "pred.txt"), &n);
    CHECK(txt);
    txt[n] = '\0';
    /* sorted names: setosa 0, versicolor 1, virginica 2 */
    char *l2 = strchr((char *)txt, '\n'), *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    /* the queries are the centres of virginica, versicolor and setosa as generated */
    CHECK_MSG(!strncmp((char *)txt, "2 virginica 0.", 14) && l2 && !strncmp(l2 + 1, "1 versicolor 0.", 15) &&
              l3 && !strncmp(l3 + 1, "0 setosa 0.", 11), "predict printed:\n%s", txt);
    CHECK(strstr((char *)txt, ", ")); /* --top 2 */
    free(txt);
}

TEST(predict_reads_png_files_and_folders_and_names_them)
{
    char root[512], cmd[4096], out_dir[512], keys[4096];
    tmp(root, "pics");
    const char *classes[] = {"dark", "light"};
    mkdir(root, 0777);
    for (int c = 0; c < 2; c++) {
        char dir[700], path[800];
        snprintf(dir, sizeof dir, "%s/%s", root, classes[c]);
        mkdir(dir, 0777);
        for (int i = 0; i < 12; i++) {
            float px[16];
            for (int j = 0; j < 16; j++)
                px[j] = c ? 0.7f + 0.02f * (float)((i + j) % 10) : 0.05f * (float)((i * j) % 5);
            snprintf(path, sizeof path, "%s/%02d.png", dir, i);
            nerve_png_write_gray(path, 4, 4, px);
        }
    }
    snprintf(keys, sizeof keys, "[net]\nheight=4\nwidth=4\nchannels=1\nbatch=8\nepochs=15\nseed=2\n"
             "optimizer=adam\nlearning_rate=0.05\ntrain_folder=%s\n\n[connected]\noutput=2\n\n[softmax]\n",
             root);
    char cfg[512];
    put_text(tmp(cfg, "pics.cfg"), keys);
    tmp(out_dir, "pics_run");
    snprintf(cmd, sizeof cmd, "%s/nerve train %s --out %s --quiet > %s/t.txt 2>&1", test_build_dir(), cfg,
             out_dir, test_tmpdir());
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s/nerve predict %s/model.safetensors %s/light/03.png %s/dark > %s/p.txt 2>&1",
             test_build_dir(), out_dir, root, root, test_tmpdir());
    CHECK(system(cmd) == 0);
    char p[512];
    size_t n;
    unsigned char *txt = slurp(tmp(p, "p.txt"), &n);
    CHECK(txt);
    txt[n] = '\0';
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += txt[i] == '\n';
    CHECK_MSG(lines == 13 && strstr((char *)txt, "light/03.png: 1 light 0.") &&
              strstr((char *)txt, "dark/00.png: 0 dark 0."), "predict printed:\n%s", txt);
    free(txt);
}
