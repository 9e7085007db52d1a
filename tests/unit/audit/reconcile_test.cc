// The trade bill in the spec's layout (bill_type=ALL): what is read from each column, what
// is refused and how the refusal names the column and line; reconciliation rules that the
// CLI tests (cli_test.cc) do not reach through the fixtures.
#include <boost/json.hpp>

#include "audit_fixture.h"
#include "core/metrics.h"
#include "fixtures/trade_bill.h"
#include "audit/audit_reconcile.h"

namespace lanegate::audit::testing {
namespace {

constexpr std::string_view kDay = "2026-11-22";
const BillOwner kDirect{"1900000109", ""};

const ReconcileItem& item(const ReconcileReport& r, std::string_view no, Category c) {
  for (const auto& i : r.items) {
    if (i.out_trade_no == no && i.category == c) {
      return i;
    }
  }
  ADD_FAILURE() << "no item " << no << " " << category_name(c) << " in\n" << r.to_text();
  static ReconcileItem none;
  return none;
}

std::int64_t rejected() {
  return metrics::Registry::global()
      .counter("lanegate_audit_bill_rejected_total", "Trade bills refused as malformed")
      .value();
}

// Parses `text` expecting a refusal about `column` on `line`; returns the message.
std::string refused(const std::string& text, std::string_view column, std::size_t line) {
  const std::int64_t before = rejected();
  auto b = parse_trade_bill(text);
  if (b) {
    ADD_FAILURE() << "accepted a bill that should name " << column << " on line " << line;
    return "";
  }
  EXPECT_EQ(b.error().code, Errc::kParse);
  EXPECT_EQ(b.error().field, column) << b.error().message;
  const std::string where =
      "trade bill line " + std::to_string(line) + (column.empty() ? ":" : ", column ");
  EXPECT_NE(b.error().message.find(where), std::string::npos) << b.error().message;
  EXPECT_EQ(rejected(), before + 1);
  return b.error().message;
}

std::string replace_once(std::string text, std::string_view from, std::string_view to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) {
    text.replace(at, from.size(), to);
  }
  return text;
}

TEST(TradeBill, TheFixturesAreLaidOutAsTheSpecSays) {
  for (std::string_view name : {"tradebill-partner.csv", "tradebill-direct.csv"}) {
    const std::string text = read_text(bill_fixture(name));
    ASSERT_TRUE(text.starts_with(std::string(kBom) + std::string(kBillHeader) + "\r\n")) << name;
    EXPECT_TRUE(text.ends_with("\r\n"));
    std::size_t lines = 0;
    for (std::size_t at = 0; (at = text.find('\n', at)) != std::string::npos; ++at) {
      EXPECT_EQ(text[at - 1], '\r') << name << ": a line without CRLF";
      ++lines;
    }
    EXPECT_NE(text.find("\r\n" + std::string(kBillSummaryHeader) + "\r\n`"), std::string::npos);
    auto bill = parse_trade_bill(text);
    ASSERT_TRUE(bill) << name << ": " << bill.error().to_string();
    EXPECT_EQ(bill->rows.size() + 3, lines);  // header, summary header, summary line
  }
}

TEST(TradeBill, ReadsEveryColumnOfTheDirectFixture) {
  auto b = parse_trade_bill(read_text(bill_fixture("tradebill-direct.csv")));
  ASSERT_TRUE(b) << b.error().to_string();
  ASSERT_EQ(b->rows.size(), 3u);
  const BillRow& paid = b->rows[1];
  EXPECT_EQ(paid.line, 3u);
  EXPECT_EQ(paid.trade_time, "2026-11-22 09:12:45");
  EXPECT_EQ(paid.appid, "wx2421b1c4370ec43b");
  EXPECT_EQ(paid.mchid, "1900000109");
  EXPECT_EQ(paid.sub_mchid, "0");
  EXPECT_EQ(paid.device_id, "exit-1");
  EXPECT_EQ(paid.transaction_id, "4200001090202611220000000002");
  EXPECT_EQ(paid.out_trade_no, "D002");
  EXPECT_EQ(paid.trade_type, "NATIVE");
  EXPECT_EQ(paid.trade_state, "SUCCESS");
  EXPECT_EQ(paid.currency, "CNY");
  EXPECT_EQ(paid.settlement_amount, Money::from_fen(2550));
  EXPECT_EQ(paid.order_amount, Money::from_fen(2550));
  EXPECT_EQ(paid.refund_amount, Money::zero());
  EXPECT_EQ(paid.fee.e5, 15300);  // 0.15300 yuan: 15.3 fen, not rounded
  EXPECT_EQ(paid.rate, "0.60%");
  EXPECT_EQ(paid.description, "停车费");

  const BillRow& refund = b->rows[2];
  EXPECT_EQ(refund.trade_state, "REFUND");
  EXPECT_EQ(refund.out_trade_no, "D001");  // the original order
  EXPECT_EQ(refund.refund_id, "50300001090202611220000000011");
  EXPECT_EQ(refund.out_refund_no, "RF-D001");
  EXPECT_EQ(refund.refund_amount, Money::from_fen(300));
  EXPECT_EQ(refund.requested_refund, Money::from_fen(300));
  EXPECT_EQ(refund.refund_type, "ORIGINAL");
  EXPECT_EQ(refund.refund_state, "SUCCESS");
  EXPECT_EQ(refund.fee.e5, -1800);
  EXPECT_EQ(refund.settlement_amount, Money::zero());

  EXPECT_EQ(b->summary.line, 6u);
  EXPECT_EQ(b->summary.trade_count, 3);
  EXPECT_EQ(b->summary.settlement_total, Money::from_fen(2850));
  EXPECT_EQ(b->summary.refund_total, Money::from_fen(300));
  EXPECT_EQ(b->summary.fee_total.e5, 15300);
  EXPECT_EQ(b->summary.order_total, Money::from_fen(2850));
  EXPECT_EQ(b->summary.requested_refund_total, Money::from_fen(300));
}

TEST(TradeBill, PartnerFixtureKeepsEscapedCommasAndCoupons) {
  auto b = parse_trade_bill(read_text(bill_fixture("tradebill-partner.csv")));
  ASSERT_TRUE(b) << b.error().to_string();
  ASSERT_EQ(b->rows.size(), 13u);
  // The provider escapes a comma in free text as "\ ": the field stays one field.
  EXPECT_EQ(b->rows[2].description, "停车费\\ 临时车");
  EXPECT_EQ(b->rows[3].coupon_amount, Money::from_fen(200));
  EXPECT_EQ(b->rows[3].settlement_amount, Money::from_fen(1800));
  EXPECT_EQ(b->rows[3].order_amount, Money::from_fen(2000));
  EXPECT_EQ(b->rows[0].sub_mchid, "1900000201");
  EXPECT_EQ(b->summary.fee_total.e5, 48000);
}

TEST(TradeBill, UnusedAmountFieldsMayBeZeroOrEmpty) {
  auto b = parse_trade_bill(bill_text({BillLine::paid("T1", "2.00")
                                           .set("代金券金额", "")
                                           .set("退款金额", "0")
                                           .set("充值券退款金额", "")
                                           .set("申请退款金额", "")
                                           .set("手续费", "0")
                                           .set("费率", "")}));
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->rows[0].refund_amount, Money::zero());
  EXPECT_EQ(b->rows[0].requested_refund, Money::zero());
  EXPECT_EQ(b->rows[0].fee.e5, 0);
}

TEST(TradeBill, AHeaderThatDiffersFromTheSpecIsRefusedNamingTheColumn) {
  const std::string good = bill_text({BillLine::paid("T1", "1.00")});
  // A missing column: the first one that is not where the spec puts it is named.
  std::string m =
      refused(replace_once(good, "应结订单金额,代金券金额,", "应结订单金额,"), "代金券金额", 1);
  EXPECT_NE(m.find("\"微信退款单号\", expected \"代金券金额\""), std::string::npos) << m;
  // A renamed column (the guessed layout's name).
  m = refused(replace_once(good, "应结订单金额,", "应结订单总金额(元),"), "应结订单金额", 1);
  EXPECT_NE(m.find("应结订单总金额(元)"), std::string::npos) << m;
  // The last column missing, and one too many.
  refused(replace_once(good, ",费率备注\r\n", "\r\n"), "费率备注", 1);
  refused(replace_once(good, ",费率备注\r\n", ",费率备注,备注\r\n"), "备注", 1);
  // The layout lanegate used to guess (no 特约商户号) is refused, not half-read.
  refused(
      "交易时间,公众账号ID,商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
      "付款银行,货币种类,应结订单总金额(元),退款金额(元)\n`x\n",
      "特约商户号", 1);
  // Not a bill at all (an HTML error page saved as the bill).
  refused("<html>\n", "交易时间", 1);
  // The BOM and CR are optional.
  std::string plain = good.substr(kBom.size());
  std::erase(plain, '\r');
  EXPECT_TRUE(parse_trade_bill(plain));
}

TEST(TradeBill, ValuesThatBreakTheirColumnsRuleAreRefusedNamingColumnAndLine) {
  const BillLine ok = BillLine::paid("T0", "1.00");
  auto bad = [&](BillLine line, std::string_view column) {
    return refused(bill_text({ok, line}), column, 3);
  };
  // An amount without its backtick.
  std::string text = bill_text({ok, BillLine::paid("T1", "5.00")});
  std::string m = refused(replace_once(text, ",`5.00,`0.00,`", ",5.00,`0.00,`"), "应结订单金额", 3);
  EXPECT_NE(m.find("backtick"), std::string::npos) << m;
  // A float-looking amount is never rounded.
  m = bad(BillLine::paid("T1", "1.005"), "应结订单金额");
  EXPECT_NE(m.find("1.005"), std::string::npos) << m;
  bad(BillLine::paid("T1", "1.00").set("订单金额", "1.005"), "订单金额");
  bad(BillLine::paid("T1", "1.00").set("代金券金额", "1e2"), "代金券金额");
  bad(BillLine::paid("T1", "-1.00"), "应结订单金额");
  bad(BillLine::refunded("T1", "1.00").set("退款金额", "0.5.0"), "退款金额");
  // The compared amounts may not be blank.
  bad(BillLine::paid("T1", "1.00").set("订单金额", ""), "订单金额");
  bad(BillLine::refunded("T1", "1.00").set("申请退款金额", ""), "申请退款金额");
  // Fee: 5 decimals at most, digits only.
  bad(BillLine::paid("T1", "1.00").set("手续费", "0.000001"), "手续费");
  bad(BillLine::paid("T1", "1.00").set("手续费", "0,006"), "");  // 28 fields
  bad(BillLine::paid("T1", "1.00").set("费率", "0.60"), "费率");
  bad(BillLine::paid("T1", "1.00").set("交易时间", "2026-11-22T09:00:00"), "交易时间");
  bad(BillLine::paid("T1", "1.00").set("交易时间", "2026-13-22 09:00:00"), "交易时间");
  bad(BillLine::paid("T1", "1.00").set("货币种类", "USD"), "货币种类");
  bad(BillLine::paid("", "1.00"), "商户订单号");
  bad(BillLine::paid("T1", "1.00").set("商户号", ""), "商户号");
  bad(BillLine::paid("T1", "1.00").set("交易状态", ""), "交易状态");
  // A short line names the first missing column.
  text = bill_text({ok, BillLine::paid("T1", "1.00")});
  m = refused(replace_once(text, ",`0.00,`\r\n总交易单数", "\r\n总交易单数"), "申请退款金额", 3);
  EXPECT_NE(m.find("has 25 fields"), std::string::npos) << m;
}

TEST(TradeBill, TheSummaryBlockIsRequiredAndChecked) {
  const std::vector<BillLine> lines{BillLine::paid("T1", "1.00")};
  const std::string good = bill_text(lines);
  // Truncated: no summary header.
  refused(good.substr(0, good.find("总交易单数")), "总交易单数", 3);
  refused(good.substr(0, good.rfind("`1,")), "总交易单数", 4);
  refused(replace_once(good, "手续费总金额", "手续费"), "手续费总金额", 3);
  refused(bill_text(lines, {"1", "1.00", "0.00", "0.00", "0.00600", "1.00"}), "申请退款总金额", 4);
  refused(bill_text(lines, {"x", "1.00", "0.00", "0.00", "0.00600", "1.00", "0.00"}), "总交易单数",
          4);
  refused(bill_text(lines, {"1", "1.001", "0.00", "0.00", "0.00600", "1.00", "0.00"}),
          "应结订单总金额", 4);
  refused(good + "`1\r\n", "", 5);
  // A data line after the summary header is not a second summary.
  refused(replace_once(good, "\r\n`1,", "\r\n" + lines[0].text() + "\r\n`1,"), "", 4);
}

TEST(BillFee, ExactToFiveDecimals) {
  EXPECT_EQ(BillFee::parse("0.06000")->e5, 6000);
  EXPECT_EQ(BillFee::parse("-0.018")->e5, -1800);
  EXPECT_EQ(BillFee::parse("0")->e5, 0);
  EXPECT_EQ(BillFee::parse("12.34567")->e5, 1234567);
  EXPECT_FALSE(BillFee::parse("0.000001"));
  EXPECT_FALSE(BillFee::parse(""));
  EXPECT_FALSE(BillFee::parse("1e-5"));
  EXPECT_FALSE(BillFee::parse(".5"));
  EXPECT_FALSE(BillFee::parse("0."));
  EXPECT_FALSE(BillFee::parse("+1"));
  EXPECT_EQ(BillFee{-1800}.to_string(), "-0.01800");
  EXPECT_EQ(BillFee{1234567}.to_string(), "12.34567");
  EXPECT_EQ(BillFee{0}.to_string(), "0.00000");
}

class ReconcileTest : public AuditTest {
 protected:
  void settle(std::string no, std::int64_t fen, std::string state = "SUCCESS") {
    append_one(event(ledger::Kind::kChargeSettled, std::move(no), fen,
                     at("2026-11-22T09:00:00+08:00"), std::move(state)));
  }
  void refund(std::string no, std::int64_t fen) {
    append_one(event(ledger::Kind::kRefund, std::move(no), fen, at("2026-11-22T10:00:00+08:00"),
                     "REFUND"));
  }
  ReconcileReport run(const std::vector<BillLine>& lines, const BillOwner& owner = kDirect,
                      std::vector<std::string> summary = {}) {
    auto b = parse_trade_bill(bill_text(lines, std::move(summary)));
    EXPECT_TRUE(b) << b.error().to_string();
    if (!b) {
      return {};
    }
    auto r = reconcile(*db_, kDay, UtcOffset{480}, *b, owner);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : ReconcileReport{};
  }
};

TEST_F(ReconcileTest, ComparesTheOrderAmountNotTheSettlementAfterACoupon) {
  settle("C1", 2000);
  const auto r =
      run({BillLine::paid("C1", "18.00").set("代金券金额", "2.00").set("订单金额", "20.00")});
  EXPECT_EQ(item(r, "C1", Category::kMatched).bill_settlement, Money::from_fen(1800));
  EXPECT_TRUE(r.clean()) << r.to_text();
}

TEST_F(ReconcileTest, DirectModeOwnsOnlyTheMerchantsOwnLines) {
  settle("A", 100);
  settle("B", 100);
  const auto r = run({BillLine::paid("A", "1.00").set("特约商户号", ""),
                      BillLine::paid("B", "1.00").set("特约商户号", "1900000201"),
                      BillLine::paid("C", "1.00").set("商户号", "1900000999")});
  EXPECT_EQ(item(r, "A", Category::kMatched).bill_lines, std::vector<std::size_t>{2});
  // B's line is a special merchant's under a service provider with the same number.
  EXPECT_EQ(item(r, "B", Category::kMissingAtProvider).ledger_amount, Money::from_fen(100));
  EXPECT_EQ(r.other_merchant_rows, 2);
  EXPECT_EQ(r.other_merchants.at("1900000109/1900000201"), 1);
  EXPECT_EQ(r.other_merchants.at("1900000999/0"), 1);
  EXPECT_EQ(r.items.size(), 2u);  // C is not compared
  EXPECT_TRUE(r.bill_warnings.empty());
}

// One order per category, planted on both sides; cli_test.cc runs the fixtures end to end.
TEST_F(ReconcileTest, FindsEachPlantedMismatch) {
  const auto failed = [&](std::string no) {
    append_one(event(ledger::Kind::kChargeFailed, std::move(no), 100,
                     at("2026-11-22T09:00:00+08:00"), "PAY_FAIL"));
  };
  settle("M", 100);
  settle("AP", 100);
  settle("AD", 101);
  failed("SD");
  failed("FN");
  refund("RM", 100);
  refund("RAP", 100);
  refund("RAD", 150);
  refund("RNS", 100);
  const auto r = run({BillLine::paid("M", "1.00"), BillLine::paid("ML", "1.00"),
                      BillLine::paid("AD", "1.00"), BillLine::paid("SD", "1.00"),
                      // PROCESSING: accepted, listed on the day it was accepted.
                      BillLine::refunded("RM", "1.00").set("退款状态", "PROCESSING"),
                      BillLine::refunded("RML", "1.00"), BillLine::refunded("RAD", "1.00"),
                      BillLine::refunded("RNS", "1.00").set("退款状态", "FAIL"),
                      BillLine::paid("UBS", "3.00").set("交易状态", "REVOKED")});
  const std::vector<std::pair<std::string_view, Category>> planted{
      {"M", Category::kMatched},
      {"AP", Category::kMissingAtProvider},
      {"ML", Category::kMissingLocally},
      {"AD", Category::kAmountDiffers},
      {"SD", Category::kStateDiffers},
      {"FN", Category::kFailedNotBilled},
      {"RM", Category::kRefundMatched},
      {"RAP", Category::kRefundMissingAtProvider},
      {"RML", Category::kRefundMissingLocally},
      {"RAD", Category::kRefundAmountDiffers},
      {"RNS", Category::kRefundNotSuccessful},
      {"UBS", Category::kUnknownBillState},
  };
  ASSERT_EQ(planted.size(), static_cast<std::size_t>(kCategoryCount));
  for (const auto& [no, c] : planted) {
    EXPECT_EQ(r.count(c), 1) << category_name(c);
    item(r, no, c);
  }
  EXPECT_EQ(r.items.size(), planted.size());
  EXPECT_EQ(item(r, "AD", Category::kAmountDiffers).ledger_amount, Money::from_fen(101));
  EXPECT_EQ(item(r, "RNS", Category::kRefundNotSuccessful).refund_state, "FAIL");
  EXPECT_EQ(item(r, "RM", Category::kRefundMatched).out_refund_nos,
            std::vector<std::string>{"RF-RM"});
  EXPECT_EQ(item(r, "UBS", Category::kUnknownBillState).bill_state, "REVOKED");
  EXPECT_TRUE(r.bill_warnings.empty());
  EXPECT_FALSE(r.clean());
  const std::string text = r.to_text();
  EXPECT_NE(text.find("refund_not_successful RNS: ledger refund 1.00 (seq 9); bill REFUND 1.00 "
                      "(settlement 1.00, refund RF-RNS, refund state FAIL, line 9)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("unknown_bill_state UBS: ledger none; bill REVOKED 3.00"), std::string::npos);
  EXPECT_EQ(text.find(" M:"), std::string::npos);  // matched items are only counted
  EXPECT_EQ(text.find(" FN:"), std::string::npos);
  const auto json = boost::json::parse(r.to_json()).as_object();
  for (const auto& [no, c] : planted) {
    EXPECT_EQ(json.at("counts").as_object().at(category_name(c)).as_int64(), 1);
  }
  EXPECT_EQ(json.at("items").as_array().size(), planted.size());
}

TEST_F(ReconcileTest, PartialRefundsOfOneOrderAreSummed) {
  refund("P1", 300);
  refund("P1", 200);
  const auto r = run({BillLine::refunded("P1", "3.00").set("商户退款单号", "RF-P1-1"),
                      BillLine::refunded("P1", "2.00").set("商户退款单号", "RF-P1-2")});
  const auto& i = item(r, "P1", Category::kRefundMatched);
  EXPECT_EQ(i.ledger_amount, Money::from_fen(500));
  EXPECT_EQ(i.bill_amount, Money::from_fen(500));
  EXPECT_EQ(i.bill_lines, (std::vector<std::size_t>{2, 3}));
  EXPECT_TRUE(r.clean()) << r.to_text();
}

TEST_F(ReconcileTest, ASummaryThatDisagreesWithTheLinesIsAWarning) {
  settle("A", 250);
  const auto r = run({BillLine::paid("A", "2.50")}, kDirect,
                     {"2", "2.50", "0.00", "0.00", "0.01600", "2.50", "0.00"});
  EXPECT_EQ(r.count(Category::kMatched), 1);
  ASSERT_EQ(r.bill_warnings.size(), 2u);
  EXPECT_EQ(r.bill_warnings[0], "the summary's 总交易单数 is 2, the lines add up to 1");
  EXPECT_EQ(r.bill_warnings[1],
            "the summary's 手续费总金额 is 0.01600, the lines add up to 0.00600");
  EXPECT_FALSE(r.clean());
  const auto json = boost::json::parse(r.to_json()).as_object();
  EXPECT_EQ(json.at("bill_warnings").as_array().size(), 2u);
  EXPECT_EQ(json.at("bill_summary").as_object().at("fee_yuan").as_string(), "0.01600");
}

TEST_F(ReconcileTest, ABillWithNoLineOfThisMerchantIsAWarning) {
  const auto r = run({BillLine::paid("A", "1.00")}, BillOwner{"1900000100", "1900000201"});
  EXPECT_EQ(r.other_merchant_rows, 1);
  ASSERT_EQ(r.bill_warnings.size(), 1u);
  EXPECT_NE(r.bill_warnings[0].find("no bill line belongs to merchant 1900000100/1900000201"),
            std::string::npos);
  EXPECT_FALSE(r.clean());
}

TEST_F(ReconcileTest, TheMerchantMustBeNamed) {
  auto b = parse_trade_bill(bill_text({}));
  ASSERT_TRUE(b) << b.error().to_string();
  auto r = reconcile(*db_, kDay, UtcOffset{480}, *b, BillOwner{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "mchid");
}

}  // namespace
}  // namespace lanegate::audit::testing
