// Checkpoint files: a torch::serialize archive holding "model" (parameters and
// buffers), "optimizer" (its state: momentum buffers, Adam moments) and
// metadata under "meta/" (epoch, step, network, RNG state). They are written
// atomically so a crash mid-write leaves the previous checkpoint intact.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

namespace torch::nn {
class Module;
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
  int64_t epoch = 0;    // completed epochs: training resumes at this epoch
  int64_t step = 0;     // optimizer steps taken
  std::string network;  // the network name/config string it was trained as
  at::Tensor rng_state; // LibTorch's default CPU generator state
};

// Reads only the metadata. Throws std::runtime_error naming the file when it
// is missing, truncated or not a cakes checkpoint.
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Loads the "model" record into `module` (evaluation, inference, fine-tuning).
// Throws std::runtime_error naming both networks when the checkpoint was
// written for another network than `expected_network`, and naming the file
// when it is unreadable or its tensors do not fit `module`.
void load_checkpoint_weights(
    const std::string& path,
    torch::nn::Module& module,
    const std::string& expected_network);

} // namespace cakes::train
