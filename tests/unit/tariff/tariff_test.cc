#include "gateway/tariff.h"

#include <gtest/gtest.h>

namespace lanegate::gateway {
namespace {

using namespace std::chrono;

constexpr UtcOffset kChina{480};

// Local China time on 2026-11-22 (a Sunday; no DST anywhere in China).
SystemTime local(int day, int hour, int minute, int second = 0) {
  return *parse_rfc3339("2026-11-" + std::to_string(day) + "T00:00:00+08:00") + hours(hour) + minutes(minute) +
         seconds(second);
}

config::ParkingTariff lot() {
  config::ParkingTariff t;
  t.id = "lot";
  t.free_minutes = 15;
  t.unit_minutes = 30;
  t.day_rate = Money::from_fen(300);
  t.night_rate = Money::from_fen(100);
  t.day_start_minute = 8 * 60;
  t.night_start_minute = 20 * 60;
  t.daily_cap = Money::from_fen(3000);
  t.rounding = "up";
  return t;
}

Money fee(const config::ParkingTariff& t, SystemTime in, SystemTime out, UtcOffset off = kChina) {
  auto f = parking_fee(t, in, out, off);
  EXPECT_TRUE(f.has_value()) << f.error().message;
  return f ? f->amount : Money::from_fen(-1);
}

TEST(ParkingTariff, ExactlyAtTheFreeLimitIsFreeAndOneSecondMoreIsCharged) {
  const auto t = lot();
  auto at_limit = parking_fee(t, local(22, 10, 0), local(22, 10, 15), kChina);
  ASSERT_TRUE(at_limit);
  EXPECT_TRUE(at_limit->free_period);
  EXPECT_EQ(at_limit->amount, Money::zero());
  EXPECT_EQ(fee(t, local(22, 10, 0), local(22, 10, 15, 1)), Money::from_fen(300));
  EXPECT_EQ(fee(t, local(22, 10, 0), local(22, 10, 0)), Money::zero());
}

TEST(ParkingTariff, WholeAndPartialUnitsAtTheDayRate) {
  const auto t = lot();
  EXPECT_EQ(fee(t, local(22, 10, 0), local(22, 12, 0)), Money::from_fen(4 * 300));
  EXPECT_EQ(fee(t, local(22, 10, 0), local(22, 12, 0, 1)), Money::from_fen(5 * 300));
  auto down = t;
  down.rounding = "down";
  EXPECT_EQ(fee(down, local(22, 10, 0), local(22, 12, 29)), Money::from_fen(4 * 300));
}

TEST(ParkingTariff, AUnitCostsTheRateInForceAtItsStart) {
  const auto t = lot();
  // 19:45 -> 20:30: units start 19:45 (day) and 20:15 (night).
  EXPECT_EQ(fee(t, local(22, 19, 45), local(22, 20, 30)), Money::from_fen(300 + 100));
  // 07:50 -> 08:20: first unit starts at night, no second unit.
  EXPECT_EQ(fee(t, local(22, 7, 50), local(22, 8, 20)), Money::from_fen(100));
  // 07:50 -> 08:21: the second unit starts at 08:20, day.
  EXPECT_EQ(fee(t, local(22, 7, 50), local(22, 8, 21)), Money::from_fen(100 + 300));
}

TEST(ParkingTariff, MidnightCrossingStaysAtTheNightRate) {
  const auto t = lot();
  // 23:40 -> 00:40 next day: two night units.
  EXPECT_EQ(fee(t, local(22, 23, 40), local(23, 0, 40)), Money::from_fen(200));
  // Across a month end too.
  EXPECT_EQ(fee(t, *parse_rfc3339("2026-11-30T23:40:00+08:00"), *parse_rfc3339("2026-12-01T00:40:00+08:00")),
            Money::from_fen(200));
}

TEST(ParkingTariff, DailyCapAppliesPer24HoursFromEntry) {
  const auto t = lot();
  // One full 24 h window: 24 day units (7200) + 24 night units (2400) > cap 3000.
  auto one = parking_fee(t, local(22, 10, 0), local(23, 10, 0), kChina);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->amount, Money::from_fen(3000));
  EXPECT_EQ(one->capped_windows, 1);
  // Three days and one more unit: 3 caps + one day unit at 10:00 on day 4.
  EXPECT_EQ(fee(t, local(22, 10, 0), local(25, 10, 1)), Money::from_fen(3 * 3000 + 300));
  // A window under the cap is not raised to it.
  EXPECT_EQ(fee(t, local(22, 21, 0), local(22, 23, 0)), Money::from_fen(400));
}

TEST(ParkingTariff, UsesTheConfiguredOffsetNotTheProcessTimeZone) {
  const auto t = lot();
  const SystemTime in = *parse_rfc3339("2026-11-22T11:00:00Z");  // 19:00 in China, 11:00 in UTC
  const SystemTime out = in + hours(1);
  EXPECT_EQ(fee(t, in, out, UtcOffset{480}), Money::from_fen(600));   // 19:00-20:00 China: day
  EXPECT_EQ(fee(t, in, out, UtcOffset{0}), Money::from_fen(600));     // 11:00 UTC: day
  EXPECT_EQ(fee(t, in + hours(1), out + hours(1), UtcOffset{480}), Money::from_fen(200));  // 20:00: night
}

TEST(ParkingTariff, RejectsExitBeforeEntry) {
  auto f = parking_fee(lot(), local(22, 10, 0), local(22, 9, 0), kChina);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().field, "exit_time");
}

TEST(TollTariff, LooksUpTheFareAndNamesAnUnknownPair) {
  config::TollTariff t;
  t.id = "g4";
  t.fares.push_back({1001, 2002, 1, Money::from_fen(4500)});
  t.fares.push_back({1001, 2002, 2, Money::from_fen(6800)});
  EXPECT_EQ(*toll_fare(t, 1001, 2002, 1), Money::from_fen(4500));
  EXPECT_EQ(*toll_fare(t, 1001, 2002, 2), Money::from_fen(6800));
  auto missing = toll_fare(t, 1001, 2003, 1);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("1001"), std::string::npos);
  EXPECT_NE(missing.error().message.find("2003"), std::string::npos);
  EXPECT_FALSE(toll_fare(t, 1001, 2002, 3));
}

}  // namespace
}  // namespace lanegate::gateway
