/* The plain-loop reference of a stride-1 convolution in double precision, shared by the
 * tests of the direct convolution kernels. */
#ifndef NERVE_TEST_CONV_REF_H
#define NERVE_TEST_CONV_REF_H

/* out[n,k,y,x] = bias[k] + sum w[k,c,i,j] * in[n,c,y+i-ph,x+j-pw], zero outside. */
static inline void ref_conv(int N, int C, int H, int W, int K, int KH, int KW, int ph, int pw, int OH,
                     int OW, const float *in, const float *w, const float *bias, float *out)
{
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) {
                    double s = bias ? bias[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < KH; i++)
                            for (int j = 0; j < KW; j++) {
                                int iy = y + i - ph, ix = x + j - pw;
                                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                    s += (double)w[((k * C + c) * KH + i) * KW + j] *
                                         in[((n * C + c) * H + iy) * W + ix];
                            }
                    out[((n * K + k) * OH + y) * OW + x] = (float)s;
                }
}

#endif
