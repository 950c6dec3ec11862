/* The INI reader behind cfg files: lines -> sections of key=value entries, and typed,
 * range-checked getters whose messages all read "<file>:<line>: ...". */
#include "cfg.h"

#include "../core/core.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_LINE 4096 /* longer lines are rejected: no cfg needs them */

/* ---- errors ---------------------------------------------------------------------------- */

int cfg_error(const cfg_doc *d, int status, int line, const char *fmt, ...)
{
    char msg[3600]; /* room for a section's whole key list */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nerve_set_error(status, "%s:%d: %s", d && d->file ? d->file : "<cfg>", line, msg);
}

const char *cfg_quote(const char *s, char *buf, size_t size)
{
    size_t n = 0, limit = size > 4 ? size - 4 : 0; /* room for "..." and the terminator */
    for (; s && *s && n < limit; s++)
        buf[n++] = isprint((unsigned char)*s) ? *s : '?';
    if (s && *s && size >= 4) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    if (size)
        buf[n < size ? n : size - 1] = '\0';
    return buf;
}

/* ---- building the document ------------------------------------------------------------ */

static char *dup_range(const char *a, const char *b)
{
    char *s = nerve_xmalloc((size_t)(b - a) + 1);
    if (!s)
        return NULL;
    memcpy(s, a, (size_t)(b - a));
    s[b - a] = '\0';
    return s;
}

static int add_section(cfg_doc *d, const char *a, const char *b, int line)
{
    if (d->n_sections == d->cap_sections) {
        int cap = d->cap_sections ? 2 * d->cap_sections : 16;
        cfg_section *p = nerve_xrealloc(d->sections, (size_t)cap * sizeof *p);
        if (!p)
            return NERVE_ERR_NOMEM;
        d->sections = p;
        d->cap_sections = cap;
    }
    cfg_section *s = &d->sections[d->n_sections];
    memset(s, 0, sizeof *s);
    s->name = dup_range(a, b);
    if (!s->name)
        return NERVE_ERR_NOMEM;
    s->line = line;
    d->n_sections++;
    return NERVE_OK;
}

static int add_entry(cfg_section *s, const char *k0, const char *k1, const char *v0,
                     const char *v1, int line)
{
    if (s->n_entries == s->cap_entries) {
        int cap = s->cap_entries ? 2 * s->cap_entries : 8;
        cfg_entry *p = nerve_xrealloc(s->entries, (size_t)cap * sizeof *p);
        if (!p)
            return NERVE_ERR_NOMEM;
        s->entries = p;
        s->cap_entries = cap;
    }
    cfg_entry *e = &s->entries[s->n_entries];
    e->key = dup_range(k0, k1);
    e->value = dup_range(v0, v1);
    e->line = line;
    if (!e->key || !e->value) {
        nerve_xfree(e->key);
        nerve_xfree(e->value);
        return NERVE_ERR_NOMEM;
    }
    s->n_entries++;
    return NERVE_OK;
}

void cfg_free(cfg_doc *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_sections; i++) {
        cfg_section *s = &d->sections[i];
        for (int k = 0; k < s->n_entries; k++) {
            nerve_xfree(s->entries[k].key);
            nerve_xfree(s->entries[k].value);
        }
        nerve_xfree(s->entries);
        nerve_xfree(s->name);
    }
    nerve_xfree(d->sections);
    nerve_xfree(d->file);
    memset(d, 0, sizeof *d);
}

/* ---- lines ----------------------------------------------------------------------------- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
static int is_name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'; }

static void trim(const char **a, const char **b)
{
    while (*a < *b && is_space(**a))
        (*a)++;
    while (*b > *a && is_space((*b)[-1]))
        (*b)--;
}

/* A comment starts at '#' or ';' at the start of the text or after whitespace. */
static const char *strip_comment(const char *a, const char *b)
{
    for (const char *p = a; p < b; p++)
        if ((*p == '#' || *p == ';') && (p == a || is_space(p[-1])))
            return p;
    return b;
}

static int valid_name(const char *a, const char *b)
{
    if (a == b)
        return 0;
    for (const char *p = a; p < b; p++)
        if (!is_name_char(*p))
            return 0;
    return 1;
}

static int quote_range(const char *a, const char *b, char *buf, size_t size)
{
    char tmp[96];
    size_t n = (size_t)(b - a) < sizeof tmp - 1 ? (size_t)(b - a) : sizeof tmp - 1;
    memcpy(tmp, a, n);
    tmp[n] = '\0';
    cfg_quote(tmp, buf, size);
    return (size_t)(b - a) > n; /* truncated */
}

static int parse_header(cfg_doc *d, const char *a, const char *b, int line)
{
    const char *close = memchr(a, ']', (size_t)(b - a));
    char q[80];
    if (!close) {
        quote_range(a, b, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, line,
                         "section header '%s' has no closing ']'; expected '[name]'", q);
    }
    const char *rest = close + 1, *end = b;
    trim(&rest, &end);
    if (rest != end && *rest != '#' && *rest != ';') {
        quote_range(a, b, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, line,
                         "unexpected text after ']' in '%s'; expected '[name]' alone on its line", q);
    }
    const char *n0 = a + 1, *n1 = close;
    trim(&n0, &n1);
    if (!valid_name(n0, n1)) {
        quote_range(a, close + 1, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, line,
                         "malformed section header '%s'; expected '[name]' with a name made of "
                         "letters, digits and '_'", q);
    }
    return add_section(d, n0, n1, line);
}

static int parse_entry(cfg_doc *d, const char *a, const char *b, int line)
{
    char q[80];
    const char *eq = memchr(a, '=', (size_t)(b - a));
    if (!eq) {
        quote_range(a, b, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, line,
                         "cannot read '%s'; expected 'key=value', '[section]' or a comment", q);
    }
    const char *k0 = a, *k1 = eq, *v0 = eq + 1, *v1 = b;
    trim(&k0, &k1);
    v1 = strip_comment(v0, v1);
    trim(&v0, &v1);
    if (!valid_name(k0, k1)) {
        quote_range(k0, k1, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, line,
                         "malformed key '%s'; keys are made of letters, digits and '_'", q);
    }
    if (d->n_sections == 0) {
        quote_range(a, b, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, line,
                         "'%s' is outside any section; a cfg starts with [net]", q);
    }
    cfg_section *s = &d->sections[d->n_sections - 1];
    quote_range(k0, k1, q, sizeof q);
    if (v0 == v1)
        return cfg_error(d, NERVE_ERR_FORMAT, line, "key '%s' in [%s] has no value", q, s->name);
    for (int i = 0; i < s->n_entries; i++)
        if (strlen(s->entries[i].key) == (size_t)(k1 - k0) &&
            memcmp(s->entries[i].key, k0, (size_t)(k1 - k0)) == 0) {
            /* the same value twice (darknet cfgs repeat batch=1 and the like) means one
             * value; two different ones would mean the first to darknet and the last to
             * most other readers */
            if (strlen(s->entries[i].value) == (size_t)(v1 - v0) &&
                memcmp(s->entries[i].value, v0, (size_t)(v1 - v0)) == 0)
                return NERVE_OK;
            /* darknet's cfgs carry a "# Testing" block (batch=1, subdivisions=1) before the
             * "# Training" one; darknet takes the first, and so does nerve for these two */
            if ((!strcmp(s->name, "net") || !strcmp(s->name, "network")) &&
                (!strcmp(s->entries[i].key, "batch") || !strcmp(s->entries[i].key, "subdivisions")))
                return NERVE_OK;
            return cfg_error(d, NERVE_ERR_FORMAT, line,
                             "duplicate key '%s' in [%s] with another value (first set on line "
                             "%d; darknet would take that one); delete one", q, s->name,
                             s->entries[i].line);
        }
    return add_entry(s, k0, k1, v0, v1, line);
}

static int parse_line(cfg_doc *d, const char *a, const char *b, int line)
{
    if ((size_t)(b - a) > CFG_MAX_LINE)
        return cfg_error(d, NERVE_ERR_FORMAT, line, "line is %zu characters long; at most %d",
                         (size_t)(b - a), CFG_MAX_LINE);
    trim(&a, &b);
    if (a == b || *a == '#' || *a == ';')
        return NERVE_OK;
    if (*a == '[')
        return parse_header(d, a, b, line);
    return parse_entry(d, a, b, line);
}

int cfg_parse(cfg_doc *d, const char *text, const char *file)
{
    memset(d, 0, sizeof *d);
    d->file = nerve_xstrdup(file ? file : "<cfg>");
    if (!d->file)
        return NERVE_ERR_NOMEM;
    if (!text) {
        cfg_free(d);
        return nerve_set_error(NERVE_ERR_ARG, "%s: no cfg text", file ? file : "<cfg>");
    }
    int line = 1;
    for (const char *p = text;; line++) {
        const char *end = strchr(p, '\n');
        if (!end)
            end = p + strlen(p);
        int st = parse_line(d, p, end, line);
        if (st) {
            /* keep the message; the document itself is released */
            cfg_free(d);
            return st;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    d->n_lines = line;
    return NERVE_OK;
}

/* ---- lookup ---------------------------------------------------------------------------- */

const cfg_entry *cfg_find(const cfg_section *s, const char *key)
{
    for (int i = 0; i < s->n_entries; i++)
        if (strcmp(s->entries[i].key, key) == 0)
            return &s->entries[i];
    return NULL;
}

int cfg_check_keys(const cfg_doc *d, const cfg_section *s, const char *const *known)
{
    for (int i = 0; i < s->n_entries; i++) {
        const char *const *k = known;
        while (*k && strcmp(*k, s->entries[i].key) != 0)
            k++;
        if (*k)
            continue;
        char list[3000] = "", q[80];
        size_t used = 0;
        for (k = known; *k && used < sizeof list; k++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                     k == known ? "" : ", ", *k);
        return cfg_error(d, NERVE_ERR_FORMAT, s->entries[i].line,
                         "unknown key '%s' in [%s]; expected one of: %s",
                         cfg_quote(s->entries[i].key, q, sizeof q), s->name, list);
    }
    return NERVE_OK;
}

/* ---- typed values ---------------------------------------------------------------------- */

static void describe_range(cfg_range r, char *buf, size_t size)
{
    int has_lo = isfinite(r.lo), has_hi = isfinite(r.hi);
    if (has_lo && has_hi)
        snprintf(buf, size, "in %c%g, %g%c", r.lo_open ? '(' : '[', r.lo, r.hi,
                 r.hi_open ? ')' : ']');
    else if (has_lo)
        snprintf(buf, size, "%s %g", r.lo_open ? ">" : ">=", r.lo);
    else if (has_hi)
        snprintf(buf, size, "%s %g", r.hi_open ? "<" : "<=", r.hi);
    else
        snprintf(buf, size, "finite");
}

static int in_range(double v, cfg_range r)
{
    if (r.lo_open ? !(v > r.lo) : !(v >= r.lo))
        return 0;
    if (r.hi_open ? !(v < r.hi) : !(v <= r.hi))
        return 0;
    return 1;
}

/* Copies the trimmed token [a, b) into buf as a string; -1 if empty or too long. */
static int token_copy(const char *a, const char *b, char *buf, size_t size)
{
    trim(&a, &b);
    if (a == b || (size_t)(b - a) >= size)
        return -1;
    memcpy(buf, a, (size_t)(b - a));
    buf[b - a] = '\0';
    return 0;
}

/* Parses one number from [a, b) (surrounding spaces allowed); 0 on success. */
static int parse_double(const char *a, const char *b, double *out)
{
    char buf[64];
    if (token_copy(a, b, buf, sizeof buf))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || end == buf)
        return -1;
    *out = v;
    return 0;
}

static int parse_long(const char *a, const char *b, long *out)
{
    char buf[32];
    if (token_copy(a, b, buf, sizeof buf))
        return -1;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (*end != '\0' || end == buf || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

static int bad_number(const cfg_doc *d, const cfg_entry *e, const char *what)
{
    char q[80];
    return cfg_error(d, NERVE_ERR_FORMAT, e->line, "%s = '%s' is not %s", e->key,
                     cfg_quote(e->value, q, sizeof q), what);
}

static int out_of_range(const cfg_doc *d, const cfg_entry *e, const char *range)
{
    char q[80];
    return cfg_error(d, NERVE_ERR_FORMAT, e->line, "%s = '%s' is out of range; expected %s",
                     e->key, cfg_quote(e->value, q, sizeof q), range);
}

static int check_float(const cfg_doc *d, const cfg_entry *e, double v, cfg_range r)
{
    char range[80], buf[96];
    if (!isfinite(v) || fabs(v) > 3.0e38)
        return bad_number(d, e, "a finite number");
    if (!in_range(v, r)) {
        describe_range(r, range, sizeof range);
        snprintf(buf, sizeof buf, "a number %s", range);
        return out_of_range(d, e, buf);
    }
    return NERVE_OK;
}

int cfg_get_float(const cfg_doc *d, const cfg_section *s, const char *key, cfg_range r,
                  float *out)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    double v;
    if (parse_double(e->value, e->value + strlen(e->value), &v))
        return bad_number(d, e, "a number");
    int st = check_float(d, e, v, r);
    if (st)
        return st;
    *out = (float)v;
    return 1;
}

static int check_int(const cfg_doc *d, const cfg_entry *e, long v, long lo, long hi)
{
    if (v >= lo && v <= hi)
        return NERVE_OK;
    char buf[96];
    if (hi == LONG_MAX || hi == INT_MAX)
        snprintf(buf, sizeof buf, "an integer >= %ld", lo);
    else
        snprintf(buf, sizeof buf, "an integer in [%ld, %ld]", lo, hi);
    return out_of_range(d, e, buf);
}

int cfg_get_int(const cfg_doc *d, const cfg_section *s, const char *key, long lo, long hi,
                int *out)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    long v;
    if (parse_long(e->value, e->value + strlen(e->value), &v))
        return bad_number(d, e, "an integer");
    if (hi > INT_MAX)
        hi = INT_MAX;
    if (lo < INT_MIN)
        lo = INT_MIN;
    int st = check_int(d, e, v, lo, hi);
    if (st)
        return st;
    *out = (int)v;
    return 1;
}

int cfg_get_int64(const cfg_doc *d, const cfg_section *s, const char *key, int64_t lo,
                  int64_t hi, int64_t *out)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    long v;
    if (parse_long(e->value, e->value + strlen(e->value), &v))
        return bad_number(d, e, "an integer");
    int st = check_int(d, e, v, (long)lo, (long)hi);
    if (st)
        return st;
    *out = (int64_t)v;
    return 1;
}

int cfg_get_u64(const cfg_doc *d, const cfg_section *s, const char *key, uint64_t *out)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    const char *p = e->value;
    if (!isdigit((unsigned char)*p))
        return bad_number(d, e, "a non-negative integer");
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return bad_number(d, e, "a non-negative integer below 2^64");
    *out = (uint64_t)v;
    return 1;
}

int cfg_get_bool(const cfg_doc *d, const cfg_section *s, const char *key, int *out)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    if (strcmp(e->value, "0") != 0 && strcmp(e->value, "1") != 0) {
        char q[80];
        return cfg_error(d, NERVE_ERR_FORMAT, e->line, "%s = '%s' is not a flag; expected 0 or 1",
                         e->key, cfg_quote(e->value, q, sizeof q));
    }
    *out = e->value[0] == '1';
    return 1;
}

int cfg_get_string(const cfg_doc *d, const cfg_section *s, const char *key, const char **out)
{
    (void)d;
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    *out = e->value;
    return 1;
}

/* Calls item(a, b, i) for every comma-separated item of the entry's value. */
static int split_list(const cfg_doc *d, const cfg_entry *e, int cap, int *n,
                      int (*item)(const cfg_doc *, const cfg_entry *, const char *, const char *,
                                  int, void *),
                      void *ctx)
{
    int count = 0;
    const char *p = e->value;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        if (count == cap)
            return cfg_error(d, NERVE_ERR_FORMAT, e->line, "%s has more than %d values", e->key,
                             cap);
        int st = item(d, e, p, end, count, ctx);
        if (st)
            return st;
        count++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *n = count;
    return 1;
}

struct float_ctx { cfg_range r; float *out; };

static int float_item(const cfg_doc *d, const cfg_entry *e, const char *a, const char *b, int i,
                      void *ctx)
{
    struct float_ctx *c = ctx;
    double v;
    char q[80];
    if (parse_double(a, b, &v)) {
        quote_range(a, b, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                         "%s: item %d ('%s') is not a number; expected comma-separated numbers",
                         e->key, i + 1, q);
    }
    int st = check_float(d, e, v, c->r);
    if (st)
        return st;
    c->out[i] = (float)v;
    return NERVE_OK;
}

int cfg_get_float_list(const cfg_doc *d, const cfg_section *s, const char *key, cfg_range r,
                       float *out, int cap, int *n)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    struct float_ctx c = {r, out};
    return split_list(d, e, cap, n, float_item, &c);
}

struct int_ctx { long lo, hi; int *out; };

static int int_item(const cfg_doc *d, const cfg_entry *e, const char *a, const char *b, int i,
                    void *ctx)
{
    struct int_ctx *c = ctx;
    long v;
    char q[80];
    if (parse_long(a, b, &v)) {
        quote_range(a, b, q, sizeof q);
        return cfg_error(d, NERVE_ERR_FORMAT, e->line,
                         "%s: item %d ('%s') is not an integer; expected comma-separated integers",
                         e->key, i + 1, q);
    }
    int st = check_int(d, e, v, c->lo, c->hi);
    if (st)
        return st;
    c->out[i] = (int)v;
    return NERVE_OK;
}

int cfg_get_int_list(const cfg_doc *d, const cfg_section *s, const char *key, long lo, long hi,
                     int *out, int cap, int *n)
{
    const cfg_entry *e = cfg_find(s, key);
    if (!e)
        return 0;
    if (hi > INT_MAX)
        hi = INT_MAX;
    struct int_ctx c = {lo, hi, out};
    return split_list(d, e, cap, n, int_item, &c);
}
