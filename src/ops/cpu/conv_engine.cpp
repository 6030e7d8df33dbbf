// The GEMM engine of the op (Engine::Gemm): tap ordering, im2col tiles and
// oneDNN matmuls for the forward and the weight gradient. Over 500 lines
// because the plan, its tiling and both passes share one ConvPlan.
#include "conv_engine.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>

namespace cakes::detail {
namespace {

// Target number of output positions per tile: large enough for the GEMM to run
// at full speed, small enough that the im2col tile stays in L2.
constexpr int64_t kTargetTileM = 256;
constexpr size_t kMaxColBytes = size_t(4) << 20;

// Orders the taps of one class so that each term's taps are as contiguous as
// possible: taps with the same membership signature form a block, and the block
// order minimising the total number of runs is searched exhaustively when
// small.
std::vector<int> search_block_order(const std::vector<std::vector<bool>>& sigs);

std::vector<int> order_taps(
    const std::vector<Offset>& taps,
    const std::vector<std::vector<bool>>& member) {
  const size_t nt = taps.size(), nterms = member.size();
  std::map<std::vector<bool>, std::vector<int>> blocks_by_sig;
  for (size_t t = 0; t < nt; ++t) {
    std::vector<bool> sig(nterms);
    for (size_t k = 0; k < nterms; ++k)
      sig[k] = member[k][t];
    blocks_by_sig[sig].push_back(static_cast<int>(t));
  }
  std::vector<std::vector<bool>> sigs;
  std::vector<std::vector<int>> blocks;
  for (auto& [sig, taps_of] : blocks_by_sig) {
    sigs.push_back(sig);
    blocks.push_back(taps_of);
  }
  // The search below is exhaustive over at most 8! block orders; the same
  // layer shape recurs every call, so remember the answer per signature set.
  static std::mutex cache_mutex;
  static std::map<std::vector<std::vector<bool>>, std::vector<int>> cache;
  std::vector<int> perm;
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(sigs);
    if (it != cache.end())
      perm = it->second;
  }
  if (perm.empty()) {
    perm = search_block_order(sigs);
    std::lock_guard<std::mutex> lock(cache_mutex);
    cache[sigs] = perm;
  }
  std::vector<int> order;
  for (int b : perm)
    order.insert(order.end(), blocks[b].begin(), blocks[b].end());
  return order;
}

std::vector<int>
search_block_order(const std::vector<std::vector<bool>>& sigs) {
  const size_t nb = sigs.size(), nterms = sigs.empty() ? 0 : sigs[0].size();
  auto runs_of = [&](const std::vector<int>& perm) {
    int total = 0;
    for (size_t k = 0; k < nterms; ++k) {
      bool prev = false;
      for (int b : perm) {
        if (sigs[b][k] && !prev)
          ++total;
        prev = sigs[b][k];
      }
    }
    return total;
  };
  std::vector<int> perm(nb);
  std::iota(perm.begin(), perm.end(), 0);
  // Most-shared blocks first is a good default; the search refines it.
  std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) {
    return std::count(sigs[a].begin(), sigs[a].end(), true) >
           std::count(sigs[b].begin(), sigs[b].end(), true);
  });
  if (nb <= 8) {
    std::vector<int> p = perm, best = perm;
    std::sort(p.begin(), p.end());
    int best_runs = runs_of(best);
    do {
      const int r = runs_of(p);
      if (r < best_runs) {
        best_runs = r;
        best = p;
      }
    } while (std::next_permutation(p.begin(), p.end()));
    perm = best;
  }
  return perm;
}

} // namespace

ConvPlan::ConvPlan(
    int64_t in_channels,
    Shape3 in_size,
    int64_t out_channels,
    Shape3 out_size,
    std::array<int64_t, 3> stride,
    std::vector<TermSpec> specs)
    : in_c_(in_channels), out_c_(out_channels), in_(in_size), out_(out_size),
      stride_(stride) {
  // Group terms that read the same input channels into one im2col class.
  std::vector<int> term_cls(specs.size(), -1);
  std::vector<std::vector<int>> cls_terms;
  for (size_t t = 0; t < specs.size(); ++t) {
    if (specs[t].out_c == 0 || specs[t].in_c == 0 || specs[t].taps.empty())
      continue;
    int found = -1;
    for (size_t c = 0; c < classes_.size(); ++c)
      if (classes_[c].in_c0 == specs[t].in_c0 &&
          classes_[c].in_c == specs[t].in_c)
        found = static_cast<int>(c);
    if (found < 0) {
      classes_.push_back({specs[t].in_c0, specs[t].in_c, {}, false});
      cls_terms.emplace_back();
      found = static_cast<int>(classes_.size()) - 1;
    }
    term_cls[t] = found;
    cls_terms[found].push_back(static_cast<int>(t));
  }

  terms_.resize(specs.size());
  for (size_t t = 0; t < specs.size(); ++t)
    terms_[t] = {
        -1,
        specs[t].out_c0,
        specs[t].out_c,
        static_cast<int64_t>(specs[t].taps.size()),
        {},
        {},
        false};
  for (size_t c = 0; c < classes_.size(); ++c) {
    // Union of the class's taps, then membership of each term.
    std::vector<Offset> uni;
    for (int t : cls_terms[c])
      for (const auto& o : specs[t].taps)
        if (std::find(uni.begin(), uni.end(), o) == uni.end())
          uni.push_back(o);
    std::vector<std::vector<bool>> member;
    for (int t : cls_terms[c]) {
      std::vector<bool> m(uni.size(), false);
      for (const auto& o : specs[t].taps)
        m[std::find(uni.begin(), uni.end(), o) - uni.begin()] = true;
      member.push_back(m);
    }
    const std::vector<int> order = order_taps(uni, member);
    std::vector<int> pos(uni.size());
    for (size_t i = 0; i < order.size(); ++i) {
      classes_[c].taps.push_back(uni[order[i]]);
      pos[order[i]] = static_cast<int>(i);
    }
    classes_[c].identity = classes_[c].taps.size() == 1 &&
                           classes_[c].taps[0] == Offset{0, 0, 0} &&
                           stride_[0] == 1 && stride_[1] == 1 &&
                           stride_[2] == 1 && in_.d == out_.d &&
                           in_.h == out_.h && in_.w == out_.w;

    for (size_t k = 0; k < cls_terms[c].size(); ++k) {
      const int t = cls_terms[c][k];
      Term& term = terms_[t];
      term.cls = static_cast<int>(c);
      term.out_c0 = specs[t].out_c0;
      term.out_c = specs[t].out_c;
      term.ntaps = static_cast<int64_t>(specs[t].taps.size());
      // The term's taps sorted by their row in the class's col.
      std::vector<std::pair<int, int>> rows; // (col row, index in spec taps)
      for (size_t i = 0; i < specs[t].taps.size(); ++i) {
        const auto u =
            std::find(uni.begin(), uni.end(), specs[t].taps[i]) - uni.begin();
        rows.push_back({pos[u], static_cast<int>(i)});
      }
      std::sort(rows.begin(), rows.end());
      for (size_t i = 0; i < rows.size(); ++i) {
        term.order.push_back(rows[i].second);
        if (i > 0 && rows[i].first == rows[i - 1].first + 1)
          term.runs.back().ntaps++;
        else
          term.runs.push_back({rows[i].first, 1, static_cast<int64_t>(i)});
      }
    }
  }

  // Which output channels get written first by which term: a term writes (beta
  // 0) only if no earlier term touched its range; everything else accumulates.
  std::vector<int> covered(out_c_, 0);
  for (size_t t = 0; t < terms_.size(); ++t) {
    Term& term = terms_[t];
    if (term.runs.empty()) {
      term.first_write = false;
      continue;
    }
    bool fresh = true;
    for (int64_t o = term.out_c0; o < term.out_c0 + term.out_c; ++o)
      fresh = fresh && covered[o] == 0;
    term.first_write = fresh;
    for (int64_t o = term.out_c0; o < term.out_c0 + term.out_c; ++o)
      covered[o]++;
  }
  needs_zero_ =
      std::any_of(covered.begin(), covered.end(), [](int c) { return c == 0; });
  if (needs_zero_)
    for (auto& term : terms_)
      term.first_write = false;

  // Tile height: whole output rows, about kTargetTileM positions, bounded by
  // the im2col buffer size.
  const int64_t row = std::max<int64_t>(out_.w, 1);
  rows_per_tile_ = std::max<int64_t>(1, kTargetTileM / row);
  while (rows_per_tile_ > 1 &&
         col_elems(rows_per_tile_ * row) * sizeof(float) > kMaxColBytes)
    rows_per_tile_--;
}

size_t ConvPlan::col_elems(int64_t m) const {
  size_t total = 0;
  for (const auto& c : classes_)
    if (!c.identity)
      total += c.taps.size() * c.in_c * m;
  return total;
}

std::vector<ConvPlan::Tile> ConvPlan::tiles(int64_t batch) const {
  std::vector<Tile> out;
  const int64_t rows = out_.d * out_.h;
  int64_t per = rows_per_tile_;
  // Keep both cores busy on small layers: at least ~4 tiles per thread.
  const int64_t want = 4 * at::get_num_threads();
  while (per > 1 && batch * ((rows + per - 1) / per) < want)
    per = (per + 1) / 2;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t r = 0; r < rows; r += per)
      out.push_back({n, r * out_.w, std::min(per, rows - r) * out_.w});
  return out;
}

template <typename T>
void ConvPlan::im2col(
    const Class& c, const T* in_n, const Tile& tile, T* col) const {
  const int64_t W = out_.w, m = tile.m;
  const int64_t in_hw = in_.h * in_.w, in_s = in_.d * in_hw;
  const int64_t r0 = tile.p0 / W, nrows = m / W;
  for (size_t u = 0; u < c.taps.size(); ++u) {
    const Offset& o = c.taps[u];
    // Valid output columns for this tap: iw = w*s + o.w in [0, in.w).
    const int64_t sw = stride_[2];
    int64_t w_lo = o.w >= 0 ? 0 : (-o.w + sw - 1) / sw;
    int64_t w_hi = in_.w - 1 - o.w < 0 ? 0 : (in_.w - 1 - o.w) / sw + 1;
    w_hi = std::min(w_hi, W);
    w_lo = std::min(w_lo, w_hi);
    for (int64_t ci = 0; ci < c.in_c; ++ci) {
      T* dst = col + (u * c.in_c + ci) * m;
      const T* src_c = in_n + (c.in_c0 + ci) * in_s;
      for (int64_t r = 0; r < nrows; ++r) {
        const int64_t q = r0 + r, od = q / out_.h, oh = q % out_.h;
        const int64_t id = od * stride_[0] + o.d, ih = oh * stride_[1] + o.h;
        T* d = dst + r * W;
        if (id < 0 || id >= in_.d || ih < 0 || ih >= in_.h) {
          std::memset(d, 0, W * sizeof(T));
          continue;
        }
        const T* s = src_c + id * in_hw + ih * in_.w + o.w;
        for (int64_t w = 0; w < w_lo; ++w)
          d[w] = 0;
        if (sw == 1) {
          std::memcpy(d + w_lo, s + w_lo, (w_hi - w_lo) * sizeof(T));
        } else {
          for (int64_t w = w_lo; w < w_hi; ++w)
            d[w] = s[w * sw];
        }
        for (int64_t w = w_hi; w < W; ++w)
          d[w] = 0;
      }
    }
  }
}

template <typename T>
void ConvPlan::fill_cols(
    const T* in_n,
    const Tile& tile,
    std::vector<T>& col,
    std::vector<const T*>& col_of) const {
  col.resize(col_elems(tile.m));
  size_t off = 0;
  for (size_t c = 0; c < classes_.size(); ++c) {
    if (classes_[c].identity) {
      col_of[c] = nullptr;  // read the input as it is
      continue;
    }
    im2col(classes_[c], in_n, tile, col.data() + off);
    col_of[c] = col.data() + off;
    off += classes_[c].taps.size() * classes_[c].in_c * tile.m;
  }
}

template <typename T>
void ConvPlan::forward(
    int64_t batch,
    const T* in,
    const std::vector<const T*>& weights,
    T* out) const {
  TORCH_INTERNAL_ASSERT(weights.size() == terms_.size());
  const auto all = tiles(batch);
  const int64_t in_sn = in_c_ * in_.numel(), out_s = out_.numel();
  at::parallel_for(
      0, static_cast<int64_t>(all.size()), 1, [&](int64_t b, int64_t e) {
        std::vector<T> col;
        std::vector<const T*> col_of(classes_.size());
        for (int64_t ti = b; ti < e; ++ti) {
          const Tile& tile = all[ti];
          const T* in_n = in + tile.n * in_sn;
          fill_cols(in_n, tile, col, col_of);
          for (size_t t = 0; t < terms_.size(); ++t) {
            const Term& term = terms_[t];
            if (term.runs.empty())
              continue;
            const Class& c = classes_[term.cls];
            T* C = out + (tile.n * out_c_ + term.out_c0) * out_s + tile.p0;
            const int64_t K_all = term.ntaps * c.in_c;
            for (size_t r = 0; r < term.runs.size(); ++r) {
              const Run& run = term.runs[r];
              const T beta = (r == 0 && term.first_write) ? T(0) : T(1);
              const T* A = weights[t] + run.wcol0 * c.in_c;
              if (c.identity) {
                const T* B = in_n + c.in_c0 * in_.numel() + tile.p0;
                gemm(
                    false,
                    false,
                    term.out_c,
                    tile.m,
                    c.in_c,
                    T(1),
                    A,
                    K_all,
                    B,
                    in_.numel(),
                    beta,
                    C,
                    out_s);
              } else {
                const T* B = col_of[term.cls] + run.row0 * c.in_c * tile.m;
                gemm(
                    false,
                    false,
                    term.out_c,
                    tile.m,
                    run.ntaps * c.in_c,
                    T(1),
                    A,
                    K_all,
                    B,
                    tile.m,
                    beta,
                    C,
                    out_s);
              }
            }
          }
        }
      });
}

template <typename T>
void ConvPlan::weight_grad(
    int64_t batch,
    const T* in,
    const T* grad_out,
    const std::vector<T*>& grad_weights) const {
  TORCH_INTERNAL_ASSERT(grad_weights.size() == terms_.size());
  const auto all = tiles(batch);
  const int64_t in_sn = in_c_ * in_.numel(), out_s = out_.numel();
  std::vector<size_t> woff(terms_.size() + 1, 0);
  for (size_t t = 0; t < terms_.size(); ++t) {
    const int64_t in_c =
        terms_[t].runs.empty() ? 0 : classes_[terms_[t].cls].in_c;
    woff[t + 1] = woff[t] + terms_[t].out_c * terms_[t].ntaps * in_c;
  }
  // One private accumulator per thread, summed at the end: tiles of one thread
  // run in order, so results do not depend on scheduling within a thread.
  const int nthreads = at::get_num_threads();
  std::vector<std::vector<T>> acc(nthreads);
  at::parallel_for(
      0, static_cast<int64_t>(all.size()), 1, [&](int64_t b, int64_t e) {
        auto& mine = acc[at::get_thread_num()];
        if (mine.empty())
          mine.assign(woff.back(), T(0));
        std::vector<T> col;
        std::vector<const T*> col_of(classes_.size());
        for (int64_t ti = b; ti < e; ++ti) {
          const Tile& tile = all[ti];
          const T* in_n = in + tile.n * in_sn;
          fill_cols(in_n, tile, col, col_of);
          for (size_t t = 0; t < terms_.size(); ++t) {
            const Term& term = terms_[t];
            if (term.runs.empty())
              continue;
            const Class& c = classes_[term.cls];
            const T* A =
                grad_out + (tile.n * out_c_ + term.out_c0) * out_s + tile.p0;
            const int64_t K_all = term.ntaps * c.in_c;
            for (const Run& run : term.runs) {
              T* C = mine.data() + woff[t] + run.wcol0 * c.in_c;
              const T* B = c.identity
                               ? in_n + c.in_c0 * in_.numel() + tile.p0
                               : col_of[term.cls] + run.row0 * c.in_c * tile.m;
              const int64_t ldb = c.identity ? in_.numel() : tile.m;
              gemm(
                  false,
                  true,
                  term.out_c,
                  run.ntaps * c.in_c,
                  tile.m,
                  T(1),
                  A,
                  out_s,
                  B,
                  ldb,
                  T(1),
                  C,
                  K_all);
            }
          }
        }
      });
  for (size_t t = 0; t < terms_.size(); ++t) {
    if (terms_[t].runs.empty())
      continue;
    T* dst = grad_weights[t];
    for (const auto& a : acc) {
      if (a.empty())
        continue;
      const T* src = a.data() + woff[t];
      for (size_t i = 0; i < woff[t + 1] - woff[t]; ++i)
        dst[i] += src[i];
    }
  }
}

void gemm(
    bool trans_a,
    bool trans_b,
    int64_t M,
    int64_t N,
    int64_t K,
    float alpha,
    const float* A,
    int64_t lda,
    const float* B,
    int64_t ldb,
    float beta,
    float* C,
    int64_t ldc) {
  if (M == 0 || N == 0)
    return;
  const dnnl_status_t st = dnnl_sgemm(
      trans_a ? 'T' : 'N',
      trans_b ? 'T' : 'N',
      M,
      N,
      K,
      alpha,
      A,
      lda,
      B,
      ldb,
      beta,
      C,
      ldc);
  TORCH_CHECK(
      st == dnnl_success, "cakes: oneDNN sgemm failed with status ", st);
}

void gemm(
    bool trans_a,
    bool trans_b,
    int64_t M,
    int64_t N,
    int64_t K,
    double alpha,
    const double* A,
    int64_t lda,
    const double* B,
    int64_t ldb,
    double beta,
    double* C,
    int64_t ldc) {
  // float64 exists for exact reference checks, not speed: a plain i-k-j loop.
  for (int64_t i = 0; i < M; ++i) {
    double* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j)
      c[j] = beta == 0 ? 0.0 : beta * c[j];
    for (int64_t k = 0; k < K; ++k) {
      const double a = alpha * (trans_a ? A[k * lda + i] : A[i * lda + k]);
      if (a == 0)
        continue;
      if (trans_b) {
        for (int64_t j = 0; j < N; ++j)
          c[j] += a * B[j * ldb + k];
      } else {
        const double* b = B + k * ldb;
        for (int64_t j = 0; j < N; ++j)
          c[j] += a * b[j];
      }
    }
  }
}

template void ConvPlan::forward<float>(
    int64_t, const float*, const std::vector<const float*>&, float*) const;
template void ConvPlan::forward<double>(
    int64_t, const double*, const std::vector<const double*>&, double*) const;
template void ConvPlan::weight_grad<float>(
    int64_t, const float*, const float*, const std::vector<float*>&) const;
template void ConvPlan::weight_grad<double>(
    int64_t, const double*, const double*, const std::vector<double*>&) const;

} // namespace cakes::detail
