// JT/T 905 regulator framing, the 0x0B05 body, the 0x8001 reply and the outbox item
// (gateway/regulator.h), checked against bytes written out by hand from the spec.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/time_format.h"
#include "gateway/regulator.h"
#include "lane/meter_frame.h"

namespace lanegate::gateway {
namespace {

using Bytes = std::vector<std::uint8_t>;

// The spec's worked 0x00E8 sample: plate AA3333, empty licence, qualification
// 42108319880906011X, boarded 2023-07-26 19:41, alighted 19:41, 0.1 km, 56.7 km empty,
// fare 8.0 yuan, trip 12, cash.
Bytes sample_meter_body() {
  Bytes b = {'A', 'A', '3', '3', '3', '3'};
  b.insert(b.end(), 16, 0x00);
  const std::string q = "42108319880906011X";
  b.insert(b.end(), q.begin(), q.end());
  b.push_back(0x00);  // qualification is 19 bytes, zero padded
  const Bytes rest = {0x23, 0x07, 0x26, 0x19, 0x41, 0x19, 0x41, 0x00, 0x00, 0x01, 0x05, 0x67, 0x00,
                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x0C, 0x00};
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

// 2023-07-26 19:41:00 at UTC+8.
const SystemTime kBoarding = from_unix_seconds(1'690'371'660);

RegulatorTrip sample_trip() {
  RegulatorTrip t;
  t.isu_id = "013912345678";
  t.lane = "cab-1";
  t.meter = "meter-1";
  t.trip_number = 12;
  t.meter_body = sample_meter_body();
  t.boarding = kBoarding;
  t.alighting = kBoarding;
  return t;
}

// msg 0x8001, ISU 013912345678, serial 0x7D7E, body 00 7E 0B 05 00.
// XOR by hand: 80^01^00^05^01^39^12^34^56^78^7D^7E^00^7E^0B^05^00 = C7.
const Bytes kReplyFrame = {0x7E, 0x80, 0x01, 0x00, 0x05, 0x01, 0x39, 0x12, 0x34, 0x56, 0x78, 0x7D,
                           0x01, 0x7D, 0x02, 0x00, 0x7D, 0x02, 0x0B, 0x05, 0x00, 0xC7, 0x7E};

Jt905Frame reply_frame() {
  return Jt905Frame{kMsgGeneralReply, "013912345678", 0x7D7E, {0x00, 0x7E, 0x0B, 0x05, 0x00}};
}

TEST(RegulatorFrame, EncodesHeaderBodyXorAndEscapesSevenEAndSevenD) {
  EXPECT_EQ(encode_jt905_frame(reply_frame()), kReplyFrame);
}

TEST(RegulatorFrame, DecodesTheEscapedFrameBack) {
  auto f = decode_jt905_frame(kReplyFrame);
  ASSERT_TRUE(f) << f.error().to_string();
  EXPECT_EQ(f->msg_id, kMsgGeneralReply);
  EXPECT_EQ(f->isu_id, "013912345678");
  EXPECT_EQ(f->serial, 0x7D7E);
  EXPECT_EQ(f->body, (Bytes{0x00, 0x7E, 0x0B, 0x05, 0x00}));
  auto r = decode_general_reply(f->body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply_serial, 0x007E);
  EXPECT_EQ(r->reply_msg_id, kMsgOperationUpload);
  EXPECT_EQ(r->result, kReplyOk);
}

TEST(RegulatorFrame, EscapesAChecksumThatIsSevenE) {
  // Find the one-byte body whose checksum comes out as 7E: it must be sent as 7D 02.
  bool found = false;
  for (int b = 0; b < 256 && !found; ++b) {
    Jt905Frame f{kMsgOperationUpload, "013912345678", 1, {static_cast<std::uint8_t>(b)}};
    const Bytes wire = encode_jt905_frame(f);
    if (wire.size() >= 3 && wire[wire.size() - 3] == 0x7D && wire[wire.size() - 2] == 0x02) {
      found = true;
      auto back = decode_jt905_frame(wire);
      ASSERT_TRUE(back) << back.error().to_string();
      EXPECT_EQ(back->body, f.body);
      EXPECT_EQ(std::count(wire.begin() + 1, wire.end() - 1, 0x7E), 0);
    }
  }
  EXPECT_TRUE(found);
}

std::string refused_rule(const Bytes& wire) {
  auto f = decode_jt905_frame(wire);
  if (f) return "accepted";
  EXPECT_EQ(f.error().code, Errc::kParse);
  return f.error().field;
}

TEST(RegulatorFrame, RefusesEachCorruptionNamingTheRule) {
  Bytes bad_xor = kReplyFrame;
  bad_xor[bad_xor.size() - 2] ^= 0x01;
  EXPECT_EQ(refused_rule(bad_xor), "xor");

  Bytes flipped_body = kReplyFrame;
  flipped_body[18] ^= 0x40;  // 0B -> 4B: the checksum no longer matches
  EXPECT_EQ(refused_rule(flipped_body), "xor");

  Bytes bad_escape = kReplyFrame;
  bad_escape[12] = 0x03;  // 7D 03 is no escape
  EXPECT_EQ(refused_rule(bad_escape), "escape");

  Bytes bare_flag = kReplyFrame;
  bare_flag.insert(bare_flag.begin() + 5, 0x7E);
  EXPECT_EQ(refused_rule(bare_flag), "flag");

  Bytes no_end(kReplyFrame.begin(), kReplyFrame.end() - 1);
  EXPECT_EQ(refused_rule(no_end), "flag");

  // Body cut short inside the flags: the length field says 5.
  Bytes short_body = {0x7E, 0x80, 0x01, 0x00, 0x05, 0x01, 0x39, 0x12, 0x34,
                      0x56, 0x78, 0x00, 0x01, 0x00, 0x01, 0x0B, 0xFF, 0x7E};
  EXPECT_EQ(refused_rule(short_body), "body_length");

  EXPECT_EQ(refused_rule({0x7E, 0x80, 0x01, 0x00, 0x7E}), "length");

  Jt905Frame hex_isu = reply_frame();
  Bytes wire = encode_jt905_frame(hex_isu);
  wire[5] = 0x0A;  // ISU BCD 01 -> 0A; fix the checksum so only the BCD rule fails
  wire[wire.size() - 2] ^= 0x01 ^ 0x0A;
  EXPECT_EQ(refused_rule(wire), "isu_id");
}

TEST(RegulatorFrame, SplitterFindsFramesAcrossReadsAndSkipsGarbage) {
  Jt905StreamSplitter s;
  Bytes stream = {0x01, 0x02};  // garbage before the first flag
  stream.insert(stream.end(), kReplyFrame.begin(), kReplyFrame.end());
  stream.insert(stream.end(), kReplyFrame.begin(), kReplyFrame.end());
  s.feed(std::span(stream).first(10));
  EXPECT_FALSE(s.next());
  s.feed(std::span(stream).subspan(10));
  auto a = s.next();
  auto b = s.next();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, kReplyFrame);
  EXPECT_EQ(*b, kReplyFrame);
  EXPECT_FALSE(s.next());
  EXPECT_EQ(s.dropped_bytes(), 2u);
}

TEST(RegulatorFrame, SplitterDropsARunWithoutAnEndFlag) {
  Jt905StreamSplitter s;
  Bytes junk(kJt905MaxFrameBytes + 10, 0x11);
  junk[0] = 0x7E;
  s.feed(junk);
  EXPECT_FALSE(s.next());
  EXPECT_EQ(s.buffered(), 0u);
  s.feed(kReplyFrame);
  auto f = s.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, kReplyFrame);
}

TEST(RegulatorBody, OperationUploadLayoutMatchesTheSpecTable) {
  const Bytes body = encode_operation_upload(operation_upload_for(sample_trip()));
  Bytes expected;
  for (int pos = 0; pos < 2; ++pos) {
    expected.insert(expected.end(), 16, 0x00);      // alarm, status, lat, lng: no GNSS
    expected.insert(expected.end(), {0x00, 0x00});  // speed
    expected.push_back(0x00);                       // direction
    expected.insert(expected.end(), {0x23, 0x07, 0x26, 0x19, 0x41, 0x00});  // UTC+8 BCD
  }
  expected.insert(expected.end(), {0x00, 0x00, 0x00, 0x0C});  // operation id = trip 12
  expected.insert(expected.end(), {0x00, 0x00, 0x00, 0x00});  // evaluation id
  expected.push_back(0x00);                                   // evaluation option
  expected.insert(expected.end(), {0x00, 0x00});              // option extension
  expected.insert(expected.end(), {0x00, 0x00, 0x00, 0x00});  // e-hail order id
  const Bytes meter = sample_meter_body();
  expected.insert(expected.end(), meter.begin(), meter.end());
  ASSERT_EQ(body.size(), kOperationUploadFixedBytes + 66);
  EXPECT_EQ(body, expected);
}

TEST(RegulatorBody, ReEncodingTheDecodedTripGivesTheMeterBytes) {
  // The gateway stores the decoded TripRecord and re-encodes it for the upload.
  auto trip = lane::decode_trip_record(sample_meter_body());
  ASSERT_TRUE(trip) << trip.error().to_string();
  auto again = lane::encode_trip_record(*trip);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(*again, sample_meter_body());
}

TEST(RegulatorReply, RefusesABodyThatIsNotFiveBytes) {
  auto r = decode_general_reply(Bytes{0x00, 0x01, 0x0B, 0x05});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "body_length");
  EXPECT_EQ(encode_general_reply({0x1234, 0x0B05, 2}), (Bytes{0x12, 0x34, 0x0B, 0x05, 0x02}));
}

TEST(RegulatorItem, RoundTripsThroughTheOutboxPayload) {
  auto back = decode_regulator_item(encode_regulator_item(sample_trip()));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->isu_id, "013912345678");
  EXPECT_EQ(back->lane, "cab-1");
  EXPECT_EQ(back->meter, "meter-1");
  EXPECT_EQ(back->trip_number, 12u);
  EXPECT_EQ(back->meter_body, sample_meter_body());
  EXPECT_EQ(back->boarding, kBoarding);
  EXPECT_EQ(back->alighting, kBoarding);
}

TEST(RegulatorItem, RefusesBadPayloadsNamingTheField) {
  const auto field = [](const std::string& payload) {
    auto r = decode_regulator_item(payload);
    return r ? std::string("accepted") : r.error().field;
  };
  EXPECT_EQ(field("not json"), "payload");
  std::string good = encode_regulator_item(sample_trip());
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_EQ(field(replaced("\"v\":1", "\"v\":2")), "v");
  EXPECT_EQ(field(replaced("013912345678", "01391234567X")), "isu_id");
  EXPECT_EQ(field(replaced("\"meter_body\":\"", "\"meter_body\":\"zz")), "meter_body");
  RegulatorTrip short_body = sample_trip();
  short_body.meter_body.resize(65);
  EXPECT_EQ(field(encode_regulator_item(short_body)), "meter_body");
  EXPECT_EQ(field(replaced("\"trip_number\":12", "\"trip_number\":-1")), "trip_number");
}

TEST(RegulatorItem, SerialFollowsTheItemIdSoAResendKeepsIt) {
  EXPECT_EQ(regulator_serial(42), 42);
  EXPECT_EQ(regulator_serial(0x1'0005), 5);
  EXPECT_NE(regulator_serial(42), regulator_serial(43));
}

TEST(RegulatorUplinkTopic, HandlesOnlyRegulatorTrips) {
  EXPECT_TRUE(RegulatorUplink::handles("regulator.trip"));
  EXPECT_FALSE(RegulatorUplink::handles("invoice.issue"));
}

}  // namespace
}  // namespace lanegate::gateway
