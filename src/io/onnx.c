/* ONNX model files: a protobuf wire-format reader for the fields listed in onnx.h.
 *
 * A message is a sequence of (tag, value) fields; the tag is a varint holding the field
 * number and the wire type (0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit;
 * 3 and 4, groups, are refused). A reader `pb` is a window [p, end) of the input; a
 * length-delimited field opens a sub-window after its length has been checked against the
 * bytes left, so no read ever leaves the window of its message. Nested messages are read
 * by one function per message type, to a fixed depth (model > graph > node > attribute >
 * tensor), never recursively. */
#include "onnx.h"

#include "../core/core.h"

#include <math.h>
#include <string.h>

typedef struct pb {
    const unsigned char *p, *end;
    const unsigned char *base; /* start of the whole buffer, for offsets in messages */
    const char *source;
} pb;

static int pb_error(const pb *r, const char *what)
{
    return nerve_set_error(NERVE_ERR_FORMAT, "%s: malformed ONNX protobuf at byte %zu: %s",
                           r->source, (size_t)(r->p - r->base), what);
}

static int pb_varint(pb *r, uint64_t *v)
{
    uint64_t x = 0;
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return pb_error(r, "truncated varint");
        unsigned char b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return NERVE_OK;
        }
    }
    return pb_error(r, "varint longer than 10 bytes");
}

/* One field header. Returns 1 with *field, *wire set, 0 at the end of the window, < 0 on
 * error. */
static int pb_tag(pb *r, uint32_t *field, int *wire)
{
    *field = 0;
    *wire = 0;
    if (r->p >= r->end)
        return 0;
    uint64_t t = 0;
    int st = pb_varint(r, &t);
    if (st)
        return st;
    *field = (uint32_t)(t >> 3);
    *wire = (int)(t & 7);
    if (t >> 3 == 0 || t >> 3 > 536870911u)
        return pb_error(r, "field number 0 or out of range");
    return 1;
}

/* The window of a length-delimited field (its length checked against the bytes left). */
static int pb_bytes(pb *r, pb *sub)
{
    uint64_t len = 0;
    int st = pb_varint(r, &len);
    if (st)
        return st;
    if (len > (uint64_t)(r->end - r->p))
        return pb_error(r, "length runs past the end of its message");
    *sub = *r;
    sub->end = r->p + len;
    r->p += len;
    return NERVE_OK;
}

static int pb_fixed32(pb *r, uint32_t *v)
{
    *v = 0;
    if (r->end - r->p < 4)
        return pb_error(r, "truncated fixed32");
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    return NERVE_OK;
}

static int pb_fixed64(pb *r, uint64_t *v)
{
    uint32_t lo = 0, hi = 0;
    int st = pb_fixed32(r, &lo);
    if (!st)
        st = pb_fixed32(r, &hi);
    if (!st)
        *v = (uint64_t)hi << 32 | lo;
    return st;
}

static int pb_skip(pb *r, int wire)
{
    uint64_t v = 0;
    pb sub;
    switch (wire) {
    case ONNX_WIRE_VARINT: return pb_varint(r, &v);
    case ONNX_WIRE_FIXED64: return pb_fixed64(r, &v);
    case ONNX_WIRE_LEN: return pb_bytes(r, &sub);
    case ONNX_WIRE_FIXED32: return pb_fixed32(r, (uint32_t *)&(uint32_t){0});
    default: return pb_error(r, "unsupported wire type (group or reserved)");
    }
}

static int expect_wire(pb *r, int wire, int want)
{
    return wire == want ? NERVE_OK : pb_error(r, "a known field has the wrong wire type");
}

/* A string field into a fixed buffer: refused if longer, or if it holds a NUL. */
static int pb_string(pb *r, int wire, char *dst, size_t cap)
{
    pb s;
    int st = expect_wire(r, wire, ONNX_WIRE_LEN);
    if (!st)
        st = pb_bytes(r, &s);
    if (st)
        return st;
    size_t n = (size_t)(s.end - s.p);
    if (n >= cap)
        return pb_error(r, "name too long");
    if (memchr(s.p, 0, n))
        return pb_error(r, "name holds a NUL byte");
    memcpy(dst, s.p, n);
    dst[n] = 0;
    return NERVE_OK;
}

static int pb_u64(pb *r, int wire, uint64_t *v)
{
    int st = expect_wire(r, wire, ONNX_WIRE_VARINT);
    return st ? st : pb_varint(r, v);
}

/* ---- growable arrays ------------------------------------------------------------------- */

/* Makes room for one more element of size `size` in *arr holding *n (capacity *cap). */
static int grow(void **arr, int *n, int *cap, size_t size, int limit, pb *r)
{
    if (*n >= limit)
        return pb_error(r, "too many repeated elements");
    if (*n < *cap)
        return NERVE_OK;
    int nc = *cap ? *cap * 2 : 4;
    if (nc > limit)
        nc = limit;
    void *p = nerve_xrealloc(*arr, (size_t)nc * size);
    if (!p)
        return NERVE_ERR_NOMEM;
    memset((char *)p + (size_t)*cap * size, 0, (size_t)(nc - *cap) * size);
    *arr = p;
    *cap = nc;
    return NERVE_OK;
}

/* Repeated scalars, packed (one length-delimited field) or not (one field per element):
 * appended to a growable array of int64 or float. kind: ONNX_WIRE_VARINT (integers),
 * ONNX_WIRE_FIXED32 (float) or ONNX_WIRE_FIXED64 (double). */
typedef struct num_list {
    int64_t *i;
    float *f;
    int n, cap;
} num_list;

static int num_push(num_list *l, int kind, uint64_t raw, pb *r)
{
    if (kind == ONNX_WIRE_VARINT) {
        int st = grow((void **)&l->i, &l->n, &l->cap, sizeof(int64_t), INT32_MAX / 8, r);
        if (st)
            return st;
        l->i[l->n++] = (int64_t)raw;
    } else {
        int st = grow((void **)&l->f, &l->n, &l->cap, sizeof(float), INT32_MAX / 8, r);
        if (st)
            return st;
        float f;
        if (kind == ONNX_WIRE_FIXED32) {
            uint32_t u = (uint32_t)raw;
            memcpy(&f, &u, 4);
        } else {
            double d;
            memcpy(&d, &raw, 8);
            f = (float)d;
        }
        l->f[l->n++] = f;
    }
    return NERVE_OK;
}

static int read_one(pb *r, int kind, uint64_t *v)
{
    if (kind == ONNX_WIRE_VARINT)
        return pb_varint(r, v);
    if (kind == ONNX_WIRE_FIXED64)
        return pb_fixed64(r, v);
    uint32_t u = 0;
    int st = pb_fixed32(r, &u);
    *v = u;
    return st;
}

static int pb_repeated(pb *r, int wire, int kind, num_list *l)
{
    uint64_t v = 0;
    if (wire == ONNX_WIRE_LEN) {
        pb s;
        int st = pb_bytes(r, &s);
        while (!st && s.p < s.end) {
            st = read_one(&s, kind, &v);
            if (!st)
                st = num_push(l, kind, v, r);
        }
        return st;
    }
    if (wire != kind)
        return pb_error(r, "a repeated number field has the wrong wire type");
    int st = read_one(r, kind, &v);
    return st ? st : num_push(l, kind, v, r);
}

/* ---- TensorProto ------------------------------------------------------------------------ */

static float half_to_float(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

static int is_float_type(int t)
{
    return t == ONNX_FLOAT || t == ONNX_DOUBLE || t == ONNX_FLOAT16 || t == ONNX_BFLOAT16;
}

static int is_int_type(int t)
{
    return t == ONNX_UINT8 || t == ONNX_INT8 || t == ONNX_UINT16 || t == ONNX_INT16 ||
           t == ONNX_INT32 || t == ONNX_INT64 || t == ONNX_BOOL || t == ONNX_UINT32 ||
           t == ONNX_UINT64;
}

static size_t elem_size(int t)
{
    switch (t) {
    case ONNX_UINT8: case ONNX_INT8: case ONNX_BOOL: return 1;
    case ONNX_UINT16: case ONNX_INT16: case ONNX_FLOAT16: case ONNX_BFLOAT16: return 2;
    case ONNX_INT32: case ONNX_UINT32: case ONNX_FLOAT: return 4;
    case ONNX_INT64: case ONNX_UINT64: case ONNX_DOUBLE: return 8;
    default: return 0;
    }
}

/* One little-endian element of raw_data as int64 (integer types). */
static int64_t raw_int(const unsigned char *p, int t)
{
    uint64_t u = 0;
    size_t n = elem_size(t);
    for (size_t k = 0; k < n; k++)
        u |= (uint64_t)p[k] << (8 * k);
    switch (t) {
    case ONNX_INT8: return (int8_t)u;
    case ONNX_INT16: return (int16_t)u;
    case ONNX_INT32: return (int32_t)u;
    case ONNX_BOOL: return u != 0;
    default: return (int64_t)u;
    }
}

static float raw_float(const unsigned char *p, int t)
{
    if (t == ONNX_FLOAT) {
        float f;
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        memcpy(&f, &u, 4);
        return f;
    }
    if (t == ONNX_DOUBLE) {
        uint64_t u = 0;
        for (int k = 0; k < 8; k++)
            u |= (uint64_t)p[k] << (8 * k);
        double d;
        memcpy(&d, &u, 8);
        return (float)d;
    }
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    if (t == ONNX_BFLOAT16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return half_to_float(h);
}

void onnx_tensor_clear(onnx_tensor *t)
{
    if (!t)
        return;
    nerve_xfree(t->f);
    nerve_xfree(t->i);
    t->f = NULL;
    t->i = NULL;
}

/* Fills t->f or t->i from the fields read: raw data, or the typed repeated fields. */
static int tensor_finish(pb *r, onnx_tensor *t, const unsigned char *raw, size_t raw_len,
                         int has_raw, num_list *fl, num_list *il, num_list *dl)
{
    size_t n = 1;
    for (int k = 0; k < t->ndim; k++) {
        if (t->dims[k] < 0)
            return pb_error(r, "negative tensor dimension");
        if (t->dims[k] > 0 && n > (size_t)INT32_MAX * 8 / (size_t)t->dims[k])
            return pb_error(r, "tensor too large");
        n *= (size_t)t->dims[k];
    }
    t->n = n;
    if (t->unusable)
        return NERVE_OK;
    int ft = is_float_type(t->dtype), it = is_int_type(t->dtype);
    if (!ft && !it) {
        t->unusable = 1;
        return NERVE_OK;
    }
    size_t bytes = n ? n : 1;
    if (ft)
        t->f = nerve_xmalloc(bytes * sizeof(float));
    else
        t->i = nerve_xmalloc(bytes * sizeof(int64_t));
    if (!t->f && !t->i)
        return NERVE_ERR_NOMEM;
    if (has_raw) {
        size_t es = elem_size(t->dtype);
        if (raw_len != n * es)
            return pb_error(r, "raw_data size does not match the tensor's shape and type");
        for (size_t k = 0; k < n; k++) {
            if (ft)
                t->f[k] = raw_float(raw + k * es, t->dtype);
            else
                t->i[k] = raw_int(raw + k * es, t->dtype);
        }
        return NERVE_OK;
    }
    /* typed fields: float_data (float), double_data (double), int32_data (int32 and
     * smaller, bool, float16 bits), int64_data, uint64_data (uint32, uint64) */
    if (t->dtype == ONNX_FLOAT || t->dtype == ONNX_DOUBLE) {
        num_list *src = t->dtype == ONNX_FLOAT ? fl : dl;
        if ((size_t)src->n != n)
            return pb_error(r, "number of float values does not match the tensor's shape");
        if (n)
            memcpy(t->f, src->f, n * sizeof(float));
        return NERVE_OK;
    }
    if ((size_t)il->n != n)
        return pb_error(r, "number of values does not match the tensor's shape");
    for (size_t k = 0; k < n; k++) {
        int64_t v = il->i[k];
        if (ft) {
            uint16_t h = (uint16_t)v;
            unsigned char b[2] = {(unsigned char)(h & 255), (unsigned char)(h >> 8)};
            t->f[k] = raw_float(b, t->dtype);
        } else if (t->dtype == ONNX_INT32 || t->dtype == ONNX_INT16 || t->dtype == ONNX_INT8) {
            t->i[k] = (int32_t)v;
        } else if (t->dtype == ONNX_BOOL) {
            t->i[k] = v != 0;
        } else {
            t->i[k] = v;
        }
    }
    return NERVE_OK;
}

static int read_tensor(pb r, onnx_tensor *t)
{
    memset(t, 0, sizeof *t);
    num_list dims = {0}, fl = {0}, il = {0}, dl = {0};
    const unsigned char *raw = NULL;
    size_t raw_len = 0;
    int has_raw = 0, st = NERVE_OK, more;
    uint32_t f = 0;
    int w = 0;
    uint64_t v = 0;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0) {
            st = more;
            break;
        }
        switch (f) {
        case ONNX_TENSOR_DIMS: st = pb_repeated(&r, w, ONNX_WIRE_VARINT, &dims); break;
        case ONNX_TENSOR_DATA_TYPE:
            st = pb_u64(&r, w, &v);
            t->dtype = (int)(v & 0xff) == (int)v ? (int)v : -1;
            break;
        case ONNX_TENSOR_SEGMENT: t->unusable = 1; st = pb_skip(&r, w); break;    /* segment */
        case ONNX_TENSOR_FLOAT_DATA: st = pb_repeated(&r, w, ONNX_WIRE_FIXED32, &fl); break;
        case ONNX_TENSOR_INT32_DATA: st = pb_repeated(&r, w, ONNX_WIRE_VARINT, &il); break;
        case ONNX_TENSOR_STRING_DATA: t->unusable = 1; st = pb_skip(&r, w); break;    /* string_data */
        case ONNX_TENSOR_INT64_DATA: st = pb_repeated(&r, w, ONNX_WIRE_VARINT, &il); break;
        case ONNX_TENSOR_NAME: st = pb_string(&r, w, t->name, sizeof t->name); break;
        case ONNX_TENSOR_RAW_DATA: {
            pb s;
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (!st) {
                raw = s.p;
                raw_len = (size_t)(s.end - s.p);
                has_raw = 1;
            }
            break;
        }
        case ONNX_TENSOR_DOUBLE_DATA: st = pb_repeated(&r, w, ONNX_WIRE_FIXED64, &dl); break;
        case ONNX_TENSOR_UINT64_DATA: st = pb_repeated(&r, w, ONNX_WIRE_VARINT, &il); break;
        case ONNX_TENSOR_EXTERNAL_DATA: t->unusable = 1; st = pb_skip(&r, w); break;   /* external_data */
        case ONNX_TENSOR_DATA_LOCATION:
            st = pb_u64(&r, w, &v);
            if (v != 0)
                t->unusable = 1;
            break;
        default: st = pb_skip(&r, w);
        }
    }
    if (!st && dims.n > ONNX_MAX_RANK)
        st = pb_error(&r, "tensor rank above 8");
    if (!st) {
        t->ndim = dims.n;
        for (int k = 0; k < dims.n; k++)
            t->dims[k] = dims.i[k];
        st = tensor_finish(&r, t, raw, raw_len, has_raw, &fl, &il, &dl);
    }
    nerve_xfree(dims.i);
    nerve_xfree(fl.f);
    nerve_xfree(il.i);
    nerve_xfree(dl.f);
    if (st)
        onnx_tensor_clear(t);
    return st;
}

int onnx_tensor_parse(const void *buf, size_t len, const char *source, onnx_tensor *t)
{
    if (!buf && len)
        return nerve_set_error(NERVE_ERR_ARG, "onnx_tensor_parse: null buffer");
    static const unsigned char empty[1];
    const unsigned char *b = buf ? buf : empty;
    pb r = {b, b + len, b, source ? source : "tensor"};
    return read_tensor(r, t);
}

/* ---- ValueInfoProto ---------------------------------------------------------------------- */

static int read_shape(pb r, onnx_value_info *vi)
{
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    vi->has_shape = 1;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0)
            return more;
        if (f != ONNX_SHAPE_DIM) {
            st = pb_skip(&r, w);
            continue;
        }
        pb d;
        st = expect_wire(&r, w, ONNX_WIRE_LEN);
        if (!st)
            st = pb_bytes(&r, &d);
        if (st)
            break;
        if (vi->ndim >= ONNX_MAX_RANK)
            return pb_error(&r, "shape rank above 8");
        int64_t dim = -1;
        uint32_t df;
        int dw, dm;
        while (!st && (dm = pb_tag(&d, &df, &dw)) != 0) {
            if (dm < 0)
                return dm;
            uint64_t v = 0;
            if (df == ONNX_DIM_VALUE) {
                st = pb_u64(&d, dw, &v);
                dim = (int64_t)v >= 0 ? (int64_t)v : -1;
            } else {
                st = pb_skip(&d, dw);
            }
        }
        vi->dims[vi->ndim++] = dim;
    }
    return st;
}

static int read_type(pb r, onnx_value_info *vi)
{
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0)
            return more;
        if (f != ONNX_TYPE_TENSOR) {
            st = pb_skip(&r, w);
            continue;
        }
        pb tt;
        st = expect_wire(&r, w, ONNX_WIRE_LEN);
        if (!st)
            st = pb_bytes(&r, &tt);
        vi->is_tensor = 1;
        uint32_t tf;
        int tw, tm;
        while (!st && (tm = pb_tag(&tt, &tf, &tw)) != 0) {
            if (tm < 0)
                return tm;
            uint64_t v = 0;
            if (tf == ONNX_TYPE_TENSOR_ELEM_TYPE) {
                st = pb_u64(&tt, tw, &v);
                vi->dtype = v < 64 ? (int)v : -1;
            } else if (tf == ONNX_TYPE_TENSOR_SHAPE) {
                pb s;
                st = expect_wire(&tt, tw, ONNX_WIRE_LEN);
                if (!st)
                    st = pb_bytes(&tt, &s);
                if (!st)
                    st = read_shape(s, vi);
            } else {
                st = pb_skip(&tt, tw);
            }
        }
    }
    return st;
}

static int read_value_info(pb r, onnx_value_info *vi)
{
    memset(vi, 0, sizeof *vi);
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0)
            return more;
        if (f == ONNX_VALUE_INFO_NAME) {
            st = pb_string(&r, w, vi->name, sizeof vi->name);
        } else if (f == ONNX_VALUE_INFO_TYPE) {
            pb s;
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (!st)
                st = read_type(s, vi);
        } else {
            st = pb_skip(&r, w);
        }
    }
    return st;
}

/* ---- AttributeProto and NodeProto --------------------------------------------------------- */

static void attr_clear(onnx_attr *a)
{
    nerve_xfree(a->s);
    if (a->t) {
        onnx_tensor_clear(a->t);
        nerve_xfree(a->t);
    }
    nerve_xfree(a->floats);
    nerve_xfree(a->ints);
}

static int read_attr(pb r, onnx_attr *a)
{
    memset(a, 0, sizeof *a);
    num_list fl = {0}, il = {0};
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    uint64_t v = 0;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0) {
            st = more;
            break;
        }
        switch (f) {
        case ONNX_ATTRF_NAME: st = pb_string(&r, w, a->name, sizeof a->name); break;
        case ONNX_ATTRF_F: {
            uint32_t u = 0;
            st = expect_wire(&r, w, ONNX_WIRE_FIXED32);
            if (!st)
                st = pb_fixed32(&r, &u);
            memcpy(&a->f, &u, 4);
            break;
        }
        case ONNX_ATTRF_I: st = pb_u64(&r, w, &v); a->i = (int64_t)v; break;
        case ONNX_ATTRF_S: {
            pb s;
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (st)
                break;
            size_t n = (size_t)(s.end - s.p);
            nerve_xfree(a->s);
            a->s = nerve_xmalloc(n + 1);
            if (!a->s) {
                st = NERVE_ERR_NOMEM;
                break;
            }
            memcpy(a->s, s.p, n);
            a->s[n] = 0;
            a->s_len = n;
            break;
        }
        case ONNX_ATTRF_T: {
            pb s;
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (st)
                break;
            if (a->t) {
                onnx_tensor_clear(a->t);
            } else if (!(a->t = nerve_xcalloc(1, sizeof *a->t))) {
                st = NERVE_ERR_NOMEM;
                break;
            }
            st = read_tensor(s, a->t);
            break;
        }
        case ONNX_ATTRF_FLOATS:
            st = pb_repeated(&r, w, ONNX_WIRE_FIXED32, &fl);
            if (!st && fl.n > ONNX_MAX_ATTR_VALUES)
                st = pb_error(&r, "attribute holds too many floats");
            break;
        case ONNX_ATTRF_INTS:
            st = pb_repeated(&r, w, ONNX_WIRE_VARINT, &il);
            if (!st && il.n > ONNX_MAX_ATTR_VALUES)
                st = pb_error(&r, "attribute holds too many ints");
            break;
        case ONNX_ATTRF_STRINGS: a->n_strings++; st = pb_skip(&r, w); break;
        case ONNX_ATTRF_TYPE: st = pb_u64(&r, w, &v); a->type = v < 64 ? (int)v : -1; break;
        default: st = pb_skip(&r, w);
        }
    }
    a->floats = fl.f;
    a->n_floats = fl.n;
    a->ints = il.i;
    a->n_ints = il.n;
    if (st)
        attr_clear(a);
    return st;
}

/* A repeated string field appended to a growable array of copies. */
static int push_string(pb *r, int wire, char ***arr, int *n, int *cap)
{
    pb s;
    int st = expect_wire(r, wire, ONNX_WIRE_LEN);
    if (!st)
        st = pb_bytes(r, &s);
    if (!st)
        st = grow((void **)arr, n, cap, sizeof(char *), 4096, r);
    if (st)
        return st;
    size_t len = (size_t)(s.end - s.p);
    if (len >= ONNX_MAX_NAME || memchr(s.p, 0, len))
        return pb_error(r, "a value name is too long or holds a NUL byte");
    char *c = nerve_xmalloc(len + 1);
    if (!c)
        return NERVE_ERR_NOMEM;
    memcpy(c, s.p, len);
    c[len] = 0;
    (*arr)[(*n)++] = c;
    return NERVE_OK;
}

static void node_clear(onnx_node *n)
{
    for (int k = 0; k < n->n_in; k++)
        nerve_xfree(n->in[k]);
    for (int k = 0; k < n->n_out; k++)
        nerve_xfree(n->out[k]);
    for (int k = 0; k < n->n_attr; k++)
        attr_clear(&n->attr[k]);
    nerve_xfree(n->in);
    nerve_xfree(n->out);
    nerve_xfree(n->attr);
}

static int read_node(pb r, onnx_node *n)
{
    memset(n, 0, sizeof *n);
    int cap_in = 0, cap_out = 0, cap_attr = 0;
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0) {
            st = more;
            break;
        }
        switch (f) {
        case ONNX_NODE_INPUT: st = push_string(&r, w, &n->in, &n->n_in, &cap_in); break;
        case ONNX_NODE_OUTPUT: st = push_string(&r, w, &n->out, &n->n_out, &cap_out); break;
        case ONNX_NODE_NAME: st = pb_string(&r, w, n->name, sizeof n->name); break;
        case ONNX_NODE_OP_TYPE: st = pb_string(&r, w, n->op_type, sizeof n->op_type); break;
        case ONNX_NODE_DOMAIN: st = pb_string(&r, w, n->domain, sizeof n->domain); break;
        case ONNX_NODE_ATTRIBUTE: {
            pb s;
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (!st)
                st = grow((void **)&n->attr, &n->n_attr, &cap_attr, sizeof(onnx_attr), 256, &r);
            if (!st) {
                st = read_attr(s, &n->attr[n->n_attr]);
                if (!st)
                    n->n_attr++;
            }
            break;
        }
        default: st = pb_skip(&r, w);
        }
    }
    if (st)
        node_clear(n);
    return st;
}

/* ---- GraphProto and ModelProto ---------------------------------------------------------- */

typedef struct caps {
    int nodes, init, inputs, outputs, value_info;
} caps;

static int read_graph(pb r, onnx_model *m)
{
    caps c = {0};
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0)
            return more;
        pb s;
        if (f == ONNX_GRAPH_NODE || f == ONNX_GRAPH_INITIALIZER || f == ONNX_GRAPH_INPUT ||
            f == ONNX_GRAPH_OUTPUT || f == ONNX_GRAPH_VALUE_INFO) {
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (st)
                return st;
        }
        switch (f) {
        case ONNX_GRAPH_NODE:
            st = grow((void **)&m->nodes, &m->n_nodes, &c.nodes, sizeof(onnx_node), ONNX_MAX_NODES, &r);
            if (!st && !(st = read_node(s, &m->nodes[m->n_nodes])))
                m->n_nodes++;
            break;
        case ONNX_GRAPH_INITIALIZER:
            st = grow((void **)&m->init, &m->n_init, &c.init, sizeof(onnx_tensor), ONNX_MAX_NODES, &r);
            if (!st && !(st = read_tensor(s, &m->init[m->n_init])))
                m->n_init++;
            break;
        case ONNX_GRAPH_INPUT:
            st = grow((void **)&m->inputs, &m->n_inputs, &c.inputs, sizeof(onnx_value_info),
                      ONNX_MAX_NODES, &r);
            if (!st && !(st = read_value_info(s, &m->inputs[m->n_inputs])))
                m->n_inputs++;
            break;
        case ONNX_GRAPH_OUTPUT:
            st = grow((void **)&m->outputs, &m->n_outputs, &c.outputs, sizeof(onnx_value_info),
                      ONNX_MAX_NODES, &r);
            if (!st && !(st = read_value_info(s, &m->outputs[m->n_outputs])))
                m->n_outputs++;
            break;
        case ONNX_GRAPH_VALUE_INFO:
            st = grow((void **)&m->value_info, &m->n_value_info, &c.value_info,
                      sizeof(onnx_value_info), ONNX_MAX_NODES, &r);
            if (!st && !(st = read_value_info(s, &m->value_info[m->n_value_info])))
                m->n_value_info++;
            break;
        case ONNX_GRAPH_NAME:
            st = pb_string(&r, w, m->graph_name, sizeof m->graph_name);
            break;
        case ONNX_GRAPH_SPARSE_INITIALIZER:
            return pb_error(&r, "sparse initializers are not supported");
        default: st = pb_skip(&r, w);
        }
    }
    return st;
}

static int read_opset(pb r, onnx_model *m)
{
    char domain[64] = "";
    int64_t version = 0;
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0)
            return more;
        uint64_t v = 0;
        if (f == ONNX_OPSET_DOMAIN)
            st = pb_string(&r, w, domain, sizeof domain);
        else if (f == ONNX_OPSET_VERSION && !(st = pb_u64(&r, w, &v)))
            version = (int64_t)v;
        else if (f != ONNX_OPSET_VERSION)
            st = pb_skip(&r, w);
    }
    if (!st && (!domain[0] || !strcmp(domain, "ai.onnx")))
        m->opset = version;
    return st;
}

/* A StringStringEntryProto of metadata_props: key and value copied (bounded in count). */
static int meta_string(pb *r, int wire, char **dst)
{
    pb s;
    int st = expect_wire(r, wire, ONNX_WIRE_LEN);
    if (!st)
        st = pb_bytes(r, &s);
    if (st)
        return st;
    size_t n = (size_t)(s.end - s.p);
    if (memchr(s.p, 0, n))
        return pb_error(r, "metadata holds a NUL byte");
    char *c = nerve_xmalloc(n + 1);
    if (!c)
        return NERVE_ERR_NOMEM;
    memcpy(c, s.p, n);
    c[n] = 0;
    nerve_xfree(*dst);
    *dst = c;
    return NERVE_OK;
}

static int read_meta(pb r, onnx_model *m)
{
    if (m->n_meta >= ONNX_MAX_METADATA)
        return pb_error(&r, "too many metadata entries");
    char *key = NULL, *value = NULL;
    uint32_t f = 0;
    int w = 0, more, st = NERVE_OK;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0) {
            st = more;
            break;
        }
        if (f == ONNX_ENTRY_KEY)
            st = meta_string(&r, w, &key);
        else if (f == ONNX_ENTRY_VALUE)
            st = meta_string(&r, w, &value);
        else
            st = pb_skip(&r, w);
    }
    if (!st && (!m->meta_key || !m->meta_value)) {
        m->meta_key = nerve_xcalloc(ONNX_MAX_METADATA, sizeof(char *));
        m->meta_value = nerve_xcalloc(ONNX_MAX_METADATA, sizeof(char *));
        if (!m->meta_key || !m->meta_value)
            st = NERVE_ERR_NOMEM;
    }
    if (st) {
        nerve_xfree(key);
        nerve_xfree(value);
        return st;
    }
    m->meta_key[m->n_meta] = key ? key : nerve_xcalloc(1, 1);
    m->meta_value[m->n_meta] = value ? value : nerve_xcalloc(1, 1);
    m->n_meta++;
    if (!m->meta_key[m->n_meta - 1] || !m->meta_value[m->n_meta - 1])
        return NERVE_ERR_NOMEM;
    return NERVE_OK;
}

const char *onnx_model_meta(const onnx_model *m, const char *key)
{
    for (int k = m ? m->n_meta - 1 : -1; k >= 0; k--)
        if (m->meta_key[k] && !strcmp(m->meta_key[k], key))
            return m->meta_value[k];
    return NULL;
}

onnx_model *onnx_model_parse(const void *buf, size_t len, const char *source)
{
    if (!buf && len) {
        nerve_set_error(NERVE_ERR_ARG, "onnx_model_parse: null buffer");
        return NULL;
    }
    static const unsigned char empty[1];
    const unsigned char *b = buf ? buf : empty;
    pb r = {b, b + len, b, source ? source : "model"};
    onnx_model *m = nerve_xcalloc(1, sizeof *m);
    if (!m)
        return NULL;
    int has_graph = 0, st = NERVE_OK, more, w = 0;
    uint32_t f = 0;
    while (!st && (more = pb_tag(&r, &f, &w)) != 0) {
        if (more < 0) {
            st = more;
            break;
        }
        uint64_t v = 0;
        pb s;
        switch (f) {
        case ONNX_MODEL_IR_VERSION: st = pb_u64(&r, w, &v); m->ir_version = (int64_t)v; break;
        case ONNX_MODEL_GRAPH:
            if (has_graph) {
                st = pb_error(&r, "more than one graph");
                break;
            }
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (!st)
                st = read_graph(s, m);
            has_graph = 1;
            break;
        case ONNX_MODEL_OPSET_IMPORT:
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (!st)
                st = read_opset(s, m);
            break;
        case ONNX_MODEL_METADATA_PROPS:
            st = expect_wire(&r, w, ONNX_WIRE_LEN);
            if (!st)
                st = pb_bytes(&r, &s);
            if (!st)
                st = read_meta(s, m);
            break;
        default: st = pb_skip(&r, w);
        }
    }
    if (!st && !has_graph)
        st = nerve_set_error(NERVE_ERR_FORMAT, "%s: not an ONNX model (no graph)", r.source);
    if (st) {
        if (st != NERVE_ERR_FORMAT && st != NERVE_ERR_NOMEM)
            nerve_set_error(NERVE_ERR_FORMAT, "%s: malformed ONNX model", r.source);
        onnx_model_free(m);
        return NULL;
    }
    return m;
}

void onnx_model_free(onnx_model *m)
{
    if (!m)
        return;
    for (int k = 0; k < m->n_nodes; k++)
        node_clear(&m->nodes[k]);
    for (int k = 0; k < m->n_init; k++)
        onnx_tensor_clear(&m->init[k]);
    for (int k = 0; k < m->n_meta; k++) {
        nerve_xfree(m->meta_key[k]);
        nerve_xfree(m->meta_value[k]);
    }
    nerve_xfree(m->meta_key);
    nerve_xfree(m->meta_value);
    nerve_xfree(m->nodes);
    nerve_xfree(m->init);
    nerve_xfree(m->inputs);
    nerve_xfree(m->outputs);
    nerve_xfree(m->value_info);
    nerve_xfree(m);
}

/* ---- the writer ------------------------------------------------------------------------
 * A message is written twice: a dry pass (p == NULL) counts its bytes, which its enclosing
 * field needs as its length before the bytes themselves; the second pass writes them. The
 * large part of a model, the raw data of its initializers, costs nothing in a dry pass. */

typedef struct pw {
    unsigned char *p; /* NULL: count only */
    size_t n;
} pw;

static void pw_raw(pw *w, const void *data, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->n, data, n);
    w->n += n;
}

static void pw_varint(pw *w, uint64_t v)
{
    do {
        unsigned char b = v & 0x7f;
        v >>= 7;
        b |= v ? 0x80 : 0;
        pw_raw(w, &b, 1);
    } while (v);
}

static void pw_tag(pw *w, int field, int wire) { pw_varint(w, (uint64_t)field << 3 | (unsigned)wire); }

static void pw_u64(pw *w, int field, uint64_t v)
{
    pw_tag(w, field, ONNX_WIRE_VARINT);
    pw_varint(w, v);
}

static void pw_bytes(pw *w, int field, const void *data, size_t n)
{
    pw_tag(w, field, ONNX_WIRE_LEN);
    pw_varint(w, n);
    pw_raw(w, data, n);
}

static void pw_string(pw *w, int field, const char *s)
{
    pw_bytes(w, field, s, strlen(s));
}

static void pw_float(pw *w, int field, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    pw_tag(w, field, ONNX_WIRE_FIXED32);
    pw_raw(w, b, 4);
}

/* A nested message: its length from a dry pass, then its bytes. */
static void pw_msg(pw *w, int field, void (*fn)(pw *, const void *), const void *arg)
{
    pw dry = {NULL, 0};
    fn(&dry, arg);
    pw_tag(w, field, ONNX_WIRE_LEN);
    pw_varint(w, dry.n);
    fn(w, arg);
}

/* raw_data of a float or int64 tensor, little-endian whatever the host */
static void pw_tensor_data(pw *w, const onnx_tensor *t)
{
    size_t es = t->f ? 4 : 8;
    pw_tag(w, ONNX_TENSOR_RAW_DATA, ONNX_WIRE_LEN);
    pw_varint(w, t->n * es);
    if (!w->p) {
        w->n += t->n * es;
        return;
    }
    unsigned char *p = w->p + w->n;
    const uint32_t probe = 1;
    if (*(const unsigned char *)&probe == 1) { /* a little-endian host: the bytes as they are */
        memcpy(p, t->f ? (const void *)t->f : (const void *)t->i, t->n * es);
        w->n += t->n * es;
        return;
    }
    for (size_t k = 0; k < t->n; k++) {
        uint64_t u;
        if (t->f) {
            uint32_t x;
            memcpy(&x, &t->f[k], 4);
            u = x;
        } else {
            u = (uint64_t)t->i[k];
        }
        for (size_t j = 0; j < es; j++)
            *p++ = (unsigned char)(u >> (8 * j));
    }
    w->n += t->n * es;
}

static void pw_tensor(pw *w, const void *arg)
{
    const onnx_tensor *t = arg;
    for (int k = 0; k < t->ndim; k++)
        pw_u64(w, ONNX_TENSOR_DIMS, (uint64_t)t->dims[k]);
    pw_u64(w, ONNX_TENSOR_DATA_TYPE, t->f ? ONNX_FLOAT : ONNX_INT64);
    if (t->name[0])
        pw_string(w, ONNX_TENSOR_NAME, t->name);
    pw_tensor_data(w, t);
}

static int tensor_writable(const onnx_tensor *t)
{
    if (!t || (!t->f && !t->i) || t->ndim < 0 || t->ndim > ONNX_MAX_RANK)
        return nerve_set_error(NERVE_ERR_ARG, "ONNX writer: tensor '%s' has no float or int64 data",
                               t ? t->name : "");
    size_t n = 1;
    for (int k = 0; k < t->ndim; k++) {
        if (t->dims[k] < 0 || (t->dims[k] && n > SIZE_MAX / 16 / (size_t)t->dims[k]))
            return nerve_set_error(NERVE_ERR_ARG, "ONNX writer: tensor '%s' has a bad shape", t->name);
        n *= (size_t)t->dims[k];
    }
    if (n != t->n)
        return nerve_set_error(NERVE_ERR_ARG, "ONNX writer: tensor '%s' holds %zu values, its shape %zu",
                               t->name, t->n, n);
    return NERVE_OK;
}

unsigned char *onnx_tensor_write(const onnx_tensor *t, size_t *len)
{
    if (!len || tensor_writable(t))
        return NULL;
    pw w = {NULL, 0};
    pw_tensor(&w, t);
    size_t n = w.n;
    w.p = nerve_xmalloc(n ? n : 1);
    if (!w.p)
        return NULL;
    w.n = 0;
    pw_tensor(&w, t);
    *len = w.n;
    return w.p;
}

static void pw_attr(pw *w, const void *arg)
{
    const onnx_attr *a = arg;
    pw_string(w, ONNX_ATTRF_NAME, a->name);
    switch (a->type) {
    case ONNX_ATTR_FLOAT: pw_float(w, ONNX_ATTRF_F, a->f); break;
    case ONNX_ATTR_INT: pw_u64(w, ONNX_ATTRF_I, (uint64_t)a->i); break;
    case ONNX_ATTR_STRING: pw_bytes(w, ONNX_ATTRF_S, a->s, a->s_len); break;
    case ONNX_ATTR_TENSOR: pw_msg(w, ONNX_ATTRF_T, pw_tensor, a->t); break;
    case ONNX_ATTR_FLOATS:
        for (int k = 0; k < a->n_floats; k++)
            pw_float(w, ONNX_ATTRF_FLOATS, a->floats[k]);
        break;
    case ONNX_ATTR_INTS:
        for (int k = 0; k < a->n_ints; k++)
            pw_u64(w, ONNX_ATTRF_INTS, (uint64_t)a->ints[k]);
        break;
    default: break;
    }
    pw_u64(w, ONNX_ATTRF_TYPE, (uint64_t)a->type);
}

static void pw_node(pw *w, const void *arg)
{
    const onnx_node *n = arg;
    for (int k = 0; k < n->n_in; k++)
        pw_string(w, ONNX_NODE_INPUT, n->in[k]);
    for (int k = 0; k < n->n_out; k++)
        pw_string(w, ONNX_NODE_OUTPUT, n->out[k]);
    if (n->name[0])
        pw_string(w, ONNX_NODE_NAME, n->name);
    pw_string(w, ONNX_NODE_OP_TYPE, n->op_type);
    for (int k = 0; k < n->n_attr; k++)
        pw_msg(w, ONNX_NODE_ATTRIBUTE, pw_attr, &n->attr[k]);
    if (n->domain[0])
        pw_string(w, ONNX_NODE_DOMAIN, n->domain);
}

static void pw_dim(pw *w, const void *arg)
{
    int64_t d = *(const int64_t *)arg;
    if (d >= 0)
        pw_u64(w, ONNX_DIM_VALUE, (uint64_t)d);
    else
        pw_string(w, ONNX_DIM_PARAM, "N");
}

static void pw_shape(pw *w, const void *arg)
{
    const onnx_value_info *vi = arg;
    for (int k = 0; k < vi->ndim; k++)
        pw_msg(w, ONNX_SHAPE_DIM, pw_dim, &vi->dims[k]);
}

static void pw_tensor_type(pw *w, const void *arg)
{
    const onnx_value_info *vi = arg;
    pw_u64(w, ONNX_TYPE_TENSOR_ELEM_TYPE, (uint64_t)vi->dtype);
    if (vi->has_shape)
        pw_msg(w, ONNX_TYPE_TENSOR_SHAPE, pw_shape, vi);
}

static void pw_type(pw *w, const void *arg) { pw_msg(w, ONNX_TYPE_TENSOR, pw_tensor_type, arg); }

static void pw_value_info(pw *w, const void *arg)
{
    const onnx_value_info *vi = arg;
    pw_string(w, ONNX_VALUE_INFO_NAME, vi->name);
    pw_msg(w, ONNX_VALUE_INFO_TYPE, pw_type, vi);
}

static void pw_graph(pw *w, const void *arg)
{
    const onnx_model *m = arg;
    for (int k = 0; k < m->n_nodes; k++)
        pw_msg(w, ONNX_GRAPH_NODE, pw_node, &m->nodes[k]);
    pw_string(w, ONNX_GRAPH_NAME, m->graph_name[0] ? m->graph_name : "graph");
    for (int k = 0; k < m->n_init; k++)
        pw_msg(w, ONNX_GRAPH_INITIALIZER, pw_tensor, &m->init[k]);
    for (int k = 0; k < m->n_inputs; k++)
        pw_msg(w, ONNX_GRAPH_INPUT, pw_value_info, &m->inputs[k]);
    for (int k = 0; k < m->n_outputs; k++)
        pw_msg(w, ONNX_GRAPH_OUTPUT, pw_value_info, &m->outputs[k]);
    for (int k = 0; k < m->n_value_info; k++)
        pw_msg(w, ONNX_GRAPH_VALUE_INFO, pw_value_info, &m->value_info[k]);
}

static void pw_opset(pw *w, const void *arg)
{
    const onnx_model *m = arg;
    pw_string(w, ONNX_OPSET_DOMAIN, "");
    pw_u64(w, ONNX_OPSET_VERSION, (uint64_t)m->opset);
}

typedef struct pw_entry {
    const char *key, *value;
} pw_entry;

static void pw_meta(pw *w, const void *arg)
{
    const pw_entry *e = arg;
    pw_string(w, ONNX_ENTRY_KEY, e->key);
    pw_string(w, ONNX_ENTRY_VALUE, e->value);
}

typedef struct pw_model_arg {
    const onnx_model *m;
    const char *producer;
} pw_model_arg;

static void pw_model(pw *w, const void *arg)
{
    const pw_model_arg *a = arg;
    const onnx_model *m = a->m;
    pw_u64(w, ONNX_MODEL_IR_VERSION, (uint64_t)m->ir_version);
    if (a->producer)
        pw_string(w, ONNX_MODEL_PRODUCER_NAME, a->producer);
    pw_msg(w, ONNX_MODEL_GRAPH, pw_graph, m);
    pw_msg(w, ONNX_MODEL_OPSET_IMPORT, pw_opset, m);
    for (int k = 0; k < m->n_meta; k++) {
        pw_entry e = {m->meta_key[k], m->meta_value[k]};
        pw_msg(w, ONNX_MODEL_METADATA_PROPS, pw_meta, &e);
    }
}

unsigned char *onnx_model_write(const onnx_model *m, const char *producer, size_t *len)
{
    if (!m || !len) {
        nerve_set_error(NERVE_ERR_ARG, "onnx_model_write: null argument");
        return NULL;
    }
    for (int k = 0; k < m->n_init; k++)
        if (tensor_writable(&m->init[k]))
            return NULL;
    for (int k = 0; k < m->n_nodes; k++)
        for (int a = 0; a < m->nodes[k].n_attr; a++)
            if (m->nodes[k].attr[a].type == ONNX_ATTR_TENSOR && tensor_writable(m->nodes[k].attr[a].t))
                return NULL;
    pw_model_arg arg = {m, producer};
    pw w = {NULL, 0};
    pw_model(&w, &arg);
    if (w.n > (size_t)INT32_MAX) {
        nerve_set_error(NERVE_ERR_ARG, "ONNX writer: the model needs %zu bytes; a protobuf holds at "
                        "most 2 GiB (external data is not written)", w.n);
        return NULL;
    }
    size_t n = w.n;
    w.p = nerve_xmalloc(n ? n : 1);
    if (!w.p)
        return NULL;
    w.n = 0;
    pw_model(&w, &arg);
    *len = w.n;
    return w.p;
}

const char *onnx_dtype_name(int dtype)
{
    static const char *const names[] = {"undefined", "float", "uint8", "int8", "uint16",
                                        "int16", "int32", "int64", "string", "bool",
                                        "float16", "double", "uint32", "uint64", "complex64",
                                        "complex128", "bfloat16"};
    return dtype >= 0 && dtype < (int)NERVE_ARRAY_LEN(names) ? names[dtype] : "unknown";
}
