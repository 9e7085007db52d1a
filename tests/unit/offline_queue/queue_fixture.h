#pragma once
// Shared by the offline_queue tests: a per-test temp dir with a real SQLite file carrying the
// queue schema, a FakeClock and an Outbox with deterministic jitter.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/sqlite.h"
#include "offline_queue/queue.h"

namespace lanegate::queue::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-queue-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
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

inline Database open_db(const std::filesystem::path& file) {
  auto db = Database::open(file);
  if (!db) {
    ADD_FAILURE() << db.error().to_string();
    std::abort();
  }
  auto m = db->migrate(schema_steps());
  if (!m) {
    ADD_FAILURE() << m.error().to_string();
    std::abort();
  }
  return std::move(*db);
}

class QueueTest : public ::testing::Test {
 protected:
  QueueTest() {
    db_.emplace(open_db(dir_.path() / "gw.db"));
    limits_.retry_base_ms = 1000;
    limits_.retry_cap_ms = 60'000;
    limits_.lease_ms = 30'000;
    reopen_outbox();
  }

  // Drops the Outbox and the connection and opens both again, as a restarted process would.
  void restart() {
    outbox_.reset();
    db_.reset();
    db_.emplace(open_db(dir_.path() / "gw.db"));
    reopen_outbox();
  }

  void reopen_outbox() {
    OutboxOptions options;
    options.jitter = [] { return 1.0; };  // the full backoff: deterministic
    auto ob = Outbox::open(*db_, limits_, clock_, options);
    ASSERT_TRUE(ob.has_value()) << ob.error().to_string();
    outbox_.emplace(std::move(*ob));
  }

  Result<Enqueued> enqueue(std::string_view topic, std::string_view key, std::string_view idem,
                           std::string_view payload = "{}") {
    auto txn = db_->begin();
    if (!txn) return std::unexpected(txn.error());
    auto r = outbox_->enqueue(*txn, topic, key, idem, payload);
    if (!r) return r;
    if (auto c = txn->commit(); !c) return std::unexpected(c.error());
    return r;
  }

  std::int64_t must_enqueue(std::string_view topic, std::string_view key, std::string_view idem,
                            std::string_view payload = "{}") {
    auto r = enqueue(topic, key, idem, payload);
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return r ? r->id : -1;
  }

  std::vector<Item> lease(int n, std::vector<std::string> topics = {}) {
    auto r = outbox_->lease(topics, n, std::chrono::milliseconds(limits_.lease_ms));
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return r ? std::move(*r) : std::vector<Item>{};
  }

  static std::vector<std::int64_t> ids(const std::vector<Item>& items) {
    std::vector<std::int64_t> out;
    for (const auto& i : items) out.push_back(i.id);
    return out;
  }

  std::int64_t count_rows(std::string_view where = "1") {
    auto st = db_->prepare("SELECT count(*) FROM outbox_item WHERE " + std::string(where));
    EXPECT_TRUE(st.has_value());
    auto row = st->step();
    EXPECT_TRUE(row.has_value() && *row);
    return st->column_int64(0);
  }

  TempDir dir_;
  std::optional<Database> db_;
  config::QueueLimits limits_;
  FakeClock clock_;
  std::optional<Outbox> outbox_;
};

}  // namespace lanegate::queue::testing
