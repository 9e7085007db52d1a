#pragma once
// Money is an integer number of fen (1/100 CNY). There is no floating point anywhere
// in this type: parsing and formatting work on digits, arithmetic is checked and
// reports overflow instead of wrapping.

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace lanegate {

class Money {
 public:
  constexpr Money() = default;
  static constexpr Money from_fen(std::int64_t fen) { return Money(fen); }
  static constexpr Money zero() { return Money(0); }

  // Parses "12.34", "12.3", "12", "-0.50". Rules: optional leading '-', at least one
  // digit before the point, at most two digits after it, no '+', spaces, exponents or
  // thousands separators. More than two decimals is an error, never rounded.
  [[nodiscard]] static Result<Money> parse(std::string_view text);

  constexpr std::int64_t fen() const { return fen_; }
  constexpr bool is_zero() const { return fen_ == 0; }
  constexpr bool is_negative() const { return fen_ < 0; }

  // "12.34", "-0.05", "0.00": always two decimals.
  std::string to_string() const;

  [[nodiscard]] Result<Money> add(Money other) const;
  [[nodiscard]] Result<Money> sub(Money other) const;
  [[nodiscard]] Result<Money> mul(std::int64_t factor) const;
  [[nodiscard]] Result<Money> negate() const;

  constexpr auto operator<=>(const Money&) const = default;

 private:
  constexpr explicit Money(std::int64_t fen) : fen_(fen) {}
  std::int64_t fen_ = 0;
};

// Sums a range of Money with overflow checking.
template <typename Range>
[[nodiscard]] Result<Money> sum(const Range& values) {
  Money total;
  for (const Money& m : values) {
    auto next = total.add(m);
    if (!next) {
      return next;
    }
    total = *next;
  }
  return total;
}

}  // namespace lanegate
