// cakes synth: a video task only motion solves. A white square moves left,
// right, up or down (the four classes) among static coloured distractors on a
// noisy background. Every trajectory is symmetric about a centre drawn from
// the same distribution for all classes, so the set of square positions in a
// clip is the same for the two directions along an axis: a network that looks
// at frames one at a time (2D + temporal averaging) can tell the axis
// (horizontal or vertical: the positions lie on a horizontal or a vertical
// segment) but not the direction, so it is capped at 50% (docs/FIDELITY.md).
//
// Output (TRN layout, docs/CAKES.md §7): frames/<video>/{:05d}.jpg, train.txt
// and val.txt (`frames/<video> num_frames label`), category.txt; and mp4 files
// encoded by the ffmpeg program (libx264 when present, else mpeg4) listed in
// train_videos.txt / val_videos.txt (`videos/<video>.mp4 label`).
#include "commands.h"

#include "cakes/data/jpeg.h"
#include "cakes/data/video_writer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

namespace fs = std::filesystem;

namespace cakes::cli {
namespace {

const char* kClasses[] = {
    "moving left", "moving right", "moving up", "moving down"};

struct SynthArgs {
  std::string out, format = "both";
  int64_t videos = 200, val_videos = 0, frames = 16, size = 48;
  uint64_t seed = 0;
  bool force = false;
};

// (T, S, S, 3) uint8 frames of one video of class `label`.
at::Tensor
render(int64_t label, int64_t frames, int64_t size, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double s = double(size);
  auto video = torch::empty({frames, size, size, 3}, torch::kFloat);
  // Background: a random dark tint plus per-pixel noise in every frame.
  const auto tint = torch::tensor(
      {float(0.1 + 0.2 * u(rng)),
       float(0.1 + 0.2 * u(rng)),
       float(0.1 + 0.2 * u(rng))});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(rng());
  video.copy_(tint.view({1, 1, 1, 3}).expand_as(video));
  video.add_(torch::randn(video.sizes(), gen) * 0.06);

  // Static distractors: three discs of random saturated colours.
  const auto yy = torch::arange(size, torch::kFloat).view({size, 1});
  const auto xx = torch::arange(size, torch::kFloat).view({1, size});
  for (int d = 0; d < 3; ++d) {
    const double r = s / 12 + u(rng) * s / 12;
    const double cy = r + u(rng) * (s - 2 * r), cx = r + u(rng) * (s - 2 * r);
    const auto disc = ((yy - cy).pow(2) + (xx - cx).pow(2)) <= r * r;
    const int hue = int(u(rng) * 3);
    const auto colour = torch::tensor(
        {hue == 0 ? 0.9f : 0.2f,
         hue == 1 ? 0.9f : 0.2f,
         hue == 2 ? 0.9f : 0.2f});
    video.index_put_({torch::indexing::Slice(), disc}, colour);
  }

  // The square: half-side h, total travel `travel` over the clip, centred at
  // (cy, cx) at the middle frame.
  const double h = std::max(2.0, s / 12);
  const double travel = s / 2;
  const bool horizontal = label < 2;
  const double dir = (label == 0 || label == 2) ? -1.0 : 1.0;
  const double lo_move = h + travel / 2, hi_move = s - h - travel / 2;
  const double along = lo_move + u(rng) * (hi_move - lo_move);
  const double across = h + u(rng) * (s - 2 * h);
  for (int64_t t = 0; t < frames; ++t) {
    const double off = dir * travel * (double(t) / double(frames - 1) - 0.5);
    const double cy = horizontal ? across : along + off;
    const double cx = horizontal ? along + off : across;
    const auto side = int64_t(std::lround(2 * h));
    const auto y0 = std::clamp<int64_t>(std::lround(cy - h), 0, size - side);
    const auto x0 = std::clamp<int64_t>(std::lround(cx - h), 0, size - side);
    video[t].narrow(0, y0, side).narrow(1, x0, side).fill_(1.0);
  }
  return (video.clamp(0, 1) * 255).round().to(torch::kUInt8).contiguous();
}

void run_synth(const SynthArgs& a) {
  if (a.size < 16 || a.size % 2 != 0)
    throw std::invalid_argument("--size must be even and at least 16");
  if (a.frames < 2)
    throw std::invalid_argument("--frames must be at least 2");
  const bool frames_out = a.format != "mp4", mp4_out = a.format != "frames";
  const fs::path root(a.out);
  const fs::path marker = root / "category.txt";
  if (fs::exists(marker) && !a.force)
    throw std::invalid_argument(
        marker.string() + " exists: give --force to overwrite the data set");
  for (const char* sub : {"frames", "videos"})
    fs::remove_all(root / sub);
  fs::create_directories(root);
  const std::string encoder = mp4_out ? data::video_encoder("x.mp4") : "";
  {
    std::ofstream cat(marker);
    for (const char* c : kClasses)
      cat << c << "\n";
  }
  const int64_t val =
      a.val_videos > 0 ? a.val_videos : std::max<int64_t>(4, a.videos / 4);
  std::mt19937_64 rng(a.seed);
  int64_t made = 0;
  for (const std::string split : {"train", "val"}) {
    const int64_t n = split == "train" ? a.videos : val;
    std::ofstream frames_list, videos_list;
    if (frames_out)
      frames_list.open(root / (split + ".txt"));
    if (mp4_out)
      videos_list.open(root / (split + "_videos.txt"));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t label = i % 4; // balanced classes
      char name[64];
      std::snprintf(
          name, sizeof name, "%s_%05lld", split.c_str(), (long long)i);
      const auto video = render(label, a.frames, a.size, rng);
      if (frames_out) {
        const fs::path dir = root / "frames" / name;
        fs::create_directories(dir);
        for (int64_t t = 0; t < a.frames; ++t) {
          char f[32];
          std::snprintf(f, sizeof f, "%05lld.jpg", (long long)t + 1);
          data::write_jpeg((dir / f).string(), video[t], /*quality=*/95);
        }
        frames_list << "frames/" << name << " " << a.frames << " " << label
                    << "\n";
      }
      if (mp4_out) {
        fs::create_directories(root / "videos");
        data::write_video(
            (root / "videos" / (std::string(name) + ".mp4")).string(), video);
        videos_list << "videos/" << name << ".mp4 " << label << "\n";
      }
      if (++made % 50 == 0)
        std::cout << "synth: " << made << "/" << a.videos + val << " videos\n"
                  << std::flush;
    }
    if ((frames_out && !frames_list) || (mp4_out && !videos_list))
      throw std::runtime_error(
          a.out + ": cannot write the " + split + " lists");
  }
  std::cout << "synth: " << a.videos << " training and " << val
            << " validation videos, " << a.frames << " frames of " << a.size
            << "x" << a.size << ", 4 classes, in " << a.out
            << (mp4_out ? " (mp4 via " + encoder + ")" : "") << "\n";
}

} // namespace

void add_synth(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  auto* c = app.add_subcommand(
      "synth",
      "generate a motion-direction video task (JPEG frame folders and mp4)");
  c->add_option("--out", a->out, "output folder")->required();
  c->add_option("--videos", a->videos, "training videos")
      ->check(CLI::PositiveNumber);
  c->add_option(
      "--val-videos", a->val_videos, "validation videos (0: videos/4)");
  c->add_option("--frames", a->frames, "frames per video")
      ->check(CLI::PositiveNumber);
  c->add_option("--size", a->size, "frame side in pixels (even)")
      ->check(CLI::PositiveNumber);
  c->add_option("--format", a->format, "frames | mp4 | both")
      ->check(CLI::IsMember({"frames", "mp4", "both"}));
  c->add_option("--seed", a->seed, "random seed");
  c->add_flag("--force", a->force, "overwrite an existing data set");
  c->callback([a] { run_synth(*a); });
}

} // namespace cakes::cli
