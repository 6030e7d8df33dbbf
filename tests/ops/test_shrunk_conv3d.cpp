// cakes::shrunk_conv3d against the paper's formulation (one at::conv3d per
// group, then torch.cat) in float64: values and every gradient, over hundreds
// of random shapes; a central-difference check; and every bad-argument case.
// Over 500 lines: one test file per op, as torchvision's test_ops.
#include "cakes/ops/shrunk_conv3d.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <random>
#include <sstream>

namespace {

const std::vector<std::array<int64_t, 3>> kAllShapes = {
    {3, 3, 3},
    {1, 3, 3},
    {3, 1, 3},
    {3, 3, 1},
    {3, 1, 1},
    {1, 3, 1},
    {1, 1, 3},
    {1, 1, 1}};

at::Tensor reference(
    const at::Tensor& x,
    const std::vector<at::Tensor>& ws,
    at::IntArrayRef stride,
    at::IntArrayRef dil) {
  std::vector<at::Tensor> outs;
  for (const auto& w : ws) {
    std::vector<int64_t> pad;
    for (int a = 0; a < 3; ++a)
      pad.push_back(dil[a] * (w.size(2 + a) - 1) / 2);
    if (w.size(0) == 0) {
      // at::conv3d rejects zero output channels; the empty slice it would give:
      auto y = at::conv3d(
          x,
          at::zeros(
              {1, x.size(1), w.size(2), w.size(3), w.size(4)}, x.options()),
          {},
          stride,
          pad,
          dil);
      outs.push_back(y.slice(1, 0, 0));
      continue;
    }
    outs.push_back(at::conv3d(x, w, {}, stride, pad, dil));
  }
  return at::cat(outs, 1);
}

struct Case {
  int64_t n, c_in, d, h, w;
  std::vector<int64_t> stride, dil;
  std::vector<std::pair<std::array<int64_t, 3>, int64_t>> groups;
  bool non_contiguous;
  std::string str() const {
    std::ostringstream os;
    os << "N=" << n << " C_in=" << c_in << " in=" << d << "x" << h << "x" << w
       << " stride=" << at::IntArrayRef(stride)
       << " dil=" << at::IntArrayRef(dil) << " noncontig=" << non_contiguous
       << " groups=";
    for (auto& g : groups)
      os << g.first[0] << "x" << g.first[1] << "x" << g.first[2] << ":"
         << g.second << " ";
    return os.str();
  }
};

Case random_case(std::mt19937& rng, int index) {
  auto pick = [&](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  Case c;
  const int64_t batches[] = {0, 1, 3};
  c.n = index % 17 == 0 ? 0 : batches[1 + pick(0, 1)];
  c.c_in = pick(1, 5);
  c.d = pick(1, 6);
  c.h = pick(1, 7);
  c.w = pick(1, 7);
  for (int a = 0; a < 3; ++a) {
    c.stride.push_back(pick(0, 2) == 0 ? 2 : 1);
    c.dil.push_back(pick(0, 4) == 0 ? 2 : 1);
  }
  // Cycle through all eight shapes so each appears often, plus random extras.
  std::vector<int> shapes{index % 8};
  const int extra = pick(0, 3);
  for (int i = 0; i < extra; ++i) {
    const int s = pick(0, 7);
    if (std::find(shapes.begin(), shapes.end(), s) == shapes.end())
      shapes.push_back(s);
  }
  int64_t total = 0;
  for (int s : shapes) {
    const int64_t ch = pick(0, 4);
    total += ch;
    c.groups.push_back({kAllShapes[s], ch});
  }
  if (total == 0)
    c.groups[0].second = 1;
  // Now and then a 5-wide extent: "1 or an odd k".
  if (index % 23 == 5)
    c.groups[0].first = {5, 1, 3};
  c.non_contiguous = pick(0, 2) == 0;
  return c;
}

class ShrunkConv3dRandom : public ::testing::TestWithParam<int> {};

TEST_P(ShrunkConv3dRandom, MatchesPerGroupConvAndConcat) {
  const int block = GetParam();
  std::mt19937 rng(1234 + block);
  at::manual_seed(block);
  // 25 cases per parameter, 10 parameters: 250 random cases.
  for (int i = 0; i < 25; ++i) {
    const Case c = random_case(rng, block * 25 + i);
    SCOPED_TRACE(c.str());
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    at::Tensor x;
    if (c.non_contiguous) {
      // Stored as (N, C, W, H, D) and viewed back: same values, odd strides.
      x = at::randn({c.n, c.c_in, c.w, c.h, c.d}, opts)
              .permute({0, 1, 4, 3, 2});
    } else {
      x = at::randn({c.n, c.c_in, c.d, c.h, c.w}, opts);
    }
    x.requires_grad_(true);
    std::vector<at::Tensor> ws;
    for (auto& g : c.groups)
      ws.push_back(
          at::randn(
              {g.second, c.c_in, g.first[0], g.first[1], g.first[2]}, opts)
              .requires_grad_(true));

    auto y = cakes::ops::shrunk_conv3d(x, ws, c.stride, c.dil);
    auto x_ref = x.detach().clone().requires_grad_(true);
    std::vector<at::Tensor> ws_ref;
    for (auto& w : ws)
      ws_ref.push_back(w.detach().clone().requires_grad_(true));
    auto y_ref = reference(x_ref, ws_ref, c.stride, c.dil);
    ASSERT_EQ(y.sizes(), y_ref.sizes());
    ASSERT_TRUE(at::allclose(y, y_ref, 1e-10, 1e-10))
        << "max diff " << (y - y_ref).abs().max().item<double>();

    if (y.numel() == 0 && x.numel() == 0)
      continue;
    auto gy = at::randn_like(y_ref);
    y.backward(gy);
    y_ref.backward(gy);
    ASSERT_TRUE(x.grad().defined());
    ASSERT_TRUE(at::allclose(x.grad(), x_ref.grad(), 1e-10, 1e-10))
        << "input grad max diff "
        << (x.grad() - x_ref.grad()).abs().max().item<double>();
    for (size_t g = 0; g < ws.size(); ++g) {
      ASSERT_TRUE(ws[g].grad().defined()) << "group " << g;
      if (ws[g].size(0) == 0) // the reference never touches an empty group
        continue;
      ASSERT_TRUE(at::allclose(ws[g].grad(), ws_ref[g].grad(), 1e-10, 1e-10))
          << "weight grad of group " << g << " max diff "
          << (ws[g].grad() - ws_ref[g].grad()).abs().max().item<double>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ShrunkConv3dRandom, ::testing::Range(0, 10));

std::string engine_name(cakes::ops::Engine e) {
  switch (e) {
  case cakes::ops::Engine::Auto:
    return "auto";
  case cakes::ops::Engine::Gemm:
    return "gemm";
  case cakes::ops::Engine::Direct:
    return "direct";
  case cakes::ops::Engine::Panel:
    return "panel";
  }
  return "unknown";
}

// float32 runs through each engine (Auto: direct kernels or panel GEMMs chosen
// per shape; each forced; the general engine), all against the float64
// reference.
class ShrunkConv3dFloat32Random
    : public ::testing::TestWithParam<std::tuple<int, cakes::ops::Engine>> {};

TEST_P(ShrunkConv3dFloat32Random, MatchesFloat64Reference) {
  const auto [block, engine] = GetParam();
  struct Restore {
    ~Restore() {
      cakes::ops::set_engine(cakes::ops::Engine::Auto);
    }
  } restore;
  cakes::ops::set_engine(engine);
  std::mt19937 rng(99 + block);
  at::manual_seed(100 + block);
  for (int i = 0; i < 20; ++i) {
    Case c = random_case(rng, block * 20 + i);
    // Half the cases at stride 1 so the direct kernels see plenty of shapes,
    // with planes large enough to span several 16-lane vectors.
    if (i % 2 == 0) {
      c.stride = {1, 1, 1};
      c.h += 9;
      c.w += 5;
    }
    SCOPED_TRACE(c.str());
    auto xd = at::randn({c.n, c.c_in, c.d, c.h, c.w}, at::kDouble);
    std::vector<at::Tensor> wd;
    for (auto& g : c.groups)
      wd.push_back(at::randn(
          {g.second, c.c_in, g.first[0], g.first[1], g.first[2]}, at::kDouble));
    auto x = xd.to(at::kFloat).requires_grad_(true);
    std::vector<at::Tensor> ws;
    for (auto& w : wd)
      ws.push_back(w.to(at::kFloat).requires_grad_(true));
    auto x_ref = xd.clone().requires_grad_(true);
    std::vector<at::Tensor> ws_ref;
    for (auto& w : wd)
      ws_ref.push_back(w.clone().requires_grad_(true));
    auto y = cakes::ops::shrunk_conv3d(x, ws, c.stride, c.dil);
    auto y_ref = reference(x_ref, ws_ref, c.stride, c.dil);
    ASSERT_EQ(y.sizes(), y_ref.sizes());
    // Sums of up to a few hundred O(1) products: float32 rounding ~1e-5
    // relative.
    auto close = [](const at::Tensor& a, const at::Tensor& b) {
      return at::allclose(a.to(at::kDouble), b, 1e-4, 1e-3);
    };
    ASSERT_TRUE(close(y, y_ref))
        << "max diff "
        << (y.to(at::kDouble) - y_ref).abs().max().item<double>();
    if (y.numel() == 0)
      continue;
    auto gy = at::randn_like(y_ref);
    y.backward(gy.to(at::kFloat));
    y_ref.backward(gy);
    ASSERT_TRUE(close(x.grad(), x_ref.grad()))
        << "input grad max diff "
        << (x.grad().to(at::kDouble) - x_ref.grad()).abs().max().item<double>();
    for (size_t g = 0; g < ws.size(); ++g) {
      if (ws[g].size(0) == 0)
        continue;
      ASSERT_TRUE(close(ws[g].grad(), ws_ref[g].grad()))
          << "weight grad of group " << g << " max diff "
          << (ws[g].grad().to(at::kDouble) - ws_ref[g].grad())
                 .abs()
                 .max()
                 .item<double>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases,
    ShrunkConv3dFloat32Random,
    ::testing::Combine(
        ::testing::Range(0, 5),
        ::testing::Values(
            cakes::ops::Engine::Auto,
            cakes::ops::Engine::Gemm,
            cakes::ops::Engine::Direct,
            cakes::ops::Engine::Panel)),
    [](const auto& info) {
      return std::to_string(std::get<0>(info.param)) + "_" +
             engine_name(std::get<1>(info.param));
    });

// Deep-layer shapes of real networks, through every float32 engine: many
// channels (C >= 256) on planes of 7x7 and smaller, 4^3 volumes, stride 1x2x2,
// pointwise 1x1x1 layers, group widths that leave remainders in every
// blocking (register tiles of 6 and 8, 16 lanes, the panel engines' row and
// channel chunks), empty groups, and batches of 0 and 3. The float64
// reference runs once per case.
TEST(ShrunkConv3d, Float32DeepLayersEveryEngine) {
  using G = std::vector<std::pair<std::array<int64_t, 3>, int64_t>>;
  struct Deep {
    std::vector<int64_t> in, stride;
    G groups;
  };
  const G mixed{
      {{3, 3, 3}, 101},
      {{1, 3, 3}, 83},
      {{3, 1, 1}, 0},
      {{1, 1, 1}, 1},
      {{1, 3, 3}, 71}};
  const std::vector<Deep> cases{
      {{3, 256, 2, 7, 7}, {1, 1, 1}, mixed},
      {{3, 256, 3, 7, 7}, {1, 2, 2}, mixed},
      {{1, 264, 4, 4, 4}, {1, 1, 1}, {{{3, 3, 3}, 130}, {{3, 1, 1}, 133}}},
      {{2, 300, 2, 7, 7}, {1, 1, 1}, {{{1, 1, 1}, 261}}},
      {{2, 300, 3, 7, 7}, {1, 2, 2}, {{{1, 1, 1}, 261}}},
      {{1, 259, 2, 14, 14}, {1, 2, 2}, {{{3, 3, 3}, 77}, {{1, 3, 3}, 50}}},
      {{0, 256, 2, 7, 7}, {1, 1, 1}, mixed}};
  struct Restore {
    ~Restore() {
      cakes::ops::set_engine(cakes::ops::Engine::Auto);
    }
  } restore;
  at::manual_seed(11);
  for (const auto& c : cases) {
    SCOPED_TRACE(
        "input " + c10::str(at::IntArrayRef(c.in)) + " stride " +
        c10::str(at::IntArrayRef(c.stride)));
    auto xd = at::randn(c.in, at::kDouble);
    std::vector<at::Tensor> wd;
    for (const auto& [k, ch] : c.groups)
      wd.push_back(at::randn({ch, c.in[1], k[0], k[1], k[2]}, at::kDouble));
    auto x_ref = xd.clone().requires_grad_(true);
    std::vector<at::Tensor> ws_ref;
    for (auto& w : wd)
      ws_ref.push_back(w.clone().requires_grad_(true));
    auto y_ref = reference(x_ref, ws_ref, c.stride, {1, 1, 1});
    auto gy = at::randn_like(y_ref);
    if (y_ref.numel() > 0)
      y_ref.backward(gy);
    // Sums of up to 7000 products of O(1) values: compare at the scale of
    // the largest reference value (float32 rounding ~1e-6 of it).
    auto close = [](const at::Tensor& a, const at::Tensor& ref) {
      if (ref.numel() == 0)
        return a.numel() == 0;
      const double scale = ref.abs().max().item<double>();
      return (a.to(at::kDouble) - ref).abs().max().item<double>() <=
             1e-5 * scale + 1e-6;
    };
    for (const auto engine :
         {cakes::ops::Engine::Direct,
          cakes::ops::Engine::Panel,
          cakes::ops::Engine::Auto}) {
      SCOPED_TRACE("engine " + engine_name(engine));
      cakes::ops::set_engine(engine);
      auto x = xd.to(at::kFloat).requires_grad_(true);
      std::vector<at::Tensor> ws;
      for (auto& w : wd)
        ws.push_back(w.to(at::kFloat).requires_grad_(true));
      auto y = cakes::ops::shrunk_conv3d(x, ws, c.stride, {1, 1, 1});
      ASSERT_EQ(y.sizes(), y_ref.sizes());
      EXPECT_TRUE(close(y, y_ref));
      y.backward(gy.to(at::kFloat));
      if (c.in[0] == 0) {
        // Batch 0: no input gradient entries, zero weight gradients.
        EXPECT_EQ(x.grad().numel(), 0);
        for (auto& w : ws)
          EXPECT_EQ(w.grad().abs().sum().item<float>(), 0);
        continue;
      }
      EXPECT_TRUE(close(x.grad(), x_ref.grad()));
      for (size_t g = 0; g < ws.size(); ++g) {
        if (ws[g].size(0) == 0)
          continue;
        EXPECT_TRUE(close(ws[g].grad(), ws_ref[g].grad())) << "group " << g;
      }
    }
  }
}

// The random cases above have at most 4 channels per group and 5 input
// channels, so they never fill the kernels' register tiles (6 output channels)
// nor the weight gradient's multi-channel jobs (4 input channels x 3 taps, 12 x
// 1 tap) with a remainder, nor strided phase splits of odd and even sizes
// wide enough for the vectorised stride-2 split (W = 45).
// These cases do.
TEST(ShrunkConv3d, Float32WideGroupsFillRegisterTiles) {
  at::manual_seed(7);
  const std::vector<std::pair<std::array<int64_t, 3>, int64_t>> groups{
      {{3, 3, 3}, 16}, // two 8-wide register tiles
      {{1, 3, 3}, 7},
      {{3, 1, 1}, 9},
      {{1, 1, 3}, 0},
      {{1, 1, 1}, 5},
      {{1, 3, 1}, 6}};
  using V = std::vector<int64_t>;
  const std::vector<std::pair<V, V>> cases{
      {{1, 1, 1}, {1, 1, 1}},
      {{1, 2, 1}, {1, 1, 1}},
      {{1, 1, 1}, {1, 2, 2}},
      {{1, 1, 1}, {2, 2, 2}},
      {{1, 2, 1}, {2, 1, 3}}};
  for (const auto& [dil, stride] : cases) {
    SCOPED_TRACE(
        "dilation h " + std::to_string(dil[1]) + ", stride " +
        std::to_string(stride[0]) + std::to_string(stride[1]) +
        std::to_string(stride[2]));
    auto xd = at::randn({2, 13, 5, 9, 45}, at::kDouble);
    std::vector<at::Tensor> ws, ws_ref;
    for (const auto& [k, c] : groups) {
      auto w = at::randn({c, 13, k[0], k[1], k[2]}, at::kDouble);
      ws.push_back(w.to(at::kFloat).requires_grad_(true));
      ws_ref.push_back(w.requires_grad_(true));
    }
    auto x = xd.to(at::kFloat).requires_grad_(true);
    auto x_ref = xd.clone().requires_grad_(true);
    auto y = cakes::ops::shrunk_conv3d(x, ws, stride, dil);
    auto y_ref = reference(x_ref, ws_ref, stride, dil);
    // Weight gradients sum ~1900 O(1) products: float32 error ~1e-4.
    auto close = [](const at::Tensor& a, const at::Tensor& b) {
      return at::allclose(a.to(at::kDouble), b, 1e-4, 2e-3);
    };
    ASSERT_TRUE(close(y, y_ref));
    auto gy = at::randn_like(y_ref);
    y.backward(gy.to(at::kFloat));
    y_ref.backward(gy);
    EXPECT_TRUE(close(x.grad(), x_ref.grad()));
    for (size_t g = 0; g < ws.size(); ++g) {
      if (ws[g].size(0) == 0) // the reference leaves an unused grad undefined
        continue;
      EXPECT_TRUE(close(ws[g].grad(), ws_ref[g].grad()))
          << "group " << g << " max diff "
          << (ws[g].grad().to(at::kDouble) - ws_ref[g].grad())
                 .abs()
                 .max()
                 .item<double>();
    }
  }
}

// Strided kernels that read only some phases of the input (1x1x1 reads one of
// four at stride 1x2x2, 1x1x3 two): the unread phases are never copied, and
// the input gradient of the positions no tap reaches is zero.
TEST(ShrunkConv3d, Float32StridedKernelsThatSkipPhases) {
  at::manual_seed(8);
  auto xd = at::randn({2, 7, 3, 10, 37}, at::kDouble);
  std::vector<at::Tensor> ws, ws_ref;
  for (const auto& k :
       {std::vector<int64_t>{9, 7, 1, 1, 1},
        std::vector<int64_t>{5, 7, 1, 1, 3}}) {
    auto w = at::randn(k, at::kDouble);
    ws.push_back(w.to(at::kFloat).requires_grad_(true));
    ws_ref.push_back(w.requires_grad_(true));
  }
  auto x = xd.to(at::kFloat).requires_grad_(true);
  auto x_ref = xd.clone().requires_grad_(true);
  auto y = cakes::ops::shrunk_conv3d(x, ws, {1, 2, 2}, {1, 1, 1});
  auto y_ref = reference(x_ref, ws_ref, {1, 2, 2}, {1, 1, 1});
  auto close = [](const at::Tensor& a, const at::Tensor& b) {
    return at::allclose(a.to(at::kDouble), b, 1e-4, 1e-3);
  };
  ASSERT_TRUE(close(y, y_ref));
  auto gy = at::randn_like(y_ref);
  y.backward(gy.to(at::kFloat));
  y_ref.backward(gy);
  EXPECT_TRUE(close(x.grad(), x_ref.grad()));
  // Odd rows are read by no tap: their gradient is exactly zero.
  EXPECT_EQ(x.grad().slice(3, 1, c10::nullopt, 2).abs().max().item<float>(), 0);
  for (size_t g = 0; g < ws.size(); ++g)
    EXPECT_TRUE(close(ws[g].grad(), ws_ref[g].grad())) << "group " << g;
}

TEST(ShrunkConv3d, Float32MatchesReference) {
  at::manual_seed(7);
  auto x = at::randn({2, 16, 5, 12, 12});
  std::vector<at::Tensor> ws{
      at::randn({11, 16, 3, 3, 3}) * 0.1,
      at::randn({10, 16, 1, 3, 3}) * 0.1,
      at::randn({0, 16, 3, 1, 1}),
      at::randn({9, 16, 3, 1, 1}) * 0.1,
      at::randn({4, 16, 1, 1, 1}) * 0.1};
  for (const std::vector<int64_t>& s :
       {std::vector<int64_t>{1, 1, 1}, {1, 2, 2}, {2, 2, 2}}) {
    auto y = cakes::ops::shrunk_conv3d(x, ws, s);
    auto y_ref = reference(
        x.to(at::kDouble),
        [&] {
          std::vector<at::Tensor> d;
          for (auto& w : ws)
            d.push_back(w.to(at::kDouble));
          return d;
        }(),
        s,
        {1, 1, 1});
    EXPECT_TRUE(at::allclose(y.to(at::kDouble), y_ref, 1e-4, 1e-4))
        << "stride " << at::IntArrayRef(s) << " max diff "
        << (y.to(at::kDouble) - y_ref).abs().max().item<double>();
  }
}

TEST(ShrunkConv3d, OutputIsContiguousWithGroupsInOrder) {
  auto x = at::randn({1, 3, 4, 4, 4}, at::kDouble);
  auto w0 = at::zeros({2, 3, 1, 1, 1}, at::kDouble);
  auto w1 = at::ones({1, 3, 1, 1, 1}, at::kDouble);
  auto y = cakes::ops::shrunk_conv3d(x, {w0, w1});
  EXPECT_TRUE(y.is_contiguous());
  EXPECT_EQ(y.sizes(), at::IntArrayRef({1, 3, 4, 4, 4}));
  EXPECT_TRUE(y.slice(1, 0, 2).eq(0).all().item<bool>());
  EXPECT_TRUE(at::allclose(y.select(1, 2), x.sum(1)));
}

// Central differences in float64 on small cases: the analytic gradient of a
// scalar loss must match (f(p + e) - f(p - e)) / 2e for sampled elements.
TEST(ShrunkConv3d, CentralDifferenceGradient) {
  at::manual_seed(3);
  struct Small {
    std::vector<int64_t> stride, dil;
  };
  for (const Small& s :
       {Small{{1, 1, 1}, {1, 1, 1}}, Small{{2, 1, 2}, {1, 2, 1}}}) {
    auto x = at::randn({2, 3, 4, 5, 4}, at::kDouble).requires_grad_(true);
    std::vector<at::Tensor> ws{
        at::randn({2, 3, 3, 3, 3}, at::kDouble).requires_grad_(true),
        at::randn({2, 3, 1, 3, 1}, at::kDouble).requires_grad_(true),
        at::randn({1, 3, 1, 1, 3}, at::kDouble).requires_grad_(true)};
    const auto probe = at::randn({2, 5, 4, 5, 4}, at::kDouble);
    auto loss = [&] {
      auto y = cakes::ops::shrunk_conv3d(x, ws, s.stride, s.dil);
      return (y * probe.slice(2, 0, y.size(2))
                      .slice(3, 0, y.size(3))
                      .slice(4, 0, y.size(4)))
          .sum();
    };
    loss().backward();
    std::vector<at::Tensor> params{x};
    params.insert(params.end(), ws.begin(), ws.end());
    const double eps = 1e-6;
    for (size_t p = 0; p < params.size(); ++p) {
      auto flat = params[p].detach().view({-1});
      const auto grad = params[p].grad().view({-1});
      for (int64_t i = 0; i < flat.numel();
           i += std::max<int64_t>(1, flat.numel() / 13)) {
        at::NoGradGuard ng;
        const double orig = flat[i].item<double>();
        flat[i] = orig + eps;
        const double up = loss().item<double>();
        flat[i] = orig - eps;
        const double down = loss().item<double>();
        flat[i] = orig;
        const double numeric = (up - down) / (2 * eps);
        EXPECT_NEAR(
            numeric, grad[i].item<double>(), 1e-5 * (1 + std::abs(numeric)))
            << "param " << p << " element " << i;
      }
    }
  }
}

TEST(ShrunkConv3d, BatchZeroGivesEmptyOutputAndZeroWeightGrad) {
  auto x = at::randn({0, 4, 3, 3, 3}).requires_grad_(true);
  auto w = at::randn({5, 4, 3, 3, 3}).requires_grad_(true);
  auto y = cakes::ops::shrunk_conv3d(x, {w});
  EXPECT_EQ(y.sizes(), at::IntArrayRef({0, 5, 3, 3, 3}));
  y.sum().backward();
  EXPECT_TRUE(w.grad().eq(0).all().item<bool>());
}

// Every bad argument raises, and the message says what was got and expected.
void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message was: " << e.what_without_backtrace();
  }
}

TEST(ShrunkConv3d, BadArgumentsRaiseClearErrors) {
  using cakes::ops::shrunk_conv3d;
  const auto x = at::randn({1, 4, 5, 5, 5});
  const auto w = at::randn({2, 4, 3, 3, 3});
  expect_error([&] { shrunk_conv3d(at::randn({4, 5, 5}), {w}); }, "got rank 3");
  expect_error(
      [&] {
        shrunk_conv3d(x, {at::randn({2, 3, 3, 3, 3})});
      },
      "has 3 input channels");
  expect_error(
      [&] {
        shrunk_conv3d(x, {at::randn({2, 4, 2, 3, 3})});
      },
      "1 or odd");
  expect_error(
      [&] {
        shrunk_conv3d(x, {at::randn({2, 4, 3, 3})});
      },
      "of rank 5");
  expect_error(
      [&] { shrunk_conv3d(x, {w.to(at::kDouble)}); },
      "has dtype Double but the input has dtype Float");
  expect_error(
      [&] {
        shrunk_conv3d(x, {w}, {1, 0, 1});
      },
      "expected positive strides");
  expect_error(
      [&] {
        shrunk_conv3d(x, {w}, {1, -2, 1});
      },
      "expected positive strides");
  expect_error(
      [&] {
        shrunk_conv3d(x, {w}, {1, 1, 1}, {1, 0, 1});
      },
      "expected positive dilations");
  expect_error([&] { shrunk_conv3d(x, {}); }, "at least one weight");
  expect_error(
      [&] { shrunk_conv3d(x.to(at::kInt), {w.to(at::kInt)}); },
      "float32 or float64");
  expect_error([&] { shrunk_conv3d(x, {w}, {1, 1}); }, "");
  expect_error(
      [&] {
        auto y = shrunk_conv3d(x, {w});
        cakes::ops::shrunk_conv3d_backward(
            at::randn({1, 2, 4, 5, 5}),
            x,
            {w},
            {1, 1, 1},
            {1, 1, 1},
            {true, true});
      },
      "expected grad_output of shape");
}

TEST(ShrunkConv3d, MacsFollowSpec) {
  // N * D_out*H_out*W_out * C_in * sum c_i * vol_i
  std::vector<at::Tensor> ws{
      at::empty({22, 64, 3, 3, 3}),
      at::empty({21, 64, 1, 3, 3}),
      at::empty({21, 64, 3, 1, 1})};
  EXPECT_EQ(
      cakes::ops::shrunk_conv3d_macs({1, 64, 8, 56, 56}, ws, {1, 1, 1}),
      int64_t(8) * 56 * 56 * 64 * (22 * 27 + 21 * 9 + 21 * 3));
  EXPECT_EQ(
      cakes::ops::shrunk_conv3d_macs({2, 64, 8, 56, 56}, ws, {1, 2, 2}),
      int64_t(2) * 8 * 28 * 28 * 64 * (22 * 27 + 21 * 9 + 21 * 3));
}

} // namespace

namespace {

// Planes that are not whole 16-lane vectors, with kernels that need no
// in-plane border: the kernels must not read past the end of the tensor. The
// input sits at the front of a NaN-filled buffer, so any such read would turn
// results (the weight gradient in particular, where junk lanes meet zeros)
// into NaN.
TEST(ShrunkConv3d, NeverReadsPastTheInputsEnd) {
  for (const auto& shape :
       {std::vector<int64_t>{2, 3, 3, 7, 5},
        std::vector<int64_t>{1, 4, 2, 3, 3}}) {
    const int64_t numel = c10::multiply_integers(shape);
    auto storage =
        at::full({numel + 256}, std::numeric_limits<float>::quiet_NaN());
    auto x = storage.narrow(0, 0, numel).view(shape);
    x.copy_(at::randn(shape));
    x.requires_grad_(true);
    std::vector<at::Tensor> ws{
        at::randn({3, shape[1], 3, 1, 1}).requires_grad_(true),
        at::randn({2, shape[1], 1, 1, 1}).requires_grad_(true)};
    auto y = cakes::ops::shrunk_conv3d(x, ws);
    y.backward(at::ones_like(y));
    EXPECT_TRUE(at::isfinite(y).all().item<bool>());
    EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
    for (const auto& w : ws)
      EXPECT_TRUE(at::isfinite(w.grad()).all().item<bool>());
    auto ref = reference(
        x.detach().to(at::kDouble),
        {ws[0].detach().to(at::kDouble), ws[1].detach().to(at::kDouble)},
        {1, 1, 1},
        {1, 1, 1});
    EXPECT_TRUE(at::allclose(y.to(at::kDouble), ref, 1e-4, 1e-4));
  }
}

} // namespace
