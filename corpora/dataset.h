/* corpora/dataset.h — engine's ct_dataset over one split of a corpus file.
 *
 *   ct_ctx *ctx = ct_ctx_new();
 *   cp_dataset *d = cp_dataset_open(ctx, "midi.corpus", CP_TRAIN);   // NULL + error in ctx
 *   ct_dataset ds = cp_dataset_as(d);
 *   ct_dataloader_opts o = ct_dataloader_defaults();
 *   o.sampler = CT_SAMPLER_BUCKET;                                    // item_len is provided
 *   ct_dataloader *dl = ct_dataloader_new(ctx, &ds, &o);
 *   ...
 *   ct_dataloader_free(dl);
 *   cp_dataset_free(d);
 *
 * Items are the split's pieces in index order (files by name, then each file's pieces): tokens
 * as int64 (melody, performance) or frames as float [len, 88] of 0/1 (piano roll), read from
 * the mapping at get time (nothing is loaded up front). Metadata: source = the source file's
 * name, piece_id = the piece's id in the corpus (cp_corpus_piece), offset 0. A token outside
 * the vocabulary fails the item with the file, byte and piece (the loader reports or skips it).
 * get is safe from any number of threads (the mapping is read-only). */
#ifndef CANTOR_CORPORA_DATASET_H
#define CANTOR_CORPORA_DATASET_H

#include "corpora/corpus.h"
#include "engine/data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp_dataset cp_dataset;

/* A dataset over split s of c (CP_SPLIT_ALL: every piece). Borrows c, which must outlive it.
 * NULL + error in ctx (ctx may be NULL) for a bad split or no memory; an empty split is fine
 * here (the loader refuses it). */
cp_dataset *cp_dataset_new(ct_ctx *ctx, const cp_corpus *c, cp_split s);
/* Opens path (cp_corpus_open) and owns the corpus. NULL + the corpus's error in ctx (CT_E_IO /
 * CT_E_FORMAT, its message naming the file and byte). */
cp_dataset *cp_dataset_open(ct_ctx *ctx, const char *path, cp_split s);
void cp_dataset_free(cp_dataset *d);   /* NULL is a no-op; closes an owned corpus */

/* The interface for the loader (d must outlive its users). */
ct_dataset cp_dataset_as(cp_dataset *d);
int64_t cp_dataset_len(const cp_dataset *d);
/* The corpus piece id of item i (-1 when out of range). */
int64_t cp_dataset_piece_id(const cp_dataset *d, int64_t i);
const cp_corpus *cp_dataset_corpus(const cp_dataset *d);
cp_split cp_dataset_split(const cp_dataset *d);
/* Item i into out (as the loader would get it; rng unused). */
ct_status cp_dataset_get(cp_dataset *d, int64_t i, ct_data_item *out);

#ifdef __cplusplus
}
#endif
#endif
