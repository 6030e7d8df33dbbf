// Damaged and hostile inputs (issue 16): every parser of outside input gives
// one line naming the file and what is wrong, never a crash, silent garbage,
// or work and memory in proportion to a size the file does not back. Each
// case here was accepted silently, crashed or hung before; the fuzzers'
// findings are added here too (docs/RELIABILITY.md). Over 500 lines: one
// place for every damaged-input case, a section per parser.
#include "cakes/data/jpeg.h"
#include "cakes/data/msd_dataset.h"
#include "cakes/data/nifti.h"
#include "cakes/data/video_datasets.h"
#include "cakes/data/video_reader.h"
#include "cakes/models/model.h"
#include "cakes/models/network_config.h"
#include "cakes/models/weights.h"
#include "cakes/nn/config.h"
#include "cakes/nn/op_layer.h"
#include "cakes/ops/shrunk_conv3d.h"
#include "cakes/train/checkpoint.h"
#include "cakes/util/pickle_check.h"
#include "cakes/util/zip_check.h"

#include "data/test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/serialize/output-archive.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace fs = std::filesystem;
using cakes::data::testing::error_of;
using cakes::data::testing::run_command;
using cakes::data::testing::TempDir;

namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kNibabelData =
    "/usr/lib/python3/dist-packages/nibabel/tests/data/";
const std::string kImageio =
    "/usr/lib/python3/dist-packages/imageio/resources/images/";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(
      (std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

template <typename T> void put(std::string& bytes, size_t offset, T value) {
  std::memcpy(&bytes[offset], &value, sizeof(T));
}

std::string gzip_copy(const std::string& path) {
  run_command("gzip -c '" + path + "' > '" + path + ".gz'");
  return path + ".gz";
}

// The message of any std::exception `fn` throws ("" if none).
template <typename Fn> std::string any_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// One line that names `file` and says `what`.
void expect_error(
    const std::string& msg, const std::string& file, const std::string& what) {
  EXPECT_FALSE(msg.empty()) << "accepted: " << file << " (" << what << ")";
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 400u) << msg;
}

// Rewrites the zip `src` to `out` with python's zipfile (stored, valid
// CRCs): `entry` is a python expression of `name` and `data` (bytes) giving
// each entry's new (name, data); `extra` runs before `dst` is closed (e.g.
// to add an entry).
void rewrite_zip(
    const std::string& src,
    const std::string& out,
    const std::string& entry,
    const std::string& extra = "") {
  run_command(
      kPython +
      " -c 'import sys, zipfile\n"
      "src = zipfile.ZipFile(sys.argv[1])\n"
      "dst = zipfile.ZipFile(sys.argv[2], \"w\", zipfile.ZIP_STORED)\n"
      "for name in src.namelist():\n"
      "    data = src.read(name)\n"
      "    dst.writestr(*" +
      entry + ")\n" + extra + "dst.close()' '" + src + "' '" + out + "'");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

// A NIfTI-1 (or -2) int16 image of 4x3x2 written by nibabel, raw.
std::string
nibabel_image(const TempDir& tmp, const std::string& name, int version) {
  const std::string path = tmp / name;
  run_command(
      kPython +
      " -c 'import nibabel as nib, numpy as np, sys\n"
      "d = (np.arange(24, dtype=np.int16) - 5).reshape(4, 3, 2)\n"
      "im = nib.Nifti" +
      std::to_string(version) +
      "Image(d, np.diag([2., 3., 4., 1.]))\n"
      "im.header.set_data_dtype(np.int16)\n"
      "nib.save(im, sys.argv[1])' '" +
      path + "'");
  return path;
}

} // namespace

// ---- NIfTI -----------------------------------------------------------------

TEST(DamagedInputs, NiftiCorruptGzipBodyIsAnError) {
  TempDir tmp("damaged_gzip");
  std::string bytes = read_bytes(kNibabelData + "example4d.nii.gz");
  ASSERT_GT(bytes.size(), 10000u);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) {
    bytes[i] = static_cast<char>(~bytes[i]);
  }
  const std::string path = tmp / "corrupt.nii.gz";
  write_bytes(path, bytes);
  expect_error(error_of([&] { cakes::data::read_nifti(path); }), path, "gzip");
}

TEST(DamagedInputs, NiftiHeaderFieldsAreChecked) {
  TempDir tmp("damaged_nifti_header");
  const std::string n1 = read_bytes(nibabel_image(tmp, "n1.nii", 1));
  const std::string n2 = read_bytes(nibabel_image(tmp, "n2.nii", 2));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::string name;
    bool nifti2;
    std::function<void(std::string&)> patch;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"bitpix",
       false,
       [](std::string& b) { put<int16_t>(b, 72, 7); },
       "bitpix"},
      {"magic",
       false,
       [](std::string& b) { std::memcpy(&b[344], "xyz\0", 4); },
       "bad magic"},
      {"slope_nan",
       false,
       [&](std::string& b) { put<float>(b, 112, nan); },
       "scl_slope"},
      {"slope_inf",
       false,
       [&](std::string& b) { put<float>(b, 112, inf); },
       "scl_slope"},
      {"inter_inf",
       false,
       [&](std::string& b) {
         put<float>(b, 112, 2.f);
         put<float>(b, 116, -inf);
       },
       "scl_inter"},
      {"offset_negative",
       false,
       [](std::string& b) { put<float>(b, 108, -352.f); },
       "vox_offset"},
      {"offset_nan",
       false,
       [&](std::string& b) { put<float>(b, 108, nan); },
       "vox_offset"},
      {"offset_in_header",
       false,
       [](std::string& b) { put<float>(b, 108, 100.f); },
       "vox_offset"},
      {"offset_fraction",
       false,
       [](std::string& b) { put<float>(b, 108, 352.5f); },
       "vox_offset"},
      {"dim_zero",
       false,
       [](std::string& b) { put<int16_t>(b, 42, 0); },
       "dim[1]"},
      {"ndim", false, [](std::string& b) { put<int16_t>(b, 40, 9); }, "dim[0]"},
      {"datatype",
       false,
       [](std::string& b) { put<int16_t>(b, 70, 32); },
       "datatype"},
      {"n2_bitpix",
       true,
       [](std::string& b) { put<int16_t>(b, 14, 64); },
       "bitpix"},
      {"n2_magic", true, [](std::string& b) { b[8] = '\n'; }, "bad magic"},
      {"n2_slope_nan",
       true,
       [](std::string& b) { put<double>(b, 176, std::nan("")); },
       "scl_slope"},
      {"n2_offset_negative",
       true,
       [](std::string& b) { put<int64_t>(b, 168, -8); },
       "vox_offset"},
      {"n2_size",
       true,
       [](std::string& b) { put<int64_t>(b, 16 + 8, int64_t(1) << 40); },
       "header declares"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string bytes = c.nifti2 ? n2 : n1;
    c.patch(bytes);
    const std::string path = tmp / (c.name + ".nii");
    write_bytes(path, bytes);
    expect_error(
        error_of([&] { cakes::data::read_nifti(path); }), path, c.expected);
    const std::string gz = gzip_copy(path);
    expect_error(
        error_of([&] { cakes::data::read_nifti(gz); }), gz, c.expected);
  }
}

TEST(DamagedInputs, NiftiUnsetScalingIsNoScaling) {
  // scl_slope 0, and the pair (nan, nan), are what writers put for "not
  // scaled": the values are the stored ones.
  TempDir tmp("nifti_unset_scaling");
  const std::string base = nibabel_image(tmp, "n1.nii", 1);
  const at::Tensor raw = cakes::data::read_nifti(base).data;
  ASSERT_EQ(raw.sizes().vec(), (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(raw[1][2][1].item<float>(), 1 * 6 + 2 * 2 + 1 - 5);
  for (float slope : {0.f, std::numeric_limits<float>::quiet_NaN()}) {
    std::string bytes = read_bytes(base);
    put<float>(bytes, 112, slope);
    put<float>(bytes, 116, std::numeric_limits<float>::quiet_NaN());
    const std::string path = tmp / "unset.nii";
    write_bytes(path, bytes);
    EXPECT_TRUE(at::equal(cakes::data::read_nifti(path).data, raw)) << slope;
  }
}

TEST(DamagedInputs, NiftiDeclaredSizeIsCheckedAgainstTheFileFirst) {
  TempDir tmp("nifti_declared_size");
  const std::string base = read_bytes(nibabel_image(tmp, "n1.nii", 1));
  // 32767^3 int16 voxels (70 TB) declared by a 400-byte file: refused at
  // once, with no allocation (an attempt would throw bad_alloc or take
  // minutes).
  std::string huge = base;
  for (int d = 1; d <= 3; ++d) {
    put<int16_t>(huge, 40 + 2 * d, 32767);
  }
  const std::string path = tmp / "huge.nii";
  write_bytes(path, huge);
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(
      error_of([&] { cakes::data::read_nifti(path); }),
      path,
      "header declares 70362301923326 bytes");
  const std::string gz = gzip_copy(path);
  expect_error(
      error_of([&] { cakes::data::read_nifti(gz); }), gz, "gzip file can hold");
  EXPECT_LT(seconds_since(t0), 5.0);

  // Short by one voxel: truncated, raw and gzipped.
  const std::string cut = tmp / "cut.nii";
  write_bytes(cut, base.substr(0, base.size() - 2));
  expect_error(
      error_of([&] { cakes::data::read_nifti(cut); }), cut, "truncated");
  const std::string cut_gz = gzip_copy(cut);
  expect_error(
      error_of([&] { cakes::data::read_nifti(cut_gz); }), cut_gz, "truncated");
}

TEST(DamagedInputs, NiftiPairAndMemoryReadsMatchNibabel) {
  TempDir tmp("nifti_pair");
  const std::string hdr = tmp / "pair.hdr";
  run_command(
      kPython +
      " -c 'import nibabel as nib, numpy as np, sys\n"
      "d = (np.arange(24, dtype=np.float32) * 0.5).reshape(2, 3, 4)\n"
      "nib.save(nib.Nifti1Pair(d, np.eye(4)), sys.argv[1])' '" +
      hdr + "'");
  ASSERT_TRUE(fs::exists(tmp / "pair.img"));
  // nibabel's d[i, j, k], whatever order the file keeps it in.
  const at::Tensor expected =
      (at::arange(24, at::kFloat) * 0.5).view({2, 3, 4});
  for (const std::string& path : {hdr, tmp / "pair.img"}) {
    const cakes::data::Volume v = cakes::data::read_nifti(path);
    EXPECT_TRUE(at::equal(v.data, expected)) << path;
  }
  // In memory, gzipped: the same volume as from the file.
  const std::string gz = kNibabelData + "example4d.nii.gz";
  const std::string bytes = read_bytes(gz);
  const cakes::data::Volume a = cakes::data::read_nifti(gz);
  const cakes::data::Volume b =
      cakes::data::parse_nifti(bytes.data(), bytes.size(), "memory.nii.gz");
  EXPECT_TRUE(at::equal(a.data, b.data));
  EXPECT_EQ(a.affine, b.affine);
}

// ---- JPEG ------------------------------------------------------------------

namespace {

std::string test_jpeg(const TempDir& tmp, int64_t h, int64_t w) {
  const std::string path = tmp / "frame.jpg";
  at::Tensor rgb = (at::arange(h * w * 3, at::kInt).remainder(97) * 2)
                       .to(at::kByte)
                       .view({h, w, 3});
  cakes::data::write_jpeg(path, rgb, 90);
  return path;
}

} // namespace

TEST(DamagedInputs, TruncatedJpegIsAnErrorNotAGreyFilledFrame) {
  TempDir tmp("jpeg_truncated");
  const std::string bytes = read_bytes(test_jpeg(tmp, 64, 80));
  const std::string path = tmp / "cut.jpg";
  write_bytes(path, bytes.substr(0, bytes.size() * 9 / 10));
  expect_error(
      error_of([&] { cakes::data::read_jpeg(path); }), path, "damaged JPEG");
}

TEST(DamagedInputs, JpegDeclaringAHugeSizeIsRefusedBeforeDecoding) {
  TempDir tmp("jpeg_huge");
  std::string bytes = read_bytes(test_jpeg(tmp, 16, 16));
  // The baseline frame header: FF C0, length, precision, height, width.
  const size_t sof = bytes.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  // 60000 x 60000: below libjpeg's own limit of 65500, 10.8 GB as RGB.
  bytes[sof + 5] = bytes[sof + 7] = '\xEA';
  bytes[sof + 6] = bytes[sof + 8] = '\x60';
  const std::string path = tmp / "huge.jpg";
  write_bytes(path, bytes);
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(
      error_of([&] { cakes::data::read_jpeg(path); }), path, "60000x60000");
  EXPECT_LT(seconds_since(t0), 2.0);
}

TEST(DamagedInputs, ExtraneousBytesBetweenJpegSegmentsAreHarmless) {
  TempDir tmp("jpeg_extraneous");
  const std::string good = test_jpeg(tmp, 24, 32);
  std::string bytes = read_bytes(good);
  // Before the end marker: found while decoding (in the headers, libjpeg
  // itself refuses them).
  ASSERT_EQ(bytes.substr(bytes.size() - 2), "\xFF\xD9");
  bytes.insert(bytes.size() - 2, "\x01\x02\x03");
  const std::string path = tmp / "extraneous.jpg";
  write_bytes(path, bytes);
  EXPECT_TRUE(
      at::equal(cakes::data::read_jpeg(path), cakes::data::read_jpeg(good)));
}

// ---- Video -----------------------------------------------------------------

TEST(DamagedInputs, VideoCorruptMidFileIsAnErrorNamingTheFrame) {
  TempDir tmp("video_corrupt");
  const std::string src = kImageio + "realshort.mp4";
  std::string bytes = read_bytes(src);
  ASSERT_GT(bytes.size(), 50000u);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 2000; ++i) {
    bytes[i] = '\xFF';
  }
  const std::string path = tmp / "corrupt.mp4";
  write_bytes(path, bytes);
  const std::string msg = error_of([&] {
    cakes::data::VideoReader r(path);
    r.read_all();
  });
  expect_error(msg, path, "frame");
}

TEST(DamagedInputs, TruncatedVideoIsAnError) {
  TempDir tmp("video_truncated");
  // With its index (moov) first, as streaming files have it, a cut file
  // still opens and lists every frame; imageio's sample has the index last,
  // so a cut loses it and the file does not open.
  const std::string whole = tmp / "whole.mp4";
  run_command(
      "ffmpeg -v error -i '" + kImageio + "realshort.mp4' -c copy " +
      "-movflags +faststart '" + whole + "'");
  const std::string bytes = read_bytes(whole);
  const std::string path = tmp / "cut.mp4";
  write_bytes(path, bytes.substr(0, bytes.size() * 6 / 10));
  const std::string msg = error_of([&] {
    cakes::data::VideoReader r(path);
    r.read_frames({0, r.frame_count() - 2});
  });
  expect_error(msg, path, "truncated");

  const std::string no_index = tmp / "no_index.mp4";
  const std::string original = read_bytes(kImageio + "realshort.mp4");
  write_bytes(no_index, original.substr(0, original.size() * 6 / 10));
  expect_error(
      error_of([&] { cakes::data::VideoReader r(no_index); }),
      no_index,
      "cannot open video");
}

TEST(DamagedInputs, JpegRenamedMp4IsAnErrorNamingTheFile) {
  TempDir tmp("video_jpeg");
  const std::string path = tmp / "frame.mp4";
  fs::copy_file(test_jpeg(tmp, 32, 32), path);
  std::ofstream(tmp / "list.txt") << path << " 0\n";
  cakes::data::VideoListOptions o;
  o.list_file = tmp / "list.txt";
  o.num_classes = 2;
  cakes::data::ClipOptions clip;
  clip.num_segments = 8;
  clip.crop_size = 16;
  clip.scale_size = 16;
  clip.training = false;
  cakes::data::VideoDataset ds(o, clip);
  std::mt19937_64 rng(0);
  const std::string msg = any_error_of([&] { ds.get(0, rng); });
  expect_error(msg, path, "is a still image");
}

TEST(DamagedInputs, VideoFromMemoryMatchesTheFile) {
  const std::string path = kImageio + "realshort.mp4";
  const std::string bytes = read_bytes(path);
  cakes::data::VideoReader file(path),
      memory(bytes.data(), bytes.size(), "m.mp4");
  EXPECT_EQ(file.frame_count(), memory.frame_count());
  EXPECT_TRUE(
      at::equal(file.read_frames({3, 20, 7}), memory.read_frames({3, 20, 7})));
}

// ---- JSON: MSD dataset.json, configurations, network files ------------------

namespace {

// [[[[...1...]]]] nested `depth` deep.
std::string nested(size_t depth) {
  return std::string(depth, '[') + "1" + std::string(depth, ']');
}

// Each (text, expected) case: `parse` throws std::invalid_argument with one
// short line that says `expected`.
template <typename Parse>
void expect_short_errors(
    const std::vector<std::pair<std::string, std::string>>& cases,
    Parse&& parse) {
  for (const auto& [text, what] : cases) {
    SCOPED_TRACE(text.substr(0, 60));
    std::string msg;
    try {
      parse(text);
    } catch (const std::invalid_argument& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find(what), std::string::npos) << msg.substr(0, 300);
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    EXPECT_LT(msg.size(), 400u) << msg.substr(0, 300);
  }
}

} // namespace

TEST(DamagedInputs, MsdDatasetJsonOfTheWrongShape) {
  TempDir tmp("msd_shape");
  const std::string file = tmp / "dataset.json";
  cakes::data::MsdOptions o;
  o.root = tmp.path();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[1, 2]", "expected a JSON object"},
      {R"({"name": [1], "modality": {"0": "MRI"}, "labels": {"0": "b"}})",
       "'name' must be a string"},
      {nested(200000), "expected a JSON object"},
      {"{\"modality\": " + nested(200000) + "}", "'modality'"},
      {"{\"modality\": \"" + std::string(100000, 'x'), "not valid JSON"},
  };
  for (const auto& [text, what] : cases) {
    write_bytes(file, text);
    expect_error(error_of([&] { cakes::data::MsdDataset ds(o); }), file, what);
  }
}

TEST(DamagedInputs, Ssv2LabelFilesNestedOrHugeGiveShortErrors) {
  // A class index given as a deeply nested value was dump()ed into the
  // message (the stack overflowed); names and ids are quoted cut short.
  TempDir tmp("ssv2_nested");
  const std::string labels = tmp / "labels.json";
  const std::string list = tmp / "list.json";
  cakes::data::Ssv2Options o;
  o.labels_file = labels;
  o.list_file = list;
  const std::string good_labels = R"({"Holding something": "0"})";
  const std::string good_list =
      R"([{"id": "1", "template": "Holding [something]"}])";
  const std::string huge(100000, 'x');
  struct Case {
    std::string labels, list, file, what;
  };
  const std::vector<Case> cases = {
      {"{\"a\": " + nested(200000) + "}", good_list, labels, "an array"},
      {"{\"" + huge + "\": [1]}", good_list, labels, "has index"},
      {good_labels, "[{\"id\": \"" + huge + "\"}]", list, "no \"template\""},
      {good_labels,
       "[{\"id\": 1, \"template\": \"" + huge + "\"}]",
       list,
       "is not a class"},
      {good_labels, "[{\"id\": " + nested(200000) + "}]", list, "no \"id\""},
  };
  for (const auto& c : cases) {
    write_bytes(labels, c.labels);
    write_bytes(list, c.list);
    expect_error(
        error_of([&] { cakes::data::read_ssv2_list(o); }), c.file, c.what);
  }
}

TEST(DamagedInputs, ConfigurationsNestedOrHugeGiveShortErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // Deep nesting: dump() of these recursed until the stack overflowed.
      {"{\"3x3x3\": " + nested(100000) + "}", "must be an integer"},
      {"{\"3x3x3\": 1, \"output_index\": " + nested(100000) + "}",
       "output_index"},
      // Counts whose sum wraps int64.
      {"3x3x3:9223372036854775807,1x3x3:9223372036854775807,3x1x1:18",
       "is not a non-negative integer"},
      {"3x3x3:900000000000,1x3x3:900000000000", "more than"},
      {"{\"3x3x3\": 18446744073709551615}", "must be an integer"},
      {"99999999999999999999999x3x3:1", "exceeds the limit"},
      // An entry far past the channels: no allocation for it.
      {"3x3x3:2;output_index=0,999999999999999999", "is outside 0..1"},
      {"{\"3x3x3\": 2, \"output_index\": [0, 9223372036854775807]}",
       "is outside 0..1"},
      {"3x3x3:" + std::string(100000, '7'), "at most 18 digits"},
      {"{" + std::string(100000, ' ') + "\"x\": ", "bad configuration JSON"},
  };
  expect_short_errors(
      cases, [](const std::string& t) { cakes::Config::parse(t); });
}

TEST(DamagedInputs, NetworkConfigurationsNestedGiveShortErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"blocks\": [" + nested(100000) + "]}", "expected an object"},
      {"{\"blocks\": [{\"3x3x3\": " + nested(100000) + "}]}",
       "must be a channel count"},
      {"{\"blocks\": [{\"3x3x3\": 1, \"output_index\": [" + nested(100000) +
           "]}]}",
       "must be a channel count"},
      {"{\"blocks\": [{\"1x3x3\": {\"a\": 1}}]}", "must be a channel count"},
      {std::string(100000, '['), "not valid JSON"},
  };
  expect_short_errors(cases, [](const std::string& t) {
    cakes::models::parse_network_config(t);
  });
}

// ---- Checkpoints -----------------------------------------------------------

TEST(DamagedInputs, CheckpointWithAlteredTensorDataIsRefused) {
  TempDir tmp("checkpoint_crc");
  torch::nn::Linear model(4, 64);
  {
    torch::NoGradGuard g;
    model->weight.fill_(1234.5f);
  }
  cakes::train::CheckpointMeta meta;
  meta.epoch = 1;
  meta.step = 2;
  meta.network.network = "tiny";
  const std::string good = tmp / "good.pt";
  cakes::train::write_checkpoint(good, *model, meta);
  EXPECT_EQ(cakes::train::read_checkpoint_meta(good).epoch, 1);
  cakes::util::verify_zip_file(good);
  // In memory too (entries without an extra field once passed a null
  // pointer to memcpy: UBSan, found by fuzz_checkpoint).
  const std::string good_bytes = read_bytes(good);
  cakes::util::verify_zip(good_bytes.data(), good_bytes.size(), good);

  // Overwrite part of the weight's bytes with 0xFF, as the issue did: the
  // archive still parses, only the CRC shows it.
  std::string bytes = read_bytes(good);
  const float v = 1234.5f;
  const size_t at =
      bytes.find(std::string(reinterpret_cast<const char*>(&v), 4));
  ASSERT_NE(at, std::string::npos);
  std::memset(&bytes[at], 0xFF, 64);
  const std::string bad = tmp / "bad.pt";
  write_bytes(bad, bytes);
  expect_error(
      any_error_of([&] { cakes::train::read_checkpoint_meta(bad); }),
      bad,
      "CRC-32 mismatch");
  auto other =
      cakes::models::Model::wrap(torch::nn::Linear(4, 64), meta.network);
  expect_error(
      any_error_of([&] { cakes::train::load_checkpoint_weights(bad, other); }),
      bad,
      "CRC-32 mismatch");

  // Truncated: the directory at the end is gone.
  const std::string cut = tmp / "cut.pt";
  write_bytes(cut, bytes.substr(0, bytes.size() / 2));
  expect_error(
      any_error_of([&] { cakes::train::read_checkpoint_meta(cut); }),
      cut,
      "zip");
}

// Checkpoints carry TorchScript source (one class per module) that LibTorch
// compiles on load; its parser crashed on a class body fuzz_checkpoint had
// altered behind valid CRCs. Such files are refused before LibTorch reads
// them.
TEST(DamagedInputs, CheckpointWithAlteredClassSourceIsRefused) {
  TempDir tmp("checkpoint_code");
  torch::nn::Linear model(4, 3);
  cakes::train::CheckpointMeta meta;
  meta.network.network = "tiny";
  const std::string good = tmp / "good.pt";
  cakes::train::write_checkpoint(good, *model, meta);
  auto rewrite = [&](const std::string& out,
                     const std::string& edit,
                     const std::string& extra) {
    rewrite_zip(good, out, "(name, " + edit + ")", extra);
  };
  // Unchanged but rewritten: still a checkpoint (the check is about content,
  // not about how the zip was written).
  const std::string same = tmp / "same.pt";
  rewrite(same, "data", "");
  EXPECT_EQ(cakes::train::read_checkpoint_meta(same).network.network, "tiny");

  const std::string renamed = tmp / "renamed.pt";
  rewrite(
      renamed,
      "data.replace(b\"__buffers__\", b\"__buffery__\") "
      "if name.endswith(\".py\") else data",
      "");
  expect_error(
      any_error_of([&] { cakes::train::read_checkpoint_meta(renamed); }),
      renamed,
      "unexpected line");

  const std::string loop = tmp / "loop.pt";
  rewrite(
      loop,
      "data + b\"  loop : __torch__.___torch_mangle_0.Module\\n\" "
      "if name.endswith(\"mangle_0.py\") else data",
      "");
  auto m = cakes::models::Model::wrap(torch::nn::Linear(4, 3), meta.network);
  expect_error(
      any_error_of([&] { cakes::train::load_checkpoint_weights(loop, m); }),
      loop,
      "contains itself");

  const std::string extra = tmp / "extra.pt";
  rewrite(
      extra,
      "data",
      "dst.writestr(\"archive/code/__torch__/evil.py\", b\"def f(): "
      "pass\\n\")\n");
  expect_error(
      any_error_of([&] { cakes::train::read_checkpoint_meta(extra); }),
      extra,
      "unexpected entry");
}

// A torch.save zip whose folder or version record LibTorch's reader refuses:
// its constructor then threw and leaked miniz's state (fuzz_torch_file,
// LeakSanitizer). read_torch_file refuses such files before LibTorch sees
// them; a valid one still reads.
TEST(DamagedInputs, TorchSaveZipWithBadVersionRecordIsRefusedFirst) {
  TempDir tmp("torch_zip_version");
  const std::string good = tmp / "good.pt";
  run_command(
      kPython + " -c 'import sys, torch; torch.save({\"a\": torch.ones(2)}, " +
      "sys.argv[1])' '" + good + "'");
  EXPECT_EQ(cakes::models::read_torch_file(good).tensors.size(), 1u);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"(name, b\"Z3\" if name.endswith(\"/version\") else data)",
       "its version record 'Z3' is not a format version from 1 to 10"},
      {"(name, b\"99\\n\" if name.endswith(\"/version\") else data)",
       "is not a format version from 1 to 10"},
      {"(name.split(\"/\", 1)[1], data)", "its first entry is not in a folder"},
      {"(name.replace(\"version\", \"verzion\"), data)",
       "it has no version record"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string bad = tmp / ("bad" + std::to_string(i) + ".pt");
    rewrite_zip(good, bad, cases[i].first);
    expect_error(
        any_error_of([&] { cakes::models::read_torch_file(bad); }),
        bad,
        cases[i].second);
  }
}

// Pickles may build cycles: a list appended to itself through the memo, a
// dict set as its own value. Our unpickler's objects held each other and were
// never freed (fuzz_torch_file, LeakSanitizer, session 22); now the read cuts
// every link when it ends. Both formats, both kinds of cycle: a one-line
// error naming the entry, and (under make test-sanitize) no leak.
TEST(DamagedInputs, TorchFileWithACyclicPickleIsRefusedWithoutLeaking) {
  TempDir tmp("torch_cycle");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"l = []; l.append(l); d[\"loop\"] = l", "entry 'loop' is a list"},
      {"d[\"self\"] = d", "entry 'self' is a dict"},
  };
  for (const char* zip : {"True", "False"})
    for (size_t i = 0; i < cases.size(); ++i) {
      const std::string path =
          tmp / (std::string(zip) + std::to_string(i) + ".pt");
      run_command(
          kPython + " -c 'import sys, torch\nd = {\"w\": torch.ones(2)}\n" +
          cases[i].first + "\ntorch.save(d, sys.argv[1], " +
          "_use_new_zipfile_serialization=" + zip + ")' '" + path + "'");
      expect_error(
          any_error_of([&] { cakes::models::read_torch_file(path); }),
          path,
          cases[i].second);
    }
}

// The pickle inside a checkpoint: LibTorch's unpickler reserved what a
// length said (4 GB from a 10 KB file, found by fuzz_checkpoint) and grew its
// memo table to any index. Python's own pickles of protocols 2 and 4 pass.
TEST(DamagedInputs, PickleLengthsAndMemoIndicesAreBounded) {
  TempDir tmp("pickle");
  for (int protocol : {2, 4}) {
    const std::string path = tmp / ("p" + std::to_string(protocol) + ".pkl");
    run_command(
        kPython +
        " -c 'import pickle, sys, collections\n"
        "o = collections.OrderedDict(a=[1, 2.5, \"x\" * 300, b\"yz\" * 200], "
        "b=(True, None, 2**70, -3), c={\"d\": {1, 2}})\n"
        "o[\"e\"] = o[\"a\"]\n"
        "open(sys.argv[1], \"wb\").write(pickle.dumps(o, protocol=" +
        std::to_string(protocol) + "))' '" + path + "'");
    const std::string good = read_bytes(path);
    ASSERT_GT(good.size(), 100u);
    cakes::util::verify_pickle(good.data(), good.size(), path);
    // Cut anywhere: an error, never a read past the end.
    for (std::size_t cut = 0; cut < good.size(); cut += 7) {
      EXPECT_THROW(
          cakes::util::verify_pickle(good.data(), cut, path),
          std::runtime_error)
          << "cut at " << cut;
    }
  }
  const auto error = [](const std::string& bytes) {
    return any_error_of([&] {
      cakes::util::verify_pickle(bytes.data(), bytes.size(), "x.pkl");
    });
  };
  // BINUNICODE of 4 GB in 12 bytes.
  expect_error(
      error(std::string(
          "\x80\x02X\xff\xff\xff\xff"
          "abc.",
          12)),
      "x.pkl",
      "length of 4294967295");
  // LONG_BINPUT of index 2^31 with nothing memoised.
  expect_error(
      error(std::string(
          "\x80\x02N"
          "r\x00\x00\x00\x80"
          ".",
          9)),
      "x.pkl",
      "memo index 2147483648");
  expect_error(
      error(std::string(
          "\x80\x02N"
          "h\x00"
          ".",
          6)),
      "x.pkl",
      "memo index 0");
  expect_error(error(std::string("\x80\x02\xff.", 4)), "x.pkl", "0xff");
  expect_error(error(std::string("\x80\x02N", 3)), "x.pkl", "STOP");
}

// ---- Sizes that overflowed or divided by zero -------------------------------

TEST(DamagedInputs, MacCounterRefusesStrideZeroAndOverflow) {
  const std::vector<at::Tensor> w = {at::zeros({4, 4, 3, 3, 3})};
  EXPECT_NE(
      any_error_of([&] {
        cakes::ops::shrunk_conv3d_macs({1, 4, 8, 8, 8}, w, {0, 1, 1});
      }).find("stride"),
      std::string::npos);
  EXPECT_NE(
      any_error_of([&] {
        cakes::ops::shrunk_conv3d_macs(
            {100000, 4, 100000, 100000, 100000}, w, {1, 1, 1});
      }).find("overflow"),
      std::string::npos);
  EXPECT_EQ(
      cakes::ops::shrunk_conv3d_macs({2, 4, 8, 8, 8}, w, {2, 1, 1}),
      2 * 4 * 8 * 8 * 4 * 27 * 4);
}

TEST(DamagedInputs, LayerCostRefusesOverflowingSizes) {
  cakes::nn::OpLayer layer(
      cakes::nn::OpLayerOptions(3, cakes::Config::parse("3x3x3:8,1x3x3:8")));
  const auto row = layer->cost("conv", {1, 3, 4, 8, 8});
  EXPECT_EQ(row.macs, 4 * 8 * 8 * 3 * (8 * 27 + 8 * 9));
  const std::string msg = any_error_of([&] {
    layer->cost("conv", {100000, 3, 100000, 100000, 100000});
  });
  EXPECT_NE(msg.find("overflows"), std::string::npos) << msg;
  EXPECT_NE(msg.find("conv"), std::string::npos) << msg;
}
