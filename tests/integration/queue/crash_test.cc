// Crash test: a child process enqueues in a loop, each enqueue its own committed transaction,
// and reports each success on a pipe only after commit() returned. The parent SIGKILLs it at a
// random moment, 60 rounds. After each round, for that round's items (idempotency keys
// "r<round>-<i>", i counting from 0):
//   1. every reported item is present exactly once, with the reported id;
//   2. the items present are exactly i = 0..k with k = last reported, or k = last reported + 1
//      (that one commit landed, the kill came before its report); nothing else is present;
//   3. the database passes PRAGMA integrity_check.
// The children also lease items and die holding them; at the end every item, leased ones
// included, is leased again once those leases expire, and each is delivered exactly once.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <random>
#include <set>

#include "config/config.h"
#include "core/clock.h"
#include "core/sqlite.h"
#include "offline_queue/queue.h"

namespace lanegate::queue {
namespace {

struct Report {
  std::int32_t index;
  std::int64_t id;
};

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-crash-XXXXXX").string();
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

// Runs in the forked child; never returns.
[[noreturn]] void child_enqueue_forever(const std::filesystem::path& file, int round, int fd) {
  config::QueueLimits limits;
  auto db = Database::open(file);
  if (!db) ::_exit(3);
  auto outbox = Outbox::open(*db, limits, SystemClock::instance());
  if (!outbox) ::_exit(4);
  const std::string payload(120, 'x');
  for (std::int32_t i = 0;; ++i) {
    auto txn = db->begin();
    if (!txn) ::_exit(5);
    auto r = outbox->enqueue(*txn, "charge", "session-" + std::to_string(i % 5),
                             "r" + std::to_string(round) + "-" + std::to_string(i), payload);
    if (!r || !r->created) ::_exit(6);
    if (!txn->commit()) ::_exit(7);
    const Report rep{i, r->id};
    if (::write(fd, &rep, sizeof rep) != static_cast<ssize_t>(sizeof rep)) ::_exit(8);
    if (i % 3 == 2) {
      // Take a lease and never resolve it: the parent checks it comes back.
      auto leased = outbox->lease({}, 1, std::chrono::milliseconds(limits.lease_ms));
      if (!leased) ::_exit(9);
    }
  }
}

TEST(QueueCrash, EveryReportedEnqueueSurvivesSigkillExactlyOnceAndLeasesComeBack) {
  TempDir dir;
  const auto file = dir.path() / "gw.db";
  {
    auto db = Database::open(file);
    ASSERT_TRUE(db.has_value());
    ASSERT_TRUE(db->migrate(schema_steps()).has_value());
  }
  std::mt19937 rng(std::random_device{}());
  constexpr int kRounds = 60;
  std::int64_t total_reported = 0, total_present = 0, rounds_with_extra = 0;
  bool some_lease_committed =
      false;  // a round reported item 3, so the lease after item 2 committed
  std::set<std::int64_t> all_ids;

  for (int round = 0; round < kRounds && !::testing::Test::HasFailure(); ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      child_enqueue_forever(file, round, fds[1]);
    }
    ::close(fds[1]);
    ::usleep(5000 + rng() % 75000);  // a commit takes 0.2..3 ms on the test disk
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "child exited on its own with status " << WEXITSTATUS(status);

    std::vector<Report> reported;
    for (;;) {
      Report rep;
      const ssize_t n = ::read(fds[0], &rep, sizeof rep);
      if (n == 0) break;
      ASSERT_EQ(n, static_cast<ssize_t>(sizeof rep));  // pipe writes this small are atomic
      reported.push_back(rep);
    }
    ::close(fds[0]);

    auto db = Database::open(file);
    ASSERT_TRUE(db.has_value());
    auto check = db->prepare("PRAGMA integrity_check");
    ASSERT_TRUE(check.has_value());
    ASSERT_TRUE(check->step().value());
    EXPECT_EQ(check->column_text(0), "ok") << "round " << round;

    auto st = db->prepare(
        "SELECT idempotency_key, id FROM outbox_item WHERE idempotency_key LIKE ?1 ORDER BY id");
    ASSERT_TRUE(st.has_value());
    st->bind(1, "r" + std::to_string(round) + "-%");
    std::map<std::int32_t, std::int64_t> present;  // index -> id
    const std::string prefix = "r" + std::to_string(round) + "-";
    for (;;) {
      auto row = st->step();
      ASSERT_TRUE(row.has_value());
      if (!*row) break;
      const std::string key = st->column_text(0);
      ASSERT_EQ(key.rfind(prefix, 0), 0u) << key;
      const auto index = static_cast<std::int32_t>(std::stol(key.substr(prefix.size())));
      EXPECT_TRUE(present.emplace(index, st->column_int64(1)).second) << "duplicate " << key;
      all_ids.insert(st->column_int64(1));
    }
    st->reset();

    // 1. Every reported enqueue is present, exactly once, with its id.
    for (std::size_t k = 0; k < reported.size(); ++k) {
      ASSERT_EQ(reported[k].index, static_cast<std::int32_t>(k)) << "reports arrive in order";
      auto it = present.find(reported[k].index);
      ASSERT_NE(it, present.end()) << "round " << round << ": reported item " << k << " lost";
      EXPECT_EQ(it->second, reported[k].id);
    }
    // 2. Nothing else, except the one commit that landed just before the kill.
    const auto n_reported = static_cast<std::int32_t>(reported.size());
    for (const auto& [index, id] : present) {
      EXPECT_LE(index, n_reported)
          << "round " << round << ": unreported item " << index << " beyond the last commit";
    }
    ASSERT_TRUE(present.size() == reported.size() || present.size() == reported.size() + 1)
        << "round " << round << ": " << present.size() << " present, " << reported.size()
        << " reported";
    rounds_with_extra += present.size() > reported.size();
    some_lease_committed = some_lease_committed || reported.size() >= 4;
    total_reported += n_reported;
    total_present += static_cast<std::int64_t>(present.size());
  }
  ASSERT_TRUE(some_lease_committed) << "children made too little progress to prove anything";
  std::printf(
      "crash test: %d rounds, %lld enqueues reported, %lld present, %lld rounds with a "
      "commit landed but unreported\n",
      kRounds, static_cast<long long>(total_reported), static_cast<long long>(total_present),
      static_cast<long long>(rounds_with_extra));

  // The dead children's leases come back once they expire; each item is delivered once.
  auto db = Database::open(file);
  ASSERT_TRUE(db.has_value());
  config::QueueLimits limits;
  FakeClock later(SystemClock::instance().now() + std::chrono::hours(2));
  auto outbox = Outbox::open(*db, limits, later);
  ASSERT_TRUE(outbox.has_value());
  auto before = outbox->stats();
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(before->leased, 0) << "the children held leases when killed";
  EXPECT_EQ(before->live_rows, total_present);
  std::multiset<std::int64_t> delivered;
  for (int guard = 0; guard < 100'000; ++guard) {
    auto batch = outbox->lease({}, 64, std::chrono::milliseconds(limits.lease_ms));
    ASSERT_TRUE(batch.has_value());
    if (batch->empty()) break;
    auto txn = db->begin();
    ASSERT_TRUE(txn.has_value());
    for (const Item& item : *batch) {
      delivered.insert(item.id);
      ASSERT_TRUE(outbox->apply(*txn, item.token(), Outcome::ack()).has_value());
    }
    ASSERT_TRUE(txn->commit().has_value());
  }
  EXPECT_EQ(std::set<std::int64_t>(delivered.begin(), delivered.end()), all_ids);
  EXPECT_EQ(delivered.size(), all_ids.size()) << "an item was delivered twice";
}

}  // namespace
}  // namespace lanegate::queue
