#pragma once
// Wall-time text formats used on the wire and in records. Local time is a fixed
// UTC offset from config (China has no DST), never the process time zone.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/error.h"

namespace lanegate {

// A fixed offset east of UTC, in minutes (+480 for China Standard Time).
struct UtcOffset {
  int minutes = 480;
};

// "2026-11-22T13:29:35+08:00" (seconds precision).
std::string format_rfc3339(SystemTime t, UtcOffset offset);
// Accepts "YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)".
[[nodiscard]] Result<SystemTime> parse_rfc3339(std::string_view text);
// "2026-11-22" of the local day containing t.
std::string format_local_date(SystemTime t, UtcOffset offset);
// Start of the local day (00:00 at the offset) for "YYYY-MM-DD".
[[nodiscard]] Result<SystemTime> parse_local_date(std::string_view date, UtcOffset offset);

std::int64_t to_unix_seconds(SystemTime t);
SystemTime from_unix_seconds(std::int64_t s);

}  // namespace lanegate
