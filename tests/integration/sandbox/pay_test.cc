// In-cab payments against the sandbox, requests written by hand from the spec's "Taxi:
// in-cab payment" section: payment code and Native, query, reverse and close, direct
// (/v3/pay/transactions/…) and partner (/v3/pay/partner/transactions/…), the field lists,
// the quick-pay timing (USERPAYING, auto-revoke), the Native notification, the bill and
// lost replies.
#include "sandbox_fixture.h"

namespace sandbox_test {
namespace {

const std::string kDirect = "/v3/pay/transactions";
const std::string kPartner = "/v3/pay/partner/transactions";

class PayTest : public SandboxFixture {
 protected:
  // The ids of a /v3/pay body: direct appid/mchid, partner sp_appid/sp_mchid/sub_mchid.
  static json::object ids(bool partner) {
    return partner ? json::object{{"sp_appid", kSpAppid},
                                  {"sp_mchid", kSpMchid},
                                  {"sub_mchid", kSubMchid}}
                   : json::object{{"appid", kDirectAppid}, {"mchid", kDirectMchid}};
  }
  static std::string caller(bool partner) { return partner ? kSpMchid : kDirectMchid; }
  static std::string base(bool partner) { return partner ? kPartner : kDirect; }
  static std::string query_ids(bool partner) {
    return partner ? "?sp_mchid=" + kSpMchid + "&sub_mchid=" + kSubMchid : "?mchid=" + kDirectMchid;
  }

  json::object codepay_body(bool partner, const std::string& no, const std::string& code,
                            std::int64_t fen = 2350) {
    json::object o = ids(partner);
    o["description"] = "出租车车费";
    o["out_trade_no"] = no;
    o["payer"] = {{"auth_code", code}};
    o["amount"] = {{"total", fen}, {"currency", "CNY"}};
    o["scene_info"] = {{"device_id", "meter-1"}, {"store_info", {{"out_id", "cab-粤B12345"}}}};
    return o;
  }
  json::object native_body(bool partner, const std::string& no, std::int64_t fen = 3100) {
    json::object o = ids(partner);
    o["description"] = "出租车车费";
    o["out_trade_no"] = no;
    o["notify_url"] = receiver_.url("/pay-notify");
    o["amount"] = {{"total", fen}, {"currency", "CNY"}};
    return o;
  }
  HttpReply codepay(bool partner, const json::object& body) {
    return post(base(partner) + "/codepay", body, caller(partner));
  }
  HttpReply query(bool partner, const std::string& no) {
    return call("GET", base(partner) + "/out-trade-no/" + no + query_ids(partner), {},
                caller(partner));
  }
  std::string state(bool partner, const std::string& no) {
    auto q = query(partner, no);
    EXPECT_EQ(q.status, 200) << q.body;
    return q.status == 200 ? std::string(q.obj().at("trade_state").as_string()) : "";
  }
  // Polls the query (bounded) until the order reaches `want`; returns the last state.
  std::string wait_state(bool partner, const std::string& no, const std::string& want) {
    std::string s;
    for (int i = 0; i < 400 && s != want; ++i) {
      s = state(partner, no);
      if (s != want) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    return s;
  }
  HttpReply admin_post(const std::string& path, const json::object& body) {
    httplib::Client admin("127.0.0.1", sandbox_->admin_port());
    auto r = admin.Post(path, json::serialize(body), "application/json");
    HttpReply out;
    if (!r) {
      ADD_FAILURE() << path << ": no reply";
      return out;
    }
    out.status = r->status;
    out.body = r->body;
    boost::system::error_code ec;
    out.json = json::parse(out.body, ec);
    return out;
  }
  json::object admin_payment(const std::string& no) {
    httplib::Client admin("127.0.0.1", sandbox_->admin_port());
    auto r = admin.Get("/admin/payments");
    EXPECT_TRUE(r);
    if (!r) {
      return {};
    }
    const json::value list = json::parse(r->body);
    for (const auto& p : list.as_array()) {
      if (p.at("out_trade_no").as_string() == no) {
        return p.as_object();
      }
    }
    ADD_FAILURE() << no << " not in /admin/payments";
    return {};
  }
  std::string bill_csv(const std::string& mchid) {
    auto r = call("GET", "/v3/bill/tradebill?bill_date=" + today(), {}, mchid);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) {
      return "";
    }
    const std::string url(r.obj().at("download_url").as_string());
    auto file = call("GET", url.substr(sandbox_->base_url().size()), {}, mchid, false);
    EXPECT_EQ(lanegate::pki::sha1_hex(file.body), r.obj().at("hash_value").as_string());
    return file.body;
  }
};

// A well-formed code nobody registered: a fresh code of an anonymous payer.
std::string fresh_code(int n) {
  std::string tail = std::to_string(n);
  return "134" + std::string(15 - tail.size(), '0') + tail;
}

TEST_F(PayTest, CodepayPaysAtOnceInBothModesAndTheQueryShowsTheOrder) {
  for (bool partner : {false, true}) {
    SCOPED_TRACE(partner ? "partner" : "direct");
    const std::string no = partner ? "CAB-P-1" : "CAB-D-1";
    auto r = codepay(partner, codepay_body(partner, no, fresh_code(partner ? 2 : 1)));
    ASSERT_EQ(r.status, 200) << r.body;
    const auto& o = r.obj();
    EXPECT_EQ(o.at("trade_state").as_string(), "SUCCESS");
    EXPECT_EQ(o.at("trade_type").as_string(), "MICROPAY");
    EXPECT_EQ(o.at("out_trade_no").as_string(), no);
    EXPECT_EQ(o.at("amount").at("total").as_int64(), 2350);
    EXPECT_EQ(o.at("amount").at("payer_total").as_int64(), 2350);
    EXPECT_EQ(o.at("amount").at("payer_currency").as_string(), "CNY");
    EXPECT_TRUE(o.contains("success_time") && o.contains("transaction_id") &&
                o.contains("bank_type"));
    if (partner) {
      EXPECT_EQ(o.at("sp_mchid").as_string(), kSpMchid);
      EXPECT_EQ(o.at("sp_appid").as_string(), kSpAppid);
      EXPECT_EQ(o.at("sub_mchid").as_string(), kSubMchid);
      EXPECT_EQ(o.at("sub_appid").as_string(), kSubAppid);
      EXPECT_TRUE(o.at("payer").as_object().contains("sp_openid"));
      EXPECT_TRUE(o.at("payer").as_object().contains("sub_openid"));
      EXPECT_FALSE(o.contains("mchid"));
    } else {
      EXPECT_EQ(o.at("mchid").as_string(), kDirectMchid);
      EXPECT_EQ(o.at("appid").as_string(), kDirectAppid);
      EXPECT_TRUE(o.at("payer").as_object().contains("openid"));
      EXPECT_FALSE(o.contains("sub_mchid"));
    }
    auto q = query(partner, no);
    ASSERT_EQ(q.status, 200) << q.body;
    EXPECT_EQ(q.obj().at("trade_state").as_string(), "SUCCESS");
    EXPECT_EQ(q.obj().at("transaction_id"), o.at("transaction_id"));
  }
  auto missing = query(true, "NOSUCHORDER");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.code(), "ORDER_NOT_EXIST");
}

// For every call in each mode: a required field missing and an unknown one, both named.
TEST_F(PayTest, EveryCallRefusesAMissingOrUnknownFieldNamingIt) {
  struct Case {
    bool partner;
    std::string path;
    json::object body;
    std::string drop;     // a required field removed
    std::string unknown;  // a field this call does not have
  };
  const std::vector<Case> cases = {
      {false, kDirect + "/codepay", codepay_body(false, "F-1", fresh_code(10)), "scene_info",
       "notify_url"},
      {true, kPartner + "/codepay", codepay_body(true, "F-2", fresh_code(11)), "sp_appid", "appid"},
      {false, kDirect + "/native", native_body(false, "F-3"), "notify_url", "limit_pay"},
      {true, kPartner + "/native", native_body(true, "F-4"), "sub_mchid", "mchid"},
      {false, kDirect + "/out-trade-no/F-5/reverse", ids(false), "appid", "sub_mchid"},
      {true, kPartner + "/out-trade-no/F-6/reverse", ids(true), "sp_mchid", "reason"},
      {false, kDirect + "/out-trade-no/F-7/close", {{"mchid", kDirectMchid}}, "mchid", "appid"},
      {true,
       kPartner + "/out-trade-no/F-8/close",
       {{"sp_mchid", kSpMchid}, {"sub_mchid", kSubMchid}},
       "sub_mchid",
       "sp_appid"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    auto missing = c.body;
    missing.erase(c.drop);
    auto r = post(c.path, missing, caller(c.partner));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.code(), "PARAM_ERROR");
    EXPECT_EQ(r.detail("field"), c.drop);
    auto extra = c.body;
    extra[c.unknown] = "x";
    r = post(c.path, extra, caller(c.partner));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.code(), "PARAM_ERROR");
    EXPECT_EQ(r.detail("field"), c.unknown);
  }
  // Nested, typed, and the queries.
  auto nested = codepay_body(false, "F-9", fresh_code(12));
  nested["scene_info"].as_object().erase("store_info");
  auto r = codepay(false, nested);
  EXPECT_EQ(r.detail("field"), "scene_info.store_info");
  auto typed = codepay_body(false, "F-9", fresh_code(12));
  typed["support_fapiao"] = "true";
  r = codepay(false, typed);
  EXPECT_EQ(r.detail("field"), "support_fapiao");
  EXPECT_EQ(r.detail("issue"), "must be a boolean");
  r = call("GET", kDirect + "/out-trade-no/F-9", {}, kDirectMchid);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.detail("field"), "mchid");
  EXPECT_EQ(r.detail("location"), "query");
  r = call("GET", kPartner + "/out-trade-no/F-9?sp_mchid=" + kSpMchid);
  EXPECT_EQ(r.detail("field"), "sub_mchid");
  r = call("GET", kDirect + "/out-trade-no/F-9?mchid=" + kDirectMchid + "&appid=" + kDirectAppid,
           {}, kDirectMchid);
  EXPECT_EQ(r.detail("field"), "appid");
  // Nothing was created by any refused call.
  EXPECT_TRUE(sandbox_->payments()->empty());
}

TEST_F(PayTest, TheCallerMustBeTheMerchantOfItsPath) {
  // A service provider on the direct path, a direct merchant on the partner path.
  auto r = post(kDirect + "/codepay", codepay_body(false, "W-1", fresh_code(20)), kSpMchid);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.code(), "NO_AUTH");
  r = post(kPartner + "/native", native_body(true, "W-2"), kDirectMchid);
  EXPECT_EQ(r.status, 403) << r.body;
  // The body's sp_mchid is not the Authorization mchid; a sub merchant of nobody's.
  auto other = native_body(true, "W-3");
  other["sp_mchid"] = "1900000999";
  r = post(kPartner + "/native", other);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "sp_mchid");
  other = native_body(true, "W-3");
  other["sub_mchid"] = "1999999999";
  r = post(kPartner + "/native", other);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.detail("field"), "sub_mchid");
}

TEST_F(PayTest, AuthCodeMustBe18DigitsWithAWeChatPrefixAndIsNeverEchoed) {
  for (const std::string bad :
       {"13406109882800940", "160610988280094061", "13406109882800940X", "934061098828009406"}) {
    auto r = codepay(false, codepay_body(false, "AC-1", bad));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.code(), "PARAM_ERROR");
    EXPECT_EQ(r.detail("field"), "payer.auth_code");
    EXPECT_EQ(r.body.find(bad), std::string::npos) << r.body;
  }
}

TEST_F(PayTest, ACodeIsSingleUseAndExpiresAboutAMinuteAfterIssue) {
  const std::string code = fresh_code(30);
  ASSERT_EQ(codepay(false, codepay_body(false, "U-1", code)).status, 200);
  auto reused = codepay(false, codepay_body(false, "U-2", code));
  EXPECT_EQ(reused.status, 400) << reused.body;
  EXPECT_EQ(reused.code(), "AUTHCODEEXPIRE");

  const std::string old = "100000000000000031";
  auto reg = admin_post("/admin/paycodes", {{"code", old},
                                            {"openid", "oCABrider0001"},
                                            {"issued_at", now_rfc3339(-std::chrono::seconds(90))}});
  ASSERT_EQ(reg.status, 200) << reg.body;
  auto expired = codepay(false, codepay_body(false, "U-3", old));
  EXPECT_EQ(expired.status, 400) << expired.body;
  EXPECT_EQ(expired.code(), "AUTHCODEEXPIRE");
  // A refused code creates no order.
  EXPECT_EQ(query(false, "U-3").status, 404);
}

TEST_F(PayTest, AResendIsAnsweredFromTheOrderAndAnotherCodeUnderItsNumberIsRefused) {
  const std::string code = fresh_code(40);
  auto first = codepay(true, codepay_body(true, "DUP-1", code));
  ASSERT_EQ(first.status, 200) << first.body;
  auto again = codepay(true, codepay_body(true, "DUP-1", code));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.obj().at("transaction_id"), first.obj().at("transaction_id"));
  auto other = codepay(true, codepay_body(true, "DUP-1", fresh_code(41)));
  EXPECT_EQ(other.status, 400) << other.body;
  EXPECT_EQ(other.code(), "OUT_TRADE_NO_USED");
  auto amount = codepay(true, codepay_body(true, "DUP-1", code, 9999));
  EXPECT_EQ(amount.code(), "OUT_TRADE_NO_USED");
  auto row = admin_payment("DUP-1");
  EXPECT_EQ(row.at("submissions").as_int64(), 2);
  EXPECT_EQ(row.at("amount").as_int64(), 2350);
  EXPECT_EQ(row.at("trade_state").as_string(), "SUCCESS");
}

TEST_F(PayTest, ADeclinedCodeIsADefinitiveFailure) {
  ASSERT_EQ(
      admin_post("/admin/paycodes", {{"code", "120000000000000050"}, {"decline", "NOTENOUGH"}})
          .status,
      200);
  auto r = codepay(false, codepay_body(false, "DEC-1", "120000000000000050"));
  EXPECT_GE(r.status, 400);
  EXPECT_LT(r.status, 500);
  EXPECT_EQ(r.code(), "NOTENOUGH");
  EXPECT_EQ(state(false, "DEC-1"), "PAYERROR");
}

TEST_F(PayTest, UserpayingUntilThePassengerConfirmsThenSuccess) {
  ASSERT_EQ(admin_post("/admin/paycodes", {{"code", "110000000000000060"},
                                           {"openid", "oCABrider0060"},
                                           {"userpaying_ms", 400}})
                .status,
            200);
  auto r = codepay(false, codepay_body(false, "UP-1", "110000000000000060"));
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.code(), "USERPAYING");
  EXPECT_EQ(state(false, "UP-1"), "USERPAYING");
  EXPECT_EQ(wait_state(false, "UP-1", "SUCCESS"), "SUCCESS");
  auto q = query(false, "UP-1");
  EXPECT_EQ(q.obj().at("payer").at("openid").as_string(), "oCABrider0060");
  EXPECT_EQ(admin_payment("UP-1").at("submissions").as_int64(), 1);
}

TEST_F(PayTest, AnUnpaidQuickPayOrderIsRevokedAtTheAutoRevokeTime) {
  auto knob = admin_post("/admin/quickpay", {{"auto_revoke_ms", 300}});
  ASSERT_EQ(knob.status, 200) << knob.body;
  EXPECT_EQ(knob.obj().at("auto_revoke_ms").as_int64(), 300);
  ASSERT_EQ(
      admin_post("/admin/paycodes", {{"code", "110000000000000070"}, {"userpaying_ms", 60000}})
          .status,
      200);
  EXPECT_EQ(codepay(true, codepay_body(true, "AR-1", "110000000000000070")).status, 202);
  EXPECT_EQ(wait_state(true, "AR-1", "REVOKED"), "REVOKED");
  EXPECT_FALSE(admin_payment("AR-1").at("reversed").as_bool());  // the provider's, not ours
  EXPECT_EQ(admin_post("/admin/quickpay", {{"auto_revoke_ms", 0}}).status, 400);
}

TEST_F(PayTest, ReverseRefundsAPaidOrderClosesAnUnpaidOneAndIsIdempotent) {
  for (bool partner : {false, true}) {
    SCOPED_TRACE(partner ? "partner" : "direct");
    const std::string no = partner ? "RV-P-1" : "RV-D-1";
    ASSERT_EQ(
        codepay(partner, codepay_body(partner, no, fresh_code(partner ? 81 : 80), 1990)).status,
        200);
    const std::string path = base(partner) + "/out-trade-no/" + no + "/reverse";
    for (int i = 0; i < 2; ++i) {
      auto r = post(path, ids(partner), caller(partner));
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.obj().at("out_trade_no").as_string(), no);
      EXPECT_TRUE(r.obj().contains(partner ? "sp_mchid" : "mchid"));
    }
    EXPECT_EQ(state(partner, no), "REVOKED");
    auto row = admin_payment(no);
    EXPECT_TRUE(row.at("reversed").as_bool());
    EXPECT_EQ(row.at("refunded").as_int64(), 1990);  // once, not per reverse
    // The bill: the MICROPAY payment and its refund, each once.
    const std::string csv = bill_csv(caller(partner));
    const auto pay_line = csv.find("`" + no + ",`");
    ASSERT_NE(pay_line, std::string::npos) << csv;
    EXPECT_NE(csv.find("`MICROPAY,`SUCCESS"), std::string::npos) << csv;
    EXPECT_NE(csv.find("`MICROPAY,`REFUND"), std::string::npos) << csv;
    EXPECT_NE(csv.find("`19.90,`0.00,`ORIGINAL,`SUCCESS"), std::string::npos) << csv;
  }
  // Unpaid (USERPAYING): closed by the reverse, nothing refunded.
  ASSERT_EQ(
      admin_post("/admin/paycodes", {{"code", "110000000000000082"}, {"userpaying_ms", 60000}})
          .status,
      200);
  ASSERT_EQ(codepay(false, codepay_body(false, "RV-D-2", "110000000000000082")).status, 202);
  ASSERT_EQ(post(kDirect + "/out-trade-no/RV-D-2/reverse", ids(false), kDirectMchid).status, 200);
  EXPECT_EQ(state(false, "RV-D-2"), "REVOKED");
  EXPECT_EQ(admin_payment("RV-D-2").at("refunded").as_int64(), 0);
}

TEST_F(PayTest, NativePaidByThePassengerSendsTheSpecNotification) {
  for (bool partner : {false, true}) {
    SCOPED_TRACE(partner ? "partner" : "direct");
    const std::string no = partner ? "QR-P-1" : "QR-D-1";
    auto body = native_body(partner, no);
    body["attach"] = "trip-42";
    auto r = post(base(partner) + "/native", body, caller(partner));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(keys(r.obj()), std::set<std::string>{"code_url"});
    const std::string url(r.obj().at("code_url").as_string());
    EXPECT_TRUE(url.starts_with("weixin://wxpay/bizpayurl?pr=")) << url;
    EXPECT_EQ(state(partner, no), "NOTPAY");
    EXPECT_EQ(admin_payment(no).at("code_url").as_string(), url);

    const std::size_t before = receiver_.wait_for(0).size();
    auto paid = admin_post("/admin/native/pay", {{"out_trade_no", no}});
    ASSERT_EQ(paid.status, 200) << paid.body;
    EXPECT_EQ(state(partner, no), "SUCCESS");
    auto got = receiver_.wait_for(before + 1);
    ASSERT_EQ(got.size(), before + 1);
    auto envelope = json::parse(got.back().body).as_object();
    EXPECT_EQ(envelope.at("event_type").as_string(), "TRANSACTION.SUCCESS");
    EXPECT_EQ(envelope.at("resource_type").as_string(), "encrypt-resource");
    auto res = open_resource(got.back().body);
    const std::set<std::string> expected =
        partner ? std::set<std::string>{"sp_appid",   "sp_mchid",     "sub_appid",
                                        "sub_mchid",  "out_trade_no", "transaction_id",
                                        "trade_type", "trade_state",  "trade_state_desc",
                                        "bank_type",  "attach",       "success_time",
                                        "payer",      "amount"}
                : std::set<std::string>{"appid",
                                        "mchid",
                                        "out_trade_no",
                                        "transaction_id",
                                        "trade_type",
                                        "trade_state",
                                        "trade_state_desc",
                                        "bank_type",
                                        "attach",
                                        "success_time",
                                        "payer",
                                        "amount"};
    EXPECT_EQ(keys(res), expected);
    EXPECT_EQ(res.at("trade_type").as_string(), "NATIVE");
    EXPECT_EQ(res.at("trade_state").as_string(), "SUCCESS");
    EXPECT_EQ(res.at("attach").as_string(), "trip-42");
    const std::set<std::string> payer = partner ? std::set<std::string>{"sp_openid", "sub_openid"}
                                                : std::set<std::string>{"openid"};
    EXPECT_EQ(keys(res.at("payer").as_object()), payer);
    EXPECT_EQ(keys(res.at("amount").as_object()),
              (std::set<std::string>{"total", "payer_total", "currency", "payer_currency"}));
    EXPECT_EQ(res.at("amount").at("total").as_int64(), 3100);

    // A paid order cannot be closed, nor paid twice.
    auto close = post(base(partner) + "/out-trade-no/" + no + "/close",
                      partner ? json::object{{"sp_mchid", kSpMchid}, {"sub_mchid", kSubMchid}}
                              : json::object{{"mchid", kDirectMchid}},
                      caller(partner));
    EXPECT_EQ(close.status, 400) << close.body;
    EXPECT_EQ(close.code(), "ORDERPAID");
    EXPECT_EQ(state(partner, no), "SUCCESS");
    EXPECT_EQ(admin_post("/admin/native/pay", {{"out_trade_no", no}}).status, 409);
  }
  // Each order its own QR.
  httplib::Client admin("127.0.0.1", sandbox_->admin_port());
  auto list = json::parse(admin.Get("/admin/payments")->body).as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_NE(list[0].at("code_url"), list[1].at("code_url"));
  // Both are in today's bills as NATIVE payments.
  EXPECT_NE(bill_csv(kDirectMchid).find("`QR-D-1,`"), std::string::npos);
  EXPECT_NE(bill_csv(kSpMchid).find("`NATIVE,`SUCCESS"), std::string::npos);
}

TEST_F(PayTest, AClosedNativeOrderCannotBePaidAndTimeExpireClosesIt) {
  ASSERT_EQ(post(kDirect + "/native", native_body(false, "CL-1"), kDirectMchid).status, 200);
  for (int i = 0; i < 2; ++i) {  // close is idempotent
    auto c = post(kDirect + "/out-trade-no/CL-1/close", {{"mchid", kDirectMchid}}, kDirectMchid);
    EXPECT_EQ(c.status, 204) << c.body;
    EXPECT_TRUE(c.body.empty());
  }
  EXPECT_EQ(state(false, "CL-1"), "CLOSED");
  auto pay = admin_post("/admin/native/pay", {{"out_trade_no", "CL-1"}});
  EXPECT_EQ(pay.status, 409) << pay.body;
  EXPECT_NE(pay.body.find("expired"), std::string::npos) << pay.body;
  EXPECT_EQ(state(false, "CL-1"), "CLOSED");
  // The number of a closed order is never reused.
  auto again = post(kDirect + "/native", native_body(false, "CL-1"), kDirectMchid);
  EXPECT_EQ(again.status, 400) << again.body;
  EXPECT_EQ(again.code(), "ORDERCLOSED");

  auto expiring = native_body(true, "CL-2");
  expiring["time_expire"] = now_rfc3339(std::chrono::seconds(2));
  ASSERT_EQ(post(kPartner + "/native", expiring).status, 200);
  EXPECT_EQ(state(true, "CL-2"), "NOTPAY");
  EXPECT_EQ(wait_state(true, "CL-2", "CLOSED"), "CLOSED");
  EXPECT_EQ(admin_post("/admin/native/pay", {{"out_trade_no", "CL-2"}}).status, 409);
  // No notification for an unpaid QR.
  EXPECT_TRUE(receiver_.wait_for(0).empty());
}

TEST_F(PayTest, LostRepliesNeverLoseTheOrderSoAQueryFindsIt) {
  lanegate::sim::ProviderFaults lost;
  lost.lost_reply_share = 1.0;
  sandbox_->set_faults(lost);
  auto r = call("POST", kDirect + "/codepay",
                json::serialize(codepay_body(false, "LOST-1", fresh_code(90))), kDirectMchid, true,
                /*expect_reply=*/false);
  EXPECT_NE(r.status, 200);  // no usable reply
  r = call("POST", kDirect + "/native", json::serialize(native_body(false, "LOST-2")), kDirectMchid,
           true, false);
  EXPECT_NE(r.status, 200);
  r = call("POST", kDirect + "/out-trade-no/LOST-2/close",
           json::serialize(json::object{{"mchid", kDirectMchid}}), kDirectMchid, true, false);
  EXPECT_NE(r.status, 204);
  sandbox_->set_faults({});
  // The client's rule: never resubmit, query.
  EXPECT_EQ(state(false, "LOST-1"), "SUCCESS");
  EXPECT_EQ(state(false, "LOST-2"), "CLOSED");
  EXPECT_EQ(admin_payment("LOST-1").at("submissions").as_int64(), 1);

  lanegate::sim::ProviderFaults failing;
  failing.error_5xx_share = 1.0;
  sandbox_->set_faults(failing);
  auto q = query(false, "LOST-1");
  EXPECT_EQ(q.status, 500);
  EXPECT_EQ(q.code(), "SYSTEM_ERROR");
  sandbox_->set_faults({});
}

}  // namespace
}  // namespace sandbox_test
