/* What changed between two cfg texts, key by key: what a resumed run reports when its cfg is
 * not the one its checkpoint was trained with. Sections are paired by position ([net] with
 * [net], the k-th layer with the k-th layer); values that both read as numbers are compared
 * as numbers, so "0.01" and "1e-2" are the same learning rate. Comments, blank lines and
 * the order of keys inside a section do not count. */
#include "cfg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct diff_out {
    char *buf;
    size_t size, used;
    int count;
} diff_out;

static void add(diff_out *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Appends one difference ("; "-separated); the count goes on when the buffer is full. */
static void add(diff_out *o, const char *fmt, ...)
{
    o->count++;
    if (!o->buf || o->size == 0 || o->used + 1 >= o->size)
        return;
    if (o->count > 1) {
        int k = snprintf(o->buf + o->used, o->size - o->used, "; ");
        o->used += (size_t)k < o->size - o->used ? (size_t)k : o->size - o->used - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + o->used, o->size - o->used, fmt, ap);
    va_end(ap);
    if (k > 0)
        o->used += (size_t)k < o->size - o->used ? (size_t)k : o->size - o->used - 1;
}

static int same_value(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return 1;
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    return ea != a && eb != b && !*ea && !*eb && x == y && !isnan(x);
}

/* "[net]" or "[connected] (layer 2)": how a section is named in the report. */
static void section_label(const cfg_section *s, int index, char *buf, size_t n)
{
    if (index == 0 && !strcmp(s->name, "net"))
        snprintf(buf, n, "[net]");
    else
        snprintf(buf, n, "[%s] (layer %d)", s->name, index);
}

static void diff_sections(diff_out *o, const cfg_section *a, const cfg_section *b, int index)
{
    char label[96], qa[64], qb[64];
    section_label(a, index, label, sizeof label);
    if (strcmp(a->name, b->name) != 0) {
        add(o, "layer %d: [%s] -> [%s]", index, cfg_quote(a->name, qa, sizeof qa),
            cfg_quote(b->name, qb, sizeof qb));
        return;
    }
    for (int i = 0; i < a->n_entries; i++) {
        const cfg_entry *ea = &a->entries[i];
        const cfg_entry *eb = cfg_find(b, ea->key);
        if (!eb)
            add(o, "%s %s: %s -> (removed)", label, ea->key, cfg_quote(ea->value, qa, sizeof qa));
        else if (!same_value(ea->value, eb->value))
            add(o, "%s %s: %s -> %s", label, ea->key, cfg_quote(ea->value, qa, sizeof qa),
                cfg_quote(eb->value, qb, sizeof qb));
    }
    for (int i = 0; i < b->n_entries; i++) {
        const cfg_entry *eb = &b->entries[i];
        if (!cfg_find(a, eb->key))
            add(o, "%s %s: (absent) -> %s", label, eb->key, cfg_quote(eb->value, qb, sizeof qb));
    }
}

int nerve_cfg_diff(const char *old_text, const char *new_text, char *out, size_t size)
{
    if (!old_text || !new_text)
        return nerve_set_error(NERVE_ERR_ARG, "cfg diff: null text");
    if (out && size)
        out[0] = '\0';
    cfg_doc a, b;
    int st = cfg_parse(&a, old_text, "<checkpoint cfg>");
    if (st < 0)
        return st;
    if ((st = cfg_parse(&b, new_text, "<cfg>")) < 0) {
        cfg_free(&a);
        return st;
    }
    diff_out o = {out, size, 0, 0};
    int common = a.n_sections < b.n_sections ? a.n_sections : b.n_sections;
    for (int i = 0; i < common; i++)
        diff_sections(&o, &a.sections[i], &b.sections[i], i);
    if (a.n_sections != b.n_sections)
        add(&o, "%d layers -> %d layers", a.n_sections - 1, b.n_sections - 1);
    char q[64];
    for (int i = common; i < a.n_sections; i++)
        add(&o, "layer %d [%s] removed", i, cfg_quote(a.sections[i].name, q, sizeof q));
    for (int i = common; i < b.n_sections; i++)
        add(&o, "layer %d [%s] added", i, cfg_quote(b.sections[i].name, q, sizeof q));
    cfg_free(&a);
    cfg_free(&b);
    return o.count;
}
