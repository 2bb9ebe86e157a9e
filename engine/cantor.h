/* engine/cantor.h — the cantor engine's public API in one include.
 *
 *   engine/error.h     status codes, error records, CT_SRC
 *   engine/tensor.h    contexts, scopes (the memory model), tensors, views
 *   engine/autograd.h  requires_grad, backward, hooks, grad mode
 *   engine/ops.h       differentiable ops and in-place updates
 *   engine/rng.h       explicit random generators
 *   engine/npy.h       .npy / .npz files
 *   engine/nn.h        modules, parameter names, the flat parameter block
 *   engine/layers.h    Linear, Embedding, Dropout, LayerNorm, Sequential
 *   engine/rnn.h       fused RNN / LSTM / GRU layers, stepwise sampling, the cells
 *   engine/optim.h     SGD, Adam, AdamW, schedules, gradient clipping
 *   engine/safetensors.h  checkpoints (safetensors) and the training-state file
 *   engine/data.h      datasets, the threaded data loader, collate, transforms
 *   engine/device.h    devices ("cpu", "cuda:N"), moving tensors, modules and optimizers
 *   engine/version.h   version and build configuration
 */
#ifndef CT_CANTOR_H
#define CT_CANTOR_H

#include "engine/autograd.h"
#include "engine/data.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/layers.h"
#include "engine/nn.h"
#include "engine/npy.h"
#include "engine/optim.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/rnn.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "engine/version.h"

#endif
