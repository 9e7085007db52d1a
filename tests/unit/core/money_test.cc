#include "core/money.h"

#include <gtest/gtest.h>

#include <limits>

namespace lanegate {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

TEST(Money, ParsesYuanWithUpToTwoDecimals) {
  EXPECT_EQ(Money::parse("12.34")->fen(), 1234);
  EXPECT_EQ(Money::parse("12.3")->fen(), 1230);
  EXPECT_EQ(Money::parse("12")->fen(), 1200);
  EXPECT_EQ(Money::parse("0.01")->fen(), 1);
  EXPECT_EQ(Money::parse("0")->fen(), 0);
  EXPECT_EQ(Money::parse("-0.50")->fen(), -50);
  EXPECT_EQ(Money::parse("007.05")->fen(), 705);
}

TEST(Money, RejectsMalformedTextNamingTheRule) {
  for (const char* bad : {"", "-", ".5", "1.", "1.234", "+1", " 1", "1 ", "1e2", "1,000.00", "abc", "1.2.3",
                          "--1", "0x10", "１２"}) {
    auto m = Money::parse(bad);
    ASSERT_FALSE(m.has_value()) << "accepted '" << bad << "'";
    EXPECT_EQ(m.error().code, Errc::kParse) << bad;
    EXPECT_NE(m.error().message.find('"'), std::string::npos) << "message quotes the input";
  }
  EXPECT_NE(Money::parse("1.234").error().message.find("two decimal"), std::string::npos);
}

TEST(Money, ParsesTheExtremesAndReportsOverflowBeyondThem) {
  EXPECT_EQ(Money::parse("92233720368547758.07")->fen(), kMax);
  EXPECT_EQ(Money::parse("-92233720368547758.08")->fen(), kMin);
  auto over = Money::parse("92233720368547758.08");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Errc::kOverflow);
  EXPECT_EQ(Money::parse("-92233720368547758.09").error().code, Errc::kOverflow);
  EXPECT_EQ(Money::parse("99999999999999999999999").error().code, Errc::kOverflow);
}

TEST(Money, FormatsWithExactlyTwoDecimals) {
  EXPECT_EQ(Money::from_fen(1234).to_string(), "12.34");
  EXPECT_EQ(Money::from_fen(5).to_string(), "0.05");
  EXPECT_EQ(Money::from_fen(0).to_string(), "0.00");
  EXPECT_EQ(Money::from_fen(-5).to_string(), "-0.05");
  EXPECT_EQ(Money::from_fen(-100).to_string(), "-1.00");
  EXPECT_EQ(Money::from_fen(kMax).to_string(), "92233720368547758.07");
  EXPECT_EQ(Money::from_fen(kMin).to_string(), "-92233720368547758.08");
}

TEST(Money, FormatAndParseRoundTrip) {
  for (std::int64_t fen : std::initializer_list<std::int64_t>{0, 1, -1, 99, 100, 1919, -123456789, kMax, kMin}) {
    EXPECT_EQ(Money::parse(Money::from_fen(fen).to_string())->fen(), fen);
  }
}

TEST(Money, CheckedArithmeticReportsOverflowInsteadOfWrapping) {
  EXPECT_EQ(Money::from_fen(150).add(Money::from_fen(250))->fen(), 400);
  EXPECT_EQ(Money::from_fen(150).sub(Money::from_fen(250))->fen(), -100);
  EXPECT_EQ(Money::from_fen(150).mul(3)->fen(), 450);
  EXPECT_EQ(Money::from_fen(kMax).add(Money::from_fen(1)).error().code, Errc::kOverflow);
  EXPECT_EQ(Money::from_fen(kMin).sub(Money::from_fen(1)).error().code, Errc::kOverflow);
  EXPECT_EQ(Money::from_fen(kMax / 2 + 1).mul(2).error().code, Errc::kOverflow);
  EXPECT_EQ(Money::from_fen(kMin).negate().error().code, Errc::kOverflow);
  EXPECT_EQ(Money::from_fen(kMax).negate()->fen(), -kMax);
}

TEST(Money, SumStopsAtOverflow) {
  std::vector<Money> ok{Money::from_fen(1), Money::from_fen(2), Money::from_fen(3)};
  EXPECT_EQ(sum(ok)->fen(), 6);
  std::vector<Money> over{Money::from_fen(kMax), Money::from_fen(1)};
  EXPECT_FALSE(sum(over).has_value());
}

TEST(Money, OrdersByAmount) {
  EXPECT_LT(Money::from_fen(-1), Money::zero());
  EXPECT_GT(Money::from_fen(101), Money::from_fen(100));
  EXPECT_EQ(Money::from_fen(7), Money::from_fen(7));
}

}  // namespace
}  // namespace lanegate
