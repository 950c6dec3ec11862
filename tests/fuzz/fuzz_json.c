/* libFuzzer target: the JSON reader (safetensors headers and reports). Parses the input,
 * walks the tree checking the invariants the callers rely on, and exercises lookups. */
#include "fuzz_common.h"

#include "io/json.h"

static void walk(const nerve_json *v, int depth)
{
    if (depth > 65)
        abort(); /* the reader promises to reject nesting deeper than 64 */
    switch (v->type) {
    case NERVE_JSON_STRING:
        if (!v->string || !nerve_utf8_valid(v->string, strlen(v->string)))
            abort();
        break;
    case NERVE_JSON_ARRAY:
    case NERVE_JSON_OBJECT:
        if (v->count < 0 || (v->count > 0 && !v->items))
            abort();
        for (int i = 0; i < v->count; i++) {
            if (v->type == NERVE_JSON_OBJECT) {
                if (!v->keys || !v->keys[i] || !nerve_utf8_valid(v->keys[i], strlen(v->keys[i])))
                    abort();
                if (!nerve_json_get(v, v->keys[i]))
                    abort();
            }
            walk(&v->items[i], depth + 1);
        }
        break;
    case NERVE_JSON_NUMBER:
        if (v->is_uint && (double)v->uint != v->number && v->uint < (1ull << 53))
            abort();
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    err[0] = 'x';
    nerve_json *v = nerve_json_parse((const char *)data, size, err, sizeof err);
    if (!v) {
        if (!memchr(err, '\0', sizeof err))
            abort();
        return 0;
    }
    walk(v, 0);
    nerve_json_get(v, "__metadata__");
    nerve_json_free(v);
    (void)nerve_utf8_valid((const char *)data, size);

    /* The writer side: escaping any string and reading it back gives the same string. */
    char *s = fuzz_text(data, size);
    if (nerve_utf8_valid(s, strlen(s))) {
        nerve_strbuf b = {0};
        nerve_json_append_string(&b, s);
        if (!b.failed) {
            nerve_json *back = nerve_json_parse(b.data, b.len, err, sizeof err);
            if (!back || back->type != NERVE_JSON_STRING || strcmp(back->string, s) != 0) {
                fprintf(stderr, "escaped string does not read back: %s\n", back ? "differs" : err);
                abort();
            }
            nerve_json_free(back);
        }
        nerve_strbuf_free(&b);
    }
    free(s);
    return 0;
}
