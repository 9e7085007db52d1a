// Unified social credit code (GB 32100-2015) rules, one failing rule per test.
#include "invoice/buyer_id.h"

#include <gtest/gtest.h>

#include <vector>

namespace lanegate::invoice {
namespace {

TEST(BuyerId, AcceptsValidCodes) {
  // Check characters computed independently (3, 7 and a letter, B).
  for (const char* code : {"91350100M000100Y43", "913301087458306077", "91110000802100433B"}) {
    auto r = validate_buyer_id(code);
    ASSERT_TRUE(r) << code << ": " << r.error().message;
    EXPECT_EQ(*r, code);
  }
}

TEST(BuyerId, NormalisesSpacesAndLowerCase) {
  auto r = validate_buyer_id(" 9135 0100m000100y43 ");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "91350100M000100Y43");
}

TEST(BuyerId, LengthRule) {
  auto r = validate_buyer_id("91350100M000100Y4");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "buyer_tax_id");
  EXPECT_NE(r.error().message.find("length"), std::string::npos);
  EXPECT_NE(r.error().message.find("got 17"), std::string::npos);
  EXPECT_FALSE(validate_buyer_id(""));
  EXPECT_FALSE(validate_buyer_id("91350100M000100Y433"));
}

TEST(BuyerId, AlphabetRuleNamesPosition) {
  // 'O' (letter) instead of '0' (digit) at position 10 is the classic typing error.
  auto r = validate_buyer_id("91350100MO00100Y43");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("alphabet"), std::string::npos);
  EXPECT_NE(r.error().message.find("position 10"), std::string::npos);
  EXPECT_NE(r.error().message.find("'O'"), std::string::npos);
  for (char bad : {'I', 'O', 'S', 'V', 'Z', '-', '*'}) {
    std::string code = "91350100M000100Y43";
    code[15] = bad;
    auto e = validate_buyer_id(code);
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().message.find("position 16"), std::string::npos) << e.error().message;
  }
  // 18 code points, one of them a full-width character: alphabet, not length.
  auto wide = validate_buyer_id("9135010０M000100Y43");
  ASSERT_FALSE(wide);
  EXPECT_NE(wide.error().message.find("position 8"), std::string::npos) << wide.error().message;
}

TEST(BuyerId, RegionCodeRule) {
  auto r = validate_buyer_id("9135A100M000100Y43");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("region code"), std::string::npos);
  EXPECT_NE(r.error().message.find("position 5"), std::string::npos);
}

TEST(BuyerId, CheckCharacterRuleSaysExpectedAndGot) {
  auto r = validate_buyer_id("91350100M000100Y44");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("check character"), std::string::npos);
  EXPECT_NE(r.error().message.find("should be '3'"), std::string::npos);
  EXPECT_NE(r.error().message.find("got '4'"), std::string::npos);
}

TEST(BuyerId, EverySingleCharacterTypoIsCaught) {
  // Mod-31 weights catch every single substitution.
  const std::string good = "913301087458306077";
  for (std::size_t i = 0; i < 17; ++i) {
    for (char c : kCreditCodeAlphabet) {
      if (c == good[i] || (i >= 2 && i < 8 && (c < '0' || c > '9'))) {
        continue;
      }
      std::string typo = good;
      typo[i] = c;
      EXPECT_FALSE(validate_buyer_id(typo)) << typo;
    }
  }
}

TEST(BuyerId, AllowListSkipsOnlyTheCheckCharacter) {
  const std::vector<std::string> allow = {"91350100m000100y44"};
  auto r = validate_buyer_id("91350100M000100Y44", allow);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "91350100M000100Y44");
  // An allow-listed code still has to have the right shape.
  const std::vector<std::string> allow_bad = {"91350100M000100Y4"};
  EXPECT_FALSE(validate_buyer_id("91350100M000100Y4", allow_bad));
  // Not on the list: still refused.
  EXPECT_FALSE(validate_buyer_id("91350100M000100Y45", allow));
}

TEST(BuyerId, CheckCharIsZeroWhenSumIsMultipleOf31) {
  // First 17 all '0': sum 0 -> c = 31 -> '0'.
  EXPECT_EQ(credit_code_check_char("00000000000000000"), '0');
  EXPECT_TRUE(validate_buyer_id("000000000000000000"));
}

}  // namespace
}  // namespace lanegate::invoice
