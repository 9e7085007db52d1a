#pragma once
// The site under attack: the real lanegated (child process) with TLS on its API, talking
// to the provider sandbox and the simulated lane devices of lanegate-sim (in this test
// process), all on 127.0.0.1 free ports and under one temp dir. Started once per test
// binary (HostileSite::get()), since every attack must leave it serving; tests that
// need a clean slate compare before/after snapshots instead of restarting it.
//
// The lot: entry lane "entry-1" and exit lane "exit-1" on one Modbus TCP bus, a parking
// tariff of 2.00 yuan per started minute; plate kBoundPlate is bound at the sandbox.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "config/config.h"
#include "core/crypto.h"
#include "sim/devices.h"
#include "sim/provider_sandbox.h"
#include "tls_client.h"

namespace lanegate::hostile {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline constexpr const char* kOperatorToken = "hostile-operator-token-0123456789";
inline constexpr const char* kAuditorToken = "hostile-auditor-token-0123456789";
inline constexpr const char* kBoundPlate = "粤B7H3K9";
inline constexpr int kMaxBody = 4096;
inline constexpr int kHeaderTimeoutMs = 1000;

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class HostileSite {
 public:
  static HostileSite*& slot() {
    static HostileSite* p = nullptr;
    return p;
  }
  // Starts the site on first use; a failure is reported by every test that uses it.
  static HostileSite& get() {
    HostileSite*& p = slot();
    if (p == nullptr) {
      p = new HostileSite();
      p->start();
    }
    return *p;
  }
  // Stops the site if a test started it (at the end of the test binary).
  static void shutdown() {
    if (slot() != nullptr) slot()->stop();
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int api_port() const { return api_port_; }
  const fs::path& dir() const { return dir_; }
  fs::path pki() const { return dir_ / "pki"; }
  std::string ca() const { return (pki() / "ca.pem").string(); }
  fs::path config_file() const { return dir_ / "lanegate.toml"; }
  std::string stderr_text() const { return read_text(dir_ / "stderr.log"); }
  sim::DevicesSim& devices() { return *devices_; }
  sim::ProviderSandbox& sandbox() { return *sandbox_; }
  bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }

  // One request on a fresh connection (Connection: close).
  HttpReply request(std::string_view method, std::string_view target,
                    std::map<std::string, std::string> headers = {}, std::string_view body = {},
                    const TlsOptions& tls = {}) {
    std::string why;
    auto c = TlsConn::connect(api_port_, ca(), tls, &why);
    if (!c) {
      ADD_FAILURE() << "connect: " << why;
      return {};
    }
    if (!c->write(request_text(method, target, headers, body))) return {};
    return parse_reply(c->read_all());
  }
  HttpReply get_as(const char* token, std::string_view target) {
    return request("GET", target, {{"Authorization", std::string("Bearer ") + token}});
  }
  HttpReply post_json_as(const char* token, std::string_view target, std::string_view body,
                         const TlsOptions& tls = {}) {
    return request(
        "POST", target,
        {{"Authorization", std::string("Bearer ") + token}, {"Content-Type", "application/json"}},
        body, tls);
  }

  // Value of one Prometheus sample, e.g. metric("lanegate_api_refused_total",
  // "reason=\"body_too_large\""); 0 when absent (a counter not yet incremented).
  double metric(std::string_view name, std::string_view labels = {}) {
    const HttpReply r = get_as(kAuditorToken, "/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    std::istringstream in(r.body);
    std::string line;
    double total = 0;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#' || !line.starts_with(name)) continue;
      const std::string rest = line.substr(name.size());
      if (!rest.empty() && rest[0] != '{' && rest[0] != ' ') continue;  // a longer name
      if (!labels.empty() && rest.find(labels) == std::string::npos) continue;
      total += std::atof(line.substr(line.rfind(' ') + 1).c_str());
    }
    return total;
  }

  // What the operator sees of the money: every transaction and the per-state totals.
  std::string money_snapshot() {
    const HttpReply tx = get_as(kOperatorToken, "/api/v1/transactions?limit=1000");
    EXPECT_EQ(tx.status, 200) << tx.body;
    const HttpReply st = get_as(kOperatorToken, "/api/v1/status");
    EXPECT_EQ(st.status, 200) << st.body;
    boost::system::error_code ec;
    auto status = boost::json::parse(st.body, ec);
    std::string totals;
    if (!ec && status.is_object()) {
      const auto& o = status.as_object();
      for (const char* k : {"charges", "open_charges", "passages", "offline_exposure", "arrears"}) {
        if (const auto* v = o.if_contains(k))
          totals += std::string(k) + "=" + boost::json::serialize(*v) + ";";
      }
    }
    return tx.body + "\n" + totals;
  }

  // Drives kBoundPlate in and out; waits (bounded) until its charge is settled.
  bool run_vehicle_through(const std::string& plate) {
    for (const char* lane : {"entry-1", "exit-1"}) {
      const int before = devices_->barrier(lane == std::string("entry-1") ? "bar-in" : "bar-out")
                             .value_or(sim::BarrierSnapshot{})
                             .open_commands;
      sim::VehicleArrival v;
      v.lane = lane;
      v.plate = plate;
      if (!devices_->vehicle_arrives(v)) return false;
      const auto deadline = std::chrono::steady_clock::now() + 15s;
      bool opened = false;
      while (std::chrono::steady_clock::now() < deadline) {
        auto b = devices_->barrier(lane == std::string("entry-1") ? "bar-in" : "bar-out");
        if (b && b->open_commands > before) {
          opened = true;
          break;
        }
        std::this_thread::sleep_for(20ms);
      }
      (void)devices_->vehicle_leaves(lane);
      if (!opened) return false;
      std::this_thread::sleep_for(1100ms);  // a started minute, not a zero-length stay
    }
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      const HttpReply st = get_as(kOperatorToken, "/api/v1/status");
      if (st.status == 200 && st.body.find("\"open_charges\":0") != std::string::npos &&
          st.body.find("\"SUCCESS\"") != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // One settled charge of kBoundPlate exists (made on first call).
  bool ensure_settled_charge() {
    if (!charged_) charged_ = run_vehicle_through(kBoundPlate);
    return charged_;
  }

  // The out_trade_no of the first recorded charge ("" when none).
  std::string first_out_trade_no() {
    const HttpReply tx = get_as(kOperatorToken, "/api/v1/transactions?limit=10");
    boost::system::error_code ec;
    auto v = boost::json::parse(tx.body, ec);
    if (ec || !v.is_object()) return "";
    for (const auto& item : v.as_object().at("items").as_array()) {
      const auto& o = item.as_object();
      if (o.at("amount_fen").as_int64() > 0) return std::string(o.at("out_trade_no").as_string());
    }
    return "";
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) == 0 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    devices_.reset();
    sandbox_.reset();
    if (!dir_.empty() && std::getenv("HOSTILE_KEEP_DIR") == nullptr) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

 private:
  HostileSite() = default;

  void start() {
    std::string tmpl = (fs::temp_directory_path() / "lanegate-hostile-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    fs::create_directories(dir_ / "state");
    const std::string script = std::string(LANEGATE_SOURCE_DIR) + "/scripts/make-demo-pki " +
                               pki().string() + " >/dev/null 2>&1";
    if (std::system(script.c_str()) != 0) {
      error_ = "make-demo-pki failed";
      return;
    }
    {
      boost::json::object seed{
          {"merchants", boost::json::array{boost::json::object{{"mchid", "1900000001"},
                                                               {"appid", "wxhostile"},
                                                               {"certificate_file", "merchant.pem"},
                                                               {"apiv3_key_file", "apiv3.key"},
                                                               {"products", "PARKING,HIGHWAY"}}}},
          {"accounts",
           boost::json::array{boost::json::object{{"openid", "oHOSTILE1"}, {"overdue", false}}}},
          {"plates", boost::json::array{
                         boost::json::object{{"plate_number", kBoundPlate},
                                             {"plate_color", "BLUE"},
                                             {"openid", "oHOSTILE1"},
                                             {"service_state", "NORMAL"},
                                             {"service_open_time", "2026-01-01T08:00:00+08:00"}}}}};
      std::ofstream out(dir_ / "seed.json");
      out << boost::json::serialize(seed);
    }
    for (const char* secret : {"invoicing.secret", "invoicing.token"}) {
      const std::string path = (pki() / secret).string();
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      const std::string text = std::string("hostile-") + secret;
      if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        error_ = "cannot write " + path;
        return;
      }
      ::close(fd);
    }
    sim::ProviderSandboxOptions po;
    po.pki_dir = pki();
    po.seed_file = dir_ / "seed.json";
    po.db_file = dir_ / "sandbox.db";
    po.deduction_delay_ms = 100;
    auto sandbox = sim::ProviderSandbox::start(po);
    if (!sandbox) {
      error_ = "provider sandbox: " + sandbox.error().to_string();
      return;
    }
    sandbox_ = std::move(*sandbox);
    api_port_ = free_port();
    bus_port_ = free_port();
    write_config();
    auto cfg = config::load_file(config_file());
    if (!cfg) {
      error_ = "config: " + cfg.error().front().to_string();
      return;
    }
    sim::DevicesSimOptions dso;
    dso.control_port = -1;
    dso.barrier_open_delay_ms = 20;
    dso.barrier_hold_ms = 100;
    auto devices = sim::DevicesSim::start(*cfg, dso);
    if (!devices) {
      error_ = "devices: " + devices.error().to_string();
      return;
    }
    devices_ = std::move(*devices);
    const char* bin_dir = std::getenv("LANEGATE_BIN_DIR");
    const std::string bin =
        std::string(bin_dir != nullptr ? bin_dir : LANEGATE_BINARY_DIR) + "/lanegated";
    const std::string log = (dir_ / "stderr.log").string();
    const std::string cfg_path = config_file().string();
    pid_ = fork();
    if (pid_ == 0) {
      unsetenv("NOTIFY_SOCKET");
      unsetenv("JOURNAL_STREAM");
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 2);
      execl(bin.c_str(), bin.c_str(), "--config", cfg_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      TlsOptions quick;
      quick.read_timeout = 2s;
      if (auto c = TlsConn::connect(api_port_, ca(), quick)) {
        if (c->write(request_text("GET", "/healthz", {}, {})) &&
            parse_reply(c->read_all()).status == 200) {
          return;
        }
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "lanegated exited: " + stderr_text();
        return;
      }
      std::this_thread::sleep_for(100ms);
    }
    error_ = "lanegated did not answer /healthz: " + stderr_text();
  }

  void write_config() {
    const std::string p = pki().string();
    std::ofstream out(config_file());
    out << "[gateway]\nid = \"hostile-gw\"\nsite_name = \"Hostile lot\"\nstate_dir = \""
        << (dir_ / "state").string() << "\"\nutc_offset_minutes = 480\nlog_level = \"info\"\n"
        << "[api]\nlisten_address = \"127.0.0.1\"\nlisten_port = " << api_port_ << "\n"
        << "max_body_bytes = " << kMaxBody << "\nheader_timeout_ms = " << kHeaderTimeoutMs << "\n"
        << "public_base_url = \"https://127.0.0.1:" << api_port_ << "\"\n"
        << "[api.tls]\ncert_file = \"" << p << "/server.pem\"\nkey_file = \"" << p
        << "/server.key\"\n"
        << "[[api.token]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \""
        << crypto::sha256_hex(kOperatorToken) << "\"\n"
        << "[[api.token]]\nname = \"audit\"\nrole = \"auditor\"\nsha256 = \""
        << crypto::sha256_hex(kAuditorToken) << "\"\n"
        << "[provider]\nbase_url = \"" << sandbox_->base_url()
        << "\"\nmchid = \"1900000001\"\nappid = \"wxhostile\"\n"
        << "merchant_serial_no = \"" << trimmed(read_text(pki() / "merchant.serial")) << "\"\n"
        << "merchant_private_key_file = \"" << p << "/merchant.key\"\napiv3_key_file = \"" << p
        << "/apiv3.key\"\n"
        << "notify_url = \"https://127.0.0.1:" << api_port_ << "/notify/wechatpay\"\n"
        << "ca_file = \"" << p << "/ca.pem\"\n"
        << "[[provider.platform_key]]\nid = \"" << trimmed(read_text(pki() / "platform.serial"))
        << "\"\nfile = \"" << p << "/platform.pem\"\n"
        << "[invoicing]\nenabled = true\nbase_url = \"https://127.0.0.1:9\"\napp_key = "
           "\"hostile-app\"\n"
        << "app_secret_file = \"" << p << "/invoicing.secret\"\naccess_token_file = \"" << p
        << "/invoicing.token\"\nca_file = \"" << p
        << "/ca.pem\"\nseller_name = \"Hostile lot operator\"\n"
        << "seller_tax_id = \"91440300MA5G8K2D7F\"\nclaim_window_days = 30\nclerk = \"王敏\"\n"
        << "[invoicing.parking]\nproperty_address = \"广东省深圳市南山区\"\n"
        << "detail_address = \"科技南十二路18号\"\narea_unit = 2\n"
        << "[[bus]]\nid = \"bus-1\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = "
        << bus_port_ << "\n"
        << "[[device]]\nid = \"cam-in\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = "
           "1\npoll_interval_ms = 20\n"
        << "[[device]]\nid = \"bar-in\"\nkind = \"barrier\"\nbus = \"bus-1\"\nunit_id = 2\n"
        << "[[device]]\nid = \"cam-out\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = "
           "3\npoll_interval_ms = 20\n"
        << "[[device]]\nid = \"bar-out\"\nkind = \"barrier\"\nbus = \"bus-1\"\nunit_id = 4\n"
        << "[[lane]]\nid = \"entry-1\"\nmode = \"parking-entry\"\ncamera = \"cam-in\"\nbarrier = "
           "\"bar-in\"\n"
        << "tariff = \"lot\"\n"
        << "[[lane]]\nid = \"exit-1\"\nmode = \"parking-exit\"\ncamera = \"cam-out\"\nbarrier = "
           "\"bar-out\"\n"
        << "tariff = \"lot\"\n"
        << "[[tariff.parking]]\nid = \"lot\"\nfree_minutes = 0\nunit_minutes = 1\nday_rate = "
           "\"2.00\"\n"
        << "night_rate = \"2.00\"\ndaily_cap = \"30.00\"\n";
  }

  fs::path dir_;
  std::string error_;
  bool charged_ = false;
  int api_port_ = 0;
  int bus_port_ = 0;
  pid_t pid_ = -1;
  std::unique_ptr<sim::ProviderSandbox> sandbox_;
  std::unique_ptr<sim::DevicesSim> devices_;
};

// Stops the site (and removes its temp dir) when the test binary ends.
class HostileSiteCleanup : public ::testing::Environment {
 public:
  void TearDown() override { HostileSite::shutdown(); }
};

// Fixture: every test starts with a running site.
class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HostileSite& s = HostileSite::get();
    ASSERT_TRUE(s.ok()) << s.error();
    ASSERT_TRUE(s.alive()) << s.stderr_text();
  }
  void TearDown() override {
    if (HostileSite::get().ok()) {
      EXPECT_TRUE(HostileSite::get().alive()) << "lanegated died under attack";
    }
  }
  HostileSite& site() { return HostileSite::get(); }
};

}  // namespace lanegate::hostile
