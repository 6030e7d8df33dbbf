// Losses for classification and segmentation.
#pragma once

#include <ATen/core/Tensor.h>

namespace cakes::train {

// logits (N, C), target (N) int64 -> mean cross-entropy.
at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& target);

// logits (N, C, D, H, W), target (N, D, H, W) int64 in [0, C).
// 1 - mean over classes of (2 sum p*g + smooth) / (sum p + sum g + smooth),
// sums over batch and voxels, p = softmax over C. A class absent from both
// prediction and target scores 1 (the smoothing term), so it neither rewards
// nor penalises. Throws std::invalid_argument on mismatched shapes.
at::Tensor soft_dice_loss(
    const at::Tensor& logits, const at::Tensor& target, double smooth = 1e-5);

// soft Dice + cross-entropy (the usual segmentation loss), equally weighted.
at::Tensor
dice_cross_entropy(const at::Tensor& logits, const at::Tensor& target);

} // namespace cakes::train
