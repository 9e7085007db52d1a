#include "core/error.h"

namespace lanegate {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kOutOfRange: return "out_of_range";
    case Errc::kOverflow: return "overflow";
    case Errc::kParse: return "parse";
    case Errc::kNotFound: return "not_found";
    case Errc::kAlreadyExists: return "already_exists";
    case Errc::kIo: return "io";
    case Errc::kDatabase: return "database";
    case Errc::kDiskFull: return "disk_full";
    case Errc::kBusy: return "busy";
    case Errc::kQueueFull: return "queue_full";
    case Errc::kTimeout: return "timeout";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kPermission: return "permission";
    case Errc::kCrypto: return "crypto";
    case Errc::kProtocol: return "protocol";
    case Errc::kRejected: return "rejected";
    case Errc::kInternal: return "internal";
  }
  return "unknown";
}

std::string Error::to_string() const {
  if (field.empty()) {
    return message;
  }
  return field + ": " + message;
}

}  // namespace lanegate
