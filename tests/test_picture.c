/* Pictures a person can read (src/io/picture.c): the colour map, the font, and sheets of
 * tiles with their scale, gaps, colour bar and caption. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const float *at(const nerve_canvas *c, int x, int y, float rgb[3])
{
    size_t plane = (size_t)c->w * c->h, i = (size_t)y * c->w + x;
    for (int k = 0; k < 3; k++)
        rgb[k] = c->rgb[k * plane + i];
    return rgb;
}

static int same(const float a[3], const float b[3])
{
    return fabsf(a[0] - b[0]) < 1e-6f && fabsf(a[1] - b[1]) < 1e-6f && fabsf(a[2] - b[2]) < 1e-6f;
}

TEST(diverging_colormap_is_blue_white_red_and_clamped)
{
    float lo[3], mid[3], hi[3], beyond[3], half[3];
    nerve_colormap_diverging(-1, lo);
    nerve_colormap_diverging(0, mid);
    nerve_colormap_diverging(1, hi);
    nerve_colormap_diverging(7, beyond);
    nerve_colormap_diverging(0.5f, half);
    CHECK(lo[2] > lo[0] && lo[2] > lo[1]); /* blue */
    CHECK(hi[0] > hi[1] && hi[0] > hi[2]); /* red */
    CHECK(mid[0] == 1 && mid[1] == 1 && mid[2] == 1);
    CHECK(same(beyond, hi));
    for (int k = 0; k < 3; k++)
        CHECK_NEAR(half[k], (1 + hi[k]) / 2, 1e-6);
}

TEST(canvas_text_draws_the_font_glyphs)
{
    CHECK(nerve_text_width("AB", 1) == 11 && nerve_text_width("AB", 3) == 33 && nerve_text_width("", 2) == 0);
    nerve_canvas c;
    CHECK_OK(nerve_canvas_init(&c, 14, 9, 1.0f));
    static const float black[3] = {0, 0, 0};
    CHECK(nerve_canvas_text(&c, 1, 1, "1l", 1, black) == 11);
    float p[3];
    /* '1' rows 0x04,0x0C,...,0x0E: its column 2 is set on every row, column 0 never */
    for (int r = 0; r < 7; r++) {
        CHECK(at(&c, 1 + 2, 1 + r, p)[0] == 0);
        CHECK(at(&c, 1 + 0, 1 + r, p)[0] == 1);
    }
    /* 'l' is drawn as 'L': its left column set, its last row full */
    for (int r = 0; r < 7; r++)
        CHECK(at(&c, 7, 1 + r, p)[0] == 0);
    for (int b = 0; b < 5; b++)
        CHECK(at(&c, 7 + b, 7, p)[0] == 0);
    nerve_canvas_rect(&c, 12, 7, 10, 10, black); /* clipped at the edge */
    CHECK(at(&c, 13, 8, p)[0] == 0);
    nerve_canvas_free(&c);
    CHECK(nerve_canvas_init(&c, 0, 5, 1.0f) == NERVE_ERR_ARG);
}

TEST(sheet_scales_tiles_shares_one_signed_scale_and_draws_its_bar)
{
    /* two 2x2 maps; the largest |value| is 2, so -2 is full blue and +2 full red */
    const float maps[8] = {-2, 0, 1, 2, 0.5f, -1, 0, 0};
    nerve_sheet_options o = {10, 4, 0, "conv1 weights"};
    int w, h;
    CHECK_OK(nerve_sheet_size(maps, 2, 1, 2, 2, &o, &w, &h));
    nerve_canvas c;
    CHECK_OK(nerve_sheet_draw(&c, maps, 2, 1, 2, 2, &o));
    CHECK(c.w == w && c.h == h);
    /* layout: caption band of 7*2 + 2*8 = 30 rows, then the grid at x = 8 with 4-pixel
     * gaps: tile t starts at (8 + 4 + t*(20 + 4), 30 + 4) and each value is 10x10 */
    float p[3], want[3], gap[3] = {0.55f, 0.55f, 0.55f};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 4; i++) {
            int x = 12 + t * 24 + (i % 2) * 10 + 5, y = 34 + (i / 2) * 10 + 5;
            nerve_colormap_diverging(maps[t * 4 + i] / 2, want);
            CHECK_MSG(same(at(&c, x, y, p), want), "tile %d value %d: (%g %g %g)", t, i, p[0], p[1], p[2]);
        }
    CHECK(same(at(&c, 10, 40, p), gap) && same(at(&c, 34, 40, p), gap)); /* the gaps */
    CHECK(w >= 8 + 52 + 8 + 16); /* the grid (2*20 + 3*4) and the colour bar */
    /* the colour bar beside the grid: red at its top, blue at its bottom */
    int bar_x = 8 + 52 + 8 + 8;
    nerve_colormap_diverging(1, want);
    CHECK(same(at(&c, bar_x, 30, p), want));
    nerve_colormap_diverging(-1, want);
    CHECK(same(at(&c, bar_x, h - 9, p), want));
    /* the caption is drawn: some black pixel in the band */
    int ink = 0;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < w; x++)
            ink += at(&c, x, y, p)[0] == 0;
    CHECK(ink > 20);
    nerve_canvas_free(&c);
    /* a value that is not finite is refused, naming its tile */
    const float bad[8] = {0, 0, 0, 0, 0, NAN, 0, 0};
    CHECK(nerve_sheet_draw(&c, bad, 2, 1, 2, 2, &o) == NERVE_ERR_ARG && strstr(nerve_last_error(), "tile 1"));
}

TEST(sheet_default_scale_makes_tiles_readable)
{
    /* 6 LeNet-sized 5x5 filters: one pixel each would be 5 pixels; scaled to >= 48 */
    float maps[6 * 25];
    for (int i = 0; i < 150; i++)
        maps[i] = test_pseudo((size_t)i, 1);
    int w, h;
    CHECK_OK(nerve_sheet_size(maps, 6, 1, 5, 5, NULL, &w, &h));
    CHECK_MSG(w >= 3 * 50 && h >= 2 * 50, "a %dx%d sheet", w, h);
    char path[600];
    snprintf(path, sizeof path, "%s/s.png", test_tmpdir());
    CHECK_OK(nerve_sheet_write(path, maps, 6, 1, 5, 5, NULL));
    nerve_image im;
    CHECK_OK(nerve_image_load(path, 3, &im));
    CHECK(im.w == w && im.h == h);
    nerve_image_free(&im);
}
