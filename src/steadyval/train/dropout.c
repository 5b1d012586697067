/* Inverted dropout of a float32 or bfloat16 tensor with the keep mask drawn by a counter-based hash.
 *
 * Compiled on first use by steadyval/train/native.py; steadyval/train/dropout.py says why it
 * exists and computes the same mask with torch's integer ops where this library is not built.
 * Element i is kept when the low 16 bits of hash(i) = mix(mix(i ^ key0) ^ key1) (Wellons'
 * lowbias32 mix, on 32 bits) are at least `dropped`. A kept value is x * scale, a dropped one
 * (x * 0) * scale, rounded to the tensor's type: torch's `x * keep * scale` bit for bit, and the
 * gradient is torch's `(g * scale) * keep`. The mask is recomputed in the backward pass.
 */
#include <stdint.h>

#include "bf16.h"

#define MIN_PARALLEL (1 << 16)

static inline uint32_t mix(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Blocks of BLOCK elements, so that the inner loops count in 32 bits (a 64-bit counter next to
 * 16-bit data keeps the compiler from vectorising the bfloat16 version); forward and backward
 * are separate loops for the same reason. */
#define BLOCK 4096
#define KEEP(i) ((mix(mix((i) ^ key0) ^ key1) & 0xFFFFU) >= dropped)

/* Forward: x * keep * scale. Backward (x the gradient): (x * scale) * keep. A dropped value is a
 * zero of x's sign, or NaN where x is not finite, as torch's multiply by a 0 makes it. */
#define DROPOUT_FUNCTION(NAME, T, LOAD, ROUND)                                                           \
    static void NAME##_forward(const T *restrict x, T *restrict out, uint32_t first, uint32_t len,       \
                               uint32_t key0, uint32_t key1, uint32_t dropped, float scale) {            \
        for (uint32_t k = 0; k < len; ++k) {                                                             \
            const float v = LOAD(x[k]);                                                                  \
            out[k] = ROUND((KEEP(first + k) ? v : v * 0.0f) * scale);                                    \
        }                                                                                                \
    }                                                                                                    \
    static void NAME##_backward(const T *restrict x, T *restrict out, uint32_t first, uint32_t len,      \
                                uint32_t key0, uint32_t key1, uint32_t dropped, float scale) {           \
        for (uint32_t k = 0; k < len; ++k) {                                                             \
            const float g = LOAD(ROUND(LOAD(x[k]) * scale));                                             \
            out[k] = ROUND(KEEP(first + k) ? g : g * 0.0f);                                              \
        }                                                                                                \
    }                                                                                                    \
    void NAME(const T *restrict x, T *restrict out, int64_t n, uint32_t key0, uint32_t key1,             \
              uint32_t dropped, float scale, int backward) {                                             \
        _Pragma("omp parallel for schedule(static) if (n >= MIN_PARALLEL)")                              \
        for (int64_t block = 0; block < (n + BLOCK - 1) / BLOCK; ++block) {                             \
            const int64_t start = block * BLOCK, len = n - start < BLOCK ? n - start : BLOCK;            \
            (backward ? NAME##_backward : NAME##_forward)(x + start, out + start, (uint32_t)start,       \
                                                          (uint32_t)len, key0, key1, dropped, scale);    \
        }                                                                                                \
    }

DROPOUT_FUNCTION(dropout_f32, float, f32_load, f32_store)
DROPOUT_FUNCTION(dropout_bf16, uint16_t, bf16_load, bf16_round)
