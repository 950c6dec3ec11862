/* A minimal JSON reader (to a tree) and writer helpers (a growable text buffer with JSON
 * string escaping), enough for safetensors headers and small reports. Internal to
 * libnerve. */
#ifndef NERVE_JSON_H
#define NERVE_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    NERVE_JSON_NULL,
    NERVE_JSON_BOOL,
    NERVE_JSON_NUMBER,
    NERVE_JSON_STRING,
    NERVE_JSON_ARRAY,
    NERVE_JSON_OBJECT
} nerve_json_type;

typedef struct nerve_json nerve_json;
struct nerve_json {
    nerve_json_type type;
    int boolean;
    double number;
    int is_uint;        /* number was written as a non-negative integer that fits u64 */
    uint64_t uint;      /* its exact value (doubles lose integers above 2^53) */
    char *string;       /* decoded UTF-8, NUL-terminated (strings never hold NUL) */
    int count;          /* elements of an array or members of an object */
    nerve_json *items;  /* count values */
    char **keys;        /* objects: count keys, in file order (duplicates kept) */
};

/* Parses text[0..len) (which must be exactly one JSON value, optionally surrounded by
 * whitespace; strings must be valid UTF-8). Returns NULL on error with a message such as
 * "at byte 17: expected ':'" in err (always terminated). Nesting deeper than 64 levels is
 * rejected. */
nerve_json *nerve_json_parse(const char *text, size_t len, char *err, size_t err_size);
void nerve_json_free(nerve_json *v);
/* Member of an object by key (first match), or NULL. */
const nerve_json *nerve_json_get(const nerve_json *obj, const char *key);

/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
int nerve_utf8_valid(const char *s, size_t len);

/* A growable text buffer. Appends never fail visibly: after an allocation failure the
 * buffer is marked failed and later appends are ignored; check `failed` at the end. */
typedef struct nerve_strbuf {
    char *data; /* NUL-terminated when len > 0 */
    size_t len, cap;
    int failed;
} nerve_strbuf;

void nerve_strbuf_append(nerve_strbuf *b, const char *s, size_t n);
void nerve_strbuf_puts(nerve_strbuf *b, const char *s);
void nerve_strbuf_printf(nerve_strbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends s as a quoted JSON string: quotes, backslashes and control characters escaped,
 * other bytes (UTF-8) copied as they are. */
void nerve_json_append_string(nerve_strbuf *b, const char *s);
void nerve_strbuf_free(nerve_strbuf *b);

#endif
