/* Standalone SVG line plots (training curves): no plotting dependency, opens in any
 * browser. One <polyline> per series; axes with "nice" ticks (1, 2 or 5 times a power of
 * ten); a legend on the right. */
#include "../core/core.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define WIDTH 800
#define HEIGHT 460
#define PLOT_LEFT 72.0
#define PLOT_RIGHT (WIDTH - 220.0)
#define PLOT_TOP 48.0
#define PLOT_BOTTOM (HEIGHT - 64.0)
#define MAX_SERIES 12
#define MAX_TICKS 50

static const char *const colours[MAX_SERIES] = {"#1f6fb4", "#e8731a", "#2a9d3a", "#d0312d",
                                                "#8a5cc0", "#8c564b", "#d44fb0", "#6b6b6b",
                                                "#17a2b8", "#a6a21c", "#1a1a6e", "#e0a030"};

/* Text as XML character data: markup characters escaped, control characters that XML 1.0
 * forbids dropped. */
static void put_escaped(FILE *fp, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&apos;", fp); break;
        default:
            if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
                fputc(c, fp);
        }
    }
}

typedef struct {
    double lo, hi;   /* axis range (tick-aligned) */
    double step;     /* tick spacing, 0 if the range is unusable for ticks */
} axis;

/* 1, 2 or 5 times a power of ten, close to span / 5. */
static double nice_step(double span)
{
    double raw = span / 5.0, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

/* An axis covering [lo, hi]; empty or degenerate ranges are widened so nothing divides by
 * zero (a constant series sits in the middle). */
static axis make_axis(double lo, double hi)
{
    if (!(lo <= hi)) /* no finite data */
        lo = 0.0, hi = 1.0;
    if (lo == hi) {
        double pad = lo == 0.0 ? 1.0 : fabs(lo) * 0.1;
        lo -= pad, hi += pad;
    }
    axis a = {lo, hi, nice_step(hi - lo)};
    if (!(isfinite(a.step) && a.step > 0.0)) {
        a.step = 0.0;
        return a;
    }
    a.lo = floor(lo / a.step) * a.step;
    a.hi = ceil(hi / a.step) * a.step;
    if (!(a.hi > a.lo)) { /* rounding swallowed the range */
        a.lo = lo, a.hi = hi, a.step = 0.0;
    }
    return a;
}

static double x_at(const double *x, int i) { return x ? x[i] : (double)i; }

static void data_ranges(const double *x, int n, const nerve_series *series, int n_series,
                        axis *ax, axis *ay)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double xv = x_at(x, i);
        if (!isfinite(xv))
            continue;
        xlo = fmin(xlo, xv), xhi = fmax(xhi, xv);
        for (int s = 0; s < n_series; s++) {
            double yv = series[s].y[i];
            if (isfinite(yv))
                ylo = fmin(ylo, yv), yhi = fmax(yhi, yv);
        }
    }
    *ax = make_axis(xlo, xhi);
    *ay = make_axis(ylo, yhi);
}

static double to_px(const axis *a, double v, double p0, double p1)
{
    return p0 + (v - a->lo) / (a->hi - a->lo) * (p1 - p0);
}

static void tick_label(FILE *fp, double v, double step)
{
    if (fabs(v) < step * 1e-9)
        v = 0.0; /* -0 and 1e-17 from accumulated rounding */
    fprintf(fp, "%.6g", v);
}

/* Grid lines and tick labels of both axes, then the axis frame. */
static void draw_axes(FILE *fp, const axis *ax, const axis *ay)
{
    const axis *axes[2] = {ax, ay};
    for (int which = 0; which < 2; which++) {
        const axis *a = axes[which];
        double step = a->step ? a->step : a->hi - a->lo;
        for (int k = 0; k < MAX_TICKS; k++) {
            double v = k ? a->lo + k * step : a->lo;
            if (v > a->hi + step * 1e-9)
                break;
            if (which == 0) {
                double px = to_px(a, v, PLOT_LEFT, PLOT_RIGHT);
                fprintf(fp, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" "
                            "stroke=\"#e4e4e4\"/>\n", px, PLOT_TOP, px, PLOT_BOTTOM);
                fprintf(fp, "<text x=\"%.2f\" y=\"%.1f\" text-anchor=\"middle\">", px,
                        PLOT_BOTTOM + 18);
            } else {
                double py = to_px(a, v, PLOT_BOTTOM, PLOT_TOP);
                fprintf(fp, "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\" "
                            "stroke=\"#e4e4e4\"/>\n", PLOT_LEFT, py, PLOT_RIGHT, py);
                fprintf(fp, "<text x=\"%.1f\" y=\"%.2f\" text-anchor=\"end\">", PLOT_LEFT - 6,
                        py + 4);
            }
            tick_label(fp, v, step);
            fputs("</text>\n", fp);
        }
    }
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                "stroke=\"#333\"/>\n",
            PLOT_LEFT, PLOT_TOP, PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP);
}

/* One polyline through the finite points (NaN points are skipped); a lone point also
 * gets a dot, since a one-point polyline draws nothing. */
static void draw_series(FILE *fp, const axis *ax, const axis *ay, const double *x, int n,
                        const double *y, const char *colour)
{
    int finite = 0;
    double lx = 0, ly = 0;
    fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                "stroke-linejoin=\"round\" points=\"", colour);
    for (int i = 0; i < n; i++) {
        double xv = x_at(x, i), yv = y[i];
        if (!isfinite(xv) || !isfinite(yv))
            continue;
        lx = to_px(ax, xv, PLOT_LEFT, PLOT_RIGHT);
        ly = to_px(ay, yv, PLOT_BOTTOM, PLOT_TOP);
        fprintf(fp, "%s%.2f,%.2f", finite++ ? " " : "", lx, ly);
    }
    fputs("\"/>\n", fp);
    if (finite == 1)
        fprintf(fp, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", lx, ly, colour);
}

static void draw_legend(FILE *fp, const nerve_series *series, int n_series)
{
    for (int s = 0; s < n_series; s++) {
        double y = PLOT_TOP + 12 + 22.0 * s, x = PLOT_RIGHT + 16;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"3\"/>\n", x, y, x + 24, y, colours[s]);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\">", x + 30, y + 4);
        if (series[s].label)
            put_escaped(fp, series[s].label);
        else
            fprintf(fp, "series %d", s + 1);
        fputs("</text>\n", fp);
    }
}

static void draw_plot(FILE *fp, const char *title, const char *xlabel, const double *x, int n,
                      const nerve_series *series, int n_series)
{
    axis ax, ay;
    data_ranges(x, n, series, n_series, &ax, &ay);
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    fprintf(fp, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", WIDTH, HEIGHT);
    fprintf(fp, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">",
            (PLOT_LEFT + PLOT_RIGHT) / 2);
    put_escaped(fp, title ? title : "");
    fputs("</text>\n", fp);
    draw_axes(fp, &ax, &ay);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            (PLOT_LEFT + PLOT_RIGHT) / 2, (double)HEIGHT - 20);
    put_escaped(fp, xlabel ? xlabel : "");
    fputs("</text>\n", fp);
    for (int s = 0; s < n_series; s++)
        draw_series(fp, &ax, &ay, x, n, series[s].y, colours[s]);
    draw_legend(fp, series, n_series);
    fputs("</svg>\n", fp);
}

int nerve_svg_lineplot(const char *path, const char *title, const char *xlabel,
                       const double *x, int n, const nerve_series *series, int n_series)
{
    if (!path || n < 1 || n_series < 0 || n_series > MAX_SERIES || (n_series && !series))
        return nerve_set_error(NERVE_ERR_ARG,
                               "svg plot: bad arguments (%d points, %d series; at most %d)", n,
                               n_series, MAX_SERIES);
    for (int s = 0; s < n_series; s++)
        if (!series[s].y)
            return nerve_set_error(NERVE_ERR_ARG, "svg plot: series %d has no values", s);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    draw_plot(fp, title, xlabel, x, n, series, n_series);
    int bad = ferror(fp) || fflush(fp) != 0;
    int err = errno;
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    return NERVE_OK;
}

/* ---- scatter plots (embeddings) ------------------------------------------------------------ */

#define SC_WIDTH 860
#define SC_HEIGHT 700
#define SC_LEFT 20.0
#define SC_TOP 44.0
#define SC_SIZE 636.0 /* square plot area: both axes at the same scale */
#define SC_CLASSES 20

/* 20 distinguishable colours (the first 10 are the usual categorical palette). */
static const char *const class_colours[SC_CLASSES] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#637939", "#843c39",
    "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"};

static void scatter_legend(FILE *fp, int n_classes, const char *const *names, int unlabelled)
{
    double x = SC_LEFT + SC_SIZE + 24;
    int rows = n_classes < SC_CLASSES ? n_classes : SC_CLASSES;
    for (int c = 0; c <= rows; c++) {
        if (c == rows && !unlabelled)
            break;
        double y = SC_TOP + 14 + 22.0 * c;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", x + 6, y,
                c < rows ? class_colours[c] : "#b0b0b0");
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\">", x + 18, y + 4);
        if (c == rows)
            fputs(n_classes > SC_CLASSES ? "other or unlabelled" : "unlabelled", fp);
        else if (names && names[c])
            put_escaped(fp, names[c]);
        else
            fprintf(fp, "class %d", c);
        fputs("</text>\n", fp);
    }
}

static void draw_scatter(FILE *fp, const char *title, const float *xy, int n, const int *labels,
                         int n_classes, const char *const *names)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(xy[2 * i]) && isfinite(xy[2 * i + 1])) {
            x0 = fmin(x0, xy[2 * i]), x1 = fmax(x1, xy[2 * i]);
            y0 = fmin(y0, xy[2 * i + 1]), y1 = fmax(y1, xy[2 * i + 1]);
        }
    double span = fmax(x1 - x0, y1 - y0);
    if (!(span > 0) || !isfinite(span))
        span = 1.0;
    double cx = isfinite(x0) ? (x0 + x1) / 2 : 0, cy = isfinite(y0) ? (y0 + y1) / 2 : 0;
    double scale = (SC_SIZE - 16) / span, r = n > 20000 ? 1.0 : n > 3000 ? 1.4 : 2.5;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"13\">\n",
            SC_WIDTH, SC_HEIGHT, SC_WIDTH, SC_HEIGHT);
    fprintf(fp, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SC_WIDTH, SC_HEIGHT);
    fprintf(fp, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">",
            SC_LEFT + SC_SIZE / 2);
    put_escaped(fp, title ? title : "");
    fputs("</text>\n", fp);
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                "stroke=\"#999\"/>\n", SC_LEFT, SC_TOP, SC_SIZE, SC_SIZE);
    int unlabelled = 0;
    /* one group per colour keeps the file small */
    for (int c = -1; c < SC_CLASSES && c < n_classes; c++) {
        fprintf(fp, "<g fill=\"%s\" fill-opacity=\"0.75\">\n",
                c < 0 ? "#b0b0b0" : class_colours[c]);
        for (int i = 0; i < n; i++) {
            int l = labels ? labels[i] : 0;
            int colour = l >= 0 && l < n_classes && l < SC_CLASSES ? l : -1;
            if (colour != c || !isfinite(xy[2 * i]) || !isfinite(xy[2 * i + 1]))
                continue;
            unlabelled |= c < 0;
            double px = SC_LEFT + SC_SIZE / 2 + (xy[2 * i] - cx) * scale;
            double py = SC_TOP + SC_SIZE / 2 - (xy[2 * i + 1] - cy) * scale;
            fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n", px, py, r);
        }
        fputs("</g>\n", fp);
    }
    if (labels)
        scatter_legend(fp, n_classes, names, unlabelled);
    fputs("</svg>\n", fp);
}

int nerve_svg_scatter(const char *path, const char *title, const float *xy, int n,
                      const int *labels, int n_classes, const char *const *names)
{
    if (!path || !xy || n < 1 || n_classes < 0)
        return nerve_set_error(NERVE_ERR_ARG, "svg scatter: bad arguments (%d points, %d "
                                              "classes)", n, n_classes);
    if (!labels && n_classes == 0)
        n_classes = 1; /* every point in the first colour */
    FILE *fp = fopen(path, "w");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    draw_scatter(fp, title, xy, n, labels, n_classes, labels ? names : NULL);
    int bad = ferror(fp) || fflush(fp) != 0;
    int err = errno;
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    return NERVE_OK;
}

/* ---- trajectories in the plane (optimisers) ------------------------------------------------ */

#define TR_SIZE 560.0 /* square plot area */
#define TR_LEFT 64.0
#define TR_TOP 44.0

/* Sequential colour of t in [0, 1]: dark blue (low) to pale yellow (high). */
static void field_colour(double t, int rgb[3])
{
    static const double stops[4][3] = {{38, 52, 110}, {54, 140, 160}, {150, 205, 120}, {250, 245, 190}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double s = t * 3;
    int k = s >= 3 ? 2 : (int)s;
    double f = s - k;
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(stops[k][c] + f * (stops[k + 1][c] - stops[k][c]));
}

int nerve_svg_trajectories(const char *path, const char *title, const double box[4], const double *field,
                           int gw, int gh, const nerve_path2d *paths, int n_paths)
{
    if (!path || !box || !(box[1] > box[0]) || !(box[3] > box[2]) || n_paths < 0 || n_paths > MAX_SERIES ||
        (n_paths && !paths) || (field && (gw < 2 || gh < 2)))
        return nerve_set_error(NERVE_ERR_ARG, "svg trajectories: bad arguments (%d paths, at most %d)", n_paths,
                               MAX_SERIES);
    for (int k = 0; k < n_paths; k++)
        if (paths[k].n < 0 || (paths[k].n && !paths[k].xy))
            return nerve_set_error(NERVE_ERR_ARG, "svg trajectories: path %d has no points", k);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int width = (int)(TR_LEFT + TR_SIZE + 200), height = (int)(TR_TOP + TR_SIZE + 50);
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n", width, height, width, height);
    fprintf(fp, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height);
    fprintf(fp, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", TR_LEFT + TR_SIZE / 2);
    put_escaped(fp, title ? title : "");
    fputs("</text>\n", fp);
    fprintf(fp, "<clipPath id=\"area\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
            TR_LEFT, TR_TOP, TR_SIZE, TR_SIZE);
    double sx = TR_SIZE / (box[1] - box[0]), sy = TR_SIZE / (box[3] - box[2]);
    if (field) { /* the field as cells, scaled from its smallest to its largest finite value */
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < gw * gh; i++)
            if (isfinite(field[i]))
                lo = fmin(lo, field[i]), hi = fmax(hi, field[i]);
        double cw = TR_SIZE / gw, ch = TR_SIZE / gh;
        fputs("<g shape-rendering=\"crispEdges\">\n", fp);
        for (int r = 0; r < gh; r++)
            for (int c = 0; c < gw; c++) {
                double v = field[(size_t)r * gw + c];
                int rgb[3] = {255, 255, 255};
                if (isfinite(v))
                    field_colour(hi > lo ? (v - lo) / (hi - lo) : 0.5, rgb);
                /* row 0 is the bottom of the box (y = box[2]) */
                fprintf(fp, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#%02x%02x%02x\"/>\n",
                        TR_LEFT + c * cw, TR_TOP + TR_SIZE - (r + 1) * ch, cw + 0.3, ch + 0.3, rgb[0], rgb[1],
                        rgb[2]);
            }
        fputs("</g>\n", fp);
    }
    axis ax = make_axis(box[0], box[1]), ay = make_axis(box[2], box[3]);
    for (int which = 0; which < 2; which++) { /* tick labels inside the box's range */
        const axis *a = which ? &ay : &ax;
        double step = a->step;
        for (int k = 0; step > 0 && k < MAX_TICKS; k++) {
            double v = a->lo + k * step;
            if (v > box[which ? 3 : 1] + step * 1e-9)
                break;
            if (v < box[which ? 2 : 0] - step * 1e-9)
                continue;
            if (!which)
                fprintf(fp, "<text x=\"%.2f\" y=\"%.1f\" text-anchor=\"middle\">", TR_LEFT + (v - box[0]) * sx,
                        TR_TOP + TR_SIZE + 18);
            else
                fprintf(fp, "<text x=\"%.1f\" y=\"%.2f\" text-anchor=\"end\">", TR_LEFT - 6,
                        TR_TOP + TR_SIZE - (v - box[2]) * sy + 4);
            tick_label(fp, v, step);
            fputs("</text>\n", fp);
        }
    }
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
            TR_LEFT, TR_TOP, TR_SIZE, TR_SIZE);
    fprintf(fp, "<g clip-path=\"url(#area)\">\n");
    for (int k = 0; k < n_paths; k++) {
        fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"",
                colours[k]);
        int first = 1;
        for (int i = 0; i < paths[k].n; i++) {
            double x = paths[k].xy[2 * i], y = paths[k].xy[2 * i + 1];
            if (!isfinite(x) || !isfinite(y))
                break; /* a diverged path ends */
            /* far outside points are pulled to the box's surroundings: the clip hides them */
            double px = fmax(-1e4, fmin(1e4, TR_LEFT + (x - box[0]) * sx));
            double py = fmax(-1e4, fmin(1e4, TR_TOP + TR_SIZE - (y - box[2]) * sy));
            fprintf(fp, "%s%.2f,%.2f", first ? "" : " ", px, py);
            first = 0;
        }
        fputs("\"/>\n", fp);
        if (paths[k].n > 0 && isfinite(paths[k].xy[0]) && isfinite(paths[k].xy[1]))
            fprintf(fp, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4\" fill=\"%s\"/>\n",
                    TR_LEFT + (paths[k].xy[0] - box[0]) * sx, TR_TOP + TR_SIZE - (paths[k].xy[1] - box[2]) * sy,
                    colours[k]);
    }
    fputs("</g>\n", fp);
    for (int k = 0; k < n_paths; k++) {
        double y = TR_TOP + 12 + 22.0 * k, x = TR_LEFT + TR_SIZE + 16;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", x,
                y, x + 24, y, colours[k]);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\">", x + 30, y + 4);
        put_escaped(fp, paths[k].label ? paths[k].label : "path");
        fputs("</text>\n", fp);
    }
    fputs("</svg>\n", fp);
    int bad = ferror(fp) || fflush(fp) != 0;
    int err = errno;
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    return NERVE_OK;
}
