/* Per-operator timing (nerve_graph_profile) and `nerve profile`: the time lands on the nodes
 * that ran, in the pass that ran them; switching it on starts from zero; the command's table
 * covers every operator and its shares add up to the whole. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char *TINY = "[net]\nheight=8\nwidth=8\nchannels=1\nbatch=4\n\n"
                          "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n\n"
                          "[maxpool]\nsize=2\nstride=2\n\n[connected]\noutput=3\n\n[softmax]\n";

TEST(graph_profile_times_the_nodes_that_ran_in_their_pass)
{
    nerve_model *m = nerve_model_from_cfg(TINY, "tiny.cfg");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_OK(nerve_model_compile(m, 4));
    nerve_graph *g = nerve_model_graph(m);
    int conv = -1, loss = nerve_model_loss(m), out = nerve_model_output(m);
    for (int i = 0; i < nerve_node_count(g); i++)
        if (!strcmp(nerve_node_op(g, i), "conv"))
            conv = i;
    CHECK(conv >= 0 && loss >= 0 && out >= 0);
    double f, b;
    CHECK(nerve_graph_profile_node(g, conv, &f, &b) == NERVE_ERR_STATE); /* off */
    CHECK_OK(nerve_graph_profile(g, 1));
    nerve_graph_set_training(g, 1);
    /* inference to the output: the conv has forward time, the loss none */
    CHECK_OK(nerve_forward(g, out));
    CHECK_OK(nerve_graph_profile_node(g, conv, &f, &b));
    CHECK(f > 0 && b == 0);
    CHECK_OK(nerve_graph_profile_node(g, loss, &f, &b));
    CHECK(f == 0 && b == 0);
    /* a training step: the conv's backward is timed too, and the totals only grow */
    double f1;
    CHECK_OK(nerve_graph_profile_node(g, conv, &f1, NULL));
    CHECK_OK(nerve_forward(g, loss));
    CHECK_OK(nerve_backward(g, loss));
    CHECK_OK(nerve_graph_profile_node(g, conv, &f, &b));
    CHECK(f > f1 && b > 0);
    CHECK_OK(nerve_graph_profile_node(g, loss, &f, NULL));
    CHECK(f > 0);
    /* switched on again: from zero */
    CHECK_OK(nerve_graph_profile(g, 1));
    CHECK_OK(nerve_graph_profile_node(g, conv, &f, &b));
    CHECK(f == 0 && b == 0);
    CHECK_OK(nerve_graph_profile(g, 0));
    CHECK(nerve_graph_profile_node(g, conv, &f, &b) == NERVE_ERR_STATE);
    CHECK(nerve_graph_profile_node(g, nerve_node_count(g), &f, &b) == NERVE_ERR_ARG);
    nerve_model_free(m);
}

TEST(cli_profile_table_covers_every_operator)
{
    char path[600], cmd[1400];
    static char text[1 << 16];
    snprintf(path, sizeof path, "%s/tiny.cfg", test_tmpdir());
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (!fp)
        return;
    fputs(TINY, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s profile %s --train --batch 4 --steps 3 --threads 1", test_nerve(), path);
    CHECK_MSG(test_run(cmd, text, sizeof text) == 0, "%s", text);
    CHECK_MSG(strstr(text, "training (forward, backward, SGD with momentum), batch 4, 1 thread, 3 steps"),
              "%s", text);
    /* the operator rows: every operator of the graph once, shares adding up to 100% */
    const char *p = strstr(text, "by operator");
    CHECK(p != NULL);
    if (!p)
        return;
    p = strchr(strchr(p, '\n') + 1, '\n') + 1;
    double share = 0;
    int rows = 0, seen_conv = 0, seen_dense = 0, seen_loss = 0;
    while (*p == ' ' && p[2] != ' ') {
        char op[32];
        int nodes;
        double fw, bw, sh;
        if (sscanf(p, "%31s %d %lf %lf %lf%%", op, &nodes, &fw, &bw, &sh) != 5)
            break;
        rows++, share += sh;
        seen_conv += !strcmp(op, "conv") && nodes == 1 && bw > 0;
        seen_dense += !strcmp(op, "dense") && nodes == 1;
        seen_loss += !strcmp(op, "softmax_ce_loss");
        p = strchr(p, '\n') + 1;
    }
    CHECK_MSG(rows >= 4 && seen_conv && seen_dense && seen_loss, "%s", text);
    CHECK_MSG(share > 99.0 && share < 101.0, "shares add up to %.1f%%\n%s", share, text);
    CHECK(strstr(text, "the ") && strstr(text, "slowest nodes"));
    /* usage errors */
    snprintf(cmd, sizeof cmd, "%s profile %s --bogus", test_nerve(), path);
    CHECK(test_run(cmd, text, sizeof text) == 2);
    snprintf(cmd, sizeof cmd, "%s profile %s/none.cfg", test_nerve(), test_tmpdir());
    CHECK(test_run(cmd, text, sizeof text) == 1);
}
