// The invoicing sandbox's red-letter (冲红) calls, spoken to with raw signed HTTP built here
// from the spec (/work/shared/specs/e-invoice.md, "Red-letter (冲红) for 数电 invoices") and
// the research notes on Nuonuo's field names, reply shapes and states, not with invoice/'s
// client: saveInvoiceRedConfirm, queryInvoiceRedConfirm, confirm and fastInvoiceRed, the
// confirmation form's states, the red the platform issues, and the refusals that name the
// field. The E95xx codes are the sandbox's own (listed in sim/src/invoicing_sandbox.cc).
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <functional>

#include "core/clock.h"
#include "sim/invoicing_sandbox.h"
#include "support/nuonuo_wire.h"

namespace lanegate::sim {
namespace {

namespace json = boost::json;

constexpr const char* kSeller = "339902999999789113";   // the spec's sandbox seller
constexpr const char* kCompany = "91110000802100433B";  // passes the GB 32100 check
constexpr const char* kApply = "nuonuo.OpeMplatform.saveInvoiceRedConfirm";
constexpr const char* kQuery = "nuonuo.OpeMplatform.queryInvoiceRedConfirm";
constexpr const char* kConfirm = "nuonuo.OpeMplatform.confirm";
constexpr const char* kFastRed = "nuonuo.OpeMplatform.fastInvoiceRed";

struct Blue {
  std::string order_no, serial, number, buyer_name, buyer_tax;
};

class SandboxRed : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(std::function<void(InvoicingSandboxOptions&)> tweak, bool same_db = false) {
    sandbox.reset();
    InvoicingSandboxOptions o;
    if (!same_db) ++starts;
    o.db_file = dir / ("sandbox-" + std::to_string(starts) + ".db");
    o.clock = &clock;
    if (tweak) tweak(o);
    sandbox = InvoicingSandbox::start(o).value();
  }

  // One signed call; returns the whole reply {code, describe, result?}.
  json::object call(std::string_view method, const json::object& content) {
    const std::string body = json::serialize(content);
    const std::string timestamp = std::to_string(clock.unix_seconds());
    const std::string nonce = "12345678";
    std::string senid = "0123456789abcdef0123456789abcdef";
    ++calls;  // the sandbox refuses a replayed senid
    for (int i = 0, n = calls; i < 4; ++i, n /= 16)
      senid[static_cast<std::size_t>(i)] = "0123456789abcdef"[n % 16];
    httplib::Client c(sandbox->base_url());
    httplib::Headers h = {
        {"accessToken", "sandbox-access-token"},
        {"userTax", kSeller},
        {"method", std::string(method)},
        {"X-Nuonuo-Sign", wire_test::nuonuo_signature("sandbox-app-secret", "sandbox-app-key",
                                                      senid, nonce, timestamp, body)}};
    auto res = c.Post("/open/v1/services?senid=" + senid + "&nonce=" + nonce +
                          "&timestamp=" + timestamp + "&appkey=sandbox-app-key",
                      h, body, "application/json;charset=utf-8");
    if (!res) return {{"code", "<no reply>"}, {"describe", ""}};
    return json::parse(res->body).as_object();
  }

  static std::string code(const json::object& r) { return std::string(r.at("code").as_string()); }
  static std::string describe(const json::object& r) {
    return std::string(r.at("describe").as_string());
  }
  static std::string text(const json::value& v) {
    return v.is_string() ? std::string(v.get_string()) : "<" + json::serialize(v) + ">";
  }

  void expect_refused(const json::object& r, std::string_view want_code, std::string_view names) {
    EXPECT_EQ(code(r), want_code) << describe(r);
    EXPECT_NE(describe(r).find(names), std::string::npos) << describe(r);
  }

  // The queryInvoiceResult row of an order (one query: moves an order in progress on).
  json::object order_row(const std::string& order_no) {
    auto r = call("nuonuo.OpeMplatform.queryInvoiceResult",
                  {{"orderNos", json::array{json::string(order_no)}}});
    EXPECT_EQ(code(r), "E0000") << describe(r);
    const auto& list = r.at("result").as_array();
    if (list.empty()) return {};
    return list[0].as_object();
  }

  // Issues a blue taxi invoice (19.19 at 3 %: 18.63 + 0.56) with raw requestBillingNew and
  // queries it until issued.
  Blue issue_blue(std::string buyer_name = "个人", std::string buyer_tax = "") {
    Blue b{"LG" + std::to_string(1000000 + ++orders), "", "", buyer_name, buyer_tax};
    json::object d{{"goodsName", "客运服务费"},
                   {"goodsCode", "3010101020203000000"},
                   {"withTaxFlag", "1"},
                   {"price", "19.19"},
                   {"num", "1"},
                   {"taxRate", "0.03"},
                   {"taxExcludedAmount", "18.63"},
                   {"tax", "0.56"},
                   {"taxIncludedAmount", "19.19"},
                   {"invoiceLineProperty", "0"},
                   {"favouredPolicyFlag", "08"}};
    json::object order{{"buyerName", buyer_name},
                       {"buyerTaxNum", buyer_tax},
                       {"salerTaxNum", kSeller},
                       {"orderNo", b.order_no},
                       {"invoiceDate", "2026-11-22 13:29:35"},
                       {"clerk", "王开票"},
                       {"invoiceType", "1"},
                       {"invoiceLine", "pc"},
                       {"pushMode", "-1"},
                       {"email", ""},
                       {"buyerPhone", ""},
                       {"callBackUrl", ""},
                       {"invoiceDetail", json::array{d}}};
    auto r = call("nuonuo.OpeMplatform.requestBillingNew", {{"order", order}});
    EXPECT_EQ(code(r), "E0000") << describe(r);
    for (int i = 0; i < 5 && b.number.empty(); ++i) {
      auto row = order_row(b.order_no);
      if (text(row["status"]) == "2") {
        b.number = text(row["allElectronicInvoiceNumbe"]);
        b.serial = text(row["serialNo"]);
      }
    }
    EXPECT_EQ(b.number.size(), 20u);
    return b;
  }

  // A seller's apply for the whole blue as the spec lists the fields; `edit` changes it.
  json::object apply(const Blue& b, std::function<void(json::object&)> edit = nullptr) {
    json::object c{
        {"blueInvoiceLine", "pc"}, {"applySource", "0"},        {"blueElecInvoiceNumber", b.number},
        {"sellerTaxNo", kSeller},  {"buyerName", b.buyer_name}, {"buyerTaxNo", b.buyer_tax},
        {"redReason", "2"}};
    if (edit) edit(c);
    return call(kApply, c);
  }
  // The billId an accepted apply answers (a bare string).
  std::string applied(const json::object& r) {
    EXPECT_EQ(code(r), "E0000") << describe(r);
    if (!r.contains("result") || !r.at("result").is_string()) return "";
    return std::string(r.at("result").as_string());
  }

  json::object query(json::object c) { return call(kQuery, c); }
  // The one row queryInvoiceRedConfirm reports for a billId.
  json::object form(const std::string& bill_id) {
    auto r = query({{"identity", "0"}, {"billId", bill_id}});
    EXPECT_EQ(code(r), "E0000") << describe(r);
    const auto& list = r.at("result").at("list").as_array();
    EXPECT_EQ(list.size(), 1u) << json::serialize(r);
    return list.empty() ? json::object{} : list[0].as_object();
  }

  json::object fast_red(const Blue& b, const json::object& f, std::string order_no,
                        std::function<void(json::object&)> edit = nullptr) {
    json::object c{{"orderNo", order_no},      {"taxNum", kSeller},
                   {"invoiceId", b.serial},    {"elecInvoiceNumber", b.number},
                   {"billNo", f.at("billNo")}, {"billUuid", f.at("billUuid")},
                   {"invoiceLine", "pc"}};
    if (edit) edit(c);
    return call(kFastRed, c);
  }

  std::filesystem::path dir = [] {
    std::string t = (std::filesystem::temp_directory_path() / "sandbox-red-XXXXXX").string();
    return std::filesystem::path(mkdtemp(t.data()));
  }();
  ~SandboxRed() override {
    sandbox.reset();
    std::filesystem::remove_all(dir);
  }
  FakeClock clock;
  std::unique_ptr<InvoicingSandbox> sandbox;
  int starts = 0, calls = 0, orders = 0;
};

// A natural person confirms nothing: the form is at 01 at once and the platform issues the
// red itself under our orderNo; it is tracked like any order and reverses the blue.
TEST_F(SandboxRed, NaturalPersonFormIsAt01AndThePlatformIssuesTheRed) {
  const Blue b = issue_blue();
  const std::string id = applied(apply(b, [](json::object& c) {
    c["billId"] = "GW-RED-1";
    c["orderNo"] = "RED1";
  }));
  EXPECT_EQ(id, "GW-RED-1");
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "01");
  EXPECT_EQ(f["openStatus"], json::value(1));
  EXPECT_EQ(text(f["orderNo"]), "RED1");
  EXPECT_EQ(text(f["redReason"]), "2");
  EXPECT_EQ(text(f["blueElecInvoiceNumber"]), b.number);
  EXPECT_EQ(text(f["blueInvoiceNumber"]), b.number);
  EXPECT_EQ(text(f["taxExcludedAmount"]), "-18.63");
  EXPECT_EQ(text(f["taxAmount"]), "-0.56");
  EXPECT_EQ(text(f["taxIncludeAmount"]), "-19.19");
  EXPECT_EQ(text(f["billNo"]).size(), 20u);
  EXPECT_EQ(text(f["billUuid"]).size(), 32u);
  const std::string serial = text(f["invoiceSerialNum"]);

  auto row = order_row("RED1");
  EXPECT_EQ(text(row["status"]), "20");
  EXPECT_EQ(text(row["serialNo"]), serial);
  EXPECT_EQ(text(row["exTaxAmount"]), "-18.63");
  EXPECT_EQ(text(row["taxAmount"]), "-0.56");
  EXPECT_EQ(text(row["orderAmount"]), "-19.19");
  EXPECT_FALSE(sandbox->find(b.order_no)->reversed) << "reversed only once the red is issued";
  row = order_row("RED1");
  EXPECT_EQ(text(row["status"]), "2");
  const std::string red_number = text(row["allElectronicInvoiceNumbe"]);
  EXPECT_EQ(red_number.size(), 20u);
  EXPECT_TRUE(sandbox->find(b.order_no)->reversed);
  auto red = sandbox->find("RED1");
  ASSERT_TRUE(red);
  EXPECT_EQ(red->kind, "red");
  EXPECT_EQ(red->original_number, b.number);
  EXPECT_NE(red->remark.find(text(f["billNo"])), std::string::npos) << red->remark;

  httplib::Client c(sandbox->base_url());
  auto pdf = c.Get("/invoices/" + red_number + ".pdf");
  ASSERT_TRUE(pdf);
  EXPECT_EQ(pdf->status, 200);
  EXPECT_NE(pdf->body.find("red letter"), std::string::npos);
  EXPECT_NE(pdf->body.find("Reverses invoice: " + b.number), std::string::npos);

  // Reversed: no second form, no second red.
  expect_refused(apply(b), "E9531", b.number);
}

TEST_F(SandboxRed, CompanyBuyerConfirmsAndTheRedFollows) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = applied(apply(b, [](json::object& c) { c["orderNo"] = "RED2"; }));
  ASSERT_FALSE(id.empty());
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "02");
  EXPECT_EQ(f["openStatus"], json::value(0));
  EXPECT_TRUE(f["orderNo"].is_null());
  EXPECT_TRUE(f["invoiceSerialNum"].is_null());
  EXPECT_FALSE(sandbox->find("RED2")) << "no red before the buyer confirms";

  sandbox->buyer_confirms(id, true);
  f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "04");
  EXPECT_EQ(f["openStatus"], json::value(1));
  EXPECT_EQ(text(f["orderNo"]), "RED2");
  EXPECT_TRUE(f["confirmTime"].is_string());
  auto red = sandbox->find("RED2");
  ASSERT_TRUE(red);
  EXPECT_EQ(red->buyer_tax_num, kCompany);
  EXPECT_EQ(red->incl_fen, -1919);
  auto hook = sandbox->find_red_confirm(id);
  ASSERT_TRUE(hook);
  EXPECT_TRUE(hook->issued);
  EXPECT_EQ(hook->serial_num, red->serial_num);
  EXPECT_EQ(hook->apply_source, 0);
}

TEST_F(SandboxRed, BuyerRejectsAndNoRedIsIssued) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = applied(apply(b, [](json::object& c) { c["orderNo"] = "RED3"; }));
  sandbox->buyer_confirms(id, false);
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "05");
  EXPECT_EQ(f["openStatus"], json::value(0));
  EXPECT_FALSE(sandbox->find("RED3"));
  expect_refused(fast_red(b, f, "RED3"), "E9541", "05");
  // A void form does not block a new apply, and no longer holds its orderNo.
  auto again = apply(b, [](json::object& c) { c["orderNo"] = "RED3"; });
  EXPECT_EQ(code(again), "E0000") << describe(again);
}

TEST_F(SandboxRed, AnUnconfirmedFormIsVoidAfter72Hours) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = applied(apply(b));
  clock.advance(std::chrono::hours(72));
  EXPECT_EQ(text(form(id)["billStatus"]), "02");
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(text(form(id)["billStatus"]), "07");
  sandbox->buyer_confirms(id, true);  // too late
  EXPECT_EQ(sandbox->find_red_confirm(id)->bill_status, "07");
  EXPECT_EQ(code(apply(b)), "E0000");
}

TEST_F(SandboxRed, WithoutAutoIssueFastInvoiceRedIssuesTheRed) {
  start([](InvoicingSandboxOptions& o) { o.auto_issue_red = false; });
  const Blue b = issue_blue();
  const std::string id = applied(apply(b, [](json::object& c) { c["orderNo"] = "RED4"; }));
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "01");
  EXPECT_EQ(f["openStatus"], json::value(0));
  EXPECT_FALSE(sandbox->find("RED4"));

  auto r = fast_red(b, f, "RED5");
  ASSERT_EQ(code(r), "E0000") << describe(r);
  const std::string serial = text(r.at("result").at("invoiceSerialNum"));
  EXPECT_EQ(sandbox->fast_red_requests(), 1);
  f = form(id);
  EXPECT_EQ(f["openStatus"], json::value(1));
  EXPECT_EQ(text(f["orderNo"]), "RED5");
  EXPECT_EQ(text(f["invoiceSerialNum"]), serial);
  EXPECT_EQ(text(order_row("RED5")["orderAmount"]), "-19.19");
  EXPECT_EQ(text(order_row("RED5")["status"]), "2");
  EXPECT_TRUE(sandbox->find(b.order_no)->reversed);

  // The same orderNo again is a duplicate; another orderNo finds the form issued.
  auto dup = fast_red(b, f, "RED5");
  EXPECT_EQ(code(dup), "E9106");
  EXPECT_NE(describe(dup).find("重复"), std::string::npos) << describe(dup);
  expect_refused(fast_red(b, f, "RED6"), "E9542", "已开具红字发票");
  EXPECT_FALSE(sandbox->find("RED6"));
}

TEST_F(SandboxRed, FastInvoiceRedWithAUsedOrderNoChangesNothing) {
  start([](InvoicingSandboxOptions& o) { o.auto_issue_red = false; });
  const Blue b = issue_blue();
  const std::string id = applied(apply(b));
  const auto f = form(id);
  auto r = fast_red(b, f, b.order_no);
  EXPECT_EQ(code(r), "E9106");
  EXPECT_NE(describe(r).find("重复"), std::string::npos) << describe(r);
  EXPECT_EQ(sandbox->find(b.order_no)->kind, "blue");
  EXPECT_EQ(form(id)["openStatus"], json::value(0));
  EXPECT_EQ(code(fast_red(b, f, "RED7")), "E0000");
}

TEST_F(SandboxRed, FastInvoiceRedChecksTheFormAndTheBlue) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const Blue other = issue_blue();
  const std::string id = applied(apply(b));
  const auto f = form(id);
  expect_refused(fast_red(b, f, "RED8"), "E9541", "02");
  expect_refused(fast_red(b, f, "RED8", [](json::object& c) { c.erase("billUuid"); }), "E9511",
                 "billUuid");
  expect_refused(
      fast_red(b, f, "RED8", [](json::object& c) { c["billUuid"] = std::string(32, 'a'); }),
      "E9543", "billUuid");
  expect_refused(fast_red(b, f, "RED8", [&](json::object& c) { c["invoiceId"] = other.serial; }),
                 "E9534", "elecInvoiceNumber");
  expect_refused(fast_red(other, f, "RED8"), "E9543", "billNo");
  expect_refused(fast_red(b, f, "RED8", [](json::object& c) { c["taxNum"] = kCompany; }), "E9513",
                 "taxNum");
  expect_refused(fast_red(b, f, "RED8",
                          [](json::object& c) {
                            c.erase("invoiceId");
                            c.erase("elecInvoiceNumber");
                          }),
                 "E9511", "invoiceId");
  expect_refused(fast_red(b, f, "RED8", [](json::object& c) { c["invoiceLine"] = "bs"; }), "E9533",
                 "invoiceLine");
  EXPECT_FALSE(sandbox->find("RED8"));
  EXPECT_EQ(sandbox->fast_red_requests(), 8);
  // Once the buyer agrees (without an orderNo, so nothing is issued yet) it goes through,
  // with the 20-digit number in invoiceNumber naming the blue.
  sandbox->buyer_confirms(id, true);
  EXPECT_EQ(form(id)["openStatus"], json::value(0));
  auto r = fast_red(b, f, "RED8", [&](json::object& c) {
    c.erase("invoiceId");
    c.erase("elecInvoiceNumber");
    c["invoiceNumber"] = b.number;
  });
  EXPECT_EQ(code(r), "E0000") << describe(r);
}

TEST_F(SandboxRed, ASecondApplyForTheSameBlueIsRefused) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = applied(apply(b));
  auto r = apply(b);
  expect_refused(r, "E9532", id);
  // The 20-digit number may also come as blueInvoiceNumber: the same blue, the same answer.
  expect_refused(apply(b,
                       [&](json::object& c) {
                         c.erase("blueElecInvoiceNumber");
                         c["blueInvoiceNumber"] = b.number;
                       }),
                 "E9532", "blueInvoiceNumber");
}

TEST_F(SandboxRed, ADuplicateBillIdIsRefused) {
  const Blue first = issue_blue(), second = issue_blue();
  EXPECT_EQ(applied(apply(first, [](json::object& c) { c["billId"] = "GW-7"; })), "GW-7");
  auto r = apply(second, [](json::object& c) { c["billId"] = "GW-7"; });
  expect_refused(r, "E9520", "重复");
  EXPECT_NE(describe(r).find("billId"), std::string::npos);
  // An orderNo an invoice already has is refused too.
  expect_refused(apply(second, [&](json::object& c) { c["orderNo"] = first.order_no; }), "E9521",
                 "orderNo");
  // Without a billId the sandbox makes one.
  EXPECT_FALSE(applied(apply(second)).empty());
}

TEST_F(SandboxRed, KeysOutsideTheDocAreRefusedByName) {
  const Blue b = issue_blue();
  expect_refused(apply(b, [](json::object& c) { c["blueIssueDate"] = "2026-11-22"; }), "E9510",
                 "blueIssueDate");
  expect_refused(apply(b, [](json::object& c) { c["applySource"] = 0; }), "E9512", "applySource");
  expect_refused(apply(b,
                       [](json::object& c) {
                         c["detail"] = json::array{json::object{{"blueDetailIndex", "1"}}};
                       }),
                 "E9514", "detail");
  expect_refused(query({{"identity", "0"}, {"billTime", "2026-11-22"}}), "E9510", "billTime");
  expect_refused(
      call(kConfirm,
           {{"billId", "x"}, {"identity", "1"}, {"confirmAgreement", "1"}, {"agree", "1"}}),
      "E9510", "agree");
  expect_refused(call(kFastRed, {{"orderNo", "RED9"}, {"redReason", "2"}}), "E9510", "redReason");
  EXPECT_EQ(sandbox->fast_red_requests(), 1)
      << "counted once past the envelope, like issue_requests";
}

TEST_F(SandboxRed, ApplyFieldsAreCheckedAgainstTheBlue) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  expect_refused(apply(b, [](json::object& c) { c["redReason"] = "5"; }), "E9512", "redReason");
  expect_refused(apply(b, [](json::object& c) { c["redReason"] = "01"; }), "E9512", "redReason");
  expect_refused(apply(b, [](json::object& c) { c.erase("buyerName"); }), "E9511", "buyerName");
  expect_refused(apply(b, [](json::object& c) { c.erase("blueInvoiceLine"); }), "E9511",
                 "blueInvoiceLine");
  expect_refused(apply(b, [](json::object& c) { c["applySource"] = "2"; }), "E9512", "applySource");
  expect_refused(apply(b, [](json::object& c) { c["applySource"] = "1"; }), "E9511", "sellerName");
  expect_refused(apply(b, [](json::object& c) { c["sellerTaxNo"] = kCompany; }), "E9513",
                 "sellerTaxNo");
  expect_refused(apply(b, [](json::object& c) { c["blueInvoiceLine"] = "bs"; }), "E9533",
                 "blueInvoiceLine");
  expect_refused(apply(b, [](json::object& c) { c["buyerName"] = "个人"; }), "E9533", "buyerName");
  expect_refused(apply(b, [](json::object& c) { c["buyerTaxNo"] = ""; }), "E9533", "buyerTaxNo");
  expect_refused(
      apply(b, [](json::object& c) { c["blueElecInvoiceNumber"] = "26350000000000009999"; }),
      "E9530", "blueElecInvoiceNumber");
  expect_refused(apply(b, [](json::object& c) { c["blueElecInvoiceNumber"] = "12345678"; }),
                 "E9512", "blueElecInvoiceNumber");
  expect_refused(apply(b, [](json::object& c) { c["billId"] = std::string(33, '1'); }), "E9512",
                 "billId");
  // No apply was accepted: the blue is free.
  EXPECT_EQ(code(apply(b)), "E0000");
}

TEST_F(SandboxRed, BuyerEnteredFormIsConfirmedByTheSeller) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = sandbox->buyer_applies(b.number, "1");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(sandbox->buyer_applies(b.number, "1"), "") << "one live form per blue";
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "03");
  EXPECT_EQ(f["applySource"], json::value(1));
  EXPECT_EQ(text(f["redReason"]), "1");
  auto confirm = [&](std::string identity, std::string agreement) {
    return call(kConfirm, {{"billUuid", f.at("billUuid")},
                           {"identity", identity},
                           {"confirmAgreement", agreement},
                           {"orderNo", "RED10"}});
  };
  expect_refused(confirm("1", "1"), "E9541", "03");
  expect_refused(confirm("0", "2"), "E9512", "confirmAgreement");
  expect_refused(
      call(kConfirm,
           {{"billNo", "35926000000000000999"}, {"identity", "0"}, {"confirmAgreement", "1"}}),
      "E9540", "billNo");
  expect_refused(call(kConfirm, {{"identity", "0"}, {"confirmAgreement", "1"}}), "E9511",
                 "billUuid");
  auto r = confirm("0", "1");
  ASSERT_EQ(code(r), "E0000") << describe(r);
  EXPECT_TRUE(r.at("result").is_object());
  EXPECT_TRUE(r.at("result").as_object().empty());
  f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "04");
  EXPECT_EQ(f["openStatus"], json::value(1));
  EXPECT_EQ(text(f["orderNo"]), "RED10");
  EXPECT_EQ(sandbox->find("RED10")->original_number, b.number);
  expect_refused(confirm("0", "1"), "E9541", "04");
}

TEST_F(SandboxRed, SellerRejectsABuyerEnteredForm) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = sandbox->buyer_applies(b.number, "4");
  auto r = call(kConfirm, {{"billId", id},
                           {"identity", "0"},
                           {"confirmAgreement", "0"},
                           {"confirmReason", "金额无误"}});
  ASSERT_EQ(code(r), "E0000") << describe(r);
  EXPECT_EQ(text(form(id)["billStatus"]), "06");
}

TEST_F(SandboxRed, QueryOfAnUnknownFormIsEmptyNotAnError) {
  auto r = query({{"identity", "0"}, {"billId", "no-such-form"}});
  ASSERT_EQ(code(r), "E0000") << describe(r);
  EXPECT_EQ(r.at("result").at("total"), json::value(0));
  EXPECT_TRUE(r.at("result").at("list").as_array().empty());
  expect_refused(query({{"billId", "no-such-form"}}), "E9511", "identity");
  expect_refused(query({{"identity", "2"}}), "E9512", "identity");
  expect_refused(query({{"identity", "0"}, {"pageSize", "51"}}), "E9512", "pageSize");
}

TEST_F(SandboxRed, QueryListsPagesAndFiltersByState) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(applied(apply(issue_blue())));
  ids.push_back(applied(apply(issue_blue("示例物流有限公司", kCompany))));
  auto all = query({{"identity", "0"}});
  EXPECT_EQ(all.at("result").at("total"), json::value(4));
  auto page = query({{"identity", "0"}, {"pageSize", "3"}, {"pageNo", "2"}});
  ASSERT_EQ(page.at("result").at("list").as_array().size(), 1u) << json::serialize(page);
  EXPECT_EQ(text(page.at("result").at("list").as_array()[0].at("billId")), ids[3]);
  auto waiting = query({{"identity", "0"}, {"billStatus", "02"}});
  EXPECT_EQ(waiting.at("result").at("total"), json::value(1));
}

TEST_F(SandboxRed, ANewFormAnswers15ForTheFirstQueries) {
  start([](InvoicingSandboxOptions& o) { o.red_apply_pending_queries = 2; });
  const Blue b = issue_blue();
  const std::string id = applied(apply(b, [](json::object& c) { c["orderNo"] = "RED11"; }));
  for (int i = 0; i < 2; ++i) {
    auto f = form(id);
    EXPECT_EQ(text(f["billStatus"]), "15") << i;
    EXPECT_EQ(f["openStatus"], json::value(0)) << i;
    EXPECT_TRUE(f["orderNo"].is_null()) << i;
  }
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "01");
  EXPECT_EQ(f["openStatus"], json::value(1));
  EXPECT_EQ(text(f["orderNo"]), "RED11");
}

// The reply shapes of the captured live reply (notes G1, G4): a number where the platform
// sends one, null where it sends null.
TEST_F(SandboxRed, WireTypes) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  auto applied_reply = apply(b, [](json::object& c) { c["billId"] = "GW-9"; });
  EXPECT_TRUE(applied_reply.at("result").is_string());
  auto r = query({{"identity", "0"}, {"billId", "GW-9"}});
  ASSERT_EQ(code(r), "E0000") << describe(r);
  const auto& result = r.at("result").as_object();
  EXPECT_TRUE(result.at("total").is_number());
  const auto& row = result.at("list").as_array()[0].as_object();
  EXPECT_TRUE(row.at("billStatus").is_string());
  EXPECT_TRUE(row.at("openStatus").is_number());
  EXPECT_TRUE(row.at("applySource").is_number());
  EXPECT_TRUE(row.at("requestStatus").is_null());
  EXPECT_TRUE(row.at("billMessage").is_string());
  EXPECT_TRUE(row.at("invoiceSerialNum").is_null());
  EXPECT_TRUE(row.at("orderNo").is_null());
  EXPECT_TRUE(row.at("confirmTime").is_null());
  EXPECT_TRUE(row.at("redReason").is_string());
  EXPECT_TRUE(row.contains("taxIncludeAmount"));
  EXPECT_FALSE(row.contains("taxIncludedAmount"));
  EXPECT_EQ(text(row.at("buyerTaxNo")), kCompany);
  EXPECT_EQ(text(row.at("sellerTaxNo")), kSeller);
  const std::string bill_time = text(row.at("billTime"));
  EXPECT_EQ(bill_time.size(), 19u);
  EXPECT_EQ(bill_time[10], ' ');
}

TEST_F(SandboxRed, ForcedStatesAreReportedAndVoidOnesFreeTheBlue) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = applied(apply(b));
  sandbox->force_bill_status(id, "99");
  EXPECT_EQ(text(form(id)["billStatus"]), "99");
  expect_refused(apply(b), "E9532", "99");  // an unknown state is not void
  sandbox->force_bill_status(id, "16");
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "16");
  EXPECT_EQ(text(f["billMessage"]), "该发票已全额冲红");
  EXPECT_EQ(code(apply(b)), "E0000");
}

TEST_F(SandboxRed, FormsSurviveARestart) {
  const Blue b = issue_blue("示例物流有限公司", kCompany);
  const std::string id = applied(apply(b, [](json::object& c) { c["orderNo"] = "RED12"; }));
  start(nullptr, /*same_db=*/true);
  auto f = form(id);
  EXPECT_EQ(text(f["billStatus"]), "02");
  sandbox->buyer_confirms(id, true);
  EXPECT_TRUE(sandbox->find("RED12"));
  expect_refused(apply(b), "E9532", id);
}

}  // namespace
}  // namespace lanegate::sim
