/* Pictures a person can read (include/nerve.h section 16): an RGB canvas with rectangles and
 * text in a built-in 5x7 pixel font, a diverging blue-white-red colour map, and sheets of
 * tiles scaled up, with gaps, one shared colour scale drawn beside them and a caption. The
 * filter and activation pictures of nerve viz use them (src/apps/viz.c); any later picture
 * (explanations, saliency) can: draw on a canvas, write it with nerve_canvas_write_png. */
#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the font ------------------------------------------------------------------------- */

/* 5x7 glyphs, one byte per row (bit 4 = the leftmost pixel). Lower-case letters are drawn
 * as capitals; a character without a glyph as '?'. */
static const struct {
    char c;
    unsigned char rows[7];
} GLYPHS[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {' ', {0, 0, 0, 0, 0, 0, 0}},                      {'.', {0, 0, 0, 0, 0, 0x0C, 0x0C}},
    {',', {0, 0, 0, 0, 0x0C, 0x04, 0x08}},             {'-', {0, 0, 0, 0x1F, 0, 0, 0}},
    {'+', {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}},       {'_', {0, 0, 0, 0, 0, 0, 0x1F}},
    {':', {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}},          {'/', {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}}, {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'[', {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}}, {']', {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}},
    {'=', {0, 0, 0x1F, 0, 0x1F, 0, 0}},                {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}}, {'\'', {0x04, 0x04, 0x08, 0, 0, 0, 0}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}}, {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04}},    {'*', {0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0}},
};

static const unsigned char *glyph(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof GLYPHS / sizeof GLYPHS[0]; i++)
        if (GLYPHS[i].c == c)
            return GLYPHS[i].rows;
    return glyph('?');
}

int nerve_text_width(const char *text, int scale)
{
    size_t n = text ? strlen(text) : 0;
    return n ? (int)(n * 6 - 1) * (scale > 0 ? scale : 1) : 0;
}

/* ---- the canvas ----------------------------------------------------------------------- */

int nerve_canvas_init(nerve_canvas *c, int w, int h, float grey)
{
    if (!c)
        return nerve_set_error(NERVE_ERR_ARG, "canvas: null canvas");
    memset(c, 0, sizeof *c);
    if (w < 1 || h < 1 || (double)w * h > (double)(1 << 26))
        return nerve_set_error(NERVE_ERR_ARG, "canvas: a %dx%d picture is empty or too large", w, h);
    c->rgb = nerve_xmalloc((size_t)3 * w * h * sizeof(float));
    if (!c->rgb)
        return NERVE_ERR_NOMEM;
    c->w = w;
    c->h = h;
    for (size_t i = 0; i < (size_t)3 * w * h; i++)
        c->rgb[i] = grey;
    return NERVE_OK;
}

void nerve_canvas_free(nerve_canvas *c)
{
    if (!c)
        return;
    nerve_xfree(c->rgb);
    memset(c, 0, sizeof *c);
}

void nerve_canvas_pixel(nerve_canvas *c, int x, int y, const float rgb[3])
{
    if (!c || !c->rgb || x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    size_t plane = (size_t)c->w * c->h, at = (size_t)y * c->w + x;
    for (int k = 0; k < 3; k++)
        c->rgb[k * plane + at] = rgb[k];
}

void nerve_canvas_rect(nerve_canvas *c, int x, int y, int w, int h, const float rgb[3])
{
    for (int yy = y; yy < y + h; yy++)
        for (int xx = x; xx < x + w; xx++)
            nerve_canvas_pixel(c, xx, yy, rgb);
}

int nerve_canvas_text(nerve_canvas *c, int x, int y, const char *text, int scale, const float rgb[3])
{
    if (scale < 1)
        scale = 1;
    for (const char *p = text; p && *p; p++, x += 6 * scale) {
        const unsigned char *g = glyph(*p);
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (g[r] & (0x10 >> b))
                    nerve_canvas_rect(c, x + b * scale, y + r * scale, scale, scale, rgb);
    }
    return nerve_text_width(text, scale);
}

int nerve_canvas_write_png(const nerve_canvas *c, const char *path)
{
    if (!c || !c->rgb || !path)
        return nerve_set_error(NERVE_ERR_ARG, "canvas: nothing to write");
    return nerve_png_write_rgb(path, c->w, c->h, c->rgb);
}

/* ---- colour maps ---------------------------------------------------------------------- */

void nerve_colormap_diverging(float v, float rgb[3])
{
    /* blue (0.13, 0.40, 0.75) at -1, white at 0, red (0.75, 0.13, 0.15) at +1, linear in
     * between: the sign reads as the hue, the magnitude as the saturation */
    static const float neg[3] = {0.13f, 0.40f, 0.75f}, pos[3] = {0.75f, 0.13f, 0.15f};
    if (!(v == v))
        v = 0; /* NaN: white (the caller checks finiteness where it matters) */
    v = v < -1 ? -1 : v > 1 ? 1 : v;
    const float *end = v < 0 ? neg : pos;
    float t = fabsf(v);
    for (int k = 0; k < 3; k++)
        rgb[k] = 1.0f + t * (end[k] - 1.0f);
}

/* ---- sheets of tiles ------------------------------------------------------------------ */

#define MIN_TILE 48   /* a tile is scaled up to at least this many pixels on its longer side */
#define MAX_SIDE 4096 /* ... unless the picture would get wider or taller than this */
#define BAR_W 16      /* the colour bar */
#define TEXT 2        /* text scale: 10x14-pixel characters */
#define MARGIN 8

static const float BLACK[3] = {0, 0, 0}, GAP[3] = {0.55f, 0.55f, 0.55f};

/* "%.3g" without a trailing exponent surprise: the scale's labels. */
static void label(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%+.3g", v);
    if (v == 0)
        snprintf(buf, n, "0");
}

typedef struct layout {
    int scale, gap, cols, rows, tile_w, tile_h, grid_w, grid_h, top, bar_x, w, h, shared, signed_map;
    float lo, hi, m; /* the shared range: [lo, hi], m = max |value| */
} layout;

static int plan(const float *maps, int k, int channels, int h, int w, const nerve_sheet_options *o, layout *L)
{
    memset(L, 0, sizeof *L);
    size_t n = (size_t)k * channels * h * w;
    L->lo = INFINITY;
    L->hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(maps[i]))
            return nerve_set_error(NERVE_ERR_ARG, "sheet: value %zu (tile %zu) is not finite", i,
                                   i / ((size_t)channels * h * w));
        L->lo = fminf(L->lo, maps[i]);
        L->hi = fmaxf(L->hi, maps[i]);
    }
    L->m = fmaxf(fabsf(L->lo), fabsf(L->hi));
    /* one shared scale for gray maps (a colour bar explains it); RGB tiles each to their
     * own range (their colours are the point) */
    L->shared = channels == 1;
    L->signed_map = L->shared && L->lo < 0;
    L->gap = o && o->gap > 0 ? o->gap : 4;
    L->cols = o && o->cols > 0 ? o->cols : (int)ceil(sqrt((double)k));
    if (L->cols > k)
        L->cols = k;
    L->rows = (k + L->cols - 1) / L->cols;
    int longer = h > w ? h : w;
    L->scale = o && o->scale > 0 ? o->scale : (MIN_TILE + longer - 1) / longer;
    while (L->scale > 1 && ((double)L->cols * (w * L->scale + L->gap) > MAX_SIDE ||
                            (double)L->rows * (h * L->scale + L->gap) > MAX_SIDE))
        L->scale--;
    L->tile_w = w * L->scale;
    L->tile_h = h * L->scale;
    double gw = (double)L->cols * (L->tile_w + L->gap) + L->gap, gh = (double)L->rows * (L->tile_h + L->gap) + L->gap;
    if (gw > 4 * MAX_SIDE || gh > 4 * MAX_SIDE)
        return nerve_set_error(NERVE_ERR_ARG, "sheet: %d tiles of %dx%d make a picture too large", k, h, w);
    L->grid_w = (int)gw;
    L->grid_h = (int)gh;
    int caption_h = o && o->caption && o->caption[0] ? 7 * TEXT + 2 * MARGIN : MARGIN;
    L->top = caption_h;
    char lab[32];
    label(lab, sizeof lab, L->signed_map ? -L->m : L->lo);
    int lab_w = nerve_text_width(lab, TEXT);
    label(lab, sizeof lab, L->signed_map ? L->m : L->hi);
    if (nerve_text_width(lab, TEXT) > lab_w)
        lab_w = nerve_text_width(lab, TEXT);
    L->bar_x = MARGIN + L->grid_w + MARGIN;
    L->w = L->shared ? L->bar_x + BAR_W + 4 + lab_w + MARGIN : MARGIN + L->grid_w + MARGIN;
    int cap_w = o && o->caption ? nerve_text_width(o->caption, TEXT) + 2 * MARGIN : 0;
    if (cap_w > L->w)
        L->w = cap_w;
    int bar_h = L->grid_h < 7 * TEXT * 4 ? 7 * TEXT * 4 : L->grid_h;
    L->h = L->top + (bar_h > L->grid_h ? bar_h : L->grid_h) + MARGIN;
    return NERVE_OK;
}

/* The colour of value v under the layout's shared scale. */
static void shade(const layout *L, float v, float rgb[3])
{
    if (L->signed_map) {
        nerve_colormap_diverging(L->m > 0 ? v / L->m : 0, rgb);
        return;
    }
    float t = L->hi > L->lo ? (v - L->lo) / (L->hi - L->lo) : 0.5f;
    rgb[0] = rgb[1] = rgb[2] = t;
}

int nerve_sheet_size(const float *maps, int k, int channels, int h, int w, const nerve_sheet_options *o,
                     int *out_w, int *out_h)
{
    if (!maps || k < 1 || h < 1 || w < 1 || (channels != 1 && channels != 3) || !out_w || !out_h)
        return nerve_set_error(NERVE_ERR_ARG, "sheet: bad arguments (%d maps of [%d, %d, %d])", k, channels, h, w);
    layout L;
    int st = plan(maps, k, channels, h, w, o, &L);
    if (st == NERVE_OK) {
        *out_w = L.w;
        *out_h = L.h;
    }
    return st;
}

int nerve_sheet_draw(nerve_canvas *c, const float *maps, int k, int channels, int h, int w,
                     const nerve_sheet_options *o)
{
    if (!c || !maps || k < 1 || h < 1 || w < 1 || (channels != 1 && channels != 3))
        return nerve_set_error(NERVE_ERR_ARG, "sheet: bad arguments (%d maps of [%d, %d, %d])", k, channels, h, w);
    layout L;
    int st = plan(maps, k, channels, h, w, o, &L);
    if (st)
        return st;
    if ((st = nerve_canvas_init(c, L.w, L.h, 1.0f)) != NERVE_OK)
        return st;
    if (o && o->caption && o->caption[0])
        nerve_canvas_text(c, MARGIN, MARGIN, o->caption, TEXT, BLACK);
    nerve_canvas_rect(c, MARGIN, L.top, L.grid_w, L.grid_h, GAP);
    size_t per = (size_t)channels * h * w;
    for (int t = 0; t < k; t++) {
        const float *map = maps + (size_t)t * per;
        int x0 = MARGIN + L.gap + (t % L.cols) * (L.tile_w + L.gap);
        int y0 = L.top + L.gap + (t / L.cols) * (L.tile_h + L.gap);
        float lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < per && !L.shared; i++) {
            lo = fminf(lo, map[i]);
            hi = fmaxf(hi, map[i]);
        }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float rgb[3];
                if (L.shared)
                    shade(&L, map[(size_t)y * w + x], rgb);
                else
                    for (int k3 = 0; k3 < 3; k3++) {
                        float v = map[((size_t)k3 * h + y) * w + x];
                        rgb[k3] = hi > lo ? (v - lo) / (hi - lo) : 0.5f;
                    }
                nerve_canvas_rect(c, x0 + x * L.scale, y0 + y * L.scale, L.scale, L.scale, rgb);
            }
    }
    if (L.shared) { /* the colour bar: the top is the largest value */
        int bar_h = L.h - L.top - MARGIN;
        float top_v = L.signed_map ? L.m : L.hi, bottom_v = L.signed_map ? -L.m : L.lo;
        for (int y = 0; y < bar_h; y++) {
            float v = top_v + (bottom_v - top_v) * (float)y / (float)(bar_h > 1 ? bar_h - 1 : 1), rgb[3];
            shade(&L, v, rgb);
            nerve_canvas_rect(c, L.bar_x, L.top + y, BAR_W, 1, rgb);
        }
        char lab[32];
        int lx = L.bar_x + BAR_W + 4;
        label(lab, sizeof lab, top_v);
        nerve_canvas_text(c, lx, L.top, lab, TEXT, BLACK);
        label(lab, sizeof lab, bottom_v);
        nerve_canvas_text(c, lx, L.top + bar_h - 7 * TEXT, lab, TEXT, BLACK);
        if (L.signed_map) {
            nerve_canvas_text(c, lx, L.top + bar_h / 2 - 7 * TEXT / 2, "0", TEXT, BLACK);
            nerve_canvas_rect(c, L.bar_x + BAR_W, L.top + bar_h / 2, 3, 1, BLACK);
        }
    }
    return NERVE_OK;
}

int nerve_sheet_write(const char *path, const float *maps, int k, int channels, int h, int w,
                      const nerve_sheet_options *o)
{
    if (!path)
        return nerve_set_error(NERVE_ERR_ARG, "sheet: null path");
    nerve_canvas c;
    int st = nerve_sheet_draw(&c, maps, k, channels, h, w, o);
    if (st == NERVE_OK)
        st = nerve_canvas_write_png(&c, path);
    nerve_canvas_free(&c);
    return st;
}

/* ---- captioned tiles ------------------------------------------------------------------ */

/* The widest line of a caption ('\n' separates lines) and its line count. */
static int caption_size(const char *s, int *lines)
{
    int best = 0, cur = 0;
    *lines = s && *s ? 1 : 0;
    for (const char *p = s; p && *p; p++) {
        if (*p == '\n') {
            (*lines)++;
            cur = 0;
        } else if (++cur > best)
            best = cur;
    }
    return best ? best * 6 - 1 : 0;
}

int nerve_tiles_write(const char *path, const float *images, int n, int channels, int h, int w,
                      const char *const *captions, const nerve_tiles_options *o)
{
    if (!path || !images || n < 1 || (channels != 1 && channels != 3) || h < 1 || w < 1)
        return nerve_set_error(NERVE_ERR_ARG, "tiles: nothing to draw (or not 1 or 3 channels)");
    size_t d = (size_t)channels * h * w;
    for (size_t i = 0; i < (size_t)n * d; i++)
        if (!isfinite(images[i]))
            return nerve_set_error(NERVE_ERR_NUMERIC, "tiles: value %zu (tile %zu) is not finite", i % d, i / d);
    int cols = o && o->cols > 0 ? (o->cols < n ? o->cols : n) : n;
    int rows = (n + cols - 1) / cols, longer = h > w ? h : w;
    int min_side = o && o->min_side > 0 ? o->min_side : 84;
    int scale = (min_side + longer - 1) / longer;
    while (scale > 1 && (double)cols * w * scale > MAX_SIDE)
        scale--;
    int cell_w = w * scale, lines = 0, gap = 6;
    for (int i = 0; captions && i < n; i++) {
        int l, cw = caption_size(captions[i], &l);
        cell_w = cw > cell_w ? cw : cell_w;
        lines = l > lines ? l : lines;
    }
    int title_lines = 0, title_w = caption_size(o ? o->title : NULL, &title_lines);
    int cap_h = lines * 10, top = gap + title_lines * 10;
    int row_h = h * scale + cap_h + gap;
    int width = gap + cols * (cell_w + gap);
    width = title_w + 2 * gap > width ? title_w + 2 * gap : width;
    nerve_canvas cv;
    int st = nerve_canvas_init(&cv, width, top + rows * row_h, 1.0f);
    if (st)
        return st;
    static const float INK[3] = {0.1f, 0.1f, 0.1f};
    /* text, line by line */
    const char *title = o ? o->title : NULL;
    for (int l = 0; title && *title; l++) {
        char buf[256];
        size_t len = strcspn(title, "\n");
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 255 ? len : 255), title);
        nerve_canvas_text(&cv, gap, gap + l * 10, buf, 1, INK);
        title += len + (title[len] == '\n');
    }
    for (int i = 0; i < n; i++) {
        const float *img = images + (size_t)i * d;
        float lo = o ? o->lo : 0, hi = o ? o->hi : 0;
        if (!(lo < hi)) { /* each tile to its own range */
            lo = hi = img[0];
            for (size_t p = 1; p < d; p++) {
                lo = fminf(lo, img[p]);
                hi = fmaxf(hi, img[p]);
            }
        }
        float s = hi > lo ? 1.0f / (hi - lo) : 0.0f;
        int x0 = gap + (i % cols) * (cell_w + gap), y0 = top + (i / cols) * row_h;
        const char *cap = captions ? captions[i] : NULL;
        for (int l = 0; cap && *cap; l++) {
            char buf[256];
            size_t len = strcspn(cap, "\n");
            snprintf(buf, sizeof buf, "%.*s", (int)(len < 255 ? len : 255), cap);
            nerve_canvas_text(&cv, x0, y0 + l * 10, buf, 1, INK);
            cap += len + (cap[len] == '\n');
        }
        size_t plane = (size_t)h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float rgb[3];
                for (int k = 0; k < 3; k++) {
                    float v = (img[(size_t)(channels == 3 ? k : 0) * plane + (size_t)y * w + x] - lo) * s;
                    rgb[k] = v < 0 ? 0 : v > 1 ? 1 : v;
                }
                nerve_canvas_rect(&cv, x0 + x * scale, y0 + cap_h + y * scale, scale, scale, rgb);
            }
    }
    st = nerve_canvas_write_png(&cv, path);
    nerve_canvas_free(&cv);
    return st;
}
