// Cameras that push over HTTP ([[device]] protocol, serial, token_sha256, ...), the [cameras]
// listener and evidence limits, and the lane's no_plate_after_ms: defaults, good values, and
// each rule's error naming the key and its line.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

using testing::edit;
using testing::errors_of;
using testing::kMinimal;
using testing::line_of;

constexpr std::string_view kModbusCamera = "id = \"cam1\"\nkind = \"camera\"\nbus = \"b1\"\n";
const std::string kToken(64, 'a');

// kMinimal with cam1 a push camera of `protocol` carrying `extra` lines.
std::string push_camera(std::string_view protocol, std::string_view extra = "") {
  return edit(kMinimal, kModbusCamera,
              "id = \"cam1\"\nkind = \"camera\"\nprotocol = \"" + std::string(protocol) +
                  "\"\nserial = \"VZ-0001\"\ntoken_sha256 = \"" + kToken + "\"\n" +
                  std::string(extra));
}

Config load(std::string_view text) {
  auto loaded = load_string(text, "test.toml");
  EXPECT_TRUE(loaded) << testing::dump(loaded.error());
  return loaded ? *loaded : Config{};
}

TEST(PushCamerasConfigTest, APushCameraNeedsNoBusAndGetsTheDefaults) {
  for (const char* p : {"vzenith", "hikvision", "dahua", "generic"}) {
    SCOPED_TRACE(p);
    Config c = load(push_camera(p));
    ASSERT_EQ(c.devices.size(), 2u);
    const DeviceSection& d = c.devices[0];
    EXPECT_TRUE(d.push());
    EXPECT_EQ(d.protocol, p);
    EXPECT_EQ(d.serial, "VZ-0001");
    EXPECT_EQ(d.heartbeat_timeout_s, 90);
    EXPECT_EQ(d.reply_wait_ms, 1500);
    EXPECT_TRUE(d.bus.empty());
  }
  Config m = load(kMinimal);
  EXPECT_EQ(m.devices[0].protocol, "modbus");
  EXPECT_FALSE(m.devices[0].push());
  EXPECT_EQ(m.cameras.max_body_bytes, 8 * 1024 * 1024);
  EXPECT_EQ(m.cameras.evidence_retention_days, 30);
  EXPECT_EQ(m.cameras.evidence_max_mb, 2048);
  EXPECT_EQ(m.lanes[0].no_plate_after_ms, 6000);
}

TEST(PushCamerasConfigTest, GoodValuesLoad) {
  Config c = load(push_camera("hikvision",
                              "address = \"192.168.1.64\"\nheartbeat_timeout_s = 30\n"
                              "reply_wait_ms = 800\ncolours = { blue = \"BLUE\", "
                              "\"yellow-green\" = \"LIMEGREEN\" }\n") +
                  "\n[cameras]\nlisten_address = \"0.0.0.0\"\nlisten_port = 8088\n"
                  "max_body_bytes = 65536\nevidence_retention_days = 7\nevidence_max_mb = 10\n");
  const DeviceSection& d = c.devices[0];
  EXPECT_EQ(d.address, "192.168.1.64");
  EXPECT_EQ(d.heartbeat_timeout_s, 30);
  EXPECT_EQ(d.reply_wait_ms, 800);
  EXPECT_EQ(d.colours.at("yellow-green"), "LIMEGREEN");
  EXPECT_EQ(c.cameras.listen_port, 8088);
  EXPECT_EQ(c.cameras.max_body_bytes, 65536);
  EXPECT_EQ(c.cameras.evidence_retention_days, 7);
  EXPECT_EQ(c.cameras.evidence_max_mb, 10);
}

TEST(PushCamerasConfigTest, AnUnknownProtocolIsNamed) {
  const std::string text = push_camera("axis");
  EXPECT_CONFIG_ERROR(errors_of(text), "device[0].protocol", line_of(text, "protocol ="),
                      "generic");
}

TEST(PushCamerasConfigTest, APushCameraHasNoBusAndNeedsItsIdentityAndToken) {
  const std::string with_bus = push_camera("vzenith", "bus = \"b1\"\n");
  EXPECT_CONFIG_ERROR(errors_of(with_bus), "device[0].bus", line_of(with_bus, "bus = \"b1\"\n\n[[device]]\nid = \"bar1\""),
                      "not used by a camera that pushes over HTTP");

  const std::string no_token = edit(push_camera("vzenith"), "token_sha256 = \"" + kToken + "\"\n", "");
  ASSERT_FALSE(errors_of(no_token).empty());
  EXPECT_NE(testing::find_error(errors_of(no_token), "device[0].token_sha256"), nullptr)
      << testing::dump(errors_of(no_token));

  const std::string short_token =
      edit(push_camera("vzenith"), "token_sha256 = \"" + kToken + "\"", "token_sha256 = \"abc\"");
  EXPECT_CONFIG_ERROR(errors_of(short_token), "device[0].token_sha256",
                      line_of(short_token, "token_sha256"), "64");

  const std::string bad_serial =
      edit(push_camera("vzenith"), "serial = \"VZ-0001\"", "serial = \"has space\"");
  EXPECT_CONFIG_ERROR(errors_of(bad_serial), "device[0].serial", line_of(bad_serial, "serial ="),
                      "printable ASCII");

  const std::string bad_address = push_camera("vzenith", "address = \"camera.local\"\n");
  EXPECT_NE(testing::find_error(errors_of(bad_address), "device[0].address"), nullptr);
}

TEST(PushCamerasConfigTest, TwoCamerasCannotShareASerialOrAToken) {
  std::string text = push_camera("vzenith") +
                     "\n[[device]]\nid = \"cam2\"\nkind = \"camera\"\nprotocol = \"vzenith\"\n"
                     "serial = \"VZ-0001\"\ntoken_sha256 = \"" +
                     kToken + "\"\n";
  const auto errs = errors_of(text);
  const ConfigError* serial = testing::find_error(errs, "device[2].serial");
  ASSERT_NE(serial, nullptr) << testing::dump(errs);
  EXPECT_NE(serial->rule.find("already used by device \"cam1\""), std::string::npos);
  EXPECT_NE(testing::find_error(errs, "device[2].token_sha256"), nullptr) << testing::dump(errs);
}

TEST(PushCamerasConfigTest, PushKeysBelongToPushCamerasAndProtocolToCameras) {
  const std::string on_modbus =
      edit(kMinimal, kModbusCamera, std::string(kModbusCamera) + "serial = \"X1\"\n");
  EXPECT_CONFIG_ERROR(errors_of(on_modbus), "device[0].serial", line_of(on_modbus, "serial ="),
                      "only allowed for a camera that pushes over HTTP");
  const std::string on_barrier =
      edit(kMinimal, "id = \"bar1\"\nkind = \"barrier\"\n",
           "id = \"bar1\"\nkind = \"barrier\"\nprotocol = \"vzenith\"\n");
  EXPECT_CONFIG_ERROR(errors_of(on_barrier), "device[1].protocol",
                      line_of(on_barrier, "protocol ="), "only allowed for kind = \"camera\"");
}

TEST(PushCamerasConfigTest, LimitsAreChecked) {
  const std::string small = std::string(kMinimal) + "\n[cameras]\nmax_body_bytes = 1000\n";
  EXPECT_CONFIG_ERROR(errors_of(small), "cameras.max_body_bytes", line_of(small, "max_body_bytes"),
                      "65536");
  const std::string wait = push_camera("vzenith", "reply_wait_ms = 50\n");
  EXPECT_NE(testing::find_error(errors_of(wait), "device[0].reply_wait_ms"), nullptr);
  const std::string hb = push_camera("dahua", "heartbeat_timeout_s = 5\n");
  EXPECT_NE(testing::find_error(errors_of(hb), "device[0].heartbeat_timeout_s"), nullptr);
}

TEST(PushCamerasConfigTest, NoPlateAfterIsOffOrAtLeastASecond) {
  Config off = load(edit(kMinimal, "tariff = \"std\"\n", "tariff = \"std\"\nno_plate_after_ms = 0\n"));
  EXPECT_EQ(off.lanes[0].no_plate_after_ms, 0);
  const std::string text =
      edit(kMinimal, "tariff = \"std\"\n", "tariff = \"std\"\nno_plate_after_ms = 500\n");
  EXPECT_CONFIG_ERROR(errors_of(text), "lane[0].no_plate_after_ms",
                      line_of(text, "no_plate_after_ms"), "at least 1000");
}

}  // namespace
}  // namespace lanegate::config
