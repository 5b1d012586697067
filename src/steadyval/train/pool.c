/* 2x2, stride-2 max pooling of channels-last (NHWC) float32 and bfloat16 tensors, and its gradient.
 *
 * Compiled on first use by steadyval/train/native.py; steadyval/train/pool.py says why it
 * exists. The results are those of torch's CPU max_pool2d and its backward bit for bit (a
 * NaN's bit pattern aside): the first maximum of a window in row-major order wins, a NaN
 * wins over any number (the last NaN of a window), and a gradient is written as 0 + g, so
 * -0 becomes +0 as torch's zero-filled accumulation makes it. The argmax is kept as one byte
 * per output (0..3, or 4: see relu below) instead of torch's 8-byte index, and the gradient
 * is written in one pass instead of a zero fill followed by a scatter.
 *
 * With relu set, the forward pass also applies ReLU to the pooled value (the model's Pool ->
 * ReLU in one pass), bit for bit torch's relu: a negative maximum becomes +0, -0 and NaN are
 * kept. Its gradient is torch's threshold_backward (zero where the output is <= 0) followed by
 * the pooling's: a window whose maximum is <= 0 keeps argmax 4, which matches none of the 4
 * positions, so the backward pass, unchanged, writes zeros there. ReLU's backward costs nothing.
 *
 * The rows of the batch are shared among OpenMP threads. Built with -fopenmp, the library
 * uses the OpenMP runtime torch has loaded (the same libgomp.so.1), so torch.set_num_threads
 * sets its thread count too and no second pool of threads competes with torch's.
 */
#include <stdint.h>

#include "bf16.h"

/* Below this many input elements one thread pools the batch: waking a second costs more. */
#define MIN_PARALLEL (1 << 18)

#define POOL_FUNCTIONS(NAME, T, LOAD, STORE)                                                             \
    void NAME##_forward(const T *restrict x, T *restrict y, uint8_t *restrict arg, int64_t n,           \
                        int64_t h, int64_t w, int64_t c, int64_t ho, int64_t wo, int64_t relu) {         \
        const T zero = STORE(0.0f);                                                                      \
        _Pragma("omp parallel for schedule(static) if (n * h * w * c >= MIN_PARALLEL)")                  \
        for (int64_t row = 0; row < n * ho; ++row) { /* one output row: input rows 2i, 2i + 1 */         \
            const T *row0 = x + ((row / ho) * h + 2 * (row % ho)) * w * c, *row1 = row0 + w * c;         \
            T *yr = y + row * wo * c;                                                                    \
            uint8_t *ar = arg + row * wo * c;                                                            \
            for (int64_t j = 0; j < wo; ++j) {                                                           \
                const T *p0 = row0 + 2 * j * c, *p1 = p0 + c, *p2 = row1 + 2 * j * c, *p3 = p2 + c;      \
                for (int64_t k = 0; k < c; ++k) {                                                        \
                    float m = LOAD(p0[k]), v;                                                            \
                    T best = p0[k];                                                                      \
                    uint8_t a = 0;                                                                       \
                    int t;                                                                               \
                    v = LOAD(p1[k]);                                                                     \
                    t = (v > m) | (v != v);                                                              \
                    m = t ? v : m;                                                                       \
                    best = t ? p1[k] : best;                                                             \
                    a = t ? 1 : a;                                                                       \
                    v = LOAD(p2[k]);                                                                     \
                    t = (v > m) | (v != v);                                                              \
                    m = t ? v : m;                                                                       \
                    best = t ? p2[k] : best;                                                             \
                    a = t ? 2 : a;                                                                       \
                    v = LOAD(p3[k]);                                                                     \
                    t = (v > m) | (v != v);                                                              \
                    m = t ? v : m;                                                                       \
                    best = t ? p3[k] : best;                                                             \
                    a = t ? 3 : a;                                                                       \
                    best = (relu & (m < 0.0f)) ? zero : best; /* NaN compares false: kept */             \
                    a = (relu & (m <= 0.0f)) ? 4 : a;                                                    \
                    yr[j * c + k] = best;                                                                \
                    ar[j * c + k] = a;                                                                   \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    void NAME##_backward(const T *restrict g, const uint8_t *restrict arg, T *restrict gx, int64_t n,    \
                         int64_t h, int64_t w, int64_t c, int64_t ho, int64_t wo) {                      \
        const T zero = STORE(0.0f);                                                                      \
        _Pragma("omp parallel for schedule(static) if (n * h * w * c >= MIN_PARALLEL)")                  \
        for (int64_t row = 0; row < n * h; ++row) { /* one input row */                                  \
            const int64_t i = (row % h) / 2;                                                             \
            const uint8_t dy = (uint8_t)((row % h) % 2);                                                 \
            T *out = gx + row * w * c;                                                                   \
            int64_t done = 0;                                                                            \
            if (i < ho) { /* else the last row of an odd height: in no window */                         \
                const T *gr = g + ((row / h) * ho + i) * wo * c;                                         \
                const uint8_t *ar = arg + ((row / h) * ho + i) * wo * c;                                 \
                for (int64_t j = 0; j < wo; ++j) {                                                       \
                    for (uint8_t dx = 0; dx < 2; ++dx) {                                                 \
                        const uint8_t want = (uint8_t)(2 * dy + dx);                                     \
                        T *o = out + (2 * j + dx) * c;                                                   \
                        for (int64_t k = 0; k < c; ++k) {                                                \
                            const T v = STORE(LOAD(gr[j * c + k]) + 0.0f);                               \
                            o[k] = ar[j * c + k] == want ? v : zero;                                     \
                        }                                                                                \
                    }                                                                                    \
                }                                                                                        \
                done = 2 * wo * c;                                                                       \
            }                                                                                            \
            for (int64_t k = done; k < w * c; ++k) out[k] = zero; /* the last column of an odd width */  \
        }                                                                                                \
    }

POOL_FUNCTIONS(pool_f32, float, f32_load, f32_store)
POOL_FUNCTIONS(pool_bf16, uint16_t, bf16_load, bf16_store)
