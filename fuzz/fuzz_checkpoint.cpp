// Checkpoints (zip archives written by torch::serialize), read as
// read_checkpoint_meta and load_checkpoint_weights read a file. Mutations
// almost never keep the CRCs right, and fuzz_zip covers the CRC check, so
// this target recomputes them before writing the file: every input reaches
// LibTorch's archive and pickle readers with damaged contents behind valid
// checksums. Slow (LibTorch parses a TorchScript archive per input).
#include "cakes/models/model.h"
#include "cakes/train/checkpoint.h"

#include "fuzz_support.h"

#include <torch/nn/modules/linear.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  cakes::fuzz::fix_crcs(bytes);
  const std::string path =
      cakes::fuzz::write_input(bytes.data(), bytes.size(), "checkpoint.pt");
  try {
    const cakes::train::CheckpointMeta meta =
        cakes::train::read_checkpoint_meta(path);
    // Any module: the weights are read, then refused or staged; the
    // network the checkpoint names is not built (its size is outside input).
    auto model =
        cakes::models::Model::wrap(torch::nn::Linear(3, 2), meta.network);
    cakes::train::load_checkpoint_weights(path, model);
  } catch (const std::exception&) {
  }
  return 0;
}
