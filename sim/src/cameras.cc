// Plate cameras pushing over HTTP (sim/cameras.h). Every body is built here from the spec
// (lane-devices.md "ANPR cameras over HTTP"), not with the gateway's parsers: a reading
// shared with the receiver would hide the bugs these pushes are meant to find.
#include "sim/cameras.h"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <random>

#include "core/crypto.h"

namespace lanegate::sim {
namespace {

namespace json = boost::json;

// unconfirmed: the cameras' clocks run on China Standard Time; every local time on the wire
// (Vzenith dec* fields, Hikvision dateTime, Dahua SnapTime) is UTC+08:00.
constexpr std::int64_t kLocalOffsetMs = 8 * 3600 * 1000;
constexpr std::size_t kFullImageBytes = 4096;
constexpr std::size_t kPlateImageBytes = 1024;

// The colour of a shot in each vendor's vocabulary.
struct ColourNames {
  std::string_view provider;
  int vzenith;                 // spec table: colorType
  std::string_view hikvision;  // unconfirmed: lower-case English, mapped by gateway config
  std::string_view dahua;      // unconfirmed: capitalised English from integrators' code
};

constexpr std::array<ColourNames, 7> kColours = {{
    {"BLUE", 1, "blue", "Blue"},
    {"YELLOW", 2, "yellow", "Yellow"},
    {"WHITE", 3, "white", "White"},
    {"BLACK", 4, "black", "Black"},
    {"GREEN", 5, "green", "Green"},
    // The provider's LIMEGREEN is the large new-energy plate: Vzenith "yellow-green".
    {"LIMEGREEN", 6, "yellowgreen", "YellowGreen"},
    {"UNKNOWN", 0, "unknown", "Unknown"},
}};

const ColourNames* find_colour(std::string_view provider) {
  for (const auto& c : kColours) {
    if (c.provider == provider) {
      return &c;
    }
  }
  return nullptr;
}

// What the plate text says about the plate, for the vendors' plate-type fields.
enum class PlateKind {
  kNone,
  kOrdinary,
  kPolice,
  kArmedPolice,
  kCoach,
  kHongKong,
  kMacau,
  kConsulate,
  kEmbassy,
  kNewEnergy,
  kLargeNewEnergy,
};

std::size_t utf8_chars(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) {
      ++n;
    }
  }
  return n;
}

bool has(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

PlateKind classify(const CameraShot& shot) {
  const std::string_view p = shot.plate;
  if (p.empty()) {
    return PlateKind::kNone;
  }
  if (has(p, "警")) {
    return PlateKind::kPolice;
  }
  if (p.starts_with("WJ")) {
    return PlateKind::kArmedPolice;
  }
  if (has(p, "学")) {
    return PlateKind::kCoach;
  }
  if (has(p, "港")) {
    return PlateKind::kHongKong;
  }
  if (has(p, "澳")) {
    return PlateKind::kMacau;
  }
  if (has(p, "领")) {
    return PlateKind::kConsulate;
  }
  if (has(p, "使")) {
    return PlateKind::kEmbassy;
  }
  if (utf8_chars(p) == 8 && shot.colour == "GREEN") {
    return PlateKind::kNewEnergy;
  }
  if (utf8_chars(p) == 8 && shot.colour == "LIMEGREEN") {
    return PlateKind::kLargeNewEnergy;
  }
  return PlateKind::kOrdinary;
}

// Vzenith `type` (spec table). unconfirmed: which code a camera picks for a plate; chosen from
// the plate's text and colour as decided (警 5, 学 13, 港 11, 澳 14, 领 22, 使 10, 8-character
// green 19 / yellow-green 20, none 31, else blue 1 / black 2 / yellow 3, other colours 0).
int vzenith_type(PlateKind kind, std::string_view colour) {
  switch (kind) {
    case PlateKind::kNone:
      return 31;
    case PlateKind::kPolice:
      return 5;
    case PlateKind::kArmedPolice:
      return 6;
    case PlateKind::kCoach:
      return 13;
    case PlateKind::kHongKong:
      return 11;
    case PlateKind::kMacau:
      return 14;
    case PlateKind::kConsulate:
      return 22;
    case PlateKind::kEmbassy:
      return 10;
    case PlateKind::kNewEnergy:
      return 19;
    case PlateKind::kLargeNewEnergy:
      return 20;
    case PlateKind::kOrdinary:
      break;
  }
  if (colour == "BLUE") {
    return 1;
  }
  if (colour == "BLACK") {
    return 2;
  }
  if (colour == "YELLOW") {
    return 3;  // single-row yellow
  }
  return 0;
}

// unconfirmed: Hikvision plateType strings; the spec names the field only.
std::string_view hikvision_plate_type(PlateKind kind) {
  switch (kind) {
    case PlateKind::kNone:
      return "unknown";
    case PlateKind::kPolice:
      return "police";
    case PlateKind::kArmedPolice:
      return "arm";
    case PlateKind::kCoach:
      return "coach";
    case PlateKind::kHongKong:
      return "hongKong";
    case PlateKind::kMacau:
      return "macao";
    case PlateKind::kConsulate:
      return "consulate";
    case PlateKind::kEmbassy:
      return "embassy";
    case PlateKind::kNewEnergy:
      return "newEnergy";
    case PlateKind::kLargeNewEnergy:
      return "yellowNewEnergy";
    case PlateKind::kOrdinary:
      break;
  }
  return "92TypeCivil";
}

// FNV-1a, for deterministic ids and image seeds derived from a serial.
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

struct LocalTime {
  std::int64_t unix_s = 0;
  int millis = 0;
  int year = 0;
  unsigned month = 0;
  unsigned day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
};

LocalTime local_time(std::int64_t unix_ms) {
  using namespace std::chrono;
  LocalTime t;
  t.unix_s = unix_ms / 1000;
  t.millis = static_cast<int>(unix_ms % 1000);
  const milliseconds local(unix_ms + kLocalOffsetMs);
  const sys_days day = floor<days>(sys_time<milliseconds>(local));
  const year_month_day ymd(day);
  const auto secs = duration_cast<seconds>(local - day.time_since_epoch()).count();
  t.year = static_cast<int>(ymd.year());
  t.month = static_cast<unsigned>(ymd.month());
  t.day = static_cast<unsigned>(ymd.day());
  t.hour = static_cast<int>(secs / 3600);
  t.minute = static_cast<int>(secs / 60 % 60);
  t.second = static_cast<int>(secs % 60);
  return t;
}

// "YYYY-MM-DD" + sep + "hh:mm:ss".
std::string format_local(const LocalTime& t, char sep) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u%c%02d:%02d:%02d", t.year, t.month, t.day, sep,
                t.hour, t.minute, t.second);
  return buf;
}

std::string format_iso(const LocalTime& t) { return format_local(t, 'T') + "+08:00"; }

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string random_alnum(std::size_t n) {
  static constexpr std::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kAlphabet[pick(rng)]);
  }
  return out;
}

struct FormPart {
  std::string name;
  std::string filename;  // empty: a plain form field
  std::string content_type;
  std::string content;
};

// multipart/form-data (RFC 7578) with a random boundary that occurs in no part.
HttpPush multipart(std::string path, const std::vector<FormPart>& parts) {
  std::string boundary;
  for (;;) {
    boundary = "lanegate-sim-" + random_alnum(24);
    bool clash = false;
    for (const auto& p : parts) {
      clash = clash || has(p.content, boundary);
    }
    if (!clash) {
      break;
    }
  }
  std::string body;
  for (const auto& p : parts) {
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + p.name + "\"";
    if (!p.filename.empty()) {
      body += "; filename=\"" + p.filename + "\"";
    }
    body += "\r\n";
    if (!p.content_type.empty()) {
      body += "Content-Type: " + p.content_type + "\r\n";
    }
    body += "\r\n" + p.content + "\r\n";
  }
  body += "--" + boundary + "--\r\n";
  return HttpPush{std::move(path), "multipart/form-data; boundary=" + boundary, std::move(body)};
}

// The two pictures of a shot: (full image, plate crop).
std::pair<std::string, std::string> shot_images(const CameraShot& shot) {
  const std::uint64_t seed = fnv1a(shot.serial) ^ (shot.event_no * 0x9E3779B97F4A7C15ULL);
  return {fake_jpeg(seed, kFullImageBytes), fake_jpeg(seed + 1, kPlateImageBytes)};
}

std::string b64(std::string_view bytes) { return crypto::base64_encode(bytes); }

HttpPush json_push(std::string path, const json::value& v) {
  return HttpPush{std::move(path), "application/json", json::serialize(v)};
}

HttpPush encode_vzenith(const CameraShot& shot, const ColourNames& colour, const LocalTime& t) {
  json::object timeval{{"sec", t.unix_s},    {"usec", t.millis * 1000}, {"decyear", t.year},
                       {"decmon", t.month},  {"decday", t.day},         {"dechour", t.hour},
                       {"decmin", t.minute}, {"decsec", t.second}};
  json::object result{
      // The spec's no-plate text.
      {"license", shot.plate.empty() ? std::string("_无_") : shot.plate},
      {"colorType", colour.vzenith},
      {"type", vzenith_type(classify(shot), shot.colour)},
      {"confidence", shot.confidence},
      {"plateid", shot.event_no},
      {"isoffline", shot.offline ? 1 : 0},
      {"triggerType", 8},  // virtual loop: what a car-park lane camera normally runs
      {"direction", 0},    // unconfirmed: CameraShot has no direction; 0 = unknown
      {"timeStamp", json::object{{"Timeval", std::move(timeval)}}},
  };
  if (shot.images) {
    auto [full, crop] = shot_images(shot);
    // unconfirmed: `…Len` is the decoded byte count, not the Base64 text length.
    result["imageFile"] = b64(full);
    result["imageFileLen"] = full.size();
    result["imageFragmentFile"] = b64(crop);
    result["imageFragmentFileLen"] = crop.size();
  } else {
    // unconfirmed: the path format on the camera's SD card.
    result["imagePath"] = "/mmc/VzIPCCap/" + std::to_string(shot.event_no) + ".jpg";
  }
  json::object alarm{
      {"channel", 0},
      {"deviceName", "IVS"},
      {"ipaddr", shot.ip},
      {"serialno", shot.serial},
      {"result", json::object{{"PlateResult", std::move(result)}}},
  };
  return json_push("/anpr/vzenith", json::object{{"AlarmInfoPlate", std::move(alarm)}});
}

// unconfirmed: a UUID-shaped event id, stable for (serial, event) so a resend repeats it.
std::string hikvision_uuid(const CameraShot& shot) {
  std::uint64_t state = fnv1a(shot.serial) ^ shot.event_no;
  const std::uint64_t a = splitmix64(state);
  const std::uint64_t b = splitmix64(state);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFFF),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
  return buf;
}

HttpPush encode_hikvision(const CameraShot& shot, const ColourNames& colour, const LocalTime& t,
                          bool xml_only) {
  const bool images = shot.images && !xml_only;
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += "<EventNotificationAlert version=\"2.0\" xmlns=\"http://www.isapi.org/ver20/XMLSchema\">\n";
  x += "<ipAddress>" + xml_escape(shot.ip) + "</ipAddress>\n";
  x += "<portNo>80</portNo>\n<protocol>HTTP</protocol>\n";
  x += "<macAddress>" + camera_mac(shot.serial) + "</macAddress>\n";
  x += "<channelID>1</channelID>\n";
  x += "<dateTime>" + format_iso(t) + "</dateTime>\n";
  x += "<activePostCount>1</activePostCount>\n";
  x += "<eventType>ANPR</eventType>\n<eventState>active</eventState>\n";
  x += "<eventDescription>ANPR</eventDescription>\n";
  // unconfirmed: the serial as deviceID and a stable UUID; the spec names no event id.
  x += "<deviceID>" + xml_escape(shot.serial) + "</deviceID>\n";
  x += "<UUID>" + hikvision_uuid(shot) + "</UUID>\n";
  if (shot.offline) {
    // unconfirmed: how Hikvision marks a record re-sent after an outage.
    x += "<isDataRetransmission>true</isDataRetransmission>\n";
  }
  x += "<ANPR>\n";
  x += "<country>CN</country>\n";  // unconfirmed: the country code's form
  // unconfirmed: the no-plate text of Chinese firmware.
  x += "<licensePlate>" + xml_escape(shot.plate.empty() ? "无车牌" : shot.plate) +
       "</licensePlate>\n";
  x += "<line>1</line>\n";
  x += "<direction>forward</direction>\n";  // unconfirmed: no direction in CameraShot
  x += "<confidenceLevel>" + std::to_string(shot.confidence) + "</confidenceLevel>\n";
  x += "<plateType>" + std::string(hikvision_plate_type(classify(shot))) + "</plateType>\n";
  x += "<plateColor>" + std::string(colour.hikvision) + "</plateColor>\n";
  x += "<vehicleType>vehicle</vehicleType>\n";
  x += "<vehicleInfo>\n<index>" + std::to_string(shot.event_no) +
       "</index>\n<colorDepth>2</colorDepth>\n<color>white</color>\n</vehicleInfo>\n";
  x += "<vehicleListName>otherList</vehicleListName>\n";
  x += "</ANPR>\n";
  x += "<picNum>" + std::string(images ? "2" : "0") + "</picNum>\n";
  x += "</EventNotificationAlert>\n";
  if (xml_only) {
    return HttpPush{"/anpr/hikvision", "application/xml", std::move(x)};
  }
  // unconfirmed: the XML part's Content-Type (application/xml rather than text/xml).
  std::vector<FormPart> parts = {{"anpr.xml", "anpr.xml", "application/xml", std::move(x)}};
  if (images) {
    auto [full, crop] = shot_images(shot);
    parts.push_back({"licensePlatePicture.jpg", "licensePlatePicture.jpg", "image/jpeg", crop});
    parts.push_back({"detectionPicture.jpg", "detectionPicture.jpg", "image/jpeg", full});
  }
  return multipart("/anpr/hikvision", parts);
}

HttpPush encode_dahua(const CameraShot& shot, const ColourNames& colour, const LocalTime& t) {
  char accurate[48];
  std::snprintf(accurate, sizeof accurate, "%s.%03d", format_local(t, ' ').c_str(), t.millis);
  json::object picture{
      {"Plate",
       json::object{
           // unconfirmed: no-plate is an empty PlateNumber with IsExist false.
           {"PlateNumber", shot.plate},
           {"PlateColor", colour.dahua},
           {"Confidence", shot.confidence},  // unconfirmed: 0..100 like the others
           {"IsExist", !shot.plate.empty()},
           // unconfirmed: the spec names no event id; UploadNum (seen in integrators' code)
           // carries the camera's record number.
           {"UploadNum", shot.event_no},
       }},
      {"SnapInfo",
       json::object{
           {"DeviceID", shot.serial},
           {"SnapTime", format_local(t, ' ')},
           {"AccurateTime", accurate},
           {"Direction", "Obverse"},  // unconfirmed: the value set; no direction in CameraShot
       }},
      {"Vehicle", json::object{{"VehicleColor", "White"}}},
  };
  if (shot.images) {
    auto [full, crop] = shot_images(shot);
    picture["NormalPic"] = json::object{{"Content", b64(full)}, {"PicName", "normal.jpg"}};
    picture["CutoutPic"] = json::object{{"Content", b64(crop)}, {"PicName", "cutout.jpg"}};
  }
  return json_push("/NotificationInfo/TollgateInfo", json::object{{"Picture", std::move(picture)}});
}

// The generic adapter's `plate`: spaces, separators and the middle dot removed, ASCII upper.
std::string normalise_plate(std::string_view raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (raw.substr(i).starts_with("·")) {
      i += std::string_view("·").size() - 1;
      continue;
    }
    if (c == ' ' || c == '-' || c == '.') {
      continue;
    }
    out.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
  }
  return out;
}

HttpPush encode_generic(const CameraShot& shot, const LocalTime& t) {
  json::object o{
      {"camera_id", shot.serial},
      // unconfirmed: event_id as a string (the spec gives no type); adapters' ids often are.
      {"event_id", std::to_string(shot.event_no)},
      {"time", format_iso(t)},
      // unconfirmed: no plate is an empty plate and plate_raw.
      {"plate", normalise_plate(shot.plate)},
      {"plate_raw", shot.plate},
      {"plate_color", shot.colour},
      {"confidence", shot.confidence},
      {"direction", "unknown"},
      {"offline", shot.offline},
  };
  if (shot.images) {
    auto [full, crop] = shot_images(shot);
    // unconfirmed: the `kind` names.
    o["images"] = json::array{json::object{{"kind", "full"}, {"base64", b64(full)}},
                              json::object{{"kind", "plate"}, {"base64", b64(crop)}}};
  }
  return json_push("/anpr/events", o);
}

std::int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::optional<std::uint64_t> json_uint(const json::value& v) {
  if (v.is_uint64()) {
    return v.as_uint64();
  }
  if (v.is_int64() && v.as_int64() >= 0) {
    return static_cast<std::uint64_t>(v.as_int64());
  }
  return std::nullopt;
}

}  // namespace

std::string fake_jpeg(std::uint64_t seed, std::size_t bytes) {
  // SOI, then an APP0 JFIF 1.01 header (16 bytes, no thumbnail).
  static constexpr std::array<unsigned char, 20> kHead = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J',
                                                          'F',  'I',  'F',  0x00, 0x01, 0x01, 0x00,
                                                          0x00, 0x01, 0x00, 0x01, 0x00, 0x00};
  bytes = std::max(bytes, kHead.size() + 2);
  std::string out(kHead.begin(), kHead.end());
  std::uint64_t state = seed;
  while (out.size() < bytes - 2) {
    const std::uint64_t r = splitmix64(state);
    for (int i = 0; i < 8 && out.size() < bytes - 2; ++i) {
      const auto b = static_cast<unsigned char>(r >> (8 * i));
      out.push_back(static_cast<char>(b == 0xFF ? 0xFE : b));  // no stray marker
    }
  }
  out.push_back(static_cast<char>(0xFF));
  out.push_back(static_cast<char>(0xD9));
  return out;
}

std::string camera_mac(std::string_view serial) {
  // A serial that is a MAC already ("AA:BB:CC:DD:EE:FF" or with '-') is the MAC, so one
  // value can be both the device's configured serial and the Basic user.
  if (serial.size() == 17) {
    std::string mac;
    for (std::size_t i = 0; i < serial.size(); ++i) {
      const char c = serial[i];
      if (i % 3 == 2 ? (c != ':' && c != '-') : !std::isxdigit(static_cast<unsigned char>(c))) {
        mac.clear();
        break;
      }
      mac.push_back(i % 3 == 2 ? ':'
                               : static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    if (!mac.empty()) {
      return mac;
    }
  }
  const std::uint64_t h = fnv1a(serial);
  char buf[24];
  // unconfirmed: lower case (decided); 44:19:b6 is a Hikvision OUI.
  std::snprintf(buf, sizeof buf, "44:19:b6:%02x:%02x:%02x", static_cast<unsigned>(h >> 16 & 0xFF),
                static_cast<unsigned>(h >> 8 & 0xFF), static_cast<unsigned>(h & 0xFF));
  return buf;
}

Result<HttpPush> encode_plate(const CameraShot& shot, bool hikvision_xml_only) {
  const ColourNames* colour = find_colour(shot.colour);
  if (colour == nullptr) {
    return fail(Errc::kInvalidArgument,
                "colour must be BLUE, YELLOW, BLACK, WHITE, GREEN, LIMEGREEN or UNKNOWN", "colour");
  }
  if (shot.serial.empty()) {
    return fail(Errc::kInvalidArgument, "a camera needs a serial", "serial");
  }
  if (shot.confidence < 0 || shot.confidence > 100) {
    return fail(Errc::kOutOfRange, "confidence must be 0..100", "confidence");
  }
  if (shot.capture_unix_ms < 0) {
    return fail(Errc::kOutOfRange, "capture time before 1970", "capture_unix_ms");
  }
  if (hikvision_xml_only && shot.vendor != "hikvision") {
    return fail(Errc::kInvalidArgument, "only Hikvision posts the XML alone", "xml_only");
  }
  const LocalTime t = local_time(shot.capture_unix_ms == 0 ? now_unix_ms() : shot.capture_unix_ms);
  if (shot.vendor == "vzenith") {
    if (!shot.plate.empty() && shot.confidence < 1) {
      return fail(Errc::kOutOfRange, "Vzenith confidence is 1..100", "confidence");
    }
    return encode_vzenith(shot, *colour, t);
  }
  if (shot.vendor == "hikvision") {
    return encode_hikvision(shot, *colour, t, hikvision_xml_only);
  }
  if (shot.vendor == "dahua") {
    return encode_dahua(shot, *colour, t);
  }
  if (shot.vendor == "generic") {
    return encode_generic(shot, t);
  }
  return fail(Errc::kInvalidArgument, "vendor must be vzenith, hikvision, dahua or generic",
              "vendor");
}

Result<HttpPush> encode_heartbeat(std::string_view vendor, std::string_view serial,
                                  std::string_view ip, std::string_view user,
                                  std::string_view password) {
  if (serial.empty()) {
    return fail(Errc::kInvalidArgument, "a camera needs a serial", "serial");
  }
  if (vendor == "vzenith") {
    auto field = [](std::string name, std::string_view value) {
      return FormPart{std::move(name), {}, {}, std::string(value)};
    };
    // unconfirmed: device_name, port and channel_num values (the spec names the fields);
    // user_name / pass_wd are whatever the caller gives (default admin / admin).
    return multipart("/anpr/vzenith",
                     {field("device_name", "IVS"), field("ipaddr", ip), field("port", "80"),
                      field("user_name", user), field("pass_wd", password),
                      field("serialno", serial), field("channel_num", "0")});
  }
  if (vendor == "dahua") {
    // unconfirmed: the value of Active.
    return json_push("/NotificationInfo/KeepAlive",
                     json::object{{"DeviceID", serial}, {"Active", "keepAlive"}});
  }
  if (vendor == "hikvision" || vendor == "generic") {
    return fail(Errc::kInvalidArgument, "no heartbeat in the spec", "vendor");
  }
  return fail(Errc::kInvalidArgument, "vendor must be vzenith, hikvision, dahua or generic",
              "vendor");
}

Result<PushAnswer> send_push(const std::string& host, int port, const std::string& token,
                             bool basic_auth, const std::string& serial, const HttpPush& push,
                             std::chrono::milliseconds timeout) {
  if (basic_auth && token.empty()) {
    return fail(Errc::kInvalidArgument, "HTTP Basic needs a token as its password", "token");
  }
  httplib::Client cli(host, port);
  cli.set_keep_alive(false);
  cli.set_connection_timeout(timeout);
  cli.set_read_timeout(timeout);
  cli.set_write_timeout(timeout);
  std::string path = push.path;
  if (basic_auth) {
    cli.set_basic_auth(serial, token);
  } else if (!token.empty()) {
    path += (has(path, "?") ? "&token=" : "?token=") + url_encode(token);
  }
  const auto start = std::chrono::steady_clock::now();
  auto res = cli.Post(path, push.body, push.content_type);
  const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
  if (!res) {
    return fail(Errc::kUnavailable, "POST http://" + host + ":" + std::to_string(port) + push.path +
                                        ": " + httplib::to_string(res.error()));
  }
  return PushAnswer{res->status, res->body, took.count()};
}

Result<VzenithReply> read_vzenith_reply(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec) {
    return fail(Errc::kParse, "reply is not JSON: " + ec.message());
  }
  const json::value* root =
      v.is_object() ? v.as_object().if_contains("Response_AlarmInfoPlate") : nullptr;
  if (root == nullptr || !root->is_object()) {
    return fail(Errc::kProtocol, "no Response_AlarmInfoPlate object", "Response_AlarmInfoPlate");
  }
  const json::object& r = root->as_object();
  VzenithReply out;
  const json::value* info = r.if_contains("info");
  if (info == nullptr || !info->is_string() ||
      (info->as_string() != "ok" && info->as_string() != "no")) {
    return fail(Errc::kProtocol, "info must be \"ok\" or \"no\"", "info");
  }
  out.open = info->as_string() == "ok";
  if (const json::value* id = r.if_contains("plateid")) {
    out.plateid = json_uint(*id);
    if (!out.plateid) {
      return fail(Errc::kProtocol, "plateid must be a non-negative integer", "plateid");
    }
  }
  if (const json::value* c = r.if_contains("ContinuePushOffline")) {
    const json::object* co = c->if_object();
    const json::value* id = co != nullptr ? co->if_contains("plateid") : nullptr;
    const json::value* cont = co != nullptr ? co->if_contains("continue") : nullptr;
    if (id == nullptr || cont == nullptr || !json_uint(*id) || !json_uint(*cont)) {
      return fail(Errc::kProtocol, "ContinuePushOffline needs integer plateid and continue",
                  "ContinuePushOffline");
    }
    out.continue_plateid = json_uint(*id);
    out.continue_offline = *json_uint(*cont) == 1;
  }
  if (const json::value* s = r.if_contains("serialData")) {
    if (!s->is_array()) {
      return fail(Errc::kProtocol, "serialData must be an array", "serialData");
    }
    for (const json::value& item : s->as_array()) {
      const json::object* o = item.if_object();
      const json::value* ch = o != nullptr ? o->if_contains("serialChannel") : nullptr;
      const json::value* data = o != nullptr ? o->if_contains("data") : nullptr;
      const json::value* len = o != nullptr ? o->if_contains("dataLen") : nullptr;
      if (ch == nullptr || data == nullptr || len == nullptr || !json_uint(*ch) ||
          !data->is_string() || !json_uint(*len)) {
        return fail(Errc::kProtocol, "serialData items need serialChannel, data and dataLen",
                    "serialData");
      }
      auto bytes = crypto::base64_decode(data->as_string());
      if (!bytes) {
        return fail(Errc::kProtocol, "serialData data is not Base64", "serialData");
      }
      if (bytes->size() != *json_uint(*len)) {
        return fail(Errc::kProtocol, "serialData dataLen is not the data's length", "serialData");
      }
      out.serial_data.push_back(
          {static_cast<int>(*json_uint(*ch)), std::string(bytes->begin(), bytes->end())});
    }
  }
  return out;
}

Result<bool> check_vzenith_reply(const VzenithReply& reply, const CameraShot& shot) {
  if (shot.vendor != "vzenith") {
    return fail(Errc::kInvalidArgument, "not a Vzenith record", "vendor");
  }
  if (shot.offline) {
    if (reply.continue_plateid != shot.event_no || !reply.continue_offline) {
      return fail(Errc::kProtocol,
                  "an offline record needs ContinuePushOffline {plateid " +
                      std::to_string(shot.event_no) + ", continue 1} or the camera stops resending",
                  "ContinuePushOffline");
    }
    if (reply.open) {
      return fail(Errc::kProtocol, "an offline record must not open the barrier", "info");
    }
    if (reply.plateid && *reply.plateid != shot.event_no) {
      return fail(Errc::kProtocol, "plateid is not the record's", "plateid");
    }
    return false;
  }
  if (reply.plateid != shot.event_no) {
    return fail(Errc::kProtocol,
                "an online record needs its plateid " + std::to_string(shot.event_no) + " echoed",
                "plateid");
  }
  return reply.open;
}

namespace {

constexpr std::string_view kCameraUsage =
    "usage: lanegate-sim camera --vendor vzenith|hikvision|dahua|generic --host H --port N\n"
    "         [--token T] [--basic] --serial S (--plate P | --no-plate) [--colour C]\n"
    "         [--confidence N] [--event N] [--offline] [--no-images] [--heartbeat]\n"
    "         [--xml-only] [--capture-ms UNIX_MS] [--user U] [--password P] [--timeout-ms N]\n"
    "\n"
    "Sends one push as a plate camera of that vendor would, to the gateway's receiver, and\n"
    "prints `status=<n> open=<yes|no|-> ms=<x>` and the reply body on a second line.\n"
    "  --token T      appended to the URL as ?token=T; with --basic sent as HTTP Basic\n"
    "                 (user = serial, password = token) instead\n"
    "  --colour C     BLUE YELLOW BLACK WHITE GREEN LIMEGREEN UNKNOWN (default BLUE)\n"
    "  --event N      the camera's record id (default 1); --offline: a record resent later\n"
    "  --heartbeat    a heartbeat instead (vzenith, dahua); --user/--password: its credentials\n"
    "  --xml-only     Hikvision firmware posting anpr.xml alone as application/xml\n"
    "open= is the barrier decision a Vzenith camera reads from the reply (- for others).\n"
    "Exit 0 on a 2xx (for a Vzenith plate result: and a reply that keeps the spec), 1 on\n"
    "another answer or none, 2 on a bad argument.\n";

template <typename T>
std::optional<T> parse_number(const std::string& s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
    return std::nullopt;
  }
  return v;
}

int bad_argument(const std::string& what) {
  std::cerr << "camera: " << what << "\n(lanegate-sim camera --help for usage)\n";
  return 2;
}

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') {
      c = ' ';
    }
  }
  return s;
}

}  // namespace

int run_camera(std::span<const std::string> args) {
  CameraShot shot;
  std::string host;
  std::string token;
  std::string user = "admin";
  std::string password = "admin";
  int port = 0;
  bool basic = false;
  bool no_plate = false;
  bool plate_given = false;
  bool heartbeat = false;
  bool xml_only = false;
  long timeout_ms = 5000;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << kCameraUsage;
      return 0;
    }
    if (a == "--basic") {
      basic = true;
      continue;
    }
    if (a == "--no-plate") {
      no_plate = true;
      continue;
    }
    if (a == "--offline") {
      shot.offline = true;
      continue;
    }
    if (a == "--no-images") {
      shot.images = false;
      continue;
    }
    if (a == "--heartbeat") {
      heartbeat = true;
      continue;
    }
    if (a == "--xml-only") {
      xml_only = true;
      continue;
    }
    static constexpr std::array<std::string_view, 13> kValued = {
        "--vendor", "--host",     "--port",       "--token", "--serial",
        "--plate",  "--colour",   "--confidence", "--event", "--capture-ms",
        "--user",   "--password", "--timeout-ms"};
    if (std::find(kValued.begin(), kValued.end(), a) == kValued.end()) {
      return bad_argument("unknown option " + a);
    }
    if (i + 1 >= args.size()) {
      return bad_argument(a + " needs a value");
    }
    const std::string& v = args[++i];
    if (a == "--vendor") {
      shot.vendor = v;
    } else if (a == "--host") {
      host = v;
    } else if (a == "--port") {
      auto n = parse_number<int>(v);
      if (!n || *n < 1 || *n > 65535) {
        return bad_argument("--port must be 1..65535, not '" + v + "'");
      }
      port = *n;
    } else if (a == "--token") {
      token = v;
    } else if (a == "--serial") {
      shot.serial = v;
    } else if (a == "--plate") {
      shot.plate = v;
      plate_given = true;
    } else if (a == "--colour") {
      shot.colour = v;
    } else if (a == "--confidence") {
      auto n = parse_number<int>(v);
      if (!n) {
        return bad_argument("--confidence must be an integer, not '" + v + "'");
      }
      shot.confidence = *n;
    } else if (a == "--event") {
      auto n = parse_number<std::uint64_t>(v);
      if (!n) {
        return bad_argument("--event must be a non-negative integer, not '" + v + "'");
      }
      shot.event_no = *n;
    } else if (a == "--capture-ms") {
      auto n = parse_number<std::int64_t>(v);
      if (!n || *n < 0) {
        return bad_argument("--capture-ms must be unix milliseconds, not '" + v + "'");
      }
      shot.capture_unix_ms = *n;
    } else if (a == "--user") {
      user = v;
    } else if (a == "--password") {
      password = v;
    } else if (a == "--timeout-ms") {
      auto n = parse_number<long>(v);
      if (!n || *n < 1) {
        return bad_argument("--timeout-ms must be a positive integer, not '" + v + "'");
      }
      timeout_ms = *n;
    }
  }
  for (auto [given, name] :
       {std::pair{!shot.vendor.empty(), "--vendor"}, std::pair{!host.empty(), "--host"},
        std::pair{port != 0, "--port"}, std::pair{!shot.serial.empty(), "--serial"}}) {
    if (!given) {
      return bad_argument(std::string(name) + " is required");
    }
  }
  if (basic && token.empty()) {
    return bad_argument("--basic needs --token");
  }
  Result<HttpPush> push;
  if (heartbeat) {
    if (plate_given || no_plate || xml_only) {
      return bad_argument("--heartbeat takes no --plate, --no-plate or --xml-only");
    }
    push = encode_heartbeat(shot.vendor, shot.serial, shot.ip, user, password);
  } else {
    if (plate_given == no_plate) {
      return bad_argument("give one of --plate P or --no-plate");
    }
    if (plate_given && shot.plate.empty()) {
      return bad_argument("--plate must not be empty (use --no-plate)");
    }
    push = encode_plate(shot, xml_only);
  }
  if (!push) {
    const Error& e = push.error();
    const std::string option = e.field == "xml_only"          ? "--xml-only"
                               : e.field == "capture_unix_ms" ? "--capture-ms"
                               : e.field.empty()              ? ""
                                                              : "--" + e.field;
    return bad_argument(option + ": " + e.message);
  }
  auto answer = send_push(host, port, token, basic, shot.serial, *push,
                          std::chrono::milliseconds(timeout_ms));
  if (!answer) {
    std::cerr << "camera: " << answer.error().to_string() << "\n";
    return 1;
  }
  const bool ok = answer->status >= 200 && answer->status < 300;
  std::string open = "-";
  std::string broken;
  if (ok && shot.vendor == "vzenith" && !heartbeat) {
    auto reply = read_vzenith_reply(answer->body);
    const Result<bool> opens =
        reply ? check_vzenith_reply(*reply, shot) : Result<bool>(std::unexpected(reply.error()));
    if (opens) {
      open = *opens ? "yes" : "no";
    } else {
      broken = opens.error().to_string();
    }
  }
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.1f", answer->ms);
  std::cout << "status=" << answer->status << " open=" << open << " ms=" << ms << "\n"
            << one_line(answer->body) << std::endl;
  if (!broken.empty()) {
    std::cerr << "camera: the reply breaks the Vzenith spec: " << broken << "\n";
    return 1;
  }
  return ok ? 0 : 1;
}

}  // namespace lanegate::sim
