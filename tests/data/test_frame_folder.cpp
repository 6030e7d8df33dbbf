// Frame folders in the TRN layout, written by the test with libjpeg-turbo and
// read back through FrameFolderDataset.
#include "cakes/data/jpeg.h"
#include "cakes/data/video_datasets.h"

#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace cakes::data;
using namespace cakes::data::testing;

namespace {

constexpr int64_t kH = 24, kW = 32;

FrameFolderOptions options_for(const TempDir& tmp) {
  FrameFolderOptions o;
  o.list_file = tmp / "list.txt";
  o.category_file = tmp / "category.txt";
  return o;
}

} // namespace

TEST(Jpeg, RoundTripWithinJpegTolerance) {
  TempDir tmp("jpeg_roundtrip");
  at::Tensor img = at::empty({kH, kW, 3}, at::kByte);
  for (int64_t y = 0; y < kH; ++y)
    for (int64_t x = 0; x < kW; ++x)
      for (int64_t c = 0; c < 3; ++c)
        img[y][x][c] = synthetic_pixel(0, 3, y, x, c);
  write_jpeg(tmp / "a.jpg", img, 98);
  at::Tensor back = read_jpeg(tmp / "a.jpg");
  ASSERT_EQ(back.sizes(), img.sizes());
  EXPECT_LE((back.to(at::kInt) - img.to(at::kInt)).abs().max().item<int>(), 4);

  std::ofstream(tmp / "bad.jpg") << "not a jpeg";
  const std::string msg = error_of([&] { read_jpeg(tmp / "bad.jpg"); });
  EXPECT_NE(msg.find(tmp / "bad.jpg"), std::string::npos) << msg;
}

TEST(FrameFolder, RoundTripShapeLabelAndPixels) {
  TempDir tmp("ff_roundtrip");
  write_frame_folders(tmp.path(), {12, 9}, {2, 0}, 3, kH, kW);
  FrameFolderOptions o = options_for(tmp);
  o.num_classes = 0; // taken from category.txt
  ClipOptions clip = identity_eval(4, kH);
  clip.crop_size = kH; // 24x24 centre of the 24x32 frames
  FrameFolderDataset ds(o, clip);
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.num_classes(), 3);

  std::mt19937_64 rng(0);
  Sample s = ds.get(0, rng);
  ASSERT_EQ(s.input.sizes().vec(), (std::vector<int64_t>{3, 4, kH, kH}));
  EXPECT_EQ(s.target.item<int64_t>(), 2);
  // Centre sampling of 12 frames in 4 segments: tick 3 -> frames 1, 4, 7, 10
  // (0-based), i.e. files 00002.jpg, 00005.jpg, ...
  const std::vector<int64_t> frames{1, 4, 7, 10};
  const int64_t left = (kW - kH) / 2;
  at::Tensor expected = at::empty({3, 4, kH, kH});
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t y = 0; y < kH; ++y)
        for (int64_t x = 0; x < kH; ++x)
          expected[c][t][y][x] =
              synthetic_pixel(0, frames[t], y, x + left, c) / 255.0;
  const double err = (s.input - expected).abs().max().item<double>();
  EXPECT_LT(err, 5.0 / 255.0);
  // A neighbouring frame differs by 8 levels: the test can tell frames apart.
  EXPECT_GT(
      (s.input.narrow(1, 0, 1) - expected.narrow(1, 1, 1))
          .abs()
          .mean()
          .item<double>(),
      20.0 / 255.0);

  EXPECT_EQ(ds.get(1, rng).target.item<int64_t>(), 0);
}

TEST(FrameFolder, V2TemplateAndTrainingShape) {
  TempDir tmp("ff_v2");
  write_frame_folders(tmp.path(), {10}, {1}, 2, kH, kW, /*digits=*/6);
  FrameFolderOptions o = options_for(tmp);
  o.frame_template = "{:06d}.jpg";
  ClipOptions clip;
  clip.num_segments = 3;
  clip.crop_size = 16;
  FrameFolderDataset ds(o, clip);
  std::mt19937_64 rng(3);
  Sample s = ds.get(0, rng);
  EXPECT_EQ(s.input.sizes().vec(), (std::vector<int64_t>{3, 3, 16, 16}));
  EXPECT_EQ(
      ds.frame_path(0, 0),
      (fs::path(tmp.path()) / "video0" / "000001.jpg").string());
}

TEST(FrameFolder, MissingFrameIsAnErrorNamingTheFrame) {
  TempDir tmp("ff_missing");
  write_frame_folders(tmp.path(), {12}, {1}, 3, kH, kW);
  FrameFolderDataset ds(options_for(tmp), identity_eval(4, kH));
  const std::string gone = ds.frame_path(0, 7); // a centre-sampled frame
  fs::remove(gone);
  std::mt19937_64 rng(0);
  const std::string msg = error_of([&] { ds.get(0, rng); });
  EXPECT_NE(msg.find(gone), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(FrameFolder, CountLargerThanTheFolderNamesFrameAndListLine) {
  TempDir tmp("ff_count");
  write_frame_folders(tmp.path(), {6}, {1}, 3, kH, kW);
  FrameFolderOptions o = options_for(tmp);
  std::ofstream(o.list_file) << "\nvideo0 40 1\n"; // folder holds 6 frames
  FrameFolderDataset ds(o, identity_eval(4, kH));
  std::mt19937_64 rng(0);
  const std::string msg = error_of([&] { ds.get(0, rng); });
  // Centre sampling of 40 frames in 4 segments first wants frame 6 (0-based
  // 5), which exists; the second, 0-based 15, does not.
  EXPECT_NE(msg.find(ds.frame_path(0, 15)), std::string::npos) << msg;
  EXPECT_NE(msg.find(o.list_file + ":2"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(FrameFolder, BadListLinesAreErrorsNamingTheFile) {
  TempDir tmp("ff_badlist");
  write_frame_folders(tmp.path(), {5}, {1}, 3, kH, kW);
  FrameFolderOptions o = options_for(tmp);
  const std::vector<std::pair<std::string, std::string>> cases{
      {"video0 five 1\n", "frame count"},
      {"video0 -3 1\n", "frame count"},
      {"video0 5\n", "expected"},
      {"video0 5 1\nvideo0 5 3\n", "label 3"}, // 3 classes: labels 0..2
      {"video0 5 -1\n", "label -1"},
  };
  for (const auto& [content, what] : cases) {
    std::ofstream(o.list_file) << content;
    const std::string msg =
        error_of([&] { FrameFolderDataset d(o, identity_eval(2, kH)); });
    EXPECT_NE(msg.find(o.list_file), std::string::npos)
        << content << " -> " << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << content << " -> " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  std::ofstream(o.list_file) << "video0 5 2\n";
  EXPECT_NO_THROW(FrameFolderDataset(o, identity_eval(2, kH)));
}
