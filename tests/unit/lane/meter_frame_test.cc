#include "lane/meter_frame.h"

#include <gtest/gtest.h>

#include <map>

namespace lanegate::lane {
namespace {

TripRecord sample_trip() {
  TripRecord t;
  t.plate = "B12345";
  t.operating_licence = "LIC123";
  t.driver_qualification = "Q0000000000000001";
  t.boarding = CivilTime{2026, 11, 22, 8, 30};
  t.alighting = CivilTime{2026, 11, 22, 9, 5};
  t.distance_m = 12300;
  t.empty_distance_m = 2100;
  t.surcharge = Money::from_fen(200);
  t.waiting_seconds = 5 * 60;
  t.fare = Money::from_fen(4560);
  t.trip_number = 0x01020304;
  t.payment_type = 0x03;
  t.card_data = "\x01\x02";
  return t;
}

std::vector<std::uint8_t> trip_frame(const TripRecord& t) {
  MeterFrame f;
  f.device = kDeviceMeter;
  f.cmd = kCmdTripRecord;
  f.body = *encode_trip_record(t);
  return encode_meter_frame(f);
}

TEST(MeterFrame, EncodesTheSpecLayout) {
  MeterFrame f{kDeviceMeter, 0, 0x00E8, {0xAB}};
  auto b = encode_meter_frame(f);
  // 55 AA | LEN=5 | 02 | 00 | 00 E8 | AB | XOR | 55 AA
  const std::vector<std::uint8_t> want = {
      0x55, 0xAA,
      0x00, 0x05,
      0x02, 0x00,
      0x00, 0xE8,
      0xAB, static_cast<std::uint8_t>(0x00 ^ 0x05 ^ 0x02 ^ 0x00 ^ 0x00 ^ 0xE8 ^ 0xAB),
      0x55, 0xAA};
  EXPECT_EQ(b, want);
  auto back = decode_meter_frame(b);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cmd, 0x00E8);
  EXPECT_EQ(back->body, std::vector<std::uint8_t>{0xAB});
}

TEST(MeterFrame, SingleFrameDecodeNamesTheBrokenRule) {
  auto b = trip_frame(sample_trip());
  auto bad_xor = b;
  bad_xor[10] ^= 0xFF;
  EXPECT_EQ(decode_meter_frame(bad_xor).error().field, "XOR");
  auto bad_tail = b;
  bad_tail.back() = 0x00;
  EXPECT_EQ(decode_meter_frame(bad_tail).error().field, "tail");
  auto truncated = std::vector<std::uint8_t>(b.begin(), b.end() - 5);
  EXPECT_EQ(decode_meter_frame(truncated).error().field, "LEN");
  auto bad_len = b;
  bad_len[2] = 0xFF;
  EXPECT_FALSE(decode_meter_frame(bad_len));
}

TEST(TripRecord, RoundTripsEveryField) {
  const TripRecord t = sample_trip();
  auto frame = decode_meter_frame(trip_frame(t));
  ASSERT_TRUE(frame);
  auto d = decode_trip_record(frame->body);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->plate, "B12345");
  EXPECT_EQ(d->operating_licence, "LIC123");
  EXPECT_EQ(d->driver_qualification, "Q0000000000000001");
  EXPECT_EQ(d->boarding, t.boarding);
  EXPECT_EQ(d->alighting, t.alighting);
  EXPECT_EQ(d->distance_m, 12300);
  EXPECT_EQ(d->empty_distance_m, 2100);
  EXPECT_EQ(d->surcharge.fen(), 200);
  EXPECT_EQ(d->waiting_seconds, 300);
  EXPECT_EQ(d->fare.fen(), 4560);  // 45.6 yuan -> 4560 fen, integer all the way
  EXPECT_EQ(d->trip_number, 0x01020304u);
  EXPECT_EQ(d->payment_type, 0x03);
  EXPECT_EQ(d->card_data, "\x01\x02");
}

TEST(TripRecord, AlightingBeforeBoardingIsTheNextDay) {
  TripRecord t = sample_trip();
  t.boarding = CivilTime{2026, 12, 31, 23, 50};
  t.alighting = CivilTime{2027, 1, 1, 0, 20};
  auto d = decode_trip_record(*encode_trip_record(t));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->alighting, (CivilTime{2027, 1, 1, 0, 20}));
  EXPECT_EQ(d->alighting.to_unix(480) - d->boarding.to_unix(480), 30 * 60);
}

TEST(TripRecord, RejectsBadBcdAndImpossibleTimes) {
  auto body = *encode_trip_record(sample_trip());
  auto nibble = body;
  nibble[6 + 16 + 19 + 5 + 2 + 3 + 2 + 3 + 2] = 0x1A;  // first fare byte
  EXPECT_EQ(decode_trip_record(nibble).error().field, "fare");

  TripRecord t = sample_trip();
  t.boarding = CivilTime{2026, 2, 30, 8, 0};  // no 30 February
  EXPECT_EQ(decode_trip_record(*encode_trip_record(t)).error().field, "boarding_time");
  t.boarding = CivilTime{2026, 2, 28, 24, 0};
  EXPECT_EQ(decode_trip_record(*encode_trip_record(t)).error().field, "boarding_time");
  t = sample_trip();
  t.alighting.minute = 60;
  EXPECT_EQ(decode_trip_record(*encode_trip_record(t)).error().field, "alighting_time");
  EXPECT_EQ(decode_trip_record(std::span(body).first(40)).error().field, "body");
}

TEST(MeterStream, FindsFramesAfterGarbageAndTruncation) {
  const auto good = trip_frame(sample_trip());
  MeterStreamDecoder dec;
  std::vector<std::uint8_t> stream = {0x00, 0x13, 0x55, 0x37};  // line noise
  // A truncated frame (cut mid-body), then a good one.
  stream.insert(stream.end(), good.begin(), good.begin() + 30);
  stream.insert(stream.end(), good.begin(), good.end());
  dec.feed(stream);
  int frames = 0;
  int garbage = 0;
  int faults = 0;
  while (auto item = dec.next()) {
    if (std::holds_alternative<MeterFrame>(*item)) {
      ++frames;
      auto t = decode_trip_record(std::get<MeterFrame>(*item).body);
      ASSERT_TRUE(t);
      EXPECT_EQ(t->fare.fen(), 4560);
    } else if (std::get<FrameFaultReport>(*item).fault == FrameFault::kGarbage) {
      ++garbage;
    } else {
      ++faults;
    }
  }
  EXPECT_EQ(frames, 1);
  EXPECT_GE(garbage, 1);
  EXPECT_GE(faults, 1);  // the truncated frame failed its XOR or tail check
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(MeterStream, DeliversFramesSplitAcrossReads) {
  const auto good = trip_frame(sample_trip());
  MeterStreamDecoder dec;
  int frames = 0;
  for (auto b : good) {
    dec.feed(std::span(&b, 1));
    while (auto item = dec.next()) {
      frames += std::holds_alternative<MeterFrame>(*item) ? 1 : 0;
    }
  }
  EXPECT_EQ(frames, 1);
}

TEST(MeterStream, FlushesAPartialFrameAsTruncated) {
  const auto good = trip_frame(sample_trip());
  MeterStreamDecoder dec;
  dec.feed(std::span(good).first(20));
  EXPECT_FALSE(dec.next());
  auto f = dec.flush_partial();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->fault, FrameFault::kTruncated);
  EXPECT_EQ(f->bytes_dropped, 20u);
}

using Bytes = std::vector<std::uint8_t>;

// The spec's acknowledgement frames, byte for byte (lane-devices.md, "Acknowledgement frames").
TEST(MeterAck, EncodesTheSpecFramesByteForByte) {
  EXPECT_EQ(encode_meter_frame(make_ack(kCmdTripRecord, true)),
            (Bytes{0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE8, 0x90, 0x7F, 0x55, 0xAA}));
  EXPECT_EQ(encode_meter_frame(make_ack(kCmdTripRecord, false)),
            (Bytes{0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE8, 0xFF, 0x10, 0x55, 0xAA}));
  EXPECT_EQ(encode_meter_frame(make_ack(kCmdTripStarted, true)),
            (Bytes{0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE7, 0x90, 0x70, 0x55, 0xAA}));
  EXPECT_EQ(encode_meter_frame(make_ack(kCmdStoredTrip, true)),
            (Bytes{0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xF2, 0x90, 0x65, 0x55, 0xAA}));
  auto back = decode_meter_frame(
      Bytes{0x55, 0xAA, 0x00, 0x05, 0x02, 0x00, 0x00, 0xE8, 0xFF, 0x10, 0x55, 0xAA});
  ASSERT_TRUE(back);
  EXPECT_EQ(ack_status(*back), kAckError);
}

// The spec's worked end-of-trip sample (reference test frame).
Bytes worked_sample() {
  Bytes b = {0x55, 0xAA, 0x00, 0x46, 0x02, 0x00, 0x00, 0xE8, 'A', 'A', '3', '3', '3', '3'};
  b.insert(b.end(), 16, 0x00);  // empty operating licence
  for (char c : std::string_view("42108319880906011X")) b.push_back(static_cast<std::uint8_t>(c));
  b.push_back(0x00);  // qualification zero padded to 19
  for (std::uint8_t v : {0x23, 0x07, 0x26, 0x19, 0x41,  // boarding YYMMDDhhmm
                         0x19, 0x41,                    // alighting hhmm
                         0x00, 0x00, 0x01,              // distance 0.1 km
                         0x05, 0x67,                    // empty distance 56.7 km
                         0x00, 0x00, 0x00,              // surcharge
                         0x00, 0x00,                    // waiting time
                         0x00, 0x00, 0x80,              // fare 8.0 yuan
                         0x00, 0x00, 0x00, 0x0C,        // trip number 12
                         0x00,                          // cash
                         0x22, 0x55, 0xAA}) {           // XOR, tail
    b.push_back(v);
  }
  return b;
}

TEST(MeterTrip, WorkedSampleDecodesToTheSpecValuesAndReencodesIdentically) {
  const Bytes wire = worked_sample();
  auto f = decode_meter_frame(wire);
  ASSERT_TRUE(f) << f.error().to_string();
  EXPECT_EQ(f->device, kDeviceMeter);
  EXPECT_EQ(f->cmd, kCmdTripRecord);
  EXPECT_EQ(f->body.size(), 0x46u - 4);
  auto t = decode_trip_record(f->body);
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->plate, "AA3333");
  EXPECT_EQ(t->operating_licence, "");
  EXPECT_EQ(t->driver_qualification, "42108319880906011X");
  EXPECT_EQ(t->boarding, (CivilTime{2023, 7, 26, 19, 41}));
  EXPECT_EQ(t->alighting, (CivilTime{2023, 7, 26, 19, 41}));
  EXPECT_EQ(t->distance_m, 100);
  EXPECT_EQ(t->empty_distance_m, 56700);
  EXPECT_EQ(t->surcharge.fen(), 0);
  EXPECT_EQ(t->waiting_seconds, 0);
  EXPECT_EQ(t->fare.fen(), 800);
  EXPECT_EQ(t->trip_number, 12u);
  EXPECT_EQ(t->payment_type, 0x00);
  EXPECT_TRUE(t->card_data.empty());
  auto body = encode_trip_record(*t);
  ASSERT_TRUE(body);
  EXPECT_EQ(encode_meter_frame(MeterFrame{kDeviceMeter, 0, kCmdTripRecord, *body}), wire);
}

TEST(MeterTrip, BadBcdNamesTheField) {
  Bytes body = decode_meter_frame(worked_sample())->body;
  body[41] = 0x2A;  // boarding year nibble > 9
  auto t = decode_trip_record(body);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().field, "boarding_time");
  EXPECT_NE(t.error().message.find("nibble"), std::string::npos);
}

TEST(MeterTripStarted, DecodesTheOccupiedTimeAndRefusesBadBcd) {
  const Bytes body = {0x20, 0x26, 0x11, 0x22, 0x23, 0x59, 0x58};
  auto t = decode_meter_time(body, "occupied_at");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->civil, (CivilTime{2026, 11, 22, 23, 59}));
  EXPECT_EQ(t->second, 58);
  EXPECT_EQ(encode_meter_time(*t), body);
  EXPECT_EQ(decode_meter_time(Bytes{0x20, 0x26, 0x11, 0x22, 0x23, 0x5A, 0x00}, "occupied_at")
                .error()
                .field,
            "occupied_at");
  EXPECT_FALSE(decode_meter_time(Bytes{0x20, 0x26, 0x02, 0x30, 0x08, 0x00, 0x00}, "x"));  // Feb 30
  EXPECT_FALSE(decode_meter_time(Bytes{0x20, 0x26, 0x01, 0x01, 0x08, 0x00, 0x60}, "x"));  // :60
  EXPECT_FALSE(decode_meter_time(Bytes{0x20, 0x26, 0x01}, "x"));                         // short
}

TEST(MeterStatus, QueryCarriesTheTerminalTimeInBcd) {
  // 2026-11-22 08:30:05 at UTC+8.
  const auto t = meter_time_at(1795307405, 480);
  EXPECT_EQ(t.civil, (CivilTime{2026, 11, 22, 8, 30}));
  EXPECT_EQ(t.second, 5);
  EXPECT_EQ(encode_meter_frame(make_status_query(t)),
            (Bytes{0x55, 0xAA, 0x00, 0x0B, 0x02, 0x00, 0x00, 0x00, 0x20, 0x26, 0x11, 0x22, 0x08,
                   0x30, 0x05,
                   static_cast<std::uint8_t>(0x0B ^ 0x02 ^ 0x20 ^ 0x26 ^ 0x11 ^ 0x22 ^ 0x08 ^
                                             0x30 ^ 0x05),
                   0x55, 0xAA}));
}

TEST(MeterStatus, DecodesEveryFieldOfTheReply) {
  Bytes body = {0x12, 0x02, 0x00, 0x34, 0x56, 0x01, 0x02, 0x03, 0x04, 0x10};
  for (char c : std::string_view("AA3333")) body.push_back(static_cast<std::uint8_t>(c));
  for (char c : std::string_view("LIC0000001")) body.push_back(static_cast<std::uint8_t>(c));
  body.insert(body.end(), 6, 0x00);
  for (char c : std::string_view("42108319880906011X")) body.push_back(static_cast<std::uint8_t>(c));
  body.push_back(0x00);
  for (std::uint8_t v : {0x00, 0x01, 0x00, 0x02}) body.push_back(v);
  ASSERT_EQ(body.size(), kStatusBodyBytes);
  auto s = decode_meter_status(body);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->vendor, 12);
  EXPECT_EQ(s->device_type, 2);
  EXPECT_EQ(s->serial, 3456);
  EXPECT_EQ(s->hw_version, 1);
  EXPECT_EQ(s->sw_major, 2);
  EXPECT_EQ(s->sw_minor, 3);
  EXPECT_EQ(s->device_state, 4);
  EXPECT_EQ(device_state_meaning(s->device_state), "trip store full");
  EXPECT_EQ(s->work_state, 0x10);
  EXPECT_EQ(work_state_meaning(s->work_state), "forced on");
  EXPECT_EQ(s->plate, "AA3333");
  EXPECT_EQ(s->operating_licence, "LIC0000001");
  EXPECT_EQ(s->driver_qualification, "42108319880906011X");
  EXPECT_EQ(s->trip_count, 65538u);
  EXPECT_EQ(*encode_meter_status(*s), body);
  EXPECT_EQ(device_state_meaning(0x03), "fault");

  auto bad = body;
  bad[2] = 0xA0;
  EXPECT_EQ(decode_meter_status(bad).error().field, "serial");
  EXPECT_EQ(decode_meter_status(std::span(body).first(54)).error().field, "body");
}

TEST(MeterFrame, AcceptsTerminalOrMeterDeviceFromTheMeterButNoVendorCommands) {
  EXPECT_TRUE(from_meter(MeterFrame{kDeviceMeter, 0, kCmdTripRecord, {}}));
  EXPECT_TRUE(from_meter(MeterFrame{kDeviceTerminal, 0, kCmdTripRecord, {}}));
  EXPECT_FALSE(from_meter(MeterFrame{0x04, 0, kCmdTripRecord, {}}));
  EXPECT_FALSE(from_meter(MeterFrame{kDeviceMeter, 0x07, kCmdTripRecord, {}}));
}

TEST(MeterStream, RefusesBadLenBadXorAndGarbageThenFindsTheNextFrame) {
  const Bytes good = worked_sample();
  Bytes stream = {0x55, 0xAA, 0x00, 0x02, 0x01};  // LEN 2 < 4
  auto bad_xor = good;
  bad_xor[good.size() - 3] ^= 0x01;
  stream.insert(stream.end(), bad_xor.begin(), bad_xor.end());
  stream.insert(stream.end(), {0xDE, 0xAD});
  stream.insert(stream.end(), good.begin(), good.end());
  MeterStreamDecoder dec;
  dec.feed(stream);
  std::map<std::string, int> faults;
  int frames = 0;
  while (auto item = dec.next()) {
    if (auto* f = std::get_if<MeterFrame>(&*item)) {
      ++frames;
      EXPECT_EQ(f->cmd, kCmdTripRecord);
    } else {
      faults[std::string(fault_name(std::get<FrameFaultReport>(*item).fault))]++;
    }
  }
  EXPECT_EQ(frames, 1);
  EXPECT_GE(faults["bad_len"], 1);
  EXPECT_GE(faults["bad_xor"], 1);
  EXPECT_GE(faults["garbage"], 1);
}

TEST(MeterJson, ShowsDecodedTripAndEscapes) {
  auto frame = decode_meter_frame(trip_frame(sample_trip()));
  const std::string j = meter_frame_json(*frame);
  EXPECT_NE(j.find("\"fare_fen\":4560"), std::string::npos) << j;
  const std::string ack = meter_frame_json(make_ack(kCmdStoredTrip, false));
  EXPECT_NE(ack.find("\"ack\":\"error\""), std::string::npos) << ack;
  const std::string start =
      meter_frame_json(MeterFrame{kDeviceMeter, 0, kCmdTripStarted,
                                  {0x20, 0x26, 0x11, 0x22, 0x08, 0x30, 0x00}});
  EXPECT_NE(start.find("\"occupied_at\":\"2026-11-22T08:30:00\""), std::string::npos) << start;
  EXPECT_NE(j.find("\"trip_number\":16909060"), std::string::npos) << j;
  EXPECT_EQ(json_escape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
}

}  // namespace
}  // namespace lanegate::lane
