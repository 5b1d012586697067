/* What conv.c and block.c, the two first-layer kernels (3x3, 1 or 3 channels in, 16, 32 or
 * 64 out), share: picking the function made for a shape, and adding the images' weight and
 * bias gradients in batch order, so that the result does not depend on the thread count.
 */
#ifndef STEADYVAL_FIRST_LAYER_H
#define STEADYVAL_FIRST_LAYER_H

#include <stddef.h>
#include <stdint.h>

/* PREFIX_CIN_O_SUFFIX for the shape, or NULL where none was made. */
#define PICK(PREFIX, SUFFIX, CIN, O)                                                                    \
    ((CIN) == 1 ? ((O) == 16 ? PREFIX##_1_16_##SUFFIX : (O) == 32 ? PREFIX##_1_32_##SUFFIX             \
                   : (O) == 64 ? PREFIX##_1_64_##SUFFIX : NULL)                                         \
     : (CIN) == 3 ? ((O) == 16 ? PREFIX##_3_16_##SUFFIX : (O) == 32 ? PREFIX##_3_32_##SUFFIX           \
                     : (O) == 64 ? PREFIX##_3_64_##SUFFIX : NULL)                                       \
                  : NULL)

/* sums: n images' (9 * cin + 1) x o sums, tap-major, the bias's last; their totals in batch
 * order into dw (o, 3, 3, cin) and db (o,) (db may be NULL). */
static inline void add_image_sums(const float *restrict sums, int64_t n, int64_t cin, int64_t o,
                                  float *restrict dw, float *restrict db) {
    const int64_t taps = 9 * cin, per = (taps + 1) * o;
    for (int64_t i = 0; i < per; ++i) {
        float total = 0.0f;
        for (int64_t b = 0; b < n; ++b) total += sums[b * per + i];
        const int64_t t = i / o, c = i % o;
        if (t < taps) dw[c * taps + t] = total;
        else if (db != NULL) db[c] = total;
    }
}

#endif
