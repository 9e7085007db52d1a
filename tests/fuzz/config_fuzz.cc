// Fuzz target for the config loader: arbitrary bytes into load_string() must never crash,
// hang or let an exception out, and every reported error must name a rule.
//
// The first input byte picks a mode: odd -> the rest is appended to a valid config, so
// mutations land inside known sections and reach the validators and cross-reference
// checks (toml++ itself is a prebuilt, uninstrumented library, so coverage feedback only
// comes from lanegate's own code); even -> the rest is the whole document.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"

namespace {

constexpr std::string_view kBase = R"([gateway]
id = "lot1"
site_name = "Fuzz lot"

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string text;
  if ((data[0] & 1) != 0) {
    text.reserve(kBase.size() + rest.size());
    text.append(kBase);
    text.append(rest);
  } else {
    text.assign(rest);
  }
  auto result = lanegate::config::load_string(text, "fuzz.toml");
  if (!result) {
    for (const auto& error : result.error()) {
      if (error.rule.empty() || error.file != "fuzz.toml" || error.line < 0 || error.column < 0) {
        __builtin_trap();
      }
      (void)error.to_string();
    }
  } else if (result->gateway.id.empty() || result->lanes.empty()) {
    __builtin_trap();  // a config that loads has its required parts
  }
  return 0;
}
