#include "lane/plate.h"

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/metrics.h"

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
  // Lower case is upper-cased by normalisation (spec "Normalise first"), no longer refused.
  auto lower = validate_plate("粤b12345", PlateColour::kBlue, rules);
  ASSERT_TRUE(lower) << lower.error().detail;
  EXPECT_EQ(*lower, "粤B12345");
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
  // '-' is a separator now (removed by normalisation): 粤B12-45 is 粤B1245, too short.
  EXPECT_EQ(reason("粤B12-45"), PlateReject::kBadLength);
  EXPECT_EQ(reason("粤B12_45"), PlateReject::kBadCharacter);
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

// ---- Plate forms (spec lane-devices.md "Plates (GA 36 civil plates)") ----

using Colour = std::optional<PlateColour>;
constexpr Colour kBlue = PlateColour::kBlue;
constexpr Colour kYellow = PlateColour::kYellow;
constexpr Colour kBlack = PlateColour::kBlack;
constexpr Colour kWhite = PlateColour::kWhite;
constexpr Colour kGreen = PlateColour::kGreen;
constexpr Colour kYellowGreen = PlateColour::kYellowGreen;
constexpr Colour kLimeGreen = PlateColour::kLimeGreen;

struct Accepted {
  std::string_view text;
  Colour colour;
  PlateForm form;
  std::string_view plate;  // normalised
};

TEST(PlateForms, AcceptsEveryCivilFormInItsColours) {
  const std::vector<Accepted> cases = {
      {"粤B12345", kBlue, PlateForm::kOrdinary, "粤B12345"},
      {"京AZ9X8Y", kYellow, PlateForm::kOrdinary, "京AZ9X8Y"},
      {"沪A1234X", kBlack, PlateForm::kOrdinary, "沪A1234X"},  // foreign-related vehicle
      {"粤B1234学", kYellow, PlateForm::kCoach, "粤B1234学"},
      {"京A0A01学", kYellow, PlateForm::kCoach, "京A0A01学"},
      {"粤B1234挂", kYellow, PlateForm::kTrailer, "粤B1234挂"},
      {"鲁QA123挂", kYellow, PlateForm::kTrailer, "鲁QA123挂"},
      {"粤A1234警", kWhite, PlateForm::kPolice, "粤A1234警"},
      {"京O0123警", kWhite, PlateForm::kPolice, "京O0123警"},  // O: police authority letter
      {"粤Z1234港", kBlack, PlateForm::kHongKong, "粤Z1234港"},
      {"粤ZA123港", kBlack, PlateForm::kHongKong, "粤ZA123港"},
      {"粤Z1234澳", kBlack, PlateForm::kMacau, "粤Z1234澳"},
      {"粤Z0C12澳", kBlack, PlateForm::kMacau, "粤Z0C12澳"},
      {"沪A1234领", kBlack, PlateForm::kConsulate, "沪A1234领"},
      {"粤A0012领", kBlack, PlateForm::kConsulate, "粤A0012领"},
      {"使123456", kBlack, PlateForm::kEmbassy, "使123456"},
      {"使014578", kBlack, PlateForm::kEmbassy, "使014578"},
      {"123456使", kBlack, PlateForm::kEmbassy, "使123456"},  // reader puts 使 last
      {"粤BD12345", kGreen, PlateForm::kNewEnergySmall, "粤BD12345"},
      {"粤BFA1234", kGreen, PlateForm::kNewEnergySmall, "粤BFA1234"},
      {"京AA12345", kGreen, PlateForm::kNewEnergySmall, "京AA12345"},  // 2021 letters
      {"粤BK12345", kGreen, PlateForm::kNewEnergySmall, "粤BK12345"},
      {"沪A12345F", kYellowGreen, PlateForm::kNewEnergyLarge, "沪A12345F"},
      {"粤B12345D", kLimeGreen, PlateForm::kNewEnergyLarge, "粤B12345D"},
      {"京A12345G", kYellowGreen, PlateForm::kNewEnergyLarge, "京A12345G"},
  };
  const config::PlateRules rules;
  for (const Accepted& c : cases) {
    auto r = classify_plate(c.text, c.colour, rules);
    ASSERT_TRUE(r) << c.text << ": " << reject_name(r.error().reason) << " " << r.error().detail;
    EXPECT_EQ(r->plate, c.plate) << c.text;
    EXPECT_EQ(r->form, c.form) << c.text;
    EXPECT_EQ(r->colour, *c.colour) << c.text;
    // Idempotent: the returned plate classifies to itself.
    auto again = classify_plate(r->plate, c.colour, rules);
    ASSERT_TRUE(again) << c.text;
    EXPECT_EQ(again->plate, r->plate);
    EXPECT_EQ(again->form, r->form);
    // validate_plate is the same decision, returning the text.
    auto v = validate_plate(c.text, *c.colour, rules);
    ASSERT_TRUE(v) << c.text;
    EXPECT_EQ(*v, c.plate);
  }
}

struct Refused {
  std::string_view text;
  Colour colour;
  PlateReject reason;
};

void expect_refused(const std::vector<Refused>& cases, const config::PlateRules& rules) {
  for (const Refused& c : cases) {
    auto r = classify_plate(c.text, c.colour, rules);
    ASSERT_FALSE(r) << c.text << " accepted as " << form_name(r->form);
    EXPECT_EQ(reject_name(r.error().reason), reject_name(c.reason))
        << c.text << ": " << r.error().detail;
    // Details end up in logs: never the plate.
    EXPECT_EQ(r.error().detail.find(c.text), std::string::npos) << r.error().detail;
    EXPECT_EQ(r.error().detail.find(normalise_plate(c.text)), std::string::npos)
        << r.error().detail;
  }
}

TEST(PlateForms, RefusesWhatBordersEachForm) {
  const config::PlateRules rules;
  expect_refused(
      {
          // Special character in the wrong place.
          {"粤B12警34", kWhite, PlateReject::kBadCharacter},
          {"粤学12345", kYellow, PlateReject::kBadCharacter},
          {"警粤B1234", kWhite, PlateReject::kBadProvince},
          {"粤B123领4", kBlack, PlateReject::kBadCharacter},
          {"粤B1234使", kBlack, PlateReject::kBadCharacter},  // 使 only with six digits
          {"使12345A", kBlack, PlateReject::kBadCharacter},
          {"使1234567", kBlack, PlateReject::kBadProvince},  // 8 characters
                                                             // I and O: never serial characters; I
                                                             // never an authority letter.
          {"粤B1234I", kBlue, PlateReject::kBadCharacter},
          {"粤BO234学", kYellow, PlateReject::kBadCharacter},
          {"粤A12I4警", kWhite, PlateReject::kBadCharacter},
          {"粤I1234挂", kYellow, PlateReject::kBadCharacter},
          {"粤BDO1234", kGreen, PlateReject::kBadCharacter},
          // Colours the form does not have.
          {"粤B12345", kWhite, PlateReject::kColourMismatch},
          {"粤B12345", kYellowGreen, PlateReject::kColourMismatch},
          {"粤B1234学", kBlue, PlateReject::kColourMismatch},
          {"粤B1234挂", kBlack, PlateReject::kColourMismatch},
          {"粤A1234警", kBlue, PlateReject::kColourMismatch},
          {"粤Z1234港", kBlue, PlateReject::kColourMismatch},
          {"粤Z1234澳", kYellow, PlateReject::kColourMismatch},
          {"沪A1234领", kWhite, PlateReject::kColourMismatch},
          {"使123456", kBlue, PlateReject::kColourMismatch},
          {"粤BD12345", kYellowGreen, PlateReject::kColourMismatch},
          {"粤BD12345", kLimeGreen, PlateReject::kColourMismatch},
          {"沪A12345F", kGreen, PlateReject::kColourMismatch},
          {"沪A12345F", kBlue, PlateReject::kColourMismatch},
          // 港/澳 are 粤Z only.
          {"京Z1234港", kBlack, PlateReject::kBadProvince},
          {"粤B1234港", kBlack, PlateReject::kBadCharacter},
          {"粤A1234澳", kBlack, PlateReject::kBadCharacter},
          {"港B12345", kBlack, PlateReject::kBadProvince},
          // New-energy class letters: ABCDEFGHJK only.
          {"粤BL12345", kGreen, PlateReject::kBadCharacter},
          {"粤B12345Z", kYellowGreen, PlateReject::kBadCharacter},
          // 7/8 length confusion.
          {"粤BD1234", kGreen, PlateReject::kColourMismatch},  // 7: an ordinary plate
          {"粤B123456", kGreen, PlateReject::kBadCharacter},   // 8 without a class letter
          {"粤B1234学5", kYellow, PlateReject::kBadCharacter},
          {"粤Z12345港", kBlack, PlateReject::kBadCharacter},
          {"粤BD123456", kGreen, PlateReject::kBadLength},
          {"粤Z123港", kBlack, PlateReject::kBadLength},
          {"使12345", kBlack, PlateReject::kBadLength},
          // Military-style plates are not provincial plates.
          {"北K12345", kWhite, PlateReject::kBadProvince},
          {"KA12345", kWhite, PlateReject::kBadProvince},
      },
      rules);
}

TEST(PlateForms, RoutesSpecialPlatesToManualHandling) {
  const config::PlateRules rules;
  expect_refused(
      {
          {"粤B1234临", kBlue, PlateReject::kManualOnly},
          {"临A12345", kBlue, PlateReject::kManualOnly},
          {"粤A123应急", kBlue, PlateReject::kManualOnly},
          {"粤A1234试", kBlue, PlateReject::kManualOnly},
          {"粤B1234超", kYellow, PlateReject::kManualOnly},
          {"WJ粤12345", kWhite, PlateReject::kManualOnly},
          {"wj 01234", kWhite, PlateReject::kManualOnly},  // normalised first
          {"WJ0123X", std::nullopt, PlateReject::kManualOnly},
          {"民航12345", kBlue, PlateReject::kManualOnly},
          {"民航A1234", std::nullopt, PlateReject::kManualOnly},
      },
      rules);
}

TEST(PlateForms, EmbassyPlatesInBothOrdersAnyProvinceSet) {
  config::PlateRules rules;
  rules.provinces = {"湘"};  // embassy plates have no province
  for (std::string_view text : {"使123456", "123456使", "使·123456", "123 456 使"}) {
    auto r = classify_plate(text, kBlack, rules);
    ASSERT_TRUE(r) << text << ": " << r.error().detail;
    EXPECT_EQ(r->plate, "使123456");
    EXPECT_EQ(r->form, PlateForm::kEmbassy);
  }
  EXPECT_EQ(classify_plate("粤Z1234港", kBlack, rules).error().reason, PlateReject::kBadProvince);
  rules.forms = {"ordinary"};
  EXPECT_EQ(classify_plate("使123456", kBlack, rules).error().reason, PlateReject::kFormDisabled);
}

TEST(PlateForms, NormalisesSeparatorsAndCase) {
  for (std::string_view text : {"粤B·12345", "粤 b12345", "粤B-12345", "粤B•12345", "粤B・12345",
                                "粤\u3000B12345", "粤B.12345", " 粤-b·1 2 3 4 5 "}) {
    EXPECT_EQ(normalise_plate(text), "粤B12345") << text;
    auto r = classify_plate(text, kBlue, config::PlateRules{});
    ASSERT_TRUE(r) << text << ": " << r.error().detail;
    EXPECT_EQ(r->plate, "粤B12345");
  }
  EXPECT_EQ(normalise_plate("粤bd·12345"), "粤BD12345");
  EXPECT_EQ(normalise_plate(""), "");
  // Invalid UTF-8 is left for the validator, which refuses it; a separator removed between
  // stray bytes must not join them into 粤 (E7 B2 A4).
  EXPECT_EQ(normalise_plate("\xff"
                            "b"),
            "\xff"
            "B");
  EXPECT_EQ(classify_plate("\xE7\u00B7\xB2\xA4"
                           "B12345",
                           kBlue, {})
                .error()
                .reason,
            PlateReject::kBadEncoding);
  EXPECT_EQ(classify_plate("粤B1234\xff", kBlue, {}).error().reason, PlateReject::kBadEncoding);
}

TEST(PlateForms, WithoutAColourTakesTheFormsOnlyColour) {
  const config::PlateRules rules;
  const std::vector<std::pair<std::string_view, PlateColour>> cases = {
      {"粤B1234学", PlateColour::kYellow},      {"粤B1234挂", PlateColour::kYellow},
      {"粤A1234警", PlateColour::kWhite},       {"粤Z1234港", PlateColour::kBlack},
      {"粤Z1234澳", PlateColour::kBlack},       {"沪A1234领", PlateColour::kBlack},
      {"123456使", PlateColour::kBlack},        {"粤BD12345", PlateColour::kGreen},
      {"沪A12345F", PlateColour::kYellowGreen},
  };
  for (const auto& [text, colour] : cases) {
    auto r = classify_plate(text, std::nullopt, rules);
    ASSERT_TRUE(r) << text << ": " << r.error().detail;
    EXPECT_EQ(r->colour, colour) << text;
  }
  EXPECT_EQ(provider_colour_name(classify_plate("沪A12345F", std::nullopt, rules)->colour),
            "LIMEGREEN");
  // Ordinary plates are blue, yellow or black: no guess.
  auto ordinary = classify_plate("粤B12345", std::nullopt, rules);
  ASSERT_FALSE(ordinary);
  EXPECT_EQ(ordinary.error().reason, PlateReject::kUnknownColour);
  EXPECT_EQ(reject_name(ordinary.error().reason), "unknown_colour");
}

TEST(PlateForms, RegionSwitchesFormsAndClassLetters) {
  const std::vector<std::pair<std::string_view, Colour>> one_per_form = {
      {"粤B12345", kBlue},         {"粤B1234学", kYellow}, {"粤B1234挂", kYellow},
      {"粤A1234警", kWhite},       {"粤Z1234港", kBlack},  {"粤Z1234澳", kBlack},
      {"沪A1234领", kBlack},       {"使123456", kBlack},   {"粤BD12345", kGreen},
      {"沪A12345F", kYellowGreen},
  };
  const std::vector<std::string> all = config::PlateRules{}.forms;
  ASSERT_EQ(all.size(), one_per_form.size());
  for (std::size_t off = 0; off < all.size(); ++off) {
    config::PlateRules rules;
    rules.forms.erase(rules.forms.begin() + static_cast<std::ptrdiff_t>(off));
    for (std::size_t i = 0; i < one_per_form.size(); ++i) {
      const auto& [text, colour] = one_per_form[i];
      auto r = classify_plate(text, colour, rules);
      if (i == off) {
        ASSERT_FALSE(r) << text << " with " << all[off] << " off";
        EXPECT_EQ(r.error().reason, PlateReject::kFormDisabled);
        EXPECT_EQ(reject_name(r.error().reason), "form_disabled");
      } else {
        EXPECT_TRUE(r) << text << " with " << all[off] << " off";
      }
    }
  }

  config::PlateRules df;
  df.new_energy_letters = "DF";
  expect_refused({{"粤BA12345", kGreen, PlateReject::kBadCharacter},
                  {"粤B12345A", kYellowGreen, PlateReject::kBadCharacter},
                  {"京AK12345", kGreen, PlateReject::kBadCharacter}},
                 df);
  EXPECT_TRUE(classify_plate("粤BD12345", kGreen, df));
  EXPECT_TRUE(classify_plate("沪A12345F", kLimeGreen, df));

  config::PlateRules no_ne;
  no_ne.allow_new_energy = false;
  expect_refused({{"粤BD12345", kGreen, PlateReject::kNewEnergyDisabled},
                  {"沪A12345F", kYellowGreen, PlateReject::kNewEnergyDisabled}},
                 no_ne);
  EXPECT_TRUE(classify_plate("粤B12345", kBlue, no_ne));
}

TEST(PlateForms, FormNamesRoundTripAndMatchTheConfigDefaults) {
  const std::vector<std::string> names = config::PlateRules{}.forms;
  ASSERT_EQ(names.size(), 10u);
  for (const std::string& name : names) {
    auto form = parse_form(name);
    ASSERT_TRUE(form) << name;
    EXPECT_EQ(form_name(*form), name);
  }
  EXPECT_EQ(form_name(PlateForm::kHongKong), "hong_kong");
  EXPECT_EQ(form_name(PlateForm::kNewEnergyLarge), "new_energy_large");
  auto bad = parse_form("Ordinary");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "form");
  EXPECT_EQ(reject_name(PlateReject::kManualOnly), "manual_only");
}

TEST(PlateForms, CountsRejectionsByDeviceAndReason) {
  auto value = [](std::string_view reason) {
    return std::max<std::int64_t>(
        0, metrics::Registry::global().value(
               "lanegate_plate_rejected_total",
               {{"device", "plate-test-cam"}, {"reason", std::string(reason)}}));
  };
  const auto before = value("manual_only");
  const auto other = value("form_disabled");
  count_plate_rejection("plate-test-cam", PlateReject::kManualOnly);
  count_plate_rejection("plate-test-cam", PlateReject::kManualOnly);
  EXPECT_EQ(value("manual_only"), before + 2);
  EXPECT_EQ(value("form_disabled"), other);
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
