// Checkpoint files, the one format for every model cakes writes (training,
// search, and anything that writes weights): a torch::serialize archive
// holding "model" (parameters and buffers), optionally "optimizer" (its
// state: momentum buffers, Adam moments), "meta/json" (the metadata document
// below) and "meta/rng_state". They are written atomically, so a crash
// mid-write leaves the previous checkpoint intact.
//
// The metadata document is JSON and grows by sections:
//   {"format": "cakes checkpoint", "version": 1,
//    "epoch": 3, "step": 45,
//    "network": <models::NetworkSpec JSON>,
//    "<section>": <any JSON>, ...}
// "network" describes the network the weights belong to: a model can be
// rebuilt from it alone (load_model). Sections are owned by whoever writes
// them (the search writes "search", search/checkpoint.h); readers ignore
// sections they do not know.
#pragma once

#include "cakes/models/model.h"

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>

namespace torch::optim {
class Optimizer;
}

namespace cakes::train {

// Writes `bytes` to `path` so that `path` always holds either its previous
// content or all of `bytes`: write `path`.tmp, fsync it, rename it over
// `path`, fsync the directory. Throws std::runtime_error naming the file on
// any I/O error (the previous `path` is then untouched).
//
// `abort_after` exists for tests: write only that many bytes, then throw as a
// crash would leave things (temporary file partial, no rename).
void write_file_atomically(
    const std::string& path,
    const std::string& bytes,
    std::size_t abort_after = std::numeric_limits<std::size_t>::max());

struct CheckpointMeta {
  int64_t epoch = 0; // completed epochs: training resumes at this epoch
  int64_t step = 0;  // optimizer steps taken
  models::NetworkSpec network;
  // Further top-level sections of the document, name -> JSON text.
  std::map<std::string, std::string> sections;
  at::Tensor rng_state; // LibTorch's default CPU generator state, if saved

  // The metadata document (without rng_state).
  std::string to_json() const;
  // Throws std::invalid_argument when `text` is not such a document.
  static CheckpointMeta from_json(const std::string& text);
};

// Writes `module`'s weights (and the optimizer's state when given) with
// `meta`, atomically.
void write_checkpoint(
    const std::string& path,
    const torch::nn::Module& module,
    const CheckpointMeta& meta,
    const torch::optim::Optimizer* optimizer = nullptr);

// Reads only the metadata. Throws std::runtime_error naming the file when it
// is missing, truncated or not a cakes checkpoint.
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Loads the checkpoint's weights into `model` (evaluation, inference,
// fine-tuning). Throws std::runtime_error naming the file and the first
// difference when it was written for another network than model.spec, and
// naming the file when it is unreadable or its tensors do not fit.
void load_checkpoint_weights(const std::string& path, models::Model& model);

// The checkpoint's optimizer state into `optimizer` (built over the same
// model's parameters); throws std::runtime_error naming the file when there
// is none or it does not fit.
void load_checkpoint_optimizer(
    const std::string& path, torch::optim::Optimizer& optimizer);

// The network the checkpoint describes, built (models::build) with its
// weights loaded.
models::Model
load_model(const std::string& path, const models::BuildOptions& options = {});

} // namespace cakes::train
