#include "cakes/train/checkpoint.h"

#include "cakes/util/zip_check.h"

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace cakes::train {

namespace {

[[noreturn]] void io_error(const std::string& what, const std::string& path) {
  throw std::runtime_error(
      "cannot " + what + " '" + path + "': " + std::strerror(errno));
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string one_line(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  auto nl = msg.find('\n');
  return nl == std::string::npos ? msg : msg.substr(0, nl);
}

void open_archive(const std::string& path, torch::serialize::InputArchive& ar) {
  if (::access(path.c_str(), R_OK) != 0) {
    io_error("read checkpoint", path);
  }
  // LibTorch does not check the archive's CRCs: altered tensor data would
  // load silently.
  util::verify_zip_file(path);
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "checkpoint '" + path + "' is unreadable (truncated or not a " +
        "checkpoint): " + one_line(e));
  }
}

} // namespace

void write_file_atomically(
    const std::string& path,
    const std::string& bytes,
    std::size_t abort_after) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    io_error("create", tmp);
  }
  const std::size_t total = std::min(bytes.size(), abort_after);
  std::size_t done = 0;
  while (done < total) {
    ssize_t n = ::write(fd, bytes.data() + done, total - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int saved = errno;
      ::close(fd);
      errno = saved;
      io_error("write", tmp);
    }
    done += static_cast<std::size_t>(n);
  }
  if (abort_after < bytes.size()) {
    ::close(fd);
    throw std::runtime_error(
        "write of '" + tmp + "' interrupted after " +
        std::to_string(abort_after) + " bytes (simulated)");
  }
  if (::fsync(fd) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    io_error("fsync", tmp);
  }
  if (::close(fd) != 0) {
    io_error("close", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    io_error("rename '" + tmp + "' to", path);
  }
  // Make the rename itself durable.
  int dfd =
      ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  torch::serialize::InputArchive ar;
  open_archive(path, ar);
  CheckpointMeta meta;
  try {
    c10::IValue v;
    ar.read("meta/epoch", v);
    meta.epoch = v.toInt();
    ar.read("meta/step", v);
    meta.step = v.toInt();
    ar.read("meta/network", v);
    meta.network = v.toStringRef();
    at::Tensor rng;
    if (ar.try_read("meta/rng_state", rng)) {
      meta.rng_state = rng;
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "'" + path +
        "' is not a cakes checkpoint (metadata missing): " + one_line(e));
  }
  return meta;
}

void load_checkpoint_weights(
    const std::string& path,
    torch::nn::Module& module,
    const std::string& expected_network) {
  CheckpointMeta meta = read_checkpoint_meta(path);
  if (meta.network != expected_network) {
    throw std::runtime_error(
        "checkpoint '" + path + "' was written for network '" + meta.network +
        "', not '" + expected_network + "'");
  }
  torch::serialize::InputArchive ar, model_ar;
  open_archive(path, ar);
  try {
    ar.read("model", model_ar);
    module.load(model_ar);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "checkpoint '" + path + "' does not fit the model: " + one_line(e));
  }
}

} // namespace cakes::train
