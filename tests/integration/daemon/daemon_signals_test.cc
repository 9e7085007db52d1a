// lanegated as an operator runs it: started by systemd (we play systemd's side of the
// sd_notify protocol on a real NOTIFY_SOCKET), reloaded with SIGHUP, stopped with SIGTERM.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegated-test-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    config_ = dir_ / "lanegate.toml";
    write_config(config_, "test-gw");
    notify_path_ = dir_ / "notify.sock";
    notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(notify_fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", notify_path_.c_str());
    ASSERT_EQ(bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(notify_fd_);
    fs::remove_all(dir_);
  }

  // A small but complete site: one entry lane whose devices are not there (the drivers
  // keep reconnecting), a provider account with real demo keys (nothing listens at its
  // URL: the uplink is down), and the API on a free port.
  void write_config(const fs::path& p, const std::string& id) {
    const std::string pki = pki_dir().string();
    std::ofstream out(p);
    out << "[gateway]\nid = \"" << id << "\"\nsite_name = \"Test lot\"\nstate_dir = \""
        << (dir_ / "state").string() << "\"\n"
        << "[api]\nlisten_address = \"127.0.0.1\"\nlisten_port = 0\n"
        << "[provider]\nbase_url = \"https://127.0.0.1:9\"\nmchid = \"1900000001\"\nappid = \"wxtest\"\n"
        << "merchant_serial_no = \"0123456789ABCDEF\"\nmerchant_private_key_file = \"" << pki << "/merchant.key\"\n"
        << "apiv3_key_file = \"" << pki << "/apiv3.key\"\nnotify_url = \"https://127.0.0.1:8443/notify\"\n"
        << "ca_file = \"" << pki << "/ca.pem\"\n"
        << "[[provider.platform_key]]\nid = \"PUB_KEY_ID_0001\"\nfile = \"" << pki << "/pubkey.pub.pem\"\n"
        << "[[bus]]\nid = \"bus-1\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = 9\n"
        << "[[device]]\nid = \"cam-1\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = 1\n"
        << "[[device]]\nid = \"barrier-1\"\nkind = \"barrier\"\nbus = \"bus-1\"\nunit_id = 2\n"
        << "[[lane]]\nid = \"entry-1\"\nmode = \"parking-entry\"\ncamera = \"cam-1\"\nbarrier = \"barrier-1\"\n"
        << "tariff = \"lot\"\n"
        << "[[tariff.parking]]\nid = \"lot\"\n";
  }

  // Demo PKI made once per test run with the openssl CLI (scripts/make-demo-pki).
  static fs::path pki_dir() {
    static const fs::path dir = [] {
      const fs::path d = fs::temp_directory_path() / ("lanegated-test-pki-" + std::to_string(getpid()));
      const std::string cmd = std::string(LANEGATE_SOURCE_DIR) + "/scripts/make-demo-pki " + d.string() + " >/dev/null";
      if (std::system(cmd.c_str()) != 0) {
        ADD_FAILURE() << "make-demo-pki failed";
      }
      return d;
    }();
    return dir;
  }

  void start(const char* watchdog_usec = nullptr) {
    const char* dir = std::getenv("LANEGATE_BIN_DIR");
    const std::string bin = std::string(dir != nullptr ? dir : LANEGATE_BINARY_DIR) + "/lanegated";
    const std::string log = (dir_ / "stderr.log").string();
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      setenv("NOTIFY_SOCKET", notify_path_.c_str(), 1);
      unsetenv("JOURNAL_STREAM");
      if (watchdog_usec != nullptr) {
        setenv("WATCHDOG_USEC", watchdog_usec, 1);
      }
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 2);
      execl(bin.c_str(), bin.c_str(), "--config", config_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }

  // Waits for a notify datagram containing `needle`; returns false after `timeout`.
  bool wait_notify(const std::string& needle, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{notify_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) == 1) {
        char buf[4096];
        const ssize_t n = recv(notify_fd_, buf, sizeof buf, 0);
        if (n > 0 && std::string(buf, static_cast<std::size_t>(n)).find(needle) != std::string::npos) {
          return true;
        }
      }
    }
    return false;
  }

  // Waits for the child to exit; returns its exit code, or -1 on timeout/signal.
  int wait_exit(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  bool stderr_contains(const std::string& needle, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (read_file(dir_ / "stderr.log").find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  fs::path dir_, config_, notify_path_;
  int notify_fd_ = -1;
  pid_t pid_ = -1;
};

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
