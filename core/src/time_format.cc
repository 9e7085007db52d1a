#include "core/time_format.h"

#include <charconv>
#include <cstdio>

namespace lanegate {
namespace {

using namespace std::chrono;

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::int64_t to_unix_seconds(SystemTime t) {
  return duration_cast<seconds>(t.time_since_epoch()).count();
}

SystemTime from_unix_seconds(std::int64_t s) { return SystemTime(seconds(s)); }

std::string format_rfc3339(SystemTime t, UtcOffset offset) {
  const auto local = floor<seconds>(t) + minutes(offset.minutes);
  const auto day = floor<days>(local);
  const year_month_day ymd(day);
  const hh_mm_ss hms(local - day);
  const int off = offset.minutes < 0 ? -offset.minutes : offset.minutes;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d%c%02d:%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()), offset.minutes < 0 ? '-' : '+', off / 60, off % 60);
  return buf;
}

std::string format_local_date(SystemTime t, UtcOffset offset) {
  return format_rfc3339(t, offset).substr(0, 10);
}

Result<SystemTime> parse_local_date(std::string_view date, UtcOffset offset) {
  int y, m, d;
  if (date.size() != 10 || date[4] != '-' || date[7] != '-' || !parse_int(date.substr(0, 4), y) ||
      !parse_int(date.substr(5, 2), m) || !parse_int(date.substr(8, 2), d)) {
    return fail(Errc::kParse, "expected a date YYYY-MM-DD, got \"" + std::string(date) + "\"");
  }
  const year_month_day ymd{year(y), month(static_cast<unsigned>(m)), day(static_cast<unsigned>(d))};
  if (!ymd.ok()) {
    return fail(Errc::kOutOfRange, "no such calendar date \"" + std::string(date) + "\"");
  }
  return SystemTime(sys_days(ymd)) - minutes(offset.minutes);
}

Result<SystemTime> parse_rfc3339(std::string_view s) {
  auto bad = [&] { return fail(Errc::kParse, "expected RFC 3339 time, got \"" + std::string(s) + "\""); };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
      s[16] != ':') {
    return bad();
  }
  int y, mo, d, h, mi, se;
  if (!parse_int(s.substr(0, 4), y) || !parse_int(s.substr(5, 2), mo) || !parse_int(s.substr(8, 2), d) ||
      !parse_int(s.substr(11, 2), h) || !parse_int(s.substr(14, 2), mi) || !parse_int(s.substr(17, 2), se)) {
    return bad();
  }
  std::size_t i = 19;
  nanoseconds frac{0};
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::int64_t scale = 100'000'000;
    const std::size_t start = i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      frac += nanoseconds((s[i] - '0') * scale);
      scale /= 10;
    }
    if (i == start) {
      return bad();
    }
  }
  int off_min = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh, om;
    if (!parse_int(s.substr(i + 1, 2), oh) || !parse_int(s.substr(i + 4, 2), om) || oh > 23 || om > 59) {
      return bad();
    }
    off_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return bad();
  }
  if (i != s.size()) {
    return bad();
  }
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)), day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 60) {
    return fail(Errc::kOutOfRange, "no such time \"" + std::string(s) + "\"");
  }
  // SystemTime counts int64 nanoseconds since 1970: only years 1678..2261 fit (a hostile
  // timestamp in a notification overflowed; found by the notification fuzzer under UBSan).
  if (y < 1678 || y > 2261) {
    return fail(Errc::kOutOfRange, "year " + std::to_string(y) + " outside 1678..2261 in \"" + std::string(s) + "\"");
  }
  auto t = sys_days(ymd) + hours(h) + minutes(mi) + seconds(se) + frac - minutes(off_min);
  return time_point_cast<SystemTime::duration>(t);
}

}  // namespace lanegate
