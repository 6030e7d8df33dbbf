#include "cakes/dist/data_parallel.h"
#include "cakes/util/check.h"

#include <torch/autograd.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>

#include <ATen/ATen.h>

#include <cmath>
#include <mutex>
#include <stdexcept>

namespace cakes::dist {

struct DataParallel::State {
  struct Bucket {
    std::vector<size_t> params; // into State::params
    at::Tensor flat;
    size_t ready = 0;
    Pending pending;
  };
  std::mutex m;
  std::vector<at::Tensor> params;
  std::vector<size_t> bucket_of;
  std::vector<int64_t> offset_of;
  std::vector<bool> got;
  std::vector<Bucket> buckets;
  size_t next_launch = 0;
  bool armed = false;
  int64_t started_in_backward = 0, last_started_in_backward = 0;
  Context* context = nullptr;

  at::Tensor slice(size_t i) {
    const Bucket& b = buckets[bucket_of[i]];
    return b.flat.narrow(0, offset_of[i], params[i].numel());
  }

  // Starts every complete bucket whose predecessors have started (caller
  // holds m).
  void launch_ready() {
    while (next_launch < buckets.size() &&
           buckets[next_launch].ready == buckets[next_launch].params.size()) {
      Bucket& b = buckets[next_launch];
      b.pending = context->all_reduce_sum_async(b.flat);
      ++next_launch;
      if (armed) {
        ++started_in_backward;
      }
    }
  }

  void on_grad(size_t i, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(m);
    if (!armed || got[i]) {
      return;
    }
    slice(i).copy_(grad.reshape(-1));
    got[i] = true;
    buckets[bucket_of[i]].ready++;
    launch_ready();
  }
};

DataParallel::DataParallel(
    std::shared_ptr<Context> context, DataParallelOptions options)
    : context_(std::move(context)), options_(options),
      state_(std::make_shared<State>()) {
  if (!context_) {
    throw std::invalid_argument("DataParallel: no distributed context");
  }
  if (!(options_.bucket_mb > 0)) {
    throw std::invalid_argument(
        "DataParallel: bucket_mb must be positive, got " +
        std::to_string(options_.bucket_mb));
  }
  state_->context = context_.get();
}

DataParallel::~DataParallel() {
  // The hooks hold only a weak reference; make sure none fires into a
  // half-destroyed state.
  std::lock_guard<std::mutex> lock(state_->m);
  state_->armed = false;
}

bool DataParallel::is_main() const {
  return context_->is_main();
}

int64_t DataParallel::bucket_count() const {
  return static_cast<int64_t>(state_->buckets.size());
}

int64_t DataParallel::buckets_started_in_backward() const {
  return state_->last_started_in_backward;
}

void broadcast_module(Context& context, torch::nn::Module& module) {
  if (context.world_size() < 2) {
    return;
  }
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors;
  for (auto& p : module.parameters(/*recurse=*/true)) {
    tensors.push_back(p);
  }
  for (auto& b : module.buffers(/*recurse=*/true)) {
    tensors.push_back(b);
  }
  // Broadcast writes in place; parameters are leaves that require grad, so
  // it writes their data (a detached view), or a contiguous copy that is
  // copied back.
  std::vector<at::Tensor> data;
  for (auto& t : tensors) {
    data.push_back(t.is_contiguous() ? t.detach() : t.contiguous());
  }
  context.broadcast(data, /*root=*/0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].is_contiguous()) {
      tensors[i].detach().copy_(data[i]);
    }
  }
}

void DataParallel::attach(torch::nn::Module& module) {
  broadcast_module(*context_, module);
  if (context_->world_size() < 2) {
    return;
  }
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.m);
  if (!s.params.empty()) {
    throw std::logic_error("DataParallel: attached twice");
  }
  for (auto& p : module.parameters(/*recurse=*/true)) {
    if (p.requires_grad()) {
      s.params.push_back(p);
    }
  }
  // Reverse registration order: the last layers' gradients come first.
  const size_t n = s.params.size();
  s.bucket_of.assign(n, 0);
  s.offset_of.assign(n, 0);
  s.got.assign(n, false);
  const double cap = options_.bucket_mb * 1024.0 * 1024.0;
  double bytes = 0;
  for (size_t k = n; k-- > 0;) {
    const at::Tensor& p = s.params[k];
    const bool new_bucket =
        s.buckets.empty() || bytes >= cap ||
        s.params[s.buckets.back().params.front()].scalar_type() !=
            p.scalar_type() ||
        s.params[s.buckets.back().params.front()].device() != p.device();
    if (new_bucket) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    s.buckets.back().params.push_back(k);
    bytes += static_cast<double>(p.numel() * p.element_size());
  }
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    auto& bucket = s.buckets[b];
    int64_t offset = 0;
    for (size_t k : bucket.params) {
      s.bucket_of[k] = b;
      s.offset_of[k] = offset;
      offset += s.params[k].numel();
    }
    const at::Tensor& first = s.params[bucket.params.front()];
    bucket.flat = at::zeros({offset}, first.options().requires_grad(false));
  }
  std::weak_ptr<State> weak = state_;
  for (size_t k = 0; k < n; ++k) {
    s.params[k].register_hook([weak, k](const at::Tensor& grad) {
      if (auto st = weak.lock()) {
        st->on_grad(k, grad);
      }
    });
  }
}

void DataParallel::begin_step() {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.m);
  // A step that failed half-way may have left work under way.
  for (auto& b : s.buckets) {
    b.pending.wait();
    b.ready = 0;
  }
  std::fill(s.got.begin(), s.got.end(), false);
  s.next_launch = 0;
  s.started_in_backward = 0;
  s.armed = !s.buckets.empty();
}

void DataParallel::finish_gradients(torch::nn::Module& /*module*/) {
  State& s = *state_;
  if (s.buckets.empty()) {
    return;
  }
  std::unique_lock<std::mutex> lock(s.m);
  s.last_started_in_backward = s.started_in_backward;
  s.armed = false;
  // Parameters without a gradient this step count as zero.
  for (size_t k = 0; k < s.params.size(); ++k) {
    if (!s.got[k]) {
      s.slice(k).zero_();
      s.got[k] = true;
      s.buckets[s.bucket_of[k]].ready++;
    }
  }
  s.launch_ready();
  lock.unlock();
  const double inv = 1.0 / static_cast<double>(context_->world_size());
  torch::NoGradGuard no_grad;
  for (auto& b : s.buckets) {
    b.pending.wait();
    b.flat.mul_(inv);
  }
  for (size_t k = 0; k < s.params.size(); ++k) {
    at::Tensor& p = s.params[k];
    at::Tensor mean = s.slice(k).view_as(p);
    if (p.grad().defined()) {
      p.mutable_grad().copy_(mean);
    } else {
      p.mutable_grad() = mean.clone();
    }
  }
}

void DataParallel::end_epoch(torch::nn::Module& module) {
  if (context_->world_size() < 2) {
    return;
  }
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> buffers;
  for (auto& b : module.buffers(/*recurse=*/true)) {
    buffers.push_back(b);
  }
  context_->broadcast(buffers, /*root=*/0);
}

void DataParallel::after_resume(torch::nn::Module& /*module*/, int64_t step) {
  const double d = static_cast<double>(step);
  const std::vector<double> all = sum({d, d * d, 1.0});
  // Equal steps on all ranks <=> sum of squares == (sum)^2 / n.
  if (std::abs(all[1] * all[2] - all[0] * all[0]) > 0.5) {
    throw std::runtime_error(
        "resume: the ranks loaded checkpoints at different steps (this rank: " +
        std::to_string(step) +
        ", mean over ranks: " + std::to_string(all[0] / all[2]) +
        "); every rank must read the same checkpoint file");
  }
}

std::vector<double> DataParallel::sum(std::vector<double> values) {
  if (context_->world_size() < 2 || values.empty()) {
    return values;
  }
  at::Tensor t = at::tensor(values, at::kDouble);
  context_->all_reduce_sum(t);
  auto acc = t.accessor<double, 1>();
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = acc[static_cast<int64_t>(i)];
  }
  return values;
}

// ---------------------------------------------------------------------------
// Synchronized BatchNorm

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<int64_t> channel_shape(const at::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[1] = x.size(1);
  return shape;
}

std::vector<int64_t> reduce_dims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) {
    dims.push_back(d);
  }
  return dims;
}

// y = (x - mean) * invstd * weight + bias, with mean and invstd over all
// ranks (computed before, without autograd). Its backward all-reduces the
// two per-channel sums the input gradient depends on; the weight and bias
// gradients stay local (DataParallel averages them like any other).
struct SyncBatchNormFn : torch::autograd::Function<SyncBatchNormFn> {
  static at::Tensor forward(
      AutogradContext* ctx,
      const at::Tensor& x,
      const at::Tensor& weight,
      const at::Tensor& bias,
      const at::Tensor& mean,
      const at::Tensor& invstd,
      double total_count,
      Context* dist) {
    const auto shape = channel_shape(x);
    at::Tensor y = (x - mean.view(shape)) * invstd.view(shape);
    if (weight.defined()) {
      y = y * weight.view(shape) + bias.view(shape);
    }
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["count"] = total_count;
    ctx->saved_data["dist"] = reinterpret_cast<int64_t>(dist);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& mean = saved[2];
    const at::Tensor& invstd = saved[3];
    const double count = ctx->saved_data["count"].toDouble();
    auto* dist = reinterpret_cast<Context*>(ctx->saved_data["dist"].toInt());
    const at::Tensor& dy = grads[0];
    const auto shape = channel_shape(x);
    const auto dims = reduce_dims(x);
    const int64_t c = x.size(1);

    at::Tensor xmu = x - mean.view(shape);
    at::Tensor sum_dy = dy.sum(dims);
    at::Tensor sum_dy_xmu = (dy * xmu).sum(dims);
    at::Tensor grad_weight, grad_bias;
    if (weight.defined()) {
      grad_weight = sum_dy_xmu * invstd;
      grad_bias = sum_dy.clone();
    }
    at::Tensor both = at::cat({sum_dy, sum_dy_xmu});
    dist->all_reduce_sum(both);
    at::Tensor mean_dy = both.narrow(0, 0, c) / count;
    at::Tensor mean_dy_xmu = both.narrow(0, c, c) / count;
    at::Tensor scale = weight.defined() ? invstd * weight : invstd;
    at::Tensor grad_x = (dy - mean_dy.view(shape) -
                         xmu * (invstd * invstd * mean_dy_xmu).view(shape)) *
                        scale.view(shape);
    return {
        grad_x,
        grad_weight,
        grad_bias,
        at::Tensor(),
        at::Tensor(),
        at::Tensor(),
        at::Tensor()};
  }
};

} // namespace

namespace {

class SyncBatchNorm : public nn::Norm {
public:
  explicit SyncBatchNorm(std::shared_ptr<Context> context)
      : context_(std::move(context)) {}
  std::string name() const override {
    return "sync_batch_norm";
  }
  at::Tensor forward(const at::Tensor& x, nn::NormTensors& t) const override;

private:
  std::shared_ptr<Context> context_;
};

at::Tensor
SyncBatchNorm::forward(const at::Tensor& x, nn::NormTensors& t) const {
  if (!t.training) {
    return nn::batch_norm()->forward(x, t);
  }
  const int64_t c = x.dim() >= 2 ? x.size(1) : -1;
  CAKES_CHECK(
      (!t.weight.defined() || t.weight.size(0) == c) &&
          (!t.running_mean.defined() || t.running_mean.size(0) == c),
      "sync_batch_norm: expected input with as many channels in dim 1 as "
      "the norm has entries, got shape ",
      x.sizes());
  const auto shape = channel_shape(x);
  const auto dims = reduce_dims(x);
  at::Tensor mean, invstd;
  double count = 0;
  {
    torch::NoGradGuard no_grad;
    const at::Tensor xd = x.detach();
    // Two passes (sum, then centred squares) keep the variance accurate.
    at::Tensor first = at::cat(
        {xd.sum(dims, /*keepdim=*/false, at::kDouble),
         at::full(
             {1},
             static_cast<double>(xd.numel() / xd.size(1)),
             xd.options().dtype(at::kDouble))});
    context_->all_reduce_sum(first);
    count = first[c].item<double>();
    if (count <= 1) {
      throw std::invalid_argument(
          "sync_batch_norm: expected more than 1 value per channel over all "
          "ranks in training mode, got input shape " +
          c10::str(x.sizes()));
    }
    at::Tensor mean_d = first.narrow(0, 0, c) / count;
    at::Tensor sq = (xd - mean_d.to(xd.scalar_type()).view(shape))
                        .pow(2)
                        .sum(dims, /*keepdim=*/false, at::kDouble);
    context_->all_reduce_sum(sq);
    at::Tensor var_d = sq / count;
    mean = mean_d.to(x.scalar_type());
    invstd = (var_d + t.eps).rsqrt().to(x.scalar_type());

    if (t.running_mean.defined()) {
      const double m = t.momentum;
      at::Tensor unbiased = var_d * (count / (count - 1));
      t.running_mean.mul_(1 - m).add_(
          mean_d.to(t.running_mean.scalar_type()), m);
      t.running_var.mul_(1 - m).add_(
          unbiased.to(t.running_var.scalar_type()), m);
    }
  }
  return SyncBatchNormFn::apply(
      x, t.weight, t.bias, mean, invstd, count, context_.get());
}

} // namespace

nn::NormPtr sync_batch_norm(std::shared_ptr<Context> context) {
  if (!context) {
    throw std::invalid_argument("sync_batch_norm: no distributed context");
  }
  return std::make_shared<SyncBatchNorm>(std::move(context));
}

} // namespace cakes::dist
