#include "lane/cli.h"

#include <gtest/gtest.h>

#include <sstream>

#include "lane/meter_frame.h"

namespace lanegate::lane {
namespace {

std::string hex(const std::vector<std::uint8_t>& b) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string s;
  for (auto v : b) {
    s.push_back(kDigits[v >> 4]);
    s.push_back(kDigits[v & 0xF]);
    s.push_back(' ');
  }
  return s;
}

std::vector<std::uint8_t> trip_frame() {
  TripRecord t;
  t.plate = "B12345";
  t.boarding = CivilTime{2026, 11, 22, 8, 30};
  t.alighting = CivilTime{2026, 11, 22, 9, 0};
  t.fare = Money::from_fen(3450);
  t.trip_number = 12;
  MeterFrame f{kDeviceMeter, 0, kCmdTripRecord, *encode_trip_record(t)};
  return encode_meter_frame(f);
}

int run(const std::vector<std::string>& args, std::string& out, std::string& err) {
  std::ostringstream o;
  std::ostringstream e;
  const int rc = meter_decode_command(args, o, e);
  out = o.str();
  err = e.str();
  return rc;
}

TEST(MeterDecodeCommand, PrintsTheTripAsJson) {
  std::string out;
  std::string err;
  ASSERT_EQ(run({hex(trip_frame())}, out, err), 0) << err;
  EXPECT_NE(out.find("\"cmd\":\"0x00E8\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"fare_fen\":3450"), std::string::npos) << out;
  EXPECT_NE(out.find("\"fare\":\"34.50\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"boarding\":\"2026-11-22T08:30\""), std::string::npos) << out;
}

TEST(MeterDecodeCommand, ReportsFaultsAndFramesInACapture) {
  auto f = trip_frame();
  std::vector<std::uint8_t> capture = {0x01, 0x02};
  capture.insert(capture.end(), f.begin(), f.end());
  std::string out;
  std::string err;
  EXPECT_EQ(run({"0x" + hex(capture)}, out, err), 1);
  EXPECT_NE(out.find("\"faults\":[{\"fault\":\"garbage\",\"bytes\":2}]"), std::string::npos) << out;
  EXPECT_NE(out.find("\"trip_number\":12"), std::string::npos) << out;

  auto bad = f;
  bad[bad.size() - 3] ^= 0xFF;  // the XOR byte
  EXPECT_EQ(run({hex(bad)}, out, err), 1);
  EXPECT_NE(out.find("\"field\":\"XOR\""), std::string::npos) << out;
}

TEST(MeterDecodeCommand, WellFramedButImpossibleTripExitsOne) {
  MeterFrame f{kDeviceMeter, 0, kCmdTripRecord, {0xAB, 0xCD}};  // a 1-byte body is an ack
  std::string out;
  std::string err;
  EXPECT_EQ(run({hex(encode_meter_frame(f))}, out, err), 1);
  EXPECT_NE(out.find("\"trip_error\""), std::string::npos) << out;
}

TEST(MeterDecodeCommand, PrintsTheSpecAckAndAStatusQuery) {
  std::string out;
  std::string err;
  ASSERT_EQ(run({"55 AA 00 05 02 00 00 F2 90 65 55 AA"}, out, err), 0) << err;
  EXPECT_NE(out.find("\"cmd\":\"0x00F2\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"ack\":\"ok\""), std::string::npos) << out;
  const auto query = encode_meter_frame(
      make_status_query(MeterTime{CivilTime{2026, 11, 22, 8, 30}, 5}));
  ASSERT_EQ(run({hex(query)}, out, err), 0) << err;
  EXPECT_NE(out.find("\"terminal_time\":\"2026-11-22T08:30:05\""), std::string::npos) << out;
}

TEST(MeterDecodeCommand, UsageErrors) {
  std::string out;
  std::string err;
  EXPECT_EQ(run({}, out, err), 2);
  EXPECT_EQ(run({"55AA0"}, out, err), 2);
  EXPECT_NE(err.find("odd number"), std::string::npos);
  EXPECT_EQ(run({"55ZZ"}, out, err), 2);
}

}  // namespace
}  // namespace lanegate::lane
