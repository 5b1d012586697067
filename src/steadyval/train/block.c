/* The first block of the small CNNs in one pass: a 3x3 convolution of a grey or RGB image
 * (stride 1, no padding, 16, 32 or 64 output channels), 2x2 max pooling (stride 2) and ReLU,
 * forward, and the weight and bias gradients, on channels-last float32 or bfloat16 tensors
 * with float32 arithmetic.
 *
 * Compiled on first use by steadyval/train/native.py; steadyval/train/block.py says why it
 * exists. The forward pass computes each pooling window's four convolution outputs in vector
 * registers (GCC/Clang vector extensions) and writes only the ReLU'd maximum and a one-byte
 * argmax, as pool.c does (4: ReLU stops the gradient); the convolution's output is never
 * stored. The backward pass forms the weight gradient from the pooled gradient and the argmax.
 * A bfloat16 output is the float32 maximum rounded to nearest even, which is the maximum of
 * the rounded outputs (rounding is monotone). Each image is one thread's work in a fixed
 * order, and the images' gradients are added in batch order, so neither result depends on the
 * number of threads.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "first_layer.h"

/* Fused multiply-adds here (native.py builds with -ffp-contract=off, which batch.c's exact
 * match with torch needs): the forward pass is all multiply-adds, and twice as fast with them. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#define MIN_PARALLEL (1 << 16)

/* NV vectors of VW output channels at a time, whose weights (forward) or sums (backward) stay
 * in registers: 2 x 16 with AVX-512's 32 registers of 16 floats, 1 x 8 otherwise (AVX2 has 16
 * registers of 8 floats). Measured (224 px, batch 32, fp32, forward and backward): with AVX2
 * (emulated) 37 ms this way against 100 ms with AVX-512's 2 x 16; with AVX-512 12-18 ms
 * against 23-25 ms with 1 x 16. NVO(O) is NV for O channels, 1 where O holds one vector. */
#if defined(__AVX512F__)
#define VW 16
#define NV 2
#else
#define VW 8
#define NV 1
#endif
#define NVO(O) ((O) / VW < NV ? (O) / VW : NV)
typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));

/* A window's 4x4 patch of one input channel as a lookup table: table[idx[k]] for each lane k
 * (idx 0..15). GCC makes it one permute with AVX-512 and two permutes and a blend with AVX2;
 * other compilers get a lane loop. */
#if defined(__GNUC__) && !defined(__clang__) && VW == 16
typedef struct {
    vf t;
} table16;
#define TABLE_LOAD(tab, values) memcpy(&(tab).t, (values), sizeof(vf))
#define SELECT(tab, idx) __builtin_shuffle((tab).t, (idx))
#elif defined(__GNUC__) && !defined(__clang__) && VW == 8
typedef struct {
    vf lo, hi;
} table16;
#define TABLE_LOAD(tab, values) (memcpy(&(tab).lo, (values), sizeof(vf)), memcpy(&(tab).hi, (values) + 8, sizeof(vf)))
#define SELECT(tab, idx) __builtin_shuffle((tab).lo, (tab).hi, (idx))
#else
typedef struct {
    float v[16];
} table16;
#define TABLE_LOAD(tab, values) memcpy((tab).v, (values), sizeof((tab).v))
static inline vf select16(const table16 *tab, vi idx) {
    vf r;
    for (int k = 0; k < VW; ++k) r[k] = tab->v[idx[k] & 15];
    return r;
}
#define SELECT(tab, idx) select16(&(tab), (idx))
#endif

/* One image: y and arg (hp, wp, O) from x (h, w, CIN), wt (9 * CIN, O) with tap
 * t = (ky * 3 + kx) * CIN + ci, and bias (O). */
#define FORWARD_IMAGE(NAME, T, LOAD, ROUND, CIN, O)                                                     \
    static void NAME(const T *restrict x, const float *restrict wt, const float *restrict bias,         \
                     T *restrict y, uint8_t *restrict arg, int64_t h, int64_t w) {                      \
        const int64_t hp = (h - 2) / 2, wp = (w - 2) / 2;                                               \
        enum { N = NVO(O) };                                                                            \
        for (int g = 0; g < O / (VW * N); ++g) {                                                        \
            vf wv[9 * CIN][N], bv[N];                                                                   \
            for (int n = 0; n < N; ++n) {                                                               \
                for (int t = 0; t < 9 * CIN; ++t)                                                       \
                    for (int k = 0; k < VW; ++k) wv[t][n][k] = wt[t * O + (g * N + n) * VW + k];        \
                for (int k = 0; k < VW; ++k) bv[n][k] = bias[(g * N + n) * VW + k];                     \
            }                                                                                           \
            for (int64_t i = 0; i < hp; ++i)                                                            \
                for (int64_t j = 0; j < wp; ++j) {                                                      \
                    float patch[CIN][16]; /* the window's 4x4 input patch */                            \
                    for (int r = 0; r < 4; ++r)                                                         \
                        for (int c = 0; c < 4; ++c)                                                     \
                            for (int ci = 0; ci < CIN; ++ci)                                            \
                                patch[ci][r * 4 + c] = LOAD(x[((2 * i + r) * w + 2 * j + c) * CIN + ci]); \
                    vf acc[4][N]; /* the window's 4 outputs, row-major */                               \
                    for (int p = 0; p < 4; ++p)                                                         \
                        for (int n = 0; n < N; ++n) acc[p][n] = bv[n];                                  \
                    _Pragma("GCC unroll 16")                                                            \
                    for (int rc = 0; rc < 16; ++rc) /* each input value once, into the outputs it feeds */ \
                        for (int ci = 0; ci < CIN; ++ci) {                                              \
                            const float xv = patch[ci][rc];                                             \
                            _Pragma("GCC unroll 4")                                                     \
                            for (int p = 0; p < 4; ++p) {                                               \
                                const int ky = rc / 4 - (p >> 1), kx = rc % 4 - (p & 1);                \
                                if (ky < 0 || ky > 2 || kx < 0 || kx > 2) continue;                     \
                                for (int n = 0; n < N; ++n) acc[p][n] += xv * wv[(ky * 3 + kx) * CIN + ci][n]; \
                            }                                                                           \
                        }                                                                               \
                    float out[4][N * VW]; /* the lanes as plain floats: the loop below vectorises */    \
                    memcpy(out, acc, sizeof(out));                                                      \
                    T *yo = y + (i * wp + j) * O + g * N * VW;                                          \
                    uint8_t *ao = arg + (i * wp + j) * O + g * N * VW;                                  \
                    for (int k = 0; k < N * VW; ++k) { /* pool.c's rules: the first maximum, a NaN wins */ \
                        float m = out[0][k], v;                                                         \
                        uint8_t a = 0;                                                                  \
                        int t;                                                                          \
                        v = out[1][k];                                                                  \
                        t = (v > m) | (v != v);                                                         \
                        m = t ? v : m;                                                                  \
                        a = t ? 1 : a;                                                                  \
                        v = out[2][k];                                                                  \
                        t = (v > m) | (v != v);                                                         \
                        m = t ? v : m;                                                                  \
                        a = t ? 2 : a;                                                                  \
                        v = out[3][k];                                                                  \
                        t = (v > m) | (v != v);                                                         \
                        m = t ? v : m;                                                                  \
                        a = t ? 3 : a;                                                                  \
                        yo[k] = ROUND(m < 0.0f ? 0.0f : m); /* ReLU; NaN compares false: kept */        \
                        ao[k] = m <= 0.0f ? 4 : a;                                                      \
                    }                                                                                   \
                }                                                                                       \
        }                                                                                               \
    }

/* One image: sums[t * O + c] += x[tap t of channel c's winning position] * g[c] over the
 * windows whose gradient passes (arg < 4), then sums[9 * CIN * O + c] += g[c]. The winning
 * input of each channel is looked up in the window's 4x4 patch, so each window costs 9 * CIN
 * multiply-adds per channel, not the 4 x 9 * CIN of a dense weight gradient. */
#define BACKWARD_IMAGE(NAME, T, LOAD, CIN, O)                                                           \
    static void NAME(const T *restrict x, const T *restrict g, const uint8_t *restrict arg,             \
                     float *restrict sums, int64_t h, int64_t w) {                                      \
        const int64_t hp = (h - 2) / 2, wp = (w - 2) / 2;                                               \
        enum { N = NVO(O) };                                                                            \
        for (int grp = 0; grp < O / (VW * N); ++grp) {                                                  \
            vf acc[9 * CIN][N], bias[N];                                                                \
            for (int n = 0; n < N; ++n) {                                                               \
                for (int t = 0; t < 9 * CIN; ++t) acc[t][n] = (vf){0};                                  \
                bias[n] = (vf){0};                                                                      \
            }                                                                                           \
            for (int64_t i = 0; i < hp; ++i)                                                            \
                for (int64_t j = 0; j < wp; ++j) {                                                      \
                    const T *gp = g + (i * wp + j) * O + grp * N * VW;                                  \
                    const uint8_t *ap = arg + (i * wp + j) * O + grp * N * VW;                          \
                    vf gv[N];                                                                           \
                    vi at[N]; /* the winner's place in the patch: row (a / 2) * 4 + column a % 2 */     \
                    int any = 0;                                                                        \
                    for (int n = 0; n < N; ++n)                                                         \
                        for (int k = 0; k < VW; ++k) {                                                  \
                            const int a = ap[n * VW + k];                                               \
                            gv[n][k] = a < 4 ? LOAD(gp[n * VW + k]) : 0.0f;                             \
                            at[n][k] = a < 4 ? (a >> 1) * 4 + (a & 1) : 0;                              \
                            any |= a < 4;                                                               \
                        }                                                                               \
                    if (!any) continue; /* ReLU stopped every channel's gradient here */                \
                    for (int n = 0; n < N; ++n) bias[n] += gv[n];                                       \
                    for (int ci = 0; ci < CIN; ++ci) {                                                  \
                        float patch[16];                                                                \
                        table16 tab;                                                                    \
                        for (int r = 0; r < 4; ++r)                                                     \
                            for (int c = 0; c < 4; ++c)                                                 \
                                patch[r * 4 + c] = LOAD(x[((2 * i + r) * w + 2 * j + c) * CIN + ci]);   \
                        TABLE_LOAD(tab, patch);                                                         \
                        for (int ky = 0; ky < 3; ++ky)                                                  \
                            for (int kx = 0; kx < 3; ++kx)                                              \
                                for (int n = 0; n < N; ++n)                                             \
                                    acc[(ky * 3 + kx) * CIN + ci][n] += SELECT(tab, at[n] + (ky * 4 + kx)) * gv[n]; \
                    }                                                                                   \
                }                                                                                       \
            for (int n = 0; n < N; ++n) {                                                               \
                const int c0 = (grp * N + n) * VW;                                                      \
                for (int t = 0; t < 9 * CIN; ++t)                                                       \
                    for (int k = 0; k < VW; ++k) sums[t * O + c0 + k] = acc[t][n][k];                   \
                for (int k = 0; k < VW; ++k) sums[9 * CIN * O + c0 + k] = bias[n][k];                   \
            }                                                                                           \
        }                                                                                               \
    }

#define IMAGE_FUNCTIONS(T, LOAD, ROUND, SUFFIX)                                                         \
    FORWARD_IMAGE(forward_1_16_##SUFFIX, T, LOAD, ROUND, 1, 16)                                         \
    FORWARD_IMAGE(forward_1_32_##SUFFIX, T, LOAD, ROUND, 1, 32)                                         \
    FORWARD_IMAGE(forward_1_64_##SUFFIX, T, LOAD, ROUND, 1, 64)                                         \
    FORWARD_IMAGE(forward_3_16_##SUFFIX, T, LOAD, ROUND, 3, 16)                                         \
    FORWARD_IMAGE(forward_3_32_##SUFFIX, T, LOAD, ROUND, 3, 32)                                         \
    FORWARD_IMAGE(forward_3_64_##SUFFIX, T, LOAD, ROUND, 3, 64)                                         \
    BACKWARD_IMAGE(backward_1_16_##SUFFIX, T, LOAD, 1, 16)                                              \
    BACKWARD_IMAGE(backward_1_32_##SUFFIX, T, LOAD, 1, 32)                                              \
    BACKWARD_IMAGE(backward_1_64_##SUFFIX, T, LOAD, 1, 64)                                              \
    BACKWARD_IMAGE(backward_3_16_##SUFFIX, T, LOAD, 3, 16)                                              \
    BACKWARD_IMAGE(backward_3_32_##SUFFIX, T, LOAD, 3, 32)                                              \
    BACKWARD_IMAGE(backward_3_64_##SUFFIX, T, LOAD, 3, 64)

IMAGE_FUNCTIONS(float, f32_load, f32_store, f32)
IMAGE_FUNCTIONS(uint16_t, bf16_load, bf16_round, bf16)

/* x: (n, h, w, cin); wt: (9 * cin, o) float32; bias: (o,) float32; y and arg: (n, (h - 2) / 2,
 * (w - 2) / 2, o), written. Returns 0; -2 for a shape without a function here. */
#define BLOCK_FUNCTIONS(T, SUFFIX)                                                                      \
    int forward_##SUFFIX(const T *restrict x, const float *restrict wt, const float *restrict bias,     \
                         T *restrict y, uint8_t *restrict arg, int64_t n, int64_t cin, int64_t h,       \
                         int64_t w, int64_t o) {                                                        \
        void (*image)(const T *restrict, const float *restrict, const float *restrict, T *restrict,     \
                      uint8_t *restrict, int64_t, int64_t) = PICK(forward, SUFFIX, cin, o);             \
        if (image == NULL || h < 4 || w < 4) return -2;                                                 \
        const int64_t per = ((h - 2) / 2) * ((w - 2) / 2) * o;                                          \
        _Pragma("omp parallel for schedule(dynamic, 1) if (n * per >= MIN_PARALLEL)")                   \
        for (int64_t b = 0; b < n; ++b) image(x + b * h * w * cin, wt, bias, y + b * per, arg + b * per, h, w); \
        return 0;                                                                                       \
    }                                                                                                   \
                                                                                                        \
    /* g: the pooled gradient, arg's shape; dw: (o, 3, 3, cin) and db: (o,) float32, written.          \
     * Returns 0; -1 when out of memory; -2 for a shape without a function here. */                    \
    int backward_##SUFFIX(const T *restrict x, const T *restrict g, const uint8_t *restrict arg,       \
                          float *restrict dw, float *restrict db, int64_t n, int64_t cin, int64_t h,    \
                          int64_t w, int64_t o) {                                                       \
        void (*image)(const T *restrict, const T *restrict, const uint8_t *restrict, float *restrict,   \
                      int64_t, int64_t) = PICK(backward, SUFFIX, cin, o);                               \
        if (image == NULL || h < 4 || w < 4) return -2;                                                 \
        const int64_t taps = 9 * cin, per = (taps + 1) * o, pooled = ((h - 2) / 2) * ((w - 2) / 2) * o; \
        float *sums = malloc((size_t)(n * per) * sizeof(float));                                        \
        if (sums == NULL) return -1;                                                                    \
        _Pragma("omp parallel for schedule(dynamic, 1) if (n * pooled >= MIN_PARALLEL)")                \
        for (int64_t b = 0; b < n; ++b)                                                                 \
            image(x + b * h * w * cin, g + b * pooled, arg + b * pooled, sums + b * per, h, w);         \
        add_image_sums(sums, n, cin, o, dw, db);                                                        \
        free(sums);                                                                                     \
        return 0;                                                                                       \
    }

BLOCK_FUNCTIONS(float, f32)
BLOCK_FUNCTIONS(uint16_t, bf16)

