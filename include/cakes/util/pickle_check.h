// Bounds check of a pickle (the object stream inside PyTorch and LibTorch
// checkpoints) before LibTorch's unpickler reads it.
//
// LibTorch's unpickler trusts the lengths and memo indices it reads: a
// string declaring 4 GB reserves 4 GB before it finds the stream is short,
// and a memo index of 2^32 grows its memo table to match. So a damaged
// 10 KB checkpoint could take minutes and gigabytes before failing.
#pragma once

#include <cstddef>
#include <string>

namespace cakes::util {

// Walks the opcodes of the pickle in `data` (protocols 0-4) up to its STOP.
// Throws std::runtime_error naming `name` (one line) when an opcode is
// unknown, an argument or a declared length runs past the end, a memo index
// is larger than the number of objects memoised before it, or there is no
// STOP.
void verify_pickle(const void* data, std::size_t size, const std::string& name);

} // namespace cakes::util
