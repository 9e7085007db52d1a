#pragma once
// Test helpers for config_test: a minimal valid config, text edits, and error lookup.

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace lanegate::config::testing {

// The smallest config that loads: one parking-entry lane with camera and barrier on one
// TCP bus. Line numbers matter to the tests: keep the layout stable.
inline constexpr std::string_view kMinimal = R"([gateway]
id = "lot1"
site_name = "Test lot"

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
)";

// `text` with a parking-exit lane (its own camera and barrier on bus b1) appended.
inline std::string with_exit_lane(std::string text) {
  return text +
         "\n[[device]]\nid = \"cam2\"\nkind = \"camera\"\nbus = \"b1\"\nunit_id = 2\n"
         "\n[[device]]\nid = \"bar2\"\nkind = \"barrier\"\nbus = \"b1\"\nunit_id = 2\n"
         "\n[[lane]]\nid = \"out1\"\nmode = \"parking-exit\"\ncamera = \"cam2\"\n"
         "barrier = \"bar2\"\ntariff = \"std\"\n";
}

// `text` with a taxi lane (its meter on a serial port) appended.
inline std::string with_taxi_lane(std::string text) {
  return text +
         "\n[[meter]]\nid = \"m1\"\ndevice = \"/dev/ttyS1\"\n"
         "\n[[lane]]\nid = \"cab\"\nmode = \"taxi\"\nmeter = \"m1\"\n";
}

// `text` with the only occurrence of `from` replaced by `to` (fails the test if `from`
// is missing or not unique, so edits never silently miss).
inline std::string edit(std::string_view text, std::string_view from, std::string_view to) {
  std::string s(text);
  std::size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << "edit: \"" << from << "\" not found";
  if (at == std::string::npos) {
    return s;
  }
  EXPECT_EQ(s.find(from, at + 1), std::string::npos) << "edit: \"" << from << "\" not unique";
  s.replace(at, from.size(), to);
  return s;
}

// 1-based line of the first occurrence of `needle`.
inline int line_of(std::string_view text, std::string_view needle) {
  std::size_t at = text.find(needle);
  EXPECT_NE(at, std::string_view::npos) << "line_of: \"" << needle << "\" not found";
  if (at == std::string_view::npos) {
    return -1;
  }
  int line = 1;
  for (std::size_t i = 0; i < at; ++i) {
    line += text[i] == '\n';
  }
  return line;
}

// Errors of loading `text` as "test.toml"; empty when it loads.
inline std::vector<ConfigError> errors_of(std::string_view text) {
  LoadResult r = load_string(text, "test.toml");
  return r ? std::vector<ConfigError>{} : r.error();
}

inline std::string dump(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const ConfigError& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

// The error about `key`, or nullptr.
inline const ConfigError* find_error(const std::vector<ConfigError>& errors, std::string_view key) {
  for (const ConfigError& e : errors) {
    if (e.key == key) {
      return &e;
    }
  }
  return nullptr;
}

// Asserts that loading `text` reports an error on `key` at `line` whose rule contains
// `rule_part`, and that the error names the file.
#define EXPECT_CONFIG_ERROR(errors_arg, key_arg, line_arg, rule_arg)         \
  do {                                                                       \
    const auto& errs_ = (errors_arg);                                        \
    const ::lanegate::config::ConfigError* e_ =                              \
        ::lanegate::config::testing::find_error(errs_, (key_arg));           \
    ASSERT_NE(e_, nullptr) << "no error for key " << (key_arg) << "; got:\n" \
                           << ::lanegate::config::testing::dump(errs_);      \
    EXPECT_EQ(e_->file, "test.toml");                                        \
    EXPECT_EQ(e_->line, (line_arg)) << e_->to_string();                      \
    EXPECT_NE(e_->rule.find(rule_arg), std::string::npos)                    \
        << "rule \"" << e_->rule << "\" lacks \"" << (rule_arg) << "\"";     \
  } while (false)

}  // namespace lanegate::config::testing
