/* The character-level language model (section 15): the course's "hello" toy, held-out bits
 * per character, vocabulary and checkpoint round trip, seeded sampling, file errors, and
 * the `nerve textgen` commands. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static nerve_textgen_config small_config(int hidden, int seq, int batch, int steps)
{
    nerve_textgen_config c = nerve_textgen_default();
    c.hidden = hidden;
    c.seq = seq;
    c.batch = batch;
    c.steps = steps;
    c.eval_every = 0;
    return c;
}

static int argmax(const float *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = p[i] > p[best] ? i : best;
    return best;
}

static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}

/* The course's toy: vocabulary [h, e, l, o]; after h, e, l, l the model predicts e, l, l, o
 * (the second l needs memory: after "he" the l is followed by l, after "hel" by o), and
 * greedy sampling primed with "h" spells "hello". */
TEST(textgen_hello_toy)
{
    nerve_textgen_config c = small_config(16, 4, 1, 120);
    c.holdout = 0;
    c.lr = 0.05f;
    nerve_textgen *t = nerve_textgen_create("hello", 5, &c);
    CHECK(t != NULL);
    unsigned char vocab[8];
    CHECK(nerve_textgen_vocab(t, vocab, 8) == 4);
    CHECK(memcmp(vocab, "ehlo", 4) == 0); /* sorted bytes */
    nerve_textgen_report last;
    CHECK_OK(nerve_textgen_train(t, "hello", 5, NULL, NULL, &last));
    CHECK(last.step == 120 && isnan(last.val_bpc));
    CHECK_MSG(last.train_bpc < 0.2, "final training bits/char %.4f", last.train_bpc);
    const char *in = "hell", *want = "ello";
    float p[4];
    CHECK_OK(nerve_textgen_reset(t));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(nerve_textgen_next(t, in[i], p));
        CHECK_NEAR(p[0] + p[1] + p[2] + p[3], 1.0, 1e-5);
        CHECK_MSG(vocab[argmax(p, 4)] == want[i], "after '%.*s' the model predicts '%c'", i + 1,
                  in, vocab[argmax(p, 4)]);
    }
    char out[4];
    CHECK(nerve_textgen_sample(t, "h", 1, 4, 0.0f, 1, out) == 4);
    CHECK_MSG(memcmp(out, "ello", 4) == 0, "sampled 'h%.4s'", out);
    nerve_textgen_free(t);
}

/* A periodic text is learned to near certainty; bits/char on the held-out tail agree with
 * the step interface's probabilities (the definition: mean -log2 p(next)). */
TEST(textgen_held_out_bits_per_character)
{
    char text[600];
    for (int i = 0; i < 600; i++)
        text[i] = "abcb"[i % 4];
    nerve_textgen_config c = small_config(12, 8, 4, 150);
    c.lr = 0.02f;
    c.eval_every = 50;
    nerve_textgen *t = nerve_textgen_create(text, sizeof text, &c);
    CHECK(t != NULL);
    nerve_textgen_report last;
    CHECK_OK(nerve_textgen_train(t, text, sizeof text, NULL, NULL, &last));
    CHECK_MSG(last.val_bpc < 0.3, "held-out bits/char %.4f", last.val_bpc);
    CHECK(last.chars_per_sec > 0 && last.seconds > 0);
    /* held-out tail: the last 60 characters */
    double bpc, sum = 0;
    CHECK_OK(nerve_textgen_bpc(t, text + 540, 60, &bpc));
    CHECK_NEAR(bpc, last.val_bpc, 1e-9);
    unsigned char vocab[4];
    nerve_textgen_vocab(t, vocab, 4);
    float p[3];
    CHECK_OK(nerve_textgen_reset(t));
    for (int i = 540; i < 599; i++) {
        CHECK_OK(nerve_textgen_next(t, text[i], p));
        int k = (int)(strchr((const char *)vocab, text[i + 1]) - (const char *)vocab);
        sum -= log2(p[k]);
    }
    CHECK_NEAR(bpc, sum / 59, 1e-4);
    nerve_textgen_free(t);
}

static void count_report(const nerve_textgen_report *r, void *user)
{
    (void)r;
    ++*(int *)user;
}

TEST(textgen_checkpoint_round_trip)
{
    const char *text = "the cat sat on the mat.\nthe dog sat on the log.\n";
    size_t len = strlen(text);
    nerve_textgen_config c = small_config(10, 6, 2, 12);
    c.embed = 5;
    c.holdout = 0;
    c.eval_every = 5;
    nerve_textgen *t = nerve_textgen_create(text, len, &c);
    CHECK(t != NULL);
    int reports = 0;
    CHECK_OK(nerve_textgen_train(t, text, len, count_report, &reports, NULL));
    CHECK(reports == 3); /* steps 5, 10 and the last */
    char path[1024];
    snprintf(path, sizeof path, "%s/lm.safetensors", test_tmpdir());
    CHECK_OK(nerve_textgen_save(t, path));
    nerve_textgen *u = nerve_textgen_load(path);
    CHECK(u != NULL);
    unsigned char va[256], vb[256];
    int na = nerve_textgen_vocab(t, va, 256), nb = nerve_textgen_vocab(u, vb, 256);
    CHECK(na == 15 && nb == na && memcmp(va, vb, (size_t)na) == 0);
    const nerve_textgen_config *cu = nerve_textgen_get_config(u);
    CHECK(cu->hidden == 10 && cu->embed == 5 && cu->seq == 6 && cu->batch == 2 && cu->steps == 12);
    CHECK(cu->lr == c.lr && cu->seed == c.seed);
    float pa[15], pb[15];
    CHECK_OK(nerve_textgen_reset(t));
    CHECK_OK(nerve_textgen_reset(u));
    for (const char *s = "the "; *s; s++) {
        CHECK_OK(nerve_textgen_next(t, *s, pa));
        CHECK_OK(nerve_textgen_next(u, *s, pb));
        CHECK_ARRAY_NEAR(pb, pa, 15, 0);
    }
    char sa[40], sb[40];
    CHECK(nerve_textgen_sample(t, "the", 3, 40, 1.0f, 9, sa) == 40);
    CHECK(nerve_textgen_sample(u, "the", 3, 40, 1.0f, 9, sb) == 40);
    CHECK(memcmp(sa, sb, 40) == 0);
    nerve_textgen_free(u);
    nerve_textgen_free(t);
    /* A model checkpoint is not a text model. */
    nerve_model *m = nerve_model_from_cfg("[net]\ninputs=2\n[connected]\noutput=1\n", "x.cfg");
    CHECK(m != NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", test_tmpdir());
    CHECK_OK(nerve_model_save(m, path));
    nerve_model_free(m);
    CHECK(nerve_textgen_load(path) == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), "not a nerve text model") != NULL);
    CHECK(strstr(nerve_last_error(), path) != NULL);
}

TEST(textgen_sampling_is_seeded)
{
    const char *text = "abcdefghij klmnop\n";
    nerve_textgen_config c = small_config(8, 4, 1, 1);
    nerve_textgen *t = nerve_textgen_create(text, strlen(text), &c);
    CHECK(t != NULL);
    char a[64], b[64], d[64];
    CHECK(nerve_textgen_sample(t, "ab", 2, 64, 1.0f, 42, a) == 64);
    CHECK(nerve_textgen_sample(t, "ab", 2, 64, 1.0f, 42, b) == 64);
    CHECK(memcmp(a, b, 64) == 0);
    CHECK(nerve_textgen_sample(t, "ab", 2, 64, 1.0f, 43, d) == 64);
    CHECK(memcmp(a, d, 64) != 0);
    for (int i = 0; i < 64; i++)
        CHECK(strchr(text, a[i]) != NULL); /* only vocabulary bytes */
    /* Greedy sampling ignores the seed. */
    CHECK(nerve_textgen_sample(t, "", 0, 64, 0.0f, 1, a) == 64);
    CHECK(nerve_textgen_sample(t, NULL, 0, 64, 0.0f, 2, b) == 64);
    CHECK(memcmp(a, b, 64) == 0);
    /* Bytes outside the vocabulary. */
    CHECK(nerve_textgen_sample(t, "xyz", 3, 4, 1.0f, 1, a) == NERVE_ERR_ARG);
    CHECK(strstr(nerve_last_error(), "'x'") != NULL);
    CHECK(nerve_textgen_next(t, 'Z', NULL) == NERVE_ERR_ARG);
    CHECK(nerve_textgen_sample(t, "ab", 2, 4, -1.0f, 1, a) == NERVE_ERR_ARG);
    nerve_textgen_free(t);
}

TEST(textgen_file_errors)
{
    nerve_textgen_config c = small_config(8, 4, 2, 2);
    CHECK(nerve_textgen_train_file("/nonexistent/text.txt", &c, NULL, NULL, NULL) == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_IO);
    CHECK(strstr(nerve_last_error(), "/nonexistent/text.txt") != NULL);
    const char *empty = write_file("empty.txt", "", 0);
    CHECK(nerve_textgen_train_file(empty, &c, NULL, NULL, NULL) == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_FORMAT);
    CHECK(strstr(nerve_last_error(), empty) && strstr(nerve_last_error(), "empty"));
    /* 8 characters (none held out: 10% is less than one) make 2 streams of 4 < seq + 1 */
    const char *tiny = write_file("tiny.txt", "goodbye\n", 8);
    CHECK(nerve_textgen_train_file(tiny, &c, NULL, NULL, NULL) == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_FORMAT);
    CHECK_MSG(strstr(nerve_last_error(), tiny) && strstr(nerve_last_error(), "lower batch or seq"),
              "got '%s'", nerve_last_error());
    c.hidden = 0;
    CHECK(nerve_textgen_create("ab", 2, &c) == NULL);
    CHECK(nerve_last_status() == NERVE_ERR_ARG);
    CHECK(nerve_textgen_create("", 0, NULL) == NULL);
}

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(textgen_cli_train_and_sample)
{
    char text[2000];
    for (int i = 0; i < 2000; i++)
        text[i] = "to be or not to be\n"[i % 19];
    const char *file = write_file("be.txt", text, sizeof text);
    CHECK(file != NULL);
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd,
             "%s/nerve textgen train %s --out %s/run --hidden 16 --seq 16 --batch 4 --steps 60 "
             "--eval-every 30 --lr 0.01 --threads 1 2>&1",
             test_build_dir(), file, test_tmpdir());
    CHECK_MSG(run(cmd, out, sizeof out) == 0, "%s\n%s", cmd, out);
    CHECK_MSG(strstr(out, "step     30/60") && strstr(out, "held-out bits per character: "),
              "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s/nerve textgen sample %s/run/model.safetensors --prime 'to be' --length 30 "
             "--temperature 0.5 --seed 3",
             test_build_dir(), test_tmpdir());
    CHECK_MSG(run(cmd, out, sizeof out) == 0, "%s", out);
    CHECK_MSG(strncmp(out, "to be", 5) == 0 && strlen(out) == 36, "'%s'", out);
    char again[8192];
    CHECK(run(cmd, again, sizeof again) == 0 && strcmp(out, again) == 0);
    snprintf(cmd, sizeof cmd, "%s/nerve textgen sample %s/run/model.safetensors --prime Q 2>&1",
             test_build_dir(), test_tmpdir());
    CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "'Q'"));
    snprintf(cmd, sizeof cmd, "%s/nerve textgen train /nonexistent/x.txt --out %s/bad 2>&1",
             test_build_dir(), test_tmpdir());
    CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "/nonexistent/x.txt"));
    snprintf(cmd, sizeof cmd, "%s/nerve help", test_build_dir());
    CHECK(run(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "textgen train TEXTFILE") && strstr(out, "textgen sample CKPT"));
}
