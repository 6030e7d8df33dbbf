#include "cakes/util/pickle_check.h"

#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace cakes::util {

namespace {

std::string hex(unsigned char c) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

class Walker {
public:
  Walker(const void* data, std::size_t size, const std::string& name)
      : p_(static_cast<const unsigned char*>(data)), n_(size), name_(name) {}

  void run() {
    while (true) {
      if (at_ >= n_)
        fail("it ends without a STOP");
      const std::size_t op_at = at_;
      const unsigned char op = p_[at_++];
      if (op == '.')
        return;
      step(op, op_at);
    }
  }

private:
  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error(name_ + " is not a readable pickle: " + why);
  }

  const unsigned char* take(std::size_t k, std::size_t op_at) {
    if (k > n_ - at_)
      fail(
          "the opcode at byte " + std::to_string(op_at) +
          " runs past the end (" + std::to_string(k) + " bytes wanted, " +
          std::to_string(n_ - at_) + " left)");
    const unsigned char* q = p_ + at_;
    at_ += k;
    return q;
  }

  uint64_t little(std::size_t k, std::size_t op_at) {
    const unsigned char* q = take(k, op_at);
    uint64_t v = 0;
    for (std::size_t i = 0; i < k; ++i)
      v |= uint64_t(q[i]) << (8 * i);
    return v;
  }

  void line(std::size_t op_at) {
    const void* nl = std::memchr(p_ + at_, '\n', n_ - at_);
    if (!nl)
      fail("the opcode at byte " + std::to_string(op_at) + " has no newline");
    at_ = static_cast<const unsigned char*>(nl) - p_ + 1;
  }

  // A length-prefixed argument: the length must fit in what is left.
  void sized(std::size_t width, std::size_t op_at) {
    const uint64_t len = little(width, op_at);
    if (len > n_ - at_)
      fail(
          "a length of " + std::to_string(len) + " at byte " +
          std::to_string(op_at) + " runs past the end (" +
          std::to_string(n_ - at_) + " bytes left)");
    at_ += len;
  }

  // Memo indices are assigned in order: a PUT or GET can name at most the
  // next one.
  void memo(uint64_t index, bool put, std::size_t op_at) {
    if (index > memoised_ || (!put && index == memoised_))
      fail(
          "memo index " + std::to_string(index) + " at byte " +
          std::to_string(op_at) + " with " + std::to_string(memoised_) +
          " objects memoised");
    if (put && index == memoised_)
      ++memoised_;
  }

  void step(unsigned char op, std::size_t at) {
    switch (op) {
    // No argument.
    case '(':
    case '0':
    case '1':
    case '2':
    case 'N':
    case 'Q':
    case 'R':
    case 'a':
    case 'b':
    case 'd':
    case '}':
    case 'e':
    case 'l':
    case ']':
    case 'o':
    case 's':
    case 't':
    case ')':
    case 'u':
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x81:
    case 0x8f:
    case 0x90:
    case 0x91:
    case 0x92:
    case 0x93:
      return;
    case 0x94: // MEMOIZE
      memo(memoised_, true, at);
      return;
    // A line, two for GLOBAL and INST.
    case 'F':
    case 'I':
    case 'L':
    case 'P':
    case 'S':
    case 'V':
      line(at);
      return;
    case 'c':
    case 'i':
      line(at);
      line(at);
      return;
    case 'g': // GET, decimal
    case 'p': // PUT, decimal
    {
      const std::size_t start = at_;
      line(at);
      const std::string digits(
          reinterpret_cast<const char*>(p_ + start), at_ - start - 1);
      if (digits.empty() || digits.size() > 18 ||
          digits.find_first_not_of("0123456789") != std::string::npos)
        fail("a bad memo index at byte " + std::to_string(at));
      memo(std::stoull(digits), op == 'p', at);
      return;
    }
    // Fixed-size arguments.
    case 'K':
    case 0x80:
    case 0x82:
      take(1, at);
      return;
    case 'M':
    case 0x83:
      take(2, at);
      return;
    case 'J':
    case 0x84:
      take(4, at);
      return;
    case 'G':
    case 0x95:
      take(8, at);
      return;
    case 'h':
      memo(little(1, at), false, at);
      return;
    case 'j':
      memo(little(4, at), false, at);
      return;
    case 'q':
      memo(little(1, at), true, at);
      return;
    case 'r':
      memo(little(4, at), true, at);
      return;
    // Length-prefixed arguments.
    case 'U':
    case 'C':
    case 0x8c:
    case 0x8a:
      sized(1, at);
      return;
    case 'T':
    case 'X':
    case 'B':
    case 0x8b:
      sized(4, at);
      return;
    case 0x8d:
    case 0x8e:
      sized(8, at);
      return;
    default:
      fail("unknown opcode " + hex(op) + " at byte " + std::to_string(at));
    }
  }

  const unsigned char* p_;
  std::size_t n_;
  const std::string& name_;
  std::size_t at_ = 0;
  uint64_t memoised_ = 0;
};

} // namespace

void verify_pickle(
    const void* data, std::size_t size, const std::string& name) {
  Walker(data, size, name).run();
}

} // namespace cakes::util
