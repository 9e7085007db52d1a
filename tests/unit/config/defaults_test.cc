// Keys left out take the defaults written in config.h; list defaults come from
// config/defaults.h; register addresses resolve through config/registers.h.
#include "config/defaults.h"

#include <gtest/gtest.h>

#include "config/config.h"
#include "config/registers.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

using testing::edit;
using testing::kMinimal;

Config load_minimal(std::string_view text = kMinimal) {
  auto loaded = load_string(text, "test.toml");
  EXPECT_TRUE(loaded) << testing::dump(loaded.error());
  return loaded ? *loaded : Config{};
}

TEST(ConfigDefaultsTest, SectionsLeftOutTakeTheStructDefaults) {
  Config c = load_minimal();
  EXPECT_EQ(c.source, "test.toml");
  EXPECT_EQ(c.gateway.state_dir, "/var/lib/lanegate");
  EXPECT_EQ(c.gateway.utc_offset_minutes, 480);
  EXPECT_EQ(c.gateway.log_level, "info");

  ApiSection api;
  EXPECT_EQ(c.api.listen_address, api.listen_address);
  EXPECT_EQ(c.api.listen_port, 8080);
  EXPECT_EQ(c.api.max_body_bytes, api.max_body_bytes);
  EXPECT_EQ(c.api.header_timeout_ms, api.header_timeout_ms);
  EXPECT_EQ(c.api.public_base_url, api.public_base_url);
  EXPECT_FALSE(c.api.tls.has_value());
  EXPECT_TRUE(c.api.tokens.empty());

  ProviderSection provider;
  EXPECT_EQ(c.provider.kind, "wechatpay-v3");
  EXPECT_EQ(c.provider.base_url, "https://api.mch.weixin.qq.com");
  EXPECT_TRUE(c.provider.verify_tls);
  EXPECT_FALSE(c.provider.ca_file.has_value());
  EXPECT_EQ(c.provider.charge_deadline_ms, provider.charge_deadline_ms);
  EXPECT_EQ(c.provider.request_timeout_ms, provider.request_timeout_ms);
  EXPECT_EQ(c.provider.certificate_refresh_s, 12 * 3600);

  OfflineLimits offline;
  EXPECT_EQ(c.offline.per_transaction, offline.per_transaction);
  EXPECT_EQ(c.offline.per_plate_outstanding, offline.per_plate_outstanding);
  EXPECT_EQ(c.offline.site_exposure, offline.site_exposure);
  EXPECT_EQ(c.offline.binding_max_age_s, offline.binding_max_age_s);

  QueueLimits queue;
  EXPECT_EQ(c.queue.max_rows, queue.max_rows);
  EXPECT_EQ(c.queue.max_bytes, queue.max_bytes);
  EXPECT_EQ(c.queue.retry_base_ms, queue.retry_base_ms);
  EXPECT_EQ(c.queue.retry_cap_ms, queue.retry_cap_ms);
  EXPECT_EQ(c.queue.lease_ms, queue.lease_ms);
}

TEST(ConfigDefaultsTest, TableKeysLeftOutTakeTheStructDefaults) {
  Config c = load_minimal();
  ASSERT_EQ(c.buses.size(), 1u);
  EXPECT_EQ(c.buses[0].transport, Transport::kTcp);
  EXPECT_EQ(c.buses[0].port, 502);
  EXPECT_EQ(c.buses[0].response_timeout_ms, 500);
  EXPECT_EQ(c.buses[0].reconnect_max_ms, 3000);

  const DeviceSection* cam = c.find_device("cam1");
  ASSERT_NE(cam, nullptr);
  EXPECT_EQ(cam->unit_id, 1);
  EXPECT_EQ(cam->byte_order, ByteOrder::kBig);
  EXPECT_EQ(cam->poll_interval_ms, 50);
  EXPECT_EQ(cam->encoding, "utf-8");
  EXPECT_EQ(cam->min_confidence, 800);
  EXPECT_EQ(cam->repeat_window_ms, 10000);
  EXPECT_TRUE(cam->registers.empty());
  const DeviceSection* barrier = c.find_device("bar1");
  ASSERT_NE(barrier, nullptr);
  EXPECT_EQ(barrier->open_confirm_timeout_ms, 5000);
  EXPECT_EQ(barrier->open_retries, 2);

  const LaneSection* lane = c.find_lane("in1");
  ASSERT_NE(lane, nullptr);
  EXPECT_EQ(lane->name, "in1");  // a lane without a name is shown by its id
  EXPECT_EQ(lane->exit_without_entry, "attendant");

  ASSERT_EQ(c.parking_tariffs.size(), 1u);
  const ParkingTariff& t = c.parking_tariffs[0];
  EXPECT_EQ(t.free_minutes, 15);
  EXPECT_EQ(t.unit_minutes, 30);
  EXPECT_EQ(t.day_rate.fen(), 300);
  EXPECT_EQ(t.night_rate.fen(), 100);
  EXPECT_EQ(t.daily_cap.fen(), 3000);
  EXPECT_EQ(t.rounding, "up");
}

TEST(ConfigDefaultsTest, PlatesDefaultToTheThirtyOneProvinces) {
  Config c = load_minimal();
  ASSERT_EQ(c.plates.provinces.size(), 31u);
  ASSERT_EQ(mainland_provinces().size(), 31u);
  for (std::size_t i = 0; i < 31; ++i) {
    EXPECT_EQ(c.plates.provinces[i], mainland_provinces()[i]);
  }
  EXPECT_TRUE(c.plates.allow_new_energy);
  EXPECT_EQ(PlateRules{}.provinces, c.plates.provinces);

  Config narrowed =
      load_minimal(std::string(kMinimal) + "\n[plates]\nprovinces = [\"粤\", \"湘\"]\n");
  EXPECT_EQ(narrowed.plates.provinces, (std::vector<std::string>{"粤", "湘"}));
}

TEST(ConfigDefaultsTest, TaxRulesDefaultPerService) {
  Config c = load_minimal();
  EXPECT_FALSE(c.invoicing.enabled);
  EXPECT_EQ(c.invoicing.claim_window_days, 30);
  ASSERT_EQ(c.invoicing.tax.size(), 2u);
  auto rule_for = [](const Config& cfg, std::string_view service) -> const TaxRule* {
    for (const TaxRule& r : cfg.invoicing.tax) {
      if (r.service == service) {
        return &r;
      }
    }
    return nullptr;
  };
  const TaxRule* parking = rule_for(c, "parking");
  ASSERT_NE(parking, nullptr);
  EXPECT_EQ(parking->code, "3040502020200000000");
  EXPECT_EQ(parking->rate_percent, 9);
  ASSERT_NE(rule_for(c, "taxi"), nullptr);
  EXPECT_EQ(rule_for(c, "taxi")->code, "3010101020203000000");
  EXPECT_EQ(rule_for(c, "taxi")->rate_percent, 3);
  EXPECT_EQ(rule_for(c, "taxi")->favoured_policy_flag, "08");
  // Tolls are issued by the national toll e-bill platform, never here (spec "Tolls").
  EXPECT_EQ(rule_for(c, "toll"), nullptr);
  EXPECT_FALSE(default_tax_rule("toll"));
  ASSERT_EQ(default_tax_rules().size(), 2u);

  // A listed service replaces its default; the others keep theirs.
  Config five = load_minimal(std::string(kMinimal) +
                             "\n[[invoicing.tax]]\nservice = \"parking\"\n"
                             "item_name = \"*经营租赁*停车费\"\ncode = \"3040502020200000000\"\n"
                             "rate_percent = 5\nfavoured_policy_flag = \"09\"\n");
  ASSERT_EQ(five.invoicing.tax.size(), 2u);
  EXPECT_EQ(rule_for(five, "parking")->rate_percent, 5);
  EXPECT_EQ(rule_for(five, "parking")->favoured_policy_flag, "09");
  EXPECT_EQ(rule_for(five, "taxi")->rate_percent, 3);
}

TEST(ConfigDefaultsTest, RegisterAddressesResolveOverridesThenDefaults) {
  Config c = load_minimal(edit(kMinimal, "kind = \"camera\"",
                               "kind = \"camera\"\nregisters = { sequence = 20, colour = 21 }"));
  const DeviceSection* cam = c.find_device("cam1");
  ASSERT_NE(cam, nullptr);
  EXPECT_EQ(register_address(*cam, "sequence"), 20);
  EXPECT_EQ(register_address(*cam, "colour"), 21);
  EXPECT_EQ(register_address(*cam, "plate_text"), 6);
  EXPECT_EQ(register_address(*cam, "open_command"), -1);  // not a camera register
  const DeviceSection* barrier = c.find_device("bar1");
  EXPECT_EQ(register_address(*barrier, "open_command"), 0);
  EXPECT_EQ(find_register(DeviceKind::kRoadsideUnit, "contract_id")->count, 16);  // 32 bytes
}

}  // namespace
}  // namespace lanegate::config
