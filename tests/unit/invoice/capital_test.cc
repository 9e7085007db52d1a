// Chinese capital numerals (大写) as printed in 价税合计.
#include <gtest/gtest.h>

#include "invoice/model.h"
#include "invoice/tax.h"

namespace lanegate::invoice {
namespace {

std::string cap(std::string_view yuan) {
  auto r = chinese_capital_amount(*Money::parse(yuan));
  return r ? *r : "ERROR: " + r.error().message;
}

TEST(CapitalNumerals, Examples) {
  EXPECT_EQ(cap("19.19"), "壹拾玖元壹角玖分");
  EXPECT_EQ(cap("0.00"), "零元整");
  EXPECT_EQ(cap("0.05"), "伍分");
  EXPECT_EQ(cap("0.50"), "伍角整");
  EXPECT_EQ(cap("0.55"), "伍角伍分");
  EXPECT_EQ(cap("1.00"), "壹元整");
  EXPECT_EQ(cap("1.05"), "壹元零伍分");
  EXPECT_EQ(cap("10.00"), "壹拾元整");
  EXPECT_EQ(cap("10.50"), "壹拾元伍角整");
  EXPECT_EQ(cap("18.63"), "壹拾捌元陆角叁分");
  EXPECT_EQ(cap("100.00"), "壹佰元整");
  EXPECT_EQ(cap("101.00"), "壹佰零壹元整");
  EXPECT_EQ(cap("110.00"), "壹佰壹拾元整");
  EXPECT_EQ(cap("1005.50"), "壹仟零伍元伍角整");
  EXPECT_EQ(cap("1010.00"), "壹仟零壹拾元整");
  EXPECT_EQ(cap("2000.00"), "贰仟元整");
  EXPECT_EQ(cap("10000.00"), "壹万元整");
  EXPECT_EQ(cap("10001.00"), "壹万零壹元整");
  EXPECT_EQ(cap("100100.00"), "壹拾万零壹佰元整");
  EXPECT_EQ(cap("101000.00"), "壹拾万零壹仟元整");
  EXPECT_EQ(cap("110000.00"), "壹拾壹万元整");
  EXPECT_EQ(cap("10000001.00"), "壹仟万零壹元整");
  EXPECT_EQ(cap("100000000.00"), "壹亿元整");
  EXPECT_EQ(cap("100010000.00"), "壹亿零壹万元整");
  EXPECT_EQ(cap("100001000.00"), "壹亿零壹仟元整");
  EXPECT_EQ(cap("123456789.12"), "壹亿贰仟叁佰肆拾伍万陆仟柒佰捌拾玖元壹角贰分");
  EXPECT_EQ(cap("999999999999.99"),
            "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分");
  EXPECT_EQ(cap("-19.19"), "负壹拾玖元壹角玖分");
}

TEST(CapitalNumerals, RefusesBeyondRange) {
  auto r = chinese_capital_amount(*Money::parse("1000000000000.00"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kOutOfRange);
}

TEST(InvoiceModel, LinesSplitSeparatelyThenSum) {
  const auto rule = *find_tax_rule(default_tax_rules(), "taxi");
  std::vector<InvoiceLine> lines = {make_line(rule, "t1", *Money::parse("19.19")),
                                    make_line(rule, "t2", *Money::parse("5.61"))};
  auto t = sum_lines(lines);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->excl, *Money::parse("24.08"));  // 18.63 + 5.45
  EXPECT_EQ(t->tax, *Money::parse("0.72"));    // 0.56 + 0.16
  EXPECT_EQ(t->incl, *Money::parse("24.80"));
  auto red = red_letter_lines(lines);
  ASSERT_TRUE(red);
  ASSERT_EQ(red->size(), 2u);
  EXPECT_EQ((*red)[0].transaction_id, "t1");
  EXPECT_EQ((*red)[0].excl, *Money::parse("-18.63"));
  EXPECT_EQ((*red)[1].tax, *Money::parse("-0.16"));
}

}  // namespace
}  // namespace lanegate::invoice
