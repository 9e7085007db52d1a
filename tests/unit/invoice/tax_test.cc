// The exact tax split, checked for every total a passenger could plausibly pay.
#include "invoice/tax.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/defaults.h"

namespace lanegate::invoice {
namespace {

Money yuan(std::string_view s) { return *Money::parse(s); }

TEST(SplitTax, SpecWorkedExamples) {
  auto a = split_tax(yuan("19.19"), 3);
  EXPECT_EQ(a.excl, yuan("18.63"));
  EXPECT_EQ(a.tax, yuan("0.56"));
  auto b = split_tax(yuan("5.61"), 3);
  EXPECT_EQ(b.excl, yuan("5.45"));
  EXPECT_EQ(b.tax, yuan("0.16"));
  auto c = split_tax(yuan("9.00"), 9);
  EXPECT_EQ(c.excl, yuan("8.26"));
  EXPECT_EQ(c.tax, yuan("0.74"));
}

TEST(SplitTax, ZeroRateAndZeroTotal) {
  EXPECT_EQ(split_tax(yuan("12.34"), 0).excl, yuan("12.34"));
  EXPECT_EQ(split_tax(yuan("12.34"), 0).tax, Money::zero());
  EXPECT_EQ(split_tax(Money::zero(), 13).excl, Money::zero());
  EXPECT_EQ(split_tax(Money::zero(), 13).tax, Money::zero());
}

TEST(SplitTax, RedLineMirrorsBlueLine) {
  auto blue = split_tax(yuan("19.19"), 3);
  auto red = split_tax(yuan("-19.19"), 3);
  EXPECT_EQ(red.excl, *blue.excl.negate());
  EXPECT_EQ(red.tax, *blue.tax.negate());
}

TEST(SplitTax, HugeTotalDoesNotOverflow) {
  const Money big = Money::from_fen(INT64_MAX);
  auto s = split_tax(big, 13);
  EXPECT_EQ(*s.excl.add(s.tax), big);
  EXPECT_GT(s.excl, s.tax);
}

// Independent oracle: walk the totals upwards and keep the candidate excl that minimises
// |100*total - excl*(100+p)|, preferring the larger excl on a tie (round half up). Excl is
// non-decreasing in the total, so the candidate only moves up. No division at all: a
// genuinely different computation from split_tax's closed formula.
TEST(SplitTax, ExhaustiveAgainstNearestRationalSearch) {
  constexpr std::int64_t kMaxFen = 200'000;  // 2,000.00 yuan
  for (int p : {1, 3, 5, 6, 9, 13}) {
    const std::int64_t d = 100 + p;
    std::int64_t e = 0;
    std::int64_t mismatches = 0;
    for (std::int64_t t = 1; t <= kMaxFen; ++t) {
      const std::int64_t target = 100 * t;
      auto err = [&](std::int64_t x) {
        const std::int64_t v = target - x * d;
        return v < 0 ? -v : v;
      };
      while (err(e + 1) <= err(e)) {  // <=: a tie moves to the larger excl
        ++e;
      }
      const TaxSplit s = split_tax(Money::from_fen(t), p);
      if (s.excl.fen() != e || s.tax.fen() != t - e) {
        if (++mismatches <= 5) {
          ADD_FAILURE() << "total " << t << " fen at " << p << "%: split " << s.excl.fen() << "+"
                        << s.tax.fen() << ", expected excl " << e;
        }
      }
      // Every split must pass the platforms' tolerance check.
      if (!tax_within_tolerance(s.excl, s.tax, p)) {
        ADD_FAILURE() << "total " << t << " fen at " << p << "% outside 0.06 yuan tolerance";
      }
    }
    EXPECT_EQ(mismatches, 0) << "rate " << p;
  }
}

TEST(TaxTolerance, BoundaryIsSixFenExactly) {
  // excl 100.00 at 3% -> exact tax 3.00; 3.06 and 2.94 pass, 3.07 and 2.93 fail.
  EXPECT_TRUE(tax_within_tolerance(yuan("100.00"), yuan("3.06"), 3));
  EXPECT_TRUE(tax_within_tolerance(yuan("100.00"), yuan("2.94"), 3));
  EXPECT_FALSE(tax_within_tolerance(yuan("100.00"), yuan("3.07"), 3));
  EXPECT_FALSE(tax_within_tolerance(yuan("100.00"), yuan("2.93"), 3));
}

TEST(TaxRules, DefaultsFromSpecWhenConfigEmpty) {
  config::InvoicingSection section;
  auto rules = effective_tax_rules(section);
  auto taxi = find_tax_rule(rules, "taxi");
  ASSERT_TRUE(taxi);
  EXPECT_EQ(taxi->code, "3010101020203000000");
  EXPECT_EQ(taxi->rate_percent, 3);
  EXPECT_EQ(taxi->favoured_policy_flag, "08");
  auto parking = find_tax_rule(rules, "parking");
  ASSERT_TRUE(parking);
  EXPECT_EQ(parking->code, "3040502020200000000");
  EXPECT_EQ(parking->rate_percent, 9);
  EXPECT_EQ(parking->item_name, "*经营租赁*停车费");
  for (const auto& r : rules) {
    EXPECT_TRUE(validate_tax_rule(r)) << r.service;
  }
}

// One source: the invoicing module's defaults are config/defaults.h's, rule for rule.
TEST(TaxRules, DefaultsAreConfigs) {
  const std::vector<config::TaxRule> from_config = config::default_tax_rules();
  const auto here = default_tax_rules();
  ASSERT_EQ(here.size(), from_config.size());
  for (std::size_t i = 0; i < here.size(); ++i) {
    EXPECT_EQ(here[i].service, from_config[i].service);
    EXPECT_EQ(here[i].item_name, from_config[i].item_name);
    EXPECT_EQ(here[i].code, from_config[i].code);
    EXPECT_EQ(here[i].rate_percent, from_config[i].rate_percent);
    EXPECT_EQ(here[i].favoured_policy_flag, from_config[i].favoured_policy_flag);
    EXPECT_EQ(here[i].survey_answer_type, from_config[i].survey_answer_type);
  }
}

// Tolls are issued by the national toll e-bill platform (spec "Tolls"): no rule, and the
// refusal says so instead of asking for a [[invoicing.tax]] that the config refuses.
TEST(TaxRules, NoTollRuleAndTheRefusalSaysWhoIssuesTolls) {
  auto toll = find_tax_rule(default_tax_rules(), "toll");
  ASSERT_FALSE(toll);
  EXPECT_EQ(toll.error().code, Errc::kNotFound);
  EXPECT_NE(toll.error().message.find("national toll e-bill platform"), std::string::npos)
      << toll.error().message;
  EXPECT_EQ(toll.error().message.find("configure [[invoicing.tax]]"), std::string::npos)
      << toll.error().message;
  config::TaxRule rule{"toll", "*经营租赁*通行费", "3040502020301000000", 3, "08"};
  auto refused = validate_tax_rule(rule);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().field, "service");
  EXPECT_NE(refused.error().message.find("specs/e-invoice.md \"Tolls\""), std::string::npos);
}

TEST(TaxRules, AZeroRateRuleSplitsWithoutTax) {
  config::TaxRule exempt{"parking", "*经营租赁*停车费", "3040502020200000000", 0, "03"};
  ASSERT_TRUE(validate_tax_rule(exempt));
  const TaxSplit s = split_tax(yuan("19.19"), exempt.rate_percent);
  EXPECT_EQ(s.excl, yuan("19.19"));
  EXPECT_EQ(s.tax, Money::zero());
  // Rate 0 needs its reason on the line.
  exempt.favoured_policy_flag = "";
  auto refused = validate_tax_rule(exempt);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().field, "favoured_policy_flag");
  EXPECT_NE(refused.error().message.find("03 (免税) or 04 (不征税)"), std::string::npos);
}

TEST(TaxRules, ValidationAppliesTheTaxpayersRow) {
  config::TaxRule one{"taxi", "*运输服务*客运服务费", "3010101020203000000", 1, ""};
  auto general = validate_tax_rule(one);
  ASSERT_FALSE(general);
  EXPECT_EQ(general.error().field, "rate_percent");
  EXPECT_NE(general.error().message.find("taxi rates are 9 or 3 for a general taxpayer"),
            std::string::npos)
      << general.error().message;
  auto small = validate_tax_rule(one, config::Taxpayer::kSmallScale);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().field, "survey_answer_type");
  one.survey_answer_type = "3";
  EXPECT_TRUE(validate_tax_rule(one, config::Taxpayer::kSmallScale));
}

// The loader and validate_tax_rule() judge rate, flag and survey answer by one table: over a
// grid of rules, a rule loads exactly when it validates.
TEST(TaxRules, LoaderAndValidatorAgree) {
  constexpr std::string_view kSite = R"([gateway]
id = "lot1"
site_name = "Test lot"
[provider]
mchid = "1900000001"
appid = "wxtest"
merchant_serial_no = "ABCDEF"
merchant_private_key_file = "/keys/merchant.key"
apiv3_key_file = "/keys/apiv3.key"
notify_url = "https://gw.example.cn/notify"
[[lane]]
id = "cab"
mode = "taxi"
meter = "m1"
[[meter]]
id = "m1"
device = "/dev/ttyS1"
)";
  int accepted = 0;
  int refused = 0;
  for (auto [taxpayer, name] : {std::pair(config::Taxpayer::kGeneral, "general"),
                                std::pair(config::Taxpayer::kSmallScale, "small_scale")}) {
    for (const char* service : {"taxi", "parking"}) {
      for (int rate : {0, 1, 3, 5, 6, 9, 13}) {
        for (const char* flag : {"", "01", "02", "03", "04", "08", "09", "12"}) {
          for (const char* survey : {"", "1", "3", "4"}) {
            config::TaxRule rule{service, "*名称*费", "3040502020200000000", rate, flag, survey};
            const bool valid = validate_tax_rule(rule, taxpayer).has_value();
            const std::string text =
                std::string(kSite) + "[invoicing]\ntaxpayer = \"" + name +
                "\"\n[[invoicing.tax]]\nservice = \"" + service +
                "\"\nitem_name = \"*名称*费\"\ncode = \"3040502020200000000\"\nrate_percent = " +
                std::to_string(rate) + "\nfavoured_policy_flag = \"" + flag +
                "\"\nsurvey_answer_type = \"" + survey + "\"\n";
            auto loaded = config::load_string(text, "grid.toml");
            EXPECT_EQ(loaded.has_value(), valid)
                << name << " " << service << " " << rate << "% flag \"" << flag << "\" survey \""
                << survey << "\"";
            (valid ? accepted : refused) += 1;
          }
        }
      }
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_GT(refused, 0);
}

TEST(TaxRules, ConfiguredRulesReplaceDefaults) {
  config::InvoicingSection section;
  section.tax.push_back({"parking", "*经营租赁*停车费", "3040502020200000000", 5, "09"});
  auto rules = effective_tax_rules(section);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(find_tax_rule(rules, "parking")->rate_percent, 5);
  auto taxi = find_tax_rule(rules, "taxi");
  ASSERT_FALSE(taxi);
  EXPECT_EQ(taxi.error().code, Errc::kNotFound);
  EXPECT_NE(taxi.error().message.find("taxi"), std::string::npos);
}

TEST(TaxRules, ValidationNamesTheField) {
  config::TaxRule r{"parking", "停车费", "3040502020200000000", 9, ""};
  EXPECT_EQ(validate_tax_rule(r).error().field, "item_name");
  r.item_name = "*经营租赁*停车费";
  r.code = "30405020202";
  EXPECT_EQ(validate_tax_rule(r).error().field, "code");
  r.code = "3040502020200000000";
  r.rate_percent = 18;
  EXPECT_EQ(validate_tax_rule(r).error().field, "rate_percent");
  r.rate_percent = 9;
  r.favoured_policy_flag = "07";
  EXPECT_EQ(validate_tax_rule(r).error().field, "favoured_policy_flag");
}

}  // namespace
}  // namespace lanegate::invoice
