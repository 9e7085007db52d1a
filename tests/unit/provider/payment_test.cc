// read_payment(): the payment-code / Native order as replies, queries and notifications state
// it (spec "Taxi: in-cab payment"; provider pages openapi/v3/pay/{,partner/}transactions/
// codepay.md reply tables), in both modes.
#include <gtest/gtest.h>

#include "core/money.h"
#include "gateway/provider.h"

namespace lanegate::gateway {
namespace {

// The direct codepay reply's fields (appid, mchid, payer.openid).
constexpr const char* kDirect =
    R"({"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"LGTX20261122000001",)"
    R"("transaction_id":"1217752501201407033233368018","trade_type":"MICROPAY",)"
    R"("bank_type":"CMC","success_time":"2026-11-22T13:29:35+08:00","trade_state":"SUCCESS",)"
    R"("trade_state_desc":"支付成功","attach":"trip 17","payer":{"openid":"oUpF8uMuAJO"},)"
    R"("amount":{"total":2350,"payer_total":2250,"currency":"CNY","payer_currency":"CNY"}})";

// The partner reply's names (sp_appid, sp_mchid, sub_*, payer.sp_openid / sub_openid).
constexpr const char* kPartner =
    R"({"sp_appid":"wx8888888888888888","sp_mchid":"1900000100","sub_appid":"wxd678efh567hg6999",)"
    R"("sub_mchid":"1900000109","out_trade_no":"LGTX20261122000002","trade_type":"MICROPAY",)"
    R"("trade_state":"USERPAYING","trade_state_desc":"需要用户输入支付密码",)"
    R"("payer":{"sp_openid":"oSp","sub_openid":"oSub"},"amount":{"total":1800,"currency":"CNY"}})";

TEST(ReadPayment, DirectReplyKeepsTheMoneyFields) {
  auto p = read_payment(PayProduct::kCodepay, kDirect);
  ASSERT_TRUE(p) << p.error().error.to_string();
  EXPECT_EQ(p->product, PayProduct::kCodepay);
  EXPECT_EQ(p->state, PayState::kSuccess);
  EXPECT_EQ(p->out_trade_no, "LGTX20261122000001");
  EXPECT_EQ(p->amount, Money::from_fen(2350));
  EXPECT_EQ(p->payer_total, Money::from_fen(2250));
  EXPECT_EQ(p->merchant_id, "1230000109");
  EXPECT_EQ(p->appid, "wxd678efh567hg6787");
  EXPECT_EQ(p->sub_merchant_id, "");
  EXPECT_EQ(p->transaction_id, "1217752501201407033233368018");
  EXPECT_EQ(p->trade_type, "MICROPAY");
  EXPECT_EQ(p->trade_state_description, "支付成功");
  EXPECT_EQ(p->bank_type, "CMC");
  EXPECT_EQ(p->success_time.value_or(""), "2026-11-22T13:29:35+08:00");
  EXPECT_EQ(p->openid, "oUpF8uMuAJO");
  EXPECT_EQ(p->currency, "CNY");
  EXPECT_EQ(p->payer_currency, "CNY");
  EXPECT_EQ(p->attach.value_or(""), "trip 17");
  EXPECT_EQ(p->raw_json, kDirect);
}

TEST(ReadPayment, PartnerReplyNamesTheSpecialMerchant) {
  auto p = read_payment(PayProduct::kCodepay, kPartner);
  ASSERT_TRUE(p) << p.error().error.to_string();
  EXPECT_EQ(p->state, PayState::kUserPaying);
  EXPECT_EQ(p->merchant_id, "1900000100");
  EXPECT_EQ(p->sub_merchant_id, "1900000109");
  EXPECT_EQ(p->appid, "wx8888888888888888");
  EXPECT_EQ(p->sub_appid, "wxd678efh567hg6999");
  EXPECT_EQ(p->openid, "oSp");
  EXPECT_EQ(p->sub_openid, "oSub");
  EXPECT_EQ(p->amount, Money::from_fen(1800));
  EXPECT_FALSE(p->payer_total);
  EXPECT_EQ(p->transaction_id, "") << "absent until paid";
}

// spec "trade_state values", payment code and Native: every listed value reads.
TEST(ReadPayment, EveryStateOfTheSpecReads) {
  for (auto [text, state] : {std::pair{"SUCCESS", PayState::kSuccess},
                             std::pair{"REFUND", PayState::kRefund},
                             std::pair{"NOTPAY", PayState::kNotPay},
                             std::pair{"CLOSED", PayState::kClosed},
                             std::pair{"REVOKED", PayState::kRevoked},
                             std::pair{"USERPAYING", PayState::kUserPaying},
                             std::pair{"PAYERROR", PayState::kPayError}}) {
    const std::string body = std::string(R"({"out_trade_no":"N1","trade_state":")") + text +
                             R"(","amount":{"total":1}})";
    auto p = read_payment(PayProduct::kNative, body);
    ASSERT_TRUE(p) << text;
    EXPECT_EQ(p->state, state) << text;
  }
}

TEST(ReadPayment, UnknownStateParksWithTheAlarmCode) {
  auto p = read_payment(PayProduct::kNative,
                        R"({"out_trade_no":"N1","trade_state":"ACCEPTED","amount":{"total":1}})");
  ASSERT_FALSE(p) << "ACCEPTED is a parking state, not a payment one";
  EXPECT_EQ(p.error().outcome, Outcome::kPark);
  EXPECT_EQ(p.error().provider_code, kUnknownTradeState);
  EXPECT_EQ(p.error().error.field, "trade_state");
}

TEST(ReadPayment, MalformedRepliesRetryNamingTheField) {
  for (auto [body, field] : {
           std::pair{"not json", "body"},
           std::pair{R"({"trade_state":"SUCCESS","amount":{"total":1}})", "out_trade_no"},
           std::pair{R"({"out_trade_no":"N1","amount":{"total":1}})", "trade_state"},
           std::pair{R"({"out_trade_no":"N1","trade_state":"SUCCESS"})", "amount.total"},
           std::pair{R"({"out_trade_no":"N1","trade_state":"SUCCESS","amount":{"total":"1"}})",
                     "amount.total"},
       }) {
    SCOPED_TRACE(body);
    auto p = read_payment(PayProduct::kCodepay, body);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().outcome, Outcome::kRetryLater);
    EXPECT_EQ(p.error().error.field, field);
  }
}

}  // namespace
}  // namespace lanegate::gateway
