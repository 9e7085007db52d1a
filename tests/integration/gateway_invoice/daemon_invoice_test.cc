// A passenger claims an invoice from a running lanegated: settled money gets a claim, the
// claim page and JSON API answer on the gateway's HTTP port, the invoice is issued by the
// invoicing sandbox over real HTTPS (demo CA), also when the platform was down at claim
// time; the ledger records it. Secrets readable by others keep lanegated from starting.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "core/clock.h"
#include "core/ledger.h"
#include "core/sqlite.h"
#include "gateway/daemon.h"
#include "gateway/settlement.h"
#include "gateway/store.h"
#include "invoice/claims.h"
#include "offline_queue/queue.h"
#include "sim/invoicing_sandbox.h"
#include "support/run_command.h"
#include "../daemon/daemon_fixture.h"

namespace lanegate::gateway {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kSeller = "91350100M000100Y43";
constexpr const char* kOperatorToken = "op-token-1";

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Demo PKI made once per test run (scripts/make-demo-pki): CA, 127.0.0.1 server
// certificate, provider keys and the invoicing secrets.
fs::path pki_dir() {
  static const fs::path dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("lanegate-wire-pki-" + std::to_string(getpid()));
    const std::string cmd =
        std::string(LANEGATE_SOURCE_DIR) + "/scripts/make-demo-pki " + d.string() + " >/dev/null";
    if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "make-demo-pki failed";
    return d;
  }();
  return dir;
}

class DaemonInvoiceTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { fs::remove_all(pki_dir()); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegate-wire-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    fs::create_directories(dir_ / "state");
    const fs::path pki = pki_dir();
    sim::InvoicingSandboxOptions o;
    o.db_file = dir_ / "sandbox.db";
    o.tls_cert_file = pki / "server.pem";
    o.tls_key_file = pki / "server.key";
    o.app_key = "wire-app-key";
    o.app_secret = read_file(pki / "invoicing.secret");
    while (!o.app_secret.empty() && o.app_secret.back() == '\n') o.app_secret.pop_back();
    o.access_token = read_file(pki / "invoicing.token");
    while (!o.access_token.empty() && o.access_token.back() == '\n') o.access_token.pop_back();
    o.seller_tax_id = kSeller;
    auto s = sim::InvoicingSandbox::start(o);
    ASSERT_TRUE(s) << s.error().to_string();
    sandbox_ = std::move(*s);
    section_.enabled = true;
    section_.seller_name = "Wire test lot";
    section_.seller_tax_id = kSeller;
  }

  void TearDown() override {
    stop();
    sandbox_.reset();
    fs::remove_all(dir_);
  }

  // The gateway's database as lanegated opens it, with a settled cash taxi trip and a
  // settled parking charge written through the Store and the settlement hook.
  void settle_transactions() {
    Database db = Database::open(dir_ / "state" / "lanegate.db").value();
    ASSERT_TRUE(db.migrate(database_schema()));
    Store store = Store::open(db, SystemClock::instance()).value();
    config::QueueLimits limits;
    queue::Outbox outbox = queue::Outbox::open(db, limits, SystemClock::instance()).value();
    invoice::ClaimStore claims(db, section_, SystemClock::instance());
    wire_invoicing(store, claims, outbox, UtcOffset{480});
    TxRecord taxi;
    taxi.out_trade_no = "TAXI-1";
    taxi.kind = TxKind::kTaxi;
    taxi.lane = "meter-1";
    taxi.plate = "闽A12345";
    taxi.plate_colour = "BLUE";
    taxi.amount = Money::from_fen(1919);
    taxi.state = ChargeState::kCash;
    taxi.payment_method = "cash";
    TxRecord park = taxi;
    park.out_trade_no = "PARK-1";
    park.kind = TxKind::kParking;
    park.lane = "exit-1";
    park.plate = "粤B12345";
    park.amount = Money::from_fen(600);
    park.state = ChargeState::kRecorded;
    park.payment_method = "provider";
    // The stay as site_parking.cc records it: the 06 lease period of the invoice.
    park.detail = R"({"entry_time":"2026-11-22T08:12:00+08:00","exit_time":"2026-11-22T09:40:00+08:00"})";
    auto txn = db.begin().value();
    ASSERT_TRUE(store.insert_transaction(txn, taxi));
    ASSERT_TRUE(store.insert_transaction(txn, park));
    auto s1 = store.set_state(txn, "PARK-1", ChargeState::kSubmitting);
    ASSERT_TRUE(s1) << s1.error().to_string();
    auto s2 = store.set_state(txn, "PARK-1", ChargeState::kSuccess, "4200000001");
    ASSERT_TRUE(s2) << s2.error().to_string();
    ASSERT_TRUE(txn.commit());
  }

  void write_config(bool invoicing = true, std::int64_t max_db_mb = 0) {
    const std::string pki = pki_dir().string();
    std::ofstream out(dir_ / "lanegate.toml");
    out << "[gateway]\nid = \"wire-gw\"\nsite_name = \"Wire test lot\"\nstate_dir = \""
        << (dir_ / "state").string() << "\"\nmax_database_mb = " << max_db_mb << "\n"
        << "[api]\nlisten_address = \"127.0.0.1\"\nlisten_port = 0\npublic_base_url = "
           "\"https://lot.example.cn\"\n"
        << "[[api.token]]\nname = \"op\"\nrole = \"operator\"\nsha256 = "
           "\"5f4b5e4bd9e2e8e9b3d6f0a2f1b9a0b4b1a3e8a4a7b0f6b1c3c5e0d9a8f7e6d5\"\n"
        << "[provider]\nbase_url = \"https://127.0.0.1:9\"\nmchid = \"1900000001\"\nappid = "
           "\"wxtest\"\n"
        << "merchant_serial_no = \"0123456789ABCDEF\"\nmerchant_private_key_file = \"" << pki
        << "/merchant.key\"\n"
        << "apiv3_key_file = \"" << pki
        << "/apiv3.key\"\nnotify_url = \"https://127.0.0.1:8443/notify\"\n"
        << "ca_file = \"" << pki << "/ca.pem\"\n"
        << "[[provider.platform_key]]\nid = \"PUB_KEY_ID_0001\"\nfile = \"" << pki
        << "/pubkey.pub.pem\"\n"
        // One entry lane whose devices are not there (the drivers keep reconnecting).
        << "[[bus]]\nid = \"bus-1\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = 9\n"
        << "[[device]]\nid = \"cam-1\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = 1\n"
        << "[[device]]\nid = \"barrier-1\"\nkind = \"barrier\"\nbus = \"bus-1\"\nunit_id = 2\n"
        << "[[lane]]\nid = \"entry-1\"\nmode = \"parking-entry\"\ncamera = \"cam-1\"\nbarrier = "
           "\"barrier-1\"\n"
        << "tariff = \"lot\"\n[[tariff.parking]]\nid = \"lot\"\n"
        << "[invoicing]\nenabled = " << (invoicing ? "true" : "false") << "\nbase_url = \""
        << sandbox_->base_url() << "\"\napp_key = \"wire-app-key\"\napp_secret_file = \"" << pki
        << "/invoicing.secret\"\n"
        << "access_token_file = \"" << pki << "/invoicing.token\"\nca_file = \"" << pki
        << "/ca.pem\"\n"
        << "seller_name = \"Wire test lot\"\nseller_tax_id = \"" << kSeller << "\"\n"
        << "clerk = \"Wire test clerk\"\n"
        << "[invoicing.parking]\nproperty_address = \"广东省深圳市福田区\"\n"
        << "detail_address = \"深南大道1000号\"\narea_unit = 2\n";
  }

  void start() {
    const char* bin_dir = std::getenv("LANEGATE_BIN_DIR");
    const std::string bin =
        std::string(bin_dir != nullptr ? bin_dir : LANEGATE_BINARY_DIR) + "/lanegated";
    const std::string log = (dir_ / "stderr.log").string();
    const std::string cfg = (dir_ / "lanegate.toml").string();
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      unsetenv("NOTIFY_SOCKET");
      unsetenv("JOURNAL_STREAM");
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 2);
      execl(bin.c_str(), bin.c_str(), "--config", cfg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }

  // The API port from the "lanegated running" log line; 0 when it did not start in time.
  int wait_port(std::chrono::milliseconds timeout = 15s) {
    const std::regex re("api_port=([0-9]+)");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string log = read_file(dir_ / "stderr.log");
      if (std::regex_search(log, m, re)) return std::stoi(m[1]);
      int status = 0;
      if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return 0;
      }
      std::this_thread::sleep_for(50ms);
    }
    return 0;
  }

  int wait_exit(std::chrono::milliseconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (wait_exit(10s) == -1 && pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
      pid_ = -1;
    }
  }

  httplib::Client client(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(10, 0);
    return c;
  }

  // Polls the claim until its invoice reaches `state` (bounded).
  // The passenger claims a company invoice for the trip behind `token`; returns the claim
  // view once the platform issued it.
  json::object claim_for_company(int port, const std::string& token) {
    auto sub = client(port).Post(
        ("/api/v1/claims/" + token).c_str(),
        R"({"kind":"company","title":"Example Logistics Ltd","tax_id":"91110000802100433B","email":"ap@example.cn"})",
        "application/json");
    EXPECT_TRUE(sub);
    if (!sub) return {};
    EXPECT_EQ(sub->status, 201) << sub->body;
    return wait_claim_state(port, token, "issued");
  }

  json::object wait_claim_state(int port, const std::string& token, const std::string& state,
                                std::chrono::milliseconds timeout = 30s) {
    auto c = client(port);
    json::object last;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = c.Get(("/api/v1/claims/" + token).c_str());
      if (r && r->status == 200) {
        last = json::parse(r->body).as_object();
        if (last.at("state").as_string() == state) return last;
      }
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "claim " << token << " did not reach " << state << ": "
                  << json::serialize(last) << "\n"
                  << read_file(dir_ / "stderr.log");
    return last;
  }

  std::vector<ledger::LedgerEntry> ledger_records() {
    Database db = Database::open(dir_ / "state" / "lanegate.db").value();
    auto h = ledger::head(db).value();
    if (!h) return {};
    return ledger::read(db, ledger::SeqRange{1, h->seq}).value();
  }

  fs::path dir_;
  pid_t pid_ = -1;
  config::InvoicingSection section_;
  std::unique_ptr<sim::InvoicingSandbox> sandbox_;
};

// sha256("op-token-1") is not what write_config puts in; tokens are set per test below.
std::string sha256_hex_of(const std::string& s) {
  const std::string cmd = "printf %s '" + s + "' | sha256sum";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[128] = {};
  if (p == nullptr || fgets(buf, sizeof buf, p) == nullptr) return {};
  pclose(p);
  return std::string(buf, 64);
}

void set_operator_token(const fs::path& config) {
  std::string text = read_file(config);
  const std::string placeholder =
      "5f4b5e4bd9e2e8e9b3d6f0a2f1b9a0b4b1a3e8a4a7b0f6b1c3c5e0d9a8f7e6d5";
  text.replace(text.find(placeholder), placeholder.size(), sha256_hex_of(kOperatorToken));
  std::ofstream(config) << text;
}

TEST_F(DaemonInvoiceTest, SettledTripAndParkingChargeAreClaimedThroughTheGatewayAndIssued) {
  settle_transactions();
  write_config();
  set_operator_token(dir_ / "lanegate.toml");
  start();
  const int port = wait_port();
  ASSERT_GT(port, 0) << read_file(dir_ / "stderr.log");
  auto c = client(port);
  const httplib::Headers op = {{"Authorization", std::string("Bearer ") + kOperatorToken}};

  // The operator prints the receipt of each settled transaction.
  std::map<std::string, json::object> receipts;
  for (const char* id : {"TAXI-1", "PARK-1"}) {
    auto r = c.Get((std::string("/api/v1/transactions/") + id + "/receipt").c_str(), op);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << id << ": " << r->body;
    auto o = json::parse(r->body).as_object();
    EXPECT_TRUE(o.at("claim_url").as_string().starts_with("https://lot.example.cn/claim/"))
        << r->body;
    EXPECT_EQ(o.at("token").as_string().size(), 22u);
    EXPECT_EQ(o.at("human_code").as_string().size(), 9u);  // "7KQ4-M2XA"
    EXPECT_NE(o.at("qr_svg").as_string().find("<svg"), std::string::npos);
    receipts[id] = o;
  }
  // Without a token: refused.
  EXPECT_EQ(c.Get("/api/v1/transactions/TAXI-1/receipt")->status, 401);
  EXPECT_EQ(c.Get("/api/v1/transactions/NOPE/receipt", op)->status, 404);

  // The passenger opens the page from the QR code (public, no token).
  const std::string token = std::string(receipts["TAXI-1"].at("token").as_string());
  auto page = c.Get(("/claim/" + token).c_str());
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  // ... or types the code from the receipt.
  auto code = c.Post(
      "/api/v1/claim-codes",
      json::serialize(json::object{{"code", receipts["PARK-1"].at("human_code").as_string()}}),
      "application/json");
  ASSERT_TRUE(code);
  ASSERT_EQ(code->status, 200) << code->body;
  EXPECT_EQ(json::parse(code->body).at("token").as_string(),
            receipts["PARK-1"].at("token").as_string());

  // Submits the buyer; the invoice is issued by the platform through the outbox.
  auto done = claim_for_company(port, token);
  ASSERT_TRUE(done.contains("invoice"));
  const std::string number(done.at("invoice").at("invoice_number").as_string());
  EXPECT_TRUE(std::regex_match(number, std::regex("[0-9]{20}"))) << number;
  const std::string pdf(done.at("invoice").at("pdf_url").as_string());
  EXPECT_NE(pdf.find(number + ".pdf"), std::string::npos) << pdf;
  EXPECT_EQ(done.at("invoice").at("total").as_string(), "19.19");

  // Guessing codes from one address is locked after a few misses (client key = peer IP).
  int status = 0;
  for (int i = 0; i < 8 && status != 429; ++i) {
    auto g = c.Post("/api/v1/claim-codes", R"({"code":"2222-2222"})", "application/json");
    ASSERT_TRUE(g);
    status = g->status;
    if (status == 429) {
      EXPECT_FALSE(g->get_header_value("Retry-After").empty());
    } else {
      EXPECT_EQ(status, 404) << g->body;
    }
  }
  EXPECT_EQ(status, 429);
  stop();

  // The ledger says so, for the taxi trip's out_trade_no.
  bool issued = false;
  const auto records = ledger_records();
  for (const auto& e : records) {
    if (ledger::kind_name(e.event.kind) == "invoice_issued" && e.event.out_trade_no == "TAXI-1")
      issued = true;
  }
  EXPECT_TRUE(issued);
}

TEST_F(DaemonInvoiceTest, ClaimMadeWhilePlatformIsDownIsIssuedWhenItReturns) {
  settle_transactions();
  write_config();
  set_operator_token(dir_ / "lanegate.toml");
  sandbox_->set_unavailable(true);
  start();
  const int port = wait_port();
  ASSERT_GT(port, 0) << read_file(dir_ / "stderr.log");
  auto c = client(port);
  const httplib::Headers op = {{"Authorization", std::string("Bearer ") + kOperatorToken}};
  auto r = c.Get("/api/v1/transactions/PARK-1/receipt", op);
  ASSERT_TRUE(r && r->status == 200);
  const std::string token(json::parse(r->body).at("token").as_string());
  auto sub = c.Post(("/api/v1/claims/" + token).c_str(),
                    R"({"kind":"person","phone":"13800138000"})", "application/json");
  ASSERT_TRUE(sub);
  ASSERT_EQ(sub->status, 201) << sub->body;
  // The platform answers 503: the request stays queued, the claim stays claimed.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (read_file(dir_ / "stderr.log").find("invoicing platform unreachable") ==
             std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_NE(read_file(dir_ / "stderr.log").find("invoicing platform unreachable"),
            std::string::npos)
      << read_file(dir_ / "stderr.log");
  EXPECT_EQ(json::parse(c.Get(("/api/v1/claims/" + token).c_str())->body).at("state").as_string(),
            "claimed");
  EXPECT_EQ(sandbox_->issue_requests(), 0);
  sandbox_->set_unavailable(false);
  auto done = wait_claim_state(port, token, "issued");
  EXPECT_EQ(done.at("invoice").at("invoice_number").as_string().size(), 20u);
  EXPECT_EQ(sandbox_->issue_requests(), 1);  // one invoice, however many retries
}

TEST_F(DaemonInvoiceTest, InvoicingDisabledMakesNoClaimsAndSaysSo) {
  write_config(/*invoicing=*/false);
  set_operator_token(dir_ / "lanegate.toml");
  start();
  const int port = wait_port();
  ASSERT_GT(port, 0) << read_file(dir_ / "stderr.log");
  auto c = client(port);
  for (const char* path :
       {"/claim", "/claim/AAAAAAAAAAAAAAAAAAAAAA", "/api/v1/claims/AAAAAAAAAAAAAAAAAAAAAA"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_NE(r->body.find("invoicing_disabled"), std::string::npos) << r->body;
  }
}

TEST_F(DaemonInvoiceTest, DatabaseBoundIsAppliedAtStartAndOnReload) {
  write_config(/*invoicing=*/true, /*max_db_mb=*/512);
  start();
  ASSERT_GT(wait_port(), 0) << read_file(dir_ / "stderr.log");
  EXPECT_NE(read_file(dir_ / "stderr.log").find("max_database_mb=512"), std::string::npos);
  write_config(/*invoicing=*/true, /*max_db_mb=*/768);  // not a rewiring change
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (read_file(dir_ / "stderr.log").find("max_database_mb=768") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  const std::string log = read_file(dir_ / "stderr.log");
  EXPECT_NE(log.find("configuration reloaded"), std::string::npos) << log;
  EXPECT_NE(log.find("max_database_mb=768"), std::string::npos) << log;
}

TEST_F(DaemonInvoiceTest, GroupReadableSecretKeepsTheGatewayFromStartingAndNamesIt) {
  write_config();
  // A copy of the access token readable by everyone.
  const fs::path leaked = dir_ / "token-0644";
  fs::copy_file(pki_dir() / "invoicing.token", leaked);
  ::chmod(leaked.c_str(), 0644);
  std::string text = read_file(dir_ / "lanegate.toml");
  const std::string from = (pki_dir() / "invoicing.token").string();
  text.replace(text.find(from), from.size(), leaked.string());
  std::ofstream(dir_ / "lanegate.toml") << text;
  start();
  EXPECT_EQ(wait_exit(), 1);
  const std::string err = read_file(dir_ / "stderr.log");
  EXPECT_NE(err.find(leaked.string()), std::string::npos) << err;
  EXPECT_NE(err.find("0644"), std::string::npos) << err;
  EXPECT_NE(err.find("invoicing.access_token_file"), std::string::npos) << err;
}

// Issue 17, red letters as an operator runs them: find the driver's invoice by the
// transaction, reverse it from the command line, and follow the red-letter form until the
// buyer (a company) confirms and the red is issued. Every step through `lanegate` against
// the running daemon, as on a lane box.
TEST_F(DaemonInvoiceTest, OperatorReversesAnInvoiceFromTheCliAndFollowsItsForm) {
  settle_transactions();
  write_config();
  const int api_port = daemon_test::free_tcp_port();
  {
    std::string text = read_file(dir_ / "lanegate.toml");
    text.replace(text.find("listen_port = 0"), 15, "listen_port = " + std::to_string(api_port));
    std::ofstream(dir_ / "lanegate.toml") << text;
  }
  set_operator_token(dir_ / "lanegate.toml");
  start();
  ASSERT_EQ(wait_port(), api_port) << read_file(dir_ / "stderr.log");
  auto c = client(api_port);
  const httplib::Headers op = {{"Authorization", std::string("Bearer ") + kOperatorToken}};
  auto receipt = c.Get("/api/v1/transactions/TAXI-1/receipt", op);
  ASSERT_TRUE(receipt);
  claim_for_company(api_port, std::string(json::parse(receipt->body).at("token").as_string()));

  auto cli = [&](const std::string& args) {
    const char* bin_dir = std::getenv("LANEGATE_BIN_DIR");
    return lanegate::testing::run_command(
        "LANEGATE_TOKEN=" + std::string(kOperatorToken) + " " +
        std::string(bin_dir != nullptr ? bin_dir : LANEGATE_BINARY_DIR) + "/lanegate --config " +
        (dir_ / "lanegate.toml").string() + " " + args);
  };
  auto [list_code, list_out] = cli("invoice list --tx TAXI-1");
  ASSERT_EQ(list_code, 0) << list_out;
  const json::array invoices = json::parse(list_out).at("invoices").as_array();
  ASSERT_EQ(invoices.size(), 1u) << list_out;
  const std::int64_t blue = invoices[0].at("id").as_int64();
  EXPECT_EQ(invoices[0].at("state").as_string(), "issued");

  auto [bad_code, bad_out] = cli("invoice reverse " + std::to_string(blue) + " --reason refund");
  EXPECT_NE(bad_code, 0) << bad_out;
  EXPECT_NE(bad_out.find("invoicing_error"), std::string::npos) << bad_out;  // names the choices

  auto [rev_code, rev_out] = cli("invoice reverse " + std::to_string(blue) + " --reason invoicing_error");
  ASSERT_EQ(rev_code, 0) << rev_out;
  const json::object red = json::parse(rev_out).as_object();
  EXPECT_EQ(red.at("kind").as_string(), "red");
  EXPECT_EQ(red.at("incl").as_string(), "-19.19");
  // 开票有误 is Nuonuo's 2 and the tax bureau's 01: both shown, neither passed through.
  EXPECT_EQ(red.at("red_reason").at("nuonuo").as_string(), "2");
  EXPECT_EQ(red.at("red_reason").at("bureau").as_string(), "01");
  const std::string red_id = std::to_string(red.at("id").as_int64());

  // The company must confirm the form: the operator sees it waiting, with the deadline.
  json::object shown;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto [code, out] = cli("invoice show " + red_id);
    ASSERT_EQ(code, 0) << out;
    shown = json::parse(out).as_object();
    const auto& forms = shown.at("red_confirmations").as_array();
    if (!forms.empty() && forms[0].at("state").as_string() == "awaiting_buyer") break;
    std::this_thread::sleep_for(200ms);
  }
  const json::object& form = shown.at("red_confirmations").as_array().at(0).as_object();
  ASSERT_EQ(form.at("state").as_string(), "awaiting_buyer") << json::serialize(shown);
  EXPECT_EQ(form.at("bill_status").as_string(), "02");
  EXPECT_EQ(form.at("bill_status_text").as_string(), "销方录入待购方确认");
  EXPECT_TRUE(form.contains("deadline")) << json::serialize(form);
  EXPECT_EQ(shown.at("state").as_string(), "claimed");

  sandbox_->buyer_confirms(std::string(form.at("bill_id").as_string()), true);
  // The worker polls a waiting form every five minutes; the operator need not wait: a
  // retry of the queued item asks now.
  auto [q_code, q_out] = cli("queue list --topic invoice.issue");
  ASSERT_EQ(q_code, 0) << q_out;
  std::istringstream rows(q_out);
  int retried = 0;
  for (std::string row; std::getline(rows, row);) {
    std::istringstream fields(row);
    std::string id, topic;
    fields >> id >> topic;
    if (topic == "invoice.issue") retried += cli("queue retry-now " + id).first == 0;
  }
  EXPECT_EQ(retried, 1) << q_out;
  bool reversed = false;
  const auto deadline2 = std::chrono::steady_clock::now() + 30s;
  while (!reversed && std::chrono::steady_clock::now() < deadline2) {
    auto [code, out] = cli("invoice show " + std::to_string(blue));
    reversed = code == 0 && json::parse(out).at("state").as_string() == "reversed";
    if (!reversed) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(reversed);
  auto [red_code, red_out] = cli("invoice show " + red_id);
  const json::object issued_red = json::parse(red_out).as_object();
  EXPECT_EQ(issued_red.at("state").as_string(), "issued");
  EXPECT_EQ(issued_red.at("invoice_number").as_string().size(), 20u);
  EXPECT_EQ(issued_red.at("red_confirmations").at(0).at("state").as_string(), "used");
  auto [blue_code, blue_out] = cli("invoice show " + std::to_string(blue));
  EXPECT_EQ(json::parse(blue_out).at("red_invoice_id").as_int64(), red.at("id").as_int64());
}

}  // namespace
}  // namespace lanegate::gateway
