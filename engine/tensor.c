/* engine/tensor.c — storage, tensor creation and inspection, shape helpers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

size_t ct_dtype_size(ct_dtype d) { return d == CT_I64 ? 8 : 4; }
const char *ct_dtype_name(ct_dtype d) { return d == CT_I64 ? "int64" : "float32"; }

bool ct_device_eq(ct_device a, ct_device b) {
    return a.type == b.type && (a.type == CT_CPU || a.index == b.index);
}

char *ct_device_str(ct_device d, char *buf, size_t n) {
    if (d.type == CT_CPU) snprintf(buf, n, "cpu");
    else snprintf(buf, n, "cuda:%d", d.index);
    return buf;
}

const ct_backend *ct__backend(ct_device dev) {
    if (dev.type == CT_CPU) return &ct_cpu_backend;
#ifdef CT_HAVE_CUDA
    if (dev.type == CT_CUDA && dev.index >= 0 && dev.index < ct__cuda_device_count(NULL, 0))
        return &ct_cuda_backend;
#endif
    return NULL;
}

char *ct__device_why(ct_device dev, char *buf, size_t n) {
    char d[24];
    ct_device_str(dev, d, sizeof d);
    if (dev.type != CT_CUDA) {
        snprintf(buf, n, "%s is not a device type this build knows", d);
        return buf;
    }
#ifdef CT_HAVE_CUDA
    char why[160] = "";
    int count = ct__cuda_device_count(why, sizeof why);
    if (dev.index < 0)
        snprintf(buf, n, "%s requested: a device index is 0 or more", d);
    else if (count == 0)
        snprintf(buf, n, "%s requested but this machine has 0 CUDA devices (%s)", d, why);
    else
        snprintf(buf, n, "%s requested but this machine has %d CUDA device%s (cuda:0%s%.0d)", d,
                 count, count == 1 ? "" : "s", count > 1 ? " to cuda:" : "", count > 1 ? count - 1 : 0);
#else
    snprintf(buf, n, "%s requested but this build has no CUDA backend: rebuild with make CUDA=1", d);
#endif
    return buf;
}

ct_status ct__device_check(ct_ctx *ctx, const ct_backend *be) {
    return be && be->check ? be->check(ctx) : CT_OK;
}

ct_status ct__copy_across(ct_tensor *dst, const ct_tensor *src) {
    size_t nb = (size_t)ct_numel(src) * ct_dtype_size(src->dtype);
    const ct_backend *bd = dst->storage->backend, *bs = src->storage->backend;
    ct_ctx *ctx = dst->ctx;
    if (nb == 0) return CT_OK;
    if (bd == bs && ct_device_eq(dst->storage->device, src->storage->device)) {
        bd->copy(dst, src);
        return ct__device_check(ctx, bd);
    }
    if (src->storage->device.type == CT_CPU) {
        bd->from_host(ct_data(dst), ct_data(src), nb);
    } else if (dst->storage->device.type == CT_CPU) {
        bs->to_host(ct_data(dst), ct_data(src), nb);
    } else {                                  /* device to device: through the host */
        void *tmp = malloc(nb);
        if (!tmp) return ct_fail(ctx, CT_E_NOMEM, "copying %zu bytes between devices: out of memory", nb);
        bs->to_host(tmp, ct_data(src), nb);
        ct_status st = ct__device_check(ctx, bs);
        if (st == CT_OK) bd->from_host(ct_data(dst), tmp, nb);
        free(tmp);
        if (st) return st;
    }
    ct_status st = ct__device_check(ctx, bs);
    return st ? st : ct__device_check(ctx, bd);
}

/* ---- storage ------------------------------------------------------------------------ */
ct_storage *ct__storage_new(ct_ctx *ctx, ct_device dev, size_t nbytes) {
    const ct_backend *be = ct__backend(dev);
    if (!be) {
        char why[320];
        ct_fail(ctx, CT_E_DEVICE, "%s", ct__device_why(dev, why, sizeof why));
        return NULL;
    }
    ct_storage *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->data = be->alloc(ctx, dev, nbytes ? nbytes : 1);
    /* a device failure (this allocation or an earlier asynchronous kernel) becomes the error */
    if (be->check && be->check(ctx) != CT_OK) {
        if (s->data) be->free(ctx, dev, s->data, nbytes ? nbytes : 1);
        free(s);
        return NULL;
    }
    if (!s->data) {
        char d[24];
        free(s);
        ct_fail(ctx, CT_E_NOMEM, "out of memory allocating %zu bytes on %s", nbytes,
                ct_device_str(dev, d, sizeof d));
        return NULL;
    }
    s->refcount = 1;
    s->nbytes = nbytes;
    s->device = dev;
    s->backend = be;
    s->owns_data = true;
    ctx->stats.live_storages++;
    ctx->stats.live_bytes += (int64_t)nbytes;
    if (ctx->stats.live_bytes > ctx->stats.peak_bytes) ctx->stats.peak_bytes = ctx->stats.live_bytes;
    return s;
}

void ct__storage_release(ct_ctx *ctx, ct_storage *s) {
    if (!s || --s->refcount > 0) return;
    if (s->owns_data) {
        s->backend->free(ctx, s->device, s->data, s->nbytes ? s->nbytes : 1);
        ctx->stats.live_bytes -= (int64_t)s->nbytes;
    }
    ctx->stats.live_storages--;
    free(s);
}

void ct__bump_version(ct_tensor *t) { t->storage->version++; }

/* ---- tensors ------------------------------------------------------------------------- */
int64_t ct__prod(int ndim, const int64_t *shape) {
    int64_t p = 1;
    for (int i = 0; i < ndim; i++) p *= shape[i];
    return p;
}

void ct__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

static ct_tensor *tensor_struct(ct_ctx *ctx, ct_storage *s, ct_dtype dt, int ndim,
                                const int64_t *shape, const int64_t *stride, int64_t offset) {
    ct_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->refcount = 1;
    t->ctx = ctx;
    t->storage = s;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->stride[i] = stride[i];
    }
    t->offset = offset;
    ctx->stats.live_tensors++;
    return t;
}

static ct_tensor *adopt(ct_ctx *ctx, ct_tensor *t) {
    if (!t) {
        ct_fail(ctx, CT_E_NOMEM, "out of memory allocating a tensor");
        return NULL;
    }
    if (!ct__scope_adopt(ctx, t)) {
        ct_fail(ctx, CT_E_NOMEM, "out of memory growing the scope");
        ct_release(t);
        return NULL;
    }
    return t;
}

static bool check_shape(ct_ctx *ctx, const char *op, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > CT_MAX_DIMS) {
        ct_fail(ctx, CT_E_SHAPE, "%s: %d dims requested; a tensor has 0 to %d", op, ndim,
                CT_MAX_DIMS);
        return false;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            ct_fail(ctx, CT_E_SHAPE, "%s: negative size %lld in dim %d", op,
                    (long long)shape[i], i);
            return false;
        }
    return true;
}

void ct__swap_storage(ct_tensor *t, ct_storage *s) {
    uint64_t v = t->storage->version;
    s->refcount++;
    ct__storage_release(t->ctx, t->storage);
    t->storage = s;
    if (s->version <= v) s->version = v + 1;
}

ct_tensor *ct__full_on(ct_ctx *ctx, ct_device dev, int ndim, const int64_t *shape, double value) {
    ct_tensor *t = ct__new(ctx, CT_F32, dev, ndim, shape);
    if (t) t->storage->backend->fill(t, value);
    return t;
}

ct_tensor *ct__new(ct_ctx *ctx, ct_dtype dt, ct_device dev, int ndim, const int64_t *shape) {
    if (!check_shape(ctx, "empty", ndim, shape)) return NULL;
    int64_t n = ct__prod(ndim, shape);
    ct_storage *s = ct__storage_new(ctx, dev, (size_t)n * ct_dtype_size(dt));
    if (!s) return NULL;
    int64_t stride[CT_MAX_DIMS];
    ct__contiguous_strides(ndim, shape, stride);
    ct_tensor *t = tensor_struct(ctx, s, dt, ndim, shape, stride, 0);
    if (!t) ct__storage_release(ctx, s);
    return adopt(ctx, t);
}

ct_tensor *ct__view(ct_tensor *base, int ndim, const int64_t *shape, const int64_t *stride,
                    int64_t offset) {
    ct_ctx *ctx = base->ctx;
    ct_tensor *t = tensor_struct(ctx, base->storage, base->dtype, ndim, shape, stride, offset);
    if (t) base->storage->refcount++;
    return adopt(ctx, t);
}

ct_tensor *ct__alias(ct_tensor *t) {
    ct_tensor *a = tensor_struct(t->ctx, t->storage, t->dtype, t->ndim, t->shape, t->stride,
                                 t->offset);
    if (a) t->storage->refcount++;
    return a;
}

ct_tensor *ct_empty(ct_ctx *ctx, ct_dtype dt, int ndim, const int64_t *shape) {
    return ct__new(ctx, dt, CT_DEVICE_CPU, ndim, shape);
}

ct_tensor *ct_full(ct_ctx *ctx, float value, int ndim, const int64_t *shape) {
    ct_tensor *t = ct__new(ctx, CT_F32, CT_DEVICE_CPU, ndim, shape);
    if (t) t->storage->backend->fill(t, value);
    return t;
}
ct_tensor *ct_zeros(ct_ctx *ctx, int ndim, const int64_t *shape) { return ct_full(ctx, 0.0f, ndim, shape); }
ct_tensor *ct_ones(ct_ctx *ctx, int ndim, const int64_t *shape) { return ct_full(ctx, 1.0f, ndim, shape); }
ct_tensor *ct_scalar(ct_ctx *ctx, float value) { return ct_full(ctx, value, 0, NULL); }

static ct_tensor *from_data(ct_ctx *ctx, ct_dtype dt, const void *data, int ndim,
                            const int64_t *shape) {
    ct_tensor *t = ct__new(ctx, dt, CT_DEVICE_CPU, ndim, shape);
    if (t && ct_numel(t) > 0) memcpy(t->storage->data, data, t->storage->nbytes);
    return t;
}
ct_tensor *ct_from_f32(ct_ctx *ctx, const float *data, int ndim, const int64_t *shape) {
    return from_data(ctx, CT_F32, data, ndim, shape);
}
ct_tensor *ct_from_i64(ct_ctx *ctx, const int64_t *data, int ndim, const int64_t *shape) {
    return from_data(ctx, CT_I64, data, ndim, shape);
}

ct_tensor *ct_wrap_f32(ct_ctx *ctx, float *data, int ndim, const int64_t *shape) {
    if (!check_shape(ctx, "wrap_f32", ndim, shape)) return NULL;
    if (!data) {
        ct_fail(ctx, CT_E_ARG, "wrap_f32: data is NULL");
        return NULL;
    }
    ct_storage *s = calloc(1, sizeof *s);
    if (!s) { ct_fail(ctx, CT_E_NOMEM, "wrap_f32: out of memory"); return NULL; }
    s->refcount = 1;
    s->data = data;
    s->nbytes = (size_t)ct__prod(ndim, shape) * sizeof(float);
    s->device = CT_DEVICE_CPU;
    s->backend = &ct_cpu_backend;
    s->owns_data = false;
    ctx->stats.live_storages++;
    int64_t stride[CT_MAX_DIMS];
    ct__contiguous_strides(ndim, shape, stride);
    ct_tensor *t = tensor_struct(ctx, s, CT_F32, ndim, shape, stride, 0);
    if (!t) ct__storage_release(ctx, s);
    return adopt(ctx, t);
}

ct_tensor *ct_arange(ct_ctx *ctx, ct_dtype dt, int64_t n) {
    ct_tensor *t = ct__new(ctx, dt, CT_DEVICE_CPU, 1, &n);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (dt == CT_F32) ((float *)t->storage->data)[i] = (float)i;
        else ((int64_t *)t->storage->data)[i] = i;
    }
    return t;
}

/* ---- inspection ------------------------------------------------------------------------ */
int64_t ct_numel(const ct_tensor *t) { return ct__prod(t->ndim, t->shape); }

int64_t ct_size(const ct_tensor *t, int dim) {
    if (dim < 0) dim += t->ndim;
    if (dim < 0 || dim >= t->ndim) return -1;
    return t->shape[dim];
}

bool ct_is_contiguous(const ct_tensor *t) {
    if (ct_numel(t) == 0) return true;      /* no element is out of place */
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool ct_same_shape(const ct_tensor *a, const ct_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

ct_device ct_tensor_device(const ct_tensor *t) { return t->storage->device; }

void *ct_data(const ct_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)ct_dtype_size(t->dtype);
}
float *ct_data_f32(const ct_tensor *t) { return t->dtype == CT_F32 ? ct_data(t) : NULL; }
int64_t *ct_data_i64(const ct_tensor *t) { return t->dtype == CT_I64 ? ct_data(t) : NULL; }

double ct_get(const ct_tensor *t, const int64_t *index) {
    int64_t off = t->offset;
    for (int i = 0; i < t->ndim; i++) off += index[i] * t->stride[i];
    if (t->storage->device.type != CT_CPU) {
        double v = 0;
        if (t->dtype == CT_F32) {
            float f;
            t->storage->backend->to_host(&f, (float *)t->storage->data + off, sizeof f);
            v = f;
        } else {
            int64_t x;
            t->storage->backend->to_host(&x, (int64_t *)t->storage->data + off, sizeof x);
            v = (double)x;
        }
        /* a device failure is recorded in the ctx; the value is then NAN */
        return ct__device_check(t->ctx, t->storage->backend) == CT_OK ? v : NAN;
    }
    if (t->dtype == CT_F32) return ((const float *)t->storage->data)[off];
    return (double)((const int64_t *)t->storage->data)[off];
}

double ct_item(const ct_tensor *t) {
    if (!t || ct_numel(t) != 1) return NAN;
    int64_t idx[CT_MAX_DIMS] = {0};
    return ct_get(t, idx);
}

void ct__fmt_shape(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t len = 0;
    len += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

char *ct_shape_str(const ct_tensor *t, char *buf, size_t n) {
    ct__fmt_shape(t->ndim, t->shape, buf, n);
    return buf;
}

ct_status ct_copy_to_host(const ct_tensor *t, void *dst, size_t dst_bytes) {
    size_t need = (size_t)ct_numel(t) * ct_dtype_size(t->dtype);
    if (dst_bytes < need)
        return ct_fail(t->ctx, CT_E_ARG, "copy_to_host: buffer of %zu bytes, need %zu",
                       dst_bytes, need);
    if (t->storage->device.type == CT_CPU) {
        /* a contiguous destination view over the caller's memory */
        ct_tensor d = *t;
        ct_storage s = *t->storage;
        s.data = dst;
        d.storage = &s;
        d.offset = 0;
        ct__contiguous_strides(t->ndim, t->shape, d.stride);
        ct_cpu_backend.copy(&d, t);
        return CT_OK;
    }
    ct_scope_begin(t->ctx);
    bool was = ct_set_grad_enabled(t->ctx, false);   /* a copy out, not part of any graph */
    ct_tensor *c = ct_contiguous((ct_tensor *)t);
    ct_set_grad_enabled(t->ctx, was);
    ct_status st = c ? CT_OK : ct_ctx_status(t->ctx);
    if (c && need > 0) {
        t->storage->backend->to_host(dst, ct_data(c), need);
        st = ct__device_check(t->ctx, t->storage->backend);
    }
    ct_scope_end(t->ctx);
    return st;
}

ct_status ct_copy_from_host(ct_tensor *t, const void *src, size_t src_bytes) {
    size_t need = (size_t)ct_numel(t) * ct_dtype_size(t->dtype);
    if (src_bytes < need)
        return ct_fail(t->ctx, CT_E_ARG, "copy_from_host: buffer of %zu bytes, need %zu", src_bytes, need);
    if (t->storage->device.type != CT_CPU && !ct_is_contiguous(t)) {
        char d[24];
        return ct_fail(t->ctx, CT_E_ARG, "copy_from_host: a tensor on %s must be contiguous (copy into "
                       "ct_contiguous(t), or write a contiguous one)",
                       ct_device_str(t->storage->device, d, sizeof d));
    }
    /* a contiguous host source over the caller's memory */
    ct_storage s = *t->storage;
    s.data = (void *)src;
    s.device = CT_DEVICE_CPU;
    s.backend = &ct_cpu_backend;
    ct_tensor h = *t;
    h.storage = &s;
    h.offset = 0;
    ct__contiguous_strides(t->ndim, t->shape, h.stride);
    ct_status st = ct__copy_across(t, &h);
    if (st == CT_OK) ct__bump_version(t);
    return st;
}

/* ---- helpers for ops -------------------------------------------------------------------- */
ct_ctx *ct__ctx_of(int n, ct_tensor *const *ts) {
    ct_ctx *ctx = NULL;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) return NULL;
        if (!ctx) ctx = ts[i]->ctx;
    }
    return ctx;
}

bool ct__check_same(ct_src src, const char *op, int n, ct_tensor *const *ts, bool want_f32) {
    ct_ctx *ctx = ts[0]->ctx;
    for (int i = 0; i < n; i++) {
        if (ts[i]->ctx != ctx) {
            ct__op_error(ctx, src, op, CT_E_ARG,
                         "operand %d belongs to another context; tensors of different "
                         "ct_ctx cannot be mixed", i);
            return false;
        }
        if (!ct_device_eq(ts[i]->storage->device, ts[0]->storage->device)) {
            char d0[16], d1[16];
            ct__op_error(ctx, src, op, CT_E_DEVICE,
                         "operand 0 is on %s but operand %d is on %s; move one with ct_to()",
                         ct_device_str(ts[0]->storage->device, d0, sizeof d0), i,
                         ct_device_str(ts[i]->storage->device, d1, sizeof d1));
            return false;
        }
        if (want_f32 && ts[i]->dtype != CT_F32) {
            char s[96];
            ct__op_error(ctx, src, op, CT_E_DTYPE, "operand %d %s is %s; expected float32", i,
                         ct_shape_str(ts[i], s, sizeof s), ct_dtype_name(ts[i]->dtype));
            return false;
        }
    }
    return true;
}

bool ct__dim(ct_src src, const char *op, const ct_tensor *t, int dim, int *out) {
    int nd = t->ndim;
    int d = dim < 0 ? dim + nd : dim;
    if (d < 0 || d >= nd) {
        char s[96];
        ct__op_error(t->ctx, src, op, CT_E_ARG, "dim %d is out of range for a tensor of shape %s "
                     "(valid: %d to %d)", dim, ct_shape_str(t, s, sizeof s), -nd, nd - 1);
        return false;
    }
    *out = d;
    return true;
}

bool ct__broadcast_shape(ct_src src, const char *op, const ct_tensor *a, const ct_tensor *b,
                         int *ndim, int64_t *shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char s1[96], s2[96];
            ct__op_error(a->ctx, src, op, CT_E_SHAPE,
                         "shapes %s and %s do not broadcast (dim %d: %lld vs %lld)",
                         ct_shape_str(a, s1, sizeof s1), ct_shape_str(b, s2, sizeof s2), i,
                         (long long)sa, (long long)sb);
            return false;
        }
        shape[i] = sa == 1 ? sb : sa;
    }
    *ndim = nd;
    return true;
}

ct_tensor *ct__broadcast_to(ct_src src, const char *op, ct_tensor *t, int ndim,
                            const int64_t *shape) {
    if (ndim < t->ndim) goto bad;
    int64_t stride[CT_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int it = i - (ndim - t->ndim);
        if (it < 0) { stride[i] = 0; continue; }
        if (t->shape[it] == shape[i]) stride[i] = t->stride[it];
        else if (t->shape[it] == 1) stride[i] = 0;
        else goto bad;
    }
    return ct__view(t, ndim, shape, stride, t->offset);
bad:;
    char s1[96], s2[96];
    ct__fmt_shape(ndim, shape, s2, sizeof s2);
    return ct__op_error(t->ctx, src, op, CT_E_SHAPE, "cannot broadcast shape %s to %s",
                        ct_shape_str(t, s1, sizeof s1), s2);
}
