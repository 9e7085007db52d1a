#pragma once
// Readers and writers of wire text (Base64), written here rather than taken from core/, the
// gateway or the simulators: a test of an encoding must not share the code under test (a
// bug shared by encoder and decoder would pass).

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

// Standard Base64 with '=' padding.
inline std::string base64(std::string_view bytes) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  const auto at = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])); };
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = bytes.size();
    const std::uint32_t v = at(i) << 16 | (i + 1 < n ? at(i + 1) << 8 : 0) | (i + 2 < n ? at(i + 2) : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += i + 1 < n ? kAlphabet[v >> 6 & 63] : '=';
    out += i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  return out;
}

// SOI at the start and EOI at the end, with something between.
inline bool looks_like_jpeg(std::string_view b) {
  return b.size() > 4 && b.substr(0, 2) == "\xFF\xD8" && b.substr(b.size() - 2) == "\xFF\xD9";
}

}  // namespace lanegate::wire_test
