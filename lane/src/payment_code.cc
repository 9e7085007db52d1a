// Rider token lines from the taxi terminal's code reader (lane/rider_token.h).
#include "lane/rider_token.h"

namespace lanegate::lane {

Result<std::string> validate_rider_token(std::string_view line) {
  if (line.size() < kMinRiderTokenLength) {
    return fail(Errc::kInvalidArgument,
                "too_short: a rider token has at least " + std::to_string(kMinRiderTokenLength) +
                    " characters",
                "token");
  }
  if (line.size() > kMaxRiderTokenLength) {
    return fail(Errc::kInvalidArgument,
                "too_long: a rider token has at most " + std::to_string(kMaxRiderTokenLength) +
                    " characters",
                "token");
  }
  for (char c : line) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    c == '_' || c == '-';
    if (!ok) {
      return fail(Errc::kInvalidArgument, "bad_character: a rider token is [0-9A-Za-z_-] only",
                  "token");
    }
  }
  return std::string(line);
}

std::string_view rider_token_reject_reason(const Error& error) {
  const std::string_view m = error.message;
  for (std::string_view reason : {"too_short", "too_long", "bad_character"}) {
    if (m.starts_with(reason)) {
      return reason;
    }
  }
  return "bad_character";
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
