// The payment-code reader's line splitting and code rule.
#include "lane/payment_code.h"

#include <gtest/gtest.h>

namespace lanegate::lane {
namespace {

std::vector<ReaderLineSplitter::Line> split(ReaderLineSplitter& s, std::string_view bytes) {
  s.feed(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  std::vector<ReaderLineSplitter::Line> out;
  while (auto l = s.next()) out.push_back(*l);
  return out;
}

TEST(PaymentCode, AcceptsEighteenDigitsWithAWeChatPrefix) {
  EXPECT_EQ(*validate_payment_code("134567890123456789"), "134567890123456789");
  EXPECT_TRUE(validate_payment_code("100000000000000000"));
  EXPECT_TRUE(validate_payment_code("151234567890123456"));  // Hong Kong wallets
}

TEST(PaymentCode, RejectsWithTheReasonAndTheFieldButNeverTheCode) {
  auto s = validate_payment_code("13456789012345678");  // 17 digits
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "payment_code");
  EXPECT_EQ(payment_code_reject_reason(s.error()), "bad_length");
  EXPECT_EQ(s.error().message.find("13456789"), std::string::npos) << s.error().message;
  EXPECT_EQ(payment_code_reject_reason(validate_payment_code("1345678901234567890").error()),
            "bad_length");
  EXPECT_EQ(payment_code_reject_reason(validate_payment_code("").error()), "bad_length");
  EXPECT_EQ(payment_code_reject_reason(validate_payment_code("13456789012345678X").error()),
            "not_digits");
  EXPECT_EQ(payment_code_reject_reason(validate_payment_code("13456789 012345678").error()),
            "not_digits");
  // Alipay's 25..30 and anything else outside 10..15.
  for (std::string_view other : {"094567890123456789", "164567890123456789",
                                 "284567890123456789", "994567890123456789"}) {
    auto r = validate_payment_code(other);
    ASSERT_FALSE(r) << other;
    EXPECT_EQ(payment_code_reject_reason(r.error()), "unknown_prefix");
    EXPECT_EQ(r.error().message.find(other.substr(0, 2)), std::string::npos) << r.error().message;
  }
}

TEST(ReaderLines, CrLfCrAndLfEndALineAndEmptyLinesAreNotCodes) {
  ReaderLineSplitter s;
  auto lines = split(s, "first\r\nsecond\nthird\r\r\n\n");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].text, "first");
  EXPECT_EQ(lines[1].text, "second");
  EXPECT_EQ(lines[2].text, "third");
}

TEST(ReaderLines, ALineSplitAcrossReadsIsJoined) {
  ReaderLineSplitter s;
  EXPECT_TRUE(split(s, "oLANE").empty());
  EXPECT_EQ(s.partial_bytes(), 5u);
  auto lines = split(s, "GATE\r\n");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "oLANEGATE");
}

TEST(ReaderLines, AnOverlongLineIsReportedOnceAndTheNextLineIsIntact) {
  ReaderLineSplitter s;
  auto lines = split(s, std::string(1000, 'x') + "\r\nnext-token\r\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[0].overlong);
  EXPECT_TRUE(lines[0].text.empty());
  EXPECT_FALSE(lines[1].overlong);
  EXPECT_EQ(lines[1].text, "next-token");
  EXPECT_LE(s.partial_bytes(), ReaderLineSplitter::kMaxLineBytes);
}

}  // namespace
}  // namespace lanegate::lane
