/* Class-name files (darknet's .names): the name of class i on line i + 1. Surrounding
 * blanks and a CR before the LF are removed; blank lines at the end are ignored; an empty
 * line before the last name, a duplicate name or a NUL byte is an error naming file:line. */
#include "data.h"

#include <string.h>

void nerve_names_free(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        nerve_xfree(names[i]);
    nerve_xfree(names);
}

int nerve_names_parse(const char *text, size_t len, const char *name, char ***out, int *n_out)
{
    if (!out || !n_out || (!text && len))
        return nerve_set_error(NERVE_ERR_ARG, "names: bad arguments");
    *out = NULL;
    *n_out = 0;
    if (!name)
        name = "<names>";
    if (memchr(text, '\0', len))
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: a NUL byte (not a text file)", name);
    strlist l = {0};
    int st = NERVE_OK, line = 0, blank_line = 0;
    for (size_t pos = 0; pos < len && st == NERVE_OK;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + 1;
        line++;
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        while (n && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        if (n == 0) {
            if (!blank_line)
                blank_line = line;
            continue;
        }
        if (blank_line) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: an empty line among the class names "
                                 "(line i + 1 names class i)", name, blank_line);
            break;
        }
        char buf[256];
        if (n >= sizeof buf) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: a class name of %zu bytes (at most %zu)",
                                 name, line, n, sizeof buf - 1);
            break;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        for (int i = 0; i < l.n && st == NERVE_OK; i++)
            if (!strcmp(l.s[i], buf))
                st = nerve_set_error(NERVE_ERR_FORMAT, "%s:%d: '%s' is also the name of class %d",
                                     name, line, buf, i);
        if (st == NERVE_OK && l.n >= 1000000)
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: more than a million class names", name);
        if (st == NERVE_OK)
            st = strlist_add(&l, buf);
    }
    if (st == NERVE_OK && l.n == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: no class names", name);
    if (st < 0) {
        strlist_free(&l);
        return st;
    }
    *out = l.s;
    *n_out = l.n;
    return NERVE_OK;
}

int nerve_names_load(const char *path, char ***out, int *n)
{
    if (!path)
        return nerve_set_error(NERVE_ERR_ARG, "names: null path");
    size_t len = 0;
    char *text = data_read_file(path, &len);
    if (!text)
        return nerve_last_status() < 0 ? nerve_last_status() : NERVE_ERR_IO;
    int st = nerve_names_parse(text, len, path, out, n);
    nerve_xfree(text);
    return st;
}

int nerve_dataset_use_names(nerve_dataset *d, const char *const *names, int n, const char *what)
{
    if (!d || !names || n < 1)
        return nerve_set_error(NERVE_ERR_ARG, "use names: bad arguments");
    if (!what)
        what = "the names file";
    if (d->n_names > 0) {
        /* remap the data set's own names (folders, CSV names) to the list's indices */
        int *map = nerve_xmalloc((size_t)d->n_names * sizeof *map);
        if (!map)
            return NERVE_ERR_NOMEM;
        for (int k = 0; k < d->n_names; k++) {
            map[k] = -1;
            for (int i = 0; i < n && map[k] < 0; i++)
                if (!strcmp(d->names[k], names[i]))
                    map[k] = i;
            if (map[k] < 0) {
                int st = nerve_set_error(NERVE_ERR_FORMAT, "class '%s' of the data is not in %s "
                                         "(%d names)", d->names[k], what, n);
                nerve_xfree(map);
                return st;
            }
        }
        for (int i = 0; i < d->n; i++)
            if (d->y[i] >= 0 && d->y[i] < d->n_names)
                d->y[i] = (float)map[(int)d->y[i]];
        nerve_xfree(map);
    } else {
        for (int i = 0; i < d->n; i++)
            if (d->y[i] >= n)
                return nerve_set_error(NERVE_ERR_FORMAT, "sample %d has class %d but %s has %d "
                                       "names", i, (int)d->y[i], what, n);
    }
    d->n_classes = n;
    return nerve_dataset_set_names(d, n, names);
}
