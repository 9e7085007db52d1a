// Rules that relate several tables: ids, references, device kinds per lane mode. Each
// error points at the line of the key that holds the offending reference.
#include <gtest/gtest.h>

#include "config/config.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

using testing::edit;
using testing::errors_of;
using testing::kMinimal;
using testing::line_of;

TEST(ConfigReferencesTest, LaneCameraMustNameACamera) {
  std::string text = edit(kMinimal, "camera = \"cam1\"", "camera = \"cam9\"");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "lane[0].camera", 30, "no [[device]] with id \"cam9\"");

  text = edit(kMinimal, "camera = \"cam1\"", "camera = \"bar1\"");
  text = edit(text, "barrier = \"bar1\"", "barrier = \"cam1\"");
  errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "lane[0].camera", 30,
                      "device \"bar1\" has kind = \"barrier\", but this key needs a device of "
                      "kind = \"camera\"");
  EXPECT_CONFIG_ERROR(errors, "lane[0].barrier", 31, "needs a device of kind = \"barrier\"");
}

TEST(ConfigReferencesTest, DeviceBusMustNameABus) {
  std::string text = edit(kMinimal, "bus = \"b1\"\n\n[[device]]", "bus = \"b2\"\n\n[[device]]");
  EXPECT_CONFIG_ERROR(errors_of(text), "device[0].bus", 20, "no [[bus]] with id \"b2\"");
}

TEST(ConfigReferencesTest, DuplicateIdsNameTheFirstDefinition) {
  std::string text = edit(kMinimal, "id = \"bar1\"", "id = \"cam1\"");
  text = edit(text, "barrier = \"bar1\"", "barrier = \"cam1\"");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "device[1].id", 23,
                      "duplicate id \"cam1\" (first defined at line 18)");
  // Tariff ids are one namespace across parking and toll tariffs.
  text = std::string(kMinimal) +
         "\n[[tariff.toll]]\nid = \"std\"\n[[tariff.toll.fare]]\nentry_station = 1\n"
         "exit_station = 2\nfare = \"10.00\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "tariff.toll[0].id",
                      line_of(text, "id = \"std\"\n[[tariff.toll.fare"), "tariff ids are shared");
}

TEST(ConfigReferencesTest, ParkingLanesNeedCameraAndBarrier) {
  std::string text = edit(kMinimal, "camera = \"cam1\"\nbarrier = \"bar1\"\n", "");
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 2u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "lane[0].camera", 27, "required with mode = \"parking-entry\"");
  EXPECT_CONFIG_ERROR(errors, "lane[0].barrier", 27, "required with mode = \"parking-entry\"");
}

TEST(ConfigReferencesTest, TariffMustExistAndFitTheMode) {
  std::string text = edit(kMinimal, "tariff = \"std\"", "tariff = \"nope\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "lane[0].tariff", 32,
                      "no [[tariff.parking]] with id \"nope\"");
  text = std::string(kMinimal) +
         "\n[[tariff.toll]]\nid = \"hw\"\n[[tariff.toll.fare]]\nentry_station = 1\n"
         "exit_station = 2\nfare = \"10.00\"\n";
  text = edit(text, "tariff = \"std\"", "tariff = \"hw\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "lane[0].tariff", 32,
                      "\"hw\" is a [[tariff.toll]]; mode = \"parking-entry\" needs a "
                      "[[tariff.parking]]");
}

constexpr std::string_view kTollLane = R"(
[[device]]
id = "rsu1"
kind = "roadside_unit"
bus = "b1"
unit_id = 2

[[lane]]
id = "toll1"
mode = "toll-exit"
camera = "camT"
barrier = "barT"
roadside_unit = "rsu1"
station_id = 4403012
tariff = "hw"

[[device]]
id = "camT"
kind = "camera"
bus = "b1"
unit_id = 3

[[device]]
id = "barT"
kind = "barrier"
bus = "b1"
unit_id = 4

[[tariff.toll]]
id = "hw"
[[tariff.toll.fare]]
entry_station = 4401001
exit_station = 4403012
vehicle_class = 1
fare = "45.00"
)";

// ETC deduction is a service-provider API that names stations: a toll lane's config is
// kMinimal's merchant made a partner, with [provider.etc] and the station names.
constexpr std::string_view kEtcAndStations = R"(
[provider.etc]
bound_state = "BOUND"

[[station]]
id = 4403012
name = "深圳南"

[[station]]
id = 4401001
name = "广州北"
)";

std::string partner(std::string_view text) {
  return edit(std::string(text), "mchid = \"1900000001\"\nappid = \"wxtest\"\n",
              "mode = \"partner\"\nsp_mchid = \"1900000001\"\nsp_appid = \"wxtest\"\n"
              "sub_mchid = \"1900000109\"\n");
}

std::string toll_text() {
  return partner(kMinimal) + std::string(kTollLane) + std::string(kEtcAndStations);
}

TEST(ConfigReferencesTest, TollExitLaneLoads) {
  std::string text = toll_text();
  auto loaded = load_string(text, "test.toml");
  ASSERT_TRUE(loaded) << testing::dump(loaded.error());
  const LaneSection* toll = loaded->find_lane("toll1");
  ASSERT_NE(toll, nullptr);
  EXPECT_EQ(toll->station_id, 4403012u);
  ASSERT_EQ(loaded->toll_tariffs.size(), 1u);
  EXPECT_EQ(loaded->toll_tariffs[0].fares[0].fare.fen(), 4500);
  ASSERT_NE(loaded->find_station(4401001), nullptr);
  EXPECT_EQ(loaded->find_station(4401001)->name, "广州北");
  EXPECT_TRUE(loaded->provider.partner());
  EXPECT_EQ(loaded->provider.caller_mchid(), "1900000001");
  EXPECT_EQ(loaded->provider.sub_mchid, "1900000109");
  EXPECT_EQ(loaded->provider.etc.channel_type, "ETC");
}

TEST(ConfigReferencesTest, TollExitNeedsPartnerModeAndTheBoundState) {
  std::string text = std::string(kMinimal) + std::string(kTollLane) + std::string(kEtcAndStations);
  EXPECT_CONFIG_ERROR(errors_of(text), "lane[1].mode", line_of(text, "mode = \"toll-exit\""),
                      "needs mode = \"partner\"");
  text = edit(toll_text(), "bound_state = \"BOUND\"\n", "");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.etc", line_of(text, "[provider.etc]"),
                      "needs [provider.etc] bound_state");
}

TEST(ConfigReferencesTest, TollStationsNeedNames) {
  std::string text =
      edit(toll_text(), "[[station]]\nid = 4401001\nname = \"广州北\"\n", "");
  EXPECT_CONFIG_ERROR(errors_of(text), "tariff.toll[0].fare[0].entry_station",
                      line_of(text, "entry_station = 4401001"),
                      "no [[station]] with id 4401001: the ETC deduction names the entrance");
  text = edit(toll_text(), "[[station]]\nid = 4403012\nname = \"深圳南\"\n", "");
  EXPECT_CONFIG_ERROR(errors_of(text), "lane[1].station_id", line_of(text, "station_id = 4403012"),
                      "no [[station]] with id 4403012");
  text = toll_text() + "\n[[station]]\nid = 4401001\nname = \"again\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "station[2].id", line_of(text, "id = 4401001\nname = \"again"),
                      "duplicate station id 4401001");
}

TEST(ConfigReferencesTest, PartnerIdsBelongToTheirMode) {
  // Direct merchants have no sub merchant; partners name the service provider sp_*.
  std::string text = edit(std::string(kMinimal), "appid = \"wxtest\"\n",
                          "appid = \"wxtest\"\nsub_mchid = \"1900000109\"\n");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.sub_mchid", line_of(text, "sub_mchid"),
                      "only with mode = \"partner\"");
  text = edit(std::string(kMinimal), "mchid = \"1900000001\"\n",
              "mode = \"partner\"\nmchid = \"1900000001\"\n");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "provider.mchid", line_of(text, "mchid = \"1900000001\""),
                      "partner mode: the service provider's id is sp_mchid");
  EXPECT_CONFIG_ERROR(errors, "provider.sp_mchid", line_of(text, "[provider]"), "required");
  EXPECT_CONFIG_ERROR(errors, "provider.sub_mchid", line_of(text, "[provider]"), "required");
  text = edit(partner(kMinimal), "sub_mchid = \"1900000109\"", "sub_mchid = \"1900000001\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.sub_mchid", line_of(text, "sub_mchid"),
                      "must differ from sp_mchid");
}

TEST(ConfigReferencesTest, EtcValueSetsAreConfigurationNotGuesses) {
  std::string text = edit(toll_text(), "bound_state = \"BOUND\"\n",
                          "bound_state = \"BOUND\"\nchannel_type = \"LANE\"\n");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.etc.channel_type",
                      line_of(text, "channel_type = \"LANE\""), "must be one of channel_types");
  text = edit(toll_text(), "bound_state = \"BOUND\"\n",
              "bound_state = \"BOUND\"\nchannel_types = [\"ETC\", \"LANE\"]\n"
              "channel_type = \"LANE\"\n\n[[provider.etc.car_type]]\nvehicle_class = 1\n"
              "value = \"CAR\"\n\n[[provider.etc.car_type]]\nvehicle_class = 1\nvalue = \"car\"\n");
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "provider.etc.car_type[1].vehicle_class",
                      line_of(text, "vehicle_class = 1\nvalue = \"car\""),
                      "duplicate car_type for vehicle_class 1");
  EXPECT_CONFIG_ERROR(errors, "provider.etc.car_type[1].value", line_of(text, "value = \"car\""),
                      "must be 1..32 of A-Z 0-9 _");
  EXPECT_EQ(errors.size(), 2u) << testing::dump(errors);
}

TEST(ConfigReferencesTest, TollExitNeedsRoadsideUnitAndStationId) {
  std::string text = toll_text();
  text = edit(text, "roadside_unit = \"rsu1\"\nstation_id = 4403012\n", "");
  auto errors = errors_of(text);
  int lane = line_of(text, "id = \"toll1\"") - 1;
  EXPECT_CONFIG_ERROR(errors, "lane[1].roadside_unit", lane, "required with mode = \"toll-exit\"");
  EXPECT_CONFIG_ERROR(errors, "lane[1].station_id", lane, "required with mode = \"toll-exit\"");
}

TEST(ConfigReferencesTest, TollTariffMustCoverTheLanesStation) {
  std::string text = toll_text();
  text = edit(text, "station_id = 4403012", "station_id = 4403013");
  EXPECT_CONFIG_ERROR(errors_of(text), "lane[1].tariff", line_of(text, "tariff = \"hw\""),
                      "has no fare with exit_station = 4403013");
}

TEST(ConfigReferencesTest, DuplicateTollFares) {
  std::string text = toll_text() +
                     "[[tariff.toll.fare]]\nentry_station = 4401001\nexit_station = 4403012\n"
                     "fare = \"50.00\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "tariff.toll[0].fare[1].fare", line_of(text, "\"50.00\""),
                      "duplicate fare for entry_station 4401001, exit_station 4403012, "
                      "vehicle_class 1");
}

TEST(ConfigReferencesTest, TaxiNeedsAMeterAndNoLaneDevices) {
  std::string text =
      std::string(kMinimal) + "\n[[lane]]\nid = \"taxi\"\nmode = \"taxi\"\ncamera = \"cam1\"\n";
  auto errors = errors_of(text);
  int lane = line_of(text, "id = \"taxi\"") - 1;
  EXPECT_CONFIG_ERROR(errors, "lane[1].meter", lane, "required with mode = \"taxi\"");
  EXPECT_CONFIG_ERROR(errors, "lane[1].camera", lane + 3, "not used with mode = \"taxi\"");

  text = std::string(kMinimal) + "\n[[lane]]\nid = \"taxi\"\nmode = \"taxi\"\nmeter = \"m1\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "lane[1].meter", line_of(text, "meter = \"m1\""),
                      "no [[meter]] with id \"m1\"");
  text += "\n[[meter]]\nid = \"m1\"\ndevice = \"/dev/ttyS1\"\n";
  EXPECT_TRUE(errors_of(text).empty()) << testing::dump(errors_of(text));
}

TEST(ConfigReferencesTest, OneLanePerDeviceAndOneMasterPerSerialLine) {
  std::string text = std::string(kMinimal) +
                     "\n[[lane]]\nid = \"in2\"\nmode = \"parking-entry\"\ncamera = \"cam1\"\n"
                     "barrier = \"bar1\"\ntariff = \"std\"\n";
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "lane[1].camera", line_of(text, "id = \"in2\"") + 2,
                      "device \"cam1\" is already used by lane[0].camera (line 30)");

  text = std::string(kMinimal) +
         "\n[[bus]]\nid = \"rtu\"\ntransport = \"rtu\"\nserial_device = \"/dev/ttyS0\"\n"
         "\n[[meter]]\nid = \"m1\"\ndevice = \"/dev/ttyS0\"\n";
  EXPECT_CONFIG_ERROR(errors_of(text), "meter[0].device",
                      line_of(text, "\ndevice = \"/dev/ttyS0\"") + 1,
                      "serial device \"/dev/ttyS0\" is already used by bus[1].serial_device");
}

TEST(ConfigReferencesTest, UnitIdsPerTransport) {
  std::string text =
      std::string(kMinimal) +
      "\n[[bus]]\nid = \"rtu\"\ntransport = \"rtu\"\nserial_device = \"/dev/ttyS0\"\n"
      "\n[[device]]\nid = \"d1\"\nkind = \"loop\"\nbus = \"rtu\"\nunit_id = 0\n"
      "\n[[device]]\nid = \"d2\"\nkind = \"loop\"\nbus = \"b1\"\nunit_id = 1\n";
  auto errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "device[2].unit_id", line_of(text, "unit_id = 0"),
                      "must be in 1..247 on an RTU bus");
  // cam1 and d2 are both unit 1 on b1 but of different kinds: fine. A second camera is not.
  EXPECT_EQ(testing::find_error(errors, "device[3].unit_id"), nullptr);
  text = edit(text, "kind = \"loop\"\nbus = \"b1\"", "kind = \"camera\"\nbus = \"b1\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "device[3].unit_id", line_of(text, "unit_id = 1"),
                      "bus \"b1\" unit 1 already has a camera: device \"cam1\"");
}

TEST(ConfigReferencesTest, PublicKeyIdMustBeAPlatformKey) {
  std::string text = edit(kMinimal, "appid = \"wxtest\"",
                          "appid = \"wxtest\"\npublic_key_id = \"PUB_KEY_ID_0112\"");
  EXPECT_CONFIG_ERROR(errors_of(text), "provider.public_key_id", line_of(text, "public_key_id"),
                      "no [[provider.platform_key]] with id \"PUB_KEY_ID_0112\"");
  text += "\n[[provider.platform_key]]\nid = \"PUB_KEY_ID_0112\"\nfile = \"/keys/pub.pem\"\n";
  EXPECT_TRUE(errors_of(text).empty()) << testing::dump(errors_of(text));
}

// Issue 13: a lease shorter than one charge work item let the drainer send the charge again
// while its first request was in flight. The rule names the key, the rule and the minimum.
TEST(ConfigReferencesTest, LeaseMustCoverTheWorstCaseOfOneChargeWorkItem) {
  // Defaults: 4 x (2000 + 10000) = 48000 ms <= 60000.
  EXPECT_TRUE(errors_of(kMinimal).empty()) << testing::dump(errors_of(kMinimal));

  std::string text = std::string(kMinimal) + "\n[queue]\nlease_ms = 30000\n";
  auto errors = errors_of(text);
  ASSERT_EQ(errors.size(), 1u) << testing::dump(errors);
  EXPECT_CONFIG_ERROR(errors, "queue.lease_ms", line_of(text, "lease_ms"),
                      "must cover the worst case of one charge work item");
  EXPECT_NE(errors[0].rule.find("4 x (2000 + 10000) = 48000 ms; got 30000"), std::string::npos)
      << errors[0].rule;
  EXPECT_NE(errors[0].rule.find("provider.connect_timeout_ms + provider.request_timeout_ms"),
            std::string::npos)
      << errors[0].rule;
  text = edit(text, "lease_ms = 30000", "lease_ms = 48000");  // exactly the minimum
  EXPECT_TRUE(errors_of(text).empty()) << testing::dump(errors_of(text));

  // Raising the provider timeouts raises the minimum; with lease_ms left at its default the
  // error points at the timeout that did it.
  text = edit(kMinimal, "notify_url = \"https://gw.example.cn/notify\"",
              "notify_url = \"https://gw.example.cn/notify\"\nconnect_timeout_ms = 5000\n"
              "request_timeout_ms = 20000");
  errors = errors_of(text);
  EXPECT_CONFIG_ERROR(errors, "queue.lease_ms", line_of(text, "request_timeout_ms"),
                      "4 x (5000 + 20000) = 100000 ms; got 60000");
  text += "\n[queue]\nlease_ms = 100000\n";
  EXPECT_TRUE(errors_of(text).empty()) << testing::dump(errors_of(text));
}

}  // namespace
}  // namespace lanegate::config
