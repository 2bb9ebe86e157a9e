/* engine/module.c — the module tree, hierarchical parameter names, the flat parameter block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/nn.h"

ct_module *ct_module_new(ct_ctx *ctx, const char *kind, size_t impl_size) {
    ct_module *m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    m->kind = kind;
    m->ctx = ctx;
    m->name = strdup("");
    m->training = true;
    m->impl_size = impl_size;
    if (impl_size > 0) m->impl = calloc(1, impl_size);
    if (!m->name || (impl_size > 0 && !m->impl)) {
        free(m->name);
        free(m->impl);
        free(m);
        goto nomem;
    }
    return m;
nomem:
    ct_fail(ctx, CT_E_NOMEM, "module_new(%s): out of memory", kind);
    return NULL;
}

static void unflatten(ct_module *root) {
    ct_release(root->flat_params);
    ct_release(root->flat_grads);
    root->flat_params = root->flat_grads = NULL;
}

void ct_module_free(ct_module *m) {
    if (!m) return;
    for (int i = 0; i < m->n_children; i++) ct_module_free(m->children[i]);
    for (int i = 0; i < m->n_params; i++) {
        ct_release(m->params[i]);
        free(m->param_names[i]);
    }
    unflatten(m);
    if (m->free_impl) m->free_impl(m->impl);
    else free(m->impl);
    free(m->children);
    free(m->params);
    free(m->param_names);
    free(m->name);
    free(m);
}

ct_module *ct_module_root(ct_module *m) {
    while (m && m->parent) m = m->parent;
    return m;
}

static bool valid_name(const char *name) {
    if (!name || !*name) return false;
    for (const char *p = name; *p; p++)
        if (*p == '.' || *p == ' ') return false;
    return true;
}

ct_status ct_module_add_child(ct_module *parent, const char *name, ct_module *child) {
    if (!parent || !child) return CT_E_NULL;
    if (!valid_name(name))
        return ct_fail(parent->ctx, CT_E_ARG, "module_add_child: name '%s' must be non-empty "
                       "without '.' or spaces", name ? name : "(null)");
    if (child->parent)
        return ct_fail(parent->ctx, CT_E_STATE, "module_add_child: the %s module is already "
                       "the child '%s' of another module", child->kind, child->name);
    if (ct_module_child(parent, name))
        return ct_fail(parent->ctx, CT_E_ARG, "module_add_child: %s already has a child '%s'",
                       parent->kind, name);
    if (parent->n_children == parent->cap_children) {
        int nc = parent->cap_children ? parent->cap_children * 2 : 4;
        ct_module **p = realloc(parent->children, (size_t)nc * sizeof *p);
        if (!p) return ct_fail(parent->ctx, CT_E_NOMEM, "module_add_child: out of memory");
        parent->children = p;
        parent->cap_children = nc;
    }
    char *dup = strdup(name);
    if (!dup) return ct_fail(parent->ctx, CT_E_NOMEM, "module_add_child: out of memory");
    free(child->name);
    child->name = dup;
    child->parent = parent;
    parent->children[parent->n_children++] = child;
    unflatten(ct_module_root(parent));
    unflatten(child);
    return CT_OK;
}

ct_module *ct_module_child(const ct_module *m, const char *name) {
    for (int i = 0; m && i < m->n_children; i++)
        if (strcmp(m->children[i]->name, name) == 0) return m->children[i];
    return NULL;
}

/* Appends t as parameter `name` of m, which takes over the caller's reference to t (one the
 * caller owns, not a scope's). false + error in m's ctx; t is released then. */
static bool push_param(ct_module *m, const char *name, ct_tensor *t) {
    if (m->n_params == m->cap_params) {
        int nc = m->cap_params ? m->cap_params * 2 : 4;
        ct_tensor **p = realloc(m->params, (size_t)nc * sizeof *p);
        char **q = p ? realloc(m->param_names, (size_t)nc * sizeof *q) : NULL;
        if (p) m->params = p;
        if (!p || !q) {
            ct_release(t);
            ct_fail(m->ctx, CT_E_NOMEM, "module_add_param: out of memory");
            return false;
        }
        m->param_names = q;
        m->cap_params = nc;
    }
    char *dup = strdup(name);
    if (!dup) {
        ct_release(t);
        ct_fail(m->ctx, CT_E_NOMEM, "module_add_param: out of memory");
        return false;
    }
    m->params[m->n_params] = t;
    m->param_names[m->n_params++] = dup;
    unflatten(ct_module_root(m));
    return true;
}

ct_tensor *ct_module_add_param(ct_module *m, const char *name, int ndim, const int64_t *shape) {
    if (!m) return NULL;
    if (!valid_name(name)) {
        ct_fail(m->ctx, CT_E_ARG, "module_add_param: name '%s' must be non-empty without '.'",
                name ? name : "(null)");
        return NULL;
    }
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->param_names[i], name) == 0) {
            ct_fail(m->ctx, CT_E_ARG, "module_add_param: %s already has a parameter '%s'",
                    m->kind, name);
            return NULL;
        }
    ct_tensor *t = ct_zeros(m->ctx, ndim, shape);
    if (!t) return NULL;
    ct_set_requires_grad(t, true);
    return push_param(m, name, ct__disown(t)) ? t : NULL;
}

/* ---- walking the tree --------------------------------------------------------------- */
typedef struct walk { int target, seen; ct_tensor *found; char *name; size_t n; } walk;

static bool visit(const ct_module *m, const char *prefix, walk *w) {
    char own[512];
    for (int i = 0; i < m->n_params; i++, w->seen++) {
        if (w->seen != w->target) continue;
        w->found = m->params[i];
        if (w->name) snprintf(w->name, w->n, "%s%s", prefix, m->param_names[i]);
        return true;
    }
    for (int c = 0; c < m->n_children; c++) {
        snprintf(own, sizeof own, "%s%s.", prefix, m->children[c]->name);
        if (visit(m->children[c], own, w)) return true;
    }
    return false;
}

int ct_module_param_count(const ct_module *m) {
    if (!m) return 0;
    int n = m->n_params;
    for (int c = 0; c < m->n_children; c++) n += ct_module_param_count(m->children[c]);
    return n;
}

ct_tensor *ct_module_param_at(const ct_module *m, int i, char *full_name, size_t n) {
    if (!m || i < 0) return NULL;
    walk w = {i, 0, NULL, full_name, n};
    visit(m, "", &w);
    return w.found;
}

ct_tensor *ct_module_param(const ct_module *m, const char *full_name) {
    char name[512];
    int n = ct_module_param_count(m);
    for (int i = 0; i < n; i++) {
        ct_tensor *t = ct_module_param_at(m, i, name, sizeof name);
        if (strcmp(name, full_name) == 0) return t;
    }
    return NULL;
}

int64_t ct_module_num_params(const ct_module *m) {
    int64_t total = 0;
    int n = ct_module_param_count(m);
    for (int i = 0; i < n; i++) total += ct_numel(ct_module_param_at(m, i, NULL, 0));
    return total;
}

void ct_module_train(ct_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (int c = 0; c < m->n_children; c++) ct_module_train(m->children[c], training);
}

void ct_module_zero_grad(ct_module *m) {
    if (!m) return;
    ct_module *root = ct_module_root(m);
    if (root == m && m->flat_grads) {
        ct_inplace_fill(m->flat_grads, 0.0f);
        return;
    }
    int n = ct_module_param_count(m);
    for (int i = 0; i < n; i++) ct_zero_grad(ct_module_param_at(m, i, NULL, 0));
}

/* ---- the flat block ---------------------------------------------------------------------- */
/* Points t (a contiguous tensor of some shape) at [off, off + numel) of flat's storage. */
static void repoint(ct_tensor *t, ct_tensor *flat, int64_t off) {
    ct_ctx *ctx = t->ctx;
    flat->storage->refcount++;
    ct__storage_release(ctx, t->storage);
    t->storage = flat->storage;
    t->offset = off;
    ct__contiguous_strides(t->ndim, t->shape, t->stride);
}

ct_status ct_module_flatten(ct_module *root) {
    if (!root) return CT_E_NULL;
    if (root->parent)
        return ct_fail(root->ctx, CT_E_ARG, "module_flatten: '%s' is a child; flatten the root "
                       "module (ct_module_root)", root->name);
    if (root->flat_params && root->flat_grads) return CT_OK;
    unflatten(root);
    ct_ctx *ctx = root->ctx;
    int n = ct_module_param_count(root);
    int64_t total = ct_module_num_params(root);
    ct_device dev = n > 0 ? ct_module_param_at(root, 0, NULL, 0)->storage->device : CT_DEVICE_CPU;
    ct_tensor *fp = ct__new(ctx, CT_F32, dev, 1, &total);
    if (!fp) return ct_ctx_status(ctx);
    root->flat_params = ct__disown(fp);
    ct_tensor *fg = ct__new(ctx, CT_F32, dev, 1, &total);
    if (!fg) return ct_ctx_status(ctx);
    root->flat_grads = ct__disown(fg);
    ct_scope_begin(ctx);
    fg->storage->backend->fill(fg, 0.0);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        ct_tensor *p = ct_module_param_at(root, i, NULL, 0);
        int64_t k = ct_numel(p);
        ct_tensor *dst = ct__view(fp, p->ndim, p->shape, p->stride, off);
        ct__contiguous_strides(p->ndim, p->shape, dst->stride);
        dst->storage->backend->copy(dst, p);
        ct_tensor *g = ct__alias(dst);           /* the gradient view, owned by p */
        repoint(g, fg, off);
        if (p->grad) {
            g->storage->backend->copy(g, p->grad);
            ct_release(p->grad);
        }
        p->grad = g;
        repoint(p, fp, off);
        off += k;
    }
    ct_scope_end(ctx);
    /* the parameters' old blocks went to the allocator's cache, where nothing of the same
     * sizes will ask for them again: give them (and the cache with them) back to the system
     * now rather than carry them through training (flattening happens once) */
    ct_ctx_empty_cache(ctx);
    return CT_OK;
}

ct_tensor *ct_module_flat_params(ct_module *root) {
    return ct_module_flatten(root) == CT_OK ? root->flat_params : NULL;
}
ct_tensor *ct_module_flat_grads(ct_module *root) {
    return ct_module_flatten(root) == CT_OK ? root->flat_grads : NULL;
}

ct_tensor *ct_module_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng) {
    if (!m || !x) return NULL;
    if (!m->forward)
        return ct__op_error(m->ctx, src, "module_forward", CT_E_UNSUPPORTED,
                            "the %s module '%s' has no single-input forward", m->kind, m->name);
    return m->forward(src, m, x, rng);
}

/* ---- moving to a device (engine/device.h) ---------------------------------------------------- */
#include "engine/device.h"

ct_device ct_module_device(const ct_module *m) {
    ct_tensor *p = m ? ct_module_param_at(m, 0, NULL, 0) : NULL;
    return p ? p->storage->device : CT_DEVICE_CPU;
}

/* A copy of t's elements, contiguous, on dev, owned by the caller (not in a scope). */
static ct_tensor *moved_copy(ct_tensor *t, ct_device dev) {
    ct_ctx *ctx = t->ctx;
    ct_scope_begin(ctx);
    bool was = ct_set_grad_enabled(ctx, false);
    ct_tensor *c = ct_contiguous(t);
    ct_tensor *out = c ? ct__new(ctx, t->dtype, dev, t->ndim, t->shape) : NULL;
    if (out && ct__copy_across(out, c) != CT_OK) out = NULL;
    if (out) ct_retain(out);
    ct_set_grad_enabled(ctx, was);
    ct_scope_end(ctx);
    return out;
}

/* t now reads storage s (a new block) at its present offset and strides. */
ct_status ct_module_to(ct_module *root, ct_device dev) {
    if (!root) return CT_E_NULL;
    ct_ctx *ctx = root->ctx;
    char d[24], why[320];
    if (root->parent)
        return ct_fail(ctx, CT_E_ARG, "module_to: the %s module '%s' is a child; move the root "
                       "module (ct_module_root), whose flat block holds every parameter",
                       root->kind, root->name);
    if (!ct__backend(dev))
        return ct_fail(ctx, CT_E_DEVICE, "module_to(%s): %s; the module stays where it is",
                       ct_device_str(dev, d, sizeof d), ct__device_why(dev, why, sizeof why));
    int n = ct_module_param_count(root);
    if (root->flat_params && root->flat_grads) {
        if (ct_device_eq(root->flat_params->storage->device, dev) &&
            ct_device_eq(root->flat_grads->storage->device, dev))
            return CT_OK;
        ct_tensor *fp = moved_copy(root->flat_params, dev);
        ct_tensor *fg = fp ? moved_copy(root->flat_grads, dev) : NULL;
        if (!fp || !fg) {
            ct_release(fp);
            return ct_ctx_status(ctx) ? ct_ctx_status(ctx) : CT_E_DEVICE;
        }
        ct_storage *old_p = root->flat_params->storage, *old_g = root->flat_grads->storage;
        for (int i = 0; i < n; i++) {
            ct_tensor *p = ct_module_param_at(root, i, NULL, 0);
            if (p->storage == old_p) ct__swap_storage(p, fp->storage);
            if (p->grad && p->grad->storage == old_g) ct__swap_storage(p->grad, fg->storage);
        }
        ct__swap_storage(root->flat_params, fp->storage);
        ct__swap_storage(root->flat_grads, fg->storage);
        ct_release(fp);
        ct_release(fg);
        return CT_OK;
    }
    /* not flat: every parameter (and gradient) on its own; all copies first, then the swap */
    ct_tensor **np = calloc((size_t)(2 * n + 1), sizeof *np);
    if (!np) return ct_fail(ctx, CT_E_NOMEM, "module_to: out of memory");
    ct_status st = CT_OK;
    for (int i = 0; i < n && st == CT_OK; i++) {
        ct_tensor *p = ct_module_param_at(root, i, NULL, 0);
        if (!ct_device_eq(p->storage->device, dev) && !(np[2 * i] = moved_copy(p, dev))) st = CT_E_DEVICE;
        if (st == CT_OK && p->grad && !ct_device_eq(p->grad->storage->device, dev) &&
            !(np[2 * i + 1] = moved_copy(p->grad, dev)))
            st = CT_E_DEVICE;
    }
    for (int i = 0; i < n; i++) {
        ct_tensor *p = ct_module_param_at(root, i, NULL, 0);
        for (int k = 0; k < 2; k++) {
            ct_tensor *c = np[2 * i + k], *t = k == 0 ? p : p->grad;
            if (!c) continue;
            if (st == CT_OK) {
                ct__swap_storage(t, c->storage);
                t->offset = 0;
                ct__contiguous_strides(t->ndim, t->shape, t->stride);
            }
            ct_release(c);
        }
    }
    free(np);
    if (st != CT_OK) return ct_ctx_status(ctx) ? ct_ctx_status(ctx) : st;
    return CT_OK;
}

/* ---- deep copies (ct_module_clone) ------------------------------------------------------------ */
/* The clone of src (its own parameters and children, recursively) on dev; NULL + error. */
static ct_module *clone_tree(const ct_module *src, ct_device dev) {
    ct_ctx *ctx = src->ctx;
    if (src->free_impl && !src->clone_impl) {
        ct_fail(ctx, CT_E_UNSUPPORTED, "module_clone: the %s module '%s' owns memory in its impl "
                "(it has free_impl) but has no clone_impl hook to copy it (engine/nn.h)",
                src->kind, src->name);
        return NULL;
    }
    ct_module *m = ct_module_new(ctx, src->kind, src->impl_size);
    if (!m) return NULL;
    if (src->impl_size > 0 && src->impl) memcpy(m->impl, src->impl, src->impl_size);
    m->training = src->training;
    m->forward = src->forward;
    m->clone_impl = src->clone_impl;
    for (int i = 0; i < src->n_params; i++) {
        ct_tensor *p = src->params[i];
        ct_tensor *c = moved_copy(p, dev);   /* contiguous, on dev, ours */
        if (!c) goto fail;
        ct_set_requires_grad(c, p->requires_grad);
        if (!push_param(m, src->param_names[i], c)) goto fail;
    }
    for (int i = 0; i < src->n_children; i++) {
        ct_module *c = clone_tree(src->children[i], dev);
        if (!c) goto fail;
        if (ct_module_add_child(m, src->children[i]->name, c) != CT_OK) {
            ct_module_free(c);
            goto fail;
        }
    }
    if (src->clone_impl && src->clone_impl(m, src) != CT_OK) {
        if (ct_ctx_status(ctx) == CT_OK)
            ct_fail(ctx, CT_E_STATE, "module_clone: the clone_impl hook of the %s module '%s' failed",
                    src->kind, src->name);
        goto fail;
    }
    m->free_impl = src->free_impl;   /* only now does the impl own what free_impl frees */
    return m;
fail:
    ct_module_free(m);
    return NULL;
}

ct_module *ct_module_clone(const ct_module *m, ct_device dev) {
    if (!m) return NULL;
    ct_ctx *ctx = m->ctx;
    char d[24], why[320];
    if (!ct__backend(dev)) {
        ct_fail(ctx, CT_E_DEVICE, "module_clone(%s): %s", ct_device_str(dev, d, sizeof d),
                ct__device_why(dev, why, sizeof why));
        return NULL;
    }
    ct_module *c = clone_tree(m, dev);
    if (!c) {
        if (ct_ctx_status(ctx) == CT_OK) ct_fail(ctx, CT_E_NOMEM, "module_clone: out of memory");
        return NULL;
    }
    if (!m->parent && m->flat_params && m->flat_grads && ct_module_flatten(c) != CT_OK) {
        ct_module_free(c);
        return NULL;
    }
    return c;
}
