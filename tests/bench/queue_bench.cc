// Outbox benchmarks (make bench; build/bench/queue_bench). Every figure is measured in the
// same run, on files in a directory next to the executable (the build's disk, not tmpfs):
//   enqueue_vs_raw      single-item durable enqueue vs a raw one-row INSERT + COMMIT (WAL,
//                       synchronous=FULL), alternating blocks so disk noise hits both alike.
//                       Target: ratio >= 0.8 (the floor is one fsync per commit either way).
//   enqueue_batched     1,000 items per commit. Target: >= 100,000 items/s.
//   lease_ack_cycle     lease(1) + ack, each its own commit; and lease(16) + 16 acks per commit.
//   drain_100k          a 100,000-item backlog through the Drainer, 8 in flight, no-op sink.
//   startup_1m          1,000,000 items pending: a fresh process (fork + exec of this binary)
//                       opens the database and the outbox, refreshes the metrics and leases a
//                       first batch. Targets: <= 200 ms, peak RSS <= 32 MB.
// Items look like the gateway's: a ~200-byte charge record, a unique idempotency key, and an
// ordering key per parking session with two items each (entry, exit charge), sessions numbered
// in increasing order. Backlogs for the lease/drain/start-up figures are filled with
// synchronous=OFF (setup only, not measured); every measured commit uses synchronous=FULL.
// Set LANEGATE_BENCH_DIR to put the data elsewhere.

#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/sqlite.h"
#include "offline_queue/drainer.h"
#include "offline_queue/queue.h"

namespace lanegate::queue {
namespace {

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

fs::path g_dir;
const std::string kPayload = [] {
  // A charge record of realistic size (~200 bytes of JSON).
  std::string p =
      R"({"out_trade_no":"LG20261122000000000001","plate":"粤B12345","fen":1500,)"
      R"("lane":"exit-1","entry":"2026-11-22T08:00:00+08:00","exit":"2026-11-22T10:30:00+08:00"})";
  return p;
}();

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "queue_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().to_string());
  return std::move(*r);
}
void must(Status s, const char* what) {
  if (!s) die(std::string(what) + ": " + s.error().to_string());
}

double seconds_since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

void remove_db(const fs::path& p) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.string() + suffix);
}

Database fresh_queue_db(const fs::path& p) {
  remove_db(p);
  Database db = must(Database::open(p), "open");
  must(db.migrate(schema_steps()), "migrate");
  return db;
}

config::QueueLimits bench_limits() {
  config::QueueLimits l;
  l.max_rows = 10'000'000;
  l.max_bytes = 8LL * 1024 * 1024 * 1024;
  l.rate_per_second = 0;  // unlimited
  l.max_in_flight = 8;
  return l;
}

std::string idem_key(std::int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "charge:%012lld", static_cast<long long>(i));
  return buf;
}

std::string session_key(std::int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "session-%010lld", static_cast<long long>(i / 2));
  return buf;
}

void enqueue_batch(Database& db, Outbox& ob, std::int64_t first, std::int64_t n) {
  auto txn = must(db.begin(), "begin");
  for (std::int64_t i = first; i < first + n; ++i) {
    must(ob.enqueue(txn, "charge", session_key(i), idem_key(i), kPayload), "enqueue");
  }
  must(txn.commit(), "commit");
}

// Setup only: a backlog of n items, filled without fsyncs.
void prefill(Database& db, Outbox& ob, std::int64_t n, std::int64_t per_commit) {
  must(db.exec("PRAGMA synchronous=OFF"), "synchronous off");
  for (std::int64_t first = 0; first < n; first += per_commit) {
    enqueue_batch(db, ob, first, std::min(per_commit, n - first));
  }
  must(db.exec("PRAGMA synchronous=FULL"), "synchronous full");
}

// Single durable enqueue vs raw one-row insert, alternating blocks.
void BM_EnqueueVsRaw(benchmark::State& state) {
  for (auto _ : state) {
    Database raw = must(Database::open(g_dir / "raw.db"), "open raw");
    must(raw.exec("DROP TABLE IF EXISTS t; CREATE TABLE t(id INTEGER PRIMARY KEY, topic TEXT, "
                  "ordering_key TEXT, idempotency_key TEXT, payload BLOB, created_ms INTEGER)"),
         "create raw");
    Statement ins = must(raw.prepare("INSERT INTO t(topic, ordering_key, idempotency_key, payload, "
                                     "created_ms) VALUES (?1, ?2, ?3, ?4, ?5)"),
                         "prepare raw");
    Database qdb = fresh_queue_db(g_dir / "single.db");
    const auto limits = bench_limits();
    Outbox ob = must(Outbox::open(qdb, limits, SystemClock::instance()), "outbox");
    const std::span<const std::uint8_t> bytes(
        reinterpret_cast<const std::uint8_t*>(kPayload.data()), kPayload.size());
    double raw_s = 0, q_s = 0;
    std::int64_t raw_n = 0, q_n = 0;
    constexpr int kBlock = 100;
    const auto start = Steady::now();
    for (int round = 0; round < 4 || (seconds_since(start) < 12 && round < 200); ++round) {
      auto t = Steady::now();
      for (int i = 0; i < kBlock; ++i, ++raw_n) {
        auto txn = must(raw.begin(), "begin raw");
        ins.reset();
        ins.bind(1, "charge")
            .bind(2, session_key(raw_n))
            .bind(3, idem_key(raw_n))
            .bind_blob(4, bytes)
            .bind(5, SystemClock::instance().unix_millis());
        must(ins.run(), "insert raw");
        must(txn.commit(), "commit raw");
      }
      raw_s += seconds_since(t);
      t = Steady::now();
      for (int i = 0; i < kBlock; ++i, ++q_n) {
        auto txn = must(qdb.begin(), "begin");
        must(ob.enqueue(txn, "charge", session_key(q_n), idem_key(q_n), kPayload), "enqueue");
        must(txn.commit(), "commit");
      }
      q_s += seconds_since(t);
    }
    const double raw_rate = static_cast<double>(raw_n) / raw_s;
    const double q_rate = static_cast<double>(q_n) / q_s;
    state.counters["raw_commits_per_s"] = raw_rate;
    state.counters["enqueue_commits_per_s"] = q_rate;
    state.counters["ratio"] = q_rate / raw_rate;
    state.counters["items_each"] = static_cast<double>(q_n);
    state.SetLabel(q_rate / raw_rate >= 0.8 ? "ratio target 0.8 met" : "ratio target 0.8 MISSED");
  }
  remove_db(g_dir / "raw.db");
  remove_db(g_dir / "single.db");
}
BENCHMARK(BM_EnqueueVsRaw)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_EnqueueBatched(benchmark::State& state) {
  for (auto _ : state) {
    Database db = fresh_queue_db(g_dir / "batched.db");
    const auto limits = bench_limits();
    Outbox ob = must(Outbox::open(db, limits, SystemClock::instance()), "outbox");
    constexpr std::int64_t kPerCommit = 1000, kCommits = 200;
    const auto t = Steady::now();
    for (std::int64_t c = 0; c < kCommits; ++c) enqueue_batch(db, ob, c * kPerCommit, kPerCommit);
    const double rate = static_cast<double>(kPerCommit * kCommits) / seconds_since(t);
    state.counters["items_per_s"] = rate;
    state.SetLabel(rate >= 100'000 ? "target 100k/s met" : "target 100k/s MISSED");
  }
  remove_db(g_dir / "batched.db");
}
BENCHMARK(BM_EnqueueBatched)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_LeaseAckCycle(benchmark::State& state) {
  for (auto _ : state) {
    Database db = fresh_queue_db(g_dir / "cycle.db");
    const auto limits = bench_limits();
    Outbox ob = must(Outbox::open(db, limits, SystemClock::instance()), "outbox");
    prefill(db, ob, 40'000, 10'000);
    const std::chrono::milliseconds lease_ms(limits.lease_ms);
    // One item per lease, each call its own commit.
    std::int64_t n = 0;
    auto t = Steady::now();
    while (n < 3000 && seconds_since(t) < 8) {
      auto items = must(ob.lease({}, 1, lease_ms), "lease");
      if (items.empty()) die("backlog ran dry");
      must(ob.ack(items[0].token()), "ack");
      ++n;
    }
    state.counters["single_cycles_per_s"] = static_cast<double>(n) / seconds_since(t);
    // 16 per lease, the acks of a batch in one commit (what the Drainer does).
    n = 0;
    t = Steady::now();
    while (n < 16'000 && seconds_since(t) < 8) {
      auto items = must(ob.lease({}, 16, lease_ms), "lease");
      if (items.empty()) die("backlog ran dry");
      auto txn = must(db.begin(), "begin");
      for (const Item& it : items) must(ob.apply(txn, it.token(), Outcome::ack()), "ack");
      must(txn.commit(), "commit");
      n += static_cast<std::int64_t>(items.size());
    }
    state.counters["batched16_items_per_s"] = static_cast<double>(n) / seconds_since(t);
  }
  remove_db(g_dir / "cycle.db");
}
BENCHMARK(BM_LeaseAckCycle)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Drain100k(benchmark::State& state) {
  for (auto _ : state) {
    Database db = fresh_queue_db(g_dir / "drain.db");
    auto limits = bench_limits();
    limits.drain_interval_ms = 1000;
    Outbox ob = must(Outbox::open(db, limits, SystemClock::instance()), "outbox");
    constexpr std::int64_t kBacklog = 100'000;
    prefill(db, ob, kBacklog, 10'000);
    boost::asio::io_context io;
    std::int64_t sent = 0;
    Drainer drainer(io, ob, limits, SystemClock::instance(),
                    [&](const Item&, Drainer::Completion done) {
                      ++sent;
                      done(Outcome::ack());
                    });
    const auto t = Steady::now();
    drainer.start();
    while (drainer.counters().acked < kBacklog && seconds_since(t) < 120) {
      io.run_for(std::chrono::milliseconds(50));
    }
    const double secs = seconds_since(t);
    const auto c = drainer.counters();
    state.counters["items_per_s"] = static_cast<double>(c.acked) / secs;
    state.counters["seconds"] = secs;
    state.counters["max_in_flight_seen"] = c.max_in_flight_seen;
    state.SetLabel(c.acked == kBacklog ? "backlog drained"
                                       : "TIMED OUT before the backlog drained");
  }
  remove_db(g_dir / "drain.db");
}
BENCHMARK(BM_Drain100k)->Iterations(1)->Unit(benchmark::kMillisecond);

// Runs in the exec'd child: a cold process start against the big backlog.
int startup_probe(const fs::path& file) {
  const auto t = Steady::now();
  auto db = Database::open(file);
  if (!db) return 3;
  const auto limits = bench_limits();
  auto ob = Outbox::open(*db, limits, SystemClock::instance());
  if (!ob) return 4;
  if (!ob->refresh_metrics()) return 5;
  auto first = ob->lease({}, 16, std::chrono::milliseconds(limits.lease_ms));
  if (!first || first->size() != 16) return 6;
  const double ms = seconds_since(t) * 1000;
  // Leave the backlog as it was for the next probe.
  auto txn = db->begin();
  if (!txn) return 7;
  for (const Item& it : *first) {
    if (!ob->apply(*txn, it.token(), Outcome::retry("bench", std::chrono::milliseconds(0))))
      return 8;
  }
  if (!txn->commit()) return 9;
  long hwm_kb = -1;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) hwm_kb = std::stol(line.substr(6));
  }
  std::printf("%.3f %ld\n", ms, hwm_kb);
  return 0;
}

void BM_Startup1M(benchmark::State& state) {
  const fs::path file = g_dir / "million.db";
  for (auto _ : state) {
    {
      Database db = fresh_queue_db(file);
      must(db.exec("PRAGMA cache_size=-262144"), "cache");  // building only
      const auto limits = bench_limits();
      Outbox ob = must(Outbox::open(db, limits, SystemClock::instance()), "outbox");
      const auto t = Steady::now();
      prefill(db, ob, 1'000'000, 50'000);
      state.counters["build_s"] = seconds_since(t);
      must(db.exec("PRAGMA wal_checkpoint(TRUNCATE)"), "checkpoint");
    }
    state.counters["db_mb"] = static_cast<double>(fs::file_size(file)) / (1024.0 * 1024.0);
    double best_ms = 1e9, worst_ms = 0, rss_mb = 0;
    for (int probe = 0; probe < 3; ++probe) {
      int fds[2];
      if (::pipe(fds) != 0) die("pipe");
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::dup2(fds[1], 1);
        ::close(fds[0]);
        ::close(fds[1]);
        ::execl("/proc/self/exe", "queue_bench", "--startup-probe", file.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
      }
      ::close(fds[1]);
      char buf[128] = {};
      const ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
      ::close(fds[0]);
      int status = 0;
      ::waitpid(pid, &status, 0);
      double ms = 0;
      long kb = 0;
      if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
          std::sscanf(buf, "%lf %ld", &ms, &kb) != 2) {
        die("startup probe failed, status " + std::to_string(WEXITSTATUS(status)));
      }
      best_ms = std::min(best_ms, ms);
      worst_ms = std::max(worst_ms, ms);
      rss_mb = std::max(rss_mb, static_cast<double>(kb) / 1024.0);
    }
    state.counters["startup_ms_best"] = best_ms;
    state.counters["startup_ms_worst"] = worst_ms;
    state.counters["peak_rss_mb"] = rss_mb;
    state.SetLabel(std::string(worst_ms <= 200 ? "startup <= 200 ms" : "startup > 200 ms MISSED") +
                   (rss_mb <= 32 ? ", rss <= 32 MB" : ", rss > 32 MB MISSED"));
  }
  remove_db(file);
}
BENCHMARK(BM_Startup1M)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lanegate::queue

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc == 3 && std::string(argv[1]) == "--startup-probe") {
    return lanegate::queue::startup_probe(argv[2]);
  }
  const char* env = std::getenv("LANEGATE_BENCH_DIR");
  const fs::path base = env ? fs::path(env) : fs::read_symlink("/proc/self/exe").parent_path();
  std::string tmpl = (base / "queue-bench-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  lanegate::queue::g_dir = tmpl;
  std::fprintf(stderr, "queue_bench: data in %s\n", tmpl.c_str());
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(lanegate::queue::g_dir, ec);
  return 0;
}
