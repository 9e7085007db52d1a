// [fleet]: off by default; when on, the centre's address and the box's certificate, key and
// the centre's CA are required, each refusal naming the key; ranges on the numbers.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "test_configs.h"

namespace lanegate::config {
namespace {

using testing::errors_of;
using testing::kMinimal;

bool names(const std::vector<ConfigError>& errors, std::string_view key) {
  for (const auto& e : errors) {
    if (e.to_string().find(key) != std::string::npos) return true;
  }
  return false;
}

TEST(FleetConfigTest, OffByDefaultAndOnWithEverythingItNeeds) {
  auto off = load_string(kMinimal, "test.toml");
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->fleet.enabled);
  auto on = load_string(std::string(kMinimal) +
                            "\n[fleet]\nenabled = true\nhost = \"fleet.example.cn\"\n"
                            "cert_file = \"/etc/lanegate/fleet.crt\"\n"
                            "key_file = \"/etc/lanegate/fleet.key\"\n"
                            "ca_file = \"/etc/lanegate/fleet-ca.crt\"\n",
                        "test.toml");
  ASSERT_TRUE(on) << testing::dump(on.error());
  EXPECT_TRUE(on->fleet.enabled);
  EXPECT_EQ(on->fleet.port, 8443);
  EXPECT_EQ(on->fleet.sync_interval_s, 60);
  EXPECT_EQ(on->fleet.batch_records, 500);
}

TEST(FleetConfigTest, EnabledWithoutTheCentreOrTheCertificatesNamesEachKey) {
  const auto errors = errors_of(std::string(kMinimal) + "\n[fleet]\nenabled = true\n");
  ASSERT_FALSE(errors.empty());
  for (const char* key : {"host", "cert_file", "key_file", "ca_file"}) {
    EXPECT_TRUE(names(errors, std::string("fleet.") + key)) << key << "\n" << testing::dump(errors);
  }
}

TEST(FleetConfigTest, NumbersOutOfRangeAreRefused) {
  const auto errors = errors_of(std::string(kMinimal) +
                                "\n[fleet]\nbatch_records = 6000\nsync_interval_s = 1\n");
  EXPECT_TRUE(names(errors, "fleet.batch_records")) << testing::dump(errors);
  EXPECT_TRUE(names(errors, "fleet.sync_interval_s")) << testing::dump(errors);
}

}  // namespace
}  // namespace lanegate::config
