// Client <-> sandbox over real HTTPS with real signatures: every call and every error
// of the spec, key modes, key refresh, keep-alive, TLS verification, trade bill.
#include <httplib.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/pki.h"
#include "gateway/provider_notify.h"
#include "provider_fixture.h"

namespace provider_test {
namespace {

using lanegate::Money;
using namespace lanegate::gateway;

using ContractTest = ProviderFixture;

TEST_F(ContractTest, PlateServiceStates) {
  auto c = client();
  auto normal = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_TRUE(normal) << normal.error().error.to_string();
  EXPECT_EQ(normal->service_state, "NORMAL");
  EXPECT_EQ(normal->plate_number, kPlate);  // the UTF-8 plate survived percent-encoding + signing
  auto paused = c->find_plate_service({"", "粤B88888", "BLUE", "oLANEGATEdemo0004paused"});
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->service_state, "PAUSE");
  auto unknown = c->find_plate_service({"", "粤B00000", "BLUE", "oNobody"});
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->service_state, "OUT_SERVICE");
  auto bad_color = c->find_plate_service({"", kPlate, "PINK", kOpenid});
  ASSERT_FALSE(bad_color);
  EXPECT_EQ(bad_color.error().outcome, Outcome::kPark);
}

TEST_F(ContractTest, ParkingEntryIsLocatedByOutParkingNo) {
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-0001"));
  ASSERT_TRUE(e) << e.error().error.to_string();
  EXPECT_EQ(e->state, "NORMAL");
  auto again = c->create_parking_entry(entry("IN-0001"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, e->id);
  auto overdue = c->create_parking_entry(entry("IN-0002", kOverduePlate));
  ASSERT_TRUE(overdue);
  EXPECT_EQ(overdue->state, "BLOCKED");
  EXPECT_EQ(overdue->block_reason.value_or(""), "OVERDUE");
  auto paused = c->create_parking_entry(entry("IN-0003", "粤B88888"));
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->block_reason.value_or(""), "PAUSE");
}

TEST_F(ContractTest, ChargeIsAcceptedThenSucceedsAndQueryFindsIt) {
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-0010"));
  ASSERT_TRUE(e);
  auto t = c->charge(parking_charge("LG20261122000001", e->id, 1500), ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kAccepted);
  EXPECT_EQ(t->amount, Money::from_fen(1500));
  EXPECT_FALSE(t->transaction_id.empty());
  EXPECT_TRUE(wait_for_state(*c, "LG20261122000001", TradeState::kSuccess));
  auto q = c->query_transaction(Product::kParking, "LG20261122000001");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->transaction_id, t->transaction_id);
  EXPECT_EQ(q->payer_total.value_or(Money::zero()), Money::from_fen(1500));
}

TEST_F(ContractTest, OverdueAccountEndsInPayFail) {
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-0020", kOverduePlate));
  ASSERT_TRUE(e);
  // The entry is BLOCKED but the binding is NORMAL: the charge is accepted, the
  // deduction fails asynchronously.
  auto t = c->charge(parking_charge("LG20261122000002", e->id, 900, kOverduePlate),
                     ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kAccepted);
  EXPECT_TRUE(wait_for_state(*c, "LG20261122000002", TradeState::kPayFail));
}

TEST_F(ContractTest, ResentOutTradeNoReturnsTheSameTransactionAndOtherAmountIsRefused) {
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-0030"));
  ASSERT_TRUE(e);
  auto first = c->charge(parking_charge("LG20261122000003", e->id, 700), ChargeAttempt::kFirst);
  ASSERT_TRUE(first);
  auto resent = c->charge(parking_charge("LG20261122000003", e->id, 700), ChargeAttempt::kFirst);
  ASSERT_TRUE(resent);
  EXPECT_EQ(resent->transaction_id, first->transaction_id);
  auto other = c->charge(parking_charge("LG20261122000003", e->id, 701), ChargeAttempt::kFirst);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().outcome, Outcome::kPark);
  EXPECT_EQ(other.error().http_status, 400);
  EXPECT_EQ(other.error().provider_code, "INVALID_REQUEST");
  auto list = sandbox_->transactions();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].amount_fen, 700);
  EXPECT_EQ((*list)[0].submissions, 2);
}

TEST_F(ContractTest, ParamErrorsPark) {
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-0040"));
  ASSERT_TRUE(e);
  auto bad_no = c->charge(parking_charge("LG 2026/bad", e->id, 100), ChargeAttempt::kFirst);
  ASSERT_FALSE(bad_no);
  EXPECT_EQ(bad_no.error().http_status, 400);
  EXPECT_EQ(bad_no.error().provider_code, "PARAM_ERROR");
  EXPECT_EQ(bad_no.error().outcome, Outcome::kPark);
  auto unknown_entry =
      c->charge(parking_charge("LG20261122000004", "PK-nope", 100), ChargeAttempt::kFirst);
  ASSERT_FALSE(unknown_entry);
  EXPECT_EQ(unknown_entry.error().provider_code, "PARAM_ERROR");
  EXPECT_EQ(unknown_entry.error().error.field, "parking_info.parking_id");
  auto paused_entry = c->create_parking_entry(entry("IN-0041", "粤B88888"));
  ASSERT_TRUE(paused_entry);
  auto paused = c->charge(parking_charge("LG20261122000005", paused_entry->id, 100, "粤B88888"),
                          ChargeAttempt::kFirst);
  ASSERT_FALSE(paused);
  EXPECT_EQ(paused.error().provider_code, "INVALID_REQUEST");
}

TEST_F(ContractTest, QueryOfUnknownOrderIsNotFound) {
  auto c = client();
  auto q = c->query_transaction(Product::kParking, "LG-never-sent");
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().outcome, Outcome::kNotFound);
  EXPECT_EQ(q.error().provider_code, "ORDER_NOT_EXIST");
}

lanegate::gateway::ChargeRequest highway_charge(const std::string& out_trade_no,
                                                const std::string& contract, const char* plate,
                                                std::int64_t fen) {
  ChargeRequest r;
  r.product = Product::kHighway;
  r.out_trade_no = out_trade_no;
  r.description = "高速通行费";
  r.amount = Money::from_fen(fen);
  r.contract_id = contract;
  r.highway.plate_number = plate;
  r.highway.start_time = std::chrono::system_clock::now() - std::chrono::hours(1);
  r.highway.end_time = std::chrono::system_clock::now();
  r.highway.entrance = "沿江深圳-大铲湾";
  r.highway.exit = "广珠东线-珠海站";
  r.highway.vehicle_class = 1;
  return r;
}

// Spec "ETC highway deduction": partner only, synchronous result, its own queries.
TEST_F(ContractTest, HighwayChargeIsSynchronousWithItsOwnQueriesInPartnerMode) {
  auto c = client(partner_config());
  auto t = c->charge(highway_charge("ETC20261122000001", kBoundContract, kPlate, 4550),
                     ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kSuccess) << "the deduction result comes in the reply";
  EXPECT_EQ(t->merchant_id, kSpMchid);
  EXPECT_EQ(t->sub_merchant_id, kSubMchid);
  EXPECT_FALSE(t->openid.empty()) << "payer.sp_openid";
  auto q = c->query_transaction(Product::kHighway, "ETC20261122000001");
  ASSERT_TRUE(q) << q.error().error.to_string();
  EXPECT_EQ(q->transaction_id, t->transaction_id);
  // The parking query path does not see highway orders.
  EXPECT_EQ(c->query_transaction(Product::kParking, "ETC20261122000001").error().outcome,
            Outcome::kNotFound);
  // An overdue account: the failure is in the reply too.
  auto failed = c->charge(highway_charge("ETC20261122000003", kOverdueContract, kOverduePlate, 900),
                          ChargeAttempt::kFirst);
  ASSERT_TRUE(failed) << failed.error().error.to_string();
  EXPECT_EQ(failed->state, TradeState::kPayFail);
  // A contract that is not bound is refused as a whole.
  auto refused = c->charge(highway_charge("ETC20261122000009", kUnboundContract, "粤A00001", 500),
                           ChargeAttempt::kFirst);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().outcome, Outcome::kPark);
}

// A direct merchant has no ETC API: refused locally, nothing leaves.
TEST_F(ContractTest, HighwayInDirectModeIsRefusedBeforeAnythingIsSent) {
  auto c = client();
  auto r = c->charge(highway_charge("ETC20261122000010", kBoundContract, kPlate, 4550),
                     ChargeAttempt::kFirst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kPark);
  EXPECT_EQ(r.error().error.field, "provider.mode");
  EXPECT_EQ(c->TEST_connections_opened(), 0);
  auto txs = sandbox_->transactions();
  ASSERT_TRUE(txs);
  EXPECT_TRUE(txs->empty());
}

TEST_F(ContractTest, ContractQueryReturnsTheBindState) {
  auto c = client(partner_config());
  auto bound = c->query_etc_contract(kBoundContract);
  ASSERT_TRUE(bound) << bound.error().error.to_string();
  EXPECT_EQ(bound->bind_state, "BOUND");
  EXPECT_EQ(bound->plate_number, kPlate);
  EXPECT_EQ(bound->merchant_id, kSpMchid);
  auto unbound = c->query_etc_contract(kUnboundContract);
  ASSERT_TRUE(unbound);
  EXPECT_EQ(unbound->bind_state, "UNBOUND");
  auto none = c->query_etc_contract("wxLGnoSuchContract00000000000000");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().outcome, Outcome::kNotFound);
}

// Spec "Direct merchant vs service provider": the same parking calls with sub_mchid; the
// sandbox refuses a partner call without it, so every call here proves the placement.
TEST_F(ContractTest, PartnerParkingEntryChargeAndQuery) {
  auto c = client(partner_config());
  auto s = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_TRUE(s) << s.error().error.to_string();
  EXPECT_EQ(s->service_state, "NORMAL");
  auto e = c->create_parking_entry(entry("IN-P001"));
  ASSERT_TRUE(e) << e.error().error.to_string();
  auto t = c->charge(parking_charge("LGP20261122000001", e->id, 700), ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kAccepted);
  EXPECT_EQ(t->merchant_id, kSpMchid);
  EXPECT_EQ(t->sub_merchant_id, kSubMchid);
  EXPECT_TRUE(wait_for_state(*c, "LGP20261122000001", TradeState::kSuccess));
  auto txs = sandbox_->transactions();
  ASSERT_TRUE(txs);
  ASSERT_EQ(txs->size(), 1u);
  EXPECT_EQ((*txs)[0].mchid, kSpMchid);
  EXPECT_EQ((*txs)[0].sub_mchid, kSubMchid);
}

TEST_F(ContractTest, WrongMerchantKeyGetsSignErrorAndRetriesLater) {
  auto cfg = config();
  cfg.merchant_private_key_file = demo_pki() / "pubkey.key";  // a valid RSA key, not the merchant's
  auto c = client(cfg);
  auto before = sandbox_->sign_errors();
  auto r = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 401);
  EXPECT_EQ(r.error().provider_code, "SIGN_ERROR");
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater);
  EXPECT_EQ(sandbox_->sign_errors(), before + 1);
}

TEST_F(ContractTest, ClientClockSkewGetsSignError) {
  lanegate::FakeClock skewed(lanegate::SystemClock::instance().now() + std::chrono::seconds(400));
  auto c = lanegate::gateway::WechatPayClient::create(config(), skewed);
  ASSERT_TRUE(c);
  auto r = (*c)->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().provider_code, "SIGN_ERROR");
}

TEST_F(ContractTest, UnknownMerchantIsNoAuth) {
  auto cfg = config();
  cfg.mchid = "1999999999";
  auto c = client(cfg);
  auto r = c->query_transaction(Product::kParking, "LG1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_EQ(r.error().provider_code, "NO_AUTH");
  EXPECT_EQ(r.error().outcome, Outcome::kPark);
}

TEST_F(ContractTest, InjectedServerErrorsClassifyPerCall) {
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-0050"));
  ASSERT_TRUE(e);
  for (auto [share, status, code] :
       {std::tuple{&lanegate::sim::ProviderFaults::error_5xx_share, 500, "SYSTEM_ERROR"},
        std::tuple{&lanegate::sim::ProviderFaults::unavailable_share, 503,
                   "SERVICE_UNAVAILABLE"}}) {
    lanegate::sim::ProviderFaults f;
    f.*share = 1.0;
    sandbox_->set_faults(f);
    auto charge = c->charge(parking_charge("LG20261122000050", e->id, 300), ChargeAttempt::kFirst);
    ASSERT_FALSE(charge);
    EXPECT_EQ(charge.error().http_status, status);
    EXPECT_EQ(charge.error().provider_code, code);
    EXPECT_EQ(charge.error().outcome, Outcome::kQueryFirst);
    auto query = c->query_transaction(Product::kParking, "LG20261122000050");
    ASSERT_FALSE(query);
    EXPECT_EQ(query.error().outcome, Outcome::kRetryLater);
    // Still ambiguous after a failed query: the caller must keep querying.
    auto after =
        c->charge(parking_charge("LG20261122000050", e->id, 300), ChargeAttempt::kAfterAmbiguity);
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error().outcome, Outcome::kQueryFirst);
  }
  lanegate::sim::ProviderFaults limited;
  limited.ratelimit_share = 1.0;
  sandbox_->set_faults(limited);
  auto r = c->charge(parking_charge("LG20261122000050", e->id, 300), ChargeAttempt::kFirst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 429);
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater);
  sandbox_->set_faults({});
  // After the faults clear, the ambiguous charge resolves by query -> 404 -> resend.
  auto resolved =
      c->charge(parking_charge("LG20261122000050", e->id, 300), ChargeAttempt::kAfterAmbiguity);
  ASSERT_TRUE(resolved) << resolved.error().error.to_string();
  EXPECT_EQ(sandbox_->transactions()->size(), 1u);
}

TEST_F(ContractTest, RefusedConnectionIsRetryLaterNotAmbiguous) {
  auto c = client();
  auto e = c->create_parking_entry(entry("IN-0060"));
  ASSERT_TRUE(e);
  lanegate::sim::ProviderFaults down;
  down.refuse_connections = true;
  sandbox_->set_faults(down);
  auto r = c->charge(parking_charge("LG20261122000060", e->id, 300), ChargeAttempt::kFirst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater);
  EXPECT_EQ(r.error().http_status, 0);
  sandbox_->set_faults({});
  auto ok = c->charge(parking_charge("LG20261122000060", e->id, 300), ChargeAttempt::kFirst);
  ASSERT_TRUE(ok) << ok.error().error.to_string();
}

TEST_F(ContractTest, ReplyLatencyBeyondTheDeadlineIsAmbiguousAndResolvesByQuery) {
  auto cfg = config();
  cfg.request_timeout_ms = 300;  // a charge's request limit is the one every call has
  auto c = client(cfg);
  auto e = c->create_parking_entry(entry("IN-0070"));
  ASSERT_TRUE(e);
  lanegate::sim::ProviderFaults slow;
  slow.latency_ms = 1200;
  sandbox_->set_faults(slow);
  auto r = c->charge(parking_charge("LG20261122000070", e->id, 300), ChargeAttempt::kFirst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kQueryFirst);
  sandbox_->set_faults({});
  auto resolved =
      c->charge(parking_charge("LG20261122000070", e->id, 300), ChargeAttempt::kAfterAmbiguity);
  ASSERT_TRUE(resolved) << resolved.error().error.to_string();
  auto list = sandbox_->transactions();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].amount_fen, 300);
}

TEST_F(ContractTest, PublicKeyIdModeRepliesVerify) {
  auto cfg = config();
  cfg.public_key_id = trim(read_file(demo_pki() / "pubkey.id"));
  cfg.platform_keys = {{cfg.public_key_id, demo_pki() / "pubkey.pub.pem"}};  // only the new key
  auto c = client(cfg);
  auto r = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_TRUE(r) << r.error().error.to_string();
}

TEST_F(ContractTest, UnknownSerialTriggersCertificateDownload) {
  auto cfg = config();
  cfg.platform_keys.clear();  // nothing known: the first reply names an unknown serial
  auto c = client(cfg);
  EXPECT_EQ(c->key_set()->size(), 0u);
  auto r = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_TRUE(r) << r.error().error.to_string();
  EXPECT_EQ(c->key_set()->size(), 1u);
  EXPECT_TRUE(c->key_set()->find(trim(read_file(demo_pki() / "platform.serial"))));
}

// A call waits for a certificate download another thread is running rather than failing or
// starting its own: no call waits behind more than one download (the bound lease_ms is
// checked against), and a rotation does not fail the calls that race the first download.
TEST_F(ContractTest, ConcurrentRepliesWithAnUnknownKeyWaitForOneCertificateDownload) {
  auto cfg = config();
  cfg.platform_keys.clear();  // every first reply names an unknown serial
  auto c = client(cfg);
  // Fewer than the sandbox's 8 server threads: each keep-alive connection holds one, and
  // the certificate download needs one more.
  constexpr int kThreads = 4;
  std::atomic<int> verified{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      while (!go.load()) {
        std::this_thread::yield();
      }
      auto r = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
      if (r) {
        verified.fetch_add(1);
      } else {
        ADD_FAILURE() << r.error().error.to_string();
      }
    });
  }
  go = true;
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(verified.load(), kThreads);
  EXPECT_EQ(c->key_set()->size(), 1u);
}

TEST_F(ContractTest, KeepAliveReusesOneConnection) {
  auto c = client();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c->find_plate_service({"", kPlate, "BLUE", kOpenid}));
  }
  EXPECT_EQ(c->TEST_connections_opened(), 1);
}

TEST_F(ContractTest, TlsPeerIsVerified) {
  auto cfg = config();
  cfg.ca_file.reset();  // system trust store: the demo CA is not in it
  auto c = client(cfg);
  auto r = c->find_plate_service({"", kPlate, "BLUE", kOpenid});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().outcome, Outcome::kRetryLater);
  EXPECT_EQ(r.error().http_status, 0);
}

// Spec "Trade bill": the 27-column ALL header, backticked fields, the 7-column summary;
// the file's SHA-1 is checked against the signed reply. Partner: the special merchant's
// bill, its rows carrying 特约商户号.
TEST_F(ContractTest, TradeBillDownloadsWithMatchingHashInTheSpecsLayout) {
  auto c = client(partner_config());
  auto e = c->create_parking_entry(entry("IN-0080"));
  ASSERT_TRUE(e);
  ASSERT_TRUE(c->charge(parking_charge("LG20261122000080", e->id, 1234), ChargeAttempt::kFirst));
  ASSERT_TRUE(c->charge(parking_charge("LG20261122000081", e->id, 66), ChargeAttempt::kFirst));
  ASSERT_TRUE(wait_for_state(*c, "LG20261122000080", TradeState::kSuccess));
  ASSERT_TRUE(wait_for_state(*c, "LG20261122000081", TradeState::kSuccess));
  auto bill = c->download_trade_bill(lanegate::format_local_date(clock_.now(), {480}));
  ASSERT_TRUE(bill) << bill.error().error.to_string();
  const std::string& csv = bill->csv;
  const std::string header =
      "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
      "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
      "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
      "费率备注";
  EXPECT_NE(csv.find(header), std::string::npos) << csv;
  EXPECT_NE(csv.find("`LG20261122000080,"), std::string::npos);
  EXPECT_NE(csv.find("`" + std::string(kSubMchid) + ","), std::string::npos) << "特约商户号";
  EXPECT_NE(csv.find("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,"
                     "订单总金额,申请退款总金额"),
            std::string::npos)
      << csv;
  EXPECT_EQ(lanegate::pki::sha1_hex(csv), bill->hash_value);
}

// A small notify_url receiver over HTTPS that mounts the gateway's handler.
class Receiver {
 public:
  Receiver(lanegate::gateway::NotificationHandler& handler, int fail_first)
      : server_((demo_pki() / "server.pem").c_str(), (demo_pki() / "server.key").c_str()),
        fail_first_(fail_first) {
    server_.Post("/notify", [this, &handler](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      ++deliveries_;
      if (deliveries_ <= fail_first_) {
        res.status = 500;
        res.set_content(R"({"code":"FAIL","message":"not yet"})", "application/json");
        return;
      }
      auto reply = handler.handle(
          {req.get_header_value("Wechatpay-Timestamp"), req.get_header_value("Wechatpay-Nonce"),
           req.get_header_value("Wechatpay-Signature"), req.get_header_value("Wechatpay-Serial"),
           req.get_header_value("Wechatpay-Signature-Type"), req.body});
      res.status = reply.status;
      if (!reply.body.empty()) {
        res.set_content(reply.body, "application/json");
      }
      if (reply.event && !reply.event->duplicate) {
        events_.push_back(*reply.event);
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // cpp-httplib 0.11's stop() does nothing before the listen loop runs.
    for (int i = 0; i < 500 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/notify"; }
  std::vector<lanegate::gateway::NotificationEvent> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  int deliveries() {
    std::lock_guard lock(mu_);
    return deliveries_;
  }

 private:
  httplib::SSLServer server_;
  int fail_first_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int deliveries_ = 0;
  std::vector<lanegate::gateway::NotificationEvent> events_;
};

TEST_F(ContractTest, NotificationsAreDeliveredSignedEncryptedAndRetried) {
  auto c = client();
  auto db = lanegate::Database::open(dir_.path() / "gateway.db");
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->migrate(provider_schema_steps()));
  lanegate::gateway::NotificationHandler handler(*db, c->key_set(), c->apiv3_key(), clock_);
  Receiver receiver(handler, /*fail_first=*/2);
  auto e = c->create_parking_entry(entry("IN-0090"));
  ASSERT_TRUE(e);
  auto r = parking_charge("LG20261122000090", e->id, 2500);
  r.notify_url = receiver.url();
  ASSERT_TRUE(c->charge(r, ChargeAttempt::kFirst));
  // Two refusals, then the retry schedule (15 s, 15 s at time factor 0.01) delivers it.
  for (int i = 0; i < 300 && receiver.events().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto events = receiver.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event_type, "TRANSACTION.SUCCESS");
  const auto& t = std::get<TransactionEvent>(events[0].payload).transaction;
  EXPECT_EQ(t.out_trade_no, "LG20261122000090");
  EXPECT_EQ(t.amount, Money::from_fen(2500));
  EXPECT_EQ(receiver.deliveries(), 3);
  // The sandbox records the delivery once the 204 is back: wait (bounded) for it.
  auto notes = sandbox_->notifications();
  for (int i = 0; i < 200 && notes && !notes->empty() && (*notes)[0].state != "delivered"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    notes = sandbox_->notifications();
  }
  ASSERT_TRUE(notes);
  ASSERT_EQ(notes->size(), 1u);
  EXPECT_EQ((*notes)[0].state, "delivered");
  EXPECT_EQ((*notes)[0].attempts, 3);
}

TEST_F(ContractTest, PausedNotificationsWaitThenGoOut) {
  auto c = client();
  auto db = lanegate::Database::open(dir_.path() / "gateway.db");
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->migrate(provider_schema_steps()));
  lanegate::gateway::NotificationHandler handler(*db, c->key_set(), c->apiv3_key(), clock_);
  Receiver receiver(handler, 0);
  lanegate::sim::ProviderFaults paused;
  paused.notifications_paused = true;
  sandbox_->set_faults(paused);
  auto e = c->create_parking_entry(entry("IN-0100", kOverduePlate));
  ASSERT_TRUE(e);
  auto r = parking_charge("LG20261122000100", e->id, 800, kOverduePlate);
  r.notify_url = receiver.url();
  ASSERT_TRUE(c->charge(r, ChargeAttempt::kFirst));
  ASSERT_TRUE(wait_for_state(*c, "LG20261122000100", TradeState::kPayFail));
  EXPECT_EQ(receiver.deliveries(), 0);
  sandbox_->set_faults({});
  for (int i = 0; i < 300 && receiver.events().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(receiver.events().size(), 1u);
  EXPECT_EQ(receiver.events()[0].event_type, "TRANSACTION.FAIL");
}

TEST_F(ContractTest, PlateStateChangeNotifiesOpenEntries) {
  auto c = client();
  auto db = lanegate::Database::open(dir_.path() / "gateway.db");
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->migrate(provider_schema_steps()));
  lanegate::gateway::NotificationHandler handler(*db, c->key_set(), c->apiv3_key(), clock_);
  Receiver receiver(handler, 0);
  auto req = entry("IN-0110", "粤BD12345", "GREEN");
  req.notify_url = receiver.url();
  auto e = c->create_parking_entry(req);
  ASSERT_TRUE(e);
  ASSERT_EQ(e->state, "NORMAL");
  ASSERT_TRUE(sandbox_->set_plate_state("粤BD12345", "GREEN", "PAUSE"));
  for (int i = 0; i < 300 && receiver.events().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto events = receiver.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event_type, "VEHICLE.ENTRANCE_STATE_CHANGE");
  const auto& s = std::get<EntranceStateEvent>(events[0].payload);
  EXPECT_EQ(s.out_parking_no, "IN-0110");
  EXPECT_EQ(s.parking_id, e->id);
  EXPECT_EQ(s.parking_state, "BLOCKED");
  EXPECT_EQ(s.blocked_state_description.value_or(""), "PAUSE");
  // The resent entry now reports the blocked state too.
  auto again = c->create_parking_entry(req);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, "BLOCKED");
}

}  // namespace
}  // namespace provider_test
