// Trade bill parsing (table-driven by header name) and reconciliation: each kind of
// planted mismatch is found and named.
#include <boost/json.hpp>

#include "audit_fixture.h"
#include "gateway/audit_reconcile.h"

namespace lanegate::gateway::audit::testing {
namespace {

constexpr std::string_view kDay = "2026-11-22";
constexpr std::string_view kHeader =
    "交易时间,公众账号ID,商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单总金额(元),退款金额(元)";

std::string bill_row(std::string_view no, std::string_view state, std::string_view amount,
                     std::string_view refund = "0.00") {
  return "`2026-11-22 09:00:00,`wx2421b1c4370ec43b,`1900000109,`exit-1,`42000000" +
         std::string(no) + ",`" + std::string(no) + ",`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`" +
         std::string(state) + ",`CMC,`CNY,`" + std::string(amount) + ",`" + std::string(refund);
}

std::string bill(const std::vector<std::string>& rows, std::string_view summary) {
  std::string text = std::string(kHeader) + "\r\n";
  for (const auto& r : rows) {
    text += r + "\r\n";
  }
  text += "总交易单数,应结订单总金额,退款总金额\r\n";
  text += std::string(summary) + "\r\n";
  return text;
}

const ReconcileItem& item(const ReconcileReport& r, std::string_view no) {
  for (const auto& i : r.items) {
    if (i.out_trade_no == no) {
      return i;
    }
  }
  ADD_FAILURE() << "no item " << no;
  static ReconcileItem none;
  return none;
}

TEST(TradeBill, ParsesTheSandboxLayout) {
  const std::string text = "\xEF\xBB\xBF" + bill({bill_row("T1", "SUCCESS", "12.34"),
                                                  bill_row("T2", "REFUND", "5.00", "5.00")},
                                                 "`2,`17.34,`5.00");
  auto b = parse_trade_bill(text);
  ASSERT_TRUE(b) << b.error().to_string();
  ASSERT_EQ(b->rows.size(), 2u);
  EXPECT_EQ(b->rows[0].out_trade_no, "T1");
  EXPECT_EQ(b->rows[0].trade_state, "SUCCESS");
  EXPECT_EQ(b->rows[0].amount, Money::from_fen(1234));
  EXPECT_EQ(b->rows[0].transaction_id, "42000000T1");
  EXPECT_EQ(b->rows[0].line, 2u);
  EXPECT_EQ(b->rows[1].refund, Money::from_fen(500));
  ASSERT_TRUE(b->summary);
  EXPECT_EQ(b->summary->trade_count, 2);
  EXPECT_EQ(b->summary->total_amount, Money::from_fen(1734));
}

TEST(TradeBill, FindsColumnsByNameInAnyOrder) {
  const std::string text = "交易状态,新列,商户订单号,应结订单总金额（元）\n`SUCCESS,`x,`T9,`0.01\n";
  auto b = parse_trade_bill(text);
  ASSERT_TRUE(b) << b.error().to_string();
  ASSERT_EQ(b->rows.size(), 1u);
  EXPECT_EQ(b->rows[0].out_trade_no, "T9");
  EXPECT_EQ(b->rows[0].amount, Money::from_fen(1));
  EXPECT_FALSE(b->summary);
}

TEST(TradeBill, MissingRequiredColumnIsNamed) {
  auto b = parse_trade_bill("交易时间,交易状态,应结订单总金额(元)\n`x,`SUCCESS,`1.00\n");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().field, "商户订单号");
  EXPECT_NE(b.error().message.find("line 1"), std::string::npos);
}

TEST(TradeBill, BadAmountNamesLineAndColumn) {
  auto b = parse_trade_bill(
      bill({bill_row("T1", "SUCCESS", "1.00"), bill_row("T2", "SUCCESS", "1.005")}, "`2,`2.00,`0"));
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().field, "应结订单总金额(元)");
  EXPECT_NE(b.error().message.find("line 3"), std::string::npos) << b.error().message;
  auto neg = parse_trade_bill(bill({bill_row("T1", "SUCCESS", "-1.00")}, "`1,`1.00,`0"));
  ASSERT_FALSE(neg);
}

TEST(TradeBill, WrongFieldCountAndGarbageAreRefused) {
  auto b = parse_trade_bill(std::string(kHeader) + "\n`a,`b\n");
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("line 2"), std::string::npos);
  EXPECT_FALSE(parse_trade_bill(""));
  EXPECT_FALSE(parse_trade_bill(bill({}, "`x,`0.00,`0.00")));
  EXPECT_FALSE(parse_trade_bill(std::string(kHeader) + "\n总交易单数,应结订单总金额,退款总金额\n"));
}

class ReconcileTest : public AuditTest {
 protected:
  void settle(std::string no, std::int64_t fen,
              std::string_view when = "2026-11-22T09:00:00+08:00") {
    append_one(event(ledger::Kind::kChargeSettled, std::move(no), fen, at(when), "SUCCESS"));
  }
};

TEST_F(ReconcileTest, FindsEachPlantedMismatch) {
  settle("T0", 100);
  settle("T1", 101);  // provider says 1.10: amount mismatch
  settle("T2", 102);  // not in the bill: missing at provider
  settle("T3", 103);  // provider says PAY_FAIL: state mismatch
  settle("R1", 500);
  append_one(event(ledger::Kind::kRefund, "R1", 500, at("2026-11-22T10:00:00+08:00"), "REFUND"));
  append_one(
      event(ledger::Kind::kChargeFailed, "F1", 300, at("2026-11-22T10:00:00+08:00"), "PAY_FAIL"));
  // X9 is known to lanegate only as accepted, not settled: missing at lanegate.
  append_one(
      event(ledger::Kind::kChargeAccepted, "X9", 900, at("2026-11-22T11:00:00+08:00"), "ACCEPTED"));
  // Yesterday's record must not take part.
  settle("OLD", 1, "2026-11-21T09:00:00+08:00");
  // A taxi fare paid in cash never reaches the provider: counted, not compared.
  append_one(
      event(ledger::Kind::kChargeSettled, "CASH1", 2300, at("2026-11-22T12:00:00+08:00"), "CASH"));

  const std::string text =
      bill({bill_row("T0", "SUCCESS", "1.00"), bill_row("T1", "SUCCESS", "1.10"),
            bill_row("T3", "PAY_FAIL", "1.03"), bill_row("R1", "SUCCESS", "5.00"),
            bill_row("R1", "REFUND", "5.00", "5.00"), bill_row("X9", "SUCCESS", "9.00")},
           "`6,`22.13,`5.00");
  auto b = parse_trade_bill(text);
  ASSERT_TRUE(b) << b.error().to_string();
  auto r = reconcile(*db_, kDay, UtcOffset{480}, *b);
  ASSERT_TRUE(r) << r.error().to_string();

  EXPECT_EQ(item(*r, "T0").category, Category::kMatched);
  EXPECT_EQ(item(*r, "T1").category, Category::kAmountMismatch);
  EXPECT_EQ(item(*r, "T2").category, Category::kMissingAtProvider);
  EXPECT_EQ(item(*r, "T3").category, Category::kStateMismatch);
  EXPECT_EQ(item(*r, "R1").category, Category::kMatched);
  EXPECT_EQ(item(*r, "F1").category, Category::kMatched);
  EXPECT_EQ(item(*r, "X9").category, Category::kMissingAtLanegate);
  EXPECT_NE(item(*r, "X9").note.find("charge_accepted"), std::string::npos);
  EXPECT_EQ(item(*r, "T1").ledger_seq, 2);
  EXPECT_EQ(item(*r, "T1").bill_line, 3u);
  EXPECT_EQ(r->items.size(), 7u);  // OLD is another day
  EXPECT_EQ(r->count(Category::kMatched), 3);
  EXPECT_EQ(r->count(Category::kAmountMismatch), 1);
  EXPECT_EQ(r->count(Category::kMissingAtProvider), 1);
  EXPECT_EQ(r->count(Category::kMissingAtLanegate), 1);
  EXPECT_EQ(r->count(Category::kStateMismatch), 1);
  EXPECT_TRUE(r->bill_warnings.empty());
  EXPECT_FALSE(r->clean());
  EXPECT_EQ(r->settled_outside_provider_count, 1);
  EXPECT_EQ(r->settled_outside_provider_total, Money::from_fen(2300));

  const std::string report = r->to_text();
  EXPECT_NE(report.find("amount_mismatch T1: lanegate SUCCESS 1.01"), std::string::npos) << report;
  EXPECT_NE(report.find("provider SUCCESS 1.10"), std::string::npos) << report;
  EXPECT_NE(report.find("missing_at_provider T2"), std::string::npos);
  EXPECT_NE(report.find("state_mismatch T3"), std::string::npos);
  EXPECT_EQ(report.find(" T0:"), std::string::npos);  // matched items are only counted

  const auto json = boost::json::parse(r->to_json()).as_object();
  EXPECT_EQ(json.at("counts").as_object().at("state_mismatch").as_int64(), 1);
  EXPECT_EQ(json.at("clean").as_bool(), false);
  EXPECT_EQ(json.at("items").as_array().size(), 7u);
}

TEST_F(ReconcileTest, CleanDay) {
  settle("A", 250);
  settle("B", 1);
  auto b = parse_trade_bill(
      bill({bill_row("A", "SUCCESS", "2.50"), bill_row("B", "SUCCESS", "0.01")}, "`2,`2.51,`0.00"));
  ASSERT_TRUE(b);
  auto r = reconcile(*db_, kDay, UtcOffset{480}, *b);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->clean()) << r->to_text();
  EXPECT_EQ(r->ledger_settled_total, Money::from_fen(251));
  EXPECT_EQ(r->bill_success_total, Money::from_fen(251));
  EXPECT_NE(r->to_text().find("Every trade matched"), std::string::npos);
}

TEST_F(ReconcileTest, InconsistentBillSummaryIsAWarning) {
  settle("A", 250);
  auto b = parse_trade_bill(bill({bill_row("A", "SUCCESS", "2.50")}, "`2,`9.99,`0.00"));
  ASSERT_TRUE(b);
  auto r = reconcile(*db_, kDay, UtcOffset{480}, *b);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count(Category::kMatched), 1);
  EXPECT_EQ(r->bill_warnings.size(), 2u);
  EXPECT_FALSE(r->clean());
}

}  // namespace
}  // namespace lanegate::gateway::audit::testing
