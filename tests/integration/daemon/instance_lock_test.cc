// Issue 13, defect 12: a second lanegated on the same state directory released the running
// daemon's outbox leases (and wrote its own run record) before it failed on the busy API
// port. Only one lanegated may run on a state directory; the lanegate CLI, which opens
// the same database, keeps working beside it.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <string>

#include "core/sqlite.h"
#include "daemon_fixture.h"

namespace {

using namespace lanegate::daemon_test;
using lanegate::Database;

// Everything a second instance could change that the running one depends on: the run
// records, every outbox item with its lease, and the schema version.
std::string database_snapshot(const fs::path& db_file) {
  auto db = Database::open(db_file);
  if (!db) return "cannot open: " + db.error().to_string();
  std::string out;
  auto rows = [&](const char* sql) {
    auto st = db->prepare(sql);
    if (!st) {
      out += "prepare failed: " + st.error().to_string() + "\n";
      return;
    }
    for (;;) {
      auto r = st->step();
      if (!r || !*r) break;
      for (int c = 0; c < st->column_count(); ++c) {
        out += (st->column_is_null(c) ? std::string("NULL") : st->column_text(c)) + "|";
      }
      out += "\n";
    }
  };
  rows("SELECT id, started_at, version FROM gateway_runs ORDER BY id");
  rows(
      "SELECT id, topic, state, attempts, available_ms, lease_expires_ms, last_error FROM "
      "outbox_item "
      "ORDER BY id");
  rows("PRAGMA user_version");
  return out;
}

TEST_F(DaemonTest, ASecondLanegatedOnTheSameStateDirectoryExitsNamingTheFirstAndChangesNothing) {
  // A fixed port, as in production: the second instance used to get as far as the API.
  write_config(config_, "test-gw", free_tcp_port());
  start();
  ASSERT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
  const fs::path db_file = state_dir() / "lanegate.db";
  {
    // An item the running daemon is sending: leased, lease good for another minute.
    auto db = Database::open(db_file);
    ASSERT_TRUE(db) << db.error().to_string();
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto st = db->prepare(
        "INSERT INTO outbox_item(seq, topic, ordering_key, idempotency_key, payload, state, head, "
        "attempts, "
        "created_ms, available_ms, lease_expires_ms) VALUES(1, 'test.in_flight', 'k', "
        "'in-flight-1', x'7b7d', 1, "
        "1, 1, ?1, ?1, ?2)");
    ASSERT_TRUE(st) << st.error().to_string();
    ASSERT_TRUE(st->bind_all(now_ms, now_ms + 60'000).run());
  }
  const std::string before = database_snapshot(db_file);
  ASSERT_NE(before.find("test.in_flight|1|"), std::string::npos) << before;

  const fs::path second_log = dir_ / "second.log";
  const pid_t second =
      spawn({binary("lanegated"), "--config", config_.string()}, daemon_options(second_log));
  ASSERT_GT(second, 0);
  const auto status = wait_status(second, 15s);
  if (!status) {
    kill(second, SIGKILL);
    waitpid(second, nullptr, 0);
  }
  const std::string err = read_file(second_log);
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 1)
      << "the second lanegated " << describe_status(status) << "\n"
      << err;
  EXPECT_NE(err.find(state_dir().string()), std::string::npos)
      << "the message names the state directory:\n"
      << err;
  EXPECT_NE(err.find("pid " + std::to_string(pid_)), std::string::npos)
      << "the message names the running daemon's pid " << pid_ << ":\n"
      << err;
  EXPECT_EQ(err.find("returned leases"), std::string::npos) << err;
  EXPECT_EQ(database_snapshot(db_file), before) << "the second lanegated changed the database";

  // The first one was not disturbed, and the CLI works beside it.
  EXPECT_EQ(kill(pid_, 0), 0);
  SpawnOptions cli_options;
  cli_options.stderr_file = dir_ / "cli.log";
  cli_options.stdout_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t cli =
      spawn({binary("lanegate"), "--config", config_.string(), "queue", "stats"}, cli_options);
  close(cli_options.stdout_fd);
  const auto cli_status = wait_status(cli, 15s);
  EXPECT_TRUE(cli_status && WIFEXITED(*cli_status) && WEXITSTATUS(*cli_status) == 0)
      << "lanegate queue stats " << describe_status(cli_status) << ": "
      << read_file(dir_ / "cli.log");

  // Stopped, it leaves no lock behind that keeps the next start out.
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  ASSERT_EQ(wait_exit(), 0);
  start();
  EXPECT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
}

TEST_F(DaemonTest, WithAnyFreePortASecondLanegatedStillDoesNotRunBesideTheFirst) {
  // listen_port = 0: nothing else would stop the second one; two daemons would lease and
  // send the same outbox.
  start();
  ASSERT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
  const fs::path other = dir_ / "other.toml";
  write_config(other, "other-gw");
  const pid_t second =
      spawn({binary("lanegated"), "--config", other.string()}, daemon_options(dir_ / "second.log"));
  ASSERT_GT(second, 0);
  const auto status = wait_status(second);
  if (!status) {
    kill(second, SIGKILL);
    waitpid(second, nullptr, 0);
  }
  EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 1)
      << "the second lanegated " << describe_status(status) << "\n"
      << read_file(dir_ / "second.log");
  EXPECT_EQ(kill(pid_, 0), 0);
}

}  // namespace
