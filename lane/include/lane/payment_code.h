#pragma once
// The taxi terminal's code reader (a [[reader]] serial port): the passenger shows the
// provider app's payment code, the reader sends the code's text as one ASCII line
// ending in CR, LF or CR LF. This header holds the pure parts: the line splitter and
// the token rule, shared by the driver (reader_port), the simulator and the fuzz target.
//
// Token rule (ours; the provider's code format is not in the spec): 8..64 characters of
// [0-9A-Za-z_-], the account's openid as the provider's app encodes it. Anything else is
// rejected with a reason and never charged:
//   too_short | too_long | bad_character      (a complete line that breaks the rule)
//   overlong_line                             (more than kMaxLineBytes without an end of
//                                              line: dropped up to the next CR/LF)
// Empty lines (the LF of a CR LF, or a bare CR/LF) are not tokens and not errors.
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

inline constexpr std::size_t kMinRiderTokenLength = 8;
inline constexpr std::size_t kMaxRiderTokenLength = 64;

// ok -> the token; otherwise kInvalidArgument with field "token" and the reason
// (too_short, too_long, bad_character) as the message's first word.
[[nodiscard]] Result<std::string> validate_rider_token(std::string_view line);
// "too_short" | "too_long" | "bad_character" for a line validate_rider_token refuses.
std::string_view rider_token_reject_reason(const Error& error);

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
