// A parking lane on a Modbus TCP bus shaped like the demo's: camera on unit 1, and one lane
// controller on unit 2 with the loop (discrete input 0) and the barrier (coil 0, inputs 1-2)
// behind it. Both must work through that one unit: the loop's vehicle-present reaches the
// gateway's drivers and clears when the vehicle leaves, and a barrier open is confirmed.
#include <gtest/gtest.h>

#include "lane/drivers.h"
#include "lane_it_support.h"
#include "sim/devices.h"

namespace lanegate::lane {
namespace {

using namespace testing;
using config::DeviceKind;

struct SharedUnitRig {
  config::Config cfg;
  std::unique_ptr<sim::DevicesSim> sim;
  RecordingSink sink;
  std::unique_ptr<LaneDrivers> drivers;
  ~SharedUnitRig() {
    if (drivers) drivers->stop();
    if (sim) sim->stop();
  }
};

TEST(LaneTcpSharedUnit, LoopAndBarrierOnOneUnitBothWork) {
  SharedUnitRig rig;
  const std::string bus = "park-tcp";
  rig.cfg.buses.push_back(tcp_bus(bus));
  rig.cfg.devices.push_back(device("pk-cam", DeviceKind::kCamera, bus, 1));
  rig.cfg.devices.push_back(device("pk-loop", DeviceKind::kLoop, bus, 2));
  rig.cfg.devices.push_back(device("pk-bar", DeviceKind::kBarrier, bus, 2));
  config::LaneSection lane;
  lane.id = "PK";
  lane.mode = config::LaneMode::kParkingEntry;
  lane.camera = "pk-cam";
  lane.loop = "pk-loop";
  lane.barrier = "pk-bar";
  rig.cfg.lanes.push_back(lane);

  sim::DevicesSimOptions sim_opts;
  sim_opts.control_port = -1;
  sim_opts.barrier_open_delay_ms = 50;
  sim_opts.barrier_hold_ms = 200;
  auto s = sim::DevicesSim::start(rig.cfg, sim_opts);
  ASSERT_TRUE(s) << s.error().to_string();
  rig.sim = std::move(*s);
  // The drivers connect to the port the simulator actually bound.
  auto port = rig.sim->tcp_port(bus);
  ASSERT_TRUE(port) << port.error().to_string();
  rig.cfg.buses[0].port = *port;
  auto d = LaneDrivers::create(rig.cfg, rig.sink, SystemClock::instance(), {});
  ASSERT_TRUE(d) << d.error().to_string();
  rig.drivers = std::move(*d);
  ASSERT_TRUE(rig.drivers->start());
  for (const char* id : {"pk-cam", "pk-loop", "pk-bar"}) {
    ASSERT_TRUE(rig.sink.wait_health(id, Health::kUp)) << id;
  }

  for (int i = 0; i < 3; ++i) {
    const size_t mark = rig.sink.size();
    sim::VehicleArrival v;
    v.lane = "PK";
    v.plate = "粤B7730" + std::to_string(i);
    ASSERT_TRUE(rig.sim->vehicle_arrives(v));
    ASSERT_TRUE(rig.sink.wait_for<VehiclePresent>(
        [](const VehiclePresent& p) { return p.device == "pk-loop" && p.present; }, 5s, mark))
        << "the loop's vehicle-present never reached the drivers (vehicle " << i << ")";
    ASSERT_TRUE(rig.sink.wait_for<PlateRead>(
        [&](const PlateRead& p) { return p.plate == v.plate; }, 5s, mark))
        << "plate " << i;
    auto id = rig.drivers->open_barrier("pk-bar");
    ASSERT_TRUE(id);
    auto opened = rig.sink.wait_for<BarrierState>(
        [&](const BarrierState& b) {
          return b.command_id == *id && b.command_result != BarrierState::CommandResult::kNone;
        },
        5s, mark);
    ASSERT_TRUE(opened) << "barrier open " << i;
    EXPECT_EQ(opened->command_result, BarrierState::CommandResult::kConfirmed) << opened->detail;
    const size_t before_leave = rig.sink.size();
    ASSERT_TRUE(rig.sim->vehicle_leaves("PK"));
    ASSERT_TRUE(rig.sink.wait_for<VehiclePresent>(
        [](const VehiclePresent& p) { return p.device == "pk-loop" && !p.present; }, 5s,
        before_leave))
        << "the loop never cleared after the vehicle left (vehicle " << i << ")";
  }
  for (const char* id : {"pk-cam", "pk-loop", "pk-bar"}) {
    EXPECT_FALSE(rig.sink.wait_health(id, Health::kDown, 0ms)) << id << " went down";
  }
}

}  // namespace
}  // namespace lanegate::lane
