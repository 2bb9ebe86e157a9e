/* engine/autograd.h — define-by-run automatic differentiation.
 *
 * An op records a graph node only when grad mode is on (ct_set_grad_enabled) and one of its
 * inputs requires a gradient. ct_backward walks the recorded graph from a tensor back to
 * the leaves in reverse topological order, without recursion, and adds each leaf's gradient
 * into its ->grad (a tensor owned by the leaf, kept across scopes). Unless retain_graph is
 * asked for, the graph's saved tensors are freed on the way, and a second backward through
 * it is an error that names the op and the line that created it.
 */
#ifndef CT_AUTOGRAD_H
#define CT_AUTOGRAD_H

#include "engine/tensor.h"

/* Marks a float32 leaf as a parameter (or not). Error on a non-leaf or an int64 tensor. */
ct_status ct_set_requires_grad(ct_tensor *t, bool on);
bool ct_requires_grad(const ct_tensor *t);
bool ct_is_leaf(const ct_tensor *t);
ct_tensor *ct_grad(const ct_tensor *t);            /* NULL until a backward reached t */
void ct_zero_grad(ct_tensor *t);                   /* sets ->grad to zeros, keeps the buffer */

/* Backward from a one-element tensor (gradient 1). */
#define ct_backward(t) ct_backward_at(CT_SRC, t, NULL, false)
/* Backward with an explicit output gradient of t's shape (NULL: t must have one element),
 * optionally keeping the graph for another backward. */
#define ct_backward_ex(t, grad, retain_graph) ct_backward_at(CT_SRC, t, grad, retain_graph)
ct_status ct_backward_at(ct_src src, ct_tensor *t, ct_tensor *grad, bool retain_graph);

/* A gradient hook sees the gradient flowing into t during backward (for a leaf: the
 * gradient of this backward, before it is added into ->grad). Return NULL to keep it, or a
 * tensor of the same shape to use instead (e.g. ct_mul_scalar(grad, 0.5f)). Do not write
 * into grad itself: it may be shared. Hooks run in the order registered. */
typedef ct_tensor *(*ct_grad_hook_fn)(ct_tensor *grad, void *userdata);
ct_status ct_register_hook(ct_tensor *t, ct_grad_hook_fn fn, void *userdata);

/* Number of nodes reachable from t's graph (0 for a leaf): for tests and debugging. */
int64_t ct_graph_size(const ct_tensor *t);
/* The name of the op that made t ("mul", ...) or NULL for a leaf. */
const char *ct_grad_fn_name(const ct_tensor *t);

#endif
