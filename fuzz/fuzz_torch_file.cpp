// Files of Python's torch.save in the layouts cakes imports (docs/WEIGHTS.md):
// read_torch_file on the zip format (CRCs recomputed, see fuzz_support.h) and
// the legacy format (its own pickle machine and storage records), then the
// paper-network recognition on what it read. Every input must end in a
// result or a std::exception, never in a crash or a sanitizer report.
#include "cakes/models/network_spec.h"
#include "cakes/models/weights.h"

#include "fuzz_support.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  cakes::fuzz::fix_crcs(bytes);
  const std::string path =
      cakes::fuzz::write_input(bytes.data(), bytes.size(), "weights.pth");
  try {
    const auto file = cakes::models::read_torch_file(path);
    std::map<std::string, at::Tensor> sd(
        file.tensors.begin(), file.tensors.end());
    // The tensors' bytes must all be readable: sum them.
    for (const auto& kv : sd) {
      if (kv.second.defined() && kv.second.numel() > 0 &&
          kv.second.is_floating_point()) {
        (void)kv.second.sum().item<double>();
      }
    }
    const auto spec = cakes::models::paper_network_spec(sd, path);
    (void)spec.describe();
    (void)cakes::models::paper_supernet_reads_kept(sd);
  } catch (const std::exception&) {
  }
  return 0;
}
