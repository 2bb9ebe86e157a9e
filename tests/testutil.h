/* tests/testutil.h — helpers shared by the test suites: error capture, gradient checks,
 * fixtures. */
#ifndef CT_TESTUTIL_H
#define CT_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/cantor.h"

/* An error handler that records the last error instead of printing it. */
typedef struct tu_errors { int count; ct_error last; } tu_errors;
void tu_capture(const ct_error *e, void *ud);
/* A context whose errors go into *errs (which may be NULL for silence). */
ct_ctx *tu_ctx(tu_errors *errs);

/* A function of the inputs whose gradient is checked; it builds a tensor of any shape. */
typedef ct_tensor *(*tu_fn)(ct_tensor **in, void *ud);

/* Finite-difference check: loss = sum(f(in) * w) for a fixed random w; compares the
 * backward gradient of every input that requires grad with central differences (step eps,
 * in float32). Fails the running test, printing the first differing values, when
 * |analytic - numeric| > atol + rtol * |numeric|. Returns the number of elements checked. */
int64_t tu_gradcheck_impl(const char *file, int line, tu_fn f, int n, ct_tensor **in, void *ud,
                          double eps, double atol, double rtol);
#define tu_gradcheck(f, n, in, ud) tu_gradcheck_impl(__FILE__, __LINE__, f, n, in, ud, 1e-2, 1e-2, 1e-2)
#define tu_gradcheck_tol(f, n, in, ud, eps, atol, rtol) \
    tu_gradcheck_impl(__FILE__, __LINE__, f, n, in, ud, eps, atol, rtol)

/* A float32 leaf with values from a simple deterministic generator in [lo, hi). */
ct_tensor *tu_rand(ct_ctx *ctx, uint64_t seed, float lo, float hi, int ndim, const int64_t *shape);
#define TU_RAND(ctx, seed, lo, hi, ...) tu_rand(ctx, seed, lo, hi, CT_SHAPE(__VA_ARGS__))

/* Asserts every element of a equals the float array want within tol (any strides). */
void tu_assert_close_impl(const char *file, int line, const ct_tensor *a, const float *want,
                          double atol, double rtol);
#define tu_assert_close(a, want, atol, rtol) tu_assert_close_impl(__FILE__, __LINE__, a, want, atol, rtol)
/* Asserts a and b have the same shape and values within tol. */
void tu_assert_tensors_close_impl(const char *file, int line, const ct_tensor *a,
                                  const ct_tensor *b, double atol, double rtol);
#define tu_assert_tensors_close(a, b, atol, rtol) \
    tu_assert_tensors_close_impl(__FILE__, __LINE__, a, b, atol, rtol)

/* Files: the whole of path (malloc'd, *n bytes (n may be NULL), NUL-terminated; fails the
 * test if unreadable), write n bytes
 * to path (fails the test on error), and remove a file or a folder tree (no error if absent). */
uint8_t *tu_slurp(const char *path, size_t *n);
/* The cantor binary the app tests run: $CANTOR_BIN when set (make test sets it to the build
 * variant's own binary), else ../bin/cantor (tests run with cwd tests/). */
const char *tu_cantor_bin(void);
/* Runs the shell command `cmd 2>&1`: fills out with the first n-1 bytes it prints
 * (NUL-terminated), reads and drops the rest, and returns its exit status (-1 when it did not
 * exit normally). tu_run_cantor runs `tu_cantor_bin() args`. */
int tu_run(const char *cmd, char *out, size_t n);
int tu_run_cantor(const char *args, char *out, size_t n);
void tu_spit(const char *path, const void *buf, size_t n);
void tu_rm_rf(const char *path);

/* Path of a committed fixture under tests/fixtures (tests run from tests/). */
#define TU_FIXTURE(name) ("fixtures/" name)

#endif
