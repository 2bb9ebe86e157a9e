/* engine/internal.h — private to engine/: context internals, graph nodes, op definitions
 * and the per-device kernel table. Nothing outside engine/ (and its tests) includes it.
 */
#ifndef CT_INTERNAL_H
#define CT_INTERNAL_H

#include <stdarg.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/tensor.h"

/* ---- context --------------------------------------------------------------------------- */
#define CT_CACHE_BUCKETS 128

typedef struct ct_block { struct ct_block *next; } ct_block;
struct ct_dev_cache;            /* engine/cuda/backend.cu */
struct ct_device_mem_stats;     /* engine/device.h */

struct ct_ctx {
    ct_error last;
    ct_error_handler handler;
    void *handler_ud;
    bool grad_enabled;
    /* scopes: one array of owned references, and the start index of each open scope */
    ct_tensor **owned;
    int64_t n_owned, cap_owned;
    int64_t *scope_start;
    int n_scopes, cap_scopes;      /* scope_start[0] = 0 is the base scope */
    /* iterative release */
    ct_tensor **free_stack;
    int64_t n_free_stack, cap_free_stack;
    bool releasing;
    /* host allocator cache: freed blocks by power-of-two size class */
    ct_block *cache[CT_CACHE_BUCKETS];
    int64_t cache_bytes, cache_limit;
    uint64_t epoch;                /* backward passes so far */
    ct_mem_stats stats;
    /* device allocator cache (engine/cuda/backend.cu), NULL until the context's first device
     * allocation; dev_cache_release(ctx, false) returns its cached blocks to the driver
     * (ct_ctx_empty_cache), (ctx, true) frees everything and the cache itself (ct_ctx_free) */
    struct ct_dev_cache *dev_cache;
    void (*dev_cache_release)(ct_ctx *ctx, bool destroy);
};

/* ---- graph nodes ------------------------------------------------------------------------ */
#define CT_NODE_MAX_OUT 4
#define CT_NODE_MAX_SAVED 4

struct ct_hook {
    ct_grad_hook_fn fn;
    void *userdata;
    struct ct_hook *next;
};

typedef struct ct_op_def {
    const char *name;
    /* Computes gin[i] for the inputs that need it (ct__input_needs_grad), leaving the rest
     * NULL. Runs with grad mode off, inside a scope; results are kept by the engine. */
    ct_status (*backward)(ct_node *n, ct_tensor *const *gout, ct_tensor **gin);
    /* Element-wise broadcasting op: input gradients are summed down to the input's shape. */
    bool reduce_broadcast;
} ct_op_def;

struct ct_node {
    int refcount;
    ct_ctx *ctx;
    const ct_op_def *def;
    ct_src src;
    int n_in;
    ct_tensor **in;                /* the inputs, each retained */
    uint64_t *in_version;
    int n_saved;
    ct_tensor *saved[CT_NODE_MAX_SAVED];   /* extra tensors backward needs (retained) */
    uint64_t saved_version[CT_NODE_MAX_SAVED];
    double sc[4];                  /* scalar arguments of the op */
    int64_t iv[2 * CT_MAX_DIMS];   /* integer arguments of the op */
    int n_out;
    int out_ndim[CT_NODE_MAX_OUT];
    int64_t out_shape[CT_NODE_MAX_OUT][CT_MAX_DIMS];
    ct_dtype out_dtype[CT_NODE_MAX_OUT];
    ct_device out_device[CT_NODE_MAX_OUT];
    ct_hook *out_hooks[CT_NODE_MAX_OUT];
    /* backward bookkeeping */
    ct_tensor *gout[CT_NODE_MAX_OUT];
    bool freed;
    uint64_t epoch;
    int64_t deps;
};

/* ---- per-device kernels -------------------------------------------------------------------
 * Kernels see tensors that the front end (engine/ops_*.c) has already checked: same device,
 * right dtypes, and for element-wise kernels inputs already expanded to the output's shape
 * (stride 0 on broadcast dims). Outputs are freshly allocated and contiguous unless noted. */
typedef enum ct_binop {
    CT_BIN_ADD, CT_BIN_SUB, CT_BIN_MUL, CT_BIN_DIV, CT_BIN_POW, CT_BIN_COUNT
} ct_binop;

typedef enum ct_unop {
    CT_UN_NEG, CT_UN_EXP, CT_UN_LOG, CT_UN_SQRT, CT_UN_TANH, CT_UN_SIGMOID, CT_UN_RELU,
    CT_UN_CLAMP,       /* p0 = lo, p1 = hi */
    CT_UN_ADD_SCALAR,  /* a + p0 */
    CT_UN_MUL_SCALAR,  /* a * p0 */
    CT_UN_POW_SCALAR,  /* a ^ p0 */
    CT_UN_RSUB_SCALAR, /* p0 - a */
    CT_UN_COUNT
} ct_unop;

struct ct_backend {
    const char *name;
    ct_device_type type;
    int (*device_count)(void);
    void *(*alloc)(ct_ctx *ctx, ct_device dev, size_t nbytes);
    void (*free)(ct_ctx *ctx, ct_device dev, void *p, size_t nbytes);
    /* raw byte copies between this device and the host */
    void (*to_host)(void *dst, const void *src, size_t nbytes);
    void (*from_host)(void *dst, const void *src, size_t nbytes);
    /* dst = src (same shape and dtype, any strides; dst may be a view) */
    void (*copy)(ct_tensor *dst, const ct_tensor *src);
    void (*fill)(ct_tensor *dst, double value);                 /* any strides */
    void (*binary)(ct_binop op, ct_tensor *out, const ct_tensor *a, const ct_tensor *b);
    void (*unary)(ct_unop op, ct_tensor *out, const ct_tensor *a, float p0, float p1);
    /* gin = gout * d op(a) / da, given a and the forward result y */
    void (*unary_grad)(ct_unop op, ct_tensor *gin, const ct_tensor *gout, const ct_tensor *a,
                       const ct_tensor *y, float p0, float p1);
    /* in-place t += alpha * x (x broadcast to t's shape already) */
    void (*axpy)(ct_tensor *t, float alpha, const ct_tensor *x);
    /* C = alpha * op(A) op(B) + beta * C, row-major, batched with element strides
     * (stride 0 broadcasts an operand over the batch) */
    void (*gemm)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, int64_t stride_a,
                 const float *b, int64_t ldb, int64_t stride_b, float beta,
                 float *c, int64_t ldc, int64_t stride_c, int64_t batch);
    /* out (keepdim shape: 1 on reduced dims) = sum of a over the reduced dims */
    void (*sum)(ct_tensor *out, const ct_tensor *a);
    /* the groups below are filled in by engine/cpu/ *.c; NULL = unsupported on this device */
    const struct ct_kernels_nn *nn;
    const struct ct_kernels_index *index;
    const struct ct_kernels_layernorm *layernorm;
    const struct ct_kernels_optim *optim;
    const struct ct_kernels_rnn *rnn;       /* engine/kernels_rnn.h */
    /* Device backends run asynchronously and record failures (file:line of the call) instead
     * of returning them; check turns a recorded failure into a ctx error and returns its
     * status (CT_OK when none). Called by ct__storage_new, ct_copy_to_host, ct_get, ct_to.
     * NULL for the CPU. */
    ct_status (*check)(ct_ctx *ctx);
    /* Allocator statistics of ctx on device index `device` (NULL for the CPU). */
    void (*mem_stats)(const ct_ctx *ctx, int device, struct ct_device_mem_stats *out);
};

/* The backend of dev: NULL when not compiled in or when the device index does not exist
 * (ct__device_why says why). */
const ct_backend *ct__backend(ct_device dev);
/* Why dev has no backend: "cuda:1 requested but this machine has 0 CUDA devices (...)" or
 * "this build has no CUDA backend: rebuild with make CUDA=1". Returns buf. */
char *ct__device_why(ct_device dev, char *buf, size_t n);
/* Runs the backend's check hook (CT_OK for the CPU). */
ct_status ct__device_check(ct_ctx *ctx, const ct_backend *be);
/* Copies the bytes of contiguous src into contiguous dst (same dtype and numel) across any
 * two devices (host staging between two CUDA devices). Errors go to dst's ctx. */
ct_status ct__copy_across(ct_tensor *dst, const ct_tensor *src);
/* Points t at storage s (taking a reference; t's old storage is released), with a version
 * above t's old one, so graphs recorded before the swap (a device move) cannot run backward. */
void ct__swap_storage(ct_tensor *t, ct_storage *s);
extern const ct_backend ct_cpu_backend;           /* engine/cpu/backend.c (constant table) */
#ifdef CT_HAVE_CUDA
extern const ct_backend ct_cuda_backend;          /* engine/cuda/backend.cu */
int ct__cuda_device_count(char *why, size_t n);   /* engine/cuda/device.cu (cached) */
void ct__cuda_set_tf32(int device, bool on);      /* the device's cuBLAS math mode */
void ct__cuda_set_bf16(int device, bool on);      /* bf16 GEMM inputs on that device */
bool ct__cuda_tf32(int device);
bool ct__cuda_bf16(int device);
int ct__cuda_device_name(int device, char *buf, size_t n);   /* 0, or a CUDA error (buf: why) */
#endif

/* ---- helpers for op implementations ----------------------------------------------------- */
/* The context of the first non-NULL tensor; NULL if any of the n tensors is NULL. */
ct_ctx *ct__ctx_of(int n, ct_tensor *const *ts);
/* Records an op error: "<op>: <message> (at file:line)". Returns NULL for `return`. */
ct_tensor *ct__op_error(ct_ctx *ctx, ct_src src, const char *op, ct_status s,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Checks all n tensors share a context and device (and float32 if want_f32). */
bool ct__check_same(ct_src src, const char *op, int n, ct_tensor *const *ts, bool want_f32);
/* Normalises a possibly negative dim for ndim dims; false (and an error) if out of range. */
bool ct__dim(ct_src src, const char *op, const ct_tensor *t, int dim, int *out);
void ct__fmt_shape(int ndim, const int64_t *shape, char *buf, size_t n);

/* A new contiguous tensor in the current scope (uninitialised data). */
ct_tensor *ct__new(ct_ctx *ctx, ct_dtype dt, ct_device dev, int ndim, const int64_t *shape);
/* A new contiguous float32 tensor on dev filled with value, in the current scope. */
ct_tensor *ct__full_on(ct_ctx *ctx, ct_device dev, int ndim, const int64_t *shape, double value);
/* A new tensor struct over base's storage with the given layout, in the current scope. */
ct_tensor *ct__view(ct_tensor *base, int ndim, const int64_t *shape, const int64_t *stride,
                    int64_t offset);
/* Hands t's first reference to the innermost scope (false when out of memory). */
bool ct__scope_adopt(ct_ctx *ctx, ct_tensor *t);
/* A new reference to t owned by the current scope, for ops that return their input as it
 * is (contiguous of a contiguous tensor, dropout in eval). NULL + error when out of memory. */
ct_tensor *ct__scope_ref(ct_tensor *t);
/* Takes t (just made, the current scope's newest) away from the scope: the caller now holds
 * its only reference (used for tensors owned by modules, optimizers, ...). Returns t. */
ct_tensor *ct__disown(ct_tensor *t);
/* Like ct__view but owned by nobody yet (refcount 1, not in a scope): for node->saved. */
ct_tensor *ct__alias(ct_tensor *t);
/* An expanded view of t to shape (numpy rules); NULL + error if not broadcastable. */
ct_tensor *ct__broadcast_to(ct_src src, const char *op, ct_tensor *t, int ndim,
                            const int64_t *shape);
/* Broadcast shape of a and b; false + error if incompatible. */
bool ct__broadcast_shape(ct_src src, const char *op, const ct_tensor *a, const ct_tensor *b,
                         int *ndim, int64_t *shape);
void ct__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
int64_t ct__prod(int ndim, const int64_t *shape);

/* Whether an op on these inputs records a node (grad mode on and one needs grad). */
bool ct__needs_grad(ct_ctx *ctx, int n, ct_tensor *const *ins);
/* Creates a node for outputs outs[0..n_out-1], retaining the inputs and setting the
 * outputs' grad_fn. Returns the node (owned by the outputs) for the op to fill sc/iv/saved. */
ct_node *ct__record(ct_src src, const ct_op_def *def, int n_in, ct_tensor *const *ins,
                    int n_out, ct_tensor *const *outs);
/* Saves t (an alias, so saving an op's own output makes no cycle) for backward. */
void ct__save(ct_node *n, ct_tensor *t);
bool ct__input_needs_grad(const ct_node *n, int i);

/* Storage internals */
ct_storage *ct__storage_new(ct_ctx *ctx, ct_device dev, size_t nbytes);
void ct__storage_release(ct_ctx *ctx, ct_storage *s);
void ct__bump_version(ct_tensor *t);
void ct__node_release(ct_node *n);

/* ---- file helpers (engine/fileio.c) ------------------------------------------------------ */
/* Records "name: message" in ctx (when not NULL) and returns s. */
ct_status ct__failf(ct_ctx *ctx, ct_status s, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A printable copy of n bytes for messages (non-printables as \xNN, "..." when cut). */
const char *ct__esc(char *out, size_t cap, const char *in, size_t n);
/* zlib's CRC-32 continued over n bytes of any size (start with crc = 0). */
uint64_t ct__crc32(uint64_t crc, const void *p, size_t n);
/* pread of exactly n bytes: the bytes read (< n at the end of the file) or -1 (errno). */
int64_t ct__pread_full(int fd, void *buf, size_t n, uint64_t off);
/* Whether the host stores numbers little-endian (the byte order of .npy, safetensors and
 * train-state files), and the in-place byte swap of count items of size bytes each. */
bool ct__host_is_le(void);
void ct__swap_bytes(void *p, size_t count, size_t size);
/* t's elements in C order as little-endian bytes (numel * dtype size of them): *bytes points
 * into t itself when it is contiguous host memory on a little-endian host (*owned NULL), else
 * into a copy (*owned, which the caller frees). Errors (memory, a device copy) name path. */
ct_status ct__tensor_le_bytes(ct_ctx *ctx, const char *path, const ct_tensor *t, const void **bytes, void **owned);
/* The atomic writer: ct__wf_open creates path.tmp; ct__wf_write appends (and keeps a CRC-32 of
 * everything written in crc); ct__wf_finish(w, CT_OK) fsyncs, closes and renames it over path
 * (then fsyncs the folder), or with an error status removes the temporary file. An existing
 * file at path is never touched unless the whole write succeeded. Messages name the file. */
typedef struct ct__wfile { ct_ctx *ctx; const char *path; char *tmp; int fd; uint64_t off; uint64_t crc; } ct__wfile;
ct_status ct__wf_open(ct__wfile *w);
ct_status ct__wf_write(ct__wfile *w, const void *p, size_t n);
ct_status ct__wf_finish(ct__wfile *w, ct_status st);

/* Host memory with the context's cache (used by the CPU backend). 64-byte aligned. */
void *ct__host_alloc(ct_ctx *ctx, size_t nbytes);
void ct__host_free(ct_ctx *ctx, void *p, size_t nbytes);

#endif
