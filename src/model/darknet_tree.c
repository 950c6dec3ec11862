/* darknet's class trees (its tree.c read_tree; data/9k.tree): one class a line, "name
 * parent", parent the line number (from 0) of an earlier class or -1 for a top-level one.
 * A group is a run of consecutive lines with the same parent, in file order; darknet's
 * hierarchical softmax normalises each group on its own ([softmax] tree=, [region] tree=).
 *
 * Nothing in the file is trusted: a line must be a name (1 to 255 characters without
 * blanks) and an integer parent in -1 .. its own line - 1, and at most DARKNET_TREE_MAX
 * classes are read; any other line is an error naming the file and line. */
#include "model.h"

#include "../core/core.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void darknet_tree_free(darknet_tree *t)
{
    if (!t)
        return;
    nerve_xfree(t->parent);
    nerve_xfree(t->group_offset);
    nerve_xfree(t->group_size);
    memset(t, 0, sizeof *t);
}

static int grow(int **p, int *cap, int need)
{
    if (need <= *cap)
        return NERVE_OK;
    int c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    int *q = nerve_xrealloc(*p, (size_t)c * sizeof *q);
    if (!q)
        return NERVE_ERR_NOMEM;
    *p = q;
    *cap = c;
    return NERVE_OK;
}

int darknet_tree_parse(const char *text, size_t len, const char *path, darknet_tree *t)
{
    memset(t, 0, sizeof *t);
    if (!path)
        path = "<tree>";
    int cap_n = 0, cap_g = 0, st = NERVE_OK, line = 0, last_parent = INT_MIN;
    size_t at = 0;
    while (at < len && st == NERVE_OK) {
        size_t end = at;
        while (end < len && text[end] != '\n')
            end++;
        line++;
        size_t a = at, b = end;
        at = end + 1;
        if (b > a && text[b - 1] == '\r')
            b--;
        /* name */
        size_t n0 = a;
        while (a < b && text[a] != ' ' && text[a] != '\t')
            a++;
        size_t name_len = a - n0;
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        /* parent: an optional '-' and digits, then nothing but blanks */
        long parent = 0;
        int neg = a < b && text[a] == '-', digits = 0;
        a += (size_t)neg;
        while (a < b && text[a] >= '0' && text[a] <= '9' && parent <= INT_MAX) {
            parent = parent * 10 + (text[a] - '0');
            a++;
            digits++;
        }
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        if (name_len == 0 || name_len > 255 || !digits || a != b || parent > INT_MAX) {
            st = nerve_set_error(NERVE_ERR_FORMAT,
                                 "%s:%d: expected a class name (1 to 255 characters) and its "
                                 "parent's line number from 0 (-1: none), as darknet's trees "
                                 "(data/9k.tree) give them", path, line);
            break;
        }
        if (neg)
            parent = -parent;
        if (parent < -1 || parent >= t->n) {
            st = nerve_set_error(NERVE_ERR_FORMAT,
                                 "%s:%d: parent %ld is not -1 or the line of an earlier class "
                                 "(0 to %d)", path, line, parent, t->n - 1);
            break;
        }
        if (t->n >= DARKNET_TREE_MAX) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: more than %d classes", path, line,
                                 DARKNET_TREE_MAX);
            break;
        }
        if ((st = grow(&t->parent, &cap_n, t->n + 1)) != NERVE_OK)
            break;
        t->parent[t->n] = (int)parent;
        if ((int)parent != last_parent) { /* a new group starts here */
            int c1 = cap_g;
            if ((st = grow(&t->group_offset, &c1, t->groups + 1)) != NERVE_OK ||
                (st = grow(&t->group_size, &cap_g, t->groups + 1)) != NERVE_OK)
                break;
            t->group_offset[t->groups] = t->n;
            t->group_size[t->groups] = 0;
            t->groups++;
            last_parent = (int)parent;
        }
        t->group_size[t->groups - 1]++;
        t->n++;
    }
    if (st == NERVE_OK && t->n == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: no classes", path);
    if (st != NERVE_OK)
        darknet_tree_free(t);
    return st;
}

int darknet_tree_load(const char *path, darknet_tree *t)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f)
        return nerve_set_error(NERVE_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *buf = nerve_xmalloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            if (cap >= ((size_t)1 << 30)) {
                nerve_xfree(buf);
                fclose(f);
                return nerve_set_error(NERVE_ERR_FORMAT, "%s: larger than 1 GiB", path);
            }
            char *q = nerve_xrealloc(buf, 2 * cap);
            if (!q) {
                nerve_xfree(buf);
                buf = NULL;
                break;
            }
            buf = q;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf)
        return NERVE_ERR_NOMEM;
    int st = err ? nerve_set_error(NERVE_ERR_IO, "%s: read error", path)
                 : darknet_tree_parse(buf, n, path, t);
    nerve_xfree(buf);
    return st;
}

#include <sys/stat.h>

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

int darknet_data_path(build_ctx *b, const cfg_entry *e, char *out, size_t cap)
{
    const char *v = e->value, *base = b->m->base_dir;
    char tried[2][512] = {"", ""};
    int n = 0, len[2] = {0, 0};
    if (v[0] == '/') {
        len[n] = snprintf(tried[n], sizeof tried[0], "%s", v);
        n++;
    } else {
        len[n] = snprintf(tried[n], sizeof tried[0], "%s/%s", base[0] ? base : ".", v);
        n++;
        len[n] = snprintf(tried[n], sizeof tried[0], "/usr/share/darknet/%s", v);
        n++;
    }
    for (int i = 0; i < n; i++)
        if (len[i] > 0 && (size_t)len[i] < cap && (size_t)len[i] < sizeof tried[0] &&
            is_file(tried[i])) {
            snprintf(out, cap, "%s", tried[i]);
            return NERVE_OK;
        }
    return cfg_error(b->d, NERVE_ERR_IO, e->line,
                     "%s = %s: no such file (looked for %s%s%s); a relative path is read from "
                     "the cfg's folder, then from darknet's /usr/share/darknet", e->key, v,
                     tried[0], n > 1 ? " and " : "", n > 1 ? tried[1] : "");
}

/* tree= of [softmax] / [region]: the tree, whose classes must be `classes` */
int darknet_tree_of(build_ctx *b, const cfg_entry *e, int classes, darknet_tree *t)
{
    char path[512];
    TRY(darknet_data_path(b, e, path, sizeof path));
    int st = darknet_tree_load(path, t);
    if (st != NERVE_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", nerve_last_error());
        return cfg_error(b->d, st, e->line, "tree = %s: %s", e->value, msg);
    }
    if (t->n != classes) {
        int n = t->n;
        darknet_tree_free(t);
        return cfg_error(b->d, NERVE_ERR_SHAPE, e->line,
                         "tree = %s has %d classes but the layer has %d scores", e->value, n,
                         classes);
    }
    return NERVE_OK;
}

/* map= of [region]: darknet's read_map, one class number a line (the tree's class of each
 * of the data set's classes); checked against the tree's size */
int darknet_map_check(build_ctx *b, const cfg_entry *e, int classes)
{
    char path[512];
    TRY(darknet_data_path(b, e, path, sizeof path));
    FILE *f = fopen(path, "rb");
    if (!f)
        return cfg_error(b->d, NERVE_ERR_IO, e->line, "map = %s: %s", e->value, strerror(errno));
    char line[256];
    int n = 0, st = NERVE_OK;
    while (st == NERVE_OK && fgets(line, sizeof line, f)) {
        n++;
        char *end;
        errno = 0;
        long v = strtol(line, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (end == line || *end || errno || v < 0 || v >= classes || n > DARKNET_TREE_MAX)
            st = cfg_error(b->d, NERVE_ERR_FORMAT, e->line,
                           "map = %s, line %d: expected one class number from 0 to %d a line",
                           e->value, n, classes - 1);
    }
    fclose(f);
    if (st == NERVE_OK && n == 0)
        st = cfg_error(b->d, NERVE_ERR_FORMAT, e->line, "map = %s: no classes", e->value);
    return st;
}

/* darknet's hierarchical softmax ([softmax] tree=): a softmax over each group of x's
 * feature axis (x [N, classes]), joined back in order */
int darknet_tree_softmax(build_ctx *b, int x, const darknet_tree *t, int *y)
{
    int *parts = nerve_xmalloc((size_t)t->groups * sizeof *parts);
    if (!parts)
        return NERVE_ERR_NOMEM;
    int v = 0;
    for (int i = 0; i < t->groups && v >= 0; i++) {
        v = by_name_slice(b->g, x, 1, t->group_offset[i], t->group_offset[i] + t->group_size[i]);
        if (v >= 0)
            v = nerve_softmax(b->g, v, 1);
        parts[i] = v;
    }
    /* joined at most 8 at a time (concat's limit), order kept */
    for (int n = t->groups; v >= 0 && n > 1;) {
        int m = 0;
        for (int i = 0; i < n && v >= 0; i += 8) {
            int k = n - i < 8 ? n - i : 8;
            v = k == 1 ? parts[i] : by_name_concat(b->g, k, parts + i, 1);
            parts[m++] = v;
        }
        n = m;
    }
    if (v >= 0)
        v = parts[0];
    nerve_xfree(parts);
    if (v < 0)
        return graph_fail(b, v);
    *y = v;
    return NERVE_OK;
}
