/* engine/autograd.c — graph recording and backward (iterative, reverse topological). */
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

ct_status ct_set_requires_grad(ct_tensor *t, bool on) {
    if (!t) return CT_E_NULL;
    if (t->grad_fn)
        return ct_fail(t->ctx, CT_E_STATE,
                       "set_requires_grad: the tensor was made by '%s' (at %s:%d); only leaves "
                       "(tensors you created) can change requires_grad; use ct_detach() first",
                       t->grad_fn->def->name, t->grad_fn->src.file, t->grad_fn->src.line);
    if (on && t->dtype != CT_F32)
        return ct_fail(t->ctx, CT_E_DTYPE,
                       "set_requires_grad: only float32 tensors can require gradients (this one "
                       "is %s)", ct_dtype_name(t->dtype));
    t->requires_grad = on;
    return CT_OK;
}

bool ct_requires_grad(const ct_tensor *t) { return t && (t->requires_grad || t->grad_fn); }
bool ct_is_leaf(const ct_tensor *t) { return t && !t->grad_fn; }
ct_tensor *ct_grad(const ct_tensor *t) { return t ? t->grad : NULL; }

void ct_zero_grad(ct_tensor *t) {
    if (t && t->grad) {
        t->grad->storage->backend->fill(t->grad, 0.0);
        ct__bump_version(t->grad);
    }
}

const char *ct_grad_fn_name(const ct_tensor *t) {
    return t && t->grad_fn ? t->grad_fn->def->name : NULL;
}

ct_status ct_register_hook(ct_tensor *t, ct_grad_hook_fn fn, void *userdata) {
    if (!t) return CT_E_NULL;
    if (!fn) return ct_fail(t->ctx, CT_E_ARG, "register_hook: fn is NULL");
    if (!ct_requires_grad(t))
        return ct_fail(t->ctx, CT_E_STATE,
                       "register_hook: the tensor does not require a gradient, so no gradient "
                       "will ever reach the hook; call ct_set_requires_grad(t, true) first");
    ct_hook *h = calloc(1, sizeof *h);
    if (!h) return ct_fail(t->ctx, CT_E_NOMEM, "register_hook: out of memory");
    h->fn = fn;
    h->userdata = userdata;
    ct_hook **list = t->grad_fn ? &t->grad_fn->out_hooks[t->out_index] : &t->hooks;
    while (*list) list = &(*list)->next;
    *list = h;
    return CT_OK;
}

/* ---- recording ------------------------------------------------------------------------- */
bool ct__needs_grad(ct_ctx *ctx, int n, ct_tensor *const *ins) {
    if (!ctx->grad_enabled) return false;
    for (int i = 0; i < n; i++)
        if (ins[i] && ct_requires_grad(ins[i])) return true;
    return false;
}

ct_node *ct__record(ct_src src, const ct_op_def *def, int n_in, ct_tensor *const *ins,
                    int n_out, ct_tensor *const *outs) {
    ct_ctx *ctx = outs[0]->ctx;
    ct_node *n = calloc(1, sizeof *n);
    if (!n) { ct_fail(ctx, CT_E_NOMEM, "%s: out of memory recording the graph", def->name); return NULL; }
    n->in = calloc((size_t)n_in, sizeof *n->in);
    n->in_version = calloc((size_t)n_in, sizeof *n->in_version);
    if (!n->in || !n->in_version) {
        free(n->in); free(n->in_version); free(n);
        ct_fail(ctx, CT_E_NOMEM, "%s: out of memory recording the graph", def->name);
        return NULL;
    }
    n->ctx = ctx;
    n->def = def;
    n->src = src;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        n->in[i] = ct_retain(ins[i]);
        n->in_version[i] = ins[i] ? ins[i]->storage->version : 0;
    }
    n->n_out = n_out;
    for (int o = 0; o < n_out; o++) {
        ct_tensor *t = outs[o];
        n->out_ndim[o] = t->ndim;
        memcpy(n->out_shape[o], t->shape, sizeof t->shape);
        n->out_dtype[o] = t->dtype;
        n->out_device[o] = t->storage->device;
        t->grad_fn = n;
        t->out_index = o;
        n->refcount++;
    }
    ctx->stats.live_nodes++;
    return n;
}

void ct__save(ct_node *n, ct_tensor *t) {
    if (!n || n->n_saved >= CT_NODE_MAX_SAVED) return;
    ct_tensor *a = t ? ct__alias(t) : NULL;
    n->saved_version[n->n_saved] = t ? t->storage->version : 0;
    n->saved[n->n_saved++] = a;
}

bool ct__input_needs_grad(const ct_node *n, int i) {
    return n->in[i] && ct_requires_grad(n->in[i]);
}

int64_t ct_graph_size(const ct_tensor *t) {
    if (!t || !t->grad_fn) return 0;
    ct_ctx *ctx = t->ctx;
    uint64_t mark = ++ctx->epoch;
    int64_t count = 0, top = 0, cap = 64;
    ct_node **stack = malloc((size_t)cap * sizeof *stack);
    if (!stack) return -1;
    stack[top++] = t->grad_fn;
    t->grad_fn->epoch = mark;
    while (top) {
        ct_node *n = stack[--top];
        count++;
        for (int i = 0; i < n->n_in; i++) {
            ct_node *c = n->in[i] ? n->in[i]->grad_fn : NULL;
            if (!c || c->epoch == mark) continue;
            c->epoch = mark;
            if (top == cap) {
                ct_node **p = realloc(stack, (size_t)(cap *= 2) * sizeof *stack);
                if (!p) { free(stack); return -1; }
                stack = p;
            }
            stack[top++] = c;
        }
    }
    free(stack);
    return count;
}

/* ---- backward ---------------------------------------------------------------------------- */
typedef struct vec { void **v; int64_t n, cap; } vec;
static bool vpush(vec *s, void *p) {
    if (s->n == s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 64;
        void **q = realloc(s->v, (size_t)nc * sizeof *q);
        if (!q) return false;
        s->v = q;
        s->cap = nc;
    }
    s->v[s->n++] = p;
    return true;
}

static ct_status freed_error(ct_ctx *ctx, ct_src src, const ct_node *n) {
    return ct_fail(ctx, CT_E_STATE,
                   "backward: the graph through '%s' (created at %s:%d) was already freed by an "
                   "earlier backward; pass retain_graph=true (ct_backward_ex) to the first call "
                   "to run backward twice (at %s:%d)",
                   n->def->name, n->src.file, n->src.line, src.file, src.line);
}

/* Adds g into *slot (which keeps one reference). */
static ct_status accumulate(ct_src src, ct_tensor **slot, ct_tensor *g) {
    if (!*slot) { *slot = ct_retain(g); return CT_OK; }
    ct_tensor *sum = ct_add_at(src, *slot, g);     /* grad mode is off here */
    if (!sum) return ct_ctx_status(g->ctx);
    ct_release(*slot);
    *slot = ct_retain(sum);
    return CT_OK;
}

static ct_tensor *run_hooks(ct_hook *h, ct_tensor *g) {
    for (; h && g; h = h->next) {
        ct_tensor *r = h->fn(g, h->userdata);
        if (r && !ct_same_shape(r, g)) {
            char a[96], b[96];
            ct_fail(g->ctx, CT_E_SHAPE, "gradient hook returned shape %s for a gradient of shape %s",
                    ct_shape_str(r, a, sizeof a), ct_shape_str(g, b, sizeof b));
            return NULL;
        }
        if (r && (!ct_device_eq(r->storage->device, g->storage->device) || r->dtype != g->dtype)) {
            char a[16], b[16];
            ct_fail(g->ctx, r->dtype != g->dtype ? CT_E_DTYPE : CT_E_DEVICE,
                    "gradient hook returned a gradient of dtype %s on %s for "
                    "one of dtype %s on %s (return one of the same dtype on the same device)",
                    ct_dtype_name(r->dtype), ct_device_str(r->storage->device, a, sizeof a),
                    ct_dtype_name(g->dtype), ct_device_str(g->storage->device, b, sizeof b));
            return NULL;
        }
        if (r) g = r;
    }
    return g;
}

static bool shape_eq(int nd, const int64_t *s, const ct_tensor *t) {
    if (nd != t->ndim) return false;
    for (int i = 0; i < nd; i++)
        if (s[i] != t->shape[i]) return false;
    return true;
}

/* Checks (and for broadcasting ops reduces) gin to the input's shape. */
static ct_tensor *fit_grad(ct_node *n, int i, ct_tensor *g) {
    ct_tensor *x = n->in[i];
    if (shape_eq(x->ndim, x->shape, g)) return g;
    if (n->def->reduce_broadcast) {
        ct_tensor *r = ct_sum_to_at(n->src, g, x->ndim, x->shape);
        if (r) return r;
    }
    char a[96], b[96];
    ct_fail(n->ctx, CT_E_SHAPE,
            "backward of '%s' (created at %s:%d): gradient for input %d has shape %s but the "
            "input has shape %s", n->def->name, n->src.file, n->src.line, i,
            ct_shape_str(g, a, sizeof a), ct_shape_str(x, b, sizeof b));
    return NULL;
}

static ct_status check_versions(ct_node *n) {
    for (int i = 0; i < n->n_in + n->n_saved; i++) {
        ct_tensor *t = i < n->n_in ? n->in[i] : n->saved[i - n->n_in];
        uint64_t v = i < n->n_in ? n->in_version[i] : n->saved_version[i - n->n_in];
        if (t && t->storage->version != v)
            return ct_fail(n->ctx, CT_E_STATE,
                           "backward of '%s' (created at %s:%d): a tensor it used was changed in "
                           "place afterwards (version %llu, now %llu), so its gradient would be "
                           "wrong; clone it before changing it, or run backward first",
                           n->def->name, n->src.file, n->src.line, (unsigned long long)v,
                           (unsigned long long)t->storage->version);
    }
    return CT_OK;
}

static void drop_saved(ct_node *n) {
    for (int i = 0; i < n->n_in; i++) { ct_release(n->in[i]); n->in[i] = NULL; }
    for (int i = 0; i < n->n_saved; i++) { ct_release(n->saved[i]); n->saved[i] = NULL; }
    n->freed = true;
}

ct_status ct_backward_at(ct_src src, ct_tensor *root, ct_tensor *grad, bool retain_graph) {
    if (!root) return CT_E_NULL;
    ct_ctx *ctx = root->ctx;
    char s1[96], s2[96];
    if (!ct_requires_grad(root))
        return ct_fail(ctx, CT_E_STATE,
                       "backward: the tensor %s does not require a gradient and has no graph; "
                       "did you forget ct_set_requires_grad on a parameter, or run the forward "
                       "pass with grad mode off? (at %s:%d)",
                       ct_shape_str(root, s1, sizeof s1), src.file, src.line);
    if (grad) {
        if (!ct_same_shape(grad, root))
            return ct_fail(ctx, CT_E_SHAPE, "backward: gradient of shape %s for a tensor of shape %s "
                           "(at %s:%d)", ct_shape_str(grad, s1, sizeof s1),
                           ct_shape_str(root, s2, sizeof s2), src.file, src.line);
        if (!ct_device_eq(grad->storage->device, root->storage->device) || grad->dtype != CT_F32) {
            char d1[16], d2[16];
            return ct_fail(ctx, grad->dtype != CT_F32 ? CT_E_DTYPE : CT_E_DEVICE,
                           "backward: a gradient of dtype %s on %s for a float32 "
                           "tensor on %s; give a float32 gradient on the tensor's device (at %s:%d)",
                           ct_dtype_name(grad->dtype), ct_device_str(grad->storage->device, d1, sizeof d1),
                           ct_device_str(root->storage->device, d2, sizeof d2), src.file, src.line);
        }
    } else if (ct_numel(root) != 1) {
        return ct_fail(ctx, CT_E_SHAPE,
                       "backward: the tensor has shape %s; backward without an explicit gradient "
                       "needs one element (reduce to a loss first, or use ct_backward_ex) (at %s:%d)",
                       ct_shape_str(root, s1, sizeof s1), src.file, src.line);
    }

    bool was = ct_set_grad_enabled(ctx, false);
    ct_scope_begin(ctx);
    ct_status st = CT_OK;
    vec nodes = {0}, ready = {0}, leaves = {0};
    uint64_t mark = ++ctx->epoch;
    ct_tensor *seed = grad ? grad : ct__full_on(ctx, root->storage->device, root->ndim, root->shape, 1.0);
    if (!seed) { st = ct_ctx_status(ctx); goto done; }

    if (!root->grad_fn) {                           /* backward on a leaf */
        root->bw_epoch = mark;
        if (!vpush(&leaves, ct_retain(root))) { ct_release(root); goto nomem; }
        root->bw_grad = ct_retain(seed);
    } else {
        /* 1. collect the nodes and count, for each, the edges that feed it a gradient */
        ct_node *r = root->grad_fn;
        if (r->freed) { st = freed_error(ctx, src, r); goto done; }
        r->epoch = mark;
        r->deps = 0;
        r->refcount++;
        if (!vpush(&nodes, r)) goto nomem;
        for (int64_t k = 0; k < nodes.n; k++) {
            ct_node *n = nodes.v[k];
            for (int i = 0; i < n->n_in; i++) {
                ct_tensor *x = n->in[i];
                if (!x || !ct_requires_grad(x)) continue;
                ct_node *c = x->grad_fn;
                if (!c) {
                    if (x->bw_epoch != mark) {
                        x->bw_epoch = mark;
                        ct_retain(x);
                        if (!vpush(&leaves, x)) { ct_release(x); goto nomem; }
                    }
                    continue;
                }
                if (c->freed) { st = freed_error(ctx, src, c); goto done; }
                if (c->epoch != mark) {
                    c->epoch = mark;
                    c->deps = 0;
                    c->refcount++;
                    if (!vpush(&nodes, c)) { c->refcount--; goto nomem; }
                }
                c->deps++;
            }
        }
        r->gout[root->out_index] = ct_retain(seed);
        if (!vpush(&ready, r)) goto nomem;

        /* 2. Kahn's order: a node runs once every consumer has sent its gradient */
        while (ready.n > 0) {
            ct_node *n = ready.v[--ready.n];
            if ((st = check_versions(n)) != CT_OK) goto done;
            ct_scope_begin(ctx);
            ct_tensor *gout[CT_NODE_MAX_OUT] = {0};
            for (int o = 0; o < n->n_out; o++) {
                ct_tensor *g = n->gout[o];
                if (!g && n->out_dtype[o] == CT_F32)
                    g = ct__full_on(ctx, n->out_device[o], n->out_ndim[o], n->out_shape[o], 0.0);
                if (g && n->out_hooks[o]) g = run_hooks(n->out_hooks[o], g);
                if (!g && n->out_dtype[o] == CT_F32) { st = ct_ctx_status(ctx); ct_scope_end(ctx); goto done; }
                gout[o] = g;
            }
            ct_tensor *gin[64];
            ct_tensor **gi = n->n_in <= 64 ? gin : calloc((size_t)n->n_in, sizeof *gi);
            if (!gi) { ct_scope_end(ctx); goto nomem; }
            memset(gi, 0, sizeof(ct_tensor *) * (size_t)n->n_in);
            st = n->def->backward(n, gout, gi);
            if (st != CT_OK && ct_ctx_status(ctx) == CT_OK)
                ct_fail(ctx, st, "backward of '%s' (created at %s:%d) failed", n->def->name,
                        n->src.file, n->src.line);
            for (int i = 0; st == CT_OK && i < n->n_in; i++) {
                ct_tensor *x = n->in[i];
                if (!gi[i] || !x || !ct_requires_grad(x)) continue;
                ct_tensor *g = fit_grad(n, i, gi[i]);
                if (!g) { st = ct_ctx_status(ctx); break; }
                ct_node *c = x->grad_fn;
                if (c) {
                    if ((st = accumulate(n->src, &c->gout[x->out_index], g)) != CT_OK) break;
                    if (--c->deps == 0 && !vpush(&ready, c)) { st = CT_E_NOMEM; break; }
                } else if ((st = accumulate(n->src, &x->bw_grad, g)) != CT_OK) {
                    break;
                }
            }
            if (gi != gin) free(gi);
            for (int o = 0; o < n->n_out; o++) { ct_release(n->gout[o]); n->gout[o] = NULL; }
            if (!retain_graph) drop_saved(n);
            ct_scope_end(ctx);
            if (st != CT_OK) goto done;
        }
    }

    /* 3. leaves: hooks, then add into ->grad (a tensor of the leaf's own) */
    for (int64_t k = 0; k < leaves.n; k++) {
        ct_tensor *x = leaves.v[k];
        if (!x->bw_grad) continue;
        ct_tensor *g = run_hooks(x->hooks, x->bw_grad);
        if (!g) { st = ct_ctx_status(ctx); goto done; }
        if (!x->grad) {
            ct_tensor *c = ct_clone_at(src, g);
            if (!c) { st = ct_ctx_status(ctx); goto done; }
            c->requires_grad = false;
            x->grad = ct_retain(c);
        } else {
            ct_tensor *gg = g;
            if (!ct_same_shape(gg, x->grad)) { st = CT_E_SHAPE; goto done; }
            x->grad->storage->backend->axpy(x->grad, 1.0f, gg);
            ct__bump_version(x->grad);
        }
    }
    goto done;
nomem:
    st = ct_fail(ctx, CT_E_NOMEM, "backward: out of memory");
done:
    for (int64_t k = 0; k < leaves.n; k++) {
        ct_tensor *x = leaves.v[k];
        ct_release(x->bw_grad);
        x->bw_grad = NULL;
        ct_release(x);
    }
    for (int64_t k = 0; k < nodes.n; k++) {
        ct_node *n = nodes.v[k];
        for (int o = 0; o < n->n_out; o++) { ct_release(n->gout[o]); n->gout[o] = NULL; }
        ct__node_release(n);
    }
    free(nodes.v);
    free(ready.v);
    free(leaves.v);
    ct_scope_end(ctx);
    ct_set_grad_enabled(ctx, was);
    return st;
}
