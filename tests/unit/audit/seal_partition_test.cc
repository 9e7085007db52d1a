// Day seals partition the ledger: each seal covers the records after the previous seal's
// last one, so every record is sealed exactly once even when the wall clock steps back
// across midnight (issue 13, money-integrity defect 10).
#include <algorithm>
#include <chrono>
#include <numeric>

#include "audit_fixture.h"

namespace lanegate::gateway::audit::testing {
namespace {

using std::chrono::seconds;

constexpr std::string_view kDay = "2026-11-22";
constexpr std::string_view kNextDay = "2026-11-23";

class SealPartitionTest : public AuditTest {
 protected:
  // Appends a 100-fen settled charge stamped with the fake clock's current wall time, as
  // the gateway does (the record's time is the clock's, right or wrong).
  void settle_now(std::string out_trade_no) {
    append_one(
        event(ledger::Kind::kChargeSettled, std::move(out_trade_no), 100, clock_.now(), "SUCCESS"));
  }

  // The defect's ledger: four 100-fen charges around midnight 22/23 (+08:00) while the
  // clock steps back 30 s across midnight between the second and the third.
  //   seq 1  22nd 23:59:50   seq 2  23rd 00:00:10   (clock steps back 30 s)
  //   seq 3  22nd 23:59:40   seq 4  23rd 00:00:20
  void clock_steps_back_across_midnight() {
    clock_.set_wall(at("2026-11-22T23:59:50+08:00"));
    settle_now("N1");
    clock_.advance(seconds(20));
    settle_now("N2");
    clock_.set_wall(clock_.now() - seconds(30));
    settle_now("N3");
    clock_.advance(seconds(40));
    settle_now("N4");
  }

  static std::int64_t settled_fen(const Seal& s) {
    auto it = s.totals.by_kind.find("charge_settled");
    return it == s.totals.by_kind.end() ? 0 : it->second.amount_fen;
  }
};

TEST_F(SealPartitionTest, ClockSteppedBackAcrossMidnightSealsEveryRecordOnce) {
  clock_steps_back_across_midnight();
  // The end-of-day job after the 23rd: both days are sealed, oldest first.
  clock_.set_wall(at("2026-11-24T00:01:00+08:00"));
  auto made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made) << made.error().message;
  ASSERT_EQ(made->size(), 2u);
  const Seal& day = (*made)[0].seal;
  const Seal& next = (*made)[1].seal;
  EXPECT_EQ(day.date, kDay);
  EXPECT_EQ(next.date, kNextDay);

  // Each of seq 1..4 lies in exactly one seal.
  for (std::int64_t seq = 1; seq <= 4; ++seq) {
    const int in = (seq >= day.first_seq && seq <= day.last_seq ? 1 : 0) +
                   (seq >= next.first_seq && seq <= next.last_seq ? 1 : 0);
    EXPECT_EQ(in, 1) << "seq " << seq << " is in " << in << " seals: " << kDay << " covers "
                     << day.first_seq << ".." << day.last_seq << ", " << kNextDay << " covers "
                     << next.first_seq << ".." << next.last_seq;
  }
  // The two seals link into one chain and count the 400 fen once.
  EXPECT_EQ(next.first_seq, day.last_seq + 1);
  EXPECT_EQ(next.first_prev_hash, day.last_hash);
  EXPECT_EQ(day.totals.record_count + next.totals.record_count, 4);
  EXPECT_EQ(settled_fen(day) + settled_fen(next), 400);

  // Each package still verifies on its own.
  for (const auto& s : *made) {
    const auto pkg = dir_.path() / ("pkg-" + s.seal.date);
    ASSERT_TRUE(export_package(*db_, s, pkg));
    const auto report = verify_package(pkg, key_->public_key());
    EXPECT_TRUE(report.ok()) << report.to_text();
  }
}

}  // namespace
}  // namespace lanegate::gateway::audit::testing
