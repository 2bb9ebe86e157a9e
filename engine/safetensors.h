/* engine/safetensors.h — checkpoints: a model's weights as a safetensors file, and the training
 * state (optimizer state, step, random generators) in a small binary file ("CTTS").
 *
 * SAFETENSORS — the format of Hugging Face's safetensors (what torch users read with
 * safetensors.torch.load_file / safe_open):
 *
 *   bytes 0 .. 7        N: the header's length, u64 little endian
 *   bytes 8 .. 8+N      the header: UTF-8 JSON, padded with spaces so that N % 8 == 0:
 *                       {"__metadata__":{"key":"value",...},
 *                        "w1":{"dtype":"F32","shape":[4,3],"data_offsets":[0,48]},...}
 *   bytes 8+N ..        the data section: every tensor's elements in C order, little endian,
 *                       at [begin, end) of data_offsets, relative to the data section's start.
 *
 * Writing follows the reference writer byte for byte: tensors ordered by dtype (I64 before
 * F32, i.e. by decreasing alignment) and then by name (bytewise), stored back to back from
 * offset 0; compact JSON with "__metadata__" first (when there is metadata), each tensor's
 * fields in the order dtype, shape, data_offsets; strings escaped as serde_json does (\" \\
 * \b \f \n \r \t, other control characters as \u00xx, everything else raw UTF-8). With at
 * most one metadata key the file is identical to what safetensors.torch.save_file writes.
 *
 * Reading is as strict as the reference reader, and bounded against hostile files: N at most
 * 100,000,000 and within the file; the header valid UTF-8 holding exactly this JSON grammar
 * (an object of tensor entries and an optional "__metadata__" object of string values; each
 * entry has exactly "dtype", "shape" (non-negative integers, at most 8) and "data_offsets"
 * (two integers); no duplicate names); dtype F32 or I64 (the other safetensors dtypes, F16,
 * BF16, F64, ..., are CT_E_UNSUPPORTED); the entries, sorted by offset, tile the data section
 * from 0 to the end of the file without gap or overlap, each holding exactly
 * numel x itemsize bytes. Every failure is CT_E_FORMAT (CT_E_IO when the system refuses)
 * with a message naming the file, the byte offset in the file, the tensor, and what was
 * expected.
 *
 * Files are written atomically: "<path>.tmp" is written, fsync()ed and renamed over path, so
 * a failed save (a full disk, a missing directory) leaves an existing file untouched and
 * reports the system's reason (strerror) in the message.
 *
 * OWNERSHIP: tensors read are new CPU tensors in the current scope of the context given to
 * ct_safetensors_open. An open file (ct_safetensors) is closed by ct_safetensors_close
 * (NULL is a no-op); names, metadata keys and values it returns live until then.
 */
#ifndef CT_SAFETENSORS_H
#define CT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/tensor.h"

#define CT_SAFETENSORS_MAX_HEADER 100000000u

/* ---- writing ------------------------------------------------------------------------------ */
/* Writes n tensors (float32 or int64, any strides, any device) under distinct names (valid
 * UTF-8, not "__metadata__"), with n_meta metadata string pairs (distinct keys; n_meta 0
 * writes no "__metadata__"). Errors are recorded in ctx. */
ct_status ct_safetensors_write(ct_ctx *ctx, const char *path, int n, const char *const *names,
                               const ct_tensor *const *ts, int n_meta,
                               const char *const *meta_keys, const char *const *meta_values);
/* Writes every parameter of the module tree under its dotted name ("rnn.weight_ih_l0": the
 * names of PyTorch's state_dict), plus the metadata. Errors are recorded in root's context. */
ct_status ct_safetensors_save(const char *path, ct_module *root, int n_meta,
                              const char *const *meta_keys, const char *const *meta_values);

/* ---- loading into a module ------------------------------------------------------------------ */
/* Called once for every metadata pair of a loaded file (strings valid during the call). */
typedef void (*ct_safetensors_meta_fn)(const char *key, const char *value, void *userdata);

/* Reads the file's tensors into the module's parameters. The file must hold exactly the
 * module's parameters: every name present, none extra, each F32 of the parameter's shape;
 * otherwise CT_E_FORMAT with a message listing what is missing from the file, what the file
 * has that the module lacks, and every dtype or shape mismatch. All
 * checks and the whole read happen before any parameter changes, so on any error the module
 * is untouched. On success, on_meta (may be NULL) is called for each metadata pair. */
ct_status ct_safetensors_load(const char *path, ct_module *root, ct_safetensors_meta_fn on_meta,
                              void *userdata);

/* ---- generic reader ------------------------------------------------------------------------ */
typedef struct ct_safetensors ct_safetensors;

/* Opens a file and validates its header (see above); the data is read by ct_safetensors_get.
 * NULL + error in ctx on failure. The file stays open until ct_safetensors_close. */
ct_safetensors *ct_safetensors_open(ct_ctx *ctx, const char *path);
void ct_safetensors_close(ct_safetensors *f);                   /* NULL is a no-op */
int ct_safetensors_count(const ct_safetensors *f);              /* tensors; 0 for NULL */
/* Name of tensor i (in data-offset order); NULL when out of range. */
const char *ct_safetensors_name(const ct_safetensors *f, int i);
/* dtype, ndim and shape (CT_MAX_DIMS entries) of a tensor without reading it; any output may
 * be NULL. Returns false when there is no such tensor (no error is recorded). */
bool ct_safetensors_info(const ct_safetensors *f, const char *name, ct_dtype *dtype, int *ndim,
                         int64_t *shape);
/* Reads a tensor into a new CPU tensor in the current scope; NULL + an error listing the
 * available names when there is none of that name. */
ct_tensor *ct_safetensors_get(ct_safetensors *f, const char *name);
int ct_safetensors_meta_count(const ct_safetensors *f);
const char *ct_safetensors_meta_key(const ct_safetensors *f, int i);    /* NULL out of range */
const char *ct_safetensors_meta_value(const ct_safetensors *f, int i);
const char *ct_safetensors_meta(const ct_safetensors *f, const char *key);   /* NULL if absent */

/* ---- training state ("CTTS", engine/train_state.c) ------------------------------------------
 * Everything needed to resume training bit for bit, besides the weights (a safetensors file):
 * the optimizer's step count, learning rate and state arrays, the caller's training step,
 * the caller's random generators, and an opaque user blob (a data loader's position, say).
 * Layout, all little endian:
 *
 *   0   char[4]  magic "CTTS"
 *   4   u32      version (1)
 *   8   u32      optimizer kind (ct_optim_kind: 0 SGD, 1 Adam, 2 AdamW)
 *   12  u32      S, the number of state arrays (ct_optim_state_count)
 *   16  u64      P, the elements of each array (ct_optim_state_size)
 *   24  i64      the training step (the caller's)
 *   32  i64      the optimizer's step count (ct_optim_get_step)
 *   40  f64      the learning rate (ct_optim_get_lr)
 *   48  u32      R, the number of random generators
 *   52  u32      bytes per generator (CT_RNG_STATE_BYTES = 40)
 *   56  u64      U, the bytes of user data
 *   64  S x P float32: the state arrays, in ct_optim_state_name order
 *       R x 40 bytes: the generators (ct_rng_save)
 *       U bytes: the user data
 *       u32: CRC-32 (zlib's) of every byte before it
 *
 * Saving is atomic as above. Loading reads and checks the whole file (magic, version, sizes,
 * the exact file length, the CRC, the generators' states) and that it fits the optimizer (the
 * same kind, S and P) and the caller's buffers before changing anything: on any error the
 * optimizer, the generators and *step are untouched. Errors go to the optimizer's context. */
#define CT_TRAIN_STATE_VERSION 1u

ct_status ct_train_state_save(const char *path, const ct_optim *opt, int64_t step,
                              const ct_rng *const *rngs, int n_rngs, const void *user,
                              size_t user_bytes);
/* n_rngs must equal the number the file holds. user (may be NULL: the user data is then
 * skipped) must have room for the file's user bytes (user_cap); *user_bytes (may be NULL)
 * gets their count. The learning rate is restored too. */
ct_status ct_train_state_load(const char *path, ct_optim *opt, int64_t *step,
                              ct_rng *const *rngs, int n_rngs, void *user, size_t user_cap,
                              size_t *user_bytes);

#endif
