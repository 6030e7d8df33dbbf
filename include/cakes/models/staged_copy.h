// Copies into a model's tensors that happen all or not at all: every pair is
// checked (shapes) when added, and nothing is written until commit(). Every
// loader of weights (checkpoints, imports, inflation) stages its copies, so a
// bad file leaves the model unchanged.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace cakes::models {

// "[5, 512]".
std::string shape_str(const at::Tensor& t);

class StagedCopy {
public:
  // Throws std::invalid_argument "key 'KEY' has shape [..] but OURS expects
  // [..]" when the shapes differ.
  void
  add(const std::string& ours,
      at::Tensor dst,
      const std::string& key,
      at::Tensor src);
  // Copies every staged value (without autograd).
  void commit();

private:
  std::vector<std::pair<at::Tensor, at::Tensor>> items_;
};

} // namespace cakes::models
