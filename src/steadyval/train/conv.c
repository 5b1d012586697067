/* The weight and bias gradients of a first convolution layer (1 or 3 input channels, 3x3
 * kernel, stride 1, no padding, 16, 32 or 64 output channels) from channels-last float32 or
 * bfloat16 tensors, accumulated in float32.
 *
 * Compiled on first use by steadyval/train/native.py; steadyval/train/conv.py says why it
 * exists. Each shape is its own function, so that the sums of an image stay in vector
 * registers (GCC/Clang vector extensions; the compiler maps them to the machine's SIMD). Each
 * image's sums are formed on one thread in a fixed order and the images' sums are then added
 * in batch order, so the result does not depend on the number of threads.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "bf16.h"
#include "first_layer.h"

#define MIN_PARALLEL (1 << 16)

typedef float v16 __attribute__((vector_size(64)));

/* One image: sums[t * O + c] += x[tap t] * g[c] over the output positions (t = (ky * 3 + kx) *
 * CIN + ci), then sums[9 * CIN * O + c] += g[c]. */
#define IMAGE_FUNCTION(NAME, T, LOAD, CIN, O)                                                           \
    static void NAME(const T *restrict x, const T *restrict g, float *restrict sums, int64_t h,         \
                     int64_t w) {                                                                       \
        const int64_t ho = h - 2, wo = w - 2;                                                           \
        v16 acc[9 * CIN][O / 16], bias[O / 16];                                                         \
        for (int t = 0; t < 9 * CIN; ++t)                                                               \
            for (int v = 0; v < O / 16; ++v) acc[t][v] = (v16){0};                                      \
        for (int v = 0; v < O / 16; ++v) bias[v] = (v16){0};                                            \
        for (int64_t y = 0; y < ho; ++y)                                                                \
            for (int64_t xx = 0; xx < wo; ++xx) {                                                       \
                const T *gp = g + (y * wo + xx) * O;                                                    \
                v16 gv[O / 16];                                                                         \
                for (int v = 0; v < O / 16; ++v) {                                                      \
                    for (int i = 0; i < 16; ++i) gv[v][i] = LOAD(gp[16 * v + i]);                       \
                    bias[v] += gv[v];                                                                   \
                }                                                                                       \
                for (int ky = 0; ky < 3; ++ky)                                                          \
                    for (int kx = 0; kx < 3; ++kx)                                                      \
                        for (int ci = 0; ci < CIN; ++ci) {                                              \
                            const float xv = LOAD(x[((y + ky) * w + xx + kx) * CIN + ci]);              \
                            for (int v = 0; v < O / 16; ++v) acc[(ky * 3 + kx) * CIN + ci][v] += xv * gv[v]; \
                        }                                                                               \
            }                                                                                           \
        for (int t = 0; t < 9 * CIN; ++t)                                                               \
            for (int v = 0; v < O / 16; ++v)                                                            \
                for (int i = 0; i < 16; ++i) sums[t * O + 16 * v + i] = acc[t][v][i];                  \
        for (int v = 0; v < O / 16; ++v)                                                                \
            for (int i = 0; i < 16; ++i) sums[9 * CIN * O + 16 * v + i] = bias[v][i];                   \
    }

#define IMAGE_FUNCTIONS(T, LOAD, SUFFIX)                                                                \
    IMAGE_FUNCTION(image_1_16_##SUFFIX, T, LOAD, 1, 16)                                                 \
    IMAGE_FUNCTION(image_1_32_##SUFFIX, T, LOAD, 1, 32)                                                 \
    IMAGE_FUNCTION(image_1_64_##SUFFIX, T, LOAD, 1, 64)                                                 \
    IMAGE_FUNCTION(image_3_16_##SUFFIX, T, LOAD, 3, 16)                                                 \
    IMAGE_FUNCTION(image_3_32_##SUFFIX, T, LOAD, 3, 32)                                                 \
    IMAGE_FUNCTION(image_3_64_##SUFFIX, T, LOAD, 3, 64)

IMAGE_FUNCTIONS(float, f32_load, f32)
IMAGE_FUNCTIONS(uint16_t, bf16_load, bf16)

/* x: (n, h, w, cin); g: (n, h - 2, w - 2, o); dw: (o, 3, 3, cin) and db: (o,) float32, overwritten
 * (db may be NULL). Returns 0; -1 when out of memory; -2 for a shape without a function here. */
#define WGRAD_FUNCTION(T, SUFFIX)                                                                       \
    int wgrad_##SUFFIX(const T *restrict x, const T *restrict g, float *restrict dw, float *restrict db, \
                       int64_t n, int64_t cin, int64_t h, int64_t w, int64_t o) {                       \
        void (*image)(const T *restrict, const T *restrict, float *restrict, int64_t, int64_t) =        \
            PICK(image, SUFFIX, cin, o);                                                                \
        if (image == NULL || h < 3 || w < 3) return -2;                                                 \
        const int64_t taps = 9 * cin, per = (taps + 1) * o, ho = h - 2, wo = w - 2;                     \
        float *sums = malloc((size_t)(n * per) * sizeof(float));                                        \
        if (sums == NULL) return -1;                                                                    \
        _Pragma("omp parallel for schedule(dynamic, 1) if (n * ho * wo * o >= MIN_PARALLEL)")           \
        for (int64_t b = 0; b < n; ++b) image(x + b * h * w * cin, g + b * ho * wo * o, sums + b * per, h, w); \
        add_image_sums(sums, n, cin, o, dw, db);                                                        \
        free(sums);                                                                                     \
        return 0;                                                                                       \
    }

WGRAD_FUNCTION(float, f32)
WGRAD_FUNCTION(uint16_t, bf16)

/* 1 where this build has AVX-512, else 0. The kernels here were measured faster than torch's
 * ops with AVX-512 and slower with AVX2 only (their vectors of 16 floats spill out of AVX2's
 * 16 registers), so conv.py uses them only where this says 1. */
int conv_wide_vectors(void) {
#if defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}
