// The audit ledger: canonical encoding (known answer), chain building, and the
// database refusing any change to a written record.
#include "core/ledger.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "core/crypto.h"
#include "core/metrics.h"

namespace lanegate::ledger {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ledger-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) {
      std::abort();
    }
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

SystemTime at(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  if (!t) {
    std::abort();
  }
  return *t;
}

LedgerEvent settled(std::string out_trade_no, std::int64_t fen, SystemTime t) {
  LedgerEvent e;
  e.kind = Kind::kChargeSettled;
  e.time = t;
  e.lane = "exit-1";
  e.plate = "粤B12345";
  e.out_trade_no = std::move(out_trade_no);
  e.amount = Money::from_fen(fen);
  e.state = "SUCCESS";
  e.actor = "provider";
  return e;
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::open(dir_.path() / "lanegate.db");
    ASSERT_TRUE(db) << db.error().message;
    db_.emplace(std::move(*db));
    auto m = db_->migrate(ledger_schema_steps());
    ASSERT_TRUE(m) << m.error().message;
  }

  Result<LedgerEntry> append_one(const LedgerEvent& e) {
    auto txn = db_->begin();
    if (!txn) {
      return std::unexpected(txn.error());
    }
    auto entry = append(*txn, e);
    if (!entry) {
      return entry;
    }
    if (auto c = txn->commit(); !c) {
      return std::unexpected(c.error());
    }
    return entry;
  }

  TempDir dir_;
  std::optional<Database> db_;
};

// The encoding is fixed by docs/AUDIT.md; the expected hash was computed with sha256sum
// over the expected bytes, independently of this code.
TEST(LedgerEncoding, KnownAnswer) {
  LedgerEntry e;
  e.seq = 1;
  e.event = settled("LG20261122000001", 1250, at("2026-11-22T05:29:35.123Z"));
  e.event.detail = R"({"note":"a\\b\n"})";
  e.prev_hash = std::string(kGenesisHash);
  const std::string expected =
      R"({"seq":1,"time":"2026-11-22T05:29:35.123Z","kind":"charge_settled","lane":"exit-1",)"
      R"("plate":"粤B12345","out_trade_no":"LG20261122000001","amount_fen":1250,"state":"SUCCESS",)"
      R"("actor":"provider","detail":"{\"note\":\"a\\\\b\\n\"}","prev_hash":")" +
      std::string(kGenesisHash) + R"("})";
  EXPECT_EQ(canonical_encoding(e), expected);
  EXPECT_EQ(compute_hash(e), "6b3db3fca72264ea47b46d5df3c9e6177d4283bb17e11fd63ca72a334ebab58d");
}

TEST(LedgerEncoding, EscapingRule) {
  EXPECT_EQ(json_quote("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_quote(std::string("\x01\x1f\b\f\n\r\t", 7)), R"("\u0001\u001f\b\f\n\r\t")");
  EXPECT_EQ(json_quote(std::string("nul\0x", 5)), R"("nul\u0000x")");
  // Slash, DEL and non-ASCII stay literal.
  EXPECT_EQ(json_quote("a/b\x7f京"), "\"a/b\x7f京\"");
}

TEST(LedgerEncoding, TimeIsUtcMilliseconds) {
  const SystemTime t = at("2026-11-22T13:29:35.1239+08:00");
  EXPECT_EQ(format_time(t), "2026-11-22T05:29:35.123Z");
  auto back = parse_time("2026-11-22T05:29:35.123Z");
  ASSERT_TRUE(back);
  EXPECT_EQ(format_time(*back), "2026-11-22T05:29:35.123Z");
  EXPECT_FALSE(parse_time("2026-11-22T05:29:35Z"));
  EXPECT_FALSE(parse_time("2026-11-22T05:29:35.123+00:00"));
  EXPECT_FALSE(parse_time("2026-11-22t05:29:35.123Z"));
}

TEST(LedgerEncoding, KindNamesRoundTrip) {
  for (Kind k : all_kinds()) {
    auto back = parse_kind(kind_name(k));
    ASSERT_TRUE(back) << kind_name(k);
    EXPECT_EQ(*back, k);
  }
  EXPECT_FALSE(parse_kind("settled"));
}

TEST_F(LedgerTest, ChainStartsAtGenesisAndLinks) {
  auto a = append_one(settled("T1", 100, at("2026-11-22T01:00:00Z")));
  ASSERT_TRUE(a) << a.error().message;
  auto b = append_one(settled("T2", 250, at("2026-11-22T01:00:01Z")));
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(a->seq, 1);
  EXPECT_EQ(a->prev_hash, kGenesisHash);
  EXPECT_EQ(b->seq, 2);
  EXPECT_EQ(b->prev_hash, a->hash);
  EXPECT_EQ(b->hash, compute_hash(*b));

  auto all = read(*db_, SeqRange{1, 100});
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].event.plate, "粤B12345");  // the ledger keeps full plates
  EXPECT_EQ((*all)[1].hash, b->hash);
  auto check = verify_stored(*db_, SeqRange{1, 2});
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->ok()) << check->problem;
  EXPECT_EQ(check->checked, 2);
}

TEST_F(LedgerTest, AppendRolledBackWithTheCallersTransaction) {
  {
    auto txn = db_->begin();
    ASSERT_TRUE(txn);
    ASSERT_TRUE(append(*txn, settled("T1", 100, at("2026-11-22T01:00:00Z"))));
    // no commit: the state change failed, so the ledger record must vanish with it
  }
  auto h = head(*db_);
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->has_value());
  auto a = append_one(settled("T1", 100, at("2026-11-22T01:00:00Z")));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->seq, 1);
}

TEST_F(LedgerTest, UpdateAndDeleteAreRefusedByTheDatabase) {
  ASSERT_TRUE(append_one(settled("T1", 100, at("2026-11-22T01:00:00Z"))));
  auto upd = db_->exec("UPDATE ledger SET amount_fen = 1 WHERE seq = 1");
  ASSERT_FALSE(upd);
  EXPECT_NE(upd.error().message.find("append-only"), std::string::npos) << upd.error().message;
  auto del = db_->exec("DELETE FROM ledger");
  ASSERT_FALSE(del);
  EXPECT_NE(del.error().message.find("append-only"), std::string::npos) << del.error().message;
  // REPLACE would delete the old row: the chain trigger refuses it first.
  auto rep = db_->exec(
      "INSERT OR REPLACE INTO ledger SELECT seq, kind, time_ms, lane, plate, out_trade_no, 1, "
      "state, actor, detail, prev_hash, hash FROM ledger WHERE seq = 1");
  ASSERT_FALSE(rep);
  // A forged insert that does not continue the chain is refused.
  auto forged =
      db_->exec("INSERT INTO ledger VALUES (5, 'refund', 0, '', '', '', 1, 'REFUND', 'x', '{}', '" +
                std::string(kGenesisHash) + "', '" + std::string(64, 'a') + "')");
  ASSERT_FALSE(forged);
  EXPECT_NE(forged.error().message.find("continue the chain"), std::string::npos);

  auto all = read(*db_, SeqRange{1, 10});
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].event.amount.fen(), 100);
}

TEST_F(LedgerTest, BadEventsNameTheField) {
  auto& rejected = metrics::Registry::global().counter("lanegate_ledger_append_rejected_total",
                                                       "Ledger events refused by validation",
                                                       {{"field", "amount"}});
  const auto before = rejected.value();
  auto neg = settled("T1", -5, at("2026-11-22T01:00:00Z"));
  auto r = append_one(neg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "amount");
  EXPECT_EQ(rejected.value(), before + 1);

  auto bad_utf8 = settled("T1", 5, at("2026-11-22T01:00:00Z"));
  bad_utf8.plate = "\xe7\xb2";
  r = append_one(bad_utf8);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "plate");

  auto bad_detail = settled("T1", 5, at("2026-11-22T01:00:00Z"));
  bad_detail.detail = "{not json";
  r = append_one(bad_detail);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "detail");

  auto h = head(*db_);
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->has_value());
}

TEST_F(LedgerTest, DayRangeUsesTheLocalDay) {
  // 2026-11-22 at +08:00 runs from 2026-11-21T16:00Z to 2026-11-22T16:00Z.
  ASSERT_TRUE(append_one(settled("A", 1, at("2026-11-21T15:59:59.999Z"))));  // 21st local
  ASSERT_TRUE(append_one(settled("B", 1, at("2026-11-21T16:00:00Z"))));      // 22nd
  ASSERT_TRUE(append_one(settled("C", 1, at("2026-11-22T15:59:59Z"))));      // 22nd
  ASSERT_TRUE(append_one(settled("D", 1, at("2026-11-22T16:00:00Z"))));      // 23rd
  auto r = day_range(*db_, "2026-11-22", UtcOffset{480});
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->first, 2);
  EXPECT_EQ((*r)->last, 3);
  auto none = day_range(*db_, "2026-11-30", UtcOffset{480});
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(day_range(*db_, "2026-13-01", UtcOffset{480}));
}

TEST_F(LedgerTest, FindByOutTradeNo) {
  ASSERT_TRUE(append_one(settled("A", 1, at("2026-11-22T01:00:00Z"))));
  ASSERT_TRUE(append_one(settled("B", 2, at("2026-11-22T01:00:00Z"))));
  auto refund = settled("A", 1, at("2026-11-22T02:00:00Z"));
  refund.kind = Kind::kRefund;
  refund.state = "REFUND";
  ASSERT_TRUE(append_one(refund));
  auto a = find_by_out_trade_no(*db_, "A");
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[1].event.kind, Kind::kRefund);
}

TEST_F(LedgerTest, VerifyStoredFindsARecordChangedBehindTheTriggers) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(append_one(settled("T" + std::to_string(i), 100 + i, at("2026-11-22T01:00:00Z"))));
  }
  // Someone with the file drops the trigger and edits record 3.
  ASSERT_TRUE(db_->exec("DROP TRIGGER ledger_refuses_update"));
  ASSERT_TRUE(db_->exec("UPDATE ledger SET amount_fen = 1 WHERE seq = 3"));
  auto check = verify_stored(*db_, SeqRange{1, 5});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->first_bad_seq, 3);
  EXPECT_NE(check->problem.find("record 3"), std::string::npos);
}

TEST_F(LedgerTest, MigrationIsIdempotent) {
  auto again = db_->migrate(ledger_schema_steps());
  ASSERT_TRUE(again) << again.error().message;
}

}  // namespace
}  // namespace lanegate::ledger
