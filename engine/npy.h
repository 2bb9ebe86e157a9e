/* engine/npy.h — NumPy's .npy and .npz files (numpy.lib.format, NEP 1), read and written.
 *
 * WHAT IS SUPPORTED
 *   dtypes '<f4' (CT_F32) and '<i8' (CT_I64), C order, 0 to 8 dims. Reading accepts format
 *   versions 1.0, 2.0 and 3.0; writing produces 1.0 (2.0 only if a header needed more than
 *   64 KiB, which 8 dims never do). Anything else — '<f8', big-endian '>f4', '|b1', object
 *   arrays, structured dtypes, fortran_order True, more than 8 dims, a bad magic, a malformed
 *   header, a truncated file, data that does not match the shape — fails with CT_E_FORMAT
 *   (CT_E_IO when the operating system refuses, with its strerror text) and a message that
 *   names the file, the byte offset or header field, what was found, what was expected, and
 *   how to fix it. Every size read from a file is checked against the file's size first.
 *   .npz archives: zip files of "key.npy" members, stored (np.savez) or deflated
 *   (np.savez_compressed); the CRC-32 of every member is verified.
 *
 * OWNERSHIP
 *   Loaded tensors are new CPU tensors in the current scope (like ct_empty). Errors are
 *   recorded in ctx (ct_ctx_status / ct_ctx_error and the context's handler); the save
 *   functions record theirs in the context of the (first) tensor. An opened archive
 *   (ct_npz) is not a tensor: no scope owns it, the caller closes it with ct_npz_close,
 *   which does not affect the tensors already read from it. Names returned by ct_npz_name
 *   live until ct_npz_close.
 *
 * SAVING is atomic: the data goes to "<path>.tmp", which is fsync()ed and renamed over path,
 * so a crash never leaves a half-written file under path. Any strides and any device are
 * accepted (non-contiguous and CUDA tensors are copied to the host first).
 *
 *     ct_tensor *w = ct_npy_load(ctx, "weights.npy");          // NULL + error in ctx
 *     ct_npy_save("out.npy", w);
 *     const char *names[] = {"w", "b"};
 *     const ct_tensor *ts[] = {w, b};
 *     ct_npz_save("model.npz", 2, names, ts);                  // np.load("model.npz")["w"]
 *     ct_npz *z = ct_npz_open(ctx, "model.npz");
 *     ct_tensor *b2 = ct_npz_get(z, "b");
 *     ct_npz_close(z);
 */
#ifndef CT_NPY_H
#define CT_NPY_H

#include <stddef.h>

#include "engine/tensor.h"

/* ---- .npy ------------------------------------------------------------------------------- */
/* Reads a .npy file into a new tensor (current scope); NULL + error in ctx on failure. */
ct_tensor *ct_npy_load(ct_ctx *ctx, const char *path);
/* The same from n bytes in memory (the buffer is copied; the caller keeps it). name is used
 * in error messages (NULL: "<memory>"). */
ct_tensor *ct_npy_load_mem(ct_ctx *ctx, const void *buf, size_t n, const char *name);
/* Writes t (float32 or int64, any strides and device) as a version 1.0 .npy file. Returns
 * CT_OK, or the status recorded in t->ctx (CT_E_NULL, without a record, when t is NULL). */
ct_status ct_npy_save(const char *path, const ct_tensor *t);

/* ---- .npz ------------------------------------------------------------------------------- */
/* Writes n tensors as an uncompressed zip of "<names[i]>.npy" members, as np.savez does
 * (np.load(path)[names[i]] reads them back). Names must be non-empty and distinct. The
 * archive is limited to 4 GiB (no zip64): larger ones fail with CT_E_UNSUPPORTED. Errors
 * are recorded in the context of ts[0]. */
ct_status ct_npz_save(const char *path, int n, const char *const *names,
                      const ct_tensor *const *ts);

typedef struct ct_npz ct_npz;
/* Opens an archive and reads its central directory; the members are read by ct_npz_get.
 * NULL + error in ctx on failure. The file stays open until ct_npz_close. */
ct_npz *ct_npz_open(ct_ctx *ctx, const char *path);
int ct_npz_count(const ct_npz *z);                 /* number of members; 0 for NULL */
/* Name of member i without its ".npy" suffix (as np.load(...).files lists it); NULL when i
 * is out of range. Valid until ct_npz_close. */
const char *ct_npz_name(const ct_npz *z, int i);
/* Reads member `name` (with or without ".npy") into a new tensor in the current scope of
 * the context given to ct_npz_open. NULL + error naming the key and listing the available
 * ones when there is no such member. */
ct_tensor *ct_npz_get(ct_npz *z, const char *name);
void ct_npz_close(ct_npz *z);                      /* NULL is a no-op */

#endif
