#pragma once
// Readers for what the simulated cameras put on the wire, written here rather than taken
// from core/ or the gateway: a test of the simulator's encoding must not share the code
// under test (a bug shared by encoder and decoder would pass).

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace lanegate::wire_test {

// Standard Base64 (RFC 4648 alphabet, '=' ends the text); a character outside the alphabet
// fails the calling test and gives "".
inline std::string unbase64(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const auto v = kAlphabet.find(c);
    if (v == std::string_view::npos) {
      ADD_FAILURE() << "not Base64: " << c;
      return {};
    }
    acc = (acc << 6 | static_cast<std::uint32_t>(v)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(acc >> bits & 0xFF));
    }
  }
  return out;
}

// SOI at the start and EOI at the end, with something between.
inline bool looks_like_jpeg(std::string_view b) {
  return b.size() > 4 && b.substr(0, 2) == "\xFF\xD8" && b.substr(b.size() - 2) == "\xFF\xD9";
}

}  // namespace lanegate::wire_test
