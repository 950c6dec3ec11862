/* Data augmentation: random transforms of image batches [B, C, H, W], in place.
 *
 * Each transform exists twice: a deterministic primitive with explicit parameters
 * (nerve_aug_*, what the tests check by hand) and a random draw of those parameters inside
 * nerve_augment_apply. Every random number comes from the generator passed in, drawn in a
 * fixed order per image, so one generator state gives one batch, bit for bit (the training
 * loop seeds it from (seed, epoch, batch) so that resumed runs replay it). See
 * docs/augment.md. */
#include "augment.h"

#include "../core/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned bit;
} transforms[] = {
    {"crop", NERVE_AUG_CROP},           {"flip", NERVE_AUG_FLIP},
    {"translate", NERVE_AUG_TRANSLATE}, {"rotate", NERVE_AUG_ROTATE},
    {"rescale", NERVE_AUG_RESCALE},     {"noise", NERVE_AUG_NOISE},
    {"cutout", NERVE_AUG_CUTOUT},       {"brightness", NERVE_AUG_BRIGHTNESS},
    {"contrast", NERVE_AUG_CONTRAST},   {"pca", NERVE_AUG_PCA},
    {"elastic", NERVE_AUG_ELASTIC},
};

#define TRANSFORM_NAMES                                                                      \
    "crop, flip, translate, rotate, rescale, noise, cutout, brightness, contrast, pca, "    \
    "elastic"

nerve_augment nerve_augment_default(void)
{
    nerve_augment a;
    memset(&a, 0, sizeof a);
    a.crop_pad = 4;
    a.flip = 0.5f;
    a.translate = 2;
    a.rotate = 10.0f;
    a.scale_min = 0.9f;
    a.scale_max = 1.1f;
    a.noise = 0.05f;
    a.cutout = 8;
    a.brightness = 0.2f;
    a.contrast = 0.2f;
    a.pca = 0.1f;
    a.elastic_alpha = 34.0f;
    a.elastic_sigma = 4.0f;
    a.saturation = 1.0f;
    a.exposure = 1.0f;
    a.aspect = 1.0f;
    return a;
}

const char *nerve_augment_name(unsigned bit)
{
    for (size_t i = 0; i < NERVE_ARRAY_LEN(transforms); i++)
        if (transforms[i].bit == bit)
            return transforms[i].name;
    return NULL;
}

/* One name of a comma-separated list, [a, b) with surrounding spaces trimmed. */
static int parse_one(const char *a, const char *b, nerve_augment *out)
{
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    for (size_t i = 0; i < NERVE_ARRAY_LEN(transforms); i++)
        if (strlen(transforms[i].name) == (size_t)(b - a) &&
            strncmp(transforms[i].name, a, (size_t)(b - a)) == 0) {
            out->on |= transforms[i].bit;
            return NERVE_OK;
        }
    return nerve_set_error(NERVE_ERR_ARG, "unknown augmentation '%.*s'; expected one of: %s",
                           (int)(b - a > 40 ? 40 : b - a), a, TRANSFORM_NAMES);
}

int nerve_augment_parse(const char *list, nerve_augment *out)
{
    if (!list || !out)
        return nerve_set_error(NERVE_ERR_ARG, "augment_parse: null argument");
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        int st = parse_one(p, end, out);
        if (st)
            return st;
        if (!comma)
            return NERVE_OK;
        p = comma + 1;
    }
}

void nerve_augment_seed(nerve_rng *r, uint64_t seed, int epoch, int batch)
{
    /* distinct odd multipliers keep (seed, epoch, batch) triples from colliding in practice;
     * nerve_rng_seed then scrambles the sum */
    uint64_t s = seed * 0xD1B54A32D192ED03ull + (uint64_t)(uint32_t)epoch * 0x9E3779B97F4A7C15ull +
                 (uint64_t)(uint32_t)batch * 0xA0761D6478BD642Full + 0x5851F42D4C957F2Dull;
    nerve_rng_seed(r, s);
}

size_t nerve_augment_scratch(int c, int h, int w, int mask_c)
{
    size_t plane = (size_t)h * (size_t)w;
    int planes = c > mask_c ? c : mask_c;
    int side = h > w ? h : w;
    /* a copy of the image (or mask), two displacement fields and a temporary field, and a
     * Gaussian kernel of at most 2 * side + 1 taps */
    return ((size_t)planes + 3) * plane + 2 * (size_t)side + 1;
}

/* ---- geometric primitives ------------------------------------------------------------ */

void nerve_aug_flip(float *x, int c, int h, int w)
{
    for (int r = 0; r < c * h; r++) {
        float *row = x + (size_t)r * w;
        for (int i = 0, j = w - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

/* Shifts one plane by (dy, dx) in place, zero fill: iterating away from the direction of
 * motion reads each source before it is overwritten. */
static void shift_plane(float *p, int h, int w, int dy, int dx)
{
    for (int yi = 0; yi < h; yi++) {
        int y = dy > 0 ? h - 1 - yi : yi;
        for (int xi = 0; xi < w; xi++) {
            int xx = dx > 0 ? w - 1 - xi : xi;
            int sy = y - dy, sx = xx - dx;
            p[(size_t)y * w + xx] =
                sy >= 0 && sy < h && sx >= 0 && sx < w ? p[(size_t)sy * w + sx] : 0.0f;
        }
    }
}

void nerve_aug_shift(float *x, int c, int h, int w, int dy, int dx)
{
    if (dy == 0 && dx == 0)
        return;
    for (int k = 0; k < c; k++)
        shift_plane(x + (size_t)k * h * w, h, w, dy, dx);
}

/* Bilinear sample of a plane at (sy, sx); neighbours outside the plane count as 0. */
static float bilinear_zero(const float *p, int h, int w, float sy, float sx)
{
    float fy0 = floorf(sy), fx0 = floorf(sx);
    int y0 = (int)fy0, x0 = (int)fx0;
    float ay = sy - fy0, ax = sx - fx0;
    float v = 0.0f;
    for (int dy = 0; dy < 2; dy++) {
        int y = y0 + dy;
        if (y < 0 || y >= h)
            continue;
        float wy = dy ? ay : 1.0f - ay;
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx;
            if (xx < 0 || xx >= w)
                continue;
            v += wy * (dx ? ax : 1.0f - ax) * p[(size_t)y * w + xx];
        }
    }
    return v;
}

static float nearest_zero(const float *p, int h, int w, float sy, float sx)
{
    int y = (int)floorf(sy + 0.5f), xx = (int)floorf(sx + 0.5f);
    return y >= 0 && y < h && xx >= 0 && xx < w ? p[(size_t)y * w + xx] : 0.0f;
}

void nerve_aug_rotate_scale(float *x, int c, int h, int w, float degrees, float scale, int nearest,
                            float *scratch)
{
    /* output pixel p samples the input at centre + R(-theta) (p - centre) / scale */
    double th = (double)degrees * 3.14159265358979323846 / 180.0;
    float cs = (float)(cos(th) / scale), sn = (float)(sin(th) / scale);
    float cy = 0.5f * (float)(h - 1), cx = 0.5f * (float)(w - 1);
    size_t plane = (size_t)h * w;
    for (int k = 0; k < c; k++) {
        float *p = x + (size_t)k * plane;
        memcpy(scratch, p, plane * sizeof(float));
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                float u = (float)xx - cx, v = (float)y - cy;
                float sx = cx + u * cs - v * sn, sy = cy + u * sn + v * cs;
                p[(size_t)y * w + xx] = nearest ? nearest_zero(scratch, h, w, sy, sx)
                                                : bilinear_zero(scratch, h, w, sy, sx);
            }
    }
}

/* ---- elastic deformation -------------------------------------------------------------- */

/* Separable Gaussian blur of a field [h, w] in place (edges clamped); tmp: h*w floats,
 * kernel: 2 * radius + 1 floats. */
static void gaussian_blur(float *f, float *tmp, float *kernel, int h, int w, float sigma)
{
    int side = h > w ? h : w;
    int r = (int)ceilf(3.0f * sigma);
    if (r > side)
        r = side;
    double sum = 0;
    for (int i = -r; i <= r; i++)
        sum += kernel[i + r] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++)
        kernel[i] = (float)(kernel[i] / sum);
    for (int y = 0; y < h; y++) /* rows into tmp */
        for (int xx = 0; xx < w; xx++) {
            float acc = 0;
            for (int i = -r; i <= r; i++) {
                int s = xx + i < 0 ? 0 : xx + i >= w ? w - 1 : xx + i;
                acc += kernel[i + r] * f[(size_t)y * w + s];
            }
            tmp[(size_t)y * w + xx] = acc;
        }
    for (int y = 0; y < h; y++) /* columns back into f */
        for (int xx = 0; xx < w; xx++) {
            float acc = 0;
            for (int i = -r; i <= r; i++) {
                int s = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                acc += kernel[i + r] * tmp[(size_t)s * w + xx];
            }
            f[(size_t)y * w + xx] = acc;
        }
}

/* Samples planes at (y + fy, x + fx) with the coordinates clamped to the image (so the
 * border is repeated rather than black): bilinear, or nearest for label masks. Clamping
 * the coordinate before either rule keeps them consistent: the nearest pixel is always one
 * of the bilinear neighbours, with weight >= 1/4. */
static void warp_planes(float *x, int planes, int h, int w, const float *fy, const float *fx,
                        int nearest, float *copy)
{
    size_t plane = (size_t)h * w;
    memcpy(copy, x, (size_t)planes * plane * sizeof(float));
    for (size_t i = 0; i < plane; i++) {
        int y = (int)(i / (size_t)w), xx = (int)(i % (size_t)w);
        float sy = fminf(fmaxf((float)y + fy[i], 0.0f), (float)(h - 1));
        float sx = fminf(fmaxf((float)xx + fx[i], 0.0f), (float)(w - 1));
        for (int k = 0; k < planes; k++) {
            const float *src = copy + (size_t)k * plane;
            x[(size_t)k * plane + i] = nearest ? nearest_zero(src, h, w, sy, sx)
                                               : bilinear_zero(src, h, w, sy, sx);
        }
    }
}

void nerve_aug_elastic(float *x, int c, float *mask, int mask_c, int h, int w, float alpha,
                       float sigma, nerve_rng *rng, float *scratch)
{
    size_t plane = (size_t)h * w;
    float *fy = scratch, *fx = fy + plane, *tmp = fx + plane, *kernel = tmp + plane;
    float *copy = kernel + 2 * (size_t)(h > w ? h : w) + 1;
    for (size_t i = 0; i < plane; i++) {
        fy[i] = 2.0f * nerve_rng_uniform(rng) - 1.0f;
        fx[i] = 2.0f * nerve_rng_uniform(rng) - 1.0f;
    }
    gaussian_blur(fy, tmp, kernel, h, w, sigma);
    gaussian_blur(fx, tmp, kernel, h, w, sigma);
    for (size_t i = 0; i < plane; i++) {
        fy[i] *= alpha;
        fx[i] *= alpha;
    }
    warp_planes(x, c, h, w, fy, fx, 0, copy);
    if (mask)
        warp_planes(mask, mask_c, h, w, fy, fx, 1, copy);
}

/* ---- photometric primitives ----------------------------------------------------------- */

void nerve_aug_noise(float *x, size_t n, float sigma, nerve_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] += sigma * nerve_rng_normal(rng);
}

void nerve_aug_cutout(float *x, int c, int h, int w, int y0, int x0, int size)
{
    for (int k = 0; k < c; k++)
        for (int y = y0 < 0 ? 0 : y0; y < y0 + size && y < h; y++)
            for (int xx = x0 < 0 ? 0 : x0; xx < x0 + size && xx < w; xx++)
                x[((size_t)k * h + y) * w + xx] = 0.0f;
}

void nerve_aug_brightness_contrast(float *x, int c, int h, int w, float brightness, float contrast)
{
    size_t n = (size_t)c * h * w;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    float m = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++)
        x[i] = (x[i] - m) * contrast + m + brightness;
}

void nerve_aug_pca_colour(float *x, int h, int w, const float eigval[3], const float eigvec[3][3],
                          const float alpha[3])
{
    size_t plane = (size_t)h * w;
    for (int ch = 0; ch < 3; ch++) {
        float add = 0;
        for (int i = 0; i < 3; i++)
            add += alpha[i] * eigval[i] * eigvec[i][ch];
        for (size_t p = 0; p < plane; p++)
            x[ch * plane + p] += add;
    }
}

/* ---- PCA colour statistics ------------------------------------------------------------ */

/* One Jacobi rotation zeroing a[p][q], accumulated into v (columns are eigenvectors). */
static void jacobi_rotate(double a[3][3], double v[3][3], int p, int q)
{
    if (a[p][q] == 0.0)
        return;
    double theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
    double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
    double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
    for (int k = 0; k < 3; k++) { /* a <- J^T a J */
        double akp = a[k][p], akq = a[k][q];
        a[k][p] = c * akp - s * akq;
        a[k][q] = s * akp + c * akq;
    }
    for (int k = 0; k < 3; k++) {
        double apk = a[p][k], aqk = a[q][k];
        a[p][k] = c * apk - s * aqk;
        a[q][k] = s * apk + c * aqk;
    }
    for (int k = 0; k < 3; k++) {
        double vkp = v[k][p], vkq = v[k][q];
        v[k][p] = c * vkp - s * vkq;
        v[k][q] = s * vkp + c * vkq;
    }
}

void nerve_eigen_sym3(const double m[3][3], float eigval[3], float eigvec[3][3])
{
    double a[3][3], v[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    memcpy(a, m, sizeof a);
    for (int sweep = 0; sweep < 50; sweep++) {
        double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
        double scale = fabs(a[0][0]) + fabs(a[1][1]) + fabs(a[2][2]);
        if (off <= 1e-15 * (scale > 0 ? scale : 1.0))
            break;
        jacobi_rotate(a, v, 0, 1);
        jacobi_rotate(a, v, 0, 2);
        jacobi_rotate(a, v, 1, 2);
    }
    int order[3] = {0, 1, 2}; /* descending eigenvalues */
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (a[order[j]][order[j]] > a[order[i]][order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    for (int i = 0; i < 3; i++) {
        eigval[i] = (float)a[order[i]][order[i]];
        for (int k = 0; k < 3; k++)
            eigvec[i][k] = (float)v[k][order[i]];
    }
}

int nerve_pca_colour_fit(const nerve_dataset *d, float eigval[3], float eigvec[3][3])
{
    if (!d || !eigval || !eigvec || !d->x)
        return nerve_set_error(NERVE_ERR_ARG, "pca_colour_fit: null argument");
    if (d->ndim != 3 || d->dims[0] != 3 || d->n < 1)
        return nerve_set_error(NERVE_ERR_SHAPE, "pca_colour_fit: needs RGB images [3, H, W]; the "
                               "data set has %d samples with %d dimensions (%d channels)",
                               d->n, d->ndim, d->ndim > 0 ? d->dims[0] : 0);
    size_t plane = (size_t)d->dims[1] * d->dims[2];
    double sum[3] = {0}, prod[3][3] = {{0}};
    for (int s = 0; s < d->n; s++) {
        const float *img = d->x + (size_t)s * d->sample_numel;
        for (size_t p = 0; p < plane; p++) {
            double rgb[3] = {img[p], img[plane + p], img[2 * plane + p]};
            for (int i = 0; i < 3; i++) {
                sum[i] += rgb[i];
                for (int j = 0; j < 3; j++)
                    prod[i][j] += rgb[i] * rgb[j];
            }
        }
    }
    double count = (double)plane * d->n, cov[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            cov[i][j] = prod[i][j] / count - (sum[i] / count) * (sum[j] / count);
    nerve_eigen_sym3(cov, eigval, eigvec);
    return NERVE_OK;
}

/* ---- darknet's transforms (src/image.c there: distort_image, rotate_crop_image) -------- */

void nerve_aug_hsv(float *x, int h, int w, float dhue, float dsat, float dexp)
{
    size_t plane = (size_t)h * w;
    float *R = x, *G = x + plane, *B = x + 2 * plane;
    for (size_t i = 0; i < plane; i++) {
        float r = R[i], g = G[i], b = B[i];
        float max = r > g ? (r > b ? r : b) : (g > b ? g : b);
        float min = r < g ? (r < b ? r : b) : (g < b ? g : b);
        float delta = max - min, hh = 0, ss = 0, v = max;
        if (max != 0) {
            ss = delta / max;
            if (r == max)
                hh = (g - b) / delta;
            else if (g == max)
                hh = 2 + (b - r) / delta;
            else
                hh = 4 + (r - g) / delta;
            if (hh < 0)
                hh += 6;
            hh /= 6;
        }
        if (delta == 0)
            hh = 0, ss = 0; /* grey: darknet's h, s of 0 */
        ss *= dsat;
        v *= dexp;
        hh += dhue;
        if (hh > 1)
            hh -= 1;
        if (hh < 0)
            hh += 1;
        /* hsv_to_rgb */
        hh *= 6;
        if (ss == 0) {
            r = g = b = v;
        } else {
            int idx = (int)floorf(hh);
            float f = hh - (float)idx, p = v * (1 - ss), q = v * (1 - ss * f),
                  t = v * (1 - ss * (1 - f));
            switch (idx) {
            case 0: r = v, g = t, b = p; break;
            case 1: r = q, g = v, b = p; break;
            case 2: r = p, g = v, b = t; break;
            case 3: r = p, g = q, b = v; break;
            case 4: r = t, g = p, b = v; break;
            default: r = v, g = p, b = q; break;
            }
        }
        R[i] = r < 0 ? 0 : r > 1 ? 1 : r;
        G[i] = g < 0 ? 0 : g > 1 ? 1 : g;
        B[i] = b < 0 ? 0 : b > 1 ? 1 : b;
    }
}

static float pixel_or_zero(const float *p, int h, int w, int y, int x)
{
    return x < 0 || x >= w || y < 0 || y >= h ? 0.0f : p[(size_t)y * w + x];
}

void nerve_aug_darknet_crop(float *x, int c, int h, int w, float rad, float scale, float dx,
                            float dy, float aspect, int nearest, float *scratch)
{
    size_t plane = (size_t)h * w;
    memcpy(scratch, x, (size_t)c * plane * sizeof *x);
    float cs = cosf(rad), sn = sinf(rad), cx = w / 2.0f, cy = h / 2.0f;
    for (int k = 0; k < c; k++) {
        const float *src = scratch + (size_t)k * plane;
        float *dst = x + (size_t)k * plane;
        for (int Y = 0; Y < h; Y++)
            for (int X = 0; X < w; X++) {
                float u = (X - w / 2.0f) / scale * aspect + dx / scale * aspect;
                float v = (Y - h / 2.0f) / scale + dy / scale;
                float rx = cs * u - sn * v + cx, ry = sn * u + cs * v + cy;
                float val;
                if (nearest) {
                    val = pixel_or_zero(src, h, w, (int)floorf(ry + 0.5f), (int)floorf(rx + 0.5f));
                } else {
                    int ix = (int)floorf(rx), iy = (int)floorf(ry);
                    float fx = rx - ix, fy = ry - iy;
                    val = (1 - fy) * (1 - fx) * pixel_or_zero(src, h, w, iy, ix) +
                          fy * (1 - fx) * pixel_or_zero(src, h, w, iy + 1, ix) +
                          (1 - fy) * fx * pixel_or_zero(src, h, w, iy, ix + 1) +
                          fy * fx * pixel_or_zero(src, h, w, iy + 1, ix + 1);
                }
                dst[(size_t)Y * w + X] = val;
            }
    }
}

/* darknet's rand_scale: U(1, s), or its reciprocal with probability 1/2. */
static float rand_scale(nerve_rng *r, float s)
{
    float v = 1.0f + (s - 1.0f) * nerve_rng_uniform(r);
    return nerve_rng_uniform(r) < 0.5f ? v : 1.0f / v;
}

/* ---- the random pipeline -------------------------------------------------------------- */

static float uniform_pm(nerve_rng *r, float a) { return (2.0f * nerve_rng_uniform(r) - 1.0f) * a; }

static int check_apply(const nerve_augment *a, int c, int h, int w, int mask_c)
{
    if (c < 1 || h < 1 || w < 1 || mask_c < 0)
        return nerve_set_error(NERVE_ERR_ARG, "augment: bad image shape [%d, %d, %d]", c, h, w);
    if ((a->on & NERVE_AUG_HSV) && c != 3)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "augment: hue/saturation/exposure need RGB images, got %d channels", c);
    if ((a->on & NERVE_AUG_DARKNET_CROP) && !(a->min_crop >= 1 && a->max_crop >= a->min_crop))
        return nerve_set_error(NERVE_ERR_ARG, "augment: expected 1 <= min_crop <= max_crop");
    if ((a->on & NERVE_AUG_PCA) && c != 3)
        return nerve_set_error(NERVE_ERR_SHAPE,
                               "augment: pca colour augmentation needs RGB images, got %d channels", c);
    if ((a->on & NERVE_AUG_PCA) && !a->pca_fitted)
        return nerve_set_error(NERVE_ERR_STATE, "augment: pca colour augmentation needs the eigen-"
                               "decomposition of the data (nerve_pca_colour_fit)");
    if ((a->on & NERVE_AUG_ELASTIC) && !(a->elastic_sigma > 0))
        return nerve_set_error(NERVE_ERR_ARG, "augment: elastic sigma must be > 0");
    if ((a->on & NERVE_AUG_RESCALE) && !(a->scale_min > 0 && a->scale_max >= a->scale_min))
        return nerve_set_error(NERVE_ERR_ARG, "augment: rescale range must be 0 < min <= max");
    return NERVE_OK;
}

/* Geometric transforms of one image and its mask, in the documented order. */
static void geometric(const nerve_augment *a, float *x, float *m, int c, int mc, int h, int w,
                      nerve_rng *rng, float *scratch)
{
    if (a->on & NERVE_AUG_CROP) {
        int p = a->crop_pad;
        int dy = p - (int)nerve_rng_below(rng, (uint32_t)(2 * p + 1));
        int dx = p - (int)nerve_rng_below(rng, (uint32_t)(2 * p + 1));
        nerve_aug_shift(x, c, h, w, dy, dx);
        if (m)
            nerve_aug_shift(m, mc, h, w, dy, dx);
    }
    if ((a->on & NERVE_AUG_FLIP) && nerve_rng_uniform(rng) < a->flip) {
        nerve_aug_flip(x, c, h, w);
        if (m)
            nerve_aug_flip(m, mc, h, w);
    }
    if (a->on & NERVE_AUG_TRANSLATE) {
        int t = a->translate;
        int dy = (int)nerve_rng_below(rng, (uint32_t)(2 * t + 1)) - t;
        int dx = (int)nerve_rng_below(rng, (uint32_t)(2 * t + 1)) - t;
        nerve_aug_shift(x, c, h, w, dy, dx);
        if (m)
            nerve_aug_shift(m, mc, h, w, dy, dx);
    }
    if (a->on & (NERVE_AUG_ROTATE | NERVE_AUG_RESCALE)) {
        /* one resampling for both, so the image is blurred once */
        float deg = a->on & NERVE_AUG_ROTATE ? uniform_pm(rng, a->rotate) : 0.0f;
        float s = a->on & NERVE_AUG_RESCALE
                      ? a->scale_min + (a->scale_max - a->scale_min) * nerve_rng_uniform(rng)
                      : 1.0f;
        nerve_aug_rotate_scale(x, c, h, w, deg, s, 0, scratch);
        if (m)
            nerve_aug_rotate_scale(m, mc, h, w, deg, s, 1, scratch);
    }
    if (a->on & NERVE_AUG_ELASTIC)
        nerve_aug_elastic(x, c, m, mc, h, w, a->elastic_alpha, a->elastic_sigma, rng, scratch);
    if (a->on & NERVE_AUG_DARKNET_CROP) { /* darknet's random_augment_image */
        float aspect = rand_scale(rng, a->aspect);
        int lo = a->min_crop, hi = a->max_crop;
        int r = lo + (int)nerve_rng_below(rng, (uint32_t)(hi - lo + 1));
        float side = (float)h < w * aspect ? (float)h : w * aspect;
        float scale = (float)r / side;
        float rad = uniform_pm(rng, a->angle) * 3.14159265358979f / 180.0f;
        float dx = uniform_pm(rng, (w * scale / aspect - w) / 2.0f);
        float dy = uniform_pm(rng, (h * scale - h) / 2.0f);
        nerve_aug_darknet_crop(x, c, h, w, rad, scale, dx, dy, aspect, 0, scratch);
        if (m)
            nerve_aug_darknet_crop(m, mc, h, w, rad, scale, dx, dy, aspect, 1, scratch);
    }
}

/* Photometric transforms of one image (never of the mask). */
static void photometric(const nerve_augment *a, float *x, int c, int h, int w, nerve_rng *rng)
{
    if (a->on & (NERVE_AUG_BRIGHTNESS | NERVE_AUG_CONTRAST)) {
        float b = a->on & NERVE_AUG_BRIGHTNESS ? uniform_pm(rng, a->brightness) : 0.0f;
        float k = a->on & NERVE_AUG_CONTRAST ? 1.0f + uniform_pm(rng, a->contrast) : 1.0f;
        nerve_aug_brightness_contrast(x, c, h, w, b, k);
    }
    if (a->on & NERVE_AUG_PCA) {
        float alpha[3];
        for (int i = 0; i < 3; i++)
            alpha[i] = a->pca * nerve_rng_normal(rng);
        nerve_aug_pca_colour(x, h, w, a->pca_eigval, a->pca_eigvec, alpha);
    }
    if (a->on & NERVE_AUG_HSV) { /* darknet's random_distort_image */
        float dhue = uniform_pm(rng, a->hue);
        float dsat = rand_scale(rng, a->saturation);
        float dexp = rand_scale(rng, a->exposure);
        nerve_aug_hsv(x, h, w, dhue, dsat, dexp);
    }
    if (a->on & NERVE_AUG_NOISE)
        nerve_aug_noise(x, (size_t)c * h * w, a->noise, rng);
    if (a->on & NERVE_AUG_CUTOUT) {
        int s = a->cutout < h ? a->cutout : h;
        s = s < w ? s : w;
        int y0 = (int)nerve_rng_below(rng, (uint32_t)(h - s + 1));
        int x0 = (int)nerve_rng_below(rng, (uint32_t)(w - s + 1));
        nerve_aug_cutout(x, c, h, w, y0, x0, s);
    }
}

int nerve_augment_apply(const nerve_augment *a, float *x, float *mask, int n, int c, int h, int w,
                        int mask_c, nerve_rng *rng, float *scratch)
{
    if (!a || !x || !rng || n < 0)
        return nerve_set_error(NERVE_ERR_ARG, "augment: null argument");
    int st = check_apply(a, c, h, w, mask ? mask_c : 0);
    if (st || !a->on || n == 0)
        return st;
    float *owned = NULL;
    if (!scratch) {
        owned = scratch = nerve_xalloc_floats(nerve_augment_scratch(c, h, w, mask ? mask_c : 0));
        if (!owned)
            return NERVE_ERR_NOMEM;
    }
    size_t img = (size_t)c * h * w, msk = (size_t)mask_c * h * w;
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * img;
        geometric(a, xi, mask ? mask + (size_t)i * msk : NULL, c, mask_c, h, w, rng, scratch);
        photometric(a, xi, c, h, w, rng);
    }
    nerve_xfree_aligned(owned);
    return NERVE_OK;
}

/* ---- cfg [net] keys ------------------------------------------------------------------- */

static const struct {
    const char *key;
    unsigned bit;
} param_keys[] = {
    {"crop_pad", NERVE_AUG_CROP},     {"flip", NERVE_AUG_FLIP},
    {"translate", NERVE_AUG_TRANSLATE}, {"rotate", NERVE_AUG_ROTATE},
    {"rescale", NERVE_AUG_RESCALE},   {"noise", NERVE_AUG_NOISE},
    {"cutout", NERVE_AUG_CUTOUT},     {"brightness", NERVE_AUG_BRIGHTNESS},
    {"contrast", NERVE_AUG_CONTRAST}, {"pca", NERVE_AUG_PCA},
    {"elastic", NERVE_AUG_ELASTIC},
};

/* A parameter key is an error unless augment= lists its transform: a silently ignored
 * rotate=15 would be a surprise. */
static int check_param_keys(const cfg_doc *d, const cfg_section *s, unsigned on)
{
    for (size_t i = 0; i < NERVE_ARRAY_LEN(param_keys); i++) {
        const cfg_entry *e = cfg_find(s, param_keys[i].key);
        if (e && !(on & param_keys[i].bit))
            return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                             "%s has no effect unless augment= lists %s", e->key,
                             nerve_augment_name(param_keys[i].bit));
    }
    return NERVE_OK;
}

/* A pair "a,b" of floats in range r, e.g. rescale=0.9,1.1 or elastic=34,4. */
static int get_pair(const cfg_doc *d, const cfg_section *s, const char *key, cfg_range r,
                    float *a, float *b)
{
    float v[2];
    int n = 0;
    int has = cfg_get_float_list(d, s, key, r, v, 2, &n);
    if (has <= 0)
        return has;
    if (n != 2)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, key)->line,
                         "%s needs two comma-separated values", key);
    *a = v[0];
    *b = v[1];
    return 1;
}

#define TRY_CFG(expr)                   \
    do {                                \
        int try_st_ = (expr);           \
        if (try_st_ < 0)                \
            return try_st_;             \
    } while (0)

static int image_checks(const cfg_doc *d, const cfg_section *s, const nerve_net_config *c,
                        const nerve_augment *a)
{
    int h = c->dims[1], w = c->dims[2], side = h < w ? h : w;
    static const struct { const char *key; unsigned bit; } sized[] = {
        {"crop_pad", NERVE_AUG_CROP}, {"translate", NERVE_AUG_TRANSLATE},
        {"cutout", NERVE_AUG_CUTOUT}};
    const int values[] = {a->crop_pad, a->translate, a->cutout};
    for (size_t i = 0; i < NERVE_ARRAY_LEN(sized); i++) {
        const cfg_entry *e = cfg_find(s, sized[i].key);
        if ((a->on & sized[i].bit) && values[i] > side)
            return cfg_error(d, NERVE_ERR_FORMAT, e ? e->line : cfg_find(s, "augment")->line,
                             "%s=%d is larger than the %dx%d image", sized[i].key, values[i], h, w);
    }
    if ((a->on & NERVE_AUG_PCA) && c->dims[0] != 3)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "augment")->line,
                         "augment=pca needs RGB images (channels=3); the input has %d channels",
                         c->dims[0]);
    if ((a->on & NERVE_AUG_RESCALE) && a->scale_min > a->scale_max)
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "rescale")->line,
                         "rescale=%g,%g: expected min,max with min <= max", (double)a->scale_min,
                         (double)a->scale_max);
    return NERVE_OK;
}

/* darknet's keys: hue/saturation/exposure turn on its colour jitter, angle/aspect/min_crop/
 * max_crop its classifier crop (with darknet's defaults for the keys not given). They need
 * no augment= entry: in darknet they are the augmentation itself. */
static int darknet_keys(const cfg_doc *d, const cfg_section *s, const nerve_net_config *c,
                        nerve_augment *out)
{
    static const char *const keys[] = {"hue", "saturation", "exposure", "angle", "aspect",
                                       "min_crop", "max_crop"};
    const cfg_entry *first = NULL;
    for (size_t i = 0; i < NERVE_ARRAY_LEN(keys) && !first; i++)
        first = cfg_find(s, keys[i]);
    if (!first)
        return NERVE_OK;
    if (c->ndim != 3)
        return cfg_error(d, NERVE_ERR_FORMAT, first->line,
                         "%s= transforms images; this input is not an image (give height=, "
                         "width=, channels=)", first->key);
    const cfg_range pos = {0, INFINITY, 1, 0}, nonneg = {0, INFINITY, 0, 0};
    TRY_CFG(cfg_get_float(d, s, "hue", (cfg_range){0, 1, 0, 0}, &out->hue));
    TRY_CFG(cfg_get_float(d, s, "saturation", pos, &out->saturation));
    TRY_CFG(cfg_get_float(d, s, "exposure", pos, &out->exposure));
    if (out->hue != 0 || out->saturation != 1 || out->exposure != 1) {
        if (c->dims[0] != 3) {
            const cfg_entry *e = cfg_find(s, "hue") ? cfg_find(s, "hue")
                                 : cfg_find(s, "saturation") ? cfg_find(s, "saturation")
                                                             : cfg_find(s, "exposure");
            return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                             "%s= jitters colours in HSV and needs RGB images (channels=3); the "
                             "input has %d channels", e->key, c->dims[0]);
        }
        out->on |= NERVE_AUG_HSV;
    }
    int has_geo = cfg_find(s, "angle") || cfg_find(s, "aspect") || cfg_find(s, "min_crop") ||
                  cfg_find(s, "max_crop");
    if (!has_geo)
        return NERVE_OK;
    int w = c->dims[2];
    out->min_crop = w;     /* darknet's defaults */
    out->max_crop = 2 * w;
    TRY_CFG(cfg_get_float(d, s, "angle", (cfg_range){0, 180, 0, 0}, &out->angle));
    TRY_CFG(cfg_get_float(d, s, "aspect", pos, &out->aspect));
    TRY_CFG(cfg_get_int(d, s, "min_crop", 1, 1 << 16, &out->min_crop));
    TRY_CFG(cfg_get_int(d, s, "max_crop", 1, 1 << 16, &out->max_crop));
    if (out->max_crop < out->min_crop)
        return cfg_error(d, NERVE_ERR_FORMAT,
                         cfg_find(s, "max_crop") ? cfg_find(s, "max_crop")->line
                                                 : cfg_find(s, "min_crop")->line,
                         "max_crop=%d is below min_crop=%d", out->max_crop, out->min_crop);
    (void)nonneg;
    out->on |= NERVE_AUG_DARKNET_CROP;
    return NERVE_OK;
}

int augment_from_cfg(const cfg_doc *d, const cfg_section *s, const nerve_net_config *c,
                     nerve_augment *out)
{
    *out = nerve_augment_default();
    const cfg_entry *e = cfg_find(s, "augment");
    if (!e) {
        TRY_CFG(check_param_keys(d, s, 0u));
        return darknet_keys(d, s, c, out);
    }
    if (nerve_augment_parse(e->value, out) < 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", nerve_last_error());
        return cfg_error(d, NERVE_ERR_FORMAT, e->line, "augment: %s", msg);
    }
    if (c->ndim != 3)
        return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                         "augment= transforms images; this input is a vector of %d features "
                         "(give height=, width=, channels= instead of inputs=)", c->dims[0]);
    TRY_CFG(check_param_keys(d, s, out->on));
    const cfg_range pos = {0, INFINITY, 1, 0}, nonneg = {0, INFINITY, 0, 0};
    TRY_CFG(cfg_get_int(d, s, "crop_pad", 1, 1 << 16, &out->crop_pad));
    TRY_CFG(cfg_get_float(d, s, "flip", (cfg_range){0, 1, 0, 0}, &out->flip));
    TRY_CFG(cfg_get_int(d, s, "translate", 1, 1 << 16, &out->translate));
    TRY_CFG(cfg_get_float(d, s, "rotate", (cfg_range){0, 180, 0, 0}, &out->rotate));
    TRY_CFG(get_pair(d, s, "rescale", pos, &out->scale_min, &out->scale_max));
    TRY_CFG(cfg_get_float(d, s, "noise", nonneg, &out->noise));
    TRY_CFG(cfg_get_int(d, s, "cutout", 1, 1 << 16, &out->cutout));
    TRY_CFG(cfg_get_float(d, s, "brightness", nonneg, &out->brightness));
    TRY_CFG(cfg_get_float(d, s, "contrast", (cfg_range){0, 1, 0, 1}, &out->contrast));
    TRY_CFG(cfg_get_float(d, s, "pca", nonneg, &out->pca));
    float alpha = out->elastic_alpha, sigma = out->elastic_sigma;
    int has = get_pair(d, s, "elastic", nonneg, &alpha, &sigma);
    if (has < 0)
        return has;
    if (has && !(sigma > 0))
        return cfg_error(d, NERVE_ERR_FORMAT, cfg_find(s, "elastic")->line,
                         "elastic=alpha,sigma: sigma must be > 0");
    out->elastic_alpha = alpha;
    out->elastic_sigma = sigma;
    TRY_CFG(darknet_keys(d, s, c, out));
    return image_checks(d, s, c, out);
}

/* ---- boxes move with the image -------------------------------------------------------- */

/* In continuous image coordinates (pixel i spans [i, i+1)), the transforms of the pixels map a
 * point X to: flip w - X; zoom about the centre w/2 + s (X - w/2) (nerve_aug_rotate_scale's
 * centre (w-1)/2 in pixel indices); shift X + dx. Boxes follow, are clipped to the image, and
 * a box with nothing left inside is dropped. */
int nerve_boxes_transform(nerve_box *b, int n, int h, int w, int flip, float scale, int dy, int dx)
{
    if (!b || n <= 0 || h < 1 || w < 1 || !(scale > 0))
        return n > 0 && b ? nerve_set_error(NERVE_ERR_ARG, "boxes transform: bad arguments") : 0;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        double x0 = ((double)b[i].x - 0.5 * b[i].w) * w, x1 = ((double)b[i].x + 0.5 * b[i].w) * w;
        double y0 = ((double)b[i].y - 0.5 * b[i].h) * h, y1 = ((double)b[i].y + 0.5 * b[i].h) * h;
        if (flip) {
            double t = w - x1;
            x1 = w - x0;
            x0 = t;
        }
        x0 = 0.5 * w + scale * (x0 - 0.5 * w) + dx;
        x1 = 0.5 * w + scale * (x1 - 0.5 * w) + dx;
        y0 = 0.5 * h + scale * (y0 - 0.5 * h) + dy;
        y1 = 0.5 * h + scale * (y1 - 0.5 * h) + dy;
        x0 = x0 < 0 ? 0 : x0;
        y0 = y0 < 0 ? 0 : y0;
        x1 = x1 > w ? w : x1;
        y1 = y1 > h ? h : y1;
        if (x1 <= x0 || y1 <= y0)
            continue; /* left the image */
        b[kept].cls = b[i].cls;
        b[kept].x = (float)((x0 + x1) / (2.0 * w));
        b[kept].y = (float)((y0 + y1) / (2.0 * h));
        b[kept].w = (float)((x1 - x0) / w);
        b[kept].h = (float)((y1 - y0) / h);
        kept++;
    }
    return kept;
}

int nerve_aug_geometric_boxes(float *x, int c, int h, int w, nerve_box *boxes, int n, int flip,
                              float scale, int dy, int dx, float *scratch)
{
    if (!x || c < 1 || h < 1 || w < 1 || !(scale > 0) || (n > 0 && !boxes))
        return nerve_set_error(NERVE_ERR_ARG, "geometric boxes: bad arguments");
    float *owned = NULL;
    if (!scratch && !(owned = scratch = nerve_xalloc_floats((size_t)h * w)))
        return NERVE_ERR_NOMEM;
    if (flip)
        nerve_aug_flip(x, c, h, w);
    if (scale != 1.0f)
        nerve_aug_rotate_scale(x, c, h, w, 0.0f, scale, 0, scratch);
    if (dy || dx)
        nerve_aug_shift(x, c, h, w, dy, dx);
    nerve_xfree_aligned(owned);
    return n > 0 ? nerve_boxes_transform(boxes, n, h, w, flip, scale, dy, dx) : 0;
}
