/* The training batch in one pass: gather uint8 images by index, resample them by an affine
 * matrix each (bilinear, zeros outside), scale to [0, 1], clamp, normalise per channel, and
 * write channels-last float32.
 *
 * Compiled on first use by steadyval/train/native.py; steadyval/train/augment.py says why it
 * exists and holds the torch version it replaces. Without a matrix the result is torch's
 * ((u / 255) - mean) / std bit for bit (the same float operations in the same order; built
 * with -ffp-contract=off). With one it is grid_sample's bilinear sampling (align_corners=False,
 * zero padding) computed from the source-pixel coordinates directly, equal to it to float
 * rounding. The loops are written so that the compiler vectorises them (gathers from a float
 * copy of the image, taps outside the image clamped to the edge and given weight 0).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Below this many output values one thread makes the batch: waking a second costs more. */
#define MIN_PARALLEL (1 << 16)

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* One output row of one channel: bilinear samples of the float plane p at (sx0 + dsx x, sy0 + dsy x). */
static void warp_row(const float *restrict p, float *restrict o, int w, int h, float sx0, float dsx, float sy0,
                     float dsy) {
    for (int x = 0; x < w; ++x) {
        const float sx = sx0 + dsx * (float)x, sy = sy0 + dsy * (float)x;
        const float fx = floorf(sx), fy = floorf(sy);
        const float ax = sx - fx, ay = sy - fy; /* the weights of column x0 + 1 and row y0 + 1 */
        const int x0 = (int)fx, y0 = (int)fy;
        const float in_x0 = (x0 >= 0 && x0 < w) ? 1.0f : 0.0f, in_x1 = (x0 >= -1 && x0 < w - 1) ? 1.0f : 0.0f;
        const float in_y0 = (y0 >= 0 && y0 < h) ? 1.0f : 0.0f, in_y1 = (y0 >= -1 && y0 < h - 1) ? 1.0f : 0.0f;
        const int cx0 = clampi(x0, 0, w - 1), cx1 = clampi(x0 + 1, 0, w - 1);
        const int cy0 = clampi(y0, 0, h - 1) * w, cy1 = clampi(y0 + 1, 0, h - 1) * w;
        o[x] = ((1.0f - ax) * (1.0f - ay) * in_x0 * in_y0) * p[cy0 + cx0] +
               (ax * (1.0f - ay) * in_x1 * in_y0) * p[cy0 + cx1] +
               ((1.0f - ax) * ay * in_x0 * in_y1) * p[cy1 + cx0] + (ax * ay * in_x1 * in_y1) * p[cy1 + cx1];
    }
}

/* images: (N, C, H, W) uint8; idx: (n,) rows of images; mats: (n, 6) or NULL, the first two
 * rows of each output-to-source pixel matrix (source x = m0 x + m1 y + m2, source y = m3 x +
 * m4 y + m5, pixel centres at integers); mean, std: (C,) or NULL (then no normalisation and
 * no clamp); out: (n, H, W, C) float32. Returns 0, or -1 when out of memory. */
int batch_f32(const uint8_t *restrict images, const int64_t *restrict idx, const double *restrict mats,
              const float *restrict mean, const float *restrict std, float *restrict out, int64_t n, int64_t c,
              int64_t h, int64_t w) {
    const int64_t plane = h * w;
    int failed = 0;
    if (mats == NULL) {
#pragma omp parallel for schedule(static) if (n * c * plane >= MIN_PARALLEL)
        for (int64_t row = 0; row < n * h; ++row) {
            const uint8_t *img = images + idx[row / h] * c * plane + (row % h) * w;
            float *o = out + row * w * c;
            for (int64_t k = 0; k < c; ++k)
                for (int64_t x = 0; x < w; ++x) {
                    const float v = (float)img[k * plane + x] / 255.0f;
                    o[x * c + k] = mean == NULL ? v : (v - mean[k]) / std[k];
                }
        }
        return 0;
    }
#pragma omp parallel if (n * c * plane >= MIN_PARALLEL) reduction(| : failed)
    {
        /* a float copy of one image (for vectorised gathers) and one output row per channel */
        float *scratch = malloc((size_t)(c * plane + c * w) * sizeof(float));
        failed = scratch == NULL;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < n; ++b) {
            if (scratch == NULL) continue;
            const uint8_t *img = images + idx[b] * c * plane;
            float *rows = scratch + c * plane;
            for (int64_t i = 0; i < c * plane; ++i) scratch[i] = (float)img[i];
            const double *m = mats + 6 * b;
            for (int64_t y = 0; y < h; ++y) {
                const float sx0 = (float)(m[1] * (double)y + m[2]), sy0 = (float)(m[4] * (double)y + m[5]);
                for (int64_t k = 0; k < c; ++k)
                    warp_row(scratch + k * plane, rows + k * w, (int)w, (int)h, sx0, (float)m[0], sy0, (float)m[3]);
                float *o = out + (b * h + y) * w * c;
                for (int64_t k = 0; k < c; ++k)
                    for (int64_t x = 0; x < w; ++x) {
                        float v = rows[k * w + x] / 255.0f;
                        if (mean != NULL) {
                            v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                            v = (v - mean[k]) / std[k];
                        }
                        o[x * c + k] = v;
                    }
            }
        }
        free(scratch);
    }
    return failed ? -1 : 0;
}
