#include "lane/meter_frame.h"

#include <algorithm>
#include <cassert>
#include <cstdio>

namespace lanegate::lane {
namespace {

constexpr std::uint8_t kHead0 = 0x55;
constexpr std::uint8_t kHead1 = 0xAA;

std::uint8_t xor_of(std::span<const std::uint8_t> b) {
  std::uint8_t x = 0;
  for (auto v : b) {
    x ^= v;
  }
  return x;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + doe - 719468;
}

void civil_from_days(std::int64_t z, int& y, int& m, int& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<int>(z - era * 146097);
  const int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp + (mp < 10 ? 3 : -9);
  y = static_cast<int>(yoe + era * 400) + (m <= 2 ? 1 : 0);
}

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Reads `n` BCD bytes as a decimal number; kParse naming `field` on a nibble > 9.
Result<std::int64_t> bcd(std::span<const std::uint8_t> b, std::string_view field) {
  std::int64_t v = 0;
  for (auto byte : b) {
    const int hi = byte >> 4;
    const int lo = byte & 0x0F;
    if (hi > 9 || lo > 9) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02X", byte);
      return fail(Errc::kParse, std::string("BCD byte 0x") + buf + " has a nibble > 9",
                  std::string(field));
    }
    v = v * 100 + hi * 10 + lo;
  }
  return v;
}

Status put_bcd(std::vector<std::uint8_t>& out, std::int64_t v, int bytes, std::string_view field) {
  if (v < 0) {
    return fail(Errc::kOutOfRange, "negative", std::string(field));
  }
  std::vector<std::uint8_t> tmp(bytes);
  for (int i = bytes - 1; i >= 0; --i) {
    const int lo = static_cast<int>(v % 10);
    v /= 10;
    const int hi = static_cast<int>(v % 10);
    v /= 10;
    tmp[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  if (v != 0) {
    return fail(Errc::kOutOfRange, "does not fit " + std::to_string(bytes * 2) + " BCD digits",
                std::string(field));
  }
  out.insert(out.end(), tmp.begin(), tmp.end());
  return {};
}

std::string ascii_field(std::span<const std::uint8_t> b) {
  std::string s(b.begin(), b.end());
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) {
    s.pop_back();
  }
  // Non-printable bytes would poison logs and JSON; replace them visibly.
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) {
      c = '?';
    }
  }
  return s;
}

void put_ascii(std::vector<std::uint8_t>& out, std::string_view s, size_t width) {
  for (size_t i = 0; i < width; ++i) {
    out.push_back(i < s.size() ? static_cast<std::uint8_t>(s[i]) : 0);
  }
}

}  // namespace

std::string CivilTime::to_string() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d", year, month, day, hour, minute);
  return buf;
}

std::int64_t CivilTime::to_unix(int utc_offset_minutes) const {
  return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 -
         static_cast<std::int64_t>(utc_offset_minutes) * 60;
}

std::string_view health_name(Health h) {
  switch (h) {
    case Health::kUp:
      return "up";
    case Health::kDegraded:
      return "degraded";
    case Health::kDown:
      return "down";
  }
  return "?";
}

std::string_view fault_name(FrameFault f) {
  switch (f) {
    case FrameFault::kGarbage:
      return "garbage";
    case FrameFault::kBadLen:
      return "bad_len";
    case FrameFault::kBadXor:
      return "bad_xor";
    case FrameFault::kBadTail:
      return "bad_tail";
    case FrameFault::kTruncated:
      return "truncated";
  }
  return "?";
}

std::vector<std::uint8_t> encode_meter_frame(const MeterFrame& frame) {
  const auto len = static_cast<std::uint16_t>(frame.body.size() + 4);
  std::vector<std::uint8_t> out;
  out.reserve(len + 7u);
  out.push_back(kHead0);
  out.push_back(kHead1);
  out.push_back(static_cast<std::uint8_t>(len >> 8));
  out.push_back(static_cast<std::uint8_t>(len & 0xFF));
  out.push_back(frame.device);
  out.push_back(frame.vendor);
  out.push_back(static_cast<std::uint8_t>(frame.cmd >> 8));
  out.push_back(static_cast<std::uint8_t>(frame.cmd & 0xFF));
  out.insert(out.end(), frame.body.begin(), frame.body.end());
  out.push_back(xor_of(std::span(out).subspan(2)));
  out.push_back(kHead0);
  out.push_back(kHead1);
  return out;
}

Result<MeterFrame> decode_meter_frame(std::span<const std::uint8_t> b) {
  if (b.size() < 11) {
    return fail(Errc::kParse, "frame is " + std::to_string(b.size()) + " bytes, minimum 11",
                "frame");
  }
  if (b[0] != kHead0 || b[1] != kHead1) {
    return fail(Errc::kParse, "does not start with 55 AA", "frame");
  }
  const size_t len = static_cast<size_t>(b[2]) << 8 | b[3];
  if (len < 4 || len > kMaxFrameLen) {
    return fail(Errc::kParse,
                "LEN " + std::to_string(len) + " is not 4.." + std::to_string(kMaxFrameLen), "LEN");
  }
  if (b.size() < len + 7) {
    return fail(Errc::kParse,
                "truncated: LEN says " + std::to_string(len + 7) + " bytes, have " +
                    std::to_string(b.size()),
                "LEN");
  }
  if (b.size() > len + 7) {
    return fail(Errc::kParse, std::to_string(b.size() - len - 7) + " bytes after the frame", "LEN");
  }
  if (xor_of(b.subspan(2, len + 2)) != b[4 + len]) {
    return fail(Errc::kParse, "XOR check failed", "XOR");
  }
  if (b[5 + len] != kHead0 || b[6 + len] != kHead1) {
    return fail(Errc::kParse, "does not end with 55 AA", "tail");
  }
  MeterFrame f;
  f.device = b[4];
  f.vendor = b[5];
  f.cmd = static_cast<std::uint16_t>(b[6] << 8 | b[7]);
  f.body.assign(b.begin() + 8, b.begin() + 4 + static_cast<std::ptrdiff_t>(len));
  return f;
}

void MeterStreamDecoder::feed(std::span<const std::uint8_t> bytes) {
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<StreamItem> MeterStreamDecoder::next() {
  // Garbage before a frame start: drop and report it.
  size_t start = 0;
  while (start + 1 < buffer_.size() &&
         !(buffer_[start] == kHead0 && buffer_[start + 1] == kHead1)) {
    ++start;
  }
  if (start + 1 >= buffer_.size() && !(buffer_.size() == start + 1 && buffer_[start] == kHead0)) {
    start = buffer_.size();
  }
  if (start > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start));
    return FrameFaultReport{FrameFault::kGarbage, start};
  }
  if (buffer_.size() < 4) {
    return std::nullopt;
  }
  const size_t len = static_cast<size_t>(buffer_[2]) << 8 | buffer_[3];
  auto drop_start = [this](FrameFault fault) {
    // Skip the bad 55 so the search finds the next start (invariant 3).
    buffer_.erase(buffer_.begin());
    return FrameFaultReport{fault, 1};
  };
  if (len < 4 || len > kMaxFrameLen) {
    return drop_start(FrameFault::kBadLen);
  }
  if (buffer_.size() < len + 7) {
    return std::nullopt;
  }
  const std::span<const std::uint8_t> b(buffer_.data(), len + 7);
  if (xor_of(b.subspan(2, len + 2)) != b[4 + len]) {
    return drop_start(FrameFault::kBadXor);
  }
  if (b[5 + len] != kHead0 || b[6 + len] != kHead1) {
    return drop_start(FrameFault::kBadTail);
  }
  MeterFrame f;
  f.device = b[4];
  f.vendor = b[5];
  f.cmd = static_cast<std::uint16_t>(b[6] << 8 | b[7]);
  f.body.assign(b.begin() + 8, b.begin() + 4 + static_cast<std::ptrdiff_t>(len));
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(len + 7));
  return f;
}

std::optional<FrameFaultReport> MeterStreamDecoder::flush_partial() {
  if (buffer_.empty()) {
    return std::nullopt;
  }
  FrameFaultReport r{FrameFault::kTruncated, buffer_.size()};
  buffer_.clear();
  return r;
}

Result<TripRecord> decode_trip_record(std::span<const std::uint8_t> body) {
  if (body.size() < kTripFixedBodyBytes) {
    return fail(Errc::kParse,
                "trip record body is " + std::to_string(body.size()) + " bytes, minimum " +
                    std::to_string(kTripFixedBodyBytes),
                "body");
  }
  TripRecord t;
  size_t p = 0;
  auto take = [&](size_t n) {
    auto s = body.subspan(p, n);
    p += n;
    return s;
  };
  t.plate = ascii_field(take(6));
  t.operating_licence = ascii_field(take(16));
  t.driver_qualification = ascii_field(take(19));
  auto boarding = bcd(take(5), "boarding_time");
  if (!boarding) {
    return std::unexpected(boarding.error());
  }
  auto alight = bcd(take(2), "alighting_time");
  if (!alight) {
    return std::unexpected(alight.error());
  }
  auto distance = bcd(take(3), "distance");
  auto empty = bcd(take(2), "empty_distance");
  auto surcharge = bcd(take(3), "surcharge");
  auto waiting = bcd(take(2), "waiting_time");
  auto fare = bcd(take(3), "fare");
  for (auto* r : {&distance, &empty, &surcharge, &waiting, &fare}) {
    if (!*r) {
      return std::unexpected(r->error());
    }
  }
  const std::int64_t b = *boarding;
  t.boarding.year = 2000 + static_cast<int>(b / 100000000 % 100);
  t.boarding.month = static_cast<int>(b / 1000000 % 100);
  t.boarding.day = static_cast<int>(b / 10000 % 100);
  t.boarding.hour = static_cast<int>(b / 100 % 100);
  t.boarding.minute = static_cast<int>(b % 100);
  if (t.boarding.month < 1 || t.boarding.month > 12 || t.boarding.day < 1 ||
      t.boarding.day > days_in_month(t.boarding.year, t.boarding.month) || t.boarding.hour > 23 ||
      t.boarding.minute > 59) {
    return fail(Errc::kParse, "impossible date/time " + t.boarding.to_string(), "boarding_time");
  }
  const int ah = static_cast<int>(*alight / 100);
  const int am = static_cast<int>(*alight % 100);
  if (ah > 23 || am > 59) {
    return fail(Errc::kParse, "impossible time " + std::to_string(*alight), "alighting_time");
  }
  t.alighting = t.boarding;
  t.alighting.hour = ah;
  t.alighting.minute = am;
  if (ah * 60 + am < t.boarding.hour * 60 + t.boarding.minute) {
    // Across midnight: the trip ended on the next day (legal per the spec).
    civil_from_days(days_from_civil(t.boarding.year, t.boarding.month, t.boarding.day) + 1,
                    t.alighting.year, t.alighting.month, t.alighting.day);
  }
  const int wm = static_cast<int>(*waiting % 100);
  if (wm > 59) {
    return fail(Errc::kParse, "minutes " + std::to_string(wm) + " > 59", "waiting_time");
  }
  t.waiting_seconds = static_cast<int>(*waiting / 100) * 3600 + wm * 60;
  t.distance_m = *distance * 100;
  t.empty_distance_m = *empty * 100;
  t.surcharge = Money::from_fen(*surcharge * 10);
  t.fare = Money::from_fen(*fare * 10);
  auto tn = take(4);
  t.trip_number = static_cast<std::uint32_t>(tn[0]) << 24 |
                  static_cast<std::uint32_t>(tn[1]) << 16 | static_cast<std::uint32_t>(tn[2]) << 8 |
                  tn[3];
  t.payment_type = take(1)[0];
  t.card_data.assign(body.begin() + static_cast<std::ptrdiff_t>(p), body.end());
  return t;
}

Result<std::vector<std::uint8_t>> encode_trip_record(const TripRecord& t) {
  std::vector<std::uint8_t> out;
  out.reserve(kTripFixedBodyBytes + t.card_data.size());
  put_ascii(out, t.plate, 6);
  put_ascii(out, t.operating_licence, 16);
  put_ascii(out, t.driver_qualification, 19);
  const auto& bt = t.boarding;
  const std::int64_t boarding = static_cast<std::int64_t>(bt.year % 100) * 100000000 +
                                bt.month * 1000000LL + bt.day * 10000LL + bt.hour * 100LL +
                                bt.minute;
  if (t.fare.fen() % 10 != 0 || t.surcharge.fen() % 10 != 0) {
    return fail(Errc::kInvalidArgument, "meter amounts are whole 0.1 yuan", "fare");
  }
  for (auto st : {put_bcd(out, boarding, 5, "boarding_time"),
                  put_bcd(out, t.alighting.hour * 100 + t.alighting.minute, 2, "alighting_time"),
                  put_bcd(out, t.distance_m / 100, 3, "distance"),
                  put_bcd(out, t.empty_distance_m / 100, 2, "empty_distance"),
                  put_bcd(out, t.surcharge.fen() / 10, 3, "surcharge"),
                  put_bcd(out, t.waiting_seconds / 3600 * 100 + t.waiting_seconds % 3600 / 60, 2,
                          "waiting_time"),
                  put_bcd(out, t.fare.fen() / 10, 3, "fare")}) {
    if (!st) {
      return std::unexpected(st.error());
    }
  }
  out.push_back(static_cast<std::uint8_t>(t.trip_number >> 24));
  out.push_back(static_cast<std::uint8_t>(t.trip_number >> 16));
  out.push_back(static_cast<std::uint8_t>(t.trip_number >> 8));
  out.push_back(static_cast<std::uint8_t>(t.trip_number));
  out.push_back(t.payment_type);
  out.insert(out.end(), t.card_data.begin(), t.card_data.end());
  return out;
}

bool from_meter(const MeterFrame& f) {
  return (f.device == kDeviceMeter || f.device == kDeviceTerminal) && f.vendor == 0;
}

MeterFrame make_ack(std::uint16_t cmd, bool ok) {
  return MeterFrame{kDeviceMeter, 0, cmd, {ok ? kAckOk : kAckError}};
}

std::optional<std::uint8_t> ack_status(const MeterFrame& f) {
  const bool ack_cmd = f.cmd == kCmdTripStarted || f.cmd == kCmdTripRecord || f.cmd == kCmdStoredTrip;
  if (!ack_cmd || f.vendor != 0 || f.body.size() != 1) {
    return std::nullopt;
  }
  return f.body[0];
}

Result<MeterTime> decode_meter_time(std::span<const std::uint8_t> body, std::string_view field) {
  if (body.size() < 7) {
    return fail(Errc::kParse,
                "time is BCD[7] YYYYMMDDhhmmss, body has " + std::to_string(body.size()) + " bytes",
                std::string(field));
  }
  auto v = bcd(body.first(7), field);
  if (!v) {
    return std::unexpected(v.error());
  }
  MeterTime t;
  t.civil.year = static_cast<int>(*v / 10000000000LL);
  t.civil.month = static_cast<int>(*v / 100000000 % 100);
  t.civil.day = static_cast<int>(*v / 1000000 % 100);
  t.civil.hour = static_cast<int>(*v / 10000 % 100);
  t.civil.minute = static_cast<int>(*v / 100 % 100);
  t.second = static_cast<int>(*v % 100);
  const auto& c = t.civil;
  if (c.month < 1 || c.month > 12 || c.day < 1 || c.day > days_in_month(c.year, c.month) ||
      c.hour > 23 || c.minute > 59 || t.second > 59) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s:%02d", c.to_string().c_str(), t.second);
    return fail(Errc::kParse, std::string("impossible date/time ") + buf, std::string(field));
  }
  return t;
}

std::vector<std::uint8_t> encode_meter_time(const MeterTime& t) {
  std::vector<std::uint8_t> out;
  const std::int64_t v = static_cast<std::int64_t>(t.civil.year) * 10000000000LL +
                         t.civil.month * 100000000LL + t.civil.day * 1000000LL +
                         t.civil.hour * 10000LL + t.civil.minute * 100LL + t.second;
  [[maybe_unused]] const auto st = put_bcd(out, v, 7, "time");
  assert(st && "REQUIRES: year 0..9999");
  return out;
}

MeterTime meter_time_at(std::int64_t unix_seconds, int utc_offset_minutes) {
  const std::int64_t local = unix_seconds + static_cast<std::int64_t>(utc_offset_minutes) * 60;
  std::int64_t days = local / 86400;
  std::int64_t rem = local % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  MeterTime t;
  civil_from_days(days, t.civil.year, t.civil.month, t.civil.day);
  t.civil.hour = static_cast<int>(rem / 3600);
  t.civil.minute = static_cast<int>(rem % 3600 / 60);
  t.second = static_cast<int>(rem % 60);
  return t;
}

MeterFrame make_status_query(const MeterTime& terminal_time) {
  return MeterFrame{kDeviceMeter, 0, kCmdStatus, encode_meter_time(terminal_time)};
}

Result<MeterStatus> decode_meter_status(std::span<const std::uint8_t> body) {
  // Extra bytes after the 55 are ignored: the reply is read-only information, and a
  // meter that appends something must not have its link refused for it.
  if (body.size() < kStatusBodyBytes) {
    return fail(Errc::kParse,
                "status body is " + std::to_string(body.size()) + " bytes, minimum " +
                    std::to_string(kStatusBodyBytes),
                "body");
  }
  MeterStatus s;
  struct BcdField {
    int* out;
    std::size_t offset;
    std::size_t bytes;
    std::string_view name;
  };
  for (const BcdField& f : {BcdField{&s.vendor, 0, 1, "vendor"},
                            BcdField{&s.device_type, 1, 1, "device_type"},
                            BcdField{&s.serial, 2, 3, "serial"},
                            BcdField{&s.hw_version, 5, 1, "hw_version"},
                            BcdField{&s.sw_major, 6, 1, "sw_major_version"},
                            BcdField{&s.sw_minor, 7, 1, "sw_minor_version"}}) {
    auto v = bcd(body.subspan(f.offset, f.bytes), f.name);
    if (!v) {
      return std::unexpected(v.error());
    }
    *f.out = static_cast<int>(*v);
  }
  s.device_state = body[8];
  s.work_state = body[9];
  s.plate = ascii_field(body.subspan(10, 6));
  s.operating_licence = ascii_field(body.subspan(16, 16));
  s.driver_qualification = ascii_field(body.subspan(32, 19));
  s.trip_count = static_cast<std::uint32_t>(body[51]) << 24 |
                 static_cast<std::uint32_t>(body[52]) << 16 |
                 static_cast<std::uint32_t>(body[53]) << 8 | body[54];
  return s;
}

Result<std::vector<std::uint8_t>> encode_meter_status(const MeterStatus& s) {
  std::vector<std::uint8_t> out;
  out.reserve(kStatusBodyBytes);
  for (auto st : {put_bcd(out, s.vendor, 1, "vendor"), put_bcd(out, s.device_type, 1, "device_type"),
                  put_bcd(out, s.serial, 3, "serial"), put_bcd(out, s.hw_version, 1, "hw_version"),
                  put_bcd(out, s.sw_major, 1, "sw_major_version"),
                  put_bcd(out, s.sw_minor, 1, "sw_minor_version")}) {
    if (!st) {
      return std::unexpected(st.error());
    }
  }
  out.push_back(s.device_state);
  out.push_back(s.work_state);
  put_ascii(out, s.plate, 6);
  put_ascii(out, s.operating_licence, 16);
  put_ascii(out, s.driver_qualification, 19);
  out.push_back(static_cast<std::uint8_t>(s.trip_count >> 24));
  out.push_back(static_cast<std::uint8_t>(s.trip_count >> 16));
  out.push_back(static_cast<std::uint8_t>(s.trip_count >> 8));
  out.push_back(static_cast<std::uint8_t>(s.trip_count));
  return out;
}

std::string_view device_state_meaning(std::uint8_t state) {
  switch (state) {
    case 0x00:
      return "ok";
    case 0x01:
      return "count-limited";
    case 0x02:
      return "date-limited";
    case 0x04:
      return "trip store full";
    case 0x08:
      return "sign-in store full";
    default:
      return "fault";
  }
}

std::string_view work_state_meaning(std::uint8_t state) {
  switch (state) {
    case 0x00:
      return "signed in";
    case 0x01:
      return "signed out";
    case 0x10:
      return "forced on";
    case 0x11:
      return "forced off";
    default:
      return "unknown";
  }
}

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

namespace {
std::string hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (auto v : b) {
    s.push_back(kDigits[v >> 4]);
    s.push_back(kDigits[v & 0xF]);
  }
  return s;
}
std::string q(std::string_view s) { return "\"" + json_escape(s) + "\""; }
}  // namespace

Status check_meter_frame_body(const MeterFrame& f) {
  if (auto st = ack_status(f)) {
    if (*st != kAckOk && *st != kAckError) {
      return fail(Errc::kParse, "ack status is 0x90 or 0xFF", "body");
    }
    return {};
  }
  switch (f.cmd) {
    case kCmdTripRecord:
    case kCmdStoredTrip:
      if (auto t = decode_trip_record(f.body); !t) {
        return std::unexpected(t.error());
      }
      return {};
    case kCmdTripStarted:
      if (auto t = decode_meter_time(f.body, "occupied_at"); !t) {
        return std::unexpected(t.error());
      }
      return {};
    case kCmdStatus:
      if (f.body.size() == 7) {
        if (auto t = decode_meter_time(f.body, "terminal_time"); !t) {
          return std::unexpected(t.error());
        }
      } else if (auto s = decode_meter_status(f.body); !s) {
        return std::unexpected(s.error());
      }
      return {};
    default:
      return {};
  }
}

std::string meter_frame_json(const MeterFrame& f) {
  char cmd[8];
  std::snprintf(cmd, sizeof cmd, "0x%04X", f.cmd);
  std::string out = "{\"device\":" + std::to_string(f.device) +
                    ",\"vendor\":" + std::to_string(f.vendor) + ",\"cmd\":" + q(cmd) +
                    ",\"body_hex\":" + q(hex(f.body));
  auto time_json = [](const MeterTime& t) {
    char sec[4];
    std::snprintf(sec, sizeof sec, ":%02d", t.second);
    return q(t.civil.to_string() + sec);
  };
  if (auto st = ack_status(f)) {
    out += ",\"ack\":" + q(*st == kAckOk ? "ok" : *st == kAckError ? "error" : "invalid");
  } else if (f.cmd == kCmdTripRecord || f.cmd == kCmdStoredTrip) {
    auto t = decode_trip_record(f.body);
    if (!t) {
      out += ",\"trip_error\":" + q(t.error().to_string());
    } else {
      out += ",\"trip\":{\"plate\":" + q(t->plate) +
             ",\"operating_licence\":" + q(t->operating_licence) +
             ",\"driver_qualification\":" + q(t->driver_qualification) +
             ",\"boarding\":" + q(t->boarding.to_string()) +
             ",\"alighting\":" + q(t->alighting.to_string()) +
             ",\"distance_m\":" + std::to_string(t->distance_m) +
             ",\"empty_distance_m\":" + std::to_string(t->empty_distance_m) +
             ",\"surcharge_fen\":" + std::to_string(t->surcharge.fen()) +
             ",\"waiting_seconds\":" + std::to_string(t->waiting_seconds) +
             ",\"fare_fen\":" + std::to_string(t->fare.fen()) +
             ",\"fare\":" + q(t->fare.to_string()) +
             ",\"trip_number\":" + std::to_string(t->trip_number) +
             ",\"payment_type\":" + std::to_string(t->payment_type) + ",\"card_data_hex\":" +
             q(hex(std::span(reinterpret_cast<const std::uint8_t*>(t->card_data.data()),
                             t->card_data.size()))) +
             "}";
    }
  } else if (f.cmd == kCmdTripStarted) {
    auto t = decode_meter_time(f.body, "occupied_at");
    out += t ? ",\"occupied_at\":" + time_json(*t)
             : ",\"trip_start_error\":" + q(t.error().to_string());
  } else if (f.cmd == kCmdStatus && f.body.size() == 7) {
    auto t = decode_meter_time(f.body, "terminal_time");
    out += t ? ",\"status_query\":{\"terminal_time\":" + time_json(*t) + "}"
             : ",\"status_error\":" + q(t.error().to_string());
  } else if (f.cmd == kCmdStatus) {
    auto s = decode_meter_status(f.body);
    if (!s) {
      out += ",\"status_error\":" + q(s.error().to_string());
    } else {
      out += ",\"status\":{\"vendor\":" + std::to_string(s->vendor) +
             ",\"device_type\":" + std::to_string(s->device_type) +
             ",\"serial\":" + std::to_string(s->serial) +
             ",\"hw_version\":" + std::to_string(s->hw_version) +
             ",\"sw_version\":" + q(std::to_string(s->sw_major) + "." + std::to_string(s->sw_minor)) +
             ",\"device_state\":" + std::to_string(s->device_state) +
             ",\"device_state_meaning\":" + q(device_state_meaning(s->device_state)) +
             ",\"work_state\":" + std::to_string(s->work_state) +
             ",\"work_state_meaning\":" + q(work_state_meaning(s->work_state)) +
             ",\"plate\":" + q(s->plate) + ",\"operating_licence\":" + q(s->operating_licence) +
             ",\"driver_qualification\":" + q(s->driver_qualification) +
             ",\"trip_count\":" + std::to_string(s->trip_count) + "}";
    }
  }
  out += "}";
  return out;
}

}  // namespace lanegate::lane
