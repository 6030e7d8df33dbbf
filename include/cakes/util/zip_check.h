// Integrity check of zip archives, the container of LibTorch and PyTorch
// checkpoints (torch::save, torch.save).
//
// LibTorch reads them through miniz built with
// MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS (PyTorch's cmake/Dependencies.cmake),
// so a checkpoint whose tensor bytes were overwritten still loads and the
// model silently computes on garbage. These functions check every entry
// against the CRC-32 the archive records for it before LibTorch reads it.
#pragma once

#include <cstddef>
#include <string>

namespace cakes::util {

// Throws std::runtime_error naming `path` (one line) when the file is not a
// zip archive, its directory or an entry lies outside the file, an entry uses
// a compression other than stored or deflate, or an entry's data do not match
// its recorded CRC-32 or size. Reads the file once, in bounded chunks;
// declared sizes are checked against the file's real size first.
void verify_zip_file(const std::string& path);

// The same for an archive in memory; `name` stands for it in messages.
void verify_zip(const void* data, std::size_t size, const std::string& name);

} // namespace cakes::util
