// NIfTI reading checked against nibabel on the real sample files shipped by
// python3-nibabel and python3-dipy; values are computed by nibabel at test
// time, not copied into the test.
#include "cakes/data/nifti.h"

#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace cakes::data;
using namespace cakes::data::testing;

namespace {

const std::string kNibabelData =
    "/usr/lib/python3/dist-packages/nibabel/tests/data/";
const std::string kDipyData = "/usr/lib/python3/dist-packages/dipy/data/files/";
const std::string kPython = "/usr/bin/python3";

// nibabel's view of a file: shape, 4x4 affine, sum, and a checksum weighted
// by the C-order position (i % 7), which changes under any axis permutation.
struct Reference {
  std::vector<int64_t> shape;
  std::vector<double> affine;
  double sum = 0, weighted = 0;
};

Reference nibabel_reference(const std::string& path) {
  const std::string script =
      "import nibabel as nib, numpy as np, sys\n"
      "im = nib.load(sys.argv[1]); d = np.asarray(im.get_fdata(), "
      "dtype=np.float64)\n"
      "w = (np.arange(d.size) % 7).reshape(d.shape)\n"
      "print(d.ndim, *d.shape, *im.affine.ravel(), d.sum(), (d * w).sum())\n";
  const std::string out = run_command(kPython + " -c '" + script + "' " + path);
  std::vector<double> n = parse_numbers(out);
  Reference r;
  const int64_t ndim = static_cast<int64_t>(n.at(0));
  for (int64_t i = 0; i < ndim; ++i) {
    r.shape.push_back(static_cast<int64_t>(n.at(1 + i)));
  }
  r.affine.assign(n.begin() + 1 + ndim, n.begin() + 17 + ndim);
  r.sum = n.at(17 + ndim);
  r.weighted = n.at(18 + ndim);
  return r;
}

void expect_matches_nibabel(const std::string& path, int expected_version) {
  SCOPED_TRACE(path);
  ASSERT_TRUE(fs::exists(path)) << "sample missing: run `make deps`";
  const Reference ref = nibabel_reference(path);
  const Volume v = read_nifti(path);
  EXPECT_EQ(v.nifti_version, expected_version);
  EXPECT_EQ(v.data.sizes().vec(), ref.shape);
  EXPECT_EQ(v.data.scalar_type(), at::kFloat);
  for (int i = 0; i < 16; ++i) {
    EXPECT_NEAR(
        v.affine[i], ref.affine[i], 1e-4 * (1 + std::abs(ref.affine[i])))
        << "affine " << i;
  }
  at::Tensor d = v.data.to(at::kDouble);
  at::Tensor w = at::arange(d.numel(), at::kLong)
                     .remainder(7)
                     .to(at::kDouble)
                     .view(d.sizes());
  const double tol = 1e-5 * (1 + std::abs(ref.sum));
  EXPECT_NEAR(d.sum().item<double>(), ref.sum, tol);
  EXPECT_NEAR(
      (d * w).sum().item<double>(),
      ref.weighted,
      1e-5 * (1 + std::abs(ref.weighted)));
}

} // namespace

TEST(Nifti, BigEndianInt16MatchesNibabel) {
  expect_matches_nibabel(kNibabelData + "anatomical.nii", 1);
}

TEST(Nifti, BigEndianFloat32MatchesNibabel) {
  expect_matches_nibabel(kNibabelData + "reoriented_anat_moved.nii", 1);
}

TEST(Nifti, Gzip4DMatchesNibabel) {
  expect_matches_nibabel(kNibabelData + "example4d.nii.gz", 1);
}

TEST(Nifti, Nifti2MatchesNibabel) {
  expect_matches_nibabel(kNibabelData + "example_nifti2.nii.gz", 2);
}

TEST(Nifti, DipyFloat64AndUint16MatchNibabel) {
  expect_matches_nibabel(kDipyData + "test_piesno.nii.gz", 1);
  expect_matches_nibabel(kDipyData + "S0_10slices.nii.gz", 1);
}

TEST(Nifti, SpacingIsPixdim) {
  const std::string path = kNibabelData + "anatomical.nii";
  std::vector<double> zooms = parse_numbers(run_command(
      kPython + " -c 'import nibabel as nib; print(*nib.load(\"" + path +
      "\").header.get_zooms()[:3])'"));
  const Volume v = read_nifti(path);
  for (int d = 0; d < 3; ++d) {
    EXPECT_NEAR(v.spacing[d], zooms.at(d), 1e-6);
  }
}

TEST(Nifti, ScaleSlopeAndInterceptApplied) {
  TempDir tmp("nifti_scaled");
  const std::string path = tmp / "scaled.nii.gz";
  // nibabel resets scaling on save, so write raw int16 and then set
  // scl_slope = 2.5, scl_inter = -3 in the header bytes (offsets 112, 116).
  run_command(
      kPython +
      " -c '"
      "import nibabel as nib, numpy as np, struct, gzip\n"
      "d = (np.arange(60, dtype=np.int16).reshape(3, 4, 5) - 20)\n"
      "im = nib.Nifti1Image(d, np.diag([2., 3., 4., 1.]))\n"
      "im.header.set_data_dtype(np.int16)\n"
      "nib.save(im, \"" +
      tmp.path() +
      "/raw.nii\")\n"
      "b = bytearray(open(\"" +
      tmp.path() +
      "/raw.nii\", \"rb\").read())\n"
      "b[112:120] = struct.pack(\"<ff\", 2.5, -3.0)\n"
      "gzip.open(\"" +
      path + "\", \"wb\").write(bytes(b))' ");
  const Reference ref = nibabel_reference(path);
  const Volume v = read_nifti(path);
  // Raw sum is sum(arange(60) - 20) = 570; scaled: 2.5 * 570 - 3 * 60 = 1245.
  EXPECT_NEAR(ref.sum, 1245.0, 1e-9); // the fixture really is scaled
  EXPECT_NEAR(v.data.sum().item<double>(), ref.sum, 1e-3);
  EXPECT_NEAR(
      v.data[1][2][3].item<double>(),
      2.5 * (1 * 20 + 2 * 5 + 3 - 20) - 3.0,
      1e-5);
}

TEST(Nifti, InvalidFileIsAClearError) {
  TempDir tmp("nifti_invalid");
  const std::string path = tmp / "garbage.nii";
  std::ofstream(path) << std::string(600, 'x');
  const std::string msg = error_of([&] { read_nifti(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("NIfTI"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  const std::string missing = tmp / "absent.nii.gz";
  const std::string msg2 = error_of([&] { read_nifti(missing); });
  EXPECT_NE(msg2.find(missing), std::string::npos) << msg2;
}

TEST(Nifti, TruncatedGzipIsAOneLineErrorNamingTheFile) {
  TempDir tmp("nifti_truncated");
  const std::string src = kNibabelData + "example4d.nii.gz";
  const std::string path = tmp / "truncated.nii.gz";
  std::ifstream in(src, std::ios::binary);
  std::string bytes(
      (std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 10000u);
  std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  const std::string msg = error_of([&] { read_nifti(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(Nifti, LabelWriterCarriesTheAffine) {
  TempDir tmp("nifti_write");
  const Volume image = read_nifti(kNibabelData + "anatomical.nii");
  at::Tensor labels = (image.data > image.data.mean()).to(at::kLong) +
                      (image.data > 2 * image.data.mean()).to(at::kLong);
  ASSERT_GT(labels.max().item<int64_t>(), 1);
  const std::string path = tmp / "pred.nii.gz";
  write_nifti_labels(path, labels, image);

  const Volume back = read_nifti(path);
  EXPECT_TRUE(at::equal(back.data.to(at::kLong), labels));
  for (int i = 0; i < 16; ++i) {
    EXPECT_NEAR(back.affine[i], image.affine[i], 1e-5) << i;
  }
  // And an independent reader agrees on the affine and the values.
  const Reference ref = nibabel_reference(path);
  EXPECT_EQ(ref.shape, labels.sizes().vec());
  for (int i = 0; i < 16; ++i) {
    EXPECT_NEAR(ref.affine[i], image.affine[i], 1e-4) << i;
  }
  EXPECT_NEAR(ref.sum, labels.sum().item<double>(), 1e-6);

  const std::string bad = tmp / "pred.nii.gz";
  EXPECT_NE(
      error_of([&] {
        write_nifti_labels(bad, labels.to(at::kFloat), image);
      }).find(bad),
      std::string::npos);
}
