// Lane drivers against the simulated devices over real Modbus: TCP on loopback and RTU
// over pseudo-terminals.
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "core/metrics.h"
#include "lane/cli.h"
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


struct Rig {
  config::Config cfg;
  std::unique_ptr<sim::DevicesSim> sim;
  RecordingSink sink;
  std::unique_ptr<LaneDrivers> drivers;

  void start_sim(sim::DevicesSimOptions opts = {}) {
    opts.control_port = -1;
    auto s = sim::DevicesSim::start(cfg, opts);
    ASSERT_TRUE(s) << s.error().to_string();
    sim = std::move(*s);
    for (auto& b : cfg.buses) {
      if (b.transport == config::Transport::kTcp) {
        b.port = *sim->tcp_port(b.id);  // the drivers connect to the bound port
      }
    }
  }
  void start_drivers(DriverOptions opts = {}) {
    auto d = LaneDrivers::create(cfg, sink, SystemClock::instance(), opts);
    ASSERT_TRUE(d) << d.error().to_string();
    drivers = std::move(*d);
    ASSERT_TRUE(drivers->start());
  }
  ~Rig() {
    if (drivers) drivers->stop();
    if (sim) sim->stop();
  }
};

config::LaneSection parking_lane(std::string id, std::string prefix) {
  config::LaneSection l;
  l.id = std::move(id);
  l.mode = config::LaneMode::kParkingExit;
  l.camera = prefix + "cam";
  l.loop = prefix + "loop";
  l.barrier = prefix + "bar";
  l.display = prefix + "disp";
  return l;
}

void add_parking_devices(config::Config& cfg, const std::string& bus, const std::string& prefix) {
  cfg.devices.push_back(device(prefix + "cam", DeviceKind::kCamera, bus, 1));
  cfg.devices.push_back(device(prefix + "loop", DeviceKind::kLoop, bus, 2));
  cfg.devices.push_back(device(prefix + "bar", DeviceKind::kBarrier, bus, 3));
  cfg.devices.push_back(device(prefix + "disp", DeviceKind::kDisplay, bus, 4));
}

TEST(LaneTcp, VehicleReadEndToEnd) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  add_parking_devices(rig.cfg, "lan", "e2e-");
  rig.cfg.lanes.push_back(parking_lane("exit1", "e2e-"));
  rig.start_sim();
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("e2e-cam", Health::kUp));

  sim::VehicleArrival v;
  v.lane = "exit1";
  v.plate = "粤B12345";
  v.colour = 0;
  v.confidence = 950;
  v.vehicle_class = 1;
  v.time = 1'790'000'123;
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  auto read = rig.sink.wait_for<PlateRead>([](const PlateRead&) { return true; });
  ASSERT_TRUE(read);
  EXPECT_EQ(read->lane, "exit1");
  EXPECT_EQ(read->device, "e2e-cam");
  EXPECT_EQ(read->plate, "粤B12345");
  EXPECT_EQ(provider_colour_name(read->colour), "BLUE");
  EXPECT_EQ(read->confidence, 950);
  EXPECT_EQ(read->vehicle_class, 1);
  EXPECT_EQ(read->device_time, SystemTime(std::chrono::seconds(1'790'000'123)));
  auto present = rig.sink.wait_for<VehiclePresent>(
      [](const VehiclePresent& p) { return p.present && p.lane == "exit1"; });
  EXPECT_TRUE(present);

  // The same plate again on the same lane inside the window: suppressed and counted.
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  ASSERT_TRUE(eventually([] {
    return metric("lanegate_plate_rejected_total", {{"device", "e2e-cam"}, {"reason", "repeat"}}) ==
           1;
  }));
  // Low confidence and an impossible plate: dropped, counted by reason.
  v.plate = "粤B54321";
  v.confidence = 400;
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  EXPECT_TRUE(eventually([] {
    return metric("lanegate_plate_rejected_total",
                  {{"device", "e2e-cam"}, {"reason", "low_confidence"}}) == 1;
  }));
  v.plate = "粤I12345";
  v.confidence = 990;
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  EXPECT_TRUE(eventually([] {
    return metric("lanegate_plate_rejected_total",
                  {{"device", "e2e-cam"}, {"reason", "bad_character"}}) == 1;
  }));
  EXPECT_EQ(rig.sink.all<PlateRead>().size(), 1u);

  // Barrier: open command written on the bus thread, confirmed by the opened input.
  auto id = rig.drivers->open_barrier("e2e-bar");
  ASSERT_TRUE(id);
  auto confirmed = rig.sink.wait_for<BarrierState>([&](const BarrierState& s) {
    return s.command_id == *id && s.command_result != BarrierState::CommandResult::kNone;
  });
  ASSERT_TRUE(confirmed);
  EXPECT_EQ(confirmed->command_result, BarrierState::CommandResult::kConfirmed);
  EXPECT_EQ(confirmed->position, BarrierState::Position::kOpen);
  EXPECT_EQ(confirmed->attempts, 1);
  EXPECT_EQ(rig.sim->barrier("e2e-bar")->open_commands, 1);

  // Display text goes out as GBK and reads back the same.
  ASSERT_TRUE(rig.drivers->show_text("e2e-disp", "粤B12345 一路顺风"));
  EXPECT_TRUE(eventually(
      [&] { return rig.sim->display_text("e2e-disp").value_or("") == "粤B12345 一路顺风"; }));
  EXPECT_FALSE(rig.drivers->show_text("e2e-cam", "x"));  // not a display
}

TEST(LaneTcp, GbkCameraWithLittleEndianOrdersAndMovedRegisters) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  auto cam = device("gbk-cam", DeviceKind::kCamera, "lan", 7);
  cam.encoding = "gbk";
  cam.byte_order = config::ByteOrder::kLittle;
  cam.word_order = config::ByteOrder::kLittle;
  cam.registers = {{"sequence", 300},    {"colour", 301},     {"confidence", 302},   {"time", 303},
                   {"text_length", 305}, {"plate_text", 306}, {"vehicle_class", 314}};
  rig.cfg.devices.push_back(cam);
  rig.start_sim();
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("gbk-cam", Health::kUp));
  sim::VehicleArrival v;
  v.camera = "gbk-cam";
  v.plate = "京AD12345";
  v.colour = 4;
  v.confidence = 990;
  v.vehicle_class = 11;
  v.time = 1'790'000'500;
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  auto read = rig.sink.wait_for<PlateRead>([](const PlateRead&) { return true; });
  ASSERT_TRUE(read);
  EXPECT_EQ(read->plate, "京AD12345");
  EXPECT_EQ(provider_colour_name(read->colour), "GREEN");
  EXPECT_EQ(read->vehicle_class, 11);
  EXPECT_EQ(read->device_time, SystemTime(std::chrono::seconds(1'790'000'500)));
}

TEST(LaneTcp, SilentDeviceGoesDownOthersKeepPollingAndItReturns) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  add_parking_devices(rig.cfg, "lan", "sil-");
  rig.cfg.lanes.push_back(parking_lane("L2", "sil-"));
  rig.start_sim();
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("sil-cam", Health::kUp));
  ASSERT_TRUE(rig.sink.wait_health("sil-loop", Health::kUp));

  ASSERT_TRUE(rig.sim->set_silent("sil-loop", true));
  ASSERT_TRUE(rig.sink.wait_health("sil-loop", Health::kDown));
  // The camera on the same connection still reads plates while the loop is silent.
  sim::VehicleArrival v;
  v.lane = "L2";
  v.plate = "粤B77777";
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  EXPECT_TRUE(
      rig.sink.wait_for<PlateRead>([](const PlateRead& p) { return p.plate == "粤B77777"; }));
  EXPECT_FALSE(rig.sink.wait_health("sil-cam", Health::kDown, 0ms));
  EXPECT_EQ(*rig.drivers->health("sil-loop"), Health::kDown);
  EXPECT_GE(metric("lanegate_device_transitions_total", {{"device", "sil-loop"}, {"to", "down"}}),
            1);
  EXPECT_EQ(metrics::Registry::global().value("lanegate_device_health", {{"device", "sil-loop"}}),
            0);

  // It answers again: polling resumes by itself and the loop reports the vehicle.
  const size_t mark = rig.sink.size();
  ASSERT_TRUE(rig.sim->set_silent("sil-loop", false));
  ASSERT_TRUE(rig.sink.wait_health("sil-loop", Health::kUp, 5s, mark));
  EXPECT_TRUE(rig.sink.wait_for<VehiclePresent>(
      [](const VehiclePresent& p) { return p.device == "sil-loop" && p.present; }));
  EXPECT_EQ(metrics::Registry::global().value("lanegate_device_health", {{"device", "sil-loop"}}),
            2);
}

TEST(LaneTcp, ACameraThatMissesVehiclesIsDegradedUntilItReadsOne) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  add_parking_devices(rig.cfg, "lan", "miss-");
  rig.cfg.lanes.push_back(parking_lane("L3", "miss-"));
  rig.start_sim();
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("miss-cam", Health::kUp));
  const auto missed_before =
      metric("lanegate_camera_missed_vehicles_total", {{"device", "miss-cam"}});
  // Two vehicles the loop saw without a read: still up.
  rig.drivers->vehicle_seen("miss-cam", true);
  rig.drivers->vehicle_seen("miss-cam", true);
  EXPECT_FALSE(rig.sink.wait_health("miss-cam", Health::kDegraded, 300ms));
  // The third: degraded, although the camera answers every poll.
  rig.drivers->vehicle_seen("miss-cam", true);
  const auto degraded = rig.sink.wait_health("miss-cam", Health::kDegraded);
  ASSERT_TRUE(degraded);
  EXPECT_NE(degraded->detail.find("3 vehicles in a row without a read"), std::string::npos);
  EXPECT_EQ(metric("lanegate_camera_missed_vehicles_total", {{"device", "miss-cam"}}),
            missed_before + 3);
  std::this_thread::sleep_for(200ms);  // ten good polls do not hide it
  EXPECT_EQ(*rig.drivers->health("miss-cam"), Health::kDegraded);
  // A read: up again.
  const size_t mark = rig.sink.size();
  rig.drivers->vehicle_seen("miss-cam", false);
  EXPECT_TRUE(rig.sink.wait_health("miss-cam", Health::kUp, 5s, mark));
}

TEST(LaneTcp, ReconnectsAfterTheServerRestarts) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  rig.cfg.devices.push_back(device("rc-cam", DeviceKind::kCamera, "lan", 1));
  rig.start_sim();
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("rc-cam", Health::kUp));
  rig.sim->stop();
  rig.sim.reset();
  ASSERT_TRUE(rig.sink.wait_health("rc-cam", Health::kDown));
  const size_t mark = rig.sink.size();
  rig.start_sim();  // same port (cfg now holds the bound port)
  ASSERT_TRUE(rig.sink.wait_health("rc-cam", Health::kUp, 5s, mark));
  sim::VehicleArrival v;
  v.camera = "rc-cam";
  v.plate = "粤B24680";
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  EXPECT_TRUE(
      rig.sink.wait_for<PlateRead>([](const PlateRead& p) { return p.plate == "粤B24680"; }));
}

TEST(LaneTcp, StuckBarrierRaisesAnAlarmAfterRetries) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  auto bar = device("stuck-bar", DeviceKind::kBarrier, "lan", 3);
  bar.open_confirm_timeout_ms = 300;
  bar.open_retries = 2;
  rig.cfg.devices.push_back(bar);
  rig.start_sim();
  ASSERT_TRUE(rig.sim->set_barrier_stuck("stuck-bar", true));
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("stuck-bar", Health::kUp));
  auto id = rig.drivers->open_barrier("stuck-bar");
  ASSERT_TRUE(id);
  auto alarm = rig.sink.wait_for<BarrierState>([&](const BarrierState& s) {
    return s.command_id == *id && s.command_result != BarrierState::CommandResult::kNone;
  });
  ASSERT_TRUE(alarm);
  EXPECT_EQ(alarm->command_result, BarrierState::CommandResult::kAlarm);
  EXPECT_EQ(alarm->attempts, 3);  // first write + 2 retries
  EXPECT_EQ(rig.sim->barrier("stuck-bar")->open_commands, 3);
  EXPECT_EQ(metric("lanegate_barrier_alarms_total", {{"device", "stuck-bar"}}), 1);
}

TEST(LaneTcp, RoadsideUnitRecord) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  rig.cfg.devices.push_back(device("rsu", DeviceKind::kRoadsideUnit, "lan", 5));
  rig.start_sim();
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("rsu", Health::kUp));
  sim::RoadsideEntry e;
  e.device = "rsu";
  e.entry_station = 4'400'123;
  e.entry_time = 1'789'990'000;
  e.vehicle_class = 3;
  // A WeChat ETC contract id is 31-32 characters (spec examples): all of it arrives.
  e.contract_id = "wxd678ef4Fwxd678ef4Fwxd678ef4F21";
  ASSERT_TRUE(rig.sim->roadside_entry(e));
  auto r = rig.sink.wait_for<RoadsideRecord>([](const RoadsideRecord&) { return true; });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->entry_station, 4'400'123u);
  EXPECT_EQ(r->entry_time, SystemTime(std::chrono::seconds(1'789'990'000)));
  EXPECT_EQ(r->vehicle_class, 3);
  EXPECT_EQ(r->obu_id, "wxd678ef4Fwxd678ef4Fwxd678ef4F21");
}

TEST(LaneRtu, BusWithThreeDevicesOneDead) {
  TempDir tmp;
  Rig rig;
  const std::string path = (tmp.path() / "rtu0").string();
  rig.cfg.buses.push_back(rtu_bus("rs485", path));
  rig.cfg.devices.push_back(device("rtu-cam", DeviceKind::kCamera, "rs485", 1));
  rig.cfg.devices.push_back(device("rtu-loop", DeviceKind::kLoop, "rs485", 2));
  rig.cfg.devices.push_back(device("rtu-bar", DeviceKind::kBarrier, "rs485", 3));
  config::LaneSection lane;
  lane.id = "L3";
  lane.camera = "rtu-cam";
  lane.loop = "rtu-loop";
  lane.barrier = "rtu-bar";
  rig.cfg.lanes.push_back(lane);
  rig.start_sim();
  ASSERT_TRUE(rig.sim->set_silent("rtu-bar", true));  // dead from the start
  rig.start_drivers();
  ASSERT_TRUE(rig.sink.wait_health("rtu-cam", Health::kUp));
  ASSERT_TRUE(rig.sink.wait_health("rtu-loop", Health::kUp));

  for (int i = 0; i < 3; ++i) {
    sim::VehicleArrival v;
    v.lane = "L3";
    v.plate = "粤B1234" + std::to_string(i);
    ASSERT_TRUE(rig.sim->vehicle_arrives(v));
    ASSERT_TRUE(rig.sink.wait_for<PlateRead>([&](const PlateRead& p) {
      return p.plate == v.plate;
    })) << "read "
        << i << " over RTU with a dead device on the bus";
  }
  EXPECT_TRUE(rig.sink.wait_for<VehiclePresent>(
      [](const VehiclePresent& p) { return p.device == "rtu-loop" && p.present; }));
  EXPECT_FALSE(rig.sink.wait_health("rtu-bar", Health::kUp, 0ms));
  EXPECT_FALSE(rig.sink.wait_health("rtu-cam", Health::kDegraded, 0ms));
  EXPECT_FALSE(rig.sink.wait_health("rtu-loop", Health::kDegraded, 0ms));

  // The dead barrier comes back: probed with backoff, it is up again by itself.
  ASSERT_TRUE(rig.sim->set_silent("rtu-bar", false));
  EXPECT_TRUE(rig.sink.wait_health("rtu-bar", Health::kUp));
}

}  // namespace
}  // namespace lanegate::lane

namespace lanegate::lane {
namespace {

TEST(ModbusReadCommand, ReadsAConfiguredDevice) {
  Rig rig;
  rig.cfg.buses.push_back(tcp_bus("lan"));
  rig.cfg.devices.push_back(device("cli-cam", config::DeviceKind::kCamera, "lan", 1));
  rig.cfg.devices.push_back(device("cli-bar", config::DeviceKind::kBarrier, "lan", 3));
  rig.start_sim();
  sim::VehicleArrival v;
  v.camera = "cli-cam";
  v.plate = "粤B12345";
  v.colour = 2;
  v.confidence = 901;
  ASSERT_TRUE(rig.sim->vehicle_arrives(v));
  std::ostringstream out;
  std::ostringstream err;
  const std::vector<std::string> args = {"cli-cam", "0", "3"};
  ASSERT_EQ(modbus_read_command(rig.cfg, args, out, err), 0) << err.str();
  EXPECT_EQ(out.str(),
            "{\"device\":\"cli-cam\",\"bus\":\"lan\",\"unit_id\":1,\"table\":\"holding\","
            "\"address\":0,\"values\":[1,2,901]}\n");
  std::ostringstream out2;
  const std::vector<std::string> bits = {"cli-bar", "--discrete", "1", "2"};
  ASSERT_EQ(modbus_read_command(rig.cfg, bits, out2, err), 0) << err.str();
  EXPECT_NE(out2.str().find("\"values\":[0,1]"), std::string::npos) << out2.str();

  ASSERT_TRUE(rig.sim->set_silent("cli-cam", true));
  std::ostringstream out3;
  std::ostringstream err3;
  EXPECT_EQ(modbus_read_command(rig.cfg, args, out3, err3), 1);
  EXPECT_NE(err3.str().find("cli-cam"), std::string::npos) << err3.str();
  const std::vector<std::string> unknown = {"nope", "0", "1"};
  EXPECT_EQ(modbus_read_command(rig.cfg, unknown, out3, err3), 2);
  const std::vector<std::string> too_many = {"cli-cam", "0", "126"};
  EXPECT_EQ(modbus_read_command(rig.cfg, too_many, out3, err3), 2);
}

}  // namespace
}  // namespace lanegate::lane
