#include "lane/meter_frame.h"

#include <gtest/gtest.h>

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

TEST(MeterAck, RoundTripsTheTripNumber) {
  auto ack = make_trip_ack(77);
  auto back = decode_meter_frame(encode_meter_frame(ack));
  ASSERT_TRUE(back);
  EXPECT_EQ(parse_trip_ack(*back), 77u);
}

TEST(MeterJson, ShowsDecodedTripAndEscapes) {
  auto frame = decode_meter_frame(trip_frame(sample_trip()));
  const std::string j = meter_frame_json(*frame);
  EXPECT_NE(j.find("\"fare_fen\":4560"), std::string::npos) << j;
  EXPECT_NE(j.find("\"trip_number\":16909060"), std::string::npos) << j;
  EXPECT_EQ(json_escape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
}

}  // namespace
}  // namespace lanegate::lane
