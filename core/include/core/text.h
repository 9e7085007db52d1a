#pragma once
// Small text helpers shared by the modules (UTF-8).

#include <cstddef>
#include <string_view>

namespace lanegate {

// Code points of UTF-8 text: continuation bytes are not counted. Platforms and printers
// that limit "characters" count these, not bytes.
std::size_t code_points(std::string_view text);

// The longest prefix of `text` with at most `n` code points (never half a UTF-8 sequence).
std::string_view first_code_points(std::string_view text, std::size_t n);

// True when the text holds a C0 control byte or DEL (they would act on a terminal, a log
// viewer or a printer rather than print).
bool has_control_chars(std::string_view text);

}  // namespace lanegate
