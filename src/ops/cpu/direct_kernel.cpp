// The direct AVX-512 engine (Engine::Direct): register-blocked forward, input
// and weight gradients over rows of output positions. Over 500 lines because
// the three passes share tile tables and helpers that must inline together.
#include "direct_kernel.h"
#include "cpu_util.h"

// GCC 12 reports the deliberately undefined pass-through operand inside
// avx512fintrin.h's masked intrinsics as uninitialised (a known false
// positive); CI builds with -Werror.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <utility>

namespace cakes::detail::direct {
namespace {

constexpr int kLanes = 16;
// Register tiles of the sums: NO output channels x NV vectors of 16
// positions, NO * NV accumulators + NV inputs + 1 broadcast <= 32 registers.
// Two shapes are used, 6 x 4 and 8 x 3 (see choose_tile).
constexpr int kMaxOut = 8;   // output channels per register block (sums)
constexpr int kMaxVec = 4;   // vectors per register block (sums)
constexpr int kItemVec = 12; // vectors per work item (a multiple of 3 and 4)
constexpr int kRedOut = 6;   // weight gradient: output channels per block
constexpr int kRedEnt = 4;   // weight gradient: (input channel, tap) entries
// Channels per segment. Segments run channel-block outer, tap inner, so the
// lines a block of channels touches stay in L1 while every tap reuses them.
constexpr int64_t kChannelBlock = 8;

// Masked vector loads run at half the speed of plain ones on this CPU
// (measured: 47 vs 102 GFLOP/s in the inner loop), so boundaries are handled
// by data, not masks: the tensor being read is copied once into planes with a
// zero border of (ph, pw), and kernels compute on the padded row width Wp.
// Position q = h * Wp + w of an output plane reads padded index
// q + (oh + ph) * Wp + (ow + pw) for tap offset (oh, ow); columns w >= W are
// computed but never stored. Kernels with no in-plane extent read the tensor
// as it is (Wp == W, no copy).
struct Padded {
  const float* data;
  int64_t ph, pw, Wp, plane; // plane: floats between consecutive D planes
  std::shared_ptr<float[]> keep;
};

struct Layout {
  int64_t batch, channels, D, H, W;
};

// out[j] = in[2 j] for j < n, where `avail` floats of `in` may be read: two
// loads and one permute per 16 outputs (the scalar loop was a sixth of a
// stride-2 forward call).
__attribute__((target("avx512f"))) void
take_even(const float* in, int64_t n, int64_t avail, float* out) {
  const __m512i even = _mm512_set_epi32(
      30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  int64_t j = 0;
  for (; j + kLanes <= n && 2 * j + 2 * kLanes <= avail; j += kLanes) {
    const __m512 a = _mm512_loadu_ps(in + 2 * j);
    const __m512 b = _mm512_loadu_ps(in + 2 * j + kLanes);
    _mm512_storeu_ps(out + j, _mm512_permutex2var_ps(a, even, b));
  }
  if (j < n) {
    // Tail (rows are short: 28 outputs are one vector and a tail): masked
    // loads of what may be read, masked store of what is left.
    auto mask = [](int64_t k) {
      return k >= kLanes ? __mmask16(0xFFFF)
                         : __mmask16((1u << std::max<int64_t>(k, 0)) - 1);
    };
    const int64_t left = avail - 2 * j;
    const __m512 a = _mm512_maskz_loadu_ps(mask(left), in + 2 * j);
    const __m512 b =
        _mm512_maskz_loadu_ps(mask(left - kLanes), in + 2 * j + kLanes);
    _mm512_mask_storeu_ps(
        out + j, mask(n - j), _mm512_permutex2var_ps(a, even, b));
  }
}

// Strides per axis and the output grid of a layer.
struct Grid {
  int64_t sd, sh, sw; // strides
  int64_t Do, Ho, Wo; // output extents
  int64_t phases() const {
    return sd * sh * sw;
  }
};

// Copies `src` (layout l) into zero-bordered planes on the output grid of `g`.
// With stride s along an axis the input is split into s phases (indices
// congruent mod s), so that a strided convolution becomes a stride-1 one over
// phase planes: tap offset o reads phase o mod s at offset floor(o / s).
// Result layout [n][phase][c][Do planes][(Ho + 2 ph) x (Wo + 2 pw) + slack];
// phase planes past the end of the input are zero. At stride 1 this is one
// phase holding the input with a border. Phases for which used[phase] is false
// are left unwritten (a 1x1x1 kernel at stride 2 reads one phase of four).
Padded pad_phases(
    const float* src,
    const Layout& l,
    const Grid& g,
    int64_t ph,
    int64_t pw,
    const std::vector<char>& used = {}) {
  const int64_t P = g.phases();
  // The last vector of a plane reads up to a whole vector past its end; with
  // no border that is the next plane (junk lanes only), except after the
  // tensor's last plane, which must not be read: copy unless planes are whole
  // vectors.
  if (P == 1 && ph == 0 && pw == 0 && (l.H * l.W) % kLanes == 0)
    return {src, 0, 0, l.W, l.H * l.W, {}};
  const int64_t Wp = g.Wo + 2 * pw, Hp = g.Ho + 2 * ph;
  // Slack after each plane: the last vectors of a plane may read (junk lanes
  // only) up to one vector and two borders past it. Planes are whole vectors
  // and start so that the interior origin (ph, pw) is 64-byte aligned: the
  // weight gradient reads the padded output gradient from there with aligned
  // loads.
  const int64_t plane =
      (Hp * Wp + kLanes * kMaxVec + 2 * pw + kLanes - 1) / kLanes * kLanes;
  const int64_t lead = (kLanes - (ph * Wp + pw) % kLanes) % kLanes;
  const int64_t planes = l.batch * P * l.channels * g.Do;
  std::shared_ptr<float[]> buf = alloc_floats(lead + planes * plane);
  float* dst = buf.get() + lead;
  at::parallel_for(0, planes, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* p = dst + i * plane;
      const int64_t jd = i % g.Do, c = (i / g.Do) % l.channels,
                    phase = (i / (g.Do * l.channels)) % P,
                    n = i / (g.Do * l.channels * P);
      if (!used.empty() && !used[phase])
        continue;
      const int64_t rd = phase / (g.sh * g.sw), rh = (phase / g.sw) % g.sh,
                    rw = phase % g.sw;
      const int64_t id = g.sd * jd + rd;
      if (id >= l.D) {
        std::memset(p, 0, sizeof(float) * plane);
        continue;
      }
      const float* s = src + ((n * l.channels + c) * l.D + id) * l.H * l.W;
      // Rows and columns of this phase that exist in the input.
      const int64_t rows = std::min(g.Ho, (l.H - rh + g.sh - 1) / g.sh);
      const int64_t cols = std::min(g.Wo, (l.W - rw + g.sw - 1) / g.sw);
      // Only the border is zeroed (the copy writes the rest): at stride 1 a
      // full memset first would double the writes of the hottest copy.
      std::memset(p, 0, sizeof(float) * (ph * Wp + pw));
      for (int64_t jh = 0; jh < rows; ++jh) {
        float* row = p + (jh + ph) * Wp + pw;
        const float* in_row = s + (g.sh * jh + rh) * l.W + rw;
        if (g.sw == 1)
          std::memcpy(row, in_row, sizeof(float) * cols);
        else if (g.sw == 2)
          take_even(in_row, cols, l.W - rw, row);
        else
          for (int64_t jw = 0; jw < cols; ++jw)
            row[jw] = in_row[g.sw * jw];
        // Right border, then the next row's left border.
        std::memset(row + cols, 0, sizeof(float) * (Wp - cols));
      }
      const int64_t done = (rows + ph) * Wp + pw;
      std::memset(p + done, 0, sizeof(float) * (plane - done));
    }
  });
  return {dst, ph, pw, Wp, plane, buf};
}

// A run of consecutive channels read with one tap offset: the inner loop walks
// channels with the offset fixed.
struct Segment {
  int64_t ch0, nch; // channels of the tensor being read
  int64_t od;       // plane offset along D
  int64_t shift;    // padded in-plane offset: (oh + ph) * Wp + (ow + pw)
};

struct SumArgs {
  const Segment* segs;
  int64_t n_segs;
  const float* in; // sample base of the (padded) tensor being read
  int64_t in_ch_stride, plane, d, D;
  int64_t q0; // first position (on the padded row width) of the block
  int64_t H, W, Wp;
  float* out; // first output channel of the block, plane d (unpadded)
  int64_t out_ch_stride;
};

// One input channel's contribution to an NO x NV register block.
template <int NO, int NV>
__attribute__((target("avx512f"), always_inline)) inline void
channel_step(__m512 (&acc)[NO][NV], const float* in, const float* w) {
  __m512 x[NV];
  for (int v = 0; v < NV; ++v)
    x[v] = _mm512_loadu_ps(in + v * kLanes);
  for (int o = 0; o < NO; ++o) {
    const __m512 wv = _mm512_set1_ps(w[o]);
    for (int v = 0; v < NV; ++v)
      acc[o][v] = _mm512_fmadd_ps(wv, x[v], acc[o][v]);
  }
}

// out[o][q] = sum over segments s and their channels c of
//   w[s, c][o] * in[c][d + od_s][q + shift_s]
// for NO output channels and NV vectors of positions, in registers; weights
// packed [segment][channel][o].
template <int NO, int NV>
__attribute__((target("avx512f"))) void
block_sum(const SumArgs& a, const float* w) {
  __m512 acc[NO][NV];
  for (int o = 0; o < NO; ++o)
    for (int v = 0; v < NV; ++v)
      acc[o][v] = _mm512_setzero_ps();
  for (int64_t si = 0; si < a.n_segs; ++si) {
    const Segment& sg = a.segs[si];
    const float* wr = w;
    w += sg.nch * NO;
    const int64_t id = a.d + sg.od;
    if (id < 0 || id >= a.D)
      continue;
    const float* base =
        a.in + sg.ch0 * a.in_ch_stride + id * a.plane + a.q0 + sg.shift;
    // (Unrolling this loop for full channel blocks measured slower.)
    for (int64_t c = 0; c < sg.nch; ++c)
      channel_step<NO, NV>(acc, base + c * a.in_ch_stride, wr + c * NO);
  }
  const int64_t n_valid = a.H * a.Wp;
  if (a.Wp == a.W) {
    for (int v = 0; v < NV; ++v) {
      const int64_t q = a.q0 + v * kLanes;
      const int64_t left = std::min<int64_t>(kLanes, n_valid - q);
      const __mmask16 m =
          left >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      for (int o = 0; o < NO; ++o)
        _mm512_mask_storeu_ps(a.out + o * a.out_ch_stride + q, m, acc[o][v]);
    }
    return;
  }
  // Padded row width: each vector's lanes belong to one or more rows of Wp
  // positions; store the first W of each row with a masked store addressed so
  // that lane l lands on column l - (r * Wp - q) of row r.
  for (int v = 0; v < NV; ++v) {
    const int64_t q = a.q0 + v * kLanes;
    if (q >= n_valid)
      break;
    for (int64_t r = q / a.Wp; r * a.Wp < q + kLanes && r < a.H; ++r) {
      const int64_t first = r * a.Wp - q; // lane of column 0 (may be < 0)
      const int64_t lo = std::max<int64_t>(0, first);
      const int64_t hi = std::min<int64_t>(kLanes, first + a.W);
      if (hi <= lo)
        continue;
      const __mmask16 m = __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
      float* dst = a.out + r * a.W - first;
      for (int o = 0; o < NO; ++o)
        _mm512_mask_storeu_ps(dst + o * a.out_ch_stride, m, acc[o][v]);
    }
  }
}

using SumFn = void (*)(const SumArgs&, const float*);

template <int NO, int NV> constexpr SumFn sum_entry() {
  if constexpr (NO * NV + NV + 1 <= 32)
    return &block_sum<NO, NV>;
  else
    return nullptr; // would spill registers; never chosen
}
template <int NO, int... NV>
constexpr std::array<SumFn, sizeof...(NV)>
sum_row(std::integer_sequence<int, NV...>) {
  return {sum_entry<NO, NV + 1>()...};
}
template <int... NO>
constexpr std::array<std::array<SumFn, kMaxVec>, sizeof...(NO)>
sum_table(std::integer_sequence<int, NO...>) {
  return {sum_row<NO + 1>(std::make_integer_sequence<int, kMaxVec>())...};
}
const auto kSum = sum_table(std::make_integer_sequence<int, kMaxOut>());

// One list of segments and its output blocks, each with weights packed
// [segment][channel][channel in block].
struct SumPlan {
  std::vector<Segment> segs;
  // Where each segment's weights come from: the weight multiplying segment
  // channel c for block output o is base[c * ch_stride + (w_first + o) *
  // out_stride]. The forward and the input gradient differ only in these.
  struct Source {
    const float* base;
    int64_t ch_stride, out_stride;
  };
  std::vector<Source> src; // parallel to segs
  struct Block {
    int64_t out0; // first output row written
    int nout;
    int nv;               // vectors of the register tile
    int64_t w_first;      // first output in the weights' own indexing
    std::vector<float> w; // packed by pack_weights
  };
  std::vector<Block> blocks;
};

// Packs every block's weights in the order block_sum streams them,
// [segment][channel][output], in parallel over blocks: the late ResNet stages
// pack millions of weights per call.
void pack_weights(std::vector<SumPlan>& plans) {
  std::vector<std::pair<size_t, size_t>> refs;
  for (size_t p = 0; p < plans.size(); ++p)
    for (size_t b = 0; b < plans[p].blocks.size(); ++b)
      refs.push_back({p, b});
  at::parallel_for(
      0, static_cast<int64_t>(refs.size()), 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          SumPlan& plan = plans[refs[k].first];
          auto& blk = plan.blocks[refs[k].second];
          int64_t rows = 0;
          for (const auto& sg : plan.segs)
            rows += sg.nch;
          blk.w.resize(rows * blk.nout);
          float* w = blk.w.data();
          for (size_t si = 0; si < plan.segs.size(); ++si) {
            const auto& sw = plan.src[si];
            for (int64_t c = 0; c < plan.segs[si].nch; ++c) {
              const float* from =
                  sw.base + c * sw.ch_stride + blk.w_first * sw.out_stride;
              for (int o = 0; o < blk.nout; ++o)
                *w++ = from[o * sw.out_stride];
            }
          }
        }
      });
}

void run_sums(
    const std::vector<SumPlan>& plans,
    const Padded& in,
    const Layout& l, // of the output
    int64_t in_channels,
    float* out) {
  const int64_t nvec = (l.H * in.Wp + kLanes - 1) / kLanes;
  const int64_t nchunk = (nvec + kItemVec - 1) / kItemVec;
  const int64_t items = l.batch * l.D * nchunk;
  const int64_t in_cs = l.D * in.plane, out_cs = l.D * l.H * l.W;
  for_each_dynamic(items, [&](int64_t it) {
    // Planes innermost: consecutive items at one chunk of positions share
    // two of the three input planes a 3-tap depth kernel reads, which are
    // then still in L2 (plane-outer order read each plane from L3 once per
    // output plane using it).
    const int64_t n = it / (l.D * nchunk), c = (it / l.D) % nchunk,
                  d = it % l.D;
    const int64_t v0 = c * kItemVec;
    for (const auto& plan : plans) {
      for (const auto& blk : plan.blocks) {
        for (int64_t s = 0; s < kItemVec && v0 + s < nvec; s += blk.nv) {
          const int nv =
              static_cast<int>(std::min<int64_t>(blk.nv, nvec - v0 - s));
          SumArgs a{
              plan.segs.data(),
              static_cast<int64_t>(plan.segs.size()),
              in.data + n * in_channels * in_cs,
              in_cs,
              in.plane,
              d,
              l.D,
              (v0 + s) * kLanes,
              l.H,
              l.W,
              in.Wp,
              out + (n * l.channels + blk.out0) * out_cs + d * l.H * l.W,
              out_cs};
          kSum[blk.nout - 1][nv - 1](a, blk.w.data());
        }
      }
    }
  });
}

// Register blocks for `channels` output rows: 6 x 4 tiles, or 8 x 3 when
// those do fewer L1 accesses per FMA (a tile's vector loads are split loads,
// two accesses each, plus one broadcast per channel): 21 channels as 7+7+7
// instead of 6+5+5+5, 32 as 8+8+8+8 instead of 6+6+5+5+5+5. Fewer blocks also
// mean fewer passes over the input.
std::pair<std::vector<std::pair<int64_t, int>>, int>
choose_tile(int64_t channels) {
  auto cost = [](const std::vector<std::pair<int64_t, int>>& blocks, int nv) {
    double c = 0;
    for (const auto& b : blocks)
      c += b.second * double(b.second + 2 * nv) / (b.second * nv);
    return c;
  };
  auto wide = balanced_blocks(channels, 6), tall = balanced_blocks(channels, 8);
  if (cost(tall, 3) < cost(wide, 4))
    return {tall, 3};
  return {wide, 4};
}

int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

struct Tap {
  int64_t od, oh, ow; // offsets on the input grid
  int64_t index;      // position in the kernel, (a * kh + b) * kw + c
  // Where it reads in the phase-split input (see pad_phases): the phase
  // (offsets mod strides) and the offsets on the output grid.
  int64_t phase, qd, qh, qw;
};

Grid grid_of(const Geometry& g) {
  auto out = [](int64_t in, int64_t s) { return (in - 1) / s + 1; };
  return {
      g.stride_d,
      g.stride_h,
      g.stride_w,
      out(g.D, g.stride_d),
      out(g.H, g.stride_h),
      out(g.W, g.stride_w)};
}

std::vector<Tap> taps_of(const Group& grp, const Geometry& g) {
  std::vector<Tap> taps;
  for (int64_t a = 0; a < grp.kd; ++a)
    for (int64_t b = 0; b < grp.kh; ++b)
      for (int64_t c = 0; c < grp.kw; ++c) {
        Tap t;
        t.od = (a - grp.kd / 2) * g.dil_d;
        t.oh = (b - grp.kh / 2) * g.dil_h;
        t.ow = (c - grp.kw / 2) * g.dil_w;
        t.index = (a * grp.kh + b) * grp.kw + c;
        t.qd = floor_div(t.od, g.stride_d);
        t.qh = floor_div(t.oh, g.stride_h);
        t.qw = floor_div(t.ow, g.stride_w);
        t.phase = ((t.od - t.qd * g.stride_d) * g.stride_h +
                   (t.oh - t.qh * g.stride_h)) *
                      g.stride_w +
                  (t.ow - t.qw * g.stride_w);
        taps.push_back(t);
      }
  return taps;
}

// Border (on the output grid) needed by every group's in-plane reach.
std::pair<int64_t, int64_t>
border(const std::vector<Group>& groups, const Geometry& g) {
  int64_t ph = 0, pw = 0;
  for (const auto& grp : groups) {
    if (grp.channels == 0)
      continue;
    for (const auto& t : taps_of(grp, g)) {
      ph = std::max(ph, std::abs(t.qh));
      pw = std::max(pw, std::abs(t.qw));
    }
  }
  return {ph, pw};
}

// Channels per segment for a group's kernel. Segments run channel-block
// outer, tap inner, so that the lines a block of channels touches stay in L1
// while every tap reuses them: 8 channels of a 3x3x3 kernel touch ~17 KB. A
// kernel without in-plane extent (3x1x1, 1x1x1) reads each line for one tap
// only, so nothing is gained by short segments, and each segment costs a
// loop set-up: one segment of all channels per tap. Otherwise channels are
// added while the lines stay within ~16 KB.
int64_t channel_block(
    const Group& grp, const Geometry& g, int64_t Wp, int64_t channels) {
  if (grp.kh == 1 && grp.kw == 1)
    return std::max<int64_t>(channels, 1);
  const int64_t planes = grp.kd;
  const int64_t span = kMaxVec * kLanes + 2 * (grp.kh / 2) * g.dil_h * Wp +
                       2 * (grp.kw / 2) * g.dil_w; // floats per row window
  const int64_t fit = (16 * 1024) / (planes * span * int64_t(sizeof(float)));
  return std::max(kChannelBlock, fit / kChannelBlock * kChannelBlock);
}

// Which phases of the input some tap of a non-empty group reads.
std::vector<char>
used_phases(const std::vector<Group>& groups, const Geometry& g) {
  std::vector<char> used(grid_of(g).phases(), 0);
  for (const auto& grp : groups)
    if (grp.channels > 0)
      for (const auto& t : taps_of(grp, g))
        used[t.phase] = 1;
  return used;
}

// The layer's input split into the phases its taps read, with border (ph, pw).
Padded pad_input(
    const float* in,
    const Geometry& g,
    const std::vector<Group>& groups,
    int64_t ph,
    int64_t pw) {
  return pad_phases(
      in,
      {g.batch, g.in_channels, g.D, g.H, g.W},
      grid_of(g),
      ph,
      pw,
      used_phases(groups, g));
}

// Weight gradient: dW[co][ci][t] = sum over samples and positions of
// dY[co][p] * X[ci][p + off_t], a reduction over positions of products of two
// vectors. Registers hold an NC x NE tile: NC output channels (their dY rows,
// read with aligned loads) times NE entries (input channel, tap), whose X rows
// are read at the tap's shift (unaligned: a split load costs two L1 accesses,
// so the tile favours channels, 6 x 4 = 10 loads, 14 accesses per 24 FMAs,
// the forward kernel's ratio). A job owns one block of output channels and a
// block of input channels with all their taps, so jobs never race; small
// kernels (3 taps) take several input channels per job so that each dY row
// loaded into L1 serves a dozen entries. Positions are walked in chunks of
// kRedChunk vectors, so a chunk's dY rows and the X rows its taps reach stay in
// L1 while every entry block reuses them; partial sums go to a small per-job
// array of vectors, one horizontal sum per weight at the end. Both tensors are
// on the padded row width with zero borders, so no lane needs a mask, and taps
// whose plane lies outside the input read a zero plane (no branch in the
// loop).
constexpr int64_t kRedChunk = 32;

template <int NC, int NE>
__attribute__((target("avx512f"))) void reduce_chunk(
    const float* const* xb,
    const float* yb,
    int64_t dy_ch_stride,
    int64_t nv,
    float* part, // [NC][taps][16], at this sub-block's first tap
    int64_t part_row) {
  __m512 acc[NC][NE];
  for (int k = 0; k < NC; ++k)
    for (int j = 0; j < NE; ++j)
      acc[k][j] = _mm512_setzero_ps();
  for (int64_t v = 0; v < nv; ++v) {
    __m512 y[NC];
    for (int k = 0; k < NC; ++k)
      y[k] = _mm512_loadu_ps(yb + k * dy_ch_stride + v * kLanes);
    for (int j = 0; j < NE; ++j) {
      const __m512 x = _mm512_loadu_ps(xb[j] + v * kLanes);
      for (int k = 0; k < NC; ++k)
        acc[k][j] = _mm512_fmadd_ps(y[k], x, acc[k][j]);
    }
  }
  for (int k = 0; k < NC; ++k)
    for (int j = 0; j < NE; ++j) {
      float* dst = part + k * part_row + j * kLanes;
      _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), acc[k][j]));
    }
}

using ReduceFn = void (*)(
    const float* const*, const float*, int64_t, int64_t, float*, int64_t);
template <int NC, int... NE>
constexpr std::array<ReduceFn, sizeof...(NE)>
reduce_row(std::integer_sequence<int, NE...>) {
  return {&reduce_chunk<NC, NE + 1>...};
}
template <int... NC>
constexpr std::array<std::array<ReduceFn, kRedEnt>, sizeof...(NC)>
reduce_table(std::integer_sequence<int, NC...>) {
  return {reduce_row<NC + 1>(std::make_integer_sequence<int, kRedEnt>())...};
}
const auto kReduce = reduce_table(std::make_integer_sequence<int, kRedOut>());

__attribute__((target("avx512f"))) float hsum(const float* v) {
  return _mm512_reduce_add_ps(_mm512_loadu_ps(v));
}

} // namespace

bool available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

void forward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    float* out) {
  const Grid grid = grid_of(g);
  const auto [ph, pw] = border(groups, g);
  const Padded src = pad_input(in, g, groups, ph, pw);
  std::vector<SumPlan> plans;
  int64_t out0 = 0;
  for (const auto& grp : groups) {
    if (grp.channels == 0)
      continue;
    plans.emplace_back();
    SumPlan& p = plans.back();
    auto taps = taps_of(grp, g);
    // Phase-major: the taps of one phase read nearby lines of one phase plane,
    // so a channel block's lines are reused while still in L1.
    std::stable_sort(taps.begin(), taps.end(), [](const Tap& a, const Tap& b) {
      return a.phase < b.phase;
    });
    const int64_t vol = static_cast<int64_t>(taps.size()),
                  row = g.in_channels * vol;
    const int64_t cb = channel_block(grp, g, src.Wp, g.in_channels);
    for (int64_t c0 = 0; c0 < g.in_channels; c0 += cb)
      for (const auto& t : taps) {
        p.segs.push_back(
            {t.phase * g.in_channels + c0,
             std::min(cb, g.in_channels - c0),
             t.qd,
             (t.qh + ph) * src.Wp + t.qw + pw});
        // W[o][c][t], weights (c_g, C_in, taps).
        p.src.push_back({grp.weight + c0 * vol + t.index, vol, row});
      }
    const auto [blocks, tile_nv] = choose_tile(grp.channels);
    for (const auto& [o0, nb] : blocks)
      p.blocks.push_back({out0 + o0, nb, tile_nv, o0, {}});
    out0 += grp.channels;
  }
  pack_weights(plans);
  run_sums(
      plans,
      src,
      {g.batch, g.out_channels, grid.Do, grid.Ho, grid.Wo},
      grid.phases() * g.in_channels,
      out);
}

namespace {

// dy: the output gradient padded on the output grid with the forward's border.
void grad_input_from(
    const Geometry& g,
    const std::vector<Group>& groups,
    const Padded& dy,
    float* grad_in) {
  // Gather form: dX[ci][i] = sum over groups, their channels co and taps t of
  // W[co][ci][t] * dY[co][(i - off_t) / s] where that divides. Input position
  // i = s * j + r (phase r) is reached exactly by the taps of phase r, at
  // output position j - q_t: per phase, a stride-1 gather over the output
  // gradient with flipped offsets, one segment per (group, channel block, tap
  // of that phase); blocks over input channels. At stride 1 there is one
  // phase, written in place; otherwise the phases are computed on the output
  // grid and interleaved into dX.
  const Grid grid = grid_of(g);
  const int64_t P = grid.phases();
  std::vector<SumPlan> plans(P);
  int64_t c0 = 0;
  for (const auto& grp : groups) {
    const auto taps = taps_of(grp, g);
    const int64_t vol = grp.kd * grp.kh * grp.kw;
    const int64_t cb = channel_block(grp, g, dy.Wp, grp.channels);
    for (int64_t b = 0; b < grp.channels; b += cb)
      for (const auto& t : taps) {
        plans[t.phase].segs.push_back(
            {c0 + b,
             std::min(cb, grp.channels - b),
             -t.qd,
             (-t.qh + dy.ph) * dy.Wp - t.qw + dy.pw});
        // Transposed: segment channels are output channels co, block
        // outputs are input channels ci of W[co][ci][t].
        plans[t.phase].src.push_back(
            {grp.weight + b * g.in_channels * vol + t.index,
             g.in_channels * vol,
             vol});
      }
    c0 += grp.channels;
  }
  const auto [blocks, tile_nv] = choose_tile(g.in_channels);
  for (int64_t r = 0; r < P; ++r)
    for (const auto& [i0, nb] : blocks)
      plans[r].blocks.push_back({r * g.in_channels + i0, nb, tile_nv, i0, {}});
  pack_weights(plans);
  // A phase no tap reaches (e.g. odd positions under a 1x1x1 kernel with
  // stride 2) has an empty segment list: its blocks store zeros.
  const Layout phase_layout{
      g.batch, P * g.in_channels, grid.Do, grid.Ho, grid.Wo};
  if (P == 1) {
    run_sums(plans, dy, phase_layout, g.out_channels, grad_in);
    return;
  }
  const int64_t per_phase = grid.Do * grid.Ho * grid.Wo;
  std::shared_ptr<float[]> buf =
      alloc_floats(g.batch * P * g.in_channels * per_phase);
  run_sums(plans, dy, phase_layout, g.out_channels, buf.get());
  // Interleave: dX[n][c][sd*jd+rd][sh*jh+rh][sw*jw+rw] = phase r at (jd, jh,
  // jw); every input position belongs to exactly one phase position.
  at::parallel_for(
      0, g.batch * g.in_channels * g.D, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t id = i % g.D, c = (i / g.D) % g.in_channels,
                        n = i / (g.D * g.in_channels);
          const int64_t jd = id / grid.sd, rd = id % grid.sd;
          float* plane = grad_in + i * g.H * g.W;
          for (int64_t rh = 0; rh < grid.sh; ++rh)
            for (int64_t rw = 0; rw < grid.sw; ++rw) {
              const int64_t r = (rd * grid.sh + rh) * grid.sw + rw;
              const float* src = buf.get() +
                                 ((n * P + r) * g.in_channels + c) * per_phase +
                                 jd * grid.Ho * grid.Wo;
              const int64_t cols = (g.W - rw + grid.sw - 1) / grid.sw;
              for (int64_t jh = 0, ih = rh; ih < g.H; ++jh, ih += grid.sh) {
                float* dst = plane + ih * g.W + rw;
                const float* s_row = src + jh * grid.Wo;
                for (int64_t jw = 0; jw < cols; ++jw)
                  dst[grid.sw * jw] = s_row[jw];
              }
            }
        }
      });
}

// dy: the output gradient padded on the output grid (same border as the
// forward), so position q of a plane on the padded row width is
// dy.data + ph * Wp + pw + q, with zeros in the junk columns.
void grad_weight_from(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const Padded& dy,
    const std::vector<float*>& grad_weights) {
  const Grid grid = grid_of(g);
  const int64_t ph = dy.ph, pw = dy.pw, P = grid.phases();
  const Padded x = pad_input(in, g, groups, ph, pw);
  const int64_t nvec = (grid.Ho * x.Wp + kLanes - 1) / kLanes;
  const float* y0 = dy.data + ph * dy.Wp + pw;
  struct Job {
    size_t group;
    int64_t co0; // within the group
    int nc;
    int64_t c_global0, ci0, nci;
    int64_t cost;
  };
  std::vector<std::vector<Tap>> taps(groups.size());
  std::vector<Job> jobs;
  int64_t c0 = 0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    taps[gi] = taps_of(groups[gi], g);
    const int64_t nt = static_cast<int64_t>(taps[gi].size());
    // Input channels per job: enough (ci, tap) entries to reuse each dY row
    // loaded into L1 a dozen times, in whole register tiles (a 6 x 3 tile
    // does 12 loads per 18 FMAs and ran 35% slower than 6 x 4). 27 taps is
    // enough with one channel (six tiles of 4 and one of 3).
    int64_t per = 1;
    if (nt < 12) {
      per = (12 + nt - 1) / nt;
      while ((per * nt) % kRedEnt != 0)
        ++per;
    }
    per = std::min(per, g.in_channels);
    for (const auto& [co0, nc] : balanced_blocks(groups[gi].channels, kRedOut))
      for (int64_t ci = 0; ci < g.in_channels; ci += per) {
        const int64_t nci = std::min(per, g.in_channels - ci);
        jobs.push_back({gi, co0, nc, c0 + co0, ci, nci, nt * nci * nc});
      }
    c0 += groups[gi].channels;
  }
  const int64_t x_cs = grid.Do * x.plane, dy_cs = grid.Do * dy.plane;
  const std::vector<float> zeros(nvec * kLanes, 0.0f);
  // Jobs differ in cost by their group's tap count (27 vs 9 vs 3): a static
  // split of the job list gave one thread ~80% of the work. Workers take the
  // next job from a shared counter instead, heaviest first.
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) {
    return a.cost > b.cost;
  });
  for_each_dynamic(static_cast<int64_t>(jobs.size()), [&](int64_t i) {
    struct Entry {
      int64_t ci; // within the job
      const Tap* tap;
    };
    std::vector<Entry> entries;
    std::vector<float> part;
    const Job& j = jobs[i];
    const auto& tp = taps[j.group];
    for (int64_t c = 0; c < j.nci; ++c)
      for (const auto& t : tp)
        entries.push_back({c, &t});
    const int64_t ne = static_cast<int64_t>(entries.size());
    part.assign(j.nc * ne * kLanes, 0.0f);
    const auto ent_blocks = balanced_blocks(ne, kRedEnt);
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* xn = x.data + n * P * g.in_channels * x_cs;
      for (int64_t d = 0; d < grid.Do; ++d) {
        const float* yb =
            y0 + (n * g.out_channels + j.c_global0) * dy_cs + d * dy.plane;
        for (int64_t v0 = 0; v0 < nvec; v0 += kRedChunk) {
          const int64_t nv = std::min(kRedChunk, nvec - v0);
          for (const auto& [e0, nb] : ent_blocks) {
            const float* xb[kRedEnt];
            for (int k = 0; k < nb; ++k) {
              const Entry& e = entries[e0 + k];
              const Tap& t = *e.tap;
              const int64_t id = d + t.qd;
              xb[k] =
                  (id >= 0 && id < grid.Do)
                      ? xn + (t.phase * g.in_channels + j.ci0 + e.ci) * x_cs +
                            id * x.plane + (t.qh + ph) * x.Wp + t.qw + pw +
                            v0 * kLanes
                      : zeros.data() + v0 * kLanes;
            }
            kReduce[j.nc - 1][nb - 1](
                xb,
                yb + v0 * kLanes,
                dy_cs,
                nv,
                part.data() + e0 * kLanes,
                ne * kLanes);
          }
        }
      }
    }
    float* dw = grad_weights[j.group];
    const int64_t nt = static_cast<int64_t>(tp.size());
    for (int k = 0; k < j.nc; ++k)
      for (int64_t e = 0; e < ne; ++e)
        dw[((j.co0 + k) * g.in_channels + j.ci0 + entries[e].ci) * nt +
           entries[e].tap->index] = hsum(part.data() + (k * ne + e) * kLanes);
  });
}

} // namespace

void backward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const float* grad_out,
    float* grad_in,
    const std::vector<float*>& grad_weights) {
  // One padded copy of the output gradient (on the output grid) serves both
  // gradients.
  const Grid grid = grid_of(g);
  const auto [ph, pw] = border(groups, g);
  const Padded dy = pad_phases(
      grad_out,
      {g.batch, g.out_channels, grid.Do, grid.Ho, grid.Wo},
      {1, 1, 1, grid.Do, grid.Ho, grid.Wo},
      ph,
      pw);
  if (grad_in != nullptr)
    grad_input_from(g, groups, dy, grad_in);
  if (!grad_weights.empty())
    grad_weight_from(g, groups, in, dy, grad_weights);
}

} // namespace cakes::detail::direct
