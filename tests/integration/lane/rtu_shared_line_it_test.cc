// A busy RS-485 line shaped like the demo toll lane: camera, roadside unit, a lane
// controller (loop and barrier behind one unit id) and a display, all polled fast while
// the lane opens the barrier and writes the display. Every reply must answer the request
// it follows: no "response not from requested slave", no health flaps.
#include <gtest/gtest.h>

#include <thread>

#include "core/metrics.h"
#include "lane/drivers.h"
#include "lane_it_support.h"
#include "sim/devices.h"

namespace lanegate::lane {
namespace {

using namespace testing;
using config::DeviceKind;

std::int64_t metric(std::string_view name, metrics::Labels labels) {
  return std::max<std::int64_t>(0, metrics::Registry::global().value(name, labels));
}

struct SharedLineRig {
  config::Config cfg;
  std::unique_ptr<sim::DevicesSim> sim;
  RecordingSink sink;
  std::unique_ptr<LaneDrivers> drivers;
  ~SharedLineRig() {
    if (drivers) drivers->stop();
    if (sim) sim->stop();
  }
};

TEST(LaneRtuSharedLine, LaneControllerUnitAnswersOnceUnderLoad) {
  TempDir tmp;
  SharedLineRig rig;
  const std::string bus = "toll-line";
  rig.cfg.buses.push_back(rtu_bus(bus, (tmp.path() / "rtu0").string()));
  rig.cfg.devices.push_back(device("tl-cam", DeviceKind::kCamera, bus, 1));
  rig.cfg.devices.push_back(device("tl-rsu", DeviceKind::kRoadsideUnit, bus, 2));
  // One lane controller: loop (discrete input 0) and barrier (coil 0, inputs 1-2), unit 3.
  rig.cfg.devices.push_back(device("tl-loop", DeviceKind::kLoop, bus, 3));
  rig.cfg.devices.push_back(device("tl-bar", DeviceKind::kBarrier, bus, 3));
  rig.cfg.devices.push_back(device("tl-disp", DeviceKind::kDisplay, bus, 4));
  config::LaneSection lane;
  lane.id = "TL";
  lane.mode = config::LaneMode::kTollExit;
  lane.camera = "tl-cam";
  lane.roadside_unit = "tl-rsu";
  lane.loop = "tl-loop";
  lane.barrier = "tl-bar";
  lane.display = "tl-disp";
  rig.cfg.lanes.push_back(lane);

  sim::DevicesSimOptions sim_opts;
  sim_opts.control_port = -1;
  sim_opts.barrier_open_delay_ms = 50;
  sim_opts.barrier_hold_ms = 200;
  auto s = sim::DevicesSim::start(rig.cfg, sim_opts);
  ASSERT_TRUE(s) << s.error().to_string();
  rig.sim = std::move(*s);
  auto d = LaneDrivers::create(rig.cfg, rig.sink, SystemClock::instance(), {});
  ASSERT_TRUE(d) << d.error().to_string();
  rig.drivers = std::move(*d);
  ASSERT_TRUE(rig.drivers->start());
  for (const char* id : {"tl-cam", "tl-rsu", "tl-loop", "tl-bar", "tl-disp"}) {
    ASSERT_TRUE(rig.sink.wait_health(id, Health::kUp)) << id;
  }

  for (int i = 0; i < 12; ++i) {
    sim::VehicleArrival v;
    v.lane = "TL";
    v.plate = "粤B654" + std::to_string(10 + i);
    ASSERT_TRUE(rig.sim->vehicle_arrives(v));
    ASSERT_TRUE(rig.sink.wait_for<PlateRead>([&](const PlateRead& p) {
      return p.plate == v.plate;
    })) << "plate "
        << i;
    EXPECT_TRUE(rig.drivers->show_text("tl-disp", "一路顺风 " + std::to_string(i)));
    auto id = rig.drivers->open_barrier("tl-bar");
    ASSERT_TRUE(id);
    auto opened = rig.sink.wait_for<BarrierState>([&](const BarrierState& b) {
      return b.command_id == *id && b.command_result != BarrierState::CommandResult::kNone;
    });
    ASSERT_TRUE(opened) << "barrier open " << i;
    EXPECT_EQ(opened->command_result, BarrierState::CommandResult::kConfirmed) << opened->detail;
    ASSERT_TRUE(rig.sim->vehicle_leaves("TL"));
  }
  // The last display text reaches the display over the same line (bounded wait).
  std::string shown;
  for (int tries = 0; tries < 300 && shown != "一路顺风 11"; ++tries) {
    std::this_thread::sleep_for(10ms);
    auto text = rig.sim->display_text("tl-disp");
    ASSERT_TRUE(text);
    shown = *text;
  }
  EXPECT_EQ(shown, "一路顺风 11");
  std::this_thread::sleep_for(500ms);  // the line stays busy: a late stray reply would show
  EXPECT_EQ(metric("lanegate_modbus_requests_total", {{"bus", bus}, {"result", "protocol"}}), 0)
      << "replies answered the wrong request";
  EXPECT_GT(metric("lanegate_modbus_requests_total", {{"bus", bus}, {"result", "ok"}}), 200);
  for (const char* id : {"tl-cam", "tl-rsu", "tl-loop", "tl-bar", "tl-disp"}) {
    EXPECT_FALSE(rig.sink.wait_health(id, Health::kDegraded, 0ms)) << id << " flapped";
    EXPECT_FALSE(rig.sink.wait_health(id, Health::kDown, 0ms)) << id << " went down";
  }
}

}  // namespace
}  // namespace lanegate::lane
