#include "lane/plate.h"

#include <gtest/gtest.h>

#include <array>

namespace lanegate::lane {
namespace {

config::PlateRules default_rules() { return {}; }

std::array<std::uint16_t, 8> registers_of(std::string_view bytes) {
  std::array<std::uint16_t, 8> regs{};
  pack_text_registers(bytes, regs);
  return regs;
}

TEST(PlateValidate, AcceptsStandardAndNewEnergyPlates) {
  const auto rules = default_rules();
  EXPECT_TRUE(validate_plate("粤B12345", PlateColour::kBlue, rules));
  EXPECT_TRUE(validate_plate("京AZ9X8Y", PlateColour::kYellow, rules));
  EXPECT_TRUE(validate_plate("粤BD12345", PlateColour::kGreen, rules));        // small NEV
  EXPECT_TRUE(validate_plate("沪A12345F", PlateColour::kYellowGreen, rules));  // large NEV
  EXPECT_TRUE(validate_plate("粤BF1234", PlateColour::kBlue, rules));  // 7 chars with F is fine
}

TEST(PlateValidate, RejectsWithTheRuleThatFailed) {
  const auto rules = default_rules();
  auto reason = [&](std::string_view p, PlateColour c = PlateColour::kBlue) {
    auto r = validate_plate(p, c, rules);
    EXPECT_FALSE(r) << p;
    return r ? PlateReject::kRepeat : r.error().reason;
  };
  EXPECT_EQ(reason("港B12345"), PlateReject::kBadProvince);  // not one of the 31
  EXPECT_EQ(reason("XB12345"), PlateReject::kBadProvince);
  EXPECT_EQ(reason("粤B1234"), PlateReject::kBadLength);
  EXPECT_EQ(reason("粤B1234567"), PlateReject::kBadLength);
  EXPECT_EQ(reason("粤I12345"), PlateReject::kBadCharacter);  // I is never used
  EXPECT_EQ(reason("粤B1O345"), PlateReject::kBadCharacter);  // O is never used
  EXPECT_EQ(reason("粤b12345"), PlateReject::kBadCharacter);  // lower case
  EXPECT_EQ(reason("粤B12-45"), PlateReject::kBadCharacter);
  EXPECT_EQ(reason("粤B123456", PlateColour::kGreen), PlateReject::kBadCharacter);  // no D/F
  EXPECT_EQ(reason("粤BD12345", PlateColour::kBlue), PlateReject::kColourMismatch);
  EXPECT_EQ(reason("粤B12345", PlateColour::kGreen), PlateReject::kColourMismatch);
}

TEST(PlateValidate, HonoursConfiguredProvincesAndNewEnergySwitch) {
  config::PlateRules rules;
  rules.provinces = {"粤"};
  rules.allow_new_energy = false;
  EXPECT_TRUE(validate_plate("粤B12345", PlateColour::kBlue, rules));
  EXPECT_EQ(validate_plate("京B12345", PlateColour::kBlue, rules).error().reason,
            PlateReject::kBadProvince);
  EXPECT_EQ(validate_plate("粤BD12345", PlateColour::kGreen, rules).error().reason,
            PlateReject::kNewEnergyDisabled);
}

TEST(PlateDecode, DecodesUtf8AndGbkRegisterText) {
  auto utf8 = registers_of("粤B12345");
  auto r = decode_plate_text(utf8, 9, TextEncoding::kUtf8);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(*r, "粤B12345");

  auto gbk_bytes = encode_text("粤B12345", TextEncoding::kGbk);
  ASSERT_TRUE(gbk_bytes);
  EXPECT_EQ(gbk_bytes->size(), 8u);  // 2 bytes for 粤 + 6 ASCII
  auto gbk = registers_of(*gbk_bytes);
  auto g = decode_plate_text(gbk, 8, TextEncoding::kGbk);
  ASSERT_TRUE(g);
  EXPECT_EQ(*g, "粤B12345");
  // The same GBK bytes read as UTF-8 are not valid: rejected, never guessed.
  EXPECT_EQ(decode_plate_text(gbk, 8, TextEncoding::kUtf8).error().reason,
            PlateReject::kBadEncoding);
}

TEST(PlateDecode, RejectsBadLengthFieldAndTruncatedCharacters) {
  auto regs = registers_of("粤B12345");
  EXPECT_EQ(decode_plate_text(regs, 0, TextEncoding::kUtf8).error().reason,
            PlateReject::kBadLengthField);
  EXPECT_EQ(decode_plate_text(regs, 17, TextEncoding::kUtf8).error().reason,
            PlateReject::kBadLengthField);
  // Length cutting 粤 (3 UTF-8 bytes) in half.
  EXPECT_EQ(decode_plate_text(regs, 2, TextEncoding::kUtf8).error().reason,
            PlateReject::kBadEncoding);
  // Trailing NULs inside the length are padding.
  auto padded = decode_plate_text(regs, 12, TextEncoding::kUtf8);
  ASSERT_TRUE(padded);
  EXPECT_EQ(*padded, "粤B12345");
}

TEST(PlateColours, MapToProviderNames) {
  EXPECT_EQ(provider_colour_name(*colour_from_code(0)), "BLUE");
  EXPECT_EQ(provider_colour_name(*colour_from_code(1)), "YELLOW");
  EXPECT_EQ(provider_colour_name(*colour_from_code(2)), "BLACK");
  EXPECT_EQ(provider_colour_name(*colour_from_code(3)), "WHITE");
  EXPECT_EQ(provider_colour_name(*colour_from_code(4)), "GREEN");
  EXPECT_EQ(provider_colour_name(*colour_from_code(5)), "LIMEGREEN");
  EXPECT_EQ(provider_colour_name(*colour_from_code(6)), "LIMEGREEN");
  EXPECT_FALSE(colour_from_code(7));
}

TEST(PlateEncoding, ParsesNamesAndRefusesOthers) {
  EXPECT_EQ(*parse_encoding("UTF-8"), TextEncoding::kUtf8);
  EXPECT_EQ(*parse_encoding("gbk"), TextEncoding::kGbk);
  auto bad = parse_encoding("latin1");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "encoding");
}

}  // namespace
}  // namespace lanegate::lane
