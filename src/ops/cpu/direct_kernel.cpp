#include "direct_kernel.h"

// GCC 12 reports the deliberately undefined pass-through operand inside
// avx512fintrin.h's masked intrinsics as uninitialised (a known false
// positive); CI builds with -Werror.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>
#include <cstring>
#include <map>

namespace cakes::detail::direct {
namespace {

constexpr int kLanes = 16;
constexpr int kMaxOut = 6;  // output channels per register block (forward)
constexpr int kMaxVec = 4;  // 16-position vectors per register block
constexpr int kRedOut = 4;  // weight gradient: output channels per block
constexpr int kRedEnt = 5;  // weight gradient: entries per block

struct Entry {
  int64_t ch;     // channel of the tensor being read
  int64_t od;     // plane offset along D
  int64_t shift;  // offset in the flattened H*W plane: oh * W + ow
  int64_t mask;   // boundary-mask class of (oh, ow)
};

// For every distinct in-plane offset (oh, ow), the lanes of each 16-position
// vector of a plane that read inside the plane. Class 0 is (0, 0): the lanes
// that exist at all, i.e. the tail mask of the plane's last vector.
class PlaneMasks {
 public:
  PlaneMasks(int64_t H, int64_t W)
      : H_(H), W_(W), nvec_((H * W + kLanes - 1) / kLanes) {
    id(0, 0);
  }
  int64_t id(int64_t oh, int64_t ow) {
    const auto key = std::make_pair(oh, ow);
    auto it = ids_.find(key);
    if (it != ids_.end())
      return it->second;
    const int64_t cls = static_cast<int64_t>(ids_.size());
    ids_[key] = cls;
    for (int64_t v = 0; v < nvec_; ++v) {
      uint16_t m = 0;
      for (int l = 0; l < kLanes; ++l) {
        const int64_t p = v * kLanes + l;
        if (p >= H_ * W_)
          continue;
        const int64_t h = p / W_ + oh, w = p % W_ + ow;
        if (h >= 0 && h < H_ && w >= 0 && w < W_)
          m |= uint16_t(1u << l);
      }
      masks_.push_back(m);
    }
    return cls;
  }
  const uint16_t* data() const {
    return masks_.data();
  }
  int64_t nvec() const {
    return nvec_;
  }

 private:
  int64_t H_, W_, nvec_;
  std::map<std::pair<int64_t, int64_t>, int64_t> ids_;
  std::vector<uint16_t> masks_;
};

struct SumArgs {
  const Entry* entries;
  int64_t n_entries;
  const float* in;  // sample base of the tensor being read
  int64_t in_ch_stride, plane, d, D;
  const uint16_t* masks;
  int64_t nvec, v0;
  float* out;  // first output channel of the block, plane d
  int64_t out_ch_stride;
};

// out[o][p] = sum_r w[r][o] * in[ch_r][d + od_r][p + shift_r] for a block of NO
// output channels and NV vectors of positions, entirely in registers.
template <int NO, int NV>
__attribute__((target("avx512f"))) void block_sum(const SumArgs& a, const float* w) {
  __m512 acc[NO][NV];
  for (int o = 0; o < NO; ++o)
    for (int v = 0; v < NV; ++v)
      acc[o][v] = _mm512_setzero_ps();
  const int64_t p0 = a.v0 * kLanes;
  for (int64_t r = 0; r < a.n_entries; ++r) {
    const Entry& e = a.entries[r];
    const int64_t id = a.d + e.od;
    if (id < 0 || id >= a.D)
      continue;
    const float* base = a.in + e.ch * a.in_ch_stride + id * a.plane + p0 + e.shift;
    const uint16_t* m = a.masks + e.mask * a.nvec + a.v0;
    __m512 x[NV];
    for (int v = 0; v < NV; ++v)
      x[v] = _mm512_maskz_loadu_ps(m[v], base + v * kLanes);
    const float* wr = w + r * NO;
    for (int o = 0; o < NO; ++o) {
      const __m512 wv = _mm512_set1_ps(wr[o]);
      for (int v = 0; v < NV; ++v)
        acc[o][v] = _mm512_fmadd_ps(wv, x[v], acc[o][v]);
    }
  }
  for (int o = 0; o < NO; ++o)
    for (int v = 0; v < NV; ++v)
      _mm512_mask_storeu_ps(
          a.out + o * a.out_ch_stride + p0 + v * kLanes, a.masks[a.v0 + v],
          acc[o][v]);
}

using SumFn = void (*)(const SumArgs&, const float*);

template <int NO, int... NV>
constexpr std::array<SumFn, sizeof...(NV)> sum_row(std::integer_sequence<int, NV...>) {
  return {&block_sum<NO, NV + 1>...};
}
template <int... NO>
constexpr std::array<std::array<SumFn, kMaxVec>, sizeof...(NO)> sum_table(
    std::integer_sequence<int, NO...>) {
  return {sum_row<NO + 1>(std::make_integer_sequence<int, kMaxVec>())...};
}
const auto kSum = sum_table(std::make_integer_sequence<int, kMaxOut>());

// One list of entries and its output blocks, each with weights packed
// [entry][channel in block].
struct SumPlan {
  std::vector<Entry> entries;
  struct Block {
    int64_t out0;
    int nout;
    std::vector<float> w;
  };
  std::vector<Block> blocks;
};

void run_sums(
    const std::vector<SumPlan>& plans,
    const PlaneMasks& masks,
    int64_t batch,
    int64_t D,
    int64_t HW,
    const float* in,
    int64_t in_channels,
    float* out,
    int64_t out_channels) {
  const int64_t nvec = masks.nvec();
  const int64_t nchunk = (nvec + kMaxVec - 1) / kMaxVec;
  const int64_t items = batch * D * nchunk;
  const int64_t vol = D * HW;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      const int64_t n = it / (D * nchunk), d = (it / nchunk) % D, c = it % nchunk;
      const int64_t v0 = c * kMaxVec;
      const int nv = static_cast<int>(std::min<int64_t>(kMaxVec, nvec - v0));
      for (const auto& plan : plans) {
        if (plan.entries.empty())
          continue;
        for (const auto& blk : plan.blocks) {
          SumArgs a{plan.entries.data(), static_cast<int64_t>(plan.entries.size()),
                    in + n * in_channels * vol, vol, HW, d, D, masks.data(), nvec, v0,
                    out + (n * out_channels + blk.out0) * vol + d * HW, vol};
          kSum[blk.nout - 1][nv - 1](a, blk.w.data());
        }
      }
    }
  });
}

struct Tap {
  int64_t od, oh, ow;
  int64_t index;  // position in the kernel, (a * kh + b) * kw + c
};

std::vector<Tap> taps_of(const Group& grp, const Geometry& g) {
  std::vector<Tap> taps;
  for (int64_t a = 0; a < grp.kd; ++a)
    for (int64_t b = 0; b < grp.kh; ++b)
      for (int64_t c = 0; c < grp.kw; ++c)
        taps.push_back(
            {(a - grp.kd / 2) * g.dil_d, (b - grp.kh / 2) * g.dil_h,
             (c - grp.kw / 2) * g.dil_w, (a * grp.kh + b) * grp.kw + c});
  return taps;
}

// Weight gradient of NC output channels x NE entries, reduced over every
// position of every sample; each block owns its outputs, so no races.
struct ReduceArgs {
  const Entry* entries;
  const float* in;
  int64_t in_ch_stride, in_n_stride;
  const float* dy;  // first channel of the block
  int64_t dy_ch_stride, dy_n_stride;
  int64_t batch, D, HW;
  const uint16_t* masks;
  int64_t nvec;
  float* dw;  // dW row of the block's first channel, at its first entry
  int64_t dw_row;
};

template <int NC, int NE>
__attribute__((target("avx512f"))) void block_reduce(const ReduceArgs& a) {
  __m512 acc[NC][NE];
  for (int k = 0; k < NC; ++k)
    for (int j = 0; j < NE; ++j)
      acc[k][j] = _mm512_setzero_ps();
  for (int64_t n = 0; n < a.batch; ++n) {
    for (int64_t d = 0; d < a.D; ++d) {
      const float* xb[NE];
      const uint16_t* mb[NE];
      uint16_t valid[NE];
      for (int j = 0; j < NE; ++j) {
        const Entry& e = a.entries[j];
        const int64_t id = d + e.od;
        valid[j] = (id >= 0 && id < a.D) ? 0xFFFF : 0;
        xb[j] = a.in + n * a.in_n_stride + e.ch * a.in_ch_stride + id * a.HW + e.shift;
        mb[j] = a.masks + e.mask * a.nvec;
      }
      const float* yb = a.dy + n * a.dy_n_stride + d * a.HW;
      for (int64_t v = 0; v < a.nvec; ++v) {
        __m512 y[NC];
        for (int k = 0; k < NC; ++k)
          y[k] = _mm512_maskz_loadu_ps(a.masks[v], yb + k * a.dy_ch_stride + v * kLanes);
        for (int j = 0; j < NE; ++j) {
          const __m512 x =
              _mm512_maskz_loadu_ps(mb[j][v] & valid[j], xb[j] + v * kLanes);
          for (int k = 0; k < NC; ++k)
            acc[k][j] = _mm512_fmadd_ps(y[k], x, acc[k][j]);
        }
      }
    }
  }
  for (int k = 0; k < NC; ++k)
    for (int j = 0; j < NE; ++j)
      a.dw[k * a.dw_row + j] = _mm512_reduce_add_ps(acc[k][j]);
}

using ReduceFn = void (*)(const ReduceArgs&);
template <int NC, int... NE>
constexpr std::array<ReduceFn, sizeof...(NE)> reduce_row(std::integer_sequence<int, NE...>) {
  return {&block_reduce<NC, NE + 1>...};
}
template <int... NC>
constexpr std::array<std::array<ReduceFn, kRedEnt>, sizeof...(NC)> reduce_table(
    std::integer_sequence<int, NC...>) {
  return {reduce_row<NC + 1>(std::make_integer_sequence<int, kRedEnt>())...};
}
const auto kReduce = reduce_table(std::make_integer_sequence<int, kRedOut>());

} // namespace

bool available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

void forward(const Geometry& g, const std::vector<Group>& groups, const float* in, float* out) {
  PlaneMasks masks(g.H, g.W);
  std::vector<SumPlan> plans;
  int64_t out0 = 0;
  for (const auto& grp : groups) {
    SumPlan p;
    const auto taps = taps_of(grp, g);
    const int64_t vol = static_cast<int64_t>(taps.size());
    // Entry r = ci * vol + tap: the natural (c, C_in, kd, kh, kw) column order.
    for (int64_t ci = 0; ci < g.in_channels; ++ci)
      for (const auto& t : taps)
        p.entries.push_back({ci, t.od, t.oh * g.W + t.ow, masks.id(t.oh, t.ow)});
    const int64_t row = g.in_channels * vol;
    for (int64_t o0 = 0; o0 < grp.channels; o0 += kMaxOut) {
      const int nb = static_cast<int>(std::min<int64_t>(kMaxOut, grp.channels - o0));
      SumPlan::Block blk{out0 + o0, nb, std::vector<float>(row * nb)};
      for (int64_t r = 0; r < row; ++r)
        for (int o = 0; o < nb; ++o)
          blk.w[r * nb + o] = grp.weight[(o0 + o) * row + r];
      p.blocks.push_back(std::move(blk));
    }
    out0 += grp.channels;
    plans.push_back(std::move(p));
  }
  run_sums(plans, masks, g.batch, g.D, g.H * g.W, in, g.in_channels, out, g.out_channels);
}

void grad_input(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* grad_out,
    float* grad_in) {
  // Gather form: dX[ci][i] = sum over groups, their channels co and taps t of
  // W[co][ci][t] * dY[co][i - off_t]: one entry list over all groups, read from
  // the output gradient with flipped offsets, blocks over input channels.
  PlaneMasks masks(g.H, g.W);
  SumPlan p;
  struct Src {
    const float* w;
    int64_t co, vol, tap;
  };
  std::vector<Src> src;
  int64_t c0 = 0;
  for (const auto& grp : groups) {
    const auto taps = taps_of(grp, g);
    const int64_t vol = static_cast<int64_t>(taps.size());
    for (int64_t co = 0; co < grp.channels; ++co)
      for (const auto& t : taps) {
        p.entries.push_back(
            {c0 + co, -t.od, -t.oh * g.W - t.ow, masks.id(-t.oh, -t.ow)});
        src.push_back({grp.weight, co, vol, t.index});
      }
    c0 += grp.channels;
  }
  if (p.entries.empty()) {
    std::memset(grad_in, 0, sizeof(float) * g.batch * g.in_channels * g.D * g.H * g.W);
    return;
  }
  const int64_t ne = static_cast<int64_t>(p.entries.size());
  for (int64_t i0 = 0; i0 < g.in_channels; i0 += kMaxOut) {
    const int nb = static_cast<int>(std::min<int64_t>(kMaxOut, g.in_channels - i0));
    SumPlan::Block blk{i0, nb, std::vector<float>(ne * nb)};
    for (int64_t r = 0; r < ne; ++r)
      for (int o = 0; o < nb; ++o) {
        const Src& s = src[r];
        blk.w[r * nb + o] =
            s.w[(s.co * g.in_channels + i0 + o) * s.vol + s.tap];
      }
    p.blocks.push_back(std::move(blk));
  }
  run_sums({p}, masks, g.batch, g.D, g.H * g.W, grad_out, g.out_channels, grad_in,
           g.in_channels);
}

void grad_weight(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const float* grad_out,
    const std::vector<float*>& grad_weights) {
  PlaneMasks masks(g.H, g.W);
  const int64_t HW = g.H * g.W, vol3 = g.D * HW;
  struct Job {
    const Entry* entries;
    int64_t r0;
    int ne, nc;
    int64_t co0;  // within the group
    int64_t c_global0;
    float* dw;
    int64_t row;
  };
  std::vector<std::vector<Entry>> lists;
  lists.reserve(groups.size());
  std::vector<Job> jobs;
  int64_t c0 = 0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& grp = groups[gi];
    const auto taps = taps_of(grp, g);
    std::vector<Entry> entries;
    for (int64_t ci = 0; ci < g.in_channels; ++ci)
      for (const auto& t : taps)
        entries.push_back({ci, t.od, t.oh * g.W + t.ow, masks.id(t.oh, t.ow)});
    lists.push_back(std::move(entries));
    const int64_t row = g.in_channels * static_cast<int64_t>(taps.size());
    // Entry blocks inner: consecutive jobs of a thread share the same block of
    // output-gradient channels, which stays in cache.
    for (int64_t co0 = 0; co0 < grp.channels; co0 += kRedOut)
      for (int64_t r0 = 0; r0 < row; r0 += kRedEnt)
        jobs.push_back(
            {lists.back().data(), r0,
             static_cast<int>(std::min<int64_t>(kRedEnt, row - r0)),
             static_cast<int>(std::min<int64_t>(kRedOut, grp.channels - co0)), co0,
             c0 + co0, grad_weights[gi], row});
    c0 += grp.channels;
  }
  at::parallel_for(0, static_cast<int64_t>(jobs.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Job& j = jobs[i];
      ReduceArgs a{j.entries + j.r0, in, vol3, g.in_channels * vol3,
                   grad_out + j.c_global0 * vol3, vol3, g.out_channels * vol3,
                   g.batch, g.D, HW, masks.data(), masks.nvec(),
                   j.dw + j.co0 * j.row + j.r0, j.row};
      kReduce[j.nc - 1][j.ne - 1](a);
    }
  });
}

} // namespace cakes::detail::direct
