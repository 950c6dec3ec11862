/* Linear algebra operators: matmul and dense (fully connected).
 *
 *   matmul: y[M,N] = op(a) op(b)            dense: y[N,out] = x[N,in] w[out,in]^T + b[out]
 *   backward of y = a b:  da += dy b^T,  db += a^T dy  (transposes folded into GEMM flags) */
#include "../kernels/kernels.h"
#include "ops.h"

#include <string.h>

/* ---- matmul: attr.matmul (trans_a, trans_b) ------------------------------------------ */

static int matmul_infer(nerve_graph *g, node *n)
{
    node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    if (a->ndim != 2 || b->ndim != 2)
        return op_shape_error(n, "needs 2-D operands, got ranks %d and %d", a->ndim, b->ndim);
    int ta = n->attr.matmul.trans_a, tb = n->attr.matmul.trans_b;
    int M = ta ? a->dims[1] : a->dims[0], Ka = ta ? a->dims[0] : a->dims[1];
    int Kb = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
    if (Ka != Kb)
        return op_shape_error(n, "inner dimensions differ: %d vs %d", Ka, Kb);
    n->ndim = 2;
    n->dims[0] = M;
    n->dims[1] = N;
    return NERVE_OK;
}

static void matmul_forward(nerve_graph *g, node *n)
{
    node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    int ta = n->attr.matmul.trans_a, tb = n->attr.matmul.trans_b;
    int K = ta ? a->dims[0] : a->dims[1];
    kern_sgemm(ta, tb, n->dims[0], n->dims[1], K, 1.0f, a->value, a->dims[1], b->value, b->dims[1],
               0.0f, n->value, n->dims[1]);
}

static void matmul_backward(nerve_graph *g, node *n)
{
    node *a = node_input(g, n, 0), *b = node_input(g, n, 1);
    float *da = node_input_grad(g, n, 0), *db = node_input_grad(g, n, 1);
    int ta = n->attr.matmul.trans_a, tb = n->attr.matmul.trans_b;
    int M = n->dims[0], N = n->dims[1], K = ta ? a->dims[0] : a->dims[1];
    if (da) {
        if (!ta) /* da[M,K] += dy[M,N] op(b)^T */
            kern_sgemm(0, !tb, M, K, N, 1.0f, n->grad, N, b->value, b->dims[1], 1.0f, da, a->dims[1]);
        else     /* da[K,M] += op(b)[K,N] dy^T */
            kern_sgemm(tb, 1, K, M, N, 1.0f, b->value, b->dims[1], n->grad, N, 1.0f, da, a->dims[1]);
    }
    if (db) {
        if (!tb) /* db[K,N] += op(a)^T dy */
            kern_sgemm(!ta, 0, K, N, M, 1.0f, a->value, a->dims[1], n->grad, N, 1.0f, db, b->dims[1]);
        else     /* db[N,K] += dy^T op(a) */
            kern_sgemm(1, ta, N, K, M, 1.0f, n->grad, N, a->value, a->dims[1], 1.0f, db, b->dims[1]);
    }
}

static const op_def op_matmul = {"matmul", matmul_infer, NULL, matmul_forward, matmul_backward,
                                 OP_OUTPUT_UNREAD};

int nerve_matmul(nerve_graph *g, int a, int b, int trans_a, int trans_b)
{
    node_attr at;
    memset(&at, 0, sizeof at);
    at.matmul.trans_a = trans_a != 0;
    at.matmul.trans_b = trans_b != 0;
    return graph_add_op(g, &op_matmul, 2, (int[]){a, b}, &at, "matmul");
}

/* ---- dense: inputs x, w[, bias] ------------------------------------------------------ */

static int dense_infer(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    if (x->ndim < 2)
        return op_shape_error(n, "input needs a batch and a feature dimension, got rank %d", x->ndim);
    if (w->ndim != 2)
        return op_shape_error(n, "weight must be 2-D [out, in], got rank %d", w->ndim);
    size_t in = node_numel(x) / (size_t)x->dims[0];
    if ((size_t)w->dims[1] != in)
        return op_shape_error(n, "input has %zu features per sample but the weight expects %d", in,
                              w->dims[1]);
    if (n->n_in == 3) {
        node *b = node_input(g, n, 2);
        if (b->ndim != 1 || b->dims[0] != w->dims[0])
            return op_shape_error(n, "bias must be [%d]", w->dims[0]);
    }
    n->ndim = 2;
    n->dims[0] = x->dims[0];
    n->dims[1] = w->dims[0];
    return NERVE_OK;
}

static void dense_forward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    int N = n->dims[0], out = n->dims[1], in = w->dims[1];
    if (n->n_in == 3) {
        const float *b = node_input(g, n, 2)->value;
        for (int r = 0; r < N; r++)
            for (int j = 0; j < out; j++)
                n->value[(size_t)r * out + j] = b[j];
    }
    kern_sgemm(0, 1, N, out, in, 1.0f, x->value, in, w->value, in, n->n_in == 3 ? 1.0f : 0.0f,
               n->value, out);
}

static void dense_backward(nerve_graph *g, node *n)
{
    node *x = node_input(g, n, 0), *w = node_input(g, n, 1);
    int N = n->dims[0], out = n->dims[1], in = w->dims[1];
    float *dx = node_input_grad(g, n, 0), *dw = node_input_grad(g, n, 1);
    if (dx) /* dx[N,in] += dy[N,out] w[out,in] */
        kern_sgemm(0, 0, N, in, out, 1.0f, n->grad, out, w->value, in, 1.0f, dx, in);
    if (dw) /* dw[out,in] += dy^T x */
        kern_sgemm(1, 0, out, in, N, 1.0f, n->grad, out, x->value, in, 1.0f, dw, in);
    if (n->n_in == 3) {
        float *db = node_input_grad(g, n, 2);
        if (db)
            for (int r = 0; r < N; r++)
                for (int j = 0; j < out; j++)
                    db[j] += n->grad[(size_t)r * out + j];
    }
}

static const op_def op_dense = {"dense", dense_infer, NULL, dense_forward, dense_backward,
                                OP_OUTPUT_UNREAD};

int nerve_dense(nerve_graph *g, int x, int w, int bias)
{
    int in[3] = {x, w, bias};
    return graph_add_op(g, &op_dense, bias >= 0 ? 3 : 2, in, NULL, "dense");
}

const op_def *const ops_linear[] = {&op_matmul, &op_dense, NULL};
