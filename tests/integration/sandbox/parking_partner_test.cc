// Partner (service-provider) mode on the parking calls, per the spec's table "Direct
// merchant vs service provider", and the field-list checks on bodies and queries.
#include "sandbox_fixture.h"

namespace sandbox_test {
namespace {

class ParkingPartnerTest : public SandboxFixture {
 protected:
  json::object entry(const std::string& no, const std::optional<std::string>& sub) {
    json::object o{{"out_parking_no", no},
                   {"plate_number", kPlate},
                   {"plate_color", "BLUE"},
                   {"notify_url", receiver_.url("/notify")},
                   {"start_time", now_rfc3339(-std::chrono::hours(2))},
                   {"parking_name", "sandbox lot"},
                   {"free_duration", 900}};
    if (sub) {
      o["sub_mchid"] = *sub;
    }
    return o;
  }
  json::object charge(const std::string& no, const std::string& parking_id,
                      const std::string& appid) {
    return json::object{{"appid", appid},
                        {"description", "停车费"},
                        {"out_trade_no", no},
                        {"trade_scene", "PARKING"},
                        {"notify_url", receiver_.url("/notify")},
                        {"amount", {{"total", 1500}, {"currency", "CNY"}}},
                        {"parking_info",
                         {{"parking_id", parking_id},
                          {"plate_number", kPlate},
                          {"plate_color", "BLUE"},
                          {"start_time", now_rfc3339(-std::chrono::hours(2))},
                          {"end_time", now_rfc3339()},
                          {"parking_name", "sandbox lot"},
                          {"charging_duration", 7200},
                          {"device_id", "lane-1"}}}};
  }
  std::string partner_entry(const std::string& no) {
    auto r = post("/v3/vehicle/parking/parkings", entry(no, kSubMchid));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? std::string(r.obj().at("id").as_string()) : "";
  }
};

void expect_partner_transaction(const json::object& t) {
  EXPECT_EQ(t.at("appid").as_string(), kSpAppid);
  EXPECT_EQ(t.at("sp_mchid").as_string(), kSpMchid);
  EXPECT_EQ(t.at("sub_mchid").as_string(), kSubMchid);
  EXPECT_EQ(t.at("sub_appid").as_string(), kSubAppid);
  EXPECT_EQ(t.at("payer").at("openid").as_string(), kOpenid);
  EXPECT_EQ(t.at("payer").at("sub_openid").as_string(), kSubOpenid);
  EXPECT_EQ(t.at("trade_scene").as_string(), "PARKING");
  // Only names from the spec's Parking Transaction list.
  const std::set<std::string> allowed{"appid",           "sub_appid",
                                      "sp_mchid",        "sub_mchid",
                                      "description",     "create_time",
                                      "out_trade_no",    "transaction_id",
                                      "trade_state",     "trade_state_description",
                                      "success_time",    "bank_type",
                                      "user_repaid",     "attach",
                                      "trade_scene",     "parking_info",
                                      "payer",           "amount",
                                      "promotion_detail"};
  for (const auto& k : keys(t)) {
    EXPECT_TRUE(allowed.contains(k)) << "not a Parking Transaction field: " << k;
  }
}

TEST_F(ParkingPartnerTest, PartnerChargeAndQueryCarryThePartnerFields) {
  const std::string id = partner_entry("SP-IN-1");
  auto c = post("/v3/vehicle/transactions/parking", [&] {
    auto o = charge("SPPARK0001", id, kSpAppid);
    o["sub_mchid"] = kSubMchid;
    return o;
  }());
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.obj().at("trade_state").as_string(), "ACCEPTED");
  expect_partner_transaction(c.obj());

  // GET carries sub_mchid in the query; the deduction settles a moment later.
  HttpReply q;
  for (int i = 0; i < 300; ++i) {
    q = call("GET", "/v3/vehicle/transactions/out-trade-no/SPPARK0001?sub_mchid=" + kSubMchid);
    if (q.status == 200 && q.obj().at("trade_state").as_string() == "SUCCESS") {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(q.obj().at("trade_state").as_string(), "SUCCESS");
  EXPECT_EQ(q.obj().at("transaction_id"), c.obj().at("transaction_id"));
  expect_partner_transaction(q.obj());

  // The TRANSACTION.SUCCESS resource is the same Transaction, partner fields included.
  auto got = receiver_.wait_for(1);
  ASSERT_GE(got.size(), 1u);
  auto resource = open_resource(got.back().body);
  EXPECT_EQ(json::parse(got.back().body).at("event_type").as_string(), "TRANSACTION.SUCCESS");
  expect_partner_transaction(resource);
  EXPECT_EQ(resource.at("trade_state").as_string(), "SUCCESS");
}

TEST_F(ParkingPartnerTest, PartnerCallsMustNameOneOfItsSubMerchants) {
  const std::string id = partner_entry("SP-IN-2");
  auto missing = post("/v3/vehicle/transactions/parking", charge("SPPARK0002", id, kSpAppid));
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.code(), "PARAM_ERROR");
  EXPECT_EQ(missing.detail("field"), "sub_mchid");
  EXPECT_EQ(missing.detail("location"), "body");

  auto foreign = charge("SPPARK0002", id, kSpAppid);
  foreign["sub_mchid"] = "1999999999";
  auto r = post("/v3/vehicle/transactions/parking", foreign);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.code(), "NO_AUTH");

  auto wrong_app = charge("SPPARK0002", id, kSpAppid);
  wrong_app["sub_mchid"] = kSubMchid;
  wrong_app["sub_appid"] = "wxsomeoneelse";
  r = post("/v3/vehicle/transactions/parking", wrong_app);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.code(), "INVALID_REQUEST");
  EXPECT_EQ(r.detail("field"), "sub_appid");

  auto q = call("GET", "/v3/vehicle/transactions/out-trade-no/SPPARK0002");
  EXPECT_EQ(q.status, 400);
  EXPECT_EQ(q.code(), "PARAM_ERROR");
  EXPECT_EQ(q.detail("field"), "sub_mchid");
  EXPECT_EQ(q.detail("location"), "query");
}

TEST_F(ParkingPartnerTest, DirectMerchantKeepsItsShapeAndIsRefusedSubMchidLikeAnyUnknownField) {
  auto e = post("/v3/vehicle/parking/parkings", entry("D-IN-1", std::nullopt), kDirectMchid);
  ASSERT_EQ(e.status, 200) << e.body;
  auto c = post("/v3/vehicle/transactions/parking",
                charge("DPARK0001", std::string(e.obj().at("id").as_string()), kDirectAppid),
                kDirectMchid);
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.obj().at("sp_mchid").as_string(), kDirectMchid);
  EXPECT_FALSE(c.obj().contains("sub_mchid"));
  EXPECT_FALSE(c.obj().contains("sub_appid"));
  EXPECT_FALSE(c.obj().at("payer").as_object().contains("sub_openid"));

  auto r = post("/v3/vehicle/parking/parkings", entry("D-IN-2", kSubMchid), kDirectMchid);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.code(), "PARAM_ERROR");
  EXPECT_EQ(r.detail("field"), "sub_mchid");
  EXPECT_EQ(r.detail("location"), "body");
  EXPECT_EQ(r.obj().at("detail").at("value").as_string(), kSubMchid);

  auto q = call("GET", "/v3/vehicle/transactions/out-trade-no/DPARK0001?sub_mchid=" + kSubMchid, {},
                kDirectMchid);
  EXPECT_EQ(q.status, 400) << q.body;
  EXPECT_EQ(q.detail("field"), "sub_mchid");
  EXPECT_EQ(q.detail("location"), "query");
}

TEST_F(ParkingPartnerTest, UnknownAndMissingFieldsAreNamedWhereverTheyAre) {
  const std::string id = partner_entry("SP-IN-3");
  auto nested = charge("SPPARK0003", id, kSpAppid);
  nested["sub_mchid"] = kSubMchid;
  nested["parking_info"].as_object()["parking_lot_no"] = "B2";
  auto r = post("/v3/vehicle/transactions/parking", nested);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.code(), "PARAM_ERROR");
  EXPECT_EQ(r.detail("field"), "parking_info.parking_lot_no");

  auto no_device = charge("SPPARK0003", id, kSpAppid);
  no_device["sub_mchid"] = kSubMchid;
  no_device["parking_info"].as_object().erase("device_id");
  r = post("/v3/vehicle/transactions/parking", no_device);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "parking_info.device_id");

  auto typed = charge("SPPARK0003", id, kSpAppid);
  typed["sub_mchid"] = kSubMchid;
  typed["amount"].as_object()["total"] = "15.00";
  r = post("/v3/vehicle/transactions/parking", typed);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.detail("field"), "amount.total");

  // Queries: an extra parameter is refused on every GET, signed or not in the field list.
  auto find = call("GET", "/v3/vehicle/parking/services/find?appid=" + kSpAppid + "&plate_number=" +
                              pct(kPlate) + "&plate_color=BLUE&openid=" + kOpenid +
                              "&sub_mchid=" + kSubMchid + "&page=1");
  EXPECT_EQ(find.status, 400) << find.body;
  EXPECT_EQ(find.detail("field"), "page");
  EXPECT_EQ(find.detail("location"), "query");
  auto certs = call("GET", "/v3/certificates?algorithm_type=RSA");
  EXPECT_EQ(certs.status, 400) << certs.body;
  EXPECT_EQ(certs.detail("field"), "algorithm_type");

  auto ok = call("GET", "/v3/vehicle/parking/services/find?appid=" + kSpAppid +
                            "&plate_number=" + pct(kPlate) + "&plate_color=BLUE&openid=" + kOpenid +
                            "&sub_mchid=" + kSubMchid);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.obj().at("service_state").as_string(), "NORMAL");
}

}  // namespace
}  // namespace sandbox_test
