// The simulator's HTTP control API (what the demo and operators script against), driven
// over real HTTP on loopback while the lane drivers watch over Modbus TCP.
#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/json.hpp>

#include "lane/drivers.h"
#include "lane_it_support.h"
#include "sim/devices.h"

namespace lanegate::lane {
namespace {

using namespace testing;
namespace json = boost::json;

TEST(SimControl, HttpApiDrivesDevicesAndReportsState) {
  TempDir tmp;
  config::Config cfg;
  cfg.buses.push_back(tcp_bus("lan"));
  cfg.devices.push_back(device("http-cam", config::DeviceKind::kCamera, "lan", 1));
  cfg.devices.push_back(device("http-loop", config::DeviceKind::kLoop, "lan", 2));
  cfg.devices.push_back(device("http-bar", config::DeviceKind::kBarrier, "lan", 3));
  config::SerialPortSection meter;
  meter.id = "http-meter";
  meter.device = (tmp.path() / "meter").string();
  cfg.meters.push_back(meter);
  config::LaneSection lane;
  lane.id = "gate";
  lane.camera = "http-cam";
  lane.loop = "http-loop";
  lane.barrier = "http-bar";
  cfg.lanes.push_back(lane);

  sim::DevicesSimOptions so;
  so.control_port = 0;
  so.meter_retransmit_ms = 100;
  auto sim = sim::DevicesSim::start(cfg, so);
  ASSERT_TRUE(sim) << sim.error().to_string();
  ASSERT_GT((*sim)->control_port(), 0);
  EXPECT_TRUE(std::filesystem::is_symlink(meter.device));
  cfg.buses[0].port = *(*sim)->tcp_port("lan");

  RecordingSink sink;
  DriverOptions opts;
  opts.ack_trips_on_receive = true;
  auto drivers = LaneDrivers::create(cfg, sink, SystemClock::instance(), opts);
  ASSERT_TRUE(drivers);
  ASSERT_TRUE((*drivers)->start());
  ASSERT_TRUE(sink.wait_health("http-cam", Health::kUp));

  httplib::Client http("127.0.0.1", (*sim)->control_port());
  http.set_read_timeout(5, 0);
  auto res = http.Post(
      "/vehicle", R"({"lane":"gate","plate":"粤BF12345","colour":4,"confidence":930,"class":1})",
      "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto read = sink.wait_for<PlateRead>([](const PlateRead& p) { return p.plate == "粤BF12345"; });
  ASSERT_TRUE(read);
  EXPECT_EQ(read->lane, "gate");
  EXPECT_EQ(provider_colour_name(read->colour), "GREEN");

  res = http.Post("/trip", R"({"meter":"http-meter","fare_fen":2560,"trip_number":31})",
                  "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto trip = sink.wait_for<TripRecord>([](const TripRecord& t) { return t.trip_number == 31; });
  ASSERT_TRUE(trip);
  EXPECT_EQ(trip->fare.fen(), 2560);

  // The meter goes occupied (0x00E7), and re-sends its stored trip (0x00F2).
  res = http.Post("/meter/http-meter/start", R"({"occupied_at":"2026-11-22T09:00:05"})",
                  "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto started = sink.wait_for<TripStarted>([](const TripStarted&) { return true; });
  ASSERT_TRUE(started);
  EXPECT_EQ(started->occupied_at, (CivilTime{2026, 11, 22, 9, 0}));
  res = http.Post("/meter/http-meter/resend", R"({"trip_number":31})", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->body, R"({"trip_numbers":[31]})");
  res = http.Post("/meter/http-meter/resend", R"({"trip_number":99})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_TRUE(eventually([&] {
    auto r = http.Get("/state");
    if (!r) return false;
    auto m = json::parse(r->body).as_object()["meters"].as_object()["http-meter"].as_object();
    return m["acked_stored"].as_array().size() == 1 && m["trip_starts_acked"].as_int64() == 1 &&
           m["bad_acks"].as_int64() == 0;
  }));

  res = http.Post("/device/http-loop/silent", "", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(sink.wait_health("http-loop", Health::kDown));

  // Bad requests are refused with a reason, not half-applied.
  res = http.Post("/vehicle", "not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = http.Post("/device/nope/silent", "", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_NE(res->body.find("nope"), std::string::npos);

  res = http.Get("/state");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  auto state = json::parse(res->body).as_object();
  EXPECT_EQ(state["devices"].as_object()["http-loop"].as_object()["silent"].as_bool(), true);
  EXPECT_EQ(state["devices"].as_object()["http-cam"].as_object()["sequence"].as_int64(), 1);
  EXPECT_TRUE(state["devices"].as_object()["http-bar"].as_object()["closed"].as_bool());
  (*drivers)->stop();
  (*sim)->stop();
  EXPECT_FALSE(std::filesystem::exists(meter.device)) << "symlink removed on stop";
}

}  // namespace
}  // namespace lanegate::lane
