/* CSV data sets per RFC 4180: records of fields split by a separator (',' by default),
 * fields optionally enclosed in double quotes (inside which separators, line breaks and
 * doubled quotes "" stand for themselves), records ended by LF or CRLF. Unquoted fields are
 * trimmed of blanks; blank lines are skipped; every record must have the same number of
 * fields. One column may be a class label (non-negative integers, or class names that map
 * to indices in sorted order, or in the order of a names list), any others may be float
 * regression targets, the rest are numeric features. Every error names file:line:column.
 * docs/data.md describes the rules. */
#include "data.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABEL 16777216.0 /* 2^24: the largest range of integers a float holds exactly */
#define MAX_COLS (1 << 22)

/* ---- reading a whole file ------------------------------------------------------------ */

/* Whole file into memory (NUL-terminated for convenience; len excludes the NUL). */
char *data_read_file(const char *path, size_t *len)
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

/* ---- the tokenizer --------------------------------------------------------------------- */

typedef struct lexer {
    const char *name;
    const char *s;
    size_t len, pos;
    int line;       /* physical line of s[pos] (1-based) */
    size_t line_at; /* offset of that line's first byte */
    char sep;
} lexer;

/* One record: its fields decoded (quotes removed, "" -> ") into buf, NUL-separated. */
typedef struct record {
    char *buf;
    size_t used, cap;
    size_t *off;     /* field start in buf */
    int *line, *col; /* where each field starts in the file */
    unsigned char *quoted;
    int n, fcap;
} record;

static void record_free(record *r)
{
    nerve_xfree(r->buf);
    nerve_xfree(r->off);
    nerve_xfree(r->line);
    nerve_xfree(r->col);
    nerve_xfree(r->quoted);
    memset(r, 0, sizeof *r);
}

static int put_char(record *r, char c)
{
    if (r->used + 1 > r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 256;
        char *b = nerve_xrealloc(r->buf, cap);
        if (!b)
            return NERVE_ERR_NOMEM;
        r->buf = b;
        r->cap = cap;
    }
    r->buf[r->used++] = c;
    return NERVE_OK;
}

static int start_field(record *r, const lexer *lx, int quoted)
{
    if (r->n == MAX_COLS)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: more than %d fields in a record",
                               lx->name, lx->line, MAX_COLS);
    if (r->n == r->fcap) {
        int cap = r->fcap ? 2 * r->fcap : 16;
        size_t *off = nerve_xrealloc(r->off, (size_t)cap * sizeof *off);
        if (off)
            r->off = off;
        int *line = off ? nerve_xrealloc(r->line, (size_t)cap * sizeof *line) : NULL;
        if (line)
            r->line = line;
        int *col = line ? nerve_xrealloc(r->col, (size_t)cap * sizeof *col) : NULL;
        if (col)
            r->col = col;
        unsigned char *q = col ? nerve_xrealloc(r->quoted, (size_t)cap) : NULL;
        if (!q)
            return NERVE_ERR_NOMEM;
        r->quoted = q;
        r->fcap = cap;
    }
    r->off[r->n] = r->used;
    r->line[r->n] = lx->line;
    r->col[r->n] = (int)(lx->pos - lx->line_at) + 1;
    r->quoted[r->n] = (unsigned char)quoted;
    r->n++;
    return NERVE_OK;
}

static int is_blank(const lexer *lx, char c)
{
    return (c == ' ' || c == '\t' || c == '\r') && c != lx->sep;
}

static void newline(lexer *lx)
{
    lx->line++;
    lx->line_at = lx->pos;
}

static int at_record_end(const lexer *lx)
{
    size_t p = lx->pos;
    return p >= lx->len || lx->s[p] == '\n' || (lx->s[p] == '\r' && p + 1 < lx->len &&
                                                lx->s[p + 1] == '\n');
}

/* Consumes the record end at pos (LF, CRLF or end of text). */
static void end_record(lexer *lx)
{
    if (lx->pos < lx->len && lx->s[lx->pos] == '\r')
        lx->pos++;
    if (lx->pos < lx->len && lx->s[lx->pos] == '\n') {
        lx->pos++;
        newline(lx);
    }
}

static int quoted_field(lexer *lx, record *r)
{
    int open_line = lx->line, open_col = (int)(lx->pos - lx->line_at) + 1;
    lx->pos++; /* the opening quote */
    for (;;) {
        if (lx->pos >= lx->len)
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "%s:%d:%d: the quote opened here is never closed", lx->name,
                                   open_line, open_col);
        char c = lx->s[lx->pos++];
        if (c == '"') {
            if (lx->pos < lx->len && lx->s[lx->pos] == '"') {
                lx->pos++;
                DATA_TRY(put_char(r, '"'));
                continue;
            }
            break;
        }
        DATA_TRY(put_char(r, c));
        if (c == '\n')
            newline(lx);
    }
    /* after the closing quote: blanks, then a separator or the end of the record */
    while (lx->pos < lx->len && is_blank(lx, lx->s[lx->pos]) && !at_record_end(lx))
        lx->pos++;
    if (!at_record_end(lx) && lx->s[lx->pos] != lx->sep)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s:%d:%d: '%c' after a closing quote (a quote inside a field "
                               "is written \"\")",
                               lx->name, lx->line, (int)(lx->pos - lx->line_at) + 1,
                               lx->s[lx->pos]);
    return NERVE_OK;
}

static int plain_field(lexer *lx, record *r)
{
    size_t a = lx->pos;
    while (!at_record_end(lx) && lx->s[lx->pos] != lx->sep) {
        if (lx->s[lx->pos] == '"')
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "%s:%d:%d: a quote inside an unquoted field (enclose the "
                                   "field in quotes and write the quote as \"\")",
                                   lx->name, lx->line, (int)(lx->pos - lx->line_at) + 1);
        lx->pos++;
    }
    size_t b = lx->pos;
    while (a < b && is_blank(lx, lx->s[a]))
        a++;
    while (b > a && is_blank(lx, lx->s[b - 1]))
        b--;
    for (size_t i = a; i < b; i++)
        DATA_TRY(put_char(r, lx->s[i]));
    return NERVE_OK;
}

/* Reads the next record into r: 1 when one was read, 0 at the end, or an error. Records
 * that are blank lines are skipped. */
static int next_record(lexer *lx, record *r)
{
    for (;;) {
        r->n = 0;
        r->used = 0;
        if (lx->pos >= lx->len)
            return 0;
        for (;;) {
            size_t p = lx->pos;
            while (p < lx->len && is_blank(lx, lx->s[p]) && lx->s[p] != '\r')
                p++;
            int quoted = p < lx->len && lx->s[p] == '"';
            if (quoted)
                lx->pos = p;
            DATA_TRY(start_field(r, lx, quoted));
            DATA_TRY(quoted ? quoted_field(lx, r) : plain_field(lx, r));
            DATA_TRY(put_char(r, '\0'));
            if (at_record_end(lx))
                break;
            lx->pos++; /* the separator */
        }
        end_record(lx);
        if (!(r->n == 1 && !r->quoted[0] && r->buf[r->off[0]] == '\0'))
            return 1;
    }
}

/* ---- the table ------------------------------------------------------------------------ */

static const char *fld(const record *r, int i) { return r->buf + r->off[i]; }

/* Parses a whole field as a finite number. */
static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s)
        return 0;
    while (*end == ' ' || *end == '\t')
        end++; /* blanks inside quotes: " 5 " */
    if (*end != '\0' || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static int record_all_numbers(const record *r)
{
    double v;
    for (int i = 0; i < r->n; i++)
        if (!parse_number(fld(r, i), &v))
            return 0;
    return 1;
}

/* A header: a first record with a text field where the second record has a number (or,
 * alone, any text field). */
static int looks_like_header(const record *first, const record *second, int have_second)
{
    double v;
    for (int i = 0; i < first->n; i++) {
        if (parse_number(fld(first, i), &v))
            continue;
        if (!have_second || i >= second->n || parse_number(fld(second, i), &v))
            return 1;
    }
    return 0;
}

/* Resolves a column given by header name or integer index (negative counts from the end). */
static int resolve_column(const char *spec, const record *header, int has_header, int cols,
                          const char *name, const char *what, int *out)
{
    if (has_header)
        for (int i = 0; i < header->n; i++)
            if (!strcmp(fld(header, i), spec)) {
                *out = i;
                return NERVE_OK;
            }
    char *end;
    errno = 0;
    long v = strtol(spec, &end, 10);
    if (*spec && !*end && !errno) {
        long c = v < 0 ? cols + v : v;
        if (c < 0 || c >= cols)
            return nerve_set_error(NERVE_ERR_ARG, "%s: %s column %ld out of range for %d columns",
                                   name, what, v, cols);
        *out = (int)c;
        return NERVE_OK;
    }
    return nerve_set_error(NERVE_ERR_ARG, "%s: %s column '%s' is %s", name, what, spec,
                           has_header ? "not a name in the header" :
                                        "not a number and the file has no header");
}

typedef struct table {
    const char *name;
    int cols;
    int label;           /* column index or -1 */
    unsigned char *role; /* per column: 0 feature, 1 label, 2 target */
    int *tcol;           /* target columns in the order given */
    int n_targets, n_features;
    int rows;
    float *x, *t, *y;    /* grown as rows arrive */
    size_t cap_rows;
    char **label_text;   /* string labels per row (NULL while labels are numeric) */
    int label_kind;      /* 0 unknown, 1 numbers, 2 names */
    int first_label_line, first_label_col;
    float scale;
} table;

static void table_free(table *t)
{
    nerve_xfree(t->role);
    nerve_xfree(t->tcol);
    nerve_xfree(t->x);
    nerve_xfree(t->t);
    nerve_xfree(t->y);
    if (t->label_text)
        for (int i = 0; i < t->rows; i++)
            nerve_xfree(t->label_text[i]);
    nerve_xfree(t->label_text);
}

static int grow(table *t)
{
    if ((size_t)t->rows < t->cap_rows)
        return NERVE_OK;
    if (t->rows == INT_MAX - 1)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: too many rows", t->name);
    size_t cap = t->cap_rows ? 2 * t->cap_rows : 256;
    float *x = nerve_xrealloc(t->x, cap * (size_t)(t->n_features ? t->n_features : 1) * sizeof(float));
    if (x)
        t->x = x;
    float *tv = x ? nerve_xrealloc(t->t, cap * (size_t)(t->n_targets ? t->n_targets : 1) * sizeof(float))
                  : NULL;
    if (tv)
        t->t = tv;
    float *y = tv ? nerve_xrealloc(t->y, cap * sizeof(float)) : NULL;
    if (y)
        t->y = y;
    char **lt = y ? nerve_xrealloc(t->label_text, cap * sizeof(char *)) : NULL;
    if (!lt)
        return NERVE_ERR_NOMEM;
    t->label_text = lt;
    t->cap_rows = cap;
    return NERVE_OK;
}

static int field_error(const table *t, const record *r, int c, const char *what,
                       const char *why)
{
    const char *s = fld(r, c);
    int n = (int)strlen(s);
    return nerve_set_error(NERVE_ERR_FORMAT, "%s:%d:%d: %s'%.*s'%s %s", t->name, r->line[c],
                           r->col[c], what, n > 40 ? 40 : n, s, n > 40 ? "..." : "", why);
}

static int add_row(table *t, const record *r)
{
    if (r->n != t->cols)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: expected %d fields, found %d", t->name,
                               r->line[0], t->cols, r->n);
    DATA_TRY(grow(t));
    float *x = t->x + (size_t)t->rows * t->n_features;
    const char *label_name = NULL;
    float label = -1.0f;
    for (int c = 0; c < t->cols; c++) {
        double v = 0;
        const char *s = fld(r, c);
        if (t->role[c] == 1) {
            int num = parse_number(s, &v);
            int kind = num ? 1 : 2;
            if (!*s)
                return field_error(t, r, c, "label ", "is empty");
            if (t->label_kind && kind != t->label_kind)
                return nerve_set_error(
                    NERVE_ERR_FORMAT,
                    "%s:%d:%d: label '%.40s' is %s while the label at %d:%d is %s: a label column "
                    "holds either class indices or class names",
                    t->name, r->line[c], r->col[c], s, num ? "a number" : "a name",
                    t->first_label_line, t->first_label_col, num ? "a name" : "a number");
            if (!t->label_kind) {
                t->label_kind = kind;
                t->first_label_line = r->line[c];
                t->first_label_col = r->col[c];
            }
            if (num && !(v >= 0 && v < MAX_LABEL && v == floor(v)))
                return field_error(t, r, c, "label ", "is not a non-negative integer");
            if (num)
                label = (float)v;
            else
                label_name = s;
            continue;
        }
        if (!parse_number(s, &v))
            return field_error(t, r, c, "", "is not a number");
        if (t->role[c] == 0)
            *x++ = (float)v * t->scale;
    }
    for (int k = 0; k < t->n_targets; k++) {
        double v = 0;
        parse_number(fld(r, t->tcol[k]), &v);
        t->t[(size_t)t->rows * t->n_targets + k] = (float)v;
    }
    t->y[t->rows] = label;
    t->label_text[t->rows] = NULL;
    if (label_name && !(t->label_text[t->rows] = nerve_xstrdup(label_name)))
        return NERVE_ERR_NOMEM;
    t->rows++;
    return NERVE_OK;
}

/* Sets up the columns' roles from the options, once the column count is known. */
static int table_init(table *t, const nerve_csv_options *o, const record *header, int has_header,
                      int cols)
{
    t->cols = cols;
    t->label = -1;
    t->role = nerve_xcalloc((size_t)cols, 1);
    t->tcol = nerve_xcalloc((size_t)cols, sizeof *t->tcol);
    if (!t->role || !t->tcol)
        return NERVE_ERR_NOMEM;
    if (o->targets && o->targets[0]) {
        const char *p = o->targets;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            char spec[256];
            if (n == 0 || n >= sizeof spec)
                return nerve_set_error(NERVE_ERR_ARG, "%s: bad target column list '%s'", t->name,
                                       o->targets);
            memcpy(spec, p, n);
            spec[n] = '\0';
            int c;
            DATA_TRY(resolve_column(spec, header, has_header, cols, t->name, "target", &c));
            if (t->role[c])
                return nerve_set_error(NERVE_ERR_ARG, "%s: column '%s' is named twice as a target",
                                       t->name, spec);
            t->role[c] = 2;
            t->tcol[t->n_targets++] = c;
            p += n + (comma != NULL);
        }
    }
    const char *label = o->label;
    if (!label)
        label = t->n_targets ? "" : "-1";
    if (label[0]) {
        DATA_TRY(resolve_column(label, header, has_header, cols, t->name, "label", &t->label));
        if (t->role[t->label])
            return nerve_set_error(NERVE_ERR_ARG, "%s: column '%s' is both the label and a target",
                                   t->name, label);
        t->role[t->label] = 1;
    }
    t->n_features = cols - t->n_targets - (t->label >= 0);
    if (t->n_features < 1)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: no feature column is left beside the label and targets "
                               "(%d columns)",
                               t->name, cols);
    return NERVE_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* String labels -> indices: in the order of o->class_names if given, else sorted. */
static int map_names(table *t, const nerve_csv_options *o, nerve_dataset *d)
{
    char **names = NULL;
    int k = 0;
    if (o->class_names) {
        k = o->n_class_names;
        names = (char **)o->class_names;
    } else {
        names = nerve_xmalloc((size_t)t->rows * sizeof *names);
        if (!names)
            return NERVE_ERR_NOMEM;
        memcpy(names, t->label_text, (size_t)t->rows * sizeof *names);
        qsort(names, (size_t)t->rows, sizeof *names, cmp_str);
        for (int i = 0; i < t->rows; i++)
            if (k == 0 || strcmp(names[k - 1], names[i]))
                names[k++] = names[i];
    }
    int st = NERVE_OK;
    for (int i = 0; i < t->rows && st == NERVE_OK; i++) {
        /* binary search when sorted, linear through a given list */
        int found = -1;
        if (!o->class_names) {
            int lo = 0, hi = k - 1;
            while (lo <= hi) {
                int mid = (lo + hi) / 2, c = strcmp(names[mid], t->label_text[i]);
                if (!c) {
                    found = mid;
                    break;
                }
                if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid - 1;
            }
        } else {
            for (int j = 0; j < k && found < 0; j++)
                if (!strcmp(names[j], t->label_text[i]))
                    found = j;
        }
        if (found < 0)
            st = nerve_set_error(NERVE_ERR_FORMAT,
                                 "%s: data row %d: label '%.40s' is not one of the %d class names "
                                 "given",
                                 t->name, i + 1, t->label_text[i], k);
        else
            d->y[i] = (float)found;
    }
    if (st == NERVE_OK) {
        st = nerve_dataset_set_names(d, k, (const char *const *)names);
        d->n_classes = k;
    }
    if (!o->class_names)
        nerve_xfree(names);
    return st;
}

static int build(nerve_dataset *d, table *t, const nerve_csv_options *o)
{
    if (t->rows == 0)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: no data rows", t->name);
    int st = nerve_dataset_alloc(d, t->rows, 1, &t->n_features);
    if (st < 0)
        return st;
    memcpy(d->x, t->x, (size_t)t->rows * t->n_features * sizeof(float));
    if (t->n_targets) {
        DATA_TRY(nerve_dataset_alloc_target(d, NERVE_TARGET_VALUES, 1, &t->n_targets));
        memcpy(d->t, t->t, (size_t)t->rows * t->n_targets * sizeof(float));
    }
    if (t->label < 0)
        return NERVE_OK;
    if (t->label_kind == 2)
        return map_names(t, o, d);
    int max_label = -1;
    for (int r = 0; r < t->rows; r++) {
        d->y[r] = t->y[r];
        if ((int)t->y[r] > max_label)
            max_label = (int)t->y[r];
    }
    d->n_classes = max_label + 1;
    if (o->class_names) {
        if (max_label >= o->n_class_names)
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: class %d but only %d class names", t->name,
                                   max_label, o->n_class_names);
        d->n_classes = o->n_class_names;
        st = nerve_dataset_set_names(d, o->n_class_names, o->class_names);
    }
    return st;
}

nerve_csv_options nerve_csv_default(void)
{
    nerve_csv_options o;
    memset(&o, 0, sizeof o);
    o.sep = ',';
    o.header = NERVE_CSV_HEADER_AUTO;
    o.scale = 1.0f;
    return o;
}

/* Skips the first n physical lines. */
static int skip_lines(lexer *lx, int n)
{
    for (int i = 0; i < n; i++) {
        const char *nl = memchr(lx->s + lx->pos, '\n', lx->len - lx->pos);
        if (!nl)
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: csv_skip=%d but the file has %d lines",
                                   lx->name, n, i + (lx->pos < lx->len));
        lx->pos = (size_t)(nl - lx->s) + 1;
        newline(lx);
    }
    return NERVE_OK;
}

int nerve_dataset_parse_csv(nerve_dataset *d, const char *text, size_t len, const char *name,
                            const nerve_csv_options *opt)
{
    if (!d || (!text && len))
        return nerve_set_error(NERVE_ERR_ARG, "parse csv: null argument");
    memset(d, 0, sizeof *d);
    nerve_csv_options o = opt ? *opt : nerve_csv_default();
    if (!name)
        name = "<csv>";
    if (!o.sep)
        o.sep = ',';
    if (o.sep == '"' || o.sep == '\n' || o.sep == '\r')
        return nerve_set_error(NERVE_ERR_ARG, "%s: the separator cannot be a quote or a line break",
                               name);
    if (!(o.scale > 0) || !isfinite(o.scale))
        o.scale = 1.0f;
    if (o.skip < 0)
        return nerve_set_error(NERVE_ERR_ARG, "%s: negative line skip %d", name, o.skip);
    lexer lx = {.name = name, .s = text, .len = len, .line = 1, .sep = o.sep};
    record first = {0}, second = {0};
    table t = {.name = name, .scale = o.scale};
    int st = skip_lines(&lx, o.skip);
    int got1 = st == NERVE_OK ? next_record(&lx, &first) : st;
    int got2 = got1 > 0 ? next_record(&lx, &second) : 0;
    if (got1 < 0 || got2 < 0)
        st = got1 < 0 ? got1 : got2;
    else if (got1 == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: no data rows", name);
    int has_header = 0;
    if (st == NERVE_OK) {
        if (o.header == NERVE_CSV_HEADER_YES)
            has_header = 1;
        else if (o.header == NERVE_CSV_HEADER_AUTO)
            has_header = !record_all_numbers(&first) && looks_like_header(&first, &second, got2);
        st = table_init(&t, &o, &first, has_header, first.n);
    }
    if (st == NERVE_OK && !has_header)
        st = add_row(&t, &first);
    if (st == NERVE_OK && got2)
        st = add_row(&t, &second);
    while (st == NERVE_OK && got2 > 0) {
        int got = next_record(&lx, &second);
        if (got < 0)
            st = got;
        else if (got == 0)
            break;
        else
            st = add_row(&t, &second);
    }
    if (st == NERVE_OK)
        st = build(d, &t, &o);
    table_free(&t);
    record_free(&first);
    record_free(&second);
    if (st < 0)
        nerve_dataset_free(d);
    return st;
}

int nerve_dataset_load_csv_ex(nerve_dataset *d, const char *path, const nerve_csv_options *o)
{
    if (!d || !path)
        return nerve_set_error(NERVE_ERR_ARG, "load csv: null argument");
    memset(d, 0, sizeof *d);
    size_t len = 0;
    char *text = data_read_file(path, &len);
    if (!text)
        return nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
    int st = nerve_dataset_parse_csv(d, text, len, path, o);
    nerve_xfree(text);
    return st;
}

int nerve_dataset_load_csv(nerve_dataset *d, const char *path, int label_col)
{
    nerve_csv_options o = nerve_csv_default();
    char spec[32] = "";
    if (label_col != NERVE_CSV_NO_LABEL)
        snprintf(spec, sizeof spec, "%d", label_col);
    o.label = spec;
    return nerve_dataset_load_csv_ex(d, path, &o);
}
