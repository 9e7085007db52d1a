// The claim page's JSON API, called as the gateway's HTTP server would call it.
#include "invoice/claim_api.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "test_db.h"

namespace lanegate::invoice {
namespace {

namespace json = boost::json;
using testing::trip;

class ClaimApiTest : public ::testing::Test {
 protected:
  testing::TempDir dir;
  Database db = testing::open_migrated(dir.path() / "gw.db");
  FakeClock clock;
  config::InvoicingSection section = testing::test_section();
  ClaimStore store{db, section, clock};
  Claim claim = store.create_claim(trip("t1", "19.19", clock)).value();

  ApiReply call(std::string_view method, std::string_view target, std::string_view body = "",
                std::string_view client = "192.0.2.1") {
    return handle_claim_api(store, method, target, body, client);
  }
  static json::object parse(const ApiReply& r) { return json::parse(r.body).as_object(); }
};

TEST_F(ClaimApiTest, GetShowsUnclaimedTrip) {
  auto r = call("GET", "/api/v1/claims/" + claim.token);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  auto o = parse(r);
  EXPECT_EQ(o["state"].as_string(), "none");
  EXPECT_EQ(o["amount"].as_string(), "19.19");
  EXPECT_FALSE(o.contains("invoice"));
}

// Issue 17: a toll claim left from before tolls were refused (the settlement claimed every
// kind). Its passenger must learn where the invoice comes from, and no invoice is made.
TEST_F(ClaimApiTest, LegacyTollClaimPointsToTheNationalPlatformAndRefusesSubmission) {
  const std::int64_t now = clock.unix_seconds();
  auto st = db.prepare(
      "INSERT INTO invoice_claim(token, human_code, transaction_id, account_id, service, "
      "amount_fen, description, settled_at, expires_at, created_at) "
      "VALUES ('TollLegacyToken0000001','TQ4M2XAB','toll-old','粤B12345','toll',4500,"
      "'通行费 粤B***45',?,?,?)");
  ASSERT_TRUE(st);
  st->bind_all(now, now + 30 * 86400, now);
  ASSERT_TRUE(st->run());

  auto get = call("GET", "/api/v1/claims/TollLegacyToken0000001");
  ASSERT_EQ(get.status, 200) << get.body;
  auto view = parse(get);
  EXPECT_EQ(view["issuer"].as_string(), "national_toll_platform");
  EXPECT_EQ(view["service"].as_string(), "toll");
  EXPECT_EQ(view["state"].as_string(), "none");

  auto post = call("POST", "/api/v1/claims/TollLegacyToken0000001",
                   R"({"kind":"person","phone":"13800138000"})");
  EXPECT_EQ(post.status, 409) << post.body;
  auto err = parse(post)["error"].as_object();
  EXPECT_EQ(err["code"].as_string(), "toll");
  EXPECT_EQ(err["field"].as_string(), "service");
  EXPECT_NE(std::string(err["message"].as_string()).find("www.txffp.com"), std::string::npos);
  EXPECT_FALSE(store.find_by_transaction("toll-old")->invoice_id);

  // Any other trip's invoice comes from the invoicing platform as before.
  EXPECT_EQ(parse(call("GET", "/api/v1/claims/" + claim.token))["issuer"].as_string(),
            "invoicing_platform");
}

TEST_F(ClaimApiTest, UnknownTokenIs404) {
  EXPECT_EQ(call("GET", "/api/v1/claims/AAAAAAAAAAAAAAAAAAAAAA").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/claims/../../etc/passwd").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/nothing").status, 404);
}

TEST_F(ClaimApiTest, SubmitCompanyThenStatusView) {
  auto r = call("POST", "/api/v1/claims/" + claim.token,
                R"({"kind":"company","title":"Example Logistics Ltd",
                    "tax_id":"91110000802100433b","email":"ap@example.cn"})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto o = parse(r);
  EXPECT_EQ(o["state"].as_string(), "claimed");
  auto inv = o["invoice"].as_object();
  EXPECT_EQ(inv["tax_id"].as_string(), "91110000802100433B");
  EXPECT_EQ(inv["total"].as_string(), "19.19");
  EXPECT_EQ(inv["total_tax"].as_string(), "0.56");
  EXPECT_EQ(inv["total_capitals"].as_string(), "壹拾玖元壹角玖分");
  EXPECT_EQ(inv["email"].as_string(), "a***@example.cn");  // masked in views

  // Issued later: the status view shows number and PDF link.
  const auto id = *store.find_by_token(claim.token)->invoice_id;
  ASSERT_TRUE(store.mark_issuing(id, "S1"));
  ASSERT_TRUE(store.mark_issued(id, "26350000000000000001", "http://127.0.0.1/x.pdf"));
  auto g = parse(call("GET", "/api/v1/claims/" + claim.token + "?poll=3"));
  EXPECT_EQ(g["state"].as_string(), "issued");
  EXPECT_EQ(g["invoice"].as_object()["invoice_number"].as_string(), "26350000000000000001");
  EXPECT_EQ(g["invoice"].as_object()["pdf_url"].as_string(), "http://127.0.0.1/x.pdf");
}

TEST_F(ClaimApiTest, SecondSubmitReturnsExisting200) {
  ASSERT_EQ(call("POST", "/api/v1/claims/" + claim.token, R"({"kind":"person","phone":"13800138000"})")
                .status,
            201);
  auto again = call("POST", "/api/v1/claims/" + claim.token,
                    R"({"kind":"person","title":"李四","phone":"13900139000"})");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(parse(again)["invoice"].as_object()["title"].as_string(), "个人");
  EXPECT_EQ(parse(again)["invoice"].as_object()["phone"].as_string(), "138****8000");
}

TEST_F(ClaimApiTest, FieldErrorsAre422WithFieldName) {
  struct Case {
    const char* body;
    const char* field;
  };
  for (const Case& c : {
           Case{R"({"kind":"company","title":"X Ltd","tax_id":"91110000802100433C","email":"a@b.cn"})", "tax_id"},
           Case{R"({"kind":"company","title":"","tax_id":"91110000802100433B","email":"a@b.cn"})", "title"},
           Case{R"({"kind":"person"})", "email"},
           Case{R"({"kind":"person","phone":"555"})", "phone"},
           Case{R"({"kind":"robot","phone":"13800138000"})", "kind"},
           Case{R"({"kind":"person","phone":13800138000})", "phone"},
           Case{R"({"kind":"person","phone":"13800138000","admin":"1"})", "body"},
       }) {
    auto r = call("POST", "/api/v1/claims/" + claim.token, c.body);
    EXPECT_EQ(r.status, 422) << c.body << " -> " << r.body;
    auto o = parse(r);
    EXPECT_EQ(o["error"].as_object()["field"].as_string(), c.field) << c.body;
    EXPECT_FALSE(o["error"].as_object()["message"].as_string().empty());
  }
  EXPECT_FALSE(store.find_by_token(claim.token)->invoice_id);
}

TEST_F(ClaimApiTest, MalformedAndOversizedBodies) {
  EXPECT_EQ(call("POST", "/api/v1/claims/" + claim.token, "{not json").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/claims/" + claim.token, "[1,2]").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/claims/" + claim.token, "").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/claims/" + claim.token, std::string(9000, ' ')).status, 413);
  EXPECT_EQ(call("DELETE", "/api/v1/claims/" + claim.token).status, 405);
}

TEST_F(ClaimApiTest, ExpiredIs410) {
  clock.advance(std::chrono::hours(24 * 31));
  auto r = call("POST", "/api/v1/claims/" + claim.token, R"({"kind":"person","phone":"13800138000"})");
  EXPECT_EQ(r.status, 410) << r.body;
}

// A parking stay the gate saw leave but never enter: the passenger is told the invoice
// cannot be issued for lack of a lease period (422, not "expired"), and nothing is made.
TEST_F(ClaimApiTest, ParkingStayWithoutEntryIs422NoLeasePeriod) {
  SettledTransaction tx = trip("p1", "9.00", clock, "", "parking");
  tx.period_end = clock.now();
  const Claim parking = store.create_claim(tx).value();
  auto r = call("POST", "/api/v1/claims/" + parking.token, R"({"kind":"person","phone":"13800138000"})");
  EXPECT_EQ(r.status, 422) << r.body;
  const auto err = parse(r).at("error").as_object();
  EXPECT_EQ(err.at("code").as_string(), "no_lease_period") << r.body;
  EXPECT_EQ(err.at("field").as_string(), "trip");
  EXPECT_FALSE(store.find_by_transaction("p1")->invoice_id);
}

// Spec "Taxi → plain invoice; 09 only on request": the taxi page offers the passenger's
// identity; given, the invoice carries one traveller row (09) dated by the boarding; not
// given, the invoice is plain. Parking and merged trips never take it.
TEST_F(ClaimApiTest, TaxiPassengerMayGiveIdentityForA09Invoice) {
  SettledTransaction tx = trip("taxi-09", "19.19", clock);
  tx.period_start = SystemTime{std::chrono::seconds(1795318175)};  // 2026-11-22 11:29 CST
  const Claim taxi = store.create_claim(tx).value();
  auto view = parse(call("GET", "/api/v1/claims/" + taxi.token));
  EXPECT_TRUE(view.at("traveller_offered").as_bool());

  // Half an identity is named, not silently dropped into a plain invoice.
  auto half = call("POST", "/api/v1/claims/" + taxi.token,
                   R"({"kind":"person","phone":"13800138000","traveller_name":"张三"})");
  EXPECT_EQ(half.status, 422) << half.body;
  const std::string missing(parse(half).at("error").at("field").as_string());
  EXPECT_TRUE(missing == "traveller_card_no" || missing == "travel_place" || missing == "arrive_place")
      << half.body;
  EXPECT_FALSE(store.find_by_transaction("taxi-09")->invoice_id);

  auto r = call("POST", "/api/v1/claims/" + taxi.token,
                R"({"kind":"person","phone":"13800138000","traveller_name":"张三",)"
                R"("traveller_card_no":"44030419900101123x","travel_place":"深圳北站","arrive_place":"福田口岸"})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto done = parse(r);
  EXPECT_EQ(done.at("invoice").at("specific_business").as_string(), "09");
  EXPECT_FALSE(done.at("traveller_offered").as_bool());  // asked once, with the invoice
  const auto inv = store.get_invoice(*store.find_by_transaction("taxi-09")->invoice_id).value();
  ASSERT_EQ(inv.specific.travellers.size(), 1u);
  EXPECT_EQ(inv.specific.travellers[0].travel_date, "2026-11-22");
  EXPECT_EQ(inv.specific.travellers[0].card_no, "44030419900101123X");
  EXPECT_EQ(inv.specific.travellers[0].vehicle_type, 5);

  // The other taxi claim, without identity: a plain invoice.
  auto plain = call("POST", "/api/v1/claims/" + claim.token, R"({"kind":"person","phone":"13800138000"})");
  ASSERT_EQ(plain.status, 201) << plain.body;
  EXPECT_EQ(parse(plain).at("invoice").at("specific_business").as_string(), "");
}

TEST_F(ClaimApiTest, TravellerIdentityIsRefusedForParkingAndWhenTheSiteDoesNotOfferIt) {
  SettledTransaction tx = trip("p-09", "9.00", clock, "", "parking");
  tx.period_start = clock.now() - std::chrono::hours(2);
  tx.period_end = clock.now();
  const Claim parking = store.create_claim(tx).value();
  auto view = parse(call("GET", "/api/v1/claims/" + parking.token));
  EXPECT_FALSE(view.at("traveller_offered").as_bool());
  EXPECT_TRUE(view.at("period").as_object().contains("start"));  // the stay, shown before claiming
  const std::string identity =
      R"("traveller_name":"张三","traveller_card_no":"44030419900101123X","travel_place":"A","arrive_place":"B")";
  auto r = call("POST", "/api/v1/claims/" + parking.token,
                R"({"kind":"person","phone":"13800138000",)" + identity + "}");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(parse(r).at("error").at("field").as_string(), "traveller_name");
  auto ok = call("POST", "/api/v1/claims/" + parking.token, R"({"kind":"person","phone":"13800138000"})");
  ASSERT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(parse(ok).at("invoice").at("specific_business").as_string(), "06");

  section.taxi.offer_traveller = false;
  EXPECT_FALSE(parse(call("GET", "/api/v1/claims/" + claim.token)).at("traveller_offered").as_bool());
  auto off = call("POST", "/api/v1/claims/" + claim.token,
                  R"({"kind":"person","phone":"13800138000",)" + identity + "}");
  EXPECT_EQ(off.status, 422) << off.body;
}

TEST_F(ClaimApiTest, HumanCodeLookupAndLockout) {
  auto ok = call("POST", "/api/v1/claim-codes", R"({"code":")" + claim.human_code + R"("})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(parse(ok)["token"].as_string(), claim.token);
  const std::string wrong = claim.human_code == "22222222" ? "33333333" : "22222222";
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(call("POST", "/api/v1/claim-codes", R"({"code":")" + wrong + R"("})", "198.51.100.7")
                  .status,
              404);
  }
  auto locked = call("POST", "/api/v1/claim-codes", R"({"code":")" + claim.human_code + R"("})",
                     "198.51.100.7");
  EXPECT_EQ(locked.status, 429);
  bool has_retry_after = false;
  for (auto& [k, v] : locked.headers) {
    if (k == "Retry-After") {
      has_retry_after = true;
      EXPECT_EQ(v, "900");
    }
  }
  EXPECT_TRUE(has_retry_after);
}

TEST_F(ClaimApiTest, ClaimPageIsServed) {
  auto r = call("GET", "/claim/" + claim.token);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<!DOCTYPE html>"), std::string::npos);
  EXPECT_NE(r.body.find("/api/v1/claims/"), std::string::npos);
  EXPECT_NE(r.body.find("English"), std::string::npos);
  // The token is never reflected into the page (the script reads it from the URL).
  EXPECT_EQ(r.body.find(claim.token), std::string::npos);
  // Without a token the page asks for the code printed on the receipt.
  auto bare = call("GET", "/claim");
  EXPECT_EQ(bare.status, 200);
  EXPECT_NE(bare.body.find("/api/v1/claim-codes"), std::string::npos);
}

TEST(ClaimPage, EmbeddedCopyMatchesAsset) {
  std::ifstream in(std::string(LANEGATE_SOURCE_DIR) + "/invoice/assets/claim.html",
                   std::ios::binary);
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), claim_page_html()) << "run invoice/assets/embed.sh";
}

TEST(ClaimBody, ParsesAllMembers) {
  auto b = parse_claim_body(
      R"({"kind":"company","title":"甲","tax_id":"x","email":"e@x.cn","phone":null})");
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->kind, BuyerKind::kCompany);
  EXPECT_EQ(b->title, "甲");
  EXPECT_EQ(b->tax_id, "x");
  EXPECT_EQ(b->phone, "");
  EXPECT_FALSE(parse_claim_body(R"({"kind":"person","title":{"a":1}})"));
  EXPECT_FALSE(parse_claim_body("{\"kind\":\"person\",\"title\":\"\xff\"}"));  // not UTF-8
  EXPECT_FALSE(parse_claim_body(R"([[[[[[[[[[]]]]]]]]]])"));
}

}  // namespace
}  // namespace lanegate::invoice
