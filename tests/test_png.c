/* PNG writer: round trips through libpng's reader, and the tiling of grids. */
#include "test.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>

/* Reads a PNG into 8-bit pixels of the given format (caller frees); NULL on failure. */
static unsigned char *read_png(const char *path, png_uint_32 format, int *w, int *h, int *channels)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return NULL;
    *channels = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    img.format = format;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return NULL;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    return buf;
}

TEST(png_gray_round_trip)
{
    enum { W = 5, H = 3 };
    float data[W * H];
    for (int i = 0; i < W * H; i++)
        data[i] = (float)i / (W * H - 1);
    data[0] = -0.5f; /* clamped to 0 */
    data[1] = 2.0f;  /* clamped to 1 */
    char path[512];
    snprintf(path, sizeof path, "%s/g.png", test_tmpdir());
    CHECK_OK(nerve_png_write_gray(path, W, H, data));
    int w, h, ch;
    unsigned char *px = read_png(path, PNG_FORMAT_GRAY, &w, &h, &ch);
    CHECK(px != NULL);
    CHECK(w == W && h == H && ch == 1);
    CHECK(px[0] == 0 && px[1] == 255);
    for (int i = 2; i < W * H; i++)
        CHECK_MSG(px[i] == (unsigned char)lrintf(data[i] * 255.0f), "pixel %d: %d", i, px[i]);
    free(px);
}

TEST(png_rgb_round_trip_from_planes)
{
    enum { W = 4, H = 2 };
    float planes[3 * W * H];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < W * H; i++)
            planes[c * W * H + i] = (float)((i * 37 + c * 91) % 256) / 255.0f;
    char path[512];
    snprintf(path, sizeof path, "%s/c.png", test_tmpdir());
    CHECK_OK(nerve_png_write_rgb(path, W, H, planes));
    int w, h, ch;
    unsigned char *px = read_png(path, PNG_FORMAT_RGB, &w, &h, &ch);
    CHECK(px != NULL);
    CHECK(w == W && h == H && ch == 3);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++)
            CHECK(px[i * 3 + c] == (i * 37 + c * 91) % 256);
    free(px);
    CHECK(nerve_png_write_gray("/nonexistent-dir/x.png", W, H, planes) == NERVE_ERR_IO);
    CHECK(strstr(nerve_last_error(), "/nonexistent-dir/x.png") != NULL);
}

TEST(grid_tiles_maps_with_borders_and_per_map_normalisation)
{
    /* three 2x2 maps, two per row: a 2 x 2 grid of tiles, 7 x 7 pixels */
    const float maps[3 * 4] = {0, 1, 2, 3, /* ramp */ 10, 30, 20, 10, /* 10..30 */ 5, 5, 5, 5};
    int gh, gw;
    CHECK_OK(nerve_image_grid(maps, 3, 1, 2, 2, 2, NULL, &gh, &gw));
    CHECK(gh == 7 && gw == 7);
    float img[49];
    CHECK_OK(nerve_image_grid(maps, 3, 1, 2, 2, 2, img, &gh, &gw));
    for (int i = 0; i < 7; i++) { /* borders: rows/columns 0, 3, 6 */
        CHECK(img[i] == 1.0f && img[3 * 7 + i] == 1.0f && img[6 * 7 + i] == 1.0f);
        CHECK(img[i * 7] == 1.0f && img[i * 7 + 3] == 1.0f && img[i * 7 + 6] == 1.0f);
    }
    const float t0[4] = {0, 1.0f / 3, 2.0f / 3, 1}, t1[4] = {0, 1, 0.5f, 0};
    for (int k = 0; k < 4; k++) {
        int y = k / 2, x = k % 2;
        CHECK_NEAR(img[(1 + y) * 7 + 1 + x], t0[k], 1e-6);
        CHECK_NEAR(img[(1 + y) * 7 + 4 + x], t1[k], 1e-6);
        CHECK_NEAR(img[(4 + y) * 7 + 1 + x], 0.5, 1e-6); /* a constant map */
        CHECK(img[(4 + y) * 7 + 4 + x] == 1.0f);         /* the empty cell */
    }
    char path[512];
    snprintf(path, sizeof path, "%s/grid.png", test_tmpdir());
    CHECK_OK(nerve_png_write_grid(path, maps, 3, 1, 2, 2, 0)); /* cols = ceil(sqrt(3)) = 2 */
    int w, h, ch;
    unsigned char *px = read_png(path, PNG_FORMAT_GRAY, &w, &h, &ch);
    CHECK(px != NULL && w == 7 && h == 7);
    CHECK(px[1 * 7 + 1] == 0 && px[2 * 7 + 2] == 255 && px[1 * 7 + 5] == 255 && px[0] == 255);
    free(px);
    CHECK(nerve_image_grid(maps, 3, 2, 2, 2, 0, NULL, &gh, &gw) == NERVE_ERR_ARG); /* 2 channels */
}
