// The taxi-meter serial driver against the simulated meter on a pseudo-terminal.
#include <gtest/gtest.h>

#include <thread>

#include "core/metrics.h"
#include "lane/drivers.h"
#include "lane/meter_frame.h"
#include "lane_it_support.h"
#include "sim/devices.h"

namespace lanegate::lane {
namespace {

using namespace testing;

std::int64_t frames(const std::string& meter, std::string_view result) {
  return std::max<std::int64_t>(
      0, metrics::Registry::global().value("lanegate_meter_frames_total",
                                           {{"meter", meter}, {"result", std::string(result)}}));
}


struct MeterRig {
  TempDir tmp;
  config::Config cfg;
  std::unique_ptr<sim::DevicesSim> sim;
  RecordingSink sink;
  std::unique_ptr<LaneDrivers> drivers;

  explicit MeterRig(const std::string& id, DriverOptions opts = {}) {
    config::SerialPortSection m;
    m.id = id;
    m.device = (tmp.path() / (id + ".tty")).string();
    m.baud = 9600;
    cfg.meters.push_back(m);
    config::LaneSection lane;
    lane.id = "taxi-" + id;
    lane.mode = config::LaneMode::kTaxi;
    lane.meter = id;
    cfg.lanes.push_back(lane);
    sim::DevicesSimOptions so;
    so.control_port = -1;
    so.meter_retransmit_ms = 100;
    auto s = sim::DevicesSim::start(cfg, so);
    EXPECT_TRUE(s) << s.error().to_string();
    if (s) sim = std::move(*s);
    auto d = LaneDrivers::create(cfg, sink, SystemClock::instance(), opts);
    EXPECT_TRUE(d) << d.error().to_string();
    if (d) {
      drivers = std::move(*d);
      EXPECT_TRUE(drivers->start());
    }
  }
  ~MeterRig() {
    if (drivers) drivers->stop();
    if (sim) sim->stop();
  }
};

std::vector<std::uint8_t> trip_frame_bytes(std::uint32_t number, std::int64_t fare_fen) {
  TripRecord t;
  t.plate = "B99999";
  t.boarding = CivilTime{2026, 11, 22, 23, 40};
  t.alighting = CivilTime{2026, 11, 23, 0, 15};
  t.distance_m = 9900;
  t.fare = Money::from_fen(fare_fen);
  t.trip_number = number;
  MeterFrame f;
  f.device = kDeviceMeter;
  f.cmd = kCmdTripRecord;
  f.body = *encode_trip_record(t);
  return encode_meter_frame(f);
}

TEST(MeterPort, TripRecordAfterGarbageAndTruncatedFrames) {
  DriverOptions opts;
  opts.ack_trips_on_receive = true;
  MeterRig rig("m-garbage", opts);
  ASSERT_TRUE(rig.sim && rig.drivers);
  // Give the driver time to open the port, then: noise, a frame cut short, a frame with a
  // flipped bit, and only then a good trip.
  ASSERT_TRUE(eventually([&] {
    return rig.sim->meter_raw("m-garbage", std::vector<std::uint8_t>{0x00}).has_value();
  }));
  std::this_thread::sleep_for(200ms);
  const std::vector<std::uint8_t> noise = {0x13, 0x37, 0x55, 0x00, 0xFF, 0xAA};
  ASSERT_TRUE(rig.sim->meter_raw("m-garbage", noise));
  auto cut = trip_frame_bytes(500, 1230);
  cut.resize(cut.size() / 2);
  ASSERT_TRUE(rig.sim->meter_raw("m-garbage", cut));
  std::this_thread::sleep_for(400ms);  // the line goes quiet: the half frame is truncated
  auto flipped = trip_frame_bytes(501, 1230);
  flipped[20] ^= 0x01;
  ASSERT_TRUE(rig.sim->meter_raw("m-garbage", flipped));

  sim::SimTrip trip;
  trip.meter = "m-garbage";
  trip.fare_fen = 2350;
  trip.trip_number = 42;
  trip.boarding = "2026-11-22T23:50";
  trip.alighting = "00:20";
  ASSERT_TRUE(rig.sim->end_trip(trip));
  auto rec = rig.sink.wait_for<TripRecord>([](const TripRecord& t) { return t.trip_number == 42; });
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->fare.fen(), 2350);
  EXPECT_EQ(rec->meter, "m-garbage");
  EXPECT_EQ(rec->lane, "taxi-m-garbage");
  EXPECT_EQ(rec->alighting, (CivilTime{2026, 11, 23, 0, 20}));  // across midnight
  // Neither damaged frame became a trip.
  EXPECT_EQ(rig.sink.all<TripRecord>().size(), 1u);
  EXPECT_GE(frames("m-garbage", "garbage"), 1);
  EXPECT_GE(frames("m-garbage", "truncated"), 1);
  EXPECT_GE(frames("m-garbage", "bad_xor") + frames("m-garbage", "bad_tail"), 1);
  // The trip is acknowledged and the meter stops retransmitting.
  EXPECT_TRUE(eventually([&] { return rig.sim->meter_unacked("m-garbage")->empty(); }));
  EXPECT_EQ(*rig.sim->meter_acked("m-garbage"), std::vector<std::uint32_t>{42});
  EXPECT_EQ(rig.sim->meter_link("m-garbage")->bad_acks, 0);
}

TEST(MeterPort, RetransmittedTripIsPostedOnceAndAckedAfterCommit) {
  MeterRig rig("m-retx");  // production mode: ack only when the gateway says committed
  ASSERT_TRUE(rig.sim && rig.drivers);
  sim::SimTrip trip;
  trip.meter = "m-retx";
  trip.fare_fen = 1870;
  trip.trip_number = 7;
  trip.boarding = "2026-11-22T08:30";
  trip.alighting = "08:55";
  ASSERT_TRUE(rig.sim->end_trip(trip));
  auto rec = rig.sink.wait_for<TripRecord>([](const TripRecord& t) { return t.trip_number == 7; });
  ASSERT_TRUE(rec);
  // Unacknowledged, the meter retransmits; the driver recognises the same trip.
  ASSERT_TRUE(eventually([] { return frames("m-retx", "duplicate") >= 2; }));
  EXPECT_EQ(rig.sink.all<TripRecord>().size(), 1u);
  EXPECT_EQ(*rig.sim->meter_unacked("m-retx"), std::vector<std::uint32_t>{7});

  // The gateway committed the trip: the ack goes out and retransmission stops.
  ASSERT_TRUE(rig.drivers->ack_trip("m-retx", rec->trip_number, rec->boarding));
  EXPECT_TRUE(eventually([&] { return rig.sim->meter_unacked("m-retx")->empty(); }));
  EXPECT_EQ(*rig.sim->meter_acked("m-retx"), std::vector<std::uint32_t>{7});
  EXPECT_EQ(rig.sim->meter_link("m-retx")->bad_acks, 0);

  // The same trip number with another boarding time is a different trip.
  trip.boarding = "2026-11-23T08:30";
  ASSERT_TRUE(rig.sim->end_trip(trip));
  EXPECT_TRUE(rig.sink.wait_for<TripRecord>(
      [](const TripRecord& t) { return t.trip_number == 7 && t.boarding.day == 23; }));
  EXPECT_EQ(rig.sink.all<TripRecord>().size(), 2u);
  EXPECT_FALSE(rig.drivers->ack_trip("no-such-meter", 1, rec->boarding));
}

TEST(MeterPort, RecordWithImpossibleTimeIsAnsweredWithTheErrorAck) {
  DriverOptions opts;
  opts.ack_trips_on_receive = true;
  MeterRig rig("m-bad", opts);
  ASSERT_TRUE(rig.sim && rig.drivers);
  sim::SimTrip trip;
  trip.meter = "m-bad";
  trip.fare_fen = 1000;
  trip.trip_number = 9;
  trip.boarding = "2026-02-30T08:30";  // no such day
  ASSERT_TRUE(rig.sim->end_trip(trip));
  // The simulated meter saw exactly the spec's 0x00E8 error ack (55 AA 00 05 02 00 00 E8 FF 10 55 AA).
  EXPECT_TRUE(eventually([&] { return rig.sim->meter_link("m-bad")->refused == std::vector<std::uint32_t>{9}; }));
  EXPECT_GE(frames("m-bad", "bad_record"), 1);
  EXPECT_GE(frames("m-bad", "nak_sent"), 1);
  EXPECT_TRUE(rig.sink.all<TripRecord>().empty());
  EXPECT_TRUE(rig.sim->meter_link("m-bad")->acked.empty());
  EXPECT_EQ(rig.sim->meter_link("m-bad")->bad_acks, 0);
}

TEST(MeterPort, AcksOnTheWireAreTheSpecBytesAndAStoredTripIsAckedOnF2) {
  MeterRig rig("m-f2");
  ASSERT_TRUE(rig.sim && rig.drivers);
  sim::SimTrip trip;
  trip.meter = "m-f2";
  trip.fare_fen = 2200;
  trip.trip_number = 5;
  trip.boarding = "2026-11-22T10:00";
  trip.alighting = "10:20";
  ASSERT_TRUE(rig.sim->end_trip(trip));
  auto rec = rig.sink.wait_for<TripRecord>([](const TripRecord& t) { return t.trip_number == 5; });
  ASSERT_TRUE(rec);
  ASSERT_TRUE(rig.drivers->ack_trip("m-f2", rec->trip_number, rec->boarding));
  // The sim counts an answer only when it equals 55 AA 00 05 02 00 00 E8 90 7F 55 AA.
  ASSERT_TRUE(eventually([&] { return rig.sim->meter_link("m-f2")->acked == std::vector<std::uint32_t>{5}; }));

  // The meter re-sends its stored trip as 0x00F2: answered on F2 (55 AA ... F2 90 65 55 AA),
  // never posted twice.
  ASSERT_TRUE(rig.sim->resend_stored("m-f2", 5u));
  EXPECT_TRUE(eventually(
      [&] { return rig.sim->meter_link("m-f2")->acked_stored == std::vector<std::uint32_t>{5}; }));
  EXPECT_EQ(rig.sink.all<TripRecord>().size(), 1u);
  EXPECT_TRUE(rig.sim->meter_link("m-f2")->unacked.empty());
  EXPECT_EQ(rig.sim->meter_link("m-f2")->bad_acks, 0);
}

TEST(MeterPort, TripInFlightOnE8AndF2IsPostedOnceAndAckedOnBothAfterCommit) {
  MeterRig rig("m-f2new");
  ASSERT_TRUE(rig.sim && rig.drivers);
  sim::SimTrip trip;
  trip.meter = "m-f2new";
  trip.fare_fen = 1500;
  trip.trip_number = 77;
  trip.boarding = "2026-11-22T07:00";
  trip.alighting = "07:30";
  ASSERT_TRUE(rig.sim->end_trip(trip));
  auto rec = rig.sink.wait_for<TripRecord>([](const TripRecord& t) { return t.trip_number == 77; });
  ASSERT_TRUE(rec);
  // Unacknowledged (the gateway has not committed), the meter also re-sends it from its
  // store as F2: still one trip.
  ASSERT_TRUE(rig.sim->resend_stored("m-f2new"));
  ASSERT_TRUE(eventually([] { return frames("m-f2new", "duplicate") >= 2; }));
  EXPECT_EQ(rig.sink.all<TripRecord>().size(), 1u);
  EXPECT_TRUE(rig.sim->meter_link("m-f2new")->acked.empty()) << "no ack before the commit";
  ASSERT_TRUE(rig.drivers->ack_trip("m-f2new", rec->trip_number, rec->boarding));
  // Both frames in flight end acknowledged, each on its own CMD.
  EXPECT_TRUE(eventually([&] { return rig.sim->meter_link("m-f2new")->unacked.empty(); }));
  EXPECT_EQ(rig.sim->meter_link("m-f2new")->acked_stored, std::vector<std::uint32_t>{77});
  EXPECT_EQ(rig.sim->meter_link("m-f2new")->acked.size(), 2u);
  EXPECT_EQ(rig.sim->meter_link("m-f2new")->bad_acks, 0);
}

TEST(MeterPort, TripStartIsPostedOnceAndAckedAtOnceABadOneGetsTheErrorAck) {
  MeterRig rig("m-e7");
  ASSERT_TRUE(rig.sim && rig.drivers);
  ASSERT_TRUE(rig.sim->start_trip("m-e7", "2026-11-22T08:30:15"));
  auto started = rig.sink.wait_for<TripStarted>([](const TripStarted&) { return true; });
  ASSERT_TRUE(started);
  EXPECT_EQ(started->occupied_at, (CivilTime{2026, 11, 22, 8, 30}));
  EXPECT_EQ(started->meter, "m-e7");
  EXPECT_EQ(started->lane, "taxi-m-e7");
  // No gateway ack needed: 55 AA 00 05 02 00 00 E7 90 70 55 AA goes out at once.
  EXPECT_TRUE(eventually([&] { return rig.sim->meter_link("m-e7")->trip_starts_acked == 1; }));

  ASSERT_TRUE(rig.sim->start_trip("m-e7", "2026-13-01T00:00:00"));  // month 13
  EXPECT_TRUE(eventually([&] { return rig.sim->meter_link("m-e7")->trip_starts_refused == 1; }));
  EXPECT_EQ(rig.sink.all<TripStarted>().size(), 1u);
  EXPECT_EQ(rig.sim->meter_link("m-e7")->bad_acks, 0);
}

TEST(MeterPort, StatusQueryOnOpenAndAgainReportsTheDeviceState) {
  DriverOptions opts;
  opts.meter_status_interval_s = 1;
  MeterRig rig("m-status", opts);
  ASSERT_TRUE(rig.sim && rig.drivers);
  auto device_state = [] {
    return metrics::Registry::global().value("lanegate_meter_device_state", {{"meter", "m-status"}});
  };
  ASSERT_TRUE(eventually([] { return frames("m-status", "status") >= 1; }));
  EXPECT_EQ(device_state(), 0);
  // The meter's trip store fills up: the next periodic query shows it.
  ASSERT_TRUE(rig.sim->set_meter_device_state("m-status", 4));
  EXPECT_TRUE(eventually([&] { return device_state() == 4; }));
  EXPECT_GE(rig.sim->meter_link("m-status")->status_queries, 2);
}

}  // namespace
}  // namespace lanegate::lane
