/* engine/device.c — device names, availability, the differentiable copy between devices
 * (ct_to) and the device allocator's statistics. ct_module_to is in engine/module.c and
 * ct_optim_to in engine/optim.c (they need those files' private structures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/device.h"
#include "engine/internal.h"

#define MAX_INDEX 1023

static ct_status parse_fail(const char *s, char *why, size_t n, const char *detail) {
    if (why && n) {
        char shown[40];
        size_t len = strlen(s);
        ct__esc(shown, sizeof shown, s, len);
        snprintf(why, n, "'%s' is not a device: %sexpected cpu, cuda or cuda:N (N = 0 to %d)", shown,
                 detail, MAX_INDEX);
    }
    return CT_E_ARG;
}

ct_status ct_device_parse(const char *s, ct_device *out, char *why, size_t why_n) {
    if (why && why_n) why[0] = 0;
    if (!s) {
        if (why && why_n) snprintf(why, why_n, "no device name given (NULL): expected cpu, cuda or cuda:N");
        return CT_E_ARG;
    }
    ct_device d = CT_DEVICE_CPU;
    if (strcmp(s, "cpu") == 0) {
        d = CT_DEVICE_CPU;
    } else if (strcmp(s, "cuda") == 0) {
        d = CT_DEVICE_CUDA(0);
    } else if (strncmp(s, "cuda:", 5) == 0) {
        const char *p = s + 5;
        if (*p == '-') return parse_fail(s, why, why_n, "a device index is 0 or more; ");
        if (!*p) return parse_fail(s, why, why_n, "the index after 'cuda:' is missing; ");
        long v = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9') return parse_fail(s, why, why_n, "the index must be decimal digits; ");
            v = v * 10 + (*p - '0');
            if (v > MAX_INDEX) return parse_fail(s, why, why_n, "the index is too large; ");
        }
        d = CT_DEVICE_CUDA((int)v);
    } else {
        return parse_fail(s, why, why_n, "");
    }
    if (out) *out = d;
    return CT_OK;
}

bool ct_device_available(ct_device dev, char *why, size_t why_n) {
    if (why && why_n) why[0] = 0;
    if (ct__backend(dev)) return true;
    if (why && why_n) ct__device_why(dev, why, why_n);
    return false;
}

char *ct_device_describe(ct_device dev, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    char name[24], info[320] = "";
    ct_device_str(dev, name, sizeof name);
    if (dev.type == CT_CPU) {
        snprintf(buf, n, "%s", name);
        return buf;
    }
    if (!ct_device_available(dev, info, sizeof info)) {
        snprintf(buf, n, "%s (not available: %s)", name, info);
        return buf;
    }
#ifdef CT_HAVE_CUDA
    const bool named = ct__cuda_device_name(dev.index, info, sizeof info) == 0;
    snprintf(buf, n, "%s (%s%s)", name, named ? "" : "no properties: ", info);
    return buf;
#endif
    snprintf(buf, n, "%s (%s)", name, info);
    return buf;
}

/* ---- ct_to ----------------------------------------------------------------------------------- */
static ct_status to_bw(ct_node *n, ct_tensor *const *g, ct_tensor **gin) {
    gin[0] = ct_to_at(n->src, g[0], n->in[0]->storage->device);
    return gin[0] ? CT_OK : ct_ctx_status(n->ctx);
}
static const ct_op_def to_def = {"to", to_bw, false};

ct_tensor *ct_to_at(ct_src src, ct_tensor *t, ct_device dev) {
    if (!t) return NULL;
    ct_ctx *ctx = t->ctx;
    ct_device from = t->storage->device;
    char d1[24], d2[24];
    if (!ct__backend(dev)) {
        char why[320];
        return ct__op_error(ctx, src, "to", CT_E_DEVICE, "cannot move %s to %s: %s",
                            ct_device_str(from, d1, sizeof d1), ct_device_str(dev, d2, sizeof d2),
                            ct__device_why(dev, why, sizeof why));
    }
    if (ct_device_eq(from, dev)) return ct__scope_ref(t);
    /* a dense source on its own device (no graph: only the result is recorded) */
    ct_tensor *dense = NULL;
    const ct_tensor *srct = t;
    if (!ct_is_contiguous(t)) {
        dense = ct__new(ctx, t->dtype, from, t->ndim, t->shape);
        if (!dense) return NULL;
        ct__disown(dense);                  /* ours alone: released below, not at scope end */
        t->storage->backend->copy(dense, t);
        srct = dense;
    }
    ct_tensor *out = ct__new(ctx, t->dtype, dev, t->ndim, t->shape);
    ct_status st = out ? ct__copy_across(out, srct) : ct_ctx_status(ctx);
    ct_release(dense);
    if (st != CT_OK) {
        /* ct__copy_across recorded the device's message; name the op and the call site too */
        char msg[CT_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", ct_ctx_error(ctx));
        return ct__op_error(ctx, src, "to", st, "copying %s to %s: %s",
                            ct_device_str(from, d1, sizeof d1), ct_device_str(dev, d2, sizeof d2), msg);
    }
    if (ct__needs_grad(ctx, 1, &t) && !ct__record(src, &to_def, 1, &t, 1, &out)) return NULL;
    return out;
}

/* ---- statistics ------------------------------------------------------------------------------ */
ct_device_mem_stats ct_device_mem_stats_of(const ct_ctx *ctx, ct_device dev) {
    ct_device_mem_stats s;
    memset(&s, 0, sizeof s);
    const ct_backend *be = ctx ? ct__backend(dev) : NULL;
    if (be && be->mem_stats) be->mem_stats(ctx, dev.index, &s);
    return s;
}

/* The GEMM math modes of a CUDA device: TF32 (bf16 false) or bf16 inputs (bf16 true). */
static ct_status set_gemm_mode(ct_device dev, bool bf16, bool on, char *why, size_t why_n) {
    if (why && why_n) why[0] = 0;
    if (dev.type != CT_CUDA) {
        if (why && why_n)
            snprintf(why, why_n, "%s; the CPU computes in float32",
                     bf16 ? "bf16 mixed precision is a CUDA mode" : "TF32 is a CUDA math mode");
        return CT_E_ARG;
    }
    if (!ct_device_available(dev, why, why_n)) return CT_E_DEVICE;
#ifdef CT_HAVE_CUDA
    if (bf16) ct__cuda_set_bf16(dev.index, on);
    else ct__cuda_set_tf32(dev.index, on);
    return CT_OK;
#else
    (void)on;
    return CT_E_DEVICE;   /* not reached: no device is available without CUDA */
#endif
}

ct_status ct_device_set_tf32(ct_device dev, bool on, char *why, size_t why_n) {
    return set_gemm_mode(dev, false, on, why, why_n);
}

ct_status ct_device_set_bf16(ct_device dev, bool on, char *why, size_t why_n) {
    return set_gemm_mode(dev, true, on, why, why_n);
}

bool ct_device_tf32(ct_device dev) {
    if (dev.type != CT_CUDA || !ct_device_available(dev, NULL, 0)) return false;
#ifdef CT_HAVE_CUDA
    return ct__cuda_tf32(dev.index);
#else
    return false;
#endif
}

bool ct_device_bf16(ct_device dev) {
    if (dev.type != CT_CUDA || !ct_device_available(dev, NULL, 0)) return false;
#ifdef CT_HAVE_CUDA
    return ct__cuda_bf16(dev.index);
#else
    return false;
#endif
}
