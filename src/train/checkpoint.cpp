#include "cakes/train/checkpoint.h"

#include "cakes/models/staged_copy.h"
#include "cakes/util/pickle_check.h"
#include "cakes/util/zip_check.h"

#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

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

// Every parameter and buffer of `m` from the archive, checked before anything
// is copied.
void stage_archive(
    const torch::nn::Module& m,
    torch::serialize::InputArchive& ar,
    const std::string& prefix,
    models::StagedCopy& staged) {
  for (const auto& p : m.named_parameters(/*recurse=*/false)) {
    at::Tensor t;
    if (!ar.try_read(p.key(), t))
      throw std::invalid_argument("it has no key '" + prefix + p.key() + "'");
    staged.add(prefix + p.key(), p.value(), prefix + p.key(), t);
  }
  for (const auto& b : m.named_buffers(/*recurse=*/false)) {
    at::Tensor t;
    if (!ar.try_read(b.key(), t, /*is_buffer=*/true))
      throw std::invalid_argument("it has no key '" + prefix + b.key() + "'");
    staged.add(prefix + b.key(), b.value(), prefix + b.key(), t);
  }
  for (const auto& c : m.named_children()) {
    torch::serialize::InputArchive sub;
    if (!ar.try_read(c.key(), sub))
      throw std::invalid_argument(
          "it has no module '" + prefix + c.key() + "'");
    stage_archive(*c.value(), sub, prefix + c.key() + ".", staged);
  }
}

// torch::serialize archives carry TorchScript source: one class per module
// under code/, declaring its attributes. LibTorch compiles that source when it
// loads the archive, and its parser crashes (not throws) on some malformed
// class bodies, and recurses without end on a class that contains itself. So
// before LibTorch sees a file, its entries must be what write_checkpoint
// writes: the fixed records, tensor data, and class bodies that only declare
// attributes of known types and reference other classes of the archive
// without a cycle.
struct ArchiveLayout {
  std::string path;

  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error(
        "checkpoint '" + path + "' is not one cakes writes: " + why);
  }

  // The classes a body's line refers to ("___torch_mangle_N"), appended to
  // `refs`; fails on any line a checkpoint's class body does not have.
  void check_line(
      const std::string& record,
      const std::string& line,
      std::vector<std::string>& refs) const {
    static const std::string name = R"(\"[^"\\\x00-\x1f]*\")";
    static const std::regex list(
        R"(  __(parameters|buffers)__ = \[()" + name + R"(, )*\])");
    static const std::string type =
        R"((Tensor|str|int|float|bool|Tuple\[float, float\]|)"
        R"(__torch__\.(___torch_mangle_[0-9]{1,9})\.Module))";
    static const std::regex attribute(
        R"(  [A-Za-z_][A-Za-z0-9_]{0,200} : )" + type);
    static const std::regex annotation(
        R"(  __annotations__\[)" + name + R"(\] = )" + type);
    // libstdc++'s regex recurses per character: bound the line first.
    if (line.size() > 4096) {
      fail(record + " has an overlong line");
    }
    std::smatch m;
    if (line.empty() || line == "  __annotations__ = []" ||
        std::regex_match(line, list)) {
      return;
    }
    if (std::regex_match(line, m, attribute) ||
        std::regex_match(line, m, annotation)) {
      if (m[m.size() - 1].matched) {
        refs.push_back(m[m.size() - 1].str());
      }
      return;
    }
    fail(record + " has an unexpected line");
  }

  void check(caffe2::serialize::PyTorchStreamReader& reader) const {
    static const std::regex fixed(
        R"(data\.pkl|constants\.pkl|version|data/[0-9]{1,9})");
    static const std::regex code(
        R"(code/__torch__(/___torch_mangle_[0-9]{1,9})?\.py)");
    // The debug record of a class without methods: no source ranges.
    static const std::string no_debug_info(
        "\200\002X\030\000\000\000FORMAT_WITH_STRING_TABLEq\000X\000"
        "\000\000\000q\001\205q\002K\000ctorch.jit._pickle\nbuild_intli"
        "st\nq\003(](etRK\000K\000\207q\004K\000K\000\207K\000\207\205q"
        "\005\207.",
        106);
    std::map<std::string, std::vector<std::string>> classes; // -> references
    const auto records = reader.getAllRecords();
    const std::set<std::string> names(records.begin(), records.end());
    for (const auto& r : records) {
      if (r == "data.pkl" || r == "constants.pkl") {
        auto [data, size] = reader.getRecord(r);
        util::verify_pickle(
            data.get(), size, "checkpoint '" + path + "': " + r);
        continue;
      }
      if (std::regex_match(r, fixed)) {
        continue;
      }
      const bool debug =
          r.size() > 10 && r.substr(r.size() - 10) == ".debug_pkl";
      const std::string source = debug ? r.substr(0, r.size() - 10) : r;
      if (!std::regex_match(source, code)) {
        fail("unexpected entry '" + r + "'");
      }
      auto [data, size] = reader.getRecord(r);
      const std::string text(static_cast<const char*>(data.get()), size);
      if (debug) {
        if (text != no_debug_info) {
          fail("unexpected content in '" + r + "'");
        }
        continue;
      }
      if (!names.count(r + ".debug_pkl")) {
        fail("'" + r + "' has no debug record");
      }
      const std::string head = "class Module(Module):\n";
      if (text.compare(0, head.size(), head) != 0) {
        fail(r + " does not declare a module class");
      }
      auto& refs = classes
          [source == "code/__torch__.py"
               ? std::string("__torch__")
               : source.substr(15, source.size() - 18)];
      std::istringstream lines(text.substr(head.size()));
      for (std::string line; std::getline(lines, line);) {
        check_line(r, line, refs);
      }
    }
    if (!classes.count("__torch__") || !names.count("data.pkl")) {
      fail("it has no module");
    }
    // Every referenced class exists, and none contains itself.
    std::map<std::string, int> state; // 1 visiting, 2 done
    std::vector<std::pair<std::string, std::size_t>> stack{{"__torch__", 0}};
    state["__torch__"] = 1;
    while (!stack.empty()) {
      auto& [cls, next] = stack.back();
      const auto& refs = classes[cls];
      if (next == refs.size()) {
        state[cls] = 2;
        stack.pop_back();
        continue;
      }
      const std::string ref = refs[next++];
      if (!classes.count(ref)) {
        fail("class " + ref + " is referenced but missing");
      }
      if (state[ref] == 1) {
        fail("class " + ref + " contains itself");
      }
      if (state[ref] == 0) {
        state[ref] = 1;
        stack.emplace_back(ref, 0);
      }
    }
  }
};

void open_archive(const std::string& path, torch::serialize::InputArchive& ar) {
  if (::access(path.c_str(), R_OK) != 0) {
    io_error("read checkpoint", path);
  }
  // LibTorch does not check the archive's CRCs: altered tensor data would
  // load silently.
  util::verify_zip_file(path);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    ArchiveLayout{path}.check(reader);
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

namespace {

const char* const kFormat = "cakes checkpoint";
const int kVersion = 1;

} // namespace

std::string CheckpointMeta::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["epoch"] = epoch;
  j["step"] = step;
  j["network"] = nlohmann::ordered_json::parse(network.to_json());
  for (const auto& [name, text] : sections)
    j[name] = nlohmann::ordered_json::parse(text);
  return j.dump();
}

CheckpointMeta CheckpointMeta::from_json(const std::string& text) {
  CheckpointMeta m;
  try {
    const auto j = nlohmann::ordered_json::parse(text);
    if (j.value("format", std::string()) != kFormat)
      throw std::invalid_argument("not a cakes checkpoint document");
    if (j.at("version").get<int>() > kVersion)
      throw std::invalid_argument(
          "checkpoint version " + j.at("version").dump() +
          " is newer than this cakes reads (" + std::to_string(kVersion) + ")");
    m.epoch = j.at("epoch").get<int64_t>();
    m.step = j.at("step").get<int64_t>();
    m.network = models::NetworkSpec::from_json(j.at("network").dump());
    for (const auto& item : j.items()) {
      const std::string& key = item.key();
      if (key != "format" && key != "version" && key != "epoch" &&
          key != "step" && key != "network")
        m.sections[key] = item.value().dump();
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(
        std::string("bad checkpoint metadata: ") + e.what());
  }
  return m;
}

void write_checkpoint(
    const std::string& path,
    const torch::nn::Module& module,
    const CheckpointMeta& meta,
    const torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive ar, model_ar;
  module.save(model_ar);
  ar.write("model", model_ar);
  if (optimizer) {
    torch::serialize::OutputArchive opt_ar;
    optimizer->save(opt_ar);
    ar.write("optimizer", opt_ar);
  }
  ar.write("meta/json", c10::IValue(meta.to_json()));
  if (meta.rng_state.defined())
    ar.write("meta/rng_state", meta.rng_state, /*is_buffer=*/true);
  std::ostringstream os;
  ar.save_to(os);
  write_file_atomically(path, os.str());
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  torch::serialize::InputArchive ar;
  open_archive(path, ar);
  c10::IValue v;
  if (!ar.try_read("meta/json", v)) {
    if (ar.try_read("meta/network", v))
      throw std::runtime_error(
          "'" + path +
          "' is a checkpoint of an older cakes (no network description); "
          "train it again with this version");
    throw std::runtime_error(
        "'" + path + "' is not a cakes checkpoint (no metadata)");
  }
  CheckpointMeta meta;
  try {
    meta = CheckpointMeta::from_json(v.toStringRef());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("'" + path + "': " + e.what());
  }
  at::Tensor rng;
  if (ar.try_read("meta/rng_state", rng))
    meta.rng_state = rng;
  return meta;
}

void load_checkpoint_weights(const std::string& path, models::Model& model) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  const std::string diff = models::difference(meta.network, model.spec);
  if (!diff.empty())
    throw std::runtime_error(
        "checkpoint '" + path + "' holds another network (" + diff +
        "): it was written for " + meta.network.describe());
  torch::serialize::InputArchive ar, model_ar;
  open_archive(path, ar);
  models::StagedCopy staged;
  try {
    if (!ar.try_read("model", model_ar))
      throw std::invalid_argument("it holds no model");
    stage_archive(*model.module, model_ar, "", staged);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(
        "checkpoint '" + path + "' does not fit the model: " + e.what());
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "checkpoint '" + path + "' does not fit the model: " + one_line(e));
  }
  staged.commit();
}

void load_checkpoint_optimizer(
    const std::string& path, torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive ar, opt_ar;
  open_archive(path, ar);
  if (!ar.try_read("optimizer", opt_ar))
    throw std::runtime_error(
        "checkpoint '" + path + "' holds no optimizer state");
  try {
    optimizer.load(opt_ar);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "checkpoint '" + path +
        "': its optimizer state does not fit: " + one_line(e));
  }
}

models::Model
load_model(const std::string& path, const models::BuildOptions& options) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  models::Model model = models::build(meta.network, options);
  load_checkpoint_weights(path, model);
  return model;
}

} // namespace cakes::train
