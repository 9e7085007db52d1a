// Each single-key rule produces an error that names the file, the line of the key, the
// dotted key and the rule an operator has to follow.
#include <gtest/gtest.h>

#include "config/config.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

using testing::edit;
using testing::errors_of;
using testing::kMinimal;
using testing::line_of;

TEST(ConfigRulesTest, MinimalConfigLoads) {
  auto errors = errors_of(kMinimal);
  EXPECT_TRUE(errors.empty()) << testing::dump(errors);
}

TEST(ConfigRulesTest, UnknownKeyNamesKeyLineAndSuggestion) {
  std::string text = edit(kMinimal, "site_name = \"Test lot\"\n",
                          "site_name = \"Test lot\"\nsite_nmae = \"typo\"\n");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_EQ(errors[0].line, 4);
  EXPECT_EQ(errors[0].column, 1);
  EXPECT_EQ(errors[0].key, "gateway.site_nmae");
  EXPECT_EQ(errors[0].rule, "unknown key (did you mean \"site_name\"?)");
  EXPECT_EQ(errors[0].to_string(),
            "test.toml:4:1: gateway.site_nmae: unknown key (did you mean \"site_name\"?)");
}

TEST(ConfigRulesTest, UnknownKeysAnywhereAreErrors) {
  std::string text = std::string(kMinimal) +
                     "\n[gatway]\nid = \"x\"\n"
                     "\n[[lane]]\nid = \"in2\"\nmode = \"taxi\"\nmeter = \"m\"\ncolour = 1\n";
  text = edit(text, "[[bus]]\nid = \"b1\"\n", "[[bus]]\nid = \"b1\"\nspeed = 9600\n");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "gatway", line_of(text, "[gatway]"), "did you mean \"gateway\"");
  EXPECT_CONFIG_ERROR(errors, "bus[0].speed", line_of(text, "speed"), "unknown key");
  EXPECT_CONFIG_ERROR(errors, "lane[1].colour", line_of(text, "colour"), "unknown key");
}

TEST(ConfigRulesTest, WrongTypeSaysExpectedAndGot) {
  std::string text = edit(kMinimal, "host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nport = \"502\"");
  text = edit(text, "id = \"lot1\"", "id = 7");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "bus[0].port", line_of(text, "port ="),
                      "expected integer, got string");
  EXPECT_CONFIG_ERROR(errors, "gateway.id", 2, "expected string, got integer");
}

TEST(ConfigRulesTest, FloatWhereIntegerIsExpected) {
  std::string text = edit(kMinimal, "[[tariff.parking]]\nid = \"std\"\n",
                          "[[tariff.parking]]\nid = \"std\"\nfree_minutes = 15.5\n");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "tariff.parking[0].free_minutes", line_of(text, "free_minutes"),
                      "expected integer, got floating-point");
}

TEST(ConfigRulesTest, OutOfRangeNamesTheRange) {
  std::string text = std::string(kMinimal) + "\n[api]\nlisten_port = 70000\n";
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "api.listen_port", line_of(text, "listen_port"),
                      "must be in 0..65535, got 70000");
}

TEST(ConfigRulesTest, EnumNamesTheAllowedValues) {
  std::string text = edit(kMinimal, "mode = \"parking-entry\"", "mode = \"parking\"");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(
      errors, "lane[0].mode", line_of(text, "mode ="),
      "must be one of: parking-entry, parking-exit, toll-exit, taxi (got \"parking\")");
}

TEST(ConfigRulesTest, MissingRequiredKeyPointsAtItsTable) {
  std::string text = edit(kMinimal, "id = \"in1\"\n", "");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "lane[0].id", line_of(text, "[[lane]]"), "required key is missing");
}

TEST(ConfigRulesTest, MissingRequiredSectionIsNamed) {
  std::string text = edit(kMinimal, "[gateway]\nid = \"lot1\"\nsite_name = \"Test lot\"\n", "");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "gateway", 1, "required section [gateway] is missing");
}

TEST(ConfigRulesTest, MoneyMustBeAStringOfYuan) {
  std::string text = edit(kMinimal, "[[tariff.parking]]\nid = \"std\"\n",
                          "[[tariff.parking]]\nid = \"std\"\n"
                          "day_rate = 3.5\n"
                          "night_rate = 1\n"
                          "daily_cap = \"30.005\"\n");
  text += "\n[offline]\nper_transaction = \"-1.00\"\n";
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "tariff.parking[0].day_rate", line_of(text, "day_rate"),
                      "money must be a string of yuan with at most 2 decimals, e.g. \"12.50\" "
                      "(got floating-point)");
  EXPECT_CONFIG_ERROR(errors, "tariff.parking[0].night_rate", line_of(text, "night_rate"),
                      "(got integer)");
  EXPECT_CONFIG_ERROR(errors, "tariff.parking[0].daily_cap", line_of(text, "daily_cap"),
                      "at most 2 decimals");
  EXPECT_CONFIG_ERROR(errors, "offline.per_transaction", line_of(text, "per_transaction"),
                      "must be in 0.00..1000000.00 yuan, got -1.00");
}

TEST(ConfigRulesTest, MoneyStringsParseToExactFen) {
  std::string text = edit(kMinimal, "[[tariff.parking]]\nid = \"std\"\n",
                          "[[tariff.parking]]\nid = \"std\"\n"
                          "day_rate = \"12.34\"\n"
                          "night_rate = \"5\"\n"
                          "daily_cap = \"0.1\"\n");
  auto loaded = load_string(text, "test.toml");
  ASSERT_TRUE(loaded) << testing::dump(loaded.error());
  EXPECT_EQ(loaded->parking_tariffs[0].day_rate.fen(), 1234);
  EXPECT_EQ(loaded->parking_tariffs[0].night_rate.fen(), 500);
  EXPECT_EQ(loaded->parking_tariffs[0].daily_cap.fen(), 10);
}

TEST(ConfigRulesTest, ApiTokenHashAndRole) {
  std::string text =
      std::string(kMinimal) +
      "\n[[api.token]]\nname = \"ops\"\nrole = \"admin\"\n"
      "sha256 = \"61112491D046C3F6F8AB801F170D9B2D0C734A17CEFF60DEE92123FB507CFC3F\"\n"
      "\n[[api.token]]\nname = \"audit\"\nrole = \"auditor\"\n"
      "sha256 = \"d0ad8bb68835a23576c95ef7ddd7c1ffaec451daaf8de46902e7e82b1786886c\"\n";
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 2u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "api.token[0].role", line_of(text, "\"admin\""),
                      "must be one of: operator, auditor");
  EXPECT_CONFIG_ERROR(errors, "api.token[0].sha256", line_of(text, "61112491D"),
                      "64 lower-case hex digits");
}

TEST(ConfigRulesTest, NotifyUrlMustBeHttps) {
  std::string text = edit(kMinimal, "notify_url = \"https://gw.example.cn/notify\"",
                          "notify_url = \"http://gw.example.cn/notify\"");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "provider.notify_url", 11, "must use https");
  text = edit(kMinimal, "notify_url = \"https://gw.example.cn/notify\"",
              "notify_url = \"https://gw example/notify\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.notify_url", 11, "must be an absolute https URL");
}

TEST(ConfigRulesTest, TlsVerificationMayBeOffOnlyForLoopback) {
  std::string text = edit(kMinimal, "appid = \"wxtest\"", "appid = \"wxtest\"\nverify_tls = false");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.verify_tls", line_of(text, "verify_tls"),
                      "loopback base_url");
  text = edit(text, "appid = \"wxtest\"",
              "appid = \"wxtest\"\nbase_url = \"https://127.0.0.1:18443\"");
  EXPECT_TRUE(errors_of(text).empty()) << testing::dump(errors_of(text));
}

TEST(ConfigRulesTest, ApiOnTheNetworkNeedsTls) {
  std::string text = std::string(kMinimal) + "\n[api]\nlisten_address = \"0.0.0.0\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "api.listen_address", line_of(text, "listen_address"),
                      "needs [api.tls]");
  text += "[api.tls]\ncert_file = \"/k/api.pem\"\nkey_file = \"/k/api.key\"\n";
  EXPECT_TRUE(errors_of(text).empty()) << testing::dump(errors_of(text));
  std::string bad = std::string(kMinimal) + "\n[api]\nlisten_address = \"localhost\"\n";
  EXPECT_CONFIG_ERROR(errors_of(bad), "api.listen_address", line_of(bad, "listen_address"),
                      "IPv4 or IPv6 address");
}

TEST(ConfigRulesTest, TaxRules) {
  std::string text =
      std::string(kMinimal) +
      "\n[[invoicing.tax]]\nservice = \"parking\"\nitem_name = \"停车费\"\n"
      "code = \"304050202020000000\"\nrate_percent = 18\nfavoured_policy_flag = \"07\"\n"
      "\n[[invoicing.tax]]\nservice = \"parking\"\nitem_name = \"*经营租赁*停车费\"\n"
      "code = \"3040502020200000000\"\nrate_percent = 9\n";
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 5u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[0].item_name", line_of(text, "停车费\""),
                      "\"*category*name\"");
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[0].code", line_of(text, "304050202020000000\""),
                      "19-digit");
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[0].rate_percent", line_of(text, "= 18"),
                      "must be in 0..17");
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[0].favoured_policy_flag", line_of(text, "\"07\""),
                      "no parking or taxi rate is paired with flag 07");
  // The second rule for the same service is the duplicate.
  int second = line_of(text, "rate_percent = 9") - 3;  // its service line
  EXPECT_CONFIG_ERROR(errors, "invoicing.tax[1].service", second,
                      "duplicate tax rule for service \"parking\"");
}

TEST(ConfigRulesTest, SellerTaxIdCheckCharacterAndAllowList) {
  std::string text =
      std::string(kMinimal) + "\n[invoicing]\nseller_tax_id = \"91440300MA5G8K2D7A\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "invoicing.seller_tax_id", line_of(text, "seller_tax_id"),
                      "expected 'F', got 'A'");
  text += "buyer_id_allow_list = [\"91440300MA5G8K2D7A\"]\n";
  EXPECT_TRUE(errors_of(text).empty()) << testing::dump(errors_of(text));
}

TEST(ConfigRulesTest, InvoicingNeedsItsPlatformWhenEnabled) {
  std::string text = std::string(kMinimal) + "\n[invoicing]\nenabled = true\n";
  auto errors = errors_of(text);
  int table = line_of(text, "[invoicing]");
  for (const char* key :
       {"invoicing.base_url", "invoicing.app_key", "invoicing.app_secret_file",
        "invoicing.access_token_file", "invoicing.seller_name", "invoicing.seller_tax_id"}) {
    EXPECT_CONFIG_ERROR(errors, key, table, "required key is missing");
  }
}

TEST(ConfigRulesTest, ProvincesAreSingleProvinceCharacters) {
  std::string text =
      std::string(kMinimal) +
      "\n[plates]\nprovinces = [\"粤\",\n  \"粤B\",\n  \"使\",\n  \"A\",\n  \"粤\"]\n";
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 4u) << testing::dump(errors);
  int first = line_of(text, "provinces");
  EXPECT_CONFIG_ERROR(errors, "plates.provinces[1]", first + 1, "single province character");
  EXPECT_CONFIG_ERROR(errors, "plates.provinces[2]", first + 2, "single province character");
  EXPECT_CONFIG_ERROR(errors, "plates.provinces[3]", first + 3, "single province character");
  EXPECT_CONFIG_ERROR(errors, "plates.provinces[4]", first + 4, "duplicate province");
}

TEST(ConfigRulesTest, PathsMustBeAbsolute) {
  std::string text = edit(kMinimal, "\"/keys/apiv3.key\"", "\"keys/apiv3.key\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.apiv3_key_file", 10, "absolute path");
}

TEST(ConfigRulesTest, TransportSpecificKeys) {
  std::string text = edit(kMinimal, "host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nbaud = 9600");
  EXPECT_CONFIG_ERROR(errors_of(text), "bus[0].baud", line_of(text, "baud"),
                      "only allowed with transport = \"rtu\"");
  text = edit(
      kMinimal, "host = \"127.0.0.1\"",
      "transport = \"rtu\"\nserial_device = \"/dev/ttyS0\"\nhost = \"127.0.0.1\"\nbaud = 9601");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "bus[0].host", line_of(text, "host"),
                      "only allowed with transport = \"tcp\"");
  EXPECT_CONFIG_ERROR(errors, "bus[0].baud", line_of(text, "baud"), "9600, 19200");
  text = edit(kMinimal, "host = \"127.0.0.1\"", "transport = \"rtu\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "bus[0].serial_device", line_of(text, "[[bus]]"),
                      "required key is missing");
}

TEST(ConfigRulesTest, KindSpecificDeviceKeys) {
  std::string text = edit(kMinimal, "kind = \"barrier\"", "kind = \"barrier\"\nencoding = \"gbk\"");
  text =
      edit(text, "kind = \"camera\"", "kind = \"camera\"\nopen_retries = 1\nencoding = \"big5\"");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "device[1].encoding", line_of(text, "\"gbk\""),
                      "only allowed for kind = \"camera\"");
  EXPECT_CONFIG_ERROR(errors, "device[0].open_retries", line_of(text, "open_retries"),
                      "only allowed for kind = \"barrier\"");
  EXPECT_CONFIG_ERROR(errors, "device[0].encoding", line_of(text, "big5"),
                      "must be one of: utf-8, gbk");
}

TEST(ConfigRulesTest, RegisterOverrides) {
  std::string text = edit(kMinimal, "kind = \"camera\"",
                          "kind = \"camera\"\nregisters = { sequence = 100, plate_txt = 6 }");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "device[0].registers.plate_txt", line_of(text, "registers"),
                      "no register of that name for kind camera");
  // Moving one register of the plate record far away breaks the one-request read.
  text = edit(kMinimal, "kind = \"camera\"", "kind = \"camera\"\nregisters = { sequence = 300 }");
  EXPECT_CONFIG_ERROR(errors_of(text), "device[0].registers", line_of(text, "registers"),
                      "must fit one Modbus read");
  text = edit(kMinimal, "kind = \"camera\"", "kind = \"camera\"\nregisters = { colour = 7 }");
  EXPECT_CONFIG_ERROR(errors_of(text), "device[0].registers", line_of(text, "registers"),
                      "overlaps \"plate_text\" (6..13)");
}

TEST(ConfigRulesTest, OfflineLimitsAreNested) {
  std::string text =
      std::string(kMinimal) +
      "\n[offline]\nper_transaction = \"300.00\"\nper_plate_outstanding = \"200.00\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "offline.per_transaction", line_of(text, "per_transaction"),
                      "must not exceed per_plate_outstanding (200.00)");
}

TEST(ConfigRulesTest, TomlSyntaxErrorHasItsLine) {
  std::string text = edit(kMinimal, "site_name = \"Test lot\"", "site_name = \"Test lot");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_NE(errors[0].rule.find("TOML syntax error"), std::string::npos);
}

TEST(ConfigRulesTest, DuplicateTomlKeyIsASyntaxError) {
  std::string text = edit(kMinimal, "id = \"b1\"", "id = \"b1\"\nid = \"b2\"");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_EQ(errors[0].line, line_of(text, "id = \"b2\""));
}

TEST(ConfigRulesTest, SeveralErrorsAreReportedAtOnceInLineOrder) {
  std::string text = edit(kMinimal, "id = \"lot1\"", "id = \"lot 1\"");
  text = edit(text, "bus = \"b1\"\n\n[[device]]", "bus = \"b9\"\n\n[[device]]");
  text = edit(text, "mode = \"parking-entry\"", "mode = \"parking-entry\"\nstation_id = 7");
  text += "\n[queue]\nmax_in_flight = 0\n";
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 4u) << testing::dump(errors);
  EXPECT_EQ(
      errors[0].to_string(),
      "test.toml:2:6: gateway.id: must be 1..32 characters of A-Z a-z 0-9 _ - (got \"lot 1\")");
  EXPECT_EQ(errors[1].to_string(), "test.toml:20:7: device[0].bus: no [[bus]] with id \"b9\"");
  EXPECT_EQ(errors[2].key, "lane[0].station_id");
  EXPECT_EQ(errors[2].line, line_of(text, "station_id"));
  EXPECT_EQ(errors[2].rule, "not used with mode = \"parking-entry\"");
  EXPECT_EQ(errors[3].key, "queue.max_in_flight");
  EXPECT_EQ(errors[3].rule, "must be in 1..256, got 0");
  for (std::size_t i = 1; i < errors.size(); ++i) {
    EXPECT_LE(errors[i - 1].line, errors[i].line);
  }
}

}  // namespace
}  // namespace lanegate::config
