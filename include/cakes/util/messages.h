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

} // namespace cakes::util
