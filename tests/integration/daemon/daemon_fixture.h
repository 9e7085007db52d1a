#pragma once
// lanegated as an operator runs it: a child process started from the built binary, with
// systemd's side of the sd_notify protocol played on a real NOTIFY_SOCKET. Shared by the
// daemon integration tests.
//
// Children are started the way a shell, Docker or runit would start them, not the way
// this test process happens to be set up: SIGPIPE back to its default action (a
// disposition of SIG_IGN survives exec, and the provider sandbox's HTTP server ignores
// SIGPIPE in this process), no blocked signals, no core files, and the umask the test
// asks for.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace lanegate::daemon_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A built binary of this tree (or of LANEGATE_BIN_DIR, e.g. an older build to compare).
inline std::string binary(const char* name) {
  const char* dir = std::getenv("LANEGATE_BIN_DIR");
  return std::string(dir != nullptr ? dir : LANEGATE_BINARY_DIR) + "/" + name;
}

struct SpawnOptions {
  fs::path stderr_file;  // empty: inherit
  int stdout_fd = -1;    // -1: inherit (duplicated onto 1 in the child)
  mode_t umask = 022;    // a shell's usual umask, not systemd's UMask=0077
  std::vector<std::pair<std::string, std::string>> env;  // set in the child
  std::vector<std::string> unset_env = {"NOTIFY_SOCKET", "JOURNAL_STREAM"};
};

// Starts argv[0] with argv; returns the pid (-1 when fork failed).
inline pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  // Everything is prepared here: between fork and exec the child may only make
  // async-signal-safe calls (the sandboxes' threads may hold the allocator's lock).
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const std::string_view name = kv.substr(0, kv.find('='));
    bool drop = false;
    for (const auto& u : o.unset_env) drop = drop || name == u;
    for (const auto& [k, v] : o.env) drop = drop || name == k;
    if (!drop) env_text.emplace_back(kv);
  }
  for (const auto& [k, v] : o.env) env_text.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const char* err_file = o.stderr_file.empty() ? nullptr : o.stderr_file.c_str();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  umask(o.umask);
  if (err_file != nullptr) {
    const int fd = open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
  }
  if (o.stdout_fd >= 0) dup2(o.stdout_fd, 1);
  execve(args[0], args.data(), envp.data());
  _exit(127);
}

// Waits for `pid` to end; returns its wait status, or nullopt on timeout.
inline std::optional<int> wait_status(pid_t pid, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(20ms);
  }
  return std::nullopt;
}

inline std::string describe_status(std::optional<int> status) {
  if (!status) return "still running";
  if (WIFEXITED(*status)) return "exited with code " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) {
    return "killed by signal " + std::to_string(WTERMSIG(*status)) + " (" +
           strsignal(WTERMSIG(*status)) + ")";
  }
  return "status " + std::to_string(*status);
}

inline int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline mode_t file_mode(const fs::path& p) {
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

inline std::string octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m));
  return buf;
}

// Demo PKI made once per test binary run with the openssl CLI (scripts/make-demo-pki),
// removed when the binary ends.
inline fs::path demo_pki_dir() {
  static const fs::path dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("lanegated-test-pki-" + std::to_string(getpid()));
    const std::string cmd =
        std::string(LANEGATE_SOURCE_DIR) + "/scripts/make-demo-pki " + d.string() + " >/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      ADD_FAILURE() << "make-demo-pki failed";
    }
    return d;
  }();
  return dir;
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

  fs::path state_dir() const { return dir_ / "state"; }

  // A small but complete site: one entry lane whose devices are not there (the drivers
  // keep reconnecting), a provider account with real demo keys (nothing listens at its
  // URL: the uplink is down), and the API on `api_port` (0: any free port).
  void write_config(const fs::path& p, const std::string& id, int api_port = 0) {
    const std::string pki = demo_pki_dir().string();
    std::ofstream out(p);
    out << "[gateway]\nid = \"" << id << "\"\nsite_name = \"Test lot\"\nstate_dir = \""
        << state_dir().string() << "\"\n"
        << "[api]\nlisten_address = \"127.0.0.1\"\nlisten_port = " << api_port << "\n"
        << "[provider]\nbase_url = \"https://127.0.0.1:9\"\nmchid = \"1900000001\"\nappid = "
           "\"wxtest\"\n"
        << "merchant_serial_no = \"0123456789ABCDEF\"\nmerchant_private_key_file = \"" << pki
        << "/merchant.key\"\n"
        << "apiv3_key_file = \"" << pki
        << "/apiv3.key\"\nnotify_url = \"https://127.0.0.1:8443/notify\"\n"
        << "ca_file = \"" << pki << "/ca.pem\"\n"
        << "[[provider.platform_key]]\nid = \"PUB_KEY_ID_0001\"\nfile = \"" << pki
        << "/pubkey.pub.pem\"\n"
        << "[[bus]]\nid = \"bus-1\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = 9\n"
        << "[[device]]\nid = \"cam-1\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = 1\n"
        << "[[device]]\nid = \"barrier-1\"\nkind = \"barrier\"\nbus = \"bus-1\"\nunit_id = 2\n"
        << "[[lane]]\nid = \"entry-1\"\nmode = \"parking-entry\"\ncamera = \"cam-1\"\nbarrier = "
           "\"barrier-1\"\n"
        << "tariff = \"lot\"\n"
        << "[[tariff.parking]]\nid = \"lot\"\n";
  }

  SpawnOptions daemon_options(const fs::path& stderr_file,
                              const char* watchdog_usec = nullptr) const {
    SpawnOptions o;
    o.stderr_file = stderr_file;
    o.unset_env = {"JOURNAL_STREAM", "WATCHDOG_USEC"};
    o.env = {{"NOTIFY_SOCKET", notify_path_.string()}};
    if (watchdog_usec != nullptr) o.env.emplace_back("WATCHDOG_USEC", watchdog_usec);
    return o;
  }

  // Starts lanegated with the test's config; its stderr goes to DIR/stderr.log.
  void start(const char* watchdog_usec = nullptr, mode_t umask = 022) {
    SpawnOptions o = daemon_options(dir_ / "stderr.log", watchdog_usec);
    o.umask = umask;
    pid_ = spawn({binary("lanegated"), "--config", config_.string()}, o);
    ASSERT_GT(pid_, 0);
  }

  // Waits for a notify datagram containing `needle`; returns false after `timeout`.
  bool wait_notify(const std::string& needle, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{notify_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) == 1) {
        char buf[4096];
        const ssize_t n = recv(notify_fd_, buf, sizeof buf, 0);
        if (n > 0 &&
            std::string(buf, static_cast<std::size_t>(n)).find(needle) != std::string::npos) {
          return true;
        }
      }
    }
    return false;
  }

  // Waits for lanegated to exit; returns its exit code, or -1 on timeout/signal.
  int wait_exit(std::chrono::milliseconds timeout = 10s) {
    const auto status = wait_status(pid_, timeout);
    if (!status) return -1;
    pid_ = -1;
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
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

}  // namespace lanegate::daemon_test
