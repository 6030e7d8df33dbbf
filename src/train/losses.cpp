#include "cakes/train/losses.h"
#include "cakes/util/check.h"

#include <ATen/ATen.h>

namespace cakes::train {

at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& target) {
  return at::cross_entropy_loss(logits, target);
}

at::Tensor soft_dice_loss(
    const at::Tensor& logits, const at::Tensor& target, double smooth) {
  CAKES_CHECK(
      logits.dim() >= 2 && target.dim() == logits.dim() - 1,
      "soft_dice_loss: expected logits (N, C, ...) and target (N, ...), got ",
      logits.sizes(),
      " and ",
      target.sizes());
  const int64_t classes = logits.size(1);
  at::Tensor p = at::softmax(logits, /*dim=*/1);
  // (N, ...) -> (N, ..., C) -> (N, C, ...)
  at::Tensor g =
      at::one_hot(target, classes).movedim(-1, 1).to(p.scalar_type());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < logits.dim(); ++d) {
    if (d != 1) {
      dims.push_back(d);
    }
  }
  at::Tensor inter = (p * g).sum(dims);
  at::Tensor denom = p.sum(dims) + g.sum(dims);
  at::Tensor dice = (2 * inter + smooth) / (denom + smooth);
  return 1 - dice.mean();
}

at::Tensor
dice_cross_entropy(const at::Tensor& logits, const at::Tensor& target) {
  return soft_dice_loss(logits, target) +
         at::cross_entropy_loss(logits, target);
}

} // namespace cakes::train
