// ETC highway deduction, the contract queries and VEHICLE.USER_STATE_CHANGE, each against
// the spec's "ETC highway deduction (service-provider API only)" section.
#include "sandbox_fixture.h"

namespace sandbox_test {
namespace {

constexpr const char* kHighway = "/v3/vehicle/etc/transactions/highway";

class EtcTest : public SandboxFixture {
 protected:
  json::object deduction(const std::string& no, const std::string& contract = kContract,
                         const std::string& plate = kPlate, std::int64_t fen = 3500) {
    return json::object{{"out_trade_no", no},
                        {"appid", kSpAppid},
                        {"sub_mchid", kSubMchid},
                        {"sub_appid", kSubAppid},
                        {"contract_id", contract},
                        {"description", "高速通行费"},
                        {"attach", "lane-7"},
                        {"highway_info",
                         {{"plate_number", plate},
                          {"start_time", now_rfc3339(-std::chrono::hours(1))},
                          {"end_time", now_rfc3339()},
                          {"channel_type", "ETC"},
                          {"car_type", "CAR"},
                          {"entrance", "广州北站"},
                          {"exit", "深圳南站"},
                          {"carrying_capacity", 5},
                          {"carrying_range", "1-7"}}},
                        {"amount", {{"total", fen}, {"currency", "CNY"}}},
                        {"device_info", {{"device_id", "rsu-7"}, {"device_ip", "10.0.0.7"}}}};
  }
};

TEST_F(EtcTest, DirectMerchantIsRefusedWithNoAuth) {
  auto o = deduction("DETC0001");
  o["appid"] = kDirectAppid;
  auto r = post(kHighway, o, kDirectMchid);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.code(), "NO_AUTH");
  auto c = call("GET", "/v3/vehicle/etc/contracts/" + kContract + "?sub_mchid=" + kSubMchid, {},
                kDirectMchid);
  EXPECT_EQ(c.status, 403) << c.body;
  EXPECT_EQ(c.code(), "NO_AUTH");
}

TEST_F(EtcTest, ChargeAnswersSynchronouslyWithTheEtcFieldNames) {
  auto r = post(kHighway, deduction("ETC0001"));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& t = r.obj();
  EXPECT_EQ(t.at("trade_state").as_string(), "SUCCESS");
  EXPECT_EQ(t.at("mchid").as_string(), kSpMchid);
  EXPECT_FALSE(t.contains("sp_mchid"));
  EXPECT_EQ(t.at("sub_mchid").as_string(), kSubMchid);
  EXPECT_EQ(t.at("appid").as_string(), kSpAppid);
  EXPECT_EQ(t.at("sub_appid").as_string(), kSubAppid);
  EXPECT_EQ(t.at("attach").as_string(), "lane-7");
  EXPECT_TRUE(t.at("trade_type").is_string());
  EXPECT_TRUE(t.at("success_time").is_string());
  EXPECT_TRUE(t.at("trade_state_desc").is_string());
  EXPECT_FALSE(t.contains("trade_state_description"));
  EXPECT_EQ(keys(t.at("payer").as_object()), (std::set<std::string>{"sp_openid", "sub_openid"}));
  EXPECT_EQ(t.at("payer").at("sp_openid").as_string(), kOpenid);
  EXPECT_EQ(t.at("payer").at("sub_openid").as_string(), kSubOpenid);
  EXPECT_EQ(t.at("amount").at("total").as_int64(), 3500);
  EXPECT_EQ(t.at("device_info").at("device_id").as_string(), "rsu-7");
  EXPECT_EQ(t.at("device_info").at("device_ip").as_string(), "10.0.0.7");
  const std::set<std::string> allowed{
      "mchid",  "sub_mchid",  "appid",       "sub_appid",       "out_trade_no", "transaction_id",
      "attach", "trade_type", "bank_type",   "success_time",    "trade_state",  "trade_state_desc",
      "payer",  "amount",     "device_info", "promotion_detail"};
  for (const auto& k : keys(t)) {
    EXPECT_TRUE(allowed.contains(k)) << "not an ETC Transaction field: " << k;
  }

  const std::string id(t.at("transaction_id").as_string());
  auto by_no =
      call("GET", "/v3/vehicle/etc/transactions/out-trade-no/ETC0001?sub_mchid=" + kSubMchid);
  ASSERT_EQ(by_no.status, 200) << by_no.body;
  EXPECT_EQ(by_no.json, r.json);
  auto by_id = call("GET", "/v3/vehicle/etc/transactions/id/" + id + "?sub_mchid=" + kSubMchid);
  ASSERT_EQ(by_id.status, 200) << by_id.body;
  EXPECT_EQ(by_id.json, r.json);
  auto other =
      call("GET", "/v3/vehicle/etc/transactions/out-trade-no/ETC0404?sub_mchid=" + kSubMchid);
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(other.code(), "ORDER_NOT_EXIST");

  // Idempotent on out_trade_no: same amount -> the same row; another amount -> refused.
  auto again = post(kHighway, deduction("ETC0001"));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.obj().at("transaction_id").as_string(), id);
  auto changed = post(kHighway, deduction("ETC0001", kContract, kPlate, 3600));
  EXPECT_EQ(changed.status, 400) << changed.body;
  EXPECT_EQ(changed.code(), "INVALID_REQUEST");
  auto rows = sandbox_->transactions();
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(rows->front().submissions, 2);
  EXPECT_EQ(rows->front().amount_fen, 3500);
}

TEST_F(EtcTest, EachRequiredFieldMissingIsRefusedNamingIt) {
  const std::vector<std::vector<std::string>> required{{"out_trade_no"},
                                                       {"appid"},
                                                       {"sub_mchid"},
                                                       {"contract_id"},
                                                       {"description"},
                                                       {"highway_info"},
                                                       {"amount"},
                                                       {"highway_info", "plate_number"},
                                                       {"highway_info", "start_time"},
                                                       {"highway_info", "end_time"},
                                                       {"highway_info", "channel_type"},
                                                       {"highway_info", "entrance"},
                                                       {"amount", "total"},
                                                       {"device_info", "device_ip"}};
  int n = 0;
  for (const auto& path : required) {
    auto o = deduction("ETCREQ" + std::to_string(++n));
    if (path.size() == 1) {
      o.erase(path[0]);
    } else {
      o[path[0]].as_object().erase(path[1]);
    }
    const std::string name = path.size() == 1 ? path[0] : path[0] + "." + path[1];
    auto r = post(kHighway, o);
    EXPECT_EQ(r.status, 400) << name << ": " << r.body;
    EXPECT_EQ(r.code(), "PARAM_ERROR") << name;
    EXPECT_EQ(r.detail("field"), name);
    EXPECT_EQ(r.detail("location"), "body") << name;
  }
  // The optional ones really are optional.
  auto minimal = deduction("ETCMIN1");
  for (const char* k : {"sub_appid", "attach", "device_info"}) {
    minimal.erase(k);
  }
  for (const char* k : {"car_type", "exit", "carrying_capacity", "carrying_range"}) {
    minimal["highway_info"].as_object().erase(k);
  }
  minimal["amount"].as_object().erase("currency");
  auto ok = post(kHighway, minimal);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_FALSE(ok.obj().contains("device_info"));
  EXPECT_EQ(sandbox_->transactions()->size(), 1u);  // none of the refused ones was recorded
}

TEST_F(EtcTest, UnknownFieldsAndBadValuesAreRefused) {
  auto with_notify = deduction("ETCBAD1");
  with_notify["notify_url"] = "https://127.0.0.1:9/notify";
  auto r = post(kHighway, with_notify);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.code(), "PARAM_ERROR");
  EXPECT_EQ(r.detail("field"), "notify_url");
  EXPECT_EQ(r.detail("location"), "body");
  EXPECT_EQ(r.obj().at("detail").at("value").as_string(), "https://127.0.0.1:9/notify");

  auto with_colour = deduction("ETCBAD2");
  with_colour["highway_info"].as_object()["plate_color"] = "BLUE";
  r = post(kHighway, with_colour);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "highway_info.plate_color");

  auto seats_text = deduction("ETCBAD3");
  seats_text["highway_info"].as_object()["carrying_capacity"] = "5";
  r = post(kHighway, seats_text);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "highway_info.carrying_capacity");

  auto range_number = deduction("ETCBAD4");
  range_number["highway_info"].as_object()["carrying_range"] = 7;
  r = post(kHighway, range_number);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "highway_info.carrying_range");

  auto backwards = deduction("ETCBAD5");
  backwards["highway_info"].as_object()["start_time"] = now_rfc3339(std::chrono::hours(1));
  r = post(kHighway, backwards);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "highway_info.start_time");

  auto not_rfc3339 = deduction("ETCBAD6");
  not_rfc3339["highway_info"].as_object()["end_time"] = "2026-11-22 10:00:00";
  r = post(kHighway, not_rfc3339);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "highway_info.end_time");

  auto wrong_plate = deduction("ETCBAD7", kContract, "粤B99999");
  r = post(kHighway, wrong_plate);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "highway_info.plate_number");

  EXPECT_EQ(sandbox_->transactions()->size(), 0u);
}

TEST_F(EtcTest, UnboundContractIsNoAuthAndAnOverdueAccountFails) {
  auto r = post(kHighway, deduction("ETCUNB1", kUnboundContract, "粤A00001"));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.code(), "NO_AUTH");
  EXPECT_FALSE(r.obj().at("message").as_string().empty());

  auto overdue = post(kHighway, deduction("ETCOVD1", kOverdueContract, "粤B66666"));
  ASSERT_EQ(overdue.status, 200) << overdue.body;
  EXPECT_EQ(overdue.obj().at("trade_state").as_string(), "PAY_FAIL");
  EXPECT_FALSE(overdue.obj().contains("success_time"));
}

TEST_F(EtcTest, ContractQueriesAnswerTheSpecContract) {
  const std::set<std::string> contract_keys{"appid",       "sp_mchid",   "sp_openid",
                                            "sub_appid",   "sub_mchid",  "sub_openid",
                                            "contract_id", "bind_state", "plate_number"};
  auto r = call("GET", "/v3/vehicle/etc/contracts/" + kContract + "?sub_mchid=" + kSubMchid);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(keys(r.obj()), contract_keys);
  EXPECT_EQ(r.obj().at("contract_id").as_string(), kContract);
  EXPECT_EQ(r.obj().at("bind_state").as_string(), "BOUND");
  EXPECT_EQ(r.obj().at("sp_mchid").as_string(), kSpMchid);
  EXPECT_EQ(r.obj().at("sp_openid").as_string(), kOpenid);
  EXPECT_EQ(r.obj().at("plate_number").as_string(), kPlate);

  auto unknown = call(
      "GET", "/v3/vehicle/etc/contracts/wxNOSUCHcontract000000000000000?sub_mchid=" + kSubMchid);
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_FALSE(unknown.code().empty());

  auto no_sub = call("GET", "/v3/vehicle/etc/contracts/" + kContract);
  EXPECT_EQ(no_sub.status, 400);
  EXPECT_EQ(no_sub.detail("field"), "sub_mchid");

  const std::string by_user = "/v3/vehicle/etc/users/" + kOpenid +
                              "/contracts?sub_mchid=" + kSubMchid +
                              "&plan_id=PLAN1&plate_number=" + pct(kPlate);
  auto u = call("GET", by_user);
  ASSERT_EQ(u.status, 200) << u.body;
  EXPECT_EQ(u.json, r.json);

  auto no_plan =
      call("GET", "/v3/vehicle/etc/users/" + kOpenid + "/contracts?sub_mchid=" + kSubMchid +
                      "&plate_number=" + pct(kPlate));
  EXPECT_EQ(no_plan.status, 400) << no_plan.body;
  EXPECT_EQ(no_plan.code(), "PARAM_ERROR");
  EXPECT_EQ(no_plan.detail("field"), "plan_id");
  EXPECT_EQ(no_plan.detail("location"), "query");
}

TEST_F(EtcTest, UserStateChangeGoesToTheRegisteredCallbackWithExactlyTheSpecKeys) {
  ASSERT_TRUE(sandbox_->set_contract_state(kContract, "PAUSED"));
  auto got = receiver_.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  // Signed by the platform key like every notification.
  const auto& h = got[0].headers;
  auto header = [&h](const char* k) {
    auto it = h.find(k);
    return it == h.end() ? std::string() : it->second;
  };
  EXPECT_TRUE(lanegate::pki::verify_sha256_rsa_base64(
      platform_.public_key,
      header("Wechatpay-Timestamp") + "\n" + header("Wechatpay-Nonce") + "\n" + got[0].body + "\n",
      header("Wechatpay-Signature")));
  auto envelope = json::parse(got[0].body).as_object();
  EXPECT_EQ(envelope.at("event_type").as_string(), "VEHICLE.USER_STATE_CHANGE");
  EXPECT_EQ(envelope.at("resource_type").as_string(), "encrypt-resource");
  auto resource = open_resource(got[0].body);
  EXPECT_EQ(keys(resource),
            (std::set<std::string>{"appid", "sp_mchid", "sp_openid", "sub_openid", "sub_mchid",
                                   "contract_id", "bind_state", "plate_number"}));
  EXPECT_EQ(resource.at("bind_state").as_string(), "PAUSED");
  EXPECT_EQ(resource.at("contract_id").as_string(), kContract);
  EXPECT_EQ(resource.at("sp_mchid").as_string(), kSpMchid);
  EXPECT_EQ(resource.at("appid").as_string(), kSpAppid);
  EXPECT_EQ(resource.at("sub_mchid").as_string(), kSubMchid);
  EXPECT_EQ(resource.at("plate_number").as_string(), kPlate);

  // Not bound any more: the contract cannot be charged, and says so when queried.
  auto r = post(kHighway, deduction("ETCPAUSE1"));
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.code(), "NO_AUTH");
  auto c = call("GET", "/v3/vehicle/etc/contracts/" + kContract + "?sub_mchid=" + kSubMchid);
  EXPECT_EQ(c.obj().at("bind_state").as_string(), "PAUSED");

  // Admin endpoint, with "bind_state" and an extra URL: registered callback + extra.
  httplib::Client admin("127.0.0.1", sandbox_->admin_port());
  auto a = admin.Post("/admin/contracts",
                      json::serialize(json::object{{"contract_id", kContract},
                                                   {"bind_state", "BOUND"},
                                                   {"notify_url", receiver_.url("/extra")}}),
                      "application/json");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 200) << a->body;
  got = receiver_.wait_for(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(open_resource(got[2].body).at("bind_state").as_string(), "BOUND");
  EXPECT_EQ(post(kHighway, deduction("ETCBOUND1")).status, 200);
  EXPECT_FALSE(sandbox_->set_contract_state("wxNOSUCHcontract000000000000000", "PAUSED"));
  EXPECT_FALSE(sandbox_->set_contract_state(kContract, ""));
}

}  // namespace
}  // namespace sandbox_test
