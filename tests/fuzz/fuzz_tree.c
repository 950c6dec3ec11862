/* libFuzzer target: darknet's class trees (tree= of [softmax] and [region]; data/9k.tree).
 * An accepted tree must be consistent: every parent an earlier class or -1, the groups
 * consecutive runs covering every class once, each of one parent. A refused one must leave
 * the tree empty with a message. */
#include "fuzz_common.h"

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nerve_clear_error();
    darknet_tree t;
    int st = darknet_tree_parse((const char *)data, size, "fuzz.tree", &t);
    fuzz_check_error(st);
    if (st != NERVE_OK) {
        if (t.n || t.parent || t.groups || t.group_offset || t.group_size)
            abort();
        return 0;
    }
    if (t.n < 1 || t.n > DARKNET_TREE_MAX || t.groups < 1 || t.groups > t.n)
        abort();
    int next = 0;
    for (int g = 0; g < t.groups; g++) {
        if (t.group_offset[g] != next || t.group_size[g] < 1)
            abort();
        for (int k = 0; k < t.group_size[g]; k++)
            if (t.parent[next + k] != t.parent[next])
                abort();
        if (g > 0 && t.parent[next] == t.parent[next - 1])
            abort();
        next += t.group_size[g];
    }
    if (next != t.n)
        abort();
    for (int i = 0; i < t.n; i++)
        if (t.parent[i] < -1 || t.parent[i] >= i)
            abort();
    darknet_tree_free(&t);
    return 0;
}
