// Payment-code lines from the taxi terminal's code reader (lane/payment_code.h).
#include "lane/payment_code.h"

namespace lanegate::lane {

Result<std::string> validate_payment_code(std::string_view line) {
  // The messages state the rule and the length only: the code itself is a secret.
  if (line.size() != kPaymentCodeLength) {
    return fail(Errc::kInvalidArgument,
                "bad_length: a payment code has exactly " + std::to_string(kPaymentCodeLength) +
                    " digits, got " + std::to_string(line.size()) + " characters",
                "payment_code");
  }
  for (char c : line) {
    if (c < '0' || c > '9') {
      return fail(Errc::kInvalidArgument, "not_digits: a payment code is ASCII digits only",
                  "payment_code");
    }
  }
  const int prefix = (line[0] - '0') * 10 + (line[1] - '0');
  if (prefix < 10 || prefix > 15) {
    return fail(Errc::kInvalidArgument,
                "unknown_prefix: a WeChat payment code starts with 10..15", "payment_code");
  }
  return std::string(line);
}

std::string_view payment_code_reject_reason(const Error& error) {
  const std::string_view m = error.message;
  for (std::string_view reason : {"bad_length", "not_digits", "unknown_prefix"}) {
    if (m.starts_with(reason)) {
      return reason;
    }
  }
  return "not_digits";
}

void ReaderLineSplitter::feed(std::span<const std::uint8_t> bytes) {
  if (next_ready_ == ready_.size()) {
    ready_.clear();
    next_ready_ = 0;
  }
  for (std::uint8_t b : bytes) {
    if (b == '\r' || b == '\n') {
      if (discarding_) {
        ready_.push_back(Line{{}, true});
        discarding_ = false;
      } else if (!current_.empty()) {
        ready_.push_back(Line{std::move(current_), false});
      }
      current_.clear();
      continue;
    }
    if (discarding_) {
      continue;
    }
    if (current_.size() >= kMaxLineBytes) {
      current_.clear();
      discarding_ = true;
      continue;
    }
    current_.push_back(static_cast<char>(b));
  }
}

std::optional<ReaderLineSplitter::Line> ReaderLineSplitter::next() {
  if (next_ready_ >= ready_.size()) {
    return std::nullopt;
  }
  return std::move(ready_[next_ready_++]);
}

}  // namespace lanegate::lane
