// Notification handling with envelopes built entirely outside the code under test:
// the resource is sealed by the openssl-CLI GCM construction (gcm_cli.h) and the
// envelope is signed by `openssl dgst -sha256 -sign` with the platform key.
#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/pki.h"
#include "core/sqlite.h"
#include "core/time_format.h"
#include "gateway/provider_notify.h"
#include "gcm_cli.h"
#include "provider_test_support.h"

namespace lanegate::gateway {
namespace {

using provider_test::demo_pki;
using provider_test::trim;

class NotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    apiv3_key_ = trim(provider_test::read_file(demo_pki() / "apiv3.key"));
    serial_ = trim(provider_test::read_file(demo_pki() / "platform.serial"));
    keys_ = std::make_shared<PlatformKeySet>();
    keys_->put(serial_, *pki::load_public_key(demo_pki() / "platform.pem"));
    auto db = Database::open(dir_.path() / "gateway.db");
    ASSERT_TRUE(db);
    db_.emplace(std::move(*db));
    ASSERT_TRUE(db_->migrate(provider_schema_steps()));
    handler_.emplace(*db_, keys_, apiv3_key_, clock_);
  }

  NotificationRequest envelope(const std::string& id, const std::string& event_type,
                               const std::string& resource, const std::string& aad = "transaction",
                               const std::string& nonce = "fdasflkja484") {
    std::string sealed = provider_test::cli_gcm_seal(apiv3_key_, nonce, aad, resource, dir_.path());
    std::string body = R"({"id":")" + id + R"(","create_time":"2026-11-22T13:29:35+08:00",)" +
                       R"("resource_type":"encrypt-resource","event_type":")" + event_type +
                       R"(","summary":"支付成功","resource":{"original_type":"transaction",)" +
                       R"("algorithm":"AEAD_AES_256_GCM","ciphertext":")" +
                       crypto::base64_encode(std::string_view(sealed)) +
                       R"(","associated_data":")" + aad + R"(","nonce":")" + nonce + R"("}})";
    std::string ts = std::to_string(clock_.unix_seconds());
    std::string n = "N0NCE" + id;
    std::string sig = provider_test::openssl_sign(demo_pki() / "platform.key",
                                                  ts + "\n" + n + "\n" + body + "\n", dir_.path());
    return NotificationRequest{ts, n, sig, serial_, "WECHATPAY2-SHA256-RSA2048", body};
  }

  static std::string transaction(const std::string& no, const std::string& state, int fen) {
    return R"({"appid":"wxd678efh567hg6787","sp_mchid":"1900000001","out_trade_no":")" + no +
           R"(","transaction_id":"4200000000000000000000000001","trade_state":")" + state +
           R"(","trade_scene":"PARKING","payer":{"openid":"oUser"},"amount":{"total":)" +
           std::to_string(fen) + R"(,"currency":"CNY","payer_total":)" + std::to_string(fen) + "}}";
  }

  provider_test::TempDir dir_;
  FakeClock clock_;
  std::string apiv3_key_;
  std::string serial_;
  std::shared_ptr<PlatformKeySet> keys_;
  std::optional<Database> db_;
  std::optional<NotificationHandler> handler_;
};

TEST_F(NotifyTest, DecryptsVerifiesAndAppliesOnce) {
  int applied = 0;
  Money seen = Money::zero();
  auto apply = [&](Transaction&, const NotificationEvent& e) -> Status {
    ++applied;
    seen = std::get<TransactionEvent>(e.payload).transaction.amount;
    return {};
  };
  auto req = envelope("EV-1", "TRANSACTION.SUCCESS", transaction("LG0001", "SUCCESS", 1234));
  auto reply = handler_->handle(req, apply);
  EXPECT_EQ(reply.status, 204);
  EXPECT_TRUE(reply.body.empty());
  ASSERT_TRUE(reply.event);
  EXPECT_FALSE(reply.event->duplicate);
  const auto& t = std::get<TransactionEvent>(reply.event->payload).transaction;
  EXPECT_EQ(t.out_trade_no, "LG0001");
  EXPECT_EQ(t.state, TradeState::kSuccess);
  EXPECT_EQ(seen, Money::from_fen(1234));
  // The provider redelivers the same event: acknowledged, not applied again.
  auto again = handler_->handle(req, apply);
  EXPECT_EQ(again.status, 204);
  EXPECT_TRUE(again.event->duplicate);
  // A different event id for the same order and state: also a duplicate.
  auto other = handler_->handle(
      envelope("EV-2", "TRANSACTION.SUCCESS", transaction("LG0001", "SUCCESS", 1234)), apply);
  EXPECT_EQ(other.status, 204);
  EXPECT_TRUE(other.event->duplicate);
  EXPECT_EQ(applied, 1);
}

TEST_F(NotifyTest, AcceptsThePublishedFailSpelling) {
  auto reply =
      handler_->handle(envelope("EV-3", "TRANSACTION.FAIL", transaction("LG0002", "FAIL", 800)));
  ASSERT_EQ(reply.status, 204) << reply.body;
  EXPECT_EQ(std::get<TransactionEvent>(reply.event->payload).transaction.state,
            TradeState::kPayFail);
}

TEST_F(NotifyTest, RefusesBadSignatureWithFailBody) {
  auto req = envelope("EV-4", "TRANSACTION.SUCCESS", transaction("LG0003", "SUCCESS", 100));
  req.body.insert(req.body.size() - 1, " ");
  auto reply = handler_->handle(req);
  EXPECT_EQ(reply.status, 401);
  EXPECT_NE(reply.body.find(R"("code":"FAIL")"), std::string::npos);
  auto stale = envelope("EV-5", "TRANSACTION.SUCCESS", transaction("LG0003", "SUCCESS", 100));
  clock_.advance(std::chrono::seconds(301));
  EXPECT_EQ(handler_->handle(stale).status, 401);
}

TEST_F(NotifyTest, RefusesWhatDoesNotDecrypt) {
  // Sealed under another 32-byte key than the handler's APIv3 key.
  apiv3_key_ = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
  auto req = envelope("EV-6", "TRANSACTION.SUCCESS", transaction("LG0004", "SUCCESS", 100));
  auto reply = handler_->handle(req);
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("FAIL"), std::string::npos);
}

TEST_F(NotifyTest, FailedApplyRollsBackSoTheRetryApplies) {
  int calls = 0;
  auto flaky = [&](Transaction&, const NotificationEvent&) -> Status {
    if (++calls == 1) {
      return fail(Errc::kDiskFull, "disk full");
    }
    return {};
  };
  auto req = envelope("EV-7", "TRANSACTION.SUCCESS", transaction("LG0005", "SUCCESS", 300));
  EXPECT_EQ(handler_->handle(req, flaky).status, 500);
  auto retry = handler_->handle(req, flaky);
  EXPECT_EQ(retry.status, 204);
  EXPECT_FALSE(retry.event->duplicate);
  EXPECT_EQ(calls, 2);
}

TEST_F(NotifyTest, DecodesEntranceStateChanges) {
  std::string resource =
      R"({"sp_mchid":"1900000001","parking_id":"PK1","out_parking_no":"IN-7","plate_number":"粤B88888",)"
      R"("plate_color":"BLUE","start_time":"2026-11-22T08:00:00+08:00","parking_name":"P1",)"
      R"("free_duration":900,"parking_state":"BLOCKED","blocked_state_description":"PAUSE",)"
      R"("state_update_time":"2026-11-22T08:05:00+08:00"})";
  auto reply =
      handler_->handle(envelope("EV-8", "VEHICLE.ENTRANCE_STATE_CHANGE", resource, "parking"));
  ASSERT_EQ(reply.status, 204) << reply.body;
  const auto& e = std::get<EntranceStateEvent>(reply.event->payload);
  EXPECT_EQ(e.out_parking_no, "IN-7");
  EXPECT_EQ(e.parking_state, "BLOCKED");
  EXPECT_EQ(e.blocked_state_description.value_or(""), "PAUSE");
}

// The resource exactly as the spec lists it (appid, sp_mchid, sp_openid, sub_openid?,
// sub_mchid?, contract_id, bind_state, plate_number): the format the provider sends,
// which the first release refused with 400 (so WeChat retried for a day and gave up).
TEST_F(NotifyTest, UserStateChangeInTheSpecsFormatBecomesAContractStateEvent) {
  const std::string resource =
      R"({"appid":"wxd678efh567hg6787","sp_mchid":"1900000001","sp_openid":"oSpUser",)"
      R"("sub_openid":"oSubUser","sub_mchid":"1900000109",)"
      R"("contract_id":"wxd678ef4Fwxd678ef4Fwxd678ef4F21","bind_state":"UNBOUND",)"
      R"("plate_number":"粤B12345"})";
  auto reply =
      handler_->handle(envelope("EV-U1", "VEHICLE.USER_STATE_CHANGE", resource, "contract"));
  ASSERT_EQ(reply.status, 204) << reply.body;
  ASSERT_TRUE(reply.event);
  const auto* c = std::get_if<ContractStateEvent>(&reply.event->payload);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->contract_id, "wxd678ef4Fwxd678ef4Fwxd678ef4F21");
  EXPECT_EQ(c->plate_number, "粤B12345");
  EXPECT_EQ(c->bind_state, "UNBOUND");
  EXPECT_EQ(c->sp_mchid, "1900000001");
  EXPECT_EQ(c->sub_mchid, "1900000109");
  EXPECT_EQ(c->sp_openid, "oSpUser");
  // No time field in the resource: the envelope's create_time dates the statement.
  EXPECT_EQ(c->stated_at, *parse_rfc3339("2026-11-22T13:29:35+08:00"));
}

TEST_F(NotifyTest, UserStateChangeWithoutABindStateIsRefusedNamingIt) {
  const std::string resource =
      R"({"appid":"wx1","sp_mchid":"1900000001","sp_openid":"o","contract_id":"C1",)"
      R"("plate_number":"粤B12345"})";
  auto reply =
      handler_->handle(envelope("EV-U2", "VEHICLE.USER_STATE_CHANGE", resource, "contract"));
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("bind_state"), std::string::npos) << reply.body;
}

// The notification pages spell the pending state ACCEPT (replies say ACCEPTED).
TEST_F(NotifyTest, AcceptsTheNotificationSpellingOfAccepted) {
  auto reply = handler_->handle(
      envelope("EV-A1", "TRANSACTION.SUCCESS", transaction("LG0101", "ACCEPT", 300)));
  ASSERT_EQ(reply.status, 204) << reply.body;
  EXPECT_EQ(std::get<TransactionEvent>(reply.event->payload).transaction.state,
            TradeState::kAccepted);
}

// A trade_state outside the spec's table is not guessed: the event is kept (nothing lost,
// the provider stops resending) and applied to nothing; the alarm counter moves.
TEST_F(NotifyTest, AnUnknownTradeStateIsStoredAndAppliedToNothing) {
  bool applied = false;
  auto reply = handler_->handle(
      envelope("EV-X1", "TRANSACTION.SUCCESS", transaction("LG0102", "PROCESSING", 300)),
      [&](Transaction&, const NotificationEvent& e) -> Status {
        applied = std::holds_alternative<TransactionEvent>(e.payload);
        return {};
      });
  EXPECT_EQ(reply.status, 204) << reply.body;
  EXPECT_FALSE(applied);
  auto st = db_->prepare("SELECT resource_json FROM provider_notifications WHERE event_id = 'EV-X1'");
  ASSERT_TRUE(st);
  auto row = st->step();
  ASSERT_TRUE(row && *row);
  EXPECT_NE(st->column_text(0).find("PROCESSING"), std::string::npos);
}

TEST_F(NotifyTest, AnApplierThatThrowsLosesNothingTheProviderRetries) {
  auto throwing = [](Transaction&, const NotificationEvent& e) -> Status {
    (void)std::get<EntranceStateEvent>(e.payload);  // wrong alternative: throws
    return {};
  };
  auto req = envelope("EV-T1", "TRANSACTION.SUCCESS", transaction("LG0099", "SUCCESS", 100));
  auto reply = handler_->handle(req, throwing);
  EXPECT_EQ(reply.status, 500);
  // Rolled back: the same event is new again on the next delivery.
  auto again =
      handler_->handle(req, [](Transaction&, const NotificationEvent&) -> Status { return {}; });
  EXPECT_EQ(again.status, 204);
  ASSERT_TRUE(again.event);
  EXPECT_FALSE(again.event->duplicate);
}

// spec "Native": TRANSACTION.SUCCESS for a Native order carries the payment (trade_type
// NATIVE, no trade_scene): direct appid/mchid and payer.openid, partner sp_appid, sp_mchid,
// sub_appid, sub_mchid and payer.sp_openid/sub_openid.
TEST_F(NotifyTest, NativeSuccessBecomesAPaymentEventInBothModes) {
  const std::string direct =
      R"({"appid":"wxd678efh567hg6787","mchid":"1900000001","out_trade_no":"LGTX0001",)"
      R"("transaction_id":"4200000000000000000000000007","trade_type":"NATIVE",)"
      R"("trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS",)"
      R"("attach":"trip 17","success_time":"2026-11-22T13:29:35+08:00",)"
      R"("payer":{"openid":"oUser"},)"
      R"("amount":{"total":2350,"payer_total":2300,"currency":"CNY","payer_currency":"CNY"}})";
  const std::string partner =
      R"({"sp_appid":"wx8888888888888888","sp_mchid":"1900000100",)"
      R"("sub_appid":"wxd678efh567hg6999","sub_mchid":"1900000109","out_trade_no":"LGTX0002",)"
      R"("transaction_id":"4200000000000000000000000008","trade_type":"NATIVE",)"
      R"("trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS",)"
      R"("success_time":"2026-11-22T13:29:35+08:00",)"
      R"("payer":{"sp_openid":"oSpUser","sub_openid":"oSubUser"},)"
      R"("amount":{"total":1800,"payer_total":1800,"currency":"CNY","payer_currency":"CNY"}})";
  int applied = 0;
  auto apply = [&](Transaction&, const NotificationEvent& e) -> Status {
    applied += std::holds_alternative<PaymentEvent>(e.payload) ? 1 : 0;
    return {};
  };
  auto d = handler_->handle(envelope("EV-N1", "TRANSACTION.SUCCESS", direct), apply);
  ASSERT_EQ(d.status, 204) << d.body;
  const auto* dp = std::get_if<PaymentEvent>(&d.event->payload);
  ASSERT_NE(dp, nullptr) << "a Native payment was not decoded as one";
  EXPECT_EQ(dp->payment.product, PayProduct::kNative);
  EXPECT_EQ(dp->payment.state, PayState::kSuccess);
  EXPECT_EQ(dp->payment.out_trade_no, "LGTX0001");
  EXPECT_EQ(dp->payment.merchant_id, "1900000001");
  EXPECT_EQ(dp->payment.appid, "wxd678efh567hg6787");
  EXPECT_EQ(dp->payment.amount, Money::from_fen(2350));
  EXPECT_EQ(dp->payment.payer_total, Money::from_fen(2300));
  EXPECT_EQ(dp->payment.openid, "oUser");
  EXPECT_EQ(dp->payment.attach.value_or(""), "trip 17");

  auto p = handler_->handle(envelope("EV-N2", "TRANSACTION.SUCCESS", partner), apply);
  ASSERT_EQ(p.status, 204) << p.body;
  const auto* pp = std::get_if<PaymentEvent>(&p.event->payload);
  ASSERT_NE(pp, nullptr);
  EXPECT_EQ(pp->payment.merchant_id, "1900000100");
  EXPECT_EQ(pp->payment.sub_merchant_id, "1900000109");
  EXPECT_EQ(pp->payment.sub_appid, "wxd678efh567hg6999");
  EXPECT_EQ(pp->payment.openid, "oSpUser");
  EXPECT_EQ(pp->payment.sub_openid, "oSubUser");
  EXPECT_EQ(pp->payment.amount, Money::from_fen(1800));

  // Redelivered under another event id: the same order and state, applied once.
  auto again = handler_->handle(envelope("EV-N3", "TRANSACTION.SUCCESS", direct), apply);
  EXPECT_EQ(again.status, 204);
  EXPECT_TRUE(again.event->duplicate);
  EXPECT_EQ(applied, 2);
  // A parking transaction still decodes as one.
  auto parking = handler_->handle(
      envelope("EV-N4", "TRANSACTION.SUCCESS", transaction("LG0201", "SUCCESS", 500)));
  ASSERT_EQ(parking.status, 204);
  EXPECT_TRUE(std::holds_alternative<TransactionEvent>(parking.event->payload));
}

TEST_F(NotifyTest, NativePaymentWithoutAnAmountIsRefusedNamingIt) {
  const std::string resource =
      R"({"appid":"wx1","mchid":"1900000001","out_trade_no":"LGTX0009","trade_type":"NATIVE",)"
      R"("trade_state":"SUCCESS","payer":{"openid":"o"}})";
  auto reply = handler_->handle(envelope("EV-N5", "TRANSACTION.SUCCESS", resource));
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find("amount.total"), std::string::npos) << reply.body;
}

}  // namespace
}  // namespace lanegate::gateway
