/* Batched transposes between channels-last (B, HW, C) and channels-first (B, C, HW) layouts, for
 * flattening a channels-last batch in torch's (channel, row, column) order and for its gradient.
 *
 * Compiled on first use by steadyval/train/native.py; steadyval/train/flatten.py says why it
 * exists. Values are copied, not computed: the results are torch's bit for bit. Elements are
 * moved as 2- or 4-byte words, in tiles that stay in cache.
 */
#include <stdint.h>

#define MIN_PARALLEL (1 << 16)
#define TILE 32

/* out[b][j][i] = in[b][i][j] for in of shape (n, rows, cols). */
#define TRANSPOSE_FUNCTION(NAME, T)                                                                     \
    void NAME(const T *restrict in, T *restrict out, int64_t n, int64_t rows, int64_t cols) {           \
        const int64_t tiles_r = (rows + TILE - 1) / TILE, tiles_c = (cols + TILE - 1) / TILE;           \
        _Pragma("omp parallel for schedule(static) if (n * rows * cols >= MIN_PARALLEL)")               \
        for (int64_t t = 0; t < n * tiles_r * tiles_c; ++t) {                                           \
            const int64_t b = t / (tiles_r * tiles_c), r0 = (t / tiles_c) % tiles_r * TILE,             \
                          c0 = t % tiles_c * TILE;                                                      \
            const int64_t r1 = r0 + TILE < rows ? r0 + TILE : rows, c1 = c0 + TILE < cols ? c0 + TILE : cols; \
            const T *src = in + b * rows * cols;                                                        \
            T *dst = out + b * rows * cols;                                                             \
            for (int64_t c = c0; c < c1; ++c)                                                           \
                for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];                \
        }                                                                                               \
    }

TRANSPOSE_FUNCTION(transpose_16, uint16_t)
TRANSPOSE_FUNCTION(transpose_32, uint32_t)
