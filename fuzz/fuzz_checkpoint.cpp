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

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

namespace {

uint32_t u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
         (uint32_t(p[3]) << 24);
}
void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    p[i] = uint8_t(v >> (8 * i));
  }
}

// Rewrites the CRC of every stored entry (directory and local header) to
// match its data, where the records can be found within the buffer.
void fix_crcs(std::vector<uint8_t>& b) {
  const size_t n = b.size();
  for (size_t i = 0; i + 46 <= n; ++i) {
    if (u32(&b[i]) != 0x02014b50 || b[i + 10] != 0 || b[i + 11] != 0) {
      continue;
    }
    const uint64_t size = u32(&b[i + 20]);
    const uint64_t local = u32(&b[i + 42]);
    if (local + 30 > n || u32(&b[local]) != 0x04034b50) {
      continue;
    }
    const uint64_t data = local + 30 + (b[local + 26] | (b[local + 27] << 8)) +
                          (b[local + 28] | (b[local + 29] << 8));
    if (data > n || size > n - data) {
      continue;
    }
    const uint32_t crc = uint32_t(crc32(0, &b[data], uInt(size)));
    put32(&b[i + 16], crc);
    put32(&b[local + 14], crc);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  fix_crcs(bytes);
  const std::string path =
      cakes::fuzz::write_input(bytes.data(), bytes.size(), "checkpoint.pt");
  try {
    const cakes::train::CheckpointMeta meta =
        cakes::train::read_checkpoint_meta(path);
    // Any module: the weights are read, then refused or staged; the
    // network the checkpoint names is not built (its size is outside input).
    auto model = cakes::models::Model::wrap(torch::nn::Linear(3, 2), meta.network);
    cakes::train::load_checkpoint_weights(path, model);
  } catch (const std::exception&) {
  }
  return 0;
}
