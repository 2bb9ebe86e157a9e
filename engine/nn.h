/* engine/nn.h — modules: named parameters, children, train/eval, one flat parameter block.
 *
 * A module owns its parameters (leaf tensors that require grad, kept in the context's base
 * scope by the module's own reference) and its children. Names are hierarchical exactly as
 * PyTorch's state_dict prints them ("rnn.weight_ih_l0", "out.bias", "layers.0.weight").
 *
 * ONE FLAT BLOCK. ct_module_flatten(root) moves every parameter of the tree into one
 * contiguous storage (in ct_module_param_at order) and gives every parameter a gradient that
 * is a view into a second contiguous block of the same layout. The parameter tensors keep
 * their identity (pointers stay valid; only their storage moves). After that, zeroing the
 * gradients is one memset, and clipping, optimizers and checkpoints walk one array
 * (ct_module_flat_params / ct_module_flat_grads). Optimizers flatten the module they are
 * given if it is not flat yet. Adding parameters after flattening un-flattens the root.
 *
 * Ownership: ct_module_free(root) frees the tree (children and parameters). A child added
 * with ct_module_add_child belongs to its parent from then on. ct_module_clone returns a new
 * tree that the caller frees with ct_module_free.
 */
#ifndef CT_NN_H
#define CT_NN_H

#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/tensor.h"

typedef struct ct_module ct_module;

/* A single-input forward, for modules that can sit in a Sequential. src is the caller's
 * file:line (for error messages); rng feeds dropout and may be NULL in eval mode. */
typedef ct_tensor *(*ct_forward_fn)(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);

struct ct_module {
    const char *kind;            /* "Linear", "LSTM", ... (a string constant) */
    ct_ctx *ctx;
    char *name;                  /* name within the parent ("" for a root) */
    ct_module *parent;
    ct_module **children;
    int n_children, cap_children;
    char **param_names;          /* local names ("weight") */
    ct_tensor **params;
    int n_params, cap_params;
    bool training;
    ct_forward_fn forward;       /* NULL if the module has no single-input forward */
    void *impl;                  /* the layer's own state (configuration, ...) */
    size_t impl_size;            /* its size in bytes (ct_module_new's impl_size) */
    void (*free_impl)(void *impl);
    /* Optional, for ct_module_clone (NULL: nothing to do). Called once dst (the clone of src)
     * has its parameters and children and dst->impl holds a byte copy of src->impl. It
     * re-points whatever the impl refers to (its own parameters, its children: ct_module_child)
     * at dst's, or deep-copies it, and returns CT_OK or an
     * error (recorded in dst->ctx; then it must leave nothing for free_impl to free: dst's
     * impl is released with free()). A module whose impl holds pointers MUST set it (the
     * layers of engine/layers.h and models/composer.c do); one with free_impl (its impl owns
     * memory) is cloned only when it has this hook. */
    ct_status (*clone_impl)(ct_module *dst, const ct_module *src);
    /* root only: the flat blocks (NULL until flattened) */
    ct_tensor *flat_params, *flat_grads;
};

/* A bare module (e.g. a model's root). impl_size bytes of zeroed impl are allocated when > 0. */
ct_module *ct_module_new(ct_ctx *ctx, const char *kind, size_t impl_size);
void ct_module_free(ct_module *m);                    /* the tree; NULL is a no-op */
ct_status ct_module_add_child(ct_module *parent, const char *name, ct_module *child);
/* A float32 parameter of the given shape, zero-filled, requires_grad, owned by m. */
ct_tensor *ct_module_add_param(ct_module *m, const char *name, int ndim, const int64_t *shape);
ct_module *ct_module_child(const ct_module *m, const char *name);   /* NULL if absent */
ct_module *ct_module_root(ct_module *m);

/* Parameters of the whole tree in a fixed order (depth first: own parameters, then children
 * in the order added). full_name gets the dotted name. */
int ct_module_param_count(const ct_module *m);
ct_tensor *ct_module_param_at(const ct_module *m, int i, char *full_name, size_t n);
ct_tensor *ct_module_param(const ct_module *m, const char *full_name);   /* NULL if absent */
int64_t ct_module_num_params(const ct_module *m);     /* total number of elements */

void ct_module_train(ct_module *m, bool training);    /* the whole subtree */
void ct_module_zero_grad(ct_module *m);
ct_status ct_module_flatten(ct_module *root);
ct_tensor *ct_module_flat_params(ct_module *root);    /* flattens if needed; NULL on error */
ct_tensor *ct_module_flat_grads(ct_module *root);
/* A deep copy of the tree rooted at m (torch's copy.deepcopy of a module; DataParallel's
 * replicas): the same kinds, names, children, impls (configuration), forward functions and
 * train/eval flags, and every parameter's values (float32) copied onto dev, in storage of its
 * own; requires_grad as in m (gradient hooks are not copied). The clone is a root module (name
 * "") in m's context. When m is a flat root the clone is flat too (one parameter block and a
 * zeroed gradient block on dev, same layout); otherwise its parameters have no gradient yet.
 * Impls are copied byte for byte (impl_size), then each module's clone_impl hook (above)
 * re-points the pointers its impl holds (a layer's weight, a model's children). The caller owns the clone (ct_module_free). NULL + error in
 * m's context: CT_E_DEVICE (dev not available), CT_E_UNSUPPORTED (an impl with free_impl but
 * no clone_impl), CT_E_NOMEM, a device copy's error; nothing is leaked then. NULL for NULL. */
ct_module *ct_module_clone(const ct_module *m, ct_device dev);
/* Calls m->forward; an error if the module has none. */
#define ct_module_forward(m, x, rng) ct_module_forward_at(CT_SRC, m, x, rng)
ct_tensor *ct_module_forward_at(ct_src src, ct_module *m, ct_tensor *x, ct_rng *rng);

#endif
