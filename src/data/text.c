/* Text as a token stream: a byte vocabulary (the distinct bytes of a text, sorted), byte
 * to token encoding, and the stream batching of truncated back-propagation through time,
 * which lays a token stream out as an ordinary data set of chunks (docs/textgen.md). */
#include "text.h"

#include "../core/core.h"

#include <stdio.h>
#include <string.h>

#define MAX_TEXT_BYTES ((size_t)1 << 31) /* a file larger than this is surely a mistake */

int text_read_file(const char *path, unsigned char **bytes, size_t *len)
{
    *bytes = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open the text file", path);
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = nerve_xmalloc(cap);
    int st = buf ? NERVE_OK : NERVE_ERR_NOMEM;
    while (st == NERVE_OK) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap)
            break;
        if (cap >= MAX_TEXT_BYTES) {
            st = nerve_set_error(NERVE_ERR_FORMAT, "%s: larger than 2 GiB", path);
            break;
        }
        unsigned char *p = nerve_xrealloc(buf, cap * 2);
        if (!p)
            st = NERVE_ERR_NOMEM;
        else {
            buf = p;
            cap *= 2;
        }
    }
    if (st == NERVE_OK && ferror(fp))
        st = nerve_set_error(NERVE_ERR_IO, "%s: read error", path);
    if (st == NERVE_OK && n == 0)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: the file is empty; there is nothing to learn",
                             path);
    fclose(fp);
    if (st != NERVE_OK) {
        nerve_xfree(buf);
        return st;
    }
    *bytes = buf;
    *len = n;
    return NERVE_OK;
}

/* ---- vocabulary ------------------------------------------------------------------------ */

void nerve_vocab_of_text(nerve_vocab *v, const unsigned char *text, size_t len)
{
    int present[256] = {0};
    for (size_t i = 0; i < len; i++)
        present[text[i]] = 1;
    v->n = 0;
    for (int b = 0; b < 256; b++)
        if (present[b])
            v->bytes[v->n++] = (unsigned char)b;
}

int nerve_vocab_of_file(nerve_vocab *v, const char *path)
{
    if (!v || !path)
        return nerve_set_error(NERVE_ERR_ARG, "vocab_of_file: null argument");
    unsigned char *text;
    size_t len;
    int st = text_read_file(path, &text, &len);
    if (st != NERVE_OK)
        return st;
    nerve_vocab_of_text(v, text, len);
    nerve_xfree(text);
    return NERVE_OK;
}

int nerve_vocab_token(const nerve_vocab *v, int b)
{
    int lo = 0, hi = v ? v->n - 1 : -1; /* bytes are increasing: binary search */
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v->bytes[mid] == b)
            return mid;
        if (v->bytes[mid] < b)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* "'x'" for printable bytes, "byte 0x0a" otherwise, for messages. */
static const char *byte_str(int b, char *buf, size_t size)
{
    if (b > 32 && b < 127 && b != '\'')
        snprintf(buf, size, "'%c'", b);
    else
        snprintf(buf, size, "byte 0x%02x", b);
    return buf;
}

int nerve_vocab_encode(const nerve_vocab *v, const unsigned char *text, size_t len, float *ids)
{
    if (!v || (len && (!text || !ids)))
        return nerve_set_error(NERVE_ERR_ARG, "vocab_encode: null argument");
    int token[256];
    for (int b = 0; b < 256; b++)
        token[b] = -1;
    for (int k = 0; k < v->n; k++)
        token[v->bytes[k]] = k;
    for (size_t i = 0; i < len; i++) {
        if (token[text[i]] < 0) {
            char b[16];
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "%s at offset %zu is not in the vocabulary of %d bytes",
                                   byte_str(text[i], b, sizeof b), i, v->n);
        }
        ids[i] = (float)token[text[i]];
    }
    return NERVE_OK;
}

void nerve_vocab_format(const nerve_vocab *v, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int n = v->n < 0 ? 0 : v->n > 256 ? 256 : v->n;
    for (int i = 0; i < n; i++) {
        out[2 * i] = hex[v->bytes[i] >> 4];
        out[2 * i + 1] = hex[v->bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_digit(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int nerve_vocab_parse(nerve_vocab *v, const char *hex)
{
    size_t n = hex ? strlen(hex) : 0;
    if (!v || n == 0 || n % 2 || n > 512)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "a vocabulary is 1 to 256 bytes written as two lower-case hex "
                               "digits each; got %zu characters", n);
    int prev = -1, count = 0;
    unsigned char bytes[256];
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
        int b = hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
        if (b < 0 || b <= prev)
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "a vocabulary is increasing bytes as lower-case hex digits; "
                                   "'%.2s' at character %zu is %s", hex + i, i,
                                   b < 0 ? "not two hex digits" : "not above the byte before");
        bytes[count++] = (unsigned char)b;
        prev = b;
    }
    v->n = count;
    memcpy(v->bytes, bytes, (size_t)count);
    return NERVE_OK;
}

/* ---- stream batching ------------------------------------------------------------------- */

int nerve_dataset_text_streams(nerve_dataset *d, const float *ids, size_t n, int streams, int seq,
                               int vocab, int keep_tail)
{
    if (!d || (n && !ids) || streams < 1 || seq < 1 || vocab < 1)
        return nerve_set_error(NERVE_ERR_ARG, "text streams: bad arguments");
    memset(d, 0, sizeof *d);
    size_t stride = n / (size_t)streams;
    if (stride < (keep_tail ? 2 : (size_t)seq + 1))
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%zu tokens make %d streams of %zu; each needs at least %s = %d "
                               "(lower %s)", n, streams, stride,
                               keep_tail ? "2" : "seq + 1", keep_tail ? 2 : seq + 1,
                               keep_tail ? "the number of streams" : "batch or seq");
    /* predictions per stream: stride - 1 (the last token of a stream has no successor) */
    size_t chunks = keep_tail ? (stride - 1 + (size_t)seq - 1) / (size_t)seq
                              : (stride - 1) / (size_t)seq;
    if (chunks * (size_t)streams > (size_t)1 << 30)
        return nerve_set_error(NERVE_ERR_FORMAT, "%zu tokens in chunks of %d are too many samples",
                               n, seq);
    int st = nerve_dataset_alloc(d, (int)(chunks * (size_t)streams), 1, &seq);
    if (st == NERVE_OK)
        st = nerve_dataset_alloc_target(d, NERVE_TARGET_TOKENS, 1, &seq);
    if (st != NERVE_OK) {
        nerve_dataset_free(d);
        return st;
    }
    for (size_t k = 0; k < chunks; k++)
        for (int s = 0; s < streams; s++) {
            size_t sample = k * (size_t)streams + (size_t)s;
            const float *src = ids + (size_t)s * stride + k * (size_t)seq;
            size_t left = stride - 1 - k * (size_t)seq; /* predictions left in the stream */
            float *x = d->x + sample * (size_t)seq, *t = d->t + sample * (size_t)seq;
            for (int j = 0; j < seq; j++) {
                int have = (size_t)j < left;
                x[j] = have ? src[j] : 0.0f;
                t[j] = have ? src[j + 1] : -1.0f;
            }
        }
    d->n_classes = vocab;
    d->streams = streams;
    return NERVE_OK;
}
