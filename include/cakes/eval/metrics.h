// Metrics of docs/CAKES.md §8: top-1/top-5 accuracy (one clip, or several clips
// whose logits are averaged) and per-class Dice.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace cakes::eval {

// Averages the logits of several clips per video: (N, K, C) -> (N, C);
// (N, C) is returned unchanged. Throws std::invalid_argument on other ranks.
at::Tensor average_clips(const at::Tensor& logits);

// Number of rows whose target is among the k largest logits. logits (N, C)
// (or (N, K, C) clips, averaged first), target (N) int64 in [0, C). k larger
// than C counts every row. Ties are broken by at::topk (lower index first is
// not guaranteed). Throws std::invalid_argument on shape mismatch or target out
// of range.
int64_t
topk_correct(const at::Tensor& logits, const at::Tensor& target, int64_t k);

// Running top-1/top-5 over batches.
class Accuracy {
public:
  void add(const at::Tensor& logits, const at::Tensor& target);
  int64_t count() const {
    return count_;
  }
  // Fractions in [0, 1]; 0 when nothing was added.
  double top1() const;
  double top5() const;

private:
  int64_t count_ = 0, correct1_ = 0, correct5_ = 0;
};

// Dice of class c: 2|P∩G| / (|P| + |G|), P the voxels predicted c, G the
// voxels labelled c.
//
// Empty classes: when P and G are both empty the class is *absent* — its Dice
// is NaN in the per-class vector and it is left out of mean(); a class present
// in only one of P and G scores 0. (Scoring absent classes 1 would reward a
// model for classes the volume does not contain.)
struct DiceCounts {
  DiceCounts() = default; // no classes: fill the vectors before use
  explicit DiceCounts(int64_t num_classes);
  // pred and target: same shape, int64 labels in [0, num_classes). Counts
  // accumulate, so adding several volumes gives the Dice over all of them.
  // Throws std::invalid_argument on shape mismatch or a label out of range.
  void add(const at::Tensor& pred, const at::Tensor& target);

  std::vector<double> per_class() const; // NaN for absent classes
  // Mean over present classes, skipping the first `skip_classes` (1 leaves
  // out the background); NaN when none is present.
  double mean(int64_t skip_classes = 0) const;

  std::vector<int64_t> intersection, predicted, labelled;
};

// per_class Dice of one prediction.
std::vector<double> dice_per_class(
    const at::Tensor& pred, const at::Tensor& target, int64_t num_classes);

} // namespace cakes::eval
