// [plates] forms and new_energy_letters: defaults, good values, and each rule's error naming
// the key and its line (spec lane-devices.md "Plates (GA 36 civil plates)").
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

using testing::errors_of;
using testing::kMinimal;
using testing::line_of;

const std::vector<std::string> kAllForms = {
    "ordinary", "coach",     "trailer", "police",           "hong_kong",
    "macau",    "consulate", "embassy", "new_energy_small", "new_energy_large"};

std::string with_plates(std::string_view body) {
  return std::string(kMinimal) + "\n[plates]\n" + std::string(body);
}

Config load(std::string_view text) {
  auto loaded = load_string(text, "test.toml");
  EXPECT_TRUE(loaded) << testing::dump(loaded.error());
  return loaded ? *loaded : Config{};
}

TEST(PlatesConfigTest, DefaultsAcceptEveryFormAndAllTenClassLetters) {
  Config c = load(kMinimal);
  EXPECT_EQ(c.plates.forms, kAllForms);
  EXPECT_EQ(c.plates.new_energy_letters, "ABCDEFGHJK");
  EXPECT_TRUE(c.plates.allow_new_energy);
  // An empty [plates] table changes nothing.
  Config empty = load(with_plates(""));
  EXPECT_EQ(empty.plates.forms, kAllForms);
  EXPECT_EQ(empty.plates.new_energy_letters, "ABCDEFGHJK");
}

TEST(PlatesConfigTest, GoodValuesLoad) {
  Config c = load(with_plates(
      "forms = [\"ordinary\", \"new_energy_small\", \"embassy\"]\nnew_energy_letters = \"DF\"\n"));
  EXPECT_EQ(c.plates.forms, (std::vector<std::string>{"ordinary", "new_energy_small", "embassy"}));
  EXPECT_EQ(c.plates.new_energy_letters, "DF");

  std::string every = "forms = [";
  for (const std::string& f : kAllForms) {
    every += "\"" + f + "\", ";
  }
  every += "]\nnew_energy_letters = \"KJHGFEDCBA\"\nallow_new_energy = false\n";
  Config all = load(with_plates(every));
  EXPECT_EQ(all.plates.forms, kAllForms);
  EXPECT_EQ(all.plates.new_energy_letters, "KJHGFEDCBA");
  EXPECT_FALSE(all.plates.allow_new_energy);
}

TEST(PlatesConfigTest, FormsMustBeKnownNamesWithoutDuplicates) {
  std::string text = with_plates(
      "forms = [\"ordinary\",\n  \"Ordinary\",\n  \"hongkong\",\n  \"police\",\n  \"ordinary\"]\n");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 3u) << testing::dump(errors);
  int first = line_of(text, "forms");
  EXPECT_CONFIG_ERROR(errors, "plates.forms[1]", first + 1, "must be one of: ordinary, coach");
  EXPECT_CONFIG_ERROR(errors, "plates.forms[2]", first + 2, "(got \"hongkong\")");
  EXPECT_CONFIG_ERROR(errors, "plates.forms[4]", first + 4, "duplicate form \"ordinary\"");
}

TEST(PlatesConfigTest, FormsMustNotBeEmptyOrOtherThanStrings) {
  std::string text = with_plates("forms = []\n");
  EXPECT_CONFIG_ERROR(errors_of(text), "plates.forms", line_of(text, "forms"),
                      "at least one plate form");
  std::string wrong = with_plates("forms = \"ordinary\"\n");
  auto errors = errors_of(wrong);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].key.rfind("plates.forms", 0), 0u) << testing::dump(errors);
}

TEST(PlatesConfigTest, NewEnergyLettersAreDistinctClassLetters) {
  struct Case {
    std::string_view value;
    std::string_view rule;
  };
  for (const Case& c :
       {Case{"\"\"", "at least one new-energy class letter"},
        Case{"\"DI\"", "only the class letters ABCDEFGHJK"},
        Case{"\"df\"", "only the class letters ABCDEFGHJK"},
        Case{"\"D F\"", "only the class letters ABCDEFGHJK"},
        Case{"\"DFD\"", "duplicate class letter \"D\""}, Case{"\"L\"", "(got \"L\")"}}) {
    std::string text =
        with_plates("allow_new_energy = true\nnew_energy_letters = " + std::string(c.value) + "\n");
    auto errors = errors_of(text);
    ASSERT_EQ(errors.size(), 1u) << c.value << "\n" << testing::dump(errors);
    EXPECT_CONFIG_ERROR(errors, "plates.new_energy_letters", line_of(text, "new_energy_letters"),
                        c.rule);
  }
  auto errors = errors_of(with_plates("new_energy_letters = [\"D\"]\n"));
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_EQ(errors[0].key, "plates.new_energy_letters");
}

}  // namespace
}  // namespace lanegate::config
