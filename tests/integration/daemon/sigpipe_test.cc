// Issue 13, defect 14: lanegated died silently from SIGPIPE (exit status 141, no log line)
// right after a parking entry when run from a shell, as under Docker or runit: a TLS write
// on a kept-alive provider connection the far side had closed. systemd's IgnoreSIGPIPE=
// default hid it. Every binary ignores SIGPIPE itself now, and a fatal signal leaves a
// line on stderr.
//
// Every child here starts with SIGPIPE at its default action (daemon_fixture.h): this
// process ignores it (the provider sandbox's HTTP server sets that), and an ignored
// disposition would be inherited across exec and hide the defect.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/sqlite.h"
#include "daemon_fixture.h"
#include "sim/devices.h"
#include "sim/provider_sandbox.h"

namespace {

using namespace lanegate::daemon_test;
namespace sim = lanegate::sim;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

TEST(SigpipeTest, EveryBinarySurvivesWritingToAPipeWhoseReaderHasGone) {
  const std::string log =
      (fs::temp_directory_path() / ("sigpipe-test-" + std::to_string(getpid()) + ".log")).string();
  const std::vector<std::vector<std::string>> commands = {{binary("lanegated"), "--version"},
                                                          {binary("lanegate"), "version"},
                                                          {binary("lanegate-sim"), "help"}};
  for (const auto& argv : commands) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);  // nobody will read what it prints
    SpawnOptions o;
    o.stdout_fd = p[1];
    o.stderr_file = log;
    const pid_t pid = spawn(argv, o);
    close(p[1]);
    ASSERT_GT(pid, 0);
    const auto status = wait_status(pid);
    if (!status) kill(pid, SIGKILL);
    EXPECT_TRUE(status && WIFEXITED(*status))
        << argv[0] << " " << argv[1] << " " << describe_status(status) << "\n"
        << read_file(log);
  }
  fs::remove(log);
}

TEST_F(DaemonTest, AFatalSignalIsLoggedBeforeTheProcessDiesOfIt) {
  for (const int sig : {SIGSEGV, SIGABRT}) {
    const std::string name = sig == SIGSEGV ? "SIGSEGV" : "SIGABRT";
    start();
    ASSERT_TRUE(wait_notify("READY=1")) << read_file(dir_ / "stderr.log");
    const pid_t pid = pid_;
    ASSERT_EQ(kill(pid_, sig), 0);
    const auto status = wait_status(pid_);
    ASSERT_TRUE(status) << name << ": lanegated still running";
    pid_ = -1;
    const std::string err = read_file(dir_ / "stderr.log");
    EXPECT_NE(err.find("fatal signal"), std::string::npos) << name << ": no line on stderr:\n"
                                                           << err;
    EXPECT_NE(err.find("signal=" + name + " pid=" + std::to_string(pid) + " program=lanegated"),
              std::string::npos)
        << err;
    if (!kSanitized) {
      // The default action still runs: the supervisor sees the real cause of death.
      EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == sig)
          << name << ": " << describe_status(status);
    }
  }
}

// The far side of the provider link as middleboxes and load balancers behave: a TCP relay
// to the provider sandbox that, after drop_kept_alive(), forgets every connection open at
// the call (its sandbox side is closed at once, so the sandbox's own 2 s keep-alive timeout
// plays no part) and answers the next bytes the client sends on one with a reset (no TLS
// close_notify, no FIN): the client finds out only when it writes. Connections opened
// afterwards are relayed as they are. One poll thread, ended by the destructor.
class DroppingRelay {
 public:
  explicit DroppingRelay(int target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      ADD_FAILURE() << "relay: cannot listen";
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) ADD_FAILURE() << "relay: pipe";
    thread_ = std::thread([this] { loop(); });
  }
  ~DroppingRelay() {
    stop_ = true;
    (void)!::write(wake_[1], "x", 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  DroppingRelay(const DroppingRelay&) = delete;
  DroppingRelay& operator=(const DroppingRelay&) = delete;

  int port() const { return port_; }
  void drop_kept_alive() {
    cutoff_ = next_id_.load();
    (void)!::write(wake_[1], "d", 1);
  }
  int connections() const { return next_id_; }
  int resets() const { return resets_; }

 private:
  struct Pair {
    int id;
    int client;
    int server;
  };

  static bool send_all(int fd, const char* p, ssize_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, p, static_cast<std::size_t>(n), MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= w;
    }
    return true;
  }

  void loop() {
    std::vector<Pair> pairs;
    char buf[16384];
    while (!stop_) {
      for (Pair& p : pairs) {
        if (p.id < cutoff_ && p.server >= 0) {
          ::close(p.server);
          p.server = -1;  // poll() skips it
        }
      }
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      for (const Pair& p : pairs) {
        fds.push_back({p.client, POLLIN, 0});
        fds.push_back({p.server, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
      if ((fds[1].revents & POLLIN) != 0) {
        char drain[16];
        (void)!::read(wake_[0], drain, sizeof drain);
      }
      std::vector<Pair> kept;
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        const Pair& p = pairs[i];
        const short from_client = fds[2 + 2 * i].revents;
        const short from_server = fds[3 + 2 * i].revents;
        bool open = true;
        if (from_client != 0) {
          if (p.id < cutoff_) {
            const linger reset{1, 0};  // close() now sends RST
            ::setsockopt(p.client, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            ++resets_;
            open = false;
          } else {
            const ssize_t n = ::read(p.client, buf, sizeof buf);
            open = n > 0 && send_all(p.server, buf, n);
          }
        }
        if (open && from_server != 0) {
          const ssize_t n = ::read(p.server, buf, sizeof buf);
          open = n > 0 && send_all(p.client, buf, n);
        }
        if (open) {
          kept.push_back(p);
        } else {
          ::close(p.client);
          if (p.server >= 0) ::close(p.server);
        }
      }
      pairs = std::move(kept);
      if ((fds[0].revents & POLLIN) != 0) {
        const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          a.sin_port = htons(static_cast<std::uint16_t>(target_port_));
          if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            pairs.push_back({next_id_++, c, s});
          } else {
            ::close(s);
            ::close(c);
          }
        }
      }
    }
    for (const Pair& p : pairs) {
      ::close(p.client);
      if (p.server >= 0) ::close(p.server);
    }
  }

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<int> next_id_{0};
  std::atomic<int> cutoff_{0};
  std::atomic<int> resets_{0};
  std::thread thread_;
};

// lanegated with a parking entry lane (simulated camera and barrier), reporting entries
// to the provider sandbox through the DroppingRelay.
class KeptAliveDropTest : public ::testing::Test {
 protected:
  static constexpr const char* kPlates[] = {"粤B7H3K9", "粤B5F2M8"};

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegated-sigpipe-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    const fs::path pki = demo_pki_dir();
    {
      boost::json::array plates;
      for (const char* plate : kPlates) {
        plates.push_back(boost::json::object{{"plate_number", plate},
                                             {"plate_color", "BLUE"},
                                             {"openid", "oSIGPIPE1"},
                                             {"service_state", "NORMAL"},
                                             {"service_open_time", "2026-01-01T08:00:00+08:00"}});
      }
      boost::json::object seed{
          {"merchants", boost::json::array{boost::json::object{{"mchid", "1900000001"},
                                                               {"appid", "wxsigpipe"},
                                                               {"certificate_file", "merchant.pem"},
                                                               {"apiv3_key_file", "apiv3.key"},
                                                               {"products", "PARKING"}}}},
          {"accounts",
           boost::json::array{boost::json::object{{"openid", "oSIGPIPE1"}, {"overdue", false}}}},
          {"plates", plates}};
      std::ofstream out(dir_ / "seed.json");
      out << boost::json::serialize(seed);
    }
    sim::ProviderSandboxOptions po;
    po.pki_dir = pki;
    po.seed_file = dir_ / "seed.json";
    po.db_file = dir_ / "sandbox.db";
    po.deduction_delay_ms = 100;
    auto sandbox = sim::ProviderSandbox::start(po);
    ASSERT_TRUE(sandbox) << sandbox.error().to_string();
    sandbox_ = std::move(*sandbox);
    relay_ = std::make_unique<DroppingRelay>(sandbox_->port());
    api_port_ = free_tcp_port();
    const int bus_port = free_tcp_port();
    config_ = dir_ / "lanegate.toml";
    {
      const std::string p = pki.string();
      std::ofstream out(config_);
      out << "[gateway]\nid = \"sigpipe-gw\"\nsite_name = \"SIGPIPE lot\"\nstate_dir = \""
          << (dir_ / "state").string() << "\"\n"
          << "[api]\nlisten_address = \"127.0.0.1\"\nlisten_port = " << api_port_ << "\n"
          << "[provider]\nbase_url = \"https://127.0.0.1:" << relay_->port()
          << "\"\nmchid = \"1900000001\"\nappid = \"wxsigpipe\"\n"
          << "merchant_serial_no = \"" << trimmed(read_file(pki / "merchant.serial")) << "\"\n"
          << "merchant_private_key_file = \"" << p << "/merchant.key\"\napiv3_key_file = \"" << p
          << "/apiv3.key\"\n"
          << "notify_url = \"https://127.0.0.1:9/notify/wechatpay\"\n"
          << "ca_file = \"" << p << "/ca.pem\"\n"
          << "[[provider.platform_key]]\nid = \"" << trimmed(read_file(pki / "platform.serial"))
          << "\"\nfile = \"" << p << "/platform.pem\"\n"
          << "[[bus]]\nid = \"bus-1\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = "
          << bus_port << "\n"
          << "[[device]]\nid = \"cam-in\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = "
             "1\npoll_interval_ms = 20\n"
          << "[[device]]\nid = \"bar-in\"\nkind = \"barrier\"\nbus = \"bus-1\"\nunit_id = 2\n"
          << "[[lane]]\nid = \"entry-1\"\nmode = \"parking-entry\"\ncamera = \"cam-in\"\nbarrier = "
             "\"bar-in\"\n"
          << "tariff = \"lot\"\n"
          << "[[tariff.parking]]\nid = \"lot\"\n";
    }
    auto cfg = lanegate::config::load_file(config_);
    ASSERT_TRUE(cfg) << cfg.error().front().to_string();
    sim::DevicesSimOptions dso;
    dso.control_port = -1;
    dso.barrier_open_delay_ms = 20;
    dso.barrier_hold_ms = 100;
    auto devices = sim::DevicesSim::start(*cfg, dso);
    ASSERT_TRUE(devices) << devices.error().to_string();
    devices_ = std::move(*devices);

    SpawnOptions o;
    o.stderr_file = dir_ / "stderr.log";
    pid_ = spawn({binary("lanegated"), "--config", config_.string()}, o);
    ASSERT_GT(pid_, 0);
    httplib::Client api("127.0.0.1", api_port_);
    api.set_connection_timeout(1, 0);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto r = api.Get("/healthz"); r && r->status == 200) return;
      ASSERT_TRUE(running()) << "lanegated " << describe_status(last_status_) << "\n"
                             << stderr_text();
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "lanegated did not answer /healthz\n" << stderr_text();
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (!wait_status(pid_)) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
    devices_.reset();
    relay_.reset();
    sandbox_.reset();
    fs::remove_all(dir_);
  }

  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      last_status_ = status;
      return false;
    }
    return true;
  }

  std::string stderr_text() const { return read_file(dir_ / "stderr.log"); }

  // A car drives up, the barrier opens for it (the entry is committed with its report to
  // the provider queued), and it drives on.
  void vehicle_enters(const char* plate) {
    const int before = devices_->barrier("bar-in").value_or(sim::BarrierSnapshot{}).open_commands;
    sim::VehicleArrival v;
    v.lane = "entry-1";
    v.plate = plate;
    ASSERT_TRUE(devices_->vehicle_arrives(v));
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    bool opened = false;
    while (!opened && std::chrono::steady_clock::now() < deadline && running()) {
      opened = devices_->barrier("bar-in").value_or(sim::BarrierSnapshot{}).open_commands > before;
      if (!opened) std::this_thread::sleep_for(20ms);
    }
    (void)devices_->vehicle_leaves("entry-1");
    ASSERT_TRUE(opened) << "the barrier did not open for " << plate << "\n" << stderr_text();
  }

  // Parking entries the provider has acknowledged, as lanegated recorded them.
  int entries_reported() {
    auto db = lanegate::Database::open(dir_ / "state" / "lanegate.db");
    if (!db) return -1;
    auto st =
        db->prepare("SELECT count(*) FROM outbox_item WHERE topic = 'parking.entry' AND state = 2");
    if (!st) return -1;
    auto row = st->step();
    return row && *row ? static_cast<int>(st->column_int64(0)) : -1;
  }

  // Waits until `n` entries are reported or lanegated has ended.
  bool wait_reported(int n, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && running()) {
      if (entries_reported() >= n) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  fs::path dir_, config_;
  int api_port_ = 0;
  pid_t pid_ = -1;
  std::optional<int> last_status_;
  std::unique_ptr<sim::ProviderSandbox> sandbox_;
  std::unique_ptr<DroppingRelay> relay_;
  std::unique_ptr<sim::DevicesSim> devices_;
};

TEST_F(KeptAliveDropTest, LanegatedSurvivesTheProviderDroppingAKeptAliveConnection) {
  // The first entry's report leaves its connection open in the provider client's pool.
  vehicle_enters(kPlates[0]);
  ASSERT_TRUE(wait_reported(1, 20s)) << "lanegated " << describe_status(last_status_) << "\n"
                                     << stderr_text();
  // The far side forgets that connection; the next report goes out on it and meets a reset.
  relay_->drop_kept_alive();
  vehicle_enters(kPlates[1]);
  const bool reported = wait_reported(2, 20s);
  ASSERT_TRUE(running()) << "lanegated " << describe_status(last_status_)
                         << " after the far side dropped a kept-alive connection (connections "
                         << relay_->connections() << ", resets " << relay_->resets()
                         << "); stderr:\n"
                         << stderr_text();
  EXPECT_GE(relay_->resets(), 1) << "no kept-alive connection was reused: the test proved nothing";
  EXPECT_TRUE(reported) << "the second entry was not reported on a fresh connection\n"
                        << stderr_text();
  httplib::Client api("127.0.0.1", api_port_);
  auto r = api.Get("/healthz");
  EXPECT_TRUE(r && r->status == 200);
}

}  // namespace
