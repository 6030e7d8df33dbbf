// Video decoding on the real mp4 files shipped by python3-imageio, checked
// against ffprobe/ffmpeg from the ffmpeg package.
#include "cakes/data/video_datasets.h"
#include "cakes/data/video_reader.h"

#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace cakes::data;
using namespace cakes::data::testing;

namespace {

const std::string kImageio =
    "/usr/lib/python3/dist-packages/imageio/resources/images/";

// Frames counted by a full decode in ffprobe (independent of our reader).
int64_t ffprobe_frame_count(const std::string& path) {
  const std::string out = run_command(
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=nb_read_frames -of csv=p=0 '" +
      path + "'");
  return static_cast<int64_t>(parse_numbers(out).at(0));
}

} // namespace

TEST(VideoReader, FrameCountMatchesFullDecode) {
  for (const char* name : {"realshort.mp4", "cockatoo.mp4"}) {
    const std::string path = kImageio + name;
    SCOPED_TRACE(path);
    ASSERT_TRUE(fs::exists(path)) << "sample missing: run `make deps`";
    const int64_t expected = ffprobe_frame_count(path);
    VideoReader reader(path);
    EXPECT_EQ(reader.frame_count(), expected);
  }
  VideoReader reader(kImageio + "realshort.mp4");
  at::Tensor all = reader.read_all();
  EXPECT_EQ(all.size(0), ffprobe_frame_count(kImageio + "realshort.mp4"));
  EXPECT_EQ(all.size(1), reader.height());
  EXPECT_EQ(all.size(2), reader.width());
  EXPECT_EQ(all.size(3), 3);
}

TEST(VideoReader, SeekingReturnsTheSameFramesAsSequentialDecoding) {
  const std::string path = kImageio + "realshort.mp4";
  at::Tensor all = VideoReader(path).read_all();
  VideoReader reader(path);
  // Unsorted, repeated and backward requests.
  const std::vector<int64_t> idx{30, 2, 17, 17, 35, 0, 9};
  at::Tensor got = reader.read_frames(idx);
  ASSERT_EQ(got.size(0), static_cast<int64_t>(idx.size()));
  for (size_t i = 0; i < idx.size(); ++i) {
    EXPECT_TRUE(at::equal(got[i], all[idx[i]])) << "frame " << idx[i];
  }
  // Past the end: the last frame.
  EXPECT_TRUE(at::equal(reader.read_frames({500})[0], all[all.size(0) - 1]));
}

TEST(VideoReader, SegmentsAreReadBySeekingAndMatchFfmpeg) {
  const std::string path = kImageio + "cockatoo.mp4";
  TempDir tmp("video_seek");
  VideoReader reader(path);
  const int64_t n = reader.frame_count();
  const int64_t wanted = 250;
  at::Tensor got = reader.read_frames({5, wanted});
  // Seeking skipped most of the stream (a 280-frame h264 file with regular
  // key frames); decoding every frame up to 250 would take 251.
  EXPECT_LT(reader.frames_decoded(), wanted) << "of " << n;

  // ffmpeg's own decode of frame 250 (by decode position), as raw RGB.
  const std::string raw = tmp / "f.rgb";
  run_command(
      "ffmpeg -v error -i '" + path + "' -vf 'select=eq(n\\," +
      std::to_string(wanted) + ")' -vframes 1 -f rawvideo -pix_fmt rgb24 '" +
      raw + "'");
  std::ifstream in(raw, std::ios::binary);
  std::string bytes(
      (std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(
      static_cast<int64_t>(bytes.size()), reader.height() * reader.width() * 3);
  at::Tensor ref =
      at::from_blob(
          bytes.data(), {reader.height(), reader.width(), 3}, at::kByte)
          .to(at::kFloat);
  const double mad = (got[1].to(at::kFloat) - ref).abs().mean().item<double>();
  // Colour conversion rounding differs a little between swscale settings;
  // a wrong frame differs by far more (the bird moves).
  EXPECT_LT(mad, 2.0);
  const double mad_other =
      (got[0].to(at::kFloat) - ref).abs().mean().item<double>();
  EXPECT_GT(mad_other, 4 * mad + 1.0) << "frames 5 and 250 should differ";
}

TEST(VideoReader, ScalesToTheShortSideWhileConverting) {
  const std::string path = kImageio + "cockatoo.mp4";
  VideoReader native(path);
  VideoReader small(path, /*short_side=*/144);
  EXPECT_EQ(small.height(), 144);
  EXPECT_EQ(small.width(), 256); // 1280x720 keeps 16:9
  at::Tensor a = native.read_frames({40});
  at::Tensor b = small.read_frames({40});
  ASSERT_EQ(b.sizes().vec(), (std::vector<int64_t>{1, 144, 256, 3}));
  // Same picture: block averages of the native frame match the small one.
  at::Tensor pooled = at::adaptive_avg_pool2d(
      a.permute({0, 3, 1, 2}).to(at::kFloat), {144, 256});
  at::Tensor diff = pooled - b.permute({0, 3, 1, 2}).to(at::kFloat);
  EXPECT_LT(diff.abs().mean().item<double>(), 6.0);
}

TEST(VideoReader, UnreadableVideoIsAOneLineErrorNamingTheFile) {
  TempDir tmp("video_bad");
  const std::string bad = tmp / "not_a_video.mp4";
  std::ofstream(bad) << "this is not a video\n";
  for (const std::string& path : {bad, tmp / "missing.webm"}) {
    const std::string msg = error_of([&] { VideoReader r(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(VideoDataset, EvaluationClipFromAListFile) {
  TempDir tmp("video_dataset");
  std::ofstream(tmp / "list.txt") << kImageio + "realshort.mp4 2\n"
                                  << kImageio + "realshort.mp4 0\n";
  VideoListOptions opts;
  opts.list_file = tmp / "list.txt";
  opts.num_classes = 3;
  ClipOptions clip;
  clip.training = false;
  clip.num_segments = 4;
  clip.crop_size = 112;
  clip.scale_size = 128;
  VideoDataset ds(opts, clip);
  ASSERT_EQ(ds.size(), 2);
  std::mt19937_64 rng(1);
  Sample s = ds.get(0, rng);
  EXPECT_EQ(s.input.sizes().vec(), (std::vector<int64_t>{3, 4, 112, 112}));
  EXPECT_EQ(s.target.item<int64_t>(), 2);
  EXPECT_EQ(ds.get(1, rng).target.item<int64_t>(), 0);

  std::ofstream(tmp / "bad.txt") << kImageio + "realshort.mp4 7\n";
  opts.list_file = tmp / "bad.txt";
  const std::string msg = error_of([&] { VideoDataset d(opts, clip); });
  EXPECT_NE(msg.find(opts.list_file), std::string::npos) << msg;
}
