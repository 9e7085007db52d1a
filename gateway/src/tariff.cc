#include "gateway/tariff.h"

#include <string>

namespace lanegate::gateway {
namespace {

using std::chrono::seconds;

constexpr std::int64_t kDay = 24 * 3600;

// Minute of the local day (0..1439) at unix second t.
int local_minute(std::int64_t t, UtcOffset offset) {
  std::int64_t local = t + static_cast<std::int64_t>(offset.minutes) * 60;
  std::int64_t in_day = local % kDay;
  if (in_day < 0) in_day += kDay;
  return static_cast<int>(in_day / 60);
}

bool is_day(const config::ParkingTariff& t, int minute) {
  if (t.day_start_minute <= t.night_start_minute) {
    return minute >= t.day_start_minute && minute < t.night_start_minute;
  }
  // Day period wraps midnight (unusual, but a valid configuration).
  return minute >= t.day_start_minute || minute < t.night_start_minute;
}

}  // namespace

Result<ParkingFee> parking_fee(const config::ParkingTariff& tariff, SystemTime entry, SystemTime exit,
                               UtcOffset offset) {
  if (exit < entry) {
    return fail(Errc::kInvalidArgument, "exit time is before entry time", "exit_time");
  }
  if (tariff.unit_minutes <= 0) {
    return fail(Errc::kInvalidArgument, "unit_minutes must be positive", "tariff.unit_minutes");
  }
  const std::int64_t start = to_unix_seconds(entry);
  const std::int64_t stay = to_unix_seconds(exit) - start;
  ParkingFee fee;
  if (stay <= static_cast<std::int64_t>(tariff.free_minutes) * 60) {
    fee.free_period = true;
    return fee;
  }
  const std::int64_t unit = static_cast<std::int64_t>(tariff.unit_minutes) * 60;
  Money total;
  for (std::int64_t window = 0; window < stay; window += kDay) {
    const std::int64_t window_len = std::min(kDay, stay - window);
    Money window_fee;
    for (std::int64_t off = 0; off < window_len; off += unit) {
      const bool partial = off + unit > window_len;
      // A partial unit exists only at the very end of the stay: full windows are a
      // whole number of seconds, units need not divide them, so a unit cut by a window
      // boundary (not the stay's end) is charged in full.
      if (partial && window + window_len == stay && tariff.rounding == "down") {
        break;
      }
      const int minute = local_minute(start + window + off, offset);
      const Money rate = is_day(tariff, minute) ? tariff.day_rate : tariff.night_rate;
      auto next = window_fee.add(rate);
      if (!next) return std::unexpected(next.error());
      window_fee = *next;
      fee.charged_seconds += partial && tariff.rounding == "down" ? 0 : std::min(unit, window_len - off);
    }
    if (window_fee > tariff.daily_cap) {
      window_fee = tariff.daily_cap;
      ++fee.capped_windows;
    }
    auto next = total.add(window_fee);
    if (!next) return std::unexpected(next.error());
    total = *next;
  }
  fee.amount = total;
  return fee;
}

Result<Money> toll_fare(const config::TollTariff& tariff, std::uint32_t entry_station, std::uint32_t exit_station,
                        int vehicle_class) {
  for (const auto& f : tariff.fares) {
    if (f.entry_station == entry_station && f.exit_station == exit_station && f.vehicle_class == vehicle_class) {
      return f.fare;
    }
  }
  return fail(Errc::kNotFound,
              "tariff '" + tariff.id + "' has no fare from station " + std::to_string(entry_station) +
                  " to station " + std::to_string(exit_station) + " for vehicle class " +
                  std::to_string(vehicle_class),
              "tariff.toll.fare");
}

}  // namespace lanegate::gateway
