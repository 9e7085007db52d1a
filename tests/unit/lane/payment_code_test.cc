// The rider-code reader's line splitting and token rule.
#include "lane/rider_token.h"

#include <gtest/gtest.h>

namespace lanegate::lane {
namespace {

std::vector<ReaderLineSplitter::Line> split(ReaderLineSplitter& s, std::string_view bytes) {
  s.feed(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  std::vector<ReaderLineSplitter::Line> out;
  while (auto l = s.next()) out.push_back(*l);
  return out;
}

TEST(RiderToken, AcceptsTheAccountIdAlphabetWithinItsLength) {
  EXPECT_EQ(*validate_rider_token("oLANEGATEdemo0001normal"), "oLANEGATEdemo0001normal");
  EXPECT_TRUE(validate_rider_token("12345678"));
  EXPECT_TRUE(validate_rider_token(std::string(64, 'a')));
  EXPECT_TRUE(validate_rider_token("a-b_c-D9Z0"));
}

TEST(RiderToken, RejectsWithTheReasonAndTheField) {
  auto s = validate_rider_token("1234567");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "token");
  EXPECT_EQ(rider_token_reject_reason(s.error()), "too_short");
  EXPECT_EQ(rider_token_reject_reason(validate_rider_token(std::string(65, 'a')).error()),
            "too_long");
  EXPECT_EQ(rider_token_reject_reason(validate_rider_token("oLANE GATE0001").error()),
            "bad_character");
  EXPECT_EQ(rider_token_reject_reason(validate_rider_token("oLANEGATE\xE7\xB2\xA4").error()),
            "bad_character");
  EXPECT_EQ(
      rider_token_reject_reason(validate_rider_token(std::string("oLANE\0GATE1", 11)).error()),
      "bad_character");
}

TEST(ReaderLines, CrLfCrAndLfEndALineAndEmptyLinesAreNotTokens) {
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
