// The invoicing sandbox, spoken to with raw signed HTTP built here from the spec
// (/work/shared/specs/e-invoice.md, "Invoicing platform API", "Favoured-policy flag"), not
// with invoice/'s client: the sandbox must refuse what the platform documents as wrong,
// naming the field, so that a client bug shows up in tests and the demo rather than on a
// real account. The E9xxx codes are the sandbox's own (docs/INVOICE.md).
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>
#include <functional>

#include "core/clock.h"
#include "sim/invoicing_sandbox.h"
#include "support/nuonuo_wire.h"

namespace lanegate::sim {
namespace {

namespace json = boost::json;

constexpr const char* kSeller = "339902999999789113";  // the spec's sandbox seller

struct Sent {
  std::string senid = "0123456789abcdef0123456789abcdef";
  std::string nonce = "12345678";
  std::string timestamp;  // default: the clock's seconds
  std::string user_tax = kSeller;
  std::string secret = "sandbox-app-secret";
  bool sign = true;
};

class SandboxRefusals : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(std::function<void(InvoicingSandboxOptions&)> tweak) {
    sandbox.reset();
    InvoicingSandboxOptions o;
    o.db_file = dir / ("sandbox-" + std::to_string(++starts) + ".db");
    o.clock = &clock;
    if (tweak) tweak(o);
    sandbox = InvoicingSandbox::start(o).value();
  }

  // One signed call; returns {code, describe}.
  std::pair<std::string, std::string> call(std::string_view method, const std::string& content,
                                           Sent s = {}) {
    if (s.timestamp.empty()) s.timestamp = std::to_string(clock.unix_seconds());
    s.senid[0] = "0123456789abcdef"[++calls % 16];  // the sandbox refuses a replayed senid
    s.senid[1] = "0123456789abcdef"[(calls / 16) % 16];
    httplib::Client c(sandbox->base_url());
    httplib::Headers h = {{"accessToken", "sandbox-access-token"},
                          {"userTax", s.user_tax},
                          {"method", std::string(method)}};
    if (s.sign) {
      h.emplace("X-Nuonuo-Sign", wire_test::nuonuo_signature(s.secret, "sandbox-app-key", s.senid,
                                                             s.nonce, s.timestamp, content));
    }
    auto res = c.Post("/open/v1/services?senid=" + s.senid + "&nonce=" + s.nonce +
                          "&timestamp=" + s.timestamp + "&appkey=sandbox-app-key",
                      h, content, "application/json;charset=utf-8");
    if (!res) return {"<no reply>", ""};
    auto v = json::parse(res->body).as_object();
    return {std::string(v.at("code").as_string()), std::string(v.at("describe").as_string())};
  }

  // A blue taxi order as the spec lists its fields; `edit` changes it before sending.
  std::pair<std::string, std::string> issue(std::function<void(json::object&, json::object&)> edit,
                                            Sent s = {}) {
    json::object d{{"goodsName", "客运服务费"}, {"goodsCode", "3010101020203000000"},
                   {"withTaxFlag", "1"}, {"price", "19.19"}, {"num", "1"},
                   {"taxRate", "0.03"}, {"taxExcludedAmount", "18.63"}, {"tax", "0.56"},
                   {"taxIncludedAmount", "19.19"}, {"invoiceLineProperty", "0"},
                   {"favouredPolicyFlag", "08"}};
    json::object order{{"buyerName", "个人"}, {"buyerTaxNum", ""}, {"salerTaxNum", kSeller},
                       {"orderNo", "LG" + std::to_string(1000000 + ++orders)},
                       {"invoiceDate", "2026-11-22 13:29:35"}, {"clerk", "王开票"},
                       {"invoiceType", "1"}, {"invoiceLine", "pc"}, {"pushMode", "-1"},
                       {"email", ""}, {"buyerPhone", ""}, {"callBackUrl", ""}};
    if (edit) edit(order, d);
    order["invoiceDetail"] = json::array{d};
    return call("nuonuo.OpeMplatform.requestBillingNew",
                json::serialize(json::object{{"order", order}}), s);
  }

  void expect_refused(const std::pair<std::string, std::string>& r, std::string_view code,
                      std::string_view names) {
    EXPECT_EQ(r.first, code) << r.second;
    EXPECT_NE(r.second.find(names), std::string::npos) << r.second;
  }

  std::filesystem::path dir = [] {
    std::string t = (std::filesystem::temp_directory_path() / "sandbox-refusals-XXXXXX").string();
    return std::filesystem::path(mkdtemp(t.data()));
  }();
  ~SandboxRefusals() override {
    sandbox.reset();
    std::filesystem::remove_all(dir);
  }
  FakeClock clock;
  std::unique_ptr<InvoicingSandbox> sandbox;
  int starts = 0, calls = 0, orders = 0;
};

TEST_F(SandboxRefusals, AnOrderAsTheSpecListsItIsAccepted) {
  EXPECT_EQ(issue(nullptr).first, "E0000");
  // Exempt (03) and untaxed (04) lines: rate 0, tax 0.00.
  for (const char* flag : {"03", "04"}) {
    auto r = issue([&](json::object&, json::object& d) {
      d["taxRate"] = "0";
      d["favouredPolicyFlag"] = flag;
      d["taxExcludedAmount"] = "19.19";
      d["tax"] = "0.00";
    });
    EXPECT_EQ(r.first, "E0000") << flag << " " << r.second;
  }
}

// Envelope: senid 32 hex, nonce 8 digits, timestamp in seconds, the signature over the
// spec's string, userTax the seller of the body.
TEST_F(SandboxRefusals, EnvelopeRules) {
  Sent s;
  s.nonce = "1234567";
  expect_refused(issue(nullptr, s), "E1000", "nonce");
  s = {};
  s.senid = "0123456789abcdef";
  expect_refused(issue(nullptr, s), "E1000", "senid");
  s = {};
  s.timestamp = std::to_string(clock.unix_seconds() * 1000);
  expect_refused(issue(nullptr, s), "E1003", "seconds");
  s = {};
  s.sign = false;
  expect_refused(issue(nullptr, s), "E1000", "X-Nuonuo-Sign");
  s = {};
  s.secret = "another-secret";
  expect_refused(issue(nullptr, s), "E1001", "signature");
  expect_refused(issue([](json::object& o, json::object&) { o["salerTaxNum"] = "91350100M000100Y43"; }),
                 "E9102", "salerTaxNum");
}

TEST_F(SandboxRefusals, OrderFieldsOutsideTheSpecAreRefusedByName) {
  expect_refused(issue([](json::object& o, json::object&) { o["salerName"] = "示例"; }), "E9110",
                 "salerName");
  expect_refused(issue([](json::object&, json::object& d) { d["isOfferInvoiceDetail"] = "0"; }),
                 "E9110", "isOfferInvoiceDetail");
  expect_refused(issue([](json::object& o, json::object&) { o.erase("clerk"); }), "E9111", "clerk");
  expect_refused(issue([](json::object&, json::object& d) { d["goodsName"] = "*运输服务*客运服务费"; }),
                 "E9201", "goodsName");
  expect_refused(issue([](json::object& o, json::object&) { o["remark"] = std::string(201, 'x'); }),
                 "E9112", "remark");
  EXPECT_EQ(issue([](json::object& o, json::object&) {
              std::string remark;
              for (int i = 0; i < 200; ++i) remark += "停";  // 200 characters, 600 bytes
              o["remark"] = remark;
            }).first,
            "E0000");
  expect_refused(issue([](json::object& o, json::object&) { o["surveyAnswerType"] = "4"; }),
                 "E9114", "surveyAnswerType");
  expect_refused(call("nuonuo.OpeMplatform.queryInvoiceResult",
                      R"({"orderNos":["LG1"],"isOfferInvoiceDetail":"0"})"),
                 "E9110", "isOfferInvoiceDetail");
}

// spec "Favoured-policy flag": 03/04 with rate 0 only; 08 = 3 %, 09 = 5 %; never a flag
// with the general rate; favouredPolicyName, zeroRateFlag and deduction stay empty.
TEST_F(SandboxRefusals, FlagAndRatePairs) {
  struct Case {
    const char* rate;
    const char* flag;
    const char* excl;
    const char* tax;
  };
  for (const Case& c : {Case{"0.03", "03", "18.63", "0.56"}, Case{"0.05", "08", "18.28", "0.91"},
                        Case{"0.09", "08", "17.61", "1.58"}, Case{"0.09", "01", "17.61", "1.58"},
                        Case{"0", "", "19.19", "0.00"}, Case{"0.03", "12", "18.63", "0.56"}}) {
    auto r = issue([&](json::object&, json::object& d) {
      d["taxRate"] = c.rate;
      d["favouredPolicyFlag"] = c.flag;
      d["taxExcludedAmount"] = c.excl;
      d["tax"] = c.tax;
    });
    EXPECT_EQ(r.first, "E9204") << c.rate << "/" << c.flag << ": " << r.second;
  }
  expect_refused(issue([](json::object&, json::object& d) { d["zeroRateFlag"] = "1"; }), "E9209",
                 "zeroRateFlag");
}

// spec "Parking → 06 不动产经营租赁": the block, its keys and formats, one line, no unit.
TEST_F(SandboxRefusals, ParkingLeaseBlock) {
  start([](InvoicingSandboxOptions& o) { o.require_parking_06 = true; });
  auto parking = [&](std::function<void(json::object&, json::object&, json::object&)> edit) {
    return issue([&](json::object& o, json::object& d) {
      d["goodsName"] = "停车费";
      d["goodsCode"] = "3040502020200000000";
      d["taxRate"] = "0.09";
      d["favouredPolicyFlag"] = "";
      d["taxExcludedAmount"] = "17.61";
      d["tax"] = "1.58";
      json::object rent{{"realPropertyAddress", "广东省深圳市福田区"},
                        {"detailAddress", "深南大道1000号"},
                        {"rentStartDate", "2026-11-22"},
                        {"rentEndDate", "2026-11-22"},
                        {"crossCityFlag", "0"},
                        {"unit", "2"}};
      o["specificFactor"] = "6";
      if (edit) edit(o, d, rent);
      if (!rent.empty()) o["realPropertyRentInfo"] = rent;
    });
  };
  EXPECT_EQ(parking(nullptr).first, "E0000");
  expect_refused(parking([](json::object& o, json::object&, json::object&) { o["specificFactor"] = "0"; }),
                 "E9129", "specificFactor 6");
  expect_refused(parking([](json::object&, json::object&, json::object& r) { r.clear(); }), "E9122",
                 "realPropertyRentInfo");
  for (const char* key : {"realPropertyAddress", "detailAddress", "rentStartDate", "rentEndDate",
                          "crossCityFlag", "unit"}) {
    expect_refused(parking([&](json::object&, json::object&, json::object& r) { r.erase(key); }),
                   "E9122", key);
  }
  expect_refused(parking([](json::object&, json::object&, json::object& r) { r["detailAddress"] = "1000号"; }),
                 "E9123", "街");
  expect_refused(parking([](json::object&, json::object&, json::object& r) {
                   std::string longer;
                   for (int i = 0; i < 111; ++i) longer += "深";  // 9 + 111 + 1 = 121
                   r["detailAddress"] = longer + "路";
                 }),
                 "E9123", "120");
  expect_refused(parking([](json::object&, json::object&, json::object& r) { r["rentStartDate"] = "2026/11/22"; }),
                 "E9124", "YYYY-MM-DD");
  expect_refused(parking([](json::object&, json::object&, json::object& r) { r["rentStartDate"] = "2026-11-23"; }),
                 "E9124", "after");
  expect_refused(parking([](json::object&, json::object&, json::object& r) { r["unit"] = "8"; }), "E9125",
                 "unit");
  expect_refused(parking([](json::object&, json::object& d, json::object&) { d["unit"] = "次"; }), "E9121",
                 "unit");
  start([](InvoicingSandboxOptions& o) { o.require_certificate = true; });
  expect_refused(parking(nullptr), "E9126", "realPropertyCertificate");
}

// spec "Taxi → plain invoice; 09 旅客运输 only on request".
TEST_F(SandboxRefusals, PassengerTransportList) {
  auto taxi09 = [&](std::string key, std::function<void(json::object&)> edit) {
    return issue([&](json::object& o, json::object&) {
      json::object row{{"traveller", "张三"},       {"travelDate", "2026-11-22"},
                       {"travellerCardType", "201"}, {"travellerCardNo", "44030419900101123X"},
                       {"travelPlace", "深圳北站"},  {"arrivePlace", "福田口岸"},
                       {"vehicleType", "5"}};
      if (edit) edit(row);
      o["specificFactor"] = "9";
      o[key] = json::array{row};
    });
  };
  EXPECT_EQ(taxi09("invoiceTravellerTransportInfoList", nullptr).first, "E0000");
  EXPECT_EQ(taxi09("invoiceTravellerTransport", nullptr).first, "E0000");
  expect_refused(issue([](json::object& o, json::object&) { o["specificFactor"] = "9"; }), "E9127",
                 "traveller list");
  expect_refused(taxi09("invoiceTravellerTransportInfoList", [](json::object& r) { r.erase("travellerCardNo"); }),
                 "E9128", "travellerCardNo");
  expect_refused(taxi09("invoiceTravellerTransportInfoList", [](json::object& r) { r["vehicleType"] = "8"; }),
                 "E9128", "vehicleType");
  expect_refused(taxi09("invoiceTravellerTransportInfoList", [](json::object& r) { r["vehicleType"] = "1"; }),
                 "E9128", "vehicleLevel");
  start([](InvoicingSandboxOptions& o) { o.traveller_keys = {"invoiceTravellerTransportInfoList"}; });
  expect_refused(taxi09("invoiceTravellerTransport", nullptr), "E9110", "invoiceTravellerTransport");
}

// "invoiceType (1 blue; 2 red is not used for 数电)": a red goes through the confirmation
// form and fastInvoiceRed (sandbox_red_test.cc), never through requestBillingNew.
TEST_F(SandboxRefusals, RedByInvoiceTypeTwoIsRefused) {
  expect_refused(issue([](json::object& o, json::object&) { o["invoiceType"] = "2"; }), "E9113",
                 "fastInvoiceRed");
}

}  // namespace
}  // namespace lanegate::sim
