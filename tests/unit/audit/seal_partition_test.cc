// Day seals partition the ledger: each seal covers the records after the previous seal's
// last one, so every record is sealed exactly once even when the wall clock steps back
// across midnight (issue 13, money-integrity defect 10).
#include <algorithm>
#include <chrono>
#include <numeric>

#include "audit_fixture.h"
#include "audit/audit_cli.h"

namespace lanegate::audit::testing {
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

  ChainReport verify_chain(std::vector<std::filesystem::path> dirs) {
    return verify_packages(dirs, key_->public_key());
  }

  static const VerifyProblem* continuity_problem(const ChainReport& r) {
    return r.continuity.empty() ? nullptr : &r.continuity.front();
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

TEST_F(SealPartitionTest, RecordTimedOutsideTheSealedDayIsAClockAnomaly) {
  clock_steps_back_across_midnight();
  clock_.set_wall(at("2026-11-24T00:01:00+08:00"));
  auto made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made && made->size() == 2u);
  // Seq 2 was stamped 00:00:10 on the 23rd but appended before seq 3 (stamped the 22nd):
  // the 22nd's seal takes it, once, and says so.
  const Seal& day = (*made)[0].seal;
  EXPECT_EQ(day.first_seq, 1);
  EXPECT_EQ(day.last_seq, 3);
  ASSERT_EQ(day.clock_anomalies.size(), 1u);
  EXPECT_EQ(day.clock_anomalies[0].seq, 2);
  EXPECT_EQ(day.clock_anomalies[0].time, at("2026-11-23T00:00:10+08:00"));
  EXPECT_NE((*made)[0].json.find("\"clock_anomalies\":[\n{\"seq\":2,"), std::string::npos)
      << (*made)[0].json;
  EXPECT_TRUE((*made)[1].seal.clock_anomalies.empty());

  // The verifier finds it in the records, reports it, and still accepts the package.
  const auto pkg = package((*made)[0], "pkg-22");
  const auto report = verify_package(pkg, key_->public_key());
  EXPECT_TRUE(report.ok()) << report.to_text();
  ASSERT_EQ(report.clock_anomalies.size(), 1u);
  EXPECT_EQ(report.clock_anomalies[0].seq, 2);
  const std::string text = report.to_text();
  EXPECT_NE(text.find("clock anomalies: 1 record(s) timed outside 2026-11-22"), std::string::npos)
      << text;
  EXPECT_NE(
      text.find("seq 2 at 2026-11-22T16:00:10.000Z (2026-11-23T00:00:10+08:00), after the day"),
      std::string::npos)
      << text;

  // A seal that keeps quiet about it is refused, even when properly signed.
  Seal quiet = day;
  quiet.clock_anomalies.clear();
  SignedSeal forged{quiet, encode_seal(quiet), {}};
  forged.signature = *key_->sign(forged.json);
  const auto quiet_report = verify_package(package(forged, "pkg-22-quiet"), key_->public_key());
  ASSERT_FALSE(quiet_report.ok());
  EXPECT_EQ(quiet_report.problems.front().check, "clock_anomalies");
  EXPECT_EQ(quiet_report.first_bad_seq(), 2);
}

TEST_F(SealPartitionTest, ConsecutivePackagesVerifyAsOneChain) {
  clock_steps_back_across_midnight();
  clock_.set_wall(at("2026-11-24T00:01:00+08:00"));
  auto made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made && made->size() == 2u);
  const auto a = package((*made)[0], "pkg-22");
  const auto b = package((*made)[1], "pkg-23");
  // In any order given: date order is chain order.
  const auto chain = verify_chain({b, a});
  EXPECT_TRUE(chain.ok()) << chain.to_text();
  EXPECT_NE(chain.to_text().find("OK: 2 settlement packages form one chain, seq 1..4"),
            std::string::npos)
      << chain.to_text();
}

TEST_F(SealPartitionTest, OverlappingPackagesAreRefused) {
  clock_steps_back_across_midnight();
  // What the sealer before issue 13 signed: each day from its smallest to its largest
  // stamped seq. Each package verifies alone; as a chain, seq 2..3 are sealed twice.
  const auto a = package(hand_seal(std::string(kDay), 1, 3), "pkg-22");
  const auto b = package(hand_seal(std::string(kNextDay), 2, 4), "pkg-23");
  EXPECT_TRUE(verify_package(a, key_->public_key()).ok());
  EXPECT_TRUE(verify_package(b, key_->public_key()).ok());
  const auto chain = verify_chain({a, b});
  ASSERT_FALSE(chain.ok());
  const VerifyProblem* p = continuity_problem(chain);
  ASSERT_NE(p, nullptr) << chain.to_text();
  EXPECT_EQ(p->seq, 2);
  EXPECT_EQ(chain.first_bad_seq(), 2);
  EXPECT_NE(p->message.find("overlap: seq 2..3 sealed twice"), std::string::npos) << p->message;
  EXPECT_NE(p->message.find(a.string() + " (2026-11-22 revision 1, seq 1..3)"), std::string::npos)
      << p->message;
  EXPECT_NE(p->message.find(b.string() + " (2026-11-23 revision 1, seq 2..4)"), std::string::npos)
      << p->message;
  EXPECT_NE(chain.to_text().find("FAILED: 2 settlement packages as one chain; first bad record: "
                                 "seq 2"),
            std::string::npos)
      << chain.to_text();
}

TEST_F(SealPartitionTest, PackagesLeavingAGapAreRefused) {
  clock_steps_back_across_midnight();
  const auto a = package(hand_seal(std::string(kDay), 1, 2), "pkg-22");
  const auto b = package(hand_seal(std::string(kNextDay), 4, 4), "pkg-23");
  const auto chain = verify_chain({a, b});
  ASSERT_FALSE(chain.ok());
  const VerifyProblem* p = continuity_problem(chain);
  ASSERT_NE(p, nullptr) << chain.to_text();
  EXPECT_EQ(p->seq, 3);
  EXPECT_NE(p->message.find("gap: seq 3 in no package"), std::string::npos) << p->message;
  EXPECT_NE(p->message.find(a.string()), std::string::npos) << p->message;
  EXPECT_NE(p->message.find(b.string()), std::string::npos) << p->message;
}

TEST_F(SealPartitionTest, PackagesOfAnotherChainAreRefused) {
  clock_steps_back_across_midnight();
  const auto a = package(hand_seal(std::string(kDay), 1, 3), "pkg-22");
  // Another ledger, signed with the same key, continuing at seq 4: the seqs fit, the
  // hashes do not.
  TempDir other_dir;
  auto other = Database::open(other_dir.path() / "other.db");
  ASSERT_TRUE(other);
  std::vector<std::string_view> steps;
  for (auto s : ledger::ledger_schema_steps()) steps.push_back(s);
  for (auto s : audit_schema_steps()) steps.push_back(s);
  ASSERT_TRUE(other->migrate(std::span<const std::string_view>(steps)));
  {
    auto txn = other->begin();
    ASSERT_TRUE(txn);
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(ledger::append(*txn, event(ledger::Kind::kChargeSettled, "O" + std::to_string(i),
                                             50, at("2026-11-23T10:00:00+08:00"), "SUCCESS")));
    }
    ASSERT_TRUE(txn->commit());
  }
  auto theirs = seal_day(*other, kNextDay, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(theirs) << theirs.error().message;
  // Take seq 4 alone: the 23rd of the other ledger, as if it continued ours.
  Seal s = theirs->seal;
  auto fourth = ledger::read(*other, ledger::SeqRange{4, 4});
  ASSERT_TRUE(fourth && fourth->size() == 1u);
  s.first_seq = 4;
  s.first_prev_hash = fourth->front().prev_hash;
  s.totals = SealTotals{};
  ASSERT_TRUE(s.totals.add(fourth->front()));
  SignedSeal four{s, encode_seal(s), {}};
  four.signature = *key_->sign(four.json);
  const auto b = other_dir.path() / "pkg-23";
  ASSERT_TRUE(export_package(*other, four, b));
  ASSERT_TRUE(verify_package(b, key_->public_key()).ok());
  const auto chain = verify_chain({a, b});
  ASSERT_FALSE(chain.ok());
  const VerifyProblem* p = continuity_problem(chain);
  ASSERT_NE(p, nullptr) << chain.to_text();
  EXPECT_EQ(p->seq, 4);
  EXPECT_NE(p->message.find("broken link"), std::string::npos) << p->message;
}

TEST_F(SealPartitionTest, TwoRevisionsOfOneDayAreNotAChain) {
  fill_day(kDay, 2);
  clock_.set_wall(at("2026-11-22T12:00:00+08:00"));
  const auto r1 = export_day(kDay);
  append_one(event(ledger::Kind::kRefund, "T1", 101, at("2026-11-22T13:00:00+08:00"), "REFUND"));
  const auto r2 = export_day(kDay);
  const auto chain = verify_chain({r1, r2});
  ASSERT_FALSE(chain.ok());
  const VerifyProblem* p = continuity_problem(chain);
  ASSERT_NE(p, nullptr);
  EXPECT_NE(p->message.find("two packages seal 2026-11-22"), std::string::npos) << p->message;
}

TEST_F(SealPartitionTest, CliVerifiesSeveralPackagesAsOneChain) {
  clock_steps_back_across_midnight();
  const auto a = package(hand_seal(std::string(kDay), 1, 3), "pkg-22");
  const auto b = package(hand_seal(std::string(kNextDay), 2, 4), "pkg-23");
  std::ostringstream out, err;
  const std::string hex = key_->public_key().hex();
  std::vector<std::string> args{"verify", a.string(), b.string(), "--pubkey", hex};
  EXPECT_EQ(audit_command(*db_, dir_.path(), 480, args, {}, out, err, clock_), 1);
  EXPECT_NE(err.str().find("continuity seq 2: overlap: seq 2..3 sealed twice"), std::string::npos)
      << err.str();
  // One package alone still verifies.
  out.str("");
  err.str("");
  args = {"verify", a.string(), "--pubkey", hex};
  EXPECT_EQ(audit_command(*db_, dir_.path(), 480, args, {}, out, err, clock_), 0) << err.str();
  EXPECT_NE(out.str().find("clock anomalies: 1 record(s)"), std::string::npos) << out.str();
}

// ---- how the sealer places each day ----

TEST_F(SealPartitionTest, RevisionsOfADayShareTheirStart) {
  fill_day("2026-11-21", 2, "A");
  fill_day(kDay, 2, "B");
  clock_.set_wall(at("2026-11-22T12:00:00+08:00"));
  auto noon = seal_day(*db_, kDay, UtcOffset{480}, *key_, clock_);  // seals the 21st first
  ASSERT_TRUE(noon) << noon.error().message;
  EXPECT_EQ(noon->seal.first_seq, 3);
  EXPECT_EQ(noon->seal.last_seq, 4);
  append_one(event(ledger::Kind::kRefund, "B1", 101, at("2026-11-22T20:00:00+08:00"), "REFUND"));
  clock_.set_wall(at("2026-11-23T00:01:00+08:00"));
  auto days = days_needing_seal(*db_, UtcOffset{480}, clock_.now());
  ASSERT_TRUE(days);
  EXPECT_EQ(*days, std::vector<std::string>{std::string(kDay)});
  auto made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made && made->size() == 1u);
  EXPECT_EQ((*made)[0].seal.revision, 2);
  EXPECT_EQ((*made)[0].seal.first_seq, 3);
  EXPECT_EQ((*made)[0].seal.first_prev_hash, noon->seal.first_prev_hash);
  EXPECT_EQ((*made)[0].seal.last_seq, 5);
}

TEST_F(SealPartitionTest, ASealedDayIsFinalOnceALaterDayIsSealed) {
  fill_day("2026-11-21", 2, "A");
  fill_day(kDay, 2, "B");
  clock_.set_wall(at("2026-11-23T00:01:00+08:00"));
  ASSERT_TRUE(seal_pending_days(*db_, UtcOffset{480}, *key_, clock_));
  // The clock is set back a whole day and a record stamped the 21st is written: the 21st
  // is final (the 22nd is sealed after it), so the first date still open takes the record,
  // as an anomaly before that day: here a new revision of the 22nd.
  append_one(
      event(ledger::Kind::kChargeSettled, "LATE", 300, at("2026-11-21T23:00:00+08:00"), "SUCCESS"));
  auto again = seal_day(*db_, "2026-11-21", UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->seal.revision, 1);
  EXPECT_EQ(again->seal.last_seq, 2);
  append_one(
      event(ledger::Kind::kChargeSettled, "C", 100, at("2026-11-23T08:00:00+08:00"), "SUCCESS"));
  clock_.set_wall(at("2026-11-24T00:01:00+08:00"));
  auto made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made) << made.error().message;
  ASSERT_EQ(made->size(), 2u);
  const Seal& day = (*made)[0].seal;
  EXPECT_EQ(day.date, kDay);
  EXPECT_EQ(day.revision, 2);
  EXPECT_EQ(day.first_seq, 3);
  EXPECT_EQ(day.last_seq, 5);
  ASSERT_EQ(day.clock_anomalies.size(), 1u);
  EXPECT_EQ(day.clock_anomalies[0].seq, 5);
  const Seal& next = (*made)[1].seal;
  EXPECT_EQ(next.date, kNextDay);
  EXPECT_EQ(next.first_seq, 6);
  EXPECT_EQ(next.last_seq, 6);
  // Now the 22nd is final too: a record stamped with it goes to the 23rd.
  append_one(event(ledger::Kind::kChargeSettled, "LATE2", 300, at("2026-11-22T23:00:00+08:00"),
                   "SUCCESS"));
  clock_.set_wall(at("2026-11-24T00:02:00+08:00"));
  made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made && made->size() == 1u);
  EXPECT_EQ((*made)[0].seal.date, kNextDay);
  EXPECT_EQ((*made)[0].seal.revision, 2);
  EXPECT_EQ((*made)[0].seal.last_seq, 7);
  ASSERT_EQ((*made)[0].seal.clock_anomalies.size(), 1u);
  EXPECT_EQ((*made)[0].seal.clock_anomalies[0].seq, 7);
}

TEST_F(SealPartitionTest, AnEarlierDayIsSealedFirstAndADayNotBegunIsRefused) {
  fill_day("2026-11-20", 2, "A");
  fill_day(kDay, 3, "B");
  clock_.set_wall(at("2026-11-22T18:00:00+08:00"));
  auto seals = seal_through(*db_, kDay, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(seals) << seals.error().message;
  ASSERT_EQ(seals->size(), 2u);
  EXPECT_EQ((*seals)[0].seal.date, "2026-11-20");
  EXPECT_EQ((*seals)[0].seal.last_seq, 2);
  EXPECT_EQ((*seals)[1].seal.first_seq, 3);
  // The 21st had no record: sealed on demand now, it is empty at its place in the chain.
  auto empty = seal_day(*db_, "2026-11-21", UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_EQ(empty->seal.first_seq, 3);
  EXPECT_EQ(empty->seal.last_seq, 2);
  EXPECT_EQ(empty->seal.totals.record_count, 0);
  // Tomorrow has not begun.
  auto early = seal_day(*db_, kNextDay, UtcOffset{480}, *key_, clock_);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, Errc::kOutOfRange);
}

TEST_F(SealPartitionTest, FormatOneSealsAreStillRead) {
  fill_day(kDay, 3);
  const auto pkg = package(hand_seal(std::string(kDay), 1, 3, 1), "pkg-v1");
  EXPECT_NE(read_text(pkg / "seal.json").find("\"format\":\"lanegate-seal/1\""), std::string::npos);
  EXPECT_EQ(read_text(pkg / "seal.json").find("clock_anomalies"), std::string::npos);
  const auto report = verify_package(pkg, key_->public_key());
  EXPECT_TRUE(report.ok()) << report.to_text();
  ASSERT_TRUE(report.seal);
  EXPECT_EQ(report.seal->format, 1);
}

}  // namespace
}  // namespace lanegate::audit::testing
