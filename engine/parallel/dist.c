/* engine/parallel/dist.c — the process world: the launcher's environment, MPI set-up and
 * teardown, and the collectives (fixed-order reductions over MPI_Alltoallv + MPI_Allgatherv,
 * or MPI_Allreduce). A single-process world never calls MPI. See dist.h. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/parallel/dist_internal.h"

/* ---- the launcher's environment ------------------------------------------------------------- */
/* -1: absent; -2: malformed (message in ctx); else the value. */
static int env_int(ct_ctx *ctx, const char *name, int lo) {
    const char *s = getenv(name);
    if (!s) return -1;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > (1L << 24)) {
        if (ctx)
            ct_fail(ctx, CT_E_ARG, "dist: the launcher's variable %s='%s' is not %s (was this "
                                   "process started by mpirun?)",
                    name, s, lo == 1 ? "a process count >= 1" : "a rank >= 0");
        return -2;
    }
    return (int)v;
}

ct_status ct_dist_launch_env(ct_ctx *ctx, ct_dist_launch *out) {
    if (!out) return ctx ? ct_fail(ctx, CT_E_ARG, "dist_launch_env: out is NULL") : CT_E_ARG;
    ct_dist_launch L = {false, 1, 0, -1, -1, "none"};
    static const char *const pairs[][3] = {
        {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI"},
        {"PMI_SIZE", "PMI_RANK", "PMI"},
    };
    for (int p = 0; p < 2; p++) {
        int size = env_int(ctx, pairs[p][0], 1), rank = env_int(ctx, pairs[p][1], 0);
        if (size == -2 || rank == -2) return CT_E_ARG;
        if (size == -1 && rank == -1) continue;
        if (size == -1 || rank == -1) {
            if (ctx)
                ct_fail(ctx, CT_E_ARG, "dist: %s is set but %s is not; start the processes with "
                                       "mpirun, or unset it",
                        size == -1 ? pairs[p][1] : pairs[p][0], size == -1 ? pairs[p][0] : pairs[p][1]);
            return CT_E_ARG;
        }
        if (rank >= size) {
            if (ctx)
                ct_fail(ctx, CT_E_ARG, "dist: %s=%d is not below %s=%d", pairs[p][1], rank,
                        pairs[p][0], size);
            return CT_E_ARG;
        }
        L.launched = true;
        L.size = size;
        L.rank = rank;
        L.launcher = pairs[p][2];
        break;
    }
    if (L.launched) {
        int lr = env_int(ctx, "OMPI_COMM_WORLD_LOCAL_RANK", 0), ls = env_int(ctx, "OMPI_COMM_WORLD_LOCAL_SIZE", 1);
        if (lr == -2 || ls == -2) return CT_E_ARG;
        if (lr == -1) lr = env_int(ctx, "MPI_LOCALRANKID", 0);
        if (lr == -2) return CT_E_ARG;
        L.local_rank = lr;
        L.local_size = ls;
    } else {
        L.local_rank = 0;
        L.local_size = 1;
    }
    *out = L;
    return CT_OK;
}

/* ---- the world -------------------------------------------------------------------------------------- */
ct_dist_opts ct_dist_defaults(void) {
    ct_dist_opts o;
    memset(&o, 0, sizeof o);
    o.mode = CT_DIST_AUTO;
    o.reduce = CT_DIST_REDUCE_FIXED;
    return o;
}

#ifdef CT_HAVE_MPI
static ct_status mpi_fail(ct_dist *d, int err, const char *what) {
    char s[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) len = snprintf(s, sizeof s, "MPI error %d", err);
    s[len < 0 ? 0 : len > MPI_MAX_ERROR_STRING ? MPI_MAX_ERROR_STRING : len] = '\0';
    return ct_fail(d->ctx, CT_E_IO, "dist: %s failed on rank %d of %d: %s", what, d->rank, d->size, s);
}

/* MPI set-up; on failure the error is in d->ctx. MPI stays initialised after a failure that
 * follows MPI_Init (finalizing would wait for the other ranks; exiting ends the job). */
static ct_status mpi_start(ct_dist *d, const ct_dist_launch *L) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized)
        return ct_fail(d->ctx, CT_E_STATE, "dist: MPI was already finalized in this process (by an "
                                           "earlier ct_dist_free?); MPI starts once per process: "
                                           "keep one ct_dist for the process's whole life");
    if (!inited) {
        int provided = 0;
        int err = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (err != MPI_SUCCESS)
            return ct_fail(d->ctx, CT_E_IO, "dist: MPI_Init_thread failed (error %d) as %s rank %d of %d",
                           err, L->launcher, L->rank, L->size);
        d->owns_mpi = true;
    }
    int err = MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
    if (err != MPI_SUCCESS) {
        d->comm = MPI_COMM_NULL;
        return mpi_fail(d, err, "MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    if (L->launched && (d->size != L->size || d->rank != L->rank))
        return ct_fail(d->ctx, CT_E_STATE, "dist: MPI's world says rank %d of %d but the launcher (%s) "
                                           "said rank %d of %d: was the program started by a "
                                           "different MPI's mpirun?",
                       d->rank, d->size, L->launcher, L->rank, L->size);
    MPI_Comm local;
    err = MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
    if (err != MPI_SUCCESS) return mpi_fail(d, err, "MPI_Comm_split_type");
    MPI_Comm_rank(local, &d->local_rank);
    MPI_Comm_size(local, &d->local_size);
    MPI_Comm_free(&local);
    char ver[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    int len = 0;
    if (MPI_Get_library_version(ver, &len) == MPI_SUCCESS) {
        ver[len < 0 ? 0 : len > MPI_MAX_LIBRARY_VERSION_STRING ? MPI_MAX_LIBRARY_VERSION_STRING : len] = '\0';
        size_t k = strcspn(ver, ",\n");
        ver[k] = '\0';
        snprintf(d->impl, sizeof d->impl, "%.*s", (int)sizeof d->impl - 1, ver);
    } else {
        snprintf(d->impl, sizeof d->impl, "MPI");
    }
    return CT_OK;
}
#endif

ct_dist *ct_dist_new(ct_ctx *ctx, const ct_dist_opts *opts) {
    if (!ctx) return NULL;
    ct_dist_opts o = opts ? *opts : ct_dist_defaults();
    if (o.mode != CT_DIST_AUTO && o.mode != CT_DIST_SINGLE && o.mode != CT_DIST_MPI) {
        ct_fail(ctx, CT_E_ARG, "dist: unknown mode %d (CT_DIST_AUTO, CT_DIST_SINGLE or CT_DIST_MPI)", (int)o.mode);
        return NULL;
    }
    if (o.reduce != CT_DIST_REDUCE_FIXED && o.reduce != CT_DIST_REDUCE_MPI) {
        ct_fail(ctx, CT_E_ARG, "dist: unknown reduce %d (CT_DIST_REDUCE_FIXED or CT_DIST_REDUCE_MPI)", (int)o.reduce);
        return NULL;
    }
    ct_dist_launch L = {false, 1, 0, 0, 1, "none"};
    if (o.mode != CT_DIST_SINGLE && ct_dist_launch_env(ctx, &L) != CT_OK) return NULL;
    const bool want_mpi = o.mode == CT_DIST_MPI || (o.mode == CT_DIST_AUTO && L.launched);
#ifndef CT_HAVE_MPI
    if (want_mpi && (o.mode == CT_DIST_MPI || L.size > 1)) {
        if (L.launched)
            ct_fail(ctx, CT_E_UNSUPPORTED, "dist: started by %s as rank %d of %d, but this build has no "
                                           "MPI (install libopenmpi-dev and rebuild): each process "
                                           "would train alone",
                    L.launcher, L.rank, L.size);
        else
            ct_fail(ctx, CT_E_UNSUPPORTED, "dist: CT_DIST_MPI asked for, but this build has no MPI "
                                           "(install libopenmpi-dev and rebuild)");
        return NULL;
    }
#endif
    ct_dist *d = calloc(1, sizeof *d);
    if (!d) {
        ct_fail(ctx, CT_E_NOMEM, "dist: out of memory");
        return NULL;
    }
    d->ctx = ctx;
    d->reduce = o.reduce;
    d->stage_host = o.stage_through_host;
    d->rank = 0;
    d->size = 1;
    d->local_rank = 0;
    d->local_size = 1;
    d->gpu_device = -1;
    snprintf(d->impl, sizeof d->impl, "single process");
#ifdef CT_HAVE_MPI
    d->comm = MPI_COMM_NULL;
    if (want_mpi) {
        d->mpi = true;
        if (mpi_start(d, &L) != CT_OK) {
            if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
            free(d);
            return NULL;
        }
    }
#else
    (void)want_mpi;
#endif
    return d;
}

void ct_dist_free(ct_dist *d) {
    if (!d) return;
    ct__dist_gpu_free(d);
#ifdef CT_HAVE_MPI
    if (d->mpi && d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    if (d->owns_mpi) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
    }
#endif
    free(d->scratch);
    free(d);
}

void ct_dist_abort(ct_dist *d, int code) {
#ifdef CT_HAVE_MPI
    if (d && d->mpi) MPI_Abort(d->comm != MPI_COMM_NULL ? d->comm : MPI_COMM_WORLD, code);
#else
    (void)d;
    (void)code;
#endif
}

int ct_dist_rank(const ct_dist *d) { return d ? d->rank : 0; }
int ct_dist_size(const ct_dist *d) { return d ? d->size : 1; }
int ct_dist_local_rank(const ct_dist *d) { return d ? d->local_rank : 0; }
int ct_dist_local_size(const ct_dist *d) { return d ? d->local_size : 1; }
bool ct_dist_is_main(const ct_dist *d) { return !d || d->rank == 0; }
bool ct_dist_uses_mpi(const ct_dist *d) { return d && d->mpi; }

char *ct_dist_describe(const ct_dist *d, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    if (!d || !d->mpi)
        snprintf(buf, n, "single process");
    else
        snprintf(buf, n, "rank %d of %d (local %d of %d), %s, %s reductions", d->rank, d->size,
                 d->local_rank, d->local_size, d->impl,
                 d->reduce == CT_DIST_REDUCE_FIXED ? "fixed-order" : "MPI_Allreduce");
    return buf;
}

/* ---- collectives ------------------------------------------------------------------------------------ */
typedef enum elem { E_F32, E_F64, E_I64 } elem;
static const char *const elem_name[] = {"float32", "float64", "int64"};

static ct_status check_args(ct_dist *d, const char *fn, const void *x, int64_t n, ct_dist_op op, elem e) {
    if (!d) return CT_E_NULL;
    if (n < 0) return ct_fail(d->ctx, CT_E_ARG, "dist: %s: n = %lld is negative", fn, (long long)n);
    if (n > 0 && !x) return ct_fail(d->ctx, CT_E_ARG, "dist: %s: the array is NULL (n = %lld)", fn, (long long)n);
    if (op != CT_DIST_SUM && op != CT_DIST_MEAN && op != CT_DIST_MAX && op != CT_DIST_MIN)
        return ct_fail(d->ctx, CT_E_ARG, "dist: %s: unknown op %d", fn, (int)op);
    if (op == CT_DIST_MEAN && e == E_I64)
        return ct_fail(d->ctx, CT_E_ARG, "dist: %s: MEAN of %s values would round; reduce with "
                                         "CT_DIST_SUM and divide",
                       fn, elem_name[e]);
    return CT_OK;
}

#ifdef CT_HAVE_MPI
static size_t elem_size(elem e) { return e == E_F32 ? sizeof(float) : e == E_F64 ? sizeof(double) : sizeof(int64_t); }

/* Reduces k = size values, in rank order, at in[i * stride] (i = 0..k-1) into *out. */
static void reduce_one(elem e, ct_dist_op op, int k, const void *in, int64_t stride, void *out) {
    if (e == E_F32) {
        const float *v = in;
        if (op == CT_DIST_SUM || op == CT_DIST_MEAN) {
            double acc = v[0];
            for (int i = 1; i < k; i++) acc += (double)v[i * stride];
            if (op == CT_DIST_MEAN) acc /= (double)k;
            *(float *)out = (float)acc;
        } else {
            float acc = v[0];
            for (int i = 1; i < k && !isnan(acc); i++) {
                float x = v[i * stride];
                if (isnan(x) || (op == CT_DIST_MAX ? x > acc : x < acc)) acc = x;
            }
            *(float *)out = acc;
        }
    } else if (e == E_F64) {
        const double *v = in;
        double acc = v[0];
        if (op == CT_DIST_SUM || op == CT_DIST_MEAN) {
            for (int i = 1; i < k; i++) acc += v[i * stride];
            if (op == CT_DIST_MEAN) acc /= (double)k;
        } else {
            for (int i = 1; i < k && !isnan(acc); i++) {
                double x = v[i * stride];
                if (isnan(x) || (op == CT_DIST_MAX ? x > acc : x < acc)) acc = x;
            }
        }
        *(double *)out = acc;
    } else {
        const int64_t *v = in;
        uint64_t s = (uint64_t)v[0];
        int64_t m = v[0];
        for (int i = 1; i < k; i++) {
            int64_t x = v[i * stride];
            s += (uint64_t)x;   /* wraps instead of overflowing */
            if (op == CT_DIST_MAX ? x > m : x < m) m = x;
        }
        *(int64_t *)out = op == CT_DIST_SUM ? (int64_t)s : m;
    }
}

static MPI_Datatype mpi_type(elem e) { return e == E_F32 ? MPI_FLOAT : e == E_F64 ? MPI_DOUBLE : MPI_INT64_T; }

/* Elements per round of a reduction: bounds the scratch buffer (and keeps MPI's int counts). */
#define ROUND_ELEMS ((int64_t)1 << 22)

static ct_status fixed_allreduce(ct_dist *d, void *x, int64_t n, elem e, ct_dist_op op) {
    const size_t es = elem_size(e);
    const int k = d->size;
    const int64_t per = ROUND_ELEMS / k + 1;           /* the most one rank owns in a round */
    const size_t need = (size_t)per * (size_t)k * es;
    if (d->scratch_bytes < need) {
        void *p = realloc(d->scratch, need);
        if (!p) return ct_fail(d->ctx, CT_E_NOMEM, "dist: out of memory for a %zu-byte reduction buffer", need);
        d->scratch = p;
        d->scratch_bytes = need;
    }
    int *cnt = malloc(sizeof(int) * 4 * (size_t)k);
    if (!cnt) return ct_fail(d->ctx, CT_E_NOMEM, "dist: out of memory");
    int *dsp = cnt + k, *rcnt = cnt + 2 * k, *rdsp = cnt + 3 * k;
    const MPI_Datatype T = mpi_type(e);
    ct_status st = CT_OK;
    for (int64_t off = 0; off < n && st == CT_OK; off += ROUND_ELEMS) {
        const int64_t c = n - off < ROUND_ELEMS ? n - off : ROUND_ELEMS;
        for (int j = 0; j < k; j++) {
            int64_t b, en;
            ct_dist_shard_range(c, j, k, &b, &en);
            cnt[j] = (int)(en - b);
            dsp[j] = (int)b;
        }
        const int mine = cnt[d->rank];
        for (int i = 0; i < k; i++) {
            rcnt[i] = mine;
            rdsp[i] = i * mine;
        }
        char *base = (char *)x + (size_t)off * es;
        int err = MPI_Alltoallv(base, cnt, dsp, T, d->scratch, rcnt, rdsp, T, d->comm);
        if (err != MPI_SUCCESS) {
            st = mpi_fail(d, err, "MPI_Alltoallv (reduction)");
            break;
        }
        char *own = base + (size_t)dsp[d->rank] * es;
        for (int j = 0; j < mine; j++)
            reduce_one(e, op, k, (char *)d->scratch + (size_t)j * es, mine, own + (size_t)j * es);
        err = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base, cnt, dsp, T, d->comm);
        if (err != MPI_SUCCESS) st = mpi_fail(d, err, "MPI_Allgatherv (reduction)");
    }
    free(cnt);
    return st;
}

static ct_status mpi_allreduce(ct_dist *d, void *x, int64_t n, elem e, ct_dist_op op) {
    const size_t es = elem_size(e);
    const MPI_Op mop = op == CT_DIST_MAX ? MPI_MAX : op == CT_DIST_MIN ? MPI_MIN : MPI_SUM;
    for (int64_t off = 0; off < n; off += ROUND_ELEMS) {
        const int64_t c = n - off < ROUND_ELEMS ? n - off : ROUND_ELEMS;
        int err = MPI_Allreduce(MPI_IN_PLACE, (char *)x + (size_t)off * es, (int)c, mpi_type(e), mop, d->comm);
        if (err != MPI_SUCCESS) return mpi_fail(d, err, "MPI_Allreduce");
    }
    if (op == CT_DIST_MEAN) {
        for (int64_t i = 0; i < n; i++) {
            if (e == E_F32) ((float *)x)[i] = (float)((double)((float *)x)[i] / (double)d->size);
            else ((double *)x)[i] /= (double)d->size;
        }
    }
    return CT_OK;
}
#endif

static ct_status allreduce(ct_dist *d, const char *fn, void *x, int64_t n, elem e, ct_dist_op op) {
    ct_status s = check_args(d, fn, x, n, op, e);
    if (s != CT_OK || !d->mpi || d->size == 1 || n == 0) return s;   /* one rank: the identity */
#ifdef CT_HAVE_MPI
    return d->reduce == CT_DIST_REDUCE_FIXED ? fixed_allreduce(d, x, n, e, op) : mpi_allreduce(d, x, n, e, op);
#else
    return ct_fail(d->ctx, CT_E_UNSUPPORTED, "dist: %s: built without MPI", fn);
#endif
}

ct_status ct_dist_allreduce_f32(ct_dist *d, float *x, int64_t n, ct_dist_op op) {
    return allreduce(d, "allreduce_f32", x, n, E_F32, op);
}
ct_status ct_dist_allreduce_f64(ct_dist *d, double *x, int64_t n, ct_dist_op op) {
    return allreduce(d, "allreduce_f64", x, n, E_F64, op);
}
ct_status ct_dist_allreduce_i64(ct_dist *d, int64_t *x, int64_t n, ct_dist_op op) {
    return allreduce(d, "allreduce_i64", x, n, E_I64, op);
}

ct_status ct_dist_allgather_i64(ct_dist *d, int64_t v, int64_t *all) {
    if (!d) return CT_E_NULL;
    if (!all) return ct_fail(d->ctx, CT_E_ARG, "dist: allgather_i64: the output array is NULL");
    if (!d->mpi || d->size == 1) {
        all[0] = v;
        return CT_OK;
    }
#ifdef CT_HAVE_MPI
    int err = MPI_Allgather(&v, 1, MPI_INT64_T, all, 1, MPI_INT64_T, d->comm);
    return err == MPI_SUCCESS ? CT_OK : mpi_fail(d, err, "MPI_Allgather");
#else
    return CT_E_UNSUPPORTED;
#endif
}

ct_status ct_dist_broadcast_bytes(ct_dist *d, void *x, size_t n, int root) {
    if (!d) return CT_E_NULL;
    if (root < 0 || root >= d->size)
        return ct_fail(d->ctx, CT_E_ARG, "dist: broadcast: root %d is not a rank of a world of %d", root, d->size);
    if (n > 0 && !x) return ct_fail(d->ctx, CT_E_ARG, "dist: broadcast: the buffer is NULL (%zu bytes)", n);
    if (!d->mpi || d->size == 1 || n == 0) return CT_OK;
#ifdef CT_HAVE_MPI
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        size_t c = n - off < chunk ? n - off : chunk;
        int err = MPI_Bcast((char *)x + off, (int)c, MPI_BYTE, root, d->comm);
        if (err != MPI_SUCCESS) return mpi_fail(d, err, "MPI_Bcast");
    }
    return CT_OK;
#else
    return CT_E_UNSUPPORTED;
#endif
}

ct_status ct_dist_broadcast_f32(ct_dist *d, float *x, int64_t n, int root) {
    if (!d) return CT_E_NULL;
    if (n < 0) return ct_fail(d->ctx, CT_E_ARG, "dist: broadcast_f32: n = %lld is negative", (long long)n);
    return ct_dist_broadcast_bytes(d, x, (size_t)n * sizeof(float), root);
}

ct_status ct_dist_barrier(ct_dist *d) {
    if (!d) return CT_E_NULL;
    if (!d->mpi || d->size == 1) return CT_OK;
#ifdef CT_HAVE_MPI
    int err = MPI_Barrier(d->comm);
    return err == MPI_SUCCESS ? CT_OK : mpi_fail(d, err, "MPI_Barrier");
#else
    return CT_E_UNSUPPORTED;
#endif
}

ct_status ct_dist_allreduce_tensor(ct_dist *d, ct_tensor *t, ct_dist_op op) {
    if (!d) return CT_E_NULL;
    if (!t) return ct_fail(d->ctx, CT_E_NULL, "dist: allreduce_tensor: the tensor is NULL (an earlier error?)");
    char sh[96];
    if (t->dtype != CT_F32 || !ct_is_contiguous(t))
        return ct_fail(d->ctx, t->dtype != CT_F32 ? CT_E_DTYPE : CT_E_ARG,
                       "dist: allreduce_tensor: %s tensor %s: needs a contiguous float32 tensor "
                       "(ct_contiguous)",
                       t->dtype == CT_F32 ? "a non-contiguous" : "an int64", ct_shape_str(t, sh, sizeof sh));
    ct_status s;
    if (ct_tensor_device(t).type == CT_CPU) {
        s = ct_dist_allreduce_f32(d, ct_data_f32(t), ct_numel(t), op);
    } else {
        s = check_args(d, "allreduce_tensor", ct_data(t), ct_numel(t), op, E_F32);
        if (s == CT_OK && d->mpi && d->size > 1) s = ct__dist_gpu_allreduce(d, ct_data(t), ct_numel(t), op);
    }
    if (s == CT_OK && t->storage) t->storage->version++;   /* written in place */
    return s;
}
