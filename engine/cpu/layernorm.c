/* engine/cpu/layernorm.c — CPU kernels of the fused layer_norm op (see engine/layers.h).
 *
 * Forward, one pass per row: the sums of (x - K) and (x - K)^2 with the shift K = x[0],
 * in double (the shift keeps the variance exact for rows whose mean is large against their
 * spread), then y = (x - mean) * rstd * w + b. mean and rstd are kept for backward.
 *
 * Backward per row, with xhat = (x - mean) * rstd and dy = g * w:
 *   gx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat))
 *   gw += g * xhat,  gb += g       (column sums over the rows, in double in `work`)
 */
#include <math.h>
#include <string.h>

#include "engine/cpu/kernels.h"
#include "engine/layers.h"

static inline const float *cf(const ct_tensor *t) { return t ? (const float *)ct_data(t) : NULL; }
static inline float *mf(ct_tensor *t) { return t ? (float *)ct_data(t) : NULL; }

static void ln_forward(ct_tensor *yt, ct_tensor *meant, ct_tensor *rstdt, const ct_tensor *xt,
                       const ct_tensor *wt, const ct_tensor *bt, int64_t rows, int64_t D,
                       float eps) {
    const float *x = cf(xt), *w = cf(wt), *b = cf(bt);
    float *y = mf(yt), *mean = mf(meant), *rstd = mf(rstdt);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        if (D == 0) {             /* PyTorch: mean and variance of nothing are NaN */
            mean[r] = rstd[r] = NAN;
            continue;
        }
        double k = xr[0];
        double s0 = 0, s1 = 0, q0 = 0, q1 = 0;
        int64_t j = 0;
        for (; j + 1 < D; j += 2) {
            double d0 = (double)xr[j] - k, d1 = (double)xr[j + 1] - k;
            s0 += d0;
            s1 += d1;
            q0 += d0 * d0;
            q1 += d1 * d1;
        }
        if (j < D) {
            double d0 = (double)xr[j] - k;
            s0 += d0;
            q0 += d0 * d0;
        }
        double s = (s0 + s1) / (double)D, var = (q0 + q1) / (double)D - s * s;
        if (var < 0) var = 0;
        double mu = k + s, rs = 1.0 / sqrt(var + (double)eps);
        mean[r] = (float)mu;
        rstd[r] = (float)rs;
        float fm = (float)mu, fr = (float)rs;
        if (w && b)
            for (j = 0; j < D; j++) yr[j] = (xr[j] - fm) * fr * w[j] + b[j];
        else if (w)
            for (j = 0; j < D; j++) yr[j] = (xr[j] - fm) * fr * w[j];
        else if (b)
            for (j = 0; j < D; j++) yr[j] = (xr[j] - fm) * fr + b[j];
        else
            for (j = 0; j < D; j++) yr[j] = (xr[j] - fm) * fr;
    }
}

static void ln_backward(ct_tensor *gxt, ct_tensor *gwt, ct_tensor *gbt, ct_tensor *work,
                        const ct_tensor *goutt, const ct_tensor *xt, const ct_tensor *meant,
                        const ct_tensor *rstdt, const ct_tensor *wt, int64_t rows, int64_t D) {
    const float *g = cf(goutt), *x = cf(xt), *mean = cf(meant), *rstd = cf(rstdt), *w = cf(wt);
    float *gx = mf(gxt), *gw = mf(gwt), *gb = mf(gbt);
    double *aw = NULL, *ab = NULL;
    if (D == 0) return;           /* nothing to write */
    if (gw || gb) {
        aw = (double *)ct_data(work);
        ab = aw + D;
        memset(aw, 0, sizeof(double) * 2 * (size_t)D);
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = g + r * D, *xr = x + r * D;
        float mu = mean[r], rs = rstd[r];
        double sa = 0, sb = 0;       /* sum(dy), sum(dy * xhat) */
        for (int64_t j = 0; j < D; j++) {
            float xh = (xr[j] - mu) * rs;
            float dy = w ? gr[j] * w[j] : gr[j];
            sa += dy;
            sb += (double)dy * xh;
            if (aw) {
                aw[j] += (double)gr[j] * xh;
                ab[j] += gr[j];
            }
        }
        if (!gx) continue;
        float ma = (float)(sa / (double)D), mb = (float)(sb / (double)D);
        float *gxr = gx + r * D;
        for (int64_t j = 0; j < D; j++) {
            float dy = w ? gr[j] * w[j] : gr[j];
            float xh = (xr[j] - mu) * rs;
            gxr[j] = rs * (dy - ma - xh * mb);
        }
    }
    for (int64_t j = 0; gw && j < D; j++) gw[j] = (float)aw[j];
    for (int64_t j = 0; gb && j < D; j++) gb[j] = (float)ab[j];
}

const struct ct_kernels_layernorm ct__cpu_kernels_layernorm = {
    .forward = ln_forward,
    .backward = ln_backward,
};
