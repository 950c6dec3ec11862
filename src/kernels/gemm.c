/* SGEMM. This first version is a cache-blocked portable loop; the packed, vectorised
 * micro-kernels replace it behind the same interface. */
#include "kernels.h"

#include <string.h>

static float elem(const float *M, int ld, int trans, int r, int c)
{
    return trans ? M[(size_t)c * ld + r] : M[(size_t)r * ld + c];
}

void kern_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++)
                c[j] *= beta;
        for (int k = 0; k < K; k++) {
            float a = alpha * elem(A, lda, trans_a, i, k);
            if (!trans_b) {
                const float *b = B + (size_t)k * ldb;
                for (int j = 0; j < N; j++)
                    c[j] += a * b[j];
            } else {
                for (int j = 0; j < N; j++)
                    c[j] += a * B[(size_t)j * ldb + k];
            }
        }
    }
}

static const char *isa = "portable";
int kern_set_isa(const char *name) { return strcmp(name, "portable") == 0 || strcmp(name, "auto") == 0; }
const char *kern_isa_name(void) { return isa; }
static int threads = 1;
void kern_set_threads(int n) { threads = n > 0 ? n : 1; }
int kern_threads(void) { return threads; }
