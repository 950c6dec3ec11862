/* A small recursive-descent JSON parser (RFC 8259, strict: no comments, no trailing
 * commas) and the writer helpers declared in json.h. */
#include "json.h"

#include "../core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t len, pos;
    int depth;
    char *err;
    size_t err_size;
    int failed;
} parser;

static int fail(parser *p, const char *what)
{
    if (!p->failed)
        snprintf(p->err, p->err_size, "at byte %zu: %s", p->pos, what);
    p->failed = 1;
    return -1;
}

static void skip_space(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int peek(parser *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static int expect_word(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, "invalid literal");
    p->pos += n;
    return 0;
}

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), 0 if malformed. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min, cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int nerve_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq_len(u + i, len - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

static void put_utf8(nerve_strbuf *b, unsigned cp)
{
    char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), out[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    nerve_strbuf_append(b, out, n);
}

/* ---- strings ---------------------------------------------------------------------- */

static int hex4(parser *p, unsigned *out)
{
    if (p->len - p->pos < 4)
        return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return fail(p, "bad hex digit in \\u escape");
        v = v << 4 | (unsigned)d;
    }
    p->pos += 4;
    *out = v;
    return 0;
}

/* \uXXXX (pos just after the 'u'), joining surrogate pairs. */
static int unicode_escape(parser *p, nerve_strbuf *b)
{
    unsigned cp;
    if (hex4(p, &cp) < 0)
        return -1;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(p, "unpaired low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail(p, "unpaired high surrogate");
        p->pos += 2;
        if (hex4(p, &lo) < 0)
            return -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(p, "bad low surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0)
        return fail(p, "\\u0000 is not supported in strings");
    put_utf8(b, cp);
    return 0;
}

static int escape(parser *p, nerve_strbuf *b)
{
    if (p->pos >= p->len)
        return fail(p, "unterminated string");
    char c = p->s[p->pos++];
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *k = strchr(from, c);
    if (c == 'u')
        return unicode_escape(p, b);
    if (!k || c == '\0')
        return fail(p, "invalid escape in string");
    nerve_strbuf_append(b, to + (k - from), 1);
    return 0;
}

/* A string starting at the opening quote; returns a NUL-terminated copy. */
static char *parse_string(parser *p)
{
    nerve_strbuf b = {0};
    p->pos++; /* opening quote */
    for (;;) {
        if (p->pos >= p->len) {
            fail(p, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            nerve_strbuf_append(&b, "", 0); /* an empty string still gets a buffer */
            if (b.failed)
                fail(p, "out of memory");
            if (p->failed)
                break;
            return b.data;
        }
        if (c < 0x20) {
            fail(p, "control character in string");
            break;
        }
        if (c == '\\') {
            p->pos++;
            if (escape(p, &b) < 0)
                break;
            continue;
        }
        size_t k = utf8_seq_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (!k) {
            fail(p, "invalid UTF-8 in string");
            break;
        }
        nerve_strbuf_append(&b, p->s + p->pos, k);
        p->pos += k;
    }
    nerve_strbuf_free(&b);
    return NULL;
}

/* ---- numbers ---------------------------------------------------------------------- */

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static size_t skip_digits(parser *p)
{
    size_t start = p->pos;
    while (is_digit(peek(p)))
        p->pos++;
    return p->pos - start;
}

static int parse_number(parser *p, nerve_json *v)
{
    size_t start = p->pos;
    int negative = peek(p) == '-';
    if (negative)
        p->pos++;
    if (peek(p) == '0')
        p->pos++;
    else if (!skip_digits(p))
        return fail(p, "invalid number");
    int integer = 1;
    if (peek(p) == '.') {
        p->pos++, integer = 0;
        if (!skip_digits(p))
            return fail(p, "digits expected after '.'");
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++, integer = 0;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (!skip_digits(p))
            return fail(p, "digits expected in exponent");
    }
    char tmp[512];
    size_t n = p->pos - start;
    if (n >= sizeof tmp)
        return fail(p, "number too long");
    memcpy(tmp, p->s + start, n);
    tmp[n] = '\0';
    v->type = NERVE_JSON_NUMBER;
    v->number = strtod(tmp, NULL);
    if (integer && !negative) {
        uint64_t u = 0;
        v->is_uint = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned d = (unsigned)(tmp[i] - '0');
            if (u > (UINT64_MAX - d) / 10) {
                v->is_uint = 0;
                break;
            }
            u = u * 10 + d;
        }
        v->uint = u;
    }
    return 0;
}

/* ---- values ----------------------------------------------------------------------- */

static int parse_value(parser *p, nerve_json *v);

/* Appends a zeroed slot to v's items (and keys, for objects); returns it. */
static nerve_json *add_item(parser *p, nerve_json *v, int *cap)
{
    if (v->count == *cap) {
        int ncap = *cap ? 2 * *cap : 4;
        nerve_json *items = nerve_xrealloc(v->items, (size_t)ncap * sizeof *items);
        if (!items)
            return fail(p, "out of memory"), NULL;
        v->items = items;
        if (v->type == NERVE_JSON_OBJECT) {
            char **keys = nerve_xrealloc(v->keys, (size_t)ncap * sizeof *keys);
            if (!keys)
                return fail(p, "out of memory"), NULL;
            v->keys = keys;
        }
        *cap = ncap;
    }
    nerve_json *slot = &v->items[v->count];
    memset(slot, 0, sizeof *slot);
    if (v->type == NERVE_JSON_OBJECT)
        v->keys[v->count] = NULL;
    v->count++;
    return slot;
}

/* Arrays and objects: `close` is ']' or '}'. */
static int parse_container(parser *p, nerve_json *v, char close)
{
    v->type = close == ']' ? NERVE_JSON_ARRAY : NERVE_JSON_OBJECT;
    if (++p->depth > MAX_DEPTH)
        return fail(p, "nesting too deep");
    p->pos++;
    skip_space(p);
    int cap = 0;
    if (peek(p) == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    for (;;) {
        skip_space(p);
        nerve_json *slot = add_item(p, v, &cap);
        if (!slot)
            return -1;
        if (v->type == NERVE_JSON_OBJECT) {
            if (peek(p) != '"')
                return fail(p, "expected a string key");
            char *key = parse_string(p);
            if (!key)
                return -1;
            v->keys[v->count - 1] = key;
            skip_space(p);
            if (peek(p) != ':')
                return fail(p, "expected ':'");
            p->pos++;
        }
        if (parse_value(p, slot) < 0)
            return -1;
        skip_space(p);
        int c = peek(p);
        p->pos++;
        if (c == close)
            break;
        if (c != ',') {
            p->pos--;
            return fail(p, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
        }
    }
    p->depth--;
    return 0;
}

static int parse_value(parser *p, nerve_json *v)
{
    skip_space(p);
    int c = peek(p);
    switch (c) {
    case '{':
        return parse_container(p, v, '}');
    case '[':
        return parse_container(p, v, ']');
    case '"':
        v->type = NERVE_JSON_STRING;
        v->string = parse_string(p);
        return v->string ? 0 : -1;
    case 't':
        v->type = NERVE_JSON_BOOL, v->boolean = 1;
        return expect_word(p, "true");
    case 'f':
        v->type = NERVE_JSON_BOOL;
        return expect_word(p, "false");
    case 'n':
        v->type = NERVE_JSON_NULL;
        return expect_word(p, "null");
    case -1:
        return fail(p, "unexpected end of text");
    default:
        if (c == '-' || is_digit(c))
            return parse_number(p, v);
        return fail(p, "unexpected character");
    }
}

static void free_contents(nerve_json *v)
{
    for (int i = 0; i < v->count; i++) {
        free_contents(&v->items[i]);
        if (v->keys)
            nerve_xfree(v->keys[i]);
    }
    nerve_xfree(v->items);
    nerve_xfree(v->keys);
    nerve_xfree(v->string);
}

void nerve_json_free(nerve_json *v)
{
    if (!v)
        return;
    free_contents(v);
    nerve_xfree(v);
}

nerve_json *nerve_json_parse(const char *text, size_t len, char *err, size_t err_size)
{
    char dummy[1];
    parser p = {text, len, 0, 0, err ? err : dummy, err ? err_size : sizeof dummy, 0};
    p.err[0] = '\0';
    nerve_json *v = nerve_xcalloc(1, sizeof *v);
    if (!v) {
        fail(&p, "out of memory");
        return NULL;
    }
    if (parse_value(&p, v) == 0) {
        skip_space(&p);
        if (p.pos != p.len)
            fail(&p, "unexpected text after the value");
    }
    if (p.failed) {
        nerve_json_free(v);
        return NULL;
    }
    return v;
}

const nerve_json *nerve_json_get(const nerve_json *obj, const char *key)
{
    if (!obj || obj->type != NERVE_JSON_OBJECT)
        return NULL;
    for (int i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

/* ---- writing ---------------------------------------------------------------------- */

void nerve_strbuf_append(nerve_strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = nerve_xrealloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void nerve_strbuf_puts(nerve_strbuf *b, const char *s) { nerve_strbuf_append(b, s, strlen(s)); }

void nerve_strbuf_printf(nerve_strbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        nerve_strbuf_append(b, small, (size_t)n);
        return;
    }
    char *big = nerve_xmalloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    nerve_strbuf_append(b, big, (size_t)n);
    nerve_xfree(big);
}

void nerve_json_append_string(nerve_strbuf *b, const char *s)
{
    nerve_strbuf_append(b, "\"", 1);
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        nerve_strbuf_append(b, run, (size_t)(s - run));
        if (c == '\0')
            break;
        switch (c) {
        case '"': nerve_strbuf_puts(b, "\\\""); break;
        case '\\': nerve_strbuf_puts(b, "\\\\"); break;
        case '\n': nerve_strbuf_puts(b, "\\n"); break;
        case '\r': nerve_strbuf_puts(b, "\\r"); break;
        case '\t': nerve_strbuf_puts(b, "\\t"); break;
        case '\b': nerve_strbuf_puts(b, "\\b"); break;
        case '\f': nerve_strbuf_puts(b, "\\f"); break;
        default: nerve_strbuf_printf(b, "\\u%04x", c); break;
        }
        run = s + 1;
    }
    nerve_strbuf_append(b, "\"", 1);
}

void nerve_strbuf_free(nerve_strbuf *b)
{
    nerve_xfree(b->data);
    memset(b, 0, sizeof *b);
}
