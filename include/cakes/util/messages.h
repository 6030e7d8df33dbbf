// Error messages that quote outside input (a file's text, a JSON value, a
// library's message about either) stay one short line: a user must be able to
// read them, and a 60 KB line or a recursive dump of a hostile document is
// neither readable nor safe.
#pragma once

#include <cstddef>
#include <string>

namespace cakes::util {

// `text` on one line (control characters, newlines included, become spaces),
// cut to at most `max` characters, ending in "..." when cut.
std::string one_line(const std::string& text, std::size_t max = 160);

// A JSON value (nlohmann's json or ordered_json) quoted in a message: the
// type of an array or object, the short text of anything else. Never the
// dump of a structure: it recurses as deep as the document (a deeply nested
// file overflowed the stack) and can be megabytes long.
template <class Json>
std::string describe_json(const Json& v, std::size_t max = 40) {
  if (v.is_structured())
    return std::string("an ") + v.type_name();
  return one_line(v.dump(), max);
}

} // namespace cakes::util
