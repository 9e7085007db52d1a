// Issue 13: lanegated left its database 0644 (claim tokens, buyer data, plates) and relied
// on the unit's UMask=0077. Run from a shell with the usual umask 022 it must still create
// its files for its own user only.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <string>

#include "daemon_fixture.h"

namespace {

using namespace lanegate::daemon_test;

TEST_F(DaemonTest, AFreshStateDirectoryGetsOwnerOnlyFilesUnderAPermissiveUmask) {
  start(nullptr, /*umask=*/022);
  ASSERT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
  for (const char* name : {"lanegate.db", "lanegate.db-wal", "lanegate.db-shm", "lanegated.lock"}) {
    const fs::path p = state_dir() / name;
    ASSERT_TRUE(fs::exists(p)) << p;
    EXPECT_EQ(octal(file_mode(p)), "0600") << p;
  }
  EXPECT_EQ(file_mode(state_dir()) & 0007, 0u)
      << "state directory mode " << octal(file_mode(state_dir()));
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(wait_exit(), 0);
}

TEST_F(DaemonTest, ADatabaseOthersCanReadIsMadeOwnerOnlyAtStart) {
  start();
  ASSERT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  ASSERT_EQ(wait_exit(), 0);
  // As an older lanegated, run outside systemd, left it.
  const fs::path db = state_dir() / "lanegate.db";
  ASSERT_EQ(chmod(db.c_str(), 0644), 0);
  start();
  ASSERT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
  for (const char* name : {"lanegate.db", "lanegate.db-wal", "lanegate.db-shm"}) {
    EXPECT_EQ(octal(file_mode(state_dir() / name)), "0600") << name;
  }
  EXPECT_TRUE(stderr_contains("0644")) << read_file(dir_ / "stderr.log");
}

TEST_F(DaemonTest, TheCliCreatesAMissingDatabaseOwnerOnly) {
  fs::create_directories(state_dir());
  SpawnOptions o;
  o.stderr_file = dir_ / "cli.log";
  o.umask = 022;
  o.stdout_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t cli = spawn({binary("lanegate"), "--config", config_.string(), "queue", "stats"}, o);
  close(o.stdout_fd);
  ASSERT_GT(cli, 0);
  const auto status = wait_status(cli, 15s);
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << describe_status(status) << ": " << read_file(dir_ / "cli.log");
  const fs::path db = state_dir() / "lanegate.db";
  ASSERT_TRUE(fs::exists(db));
  EXPECT_EQ(octal(file_mode(db)), "0600");
}

}  // namespace
