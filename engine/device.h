/* engine/device.h — devices: naming them ("cpu", "cuda:1"), moving tensors, modules and
 * optimizers between them, and the device allocator's statistics.
 *
 *     ct_device dev;
 *     char why[256];
 *     if (ct_device_parse("cuda:0", &dev, why, sizeof why) != CT_OK) { puts(why); ... }
 *     ct_module_to(model, dev);          // parameters and gradients (one flat block each)
 *     ct_optim_to(opt, dev);             // the optimizer's moments
 *     ct_tensor *x = ct_to(batch, dev);  // differentiable: the gradient flows back to the CPU
 *     ...
 *     ct_copy_to_host(ct_cpu(logits), buf, sizeof buf);   // or ct_copy_to_host directly
 *
 * An op whose operands live on different devices fails with CT_E_DEVICE naming both devices
 * and the call site. A device that is not there (no CUDA build, no driver, index too large)
 * is CT_E_DEVICE with the reason ("cuda:1 requested but this machine has 1 CUDA device
 * (cuda:0)"). Device work runs asynchronously; a failure of a device call is reported, with
 * the file:line of that call, at the next allocation or copy to the host.
 */
#ifndef CT_DEVICE_H
#define CT_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/tensor.h"

#define CT_DEVICE_CUDA(i) ((ct_device){CT_CUDA, (i)})

/* Parses "cpu", "cuda" (= cuda:0) or "cuda:N" (N a decimal index, 0 to 1023, no sign or
 * spaces) into *out. Anything else is CT_E_ARG with a reason in why (may be NULL), e.g.
 * "'gpu' is not a device: expected cpu, cuda or cuda:N". Only the spelling is checked;
 * ct_device_available says whether the device is there. */
ct_status ct_device_parse(const char *s, ct_device *out, char *why, size_t why_n);
/* Whether tensors can live on dev in this build on this machine; when not, why says so. */
bool ct_device_available(ct_device dev, char *why, size_t why_n);
/* What dev is, for logs and reports; returns buf: "cpu", "cuda:0 (NVIDIA H200, 139.8 GiB,
 * compute 9.0)", or "cuda:1 (not available: <why>)". */
char *ct_device_describe(ct_device dev, char *buf, size_t n);

/* A copy of t on dev, recorded in the graph (backward copies the gradient back to t's
 * device); t itself (a new reference in the current scope, as ops do) when t is already
 * there. Works for float32 and int64. */
#define ct_to(t, dev) ct_to_at(CT_SRC, t, dev)
#define ct_cpu(t) ct_to_at(CT_SRC, t, CT_DEVICE_CPU)
ct_tensor *ct_to_at(ct_src src, ct_tensor *t, ct_device dev);

/* Moves every parameter of the tree rooted at root (and every gradient) to dev. A flat root
 * keeps one flat parameter block and one flat gradient block, now on dev; the parameter and
 * gradient tensors keep their identity (pointers stay valid) and become views of the new
 * blocks. Before flattening, each parameter (and its gradient) moves on its own. Views of
 * the old storage made earlier (by the caller) keep the old data; graphs recorded before
 * the move cannot run backward afterwards. On failure the module is left as it was.
 * root must be a root module (ct_module_root). */
ct_status ct_module_to(ct_module *root, ct_device dev);
/* The device of the module's parameters (cpu when it has none). */
ct_device ct_module_device(const ct_module *m);
/* Moves the optimizer's state (momentum buffer, Adam's moments) to dev. Move the module too
 * (either order): ct_optim_step fails with CT_E_DEVICE while they differ. On failure the
 * optimizer is left as it was. */
ct_status ct_optim_to(ct_optim *opt, ct_device dev);

/* Faster, less exact GEMMs on a CUDA device (off by default): TF32 tensor-core math for
 * every float32 product cuBLAS runs there (10 mantissa bits in the products, float32
 * accumulation; PyTorch's torch.backends.cuda.matmul.allow_tf32). The setting belongs to the
 * device's cuBLAS handle, which every context of the process shares. CT_E_DEVICE (and why)
 * when dev is not an available CUDA device; the CPU is always exact (CT_E_ARG). */
ct_status ct_device_set_tf32(ct_device dev, bool on, char *why, size_t why_n);

/* bf16 mixed precision on a CUDA device (off by default), with float32 master weights.
 * WHAT IS bf16: the inputs of every float32 matrix product cuBLAS runs on dev, i.e. ct_matmul
 * and its batched form (so ct_linear and everything built on them), forward and backward,
 * and the GEMMs of the fused LSTM/GRU/RNN layers (input projection, the recurrent product of
 * each step, dx, dW_ih, dW_hh; forward, backward and stepping at batch > 4). Both operands
 * are rounded to bfloat16 (8 significant bits, round to nearest even) into scratch memory,
 * multiplied on the tensor cores with float32 accumulation, and the result is written as
 * float32. WHAT STAYS float32: every tensor (activations are stored in float32: this buys
 * tensor-core GEMM speed, not memory), the parameters, their gradients and the optimizer's
 * state (the master weights: an update smaller than a bf16 ulp is not lost), every
 * element-wise op, reduction, softmax and loss, the recurrent layers' gate math, cell and
 * hidden states, their bias gradients (column sums), the fused sampling step at batch <= 4
 * and its output layer, and everything on the CPU. Turning it off gives float32 math again,
 * bit for bit what it gave before. An element of a product differs from float32's by at
 * most 2^-7 of the sum of |a_ik b_kj| (each operand is off by at most 2^-8 relative; the
 * errors mostly cancel: typically 1e-3 to 1e-2 relative on a layer's output), and bf16
 * keeps float32's exponent range, so no loss scaling is needed.
 * Beside PyTorch: like torch.autocast(device_type='cuda', dtype=torch.bfloat16) around the
 * forward and the loss, with float32 parameters and optimizer, matmuls with bf16 inputs and
 * float32 accumulation, no GradScaler; unlike autocast, cantor stores the products' outputs in
 * float32 (autocast keeps them in bf16, halving their memory and rounding them once more) and
 * runs the recurrent gate math in float32 (autocast also lowers the inputs and weights of
 * cuDNN's fused LSTM/GRU, ATen's AutocastRNN), so cantor's bf16 is closer to float32 and
 * saves no activation memory.
 * With TF32 on as well, bf16 wins for these GEMMs (TF32 then affects none of them). Like TF32
 * the setting belongs to the device and is shared by every context of the process; it is
 * read when a product (or a whole recurrent-layer call) starts. CT_E_DEVICE (and why) when dev
 * is not an available CUDA device; CT_E_ARG for the CPU, which always computes in float32. */
ct_status ct_device_set_bf16(ct_device dev, bool on, char *why, size_t why_n);
/* Whether TF32 / bf16 GEMMs are on for dev: false for the CPU and for a device that is not
 * there (never an error). */
bool ct_device_tf32(ct_device dev);
bool ct_device_bf16(ct_device dev);

/* The device allocator of a context: blocks freed by tensors are kept (by size class, per
 * device) and reused, so a training loop in its steady state calls cudaMalloc no more; they
 * go back to the driver at ct_ctx_empty_cache / ct_ctx_free. */
typedef struct ct_device_mem_stats {
    int64_t in_use_bytes;          /* blocks handed out to tensors (rounded sizes) */
    int64_t cached_bytes;          /* freed blocks kept for reuse */
    int64_t reserved_bytes;        /* in use + cached: what the driver gave this context */
    int64_t peak_reserved_bytes;
    int64_t allocs;                /* allocation requests */
    int64_t cache_hits;            /* requests served from the cache */
    int64_t device_mallocs;        /* cudaMalloc calls (constant in a steady training loop) */
    int64_t device_frees;          /* cudaFree calls */
} ct_device_mem_stats;
/* Statistics of ctx's allocator on dev (all zero for the cpu, or a device never used). */
ct_device_mem_stats ct_device_mem_stats_of(const ct_ctx *ctx, ct_device dev);

#endif
