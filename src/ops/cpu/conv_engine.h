// The engine behind cakes::shrunk_conv3d on CPU (internal header).
//
// A heterogeneous convolution is described as a list of *terms*. A term reads
// an input channel range, applies one tap set (a list of spatial offsets), and
// writes (or accumulates into) an output channel range:
//
//   out[n, oc0+o, p] (+)= sum_{t in taps} sum_{i} W[o, t, i] * in[n, ic0+i, p*s
//   + off_t]
//
// The forward pass is one term per sub-kernel group (all read every input
// channel, each writes its own output channels). The input gradient is one term
// per group too, read from that group's output-gradient channels with the taps
// flipped, all accumulating into every input channel. Both run through the same
// tiled im2col + GEMM loop; the weight gradient reuses the forward plan.
//
// Why this shape (see docs/DESIGN.md): GEMMs are vectorised over output
// positions, so any channel count is efficient (no padding of a 21-channel
// group to 32), each term writes its rows of an NCDHW destination in place (no
// per-group buffers, no concatenation), and no multiply-add is spent on the
// zeros of a shrunk kernel. Terms that read the same channels share one im2col
// buffer, whose taps are ordered so that each term's taps form few contiguous
// runs of rows.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cakes::detail {

struct Offset {
  int64_t d, h, w;
  friend bool operator==(const Offset& a, const Offset& b) {
    return a.d == b.d && a.h == b.h && a.w == b.w;
  }
};

struct Shape3 {
  int64_t d, h, w;
  int64_t numel() const {
    return d * h * w;
  }
};

struct TermSpec {
  int64_t in_c0, in_c;   // input channel range read
  int64_t out_c0, out_c; // output channel range written
  std::vector<Offset> taps;
};

// A plan fixes geometry, the im2col layout and each term's GEMM runs. Weights
// are supplied per term as a row-major matrix [out_c][ntaps * in_c] whose
// columns are ordered (tap in plan order, input channel): use tap_order() to
// lay them out.
class ConvPlan {
public:
  ConvPlan(
      int64_t in_channels,
      Shape3 in_size,
      int64_t out_channels,
      Shape3 out_size,
      std::array<int64_t, 3> stride,
      std::vector<TermSpec> terms);

  // For term t: the indices into terms[t].taps in the order its weight columns
  // must follow.
  const std::vector<int>& tap_order(size_t term) const {
    return terms_[term].order;
  }
  size_t num_terms() const {
    return terms_.size();
  }
  // True when some output channel is not written by a term, so the output must
  // start zeroed.
  bool needs_zero_output() const {
    return needs_zero_;
  }

  // out: [N, out_channels, out_size] contiguous; in: [N, in_channels, in_size].
  template <typename T>
  void forward(
      int64_t batch,
      const T* in,
      const std::vector<const T*>& weights,
      T* out) const;

  // Accumulates dL/dW for every term into grad_weights (same layout as the
  // weights, pre-zeroed by the caller) given the output gradient.
  template <typename T>
  void weight_grad(
      int64_t batch,
      const T* in,
      const T* grad_out,
      const std::vector<T*>& grad_weights) const;

private:
  struct Run {
    int64_t row0; // first col row (tap position in the class) of the run
    int64_t ntaps;
    int64_t wcol0; // first weight column / in_c
  };
  struct Class {
    int64_t in_c0, in_c;
    std::vector<Offset> taps; // union of its terms' taps, in col order
    bool identity = false; // a single zero offset at stride 1: read input as is
  };
  struct Term {
    int cls;
    int64_t out_c0, out_c, ntaps;
    std::vector<int> order;
    std::vector<Run> runs;
    bool first_write;
  };
  struct Tile {
    int64_t n, p0, m; // sample, first output position, positions
  };

  std::vector<Tile> tiles(int64_t batch) const;
  template <typename T>
  void im2col(const Class& c, const T* in_n, const Tile& tile, T* col) const;
  size_t col_elems(int64_t m) const;
  // The im2col tiles of every class for one tile of output positions.
  template <typename T>
  void fill_cols(
      const T* in_n,
      const Tile& tile,
      std::vector<T>& col,
      std::vector<const T*>& col_of) const;

  int64_t in_c_, out_c_;
  Shape3 in_, out_;
  std::array<int64_t, 3> stride_;
  std::vector<Class> classes_;
  std::vector<Term> terms_;
  bool needs_zero_ = false;
  int64_t rows_per_tile_ = 1;
};

// Row-major C = alpha * op(A) op(B) + beta * C. float goes to oneDNN's sgemm;
// double (used for exact reference checks) to a plain loop.
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
    int64_t ldc);
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
    int64_t ldc);

} // namespace cakes::detail
