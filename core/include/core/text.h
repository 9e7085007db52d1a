#pragma once
// Small text helpers shared by the modules (UTF-8).

#include <cstddef>
#include <string_view>

namespace lanegate {

// Code points of UTF-8 text: continuation bytes are not counted. Platforms and printers
// that limit "characters" count these, not bytes.
std::size_t code_points(std::string_view text);

}  // namespace lanegate
