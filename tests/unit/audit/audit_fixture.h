#pragma once
// Shared fixture of the audit tests: a temp state directory, a database with the ledger
// and seal schemas, a device key, and helpers to fill a day with records.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/ledger.h"
#include "core/signing.h"
#include "core/sqlite.h"
#include "audit/audit.h"

namespace lanegate::audit::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "audit-test-XXXXXX").string();
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

inline SystemTime at(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  if (!t) {
    std::abort();
  }
  return *t;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

inline std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::vector<std::string> lines;
  std::istringstream in(read_text(p));
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

inline void write_lines(const std::filesystem::path& p, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) {
    text += l + "\n";
  }
  write_text(p, text);
}

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::open(dir_.path() / "lanegate.db");
    ASSERT_TRUE(db) << db.error().message;
    db_.emplace(std::move(*db));
    std::vector<std::string_view> steps;
    for (auto s : ledger::ledger_schema_steps()) steps.push_back(s);
    for (auto s : audit_schema_steps()) steps.push_back(s);
    auto m = db_->migrate(std::span<const std::string_view>(steps));
    ASSERT_TRUE(m) << m.error().message;
    auto key = ensure_device_key(dir_.path());
    ASSERT_TRUE(key) << key.error().message;
    key_.emplace(std::move(*key));
  }

  static ledger::LedgerEvent event(ledger::Kind kind, std::string out_trade_no, std::int64_t fen,
                                   SystemTime t, std::string state, std::string lane = "exit-1") {
    ledger::LedgerEvent e;
    e.kind = kind;
    e.time = t;
    e.lane = std::move(lane);
    e.plate = "粤B12345";
    e.out_trade_no = std::move(out_trade_no);
    e.amount = Money::from_fen(fen);
    e.state = std::move(state);
    e.actor = "provider";
    return e;
  }

  // Appends `n` settled charges of (100 + i) fen on the local day `date` (+08:00), one
  // per second from 08:00 local, alternating lanes, in one transaction.
  void fill_day(std::string_view date, int n, std::string_view prefix = "T") {
    auto start = parse_local_date(date, UtcOffset{480});
    ASSERT_TRUE(start);
    auto txn = db_->begin();
    ASSERT_TRUE(txn);
    for (int i = 0; i < n; ++i) {
      auto e = event(ledger::Kind::kChargeSettled, std::string(prefix) + std::to_string(i), 100 + i,
                     *start + std::chrono::hours(8) + std::chrono::seconds(i), "SUCCESS",
                     i % 2 == 0 ? "exit-1" : "exit-2");
      auto r = ledger::append(*txn, e);
      ASSERT_TRUE(r) << r.error().message;
    }
    ASSERT_TRUE(txn->commit());
  }

  void append_one(const ledger::LedgerEvent& e) {
    auto txn = db_->begin();
    ASSERT_TRUE(txn);
    auto r = ledger::append(*txn, e);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(txn->commit());
  }

  // Seals and exports `date`; returns the package directory.
  std::filesystem::path export_day(std::string_view date) {
    auto seal = seal_day(*db_, date, UtcOffset{480}, *key_, clock_);
    EXPECT_TRUE(seal) << seal.error().message;
    const auto out = dir_.path() / ("pkg-" + std::string(date) + "-" + std::to_string(++exports_));
    auto s = export_package(*db_, *seal, out);
    EXPECT_TRUE(s) << s.error().message;
    return out;
  }

  // A seal over any range, signed with the device key, with the totals, hashes and clock
  // anomalies right for that range: what a faulty sealer (like the one before issue 13)
  // signs. Its package verifies on its own; only continuity can refuse it.
  SignedSeal hand_seal(std::string date, std::int64_t first, std::int64_t last, int format = 2) {
    Seal s;
    s.format = format;
    s.date = std::move(date);
    s.sealed_at = clock_.now();
    s.gateway_key = key_->public_key().hex();
    s.key_fingerprint = key_->public_key().fingerprint();
    s.first_seq = first;
    s.last_seq = last;
    auto records = ledger::read(*db_, ledger::SeqRange{first, last});
    EXPECT_TRUE(records && !records->empty());
    s.first_prev_hash = records->front().prev_hash;
    s.last_hash = records->back().hash;
    const SystemTime start = *parse_local_date(s.date, UtcOffset{480});
    for (const auto& r : *records) {
      EXPECT_TRUE(s.totals.add(r));
      if (format == 2 && (r.event.time < start || r.event.time >= start + std::chrono::hours(24))) {
        s.clock_anomalies.push_back(ClockAnomaly{r.seq, r.event.time});
      }
    }
    SignedSeal signed_seal;
    signed_seal.json = encode_seal(s);
    signed_seal.signature = *key_->sign(signed_seal.json);
    signed_seal.seal = std::move(s);
    return signed_seal;
  }

  std::filesystem::path package(const SignedSeal& seal, std::string name) {
    const auto out = dir_.path() / name;
    auto s = export_package(*db_, seal, out);
    EXPECT_TRUE(s) << s.error().message;
    return out;
  }

  TempDir dir_;
  std::optional<Database> db_;
  std::optional<signing::KeyPair> key_;
  FakeClock clock_{at("2026-11-23T01:00:00Z")};
  int exports_ = 0;
};

}  // namespace lanegate::audit::testing
