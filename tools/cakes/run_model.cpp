#include "run_model.h"

#include "cakes/data/jpeg.h"
#include "cakes/data/msd_dataset.h"
#include "cakes/data/video_reader.h"
#include "cakes/eval/metrics.h"
#include "cakes/eval/sliding_window.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace cakes::cli {
namespace {

// Frame indices of clip k of `clips`: one frame per TSN segment, at offset
// (k + 0.5) / clips of the segment (clips = 1 is the centre, as in TSN).
std::vector<int64_t>
spread_indices(int64_t num_frames, int64_t segments, int64_t k, int64_t clips) {
  std::vector<int64_t> out;
  const double len = double(num_frames) / double(segments);
  for (int64_t s = 0; s < segments; ++s) {
    const auto i = int64_t(std::floor(len * (s + (k + 0.5) / double(clips))));
    out.push_back(std::min(std::max<int64_t>(i, 0), num_frames - 1));
  }
  return out;
}

// Clip k of video `index` as the network's input (3, T, H, W).
at::Tensor clip_input(
    const data::Dataset& ds,
    const data::ClipOptions& clip,
    int64_t index,
    int64_t k,
    int64_t clips) {
  std::mt19937_64 rng(0); // evaluation draws nothing; the API wants one
  if (clips == 1)
    return ds.get(index, rng).input;
  at::Tensor frames;
  if (const auto* f = dynamic_cast<const data::FrameFolderDataset*>(&ds)) {
    std::vector<at::Tensor> list;
    for (auto i :
         spread_indices(f->frame_count(index), clip.num_segments, k, clips))
      list.push_back(data::read_jpeg(f->frame_path(index, i)));
    frames = torch::stack(list);
  } else if (const auto* v = dynamic_cast<const data::VideoDataset*>(&ds)) {
    data::VideoReader reader(v->path(index), clip.scale_size);
    frames = reader.read_frames(
        spread_indices(reader.frame_count(), clip.num_segments, k, clips));
  } else {
    throw std::invalid_argument(
        "--clips > 1 needs a frame-folder or video list");
  }
  return data::make_clip_sample(frames, 0, clip, rng).input;
}

} // namespace

VideoScores evaluate_video(
    const models::Model& model,
    const DatasetHandle& data,
    const DataOptions& options,
    int64_t clips,
    int64_t batch) {
  if (clips < 1 || batch < 1)
    throw std::invalid_argument("--clips and --batch must be positive");
  torch::NoGradGuard no_grad;
  model.module->eval();
  const auto clip = clip_options(options, /*training=*/false);
  const auto& ds = *data.dataset;
  eval::Accuracy acc;
  std::mt19937_64 rng(0);
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
            clips == 1 ? centred[i - start]
                       : clip_input(ds, clip, i, k, clips));
      per_clip.push_back(model.forward(torch::stack(inputs)));
    }
    acc.add(torch::stack(per_clip, 1), torch::stack(targets));
  }
  VideoScores s;
  s.videos = acc.count();
  s.top1 = acc.top1();
  s.top5 = acc.top5();
  return s;
}

VolumeScores evaluate_volumes(
    const models::Model& model,
    const DatasetHandle& data,
    const std::array<int64_t, 3>& window,
    double overlap) {
  const auto msd = std::dynamic_pointer_cast<data::MsdDataset>(data.dataset);
  if (!msd)
    throw std::invalid_argument("volume evaluation needs an --msd dataset");
  torch::NoGradGuard no_grad;
  model.module->eval();
  eval::SlidingWindowOptions sw;
  sw.window = window;
  sw.overlap = overlap;
  eval::DiceCounts dice(data.num_classes);
  for (int64_t i = 0; i < msd->size(); ++i) {
    const auto sample = msd->load_case(i);
    if (!sample.target.defined())
      throw std::invalid_argument(
          msd->cases()[i].image + ": no label to evaluate against");
    const auto pred = eval::sliding_window_labels(
        sample.input,
        [&](const at::Tensor& x) { return model.forward(x); },
        sw);
    dice.add(pred, sample.target);
  }
  VolumeScores s;
  s.class_names = msd->label_names();
  s.dice = dice.per_class();
  s.mean_foreground = dice.mean(/*skip_classes=*/1);
  s.cases = msd->size();
  return s;
}

void refuse_overwrite(const std::string& path, bool force) {
  if (!force && std::filesystem::exists(path))
    throw std::invalid_argument(path + " exists: give --force to overwrite it");
}

} // namespace cakes::cli
