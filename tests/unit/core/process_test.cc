// core/process.h: the signal policy every lanegate binary runs with, and the lock that
// keeps a second lanegated off a state directory.

#include "core/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lanegate::process {
namespace {

namespace fs = std::filesystem;

class ExclusiveFileLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "process-lock-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ExclusiveFileLockTest, OneHolderAtATimeNamedByItsPid) {
  const fs::path file = dir_ / "daemon.lock";
  auto first = ExclusiveFileLock::acquire(file);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(ExclusiveFileLock::recorded_pid(file), getpid());
  struct stat st{};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // flock belongs to the open file, so even a second try from this process is refused.
  auto second = ExclusiveFileLock::acquire(file);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::kBusy);
  EXPECT_NE(second.error().message.find(file.string()), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("pid " + std::to_string(getpid())), std::string::npos)
      << second.error().message;

  // Released with its holder; the file stays and is taken over.
  first = std::unexpected(Error{});
  auto third = ExclusiveFileLock::acquire(file);
  EXPECT_TRUE(third) << third.error().to_string();
}

TEST_F(ExclusiveFileLockTest, AMissingDirectoryIsAnIoErrorNamingTheFile) {
  auto lock = ExclusiveFileLock::acquire(dir_ / "missing" / "daemon.lock");
  ASSERT_FALSE(lock);
  EXPECT_EQ(lock.error().code, Errc::kIo);
  EXPECT_NE(lock.error().message.find("missing/daemon.lock"), std::string::npos)
      << lock.error().message;
}

TEST(SignalPolicy, AWriteToAClosedPipeIsAnErrorNotADeath) {
  EXPECT_EXIT(
      {
        signal(SIGPIPE, SIG_DFL);
        install_signal_policy("process_test");
        int p[2];
        if (pipe(p) != 0) _exit(2);
        close(p[0]);
        const bool epipe = write(p[1], "x", 1) < 0 && errno == EPIPE;
        _exit(epipe ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(SignalPolicy, AnAbortLeavesALineThenDiesOfTheSignal) {
  EXPECT_EXIT(
      {
        install_signal_policy("process_test");
        std::abort();
      },
      ::testing::KilledBySignal(SIGABRT),
      "ERROR fatal signal, terminating signal=SIGABRT pid=[0-9]+ program=process_test");
}

}  // namespace
}  // namespace lanegate::process
