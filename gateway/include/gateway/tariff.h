#pragma once
// Fees from the configured tariffs. Pure functions of their inputs: no clock, no I/O,
// integer fen throughout.
//
// Parking rules (config::ParkingTariff), in the order they apply:
//  1. A stay of at most `free_minutes` is free (exactly at the limit is still free).
//     A longer stay is charged from its start: the free minutes are a grace period,
//     not a deduction.
//  2. The stay is cut into 24-hour windows starting at entry. Within a window, charging
//     units of `unit_minutes` are laid from the window's start; each unit costs the
//     rate in force at the unit's start (day rate from `day_start_minute` to
//     `night_start_minute` local time, night rate otherwise). A unit that straddles the
//     day/night boundary therefore costs exactly one rate — never a pro-rata fraction.
//  3. The last, partial unit of the stay is charged when `rounding` is "up" and free
//     when it is "down".
//  4. Each window costs at most `daily_cap`.
// Local time is the gateway's fixed UTC offset (China has no DST).
//
// Toll: the fare is looked up by (entry station, exit station, vehicle class); an
// unknown combination is an error naming it, never a guess.

#include <chrono>
#include <cstdint>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/money.h"
#include "core/time_format.h"

namespace lanegate::gateway {

struct ParkingFee {
  Money amount;
  std::int64_t charged_seconds = 0;  // duration the fee covers (0 when free)
  bool free_period = false;          // within the free minutes
  int capped_windows = 0;            // 24-hour windows that hit the daily cap
};

// REQUIRES: tariff passed config validation (unit_minutes > 0, rates >= 0).
[[nodiscard]] Result<ParkingFee> parking_fee(const config::ParkingTariff& tariff, SystemTime entry, SystemTime exit,
                                             UtcOffset offset);

[[nodiscard]] Result<Money> toll_fare(const config::TollTariff& tariff, std::uint32_t entry_station,
                                      std::uint32_t exit_station, int vehicle_class);

}  // namespace lanegate::gateway
