// cakes::shrunk_conv3d_fused against the separate steps it fuses (the op,
// a per-channel bias, a residual addition, a ReLU) through every engine, its
// gradients when they are required, and its argument errors.
#include "cakes/ops/fused_conv3d.h"
#include "cakes/ops/shrunk_conv3d.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

namespace {

using cakes::ops::Engine;

at::Tensor separate(
    const at::Tensor& x,
    const std::vector<at::Tensor>& ws,
    at::IntArrayRef stride,
    const at::Tensor& bias,
    const at::Tensor& residual,
    bool relu) {
  auto y = cakes::ops::shrunk_conv3d(x, ws, stride, {1, 1, 1});
  if (bias.defined())
    y = y + bias.view({1, -1, 1, 1, 1});
  if (residual.defined())
    y = y + residual;
  return relu ? at::relu(y) : y;
}

struct Restore {
  ~Restore() {
    cakes::ops::set_engine(Engine::Auto);
  }
};

TEST(ShrunkConv3dFused, MatchesSeparateStepsOnEveryEngine) {
  Restore restore;
  at::manual_seed(3);
  at::NoGradGuard no_grad;
  struct Case {
    std::vector<int64_t> in, stride;
  };
  // Wide planes (direct kernels under Auto), narrow deep ones (panel GEMMs),
  // a stride, and a sample count with a remainder.
  for (const Case& c :
       {Case{{2, 9, 3, 30, 29}, {1, 1, 1}},
        Case{{3, 70, 2, 7, 7}, {1, 1, 1}},
        Case{{1, 20, 3, 11, 13}, {1, 2, 2}}}) {
    const auto x = at::randn(c.in);
    const std::vector<at::Tensor> ws{
        at::randn({11, c.in[1], 3, 3, 3}) * 0.2,
        at::randn({0, c.in[1], 1, 3, 3}),
        at::randn({7, c.in[1], 1, 1, 1}) * 0.2};
    const auto y0 = cakes::ops::shrunk_conv3d(x, ws, c.stride, {1, 1, 1});
    const auto bias = at::randn({y0.size(1)});
    const auto residual = at::randn_like(y0);
    for (const Engine e :
         {Engine::Auto, Engine::Direct, Engine::Panel, Engine::Gemm}) {
      cakes::ops::set_engine(e);
      for (int mask = 0; mask < 8; ++mask) {
        const bool use_bias = mask & 1, use_res = mask & 2, relu = mask & 4;
        SCOPED_TRACE(
            "engine " + std::to_string(int(e)) + " bias " +
            std::to_string(use_bias) + " residual " + std::to_string(use_res) +
            " relu " + std::to_string(relu) + " input " +
            c10::str(at::IntArrayRef(c.in)));
        const at::Tensor b = use_bias ? bias : at::Tensor();
        const at::Tensor r = use_res ? residual : at::Tensor();
        const auto want = separate(x, ws, c.stride, b, r, relu);
        const auto got = cakes::ops::shrunk_conv3d_fused(
            x,
            ws,
            c.stride,
            {1, 1, 1},
            use_bias ? c10::optional<at::Tensor>(b) : c10::nullopt,
            use_res ? c10::optional<at::Tensor>(r) : c10::nullopt,
            relu);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-4))
            << (got - want).abs().max().item<float>();
        if (relu) {
          EXPECT_GE(got.min().item<float>(), 0.0f);
        }
      }
    }
  }
}

TEST(ShrunkConv3dFused, DifferentiableWhenGradientsAreNeeded) {
  at::manual_seed(4);
  auto x = at::randn({2, 5, 3, 6, 7}, at::kDouble).requires_grad_(true);
  std::vector<at::Tensor> ws{
      at::randn({4, 5, 3, 3, 3}, at::kDouble).requires_grad_(true),
      at::randn({3, 5, 1, 3, 3}, at::kDouble).requires_grad_(true)};
  auto bias = at::randn({7}, at::kDouble).requires_grad_(true);
  auto res = at::randn({2, 7, 3, 6, 7}, at::kDouble).requires_grad_(true);
  auto y = cakes::ops::shrunk_conv3d_fused(
      x, ws, {1, 1, 1}, {1, 1, 1}, bias, res, true);
  ASSERT_TRUE(y.requires_grad());
  auto gy = at::randn_like(y);
  y.backward(gy);
  // The same through the separate differentiable steps.
  auto x2 = x.detach().clone().requires_grad_(true);
  std::vector<at::Tensor> ws2;
  for (auto& w : ws)
    ws2.push_back(w.detach().clone().requires_grad_(true));
  auto b2 = bias.detach().clone().requires_grad_(true);
  auto r2 = res.detach().clone().requires_grad_(true);
  separate(x2, ws2, {1, 1, 1}, b2, r2, true).backward(gy);
  EXPECT_TRUE(at::allclose(x.grad(), x2.grad()));
  EXPECT_TRUE(at::allclose(bias.grad(), b2.grad()));
  EXPECT_TRUE(at::allclose(res.grad(), r2.grad()));
  for (size_t i = 0; i < ws.size(); ++i)
    EXPECT_TRUE(at::allclose(ws[i].grad(), ws2[i].grad()));
}

TEST(ShrunkConv3dFused, BadEpilogueArgumentsRaiseClearErrors) {
  at::NoGradGuard no_grad;
  const auto x = at::randn({1, 4, 2, 5, 5});
  const std::vector<at::Tensor> ws{at::randn({6, 4, 1, 3, 3})};
  auto expect_error = [&](const c10::optional<at::Tensor>& b,
                          const c10::optional<at::Tensor>& r,
                          const std::string& what) {
    try {
      cakes::ops::shrunk_conv3d_fused(x, ws, {1, 1, 1}, {1, 1, 1}, b, r, true);
      ADD_FAILURE() << "no error for " << what;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos)
          << e.what();
    }
  };
  expect_error(at::randn({5}), c10::nullopt, "expected bias of shape (6)");
  expect_error(
      at::randn({6}, at::kDouble), c10::nullopt, "bias has dtype Double");
  expect_error(
      c10::nullopt,
      at::randn({1, 6, 2, 5, 4}),
      "expected residual of the output's shape");
}

} // namespace
