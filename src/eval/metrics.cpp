#include "cakes/eval/metrics.h"
#include "cakes/util/check.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace cakes::eval {

at::Tensor average_clips(const at::Tensor& logits) {
  CAKES_CHECK(
      logits.dim() == 2 || logits.dim() == 3,
      "average_clips: expected logits (N, C) or (N, clips, C), got ",
      logits.sizes());
  return logits.dim() == 3 ? logits.mean(/*dim=*/1) : logits;
}

int64_t
topk_correct(const at::Tensor& logits, const at::Tensor& target, int64_t k) {
  at::Tensor l = average_clips(logits);
  CAKES_CHECK(
      target.dim() == 1 && target.size(0) == l.size(0),
      "topk_correct: expected target (",
      l.size(0),
      "), got ",
      target.sizes());
  CAKES_CHECK(k >= 1, "topk_correct: k must be >= 1, got ", k);
  if (l.size(0) == 0) {
    return 0;
  }
  const int64_t classes = l.size(1);
  at::Tensor t = target.to(at::kLong).to(l.device());
  CAKES_CHECK(
      t.min().item<int64_t>() >= 0 && t.max().item<int64_t>() < classes,
      "topk_correct: target out of range [0, ",
      classes,
      ")");
  at::Tensor top = std::get<1>(l.topk(std::min(k, classes), /*dim=*/1));
  return top.eq(t.unsqueeze(1)).any(/*dim=*/1).sum().item<int64_t>();
}

void Accuracy::add(const at::Tensor& logits, const at::Tensor& target) {
  correct1_ += topk_correct(logits, target, 1);
  correct5_ += topk_correct(logits, target, 5);
  count_ += target.size(0);
}

double Accuracy::top1() const {
  return count_ ? static_cast<double>(correct1_) / static_cast<double>(count_)
                : 0;
}

double Accuracy::top5() const {
  return count_ ? static_cast<double>(correct5_) / static_cast<double>(count_)
                : 0;
}

DiceCounts::DiceCounts(int64_t num_classes)
    : intersection(static_cast<size_t>(num_classes), 0),
      predicted(static_cast<size_t>(num_classes), 0),
      labelled(static_cast<size_t>(num_classes), 0) {
  CAKES_CHECK(
      num_classes >= 1,
      "DiceCounts: num_classes must be >= 1, got ",
      num_classes);
}

void DiceCounts::add(const at::Tensor& pred, const at::Tensor& target) {
  CAKES_CHECK(
      pred.sizes() == target.sizes(),
      "Dice: prediction ",
      pred.sizes(),
      " and target ",
      target.sizes(),
      " differ in shape");
  const int64_t classes = static_cast<int64_t>(intersection.size());
  at::Tensor p = pred.to(at::kLong).reshape(-1).cpu();
  at::Tensor g = target.to(at::kLong).reshape(-1).cpu();
  if (p.numel() == 0) {
    return;
  }
  for (const at::Tensor& t : {p, g}) {
    CAKES_CHECK(
        t.min().item<int64_t>() >= 0 && t.max().item<int64_t>() < classes,
        "Dice: label out of range [0, ",
        classes,
        "): min ",
        t.min().item<int64_t>(),
        ", max ",
        t.max().item<int64_t>());
  }
  at::Tensor np = at::bincount(p, /*weights=*/{}, classes);
  at::Tensor ng = at::bincount(g, /*weights=*/{}, classes);
  at::Tensor ni =
      at::bincount(p.masked_select(p.eq(g)), /*weights=*/{}, classes);
  for (int64_t c = 0; c < classes; ++c) {
    predicted[static_cast<size_t>(c)] += np[c].item<int64_t>();
    labelled[static_cast<size_t>(c)] += ng[c].item<int64_t>();
    intersection[static_cast<size_t>(c)] += ni[c].item<int64_t>();
  }
}

std::vector<double> DiceCounts::per_class() const {
  std::vector<double> out(intersection.size());
  for (size_t c = 0; c < out.size(); ++c) {
    const int64_t denom = predicted[c] + labelled[c];
    out[c] = denom == 0 ? std::numeric_limits<double>::quiet_NaN()
                        : 2.0 * static_cast<double>(intersection[c]) /
                              static_cast<double>(denom);
  }
  return out;
}

double DiceCounts::mean(int64_t skip_classes) const {
  std::vector<double> d = per_class();
  double sum = 0;
  int64_t n = 0;
  for (size_t c = static_cast<size_t>(std::max<int64_t>(0, skip_classes));
       c < d.size();
       ++c) {
    if (!std::isnan(d[c])) {
      sum += d[c];
      ++n;
    }
  }
  return n ? sum / static_cast<double>(n)
           : std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> dice_per_class(
    const at::Tensor& pred, const at::Tensor& target, int64_t num_classes) {
  DiceCounts counts(num_classes);
  counts.add(pred, target);
  return counts.per_class();
}

} // namespace cakes::eval
