/* engine/tensor.h — contexts, scopes, storage and tensors (views) of the cantor engine.
 *
 * MEMORY MODEL (read this first)
 * ------------------------------
 * Every tensor belongs to a context (ct_ctx). A context holds a stack of *scopes*.
 * Every function that returns a new tensor (creation functions, ops, views) hands it to the
 * innermost open scope, which owns one reference to it. ct_scope_end() drops the scope's
 * references: everything made inside the scope that nobody else holds is freed. The
 * context's base scope is closed by ct_ctx_free(). So a training loop never frees
 * intermediates by hand:
 *
 *     ct_ctx *ctx = ct_ctx_new();
 *     ct_tensor *w = ct_randn(ctx, rng, CT_SHAPE(784, 32));   // base scope: lives with ctx
 *     ct_set_requires_grad(w, true);
 *     for (int step = 0; step < 10000; step++) {
 *         ct_scope_begin(ctx);                    // everything below is freed at scope_end
 *         ct_tensor *loss = ct_cross_entropy(ct_matmul(x, w), y, -1);
 *         ct_backward(loss);                      // fills w->grad (owned by w)
 *         ct_inplace_axpy(w, -0.1f, ct_grad(w));  // SGD, outside autograd
 *         ct_zero_grad(w);
 *         ct_scope_end(ctx);
 *     }
 *     ct_ctx_free(ctx);                           // frees w too
 *
 * To let a tensor outlive the scope it was made in, either ct_keep(t) (hands it to the
 * enclosing scope, as a function returning a result would) or ct_retain(t) and later
 * ct_release(t) (your own reference). Tensors are reference counted; storage is reference
 * counted separately, so views share data without copying. A context is used by one thread
 * at a time; give each thread its own context.
 *
 * ERRORS
 * ------
 * Ops return NULL on failure after recording the error in the context (ct_ctx_status,
 * ct_ctx_error) and calling its handler. An op given a NULL input returns NULL quietly, so
 * a chain of ops fails once, with the first error's message.
 */
#ifndef CT_TENSOR_H
#define CT_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define CT_MAX_DIMS 8

typedef enum ct_dtype { CT_F32 = 0, CT_I64 = 1 } ct_dtype;
size_t ct_dtype_size(ct_dtype d);
const char *ct_dtype_name(ct_dtype d);          /* "float32", "int64" */

typedef enum ct_device_type { CT_CPU = 0, CT_CUDA = 1, CT_DEVICE_TYPES } ct_device_type;
typedef struct ct_device { ct_device_type type; int index; } ct_device;
#define CT_DEVICE_CPU ((ct_device){CT_CPU, 0})
bool ct_device_eq(ct_device a, ct_device b);
/* "cpu" or "cuda:N", written into buf (at least 16 bytes); returns buf. */
char *ct_device_str(ct_device d, char *buf, size_t n);

typedef struct ct_ctx ct_ctx;
typedef struct ct_node ct_node;
typedef struct ct_backend ct_backend;
typedef struct ct_hook ct_hook;

/* Reference-counted bytes on one device. */
typedef struct ct_storage {
    int refcount;
    void *data;
    size_t nbytes;
    ct_device device;
    const ct_backend *backend;  /* the device's kernel table */
    bool owns_data;             /* false for ct_wrap()ed caller buffers */
    uint64_t version;           /* bumped by every in-place write; autograd checks it */
} ct_storage;

/* A view: shape, strides (in elements) and offset into a storage. Fields are read-only for
 * users; change them only through the functions below. */
typedef struct ct_tensor {
    int refcount;
    ct_ctx *ctx;
    ct_storage *storage;
    ct_dtype dtype;
    int ndim;
    int64_t shape[CT_MAX_DIMS];
    int64_t stride[CT_MAX_DIMS];
    int64_t offset;
    /* autograd */
    bool requires_grad;         /* leaf: set by the user; non-leaf: set when grad_fn != NULL */
    struct ct_tensor *grad;     /* accumulated gradient of a leaf, owned by this tensor */
    ct_node *grad_fn;           /* the node that made this tensor, NULL for leaves */
    int out_index;              /* which output of grad_fn this is */
    ct_hook *hooks;             /* gradient hooks of a leaf (non-leaf hooks live on the node) */
    struct ct_tensor *bw_grad;  /* private: gradient being summed during backward */
    uint64_t bw_epoch;          /* private */
} ct_tensor;

/* ---- contexts ---------------------------------------------------------------------- */
ct_ctx *ct_ctx_new(void);                 /* NULL only when out of memory */
void ct_ctx_free(ct_ctx *ctx);            /* frees every tensor still alive; NULL is a no-op */
void ct_ctx_set_error_handler(ct_ctx *ctx, ct_error_handler fn, void *userdata);
ct_status ct_ctx_status(const ct_ctx *ctx);      /* the last error's status, CT_OK if none */
const char *ct_ctx_error(const ct_ctx *ctx);     /* the last error's text, "" if none */
void ct_ctx_clear_error(ct_ctx *ctx);
/* Records an error (as ops do): formats the message, stores it, calls the handler, and
 * returns the status so callers can write `return ct_fail(...)`. */
ct_status ct_fail(ct_ctx *ctx, ct_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Grad mode: when off, ops record no graph (sampling, optimizer updates, evaluation).
 * Returns the previous setting, so `bool was = ct_set_grad_enabled(ctx, false); ...;
 * ct_set_grad_enabled(ctx, was);` nests. */
bool ct_set_grad_enabled(ct_ctx *ctx, bool enabled);
bool ct_is_grad_enabled(const ct_ctx *ctx);

/* Memory statistics of a context (what the memory-growth test watches). */
typedef struct ct_mem_stats {
    int64_t live_tensors, live_storages, live_nodes;
    int64_t live_bytes, peak_bytes;
    int64_t cached_bytes;        /* freed blocks kept for reuse by the allocator */
} ct_mem_stats;
ct_mem_stats ct_ctx_mem_stats(const ct_ctx *ctx);
/* Returns the allocator's cached blocks to the system. */
void ct_ctx_empty_cache(ct_ctx *ctx);

/* ---- scopes and references --------------------------------------------------------- */
void ct_scope_begin(ct_ctx *ctx);
/* Releases the references of the innermost scope (newest first). Ending the base scope is
 * an error (ct_ctx_free does that). */
void ct_scope_end(ct_ctx *ctx);
int ct_scope_depth(const ct_ctx *ctx);    /* 0 = only the base scope is open */
ct_tensor *ct_keep(ct_tensor *t);         /* hand t to the enclosing scope; returns t */
ct_tensor *ct_retain(ct_tensor *t);       /* +1 reference held by the caller; returns t */
void ct_release(ct_tensor *t);            /* -1 reference; NULL is a no-op */

/* ---- creation (results belong to the current scope) --------------------------------- */
/* CT_SHAPE(2, 3) expands to the two arguments `ndim, shape`. */
#define CT_SHAPE(...) \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

ct_tensor *ct_empty(ct_ctx *ctx, ct_dtype dt, int ndim, const int64_t *shape);
ct_tensor *ct_zeros(ct_ctx *ctx, int ndim, const int64_t *shape);            /* float32 */
ct_tensor *ct_ones(ct_ctx *ctx, int ndim, const int64_t *shape);
ct_tensor *ct_full(ct_ctx *ctx, float value, int ndim, const int64_t *shape);
ct_tensor *ct_scalar(ct_ctx *ctx, float value);                               /* 0-d */
/* Copies n = prod(shape) elements from data. */
ct_tensor *ct_from_f32(ct_ctx *ctx, const float *data, int ndim, const int64_t *shape);
ct_tensor *ct_from_i64(ct_ctx *ctx, const int64_t *data, int ndim, const int64_t *shape);
/* Wraps the caller's contiguous buffer without copying; the caller keeps it alive (and
 * frees it) after the tensor and every view of it are gone. */
ct_tensor *ct_wrap_f32(ct_ctx *ctx, float *data, int ndim, const int64_t *shape);
ct_tensor *ct_arange(ct_ctx *ctx, ct_dtype dt, int64_t n);                     /* 0..n-1 */

/* ---- inspection --------------------------------------------------------------------- */
int64_t ct_numel(const ct_tensor *t);
int64_t ct_size(const ct_tensor *t, int dim);          /* negative dims count from the end */
bool ct_is_contiguous(const ct_tensor *t);
bool ct_same_shape(const ct_tensor *a, const ct_tensor *b);
ct_device ct_tensor_device(const ct_tensor *t);
/* Pointer to the first element (CPU tensors; for CUDA a device pointer). Mind the strides
 * unless ct_is_contiguous(t). */
void *ct_data(const ct_tensor *t);
float *ct_data_f32(const ct_tensor *t);     /* NULL unless float32 */
int64_t *ct_data_i64(const ct_tensor *t);   /* NULL unless int64 */
/* Element at a full index (any strides), as double; for tests and debugging. */
double ct_get(const ct_tensor *t, const int64_t *index);
double ct_item(const ct_tensor *t);         /* the only element of a one-element tensor */
/* Formats "[2, 3]" into buf; returns buf. */
char *ct_shape_str(const ct_tensor *t, char *buf, size_t n);
/* Copies the elements (any strides) to a contiguous host buffer of numel elements. */
ct_status ct_copy_to_host(const ct_tensor *t, void *dst, size_t dst_bytes);
/* The reverse, in place: t's numel elements from a contiguous host buffer (any strides on the
 * CPU; a tensor on a device must be contiguous). Bumps t's version (an in-place write). */
ct_status ct_copy_from_host(ct_tensor *t, const void *src, size_t src_bytes);

/* ---- views (no copy; they share storage and are tracked by autograd) ------------------ */
#define ct_view(t, ...)        ct_view_at(CT_SRC, t, CT_SHAPE(__VA_ARGS__))
#define ct_reshape(t, ...)     ct_reshape_at(CT_SRC, t, CT_SHAPE(__VA_ARGS__))
#define ct_transpose(t, d0, d1) ct_transpose_at(CT_SRC, t, d0, d1)
#define ct_permute(t, ...)     ct_permute_at(CT_SRC, t, CT_SHAPE(__VA_ARGS__))
#define ct_narrow(t, dim, start, len) ct_narrow_at(CT_SRC, t, dim, start, len)
#define ct_select(t, dim, i)   ct_select_at(CT_SRC, t, dim, i)
#define ct_squeeze(t, dim)     ct_squeeze_at(CT_SRC, t, dim)
#define ct_unsqueeze(t, dim)   ct_unsqueeze_at(CT_SRC, t, dim)
#define ct_expand(t, ...)      ct_expand_at(CT_SRC, t, CT_SHAPE(__VA_ARGS__))
#define ct_contiguous(t)       ct_contiguous_at(CT_SRC, t)
#define ct_clone(t)            ct_clone_at(CT_SRC, t)
#define ct_detach(t)           ct_detach_at(CT_SRC, t)

/* view: the layout must allow it (error otherwise). One dim may be -1 (inferred). */
ct_tensor *ct_view_at(ct_src src, ct_tensor *t, int ndim, const int64_t *shape);
/* reshape: a view when the layout allows, else a contiguous copy. */
ct_tensor *ct_reshape_at(ct_src src, ct_tensor *t, int ndim, const int64_t *shape);
ct_tensor *ct_transpose_at(ct_src src, ct_tensor *t, int d0, int d1);
ct_tensor *ct_permute_at(ct_src src, ct_tensor *t, int ndim, const int64_t *perm);
ct_tensor *ct_narrow_at(ct_src src, ct_tensor *t, int dim, int64_t start, int64_t len);
ct_tensor *ct_select_at(ct_src src, ct_tensor *t, int dim, int64_t index);  /* drops dim */
ct_tensor *ct_squeeze_at(ct_src src, ct_tensor *t, int dim);  /* dim must have size 1 */
ct_tensor *ct_unsqueeze_at(ct_src src, ct_tensor *t, int dim);
/* expand: broadcast size-1 dims (and new leading dims) to shape; -1 keeps a size. */
ct_tensor *ct_expand_at(ct_src src, ct_tensor *t, int ndim, const int64_t *shape);
/* contiguous: returns t itself (a new reference in the scope) when already contiguous. */
ct_tensor *ct_contiguous_at(ct_src src, ct_tensor *t);
ct_tensor *ct_clone_at(ct_src src, ct_tensor *t);           /* always copies */
ct_tensor *ct_detach_at(ct_src src, ct_tensor *t);          /* shares data, no graph */

#endif
