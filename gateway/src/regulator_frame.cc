// JT/T 905 terminal-platform framing, the 0x0B05 body, the 0x8001 reply and the
// regulator.trip outbox item (gateway/regulator.h).
#include <algorithm>
#include <boost/json.hpp>
#include <cassert>

#include "core/crypto.h"
#include "core/time_format.h"
#include "gateway/regulator.h"
#include "lane/meter_frame.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;

constexpr std::uint8_t kEscape = 0x7D;
constexpr int kItemVersion = 1;
// Times a BCD[6] YYMMDD can carry without ambiguity: 1970 up to 2100-01-01.
constexpr std::int64_t kLatestUnixSeconds = 4'102'444'800;

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint8_t bcd(int two_digits) {
  return static_cast<std::uint8_t>(((two_digits / 10) << 4) | (two_digits % 10));
}

// YYMMDDhhmmss at UTC+8 (JT/T 905 times are Beijing time).
void put_bcd_time(std::vector<std::uint8_t>& out, SystemTime t) {
  using namespace std::chrono;
  const auto local = floor<seconds>(t) + hours(8);
  const auto day = floor<days>(local);
  const year_month_day ymd{day};
  const hh_mm_ss hms{local - day};
  out.push_back(bcd(static_cast<int>(ymd.year()) % 100));
  out.push_back(bcd(static_cast<int>(static_cast<unsigned>(ymd.month()))));
  out.push_back(bcd(static_cast<int>(static_cast<unsigned>(ymd.day()))));
  out.push_back(bcd(static_cast<int>(hms.hours().count())));
  out.push_back(bcd(static_cast<int>(hms.minutes().count())));
  out.push_back(bcd(static_cast<int>(hms.seconds().count())));
}

void put_position(std::vector<std::uint8_t>& out, const Jt905Position& p) {
  put_u32(out, p.alarm);
  put_u32(out, p.status);
  put_u32(out, p.latitude);
  put_u32(out, p.longitude);
  put_u16(out, p.speed);
  out.push_back(p.direction);
  put_bcd_time(out, p.time);
}

bool is_isu_id(std::string_view s) {
  return s.size() == 12 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::uint16_t get_u16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

}  // namespace

std::vector<std::uint8_t> encode_jt905_frame(const Jt905Frame& frame) {
  assert(is_isu_id(frame.isu_id) && frame.body.size() <= 0xFFFF);
  std::vector<std::uint8_t> raw;
  raw.reserve(kJt905HeaderBytes + frame.body.size() + 1);
  put_u16(raw, frame.msg_id);
  put_u16(raw, static_cast<std::uint16_t>(frame.body.size()));
  for (std::size_t i = 0; i < 12; i += 2) {
    raw.push_back(
        static_cast<std::uint8_t>(((frame.isu_id[i] - '0') << 4) | (frame.isu_id[i + 1] - '0')));
  }
  put_u16(raw, frame.serial);
  raw.insert(raw.end(), frame.body.begin(), frame.body.end());
  std::uint8_t x = 0;
  for (std::uint8_t b : raw) x ^= b;
  raw.push_back(x);

  std::vector<std::uint8_t> out;
  out.reserve(raw.size() + raw.size() / 8 + 2);
  out.push_back(kJt905Flag);
  for (std::uint8_t b : raw) {
    if (b == kJt905Flag) {
      out.push_back(kEscape);
      out.push_back(0x02);
    } else if (b == kEscape) {
      out.push_back(kEscape);
      out.push_back(0x01);
    } else {
      out.push_back(b);
    }
  }
  out.push_back(kJt905Flag);
  return out;
}

Result<Jt905Frame> decode_jt905_frame(std::span<const std::uint8_t> bytes) {
  if (bytes.empty() || bytes.front() != kJt905Flag) {
    return fail(Errc::kParse, "a frame starts with 7E", "flag");
  }
  if (bytes.size() < 2 || bytes.back() != kJt905Flag) {
    return fail(Errc::kParse, "truncated: a frame ends with 7E", "flag");
  }
  std::vector<std::uint8_t> raw;
  raw.reserve(bytes.size());
  for (std::size_t i = 1; i + 1 < bytes.size(); ++i) {
    const std::uint8_t b = bytes[i];
    if (b == kJt905Flag) return fail(Errc::kParse, "7E inside a frame must be escaped", "flag");
    if (b != kEscape) {
      raw.push_back(b);
      continue;
    }
    if (i + 2 >= bytes.size() || (bytes[i + 1] != 0x01 && bytes[i + 1] != 0x02)) {
      return fail(Errc::kParse, "7D must be followed by 01 or 02", "escape");
    }
    raw.push_back(bytes[i + 1] == 0x02 ? kJt905Flag : kEscape);
    ++i;
  }
  if (raw.size() < kJt905HeaderBytes + 1) {
    return fail(
        Errc::kParse,
        "truncated: " + std::to_string(raw.size()) + " bytes, a header and checksum take 13",
        "length");
  }
  const std::span<const std::uint8_t> r(raw);
  const std::size_t declared = get_u16(r, 2);
  const std::size_t present = raw.size() - kJt905HeaderBytes - 1;
  if (declared != present) {
    return fail(Errc::kParse,
                (present < declared ? "truncated: " : "trailing bytes: ") +
                    std::to_string(present) + " body bytes present, header says " +
                    std::to_string(declared),
                "body_length");
  }
  std::uint8_t x = 0;
  for (std::size_t i = 0; i + 1 < raw.size(); ++i) x ^= raw[i];
  if (x != raw.back())
    return fail(Errc::kParse, "checksum does not match the XOR of header and body", "xor");

  Jt905Frame f;
  f.msg_id = get_u16(r, 0);
  for (std::size_t i = 4; i < 10; ++i) {
    const int hi = raw[i] >> 4;
    const int lo = raw[i] & 0x0F;
    if (hi > 9 || lo > 9) return fail(Errc::kParse, "BCD nibble above 9", "isu_id");
    f.isu_id.push_back(static_cast<char>('0' + hi));
    f.isu_id.push_back(static_cast<char>('0' + lo));
  }
  f.serial = get_u16(r, 10);
  f.body.assign(raw.begin() + kJt905HeaderBytes, raw.end() - 1);
  return f;
}

void Jt905StreamSplitter::feed(std::span<const std::uint8_t> bytes) {
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<std::vector<std::uint8_t>> Jt905StreamSplitter::next() {
  for (;;) {
    // Invariant: afterwards buffer_ is empty or starts with a flag.
    const auto start = std::find(buffer_.begin(), buffer_.end(), kJt905Flag);
    dropped_ += static_cast<std::size_t>(start - buffer_.begin());
    buffer_.erase(buffer_.begin(), start);
    if (buffer_.empty()) return std::nullopt;
    const auto end = std::find(buffer_.begin() + 1, buffer_.end(), kJt905Flag);
    if (end == buffer_.end()) {
      if (buffer_.size() > kJt905MaxFrameBytes) {
        // No end flag within any frame we accept: the bytes are garbage. Keep searching
        // from the next byte.
        dropped_ += buffer_.size();
        buffer_.clear();
      }
      return std::nullopt;
    }
    if (end == buffer_.begin() + 1) {
      // 7E 7E: the end of one frame followed by the start of the next (or an empty run);
      // the second flag starts the frame.
      ++dropped_;
      buffer_.erase(buffer_.begin());
      continue;
    }
    std::vector<std::uint8_t> frame(buffer_.begin(), end + 1);
    buffer_.erase(buffer_.begin(), end + 1);
    return frame;
  }
}

std::vector<std::uint8_t> encode_operation_upload(const OperationUpload& u) {
  std::vector<std::uint8_t> out;
  out.reserve(kOperationUploadFixedBytes + u.meter_body.size());
  put_position(out, u.occupied);
  put_position(out, u.freed);
  put_u32(out, u.operation_id);
  put_u32(out, u.evaluation_id);
  out.push_back(u.evaluation_option);
  put_u16(out, u.evaluation_option_ext);
  put_u32(out, u.ehail_order_id);
  out.insert(out.end(), u.meter_body.begin(), u.meter_body.end());
  return out;
}

Result<GeneralReply> decode_general_reply(std::span<const std::uint8_t> body) {
  if (body.size() != 5) {
    return fail(Errc::kParse, "a 0x8001 body is 5 bytes, got " + std::to_string(body.size()),
                "body_length");
  }
  return GeneralReply{get_u16(body, 0), get_u16(body, 2), body[4]};
}

std::vector<std::uint8_t> encode_general_reply(const GeneralReply& reply) {
  std::vector<std::uint8_t> out;
  put_u16(out, reply.reply_serial);
  put_u16(out, reply.reply_msg_id);
  out.push_back(reply.result);
  return out;
}

OperationUpload operation_upload_for(const RegulatorTrip& trip) {
  OperationUpload u;
  // No GNSS input on this box: only the times are known (see the header).
  u.occupied.time = trip.boarding;
  u.freed.time = trip.alighting;
  u.operation_id = trip.trip_number;
  u.meter_body = trip.meter_body;
  return u;
}

std::uint16_t regulator_serial(std::int64_t item_id) {
  return static_cast<std::uint16_t>(static_cast<std::uint64_t>(item_id) & 0xFFFF);
}

std::string encode_regulator_item(const RegulatorTrip& trip) {
  json::object o;
  o["v"] = kItemVersion;
  o["isu_id"] = trip.isu_id;
  o["lane"] = trip.lane;
  o["meter"] = trip.meter;
  o["trip_number"] = trip.trip_number;
  o["meter_body"] = crypto::hex_encode(trip.meter_body);
  o["boarding"] = to_unix_seconds(trip.boarding);
  o["alighting"] = to_unix_seconds(trip.alighting);
  return json::serialize(o);
}

Result<RegulatorTrip> decode_regulator_item(std::string_view payload) {
  boost::system::error_code ec;
  json::value v = json::parse(payload, ec);
  if (ec || !v.is_object()) return fail(Errc::kParse, "payload is not a JSON object", "payload");
  const json::object& o = v.as_object();
  const auto str = [&](const char* key) -> const json::string* {
    auto it = o.find(key);
    return it != o.end() && it->value().is_string() ? &it->value().as_string() : nullptr;
  };
  const auto num = [&](const char* key) -> std::optional<std::int64_t> {
    auto it = o.find(key);
    if (it == o.end()) return std::nullopt;
    if (it->value().is_int64()) return it->value().as_int64();
    if (it->value().is_uint64() && it->value().as_uint64() <= INT64_MAX) {
      return static_cast<std::int64_t>(it->value().as_uint64());
    }
    return std::nullopt;
  };
  if (num("v") != kItemVersion) {
    return fail(Errc::kInvalidArgument, "unsupported item version (this build reads 1)", "v");
  }
  RegulatorTrip t;
  const json::string* isu = str("isu_id");
  if (!isu || !is_isu_id(*isu)) return fail(Errc::kInvalidArgument, "must be 12 digits", "isu_id");
  t.isu_id = std::string(*isu);
  const json::string* lane = str("lane");
  const json::string* meter = str("meter");
  if (!lane) return fail(Errc::kInvalidArgument, "must be a string", "lane");
  if (!meter) return fail(Errc::kInvalidArgument, "must be a string", "meter");
  t.lane = std::string(*lane);
  t.meter = std::string(*meter);
  const auto trip = num("trip_number");
  if (!trip || *trip < 0 || *trip > 0xFFFFFFFFLL) {
    return fail(Errc::kInvalidArgument, "must be an integer 0..4294967295", "trip_number");
  }
  t.trip_number = static_cast<std::uint32_t>(*trip);
  const json::string* body = str("meter_body");
  if (!body) return fail(Errc::kInvalidArgument, "must be a hex string", "meter_body");
  auto bytes = crypto::hex_decode(*body);
  if (!bytes) return fail(Errc::kInvalidArgument, "must be a hex string", "meter_body");
  // The meter link's own limits: the fixed record, and a body that fits a meter frame.
  if (bytes->size() < lane::kTripFixedBodyBytes || bytes->size() > lane::kMaxFrameLen) {
    return fail(Errc::kInvalidArgument, "a 0x00E8 body is 66..1024 bytes", "meter_body");
  }
  t.meter_body = std::move(*bytes);
  const auto boarding = num("boarding");
  const auto alighting = num("alighting");
  const auto in_range = [](std::optional<std::int64_t> s) {
    return s && *s >= 0 && *s < kLatestUnixSeconds;
  };
  if (!in_range(boarding)) {
    return fail(Errc::kInvalidArgument, "must be unix seconds before 2100", "boarding");
  }
  if (!in_range(alighting)) {
    return fail(Errc::kInvalidArgument, "must be unix seconds before 2100", "alighting");
  }
  t.boarding = from_unix_seconds(*boarding);
  t.alighting = from_unix_seconds(*alighting);
  return t;
}

}  // namespace lanegate::gateway
