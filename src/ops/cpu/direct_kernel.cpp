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
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <utility>

namespace cakes::detail::direct {
namespace {

constexpr int kLanes = 16;
constexpr int kMaxOut = 6; // output channels per register block (sums)
constexpr int kMaxVec = 4; // 16-position vectors per register block (sums)
constexpr int kRedOut = 6; // weight gradient: output channels per block
constexpr int kRedEnt = 4; // weight gradient: (input channel, tap) entries
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

// 64-byte aligned float buffers (one cache line: aligned loads never split),
// reused across calls. A fresh multi-megabyte allocation is mmapped by glibc
// and every page faults and is zeroed by the kernel on first touch; in the
// profile of a forward call that (clear_page_erms, exc_page_fault) cost about
// as much as the padding copy itself. Released buffers wait in a small pool.
class ScratchPool {
public:
  std::shared_ptr<float[]> get(int64_t n) {
    const size_t want = static_cast<size_t>(std::max<int64_t>(n, 1));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Smallest pooled buffer that fits and is not more than twice the size.
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->first >= want && it->first <= 2 * want &&
            (best == free_.end() || it->first < best->first))
          best = it;
      if (best != free_.end()) {
        const auto [cap, ptr] = *best;
        free_.erase(best);
        held_ -= cap;
        return wrap(ptr, cap);
      }
    }
    constexpr size_t kAlign = 64;
    const size_t cap =
        (want * sizeof(float) + kAlign - 1) / kAlign * kAlign / sizeof(float);
    auto* ptr = static_cast<float*>(std::aligned_alloc(kAlign, cap * 4));
    if (ptr == nullptr)
      throw std::bad_alloc();
    return wrap(ptr, cap);
  }

private:
  std::shared_ptr<float[]> wrap(float* ptr, size_t cap) {
    return std::shared_ptr<float[]>(
        ptr, [this, cap](float* p) { put(p, cap); });
  }
  void put(float* p, size_t cap) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_ + cap > kMaxHeld) {
      std::free(p);
      return;
    }
    free_.push_back({cap, p});
    held_ += cap;
  }
  static constexpr size_t kMaxHeld = size_t(64) << 20; // floats (256 MiB)
  std::mutex mutex_;
  std::vector<std::pair<size_t, float*>> free_;
  size_t held_ = 0;
};

std::shared_ptr<float[]> alloc_floats(int64_t n) {
  // Never destroyed: buffers may be released during static destruction.
  static auto* pool = new ScratchPool();
  return pool->get(n);
}

Padded pad_planes(const float* src, const Layout& l, int64_t ph, int64_t pw) {
  // The last vector of a plane reads up to a whole vector past its end; with
  // no border that is the next plane (junk lanes only), except after the
  // tensor's last plane, which must not be read: copy unless planes are whole
  // vectors.
  if (ph == 0 && pw == 0 && (l.H * l.W) % kLanes == 0)
    return {src, 0, 0, l.W, l.H * l.W, {}};
  const int64_t Wp = l.W + 2 * pw, Hp = l.H + 2 * ph;
  // Slack after each plane: the last vectors of a plane may read (junk lanes
  // only) up to one vector and two borders past it. Planes are whole vectors
  // and start so that the interior origin (ph, pw) is 64-byte aligned: the
  // weight gradient reads the padded output gradient from there with aligned
  // loads.
  const int64_t plane =
      (Hp * Wp + kLanes * kMaxVec + 2 * pw + kLanes - 1) / kLanes * kLanes;
  const int64_t lead = (kLanes - (ph * Wp + pw) % kLanes) % kLanes;
  const int64_t planes = l.batch * l.channels * l.D;
  std::shared_ptr<float[]> buf = alloc_floats(lead + planes * plane);
  float* dst = buf.get() + lead;
  at::parallel_for(0, planes, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* p = dst + i * plane;
      const float* s = src + i * l.H * l.W;
      std::memset(p, 0, sizeof(float) * ph * Wp);
      for (int64_t h = 0; h < l.H; ++h) {
        float* row = p + (h + ph) * Wp;
        std::memset(row, 0, sizeof(float) * pw);
        std::memcpy(row + pw, s + h * l.W, sizeof(float) * l.W);
        std::memset(row + pw + l.W, 0, sizeof(float) * pw);
      }
      std::memset(
          p + (l.H + ph) * Wp, 0, sizeof(float) * (plane - (l.H + ph) * Wp));
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

template <int NO, int... NV>
constexpr std::array<SumFn, sizeof...(NV)>
sum_row(std::integer_sequence<int, NV...>) {
  return {&block_sum<NO, NV + 1>...};
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
  struct Block {
    int64_t out0;
    int nout;
    std::vector<float> w;
  };
  std::vector<Block> blocks;
};

// Runs fn(i) for i in [0, n) on LibTorch's threads, each taking the next index
// from a shared counter. A static split made the faster thread spin at the
// barrier (5% of a forward call in the profile, far more when another process
// holds one of the cores).
template <typename Fn> void for_each_dynamic(int64_t n, const Fn& fn) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    for (int64_t i = next++; i < n; i = next++)
      fn(i);
  });
}

void run_sums(
    const std::vector<SumPlan>& plans,
    const Padded& in,
    const Layout& l, // of the output
    int64_t in_channels,
    float* out) {
  const int64_t nvec = (l.H * in.Wp + kLanes - 1) / kLanes;
  const int64_t nchunk = (nvec + kMaxVec - 1) / kMaxVec;
  const int64_t items = l.batch * l.D * nchunk;
  const int64_t in_cs = l.D * in.plane, out_cs = l.D * l.H * l.W;
  for_each_dynamic(items, [&](int64_t it) {
    {
      const int64_t n = it / (l.D * nchunk), d = (it / nchunk) % l.D,
                    c = it % nchunk;
      const int64_t v0 = c * kMaxVec;
      const int nv = static_cast<int>(std::min<int64_t>(kMaxVec, nvec - v0));
      for (const auto& plan : plans) {
        for (const auto& blk : plan.blocks) {
          SumArgs a{
              plan.segs.data(),
              static_cast<int64_t>(plan.segs.size()),
              in.data + n * in_channels * in_cs,
              in_cs,
              in.plane,
              d,
              l.D,
              v0 * kLanes,
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

// Splits `channels` into register blocks of at most `max_block`, as equal as
// possible: a narrow tail block (e.g. 2 of 32) does as many loads per FMA as a
// full one and would run several times slower.
std::vector<std::pair<int64_t, int>>
balanced_blocks(int64_t channels, int max_block) {
  std::vector<std::pair<int64_t, int>> out;
  if (channels <= 0)
    return out;
  const int64_t n = (channels + max_block - 1) / max_block;
  const int64_t base = channels / n, extra = channels % n;
  int64_t start = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int size = static_cast<int>(base + (i < extra ? 1 : 0));
    out.push_back({start, size});
    start += size;
  }
  return out;
}

struct Tap {
  int64_t od, oh, ow;
  int64_t index; // position in the kernel, (a * kh + b) * kw + c
};

std::vector<Tap> taps_of(const Group& grp, const Geometry& g) {
  std::vector<Tap> taps;
  for (int64_t a = 0; a < grp.kd; ++a)
    for (int64_t b = 0; b < grp.kh; ++b)
      for (int64_t c = 0; c < grp.kw; ++c)
        taps.push_back(
            {(a - grp.kd / 2) * g.dil_d,
             (b - grp.kh / 2) * g.dil_h,
             (c - grp.kw / 2) * g.dil_w,
             (a * grp.kh + b) * grp.kw + c});
  return taps;
}

// Border needed by every group's in-plane reach.
std::pair<int64_t, int64_t>
border(const std::vector<Group>& groups, const Geometry& g) {
  int64_t ph = 0, pw = 0;
  for (const auto& grp : groups) {
    if (grp.channels == 0)
      continue;
    ph = std::max(ph, g.dil_h * (grp.kh / 2));
    pw = std::max(pw, g.dil_w * (grp.kw / 2));
  }
  return {ph, pw};
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
  const auto [ph, pw] = border(groups, g);
  const Padded src =
      pad_planes(in, {g.batch, g.in_channels, g.D, g.H, g.W}, ph, pw);
  // Plans first (blocks own their weight arrays, so `plans` must not grow
  // after a fill captures a reference into it), then the weights are packed
  // in parallel: the late ResNet stages pack millions of weights per call.
  std::vector<SumPlan> plans;
  plans.reserve(groups.size());
  std::vector<std::function<void()>> fills;
  int64_t out0 = 0;
  for (const auto& grp : groups) {
    if (grp.channels == 0)
      continue;
    plans.emplace_back();
    SumPlan& p = plans.back();
    const auto taps = taps_of(grp, g);
    const int64_t vol = static_cast<int64_t>(taps.size()),
                  row = g.in_channels * vol;
    std::vector<int64_t> seg_tap;
    for (int64_t c0 = 0; c0 < g.in_channels; c0 += kChannelBlock)
      for (const auto& t : taps) {
        p.segs.push_back(
            {c0,
             std::min(kChannelBlock, g.in_channels - c0),
             t.od,
             (t.oh + ph) * src.Wp + t.ow + pw});
        seg_tap.push_back(t.index);
      }
    for (const auto& [o0, nb] : balanced_blocks(grp.channels, kMaxOut)) {
      p.blocks.push_back({out0 + o0, nb, std::vector<float>(row * nb)});
      fills.push_back([&grp,
                       &p,
                       seg_tap,
                       o0 = o0,
                       nb = nb,
                       row,
                       vol,
                       bi = p.blocks.size() - 1] {
        float* w = p.blocks[bi].w.data();
        for (size_t si = 0; si < p.segs.size(); ++si) {
          const float* src = grp.weight + o0 * row + seg_tap[si];
          for (int64_t ci = p.segs[si].ch0;
               ci < p.segs[si].ch0 + p.segs[si].nch;
               ++ci)
            for (int o = 0; o < nb; ++o)
              *w++ = src[o * row + ci * vol];
        }
      });
    }
    out0 += grp.channels;
  }
  at::parallel_for(
      0, static_cast<int64_t>(fills.size()), 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          fills[i]();
      });
  run_sums(
      plans, src, {g.batch, g.out_channels, g.D, g.H, g.W}, g.in_channels, out);
}

namespace {

void grad_input_from(
    const Geometry& g,
    const std::vector<Group>& groups,
    const Padded& dy,
    float* grad_in) {
  // Gather form: dX[ci][i] = sum over groups, their channels co and taps t of
  // W[co][ci][t] * dY[co][i - off_t]: one segment per (group, channel block,
  // tap) over the output gradient with flipped offsets; blocks over input
  // channels.
  SumPlan p;
  struct Src {
    const Group* grp;
    int64_t tap, co0; // co0: first channel within the group
  };
  std::vector<Src> srcs;
  int64_t c0 = 0;
  for (const auto& grp : groups) {
    const auto taps = taps_of(grp, g);
    for (int64_t b = 0; b < grp.channels; b += kChannelBlock)
      for (const auto& t : taps) {
        p.segs.push_back(
            {c0 + b,
             std::min(kChannelBlock, grp.channels - b),
             -t.od,
             (-t.oh + dy.ph) * dy.Wp - t.ow + dy.pw});
        srcs.push_back({&grp, t.index, b});
      }
    c0 += grp.channels;
  }
  if (p.segs.empty()) {
    std::memset(
        grad_in, 0, sizeof(float) * g.batch * g.in_channels * g.D * g.H * g.W);
    return;
  }
  int64_t packed = 0; // floats per input channel of a block
  for (const auto& sg : p.segs)
    packed += sg.nch;
  for (const auto& [i0, nb] : balanced_blocks(g.in_channels, kMaxOut))
    p.blocks.push_back({i0, nb, std::vector<float>(packed * nb)});
  at::parallel_for(
      0, static_cast<int64_t>(p.blocks.size()), 1, [&](int64_t b, int64_t e) {
        for (int64_t bi = b; bi < e; ++bi) {
          auto& blk = p.blocks[bi];
          float* w = blk.w.data();
          for (size_t si = 0; si < srcs.size(); ++si) {
            const Src& s = srcs[si];
            const int64_t vol = s.grp->kd * s.grp->kh * s.grp->kw;
            for (int64_t co = s.co0; co < s.co0 + p.segs[si].nch; ++co) {
              const float* src =
                  s.grp->weight + (co * g.in_channels + blk.out0) * vol + s.tap;
              for (int o = 0; o < blk.nout; ++o)
                *w++ = src[o * vol];
            }
          }
        }
      });
  run_sums(
      {p},
      dy,
      {g.batch, g.in_channels, g.D, g.H, g.W},
      g.out_channels,
      grad_in);
}

// dy: the output gradient padded like the input (same border), so position q
// of a plane on the padded row width is dy.data + ph * Wp + pw + q, with zeros
// in the junk columns.
void grad_weight_from(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const Padded& dy,
    const std::vector<float*>& grad_weights) {
  const int64_t ph = dy.ph, pw = dy.pw;
  const Padded x =
      pad_planes(in, {g.batch, g.in_channels, g.D, g.H, g.W}, ph, pw);
  const int64_t nvec = (g.H * x.Wp + kLanes - 1) / kLanes;
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
  const int64_t x_cs = g.D * x.plane, dy_cs = g.D * dy.plane;
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
    {
      const Job& j = jobs[i];
      const auto& tp = taps[j.group];
      entries.clear();
      for (int64_t c = 0; c < j.nci; ++c)
        for (const auto& t : tp)
          entries.push_back({c, &t});
      const int64_t ne = static_cast<int64_t>(entries.size());
      part.assign(j.nc * ne * kLanes, 0.0f);
      const auto ent_blocks = balanced_blocks(ne, kRedEnt);
      for (int64_t n = 0; n < g.batch; ++n) {
        const float* xn = x.data + (n * g.in_channels + j.ci0) * x_cs;
        for (int64_t d = 0; d < g.D; ++d) {
          const float* yb =
              y0 + (n * g.out_channels + j.c_global0) * dy_cs + d * dy.plane;
          for (int64_t v0 = 0; v0 < nvec; v0 += kRedChunk) {
            const int64_t nv = std::min(kRedChunk, nvec - v0);
            for (const auto& [e0, nb] : ent_blocks) {
              const float* xb[kRedEnt];
              for (int k = 0; k < nb; ++k) {
                const Entry& e = entries[e0 + k];
                const Tap& t = *e.tap;
                const int64_t id = d + t.od;
                xb[k] = (id >= 0 && id < g.D)
                            ? xn + e.ci * x_cs + id * x.plane +
                                  (t.oh + ph) * x.Wp + t.ow + pw + v0 * kLanes
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
    }
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
  // One padded copy of the output gradient serves both gradients.
  const auto [ph, pw] = border(groups, g);
  const Padded dy =
      pad_planes(grad_out, {g.batch, g.out_channels, g.D, g.H, g.W}, ph, pw);
  if (grad_in != nullptr)
    grad_input_from(g, groups, dy, grad_in);
  if (!grad_weights.empty())
    grad_weight_from(g, groups, in, dy, grad_weights);
}

} // namespace cakes::detail::direct
