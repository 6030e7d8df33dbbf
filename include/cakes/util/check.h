// The library's check for bad arguments: one error type everywhere,
// std::invalid_argument with a one-line message (c10::Error, which LibTorch's
// TORCH_CHECK throws, is turned into it where the op is called, nn/op_layer).
//
//   CAKES_CHECK(x.dim() == 5, "expected (N, C, D, H, W), got ", x.sizes());
#pragma once

#include <c10/util/StringUtil.h>

#include <stdexcept>

#define CAKES_CHECK(cond, ...)                                                 \
  do {                                                                         \
    if (!(cond))                                                               \
      throw std::invalid_argument(::c10::str(__VA_ARGS__));                    \
  } while (false)
