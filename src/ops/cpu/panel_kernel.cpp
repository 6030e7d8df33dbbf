// The panel AVX-512 engine (Engine::Panel): output positions packed densely
// so small maps (7x7, 4^3) and pointwise layers fill the vector lanes;
// forward, input and weight gradients. Over 500 lines because the three
// passes share packing, job scheduling and tile tables that must inline
// together.
#include "panel_kernel.h"
#include "cpu_util.h"

// GCC 12 reports the deliberately undefined pass-through operand inside
// avx512fintrin.h's masked intrinsics as uninitialised (a known false
// positive); CI builds with -Werror.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace cakes::detail::panel {
namespace {

constexpr int kLanes = 16;
// Register tiles: MR rows of A x NV vectors of positions, MR * NV
// accumulators + NV panel vectors + 1 broadcast <= 32 registers.
constexpr int kMaxMR = 14;
constexpr int kMaxNV = 4;
// Vectors of positions per block of the forward and input gradient: a
// block's panel rows x one tile of NV vectors stay in L1 while every row
// tile of A reuses them.
constexpr int64_t kBlockVec = 24;
// Panel rows packed at a time (a k-block): kBlockRows x NV vectors = 32 KB.
constexpr int64_t kBlockRows = 128;
// Pointwise (1x1x1, stride 1) layers copy each input channel's positions
// into the panel: longer blocks make longer runs for the prefetcher (a run of
// 24 vectors, 1.5 KB, is mostly latency), fewer rows per k-block keep the
// panel block at 256 KB.
constexpr int64_t kPointBlockVec = 64;
constexpr int64_t kPointBlockRows = 64;
// Weight gradient: output channels per job, panel rows packed at a time,
// vectors of positions per block (a tile's dY rows and panel rows stay in L1
// while the tiles of a job reuse them).
constexpr int kRedMR = 6; // output channels per register tile
constexpr int kRedNE = 4; // panel rows per register tile
constexpr int64_t kRedRows = 64;
constexpr int64_t kRedChannels = 128;
constexpr int64_t kRedBlockVec = 48;
// The weight gradient's outer form (channels vectorised, see grad_weight):
// vectors of positions per step (its dY^T tile of 8 x 16 positions x 64
// channels = 32 KB stays in L1) and panel rows packed at a time.
constexpr int64_t kOuterVec = 8;
constexpr int64_t kOuterRows = 256;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

struct Dims {
  int64_t d, h, w;
  int64_t numel() const {
    return d * h * w;
  }
};

// ---------------------------------------------------------------------------
// Sources and packing

// A tensor that panels read: per sample and channel a box of (D + 2 pd) x
// (H + 2 ph) x (W + 2 pw) floats with zero borders, or the tensor itself when
// it needs no border and no strided reads (then only contiguous runs of it
// are read, never past its end).
struct Source {
  const float* data; // sample 0, channel 0, corner of the box
  int64_t ns, cs, plane, Wp;
  int64_t pd, ph, pw;
  bool raw;
  std::shared_ptr<float[]> keep;
  // Offset of element (d, h, w) of the interior from its channel's origin.
  int64_t at(int64_t d, int64_t h, int64_t w) const {
    return (d + pd) * plane + (h + ph) * Wp + (w + pw);
  }
};

Source make_source(
    const float* t,
    int64_t N,
    int64_t C,
    Dims s,
    int64_t pd,
    int64_t ph,
    int64_t pw,
    bool force_copy) {
  if (pd == 0 && ph == 0 && pw == 0 && !force_copy)
    return {t, C * s.numel(), s.numel(), s.h * s.w, s.w, 0, 0, 0, true, {}};
  const int64_t Dp = s.d + 2 * pd, Hp = s.h + 2 * ph, Wp = s.w + 2 * pw;
  const int64_t plane = Hp * Wp, cs = Dp * plane;
  // Slack after the end: a permuted load reads 32 floats from its first lane.
  auto buf = alloc_floats(N * C * cs + 2 * kLanes);
  float* dst = buf.get();
  std::memset(dst + N * C * cs, 0, sizeof(float) * 2 * kLanes);
  at::parallel_for(0, N * C * Dp, 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t dp = i % Dp, nc = i / Dp, d = dp - pd;
      float* p = dst + nc * cs + dp * plane;
      if (d < 0 || d >= s.d) {
        std::memset(p, 0, sizeof(float) * plane);
        continue;
      }
      const float* from = t + (nc * s.d + d) * s.h * s.w;
      // Only borders are zeroed; the copy writes the rest.
      std::memset(p, 0, sizeof(float) * ph * Wp);
      for (int64_t h = 0; h < s.h; ++h) {
        float* row = p + (h + ph) * Wp;
        std::memset(row, 0, sizeof(float) * pw);
        std::memcpy(row + pw, from + h * s.w, sizeof(float) * s.w);
        std::memset(row + pw + s.w, 0, sizeof(float) * pw);
      }
      std::memset(p + (s.h + ph) * Wp, 0, sizeof(float) * ph * Wp);
    }
  });
  return {dst, C * cs, cs, plane, Wp, pd, ph, pw, false, buf};
}

// How to assemble one vector of 16 consecutive positions of a grid from a
// source row: one load when their offsets are consecutive (masked for the
// last, partial vector), otherwise *pieces*, each a permutation of 32
// consecutive floats into some lanes (a strided or row-crossing vector).
enum : uint8_t { kFull, kMasked, kPieces };
struct Recipe {
  int32_t base;  // offset of the first lane (kFull, kMasked)
  uint16_t mask; // lanes holding positions of the grid
  uint8_t kind;
  uint8_t npieces;
  int32_t piece0; // first piece (kPieces)
};
struct Piece {
  int32_t base;
  uint16_t mask;
  int32_t idx[kLanes];
};
struct Recipes {
  std::vector<Recipe> vec;
  std::vector<Piece> pieces;
};

// Positions p in [0, count) of a grid whose offset from a channel's origin
// is index(p), increasing in p.
template <typename IndexFn>
Recipes make_recipes(int64_t count, bool raw, const IndexFn& index) {
  Recipes r;
  const int64_t nvec = ceil_div(count, kLanes);
  r.vec.resize(nvec);
  int64_t idx[kLanes];
  for (int64_t v = 0; v < nvec; ++v) {
    const int n =
        static_cast<int>(std::min<int64_t>(kLanes, count - v * kLanes));
    for (int l = 0; l < n; ++l)
      idx[l] = index(v * kLanes + l);
    Recipe& rc = r.vec[v];
    rc.base = static_cast<int32_t>(idx[0]);
    rc.mask = static_cast<uint16_t>(n == kLanes ? 0xFFFF : (1u << n) - 1);
    rc.npieces = 0;
    rc.piece0 = 0;
    bool contiguous = true;
    for (int l = 1; l < n; ++l)
      contiguous = contiguous && idx[l] == idx[0] + l;
    if (contiguous) {
      rc.kind = n == kLanes ? kFull : kMasked;
      continue;
    }
    TORCH_INTERNAL_ASSERT(!raw, "panel: strided reads need a copied source");
    rc.kind = kPieces;
    rc.piece0 = static_cast<int32_t>(r.pieces.size());
    for (int l = 0; l < n;) {
      Piece pc{};
      pc.base = static_cast<int32_t>(idx[l]);
      for (; l < n && idx[l] - pc.base < 2 * kLanes; ++l) {
        pc.idx[l] = static_cast<int32_t>(idx[l] - pc.base);
        pc.mask = static_cast<uint16_t>(pc.mask | (1u << l));
      }
      r.pieces.push_back(pc);
      ++rc.npieces;
    }
  }
  return r;
}

// Lanes of the grid's positions from `src`, zeros in the others.
__attribute__((target("avx512f"), always_inline)) inline __m512
assemble(const Recipe& rc, const Piece* pieces, const float* src) {
  if (rc.kind == kFull)
    return _mm512_loadu_ps(src + rc.base);
  if (rc.kind == kMasked)
    return _mm512_maskz_loadu_ps(rc.mask, src + rc.base);
  __m512 r = _mm512_setzero_ps();
  for (int i = 0; i < rc.npieces; ++i) {
    const Piece& pc = pieces[rc.piece0 + i];
    const float* s = src + pc.base;
    const __m512 t = _mm512_permutex2var_ps(
        _mm512_loadu_ps(s),
        _mm512_loadu_si512(pc.idx),
        _mm512_loadu_ps(s + kLanes));
    r = _mm512_mask_mov_ps(r, pc.mask, t);
  }
  return r;
}

// Vectors [v0, v0 + nv) of the grid read from one source row (a channel's
// origin plus a tap offset), stored to an aligned panel row.
__attribute__((target("avx512f"))) void pack_row(
    const Recipes& rc, int64_t v0, int64_t nv, const float* src, float* dst) {
  const Recipe* r = rc.vec.data() + v0;
  const Piece* pieces = rc.pieces.data();
  for (int64_t v = 0; v < nv; ++v)
    _mm512_store_ps(dst + v * kLanes, assemble(r[v], pieces, src));
}

// ---------------------------------------------------------------------------
// The GEMM microkernel

// C[o][v] (+)= sum over j < J, t < T of A[o * lda + j * ja + toff[t]] *
// B[(j * T + t) * ldb + v], for MR rows o and NV vectors v; the last vector's
// lanes outside `last` are neither read nor written. When the sum is final,
// an epilogue may add bias[o], add res[o * ldc + v] and clamp at zero before
// the store.
struct Gemm {
  const float* a;
  int64_t lda, ja;
  const int32_t* toff;
  int64_t T, J;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  __mmask16 last;
  bool accumulate;
  const float* bias = nullptr;
  const float* res = nullptr;
  bool relu = false;
};

// One k step of a tile: NV vectors of B, MR broadcasts of A.
template <int MR, int NV>
__attribute__((target("avx512f"), always_inline)) inline void
gemm_step(__m512 (&acc)[MR][NV], const float* b, const float* ap, int64_t lda) {
  __m512 bv[NV];
  for (int v = 0; v < NV; ++v)
    bv[v] = _mm512_load_ps(b + v * kLanes);
  for (int o = 0; o < MR; ++o) {
    const __m512 w = _mm512_set1_ps(ap[o * lda]);
    for (int v = 0; v < NV; ++v)
      acc[o][v] = _mm512_fmadd_ps(w, bv[v], acc[o][v]);
  }
}

template <int MR, int NV>
__attribute__((target("avx512f"))) void gemm_tile(const Gemm& k) {
  __m512 acc[MR][NV];
  for (int o = 0; o < MR; ++o)
    for (int v = 0; v < NV; ++v)
      acc[o][v] = _mm512_setzero_ps();
  const float* b = k.b;
  const int64_t lda = k.lda;
  if (k.T == 1) {
    // One tap (pointwise layers, the weight gradient's outer form): no tap
    // loop, whose set-up per j cost a fifth of the time.
    const float* ap = k.a + k.toff[0];
    for (int64_t j = 0; j < k.J; ++j, ap += k.ja, b += k.ldb)
      gemm_step<MR, NV>(acc, b, ap, lda);
  } else {
    for (int64_t j = 0; j < k.J; ++j) {
      const float* aj = k.a + j * k.ja;
      for (int64_t t = 0; t < k.T; ++t, b += k.ldb)
        gemm_step<MR, NV>(acc, b, aj + k.toff[t], lda);
    }
  }
  for (int o = 0; o < MR; ++o) {
    float* c = k.c + o * k.ldc;
    const __m512 bias =
        k.bias ? _mm512_set1_ps(k.bias[o]) : _mm512_setzero_ps();
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? k.last : __mmask16(0xFFFF);
      __m512 r = acc[o][v];
      if (k.accumulate)
        r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, c + v * kLanes));
      if (k.bias)
        r = _mm512_add_ps(r, bias);
      if (k.res)
        r = _mm512_add_ps(
            r, _mm512_maskz_loadu_ps(m, k.res + o * k.ldc + v * kLanes));
      if (k.relu)
        r = _mm512_max_ps(r, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(c + v * kLanes, m, r);
    }
  }
}

using GemmFn = void (*)(const Gemm&);
template <int MR, int NV> constexpr GemmFn gemm_entry() {
  if constexpr (MR * NV + NV + 1 <= 32)
    return &gemm_tile<MR, NV>;
  else
    return nullptr; // would spill registers; never chosen
}
template <int MR, int... NV>
constexpr std::array<GemmFn, sizeof...(NV)>
gemm_row(std::integer_sequence<int, NV...>) {
  return {gemm_entry<MR, NV + 1>()...};
}
template <int... MR>
constexpr std::array<std::array<GemmFn, kMaxNV>, sizeof...(MR)>
gemm_table(std::integer_sequence<int, MR...>) {
  return {gemm_row<MR + 1>(std::make_integer_sequence<int, kMaxNV>())...};
}
const auto kGemm = gemm_table(std::make_integer_sequence<int, kMaxMR>());

// Row tiles for `rows` rows of C: 6 x 4 tiles, or 8 x 3 when those do fewer
// L1 accesses per FMA (one broadcast per row, one load per vector).
std::pair<std::vector<std::pair<int64_t, int>>, int> row_tiles(int64_t rows) {
  auto cost = [](const std::vector<std::pair<int64_t, int>>& blocks, int nv) {
    double c = 0;
    for (const auto& b : blocks)
      c += double(b.second + nv) / nv;
    return c;
  };
  auto wide = balanced_blocks(rows, 6), tall = balanced_blocks(rows, 8);
  if (cost(tall, 3) < cost(wide, 4))
    return {tall, 3};
  return {wide, 4};
}

__mmask16 tail_mask(int64_t count, int64_t v_end) {
  const int64_t r = count - (v_end - 1) * kLanes;
  return r >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << r) - 1);
}

// ---------------------------------------------------------------------------
// Taps

struct Tap {
  int64_t od, oh, ow; // offsets on the input grid
  int32_t index;      // position in the kernel, (a * kh + b) * kw + c
  // The stride's phase the tap reads (offsets mod strides) and its offsets on
  // the output grid (offsets div strides).
  int64_t phase, qd, qh, qw;
};

std::vector<Tap> taps_of(const Group& grp, const Geometry& g) {
  std::vector<Tap> taps;
  for (int64_t a = 0; a < grp.kd; ++a)
    for (int64_t b = 0; b < grp.kh; ++b)
      for (int64_t c = 0; c < grp.kw; ++c) {
        Tap t;
        t.od = (a - grp.kd / 2) * g.dil_d;
        t.oh = (b - grp.kh / 2) * g.dil_h;
        t.ow = (c - grp.kw / 2) * g.dil_w;
        t.index = static_cast<int32_t>((a * grp.kh + b) * grp.kw + c);
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

Dims output_dims(const Geometry& g) {
  return {
      (g.D - 1) / g.stride_d + 1,
      (g.H - 1) / g.stride_h + 1,
      (g.W - 1) / g.stride_w + 1};
}

bool strided(const Geometry& g) {
  return g.stride_d > 1 || g.stride_h > 1 || g.stride_w > 1;
}

// The input with the border every group's taps reach, and how the output
// grid's positions read it (forward and weight gradient).
struct InputPanels {
  Source src;
  Recipes rec;
};

InputPanels input_panels(
    const Geometry& g, const std::vector<Group>& groups, const float* in) {
  int64_t pd = 0, ph = 0, pw = 0;
  for (const auto& grp : groups)
    if (grp.channels > 0) {
      pd = std::max(pd, (grp.kd / 2) * g.dil_d);
      ph = std::max(ph, (grp.kh / 2) * g.dil_h);
      pw = std::max(pw, (grp.kw / 2) * g.dil_w);
    }
  InputPanels r;
  r.src = make_source(
      in, g.batch, g.in_channels, {g.D, g.H, g.W}, pd, ph, pw, strided(g));
  const Dims o = output_dims(g);
  const Source& s = r.src;
  r.rec = make_recipes(o.numel(), s.raw, [&](int64_t p) {
    const int64_t w = p % o.w, h = (p / o.w) % o.h, d = p / (o.w * o.h);
    return s.at(d * g.stride_d, h * g.stride_h, w * g.stride_w);
  });
  return r;
}

// Splits `rows` into about `pieces` balanced chunks of at least 8 rows (one
// register tile): more work items for the threads, each packing its own
// panels.
std::vector<std::pair<int64_t, int64_t>>
chunks_of(int64_t rows, int64_t pieces) {
  std::vector<std::pair<int64_t, int64_t>> out;
  pieces = std::max<int64_t>(1, std::min(pieces, ceil_div(rows, 8)));
  for (const auto& [r0, n] :
       balanced_blocks(rows, static_cast<int>(ceil_div(rows, pieces))))
    out.push_back({r0, n});
  return out;
}

} // namespace

// ---------------------------------------------------------------------------
// Forward

void forward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    float* out,
    const Epilogue& ep) {
  const Dims od = output_dims(g);
  const int64_t P = od.numel(), nvec = ceil_div(P, kLanes);
  const InputPanels ip = input_panels(g, groups, in);
  const Source& src = ip.src;
  bool pointwise = !strided(g);
  for (const auto& grp : groups)
    if (grp.channels > 0)
      pointwise = pointwise && grp.kd * grp.kh * grp.kw == 1;
  const int64_t block_vec = pointwise ? kPointBlockVec : kBlockVec;
  const int64_t block_rows = pointwise ? kPointBlockRows : kBlockRows;
  const auto nblocks = balanced_blocks(nvec, static_cast<int>(block_vec));

  struct GroupPlan {
    const Group* grp;
    int64_t out0, T;
    std::vector<int64_t> rowoff; // tap offset in the source
    std::vector<int32_t> toff;   // tap offset in a weight row
    std::vector<std::pair<int64_t, int64_t>> chunks;
  };
  std::vector<GroupPlan> plans;
  int64_t nonempty = 0, max_rows = kBlockRows;
  for (const auto& grp : groups)
    if (grp.channels > 0)
      ++nonempty;
  // Enough items for the threads to balance: split the output channels of a
  // group when samples x position blocks x groups are too few.
  const int64_t base_items = g.batch * static_cast<int64_t>(nblocks.size()) *
                             std::max<int64_t>(1, nonempty);
  const int64_t split = ceil_div(4 * at::get_num_threads(), base_items);
  int64_t out0 = 0;
  for (const auto& grp : groups) {
    const int64_t first = out0;
    out0 += grp.channels;
    if (grp.channels == 0)
      continue;
    GroupPlan p;
    p.grp = &grp;
    p.out0 = first;
    for (const auto& t : taps_of(grp, g)) {
      p.rowoff.push_back(t.od * src.plane + t.oh * src.Wp + t.ow);
      p.toff.push_back(t.index);
    }
    p.T = static_cast<int64_t>(p.toff.size());
    max_rows = std::max(max_rows, p.T);
    p.chunks = chunks_of(grp.channels, split);
    plans.push_back(std::move(p));
  }
  struct Item {
    int64_t n;
    size_t block, plan, chunk;
    int64_t cost;
  };
  std::vector<Item> items;
  for (int64_t n = 0; n < g.batch; ++n)
    for (size_t b = 0; b < nblocks.size(); ++b)
      for (size_t pi = 0; pi < plans.size(); ++pi)
        for (size_t c = 0; c < plans[pi].chunks.size(); ++c)
          items.push_back(
              {n,
               b,
               pi,
               c,
               plans[pi].chunks[c].second * plans[pi].T * nblocks[b].second});
  std::stable_sort(
      items.begin(), items.end(), [](const Item& a, const Item& b) {
        return a.cost > b.cost;
      });
  const int64_t C = g.in_channels;
  for_each_dynamic_with(
      static_cast<int64_t>(items.size()),
      [&] { return alloc_floats(max_rows * block_vec * kLanes); },
      [&](std::shared_ptr<float[]>& buf, int64_t i) {
        const Item& it = items[i];
        const GroupPlan& gp = plans[it.plan];
        const auto [v0, nv] = nblocks[it.block];
        const auto [c0, cn] = gp.chunks[it.chunk];
        const int64_t T = gp.T, K = C * T, ld = nv * kLanes;
        const int64_t Jc = std::max<int64_t>(1, block_rows / T);
        float* panel = buf.get();
        const float* xs = src.data + it.n * src.ns;
        const auto [tiles, NV] = row_tiles(cn);
        const auto ntiles = balanced_blocks(nv, NV);
        for (int64_t j0 = 0; j0 < C; j0 += Jc) {
          const int64_t j1 = std::min(C, j0 + Jc);
          for (int64_t j = j0; j < j1; ++j)
            for (int64_t t = 0; t < T; ++t)
              pack_row(
                  ip.rec,
                  v0,
                  nv,
                  xs + j * src.cs + gp.rowoff[t],
                  panel + ((j - j0) * T + t) * ld);
          for (const auto& [s0, ns] : ntiles) {
            const __mmask16 last = tail_mask(P, v0 + s0 + ns);
            for (const auto& [o0, mr] : tiles) {
              const int64_t co = c0 + o0;
              const int64_t row = it.n * g.out_channels + gp.out0 + co;
              Gemm k{
                  gp.grp->weight + co * K + j0 * T,
                  K,
                  T,
                  gp.toff.data(),
                  T,
                  j1 - j0,
                  panel + s0 * kLanes,
                  ld,
                  out + row * P + (v0 + s0) * kLanes,
                  P,
                  last,
                  j0 > 0};
              if (j1 == C) { // the sums are final
                if (ep.bias)
                  k.bias = ep.bias + gp.out0 + co;
                if (ep.residual)
                  k.res = ep.residual + row * P + (v0 + s0) * kLanes;
                k.relu = ep.relu;
              }
              kGemm[mr - 1][ns - 1](k);
            }
          }
        }
      });
}

// ---------------------------------------------------------------------------
// Input gradient

namespace {

void grad_input(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* grad_out,
    float* grad_in) {
  // Gather form: input position i = s * j + r (phase r) is reached exactly by
  // the taps of phase r, from output position j - q_t. Per phase, a GEMM over
  // those taps whose panel reads dY at the flipped offsets; at stride 1 there
  // is one phase, written in place, otherwise phases go to a buffer and are
  // interleaved into dX.
  const Dims od = output_dims(g);
  const int64_t sd = g.stride_d, sh = g.stride_h, sw = g.stride_w;
  const int64_t nph = sd * sh * sw;
  std::vector<std::vector<Tap>> taps(groups.size());
  int64_t bd = 0, bh = 0, bw = 0, max_rows = kBlockRows;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (groups[gi].channels == 0)
      continue;
    taps[gi] = taps_of(groups[gi], g);
    max_rows = std::max<int64_t>(max_rows, taps[gi].size());
    for (const auto& t : taps[gi]) {
      bd = std::max(bd, std::abs(t.qd));
      bh = std::max(bh, std::abs(t.qh));
      bw = std::max(bw, std::abs(t.qw));
    }
  }
  // Phases other than the first read dY on grids smaller than its own (not
  // contiguous runs): they need a copied source.
  const Source dy =
      make_source(grad_out, g.batch, g.out_channels, od, bd, bh, bw, nph > 1);
  struct Phase {
    Dims dims;
    Recipes rec;
    int64_t offset; // of its buffer, per sample
    // Per group: the taps of this phase.
    std::vector<std::vector<int64_t>> rowoff;
    std::vector<std::vector<int32_t>> toff;
  };
  std::vector<Phase> phases(nph);
  int64_t per_sample = 0;
  for (int64_t r = 0; r < nph; ++r) {
    const int64_t rd = r / (sh * sw), rh = (r / sw) % sh, rw = r % sw;
    Phase& ph = phases[r];
    ph.dims = {
        g.D > rd ? ceil_div(g.D - rd, sd) : 0,
        g.H > rh ? ceil_div(g.H - rh, sh) : 0,
        g.W > rw ? ceil_div(g.W - rw, sw) : 0};
    ph.offset = per_sample;
    per_sample += g.in_channels * ph.dims.numel();
    const Dims pd = ph.dims;
    ph.rec = make_recipes(pd.numel(), dy.raw, [&](int64_t p) {
      const int64_t w = p % pd.w, h = (p / pd.w) % pd.h, d = p / (pd.w * pd.h);
      return dy.at(d, h, w);
    });
    ph.rowoff.resize(groups.size());
    ph.toff.resize(groups.size());
    for (size_t gi = 0; gi < groups.size(); ++gi)
      for (const auto& t : taps[gi])
        if (t.phase == r) {
          ph.rowoff[gi].push_back(-(t.qd * dy.plane + t.qh * dy.Wp + t.qw));
          ph.toff[gi].push_back(t.index);
        }
  }
  const bool direct_out = nph == 1;
  bool pointwise = nph == 1;
  for (const auto& grp : groups)
    if (grp.channels > 0)
      pointwise = pointwise && grp.kd * grp.kh * grp.kw == 1;
  const int64_t block_vec = pointwise ? kPointBlockVec : kBlockVec;
  const int64_t block_rows = pointwise ? kPointBlockRows : kBlockRows;
  std::shared_ptr<float[]> buf;
  if (!direct_out)
    buf = alloc_floats(g.batch * per_sample);
  float* dst_base = direct_out ? grad_in : buf.get();

  struct Item {
    int64_t n, r;
    int64_t v0, nv;
    int64_t c0, cn;
  };
  std::vector<Item> items;
  const int64_t C = g.in_channels;
  {
    int64_t blocks = 0;
    for (const auto& ph : phases)
      blocks += ceil_div(ceil_div(ph.dims.numel(), kLanes), block_vec);
    const int64_t split = ceil_div(
        4 * at::get_num_threads(), std::max<int64_t>(1, g.batch * blocks));
    const auto ch = chunks_of(C, split);
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t r = 0; r < nph; ++r) {
        const int64_t nvec = ceil_div(phases[r].dims.numel(), kLanes);
        for (const auto& [v0, nv] :
             balanced_blocks(nvec, static_cast<int>(block_vec)))
          for (const auto& [c0, cn] : ch)
            items.push_back({n, r, v0, nv, c0, cn});
      }
  }
  for_each_dynamic_with(
      static_cast<int64_t>(items.size()),
      [&] { return alloc_floats(max_rows * block_vec * kLanes); },
      [&](std::shared_ptr<float[]>& pbuf, int64_t i) {
        const Item& it = items[i];
        const Phase& ph = phases[it.r];
        const int64_t Pr = ph.dims.numel(), ld = it.nv * kLanes;
        float* panel = pbuf.get();
        const float* ys = dy.data + it.n * dy.ns;
        float* dst = dst_base + it.n * (direct_out ? C * Pr : per_sample) +
                     (direct_out ? 0 : ph.offset);
        const auto [tiles, NV] = row_tiles(it.cn);
        const auto ntiles = balanced_blocks(it.nv, NV);
        bool first = true;
        int64_t c_base = 0;
        for (size_t gi = 0; gi < groups.size(); ++gi) {
          const Group& grp = groups[gi];
          const int64_t cg = grp.channels;
          const int64_t T = static_cast<int64_t>(ph.toff[gi].size());
          const int64_t vol = grp.kd * grp.kh * grp.kw;
          if (cg == 0 || T == 0) {
            c_base += cg;
            continue;
          }
          const int64_t Jc = std::max<int64_t>(1, block_rows / T);
          for (int64_t j0 = 0; j0 < cg; j0 += Jc) {
            const int64_t j1 = std::min(cg, j0 + Jc);
            for (int64_t j = j0; j < j1; ++j)
              for (int64_t t = 0; t < T; ++t)
                pack_row(
                    ph.rec,
                    it.v0,
                    it.nv,
                    ys + (c_base + j) * dy.cs + ph.rowoff[gi][t],
                    panel + ((j - j0) * T + t) * ld);
            for (const auto& [s0, ns] : ntiles) {
              const __mmask16 last = tail_mask(Pr, it.v0 + s0 + ns);
              for (const auto& [o0, mr] : tiles) {
                const int64_t ci = it.c0 + o0;
                Gemm k{
                    grp.weight + ci * vol + j0 * C * vol,
                    vol,
                    C * vol,
                    ph.toff[gi].data(),
                    T,
                    j1 - j0,
                    panel + s0 * kLanes,
                    ld,
                    dst + ci * Pr + (it.v0 + s0) * kLanes,
                    Pr,
                    last,
                    !first};
                kGemm[mr - 1][ns - 1](k);
              }
            }
            first = false;
          }
          c_base += cg;
        }
        if (first) // no tap reaches this phase: its positions get no gradient
          for (int64_t c = 0; c < it.cn; ++c) {
            const int64_t p0 = it.v0 * kLanes;
            const int64_t p1 = std::min(Pr, (it.v0 + it.nv) * kLanes);
            std::memset(
                dst + (it.c0 + c) * Pr + p0, 0, sizeof(float) * (p1 - p0));
          }
      });
  if (direct_out)
    return;
  // Interleave: dX[n][c][sd*jd+rd][sh*jh+rh][sw*jw+rw] = phase r at (jd, jh,
  // jw); every input position belongs to exactly one phase position.
  at::parallel_for(0, g.batch * C * g.D, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t id = i % g.D, c = (i / g.D) % C, n = i / (g.D * C);
      const int64_t jd = id / sd, rd = id % sd;
      float* plane = grad_in + i * g.H * g.W;
      for (int64_t rh = 0; rh < sh && rh < g.H; ++rh)
        for (int64_t rw = 0; rw < sw && rw < g.W; ++rw) {
          const int64_t r = (rd * sh + rh) * sw + rw;
          const Phase& ph = phases[r];
          const float* s = buf.get() + n * per_sample + ph.offset +
                           c * ph.dims.numel() + jd * ph.dims.h * ph.dims.w;
          for (int64_t jh = 0, ih = rh; ih < g.H; ++jh, ih += sh) {
            float* d = plane + ih * g.W + rw;
            const float* s_row = s + jh * ph.dims.w;
            for (int64_t jw = 0; jw < ph.dims.w; ++jw)
              d[sw * jw] = s_row[jw];
          }
        }
    }
  });
}

// ---------------------------------------------------------------------------
// Weight gradient

// The sums of the 16 lanes of a, b, c and d, in that order.
__attribute__((target("avx512f"), always_inline)) inline __m128
hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // 128-bit lanes [a0+a2, a1+a3, b0+b2, b1+b3], the same for c, d.
  const __m512 ab = _mm512_add_ps(
      _mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  const __m512 cd = _mm512_add_ps(
      _mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
  // Lane i: four partial sums of the i-th vector.
  const __m512 x = _mm512_add_ps(
      _mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
  const __m512 y = _mm512_add_ps(x, _mm512_permute_ps(x, 0x4E));
  const __m512 z = _mm512_add_ps(y, _mm512_permute_ps(y, 0xB1));
  const __m512i first =
      _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(first, z));
}

// dw[k * ldw + e] += sum over nv vectors of y[k][v] * x[e][v]: a tile of NC
// output channels (dY rows) x NE panel rows, reduced over positions in
// registers, then summed horizontally into the weight gradient.
template <int NC, int NE>
__attribute__((target("avx512f"))) void dot_tile(
    const float* y,
    int64_t ldy,
    const float* x,
    int64_t ldx,
    int64_t nv,
    float* dw,
    int64_t ldw) {
  __m512 acc[NC][NE];
  for (int k = 0; k < NC; ++k)
    for (int e = 0; e < NE; ++e)
      acc[k][e] = _mm512_setzero_ps();
  for (int64_t v = 0; v < nv; ++v) {
    __m512 yv[NC];
    for (int k = 0; k < NC; ++k)
      yv[k] = _mm512_load_ps(y + k * ldy + v * kLanes);
    for (int e = 0; e < NE; ++e) {
      const __m512 xv = _mm512_load_ps(x + e * ldx + v * kLanes);
      for (int k = 0; k < NC; ++k)
        acc[k][e] = _mm512_fmadd_ps(yv[k], xv, acc[k][e]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int k = 0; k < NC; ++k) {
    const __m128 s = hsum4(
        acc[k][0],
        NE > 1 ? acc[k][NE > 1 ? 1 : 0] : zero,
        NE > 2 ? acc[k][NE > 2 ? 2 : 0] : zero,
        NE > 3 ? acc[k][NE > 3 ? 3 : 0] : zero);
    float* d = dw + k * ldw;
    if (NE == 4) {
      _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d), s));
    } else {
      alignas(16) float t[4];
      _mm_store_ps(t, s);
      for (int e = 0; e < NE; ++e)
        d[e] += t[e];
    }
  }
}

using DotFn = void (*)(
    const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t);
template <int NC, int... NE>
constexpr std::array<DotFn, sizeof...(NE)>
dot_row(std::integer_sequence<int, NE...>) {
  return {&dot_tile<NC, NE + 1>...};
}
template <int... NC>
constexpr std::array<std::array<DotFn, kRedNE>, sizeof...(NC)>
dot_table(std::integer_sequence<int, NC...>) {
  return {dot_row<NC + 1>(std::make_integer_sequence<int, kRedNE>())...};
}
const auto kDot = dot_table(std::make_integer_sequence<int, kRedMR>());

// One dY row's vectors [v0, v0 + nv) to an aligned buffer, zeros past the end.
__attribute__((target("avx512f"))) void
copy_row(const float* src, int64_t count, int64_t v0, int64_t nv, float* dst) {
  for (int64_t v = 0; v < nv; ++v) {
    const int64_t left = count - (v0 + v) * kLanes;
    const __mmask16 m =
        left >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    _mm512_store_ps(
        dst + v * kLanes, _mm512_maskz_loadu_ps(m, src + (v0 + v) * kLanes));
  }
}

// In-register transpose of a 16 x 16 block: r[i] holds row i on entry and
// column i on return.
__attribute__((target("avx512f"), always_inline)) inline void
transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]),
                  c = _mm512_castps_pd(t[i + 2]),
                  d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // r[4q + s], 128-bit lane L: rows 4q..4q+3 of column 4L + s.
  for (int s = 0; s < 4; ++s) {
    const __m512 lo_ab = _mm512_shuffle_f32x4(r[s], r[4 + s], 0x88);
    const __m512 hi_ab = _mm512_shuffle_f32x4(r[s], r[4 + s], 0xDD);
    const __m512 lo_cd = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0x88);
    const __m512 hi_cd = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0xDD);
    t[s] = _mm512_shuffle_f32x4(lo_ab, lo_cd, 0x88);
    t[8 + s] = _mm512_shuffle_f32x4(lo_ab, lo_cd, 0xDD);
    t[4 + s] = _mm512_shuffle_f32x4(hi_ab, hi_cd, 0x88);
    t[12 + s] = _mm512_shuffle_f32x4(hi_ab, hi_cd, 0xDD);
  }
  for (int i = 0; i < 16; ++i)
    r[i] = t[i];
}

// dst[j][i] = src[i][j] for i < rows, j < cols (a 16 x 16 block at most;
// src rows `lds` apart, dst rows `ldd` apart), zeros for i >= rows in the
// 16 columns of dst written. add: dst += instead of =.
__attribute__((target("avx512f"))) void transpose_block(
    const float* src,
    int64_t lds,
    int rows,
    int cols,
    float* dst,
    int64_t ldd,
    int dst_cols,
    bool add) {
  __m512 r[16];
  const __mmask16 cm =
      cols >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  for (int i = 0; i < kLanes; ++i)
    r[i] = i < rows ? _mm512_maskz_loadu_ps(cm, src + i * lds)
                    : _mm512_setzero_ps();
  transpose16(r);
  const __mmask16 dm =
      dst_cols >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << dst_cols) - 1);
  for (int j = 0; j < cols; ++j) {
    float* d = dst + j * ldd;
    const __m512 v =
        add ? _mm512_add_ps(_mm512_maskz_loadu_ps(dm, d), r[j]) : r[j];
    _mm512_mask_storeu_ps(d, dm, v);
  }
}

// A block of positions of one sample.
struct Block {
  int64_t n, v0, nv;
};

// Weight gradient of one job in dot form: dw[co][k] += sum over the blocks'
// positions of dY[co][p] * panel[k][p] for cn channels (dw rows K apart),
// dot tiles of 6 channels x 4 panel rows reduced in registers. dy: the first
// channel's row of sample 0; dy_ns: floats between samples.
void grad_weight_dot(
    const InputPanels& ip,
    const std::vector<int64_t>& rowoff,
    int64_t T,
    int64_t K,
    int64_t P,
    const Block* blocks,
    int64_t nblocks,
    const float* dy,
    int64_t dy_ns,
    int64_t cn,
    float* xb,
    float* yb,
    float* dw) {
  const Source& src = ip.src;
  const auto ctiles = balanced_blocks(cn, kRedMR);
  for (int64_t bi = 0; bi < nblocks; ++bi) {
    const Block& blk = blocks[bi];
    const int64_t ld = blk.nv * kLanes;
    const float* ys = dy + blk.n * dy_ns;
    for (int64_t c = 0; c < cn; ++c)
      copy_row(ys + c * P, P, blk.v0, blk.nv, yb + c * ld);
    const float* xs = src.data + blk.n * src.ns;
    for (int64_t k0 = 0; k0 < K; k0 += kRedRows) {
      const int64_t kn = std::min(kRedRows, K - k0);
      for (int64_t e = 0; e < kn; ++e) {
        const int64_t k = k0 + e, ci = k / T, t = k % T;
        pack_row(
            ip.rec, blk.v0, blk.nv, xs + ci * src.cs + rowoff[t], xb + e * ld);
      }
      for (const auto& [t0, nc] : ctiles)
        for (int64_t e0 = 0; e0 < kn; e0 += kRedNE) {
          const int ne = static_cast<int>(std::min<int64_t>(kRedNE, kn - e0));
          kDot[nc - 1][ne - 1](
              yb + t0 * ld,
              ld,
              xb + e0 * ld,
              ld,
              blk.nv,
              dw + t0 * K + k0 + e0,
              K);
        }
    }
  }
}

// The outer form vectorises over output channels instead, which pays off
// when they fill most of their 16-lane vectors (a 21-channel group would
// compute 32).
bool outer_form(int64_t cn) {
  const int64_t padded = ceil_div(cn, kLanes) * kLanes;
  return cn >= kLanes && 5 * cn >= 4 * padded;
}

// Weight gradient of one job in outer form: dW^T[k][co] += sum over
// positions of panel[k][p] (broadcast) * dY^T[p][co] (vectors over
// channels), the forward's GEMM microkernel with positions as its reduction.
// No horizontal sums: each tile accumulates a whole block of positions in
// registers. dY^T is a transposed copy of a block of dY; dW^T is transposed
// into dw at the end.
void grad_weight_outer(
    const InputPanels& ip,
    const std::vector<int64_t>& rowoff,
    int64_t T,
    int64_t K,
    int64_t P,
    const Block* blocks,
    int64_t nblocks,
    const float* dy,
    int64_t dy_ns,
    int64_t cn,
    float* xb,
    float* yb,
    float* dw) {
  const Source& src = ip.src;
  const int64_t cpad = ceil_div(cn, kLanes) * kLanes, nvc = cpad / kLanes;
  auto wt = alloc_floats(K * cpad); // dW^T [K][cpad]
  float* dwt = wt.get();
  // Channel tiles of up to 4 vectors and their row tiles.
  const auto ctiles = balanced_blocks(nvc, 4);
  bool first = true;
  for (int64_t bi = 0; bi < nblocks; ++bi) {
    const Block& blk = blocks[bi];
    const float* ys = dy + blk.n * dy_ns;
    const float* xs = src.data + blk.n * src.ns;
    for (const auto& [s0, nv] :
         balanced_blocks(blk.nv, static_cast<int>(kOuterVec))) {
      const int64_t v0 = blk.v0 + s0;
      const int64_t p0 = v0 * kLanes;
      const int64_t np = std::min<int64_t>(nv * kLanes, P - p0),
                    ld = nv * kLanes;
      // dY^T [np][cpad], zero channels past cn.
      for (int64_t c = 0; c < cpad; c += kLanes)
        for (int64_t p = 0; p < np; p += kLanes)
          transpose_block(
              ys + c * P + p0 + p,
              P,
              static_cast<int>(std::min<int64_t>(kLanes, cn - c)),
              static_cast<int>(std::min<int64_t>(kLanes, np - p)),
              yb + p * cpad + c,
              cpad,
              kLanes,
              false);
      for (int64_t k0 = 0; k0 < K; k0 += kOuterRows) {
        const int64_t kn = std::min(kOuterRows, K - k0);
        for (int64_t e = 0; e < kn; ++e) {
          const int64_t k = k0 + e, ci = k / T, t = k % T;
          pack_row(ip.rec, v0, nv, xs + ci * src.cs + rowoff[t], xb + e * ld);
        }
        static const int32_t zero = 0;
        for (const auto& [q0, nq] : ctiles) {
          const int mr = nq >= 4 ? 6 : nq == 3 ? 9 : 14;
          for (const auto& [e0, ne] : balanced_blocks(kn, mr)) {
            Gemm k{
                xb + e0 * ld,
                ld,
                1,
                &zero,
                1,
                np,
                yb + q0 * kLanes,
                cpad,
                dwt + (k0 + e0) * cpad + q0 * kLanes,
                cpad,
                __mmask16(0xFFFF),
                !first};
            kGemm[ne - 1][nq - 1](k);
          }
        }
      }
      first = false;
    }
  }
  // dw[co][k] += dW^T[k][co].
  for (int64_t k = 0; k < K; k += kLanes)
    for (int64_t c = 0; c < cn; c += kLanes)
      transpose_block(
          dwt + k * cpad + c,
          cpad,
          static_cast<int>(std::min<int64_t>(kLanes, K - k)),
          static_cast<int>(std::min<int64_t>(kLanes, cn - c)),
          dw + c * K + k,
          K,
          static_cast<int>(std::min<int64_t>(kLanes, K - k)),
          true);
}

// dW[co][(ci, t)] = sum over samples and positions of dY[co][p] *
// panel_X[(ci, t)][p]. A job owns a block of output channels and a range of
// positions and covers every (ci, t): per block of positions its dY rows are
// copied once and every panel row packed once, and dot tiles of 6 channels x
// 4 rows reduce over the block in registers. Ranges of positions are split
// across jobs only when the channel blocks alone are too few for the
// threads; each range then sums into its own copy of dW, added up at the end.
void grad_weight(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const float* grad_out,
    const std::vector<float*>& grad_weights) {
  const Dims od = output_dims(g);
  const int64_t P = od.numel(), nvec = ceil_div(P, kLanes);
  const InputPanels ip = input_panels(g, groups, in);
  const Source& src = ip.src;
  const int64_t C = g.in_channels;
  // Position blocks of every sample, in order.
  std::vector<Block> blocks;
  for (int64_t n = 0; n < g.batch; ++n)
    for (const auto& [v0, nv] : balanced_blocks(nvec, kRedBlockVec))
      blocks.push_back({n, v0, nv});
  struct GroupPlan {
    int64_t out0 = 0, T = 0, K = 0, offset = 0; // offset: in a dW copy
    std::vector<int64_t> rowoff;
  };
  std::vector<GroupPlan> plans(groups.size());
  std::vector<std::pair<size_t, std::pair<int64_t, int>>> chunks;
  int64_t out0 = 0, total = 0;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const Group& grp = groups[gi];
    GroupPlan& p = plans[gi];
    p.out0 = out0;
    out0 += grp.channels;
    if (grp.channels == 0)
      continue;
    for (const auto& t : taps_of(grp, g))
      p.rowoff.push_back(t.od * src.plane + t.oh * src.Wp + t.ow);
    p.T = static_cast<int64_t>(p.rowoff.size());
    p.K = C * p.T;
    p.offset = total;
    total += grp.channels * p.K;
    for (const auto& c : balanced_blocks(grp.channels, kRedChannels))
      chunks.push_back({gi, c});
  }
  const int64_t nchunks = static_cast<int64_t>(chunks.size());
  const int64_t nblocks = static_cast<int64_t>(blocks.size());
  const int64_t splits = std::min(
      nblocks,
      std::max<int64_t>(1, ceil_div(2 * at::get_num_threads(), nchunks)));
  // dW copies of splits 1.. (split 0 writes the outputs).
  std::shared_ptr<float[]> extra;
  if (splits > 1)
    extra = alloc_floats((splits - 1) * total);
  for (size_t gi = 0; gi < groups.size(); ++gi)
    if (groups[gi].channels > 0)
      std::fill(
          grad_weights[gi],
          grad_weights[gi] + groups[gi].channels * plans[gi].K,
          0.0f);
  if (splits > 1)
    std::fill(extra.get(), extra.get() + (splits - 1) * total, 0.0f);
  struct Scratch {
    std::shared_ptr<float[]> x, y;
  };
  const auto ranges =
      balanced_blocks(nblocks, static_cast<int>(ceil_div(nblocks, splits)));
  const int64_t njobs = nchunks * static_cast<int64_t>(ranges.size());
  for_each_dynamic_with(
      njobs,
      [&] {
        return Scratch{
            alloc_floats(std::max(
                kRedRows * kRedBlockVec * kLanes,
                kOuterRows * kOuterVec * kLanes)),
            alloc_floats(kRedChannels * kRedBlockVec * kLanes)};
      },
      [&](Scratch& s, int64_t i) {
        const int64_t split = i / nchunks;
        const auto& [gi, chunk] = chunks[i % nchunks];
        const auto [c0, cn] = chunk;
        const GroupPlan& gp = plans[gi];
        float* dw = split == 0 ? grad_weights[gi] + c0 * gp.K
                               : extra.get() + (split - 1) * total + gp.offset +
                                     c0 * gp.K;
        const auto [b0, bn] = ranges[split];
        if (outer_form(cn))
          grad_weight_outer(
              ip,
              gp.rowoff,
              gp.T,
              gp.K,
              P,
              blocks.data() + b0,
              bn,
              grad_out + (gp.out0 + c0) * P,
              g.out_channels * P,
              cn,
              s.x.get(),
              s.y.get(),
              dw);
        else
          grad_weight_dot(
              ip,
              gp.rowoff,
              gp.T,
              gp.K,
              P,
              blocks.data() + b0,
              bn,
              grad_out + (gp.out0 + c0) * P,
              g.out_channels * P,
              cn,
              s.x.get(),
              s.y.get(),
              dw);
      });
  if (splits == 1)
    return;
  // Add the other ranges' sums into the outputs.
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (groups[gi].channels == 0)
      continue;
    const GroupPlan& gp = plans[gi];
    const int64_t n = groups[gi].channels * gp.K;
    float* dst = grad_weights[gi];
    at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
      for (int64_t sp = 1; sp < splits; ++sp) {
        const float* from = extra.get() + (sp - 1) * total + gp.offset;
        for (int64_t k = b; k < e; ++k)
          dst[k] += from[k];
      }
    });
  }
}

} // namespace

void backward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const float* grad_out,
    float* grad_in,
    const std::vector<float*>& grad_weights) {
  if (grad_in != nullptr)
    grad_input(g, groups, grad_out, grad_in);
  if (!grad_weights.empty())
    grad_weight(g, groups, in, grad_out, grad_weights);
}

} // namespace cakes::detail::panel
