// Full queue, the way the gateway meets it: each passage is recorded together with its upload
// in one transaction; when the outbox refuses, the gateway stops approving offline passages
// (rolls back the approval) and loses nothing already recorded; once the drain loop has
// delivered items, approvals resume.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>

#include "config/config.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/sqlite.h"
#include "offline_queue/drainer.h"
#include "offline_queue/queue.h"

namespace lanegate::queue {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-full-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The gateway's pattern: record + enqueue in one commit, or neither.
Result<std::int64_t> approve_offline_passage(Database& db, Outbox& outbox, int n) {
  auto txn = db.begin();
  if (!txn) return std::unexpected(txn.error());
  if (auto s =
          db.exec("INSERT INTO passage(plate, fen) VALUES ('B" + std::to_string(n) + "', 500)");
      !s) {
    return std::unexpected(s.error());
  }
  auto item = outbox.enqueue(*txn, "charge", "session-" + std::to_string(n),
                             "charge:" + std::to_string(n), "{\"fen\":500}");
  if (!item) return std::unexpected(item.error());  // txn rolls back: no passage approved
  if (auto c = txn->commit(); !c) return std::unexpected(c.error());
  return item->id;
}

std::int64_t count(Database& db, const std::string& sql) {
  auto st = db.prepare(sql);
  EXPECT_TRUE(st.has_value());
  EXPECT_TRUE(st->step().value_or(false));
  return st->column_int64(0);
}

TEST(QueueFull, RefusesCleanlyLosesNothingAndRecoversAfterTheDrain) {
  TempDir dir;
  auto db = Database::open(dir.path() / "gw.db");
  ASSERT_TRUE(db.has_value());
  ASSERT_TRUE(db->migrate(schema_steps()).has_value());
  ASSERT_TRUE(db->exec("CREATE TABLE passage(id INTEGER PRIMARY KEY, plate TEXT, fen INTEGER)")
                  .has_value());
  config::QueueLimits limits;
  limits.max_rows = 50;
  limits.rate_per_second = 0;
  limits.drain_interval_ms = 5;
  FakeClock clock;
  auto outbox = Outbox::open(*db, limits, clock);
  ASSERT_TRUE(outbox.has_value());
  auto& refused = metrics::Registry::global().counter("lanegate_queue_enqueue_failures_total", "",
                                                      {{"reason", "rows"}});
  const auto refused_before = refused.value();

  // The uplink is down: 50 passages fill the queue, the next ones are refused.
  for (int n = 0; n < 50; ++n) ASSERT_TRUE(approve_offline_passage(*db, *outbox, n).has_value());
  for (int n = 50; n < 55; ++n) {
    auto r = approve_offline_passage(*db, *outbox, n);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::kQueueFull);
    EXPECT_NE(r.error().message.find("queue.max_rows = 50"), std::string::npos);
  }
  EXPECT_EQ(refused.value() - refused_before, 5);
  EXPECT_EQ(count(*db, "SELECT count(*) FROM passage"), 50);
  EXPECT_EQ(count(*db, "SELECT count(*) FROM outbox_item"), 50);
  // Every recorded passage has its upload, and no refused one left a trace.
  EXPECT_EQ(count(*db,
                  "SELECT count(*) FROM passage p JOIN outbox_item o "
                  "ON o.idempotency_key = 'charge:' || substr(p.plate, 2)"),
            50);

  // The uplink returns: the drain loop delivers everything, and approvals resume.
  boost::asio::io_context io;
  int delivered = 0;
  Drainer drainer(io, *outbox, limits, clock, [&](const Item&, Drainer::Completion done) {
    ++delivered;
    done(Outcome::ack());
  });
  drainer.start();
  drainer.link_up();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (drainer.counters().acked < 50 && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(drainer.counters().acked, 50);
  EXPECT_EQ(delivered, 50);
  for (int n = 50; n < 55; ++n) EXPECT_TRUE(approve_offline_passage(*db, *outbox, n).has_value());
  EXPECT_EQ(count(*db, "SELECT count(*) FROM passage"), 55);
  EXPECT_EQ(count(*db, "SELECT count(*) FROM outbox_item WHERE state = 2"), 50);
}

}  // namespace
}  // namespace lanegate::queue
