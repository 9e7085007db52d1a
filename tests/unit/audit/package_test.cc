// Seals, settlement packages and their verification, including every tampering case an
// authority must catch: the verifier names the first bad record and the failed check.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "audit_fixture.h"

namespace lanegate::audit::testing {
namespace {

constexpr std::string_view kDay = "2026-11-22";

bool has_check(const VerifyReport& r, std::string_view check) {
  return std::any_of(r.problems.begin(), r.problems.end(),
                     [&](const VerifyProblem& p) { return p.check == check; });
}

class PackageTest : public AuditTest {
 protected:
  // Ten settled charges on kDay, one the day before, one the day after.
  std::filesystem::path ten_record_package() {
    append_one(
        event(ledger::Kind::kChargeSettled, "BEFORE", 7, at("2026-11-21T10:00:00Z"), "SUCCESS"));
    fill_day(kDay, 10);
    append_one(
        event(ledger::Kind::kChargeSettled, "AFTER", 9, at("2026-11-22T17:00:00Z"), "SUCCESS"));
    return export_day(kDay);
  }
  VerifyReport verify(const std::filesystem::path& pkg) {
    return verify_package(pkg, key_->public_key());
  }
};

TEST_F(PackageTest, ExportedPackageVerifies) {
  const auto pkg = ten_record_package();
  for (const char* f : {"records.jsonl", "records.csv", "seal.json", "seal.sig"}) {
    EXPECT_TRUE(std::filesystem::exists(pkg / f)) << f;
  }
  EXPECT_FALSE(std::filesystem::exists(pkg.string() + ".partial"));
  const auto report = verify(pkg);
  EXPECT_TRUE(report.ok()) << report.to_text();
  EXPECT_EQ(report.records_checked, 10);
  EXPECT_NE(report.to_text().find("OK"), std::string::npos);

  auto seal = parse_seal(read_text(pkg / "seal.json"));
  ASSERT_TRUE(seal) << seal.error().message;
  EXPECT_EQ(seal->date, kDay);
  EXPECT_EQ(seal->first_seq, 2);  // seq 1 belongs to the day before
  EXPECT_EQ(seal->last_seq, 11);
  EXPECT_EQ(seal->totals.record_count, 10);
  // 100 + 101 + ... + 109 fen
  EXPECT_EQ(seal->totals.by_kind.at("charge_settled"), (Tally{10, 1045}));
  EXPECT_EQ(seal->totals.by_kind_state.at({"charge_settled", "SUCCESS"}), (Tally{10, 1045}));
  EXPECT_EQ(seal->totals.by_lane_kind.at({"exit-1", "charge_settled"}), (Tally{5, 520}));
  EXPECT_EQ(seal->totals.by_lane_kind.at({"exit-2", "charge_settled"}), (Tally{5, 525}));
  EXPECT_EQ(seal->gateway_key, key_->public_key().hex());

  const auto lines = read_lines(pkg / "records.jsonl");
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_NE(lines[0].find("\"plate\":\"粤B12345\""), std::string::npos);  // full plates
  const auto csv = read_lines(pkg / "records.csv");
  ASSERT_EQ(csv.size(), 11u);
  EXPECT_EQ(csv[0].substr(3, 13), "seq,time_utc,");
  EXPECT_NE(csv[1].find(",1.00,100,SUCCESS,"), std::string::npos) << csv[1];
}

TEST_F(PackageTest, ChangedByteIsNamed) {
  const auto pkg = ten_record_package();
  auto lines = read_lines(pkg / "records.jsonl");
  // Record 4 of the package is seq 5, amount 103 fen: make it 193.
  const auto pos = lines[3].find("\"amount_fen\":103");
  ASSERT_NE(pos, std::string::npos);
  lines[3][pos + 14] = '9';
  write_lines(pkg / "records.jsonl", lines);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.first_bad_seq(), 5);
  EXPECT_EQ(report.problems.front().check, "record_hash");
  EXPECT_NE(report.to_text().find("first bad record: seq 5"), std::string::npos)
      << report.to_text();
}

TEST_F(PackageTest, ChangedByteThatBreaksTheJsonIsNamed) {
  const auto pkg = ten_record_package();
  auto lines = read_lines(pkg / "records.jsonl");
  lines[6][0] = '[';
  write_lines(pkg / "records.jsonl", lines);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.first_bad_seq(), 8);
  EXPECT_EQ(report.problems.front().check, "record_format");
}

TEST_F(PackageTest, DroppedRecordIsNamed) {
  const auto pkg = ten_record_package();
  auto lines = read_lines(pkg / "records.jsonl");
  lines.erase(lines.begin() + 4);  // seq 6
  write_lines(pkg / "records.jsonl", lines);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.first_bad_seq(), 6);
  EXPECT_EQ(report.problems.front().check, "sequence");
  EXPECT_TRUE(has_check(report, "totals"));
  // One dropped record is one record problem, not one per following line.
  EXPECT_EQ(std::count_if(report.problems.begin(), report.problems.end(),
                          [](const VerifyProblem& p) { return p.seq > 0 && p.check != "csv"; }),
            1)
      << report.to_text();
}

TEST_F(PackageTest, DroppedLastRecordIsNamed) {
  const auto pkg = ten_record_package();
  auto lines = read_lines(pkg / "records.jsonl");
  lines.pop_back();  // seq 11
  write_lines(pkg / "records.jsonl", lines);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.first_bad_seq(), 11);
  EXPECT_TRUE(has_check(report, "seal_range"));
}

TEST_F(PackageTest, SwappedRecordsAreNamed) {
  const auto pkg = ten_record_package();
  auto lines = read_lines(pkg / "records.jsonl");
  std::swap(lines[2], lines[3]);  // seq 4 and 5
  write_lines(pkg / "records.jsonl", lines);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.first_bad_seq(), 4);
  EXPECT_EQ(report.problems.front().check, "sequence");
  EXPECT_FALSE(has_check(report, "chain_link")) << report.to_text();
  EXPECT_FALSE(has_check(report, "totals"));  // the same records, only reordered
}

TEST_F(PackageTest, ForgedAppendedRecordIsNamed) {
  const auto pkg = ten_record_package();
  auto lines = read_lines(pkg / "records.jsonl");
  // A forger who knows the format builds a perfectly chained record 12.
  ledger::LedgerEntry forged;
  forged.seq = 12;
  forged.event = event(ledger::Kind::kRefund, "T3", 103, at("2026-11-22T09:00:00Z"), "REFUND");
  auto last = read_lines(pkg / "records.jsonl").back();
  const auto h = last.find("\"hash\":\"");
  forged.prev_hash = last.substr(h + 8, 64);
  forged.hash = ledger::compute_hash(forged);
  lines.push_back(ledger::jsonl_line(forged));
  write_lines(pkg / "records.jsonl", lines);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.first_bad_seq(), 12);
  EXPECT_EQ(report.problems.front().check, "seal_range");
}

TEST_F(PackageTest, SealResignedWithAnotherKeyIsRejected) {
  const auto pkg = ten_record_package();
  auto other = signing::KeyPair::generate();
  ASSERT_TRUE(other);
  auto seal = parse_seal(read_text(pkg / "seal.json"));
  ASSERT_TRUE(seal);
  seal->gateway_key = other->public_key().hex();
  seal->key_fingerprint = other->public_key().fingerprint();
  const std::string json = encode_seal(*seal);
  auto sig = other->sign(json);
  ASSERT_TRUE(sig);
  write_text(pkg / "seal.json", json);
  write_text(pkg / "seal.sig", crypto::base64_encode(*sig) + "\n");
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(has_check(report, "seal_signature"));
  EXPECT_TRUE(has_check(report, "seal_key"));
  EXPECT_EQ(report.first_bad_seq(), 0);  // the records are fine; the seal is not ours
  // ... while the forger's own key does accept it: the registered key is what counts.
  EXPECT_FALSE(has_check(verify_package(pkg, other->public_key()), "seal_signature"));
}

TEST_F(PackageTest, AlteredTotalIsRejected) {
  const auto pkg = ten_record_package();
  std::string json = read_text(pkg / "seal.json");
  const std::string from = "\"kind\":\"charge_settled\",\"count\":10,\"amount_fen\":1045";
  const auto pos = json.find(from);
  ASSERT_NE(pos, std::string::npos) << json;
  json.replace(pos, from.size(), "\"kind\":\"charge_settled\",\"count\":10,\"amount_fen\":1000");
  write_text(pkg / "seal.json", json);
  auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(has_check(report, "seal_signature"));
  EXPECT_TRUE(has_check(report, "totals"));
  EXPECT_NE(report.to_text().find("by_kind[charge_settled]"), std::string::npos)
      << report.to_text();

  // Even a validly signed seal with a wrong total fails on the totals.
  auto sig = key_->sign(json);
  ASSERT_TRUE(sig);
  write_text(pkg / "seal.sig", crypto::base64_encode(*sig) + "\n");
  report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_FALSE(has_check(report, "seal_signature"));
  EXPECT_TRUE(has_check(report, "totals"));
}

TEST_F(PackageTest, RebuiltChainIsCaughtByTheSealedLastHash) {
  const auto pkg = ten_record_package();
  auto lines = read_lines(pkg / "records.jsonl");
  // Alter seq 3 and recompute every later hash: each record looks fine on its own.
  std::string prev;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto h = lines[i].find(",\"hash\":\"");
    ledger::LedgerEntry e;
    e.seq = static_cast<std::int64_t>(i) + 2;
    e.event = event(ledger::Kind::kChargeSettled, "T" + std::to_string(i),
                    i == 1 ? 1 : 100 + static_cast<std::int64_t>(i),
                    at("2026-11-22T00:00:00Z") + std::chrono::seconds(i), "SUCCESS",
                    i % 2 == 0 ? "exit-1" : "exit-2");
    const auto p = lines[i].find("\"prev_hash\":\"");
    e.prev_hash = i == 0 ? lines[i].substr(p + 13, 64) : prev;
    e.hash = ledger::compute_hash(e);
    prev = e.hash;
    (void)h;
    lines[i] = ledger::jsonl_line(e);
  }
  write_lines(pkg / "records.jsonl", lines);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(has_check(report, "seal_range"));
  EXPECT_TRUE(has_check(report, "totals"));
}

TEST_F(PackageTest, AlteredCsvIsNamed) {
  const auto pkg = ten_record_package();
  std::string csv = read_text(pkg / "records.csv");
  const auto pos = csv.find(",1.05,105,");
  ASSERT_NE(pos, std::string::npos);
  csv.replace(pos, 10, ",0.05,5,");
  write_text(pkg / "records.csv", csv);
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problems.front().check, "csv");
  EXPECT_EQ(report.first_bad_seq(), 7);
}

TEST_F(PackageTest, MissingSealIsReported) {
  const auto pkg = ten_record_package();
  std::filesystem::remove(pkg / "seal.json");
  const auto report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problems.front().check, "seal_file");
}

TEST_F(PackageTest, EmptyDayVerifies) {
  fill_day("2026-11-20", 3);
  const auto pkg = export_day(kDay);
  auto seal = parse_seal(read_text(pkg / "seal.json"));
  ASSERT_TRUE(seal);
  // An empty day keeps its place in the chain: after seq 3, which the 20th's seal (made
  // first, P5) covers.
  EXPECT_EQ(seal->first_seq, 4);
  EXPECT_EQ(seal->last_seq, 3);
  EXPECT_EQ(seal->first_prev_hash, seal->last_hash);
  auto third = ledger::read(*db_, ledger::SeqRange{3, 3});
  ASSERT_TRUE(third && third->size() == 1);
  EXPECT_EQ(seal->last_hash, third->front().hash);
  EXPECT_EQ(seal->totals.record_count, 0);
  const auto report = verify(pkg);
  EXPECT_TRUE(report.ok()) << report.to_text();
}

TEST_F(PackageTest, ExportRefusesAnExistingDirectory) {
  fill_day(kDay, 2);
  auto seal = seal_day(*db_, kDay, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(seal);
  const auto out = dir_.path() / "pkg";
  ASSERT_TRUE(export_package(*db_, *seal, out));
  auto again = export_package(*db_, *seal, out);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kAlreadyExists);
}

TEST_F(PackageTest, TenThousandTransactionsExportAndVerify) {
  fill_day(kDay, 10'000);
  const auto pkg = export_day(kDay);
  auto report = verify(pkg);
  EXPECT_TRUE(report.ok()) << report.to_text();
  EXPECT_EQ(report.records_checked, 10'000);

  // And one changed byte deep inside is still found and named.
  auto lines = read_lines(pkg / "records.jsonl");
  const auto pos = lines[7776].find("\"out_trade_no\":\"T7776\"");
  ASSERT_NE(pos, std::string::npos);
  lines[7776][pos + 17] = 'X';
  write_lines(pkg / "records.jsonl", lines);
  report = verify(pkg);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.first_bad_seq(), 7777);
}

// ---- seals ----

TEST_F(PackageTest, SealRevisionsGrowOnlyWhenTheDayChanged) {
  fill_day(kDay, 3);
  auto a = seal_day(*db_, kDay, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->seal.revision, 1);
  auto b = seal_day(*db_, kDay, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->seal.revision, 1);
  EXPECT_EQ(b->json, a->json);
  append_one(event(ledger::Kind::kRefund, "T1", 101, at("2026-11-22T09:00:00Z"), "REFUND"));
  auto c = seal_day(*db_, kDay, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->seal.revision, 2);
  EXPECT_EQ(c->seal.last_seq, 4);
  EXPECT_EQ(c->seal.totals.by_kind.at("refund"), (Tally{1, 101}));
  EXPECT_TRUE(key_->public_key().verify(c->json, c->signature));
  auto latest = latest_seal(*db_, kDay);
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ((*latest)->seal.revision, 2);
  // Seals are append-only too.
  EXPECT_FALSE(db_->exec("UPDATE audit_seals SET signature = 'x'"));
  EXPECT_FALSE(db_->exec("DELETE FROM audit_seals"));
}

TEST_F(PackageTest, DaysNeedingSealListsUnsealedPastDays) {
  fill_day("2026-11-20", 2, "A");
  fill_day("2026-11-21", 2, "B");
  fill_day(kDay, 2, "C");
  const SystemTime now = at("2026-11-22T12:00:00+08:00");
  auto days = days_needing_seal(*db_, UtcOffset{480}, now);
  ASSERT_TRUE(days) << days.error().message;
  EXPECT_EQ(*days, (std::vector<std::string>{"2026-11-20", "2026-11-21"}));  // not today
  ASSERT_TRUE(seal_day(*db_, "2026-11-20", UtcOffset{480}, *key_, clock_));
  days = days_needing_seal(*db_, UtcOffset{480}, now);
  ASSERT_TRUE(days);
  EXPECT_EQ(*days, (std::vector<std::string>{"2026-11-21"}));
}

TEST_F(PackageTest, PendingDaysAreSealedAfterDowntime) {
  fill_day("2026-11-19", 2, "A");
  fill_day("2026-11-21", 3, "B");
  clock_.set_wall(at("2026-11-22T00:01:00+08:00"));
  auto made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made) << made.error().message;
  ASSERT_EQ(made->size(), 2u);
  EXPECT_EQ((*made)[0].seal.date, "2026-11-19");
  EXPECT_EQ((*made)[1].seal.date, "2026-11-21");
  EXPECT_EQ((*made)[1].seal.totals.record_count, 3);
  made = seal_pending_days(*db_, UtcOffset{480}, *key_, clock_);
  ASSERT_TRUE(made);
  EXPECT_TRUE(made->empty());
}

TEST(SealTimer, NextSealTimeIsAfterLocalMidnight) {
  EXPECT_EQ(next_seal_time(at("2026-11-22T23:59:00+08:00"), UtcOffset{480}),
            at("2026-11-23T00:01:00+08:00"));
  EXPECT_EQ(next_seal_time(at("2026-11-22T00:00:00+08:00"), UtcOffset{480}),
            at("2026-11-23T00:01:00+08:00"));
  EXPECT_EQ(next_seal_time(at("2026-11-22T10:00:00Z"), UtcOffset{0}, std::chrono::seconds(0)),
            at("2026-11-23T00:00:00Z"));
}

// ---- device key ----

TEST_F(PackageTest, DeviceKeyIsCreatedOnceWithMode0600) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() / "device-key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = ensure_device_key(dir_.path());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->public_key().hex(), key_->public_key().hex());
  EXPECT_EQ(read_text(dir_.path() / "device-key.pub"), key_->public_key().hex() + "\n");
}

TEST_F(PackageTest, GroupReadableDeviceKeyIsRefused) {
  ::chmod((dir_.path() / "device-key.pem").c_str(), 0640);
  auto key = ensure_device_key(dir_.path());
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, Errc::kPermission);
  // and never silently replaced by a new key
  EXPECT_EQ(read_text(dir_.path() / "device-key.pub"), key_->public_key().hex() + "\n");
}

}  // namespace
}  // namespace lanegate::audit::testing
