// RegulatorUplink against the regulator sandbox over real TCP on loopback: sink() driven
// directly on an io_context, the sandbox's faults standing in for the platform's.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>

#include "core/metrics.h"
#include "core/time_format.h"
#include "gateway/regulator.h"
#include "sim/regulator_sandbox.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;
using Bytes = std::vector<std::uint8_t>;

// The spec's worked 0x00E8 sample (trip 12, fare 8.0 yuan, boarded 2023-07-26 19:41).
Bytes sample_meter_body(std::uint8_t trip_number) {
  Bytes b = {'A', 'A', '3', '3', '3', '3'};
  b.insert(b.end(), 16, 0x00);
  const std::string q = "42108319880906011X";
  b.insert(b.end(), q.begin(), q.end());
  b.push_back(0x00);
  const Bytes rest = {0x23, 0x07, 0x26, 0x19, 0x41, 0x19,        0x41, 0x00, 0x00,
                      0x01, 0x05, 0x67, 0x00, 0x00, 0x00,        0x00, 0x00, 0x00,
                      0x00, 0x80, 0x00, 0x00, 0x00, trip_number, 0x00};
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

queue::Item trip_item(std::int64_t id, std::uint8_t trip_number = 12) {
  RegulatorTrip t;
  t.isu_id = "013912345678";
  t.lane = "cab-1";
  t.meter = "meter-1";
  t.trip_number = trip_number;
  t.meter_body = sample_meter_body(trip_number);
  t.boarding = from_unix_seconds(1'690'371'660);
  t.alighting = t.boarding;
  queue::Item item;
  item.id = id;
  item.topic = std::string(kTopicRegulatorTrip);
  item.ordering_key = "cab-1";
  item.payload = encode_regulator_item(t);
  return item;
}

std::int64_t uploads_counted(const std::string& result) {
  const auto v =
      metrics::Registry::global().value("lanegate_regulator_uploads_total", {{"result", result}});
  return v < 0 ? 0 : v;
}

std::int64_t regulator_up() { return metrics::Registry::global().value("lanegate_regulator_up"); }

class RegulatorUplinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = sim::RegulatorSandbox::start({});
    ASSERT_TRUE(s) << s.error().to_string();
    sandbox_ = std::move(*s);
    section_.enabled = true;
    section_.host = "127.0.0.1";
    section_.port = sandbox_->port();
    section_.connect_timeout_ms = 2000;
    // Long enough for a loaded CI machine to answer; a dropped reply costs this once.
    section_.reply_timeout_ms = 1000;
  }

  void make_uplink() {
    uplink_ = std::make_unique<RegulatorUplink>(io_, section_, SystemClock::instance());
  }

  // Hands the item to the sink and runs the io thread until its completion arrives there.
  queue::Outcome send(const queue::Item& item) {
    if (!uplink_) make_uplink();
    std::optional<queue::Outcome> outcome;
    uplink_->sink(item, [&](queue::Outcome o) { outcome = std::move(o); });
    auto guard = asio::make_work_guard(io_);
    io_.restart();
    // Bounded so a lost completion fails the test instead of hanging it.
    for (int i = 0; i < 600 && !outcome; ++i) io_.run_one_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(outcome) << "no completion";
    return outcome.value_or(queue::Outcome::park("no completion"));
  }

  asio::io_context io_;
  std::unique_ptr<sim::RegulatorSandbox> sandbox_;
  config::RegulatorSection section_;
  std::unique_ptr<RegulatorUplink> uplink_;
};

TEST_F(RegulatorUplinkTest, ATripIsDeliveredAndAcked) {
  const auto ok_before = uploads_counted("ok");
  const queue::Outcome o = send(trip_item(42));
  EXPECT_EQ(o.kind, queue::Outcome::Kind::kAck) << o.error;
  const auto uploads = sandbox_->uploads();
  ASSERT_EQ(uploads.size(), 1u);
  EXPECT_EQ(uploads[0].isu_id, "013912345678");
  EXPECT_EQ(uploads[0].serial, 42);
  EXPECT_EQ(uploads[0].trip_number, 12u);
  EXPECT_EQ(uploads[0].fare_fen, 800);
  EXPECT_EQ(uploads[0].boarding, "2023-07-26 19:41");
  EXPECT_EQ(uploads[0].occupied_at, "2023-07-26 19:41:00");
  EXPECT_FALSE(uploads[0].duplicate);
  EXPECT_EQ(sandbox_->malformed(), 0);
  EXPECT_EQ(uploads_counted("ok"), ok_before + 1);
  EXPECT_EQ(regulator_up(), 1);
}

TEST_F(RegulatorUplinkTest, ConsecutiveTripsShareOneConnection) {
  EXPECT_EQ(send(trip_item(1, 1)).kind, queue::Outcome::Kind::kAck);
  EXPECT_EQ(send(trip_item(2, 2)).kind, queue::Outcome::Kind::kAck);
  const auto uploads = sandbox_->uploads();
  ASSERT_EQ(uploads.size(), 2u);
  EXPECT_EQ(uploads[0].trip_number, 1u);
  EXPECT_EQ(uploads[1].trip_number, 2u);
  EXPECT_EQ(sandbox_->duplicates(), 0);
  EXPECT_EQ(sandbox_->connections(), 1);
}

TEST_F(RegulatorUplinkTest, ADroppedReplyIsRetriedAndTheDuplicateReported) {
  sandbox_->inject({.drop_replies = 1});
  const auto no_reply_before = uploads_counted("no_reply");
  const queue::Outcome first = send(trip_item(7));
  EXPECT_EQ(first.kind, queue::Outcome::Kind::kRetry);
  EXPECT_NE(first.error.find("reply"), std::string::npos) << first.error;
  EXPECT_EQ(uploads_counted("no_reply"), no_reply_before + 1);
  EXPECT_FALSE(uplink_->link_up());

  const queue::Outcome second = send(trip_item(7));
  EXPECT_EQ(second.kind, queue::Outcome::Kind::kAck) << second.error;
  const auto uploads = sandbox_->uploads();
  ASSERT_EQ(uploads.size(), 2u);
  EXPECT_EQ(uploads[0].serial, uploads[1].serial);  // the same item, the same serial
  EXPECT_TRUE(uploads[1].duplicate);
  EXPECT_EQ(sandbox_->duplicates(), 1);
  EXPECT_TRUE(uplink_->link_up());
}

TEST_F(RegulatorUplinkTest, ResultFailedIsRetried) {
  sandbox_->inject({.fail_replies = 1});
  const queue::Outcome first = send(trip_item(9));
  EXPECT_EQ(first.kind, queue::Outcome::Kind::kRetry);
  EXPECT_NE(first.error.find("result 1"), std::string::npos) << first.error;
  EXPECT_TRUE(sandbox_->uploads().empty());
  EXPECT_TRUE(uplink_->link_up());  // the platform answered

  EXPECT_EQ(send(trip_item(9)).kind, queue::Outcome::Kind::kAck);
  ASSERT_EQ(sandbox_->uploads().size(), 1u);
  EXPECT_EQ(sandbox_->duplicates(), 0);
}

TEST_F(RegulatorUplinkTest, AClosedConnectionIsRetried) {
  sandbox_->inject({.close_connections = 1});
  EXPECT_EQ(send(trip_item(3)).kind, queue::Outcome::Kind::kRetry);
  EXPECT_EQ(send(trip_item(3)).kind, queue::Outcome::Kind::kAck);
  EXPECT_EQ(sandbox_->uploads().size(), 1u);
}

TEST_F(RegulatorUplinkTest, PlatformDownRetriesThenDeliversWhenItStarts) {
  const int port = sandbox_->port();
  sandbox_.reset();  // nothing listens on the port now
  const queue::Outcome down = send(trip_item(5));
  EXPECT_EQ(down.kind, queue::Outcome::Kind::kRetry);
  EXPECT_FALSE(uplink_->link_up());
  EXPECT_EQ(regulator_up(), 0);

  auto s = sim::RegulatorSandbox::start({.port = port});
  ASSERT_TRUE(s) << s.error().to_string();
  sandbox_ = std::move(*s);
  EXPECT_EQ(send(trip_item(5)).kind, queue::Outcome::Kind::kAck);
  EXPECT_EQ(regulator_up(), 1);
  EXPECT_EQ(sandbox_->uploads().size(), 1u);
}

TEST_F(RegulatorUplinkTest, AKeptConnectionToARestartedPlatformIsReplaced) {
  EXPECT_EQ(send(trip_item(1, 1)).kind, queue::Outcome::Kind::kAck);
  const int port = sandbox_->port();
  sandbox_.reset();
  auto s = sim::RegulatorSandbox::start({.port = port});
  ASSERT_TRUE(s) << s.error().to_string();
  sandbox_ = std::move(*s);
  const queue::Outcome o = send(trip_item(2, 2));
  EXPECT_EQ(o.kind, queue::Outcome::Kind::kAck) << o.error;
  ASSERT_EQ(sandbox_->uploads().size(), 1u);
  EXPECT_EQ(sandbox_->uploads()[0].trip_number, 2u);
}

TEST_F(RegulatorUplinkTest, AnUndecodablePayloadIsParked) {
  queue::Item item = trip_item(11);
  item.payload = R"({"v":1,"isu_id":"12"})";
  const queue::Outcome o = send(item);
  EXPECT_EQ(o.kind, queue::Outcome::Kind::kPark);
  EXPECT_NE(o.error.find("isu_id"), std::string::npos) << o.error;
  EXPECT_TRUE(sandbox_->uploads().empty());
}

}  // namespace
}  // namespace lanegate::gateway
