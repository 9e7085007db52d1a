#pragma once
// The taxi terminal's code reader (a [[reader]] serial port): the passenger shows the
// provider app's payment code (付款码), the reader sends its digits as one ASCII line
// ending in CR, LF or CR LF. This header holds the pure parts: the line splitter and the
// payment-code rule, shared by the driver (reader_port), the simulator and the fuzz target.
//
// Payment-code rule (spec payment-provider-wechatpay-v3.md, "Payment code"): auth_code is
// exactly 18 ASCII digits and a WeChat code starts with 10..15 (15: Hong Kong wallets).
// Anything else is rejected with a reason and never charged:
//   bad_length | not_digits | unknown_prefix  (a complete line that breaks the rule)
//   overlong_line                             (more than kMaxLineBytes without an end of
//                                              line: dropped up to the next CR/LF)
// Empty lines (the LF of a CR LF, or a bare CR/LF) are not codes and not errors.
// A code pays once within about a minute: it is a secret. Error messages never contain
// it, nor any part of it.
//
// Threading: plain values; one splitter per port thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace lanegate::lane {

inline constexpr std::size_t kPaymentCodeLength = 18;

// ok -> the code; otherwise kInvalidArgument with field "payment_code" and the reason
// (bad_length, not_digits, unknown_prefix) as the message's first word.
[[nodiscard]] Result<std::string> validate_payment_code(std::string_view line);
// "bad_length" | "not_digits" | "unknown_prefix" for a line validate_payment_code refuses.
std::string_view payment_code_reject_reason(const Error& error);

// Splits a byte stream into lines (CR, LF, CR LF). Bounded memory: at most
// kMaxLineBytes are buffered.
class ReaderLineSplitter {
 public:
  static constexpr std::size_t kMaxLineBytes = 256;

  struct Line {
    std::string text;       // without the line end
    bool overlong = false;  // the line exceeded kMaxLineBytes: text is empty
  };

  // Appends bytes; complete lines come out of next().
  void feed(std::span<const std::uint8_t> bytes);
  std::optional<Line> next();
  // Bytes of an unfinished line (a reader that stopped mid-line).
  std::size_t partial_bytes() const { return current_.size(); }
  void clear_partial() {
    current_.clear();
    discarding_ = false;
  }

 private:
  std::string current_;
  bool discarding_ = false;  // inside an overlong line, until its end
  std::vector<Line> ready_;
  std::size_t next_ready_ = 0;
};

}  // namespace lanegate::lane
