// lanegated as an operator runs it: started by systemd (we play systemd's side of the
// sd_notify protocol on a real NOTIFY_SOCKET), reloaded with SIGHUP, stopped with SIGTERM.

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "daemon_fixture.h"

namespace {

using namespace lanegate::daemon_test;

TEST_F(DaemonTest, NotifiesReadyAndStopsCleanlyOnSigterm) {
  start();
  ASSERT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
  EXPECT_TRUE(fs::exists(dir_ / "state" / "lanegate.db"));
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_TRUE(wait_notify("STOPPING=1"));
  EXPECT_EQ(wait_exit(), 0);
  EXPECT_NE(read_file(dir_ / "stderr.log").find("lanegated stopped"), std::string::npos);
}

TEST_F(DaemonTest, SighupWithABrokenFileKeepsTheOldConfigAndSaysWhy) {
  start();
  ASSERT_TRUE(wait_notify("READY=1"));
  {
    std::ofstream out(config_);
    out << "[gateway]\nid = \"gw\"\nsite_name = \"x\"\nstate_dir = \"" << (dir_ / "state").string()
        << "\"\nno_such_key = 1\n";
  }
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  EXPECT_TRUE(stderr_contains("configuration reload rejected")) << read_file(dir_ / "stderr.log");
  EXPECT_TRUE(stderr_contains("no_such_key"));
  // Still alive and serving: a valid file is accepted by the next SIGHUP.
  write_config(config_, "renamed-gw");
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  EXPECT_TRUE(stderr_contains("configuration reloaded")) << read_file(dir_ / "stderr.log");
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(wait_exit(), 0);
}

TEST_F(DaemonTest, RefusesToStartOnAnInvalidConfigNamingTheError) {
  {
    std::ofstream out(config_);
    out << "[gateway]\nid = 7\n";
  }
  start();
  EXPECT_EQ(wait_exit(), 1);
  const std::string err = read_file(dir_ / "stderr.log");
  EXPECT_NE(err.find("lanegate.toml:2"), std::string::npos) << err;
  EXPECT_NE(err.find("not starting"), std::string::npos) << err;
}

TEST_F(DaemonTest, PetsTheWatchdogWhenSystemdAsksForIt) {
  start("200000");
  ASSERT_TRUE(wait_notify("READY=1"));
  EXPECT_TRUE(wait_notify("WATCHDOG=1", 3s));
  kill(pid_, SIGTERM);
  EXPECT_EQ(wait_exit(), 0);
}

}  // namespace

namespace {
// Removes the per-run demo PKI when the test binary ends.
class PkiCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::filesystem::remove_all(std::filesystem::temp_directory_path() /
                                ("lanegated-test-pki-" + std::to_string(getpid())));
  }
};
[[maybe_unused]] const auto* const kPkiCleanup = ::testing::AddGlobalTestEnvironment(new PkiCleanup);
}  // namespace
