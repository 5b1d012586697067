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

#include "bf16.h"

/* Fused multiply-adds here (native.py builds with -ffp-contract=off, which batch.c's exact
 * match with torch needs): the forward pass is all multiply-adds, and twice as fast with them. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#define MIN_PARALLEL (1 << 16)

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

/* One image: y and arg (hp, wp, O) from x (h, w, CIN), wt (9 * CIN, O) with tap
 * t = (ky * 3 + kx) * CIN + ci, and bias (O). */
#define FORWARD_IMAGE(NAME, T, LOAD, ROUND, CIN, O)                                                     \
    static void NAME(const T *restrict x, const float *restrict wt, const float *restrict bias,         \
                     T *restrict y, uint8_t *restrict arg, int64_t h, int64_t w) {                      \
        const int64_t hp = (h - 2) / 2, wp = (w - 2) / 2;                                               \
        v16 wv[9 * CIN][O / 16], bv[O / 16];                                                            \
        for (int t = 0; t < 9 * CIN; ++t)                                                               \
            for (int v = 0; v < O / 16; ++v)                                                            \
                for (int i = 0; i < 16; ++i) wv[t][v][i] = wt[t * O + 16 * v + i];                      \
        for (int v = 0; v < O / 16; ++v)                                                                \
            for (int i = 0; i < 16; ++i) bv[v][i] = bias[16 * v + i];                                   \
        for (int64_t i = 0; i < hp; ++i)                                                                \
            for (int64_t j = 0; j < wp; ++j) {                                                          \
                float patch[CIN][16], out[4][O]; /* the window's 4x4 input patch; its 4 outputs */        \
                for (int r = 0; r < 4; ++r)                                                             \
                    for (int c = 0; c < 4; ++c)                                                         \
                        for (int ci = 0; ci < CIN; ++ci)                                                \
                            patch[ci][r * 4 + c] = LOAD(x[((2 * i + r) * w + 2 * j + c) * CIN + ci]);   \
                v16 acc[4][O / 16];                                                                     \
                for (int p = 0; p < 4; ++p)                                                             \
                    for (int v = 0; v < O / 16; ++v) acc[p][v] = bv[v];                                 \
                _Pragma("GCC unroll 16")                                                                \
                for (int rc = 0; rc < 16; ++rc) /* each input value once, into the outputs it feeds */  \
                    for (int ci = 0; ci < CIN; ++ci) {                                                  \
                        const float xv = patch[ci][rc];                                                 \
                        _Pragma("GCC unroll 4")                                                         \
                        for (int p = 0; p < 4; ++p) {                                                   \
                            const int ky = rc / 4 - (p >> 1), kx = rc % 4 - (p & 1);                    \
                            if (ky < 0 || ky > 2 || kx < 0 || kx > 2) continue;                         \
                            for (int v = 0; v < O / 16; ++v)                                            \
                                acc[p][v] += xv * wv[(ky * 3 + kx) * CIN + ci][v];                      \
                        }                                                                               \
                    }                                                                                   \
                for (int p = 0; p < 4; ++p)                                                             \
                    for (int v = 0; v < O / 16; ++v)                                                    \
                        for (int k = 0; k < 16; ++k) out[p][16 * v + k] = acc[p][v][k];                 \
                T *yo = y + (i * wp + j) * O;                                                           \
                uint8_t *ao = arg + (i * wp + j) * O;                                                   \
                for (int k = 0; k < O; ++k) { /* pool.c's rules: the first maximum, a NaN wins */       \
                    float m = out[0][k], v;                                                             \
                    uint8_t a = 0;                                                                      \
                    int t;                                                                              \
                    v = out[1][k];                                                                      \
                    t = (v > m) | (v != v);                                                             \
                    m = t ? v : m;                                                                      \
                    a = t ? 1 : a;                                                                      \
                    v = out[2][k];                                                                      \
                    t = (v > m) | (v != v);                                                             \
                    m = t ? v : m;                                                                      \
                    a = t ? 2 : a;                                                                      \
                    v = out[3][k];                                                                      \
                    t = (v > m) | (v != v);                                                             \
                    m = t ? v : m;                                                                      \
                    a = t ? 3 : a;                                                                      \
                    yo[k] = ROUND(m < 0.0f ? 0.0f : m); /* ReLU; NaN compares false: kept */            \
                    ao[k] = m <= 0.0f ? 4 : a;                                                          \
                }                                                                                       \
            }                                                                                           \
    }

/* table[idx[k]] for each lane k (indices 0..15): one permute instruction with GCC on AVX-512.
 * Without AVX-512 GCC makes the 16-lane shuffle of scalar moves; as two 8-lane shuffles over
 * the table's two halves it is two permutes and a blend each on AVX2. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#define SELECT(table, idx) __builtin_shuffle((table), (idx))
#elif defined(__GNUC__) && !defined(__clang__)
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef union {
    v16 whole;
    v8 half[2];
} v16_halves;
typedef union {
    vi16 whole;
    vi8 half[2];
} vi16_halves;
/* a statement expression, not a function: a function taking 64-byte vectors draws GCC's ABI
 * warning without AVX-512 */
#define SELECT(table, idx)                                                                              \
    ({                                                                                                  \
        const v16_halves t_ = {.whole = (table)};                                                      \
        const vi16_halves i_ = {.whole = (idx)};                                                       \
        v16_halves r_;                                                                                  \
        r_.half[0] = __builtin_shuffle(t_.half[0], t_.half[1], i_.half[0]);                            \
        r_.half[1] = __builtin_shuffle(t_.half[0], t_.half[1], i_.half[1]);                            \
        r_.whole;                                                                                       \
    })
#else
static inline v16 select16(v16 table, vi16 idx) {
    v16 r;
    for (int k = 0; k < 16; ++k) r[k] = table[idx[k] & 15];
    return r;
}
#define SELECT(table, idx) select16((table), (idx))
#endif

/* One image: sums[t * O + c] += x[tap t of channel c's winning position] * g[c] over the
 * windows whose gradient passes (arg < 4), then sums[9 * CIN * O + c] += g[c]. The winning
 * input of each channel is looked up in the window's 4x4 patch, so each window costs 9 * CIN
 * multiply-adds per channel, not the 4 x 9 * CIN of a dense weight gradient. */
#define BACKWARD_IMAGE(NAME, T, LOAD, CIN, O)                                                           \
    static void NAME(const T *restrict x, const T *restrict g, const uint8_t *restrict arg,            \
                     float *restrict sums, int64_t h, int64_t w) {                                      \
        const int64_t hp = (h - 2) / 2, wp = (w - 2) / 2;                                               \
        v16 acc[9 * CIN][O / 16], bias[O / 16];                                                         \
        for (int t = 0; t < 9 * CIN; ++t)                                                               \
            for (int v = 0; v < O / 16; ++v) acc[t][v] = (v16){0};                                      \
        for (int v = 0; v < O / 16; ++v) bias[v] = (v16){0};                                            \
        for (int64_t i = 0; i < hp; ++i)                                                                \
            for (int64_t j = 0; j < wp; ++j) {                                                          \
                const T *gp = g + (i * wp + j) * O;                                                     \
                const uint8_t *ap = arg + (i * wp + j) * O;                                             \
                v16 patch[CIN];                                                                         \
                for (int r = 0; r < 4; ++r)                                                             \
                    for (int c = 0; c < 4; ++c)                                                         \
                        for (int ci = 0; ci < CIN; ++ci)                                                \
                            patch[ci][r * 4 + c] = LOAD(x[((2 * i + r) * w + 2 * j + c) * CIN + ci]);   \
                for (int v = 0; v < O / 16; ++v) {                                                      \
                    v16 gv;                                                                             \
                    vi16 at; /* the winner's place in the patch: row (a / 2) * 4 + column a % 2 */      \
                    for (int k = 0; k < 16; ++k) {                                                      \
                        const int a = ap[16 * v + k];                                                   \
                        gv[k] = a < 4 ? LOAD(gp[16 * v + k]) : 0.0f;                                    \
                        at[k] = a < 4 ? (a >> 1) * 4 + (a & 1) : 0;                                     \
                    }                                                                                   \
                    bias[v] += gv;                                                                      \
                    for (int ky = 0; ky < 3; ++ky)                                                      \
                        for (int kx = 0; kx < 3; ++kx)                                                  \
                            for (int ci = 0; ci < CIN; ++ci)                                            \
                                acc[(ky * 3 + kx) * CIN + ci][v] +=                                     \
                                    SELECT(patch[ci], at + (ky * 4 + kx)) * gv;                         \
                }                                                                                       \
            }                                                                                           \
        for (int t = 0; t < 9 * CIN; ++t)                                                               \
            for (int v = 0; v < O / 16; ++v)                                                            \
                for (int k = 0; k < 16; ++k) sums[t * O + 16 * v + k] = acc[t][v][k];                  \
        for (int v = 0; v < O / 16; ++v)                                                                \
            for (int k = 0; k < 16; ++k) sums[9 * CIN * O + 16 * v + k] = bias[v][k];                   \
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

#define PICK(PREFIX, SUFFIX, CIN, O)                                                                    \
    ((CIN) == 1 ? ((O) == 16 ? PREFIX##_1_16_##SUFFIX : (O) == 32 ? PREFIX##_1_32_##SUFFIX             \
                   : (O) == 64 ? PREFIX##_1_64_##SUFFIX : NULL)                                         \
     : (CIN) == 3 ? ((O) == 16 ? PREFIX##_3_16_##SUFFIX : (O) == 32 ? PREFIX##_3_32_##SUFFIX           \
                     : (O) == 64 ? PREFIX##_3_64_##SUFFIX : NULL)                                       \
                  : NULL)

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
        for (int64_t i = 0; i < per; ++i) { /* the images' sums in batch order */                      \
            float total = 0.0f;                                                                         \
            for (int64_t b = 0; b < n; ++b) total += sums[b * per + i];                                 \
            const int64_t t = i / o, c = i % o;                                                         \
            if (t < taps) dw[c * taps + t] = total;                                                     \
            else db[c] = total;                                                                         \
        }                                                                                               \
        free(sums);                                                                                     \
        return 0;                                                                                       \
    }

BLOCK_FUNCTIONS(float, f32)
BLOCK_FUNCTIONS(uint16_t, bf16)

