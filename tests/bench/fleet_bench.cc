// make bench / scripts/bench build fleet: the centre's ingest of box ledgers into PostgreSQL.
// Prints numbers and ratios; asserts nothing.
//
// The system of record is started by scripts/fleet-cluster in a throwaway directory: the
// 3-node Patroni cluster with synchronous replication (LANEGATE_BENCH_FLEET=cluster, the
// default) or the single quick-start server (=single). A box's real ledger of N records is
// made with core/ledger in SQLite, then, in one run, on the same server:
//  (a) Centre::ingest in batches of B: every line parsed, checked canonical, hashed, chained,
//      inserted into the day partitions, the head moved, one synchronous COMMIT per batch;
//  (b) the raw floor: the same rows as multi-row INSERTs of B rows into one plain table of the
//      same columns, one COMMIT per batch, nothing checked;
//  (c) the checks alone (parse + canonical bytes + SHA-256), no database;
// and the bytes stored per record (table + indexes of every partition / records).
//
// Environment: LANEGATE_BENCH_RECORDS (default 20000), LANEGATE_BENCH_BATCH (default 500),
// LANEGATE_BENCH_FLEET (cluster | single).
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/ledger.h"
#include "core/sqlite.h"
#include "core/time_format.h"
#include "fleet/centre.h"
#include "fleet/pg.h"
#include "support/bench_stats.h"
#include "support/run_command.h"

using namespace lanegate;
namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

namespace {

double secs_since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

std::vector<std::string> make_ledger(const fs::path& dir, int n) {
  auto db = Database::open(dir / "box.db");
  if (!db || !db->migrate(ledger::ledger_schema_steps())) std::abort();
  auto t0 = parse_rfc3339("2026-12-07T00:00:00Z");
  for (int i = 0; i < n;) {
    auto txn = db->begin();
    if (!txn) std::abort();
    for (int k = 0; k < 1000 && i < n; ++k, ++i) {
      ledger::LedgerEvent e;
      e.kind = i % 3 == 0 ? ledger::Kind::kDecision : ledger::Kind::kChargeSettled;
      e.time = *t0 + std::chrono::seconds(i * 7);
      e.lane = "exit-" + std::to_string(i % 4 + 1);
      e.plate = "粤B" + std::to_string(10000 + i % 90000);
      e.out_trade_no = "LG20261207" + std::to_string(100000 + i);
      e.amount = Money::from_fen(500 + i % 2000);
      e.state = i % 3 == 0 ? "pass_online" : "SUCCESS";
      e.actor = i % 3 == 0 ? "system" : "provider";
      e.detail = R"({"tariff":"standard","minutes":)" + std::to_string(i % 600) + "}";
      if (!ledger::append(*txn, e)) std::abort();
    }
    if (!txn->commit()) std::abort();
  }
  std::vector<std::string> lines;
  auto rs = ledger::read(*db, {1, n});
  if (!rs) std::abort();
  for (const auto& e : *rs) lines.push_back(ledger::jsonl_line(e));
  return lines;
}

Status raw_insert(fleet::pg::Connection& c, const std::vector<ledger::LedgerEntry>& rows) {
  std::string sql =
      "INSERT INTO raw_records (box_no, local_day, seq, time_ms, kind, lane, plate, "
      "out_trade_no, amount_fen, state, actor, detail, prev_hash, hash) VALUES ";
  std::vector<fleet::pg::Param> p;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const auto& e = rows[k];
    const std::size_t b = p.size();
    sql += k == 0 ? "(" : ",(";
    for (std::size_t i = 1; i <= 14; ++i) {
      const std::string n = "$" + std::to_string(b + i);
      sql += i == 1 ? n : (i >= 13 ? ",decode(" + n + ",'hex')" : "," + n);
    }
    sql += ")";
    for (std::string v :
         {std::string("1"), format_local_date(e.event.time, UtcOffset{480}), std::to_string(e.seq),
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                             e.event.time.time_since_epoch())
                             .count()),
          std::string(ledger::kind_name(e.event.kind)), e.event.lane, e.event.plate,
          e.event.out_trade_no, std::to_string(e.event.amount.fen()), e.event.state,
          e.event.actor, e.event.detail, e.prev_hash, e.hash}) {
      p.emplace_back(std::move(v));
    }
  }
  auto txn = fleet::pg::Txn::begin(c);
  if (!txn) return std::unexpected(txn.error());
  if (auto r = c.exec(sql, p); !r) return std::unexpected(r.error());
  return txn->commit();
}

}  // namespace

int main() {
  const int n = static_cast<int>(bench::env_int("LANEGATE_BENCH_RECORDS", 20000));
  const int batch = static_cast<int>(bench::env_int("LANEGATE_BENCH_BATCH", 500));
  const char* mode_env = ::getenv("LANEGATE_BENCH_FLEET");
  const std::string mode = mode_env != nullptr ? mode_env : "cluster";
  char tmpl[] = "/var/tmp/lanegate-fleet-bench.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string env = std::string("LANEGATE_FLEET_DIR=") + tmpl + " LANEGATE_FLEET_PORT=28600";
  const std::string script = std::string(LANEGATE_SOURCE_DIR) + "/scripts/fleet-cluster";
  auto [rc, out] =
      testing::run_command(env + " " + script + (mode == "single" ? " single" : " start"));
  const auto at = out.find("fleet-cluster: dsn: ");
  if (rc != 0 || at == std::string::npos) {
    std::printf("fleet_bench: the server did not start:\n%s\n", out.c_str());
    return 1;
  }
  std::string dsn = out.substr(at + 20);
  dsn = dsn.substr(0, dsn.find('\n'));
  struct Cleanup {
    std::string cmd;
    ~Cleanup() { testing::run_command(cmd); }
  } cleanup{env + " " + script + " destroy"};

  const fs::path box_dir = fs::path(tmpl) / "box";
  fs::create_directories(box_dir);
  const auto lines = make_ledger(box_dir, n);
  std::vector<ledger::LedgerEntry> entries;
  for (const auto& l : lines) entries.push_back(*ledger::parse_line(l));

  auto c = fleet::pg::Connection::open(dsn);
  if (!c) {
    std::printf("fleet_bench: %s\n", c.error().message.c_str());
    return 1;
  }
  fleet::Centre centre(*c, UtcOffset{480});
  if (!centre.migrate() ||
      !centre.register_box("bench-box",
                           "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")) {
    std::printf("fleet_bench: migrate/register failed\n");
    return 1;
  }
  if (!c->run("CREATE TABLE raw_records (LIKE fleet_records INCLUDING DEFAULTS, "
              "PRIMARY KEY (box_no, seq, local_day))")) {
    return 1;
  }
  std::printf("fleet_bench: %d records, batches of %d, %s PostgreSQL 15 (%s), %u cores\n", n,
              batch, mode == "single" ? "single" : "3-node Patroni, synchronous", c->server().c_str(),
              std::thread::hardware_concurrency());

  // (c) the checks alone.
  auto t = Steady::now();
  std::size_t ok = 0;
  for (const auto& l : lines) {
    auto e = ledger::parse_line(l);
    if (e && ledger::jsonl_line(*e) == l && ledger::compute_hash(*e) == e->hash) ++ok;
  }
  const double checks = secs_since(t);

  // (a) and (b), alternating batches so the machine's noise hits both.
  double ingest_s = 0, raw_s = 0;
  for (int first = 0; first < n; first += batch) {
    const int last = std::min(n, first + batch);
    std::vector<std::string> bl(lines.begin() + first, lines.begin() + last);
    std::vector<ledger::LedgerEntry> be(entries.begin() + first, entries.begin() + last);
    t = Steady::now();
    auto r = centre.ingest("bench-box", bl);
    ingest_s += secs_since(t);
    if (!r || r->outcome != fleet::IngestResult::Outcome::kStored) {
      std::printf("fleet_bench: ingest failed: %s\n",
                  r ? r->message.c_str() : r.error().message.c_str());
      return 1;
    }
    t = Steady::now();
    if (auto s = raw_insert(*c, be); !s) {
      std::printf("fleet_bench: raw insert failed: %s\n", s.error().message.c_str());
      return 1;
    }
    raw_s += secs_since(t);
  }
  auto size = c->exec(
      "SELECT (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
      "WHERE inhparent = 'fleet_records'::regclass), pg_total_relation_size('raw_records'), "
      "(SELECT count(*) FROM fleet_records)");
  if (!size) return 1;
  const double stored = static_cast<double>(size->integer(0, 2));
  std::printf("  checks only (parse, canonical bytes, SHA-256)   %10.0f records/s (%zu ok)\n",
              n / checks, ok);
  std::printf("  (a) ingest: check + insert + head, 1 COMMIT/batch %8.0f records/s\n",
              n / ingest_s);
  std::printf("  (b) raw multi-row INSERT of the same rows         %8.0f records/s\n", n / raw_s);
  std::printf("  ratio ingest / raw                                %8.2f\n", raw_s / ingest_s);
  std::printf("  stored: %.0f bytes per record with indexes (partitions), raw table %.0f\n",
              static_cast<double>(size->integer(0, 0)) / stored,
              static_cast<double>(size->integer(0, 1)) / stored);
  std::printf("  canonical line, for comparison: %.0f bytes per record\n",
              [&] {
                double s = 0;
                for (const auto& l : lines) s += static_cast<double>(l.size());
                return s / static_cast<double>(lines.size());
              }());
  return 0;
}
