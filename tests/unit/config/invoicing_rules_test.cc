// [invoicing] rules for 数电 issuing (issue 17): the clerk, the signature encoding, the
// seller's VAT status, the platform origin, tolls (never issued here), the rate and
// favoured-policy flag table, the survey answer, and the 06 lease data of a parking lot.
// Each test asserts what an operator reads: the key, the line and the rule.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "config/defaults.h"
#include "config/tax_rules.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

using testing::edit;
using testing::errors_of;
using testing::kMinimal;
using testing::line_of;
using testing::with_exit_lane;
using testing::with_taxi_lane;

// kMinimal plus [invoicing] switched on, with `keys` added to the [invoicing] table and
// `tables` after it.
std::string invoicing(std::string_view keys = "", std::string_view tables = "") {
  return std::string(kMinimal) +
         "\n[invoicing]\nenabled = true\nbase_url = \"https://sdk.nuonuo.com\"\napp_key = \"k\"\n"
         "app_secret_file = \"/keys/inv.secret\"\naccess_token_file = \"/keys/inv.token\"\n"
         "seller_name = \"S\"\nseller_tax_id = \"91350100M000100Y43\"\nclerk = \"王敏\"\n" +
         std::string(keys) + "\n" + std::string(tables);
}

constexpr std::string_view kLease =
    "[invoicing.parking]\nproperty_address = \"广东省深圳市南山区\"\n"
    "detail_address = \"科技南十二路18号\"\narea_unit = 2\n";

std::string parking_rule(int rate, std::string_view extra = "") {
  return "[[invoicing.tax]]\nservice = \"parking\"\nitem_name = \"*经营租赁*停车费\"\n"
         "code = \"3040502020200000000\"\nrate_percent = " +
         std::to_string(rate) + "\n" + std::string(extra);
}

// ---- tolls ------------------------------------------------------------------------------

TEST(InvoicingRulesTest, ATollTaxRuleIsRefusedWithWhoIssuesTolls) {
  std::string text = std::string(kMinimal) +
                     "\n[[invoicing.tax]]\nservice = \"toll\"\nitem_name = \"*经营租赁*通行费\"\n"
                     "code = \"3040502020301000000\"\nrate_percent = 3\n"
                     "favoured_policy_flag = \"08\"\n";
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[0].service", line_of(text, "\"toll\""),
                      "toll invoices are issued by the national toll e-bill platform "
                      "(www.txffp.com / the 票根 app), never by lanegate");
  EXPECT_NE(errors[0].rule.find("specs/e-invoice.md \"Tolls\""), std::string::npos)
      << errors[0].rule;
}

TEST(InvoicingRulesTest, OnlyTaxiAndParkingAreServices) {
  std::string text = std::string(kMinimal) + "\n" + parking_rule(9);
  text = edit(text, "service = \"parking\"", "service = \"ferry\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "invoicing.tax[0].service", line_of(text, "\"ferry\""),
                      "must be one of: taxi, parking (got \"ferry\")");
}

TEST(InvoicingRulesTest, TheDefaultsHaveNoTollRule) {
  EXPECT_FALSE(default_tax_rule("toll"));
  auto loaded = load_string(invoicing(), "test.toml");
  ASSERT_TRUE(loaded) << testing::dump(loaded.error());
  ASSERT_EQ(loaded->invoicing.tax.size(), 2u);
  for (const TaxRule& r : loaded->invoicing.tax) {
    EXPECT_NE(r.service, "toll");
  }
}

// ---- the rate and favoured-policy flag table ------------------------------------------

struct Cell {
  const char* name;
  const char* taxpayer;
  const char* service;
  int rate;
  std::optional<const char*> flag;    // nullopt: the key is left out
  std::optional<const char*> survey;  // nullopt: the key is left out
  // Refused: the key (after invoicing.tax[0].) and a part of the rule. Accepted: key ""
  // and the flag the rule ends up with.
  const char* key;
  const char* expect;
};

std::ostream& operator<<(std::ostream& os, const Cell& c) { return os << c.name; }

std::string cell_text(const Cell& c) {
  std::string rule = "[[invoicing.tax]]\nservice = \"" + std::string(c.service) +
                     "\"\nitem_name = \"*名称*费\"\ncode = \"3040502020200000000\"\n"
                     "rate_percent = " +
                     std::to_string(c.rate) + "\n";
  if (c.flag) {
    rule += "favoured_policy_flag = \"" + std::string(*c.flag) + "\"\n";
  }
  if (c.survey) {
    rule += "survey_answer_type = \"" + std::string(*c.survey) + "\"\n";
  }
  return invoicing("taxpayer = \"" + std::string(c.taxpayer) + "\"", rule);
}

class TaxTableTest : public ::testing::TestWithParam<Cell> {};

TEST_P(TaxTableTest, AcceptedOrRefusedWithItsRule) {
  const Cell& c = GetParam();
  const std::string text = cell_text(c);
  auto loaded = load_string(text, "test.toml");
  if (std::string_view(c.key).empty()) {
    ASSERT_TRUE(loaded) << testing::dump(loaded.error());
    const TaxRule& rule = loaded->invoicing.tax[0];
    EXPECT_EQ(rule.service, c.service);
    EXPECT_EQ(rule.favoured_policy_flag, c.expect);
    return;
  }
  ASSERT_FALSE(loaded) << "expected an error on " << c.key;
  const std::string key = std::string("invoicing.tax[0].") + c.key;
  // At the key when it is written, else at the rule's [[invoicing.tax]] line.
  const std::string written = std::string(c.key) + " = ";
  const int line = text.find(written) != std::string::npos ? line_of(text, written)
                                                           : line_of(text, "[[invoicing.tax]]");
  EXPECT_CONFIG_ERROR(loaded.error(), key, line, c.expect);
  const ConfigError* e = testing::find_error(loaded.error(), key);
  EXPECT_NE(e->rule.find("specs/e-invoice.md"), std::string::npos) << e->rule;
}

constexpr const char* kNeverWithGeneral = "never a flag with the general 9% rate";
constexpr const char* kZeroNeeds = "rate_percent = 0 needs flag 03 (免税) or 04 (不征税)";
constexpr const char* kSurveyRequired = "required for a small-scale seller at 1% or 3%";
constexpr const char* kSurveyElsewhere = "only a small-scale seller at 1% or 3% states";

INSTANTIATE_TEST_SUITE_P(
    Cells, TaxTableTest,
    ::testing::Values(
        // general parking: 9 without a flag, 5 with 09 (default) or 01
        Cell{"GeneralParking9", "general", "parking", 9, {}, {}, "", ""},
        Cell{"GeneralParking9Flag09",
             "general",
             "parking",
             9,
             "09",
             {},
             "favoured_policy_flag",
             kNeverWithGeneral},
        Cell{"GeneralParking9Flag01",
             "general",
             "parking",
             9,
             "01",
             {},
             "favoured_policy_flag",
             kNeverWithGeneral},
        Cell{"GeneralParking5DefaultsTo09", "general", "parking", 5, {}, {}, "", "09"},
        Cell{"GeneralParking5Flag01", "general", "parking", 5, "01", {}, "", "01"},
        Cell{"GeneralParking5Flag08",
             "general",
             "parking",
             5,
             "08",
             {},
             "favoured_policy_flag",
             "parking at 5% for a general taxpayer takes flag 09 (按5%简易征收, the default) or "
             "01 (简易征收), got 08 (按3%简易征收)"},
        Cell{"GeneralParking5NoFlag",
             "general",
             "parking",
             5,
             "",
             {},
             "favoured_policy_flag",
             "takes flag 09"},
        Cell{"GeneralParking3",
             "general",
             "parking",
             3,
             {},
             {},
             "rate_percent",
             "parking rates are 9 or 5 for a general taxpayer"},
        Cell{"GeneralParking6",
             "general",
             "parking",
             6,
             {},
             {},
             "rate_percent",
             "parking rates are 9 or 5 for a general taxpayer (or 0 with flag 03 免税 / 04 "
             "不征税), got 6"},
        // general taxi: 9 without a flag, 3 with 08 (default) or 01
        Cell{"GeneralTaxi9", "general", "taxi", 9, {}, {}, "", ""},
        Cell{"GeneralTaxi9Flag08",
             "general",
             "taxi",
             9,
             "08",
             {},
             "favoured_policy_flag",
             kNeverWithGeneral},
        Cell{"GeneralTaxi3DefaultsTo08", "general", "taxi", 3, {}, {}, "", "08"},
        Cell{"GeneralTaxi3Flag01", "general", "taxi", 3, "01", {}, "", "01"},
        Cell{"GeneralTaxi3Flag09",
             "general",
             "taxi",
             3,
             "09",
             {},
             "favoured_policy_flag",
             "taxi at 3% for a general taxpayer takes flag 08 (按3%简易征收, the default) or 01"},
        Cell{"GeneralTaxi1",
             "general",
             "taxi",
             1,
             {},
             {},
             "rate_percent",
             "taxi rates are 9 or 3 for a general taxpayer"},
        Cell{"GeneralTaxi1NamesTheTaxpayerKey",
             "general",
             "taxi",
             1,
             {},
             {},
             "rate_percent",
             "1% is a small-scale taxpayer's rate: set [invoicing] taxpayer = \"small_scale\""},
        Cell{"GeneralTaxi5", "general", "taxi", 5, {}, {}, "rate_percent", "taxi rates are 9 or 3"},
        Cell{"GeneralTaxi3WithSurvey",
             "general",
             "taxi",
             3,
             {},
             "3",
             "survey_answer_type",
             kSurveyElsewhere},
        // small-scale parking: 5 with "", 01 or 09
        Cell{"SmallParking5", "small_scale", "parking", 5, {}, {}, "", ""},
        Cell{"SmallParking5Flag01", "small_scale", "parking", 5, "01", {}, "", "01"},
        Cell{"SmallParking5Flag09", "small_scale", "parking", 5, "09", {}, "", "09"},
        Cell{"SmallParking5Flag08",
             "small_scale",
             "parking",
             5,
             "08",
             {},
             "favoured_policy_flag",
             "parking at 5% for a small-scale taxpayer takes flag"},
        Cell{"SmallParking9",
             "small_scale",
             "parking",
             9,
             {},
             {},
             "rate_percent",
             "parking rates are 5 for a small-scale taxpayer"},
        Cell{"SmallParking5WithSurvey",
             "small_scale",
             "parking",
             5,
             {},
             "3",
             "survey_answer_type",
             kSurveyElsewhere},
        // small-scale taxi: 3 with "", 01 or 08; 1 with "" or 01; survey answer required
        Cell{"SmallTaxi3", "small_scale", "taxi", 3, {}, "3", "", ""},
        Cell{"SmallTaxi3Flag08", "small_scale", "taxi", 3, "08", "1", "", "08"},
        Cell{"SmallTaxi3Flag01", "small_scale", "taxi", 3, "01", "2", "", "01"},
        Cell{"SmallTaxi1", "small_scale", "taxi", 1, "", "3", "", ""},
        Cell{"SmallTaxi1Flag01", "small_scale", "taxi", 1, "01", "3", "", "01"},
        Cell{"SmallTaxi1Flag08", "small_scale", "taxi", 1, "08", "3", "favoured_policy_flag",
             "taxi at 1% for a small-scale taxpayer takes flag \"\" (none) or 01 (简易征收)"},
        Cell{"SmallTaxi1WithoutSurvey",
             "small_scale",
             "taxi",
             1,
             {},
             {},
             "survey_answer_type",
             kSurveyRequired},
        Cell{"SmallTaxi3WithoutSurvey",
             "small_scale",
             "taxi",
             3,
             {},
             {},
             "survey_answer_type",
             kSurveyRequired},
        Cell{"SmallTaxiSurvey4",
             "small_scale",
             "taxi",
             1,
             {},
             "4",
             "survey_answer_type",
             "must be \"1\" (the liability arose before 2022-04-01)"},
        Cell{"SmallTaxi9",
             "small_scale",
             "taxi",
             9,
             {},
             {},
             "rate_percent",
             "taxi rates are 3 or 1 for a small-scale taxpayer"},
        // rate 0 for anyone: 03 免税 or 04 不征税, written
        Cell{"GeneralParking0Flag03", "general", "parking", 0, "03", {}, "", "03"},
        Cell{"GeneralTaxi0Flag04", "general", "taxi", 0, "04", {}, "", "04"},
        Cell{"SmallTaxi0Flag03", "small_scale", "taxi", 0, "03", {}, "", "03"},
        Cell{"SmallParking0Flag04", "small_scale", "parking", 0, "04", {}, "", "04"},
        Cell{"Rate0WithoutFlag",
             "general",
             "parking",
             0,
             {},
             {},
             "favoured_policy_flag",
             kZeroNeeds},
        Cell{"Rate0Flag08", "general", "taxi", 0, "08", {}, "favoured_policy_flag", kZeroNeeds},
        Cell{"Rate0WithSurvey", "small_scale", "taxi", 0, "03", "3", "survey_answer_type",
             kSurveyElsewhere},
        Cell{"Flag03WithRate9",
             "general",
             "parking",
             9,
             "03",
             {},
             "favoured_policy_flag",
             "flag 03 (免税) goes with rate_percent = 0 only, got 9"},
        Cell{"Flag04WithRate3", "small_scale", "taxi", 3, "04", "3", "favoured_policy_flag",
             "flag 04 (不征税) goes with rate_percent = 0 only"},
        // flags no parking or taxi line carries
        Cell{"Flag02",
             "general",
             "parking",
             5,
             "02",
             {},
             "favoured_policy_flag",
             "no parking or taxi rate is paired with flag 02 (稀土产品) in specs/e-invoice.md"},
        Cell{"Flag05",
             "general",
             "taxi",
             3,
             "05",
             {},
             "favoured_policy_flag",
             "no parking or taxi rate is paired with flag 05"},
        Cell{"Flag06",
             "general",
             "taxi",
             3,
             "06",
             {},
             "favoured_policy_flag",
             "no parking or taxi rate is paired with flag 06"},
        Cell{"Flag07", "small_scale", "taxi", 3, "07", "3", "favoured_policy_flag",
             "no parking or taxi rate is paired with flag 07"},
        Cell{"Flag10", "small_scale", "taxi", 1, "10", "3", "favoured_policy_flag",
             "no parking or taxi rate is paired with flag 10 (按5%简易征收减按1.5%计征)"},
        Cell{"Flag14",
             "general",
             "parking",
             5,
             "14",
             {},
             "favoured_policy_flag",
             "no parking or taxi rate is paired with flag 14"},
        Cell{"Flag18",
             "general",
             "parking",
             9,
             "18",
             {},
             "favoured_policy_flag",
             "no parking or taxi rate is paired with flag 18"},
        Cell{"Flag19",
             "general",
             "parking",
             9,
             "19",
             {},
             "favoured_policy_flag",
             "must be \"\" or a two-digit flag 01..18 (got \"19\""},
        Cell{"FlagOneDigit",
             "general",
             "parking",
             5,
             "9",
             {},
             "favoured_policy_flag",
             "must be \"\" or a two-digit flag 01..18 (got \"9\""}),
    [](const ::testing::TestParamInfo<Cell>& info) { return std::string(info.param.name); });

TEST(InvoicingRulesTest, AWrongRateStillReportsAFlagNoLineCarries) {
  std::string text = invoicing("", parking_rule(18, "favoured_policy_flag = \"07\"\n"));
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[0].rate_percent", line_of(text, "= 18"),
                      "must be in 0..17");
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[0].favoured_policy_flag", line_of(text, "\"07\""),
                      "no parking or taxi rate is paired with flag 07");
}

TEST(InvoicingRulesTest, TheDefaultRulesFitAGeneralTaxpayer) {
  for (const TaxRule& rule : default_tax_rules()) {
    EXPECT_TRUE(tax_rule_problems(rule, Taxpayer::kGeneral).empty()) << rule.service;
  }
}

TEST(InvoicingRulesTest, ASmallScaleSiteUsingADefaultThatDoesNotFitIsToldWhatToAdd) {
  std::string parking = with_exit_lane(invoicing("taxpayer = \"small_scale\"", kLease));
  EXPECT_CONFIG_ERROR(errors_of(parking), "invoicing.taxpayer", line_of(parking, "taxpayer ="),
                      "small_scale: the built-in parking rule (9%) is a general taxpayer's and "
                      "does not fit this seller: add an [[invoicing.tax]] with service = "
                      "\"parking\" and set its rate_percent");
  std::string taxi = with_taxi_lane(invoicing("taxpayer = \"small_scale\""));
  EXPECT_CONFIG_ERROR(errors_of(taxi), "invoicing.taxpayer", line_of(taxi, "taxpayer ="),
                      "add an [[invoicing.tax]] with service = \"taxi\" and set its "
                      "survey_answer_type");
  // A default no lane uses is no error: a small-scale cab never issues parking.
  std::string cab = with_taxi_lane(
      invoicing("taxpayer = \"small_scale\"",
                "[[invoicing.tax]]\nservice = \"taxi\"\nitem_name = \"*运输服务*客运服务费\"\n"
                "code = \"3010101020203000000\"\nrate_percent = 1\nsurvey_answer_type = \"3\"\n"));
  EXPECT_TRUE(errors_of(cab).empty()) << testing::dump(errors_of(cab));
  // The written rule fixes the parking site.
  std::string fixed = with_exit_lane(
      invoicing("taxpayer = \"small_scale\"", std::string(kLease) + "\n" + parking_rule(5)));
  EXPECT_TRUE(errors_of(fixed).empty()) << testing::dump(errors_of(fixed));
}

// ---- [invoicing] clerk, sign_encoding, taxpayer, base_url ----------------------------

TEST(InvoicingRulesTest, ClerkIsRequiredWhenEnabled) {
  std::string text = edit(invoicing(), "clerk = \"王敏\"\n", "");
  EXPECT_CONFIG_ERROR(errors_of(text), "invoicing.clerk", line_of(text, "[invoicing]"),
                      "required key is missing: 数电 orders carry the clerk logged in to the "
                      "e-tax account (specs/e-invoice.md \"Invoicing platform API\")");
  // Not without invoicing.
  EXPECT_TRUE(errors_of(std::string(kMinimal) + "\n[invoicing]\nenabled = false\n").empty());
}

TEST(InvoicingRulesTest, ClerkIsShortTextWithoutControlCharacters) {
  std::string control = edit(invoicing(), "clerk = \"王敏\"", "clerk = \"王\\u001b敏\"");
  EXPECT_CONFIG_ERROR(errors_of(control), "invoicing.clerk", line_of(control, "clerk ="),
                      "must not contain control characters: 数电 orders carry the clerk");
  std::string long_name =
      edit(invoicing(), "clerk = \"王敏\"", "clerk = \"" + std::string(65, 'x') + "\"");
  EXPECT_CONFIG_ERROR(errors_of(long_name), "invoicing.clerk", line_of(long_name, "clerk ="),
                      "must be 1..64 bytes of text (got 65 bytes)");
  std::string empty = edit(invoicing(), "clerk = \"王敏\"", "clerk = \"\"");
  EXPECT_CONFIG_ERROR(errors_of(empty), "invoicing.clerk", line_of(empty, "clerk ="),
                      "must be 1..64 bytes");
  auto ok = load_string(invoicing(), "test.toml");
  ASSERT_TRUE(ok) << testing::dump(ok.error());
  EXPECT_EQ(ok->invoicing.clerk, "王敏");
}

TEST(InvoicingRulesTest, SignEncodingAndTaxpayerValues) {
  auto plain = load_string(invoicing(), "test.toml");
  ASSERT_TRUE(plain) << testing::dump(plain.error());
  EXPECT_EQ(plain->invoicing.sign_encoding, SignEncoding::kPlain);
  EXPECT_EQ(plain->invoicing.taxpayer, Taxpayer::kGeneral);
  auto set = load_string(
      invoicing("sign_encoding = \"url\"\ntaxpayer = \"small_scale\"",
                "[[invoicing.tax]]\nservice = \"taxi\"\nitem_name = \"*运输服务*客运服务费\"\n"
                "code = \"3010101020203000000\"\nrate_percent = 3\nsurvey_answer_type = \"1\"\n"),
      "test.toml");
  ASSERT_TRUE(set) << testing::dump(set.error());
  EXPECT_EQ(set->invoicing.sign_encoding, SignEncoding::kUrl);
  EXPECT_EQ(set->invoicing.taxpayer, Taxpayer::kSmallScale);
  std::string bad = invoicing("sign_encoding = \"URL\"\ntaxpayer = \"small\"");
  auto errors = errors_of(bad);
  EXPECT_CONFIG_ERROR(errors, "invoicing.sign_encoding", line_of(bad, "sign_encoding"),
                      "must be one of: plain, url (got \"URL\")");
  EXPECT_CONFIG_ERROR(errors, "invoicing.taxpayer", line_of(bad, "taxpayer"),
                      "must be one of: general, small_scale (got \"small\")");
}

TEST(InvoicingRulesTest, BaseUrlIsThePlatformOriginWithoutTheServicePath) {
  for (const char* url :
       {"https://sdk.nuonuo.com/open/v1/services", "https://sdk.nuonuo.com/open/v1/services/",
        "https://gw.example.cn/nuonuo/open/v1/services"}) {
    std::string text =
        edit(invoicing(), "\"https://sdk.nuonuo.com\"", "\"" + std::string(url) + "\"");
    EXPECT_CONFIG_ERROR(errors_of(text), "invoicing.base_url", line_of(text, "base_url"),
                        "give the platform's origin, e.g. https://sdk.nuonuo.com; lanegate adds "
                        "/open/v1/services");
  }
  for (const char* url : {"https://sdk.nuonuo.com/", "https://gw.example.cn/nuonuo",
                          "https://sdk.nuonuo.com/open/v1"}) {
    std::string text =
        edit(invoicing(), "\"https://sdk.nuonuo.com\"", "\"" + std::string(url) + "\"");
    EXPECT_TRUE(errors_of(text).empty()) << url << "\n" << testing::dump(errors_of(text));
  }
}

// ---- [invoicing.taxi] ---------------------------------------------------------------------

TEST(InvoicingRulesTest, TravellerListKeyIsOneOfTheTwoDocumentedNames) {
  auto plain = load_string(invoicing(), "test.toml");
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->invoicing.taxi.offer_traveller);
  EXPECT_EQ(plain->invoicing.taxi.traveller_list_key, "invoiceTravellerTransportInfoList");
  auto info = load_string(invoicing("",
                                    "[invoicing.taxi]\noffer_traveller = false\n"
                                    "traveller_list_key = "
                                    "\"invoiceTravellerTransport\"\n"),
                          "test.toml");
  ASSERT_TRUE(info) << testing::dump(info.error());
  EXPECT_FALSE(info->invoicing.taxi.offer_traveller);
  EXPECT_EQ(info->invoicing.taxi.traveller_list_key, "invoiceTravellerTransport");
  std::string bad = invoicing(
      "", "[invoicing.taxi]\ntraveller_list_key = \"travellers\"\noffer_travellers = true\n");
  auto errors = errors_of(bad);
  EXPECT_CONFIG_ERROR(errors, "invoicing.taxi.traveller_list_key", line_of(bad, "\"travellers\""),
                      "must be one of: invoiceTravellerTransport, "
                      "invoiceTravellerTransportInfoList");
  EXPECT_CONFIG_ERROR(errors, "invoicing.taxi.offer_travellers", line_of(bad, "offer_travellers"),
                      "unknown key");
}

// ---- [invoicing.parking] ------------------------------------------------------------------

std::string lease(std::string_view property, std::string_view detail, std::string_view more = "") {
  return invoicing("", "[invoicing.parking]\nproperty_address = \"" + std::string(property) +
                           "\"\ndetail_address = \"" + std::string(detail) + "\"\n" +
                           std::string(more));
}

// `n` CJK characters ending in 路 (3 bytes each in UTF-8).
std::string road_of(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    s += "号";
  }
  return s + "路";
}

TEST(InvoicingRulesTest, LeaseTableLoads) {
  auto c = load_string(
      with_exit_lane(invoicing("",
                               "[invoicing.parking]\nspecific_business = true\n"
                               "property_address = \"广东省深圳市南山区\"\n"
                               "detail_address = \"科技南十二路18号\"\ncross_city = true\n"
                               "certificate = \"粤(2021)深圳市不动产权第0123456号\"\n"
                               "area_unit = 7\n")),
      "test.toml");
  ASSERT_TRUE(c) << testing::dump(c.error());
  const ParkingLeaseSite& p = c->invoicing.parking;
  EXPECT_TRUE(p.specific_business);
  EXPECT_EQ(p.property_address, "广东省深圳市南山区");
  EXPECT_EQ(p.detail_address, "科技南十二路18号");
  EXPECT_TRUE(p.cross_city);
  EXPECT_EQ(p.certificate, "粤(2021)深圳市不动产权第0123456号");
  EXPECT_EQ(p.area_unit, 7);
}

TEST(InvoicingRulesTest, DetailAddressNeedsAStreetKeyword) {
  for (const char* detail :
       {"深南大道1000号", "华强北街1号", "石岩村", "观澜镇", "沙头乡", "科苑路"}) {
    EXPECT_TRUE(errors_of(lease("广东省深圳市福田区", detail)).empty()) << detail;
  }
  std::string text = lease("广东省深圳市福田区", "市民中心B区");
  EXPECT_CONFIG_ERROR(errors_of(text), "invoicing.parking.detail_address",
                      line_of(text, "detail_address"),
                      "must contain one of 街 路 村 乡 镇 道 (detailAddress, specs/e-invoice.md");
}

TEST(InvoicingRulesTest, AddressIsAtMost120CharactersNotBytes) {
  // 9 + 111 = 120 characters (360 bytes): fits.
  EXPECT_TRUE(errors_of(lease("广东省深圳市南山区", road_of(111))).empty());
  std::string text = lease("广东省深圳市南山区", road_of(112));
  EXPECT_CONFIG_ERROR(errors_of(text), "invoicing.parking.detail_address",
                      line_of(text, "detail_address"),
                      "property_address and detail_address together must be at most 120 "
                      "characters, got 121");
}

TEST(InvoicingRulesTest, AreaUnitIsOneToSeven) {
  for (int unit = 1; unit <= 7; ++unit) {
    EXPECT_TRUE(errors_of(lease("广东省深圳市南山区", "科苑路",
                                "area_unit = " + std::to_string(unit) + "\n"))
                    .empty())
        << unit;
  }
  for (int unit : {0, 8}) {
    std::string text =
        lease("广东省深圳市南山区", "科苑路", "area_unit = " + std::to_string(unit) + "\n");
    EXPECT_CONFIG_ERROR(errors_of(text), "invoicing.parking.area_unit", line_of(text, "area_unit"),
                        "must be in 1..7");
  }
  std::string unknown = lease("广东省深圳市南山区", "科苑路", "unit = 2\n");
  EXPECT_CONFIG_ERROR(errors_of(unknown), "invoicing.parking.unit", line_of(unknown, "unit = 2"),
                      "unknown key");
}

TEST(InvoicingRulesTest, LeaseDataIsRequiredOnlyWithAParkingExitLane) {
  std::string text = with_exit_lane(invoicing());
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 3u) << testing::dump(errors);
  for (const char* key : {"invoicing.parking.property_address", "invoicing.parking.detail_address",
                          "invoicing.parking.area_unit"}) {
    EXPECT_CONFIG_ERROR(errors, key, line_of(text, "[invoicing]"),
                        "required when invoicing is enabled and a lane is mode = "
                        "\"parking-exit\": parking is issued with specific business 06");
  }
  // A partial table: only what is missing, at the table's line.
  std::string partial = with_exit_lane(
      invoicing("", "[invoicing.parking]\nproperty_address = \"广东省深圳市南山区\"\n"));
  auto some = errors_of(partial);
  ASSERT_EQ(some.size(), 2u) << testing::dump(some);
  EXPECT_CONFIG_ERROR(some, "invoicing.parking.area_unit", line_of(partial, "[invoicing.parking]"),
                      "area unit (1..7) is required");
  // Fine without 06, without a parking exit, or without invoicing.
  EXPECT_TRUE(errors_of(with_exit_lane(invoicing("",
                                                 "[invoicing.parking]\n"
                                                 "specific_business = false\n")))
                  .empty());
  EXPECT_TRUE(errors_of(invoicing()).empty()) << testing::dump(errors_of(invoicing()));
  EXPECT_TRUE(errors_of(with_taxi_lane(invoicing())).empty());
  EXPECT_TRUE(errors_of(with_exit_lane(std::string(kMinimal))).empty());
  EXPECT_TRUE(errors_of(with_exit_lane(invoicing("", kLease))).empty());
}

}  // namespace
}  // namespace lanegate::config
