// Reader of the files Python's torch.save writes, without Python: both
// containers (zip, PyTorch >= 1.6; legacy, a sequence of pickles followed by
// the raw storages) and the pickle subset they use. docs/WEIGHTS.md.
//
// Why not torch::pickle_load: it reads only the zip container, turns every
// collections.OrderedDict (what model.state_dict() returns) into None, and
// materialises storages on the device they were saved from (cuda:0 on a
// machine without CUDA fails). Here nothing is executed: the pickle is run
// on a small machine that knows the few constructors a state dict needs
// (OrderedDict, the tensor rebuild functions) and keeps anything else as an
// opaque value; storages are read as bytes on the CPU whatever their
// location tag says.
#include "cakes/models/weights.h"

#include "cakes/util/messages.h"
#include "cakes/util/zip_check.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cakes::models {
namespace {

struct Obj;
using Ref = std::shared_ptr<Obj>;

enum class Kind {
  None,
  Bool,
  Int,
  BigInt, // an integer wider than 64 bits (the legacy magic number): bytes
  Float,
  Str,
  Bytes,
  Tuple,
  List,
  Dict,
  Global,
  Storage,
  Tensor,
  Opaque, // an object of a class we do not construct
};

const char* kind_name(Kind k) {
  switch (k) {
  case Kind::None:
    return "None";
  case Kind::Bool:
    return "bool";
  case Kind::Int:
  case Kind::BigInt:
    return "int";
  case Kind::Float:
    return "float";
  case Kind::Str:
    return "str";
  case Kind::Bytes:
    return "bytes";
  case Kind::Tuple:
    return "tuple";
  case Kind::List:
    return "list";
  case Kind::Dict:
    return "dict";
  case Kind::Global:
    return "class or function";
  case Kind::Storage:
    return "storage";
  case Kind::Tensor:
    return "tensor";
  case Kind::Opaque:
    return "object";
  }
  return "object";
}

struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  std::string s; // Str, Bytes, BigInt bytes, Global "module.name", Opaque
  std::vector<Ref> items;                   // Tuple, List
  std::vector<std::pair<Ref, Ref>> entries; // Dict
  // Storage: dtype, element count; data read later (data.defined()).
  at::ScalarType dtype = at::kFloat;
  at::Tensor data;
  // Tensor: a view of `storage`.
  Ref storage;
  std::vector<int64_t> sizes, strides;
};

// The objects of the read in progress (ReadArena). A pickle may build
// cycles: a list appended to itself through the memo, a dict set as its own
// value. Python's pickle allows them; with shared ownership alone they were
// never freed (fuzz_torch_file, LeakSanitizer), so every object is registered
// here and the arena cuts all links when the read ends, by then holding
// nothing but materialised tensors.
thread_local std::vector<std::weak_ptr<Obj>>* t_arena = nullptr;

class ReadArena {
public:
  ReadArena() : outer_(t_arena) { t_arena = &objects_; }
  ~ReadArena() {
    for (auto& w : objects_)
      if (auto o = w.lock()) {
        o->items.clear();
        o->entries.clear();
        o->storage.reset();
      }
    t_arena = outer_;
  }
  ReadArena(const ReadArena&) = delete;
  ReadArena& operator=(const ReadArena&) = delete;

private:
  std::vector<std::weak_ptr<Obj>> objects_;
  std::vector<std::weak_ptr<Obj>>* outer_;
};

Ref make(Kind k) {
  auto o = std::make_shared<Obj>();
  o->kind = k;
  if (t_arena)
    t_arena->push_back(o);
  return o;
}

Ref make_int(int64_t v) {
  auto o = make(Kind::Int);
  o->i = v;
  return o;
}

Ref make_str(Kind k, std::string s) {
  auto o = make(k);
  o->s = std::move(s);
  return o;
}

// Bounded reads from a byte range; every error names the file and offset.
struct Reader {
  const char* data;
  size_t size;
  size_t pos = 0;
  std::string what;

  [[noreturn]] void fail(const std::string& why) const {
    throw std::invalid_argument(
        "'" + what + "' is not a readable PyTorch file: " + why + " (byte " +
        std::to_string(pos) + ")");
  }
  const char* take(size_t n) {
    if (n > size - pos)
      fail("truncated");
    const char* p = data + pos;
    pos += n;
    return p;
  }
  uint8_t u8() {
    return static_cast<uint8_t>(*take(1));
  }
  // Little-endian unsigned of n <= 8 bytes.
  uint64_t le(size_t n) {
    const auto* p = reinterpret_cast<const uint8_t*>(take(n));
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k)
      v |= uint64_t(p[k]) << (8 * k);
    return v;
  }
  std::string bytes(uint64_t n) {
    if (n > size - pos)
      fail("truncated");
    return std::string(take(size_t(n)), size_t(n));
  }
  std::string line() {
    const size_t limit = std::min(size - pos, size_t(256));
    const void* nl = std::memchr(data + pos, '\n', limit);
    if (!nl)
      fail("unterminated name");
    const size_t n = static_cast<const char*>(nl) - (data + pos);
    std::string s(data + pos, n);
    pos += n + 1;
    return s;
  }
};

// Storage names of torch.save ("FloatStorage", ...) to element types.
bool storage_dtype(const std::string& global, at::ScalarType& out) {
  static const std::pair<const char*, at::ScalarType> table[] = {
      {"FloatStorage", at::kFloat},
      {"DoubleStorage", at::kDouble},
      {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16},
      {"LongStorage", at::kLong},
      {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},
      {"CharStorage", at::kChar},
      {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool},
  };
  const auto dot = global.rfind('.');
  const std::string module =
      dot == std::string::npos ? "" : global.substr(0, dot);
  const std::string name =
      global.substr(dot == std::string::npos ? 0 : dot + 1);
  // torch.cuda.FloatStorage: what very old files name a GPU storage.
  if (module != "torch" && module != "torch.cuda")
    return false;
  for (const auto& [n, t] : table)
    if (name == n) {
      out = t;
      return true;
    }
  return false;
}

constexpr size_t kMaxStack = size_t(1) << 22;
constexpr size_t kMaxMemo = size_t(1) << 24;

// One pickle (protocols 2 to 5, the binary opcodes torch.save emits, and the
// protocol 0/1 container opcodes). `persistent` resolves a persistent id.
class Unpickler {
public:
  Unpickler(Reader& r, std::function<Ref(const Ref&)> persistent)
      : r_(r), persistent_(std::move(persistent)) {}

  Ref run() {
    while (true) {
      const uint8_t op = r_.u8();
      switch (op) {
      case 0x80: // PROTO
        if (r_.u8() > 5)
          r_.fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME
        r_.le(8);
        break;
      case '.': // STOP
        if (stack_.empty())
          r_.fail("empty pickle");
        return stack_.back();
      case 'N':
        push(make(Kind::None));
        break;
      case 0x88:
      case 0x89: {
        auto o = make(Kind::Bool);
        o->i = op == 0x88;
        push(o);
        break;
      }
      case '}':
        push(make(Kind::Dict));
        break;
      case ']':
        push(make(Kind::List));
        break;
      case ')':
        push(make(Kind::Tuple));
        break;
      case '(': // MARK
        marks_.push_back(stack_.size());
        break;
      case 't': { // TUPLE
        auto o = make(Kind::Tuple);
        o->items = pop_mark();
        push(o);
        break;
      }
      case 'l': { // LIST
        auto o = make(Kind::List);
        o->items = pop_mark();
        push(o);
        break;
      }
      case 'd': { // DICT
        auto o = make(Kind::Dict);
        set_items(o, pop_mark());
        push(o);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: { // TUPLE1..3
        const size_t n = op - 0x84;
        need(n);
        auto o = make(Kind::Tuple);
        o->items.assign(stack_.end() - n, stack_.end());
        stack_.resize(stack_.size() - n);
        push(o);
        break;
      }
      case 'a': { // APPEND
        auto v = pop();
        append(top(), {v});
        break;
      }
      case 'e': { // APPENDS
        auto items = pop_mark();
        append(top(), items);
        break;
      }
      case 's': { // SETITEM
        auto v = pop();
        auto k = pop();
        set_items(top(), {k, v});
        break;
      }
      case 'u': { // SETITEMS
        auto items = pop_mark();
        set_items(top(), items);
        break;
      }
      case 'X':
        push(make_str(Kind::Str, r_.bytes(r_.le(4))));
        break;
      case 0x8c:
        push(make_str(Kind::Str, r_.bytes(r_.le(1))));
        break;
      case 0x8d:
        push(make_str(Kind::Str, r_.bytes(r_.le(8))));
        break;
      case 'U': // SHORT_BINSTRING (Python 2 str)
        push(make_str(Kind::Str, r_.bytes(r_.le(1))));
        break;
      case 'T':
        push(make_str(Kind::Str, r_.bytes(r_.le(4))));
        break;
      case 'C':
        push(make_str(Kind::Bytes, r_.bytes(r_.le(1))));
        break;
      case 'B':
        push(make_str(Kind::Bytes, r_.bytes(r_.le(4))));
        break;
      case 0x8e:
        push(make_str(Kind::Bytes, r_.bytes(r_.le(8))));
        break;
      case 'J':
        push(make_int(int32_t(uint32_t(r_.le(4)))));
        break;
      case 'K':
        push(make_int(int64_t(r_.le(1))));
        break;
      case 'M':
        push(make_int(int64_t(r_.le(2))));
        break;
      case 0x8a: // LONG1
        push(long_int(r_.bytes(r_.le(1))));
        break;
      case 0x8b: // LONG4
        push(long_int(r_.bytes(r_.le(4))));
        break;
      case 'G': { // BINFLOAT, big-endian
        const auto* p = reinterpret_cast<const uint8_t*>(r_.take(8));
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k)
          bits = (bits << 8) | p[k];
        auto o = make(Kind::Float);
        std::memcpy(&o->f, &bits, 8);
        push(o);
        break;
      }
      case 'c': { // GLOBAL
        std::string module = r_.line();
        std::string name = r_.line();
        push(make_str(Kind::Global, module + "." + name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        auto name = pop();
        auto module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str)
          r_.fail("STACK_GLOBAL of non-strings");
        push(make_str(Kind::Global, module->s + "." + name->s));
        break;
      }
      case 'q':
        memo_put(r_.le(1));
        break;
      case 'r':
        memo_put(r_.le(4));
        break;
      case 0x94: // MEMOIZE
        memo_put(memo_.size());
        break;
      case 'h':
        push(memo_get(r_.le(1)));
        break;
      case 'j':
        push(memo_get(r_.le(4)));
        break;
      case 'R': { // REDUCE
        auto args = pop();
        auto callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 0x81: { // NEWOBJ
        auto args = pop();
        auto cls = pop();
        push(reduce(cls, args));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        pop();
        auto args = pop();
        auto cls = pop();
        push(reduce(cls, args));
        break;
      }
      case 'b': // BUILD: instance state (OrderedDict._metadata); unused
        pop();
        top();
        break;
      case 'Q': { // BINPERSID
        auto pid = pop();
        push(persistent_(pid));
        break;
      }
      case '0':
        pop();
        break;
      case '1':
        pop_mark();
        break;
      case '2':
        push(top());
        break;
      default: {
        char b[8];
        std::snprintf(b, sizeof b, "0x%02x", op);
        --r_.pos;
        r_.fail(std::string("unsupported pickle opcode ") + b);
      }
      }
    }
  }

private:
  Reader& r_;
  std::function<Ref(const Ref&)> persistent_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ref> memo_;

  void push(Ref o) {
    if (stack_.size() >= kMaxStack)
      r_.fail("pickle stack too deep");
    stack_.push_back(std::move(o));
  }
  void need(size_t n) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n)
      r_.fail("pickle stack underflow");
  }
  Ref pop() {
    need(1);
    auto o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  const Ref& top() {
    need(1);
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty())
      r_.fail("pickle MARK missing");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> out(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return out;
  }
  void memo_put(uint64_t k) {
    if (memo_.size() >= kMaxMemo && !memo_.count(k))
      r_.fail("pickle memo too large");
    memo_[k] = top();
  }
  Ref memo_get(uint64_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end())
      r_.fail("pickle memo entry " + std::to_string(k) + " missing");
    return it->second;
  }
  void append(const Ref& target, const std::vector<Ref>& items) {
    if (target->kind == Kind::List)
      target->items.insert(target->items.end(), items.begin(), items.end());
    else if (target->kind != Kind::Opaque)
      r_.fail(std::string("APPEND to a ") + kind_name(target->kind));
  }
  void set_items(const Ref& target, const std::vector<Ref>& kv) {
    if (kv.size() % 2)
      r_.fail("odd number of dict items");
    if (target->kind == Kind::Opaque)
      return;
    if (target->kind != Kind::Dict)
      r_.fail(std::string("SETITEM on a ") + kind_name(target->kind));
    for (size_t k = 0; k < kv.size(); k += 2) {
      bool replaced = false;
      // Keys of a state dict are strings; a repeated key replaces, as in
      // Python. Other keys are kept in order without comparison.
      if (kv[k]->kind == Kind::Str)
        for (auto& e : target->entries)
          if (e.first->kind == Kind::Str && e.first->s == kv[k]->s) {
            e.second = kv[k + 1];
            replaced = true;
            break;
          }
      if (!replaced)
        target->entries.emplace_back(kv[k], kv[k + 1]);
    }
  }
  Ref long_int(const std::string& b) {
    if (b.size() > 8)
      return make_str(Kind::BigInt, b);
    uint64_t v = 0;
    for (size_t k = 0; k < b.size(); ++k)
      v |= uint64_t(uint8_t(b[k])) << (8 * k);
    if (!b.empty() && b.size() < 8 && (uint8_t(b.back()) & 0x80))
      v |= ~uint64_t(0) << (8 * b.size()); // sign-extend
    return make_int(int64_t(v));
  }
  static std::vector<int64_t> ints(const Ref& t, Reader& r, const char* what) {
    if (t->kind != Kind::Tuple)
      r.fail(std::string("tensor ") + what + " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& e : t->items) {
      if (e->kind != Kind::Int)
        r.fail(std::string("tensor ") + what + " holds a non-integer");
      out.push_back(e->i);
    }
    return out;
  }
  Ref reduce(const Ref& callable, const Ref& args) {
    if (callable->kind != Kind::Global)
      return make_str(Kind::Opaque, "object");
    const std::string& name = callable->s;
    if (name == "collections.OrderedDict") // what state_dict() returns
      return make(Kind::Dict);
    if (name == "torch._utils._rebuild_tensor_v2" ||
        name == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride, ...)
      if (args->kind != Kind::Tuple || args->items.size() < 4 ||
          args->items[0]->kind != Kind::Storage ||
          args->items[1]->kind != Kind::Int)
        r_.fail("malformed tensor record");
      auto t = make(Kind::Tensor);
      t->storage = args->items[0];
      t->i = args->items[1]->i;
      t->sizes = ints(args->items[2], r_, "size");
      t->strides = ints(args->items[3], r_, "stride");
      if (t->sizes.size() != t->strides.size() || t->sizes.size() > 16)
        r_.fail("malformed tensor shape");
      return t;
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      if (args->kind != Kind::Tuple || args->items.empty() ||
          args->items[0]->kind != Kind::Tensor)
        r_.fail("malformed parameter record");
      return args->items[0];
    }
    return make_str(Kind::Opaque, name);
  }
};

// A storage named by a persistent id: ('storage', torch.XStorage, key,
// location, numel[, view_metadata]). The location (cpu, cuda:0, ...) is
// ignored: the bytes are read onto the CPU.
struct Storages {
  std::unordered_map<std::string, Ref> by_key;
  Reader* reader = nullptr;

  Ref load(const Ref& pid) {
    auto& r = *reader;
    if (pid->kind != Kind::Tuple || pid->items.size() < 5 ||
        pid->items[0]->kind != Kind::Str || pid->items[0]->s != "storage")
      r.fail("unknown persistent id");
    const auto& it = pid->items;
    at::ScalarType dtype;
    if (it[1]->kind != Kind::Global || !storage_dtype(it[1]->s, dtype))
      r.fail(
          "unknown storage type" + (it[1]->kind == Kind::Global
                                        ? " " + util::one_line(it[1]->s, 60)
                                        : std::string()));
    if (it[2]->kind != Kind::Str || it[4]->kind != Kind::Int || it[4]->i < 0)
      r.fail("malformed storage record");
    auto& s = by_key[it[2]->s];
    if (!s) {
      s = make(Kind::Storage);
      s->s = it[2]->s;
      s->dtype = dtype;
      s->i = it[4]->i;
    }
    // Legacy files of views: view_metadata = (view_key, offset, size).
    if (it.size() > 5 && it[5]->kind == Kind::Tuple) {
      const auto& v = it[5]->items;
      if (v.size() != 3 || v[0]->kind != Kind::Str || v[1]->kind != Kind::Int ||
          v[2]->kind != Kind::Int || v[1]->i < 0 || v[2]->i < 0 ||
          v[1]->i > s->i || v[2]->i > s->i - v[1]->i)
        r.fail("malformed storage view");
      auto view = make(Kind::Storage);
      view->storage = s;
      view->dtype = dtype;
      view->i = v[2]->i;
      view->sizes = {v[1]->i};
      return view;
    }
    return s;
  }
};

at::Tensor storage_data(const Ref& s) {
  if (s->storage) // a view (legacy)
    return storage_data(s->storage).narrow(0, s->sizes[0], s->i);
  return s->data;
}

at::Tensor materialise(const Ref& t, const std::string& path) {
  const at::Tensor data = storage_data(t->storage);
  auto bad = [&](const std::string& why) {
    return std::invalid_argument(
        "'" + path + "' is not a readable PyTorch file: " + why);
  };
  if (!data.defined())
    throw bad(
        "storage '" + util::one_line(t->storage->s, 40) + "' has no data");
  // The last element the view reaches and its element count, without
  // overflow: each bounded by the storage (a state dict's tensors are views
  // of their storage; none holds more elements than it).
  const int64_t n = data.numel();
  if (t->i < 0 || t->i > n)
    throw bad("a tensor starts past its storage");
  int64_t last = t->i, count = 1;
  bool empty = false;
  for (size_t d = 0; d < t->sizes.size(); ++d) {
    const int64_t size = t->sizes[d], stride = t->strides[d];
    if (size < 0 || stride < 0)
      throw bad("a tensor has a negative size or stride");
    if (size == 0) {
      empty = true;
      continue;
    }
    if (stride > 0 && size - 1 > (n - last) / stride)
      throw bad("a tensor reaches past its storage");
    last += (size - 1) * stride;
    if (size > n / count + 1)
      throw bad("a tensor holds more elements than its storage");
    count *= size;
  }
  if (empty)
    return at::empty(t->sizes, data.options());
  if (last >= n || count > n)
    throw bad("a tensor reaches past its storage");
  return data.as_strided(t->sizes, t->strides, t->i).clone();
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw std::invalid_argument("cannot read '" + path + "'");
  return std::vector<char>(
      (std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

at::Tensor bytes_to_storage(
    const void* p, size_t n, const Ref& s, const std::string& path) {
  const size_t elem = c10::elementSize(s->dtype);
  if (uint64_t(s->i) > n / elem)
    throw std::invalid_argument(
        "'" + path + "' is not a readable PyTorch file: storage '" +
        util::one_line(s->s, 40) + "' holds " + std::to_string(n) +
        " bytes, fewer than its " + std::to_string(s->i) + " elements");
  auto t = at::empty({s->i}, at::TensorOptions().dtype(s->dtype));
  if (s->i > 0)
    std::memcpy(t.data_ptr(), p, size_t(s->i) * elem);
  return t;
}

// An archive in memory for LibTorch's zip reader.
class MemoryAdapter : public caffe2::serialize::ReadAdapterInterface {
public:
  explicit MemoryAdapter(const std::vector<char>& b) : b_(b) {}
  size_t size() const override {
    return b_.size();
  }
  size_t read(uint64_t pos, void* buf, size_t n, const char*) const override {
    if (pos >= b_.size())
      return 0;
    n = std::min<size_t>(n, b_.size() - size_t(pos));
    std::memcpy(buf, b_.data() + pos, n);
    return n;
  }

private:
  const std::vector<char>& b_;
};

// What LibTorch's PyTorchStreamReader checks in its constructor, checked
// first: when the constructor throws, it leaks miniz's reader state (no
// mz_zip_reader_end; found by fuzz_torch_file). The archive has entries,
// the first in a folder, and a stored <folder>/version (or
// <folder>/.data/version) holding a format version from 1 to 10. Call after
// util::verify_zip (every record lies within the bytes).
void check_zip_header(const std::vector<char>& b, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument(
        "'" + path + "' is not a readable PyTorch file: " + why);
  };
  const auto* u = reinterpret_cast<const unsigned char*>(b.data());
  auto u16 = [&](size_t i) { return size_t(u[i]) | (size_t(u[i + 1]) << 8); };
  auto u32 = [&](size_t i) { return u16(i) | (u16(i + 2) << 16); };
  // The end-of-directory record: the last signature within 64 KiB + 22.
  if (b.size() < 22)
    throw bad("no zip directory");
  size_t eocd = b.size();
  for (size_t i = b.size() - 22;; --i) {
    if (u32(i) == 0x06054b50) {
      eocd = i;
      break;
    }
    if (i == 0 || b.size() - i > 65557)
      break;
  }
  if (eocd == b.size())
    throw bad("no zip directory");
  const size_t entries = u16(eocd + 10);
  size_t at = u32(eocd + 16);
  if (entries == 0xFFFF || at == 0xFFFFFFFF)
    return; // zip64 (a file over 4 GB): LibTorch's reader checks it
  std::string folder, version;
  bool have = false;
  for (size_t e = 0; e < entries; ++e) {
    if (at + 46 > b.size() || u32(at) != 0x02014b50)
      throw bad("damaged zip directory");
    const size_t name_len = u16(at + 28);
    if (at + 46 + name_len > b.size())
      throw bad("damaged zip directory");
    const std::string name(b.data() + at + 46, name_len);
    if (e == 0) {
      const auto slash = name.find('/');
      if (slash == std::string::npos)
        throw bad("its first entry is not in a folder");
      folder = name.substr(0, slash + 1);
    }
    if (!have &&
        (name == folder + "version" || name == folder + ".data/version")) {
      const size_t size = u32(at + 24), local = u32(at + 42);
      if (u16(at + 10) != 0 || local + 30 > b.size())
        throw bad("its version record is not stored");
      const size_t data = local + 30 + u16(local + 26) + u16(local + 28);
      if (data > b.size() || size > b.size() - data)
        throw bad("damaged version record");
      version.assign(b.data() + data, std::min<size_t>(size, 32));
      have = true;
    }
    at += 46 + name_len + u16(at + 30) + u16(at + 32);
  }
  if (entries == 0)
    throw bad("the zip archive is empty");
  size_t i = 0;
  while (i < version.size() && std::isspace((unsigned char)version[i]))
    ++i;
  uint64_t v = 0;
  size_t digits = 0;
  for (; i < version.size() && std::isdigit((unsigned char)version[i]) &&
         digits < 8;
       ++i, ++digits)
    v = v * 10 + uint64_t(version[i] - '0');
  if (!have || digits == 0 || v < 1 || v > 10)
    throw bad(
        have ? "its version record '" + util::one_line(version, 20) +
                   "' is not a format version from 1 to 10"
             : "it has no version record");
}

// Zip (PyTorch >= 1.6): <archive>/data.pkl, storages in <archive>/data/<key>.
Ref read_zip(const std::vector<char>& bytes, const std::string& path) {
  // LibTorch's reader does not check CRCs: a damaged file would load.
  util::verify_zip(bytes.data(), bytes.size(), path);
  check_zip_header(bytes, path);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  at::DataPtr pkl;
  size_t pkl_size = 0;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<MemoryAdapter>(bytes));
    if (!zip->hasRecord("data.pkl"))
      throw std::invalid_argument(
          "'" + path +
          "' is a zip archive without data.pkl: not a file of torch.save");
    std::tie(pkl, pkl_size) = zip->getRecord("data.pkl");
  } catch (const c10::Error& e) {
    throw std::invalid_argument(
        "'" + path + "' is not a readable PyTorch file: " +
        util::one_line(e.what_without_backtrace(), 160));
  }
  Reader r{static_cast<const char*>(pkl.get()), pkl_size, 0, path};
  Storages storages;
  storages.reader = &r;
  Unpickler u(r, [&](const Ref& pid) { return storages.load(pid); });
  Ref obj = u.run();
  for (auto& [key, s] : storages.by_key) {
    const std::string name = "data/" + key;
    try {
      if (!zip->hasRecord(name))
        throw std::invalid_argument(
            "'" + path + "' is not a readable PyTorch file: storage record " +
            util::one_line(name, 40) + " is missing");
      auto [ptr, n] = zip->getRecord(name);
      s->data = bytes_to_storage(ptr.get(), n, s, path);
    } catch (const c10::Error& e) {
      throw std::invalid_argument(
          "'" + path + "' is not a readable PyTorch file: " +
          util::one_line(e.what_without_backtrace(), 160));
    }
  }
  return obj;
}

// Legacy (torch.save before 1.6, or _use_new_zipfile_serialization=False):
// pickles of the magic number, the protocol version, the system info and
// the object (its persistent ids name storages), then a pickled list of
// storage keys and, per key in that order, an 8-byte element count and the
// raw little-endian elements.
Ref read_legacy(const std::vector<char>& bytes, const std::string& path) {
  Reader r{bytes.data(), bytes.size(), 0, path};
  Storages storages;
  storages.reader = &r;
  auto none = [&](const Ref&) -> Ref { r.fail("unexpected persistent id"); };
  const Ref magic = Unpickler(r, none).run();
  static const char kMagic[] = "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
  if (magic->kind != Kind::BigInt || magic->s != std::string(kMagic, 10))
    throw std::invalid_argument(
        "'" + path +
        "' is not a PyTorch file (neither a zip archive nor the legacy "
        "format's magic number)");
  const Ref version = Unpickler(r, none).run();
  if (version->kind != Kind::Int || version->i != 1001)
    r.fail("legacy protocol version is not 1001");
  const Ref info = Unpickler(r, none).run();
  if (info->kind == Kind::Dict)
    for (const auto& [k, v] : info->entries)
      if (k->kind == Kind::Str && k->s == "little_endian" &&
          v->kind == Kind::Bool && !v->i)
        r.fail("written on a big-endian machine");
  Unpickler main(r, [&](const Ref& pid) { return storages.load(pid); });
  Ref obj = main.run();
  const Ref keys = Unpickler(r, none).run();
  if (keys->kind != Kind::List)
    r.fail("storage key list missing");
  for (const auto& k : keys->items) {
    if (k->kind != Kind::Str)
      r.fail("storage key is not a string");
    auto it = storages.by_key.find(k->s);
    if (it == storages.by_key.end())
      r.fail("storage '" + util::one_line(k->s, 40) + "' is not used");
    const Ref& s = it->second;
    const uint64_t count = r.le(8);
    if (count != uint64_t(s->i))
      r.fail(
          "storage '" + util::one_line(k->s, 40) + "' has " +
          std::to_string(count) + " elements, its record says " +
          std::to_string(s->i));
    const size_t elem = c10::elementSize(s->dtype);
    if (count > (r.size - r.pos) / elem)
      r.fail("truncated");
    const char* p = r.take(size_t(count) * elem);
    s->data = bytes_to_storage(p, size_t(count) * elem, s, path);
  }
  return obj;
}

} // namespace

TorchFile read_torch_file(const std::string& path) {
  const auto bytes = read_bytes(path);
  const ReadArena arena; // outlives `obj`: see ReadArena
  TorchFile out;
  Ref obj;
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\3\4", 4) == 0) {
    obj = read_zip(bytes, path);
    out.form = "zip format";
  } else if (!bytes.empty() && uint8_t(bytes[0]) == 0x80) {
    obj = read_legacy(bytes, path);
    out.form = "legacy format";
  } else if (
      bytes.size() > 262 && std::memcmp(bytes.data() + 257, "ustar", 5) == 0) {
    throw std::invalid_argument(
        "'" + path +
        "' is a tar archive (torch.save before PyTorch 0.4): not supported; "
        "load and save it again with a newer PyTorch");
  } else {
    throw std::invalid_argument(
        "'" + path + "' is not a PyTorch file (torch.save) " +
        (bytes.empty() ? "(empty)" : "(unknown first bytes)"));
  }
  if (obj->kind == Kind::Dict)
    for (const auto& [k, v] : obj->entries)
      if (k->kind == Kind::Str && k->s == "state_dict" &&
          v->kind == Kind::Dict) {
        obj = v;
        out.form += ", checkpoint dict";
        break;
      }
  if (obj->kind != Kind::Dict)
    throw std::invalid_argument(
        "'" + path + "' holds a " + kind_name(obj->kind) +
        ", not a state dict (a dict of tensors)");
  bool prefixed = false;
  for (const auto& [k, v] : obj->entries) {
    if (k->kind != Kind::Str)
      throw std::invalid_argument(
          "'" + path + "' has a state dict key that is a " +
          kind_name(k->kind) + ", not a name");
    if (v->kind != Kind::Tensor)
      throw std::invalid_argument(
          "'" + path + "': entry '" + util::one_line(k->s, 80) + "' is a " +
          kind_name(v->kind) + ", not a tensor");
    std::string key = k->s;
    // DataParallel's prefix.
    if (key.compare(0, 7, "module.") == 0) {
      key = key.substr(7);
      prefixed = true;
    }
    out.tensors.emplace_back(std::move(key), materialise(v, path));
  }
  if (prefixed)
    out.form += ", module. prefix";
  return out;
}

std::map<std::string, at::Tensor>
read_pytorch_tensors(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (auto& [k, v] : read_torch_file(path).tensors)
    if (!out.emplace(k, v).second)
      throw std::invalid_argument(
          "'" + path + "' names '" + util::one_line(k, 80) +
          "' twice (with and without module.)");
  return out;
}

} // namespace cakes::models
