// Text helpers shared by the modules: limits are counted in code points, cuts never split a
// UTF-8 sequence, and control bytes are found wherever they hide.
#include "core/text.h"

#include <gtest/gtest.h>

namespace lanegate {
namespace {

TEST(Text, CodePointsCountCharactersNotBytes) {
  EXPECT_EQ(code_points(""), 0u);
  EXPECT_EQ(code_points("abc"), 3u);
  EXPECT_EQ(code_points("粤B12345"), 7u);   // 粤 is 3 bytes
  EXPECT_EQ(code_points("\xF0\x9F\x9A\x95"), 1u);  // a 4-byte emoji
}

TEST(Text, APrefixIsCutBetweenCharacters) {
  EXPECT_EQ(first_code_points("车牌粤B", 2), "车牌");
  EXPECT_EQ(first_code_points("车牌粤B", 4), "车牌粤B");
  EXPECT_EQ(first_code_points("车牌粤B", 10), "车牌粤B");
  EXPECT_EQ(first_code_points("abc", 0), "");
  // A sequence cut short at the end counts as one more character, whole or not at all.
  EXPECT_EQ(first_code_points("a\xE8\xBD", 1), "a");
  EXPECT_EQ(first_code_points("a\xE8\xBD", 2), "a\xE8\xBD");
}

TEST(Text, ControlBytesAreFound) {
  EXPECT_FALSE(has_control_chars("停车费 粤B12345"));
  EXPECT_TRUE(has_control_chars("a\nb"));
  EXPECT_TRUE(has_control_chars(std::string_view("a\0b", 3)));
  EXPECT_TRUE(has_control_chars("\x1b[31m"));
  EXPECT_TRUE(has_control_chars("x\x7f"));
}

}  // namespace
}  // namespace lanegate
