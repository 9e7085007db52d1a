// Contract tests of NuonuoPlatform's wire. A recording HTTP server stands in for the
// invoicing platform: it keeps every request exactly as it arrived and answers canned
// replies. Every expectation is transcribed from the spec, /work/shared/specs/e-invoice.md
// ("Invoicing platform API"; cited per check), never from the client's encoder, and the
// signature is recomputed with OpenSSL's HMAC directly (tests/support/nuonuo_wire.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstring>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/money.h"
#include "invoice/platform.h"
#include "support/nuonuo_wire.h"

namespace lanegate::invoice {
namespace {

namespace json = boost::json;

constexpr const char* kAppKey = "wire-app-key";
constexpr const char* kSecret = "wire-app-secret";
constexpr const char* kSeller = "339902999999789113";  // spec: the sandbox seller
constexpr const char* kClerk = "王开票";

struct Recorded {
  std::string path;
  std::multimap<std::string, std::string> params;
  std::multimap<std::string, std::string> headers;  // names as sent, values byte for byte
  std::string body;
};

std::string expected_signature(const Recorded& r, bool url_encoded) {
  auto param = [&](const char* k) { return r.params.find(k)->second; };
  std::string sig = wire_test::nuonuo_signature(kSecret, param("appkey"), param("senid"),
                                                param("nonce"), param("timestamp"), r.body);
  if (!url_encoded) {
    return sig;
  }
  std::string enc;  // RFC 3986: of Base64's alphabet only + / = are reserved
  for (char c : sig) {
    if (c == '+') enc += "%2B";
    else if (c == '/') enc += "%2F";
    else if (c == '=') enc += "%3D";
    else enc += c;
  }
  return enc;
}

std::set<std::string> keys(const json::object& o) {
  std::set<std::string> out;
  for (const auto& kv : o) {
    out.insert(std::string(kv.key()));
  }
  return out;
}

// A raw HTTP/1.1 listener on loopback: it keeps the request line, the header values and the
// body byte for byte (an HTTP library would percent-decode header values, hiding exactly
// what the URL-encoding switch changes), and answers one canned reply per connection.
class RecordingPlatform {
 public:
  RecordingPlatform() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RecordingPlatform() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Recorded> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  void set_query_reply(std::string r) { set_reply("nuonuo.OpeMplatform.queryInvoiceResult", std::move(r)); }
  void set_reply(std::string method, std::string r) {
    std::lock_guard lock(mu_);
    replies_[std::move(method)] = std::move(r);
  }

 private:
  void serve() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) {
        return;
      }
      std::string in;
      char buf[4096];
      std::size_t header_end = std::string::npos;
      std::size_t body_len = 0;
      while (true) {
        if (header_end == std::string::npos && (header_end = in.find("\r\n\r\n")) != std::string::npos) {
          std::smatch m;
          const std::string head = in.substr(0, header_end);
          if (std::regex_search(head, m, std::regex("\r\n[Cc]ontent-[Ll]ength: *([0-9]+)"))) {
            body_len = std::stoul(m[1]);
          }
        }
        if (header_end != std::string::npos && in.size() >= header_end + 4 + body_len) {
          break;
        }
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) {
          break;
        }
        in.append(buf, static_cast<std::size_t>(n));
      }
      Recorded r;
      std::string reply;
      if (header_end != std::string::npos) {
        std::istringstream head(in.substr(0, header_end));
        std::string line;
        std::getline(head, line);
        const auto sp1 = line.find(' ');
        const auto sp2 = line.find(' ', sp1 + 1);
        const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        const auto q = target.find('?');
        r.path = target.substr(0, q);
        if (q != std::string::npos) {
          std::istringstream qs(target.substr(q + 1));
          std::string pair;
          while (std::getline(qs, pair, '&')) {
            const auto eq = pair.find('=');
            r.params.emplace(pair.substr(0, eq), eq == std::string::npos ? "" : pair.substr(eq + 1));
          }
        }
        while (std::getline(head, line)) {
          if (!line.empty() && line.back() == '\r') line.pop_back();
          const auto colon = line.find(':');
          if (colon == std::string::npos) continue;
          std::string value = line.substr(colon + 1);
          value.erase(0, value.find_first_not_of(' '));
          r.headers.emplace(line.substr(0, colon), value);
        }
        r.body = in.substr(header_end + 4, body_len);
        std::lock_guard lock(mu_);
        auto m = r.headers.find("method");
        auto canned = m == r.headers.end() ? replies_.end() : replies_.find(m->second);
        reply = canned == replies_.end() ? std::string(R"({"code":"E1004","describe":"unknown method"})")
                                         : canned->second;
        requests_.push_back(r);
      }
      const std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=utf-8\r\n"
                              "Content-Length: " + std::to_string(reply.size()) +
                              "\r\nConnection: close\r\n\r\n" + reply;
      (void)::send(c, out.data(), out.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Recorded> requests_;
  // The canned reply per method header.
  std::map<std::string, std::string> replies_ = {
      {"nuonuo.OpeMplatform.requestBillingNew",
       R"({"code":"E0000","describe":"成功","result":{"invoiceSerialNum":"SN0001"}})"},
      {"nuonuo.OpeMplatform.queryInvoiceResult", R"({"code":"E0000","describe":"成功","result":[]})"}};
};

class WireIT : public ::testing::Test {
 protected:
  NuonuoPlatform client(config::SignEncoding enc = config::SignEncoding::kPlain,
                        std::vector<config::TaxRule> tax_rules = {}) {
    PlatformClientOptions po;
    po.tax_rules = std::move(tax_rules);
    po.base_url = server.base_url();
    po.app_key = kAppKey;
    po.access_token = "wire-token";
    po.seller_tax_id = kSeller;
    po.clerk = kClerk;
    po.sign_encoding = enc;
    return NuonuoPlatform(po, std::make_unique<NuonuoSigner>(kSecret), clock);
  }

  static IssueRequest taxi_request() {
    IssueRequest r;
    r.order_no = "LG0000000000000000A1";
    r.seller = Seller{"深圳示例出租车有限公司", kSeller};
    r.buyer = Buyer{BuyerKind::kPerson, "个人", "", "p@example.cn", ""};
    InvoiceLine l;
    l.transaction_id = "tx1";
    l.service = "taxi";
    l.item_name = "*运输服务*客运服务费";
    l.tax_code = "3010101020203000000";
    l.rate_percent = 3;
    l.favoured_policy_flag = "08";
    l.excl = *Money::parse("18.63");
    l.tax = *Money::parse("0.56");
    l.incl = *Money::parse("19.19");
    r.lines.push_back(l);
    r.invoice_date = SystemTime{std::chrono::seconds(1795318175)};
    return r;
  }

  FakeClock clock;
  RecordingPlatform server;
};

// spec: "POST https://sdk.nuonuo.com/open/v1/services?senid=&nonce=&timestamp=&appkey= with
// headers X-Nuonuo-Sign, accessToken, userTax (seller tax id), method, and the JSON content as
// body. senid is a 32-hex random id, nonce a random 8-digit number, timestamp Unix time (...
// send seconds)."
void expect_envelope(const Recorded& r, std::string_view method, const FakeClock& clock,
                     bool url_encoded = false) {
  EXPECT_EQ(r.path, "/open/v1/services");
  std::set<std::string> names;
  for (const auto& [k, v] : r.params) names.insert(k);
  EXPECT_EQ(names, (std::set<std::string>{"senid", "nonce", "timestamp", "appkey"}));
  EXPECT_TRUE(std::regex_match(r.params.find("senid")->second, std::regex("[0-9a-fA-F]{32}")));
  EXPECT_TRUE(std::regex_match(r.params.find("nonce")->second, std::regex("[0-9]{8}")));
  EXPECT_EQ(r.params.find("timestamp")->second, std::to_string(clock.unix_seconds()));
  EXPECT_EQ(r.params.find("appkey")->second, kAppKey);
  auto header = [&](const char* k) {
    auto it = r.headers.find(k);
    return it == r.headers.end() ? std::string("<missing>") : it->second;
  };
  EXPECT_EQ(header("accessToken"), "wire-token");
  EXPECT_EQ(header("userTax"), kSeller);
  EXPECT_EQ(header("method"), method);
  EXPECT_EQ(header("X-Nuonuo-Sign"), expected_signature(r, url_encoded));
}

TEST_F(WireIT, IssueOrderCarriesOnlyTheSpecFieldsSignedOverTheSpecString) {
  auto c = client();
  auto accepted = c.issue(taxi_request());
  ASSERT_TRUE(accepted) << accepted.error().to_string();
  EXPECT_EQ(accepted->serial_num, "SN0001");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  expect_envelope(reqs[0], "nuonuo.OpeMplatform.requestBillingNew", clock);
  const json::object content = json::parse(reqs[0].body).as_object();
  EXPECT_EQ(keys(content), (std::set<std::string>{"order"}));
  const json::object& order = content.at("order").as_object();
  // spec: the order's field list.
  const std::set<std::string> spec_order = {
      "buyerName", "buyerTaxNum", "salerTaxNum", "orderNo", "invoiceDate", "clerk",
      "invoiceType", "invoiceLine", "specificFactor", "realPropertyRentInfo",
      "invoiceTravellerTransport", "invoiceTravellerTransportInfoList", "pushMode", "email",
      "buyerPhone", "callBackUrl", "remark", "naturalPersonFlag", "surveyAnswerType",
      "invoiceDetail"};
  for (const auto& k : keys(order)) {
    EXPECT_TRUE(spec_order.contains(k)) << "order." << k << " is not in the spec";
  }
  EXPECT_EQ(order.at("salerTaxNum").as_string(), kSeller);
  EXPECT_EQ(order.at("orderNo").as_string(), "LG0000000000000000A1");
  EXPECT_EQ(order.at("clerk").as_string(), kClerk);  // "for 数电: the name of the clerk"
  EXPECT_EQ(order.at("invoiceType").as_string(), "1");  // "1 blue; 2 red is not used for 数电"
  EXPECT_EQ(order.at("invoiceLine").as_string(), "pc");  // 数电普票(电子)
  EXPECT_EQ(order.at("pushMode").as_string(), "0");      // 0 email
  EXPECT_EQ(order.at("email").as_string(), "p@example.cn");
  const json::array& details = order.at("invoiceDetail").as_array();
  ASSERT_EQ(details.size(), 1u);
  const json::object& d = details[0].as_object();
  const std::set<std::string> spec_detail = {
      "goodsName", "goodsCode", "withTaxFlag", "price", "num", "unit", "specType", "taxRate",
      "taxExcludedAmount", "tax", "taxIncludedAmount", "invoiceLineProperty",
      "favouredPolicyFlag"};
  for (const auto& k : keys(d)) {
    EXPECT_TRUE(spec_detail.contains(k)) << "invoiceDetail." << k << " is not in the spec";
  }
  // spec, taxi: "goodsName per site, e.g. 客运服务费"; the platform shows *运输服务*.
  EXPECT_EQ(d.at("goodsName").as_string(), "客运服务费");
  EXPECT_EQ(d.at("goodsCode").as_string(), "3010101020203000000");
  EXPECT_EQ(d.at("taxRate").as_string(), "0.03");
  EXPECT_EQ(d.at("taxExcludedAmount").as_string(), "18.63");
  EXPECT_EQ(d.at("tax").as_string(), "0.56");
  EXPECT_EQ(d.at("taxIncludedAmount").as_string(), "19.19");
  EXPECT_EQ(d.at("invoiceLineProperty").as_string(), "0");  // 0 normal
  EXPECT_EQ(d.at("favouredPolicyFlag").as_string(), "08");
}

// spec: "surveyAnswerType (small-scale at 1%/3%: 1 ..., 2 ..., 3 waiving the exemption)";
// a general taxpayer's order has none.
TEST_F(WireIT, SmallScaleSellerSaysWhyAtOnePercent) {
  IssueRequest r = taxi_request();
  r.lines[0].rate_percent = 1;
  r.lines[0].favoured_policy_flag = "";
  r.lines[0].excl = *Money::parse("19.00");
  r.lines[0].tax = *Money::parse("0.19");
  {
    auto plain = client();
    ASSERT_TRUE(plain.issue(r));
  }
  auto small = client(config::SignEncoding::kPlain,
                      {{"taxi", "*运输服务*客运服务费", "3010101020203000000", 1, "", "3"}});
  ASSERT_TRUE(small.issue(r));
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  const json::object first = json::parse(reqs[0].body).at("order").as_object();
  const json::object second = json::parse(reqs[1].body).at("order").as_object();
  EXPECT_FALSE(first.contains("surveyAnswerType"));
  EXPECT_EQ(second.at("surveyAnswerType").as_string(), "3");
  EXPECT_EQ(second.at("invoiceDetail").as_array()[0].at("taxRate").as_string(), "0.01");
}

// spec "Parking → 06": specificFactor 6, realPropertyRentInfo with the six required keys
// (certificate only when the site has one), dates YYYY-MM-DD, one detail line without unit
// or specType; plate and times in the remark.
TEST_F(WireIT, ParkingIsALeaseWithItsBlock) {
  IssueRequest r = taxi_request();
  InvoiceLine& l = r.lines[0];
  l.service = "parking";
  l.item_name = "*经营租赁*停车费";
  l.tax_code = "3040502020200000000";
  l.rate_percent = 9;
  l.favoured_policy_flag = "";
  l.excl = *Money::parse("17.61");
  l.tax = *Money::parse("1.58");
  config::ParkingLeaseSite site;
  site.property_address = "广东省深圳市福田区";
  site.detail_address = "深南大道1000号";
  site.area_unit = 2;
  // 23:50 to 00:20 the next day, China Standard Time: the dates differ.
  const SystemTime entry{std::chrono::seconds(1795362600)};  // 2026-11-22T23:50:00+08:00
  const SystemTime exit = entry + std::chrono::minutes(30);
  r.specific.factor = SpecificFactor::kRealPropertyLease;
  r.specific.lease = lease_for_parking(site, entry, exit).value();
  r.specific.remark = parking_remark("粤B12345", entry, exit);
  auto c = client();
  ASSERT_TRUE(c.issue(r));
  site.certificate = "粤(2024)深圳市不动产权第0000001号";
  site.cross_city = true;
  r.order_no = "LG0000000000000000A2";
  r.specific.lease = lease_for_parking(site, entry, exit).value();
  ASSERT_TRUE(c.issue(r));
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  const json::object order = json::parse(reqs[0].body).at("order").as_object();
  EXPECT_EQ(order.at("specificFactor").as_string(), "6");
  const json::object& rent = order.at("realPropertyRentInfo").as_object();
  EXPECT_EQ(keys(rent), (std::set<std::string>{"realPropertyAddress", "detailAddress",
                                               "rentStartDate", "rentEndDate", "crossCityFlag",
                                               "unit"}));
  EXPECT_EQ(rent.at("realPropertyAddress").as_string(), "广东省深圳市福田区");
  EXPECT_EQ(rent.at("detailAddress").as_string(), "深南大道1000号");
  EXPECT_EQ(rent.at("rentStartDate").as_string(), "2026-11-22");
  EXPECT_EQ(rent.at("rentEndDate").as_string(), "2026-11-23");
  EXPECT_EQ(rent.at("crossCityFlag").as_string(), "0");
  EXPECT_EQ(rent.at("unit").as_string(), "2");
  EXPECT_EQ(order.at("remark").as_string(), "车牌 粤B12345 入场 2026-11-22 23:50 出场 2026-11-23 00:20");
  const json::array& details = order.at("invoiceDetail").as_array();
  ASSERT_EQ(details.size(), 1u);
  EXPECT_FALSE(details[0].as_object().contains("unit"));
  EXPECT_FALSE(details[0].as_object().contains("specType"));
  EXPECT_EQ(details[0].at("goodsName").as_string(), "停车费");
  EXPECT_EQ(details[0].at("taxRate").as_string(), "0.09");
  EXPECT_EQ(details[0].at("favouredPolicyFlag").as_string(), "");
  const json::object second = json::parse(reqs[1].body).at("order").as_object();
  EXPECT_EQ(second.at("realPropertyRentInfo").at("realPropertyCertificate").as_string(),
            "粤(2024)深圳市不动产权第0000001号");
  EXPECT_EQ(second.at("realPropertyRentInfo").at("crossCityFlag").as_string(), "1");
}

// A stay without an entry time has no lease period: refused, nothing invented.
TEST(SpecificBusiness, AStayWithoutEntryHasNoLeasePeriod) {
  config::ParkingLeaseSite site;
  auto l = lease_for_parking(site, std::nullopt, SystemTime{std::chrono::seconds(1795362600)});
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code, Errc::kRejected);
  EXPECT_EQ(l.error().field, "trip");
}

// spec "Taxi → plain invoice; 09 only on request": a plain taxi order says specificFactor 0
// and carries no traveller list; with the passenger's identity it is 9 with one row under
// the configured key, vehicleType 5, travellerCardType 201, no vehicleLevel.
TEST_F(WireIT, TaxiIsPlainUnlessThePassengerGivesIdentity) {
  auto c = client();
  ASSERT_TRUE(c.issue(taxi_request()));
  IssueRequest r = taxi_request();
  r.order_no = "LG0000000000000000A3";
  r.specific.factor = SpecificFactor::kPassengerTransport;
  const SystemTime boarding{std::chrono::seconds(1795318175)};  // 2026-11-22 11:29 CST
  r.specific.travellers.push_back(
      make_traveller({"张三", "44030419900101123x", "深圳北站", "福田口岸"}, boarding).value());
  ASSERT_TRUE(c.issue(r));
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  const json::object plain = json::parse(reqs[0].body).at("order").as_object();
  EXPECT_EQ(plain.at("specificFactor").as_string(), "0");
  EXPECT_FALSE(plain.contains("invoiceTravellerTransport"));
  EXPECT_FALSE(plain.contains("invoiceTravellerTransportInfoList"));
  const json::object with = json::parse(reqs[1].body).at("order").as_object();
  EXPECT_EQ(with.at("specificFactor").as_string(), "9");
  const json::array& rows = with.at("invoiceTravellerTransportInfoList").as_array();
  ASSERT_EQ(rows.size(), 1u);
  const json::object& row = rows[0].as_object();
  EXPECT_EQ(keys(row), (std::set<std::string>{"traveller", "travelDate", "travellerCardType",
                                              "travellerCardNo", "travelPlace", "arrivePlace",
                                              "vehicleType"}));
  EXPECT_EQ(row.at("traveller").as_string(), "张三");
  EXPECT_EQ(row.at("travelDate").as_string(), "2026-11-22");
  EXPECT_EQ(row.at("travellerCardType").as_string(), "201");
  EXPECT_EQ(row.at("travellerCardNo").as_string(), "44030419900101123X");
  EXPECT_EQ(row.at("vehicleType").as_string(), "5");
}

TEST(SpecificBusiness, TravellerIdentityIsCheckedNamingTheField) {
  const SystemTime t{std::chrono::seconds(1795318175)};
  auto bad_id = make_traveller({"张三", "4403041990", "A", "B"}, t);
  ASSERT_FALSE(bad_id);
  EXPECT_EQ(bad_id.error().field, "traveller_card_no");
  auto no_name = make_traveller({"", "44030419900101123X", "A", "B"}, t);
  ASSERT_FALSE(no_name);
  EXPECT_EQ(no_name.error().field, "traveller_name");
  auto no_place = make_traveller({"张三", "44030419900101123X", "", "B"}, t);
  ASSERT_FALSE(no_place);
  EXPECT_EQ(no_place.error().field, "travel_place");
}

TEST(SpecificBusiness, StoredFormRoundTrips) {
  SpecificBusiness b;
  b.factor = SpecificFactor::kRealPropertyLease;
  b.lease = LeaseInfo{"广东省深圳市福田区", "深南大道1000号", "2026-11-22", "2026-11-23", true, "", 2};
  b.remark = "车牌 粤B12345";
  auto back = specific_business_from_json(to_json(b));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->factor, SpecificFactor::kRealPropertyLease);
  EXPECT_EQ(back->lease->end_date, "2026-11-23");
  EXPECT_TRUE(back->lease->cross_city);
  EXPECT_EQ(back->lease->area_unit, 2);
  EXPECT_EQ(back->remark, "车牌 粤B12345");
  EXPECT_EQ(specific_business_from_json("")->factor, SpecificFactor::kNone);
  EXPECT_FALSE(specific_business_from_json("{\"factor\":\"7\"}"));
}

TEST_F(WireIT, UrlEncodedSignatureWhenConfigured) {
  auto c = client(config::SignEncoding::kUrl);
  ASSERT_TRUE(c.issue(taxi_request()));
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  expect_envelope(reqs[0], "nuonuo.OpeMplatform.requestBillingNew", clock, true);
}

TEST_F(WireIT, EveryRequestHasAFreshSenidAndNonce) {
  auto c = client();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.query("LG0000000000000000A1").error().code == Errc::kNotFound);
  }
  std::set<std::string> senids;
  for (const auto& r : server.requests()) {
    senids.insert(r.params.find("senid")->second);
  }
  EXPECT_EQ(senids.size(), 5u);
}

// spec: "Query (queryInvoiceResult) by serialNos or orderNos".
TEST_F(WireIT, QueryAsksByOrderNoOnly) {
  auto c = client();
  (void)c.query("LG0000000000000000A1");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  expect_envelope(reqs[0], "nuonuo.OpeMplatform.queryInvoiceResult", clock);
  const json::object content = json::parse(reqs[0].body).as_object();
  EXPECT_EQ(keys(content), (std::set<std::string>{"orderNos"}));
  EXPECT_EQ(json::serialize(content.at("orderNos")), R"(["LG0000000000000000A1"])");
}

// spec: "the 数电 number in allElectronicInvoiceNumbe (spelled without the final "r" by the
// platform: accept both)"; result fields include exTaxAmount, taxAmount, orderAmount.
TEST_F(WireIT, QueryReadsThePlatformSpellingAndTheAmounts) {
  server.set_query_reply(
      R"({"code":"E0000","describe":"成功","result":[{"serialNo":"SN0001","orderNo":"LG0000000000000000A1",)"
      R"("status":"2","statusMsg":"开票完成","failCause":"","pdfUrl":"https://x/1.pdf","ofdUrl":"",)"
      R"("qrCode":"","invoiceTime":1795318175000,"exTaxAmount":"18.63","taxAmount":"0.56",)"
      R"("orderAmount":"19.19","allElectronicInvoiceNumbe":"26337904450900255091"}]})");
  auto c = client();
  auto r = c.query("LG0000000000000000A1");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->status, PlatformStatus::kIssued);
  EXPECT_EQ(r->invoice_number, "26337904450900255091");
  EXPECT_EQ(r->excl_fen, 1863);
  EXPECT_EQ(r->tax_fen, 56);
  EXPECT_EQ(r->incl_fen, 1919);
}

TEST_F(WireIT, AnUnreadableAmountIsAProtocolErrorNotZero) {
  server.set_query_reply(
      R"({"code":"E0000","result":[{"serialNo":"SN0001","orderNo":"LG0000000000000000A1",)"
      R"("status":"2","orderAmount":"19.1x","allElectronicInvoiceNumbe":"26337904450900255091"}]})");
  auto c = client();
  auto r = c.query("LG0000000000000000A1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "amount");
}

// spec "Red-letter (冲红)": saveInvoiceRedConfirm carries billId?, blueInvoiceLine,
// applySource (0 seller), blueElecInvoiceNumber, sellerTaxNo, sellerName, buyerName,
// buyerTaxNo?, redReason (Nuonuo 1 销货退回 2 开票有误 3 服务中止 4 销售折让) and answers the billId.
// orderNo is the apply doc's optional field naming the red the platform issues by itself
// (docs/INVOICE.md: why it is sent).
TEST_F(WireIT, RedLetterApplyCarriesTheSpecFieldsAndTheNuonuoReason) {
  server.set_reply("nuonuo.OpeMplatform.saveInvoiceRedConfirm",
                   R"({"code":"E0000","describe":"成功","result":"LG0000000000000000R1"})");
  auto c = client();
  RedConfirmApply a;
  a.bill_id = "LG0000000000000000R1";
  a.blue_number = "26447000000012345678";
  a.seller = Seller{"深圳示例出租车有限公司", kSeller};
  a.buyer = Buyer{BuyerKind::kCompany, "示例物流有限公司", "91110000802100433B", "", ""};
  a.reason = RedLetterReason::kInvoicingError;
  a.red_order_no = "LG0000000000000000R1";
  auto bill = c.apply_red_confirm(a);
  ASSERT_TRUE(bill) << bill.error().to_string();
  EXPECT_EQ(*bill, "LG0000000000000000R1");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  expect_envelope(reqs[0], "nuonuo.OpeMplatform.saveInvoiceRedConfirm", clock);
  const json::object o = json::parse(reqs[0].body).as_object();
  EXPECT_EQ(keys(o), (std::set<std::string>{"billId", "blueInvoiceLine", "applySource",
                                            "blueElecInvoiceNumber", "sellerTaxNo", "sellerName",
                                            "buyerName", "buyerTaxNo", "redReason", "orderNo"}));
  EXPECT_EQ(o.at("applySource").as_string(), "0");
  EXPECT_EQ(o.at("blueInvoiceLine").as_string(), "pc");
  EXPECT_EQ(o.at("blueElecInvoiceNumber").as_string(), "26447000000012345678");
  EXPECT_EQ(o.at("sellerTaxNo").as_string(), kSeller);
  EXPECT_EQ(o.at("buyerTaxNo").as_string(), "91110000802100433B");
  EXPECT_EQ(o.at("redReason").as_string(), "2");  // 开票有误 is 2 here, 01 at the bureau
  // A person has no tax number: the key is left out, not sent empty.
  a.buyer = Buyer{BuyerKind::kPerson, "个人", "", "", ""};
  a.reason = RedLetterReason::kReturned;
  ASSERT_TRUE(c.apply_red_confirm(a));
  const json::object p = json::parse(server.requests()[1].body).as_object();
  EXPECT_FALSE(p.contains("buyerTaxNo"));
  EXPECT_EQ(p.at("redReason").as_string(), "1");
}

// The apply answering another billId than ours is not a form we can track.
TEST_F(WireIT, RedLetterApplyAnsweredWithAnotherBillIdIsNotTaken) {
  server.set_reply("nuonuo.OpeMplatform.saveInvoiceRedConfirm",
                   R"({"code":"E0000","describe":"成功","result":"SOMEONE-ELSES"})");
  auto c = client();
  RedConfirmApply a;
  a.bill_id = "LG0000000000000000R1";
  auto bill = c.apply_red_confirm(a);
  ASSERT_FALSE(bill);
  EXPECT_EQ(bill.error().code, Errc::kProtocol);
}

// queryInvoiceRedConfirm: identity (0 seller) and billId; the reply's page is
// result {total, list[]}, with openStatus a number on the live wire and a string in the doc.
TEST_F(WireIT, RedLetterQueryAsksAsTheSellerAndReadsEitherNumberOrString) {
  server.set_reply(
      "nuonuo.OpeMplatform.queryInvoiceRedConfirm",
      R"({"code":"E0000","describe":"调用成功","result":{"total":1,"list":[{"billId":"B1","billNo":"35080224091000701901",)"
      R"("billUuid":"322d5d68aa","billStatus":"01","requestStatus":null,"openStatus":1,"applySource":0,)"
      R"("orderNo":"LG0000000000000000R1","invoiceSerialNum":null,"blueInvoiceNumber":"26447000000012345678",)"
      R"("redReason":"2","taxIncludeAmount":"-1.00"}]}})");
  auto c = client();
  auto v = c.query_red_confirm("B1");
  ASSERT_TRUE(v) << v.error().to_string();
  auto reqs = server.requests();
  expect_envelope(reqs[0], "nuonuo.OpeMplatform.queryInvoiceRedConfirm", clock);
  const json::object o = json::parse(reqs[0].body).as_object();
  EXPECT_EQ(keys(o), (std::set<std::string>{"identity", "billId"}));
  EXPECT_EQ(o.at("identity").as_string(), "0");
  EXPECT_EQ(v->bill_status, "01");
  EXPECT_EQ(v->bill_no, "35080224091000701901");
  EXPECT_EQ(v->bill_uuid, "322d5d68aa");
  EXPECT_TRUE(v->red_issued);
  EXPECT_EQ(v->red_order_no, "LG0000000000000000R1");
  EXPECT_EQ(v->red_serial, "");
  EXPECT_EQ(v->blue_number, "26447000000012345678");
  server.set_reply("nuonuo.OpeMplatform.queryInvoiceRedConfirm",
                   R"({"code":"E0000","describe":"调用成功","result":{"total":"1","list":[{"billId":"B1",)"
                   R"("billStatus":"02","openStatus":"0"}]}})");
  auto w = c.query_red_confirm("B1");
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->red_issued);
  EXPECT_EQ(w->bill_status, "02");
  // A page without our form: the platform does not know it.
  server.set_reply("nuonuo.OpeMplatform.queryInvoiceRedConfirm",
                   R"({"code":"E0000","describe":"调用成功","result":{"total":0,"list":[]}})");
  EXPECT_EQ(c.query_red_confirm("B1").error().code, Errc::kNotFound);
  server.set_reply("nuonuo.OpeMplatform.queryInvoiceRedConfirm",
                   R"({"code":"E0000","describe":"调用成功","result":{"total":1}})");
  EXPECT_EQ(c.query_red_confirm("B1").error().code, Errc::kProtocol);
}

// fastInvoiceRed: orderNo (new), taxNum, invoiceId (blue serial) and elecInvoiceNumber (blue
// 数电 number), billNo + billUuid ("required for 数电 reds"), invoiceLine -> invoiceSerialNum.
TEST_F(WireIT, FastRedCarriesTheConfirmationAndTheBlue) {
  server.set_reply("nuonuo.OpeMplatform.fastInvoiceRed",
                   R"({"code":"E0000","describe":"成功","result":{"invoiceSerialNum":"RED-SN"}})");
  auto c = client();
  FastRedRequest f;
  f.order_no = "LG0000000000000000R1";
  f.seller_tax_id = kSeller;
  f.blue_serial = "SN0001";
  f.blue_number = "26447000000012345678";
  f.bill_no = "35080224091000701901";
  f.bill_uuid = "322d5d68aa";
  auto accepted = c.fast_red(f);
  ASSERT_TRUE(accepted) << accepted.error().to_string();
  EXPECT_EQ(accepted->serial_num, "RED-SN");
  auto reqs = server.requests();
  expect_envelope(reqs[0], "nuonuo.OpeMplatform.fastInvoiceRed", clock);
  const json::object o = json::parse(reqs[0].body).as_object();
  EXPECT_EQ(keys(o), (std::set<std::string>{"orderNo", "taxNum", "invoiceId", "elecInvoiceNumber",
                                            "billNo", "billUuid", "invoiceLine"}));
  EXPECT_EQ(o.at("taxNum").as_string(), kSeller);
  EXPECT_EQ(o.at("invoiceId").as_string(), "SN0001");
  EXPECT_EQ(o.at("billNo").as_string(), "35080224091000701901");
  EXPECT_EQ(o.at("billUuid").as_string(), "322d5d68aa");
  EXPECT_EQ(o.at("invoiceLine").as_string(), "pc");
  // A duplicate orderNo is asked about, never answered with a second red (R6).
  server.set_reply("nuonuo.OpeMplatform.fastInvoiceRed", R"({"code":"E9106","describe":"订单编号重复"})");
  server.set_query_reply(R"({"code":"E0000","describe":"成功","result":[{"orderNo":"LG0000000000000000R1",)"
                         R"("serialNo":"RED-SN","status":"20"}]})");
  auto again = c.fast_red(f);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->serial_num, "RED-SN");
}

}  // namespace
}  // namespace lanegate::invoice
