#pragma once
// A sandbox on 127.0.0.1 (port 0, fresh SQLite file in a per-test temp dir, demo seed)
// and a WechatPayClient configured the way a deployment would be (PEM files, CA file).

#include <gtest/gtest.h>

#include <memory>

#include "../../unit/provider/provider_test_support.h"
#include "config/config.h"
#include "core/time_format.h"
#include "gateway/provider_wechatpay.h"
#include "sim/provider_sandbox.h"

namespace provider_test {

inline const char* kMchid = "1900000001";
inline const char* kAppid = "wxd678efh567hg6787";
inline const char* kPlate = "粤B12345";
inline const char* kOpenid = "oLANEGATEdemo0001normal";
inline const char* kOverduePlate = "粤B66666";
// The demo seed's service provider and the special merchant it serves (partner mode).
inline const char* kSpMchid = "1900000100";
inline const char* kSpAppid = "wxd678efh567hg6800";
inline const char* kSubMchid = "1900000109";
inline const char* kSubAppid = "wxd678efh567hg6909";
// Seed ETC contracts (32 characters, like the spec's examples) under kSubMchid.
inline const char* kBoundContract = "wxLGdemoETCcontract0000000000001";    // 粤B12345, BOUND
inline const char* kOverdueContract = "wxLGdemoETCcontract0000000000003";  // 粤B66666, BOUND
inline const char* kUnboundContract = "wxLGdemoETCcontract0000000000009";  // 粤A00001

class ProviderFixture : public ::testing::Test {
 protected:
  void SetUp() override { start_sandbox(); }
  void TearDown() override {
    if (sandbox_) {
      sandbox_->stop();
    }
  }

  void start_sandbox(double time_factor = 0.01) {
    lanegate::sim::ProviderSandboxOptions o;
    o.pki_dir = demo_pki();
    o.seed_file = std::filesystem::path(LANEGATE_SOURCE_DIR) / "sim/seed/provider-demo.json";
    o.db_file = dir_.path() / "sandbox.db";
    o.time_factor = time_factor;
    auto s = lanegate::sim::ProviderSandbox::start(o);
    ASSERT_TRUE(s) << s.error().to_string();
    sandbox_ = std::move(*s);
  }

  lanegate::config::ProviderSection config() const {
    lanegate::config::ProviderSection c;
    c.base_url = sandbox_->base_url();
    c.mchid = kMchid;
    c.appid = kAppid;
    c.merchant_serial_no = trim(read_file(demo_pki() / "merchant.serial"));
    c.merchant_private_key_file = demo_pki() / "merchant.key";
    c.apiv3_key_file = demo_pki() / "apiv3.key";
    c.platform_keys = {
        {trim(read_file(demo_pki() / "platform.serial")), demo_pki() / "platform.pem"},
        {trim(read_file(demo_pki() / "pubkey.id")), demo_pki() / "pubkey.pub.pem"}};
    c.notify_url = "https://127.0.0.1:9/notify";
    c.ca_file = demo_pki() / "ca.pem";
    c.verify_tls = true;
    c.connect_timeout_ms = 1000;
    c.charge_deadline_ms = 2000;
    c.request_timeout_ms = 3000;
    return c;
  }

  // The same box as a special merchant of the seed's service provider.
  lanegate::config::ProviderSection partner_config() const {
    lanegate::config::ProviderSection c = config();
    c.mode = lanegate::config::ProviderMode::kPartner;
    c.mchid.clear();
    c.appid.clear();
    c.sp_mchid = kSpMchid;
    c.sp_appid = kSpAppid;
    c.sub_mchid = kSubMchid;
    c.sub_appid = kSubAppid;
    c.etc.bound_state = "BOUND";
    c.etc.car_types = {{1, "CAR"}};
    return c;
  }

  std::unique_ptr<lanegate::gateway::WechatPayClient> client(
      const lanegate::config::ProviderSection& c) {
    auto made = lanegate::gateway::WechatPayClient::create(c, clock_);
    EXPECT_TRUE(made) << made.error().to_string();
    return made ? std::move(*made) : nullptr;
  }
  std::unique_ptr<lanegate::gateway::WechatPayClient> client() { return client(config()); }

  lanegate::gateway::ParkingEntryRequest entry(const std::string& no,
                                               const std::string& plate = kPlate,
                                               const std::string& color = "BLUE") {
    lanegate::gateway::ParkingEntryRequest r;
    r.out_parking_no = no;
    r.plate_number = plate;
    r.plate_color = color;
    r.start_time = clock_.now() - std::chrono::hours(2);
    r.parking_name = "lanegate demo lot";
    r.free_duration_s = 900;
    return r;
  }

  lanegate::gateway::ChargeRequest parking_charge(const std::string& out_trade_no,
                                                  const std::string& parking_id, std::int64_t fen,
                                                  const std::string& plate = kPlate) {
    lanegate::gateway::ChargeRequest r;
    r.product = lanegate::gateway::Product::kParking;
    r.out_trade_no = out_trade_no;
    r.description = "停车费 lanegate demo lot";
    r.amount = lanegate::Money::from_fen(fen);
    r.parking.parking_id = parking_id;
    r.parking.plate_number = plate;
    r.parking.plate_color = "BLUE";
    r.parking.start_time = clock_.now() - std::chrono::hours(2);
    r.parking.end_time = clock_.now();
    r.parking.parking_name = "lanegate demo lot";
    r.parking.charging_duration_s = 7200;
    r.parking.device_id = "lane-1";
    return r;
  }

  // Polls (bounded) until the sandbox holds `no` in `state`.
  bool wait_for_state(lanegate::gateway::WechatPayClient& c, const std::string& no,
                      lanegate::gateway::TradeState state,
                      lanegate::gateway::Product product = lanegate::gateway::Product::kParking) {
    for (int i = 0; i < 200; ++i) {
      auto t = c.query_transaction(product, no);
      if (t && t->state == state) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  TempDir dir_;
  lanegate::SystemClock clock_;
  std::unique_ptr<lanegate::sim::ProviderSandbox> sandbox_;
};

}  // namespace provider_test
