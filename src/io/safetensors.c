/* safetensors files: an 8-byte little-endian header length N, N bytes of JSON header
 * (tensor name -> dtype, shape, data_offsets; plus "__metadata__" string -> string), then
 * the data section, which the tensors must cover exactly, without gaps or overlaps.
 *
 * The reader loads the whole file, validates every header entry against the data, and
 * converts on demand; the writer copies tensors at add time and saves atomically. */
#include "../core/core.h"
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- little-endian loads and element conversion ------------------------------------ */

static uint64_t load_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static float bits_to_f32(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE binary16 -> binary32, exact (subnormals, infinities and NaN included). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F)
        return bits_to_f32(sign | 0x7F800000u | man << 13);
    if (exp == 0) {
        float v = (float)man * (1.0f / 16777216.0f); /* man * 2^-24 */
        return sign ? -v : v;
    }
    return bits_to_f32(sign | (exp + 112) << 23 | man << 13);
}

static float cvt_f32(const unsigned char *p) { return bits_to_f32((uint32_t)load_le(p, 4)); }
static float cvt_f16(const unsigned char *p) { return half_to_float((uint16_t)load_le(p, 2)); }
static float cvt_bf16(const unsigned char *p) { return bits_to_f32((uint32_t)load_le(p, 2) << 16); }
static float cvt_f64(const unsigned char *p)
{
    uint64_t bits = load_le(p, 8);
    double d;
    memcpy(&d, &bits, sizeof d);
    return (float)d;
}
static float cvt_i64(const unsigned char *p) { return (float)(int64_t)load_le(p, 8); }
static float cvt_i32(const unsigned char *p) { return (float)(int32_t)load_le(p, 4); }
static float cvt_i16(const unsigned char *p) { return (float)(int16_t)load_le(p, 2); }
static float cvt_i8(const unsigned char *p) { return (float)(int8_t)p[0]; }
static float cvt_u8(const unsigned char *p) { return (float)p[0]; }
static float cvt_bool(const unsigned char *p) { return p[0] ? 1.0f : 0.0f; }

typedef struct {
    const char *name;
    size_t size;
    float (*convert)(const unsigned char *p);
} dtype_info;

static const dtype_info dtypes[] = {
    {"F32", 4, cvt_f32}, {"F16", 2, cvt_f16}, {"BF16", 2, cvt_bf16}, {"F64", 8, cvt_f64},
    {"I64", 8, cvt_i64}, {"I32", 4, cvt_i32}, {"I16", 2, cvt_i16},   {"I8", 1, cvt_i8},
    {"U8", 1, cvt_u8},   {"BOOL", 1, cvt_bool},
};

static int host_is_little_endian(void)
{
    uint16_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 1;
}

/* ---- reader ------------------------------------------------------------------------ */

typedef struct {
    char *name;
    const dtype_info *dtype;
    int ndim;
    int dims[NERVE_MAX_DIMS];
    size_t numel;
    uint64_t begin, end; /* within the data section */
} st_tensor;

struct nerve_st_file {
    char *path;
    unsigned char *bytes;      /* the whole file */
    const unsigned char *data; /* its data section */
    size_t data_len;
    int n;
    st_tensor *t;   /* in header order */
    int *by_name;   /* indices sorted by name, for lookups */
    int n_meta;
    char **meta_key, **meta_value;
};

static int format_error(const nerve_st_file *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int format_error(const nerve_st_file *f, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nerve_set_error(NERVE_ERR_FORMAT, "%s: %s", f->path, msg);
}

static int read_file(nerve_st_file *f, size_t *size)
{
    FILE *fp = fopen(f->path, "rb");
    if (!fp)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return nerve_set_error(NERVE_ERR_IO, "%s: not a regular file", f->path);
    }
    long long len = (long long)sb.st_size;
    f->bytes = nerve_xmalloc((size_t)len ? (size_t)len : 1);
    if (!f->bytes) {
        fclose(fp);
        return NERVE_ERR_NOMEM;
    }
    size_t got = fread(f->bytes, 1, (size_t)len, fp);
    fclose(fp);
    if (got != (size_t)len)
        return nerve_set_error(NERVE_ERR_IO, "%s: short read", f->path);
    *size = (size_t)len;
    return NERVE_OK;
}

static int parse_metadata(nerve_st_file *f, const nerve_json *m)
{
    if (m->type != NERVE_JSON_OBJECT)
        return format_error(f, "__metadata__ is not an object");
    f->meta_key = nerve_xcalloc((size_t)m->count + 1, sizeof *f->meta_key);
    f->meta_value = nerve_xcalloc((size_t)m->count + 1, sizeof *f->meta_value);
    if (!f->meta_key || !f->meta_value)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < m->count; i++) {
        if (m->items[i].type != NERVE_JSON_STRING)
            return format_error(f, "metadata value of '%s' is not a string", m->keys[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(m->keys[j], m->keys[i]) == 0)
                return format_error(f, "duplicate metadata key '%s'", m->keys[i]);
        f->meta_key[i] = nerve_xstrdup(m->keys[i]);
        f->meta_value[i] = nerve_xstrdup(m->items[i].string);
        f->n_meta = i + 1;
        if (!f->meta_key[i] || !f->meta_value[i])
            return NERVE_ERR_NOMEM;
    }
    return NERVE_OK;
}

static int parse_shape(nerve_st_file *f, st_tensor *t, const nerve_json *shape)
{
    if (!shape || shape->type != NERVE_JSON_ARRAY)
        return format_error(f, "tensor '%s': shape is missing or not an array", t->name);
    if (shape->count > NERVE_MAX_DIMS)
        return format_error(f, "tensor '%s': more dimensions than nerve supports", t->name);
    t->ndim = shape->count;
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const nerve_json *d = &shape->items[i];
        if (d->type != NERVE_JSON_NUMBER || !d->is_uint || d->uint > INT32_MAX)
            return format_error(f, "tensor '%s': shape entries must be integers in 0..2^31-1",
                                t->name);
        t->dims[i] = (int)d->uint;
        if (t->dims[i] && t->numel > SIZE_MAX / 8 / (size_t)t->dims[i])
            return format_error(f, "tensor '%s': shape too large", t->name);
        t->numel *= (size_t)t->dims[i];
    }
    return NERVE_OK;
}

static int parse_offsets(nerve_st_file *f, st_tensor *t, const nerve_json *off)
{
    if (!off || off->type != NERVE_JSON_ARRAY || off->count != 2 ||
        off->items[0].type != NERVE_JSON_NUMBER || !off->items[0].is_uint ||
        off->items[1].type != NERVE_JSON_NUMBER || !off->items[1].is_uint)
        return format_error(f, "tensor '%s': data_offsets must be two non-negative integers",
                            t->name);
    t->begin = off->items[0].uint;
    t->end = off->items[1].uint;
    if (t->begin > t->end || t->end > f->data_len)
        return format_error(f, "tensor '%s': data_offsets lie outside the data section",
                            t->name);
    if (t->end - t->begin != t->numel * t->dtype->size)
        return format_error(f, "tensor '%s': data_offsets do not match its dtype and shape",
                            t->name);
    return NERVE_OK;
}

static int parse_tensor(nerve_st_file *f, st_tensor *t, const char *name, const nerve_json *v)
{
    t->name = nerve_xstrdup(name);
    if (!t->name)
        return NERVE_ERR_NOMEM;
    if (v->type != NERVE_JSON_OBJECT)
        return format_error(f, "tensor '%s': entry is not an object", name);
    for (int i = 0; i < v->count; i++)
        if (strcmp(v->keys[i], "dtype") && strcmp(v->keys[i], "shape") &&
            strcmp(v->keys[i], "data_offsets"))
            return format_error(f, "tensor '%s': unknown or repeated field", name);
    if (v->count != 3)
        return format_error(f, "tensor '%s': needs exactly dtype, shape and data_offsets", name);
    const nerve_json *dt = nerve_json_get(v, "dtype");
    if (!dt || dt->type != NERVE_JSON_STRING)
        return format_error(f, "tensor '%s': dtype is missing or not a string", name);
    for (size_t i = 0; i < NERVE_ARRAY_LEN(dtypes); i++)
        if (strcmp(dt->string, dtypes[i].name) == 0)
            t->dtype = &dtypes[i];
    if (!t->dtype)
        return format_error(f, "unsupported dtype '%s'", dt->string);
    int st = parse_shape(f, t, nerve_json_get(v, "shape"));
    return st < 0 ? st : parse_offsets(f, t, nerve_json_get(v, "data_offsets"));
}

/* Sort keys carry what they compare, since qsort has no context argument. */
typedef struct {
    uint64_t begin, end;
    const char *name;
    int index;
} sort_key;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const sort_key *)a)->name, ((const sort_key *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    const sort_key *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The tensors must tile the data section exactly: no gap, no overlap, nothing left. */
static int check_coverage(nerve_st_file *f, sort_key *keys)
{
    qsort(keys, (size_t)f->n, sizeof *keys, cmp_offset);
    uint64_t expected = 0;
    for (int i = 0; i < f->n; i++) {
        if (keys[i].begin != expected)
            return format_error(f, "tensor '%s': data overlaps another tensor or leaves a gap",
                                keys[i].name);
        expected = keys[i].end;
    }
    if (expected != f->data_len)
        return format_error(f, "the tensors leave %llu bytes of the data section unused",
                            (unsigned long long)(f->data_len - expected));
    return NERVE_OK;
}

/* Names must be unique; keeps the name order for nerve_st_find's binary search. */
static int index_names(nerve_st_file *f, sort_key *keys)
{
    qsort(keys, (size_t)f->n, sizeof *keys, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(keys[i].name, keys[i - 1].name) == 0)
            return format_error(f, "duplicate tensor name '%s'", keys[i].name);
    f->by_name = nerve_xmalloc(((size_t)f->n + 1) * sizeof *f->by_name);
    if (!f->by_name)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = keys[i].index;
    return NERVE_OK;
}

static int check_layout(nerve_st_file *f)
{
    sort_key *keys = nerve_xmalloc(((size_t)f->n + 1) * sizeof *keys);
    if (!keys)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < f->n; i++)
        keys[i] = (sort_key){f->t[i].begin, f->t[i].end, f->t[i].name, i};
    int st = check_coverage(f, keys);
    if (st == NERVE_OK)
        st = index_names(f, keys);
    nerve_xfree(keys);
    return st;
}

static int parse_header(nerve_st_file *f, const nerve_json *h)
{
    if (h->type != NERVE_JSON_OBJECT)
        return format_error(f, "header is not a JSON object");
    f->t = nerve_xcalloc((size_t)h->count + 1, sizeof *f->t);
    if (!f->t)
        return NERVE_ERR_NOMEM;
    int seen_meta = 0;
    for (int i = 0; i < h->count; i++) {
        int st;
        if (strcmp(h->keys[i], "__metadata__") == 0) {
            if (seen_meta++)
                return format_error(f, "repeated __metadata__");
            st = parse_metadata(f, &h->items[i]);
        } else {
            st = parse_tensor(f, &f->t[f->n++], h->keys[i], &h->items[i]);
        }
        if (st < 0)
            return st;
    }
    return check_layout(f);
}

static int open_file(nerve_st_file *f)
{
    size_t size = 0;
    int st = read_file(f, &size);
    if (st < 0)
        return st;
    if (size < 8)
        return format_error(f, "file too short for a safetensors header (%zu bytes)", size);
    uint64_t n = load_le(f->bytes, 8);
    /* a text file given where a checkpoint belongs: say so rather than quote a length */
    const unsigned char *b = f->bytes;
    if (n > size - 8 && (b[0] == '[' || b[0] == '#') && memchr(b, 0, size) == NULL)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: not a safetensors checkpoint: it is a text file "
                               "(a cfg?); train it first (nerve train) and give the checkpoint",
                               f->path);
    if (n > size - 8)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: header length %llu exceeds the file size (%zu bytes)",
                               f->path, (unsigned long long)n, size);
    f->data = f->bytes + 8 + n;
    f->data_len = size - 8 - (size_t)n;
    char err[128];
    nerve_json *h = nerve_json_parse((const char *)f->bytes + 8, (size_t)n, err, sizeof err);
    if (!h)
        return format_error(f, "malformed JSON header: %s", err);
    st = parse_header(f, h);
    nerve_json_free(h);
    return st;
}

nerve_st_file *nerve_st_open(const char *path)
{
    if (!path) {
        nerve_set_error(NERVE_ERR_ARG, "safetensors open: null path");
        return NULL;
    }
    nerve_st_file *f = nerve_xcalloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->path = nerve_xstrdup(path);
    if (!f->path || open_file(f) < 0) {
        nerve_st_close(f);
        return NULL;
    }
    return f;
}

void nerve_st_close(nerve_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        nerve_xfree(f->t[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        nerve_xfree(f->meta_key[i]);
        nerve_xfree(f->meta_value[i]);
    }
    nerve_xfree(f->meta_key);
    nerve_xfree(f->meta_value);
    nerve_xfree(f->t);
    nerve_xfree(f->by_name);
    nerve_xfree(f->bytes);
    nerve_xfree(f->path);
    nerve_xfree(f);
}

int nerve_st_count(const nerve_st_file *f) { return f ? f->n : 0; }

const char *nerve_st_name(const nerve_st_file *f, int i)
{
    return f && i >= 0 && i < f->n ? f->t[i].name : NULL;
}

int nerve_st_find(const nerve_st_file *f, const char *name)
{
    if (!f || !name)
        return -1;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, k = f->by_name[mid];
        int c = strcmp(name, f->t[k].name);
        if (c == 0)
            return k;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

int nerve_st_shape(const nerve_st_file *f, int i, int *ndim, int *dims)
{
    if (!f || i < 0 || i >= f->n)
        return nerve_set_error(NERVE_ERR_ARG, "safetensors: no tensor %d", i);
    if (ndim)
        *ndim = f->t[i].ndim;
    if (dims)
        memcpy(dims, f->t[i].dims, (size_t)f->t[i].ndim * sizeof *dims);
    return NERVE_OK;
}

int nerve_st_read(const nerve_st_file *f, int i, float *out, size_t numel)
{
    if (!f || i < 0 || i >= f->n || (!out && numel))
        return nerve_set_error(NERVE_ERR_ARG, "safetensors: no tensor %d", i);
    const st_tensor *t = &f->t[i];
    if (numel != t->numel)
        return nerve_set_error(NERVE_ERR_SHAPE, "%s: tensor '%s' has %zu elements, not %zu",
                               f->path, t->name, t->numel, numel);
    const unsigned char *p = f->data + t->begin;
    if (t->dtype->convert == cvt_f32 && host_is_little_endian()) {
        memcpy(out, p, numel * sizeof(float));
        return NERVE_OK;
    }
    for (size_t k = 0; k < numel; k++)
        out[k] = t->dtype->convert(p + k * t->dtype->size);
    return NERVE_OK;
}

const char *nerve_st_metadata(const nerve_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_key[i], key) == 0)
            return f->meta_value[i];
    return NULL;
}

/* ---- writer ------------------------------------------------------------------------ */

typedef struct {
    char *name;
    int ndim;
    int dims[NERVE_MAX_DIMS];
    size_t numel;
    float *data;   /* F32 tensors */
    int8_t *i8;    /* I8 tensors (data is NULL) */
} wr_tensor;

struct nerve_st_writer {
    wr_tensor *t;
    int n, cap;
    char **meta_key, **meta_value;
    int n_meta, meta_cap;
};

nerve_st_writer *nerve_st_writer_create(void) { return nerve_xcalloc(1, sizeof(nerve_st_writer)); }

void nerve_st_writer_free(nerve_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        nerve_xfree(w->t[i].name);
        nerve_xfree(w->t[i].data);
        nerve_xfree(w->t[i].i8);
    }
    for (int i = 0; i < w->n_meta; i++) {
        nerve_xfree(w->meta_key[i]);
        nerve_xfree(w->meta_value[i]);
    }
    nerve_xfree(w->t);
    nerve_xfree(w->meta_key);
    nerve_xfree(w->meta_value);
    nerve_xfree(w);
}

static int check_text(const char *what, const char *s)
{
    if (!s)
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: null %s", what);
    if (!nerve_utf8_valid(s, strlen(s)))
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: %s is not valid UTF-8",
                               what);
    return NERVE_OK;
}

/* Grows an array of `size`-byte elements to hold one more. */
static int reserve(void **arr, int n, int *cap, size_t size)
{
    if (n < *cap)
        return NERVE_OK;
    int ncap = *cap ? 2 * *cap : 16;
    void *p = nerve_xrealloc(*arr, (size_t)ncap * size);
    if (!p)
        return NERVE_ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return NERVE_OK;
}

static int check_new_tensor(const nerve_st_writer *w, const char *name, int ndim,
                            const int *dims)
{
    int st = check_text("tensor name", name);
    if (st < 0)
        return st;
    if (!name[0] || strcmp(name, "__metadata__") == 0)
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: invalid tensor name '%s'",
                               name);
    if (ndim < 0 || ndim > NERVE_MAX_DIMS || (ndim && !dims))
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: tensor '%s' has rank %d",
                               name, ndim);
    for (int i = 0; i < ndim; i++)
        if (dims[i] < 0)
            return nerve_set_error(NERVE_ERR_ARG,
                                   "safetensors writer: tensor '%s' has a negative dimension",
                                   name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: duplicate tensor '%s'",
                                   name);
    return NERVE_OK;
}

/* Adds a tensor of numel elements of elem bytes each, copied from src; i8 says which. */
static int writer_add(nerve_st_writer *w, const char *name, int ndim, const int *dims,
                      const void *src, int i8)
{
    if (!w)
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: null writer");
    int st = check_new_tensor(w, name, ndim, dims);
    if (st < 0)
        return st;
    size_t numel = nerve_shape_numel(ndim, dims), elem = i8 ? 1 : sizeof(float);
    if (numel && !src)
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: tensor '%s' has no data",
                               name);
    if (reserve((void **)&w->t, w->n, &w->cap, sizeof *w->t) < 0)
        return NERVE_ERR_NOMEM;
    wr_tensor t = {.ndim = ndim, .numel = numel};
    if (ndim)
        memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    t.name = nerve_xstrdup(name);
    void *data = nerve_xmalloc(numel ? numel * elem : 1);
    if (!t.name || !data) {
        nerve_xfree(t.name);
        nerve_xfree(data);
        return NERVE_ERR_NOMEM;
    }
    if (numel)
        memcpy(data, src, numel * elem);
    if (i8)
        t.i8 = data;
    else
        t.data = data;
    w->t[w->n++] = t;
    return NERVE_OK;
}

int nerve_st_writer_add(nerve_st_writer *w, const char *name, int ndim, const int *dims,
                        const float *data)
{
    return writer_add(w, name, ndim, dims, data, 0);
}

int nerve_st_writer_add_i8(nerve_st_writer *w, const char *name, int ndim, const int *dims,
                           const int8_t *data)
{
    return writer_add(w, name, ndim, dims, data, 1);
}

int nerve_st_writer_meta(nerve_st_writer *w, const char *key, const char *value)
{
    if (!w)
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: null writer");
    int st = check_text("metadata key", key);
    if (st == NERVE_OK)
        st = check_text("metadata value", value);
    if (st < 0)
        return st;
    char *v = nerve_xstrdup(value);
    if (!v)
        return NERVE_ERR_NOMEM;
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_key[i], key) == 0) {
            nerve_xfree(w->meta_value[i]);
            w->meta_value[i] = v;
            return NERVE_OK;
        }
    int cap = w->meta_cap;
    char *k = nerve_xstrdup(key);
    if (!k || reserve((void **)&w->meta_key, w->n_meta, &cap, sizeof *w->meta_key) < 0 ||
        reserve((void **)&w->meta_value, w->n_meta, &w->meta_cap, sizeof *w->meta_value) < 0) {
        nerve_xfree(k);
        nerve_xfree(v);
        return NERVE_ERR_NOMEM;
    }
    w->meta_key[w->n_meta] = k;
    w->meta_value[w->n_meta++] = v;
    return NERVE_OK;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes so that the data section
 * starts 8-byte aligned (as the reference implementation does). */
static int build_header(const nerve_st_writer *w, nerve_strbuf *b)
{
    nerve_strbuf_puts(b, "{");
    if (w->n_meta) {
        nerve_strbuf_puts(b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i)
                nerve_strbuf_puts(b, ",");
            nerve_json_append_string(b, w->meta_key[i]);
            nerve_strbuf_puts(b, ":");
            nerve_json_append_string(b, w->meta_value[i]);
        }
        nerve_strbuf_puts(b, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < w->n; i++) {
        const wr_tensor *t = &w->t[i];
        if (i || w->n_meta)
            nerve_strbuf_puts(b, ",");
        nerve_json_append_string(b, t->name);
        nerve_strbuf_puts(b, t->i8 ? ":{\"dtype\":\"I8\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            nerve_strbuf_printf(b, d ? ",%d" : "%d", t->dims[d]);
        uint64_t end = offset + t->numel * (t->i8 ? 1 : sizeof(float));
        nerve_strbuf_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                            (unsigned long long)end);
        offset = end;
    }
    nerve_strbuf_puts(b, "}");
    while (!b->failed && b->len % 8)
        nerve_strbuf_puts(b, " ");
    return b->failed ? nerve_set_error(NERVE_ERR_NOMEM, "safetensors writer: out of memory")
                     : NERVE_OK;
}

/* Writes floats as little-endian whatever the host's byte order. */
static int write_floats(FILE *fp, const float *x, size_t n)
{
    if (host_is_little_endian())
        return fwrite(x, sizeof(float), n, fp) == n ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        unsigned char le[4] = {(unsigned char)bits, (unsigned char)(bits >> 8),
                               (unsigned char)(bits >> 16), (unsigned char)(bits >> 24)};
        if (fwrite(le, 1, 4, fp) != 4)
            return -1;
    }
    return 0;
}

static int write_all(const nerve_st_writer *w, const nerve_strbuf *header, FILE *fp)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)header->len >> (8 * i));
    if (fwrite(len, 1, 8, fp) != 8 || fwrite(header->data, 1, header->len, fp) != header->len)
        return -1;
    for (int i = 0; i < w->n; i++)
        if (w->t[i].i8 ? fwrite(w->t[i].i8, 1, w->t[i].numel, fp) != w->t[i].numel
                       : write_floats(fp, w->t[i].data, w->t[i].numel) < 0)
            return -1;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        return -1;
    return 0;
}

int nerve_st_writer_save(nerve_st_writer *w, const char *path)
{
    if (!w || !path)
        return nerve_set_error(NERVE_ERR_ARG, "safetensors writer: null argument");
    nerve_strbuf header = {0}, tmp = {0};
    int st = build_header(w, &header);
    nerve_strbuf_printf(&tmp, "%s.tmp", path);
    if (st == NERVE_OK && tmp.failed)
        st = nerve_set_error(NERVE_ERR_NOMEM, "safetensors writer: out of memory");
    if (st == NERVE_OK) {
        FILE *fp = fopen(tmp.data, "wb");
        if (!fp) {
            st = nerve_set_error(NERVE_ERR_IO, "%s: cannot create: %s", tmp.data,
                                 strerror(errno));
        } else {
            int bad = write_all(w, &header, fp);
            int saved_errno = errno;
            bad |= fclose(fp) != 0;
            if (!bad && rename(tmp.data, path) != 0) {
                saved_errno = errno;
                bad = 1;
            }
            if (bad) {
                st = nerve_set_error(NERVE_ERR_IO, "%s: cannot write: %s", path,
                                     strerror(saved_errno));
                remove(tmp.data);
            }
        }
    }
    nerve_strbuf_free(&header);
    nerve_strbuf_free(&tmp);
    return st;
}
