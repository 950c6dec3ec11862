/* The convolution engine: im2col + GEMM over column blocks (the general route of conv and
 * conv_transpose; the decomposition into correlate, adjoint and weight passes is described
 * in conv.c). The work is cut into units (one image, one group, one block of output rows
 * whose column matrix stays in cache), run by single-threaded products; the scratch is one
 * column block per thread (see "threads" for how units, or the channels of one unit when a
 * batch is smaller than the thread count, are split). A 1x1 kernel with stride 1 and no
 * padding needs no im2col: big_g is its own column matrix. */
#include "conv_internal.h"

#include <string.h>

/* Column blocks. One image's output positions are processed in blocks of whole output rows
 * (q = od * OH + oh), so that a block's column matrix [rows, cols of the block] is still in
 * cache when the product reads it (or, for the adjoint, when col2im reads it back): about
 * COL_BLOCK_FLOATS floats, but never narrower than COL_BLOCK_MIN_COLS columns, below which
 * the product repacks its weights too often to gain from the cache. A direct convolution
 * has no column matrix and takes the image in one block. */
#ifndef COL_BLOCK_FLOATS
#define COL_BLOCK_FLOATS (1 << 17)
#endif
#ifndef COL_BLOCK_MIN_COLS
#define COL_BLOCK_MIN_COLS 256
#endif

void conv_plan_blocks(conv_geom *cg)
{
    int out_rows = cg->ks.out[0] * cg->ks.out[1], ow = cg->ks.out[2];
    int br = out_rows;
    if (!cg->direct) {
        size_t fit = COL_BLOCK_FLOATS / (cg->rows * (size_t)ow);
        int min_rows = (COL_BLOCK_MIN_COLS + ow - 1) / ow;
        br = fit > (size_t)min_rows ? (int)(fit < (size_t)out_rows ? fit : (size_t)out_rows)
                                    : min_rows;
        if (br > out_rows)
            br = out_rows;
    }
    cg->block_rows = br;
    cg->n_blocks = (out_rows + br - 1) / br;
}

/* Group g's slice of one image of a side with `plane` elements per channel. */
static size_t group_offset(int g, int group_channels, size_t plane)
{
    return (size_t)g * (size_t)group_channels * plane;
}

/* Weights of group g: rows [g * C_small/G, ...) of W [C_small, rows]. */
static const float *group_weight(const conv_geom *cg, const float *w, int g)
{
    return w + (size_t)g * (size_t)(cg->small_c / cg->groups) * cg->rows;
}

/* A unit of work: output rows [q0, q1) of group g of image i. Units are numbered
 * ((i * groups + g) * n_blocks + block); pairs (i, g) are numbered i * groups + g. */
typedef struct conv_unit {
    const float *big_g, *small_g; /* the pair's slices (cast back for the side written) */
    int g;
    int q0, q1;
    size_t col0, ncol; /* the block's columns: [col0, col0 + ncol) */
} conv_unit;

static int pair_count(const conv_geom *cg) { return cg->batch * cg->groups; }
static int unit_count(const conv_geom *cg) { return pair_count(cg) * cg->n_blocks; }

static conv_unit unit_at(const conv_geom *cg, const float *big, const float *small, int u)
{
    int pair = u / cg->n_blocks, b = u % cg->n_blocks;
    int out_rows = cg->ks.out[0] * cg->ks.out[1];
    conv_unit un;
    un.g = pair % cg->groups;
    un.big_g = big + group_offset(pair, cg->big_c / cg->groups, cg->big_plane);
    un.small_g = small + group_offset(pair, cg->small_c / cg->groups, cg->small_plane);
    un.q0 = b * cg->block_rows;
    un.q1 = un.q0 + cg->block_rows < out_rows ? un.q0 + cg->block_rows : out_rows;
    un.col0 = (size_t)un.q0 * (size_t)cg->ks.out[2];
    un.ncol = (size_t)(un.q1 - un.q0) * (size_t)cg->ks.out[2];
    return un;
}

/* The unit's column matrix [rows, ncol] and its row stride: gathered into col, or, when the
 * convolution is direct, the big side itself. */
static const float *unit_columns(const conv_geom *cg, const conv_unit *un, float *col, int *ld)
{
    if (cg->direct) {
        *ld = (int)cg->small_plane;
        return un->big_g + un->col0;
    }
    kern_im2col_rows(&cg->ks, un->q0, un->q1, un->big_g, col);
    *ld = (int)un->ncol;
    return col;
}

/* small[:, block] = beta * small[:, block] + W_g . columns */
static void correlate_unit(const conv_geom *cg, const conv_unit *un, const float *w, float *small,
                           float beta, float *col)
{
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows, ld;
    const float *cols = unit_columns(cg, un, col, &ld);
    float *out = small + (un->small_g - small) + un->col0;
    kern_sgemm_serial(0, 0, Cs, (int)un->ncol, R, 1.0f, group_weight(cg, w, un->g), R, cols, ld,
                      beta, out, Ls);
}

/* dW_g += dsmall[:, block] . columns^T */
static void weight_grad_unit(const conv_geom *cg, const conv_unit *un, float *dw, float *col)
{
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows, ld;
    const float *cols = unit_columns(cg, un, col, &ld);
    kern_sgemm_serial(0, 1, Cs, R, (int)un->ncol, 1.0f, un->small_g + un->col0, Ls, cols, ld,
                      1.0f, dw + (size_t)un->g * (size_t)Cs * cg->rows, R);
}

/* Big channels [c0, c1) of the unit's group += col2im(W_g[:, their rows]^T . small[:, block]).
 * Disjoint channel ranges touch disjoint image planes, so threads may share a unit. */
static void adjoint_unit_channels(const conv_geom *cg, const conv_unit *un, const float *w,
                                  float *big, int c0, int c1, float *col)
{
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows;
    size_t taps = cg->rows / (size_t)cg->ks.channels;
    int nr = (int)((size_t)(c1 - c0) * taps);
    const float *wg = group_weight(cg, w, un->g) + (size_t)c0 * taps;
    const float *ds = un->small_g + un->col0;
    float *big_c = big + (un->big_g - big) + (size_t)c0 * cg->big_plane;
    if (nr <= 0)
        return;
    if (cg->direct) { /* the column matrix is big itself: accumulate straight into it */
        kern_sgemm_serial(1, 0, nr, (int)un->ncol, Cs, 1.0f, wg, R, ds, Ls, 1.0f,
                          big_c + un->col0, Ls);
        return;
    }
    kern_sgemm_serial(1, 0, nr, (int)un->ncol, Cs, 1.0f, wg, R, ds, Ls, 0.0f, col,
                      (int)un->ncol);
    kern_conv_shape sub = cg->ks;
    sub.channels = c1 - c0;
    kern_col2im_rows(&sub, un->q0, un->q1, col, big_c);
}

/* ---- threads ---------------------------------------------------------------------------
 * Thread t of T owns slice t of the node's scratch: [column block | partial weight gradient]
 * (one thread needs only the column block). The passes split their work so that results
 * never depend on the split, except the weight gradient, which sums per-thread partials in
 * thread order (reproducible for a given T):
 *   forward (correlate): units across threads when there are at least T of them; otherwise
 *     (a batch of one with few, wide blocks) each block is gathered by channels into slice
 *     0 and its product split by output channels, one phase after another.
 *   adjoint: (image, group) pairs across threads, each pair's blocks in order on one thread
 *     (col2im of two blocks of one image adds into the same pixels); with fewer pairs than
 *     threads, each thread takes a range of big channels of every block.
 *   weight gradient: units across threads, each into its partial; then a reduction. */

static size_t column_floats(const conv_geom *cg)
{
    return cg->direct ? 0 : cg->rows * (size_t)cg->block_rows * (size_t)cg->ks.out[2];
}
size_t conv_weight_floats(const conv_geom *cg) { return (size_t)cg->small_c * cg->rows; }
static size_t slice_floats(const conv_geom *cg) { return column_floats(cg) + conv_weight_floats(cg); }

size_t conv_engine_scratch(const conv_geom *cg)
{
    int T = kern_threads();
    return T > 1 ? (size_t)T * slice_floats(cg) : column_floats(cg);
}

/* Threads for this pass: the setting, but never more than the scratch has slices for (the
 * setting may have grown since compilation). */
static int engine_threads(const conv_geom *cg, size_t scratch_n)
{
    size_t slices = scratch_n >= 2 * slice_floats(cg) ? scratch_n / slice_floats(cg) : 1;
    int T = kern_threads();
    return (size_t)T < slices ? T : (int)slices;
}

/* A pass that needs no scratch (the direct routes) has none: no arithmetic on NULL. */
static float *thread_col(const conv_geom *cg, float *scratch, int t)
{
    return scratch ? scratch + (size_t)t * slice_floats(cg) : NULL;
}

static float *thread_partial(const conv_geom *cg, float *scratch, int t)
{
    return scratch ? thread_col(cg, scratch, t) + column_floats(cg) : NULL;
}

/* One pass, as handed to the thread pool. */
typedef struct pass_job {
    const conv_geom *cg;
    const float *w, *big, *small; /* operands (the written side is cast back) */
    float *out, *dw;
    float beta;
    float *scratch;
} pass_job;

static void correlate_units_task(void *p, int t, int T)
{
    const pass_job *j = p;
    int u0, u1;
    conv_share(unit_count(j->cg), t, T, &u0, &u1);
    for (int u = u0; u < u1; u++) {
        conv_unit un = unit_at(j->cg, j->big, j->out, u);
        correlate_unit(j->cg, &un, j->w, j->out, j->beta, thread_col(j->cg, j->scratch, t));
    }
}

/* Every unit by all threads, in phases: (unless direct) big channels gathered into the
 * shared block, then output channels multiplied; the next unit's gathering starts once the
 * block has been read. */
static void correlate_channels_task(void *p, int phase, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    int Cs = cg->small_c / cg->groups, Ls = (int)cg->small_plane, R = (int)cg->rows;
    size_t taps = cg->rows / (size_t)cg->ks.channels;
    float *col = j->scratch;
    int c0, c1, m0, m1;
    int u = cg->direct ? phase : phase / 2, gather = !cg->direct && phase % 2 == 0;
    conv_unit un = unit_at(cg, j->big, j->out, u);
    if (gather) {
        conv_share(cg->ks.channels, t, T, &c0, &c1);
        kern_conv_shape sub = cg->ks;
        sub.channels = c1 - c0;
        if (c1 > c0)
            kern_im2col_rows(&sub, un.q0, un.q1, un.big_g + (size_t)c0 * cg->big_plane,
                             col + (size_t)c0 * taps * un.ncol);
        return;
    }
    int ld = cg->direct ? (int)cg->small_plane : (int)un.ncol;
    const float *cols = cg->direct ? un.big_g + un.col0 : col;
    conv_share(Cs, t, T, &m0, &m1);
    float *out = j->out + (un.small_g - j->out) + (size_t)m0 * cg->small_plane + un.col0;
    if (m1 > m0)
        kern_sgemm_serial(0, 0, m1 - m0, (int)un.ncol, R, 1.0f,
                          group_weight(cg, j->w, un.g) + (size_t)m0 * cg->rows, R, cols, ld,
                          j->beta, out, Ls);
}

static void adjoint_pairs_task(void *p, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    int p0, p1;
    conv_share(pair_count(cg), t, T, &p0, &p1);
    for (int u = p0 * cg->n_blocks; u < p1 * cg->n_blocks; u++) {
        conv_unit un = unit_at(cg, j->out, j->small, u);
        adjoint_unit_channels(cg, &un, j->w, j->out, 0, cg->ks.channels,
                              thread_col(cg, j->scratch, t));
    }
}

static void adjoint_channels_task(void *p, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    int c0, c1;
    conv_share(cg->ks.channels, t, T, &c0, &c1);
    for (int u = 0; u < unit_count(cg); u++) {
        conv_unit un = unit_at(cg, j->out, j->small, u);
        adjoint_unit_channels(cg, &un, j->w, j->out, c0, c1, thread_col(cg, j->scratch, t));
    }
}

/* Units [u0, u1) into dw, on the calling thread with column buffer col. */
static void weight_grad_units(const pass_job *j, int u0, int u1, float *dw, float *col)
{
    for (int u = u0; u < u1; u++) {
        conv_unit un = unit_at(j->cg, j->big, j->small, u);
        weight_grad_unit(j->cg, &un, dw, col);
    }
}

/* Phase 0: part t sums its units into its own partial; phase 1: part t adds every partial,
 * in part order, into its share of dW's elements. */
static void weight_grad_task(void *p, int phase, int t, int T)
{
    const pass_job *j = p;
    const conv_geom *cg = j->cg;
    size_t nw = conv_weight_floats(cg), k0, k1;
    if (phase == 0) {
        float *part = thread_partial(cg, j->scratch, t);
        int u0, u1;
        memset(part, 0, nw * sizeof(float));
        conv_share(unit_count(cg), t, T, &u0, &u1);
        weight_grad_units(j, u0, u1, part, thread_col(cg, j->scratch, t));
        return;
    }
    kern_split(nw, t, T, &k0, &k1);
    for (int s = 0; s < T; s++) {
        const float *src = thread_partial(cg, j->scratch, s);
        for (size_t k = k0; k < k1; k++)
            j->dw[k] += src[k];
    }
}

/* ---- the passes over the whole batch -------------------------------------------------- */

/* small = beta * small + W . im2col(big) */
void conv_correlate(const conv_geom *cg, const float *w, const float *big, float *small,
                    float beta, float *scratch, size_t scratch_n)
{
    pass_job j = {.cg = cg, .w = w, .big = big, .out = small, .beta = beta, .scratch = scratch};
    int T = engine_threads(cg, scratch_n);
    if (T == 1)
        correlate_units_task(&j, 0, 1);
    else if (unit_count(cg) >= T)
        kern_run(T, correlate_units_task, &j);
    else
        kern_run_phases(T, unit_count(cg) * (cg->direct ? 1 : 2), correlate_channels_task, &j);
}

/* big += col2im(W^T . small) */
void conv_adjoint(const conv_geom *cg, const float *w, const float *small, float *big,
                  float *scratch, size_t scratch_n)
{
    pass_job j = {.cg = cg, .w = w, .small = small, .out = big, .scratch = scratch};
    int T = engine_threads(cg, scratch_n);
    if (T == 1)
        adjoint_pairs_task(&j, 0, 1);
    else
        kern_run(T, pair_count(cg) >= T ? adjoint_pairs_task : adjoint_channels_task, &j);
}

/* dW += dsmall . im2col(big)^T, summed over the batch. */
void conv_columns_weight_grad(const conv_geom *cg, const float *big, const float *dsmall,
                              float *dw, float *scratch, size_t scratch_n)
{
    pass_job j = {.cg = cg, .big = big, .small = dsmall, .dw = dw, .scratch = scratch};
    int T = engine_threads(cg, scratch_n), units = unit_count(cg);
    if (T > units)
        T = units;
    if (T <= 1)
        weight_grad_units(&j, 0, units, dw, scratch);
    else
        kern_run_phases(T, 2, weight_grad_task, &j);
}
