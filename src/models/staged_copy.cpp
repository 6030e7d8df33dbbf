#include "cakes/models/staged_copy.h"

#include <torch/torch.h>

#include <stdexcept>

namespace cakes::models {

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i)
    s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

void StagedCopy::add(
    const std::string& ours,
    at::Tensor dst,
    const std::string& key,
    at::Tensor src) {
  if (dst.sizes() != src.sizes())
    throw std::invalid_argument(
        "key '" + key + "' has shape " + shape_str(src) + " but " + ours +
        " expects " + shape_str(dst));
  items_.emplace_back(std::move(dst), std::move(src));
}

void StagedCopy::commit() {
  torch::NoGradGuard ng;
  for (auto& [dst, src] : items_)
    dst.copy_(src);
}

} // namespace cakes::models
