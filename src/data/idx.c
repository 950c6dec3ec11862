/* IDX files (the MNIST family's format), plain or gzip-compressed: zlib's gzread reads
 * both, so compression is detected by content rather than by file name.
 *
 * Layout: two zero bytes, a type byte, a dimension count, that many big-endian u32
 * dimensions, then the values in row-major order (big-endian for multi-byte types).
 * Every field is checked and the payload must have exactly the announced size. */
#include "../core/core.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_UBYTE 0x08
#define IDX_FLOAT 0x0D
#define CHUNK_BYTES (64 * 1024) /* a multiple of every element size */

typedef struct {
    const char *path;
    const char *what; /* "pixel" or "label", for messages */
    gzFile gz;
    int type;
    int ndim;
    int dims[NERVE_MAX_DIMS];
    size_t count; /* values in the payload */
    size_t done;  /* bytes of the payload read so far */
    int sized;    /* a plain file whose size matched the header: the payload is all there */
} idx_file;

/* A compressed file's payload is read into buffers grown with the data actually found,
 * from this many floats up, so that a header announcing more than the file holds costs
 * about what the file holds, not what it announces. */
#define GROW_FLOATS ((size_t)1 << 20)

static size_t elem_size(int type) { return type == IDX_FLOAT ? 4 : 1; }

/* zlib prefixes its messages with the path, which ours already names. */
static const char *zlib_message(const idx_file *f, const char *msg)
{
    size_t n = strlen(f->path);
    if (strncmp(msg, f->path, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
        return msg + n + 2;
    return msg;
}

/* Reads up to n bytes; returns how many were read, or a negative status (error set). */
static long long read_bytes(idx_file *f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(f->gz, (unsigned char *)buf + got, (unsigned)want);
        if (r < 0) {
            int errnum;
            const char *msg = gzerror(f->gz, &errnum);
            if (errnum == Z_ERRNO)
                return nerve_set_error(NERVE_ERR_IO, "%s: cannot read: %s", f->path,
                                       strerror(errno));
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: corrupt compressed data (%s)",
                                   f->path, zlib_message(f, msg));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int header_error(const idx_file *f, const char *what)
{
    return nerve_set_error(NERVE_ERR_FORMAT, "%s: %s", f->path, what);
}

/* A plain (uncompressed) file must hold exactly the payload its header announces: checked
 * against the file's size before anything is allocated. A compressed file's decompressed
 * size is not known up front (its trailer gives it modulo 2^32, for the last member only):
 * the reader grows its buffers with the data instead (read_samples). */
static int check_file_size(idx_file *f)
{
    struct stat sb;
    if (!gzdirect(f->gz) || stat(f->path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return NERVE_OK;
    uint64_t header = 4 + 4 * (uint64_t)f->ndim, expected = (uint64_t)f->count * elem_size(f->type);
    uint64_t have = (uint64_t)sb.st_size > header ? (uint64_t)sb.st_size - header : 0;
    char shape[128];
    nerve_shape_str(f->ndim, f->dims, shape, sizeof shape);
    if (have < expected)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: expected %llu bytes of %s data, found %llu (the header "
                               "announces %s; the file is truncated or its header wrong)",
                               f->path, (unsigned long long)expected, f->what,
                               (unsigned long long)have, shape);
    if (have > expected)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: %llu bytes of extra data after the expected %llu bytes of "
                               "%s data (the header announces %s)", f->path,
                               (unsigned long long)(have - expected),
                               (unsigned long long)expected, f->what, shape);
    f->sized = 1;
    return NERVE_OK;
}

/* Opens `path` and validates its header: the number of dimensions must lie in
 * [min_ndim, max_ndim]. */
static int idx_open(idx_file *f, const char *path, const char *what, int min_ndim,
                    int max_ndim)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->what = what;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return nerve_set_error(NERVE_ERR_IO, "%s: cannot open: %s", path,
                               errno ? strerror(errno) : "out of memory");
    unsigned char magic[4];
    long long got = read_bytes(f, magic, 4);
    if (got < 0)
        return (int)got;
    if (got < 4)
        return header_error(f, "file too short for an IDX header");
    if (magic[0] != 0 || magic[1] != 0)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: not an IDX file (magic bytes %02x %02x, expected 00 00)",
                               path, magic[0], magic[1]);
    f->type = magic[2];
    if (f->type != IDX_UBYTE && f->type != IDX_FLOAT)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: unsupported IDX data type 0x%02X (only 0x08 unsigned byte "
                               "and 0x0D float are read)",
                               path, f->type);
    f->ndim = magic[3];
    if (f->ndim < min_ndim || f->ndim > max_ndim)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: an IDX %s file needs %d to %d dimensions, found %d",
                               path, strcmp(what, "pixel") ? "label" : "image", min_ndim,
                               max_ndim, f->ndim);
    unsigned char raw[4 * NERVE_MAX_DIMS];
    got = read_bytes(f, raw, 4 * (size_t)f->ndim);
    if (got < 0)
        return (int)got;
    if (got < 4 * f->ndim)
        return header_error(f, "truncated header (missing dimensions)");
    f->count = 1;
    for (int i = 0; i < f->ndim; i++) {
        uint32_t v = be32(raw + 4 * i);
        if (v == 0 || v > INT_MAX)
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: dimension %d is %u", path, i, v);
        f->dims[i] = (int)v;
        if (f->count > SIZE_MAX / 8 / v)
            return header_error(f, "dimensions too large");
        f->count *= v;
    }
    if (f->count / (size_t)f->dims[0] > (size_t)NERVE_MAX_SAMPLE_VALUES)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: one sample holds %zu values; the limit is %lld (docs/cfg.md, "
                               "Limits)", path, f->count / (size_t)f->dims[0],
                               NERVE_MAX_SAMPLE_VALUES);
    return check_file_size(f);
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Converts n raw values of the file's type to float, times scale. */
static void convert(const idx_file *f, const unsigned char *raw, size_t n, float scale,
                    float *out)
{
    if (f->type == IDX_UBYTE) {
        for (size_t i = 0; i < n; i++)
            out[i] = raw[i] * scale;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = be32(raw + 4 * i);
        float v;
        memcpy(&v, &bits, sizeof v);
        out[i] = v * scale;
    }
}

/* After the payload the file must end: anything more means the header lied. */
static int check_end(idx_file *f, unsigned char *chunk, size_t expected)
{
    size_t extra = 0;
    for (;;) {
        long long got = read_bytes(f, chunk, CHUNK_BYTES);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        extra += (size_t)got;
    }
    if (extra)
        return nerve_set_error(NERVE_ERR_FORMAT,
                               "%s: %zu bytes of extra data after the expected %zu bytes of "
                               "%s data",
                               f->path, extra, expected, f->what);
    int errnum = Z_OK;
    const char *msg = gzerror(f->gz, &errnum);
    if (errnum != Z_OK)
        return nerve_set_error(NERVE_ERR_FORMAT, "%s: corrupt or truncated compressed data (%s)",
                               f->path, zlib_message(f, msg));
    return NERVE_OK;
}

/* Reads the next n values of the payload into out, scaled; a short payload is an error
 * naming how much was found. chunk holds CHUNK_BYTES. */
static int read_values(idx_file *f, unsigned char *chunk, float *out, size_t n, float scale)
{
    size_t esize = elem_size(f->type), want_total = n * esize, got_total = 0;
    while (got_total < want_total) {
        size_t want = want_total - got_total < CHUNK_BYTES ? want_total - got_total : CHUNK_BYTES;
        long long got = read_bytes(f, chunk, want);
        if (got < 0)
            return (int)got;
        convert(f, chunk, (size_t)got / esize, scale, out + got_total / esize);
        got_total += (size_t)got;
        f->done += (size_t)got;
        if ((size_t)got < want)
            return nerve_set_error(NERVE_ERR_FORMAT, "%s: expected %zu bytes of %s data, found %zu",
                                   f->path, f->count * esize, f->what, f->done);
    }
    return NERVE_OK;
}

/* Reads the whole payload into out (f->count floats), scaled, and checks the file ends. */
static int idx_read_payload(idx_file *f, float *out, float scale)
{
    unsigned char *chunk = nerve_xmalloc(CHUNK_BYTES);
    if (!chunk)
        return NERVE_ERR_NOMEM;
    int st = read_values(f, chunk, out, f->count, scale);
    if (st == NERVE_OK)
        st = check_end(f, chunk, f->count * elem_size(f->type));
    nerve_xfree(chunk);
    return st;
}

/* d (made by nerve_dataset_alloc with d->n samples) grown to n samples, keeping its x. */
static int grow_samples(nerve_dataset *d, int n)
{
    nerve_dataset bigger;
    int st = nerve_dataset_alloc(&bigger, n, d->ndim, d->dims);
    if (st < 0)
        return st;
    memcpy(bigger.x, d->x, (size_t)d->n * d->sample_numel * sizeof(float));
    nerve_dataset_free(d);
    *d = bigger;
    return NERVE_OK;
}

/* The images file's samples into a new data set d. A plain file's size was checked, so d
 * is allocated at once; a compressed one is read into a data set grown (doubling, capped
 * at the header's count) as its data arrives, so a lying header fails after allocating at
 * most twice what the file actually holds. */
static int read_samples(idx_file *f, nerve_dataset *d, int ndim, const int *dims, float scale)
{
    int n = f->dims[0];
    size_t per = f->count / (size_t)n;
    size_t first = GROW_FLOATS / per;
    int cap = f->sized || first >= (size_t)n ? n : first < 1 ? 1 : (int)first;
    int st = nerve_dataset_alloc(d, cap, ndim, dims);
    if (st < 0)
        return st;
    unsigned char *chunk = nerve_xmalloc(CHUNK_BYTES);
    if (!chunk)
        return NERVE_ERR_NOMEM;
    for (int have = 0; st == NERVE_OK;) {
        st = read_values(f, chunk, d->x + (size_t)have * per, (size_t)(d->n - have) * per, scale);
        have = d->n;
        if (st != NERVE_OK || have == n)
            break;
        st = grow_samples(d, have > n / 2 ? n : 2 * have);
    }
    if (st == NERVE_OK)
        st = check_end(f, chunk, f->count * elem_size(f->type));
    nerve_xfree(chunk);
    return st;
}

/* Labels must be whole numbers in 0..255; returns 1 + the largest. */
static int check_labels(const idx_file *f, const float *y, int n, int *n_classes)
{
    int max = -1;
    for (int i = 0; i < n; i++) {
        if (!(y[i] >= 0.0f && y[i] <= 255.0f) || y[i] != floorf(y[i]))
            return nerve_set_error(NERVE_ERR_FORMAT,
                                   "%s: label %d is %g, not an integer in 0..255", f->path, i,
                                   (double)y[i]);
        if ((int)y[i] > max)
            max = (int)y[i];
    }
    *n_classes = max + 1;
    return NERVE_OK;
}

/* Sample shape of an images file [n, ...]: [n, rows, cols] gets a leading channel of 1 so
 * that convolutions can take it as it is; other ranks keep their dimensions. */
static int sample_shape(const idx_file *f, int *dims)
{
    if (f->ndim == 3) {
        dims[0] = 1;
        dims[1] = f->dims[1];
        dims[2] = f->dims[2];
        return 3;
    }
    for (int i = 1; i < f->ndim; i++)
        dims[i - 1] = f->dims[i];
    return f->ndim - 1;
}

static int load(nerve_dataset *d, idx_file *img, idx_file *lab, const char *images_path,
                const char *labels_path, float scale)
{
    int st = idx_open(img, images_path, "pixel", 2, NERVE_MAX_DIMS);
    if (st < 0)
        return st;
    if (labels_path) {
        st = idx_open(lab, labels_path, "label", 1, 1);
        if (st < 0)
            return st;
        if (lab->dims[0] != img->dims[0])
            return nerve_set_error(NERVE_ERR_FORMAT, "%s has %d images but %s has %d labels",
                                   images_path, img->dims[0], labels_path, lab->dims[0]);
    }
    int dims[NERVE_MAX_DIMS];
    int ndim = sample_shape(img, dims);
    st = read_samples(img, d, ndim, dims, scale);
    if (st < 0 || !labels_path)
        return st;
    st = idx_read_payload(lab, d->y, 1.0f);
    if (st < 0)
        return st;
    return check_labels(lab, d->y, d->n, &d->n_classes);
}

int nerve_dataset_load_idx(nerve_dataset *d, const char *images_path, const char *labels_path,
                           float scale)
{
    if (!d || !images_path)
        return nerve_set_error(NERVE_ERR_ARG, "load idx: null argument");
    memset(d, 0, sizeof *d);
    idx_file img = {0}, lab = {0};
    errno = 0;
    int st = load(d, &img, &lab, images_path, labels_path, scale);
    idx_close(&img);
    idx_close(&lab);
    if (st < 0)
        nerve_dataset_free(d);
    return st;
}
