#include "cakes/eval/evaluate.h"

#include "cakes/eval/metrics.h"
#include "cakes/eval/sliding_window.h"

#include <torch/torch.h>

#include <chrono>
#include <stdexcept>

namespace cakes::eval {

VideoScores evaluate_video(
    const models::Model& model,
    const data::Dataset& ds,
    int64_t clips,
    int64_t batch,
    const std::function<void(int64_t, int64_t)>& on_batch) {
  if (clips < 1 || batch < 1)
    throw std::invalid_argument(
        "evaluation: clips and batch must be positive, got " +
        std::to_string(clips) + " and " + std::to_string(batch));
  torch::NoGradGuard no_grad;
  model.module->eval();
  Accuracy acc;
  std::mt19937_64 rng(0); // evaluation samples draw nothing
  for (int64_t start = 0; start < ds.size(); start += batch) {
    const int64_t n = std::min(batch, ds.size() - start);
    std::vector<at::Tensor> per_clip, targets, centred;
    for (int64_t i = start; i < start + n; ++i) {
      auto sample = ds.get(i, rng);
      targets.push_back(sample.target);
      centred.push_back(sample.input);
    }
    for (int64_t k = 0; k < clips; ++k) {
      std::vector<at::Tensor> inputs;
      for (int64_t i = start; i < start + n; ++i)
        inputs.push_back(
            clips == 1 ? centred[i - start] : ds.clip(i, k, clips).input);
      per_clip.push_back(model.forward(torch::stack(inputs)));
    }
    acc.add(torch::stack(per_clip, 1), torch::stack(targets));
    if (on_batch)
      on_batch(start + n, ds.size());
  }
  VideoScores s;
  s.videos = acc.count();
  s.top1 = acc.top1();
  s.top5 = acc.top5();
  return s;
}

VolumeScores evaluate_volumes(
    const models::Model& model,
    const data::Dataset& ds,
    const std::array<int64_t, 3>& window,
    double overlap,
    const std::function<void(const CaseResult&)>& on_case) {
  torch::NoGradGuard no_grad;
  model.module->eval();
  SlidingWindowOptions sw;
  sw.window = window;
  sw.overlap = overlap;
  const int64_t classes = model.spec.num_classes;
  DiceCounts dice(classes);
  std::mt19937_64 rng(0);
  for (int64_t i = 0; i < ds.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto sample = ds.get(i, rng);
    if (!sample.target.defined())
      throw std::invalid_argument(
          ds.describe() + ": case " + std::to_string(i) +
          " has no label to evaluate against");
    const auto pred = sliding_window_labels(
        sample.input,
        [&](const at::Tensor& x) { return model.forward(x); },
        sw);
    dice.add(pred, sample.target);
    if (on_case) {
      DiceCounts one(classes);
      one.add(pred, sample.target);
      CaseResult r;
      r.index = i;
      r.total = ds.size();
      r.dice = one.per_class();
      r.mean_foreground = one.mean(/*skip_classes=*/1);
      r.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
      on_case(r);
    }
  }
  return volume_scores(dice, ds.class_names(), ds.size());
}

VolumeScores volume_scores(
    const DiceCounts& counts,
    std::vector<std::string> class_names,
    int64_t cases) {
  VolumeScores s;
  s.class_names = std::move(class_names);
  for (auto c = int64_t(s.class_names.size());
       c < int64_t(counts.intersection.size());
       ++c)
    s.class_names.push_back(std::to_string(c));
  s.dice = counts.per_class();
  s.mean_foreground = counts.mean(/*skip_classes=*/1);
  s.cases = cases;
  s.counts = counts;
  return s;
}

} // namespace cakes::eval
