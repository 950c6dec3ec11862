/* CSV data sets: comma-separated numeric columns, one sample per line, one of the columns
 * (optionally) an integer class label. A first line that does not parse as numbers is a
 * header; blank lines are skipped; every row must have the same number of columns. */
#include "../core/core.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABEL 16777216.0 /* 2^24: the largest range of integers a float holds exactly */

/* Whole file as a NUL-terminated string. */
static char *read_text(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nerve_set_error(NERVE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = nerve_xmalloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, fp);
        if (n < cap - 1)
            break;
        char *bigger = nerve_xrealloc(buf, cap * 2);
        if (!bigger) {
            nerve_xfree(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(fp), saved_errno = errno;
    fclose(fp);
    if (buf && failed) {
        nerve_xfree(buf);
        nerve_set_error(NERVE_ERR_IO, "%s: cannot read: %s", path, strerror(saved_errno));
        return NULL;
    }
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

typedef struct {
    const char *start;
    int len;
} field;

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Splits line [s, e) at commas into at most cap trimmed fields; returns the count, which
 * may exceed cap (only the first cap are stored). */
static int split_fields(const char *s, const char *e, field *out, int cap)
{
    int n = 0;
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(e - s));
        const char *end = comma ? comma : e;
        const char *a = s, *b = end;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (n < cap)
            out[n] = (field){a, (int)(b - a)};
        n++;
        if (!comma)
            return n;
        s = comma + 1;
    }
}

/* Parses a whole field as a finite number. */
static int parse_number(field f, double *out)
{
    char tmp[128];
    if (f.len == 0 || f.len >= (int)sizeof tmp)
        return 0;
    memcpy(tmp, f.start, (size_t)f.len);
    tmp[f.len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (*end != '\0' || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

typedef struct {
    const char *path;
    int label_col; /* resolved column index, -1 for none */
    int cols;      /* columns per row, 0 until known */
    int rows;
    float *vals;   /* rows * cols, grown as rows arrive */
    size_t cap;
    field *fields; /* scratch of cols entries */
    int header_seen;
} csv_parse;

static int resolve_columns(csv_parse *p, int cols, int label_col)
{
    p->cols = cols;
    p->fields = nerve_xmalloc((size_t)cols * sizeof *p->fields);
    if (!p->fields)
        return NERVE_ERR_NOMEM;
    if (label_col == NERVE_CSV_NO_LABEL) {
        p->label_col = -1;
        return NERVE_OK;
    }
    int lc = label_col < 0 ? cols + label_col : label_col;
    if (lc < 0 || lc >= cols)
        return nerve_set_error(NERVE_ERR_ARG, "%s: label column %d out of range for %d columns",
                               p->path, label_col, cols);
    if (cols < 2)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: a label column needs at least one feature column beside it",
                               p->path);
    p->label_col = lc;
    return NERVE_OK;
}

static int append_row(csv_parse *p, int line_no)
{
    if ((size_t)(p->rows + 1) * (size_t)p->cols > p->cap) {
        size_t cap = p->cap ? 2 * p->cap : (size_t)p->cols * 256;
        float *v = nerve_xrealloc(p->vals, cap * sizeof *v);
        if (!v)
            return NERVE_ERR_NOMEM;
        p->vals = v;
        p->cap = cap;
    }
    float *row = p->vals + (size_t)p->rows * p->cols;
    for (int c = 0; c < p->cols; c++) {
        field f = p->fields[c];
        double v;
        if (!parse_number(f, &v))
            return nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: '%.*s' is not a number", p->path,
                                   line_no, f.len > 40 ? 40 : f.len, f.start);
        if (c == p->label_col && !(v >= 0 && v < MAX_LABEL && v == floor(v)))
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "%s:%d: label '%.*s' is not a non-negative integer", p->path,
                                   line_no, f.len > 40 ? 40 : f.len, f.start);
        row[c] = (float)v;
    }
    if (p->rows == INT32_MAX)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: too many rows", p->path);
    p->rows++;
    return NERVE_OK;
}

/* Handles one non-blank line [s, e). */
static int parse_line(csv_parse *p, const char *s, const char *e, int line_no, int label_col)
{
    int first = p->cols == 0;
    int n = split_fields(s, e, p->fields, p->cols);
    if (first) {
        int st = resolve_columns(p, n, label_col);
        if (st < 0)
            return st;
        split_fields(s, e, p->fields, p->cols);
        double v;
        for (int c = 0; c < n && !p->header_seen; c++)
            if (!parse_number(p->fields[c], &v))
                p->header_seen = 1;
        if (p->header_seen)
            return NERVE_OK;
    } else if (n != p->cols) {
        return nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: expected %d columns, found %d",
                               p->path, line_no, p->cols, n);
    }
    return append_row(p, line_no);
}

/* Splits the parsed table into features and labels. */
static int build(nerve_dataset *d, const csv_parse *p)
{
    if (p->rows == 0)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: no data rows", p->path);
    int features = p->cols - (p->label_col >= 0);
    int st = nerve_dataset_alloc(d, p->rows, 1, &features);
    if (st < 0)
        return st;
    int max_label = -1;
    for (int r = 0; r < p->rows; r++) {
        const float *row = p->vals + (size_t)r * p->cols;
        float *x = d->x + (size_t)r * features;
        for (int c = 0; c < p->cols; c++) {
            if (c == p->label_col) {
                d->y[r] = row[c];
                if ((int)row[c] > max_label)
                    max_label = (int)row[c];
            } else {
                *x++ = row[c];
            }
        }
    }
    d->n_classes = max_label + 1;
    return NERVE_OK;
}

int nerve_dataset_load_csv(nerve_dataset *d, const char *path, int label_col)
{
    if (!d || !path)
        return nerve_set_error(NERVE_ERR_ARG, "load csv: null argument");
    memset(d, 0, sizeof *d);
    size_t len;
    char *text = read_text(path, &len);
    if (!text)
        return nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
    csv_parse p = {.path = path, .label_col = -1};
    int st = NERVE_OK, line_no = 0;
    const char *s = text, *end = text + len;
    while (st == NERVE_OK && s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        line_no++;
        const char *t = s;
        while (t < e && is_blank(*t))
            t++;
        if (t < e)
            st = parse_line(&p, s, e, line_no, label_col);
        s = e + 1;
    }
    if (st == NERVE_OK)
        st = build(d, &p);
    nerve_xfree(p.fields);
    nerve_xfree(p.vals);
    nerve_xfree(text);
    if (st < 0)
        nerve_dataset_free(d);
    return st;
}
