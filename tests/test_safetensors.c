/* safetensors: writer/reader round trip with awkward metadata, hand-made files in other
 * dtypes, and every malformed layout the reader must refuse. Also the JSON reader. */
#include "test.h"

#include "../src/io/json.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    unsigned char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, fp);
    fclose(fp);
    return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    fwrite(data, 1, len, fp);
    fclose(fp);
}

/* A file made of an explicit header length, header text and data bytes. */
static void write_st(const char *path, uint64_t header_len, const char *header,
                     const void *data, size_t data_len)
{
    unsigned char buf[4096];
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(header_len >> (8 * i));
    size_t h = strlen(header);
    memcpy(buf + 8, header, h);
    if (data_len)
        memcpy(buf + 8 + h, data, data_len);
    spit(path, buf, 8 + h + data_len);
}

/* Metadata that stresses escaping: quotes, backslashes, tabs, newlines, CR, a control
 * character, and multi-byte UTF-8 (2, 3 and 4 bytes). */
static const char *const tricky_cfg =
    "[net]\nbatch=64\t# \"quoted\" \\ back\\slash\r\nname=caf\xc3\xa9 \xe2\x86\x92 "
    "\xf0\x9f\xa7\xa0\x01" "end\n";

TEST(safetensors_round_trip_of_tensors_and_metadata)
{
    size_t held = nerve_alloc_bytes();
    char path[512];
    tmp_path(path, sizeof path, "model.safetensors");
    float w[6] = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7};
    float b[3] = {0.1f, 0.2f, 0.3f}, s = 42.0f;
    nerve_st_writer *wr = nerve_st_writer_create();
    CHECK(wr != NULL);
    CHECK_OK(nerve_st_writer_add(wr, "fc1.weight", 2, (int[]){2, 3}, w));
    CHECK_OK(nerve_st_writer_add(wr, "fc1.bias", 1, (int[]){3}, b));
    CHECK_OK(nerve_st_writer_add(wr, "step", 0, NULL, &s));
    CHECK_OK(nerve_st_writer_add(wr, "empty", 2, (int[]){0, 4}, NULL));
    CHECK_OK(nerve_st_writer_meta(wr, "nerve.cfg", tricky_cfg));
    CHECK_OK(nerve_st_writer_meta(wr, "epoch", "3"));
    CHECK_OK(nerve_st_writer_meta(wr, "epoch", "4")); /* replaces */
    w[0] = 99; /* the writer copied at add time */
    CHECK_OK(nerve_st_writer_save(wr, path));
    nerve_st_writer_free(wr);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);

    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL);
    CHECK(nerve_st_count(f) == 4);
    CHECK(strcmp(nerve_st_name(f, 0), "fc1.weight") == 0); /* insertion order */
    CHECK(strcmp(nerve_st_name(f, 3), "empty") == 0);
    CHECK(nerve_st_name(f, 4) == NULL);
    int i = nerve_st_find(f, "fc1.weight"), ndim, dims[NERVE_MAX_DIMS];
    CHECK(i == 0 && nerve_st_find(f, "fc1.bias") == 1 && nerve_st_find(f, "step") == 2);
    CHECK(nerve_st_find(f, "fc2.weight") == -1);
    CHECK_OK(nerve_st_shape(f, i, &ndim, dims));
    CHECK(ndim == 2 && dims[0] == 2 && dims[1] == 3);
    float got[6];
    CHECK_OK(nerve_st_read(f, i, got, 6));
    w[0] = 1.5f;
    CHECK(memcmp(got, w, sizeof w) == 0); /* bit-exact, -0 included */
    CHECK_OK(nerve_st_read(f, 1, got, 3));
    CHECK_ARRAY_NEAR(got, b, 3, 0);
    CHECK_OK(nerve_st_shape(f, 2, &ndim, dims));
    CHECK(ndim == 0);
    CHECK_OK(nerve_st_read(f, 2, got, 1));
    CHECK(got[0] == 42.0f);
    CHECK_OK(nerve_st_shape(f, 3, &ndim, dims));
    CHECK(ndim == 2 && dims[0] == 0 && dims[1] == 4);
    CHECK(nerve_st_read(f, 0, got, 5) == NERVE_ERR_SHAPE);
    CHECK(strcmp(nerve_st_metadata(f, "nerve.cfg"), tricky_cfg) == 0);
    CHECK(strcmp(nerve_st_metadata(f, "epoch"), "4") == 0);
    CHECK(nerve_st_metadata(f, "absent") == NULL);
    nerve_st_close(f);
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(safetensors_writer_layout_is_aligned_little_endian_f32)
{
    char path[512];
    tmp_path(path, sizeof path, "layout.safetensors");
    const float v[2] = {1.0f, -2.0f};
    nerve_st_writer *wr = nerve_st_writer_create();
    CHECK_OK(nerve_st_writer_add(wr, "a", 1, (int[]){2}, v));
    CHECK_OK(nerve_st_writer_save(wr, path));
    nerve_st_writer_free(wr);
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    CHECK(bytes != NULL);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | bytes[i];
    const char *want = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t wl = strlen(want);
    int ok = n % 8 == 0 && n >= wl && n < wl + 8 && len == 8 + n + 8 &&
             memcmp(bytes + 8, want, wl) == 0;
    for (size_t k = wl; ok && k < n; k++)
        ok = bytes[8 + k] == ' ';
    /* 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0 */
    const unsigned char data[8] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0};
    ok = ok && memcmp(bytes + 8 + n, data, 8) == 0;
    free(bytes);
    CHECK(ok);
}

TEST(safetensors_writer_rejects_duplicates_and_bad_names)
{
    size_t held = nerve_alloc_bytes();
    const float v[1] = {0};
    nerve_st_writer *wr = nerve_st_writer_create();
    CHECK_OK(nerve_st_writer_add(wr, "w", 1, (int[]){1}, v));
    CHECK(nerve_st_writer_add(wr, "w", 1, (int[]){1}, v) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "duplicate") != NULL);
    CHECK(nerve_st_writer_add(wr, "__metadata__", 1, (int[]){1}, v) == NERVE_ERR_ARG);
    CHECK(nerve_st_writer_add(wr, "", 1, (int[]){1}, v) == NERVE_ERR_ARG);
    CHECK(nerve_st_writer_add(wr, "bad\xff", 1, (int[]){1}, v) == NERVE_ERR_ARG);
    CHECK(nerve_st_writer_add(wr, "neg", 1, (int[]){-1}, v) == NERVE_ERR_ARG);
    CHECK(nerve_st_writer_add(wr, "nodata", 1, (int[]){1}, NULL) == NERVE_ERR_ARG);
    CHECK(nerve_st_writer_meta(wr, "k", "\xc3") == NERVE_ERR_ARG);
    CHECK(nerve_st_writer_save(wr, "/nonexistent-dir/x.safetensors") == NERVE_ERR_IO);
    CHECK(strstr(nerve_last_error(), "/nonexistent-dir/x.safetensors") != NULL);
    nerve_st_writer_free(wr);
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(safetensors_save_replaces_an_existing_file)
{
    char path[512];
    tmp_path(path, sizeof path, "ckpt.safetensors");
    spit(path, "old contents", 12);
    const float v[1] = {5};
    nerve_st_writer *wr = nerve_st_writer_create();
    CHECK_OK(nerve_st_writer_add(wr, "x", 1, (int[]){1}, v));
    CHECK_OK(nerve_st_writer_save(wr, path));
    nerve_st_writer_free(wr);
    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL && nerve_st_count(f) == 1);
    nerve_st_close(f);
}

TEST(safetensors_reads_f16_bf16_and_integer_dtypes)
{
    /* Written by hand, data in file order c, h, b, d, i, u, j (not header order). */
    const char *header =
        "{ \"h\": {\"shape\": [2, 3], \"dtype\": \"F16\", \"data_offsets\": [8, 20]},\n"
        "  \"b\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [20, 26]},\n"
        "  \"__metadata__\": {\"format\": \"pt\", \"note\": \"\\u00e9\\ud83e\\udde0\"},\n"
        "  \"c\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]},\n"
        "  \"d\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [26, 34]},\n"
        "  \"i\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [34, 38]},\n"
        "  \"u\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [38, 40]},\n"
        "  \"j\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [40, 41]} }";
    unsigned char data[41] = {
        /* c: F64 -0.375 */ 0, 0, 0, 0, 0, 0, 0xD8, 0xBF,
        /* h: F16 1, -2, 0.5, 65504, 2^-24 (smallest subnormal), -inf */
        0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0xFC,
        /* b: BF16 1, -3, 0.15625 */ 0x80, 0x3F, 0x40, 0xC0, 0x20, 0x3E,
        /* d: I64 -5 */ 0xFB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        /* i: I32 100000 */ 0xA0, 0x86, 0x01, 0x00,
        /* u: U8 0, 255 */ 0, 255,
        /* j: I8 -128 */ 0x80};
    char path[512];
    tmp_path(path, sizeof path, "hand.safetensors");
    write_st(path, strlen(header), header, data, sizeof data);
    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL);
    CHECK(nerve_st_count(f) == 7 && strcmp(nerve_st_name(f, 0), "h") == 0);
    float h[6], b[3], one;
    CHECK_OK(nerve_st_read(f, nerve_st_find(f, "h"), h, 6));
    const float want_h[5] = {1, -2, 0.5f, 65504, 5.9604644775390625e-8f};
    CHECK_ARRAY_NEAR(h, want_h, 5, 0);
    CHECK(isinf(h[5]) && h[5] < 0);
    CHECK_OK(nerve_st_read(f, nerve_st_find(f, "b"), b, 3));
    const float want_b[3] = {1, -3, 0.15625f};
    CHECK_ARRAY_NEAR(b, want_b, 3, 0);
    CHECK_OK(nerve_st_read(f, nerve_st_find(f, "c"), &one, 1));
    CHECK(one == -0.375f);
    CHECK_OK(nerve_st_read(f, nerve_st_find(f, "d"), &one, 1));
    CHECK(one == -5.0f);
    CHECK_OK(nerve_st_read(f, nerve_st_find(f, "i"), &one, 1));
    CHECK(one == 100000.0f);
    CHECK_OK(nerve_st_read(f, nerve_st_find(f, "u"), b, 2));
    CHECK(b[0] == 0 && b[1] == 255);
    CHECK_OK(nerve_st_read(f, nerve_st_find(f, "j"), &one, 1));
    CHECK(one == -128.0f);
    CHECK(strcmp(nerve_st_metadata(f, "format"), "pt") == 0);
    CHECK(strcmp(nerve_st_metadata(f, "note"), "\xc3\xa9\xf0\x9f\xa7\xa0") == 0);
    nerve_st_close(f);
}

/* Opening must fail with NERVE_ERR_FORMAT and a message naming the file and `text`. */
static int expect_bad(const char *path, const char *text)
{
    nerve_st_file *f = nerve_st_open(path);
    if (f || nerve_last_status() != NERVE_ERR_FORMAT || !strstr(nerve_last_error(), path) ||
        !strstr(nerve_last_error(), text)) {
        test_fail(__FILE__, __LINE__, "open gave %p, status %d, message '%s' (want '%s')",
                  (void *)f, nerve_last_status(), nerve_last_error(), text);
        nerve_st_close(f);
        return 0;
    }
    return 1;
}

static void bad_header(const char *name, const char *header, size_t data_len, const char *text)
{
    static const unsigned char zeros[64];
    char path[512];
    tmp_path(path, sizeof path, name);
    write_st(path, strlen(header), header, zeros, data_len);
    if (!expect_bad(path, text))
        test_fail(__FILE__, __LINE__, "for file %s", name);
}

#define T1(off) "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off "}}"

TEST(safetensors_rejects_malformed_files_naming_them)
{
    size_t held = nerve_alloc_bytes();
    char path[512];
    tmp_path(path, sizeof path, "short.st");
    spit(path, "\x10\0\0", 3);
    CHECK(expect_bad(path, "too short"));
    tmp_path(path, sizeof path, "huge-header.st");
    write_st(path, 1000, "{}", NULL, 0);
    CHECK(expect_bad(path, "header length 1000 exceeds"));

    /* control: the well-formed variant the bad ones below are edited from opens */
    static const unsigned char eight[8];
    write_st(tmp_path(path, sizeof path, "ok.st"), strlen(T1("[0,8]")), T1("[0,8]"), eight, 8);
    nerve_st_file *f = nerve_st_open(path);
    CHECK(f != NULL);
    nerve_st_close(f);
    bad_header("not-json.st", "{\"t\":{\"dtype\":\"F32\",}}", 8, "malformed JSON header");
    bad_header("trailing.st", "{} x", 0, "malformed JSON header");
    bad_header("array.st", "[1,2]", 0, "not a JSON object");
    bad_header("out-of-range.st", T1("[0,8]"), 4, "outside the data section");
    bad_header("wrong-size.st", T1("[0,12]"), 12, "do not match its dtype and shape");
    bad_header("reversed.st", T1("[8,0]"), 8, "outside the data section");
    bad_header("negative.st", T1("[-1,7]"), 8, "non-negative integers");
    bad_header("gap.st", T1("[4,12]"), 12, "gap");
    bad_header("unused.st", T1("[0,8]"), 12, "4 bytes of the data section unused");
    bad_header("overlap.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "overlaps");
    bad_header("dup.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "duplicate tensor name 'a'");
    bad_header("dtype.st", "{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}",
               2, "unsupported dtype 'F8_E4M3'");
    bad_header("shape.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
               4, "shape entries");
    bad_header("missing.st", "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
               "needs exactly");
    bad_header("meta.st", "{\"__metadata__\":{\"k\":1}}", 0, "metadata value of 'k'");
    bad_header("utf8.st", "{\"__metadata__\":{\"k\":\"\xc3\x28\"}}", 0, "invalid UTF-8");
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(safetensors_rejects_truncated_copies_of_a_good_file)
{
    size_t held = nerve_alloc_bytes();
    char path[512], cut[512];
    tmp_path(path, sizeof path, "full.safetensors");
    const float v[4] = {1, 2, 3, 4};
    nerve_st_writer *wr = nerve_st_writer_create();
    CHECK_OK(nerve_st_writer_add(wr, "v", 1, (int[]){4}, v));
    CHECK_OK(nerve_st_writer_meta(wr, "k", "value"));
    CHECK_OK(nerve_st_writer_save(wr, path));
    nerve_st_writer_free(wr);
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    CHECK(bytes != NULL);
    tmp_path(cut, sizeof cut, "cut.safetensors");
    int ok = 1;
    for (size_t n = 0; n < len && ok; n++) {
        remove(cut); /* rewriting in place makes some file systems flush on close */
        spit(cut, bytes, n);
        ok = expect_bad(cut, "");
    }
    free(bytes);
    CHECK(ok);
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(safetensors_missing_file_is_an_io_error)
{
    CHECK(nerve_st_open("/nonexistent/model.safetensors") == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_IO);
    CHECK(strstr(nerve_last_error(), "/nonexistent/model.safetensors") != NULL);
    CHECK(nerve_st_open(test_tmpdir()) == NULL && nerve_last_status() == NERVE_ERR_IO);
}

/* ---- the JSON reader ----------------------------------------------------------------- */

static int parses(const char *text)
{
    char err[128];
    nerve_json *v = nerve_json_parse(text, strlen(text), err, sizeof err);
    nerve_json_free(v);
    return v != NULL;
}

TEST(json_reader_decodes_values_exactly)
{
    size_t held = nerve_alloc_bytes();
    const char *text = " {\"a\": [1, -2.5e2, 18446744073709551615, 18446744073709551616],"
                       " \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\uD834\\uDD1E\","
                       " \"t\": true, \"f\": false, \"n\": null, \"e\": {}, \"z\": []} ";
    char err[128];
    nerve_json *v = nerve_json_parse(text, strlen(text), err, sizeof err);
    CHECK_MSG(v != NULL, "%s", err);
    const nerve_json *a = nerve_json_get(v, "a");
    CHECK(a && a->type == NERVE_JSON_ARRAY && a->count == 4);
    CHECK(a->items[0].is_uint && a->items[0].uint == 1);
    CHECK(!a->items[1].is_uint && a->items[1].number == -250.0);
    CHECK(a->items[2].is_uint && a->items[2].uint == UINT64_MAX);
    CHECK(!a->items[3].is_uint); /* past u64 */
    const nerve_json *s = nerve_json_get(v, "s");
    CHECK(s && strcmp(s->string, "x\"\\/\b\f\n\r\tA\xc3\xa9\xf0\x9d\x84\x9e") == 0);
    CHECK(nerve_json_get(v, "t")->boolean == 1 && nerve_json_get(v, "f")->boolean == 0);
    CHECK(nerve_json_get(v, "n")->type == NERVE_JSON_NULL);
    CHECK(nerve_json_get(v, "e")->count == 0 && nerve_json_get(v, "z")->count == 0);
    CHECK(nerve_json_get(v, "missing") == NULL);
    nerve_json_free(v);
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(json_reader_rejects_what_rfc8259_forbids)
{
    size_t held = nerve_alloc_bytes();
    CHECK(parses("{\"a\":1}") && parses("[]") && parses("\"\"") && parses("-0.5e-3"));
    const char *bad[] = {"",          "{",        "{\"a\" 1}", "{\"a\":1,}", "[1,]",
                         "[01]",      "[1.]",     "[.5]",      "[1e]",       "[+1]",
                         "{a:1}",     "'x'",      "[tru]",     "[1] [2]",    "\"a\x01\"",
                         "\"\\x\"",   "\"\\u12\"", "\"\\ud800\"", "\"\\u0000\"", "\"\xc0\xaf\"",
                         "\"\xed\xa0\x80\"", "[NaN]", "[1 2]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!parses(bad[i]), "accepted %s", bad[i]);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    char err[128];
    CHECK(nerve_json_parse(deep, 200, err, sizeof err) == NULL);
    CHECK(strstr(err, "too deep") != NULL);
    CHECK(nerve_json_parse("{\"a\":}", 6, err, sizeof err) == NULL);
    CHECK(strcmp(err, "at byte 5: unexpected character") == 0);
    CHECK(nerve_alloc_bytes() == held); /* nothing leaks */
}

TEST(json_writer_escapes_and_round_trips)
{
    nerve_strbuf b = {0};
    nerve_json_append_string(&b, tricky_cfg);
    CHECK(!b.failed && b.data[0] == '"');
    CHECK(strchr(b.data, '\n') == NULL && strchr(b.data, '\t') == NULL);
    CHECK(strstr(b.data, "\\u0001") != NULL && strstr(b.data, "\\\"quoted\\\"") != NULL);
    char err[128];
    nerve_json *v = nerve_json_parse(b.data, b.len, err, sizeof err);
    CHECK_MSG(v != NULL, "%s", err);
    CHECK(v->type == NERVE_JSON_STRING && strcmp(v->string, tricky_cfg) == 0);
    nerve_json_free(v);
    nerve_strbuf_free(&b);
}

TEST(safetensors_open_of_a_cfg_says_it_is_no_checkpoint)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model.cfg", test_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs("[net]\nbatch=2\nchannels=1\nheight=8\nwidth=8\n[connected]\noutput=3\n[softmax]\n", f);
    fclose(f);
    CHECK(nerve_st_open(path) == NULL);
    CHECK(strstr(nerve_last_error(), "model.cfg: not a safetensors checkpoint: it is a text file"));
    CHECK(nerve_model_load(path) == NULL);
    CHECK(strstr(nerve_last_error(), "train it first"));
}
