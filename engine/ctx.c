/* engine/ctx.c — contexts: errors, grad mode, scopes, reference release, host allocator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

static const char *const status_text[CT_STATUS_COUNT] = {
    [CT_OK] = "ok",
    [CT_E_SHAPE] = "shape error",
    [CT_E_DTYPE] = "dtype error",
    [CT_E_DEVICE] = "device error",
    [CT_E_ARG] = "bad argument",
    [CT_E_STATE] = "invalid state",
    [CT_E_NOMEM] = "out of memory",
    [CT_E_IO] = "I/O error",
    [CT_E_FORMAT] = "bad file format",
    [CT_E_UNSUPPORTED] = "unsupported",
    [CT_E_NULL] = "NULL tensor",
};
_Static_assert(sizeof(status_text) / sizeof(status_text[0]) == CT_STATUS_COUNT,
               "every ct_status needs a text");

const char *ct_status_text(ct_status s) {
    if ((int)s < 0 || s >= CT_STATUS_COUNT) return "unknown status";
    return status_text[s];
}

static void default_handler(const ct_error *err, void *ud) {
    (void)ud;
    fprintf(stderr, "cantor: %s\n", err->msg);
}

ct_ctx *ct_ctx_new(void) {
    ct_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    ctx->handler = default_handler;
    ctx->grad_enabled = true;
    ctx->cap_scopes = 16;
    ctx->scope_start = calloc((size_t)ctx->cap_scopes, sizeof *ctx->scope_start);
    if (!ctx->scope_start) { free(ctx); return NULL; }
    ctx->n_scopes = 1;             /* the base scope */
    ctx->cache_limit = (int64_t)1 << 31;
    return ctx;
}

void ct_ctx_free(ct_ctx *ctx) {
    if (!ctx) return;
    while (ctx->n_scopes > 1) ct_scope_end(ctx);
    ctx->n_scopes = 0;             /* lets the base scope go */
    for (int64_t i = ctx->n_owned; i-- > 0;) ct_release(ctx->owned[i]);
    ctx->n_owned = 0;
    ct_ctx_empty_cache(ctx);
    if (ctx->dev_cache_release) ctx->dev_cache_release(ctx, true);   /* device blocks, then the cache */
    free(ctx->owned);
    free(ctx->scope_start);
    free(ctx->free_stack);
    free(ctx);
}

void ct_ctx_set_error_handler(ct_ctx *ctx, ct_error_handler fn, void *userdata) {
    ctx->handler = fn;
    ctx->handler_ud = userdata;
}

ct_status ct_ctx_status(const ct_ctx *ctx) { return ctx->last.status; }
const char *ct_ctx_error(const ct_ctx *ctx) { return ctx->last.msg; }
void ct_ctx_clear_error(ct_ctx *ctx) { memset(&ctx->last, 0, sizeof ctx->last); }

static ct_status vfail(ct_ctx *ctx, ct_status s, const char *fmt, va_list ap) {
    ctx->last.status = s;
    vsnprintf(ctx->last.msg, sizeof ctx->last.msg, fmt, ap);
    if (ctx->handler) ctx->handler(&ctx->last, ctx->handler_ud);
    return s;
}

ct_status ct_fail(ct_ctx *ctx, ct_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(ctx, s, fmt, ap);
    va_end(ap);
    return s;
}

ct_tensor *ct__op_error(ct_ctx *ctx, ct_src src, const char *op, ct_status s,
                        const char *fmt, ...) {
    char detail[CT_ERROR_MSG_MAX - 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    ct_fail(ctx, s, "%s: %s (at %s:%d)", op, detail, src.file ? src.file : "?", src.line);
    return NULL;
}

bool ct_set_grad_enabled(ct_ctx *ctx, bool enabled) {
    bool was = ctx->grad_enabled;
    ctx->grad_enabled = enabled;
    return was;
}
bool ct_is_grad_enabled(const ct_ctx *ctx) { return ctx->grad_enabled; }

ct_mem_stats ct_ctx_mem_stats(const ct_ctx *ctx) {
    ct_mem_stats s = ctx->stats;
    s.cached_bytes = ctx->cache_bytes;
    return s;
}

/* ---- scopes -------------------------------------------------------------------------- */
static bool grow(void **arr, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return true;
    int64_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* Hands t's first reference to the innermost scope. Returns false when out of memory. */
bool ct__scope_adopt(ct_ctx *ctx, ct_tensor *t) {
    if (!grow((void **)&ctx->owned, &ctx->cap_owned, ctx->n_owned + 1, sizeof(ct_tensor *)))
        return false;
    ctx->owned[ctx->n_owned++] = t;
    return true;
}

ct_tensor *ct__scope_ref(ct_tensor *t) {
    if (!ct__scope_adopt(t->ctx, t)) {
        ct_fail(t->ctx, CT_E_NOMEM, "out of memory growing the scope");
        return NULL;
    }
    t->refcount++;
    return t;
}

ct_tensor *ct__disown(ct_tensor *t) {
    ct_ctx *ctx = t->ctx;
    int64_t start = ctx->scope_start[ctx->n_scopes > 0 ? ctx->n_scopes - 1 : 0];
    if (ctx->n_owned > start && ctx->owned[ctx->n_owned - 1] == t) ctx->n_owned--;
    else t->refcount++;           /* not the scope's newest: take a reference instead */
    return t;
}

void ct_scope_begin(ct_ctx *ctx) {
    if (ctx->n_scopes == ctx->cap_scopes) {
        int nc = ctx->cap_scopes * 2;
        int64_t *p = realloc(ctx->scope_start, (size_t)nc * sizeof *p);
        if (!p) { ct_fail(ctx, CT_E_NOMEM, "scope_begin: out of memory"); return; }
        ctx->scope_start = p;
        ctx->cap_scopes = nc;
    }
    ctx->scope_start[ctx->n_scopes++] = ctx->n_owned;
}

void ct_scope_end(ct_ctx *ctx) {
    if (ctx->n_scopes <= 1) {
        ct_fail(ctx, CT_E_STATE, "scope_end: no scope is open (each ct_scope_end needs a "
                                 "ct_scope_begin; the base scope ends with ct_ctx_free)");
        return;
    }
    int64_t start = ctx->scope_start[--ctx->n_scopes];
    /* newest first, so a graph is taken apart from its end and no release goes deep */
    while (ctx->n_owned > start) ct_release(ctx->owned[--ctx->n_owned]);
}

int ct_scope_depth(const ct_ctx *ctx) { return ctx->n_scopes - 1; }

ct_tensor *ct_keep(ct_tensor *t) {
    if (!t) return NULL;
    ct_ctx *ctx = t->ctx;
    if (ctx->n_scopes <= 1) return t;   /* already in the base scope */
    /* insert a reference just below the innermost scope's start */
    if (!grow((void **)&ctx->owned, &ctx->cap_owned, ctx->n_owned + 1, sizeof(ct_tensor *))) {
        ct_fail(ctx, CT_E_NOMEM, "keep: out of memory");
        return NULL;
    }
    int64_t pos = ctx->scope_start[ctx->n_scopes - 1];
    memmove(&ctx->owned[pos + 1], &ctx->owned[pos],
            (size_t)(ctx->n_owned - pos) * sizeof(ct_tensor *));
    ctx->owned[pos] = t;
    ctx->n_owned++;
    ctx->scope_start[ctx->n_scopes - 1]++;
    t->refcount++;
    return t;
}

ct_tensor *ct_retain(ct_tensor *t) {
    if (t) t->refcount++;
    return t;
}

/* ---- release without recursion ----------------------------------------------------- */
static void free_hooks(ct_hook *h) {
    while (h) { ct_hook *n = h->next; free(h); h = n; }
}

static void push_release(ct_ctx *ctx, ct_tensor *t);

void ct__node_release(ct_node *n) {
    if (!n || --n->refcount > 0) return;
    ct_ctx *ctx = n->ctx;
    if (n->in) for (int i = 0; i < n->n_in; i++) push_release(ctx, n->in[i]);
    for (int i = 0; i < n->n_saved; i++) push_release(ctx, n->saved[i]);
    for (int i = 0; i < n->n_out; i++) {
        push_release(ctx, n->gout[i]);
        free_hooks(n->out_hooks[i]);
    }
    free(n->in);
    free(n->in_version);
    ctx->stats.live_nodes--;
    free(n);
}

static void destroy_tensor(ct_tensor *t) {
    ct_ctx *ctx = t->ctx;
    ct__storage_release(ctx, t->storage);
    push_release(ctx, t->grad);
    push_release(ctx, t->bw_grad);
    free_hooks(t->hooks);
    ct__node_release(t->grad_fn);
    ctx->stats.live_tensors--;
    free(t);
}

static void push_release(ct_ctx *ctx, ct_tensor *t) {
    if (!t) return;
    if (!grow((void **)&ctx->free_stack, &ctx->cap_free_stack, ctx->n_free_stack + 1,
              sizeof(ct_tensor *))) {
        if (--t->refcount == 0) destroy_tensor(t);   /* no memory for the stack: recurse */
        return;
    }
    ctx->free_stack[ctx->n_free_stack++] = t;
}

void ct_release(ct_tensor *t) {
    if (!t) return;
    ct_ctx *ctx = t->ctx;
    push_release(ctx, t);
    if (ctx->releasing) return;           /* the loop below (further up) will get to it */
    ctx->releasing = true;
    while (ctx->n_free_stack > 0) {
        ct_tensor *x = ctx->free_stack[--ctx->n_free_stack];
        if (--x->refcount == 0) destroy_tensor(x);
    }
    ctx->releasing = false;
}

/* ---- host allocator with a per-context cache ------------------------------------------ */
/* Size classes: four per power of two, so a reused block wastes at most 25 %. */
static int size_class(size_t n, size_t *rounded) {
    if (n < 256) n = 256;
    int lg = 63 - __builtin_clzll((unsigned long long)n);   /* 2^lg <= n */
    size_t step = (size_t)1 << (lg - 2);
    size_t r = (n + step - 1) / step * step;
    int sub = (int)((r >> (lg - 2)) - 4);                   /* 0..3, or 4 when r = 2^(lg+1) */
    if (sub == 4) { lg++; sub = 0; }
    *rounded = r;
    return (lg - 8) * 4 + sub;
}

#define CT_CACHE_CLASSES CT_CACHE_BUCKETS
void *ct__host_alloc(ct_ctx *ctx, size_t nbytes) {
    size_t r;
    int c = size_class(nbytes, &r);
    if (c < CT_CACHE_CLASSES && ctx->cache[c]) {
        ct_block *b = ctx->cache[c];
        ctx->cache[c] = b->next;
        ctx->cache_bytes -= (int64_t)r;
        return b;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, r) != 0) return NULL;
    return p;
}

void ct__host_free(ct_ctx *ctx, void *p, size_t nbytes) {
    if (!p) return;
    size_t r;
    int c = size_class(nbytes, &r);
    if (c < CT_CACHE_CLASSES && ctx->cache_bytes + (int64_t)r <= ctx->cache_limit) {
        ct_block *b = p;
        b->next = ctx->cache[c];
        ctx->cache[c] = b;
        ctx->cache_bytes += (int64_t)r;
        return;
    }
    free(p);
}

void ct_ctx_empty_cache(ct_ctx *ctx) {
    for (int c = 0; c < CT_CACHE_CLASSES; c++) {
        ct_block *b = ctx->cache[c];
        while (b) { ct_block *n = b->next; free(b); b = n; }
        ctx->cache[c] = NULL;
    }
    ctx->cache_bytes = 0;
    if (ctx->dev_cache_release) ctx->dev_cache_release(ctx, false);   /* cached device blocks */
}
