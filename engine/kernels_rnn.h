/* engine/kernels_rnn.h — private: the "rnn" kernel group of a backend (the fused LSTM / GRU /
 * Elman layers over a whole sequence, their backward, and stepwise sampling), reached through
 * ct_backend.rnn. The front end is engine/rnn.c (checks, the graph node, the states); the
 * CPU backend fills the group in engine/cpu/rnn.c (OpenBLAS for the products, fused AVX2
 * gate kernels, a worker thread for batch-1 steps); a CUDA backend fills its own.
 *
 * Conventions: the front end has checked every shape, dtype and device. Pointers are device
 * pointers of dense row-major float32 (int64 for tokens) arrays; lens is a host array. A row
 * b is active at step t when t < lens[b] (every row when lens is NULL); an inactive row keeps
 * its state, gets a zero output and zero gate gradients, and passes its state gradient
 * through unchanged (PyTorch's packed sequences). Outputs are written, never accumulated into.
 */
#ifndef CT_KERNELS_RNN_H
#define CT_KERNELS_RNN_H

#include "engine/internal.h"
#include "engine/rnn.h"

/* One layer over a sequence (time-major: row r = t * B + b). */
typedef struct ct_rnn_fwd_args {
    ct_rnn_mode mode;
    int64_t T, B, n_in, H;
    const float *x;                  /* [T*B, n_in] (padding zeroed when lens is set) */
    const float *w_ih, *w_hh;        /* [G*H, n_in], [G*H, H] */
    const float *b_ih, *b_hh;        /* [G*H] or NULL */
    const float *h0, *c0;            /* [B, H] or NULL (zeros) */
    const int64_t *lens;             /* [B] (host) or NULL: every row has length T */
    const int64_t *tokens;           /* [T*B] or NULL: then x is a table [V, n_in] and the
                                      * input rows are x[tokens[r]] (read where active) */
    int64_t V;
    float *table;                    /* [V, G*H] scratch when tokens is set */
    float *gates;                    /* [T*B, G*H] out: the gate activations */
    float *aux;                      /* aux_floats(...) out, what backward needs besides the
                                      * gates (GRU: Whn h + bhn [T*B, H]; LSTM: the cell state
                                      * at a few checkpoints); NULL when aux_floats is 0 */
    float *out;                      /* [T*B, H] out */
    float *h_n, *c_n;                /* [B, H] out (c_n: LSTM) */
    float *work;                     /* fwd_work_floats(...) floats */
} ct_rnn_fwd_args;

typedef struct ct_rnn_bwd_args {
    ct_rnn_mode mode;
    int64_t T, B, n_in, H;
    const float *x, *w_ih, *w_hh, *h0, *c0;
    const int64_t *lens;
    const int64_t *tokens;                       /* as in ct_rnn_fwd_args; dx is then [V, n_in] */
    int64_t V;
    float *table;                                /* [V, G*H] scratch when tokens is set */
    const float *gates, *aux, *out;              /* as saved by forward */
    const float *g_out, *g_hn, *g_cn;            /* [T*B, H], [B, H], [B, H] (g_cn: LSTM) */
    float *dx, *dw_ih, *dw_hh, *db_ih, *db_hh;   /* written (not added); NULL: not needed */
    float *dh0, *dc0;
    float *work;                                 /* bwd_work_floats(...) floats */
} ct_rnn_bwd_args;

/* One time step of every layer, then optionally an output layer on the last layer's h. */
typedef struct ct_rnn_step_args {
    ct_rnn_mode mode;
    int L;
    int64_t B, n_in, H;
    const float *x;                              /* [B, n_in] */
    const float *const *w_ih, *const *w_hh;      /* per layer */
    const float *const *b_ih, *const *b_hh;      /* per layer; NULL arrays when no bias */
    float *h, *c;                                /* [L, B, H] in/out (c: LSTM) */
    const float *w_out, *b_out;                  /* [V, H] and [V] (b_out may be NULL); w_out
                                                  * NULL: no output layer */
    int64_t V;
    float *logits;                               /* [B, V] out when w_out is set */
} ct_rnn_step_args;

/* A backend's resources for stepping one ct_rnn_state (scratch, worker threads). */
typedef struct ct_rnn_stepper ct_rnn_stepper;

struct ct_kernels_rnn {
    /* forward: scratch (work) and saved (aux) sizes in floats, then the layer */
    int64_t (*fwd_work_floats)(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H);
    int64_t (*aux_floats)(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H);
    void (*forward)(const ct_rnn_fwd_args *a);
    int64_t (*bwd_work_floats)(ct_rnn_mode mode, int64_t T, int64_t B, int64_t H);
    void (*backward)(const ct_rnn_bwd_args *a);
    /* Stepwise sampling: stepper_new makes the resources of one state (NULL when out of
     * memory or threads), stepper_free releases them (NULL is a no-op; joins any thread),
     * step runs one step. A stepper is used by one thread at a time. */
    ct_rnn_stepper *(*stepper_new)(ct_rnn_mode mode, int L, int64_t B, int64_t n_in, int64_t H);
    void (*stepper_free)(ct_rnn_stepper *s);
    void (*step)(ct_rnn_stepper *s, const ct_rnn_step_args *a);
};

extern const struct ct_kernels_rnn ct_cpu_kernels_rnn;   /* engine/cpu/rnn.c */

#endif
