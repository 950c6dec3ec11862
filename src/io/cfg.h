/* An INI reader for darknet-style cfg files (internal).
 *
 * A document is a list of sections ("[name]" lines) holding "key=value" entries; '#' and
 * ';' start comments (a whole line, or the rest of a line after whitespace). Every section
 * and entry keeps its line number so that every message can read "<file>:<line>: ...".
 * The reader itself rejects malformed lines, keys outside a section and duplicate keys; the
 * typed getters reject values of the wrong type or range. All errors are NERVE_ERR_FORMAT
 * and leave the message in nerve_last_error(). */
#ifndef NERVE_IO_CFG_H
#define NERVE_IO_CFG_H

#include "nerve.h"

typedef struct cfg_entry {
    char *key;
    char *value;
    int line;
} cfg_entry;

typedef struct cfg_section {
    char *name;
    int line;
    cfg_entry *entries;
    int n_entries, cap_entries;
} cfg_section;

typedef struct cfg_doc {
    char *file;       /* name used in messages (owned copy) */
    cfg_section *sections;
    int n_sections, cap_sections;
    int n_lines;      /* line number of the last line (for "missing ..." errors) */
} cfg_doc;

/* Parses text into d (which is reset first). On error d is freed and a negative status
 * returned. file may be NULL ("<cfg>"). */
int cfg_parse(cfg_doc *d, const char *text, const char *file);
void cfg_free(cfg_doc *d);

/* Sets "<file>:<line>: message" as the error and returns status. */
int cfg_error(const cfg_doc *d, int status, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Writes a printable, shortened copy of s into buf (for quoting user text in messages). */
const char *cfg_quote(const char *s, char *buf, size_t size);

/* The entry for key, or NULL. */
const cfg_entry *cfg_find(const cfg_section *s, const char *key);
/* Fails on the first key of s not in the NULL-terminated list `known`, naming them all. */
int cfg_check_keys(const cfg_doc *d, const cfg_section *s, const char *const *known);

/* Typed getters. Each returns 1 when the key is present and *out was set, 0 when it is
 * absent (*out untouched), or a negative status (message set) when the value is bad. */

/* Bounds of a numeric range; lo/hi may be -INFINITY/INFINITY for "none". */
typedef struct cfg_range {
    double lo, hi;
    int lo_open, hi_open; /* exclusive bounds */
} cfg_range;

int cfg_get_float(const cfg_doc *d, const cfg_section *s, const char *key, cfg_range r,
                  float *out);
int cfg_get_int(const cfg_doc *d, const cfg_section *s, const char *key, long lo, long hi,
                int *out);
int cfg_get_int64(const cfg_doc *d, const cfg_section *s, const char *key, int64_t lo,
                  int64_t hi, int64_t *out);
int cfg_get_u64(const cfg_doc *d, const cfg_section *s, const char *key, uint64_t *out);
/* 0 or 1 only. */
int cfg_get_bool(const cfg_doc *d, const cfg_section *s, const char *key, int *out);
int cfg_get_string(const cfg_doc *d, const cfg_section *s, const char *key, const char **out);
/* Comma-separated lists; *n receives the count (at most cap, else an error). */
int cfg_get_float_list(const cfg_doc *d, const cfg_section *s, const char *key, cfg_range r,
                       float *out, int cap, int *n);
int cfg_get_int_list(const cfg_doc *d, const cfg_section *s, const char *key, long lo, long hi,
                     int *out, int cap, int *n);

#endif
