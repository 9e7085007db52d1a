#pragma once
// Errors are values across module boundaries: every fallible call returns
// Result<T> (std::expected<T, Error>). Each outside error space (errno, SQLite,
// OpenSSL, libmodbus) is translated into an Error in exactly one place.

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace lanegate {

enum class Errc {
  kInvalidArgument,  // input broke a rule; `field` names the field
  kOutOfRange,       // a value outside its allowed range
  kOverflow,         // arithmetic would overflow (money)
  kParse,            // bytes that do not parse (JSON, TOML, frames)
  kNotFound,
  kAlreadyExists,
  kIo,           // errno-level failure (file, socket, serial port)
  kDatabase,     // SQLite failure
  kDiskFull,     // SQLite SQLITE_FULL / ENOSPC: no commit possible
  kBusy,         // SQLite busy/locked beyond the busy timeout
  kQueueFull,    // the outbox refused an item: limits reached
  kTimeout,      // a deadline passed
  kUnavailable,  // peer not reachable (uplink down, device silent)
  kPermission,   // unauthorised, forbidden, or a file with unsafe mode
  kCrypto,       // signature, key or cipher failure
  kProtocol,     // a peer broke its protocol
  kRejected,     // a peer answered with a definite refusal
  kInternal,
};

// Stable lower-case name, used in logs and metric labels.
std::string_view errc_name(Errc code);

struct Error {
  Errc code = Errc::kInternal;
  std::string message;  // human-readable, names the rule that failed
  std::string field;    // optional: the field/key the error is about

  // "field: message" when a field is set, else the message.
  std::string to_string() const;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

[[nodiscard]] inline std::unexpected<Error> fail(Errc code, std::string message,
                                                 std::string field = {}) {
  return std::unexpected<Error>(Error{code, std::move(message), std::move(field)});
}

}  // namespace lanegate
