/* engine/cpu/index.c — CPU kernels of the index group (see engine/kernels_index.h). */
#include <string.h>

#include "engine/cpu/iter.h"
#include "engine/cpu/kernels.h"

/* [outer, size, inner] view of a contiguous tensor around dim */
static void split_dims(const ct_tensor *t, int dim, int64_t *outer, int64_t *inner) {
    int64_t o = 1, i = 1;
    for (int d = 0; d < dim; d++) o *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) i *= t->shape[d];
    *outer = o;
    *inner = i;
}

static int64_t cpu_find_bad_index(const ct_tensor *idx, int64_t bound, int64_t *value) {
    const int64_t *ix = ct_data(idx);
    int64_t n = ct_numel(idx);
    for (int64_t i = 0; i < n; i++) {
        /* one unsigned compare catches both negative and too large values */
        if ((uint64_t)ix[i] >= (uint64_t)bound) {
            *value = ix[i];
            return i;
        }
    }
    return -1;
}

static void cpu_index_select(ct_tensor *out, const ct_tensor *a, int dim, const ct_tensor *idx) {
    int64_t outer, inner, size = a->shape[dim], n = ct_numel(idx);
    split_dims(a, dim, &outer, &inner);
    if (outer == 0 || inner == 0 || n == 0) return;
    const int64_t *ix = ct_data(idx);
    size_t es = ct_dtype_size(a->dtype);
    if (inner == 1) {                       /* the last dim: element by element */
        if (es == 4) {
            const float *s = ct_data(a);
            float *d = ct_data(out);
            for (int64_t o = 0; o < outer; o++, s += size, d += n)
                for (int64_t j = 0; j < n; j++) d[j] = s[ix[j]];
        } else {
            const int64_t *s = ct_data(a);
            int64_t *d = ct_data(out);
            for (int64_t o = 0; o < outer; o++, s += size, d += n)
                for (int64_t j = 0; j < n; j++) d[j] = s[ix[j]];
        }
        return;
    }
    size_t row = (size_t)inner * es;
    const char *s = ct_data(a);
    char *d = ct_data(out);
    for (int64_t o = 0; o < outer; o++, s += (size_t)size * row)
        for (int64_t j = 0; j < n; j++, d += row) memcpy(d, s + (size_t)ix[j] * row, row);
}

static void cpu_index_add(ct_tensor *out, int dim, const ct_tensor *idx, const ct_tensor *src) {
    int64_t outer, inner, size = out->shape[dim], n = ct_numel(idx);
    split_dims(out, dim, &outer, &inner);
    if (outer == 0 || inner == 0 || n == 0) return;
    const int64_t *ix = ct_data(idx);
    float *d = ct_data(out);
    const float *s = ct_data(src);
    for (int64_t o = 0; o < outer; o++, d += size * inner) {
        for (int64_t j = 0; j < n; j++, s += inner) {
            float *row = d + ix[j] * inner;
            for (int64_t k = 0; k < inner; k++) row[k] += s[k];
        }
    }
}

/* t seen with index's shape and stride 0 along dim: the position index[...] = 0 picks */
static ct_tensor restride(const ct_tensor *t, const ct_tensor *index, int dim) {
    ct_tensor v = *t;
    v.ndim = index->ndim;
    for (int d = 0; d < index->ndim; d++) v.shape[d] = index->shape[d];
    v.stride[dim] = 0;
    return v;
}

#define GATHER_LOOP(T)                                                                 \
    do {                                                                               \
        T *o = (T *)(void *)it.base[0];                                                \
        const int64_t *ix = (const int64_t *)(void *)it.base[1];                       \
        const T *s = (const T *)(void *)it.base[2];                                    \
        for (int64_t i = 0; i < it.inner; i++) o[i * so] = s[i * ss + ix[i * si] * sd]; \
    } while (0)

static void cpu_gather(ct_tensor *out, const ct_tensor *a, int dim, const ct_tensor *index) {
    ct_tensor av = restride(a, index, dim);
    int64_t sd = a->stride[dim];
    ct_iter it;
    ct_iter_init(&it, 3, (const ct_tensor *[]){out, index, &av});
    if (it.empty) return;
    int64_t so = it.is[0], si = it.is[1], ss = it.is[2];
    do {
        if (a->dtype == CT_F32) GATHER_LOOP(float);
        else GATHER_LOOP(int64_t);
    } while (ct_iter_next(&it));
}

static void cpu_scatter_add(ct_tensor *out, int dim, const ct_tensor *index, const ct_tensor *src) {
    ct_tensor ov = restride(out, index, dim);
    int64_t sd = out->stride[dim];
    ct_iter it;
    ct_iter_init(&it, 3, (const ct_tensor *[]){index, src, &ov});
    if (it.empty) return;
    int64_t si = it.is[0], ss = it.is[1], so = it.is[2];
    do {
        const int64_t *ix = (const int64_t *)(void *)it.base[0];
        const float *s = (const float *)(void *)it.base[1];
        float *o = (float *)(void *)it.base[2];
        for (int64_t i = 0; i < it.inner; i++) o[i * so + ix[i * si] * sd] += s[i * ss];
    } while (ct_iter_next(&it));
}

#define WHERE_LOOP(CT, VT)                                                             \
    do {                                                                               \
        VT *o = (VT *)(void *)it.base[0];                                              \
        const CT *c = (const CT *)(void *)it.base[1];                                  \
        const VT *x = (const VT *)(void *)it.base[2], *y = (const VT *)(void *)it.base[3]; \
        for (int64_t i = 0; i < it.inner; i++)                                         \
            o[i * s0] = c[i * s1] != 0 ? x[i * s2] : y[i * s3];                        \
    } while (0)

static void cpu_where(ct_tensor *out, const ct_tensor *cond, const ct_tensor *a, const ct_tensor *b) {
    ct_iter it;
    ct_iter_init(&it, 4, (const ct_tensor *[]){out, cond, a, b});
    if (it.empty) return;
    int64_t s0 = it.is[0], s1 = it.is[1], s2 = it.is[2], s3 = it.is[3];
    bool cf = cond->dtype == CT_F32, vf = out->dtype == CT_F32;
    do {
        if (cf && vf) WHERE_LOOP(float, float);
        else if (cf) WHERE_LOOP(float, int64_t);
        else if (vf) WHERE_LOOP(int64_t, float);
        else WHERE_LOOP(int64_t, int64_t);
    } while (ct_iter_next(&it));
}

#define FILL_LOOP(MT, VT, V)                                                           \
    do {                                                                               \
        VT *o = (VT *)(void *)it.base[0];                                              \
        const VT *x = (const VT *)(void *)it.base[1];                                  \
        const MT *m = (const MT *)(void *)it.base[2];                                  \
        for (int64_t i = 0; i < it.inner; i++)                                         \
            o[i * s0] = (m[i * s2] != 0) != invert ? (V) : x[i * s1];                  \
    } while (0)

static void cpu_masked_fill(ct_tensor *out, const ct_tensor *a, const ct_tensor *mask,
                            double value, bool invert) {
    ct_iter it;
    ct_iter_init(&it, 3, (const ct_tensor *[]){out, a, mask});
    if (it.empty) return;
    int64_t s0 = it.is[0], s1 = it.is[1], s2 = it.is[2];
    float vf = (float)value;
    int64_t vi = (int64_t)value;
    bool mf = mask->dtype == CT_F32, of = out->dtype == CT_F32;
    do {
        if (mf && of) FILL_LOOP(float, float, vf);
        else if (mf) FILL_LOOP(float, int64_t, vi);
        else if (of) FILL_LOOP(int64_t, float, vf);
        else FILL_LOOP(int64_t, int64_t, vi);
    } while (ct_iter_next(&it));
}

static void cpu_mask_scale(ct_tensor *out, const ct_tensor *a, const ct_tensor *mask, float scale) {
    ct_iter it;
    ct_iter_init(&it, 3, (const ct_tensor *[]){out, a, mask});
    if (it.empty) return;
    int64_t s0 = it.is[0], s1 = it.is[1], s2 = it.is[2];
    do {
        float *o = (float *)(void *)it.base[0];
        const float *x = (const float *)(void *)it.base[1], *m = (const float *)(void *)it.base[2];
        if (s0 == 1 && s1 == 1 && s2 == 1)
            for (int64_t i = 0; i < it.inner; i++) o[i] = x[i] * m[i] * scale;
        else
            for (int64_t i = 0; i < it.inner; i++) o[i * s0] = x[i * s1] * m[i * s2] * scale;
    } while (ct_iter_next(&it));
}

const struct ct_kernels_index ct_cpu_kernels_index = {
    .find_bad_index = cpu_find_bad_index,
    .index_select = cpu_index_select,
    .index_add = cpu_index_add,
    .gather = cpu_gather,
    .scatter_add = cpu_scatter_add,
    .where = cpu_where,
    .masked_fill = cpu_masked_fill,
    .mask_scale = cpu_mask_scale,
};
