/* SVG line plots: structure, escaping, NaN points, degenerate ranges. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Plots into the temp dir and returns the file's text (malloc'd), NULL on failure. */
static char *plot(const char *title, const char *xlabel, const double *x, int n,
                  const nerve_series *s, int n_series)
{
    char path[512];
    snprintf(path, sizeof path, "%s/plot.svg", test_tmpdir());
    if (nerve_svg_lineplot(path, title, xlabel, x, n, s, n_series) != NERVE_OK)
        return NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *text = calloc(1, 1 << 20);
    size_t len = fread(text, 1, (1 << 20) - 1, fp);
    fclose(fp);
    text[len] = '\0';
    return text;
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The points attribute of the k-th polyline, copied into buf. */
static const char *points_of(const char *text, int k, char *buf, size_t size)
{
    const char *p = text;
    for (int i = 0; i <= k && p; i++)
        p = strstr(p + (i > 0), "<polyline");
    if (!p || !(p = strstr(p, "points=\"")))
        return "";
    p += 8;
    size_t n = strcspn(p, "\"");
    snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
    return buf;
}

static int ends_with_svg(const char *text)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
        n--;
    return n >= 6 && strncmp(text + n - 6, "</svg>", 6) == 0;
}

TEST(svg_lineplot_has_axes_labels_legend_and_one_polyline_per_series)
{
    const double x[5] = {1, 2, 3, 4, 5};
    const double loss[5] = {2.3, 1.1, 0.7, 0.5, 0.45}, acc[5] = {0.3, 0.6, 0.75, 0.8, 0.82};
    const double val[5] = {2.4, 1.3, 0.9, 0.8, 0.85};
    nerve_series s[3] = {{"train loss", loss}, {"train accuracy", acc}, {"a<b&c", val}};
    char *text = plot("Training \"curves\"", "epoch", x, 5, s, 3);
    CHECK(text != NULL);
    CHECK(strncmp(text, "<svg", 4) == 0 && ends_with_svg(text));
    CHECK(count(text, "<polyline") == 3);
    CHECK(strstr(text, "train loss") && strstr(text, "train accuracy") && strstr(text, "epoch"));
    CHECK(strstr(text, "Training &quot;curves&quot;") != NULL);
    CHECK(strstr(text, "a&lt;b&amp;c") != NULL && strstr(text, "a<b") == NULL);
    /* distinct colours */
    char c0[16], c1[16], c2[16];
    const char *p0 = strstr(text, "<polyline");
    const char *p1 = strstr(p0 + 1, "<polyline"), *p2 = strstr(p1 + 1, "<polyline");
    CHECK(sscanf(strstr(p0, "stroke=\""), "stroke=\"%15[^\"]", c0) == 1);
    CHECK(sscanf(strstr(p1, "stroke=\""), "stroke=\"%15[^\"]", c1) == 1);
    CHECK(sscanf(strstr(p2, "stroke=\""), "stroke=\"%15[^\"]", c2) == 1);
    CHECK(strcmp(c0, c1) && strcmp(c1, c2) && strcmp(c0, c2));
    /* ticks: the y range 0.3..2.4 gets round labels such as 0.5 and 2 */
    CHECK(strstr(text, ">0.5</text>") && strstr(text, ">2</text>"));
    CHECK(strstr(text, ">1</text>") && strstr(text, ">5</text>"));
    char pts[512];
    int commas = 0;
    for (const char *q = points_of(text, 0, pts, sizeof pts); *q; q++)
        commas += *q == ',';
    CHECK(commas == 5);
    CHECK(strstr(text, "nan") == NULL && strstr(text, "inf") == NULL);
    free(text);
}

TEST(svg_lineplot_skips_nan_points)
{
    const double y[4] = {1, NAN, 3, 4}, none[4] = {NAN, NAN, NAN, NAN};
    nerve_series s[2] = {{"val", y}, {"missing", none}};
    char *text = plot("t", "x", NULL, 4, s, 2);
    CHECK(text != NULL);
    CHECK(count(text, "<polyline") == 2);
    char pts[512];
    int commas = 0;
    for (const char *q = points_of(text, 0, pts, sizeof pts); *q; q++)
        commas += *q == ',';
    CHECK(commas == 3);
    CHECK(strcmp(points_of(text, 1, pts, sizeof pts), "") == 0);
    CHECK(strstr(text, "nan") == NULL);
    free(text);
}

TEST(svg_lineplot_handles_one_point_and_constant_series)
{
    const double x1[1] = {7}, y1[1] = {0.25};
    nerve_series one = {"single", y1};
    char *text = plot("one", "epoch", x1, 1, &one, 1);
    CHECK(text != NULL);
    CHECK(count(text, "<polyline") == 1 && count(text, "<circle") == 1);
    CHECK(strstr(text, "nan") == NULL && strstr(text, "inf") == NULL);
    free(text);

    const double x[3] = {0, 1, 2}, flat[3] = {5, 5, 5}, zero[3] = {0, 0, 0};
    nerve_series s[2] = {{"flat", flat}, {"zero", zero}};
    text = plot("flat", "x", x, 3, s, 2);
    CHECK(text != NULL);
    CHECK(strstr(text, "nan") == NULL && strstr(text, "inf") == NULL);
    free(text);
    nerve_series z = {"zero", zero};
    text = plot("zero", "x", x, 3, &z, 1);
    CHECK(text != NULL && strstr(text, "nan") == NULL);
    /* a constant series is drawn as a horizontal line: every point has the same y */
    char pts[256];
    double a, b, c, ya, yb, yc;
    CHECK(sscanf(points_of(text, 0, pts, sizeof pts), "%lf,%lf %lf,%lf %lf,%lf", &a, &ya, &b,
                 &yb, &c, &yc) == 6);
    CHECK(ya == yb && yb == yc && a < b && b < c);
    free(text);
}

TEST(svg_lineplot_rejects_bad_arguments)
{
    const double y[2] = {1, 2};
    nerve_series s[13];
    for (int i = 0; i < 13; i++)
        s[i] = (nerve_series){"s", y};
    char path[512];
    snprintf(path, sizeof path, "%s/bad.svg", test_tmpdir());
    CHECK(nerve_svg_lineplot(path, "t", "x", NULL, 2, s, 13) == NERVE_ERR_ARG);
    CHECK_OK(nerve_svg_lineplot(path, "t", "x", NULL, 2, s, 12));
    CHECK(nerve_svg_lineplot(path, "t", "x", NULL, 0, s, 1) == NERVE_ERR_ARG);
    s[0].y = NULL;
    CHECK(nerve_svg_lineplot(path, "t", "x", NULL, 2, s, 1) == NERVE_ERR_ARG);
    s[0].y = y;
    CHECK(nerve_svg_lineplot("/nonexistent/p.svg", "t", "x", NULL, 2, s, 1) == NERVE_ERR_IO);
    CHECK(strstr(nerve_last_error(), "/nonexistent/p.svg") != NULL);
}
