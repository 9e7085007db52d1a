// The claim-code guess limit (invoice/guess_limit.h): window and lockout per client key,
// a bounded table, and what a full table forgets first.
#include "invoice/guess_limit.h"

#include <gtest/gtest.h>

#include <string>

#include "core/metrics.h"

namespace lanegate::invoice {
namespace {

using namespace std::chrono_literals;

CodeGuessLimit::Policy small_table(std::size_t max_clients) {
  CodeGuessLimit::Policy p;
  p.max_clients = max_clients;
  return p;
}

std::int64_t evictions_metric() {
  return std::max<std::int64_t>(
      0, metrics::Registry::global().value("lanegate_invoice_claim_code_evictions_total"));
}

TEST(CodeGuessLimit, FifthMissWithinTheWindowLocksForTheLockout) {
  FakeClock clock;
  CodeGuessLimit limit(clock, {});
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(limit.record_miss("10.0.0.9"));
    clock.advance(100s);
  }
  EXPECT_FALSE(limit.retry_after("10.0.0.9"));
  EXPECT_TRUE(limit.record_miss("10.0.0.9"));  // 5 misses within 400 s
  EXPECT_EQ(limit.retry_after("10.0.0.9"), 900s);
  clock.advance(1500ms);
  EXPECT_EQ(limit.retry_after("10.0.0.9"), 899s);  // rounded up, never "0 s"
  EXPECT_FALSE(limit.retry_after("10.0.0.8"));
  clock.advance(898500ms);
  EXPECT_FALSE(limit.retry_after("10.0.0.9"));
}

TEST(CodeGuessLimit, MissesOutsideTheWindowStartItAfresh) {
  FakeClock clock;
  CodeGuessLimit limit(clock, {});
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(limit.record_miss("k"));
  }
  clock.advance(600s);  // the window is over: the 5th miss is the first of a new one
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(limit.record_miss("k"));
  }
  EXPECT_TRUE(limit.record_miss("k"));
}

// Lockouts are measured on the steady clock: an NTP step of the wall clock neither ends
// nor extends them.
TEST(CodeGuessLimit, WallClockStepsDoNotMoveALockout) {
  FakeClock clock;
  CodeGuessLimit limit(clock, {});
  for (int i = 0; i < 5; ++i) {
    (void)limit.record_miss("k");
  }
  clock.set_wall(clock.now() + 24h);
  EXPECT_EQ(limit.retry_after("k"), 900s);
  clock.set_wall(clock.now() - 48h);
  EXPECT_EQ(limit.retry_after("k"), 900s);
}

TEST(CodeGuessLimit, TheTableNeverHoldsMoreThanItsBoundAndCountsEvictions) {
  FakeClock clock;
  CodeGuessLimit limit(clock, small_table(8));
  const std::int64_t before = evictions_metric();
  for (int i = 0; i < 1000; ++i) {
    (void)limit.record_miss("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256));
    ASSERT_LE(limit.TEST_tracked(), 8u);
  }
  EXPECT_EQ(limit.TEST_evictions(), 992u);
  EXPECT_EQ(evictions_metric() - before, 992);
}

TEST(CodeGuessLimit, ExpiredKeysMakeRoomWithoutEvicting) {
  FakeClock clock;
  CodeGuessLimit limit(clock, small_table(4));
  for (int i = 0; i < 4; ++i) {
    (void)limit.record_miss("old-" + std::to_string(i));
  }
  clock.advance(600s);
  for (int i = 0; i < 4; ++i) {
    (void)limit.record_miss("new-" + std::to_string(i));
  }
  EXPECT_EQ(limit.TEST_tracked(), 4u);
  EXPECT_EQ(limit.TEST_evictions(), 0u);
}

// A guesser one miss short of the lockout floods the table with fresh keys to have its
// count forgotten: the flood only evicts keys with less at stake, so its next miss locks.
TEST(CodeGuessLimit, AFloodOfFreshKeysDoesNotResetAGuessersCount) {
  FakeClock clock;
  CodeGuessLimit limit(clock, small_table(100));
  for (int i = 0; i < 4; ++i) {
    (void)limit.record_miss("2001:db8:a::/64");
  }
  for (int i = 0; i < 10'000; ++i) {
    (void)limit.record_miss("2001:db8:b:" + std::to_string(i) + "::/64");
  }
  EXPECT_GT(limit.TEST_evictions(), 0u);
  EXPECT_TRUE(limit.record_miss("2001:db8:a::/64"));
  EXPECT_EQ(limit.retry_after("2001:db8:a::/64"), 900s);
}

TEST(CodeGuessLimit, AFloodOfKeysShortOfALockoutDoesNotLiftOne) {
  FakeClock clock;
  CodeGuessLimit limit(clock, small_table(100));
  for (int i = 0; i < 5; ++i) {
    (void)limit.record_miss("192.0.2.1");
  }
  // From now on fresh keys expire after the lockout does, so eviction by age alone would
  // drop the lockout first; keys that spent fewer wrong codes go before it.
  clock.advance(400s);
  for (int i = 0; i < 10'000; ++i) {
    const std::string key = "198.51." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    for (int j = 0; j < 4; ++j) {
      (void)limit.record_miss(key);
    }
  }
  EXPECT_EQ(limit.retry_after("192.0.2.1"), 500s);
}

// What it costs to have a lockout forgotten: the whole table full of keys that are locked
// themselves, i.e. max_clients x max_failures wrong codes, each counted where it was made.
TEST(CodeGuessLimit, OnlyATableOfLockedKeysEvictsALockout) {
  FakeClock clock;
  CodeGuessLimit limit(clock, small_table(4));
  for (int i = 0; i < 5; ++i) {
    (void)limit.record_miss("victim");
  }
  clock.advance(1s);
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 5; ++i) {
      (void)limit.record_miss("locked-" + std::to_string(k));
    }
  }
  ASSERT_TRUE(limit.retry_after("victim"));
  EXPECT_EQ(limit.TEST_evictions(), 0u);
  // A fifth key: every entry is locked, the one whose lockout ends first goes.
  (void)limit.record_miss("fifth");
  EXPECT_EQ(limit.TEST_evictions(), 1u);
  EXPECT_FALSE(limit.retry_after("victim"));
  for (int k = 0; k < 3; ++k) {
    EXPECT_TRUE(limit.retry_after("locked-" + std::to_string(k)));
  }
}

}  // namespace
}  // namespace lanegate::invoice
