// The rider-code reader driver against the simulated reader on a pseudo-terminal: a
// scanned token arrives as a PaymentCode for the taxi lane; malformed lines are counted by
// reason and never posted; a code held in view (the same token again at once) is one read.
#include <gtest/gtest.h>

#include <thread>

#include "core/metrics.h"
#include "lane/drivers.h"
#include "lane_it_support.h"
#include "sim/devices.h"

namespace lanegate::lane {
namespace {

using namespace testing;

std::int64_t lines(const std::string& reader, std::string_view result) {
  return std::max<std::int64_t>(
      0, metrics::Registry::global().value("lanegate_rider_tokens_total",
                                           {{"reader", reader}, {"result", std::string(result)}}));
}


struct ReaderRig {
  TempDir tmp;
  config::Config cfg;
  std::unique_ptr<sim::DevicesSim> sim;
  RecordingSink sink;
  std::unique_ptr<LaneDrivers> drivers;

  explicit ReaderRig(const std::string& id) {
    config::SerialPortSection m;
    m.id = id + "-meter";
    m.device = (tmp.path() / "meter.tty").string();
    cfg.meters.push_back(m);
    config::SerialPortSection r;
    r.id = id;
    r.device = (tmp.path() / "reader.tty").string();
    r.baud = 9600;
    cfg.readers.push_back(r);
    config::LaneSection lane;
    lane.id = "taxi-" + id;
    lane.mode = config::LaneMode::kTaxi;
    lane.meter = m.id;
    lane.code_reader = id;
    cfg.lanes.push_back(lane);
    sim::DevicesSimOptions so;
    so.control_port = -1;
    auto s = sim::DevicesSim::start(cfg, so);
    EXPECT_TRUE(s) << s.error().to_string();
    if (s) sim = std::move(*s);
    auto d = LaneDrivers::create(cfg, sink, SystemClock::instance());
    EXPECT_TRUE(d) << d.error().to_string();
    if (d) {
      drivers = std::move(*d);
      EXPECT_TRUE(drivers->start());
    }
  }
  ~ReaderRig() {
    if (drivers) drivers->stop();
    if (sim) sim->stop();
  }
};

TEST(RiderReader, ScannedTokenBecomesAPaymentCodeForTheTaxiLane) {
  ReaderRig rig("rd1");
  // The driver opens the port in the background: scan until the first read arrives.
  std::optional<PaymentCode> got;
  for (int i = 0; i < 20 && !got; ++i) {
    ASSERT_TRUE(rig.sim->reader_scan("rd1", "oLANEGATEdemo0001normal"));
    got = rig.sink.wait_for<PaymentCode>([](const PaymentCode&) { return true; }, 250ms);
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(got->code, "oLANEGATEdemo0001normal");
  EXPECT_EQ(got->lane, "taxi-rd1");
  EXPECT_EQ(got->reader, "rd1");
}

TEST(RiderReader, MalformedLinesAreCountedByReasonAndNeverPosted) {
  ReaderRig rig("rd2");
  std::optional<PaymentCode> first;
  for (int i = 0; i < 20 && !first; ++i) {
    ASSERT_TRUE(rig.sim->reader_scan("rd2", "oFIRSTtoken000001"));
    first = rig.sink.wait_for<PaymentCode>([](const PaymentCode&) { return true; }, 250ms);
  }
  ASSERT_TRUE(first);
  // Scans written before the driver opened the port arrive together: let them settle.
  std::this_thread::sleep_for(300ms);
  const auto short0 = lines("rd2", "too_short");
  const auto bad0 = lines("rd2", "bad_character");
  const auto long0 = lines("rd2", "too_long");
  const auto over0 = lines("rd2", "overlong_line");
  const auto repeat0 = lines("rd2", "repeat");
  ASSERT_TRUE(rig.sim->reader_scan("rd2", "abc"));
  ASSERT_TRUE(rig.sim->reader_scan("rd2", "oBAD token with spaces"));
  ASSERT_TRUE(rig.sim->reader_scan("rd2", std::string(65, 'x')));
  ASSERT_TRUE(rig.sim->reader_raw("rd2", std::string(300, 'y') + "\n"));
  ASSERT_TRUE(rig.sim->reader_scan("rd2", "oFIRSTtoken000001"));  // still in view: a repeat
  // Mixed line ends: LF alone and CR alone also end a line.
  ASSERT_TRUE(rig.sim->reader_raw("rd2", "oSECONDtoken00002\n"));
  ASSERT_TRUE(rig.sink.wait_for<PaymentCode>(
      [](const PaymentCode& t) { return t.code == "oSECONDtoken00002"; }));
  EXPECT_TRUE(eventually([&] { return lines("rd2", "too_short") == short0 + 1; }));
  EXPECT_EQ(lines("rd2", "bad_character"), bad0 + 1);
  EXPECT_EQ(lines("rd2", "too_long"), long0 + 1);
  EXPECT_EQ(lines("rd2", "overlong_line"), over0 + 1);
  EXPECT_EQ(lines("rd2", "repeat"), repeat0 + 1);
  auto posted = rig.sink.all<PaymentCode>();
  ASSERT_EQ(posted.size(), 2u) << "one first token (repeats folded), one second";
  EXPECT_EQ(posted[1].code, "oSECONDtoken00002");
}

}  // namespace
}  // namespace lanegate::lane
