// The payment-code reader driver against the simulated reader on a pseudo-terminal: a
// scanned code arrives as a PaymentCode for the taxi lane; malformed lines are counted by
// reason and never posted (nor logged); a code held in view (the same code again at
// once) is one read.
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "core/metrics.h"
#include "core/log.h"
#include "lane/drivers.h"
#include "lane/payment_code.h"
#include "lane_it_support.h"
#include "sim/devices.h"

namespace lanegate::lane {
namespace {

using namespace testing;

std::int64_t lines(const std::string& reader, std::string_view result) {
  return std::max<std::int64_t>(
      0, metrics::Registry::global().value("lanegate_payment_codes_total",
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

// Every log line written while a test runs (the codes must never appear in one).
std::mutex log_mu;
std::string log_text;
void capture_log(log::Level, std::string_view line) {
  std::lock_guard lock(log_mu);
  log_text.append(line).push_back('\n');
}

TEST(CodeReader, ScannedCodeBecomesAPaymentCodeForTheTaxiLane) {
  ReaderRig rig("rd1");
  // The driver opens the port in the background: scan until the first read arrives.
  std::optional<PaymentCode> got;
  std::string code;
  for (int i = 0; i < 20 && !got; ++i) {
    auto scanned = rig.sim->scan_payment_code("rd1");
    ASSERT_TRUE(scanned);
    code = *scanned;
    got = rig.sink.wait_for<PaymentCode>([&](const PaymentCode& p) { return p.code == code; }, 250ms);
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(got->code.size(), 18u);
  EXPECT_TRUE(validate_payment_code(got->code));
  EXPECT_EQ(got->lane, "taxi-rd1");
  EXPECT_EQ(got->reader, "rd1");
}

TEST(CodeReader, MalformedLinesAreCountedByReasonNeverPostedAndNoCodeIsLogged) {
  log::set_test_sink(capture_log);
  ReaderRig rig("rd2");
  const std::string first = "134567890123456789";
  std::optional<PaymentCode> got;
  for (int i = 0; i < 20 && !got; ++i) {
    ASSERT_TRUE(rig.sim->reader_scan("rd2", first));
    got = rig.sink.wait_for<PaymentCode>([](const PaymentCode&) { return true; }, 250ms);
  }
  ASSERT_TRUE(got);
  // Scans written before the driver opened the port arrive together: let them settle.
  std::this_thread::sleep_for(300ms);
  const auto length0 = lines("rd2", "bad_length");
  const auto digits0 = lines("rd2", "not_digits");
  const auto prefix0 = lines("rd2", "unknown_prefix");
  const auto over0 = lines("rd2", "overlong_line");
  const auto repeat0 = lines("rd2", "repeat");
  ASSERT_TRUE(rig.sim->reader_scan("rd2", "13456789012345678"));    // 17 digits
  ASSERT_TRUE(rig.sim->reader_scan("rd2", "13456789012345678X"));   // a letter
  ASSERT_TRUE(rig.sim->reader_scan("rd2", "284567890123456789"));   // not WeChat
  ASSERT_TRUE(rig.sim->reader_raw("rd2", std::string(300, '1') + "\n"));
  ASSERT_TRUE(rig.sim->reader_scan("rd2", first));  // the reader sent the line twice: a repeat
  // LF alone also ends a line.
  const std::string second = "151234567890123456";
  ASSERT_TRUE(rig.sim->reader_raw("rd2", second + "\n"));
  ASSERT_TRUE(rig.sink.wait_for<PaymentCode>([&](const PaymentCode& p) { return p.code == second; }));
  EXPECT_TRUE(eventually([&] { return lines("rd2", "bad_length") == length0 + 1; }));
  EXPECT_EQ(lines("rd2", "not_digits"), digits0 + 1);
  EXPECT_EQ(lines("rd2", "unknown_prefix"), prefix0 + 1);
  EXPECT_EQ(lines("rd2", "overlong_line"), over0 + 1);
  EXPECT_EQ(lines("rd2", "repeat"), repeat0 + 1);
  auto posted = rig.sink.all<PaymentCode>();
  ASSERT_EQ(posted.size(), 2u) << "one first code (repeats folded), one second";
  EXPECT_EQ(posted[1].code, second);
  rig.drivers->stop();
  log::set_test_sink(nullptr);
  std::lock_guard lock(log_mu);
  EXPECT_NE(log_text.find("payment code rejected"), std::string::npos) << "the sink saw the log";
  // Not the codes, not their first digits run (a partial code is a secret too).
  for (std::string_view secret : {std::string_view(first), std::string_view(second),
                                  std::string_view("1345678901"), std::string_view("2845678901")}) {
    EXPECT_EQ(log_text.find(secret), std::string::npos) << secret;
  }
}

}  // namespace
}  // namespace lanegate::lane
