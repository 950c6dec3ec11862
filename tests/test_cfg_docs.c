/* docs/cfg.md cannot drift from the parser: every key a section accepts is documented under
 * that section's heading, and every key documented there is accepted.
 *
 * The accepted keys come from the parser itself: a cfg with an unknown key in a section fails
 * with "unknown key ... expected one of: <every key>", and an unknown section with the list of
 * sections. The documented keys are the `key` column of the tables under a heading that names
 * the section ("### [convolutional]", "### Recurrent layers: [rnn], [lstm], [gru]"; every
 * heading under "## [net]" is [net]'s; a row whose meaning says "`[lstm]` only" belongs to
 * that section alone), the keys listed after "Keys:" in a paragraph under such a heading
 * ("Keys: those of `[convolutional]`, plus `output_padding`" takes [convolutional]'s too), and
 * the `key=` of the "## Layers" introduction, which every layer takes. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SECTIONS 48
#define MAX_KEYS 160

typedef struct key_set {
    char name[32]; /* section name without brackets: "net", "convolutional" */
    char keys[MAX_KEYS][40];
    int n;
} key_set;

static void add_key(key_set *s, const char *key, size_t len)
{
    if (len == 0 || len >= 40 || s->n >= MAX_KEYS)
        return;
    for (int i = 0; i < s->n; i++)
        if (strlen(s->keys[i]) == len && !strncmp(s->keys[i], key, len))
            return;
    memcpy(s->keys[s->n], key, len);
    s->keys[s->n++][len] = '\0';
}

static int has_key(const key_set *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->keys[i], key))
            return 1;
    return 0;
}

/* Splits "a, b, c" (up to the end of the line or of the message) into s. */
static void add_list(key_set *s, const char *list)
{
    while (*list && *list != '\n') {
        size_t len = strcspn(list, ",\n (");
        add_key(s, list, len);
        list += len;
        if (*list != ',')
            break;
        list += strspn(list, ", ");
    }
}

/* The sections the parser knows, from its "unknown section" message. */
static int parser_sections(key_set *sets)
{
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=4\n[zzz_no_such_section]\n", "probe.cfg");
    if (m) {
        nerve_model_free(m);
        return -1;
    }
    const char *list = strstr(nerve_last_error(), "expected one of: ");
    if (!list)
        return -1;
    key_set names = {0};
    add_list(&names, list + strlen("expected one of: "));
    snprintf(sets[0].name, sizeof sets[0].name, "net");
    int n = 1;
    for (int i = 0; i < names.n && n < MAX_SECTIONS; i++)
        snprintf(sets[n++].name, sizeof sets[0].name, "%s", names.keys[i]);
    return n;
}

/* The keys the parser accepts in section s->name, from its "unknown key" message. */
static int parser_keys(key_set *s)
{
    char text[256];
    if (!strcmp(s->name, "net"))
        snprintf(text, sizeof text, "[net]\ninputs=4\nzzz_no_such_key=1\n");
    else
        snprintf(text, sizeof text, "[net]\ninputs=4\n[%s]\nzzz_no_such_key=1\n", s->name);
    nerve_model *m = nerve_model_from_cfg(text, "probe.cfg");
    if (m) {
        nerve_model_free(m);
        return -1;
    }
    const char *err = nerve_last_error();
    if (!strstr(err, "unknown key 'zzz_no_such_key'"))
        return -1;
    const char *list = strstr(err, "expected one of: ");
    if (!list)
        return -1;
    add_list(s, list + strlen("expected one of: "));
    return s->n;
}

/* Cell col (0-based) of a table row "| a | b |", without the bars: *start and *len. */
static int cell(const char *row, size_t row_len, int col, const char **start, size_t *len)
{
    const char *p = row, *end = row + row_len;
    if (p >= end || *p != '|')
        return 0;
    p++;
    for (int c = 0;; c++) {
        const char *bar = p;
        while (bar < end && !(*bar == '|' && bar[-1] != '\\'))
            bar++;
        if (bar >= end)
            return 0;
        if (c == col) {
            *start = p;
            *len = (size_t)(bar - p);
            return 1;
        }
        p = bar + 1;
    }
}

/* Fills docs[] (names as in sets) with the keys docs/cfg.md documents per section. Returns
 * the number of keys read, or -1. */
static int documented_keys(const char *md, const key_set *sets, int n, key_set *docs)
{
    for (int i = 0; i < n; i++) {
        memset(&docs[i], 0, sizeof docs[i]);
        memcpy(docs[i].name, sets[i].name, sizeof docs[i].name);
    }
    int total = 0, in_net = 0, in_layers_intro = 0, in_code = 0, key_col = -1;
    int current[MAX_SECTIONS], n_current = 0;
    const char *keys_from = NULL; /* inside a "Keys:" paragraph */
    struct {
        const char *from;
        size_t from_len;
        int to[MAX_SECTIONS], n_to;
    } inherit[8];
    int n_inherit = 0;
    for (const char *line = md; *line;) {
        size_t len = strcspn(line, "\n");
        const char *next = line + len + (line[len] == '\n');
        if (!strncmp(line, "```", 3))
            in_code = !in_code;
        else if (in_code)
            ;
        else if (!strncmp(line, "## ", 3) || !strncmp(line, "### ", 4)) {
            int h2 = line[2] == ' ';
            if (h2) {
                in_net = !strncmp(line, "## [net]", 8);
                in_layers_intro = !strncmp(line, "## Layers", 9);
            } else
                in_layers_intro = 0;
            n_current = 0;
            if (in_net)
                current[n_current++] = 0;
            else /* every "[name]" of the heading */
                for (const char *p = line; p < line + len && (p = memchr(p, '[', (size_t)(line + len - p)));
                     p++) {
                    size_t nl = strcspn(p + 1, "]\n");
                    for (int i = 1; i < n; i++)
                        if (strlen(sets[i].name) == nl && !strncmp(sets[i].name, p + 1, nl))
                            current[n_current++] = i;
                }
            key_col = -1;
            keys_from = NULL;
        } else if (line[0] == '|' && !strncmp(next, "|---", 4)) { /* a table's header */
            key_col = -1;
            const char *s;
            size_t sl;
            for (int c = 0; cell(line, len, c, &s, &sl); c++) {
                while (sl && *s == ' ')
                    s++, sl--;
                while (sl && s[sl - 1] == ' ')
                    sl--;
                if (sl == 3 && !strncmp(s, "key", 3))
                    key_col = c;
            }
        } else if (line[0] == '|' && key_col >= 0 && strncmp(line, "|---", 4)) {
            const char *s;
            size_t sl;
            int only[MAX_SECTIONS], n_only = 0, says_only = 0; /* "`[lstm]` only" in the row */
            for (const char *p = line; (p = strstr(p, "]` only")) && p < line + len && n_only < MAX_SECTIONS; p++) {
                const char *b = p;
                says_only = 1;
                while (b > line && b[-1] != '[')
                    b--;
                for (int i = 0; i < n_current; i++)
                    if (strlen(sets[current[i]].name) == (size_t)(p - b) &&
                        !strncmp(sets[current[i]].name, b, (size_t)(p - b)))
                        only[n_only++] = current[i];
            }
            if (cell(line, len, key_col, &s, &sl))
                for (const char *p = s; p < s + sl && (p = memchr(p, '`', (size_t)(s + sl - p)));) {
                    const char *q = memchr(p + 1, '`', (size_t)(s + sl - p - 1));
                    if (!q)
                        break;
                    size_t kl = strcspn(p + 1, "=`");
                    for (int i = 0; i < (says_only ? n_only : n_current); i++) {
                        add_key(&docs[says_only ? only[i] : current[i]], p + 1, kl);
                        total++;
                    }
                    p = q + 1;
                }
        } else if (line[0] != '|') {
            key_col = -1;
            if (len == 0)
                keys_from = NULL;
            else if (!keys_from && n_current && !in_net) {
                const char *k = strstr(line, "Keys:");
                keys_from = k && k < line + len ? k : NULL;
            }
            if (keys_from) { /* a "Keys: `a`, `b` ..." paragraph */
                const char *p = keys_from > line && keys_from < line + len ? keys_from : line;
                while (p < line + len && (p = memchr(p, '`', (size_t)(line + len - p)))) {
                    const char *q = memchr(p + 1, '`', (size_t)(line + len - p - 1));
                    if (!q)
                        break;
                    size_t kl = strcspn(p + 1, "=`");
                    int ident = kl > 0 && strspn(p + 1, "abcdefghijklmnopqrstuvwxyz0123456789_") == kl;
                    if (p[1] == '[' && p - line >= 9 && !strncmp(p - 9, "those of ", 9) && n_inherit < 8) {
                        inherit[n_inherit].from_len = strcspn(p + 2, "]");
                        inherit[n_inherit].from = p + 2;
                        inherit[n_inherit].n_to = n_current;
                        memcpy(inherit[n_inherit++].to, current, sizeof current);
                    } else if (ident)
                        for (int i = 0; i < n_current; i++) {
                            add_key(&docs[current[i]], p + 1, kl);
                            total++;
                        }
                    p = q + 1;
                }
                keys_from = line + len; /* the next lines of the paragraph: from their start */
            }
        }
        if (in_layers_intro && !in_code) /* `key=` in the prose: a key of every layer */
            for (const char *p = line; p < line + len && (p = memchr(p, '`', (size_t)(line + len - p)));) {
                const char *q = memchr(p + 1, '`', (size_t)(line + len - p - 1));
                if (!q)
                    break;
                if (q[-1] == '=' && q - p > 2)
                    for (int i = 1; i < n; i++) {
                        add_key(&docs[i], p + 1, (size_t)(q - p - 2));
                        total++;
                    }
                p = q + 1;
            }
        line = next;
    }
    for (int k = 0; k < n_inherit; k++) /* "those of `[X]`": X's documented keys */
        for (int i = 0; i < n; i++)
            if (strlen(docs[i].name) == inherit[k].from_len &&
                !strncmp(docs[i].name, inherit[k].from, inherit[k].from_len))
                for (int t = 0; t < inherit[k].n_to; t++)
                    for (int j = 0; j < docs[i].n; j++)
                        add_key(&docs[inherit[k].to[t]], docs[i].keys[j], strlen(docs[i].keys[j]));
    return total;
}

TEST(cfg_every_accepted_key_is_documented_and_every_documented_key_accepted)
{
    static key_set sets[MAX_SECTIONS], docs[MAX_SECTIONS];
    int n = parser_sections(sets);
    CHECK_MSG(n > 10, "could not read the parser's sections: %s", nerve_last_error());
    for (int i = 0; i < n; i++)
        CHECK_MSG(parser_keys(&sets[i]) > 0, "could not read the keys of [%s]: %s", sets[i].name,
                  nerve_last_error());
    CHECK_MSG(has_key(&sets[0], "train_images") && has_key(&sets[0], "learning_rate"),
              "the [net] key list looks cut short");
    char *md = test_read_file("docs/cfg.md", NULL);
    CHECK(md != NULL);
    int total = documented_keys(md, sets, n, docs);
    free(md);
    CHECK_MSG(total > 100, "read only %d documented keys from docs/cfg.md", total);
    char missing[4096] = "", extra[4096] = "";
    size_t um = 0, ue = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < sets[i].n; k++)
            if (!has_key(&docs[i], sets[i].keys[k]) && um < sizeof missing - 80)
                um += (size_t)snprintf(missing + um, sizeof missing - um, " [%s] %s;", sets[i].name,
                                       sets[i].keys[k]);
        for (int k = 0; k < docs[i].n; k++)
            if (!has_key(&sets[i], docs[i].keys[k]) && ue < sizeof extra - 80)
                ue += (size_t)snprintf(extra + ue, sizeof extra - ue, " [%s] %s;", docs[i].name, docs[i].keys[k]);
    }
    CHECK_MSG(!um && !ue, "docs/cfg.md and the parser disagree.\naccepted but not documented:%s\n"
              "documented but not accepted:%s", um ? missing : " none", ue ? extra : " none");
}

/* The reader of docs/cfg.md finds what it should: a synthetic document with one key missing
 * and one too many, so that the check above can fail. */
TEST(cfg_docs_check_sees_a_missing_and_an_extra_key)
{
    static key_set sets[3], docs[3];
    snprintf(sets[0].name, sizeof sets[0].name, "net");
    snprintf(sets[1].name, sizeof sets[1].name, "maxpool");
    snprintf(sets[2].name, sizeof sets[2].name, "avgpool");
    const char *md = "## [net] (required)\n\n### Input\n\n| key | type | meaning |\n|---|---|---|\n"
                     "| `height`, `width` | int | size |\n\n## Layers\n\nEvery layer accepts `name=`.\n\n"
                     "### [maxpool] (darknet)\n\n| key | meaning |\n|---|---|\n| `size` | window |\n"
                     "| `stridee` | typo |\n\n```\n| `in_code` | x |\n```\n"
                     "### [avgpool]\n\n| name | key |\n|---|---|\n| x | `size=2` |\n"
                     "| y | `ceil_mode` (`[maxpool]` only) |\n\nKeys: those of `[maxpool]`, plus\n`extra`, "
                     "`not an identifier`.\n\nAfter: `ignored`\n";
    CHECK(documented_keys(md, sets, 3, docs) > 0);
    CHECK(has_key(&docs[0], "height") && has_key(&docs[0], "width") && docs[0].n == 2);
    CHECK(has_key(&docs[1], "size") && has_key(&docs[1], "stridee") && has_key(&docs[1], "name"));
    CHECK(!has_key(&docs[1], "in_code") && !has_key(&docs[0], "name"));
    CHECK(has_key(&docs[2], "size") && has_key(&docs[2], "extra") && has_key(&docs[2], "stridee"));
    CHECK(!has_key(&docs[2], "ignored") && !has_key(&docs[2], "ceil_mode"));
    key_set maxpool = {.name = "maxpool"};
    CHECK(parser_keys(&maxpool) > 0);
    CHECK(has_key(&maxpool, "stride") && !has_key(&maxpool, "stridee"));
    CHECK(!has_key(&docs[1], "stride")); /* missing from the synthetic document */
}
