#include "core/money.h"

#include <limits>

namespace lanegate {

Result<Money> Money::parse(std::string_view text) {
  auto bad = [&](std::string_view rule) {
    return fail(Errc::kParse, "\"" + std::string(text) + "\" is not an amount: " + std::string(rule));
  };
  if (text.empty()) {
    return bad("empty");
  }
  std::size_t i = 0;
  bool negative = false;
  if (text[0] == '-') {
    negative = true;
    i = 1;
  }
  std::size_t int_digits = 0;
  // Accumulate as a negative number so that INT64_MIN fen is representable.
  std::int64_t acc = 0;
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  auto push_digit = [&](char c) -> bool {
    const int d = c - '0';
    if (acc < (kMin + d) / 10) {
      return false;
    }
    acc = acc * 10 - d;
    return true;
  };
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++int_digits) {
    if (!push_digit(text[i])) {
      return fail(Errc::kOverflow, "\"" + std::string(text) + "\" is too large for an amount");
    }
  }
  if (int_digits == 0) {
    return bad("expected a digit before the decimal point");
  }
  std::size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++frac_digits) {
      if (frac_digits == 2) {
        return bad("at most two decimal places (fen)");
      }
      if (!push_digit(text[i])) {
        return fail(Errc::kOverflow, "\"" + std::string(text) + "\" is too large for an amount");
      }
    }
    if (frac_digits == 0) {
      return bad("expected digits after the decimal point");
    }
  }
  if (i != text.size()) {
    return bad("unexpected character '" + std::string(1, text[i]) + "'");
  }
  for (; frac_digits < 2; ++frac_digits) {
    if (!push_digit('0')) {
      return fail(Errc::kOverflow, "\"" + std::string(text) + "\" is too large for an amount");
    }
  }
  if (negative) {
    return Money(acc);
  }
  if (acc == kMin) {
    return fail(Errc::kOverflow, "\"" + std::string(text) + "\" is too large for an amount");
  }
  return Money(-acc);
}

std::string Money::to_string() const {
  // Work in unsigned magnitude so INT64_MIN formats correctly.
  const bool negative = fen_ < 0;
  const std::uint64_t mag = negative ? (~static_cast<std::uint64_t>(fen_) + 1) : static_cast<std::uint64_t>(fen_);
  std::string out = std::to_string(mag / 100);
  const unsigned frac = static_cast<unsigned>(mag % 100);
  out.push_back('.');
  out.push_back(static_cast<char>('0' + frac / 10));
  out.push_back(static_cast<char>('0' + frac % 10));
  return negative ? "-" + out : out;
}

Result<Money> Money::add(Money other) const {
  std::int64_t r;
  if (__builtin_add_overflow(fen_, other.fen_, &r)) {
    return fail(Errc::kOverflow, "amount overflow in " + to_string() + " + " + other.to_string());
  }
  return Money(r);
}

Result<Money> Money::sub(Money other) const {
  std::int64_t r;
  if (__builtin_sub_overflow(fen_, other.fen_, &r)) {
    return fail(Errc::kOverflow, "amount overflow in " + to_string() + " - " + other.to_string());
  }
  return Money(r);
}

Result<Money> Money::mul(std::int64_t factor) const {
  std::int64_t r;
  if (__builtin_mul_overflow(fen_, factor, &r)) {
    return fail(Errc::kOverflow, "amount overflow in " + to_string() + " * " + std::to_string(factor));
  }
  return Money(r);
}

Result<Money> Money::negate() const { return Money(0).sub(*this); }

}  // namespace lanegate
