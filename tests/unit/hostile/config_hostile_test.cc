// Hostile configuration values (issue #9 "Hostile input: config"): whatever bytes an
// operator, a broken deployment tool or an attacker with write access to the config puts
// in lanegate.toml, loading it (what `lanegate check-config` and lanegated's start and
// SIGHUP reload do) ends in a clear error naming the key and the rule, and never in a
// crash, a hang or a value silently accepted.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/check.h"
#include "config/config.h"

namespace lanegate::config {
namespace {

// The smallest config that loads (one parking-entry lane, camera + barrier on one TCP bus).
constexpr std::string_view kBase = R"([gateway]
id = "lot1"
site_name = "Test lot"

[api]
listen_port = 8080

[provider]
mchid = "1900000001"
appid = "wxtest"
merchant_serial_no = "ABCDEF"
merchant_private_key_file = "/keys/merchant.key"
apiv3_key_file = "/keys/apiv3.key"
notify_url = "https://gw.example.cn/notify"

[[bus]]
id = "b1"
host = "127.0.0.1"
port = 502

[[device]]
id = "cam1"
kind = "camera"
bus = "b1"

[[device]]
id = "bar1"
kind = "barrier"
bus = "b1"

[[lane]]
id = "in1"
mode = "parking-entry"
camera = "cam1"
barrier = "bar1"
tariff = "std"

[[tariff.parking]]
id = "std"
day_rate = "2.00"

[offline]
per_transaction = "50.00"
)";

std::string replace(std::string_view text, std::string_view from, std::string_view to) {
  std::string s(text);
  const std::size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << "test bug: \"" << from << "\" not in the base config";
  if (at != std::string::npos) {
    s.replace(at, from.size(), to);
  }
  return s;
}

std::string dump(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

// Loads `text`, expects it refused with an error on `key` (dotted path prefix) whose rule
// mentions `rule_part`. Every error must name a key or a line and a rule.
void expect_refused(const std::string& text, std::string_view key, std::string_view rule_part) {
  auto loaded = load_string(text, "hostile.toml");
  ASSERT_FALSE(loaded) << "accepted a hostile value for " << key;
  bool found = false;
  for (const auto& e : loaded.error()) {
    EXPECT_FALSE(e.rule.empty()) << e.to_string();
    EXPECT_TRUE(!e.key.empty() || e.line > 0) << e.to_string();
    if (e.key.starts_with(key) && e.rule.find(rule_part) != std::string::npos) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << "no error on " << key << " mentioning \"" << rule_part << "\":\n"
                     << dump(loaded.error());
}

// A TOML syntax error: refused with the line and toml++'s description, no key needed.
void expect_syntax_error(const std::string& text, int line) {
  auto loaded = load_string(text, "hostile.toml");
  ASSERT_FALSE(loaded);
  ASSERT_FALSE(loaded.error().empty());
  EXPECT_EQ(loaded.error().front().line, line) << dump(loaded.error());
  EXPECT_FALSE(loaded.error().front().rule.empty());
}

TEST(ConfigHostileTest, TheBaseConfigLoads) {
  auto loaded = load_string(kBase, "base.toml");
  ASSERT_TRUE(loaded) << dump(loaded.error());
}

TEST(ConfigHostileTest, IntegersBeyondInt64AreASyntaxErrorOnTheirLine) {
  expect_syntax_error(replace(kBase, "listen_port = 8080", "listen_port = 99999999999999999999"),
                      6);
}

TEST(ConfigHostileTest, Int64ExtremesAreRangeChecked) {
  expect_refused(replace(kBase, "listen_port = 8080", "listen_port = 9223372036854775807"),
                 "api.listen_port", "");
  expect_refused(replace(kBase, "listen_port = 8080", "listen_port = -9223372036854775808"),
                 "api.listen_port", "");
  expect_refused(replace(kBase, "[offline]\n", "[api.x]\n[offline]\n"), "api.x", "");
}

TEST(ConfigHostileTest, AbsurdPortsAreRefused) {
  expect_refused(replace(kBase, "listen_port = 8080", "listen_port = 70000"), "api.listen_port",
                 "must be in 0..65535");
  expect_refused(replace(kBase, "listen_port = 8080", "listen_port = -1"), "api.listen_port", "");
  expect_refused(replace(kBase, "port = 502", "port = 65536"), "bus[0].port", "");
  expect_refused(replace(kBase, "port = 502", "port = 0"), "bus[0].port", "");
}

TEST(ConfigHostileTest, NegativeAndHugeMoneyIsRefused) {
  expect_refused(replace(kBase, "day_rate = \"2.00\"", "day_rate = \"-2.00\""),
                 "tariff.parking[0].day_rate", "must be in 0.00..");
  expect_refused(replace(kBase, "per_transaction = \"50.00\"", "per_transaction = \"-0.01\""),
                 "offline.per_transaction", "");
  expect_refused(replace(kBase, "day_rate = \"2.00\"", "day_rate = \"99999999999999999999999.00\""),
                 "tariff.parking[0].day_rate", "too large");
  // Floating point near money is refused outright, never rounded.
  expect_refused(replace(kBase, "day_rate = \"2.00\"", "day_rate = 2.0"),
                 "tariff.parking[0].day_rate", "string");
}

TEST(ConfigHostileTest, AMegabyteStringIsRefusedNotStored) {
  const std::string big(1 << 20, 'x');
  expect_refused(replace(kBase, "site_name = \"Test lot\"", "site_name = \"" + big + "\""),
                 "gateway.site_name", "1..128 bytes");
  expect_refused(replace(kBase, "id = \"lot1\"", "id = \"" + big + "\""), "gateway.id", "");
}

TEST(ConfigHostileTest, DeepNestingIsRefusedWithoutACrash) {
  // Arrays nested 100000 deep: a recursive parser without a depth limit overflows the
  // stack here. toml++ stops at its nesting limit with a syntax error.
  const int depth = 100000;
  std::string deep = "[offline]\nx = " + std::string(depth, '[') + std::string(depth, ']') + "\n";
  auto loaded = load_string(replace(kBase, "[offline]\n", deep), "hostile.toml");
  ASSERT_FALSE(loaded);
  EXPECT_GT(loaded.error().front().line, 0) << dump(loaded.error());
  // Inline tables, too.
  std::string tables = "[offline]\ny = ";
  for (int i = 0; i < depth; ++i) tables += "{a=";
  tables += "1";
  tables += std::string(depth, '}');
  tables += "\n";
  auto loaded2 = load_string(replace(kBase, "[offline]\n", tables), "hostile.toml");
  ASSERT_FALSE(loaded2);
}

TEST(ConfigHostileTest, DuplicateKeysAndTablesAreSyntaxErrors) {
  expect_syntax_error(
      replace(kBase, "site_name = \"Test lot\"", "site_name = \"a\"\nsite_name = \"b\""), 4);
  auto loaded = load_string(std::string(kBase) + "[api]\nlisten_port = 9090\n", "hostile.toml");
  ASSERT_FALSE(loaded);
}

TEST(ConfigHostileTest, ControlCharactersAreRefused) {
  // A raw control character inside a string is a TOML syntax error.
  expect_syntax_error(replace(kBase, "id = \"lot1\"", std::string("id = \"lo\x01t1\"")), 2);
  // An escaped NUL passes the TOML parser; the id rule must refuse it (it goes into
  // records, file names and the provider's device_id).
  expect_refused(replace(kBase, "id = \"lot1\"", "id = \"lot\\u0000one\""), "gateway.id", "");
  expect_refused(replace(kBase, "id = \"in1\"", "id = \"in\\u001b[2J\""), "lane[0].id", "");
}

// Error texts quote the offending value with control bytes escaped: an ESC or NUL in the
// file must not reach the operator's terminal (check-config) or the log (SIGHUP reload).
TEST(ConfigHostileTest, ErrorsNeverEchoControlCharacters) {
  for (const char* value : {"lot\\u001b[2J", "lot\\u0000one", "lot\\u0007"}) {
    auto loaded = load_string(
        replace(kBase, "id = \"lot1\"", std::string("id = \"") + value + "\""), "hostile.toml");
    ASSERT_FALSE(loaded);
    for (const auto& e : loaded.error()) {
      for (unsigned char c : e.to_string()) {
        EXPECT_FALSE(c < 0x20 || c == 0x7f) << "control character " << int{c} << " in: " << e.key;
      }
    }
  }
}

TEST(ConfigHostileTest, InvalidUtf8IsASyntaxError) {
  auto loaded = load_string(replace(kBase, "Test lot", "Test \xff\xfe lot"), "hostile.toml");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().front().line, 3) << dump(loaded.error());
}

TEST(ConfigHostileTest, RelativeStateDirIsRefused) {
  expect_refused(replace(kBase, "site_name = \"Test lot\"",
                         "site_name = \"Test lot\"\nstate_dir = \"../../etc\""),
                 "gateway.state_dir", "absolute path");
}

TEST(ConfigHostileTest, UnknownKeysAndWrongTypesAreNamed) {
  expect_refused(replace(kBase, "listen_port = 8080", "listen_port = 8080\nlisten_prot = 1"),
                 "api.listen_prot", "unknown key");
  expect_refused(replace(kBase, "listen_port = 8080", "listen_port = \"8080\""), "api.listen_port",
                 "");
  expect_refused(replace(kBase, "listen_port = 8080", "listen_port = [8080]"), "api.listen_port",
                 "");
}

TEST(ConfigHostileTest, CheckConfigReportsAndNeverCrashesOnGarbage) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "hostile-config-XXXXXX").string();
  const std::filesystem::path dir = mkdtemp(tmpl.data());
  const std::vector<std::string> garbage = {std::string("\0\0\0\0", 4),
                                            "[[[[[[",
                                            "= = =",
                                            std::string(1 << 16, '['),
                                            "\xef\xbb\xbf[gateway]\nid=",
                                            "[gateway]\nid = \"\\uD800\"\n"};
  int i = 0;
  for (const auto& g : garbage) {
    const auto file = dir / ("g" + std::to_string(i++) + ".toml");
    {
      std::ofstream out(file, std::ios::binary);
      out << g;
    }
    std::ostringstream out, err;
    EXPECT_NE(check_config_command(file, out, err), 0) << "garbage #" << i;
    EXPECT_FALSE(err.str().empty()) << "garbage #" << i << " refused without saying why";
  }
  std::ostringstream out, err;
  EXPECT_NE(check_config_command(dir / "missing.toml", out, err), 0);
  EXPECT_NE(err.str().find("missing.toml"), std::string::npos) << err.str();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lanegate::config
