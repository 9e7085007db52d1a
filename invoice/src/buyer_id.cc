#include "invoice/buyer_id.h"

#include <cstdlib>

#include "core/text.h"

namespace lanegate::invoice {
namespace {

constexpr int kWeights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};

int alphabet_value(char c) {
  auto pos = kCreditCodeAlphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

std::string normalise(std::string_view input) {
  std::string out;
  out.reserve(input.size());
  for (char c : input) {
    if (c == ' ' || c == '\t') {
      continue;
    }
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
    out.push_back(c);
  }
  return out;
}

// Printable form of the character at a code-point position (whole UTF-8 sequence).
std::string char_at(std::string_view s, std::size_t byte_index) {
  std::size_t end = byte_index + 1;
  while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) {
    ++end;
  }
  return std::string(s.substr(byte_index, end - byte_index));
}

}  // namespace

char credit_code_check_char(std::string_view first17) {
  if (first17.size() != 17) {
    std::abort();
  }
  int sum = 0;
  for (std::size_t i = 0; i < 17; ++i) {
    const int v = alphabet_value(first17[i]);
    if (v < 0) {
      std::abort();
    }
    sum += v * kWeights[i];
  }
  int c = 31 - sum % 31;
  if (c == 31) {
    c = 0;
  }
  return kCreditCodeAlphabet[static_cast<std::size_t>(c)];
}

Result<std::string> validate_buyer_id(std::string_view input,
                                      std::span<const std::string> allow_list) {
  const std::string code = normalise(input);
  const std::size_t len = code_points(code);
  if (len != 18) {
    return fail(Errc::kInvalidArgument,
                "length: a unified social credit code has 18 characters, got " +
                    std::to_string(len),
                "buyer_tax_id");
  }
  std::size_t position = 0;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if ((static_cast<unsigned char>(code[i]) & 0xC0) == 0x80) {
      continue;
    }
    ++position;
    if (alphabet_value(code[i]) < 0 || static_cast<unsigned char>(code[i]) >= 0x80) {
      return fail(Errc::kInvalidArgument,
                  "alphabet: position " + std::to_string(position) + " is '" + char_at(code, i) +
                      "', allowed are 0-9 and A-Z without I, O, S, V, Z",
                  "buyer_tax_id");
    }
  }
  // From here the code is 18 ASCII characters.
  for (std::size_t i = 2; i < 8; ++i) {
    if (code[i] < '0' || code[i] > '9') {
      return fail(Errc::kInvalidArgument,
                  "region code: positions 3-8 must be digits, position " + std::to_string(i + 1) +
                      " is '" + std::string(1, code[i]) + "'",
                  "buyer_tax_id");
    }
  }
  const char expected = credit_code_check_char(std::string_view(code).substr(0, 17));
  if (code[17] != expected) {
    for (const std::string& allowed : allow_list) {
      if (normalise(allowed) == code) {
        return code;
      }
    }
    return fail(Errc::kInvalidArgument,
                "check character: position 18 should be '" + std::string(1, expected) +
                    "', got '" + std::string(1, code[17]) +
                    "' (a typing error? if the code is genuine, the operator can allow-list it)",
                "buyer_tax_id");
  }
  return code;
}

}  // namespace lanegate::invoice
