// Issue 17: a toll lane's receipt from a running lanegated with invoicing disabled, as
// config/examples/toll.toml ships. lanegate never issues toll invoices (spec "Tolls"): the
// receipt shows the trip -- both stations, both times, the plate -- and sends the driver to
// the national toll e-bill platform (www.txffp.com / 票根). The operator gets it as JSON,
// as a printable page and through `lanegate tx receipt`.
#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/run_command.h"
#include "../daemon/daemon_fixture.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/sqlite.h"
#include "core/time_format.h"
#include "gateway/daemon.h"
#include "gateway/store.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;
using daemon_test::binary;
using daemon_test::free_tcp_port;
using daemon_test::read_file;
using daemon_test::wait_status;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kOperatorToken = "toll-operator-token";
constexpr const char* kAuditorToken = "toll-auditor-token";

// The demo PKI (provider keys the config names), made once and removed when the binary
// ends: the handler is registered after the path exists, so it runs before it is gone.
fs::path pki_dir() {
  static const fs::path dir = [] {
    fs::path d = daemon_test::demo_pki_dir();
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(daemon_test::demo_pki_dir(), ec);
    });
    return d;
  }();
  return dir;
}

// What a toll lane records (gateway/src/site_toll.cc): the ETC deduction settled.
TxRecord toll_tx(std::string out, std::string detail, ChargeState state = ChargeState::kSuccess) {
  TxRecord t;
  t.out_trade_no = std::move(out);
  t.kind = TxKind::kToll;
  t.lane = "toll-1";
  t.plate = "粤B12345";
  t.plate_colour = "BLUE";
  t.contract_id = "wxLGtollcontract000000000000001";
  t.amount = Money::from_fen(4500);
  t.state = state;
  t.decision = DecisionKind::kPassOnline;
  t.payment_method = "provider";
  t.detail = std::move(detail);
  return t;
}

class TollReceiptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegate-toll-receipt-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    fs::create_directories(dir_ / "state");
    port_ = free_tcp_port();
    write_config();
    record_transactions();
    start();
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (!wait_status(pid_, 10s)) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
    fs::remove_all(dir_);
  }

  // A toll station's box as toll.toml ships it: one ETC exit lane (its devices are not
  // there: the drivers keep reconnecting), invoicing off. The stations are named in
  // [[station]]; the old row below was recorded before the lane kept names.
  void write_config() {
    const std::string pki = pki_dir().string();
    std::ofstream out(dir_ / "lanegate.toml");
    out << "[gateway]\nid = \"toll-gw\"\nsite_name = \"深圳南收费站 出口1\"\nstate_dir = \""
        << (dir_ / "state").string() << "\"\nutc_offset_minutes = 480\n"
        << "[api]\nlisten_address = \"127.0.0.1\"\nlisten_port = " << port_ << "\n"
        << "public_base_url = \"https://toll.example.cn\"\n"
        << "[[api.token]]\nname = \"op\"\nrole = \"operator\"\nsha256 = \""
        << crypto::sha256_hex(kOperatorToken) << "\"\n"
        << "[[api.token]]\nname = \"audit\"\nrole = \"auditor\"\nsha256 = \""
        << crypto::sha256_hex(kAuditorToken) << "\"\n"
        << "[provider]\nbase_url = \"https://127.0.0.1:9\"\nmode = \"partner\"\n"
        << "sp_mchid = \"1900000001\"\nsp_appid = \"wxtest\"\nsub_mchid = \"1900000002\"\n"
        << "merchant_serial_no = \"0123456789ABCDEF\"\nmerchant_private_key_file = \"" << pki
        << "/merchant.key\"\napiv3_key_file = \"" << pki
        << "/apiv3.key\"\nnotify_url = \"https://127.0.0.1:8443/notify\"\nca_file = \"" << pki
        << "/ca.pem\"\n"
        << "[provider.etc]\nchannel_type = \"ETC\"\nchannel_types = [\"ETC\"]\nbound_state = \"BOUND\"\n"
        << "[[provider.platform_key]]\nid = \"PUB_KEY_ID_0001\"\nfile = \"" << pki
        << "/pubkey.pub.pem\"\n"
        << "[invoicing]\nenabled = false\n"
        << "[[bus]]\nid = \"bus-1\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = 9\n"
        << "[[device]]\nid = \"cam-1\"\nkind = \"camera\"\nbus = \"bus-1\"\nunit_id = 1\n"
        << "[[device]]\nid = \"rsu-1\"\nkind = \"roadside_unit\"\nbus = \"bus-1\"\nunit_id = 2\n"
        << "[[device]]\nid = \"barrier-1\"\nkind = \"barrier\"\nbus = \"bus-1\"\nunit_id = 3\n"
        << "[[lane]]\nid = \"toll-1\"\nmode = \"toll-exit\"\ncamera = \"cam-1\"\n"
        << "roadside_unit = \"rsu-1\"\nbarrier = \"barrier-1\"\nstation_id = 4403012\n"
        << "tariff = \"expressway\"\n"
        << "[[station]]\nid = 4403012\nname = \"深圳南\"\n"
        << "[[station]]\nid = 4401001\nname = \"广州北\"\n"
        << "[[station]]\nid = 4419003\nname = \"东莞\"\n"
        << "[[tariff.toll]]\nid = \"expressway\"\n"
        << "[[tariff.toll.fare]]\nentry_station = 4401001\nexit_station = 4403012\n"
        << "vehicle_class = 1\nfare = \"45.00\"\n"
        << "[[tariff.toll.fare]]\nentry_station = 4419003\nexit_station = 4403012\n"
        << "vehicle_class = 1\nfare = \"25.00\"\n";
  }

  // The box's database with what its toll lane recorded, and one parking charge.
  void record_transactions() {
    Database db = Database::open(dir_ / "state" / "lanegate.db").value();
    ASSERT_TRUE(db.migrate(database_schema()));
    FakeClock clock(*parse_rfc3339("2026-11-22T08:41:30+08:00"));
    Store store = Store::open(db, clock).value();
    auto txn = db.begin().value();
    // As the toll lane records it now: names and both times.
    ASSERT_TRUE(store.insert_transaction(
        txn, toll_tx("TOLL-1", R"({"tariff":"demo-expressway","entry_station":4401001,)"
                               R"("entry_name":"广州北","exit_station":4403012,"exit_name":"深圳南",)"
                               R"("vehicle_class":1,"entry_time":"2026-11-22T07:05:00+08:00",)"
                               R"("exit_time":"2026-11-22T08:41:30+08:00","obu_id":"x"})")));
    // Recorded before the lane kept names and the exit time: the names come from
    // [[station]], the exit time is when the row was written (at the exit).
    clock.set_wall(*parse_rfc3339("2026-11-21T19:12:10+08:00"));
    ASSERT_TRUE(store.insert_transaction(
        txn, toll_tx("TOLL-OLD", R"({"tariff":"demo-expressway","entry_station":4419003,)"
                                 R"("exit_station":4403012,"vehicle_class":1,)"
                                 R"("entry_time":"2026-11-21T18:30:00+08:00","obu_id":"x"})")));
    // A deduction not settled yet: no receipt to print.
    ASSERT_TRUE(store.insert_transaction(
        txn, toll_tx("TOLL-OPEN", R"({"entry_station":4401001,"exit_station":4403012,)"
                                  R"("entry_time":"2026-11-22T07:00:00+08:00"})",
                     ChargeState::kAccepted)));
    TxRecord park = toll_tx("PARK-1", "{}", ChargeState::kSuccess);
    park.kind = TxKind::kParking;
    park.lane = "exit-1";
    park.contract_id.clear();
    ASSERT_TRUE(store.insert_transaction(txn, park));
    ASSERT_TRUE(txn.commit());
  }

  void start() {
    daemon_test::SpawnOptions o;
    o.stderr_file = dir_ / "stderr.log";
    pid_ = daemon_test::spawn({binary("lanegated"), "--config", (dir_ / "lanegate.toml").string()}, o);
    ASSERT_GT(pid_, 0);
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = client().Get("/healthz");
      if (r && r->status == 200) return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "lanegated exited: " << read_file(dir_ / "stderr.log");
      }
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "lanegated did not answer /healthz: " << read_file(dir_ / "stderr.log");
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(10, 0);
    return c;
  }
  static httplib::Headers bearer(const char* token) {
    return {{"Authorization", std::string("Bearer ") + token}};
  }

  // `lanegate --config FILE ARGS` with the token in LANEGATE_TOKEN: exit code and stdout.
  std::pair<int, std::string> cli(const std::string& args) {
    return lanegate::testing::run_command("LANEGATE_TOKEN=" + std::string(kOperatorToken) + " " +
                                binary("lanegate") + " --config " + (dir_ / "lanegate.toml").string() +
                                " " + args);
  }

  fs::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// What the driver needs from a toll receipt to get the invoice at www.txffp.com.
void expect_toll_trip(const std::string& text, const std::string& entry,
                      const std::string& entry_time, const std::string& exit,
                      const std::string& exit_time) {
  EXPECT_NE(text.find(entry), std::string::npos) << text;
  EXPECT_NE(text.find(entry_time), std::string::npos) << text;
  EXPECT_NE(text.find(exit), std::string::npos) << text;
  EXPECT_NE(text.find(exit_time), std::string::npos) << text;
  EXPECT_NE(text.find("粤B***45"), std::string::npos) << text;
  EXPECT_NE(text.find("45.00"), std::string::npos) << text;
  EXPECT_NE(text.find("www.txffp.com"), std::string::npos) << text;
  EXPECT_NE(text.find("票根"), std::string::npos) << text;
  EXPECT_NE(text.find("行程后第7个自然日起可开具"), std::string::npos) << text;
}

TEST_F(TollReceiptTest, TollReceiptShowsTheTripAndTheNationalPlatformWithInvoicingDisabled) {
  auto c = client();
  auto r = c.Get("/api/v1/transactions/TOLL-1/receipt", bearer(kOperatorToken));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json::object o = json::parse(r->body).as_object();
  EXPECT_EQ(o.at("kind").as_string(), "toll");
  EXPECT_EQ(o.at("issuer").as_string(), "national_toll_platform");
  // No claim and no QR: lanegate has no toll invoice to offer.
  EXPECT_EQ(o.at("token").as_string(), "");
  EXPECT_EQ(o.at("claim_url").as_string(), "");
  EXPECT_EQ(o.at("qr_svg").as_string(), "");
  const std::string text(o.at("text").as_string());
  expect_toll_trip(text, "广州北", "2026-11-22T07:05", "深圳南", "2026-11-22T08:41");
  EXPECT_NE(text.find("深圳南收费站"), std::string::npos) << text;
  EXPECT_EQ(text.find("粤B12345"), std::string::npos) << "full plate on a receipt: " << text;

  // A row from before the lane kept names: today's [[station]] names, the row's time.
  auto old = c.Get("/api/v1/transactions/TOLL-OLD/receipt", bearer(kOperatorToken));
  ASSERT_TRUE(old);
  ASSERT_EQ(old->status, 200) << old->body;
  expect_toll_trip(std::string(json::parse(old->body).at("text").as_string()), "东莞",
                   "2026-11-21T18:30", "深圳南", "2026-11-21T19:12");

  // Not settled yet: nothing to print, and it says why.
  auto open = c.Get("/api/v1/transactions/TOLL-OPEN/receipt", bearer(kOperatorToken));
  ASSERT_TRUE(open);
  EXPECT_EQ(open->status, 404) << open->body;
  EXPECT_NE(open->body.find("ACCEPTED"), std::string::npos) << open->body;

  // Everything else keeps its claim-based receipt, which a box without invoicing lacks.
  auto park = c.Get("/api/v1/transactions/PARK-1/receipt", bearer(kOperatorToken));
  ASSERT_TRUE(park);
  EXPECT_EQ(park->status, 404) << park->body;
  EXPECT_NE(park->body.find("invoicing_disabled"), std::string::npos) << park->body;

  // Operator only.
  EXPECT_EQ(c.Get("/api/v1/transactions/TOLL-1/receipt")->status, 401);
  EXPECT_EQ(c.Get("/api/v1/transactions/TOLL-1/receipt", bearer(kAuditorToken))->status, 403);
}

TEST_F(TollReceiptTest, PrintablePageOfTheTollReceiptRunsNoScriptAndNeedsTheOperatorToken) {
  auto c = client();
  auto page = c.Get("/api/v1/transactions/TOLL-1/receipt.html", bearer(kOperatorToken));
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200) << page->body;
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  const std::string csp = page->get_header_value("Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("script-src"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
  const std::string& html = page->body;
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(html.find("name=\"viewport\""), std::string::npos);
  EXPECT_NE(html.find("<pre"), std::string::npos);
  expect_toll_trip(html, "广州北", "2026-11-22T07:05", "深圳南", "2026-11-22T08:41");
  EXPECT_EQ(html.find("<svg"), std::string::npos) << "a toll receipt has no QR";
  EXPECT_EQ(html.find("<a "), std::string::npos) << "a toll receipt has no claim link";
  EXPECT_EQ(html.find("<script"), std::string::npos);

  // Without the operator's token: refused, nothing of the trip shown.
  for (const httplib::Headers& h :
       {httplib::Headers{}, bearer("not-a-token"), bearer(kAuditorToken)}) {
    auto refused = c.Get("/api/v1/transactions/TOLL-1/receipt.html", h);
    ASSERT_TRUE(refused);
    EXPECT_TRUE(refused->status == 401 || refused->status == 403) << refused->status;
    EXPECT_EQ(refused->body.find("广州北"), std::string::npos);
  }
  EXPECT_EQ(c.Get("/api/v1/transactions/NOPE/receipt.html", bearer(kOperatorToken))->status, 404);
}

TEST_F(TollReceiptTest, CliPrintsTheTollReceiptWithInvoicingDisabled) {
  auto [code, out] = cli("tx receipt TOLL-1");
  EXPECT_EQ(code, 0) << out;
  expect_toll_trip(out, "广州北", "2026-11-22T07:05", "深圳南", "2026-11-22T08:41");
  EXPECT_NE(out.find("national_toll_platform"), std::string::npos) << out;
  auto [park_code, park_out] = cli("tx receipt PARK-1");
  EXPECT_NE(park_code, 0) << park_out;
  EXPECT_NE(park_out.find("invoicing_disabled"), std::string::npos) << park_out;
}

}  // namespace
}  // namespace lanegate::gateway
