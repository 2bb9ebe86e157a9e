/* audio/mulaw.c — 8-bit mu-law encode/decode (see mulaw.h for the definition and the bound). */
#include <math.h>

#include "audio/mulaw.h"

int ca_mulaw_encode(float x) {
    const double mu = CA_MULAW_MU;
    double v = x;
    if (!(v == v)) v = 0; /* NaN */
    if (v > 1) v = 1;
    if (v < -1) v = -1;
    double y = log1p(mu * fabs(v)) / log1p(mu);
    if (v < 0) y = -y;
    int q = (int)floor((y + 1) / 2 * mu + 0.5);
    return q < 0 ? 0 : q > CA_MULAW_MU ? CA_MULAW_MU : q;
}

float ca_mulaw_decode(int q) {
    const double mu = CA_MULAW_MU;
    if (q < 0) q = 0;
    if (q > CA_MULAW_MU) q = CA_MULAW_MU;
    double y = 2.0 * q / mu - 1;
    double x = expm1(fabs(y) * log1p(mu)) / mu;
    return (float)(y < 0 ? -x : x);
}

float ca_mulaw_error_bound(float x) {
    const double mu = CA_MULAW_MU;
    double a = fabs((double)x);
    if (a > 1) a = 1;
    return (float)(log1p(mu) * pow(1 + mu, 1 / mu) * (1 + mu * a) / (mu * mu) + 1e-6);
}

void ca_mulaw_encode_u8(const float *x, int64_t n, uint8_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = (uint8_t)ca_mulaw_encode(x[i]);
}

void ca_mulaw_decode_u8(const uint8_t *q, int64_t n, float *out) {
    float t[CA_MULAW_CLASSES];
    if (n > CA_MULAW_CLASSES)
        for (int k = 0; k < CA_MULAW_CLASSES; k++) t[k] = ca_mulaw_decode(k);
    for (int64_t i = 0; i < n; i++) out[i] = n > CA_MULAW_CLASSES ? t[q[i]] : ca_mulaw_decode(q[i]);
}

void ca_mulaw_encode_i32(const float *x, int64_t n, int32_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = ca_mulaw_encode(x[i]);
}

void ca_mulaw_decode_i32(const int32_t *q, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = ca_mulaw_decode(q[i]);
}
