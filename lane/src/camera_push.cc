// Camera pushes (lane/camera_push.h): dispatch by vendor, the JSON vendors (Vzenith,
// Dahua, generic), the shared field rules and the Vzenith reply. Hikvision XML and the
// multipart reader are in camera_push_hikvision.cc.
#include "lane/camera_push.h"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <limits>

#include "camera_push_impl.h"
#include "core/crypto.h"
#include "core/time_format.h"

namespace lanegate::lane {

namespace json = boost::json;
using namespace camera_push_detail;

namespace camera_push_detail {

std::string media_type(std::string_view content_type) {
  std::string_view m = content_type.substr(0, content_type.find(';'));
  while (!m.empty() && (m.front() == ' ' || m.front() == '\t')) {
    m.remove_prefix(1);
  }
  while (!m.empty() && (m.back() == ' ' || m.back() == '\t')) {
    m.remove_suffix(1);
  }
  std::string out(m);
  std::ranges::transform(out, out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return out;
}

Status check_id(std::string_view value, std::string_view field, std::size_t max_bytes) {
  if (value.empty()) {
    return fail(Errc::kInvalidArgument, "is required (non-empty)", std::string(field));
  }
  if (value.size() > max_bytes) {
    return fail(Errc::kInvalidArgument, "must be at most " + std::to_string(max_bytes) + " bytes",
                std::string(field));
  }
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) {
      return fail(Errc::kInvalidArgument, "must be printable ASCII", std::string(field));
    }
  }
  return {};
}

Status check_text(std::string_view text, std::string_view field, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    return fail(Errc::kInvalidArgument, "must be at most " + std::to_string(max_bytes) + " bytes",
                std::string(field));
  }
  if (!decode_text(text, TextEncoding::kUtf8)) {
    return fail(Errc::kInvalidArgument, "must be valid UTF-8", std::string(field));
  }
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return fail(Errc::kInvalidArgument, "must not contain control characters",
                  std::string(field));
    }
  }
  return {};
}

Status check_plate(std::string_view plate, std::string_view field) {
  return check_text(plate, field, kMaxPlateRawBytes);
}

void add_image(CameraPush& push, std::string kind, std::string bytes) {
  if (push.images.size() >= kMaxPushImages || bytes.empty() || bytes.size() > kMaxPushImageBytes) {
    return;
  }
  push.images.push_back(PushImage{std::move(kind), std::move(bytes)});
}

void add_base64_image(CameraPush& push, std::string kind, std::string_view base64) {
  // Bound before decoding: 4 Base64 characters carry 3 bytes.
  if (push.images.size() >= kMaxPushImages || base64.size() / 4 * 3 > kMaxPushImageBytes + 2) {
    return;
  }
  auto bytes = crypto::base64_decode(base64);
  if (!bytes) {
    return;  // an image that does not decode is dropped, never the event
  }
  add_image(push, std::move(kind), std::string(bytes->begin(), bytes->end()));
}

}  // namespace camera_push_detail

namespace {

// ---- JSON field reading ----

// Reads typed fields of one JSON object. The first rule broken is kept in `error` and
// every later read returns nothing, so a parser checks once per block. A JSON null is
// treated as an absent field.
class JsonFields {
 public:
  JsonFields(const json::object& object, std::string path, std::optional<Error>& error)
      : object_(object), path_(std::move(path)), error_(error) {}

  std::string path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  void refuse(std::string_view key, std::string rule) {
    if (!error_) {
      error_ = Error{Errc::kInvalidArgument, std::move(rule), path(key)};
    }
  }

  const json::object* object(std::string_view key, bool required) {
    const json::value* v = find(key, required);
    if (v == nullptr) {
      return nullptr;
    }
    if (!v->is_object()) {
      refuse(key, "must be an object");
      return nullptr;
    }
    return &v->get_object();
  }

  const json::array* array(std::string_view key) {
    const json::value* v = find(key, false);
    if (v == nullptr) {
      return nullptr;
    }
    if (!v->is_array()) {
      refuse(key, "must be an array");
      return nullptr;
    }
    return &v->get_array();
  }

  std::optional<std::string_view> string(std::string_view key, bool required) {
    const json::value* v = find(key, required);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->is_string()) {
      refuse(key, "must be a string");
      return std::nullopt;
    }
    return std::string_view(v->get_string());
  }

  std::optional<std::int64_t> integer(std::string_view key, bool required, std::int64_t min,
                                      std::int64_t max) {
    const json::value* v = find(key, required);
    if (v == nullptr) {
      return std::nullopt;
    }
    std::optional<std::int64_t> n;
    if (v->is_int64()) {
      n = v->get_int64();
    } else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(
                                                        std::numeric_limits<std::int64_t>::max())) {
      n = static_cast<std::int64_t>(v->get_uint64());
    }
    if (!n || *n < min || *n > max) {
      refuse(key, max == std::numeric_limits<std::int64_t>::max() && min == 0
                      ? "must be a non-negative integer"
                      : "must be an integer " + std::to_string(min) + ".." + std::to_string(max));
      return std::nullopt;
    }
    return n;
  }

  std::optional<bool> boolean(std::string_view key) {
    const json::value* v = find(key, false);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (!v->is_bool()) {
      refuse(key, "must be true or false");
      return std::nullopt;
    }
    return v->get_bool();
  }

  // The raw value, for fields whose type the spec leaves open (Dahua SnapTime).
  const json::value* value(std::string_view key) { return find(key, false); }

 private:
  const json::value* find(std::string_view key, bool required) {
    if (error_) {
      return nullptr;
    }
    const json::value* v = object_.if_contains(key);
    if (v == nullptr || v->is_null()) {
      if (required) {
        refuse(key, "is required");
      }
      return nullptr;
    }
    return v;
  }

  const json::object& object_;
  std::string path_;
  std::optional<Error>& error_;
};

// The body as a JSON object. kParse when it is not JSON (Boost.JSON's depth limit of 32
// bounds nesting); kInvalidArgument when it is JSON but not an object.
Result<json::object> parse_object(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    return fail(Errc::kParse, "body is not JSON: " + ec.message());
  }
  if (!v.is_object()) {
    return fail(Errc::kInvalidArgument, "must be a JSON object", "body");
  }
  return std::move(v.get_object());
}

std::int64_t unix_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Unix seconds the capture_ms arithmetic accepts (up to 9999-12-31).
constexpr std::int64_t kMaxUnixSeconds = 253'402'300'799;

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// ---- Vzenith ----

constexpr std::string_view kVzenithPlate = "AlarmInfoPlate.result.PlateResult";
// Heartbeat fields we read are short; anything longer is not a serial number or address.
constexpr std::size_t kMaxFormValueBytes = 256;

// The two heartbeat fields the gateway keeps. user_name and pass_wd are never read into
// gateway memory, logs or errors (spec: redact credentials found in heartbeats).
struct HeartbeatFields {
  std::optional<std::string> serialno;
  std::optional<std::string> ipaddr;
};

Result<CameraPush> vzenith_heartbeat(const HeartbeatFields& fields) {
  CameraPush push;
  push.kind = CameraPush::Kind::kHeartbeat;
  push.vendor = CameraVendor::kVzenith;
  const std::string serial(trim(fields.serialno.value_or("")));
  if (auto ok = check_id(serial, "serialno"); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.camera = serial;
  const std::string ip(trim(fields.ipaddr.value_or("")));
  if (!ip.empty()) {
    if (auto ok = check_id(ip, "ipaddr"); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
    push.ip = ip;
  }
  return push;
}

Result<CameraPush> vzenith_multipart_heartbeat(std::string_view content_type,
                                               std::string_view body) {
  auto want = [](const FormPart& p) { return p.name == "serialno" || p.name == "ipaddr"; };
  auto parts = parse_form_data(content_type, body, want, kMaxFormValueBytes);
  if (!parts) {
    return std::unexpected(std::move(parts.error()));
  }
  HeartbeatFields fields;
  for (FormPart& part : *parts) {
    if (!want(part)) {
      continue;
    }
    if (part.oversized) {
      return fail(Errc::kInvalidArgument,
                  "must be at most " + std::to_string(kMaxFormValueBytes) + " bytes", part.name);
    }
    auto& slot = part.name == "serialno" ? fields.serialno : fields.ipaddr;
    if (!slot) {
      slot = std::move(part.content);
    }
  }
  return vzenith_heartbeat(fields);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// application/x-www-form-urlencoded value: '+' is a space, %XX a byte.
std::optional<std::string> form_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) {
        return std::nullopt;
      }
      const int hi = hex_digit(s[i + 1]);
      const int lo = hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// unconfirmed: the spec says heartbeats are multipart form posts; integrators' code shows
// firmware posting the same fields url-encoded. Both are read; a capture from our cameras
// would settle which one they send. Only serialno and ipaddr are decoded.
Result<CameraPush> vzenith_urlencoded_heartbeat(std::string_view body) {
  HeartbeatFields fields;
  while (!body.empty()) {
    const std::size_t amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (key != "serialno" && key != "ipaddr") {
      continue;
    }
    const std::string_view raw = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    if (raw.size() > kMaxFormValueBytes) {
      return fail(Errc::kInvalidArgument,
                  "must be at most " + std::to_string(kMaxFormValueBytes) + " bytes",
                  std::string(key));
    }
    auto value = form_unescape(raw);
    if (!value) {
      return fail(Errc::kParse, "form value is not url-encoded", std::string(key));
    }
    auto& slot = key == "serialno" ? fields.serialno : fields.ipaddr;
    if (!slot) {
      slot = std::move(*value);
    }
  }
  return vzenith_heartbeat(fields);
}

std::optional<PlateColour> vzenith_colour(std::int64_t code) {
  switch (code) {
    case 1:
      return PlateColour::kBlue;
    case 2:
      return PlateColour::kYellow;
    case 3:
      return PlateColour::kWhite;
    case 4:
      return PlateColour::kBlack;
    case 5:
      return PlateColour::kGreen;  // spec "green": the small new-energy plate
    case 6:
      return PlateColour::kYellowGreen;  // spec "yellow-green": large new energy
    default:
      return std::nullopt;  // 0 unknown, and codes the spec does not define
  }
}

Result<CameraPush> parse_vzenith(std::string_view content_type, std::string_view body) {
  const std::string media = media_type(content_type);
  if (media == "multipart/form-data") {
    return vzenith_multipart_heartbeat(content_type, body);
  }
  if (media == "application/x-www-form-urlencoded") {
    return vzenith_urlencoded_heartbeat(body);
  }
  // Anything else is read as the JSON plate result, whatever its declared type.
  auto root = parse_object(body);
  if (!root) {
    return std::unexpected(std::move(root.error()));
  }
  std::optional<Error> error;
  JsonFields top(*root, "", error);
  const json::object* alarm = top.object("AlarmInfoPlate", true);
  if (error) {
    return std::unexpected(std::move(*error));
  }
  JsonFields info(*alarm, "AlarmInfoPlate", error);
  const auto serialno = info.string("serialno", true);
  const auto ipaddr = info.string("ipaddr", false);
  const json::object* result = info.object("result", true);
  if (error) {
    return std::unexpected(std::move(*error));
  }
  JsonFields result_fields(*result, "AlarmInfoPlate.result", error);
  const json::object* plate_result = result_fields.object("PlateResult", true);
  if (error) {
    return std::unexpected(std::move(*error));
  }

  CameraPush push;
  push.kind = CameraPush::Kind::kPlate;
  push.vendor = CameraVendor::kVzenith;
  if (auto ok = check_id(*serialno, info.path("serialno")); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.camera = std::string(*serialno);
  if (ipaddr && !ipaddr->empty()) {
    if (auto ok = check_id(*ipaddr, info.path("ipaddr")); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
    push.ip = std::string(*ipaddr);
  }

  constexpr std::int64_t kAnyInt = std::numeric_limits<std::int32_t>::max();
  JsonFields p(*plate_result, std::string(kVzenithPlate), error);
  const auto license = p.string("license", true);
  const auto plateid = p.integer("plateid", true, 0, std::numeric_limits<std::int64_t>::max());
  const auto colour_type = p.integer("colorType", false, -kAnyInt, kAnyInt);
  const auto type = p.integer("type", false, -kAnyInt, kAnyInt);
  const auto confidence = p.integer("confidence", false, 0, 100);
  const auto isoffline = p.integer("isoffline", false, 0, 1);
  const auto image_full = p.string("imageFile", false);
  const auto image_plate = p.string("imageFragmentFile", false);
  std::optional<std::int64_t> sec;
  std::optional<std::int64_t> usec;
  if (const json::object* stamp = p.object("timeStamp", false)) {
    JsonFields stamp_fields(*stamp, p.path("timeStamp"), error);
    if (const json::object* timeval = stamp_fields.object("Timeval", false)) {
      JsonFields tv(*timeval, stamp_fields.path("Timeval"), error);
      sec = tv.integer("sec", true, 0, kMaxUnixSeconds);
      usec = tv.integer("usec", false, 0, 999'999);
    }
  }
  if (error) {
    return std::unexpected(std::move(*error));
  }

  if (auto ok = check_plate(*license, p.path("license")); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.plate_raw = std::string(*license);
  push.no_plate = push.plate_raw.empty() || push.plate_raw == "_无_" || type == 31;
  push.event_id = std::to_string(*plateid);
  if (colour_type) {
    push.colour = vzenith_colour(*colour_type);
    push.colour_raw = std::to_string(*colour_type);
  }
  push.confidence = static_cast<int>(confidence.value_or(0)) * 10;
  push.offline = isoffline == 1;
  // The camera's direction codes (1 left, 2 right, 3 up, 4 down) are movement in the
  // image, not in/out of the car park: in/out comes from the lane the device is bound to.
  push.direction = "unknown";
  if (sec) {
    push.capture_ms = *sec * 1000 + usec.value_or(0) / 1000;
  }
  // unconfirmed: whether imageFileLen / imageFragmentFileLen count Base64 characters or
  // decoded bytes; they are not used (the Base64 text carries its own length).
  if (image_full) {
    add_base64_image(push, "full", *image_full);
  }
  if (image_plate) {
    add_base64_image(push, "plate", *image_plate);
  }
  return push;
}

// ---- Dahua ----

constexpr std::string_view kDahuaKeepAlive = "/NotificationInfo/KeepAlive";
constexpr std::string_view kDahuaTollgate = "/NotificationInfo/TollgateInfo";

bool all_digits(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) { return c >= '0' && c <= '9'; });
}

// "YYYY-MM-DD HH:MM:SS", optionally with a fraction of a second.
bool is_local_date_time(std::string_view s) {
  if (s.size() < 19) {
    return false;
  }
  for (std::size_t i = 0; i < 19; ++i) {
    const char c = s[i];
    const bool ok = (i == 4 || i == 7)     ? c == '-'
                    : i == 10              ? c == ' '
                    : (i == 13 || i == 16) ? c == ':'
                                           : (c >= '0' && c <= '9');
    if (!ok) {
      return false;
    }
  }
  return s.size() == 19 || (s[19] == '.' && all_digits(s.substr(20)));
}

struct DahuaTime {
  std::string text;  // as sent, part of the derived event id
  std::optional<std::int64_t> capture_ms;
};

// unconfirmed (spec: Dahua field detail comes from integrators' code): SnapTime is read as
// unix seconds (a number or a string of digits) or "YYYY-MM-DD HH:MM:SS". The latter is
// the camera's local time with no zone, so it gives no capture_ms: the receiver stamps
// the event with its own clock.
Result<DahuaTime> dahua_time(const json::value& v, const std::string& field) {
  const auto refuse = [&] {
    return fail(Errc::kInvalidArgument, "must be unix seconds or \"YYYY-MM-DD HH:MM:SS\"", field);
  };
  DahuaTime out;
  if (v.is_int64() || v.is_uint64()) {
    out.text = v.is_int64() ? std::to_string(v.get_int64()) : std::to_string(v.get_uint64());
  } else if (v.is_string()) {
    out.text = std::string(v.get_string());
  } else {
    return refuse();
  }
  if (all_digits(out.text)) {
    if (out.text.size() > 12) {
      return refuse();
    }
    const std::int64_t seconds = std::stoll(out.text);
    if (seconds > kMaxUnixSeconds) {
      return refuse();
    }
    out.capture_ms = seconds * 1000;
  } else if (!is_local_date_time(out.text) || out.text.size() > kMaxIdBytes) {
    return refuse();
  }
  return out;
}

Result<CameraPush> parse_dahua(std::string_view path, std::string_view body) {
  const std::string_view route = path.substr(0, path.find('?'));
  const bool keep_alive = route.ends_with(kDahuaKeepAlive);
  if (!keep_alive && !route.ends_with(kDahuaTollgate)) {
    return fail(Errc::kInvalidArgument,
                "must end with /NotificationInfo/TollgateInfo or /NotificationInfo/KeepAlive",
                "path");
  }
  auto root = parse_object(body);
  if (!root) {
    return std::unexpected(std::move(root.error()));
  }
  std::optional<Error> error;
  CameraPush push;
  push.vendor = CameraVendor::kDahua;
  if (keep_alive) {
    JsonFields top(*root, "", error);
    const auto device = top.string("DeviceID", true);
    if (error) {
      return std::unexpected(std::move(*error));
    }
    if (auto ok = check_id(*device, "DeviceID"); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
    push.kind = CameraPush::Kind::kHeartbeat;
    push.camera = std::string(*device);
    return push;
  }

  JsonFields top(*root, "", error);
  const json::object* picture = top.object("Picture", true);
  if (error) {
    return std::unexpected(std::move(*error));
  }
  JsonFields pic(*picture, "Picture", error);
  const json::object* plate = pic.object("Plate", true);
  const json::object* snap = pic.object("SnapInfo", true);
  if (error) {
    return std::unexpected(std::move(*error));
  }
  JsonFields plate_fields(*plate, "Picture.Plate", error);
  // unconfirmed: what Dahua sends for a vehicle without a plate; an empty PlateNumber is
  // read as no plate, a missing one is refused.
  const auto number = plate_fields.string("PlateNumber", true);
  const auto colour = plate_fields.string("PlateColor", false);
  const auto confidence = plate_fields.integer("Confidence", false, 0, 100);
  JsonFields snap_fields(*snap, "Picture.SnapInfo", error);
  const auto device = snap_fields.string("DeviceID", true);
  const json::value* snap_time = snap_fields.value("SnapTime");
  const json::value* accurate_time = snap_fields.value("AccurateTime");
  if (error) {
    return std::unexpected(std::move(*error));
  }

  push.kind = CameraPush::Kind::kPlate;
  if (auto ok = check_id(*device, snap_fields.path("DeviceID")); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.camera = std::string(*device);
  if (auto ok = check_plate(*number, plate_fields.path("PlateNumber")); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.plate_raw = std::string(*number);
  push.no_plate = push.plate_raw.empty();
  if (snap_time == nullptr && accurate_time == nullptr) {
    return fail(Errc::kInvalidArgument, "SnapTime or AccurateTime is required",
                snap_fields.path("SnapTime"));
  }
  auto time = snap_time != nullptr ? dahua_time(*snap_time, snap_fields.path("SnapTime"))
                                   : dahua_time(*accurate_time, snap_fields.path("AccurateTime"));
  if (!time) {
    return std::unexpected(std::move(time.error()));
  }
  push.capture_ms = time->capture_ms;
  static_assert(kMaxIdBytes + 1 + kMaxPlateRawBytes <= kMaxEventIdBytes);
  // unconfirmed: the spec names no event or record id for Dahua; the capture is
  // identified by its time and plate. A record id field in ITSAPI would settle it.
  push.event_id = time->text + "/" + push.plate_raw;
  if (colour) {
    // unconfirmed: the PlateColor strings; mapped by the device configuration.
    if (auto ok = check_text(*colour, plate_fields.path("PlateColor"), kMaxColourRawBytes); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
    push.colour_raw = std::string(*colour);
  }
  push.confidence = static_cast<int>(confidence.value_or(0)) * 10;
  // unconfirmed: SnapInfo.Direction codes; in/out comes from the lane the device is bound to.
  push.direction = "unknown";
  push.offline = false;

  static constexpr std::pair<std::string_view, std::string_view> kPictures[] = {
      {"NormalPic", "full"}, {"CutoutPic", "plate"}, {"VehiclePic", "vehicle"}};
  for (const auto& [key, kind] : kPictures) {
    const json::object* image = pic.object(key, false);
    if (image == nullptr) {
      continue;
    }
    JsonFields image_fields(*image, pic.path(key), error);
    const auto content = image_fields.string("Content", false);
    if (content) {
      add_base64_image(push, std::string(kind), *content);
    }
  }
  if (error) {
    return std::unexpected(std::move(*error));
  }
  return push;
}

// ---- generic ----

Result<CameraPush> parse_generic(std::string_view body) {
  auto root = parse_object(body);
  if (!root) {
    return std::unexpected(std::move(root.error()));
  }
  std::optional<Error> error;
  JsonFields f(*root, "", error);
  const auto camera_id = f.string("camera_id", true);
  const auto event_id = f.string("event_id", true);
  const auto time = f.string("time", true);
  const auto plate = f.string("plate", false);
  const auto plate_raw = f.string("plate_raw", false);
  const auto colour = f.string("plate_color", false);
  const auto confidence = f.integer("confidence", false, 0, 100);
  const auto direction = f.string("direction", false);
  const auto offline = f.boolean("offline");
  const json::array* images = f.array("images");
  if (error) {
    return std::unexpected(std::move(*error));
  }

  CameraPush push;
  push.kind = CameraPush::Kind::kPlate;
  push.vendor = CameraVendor::kGeneric;
  if (auto ok = check_id(*camera_id, "camera_id"); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.camera = std::string(*camera_id);
  if (auto ok = check_id(*event_id, "event_id"); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.event_id = std::string(*event_id);

  // plate_raw is the text as read; plate the normalised form. Either carries the plate.
  if (!plate && !plate_raw) {
    return fail(Errc::kInvalidArgument, "plate or plate_raw is required", "plate_raw");
  }
  const std::string_view text = plate_raw ? *plate_raw : *plate;
  const std::string_view text_field = plate_raw ? "plate_raw" : "plate";
  if (auto ok = check_plate(text, text_field); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  if (plate) {
    if (auto ok = check_plate(*plate, "plate"); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
  }
  push.plate_raw = std::string(text);
  push.no_plate = push.plate_raw.empty();

  auto t = parse_rfc3339(*time);
  if (!t) {
    return fail(Errc::kInvalidArgument, "must be an RFC 3339 time", "time");
  }
  push.capture_ms = unix_ms(*t);

  if (colour) {
    static constexpr std::pair<std::string_view, std::optional<PlateColour>> kColours[] = {
        {"BLUE", PlateColour::kBlue},   {"YELLOW", PlateColour::kYellow},
        {"BLACK", PlateColour::kBlack}, {"WHITE", PlateColour::kWhite},
        {"GREEN", PlateColour::kGreen}, {"LIMEGREEN", PlateColour::kYellowGreen},
        {"UNKNOWN", std::nullopt}};
    const auto* match =
        std::ranges::find_if(kColours, [&](const auto& entry) { return entry.first == *colour; });
    if (match == std::end(kColours)) {
      return fail(Errc::kInvalidArgument,
                  "must be BLUE, YELLOW, BLACK, WHITE, GREEN, LIMEGREEN or UNKNOWN", "plate_color");
    }
    push.colour = match->second;
    push.colour_raw = std::string(*colour);
  }
  push.confidence = static_cast<int>(confidence.value_or(0)) * 10;
  push.direction = "unknown";
  if (direction) {
    if (*direction != "in" && *direction != "out" && *direction != "unknown") {
      return fail(Errc::kInvalidArgument, "must be in, out or unknown", "direction");
    }
    push.direction = std::string(*direction);
  }
  push.offline = offline.value_or(false);
  // `lane` is not read: the device's configuration binds the camera to its lane.

  if (images != nullptr) {
    for (std::size_t i = 0; i < images->size(); ++i) {
      const std::string field = "images[" + std::to_string(i) + "]";
      const json::object* image = (*images)[i].if_object();
      if (image == nullptr) {
        return fail(Errc::kInvalidArgument, "must be an object", field);
      }
      JsonFields image_fields(*image, field, error);
      const auto kind = image_fields.string("kind", true);
      const auto base64 = image_fields.string("base64", false);
      if (error) {
        return std::unexpected(std::move(*error));
      }
      // A url image is not fetched (the gateway makes no request on a camera's behalf);
      // an image of a kind the gateway does not know is dropped like a bad one.
      if (!base64 || (*kind != "full" && *kind != "plate" && *kind != "vehicle")) {
        continue;
      }
      add_base64_image(push, std::string(*kind), *base64);
    }
  }
  return push;
}

// Decimal digits without a leading zero (a JSON number), at most 19 of them.
bool is_json_uint(std::string_view s) {
  return all_digits(s) && s.size() <= 19 && (s.size() == 1 || s.front() != '0');
}

}  // namespace

std::string_view vendor_name(CameraVendor v) {
  switch (v) {
    case CameraVendor::kVzenith:
      return "vzenith";
    case CameraVendor::kHikvision:
      return "hikvision";
    case CameraVendor::kDahua:
      return "dahua";
    case CameraVendor::kGeneric:
      return "generic";
  }
  return "generic";
}

Result<CameraVendor> parse_vendor(std::string_view name) {
  for (CameraVendor v : {CameraVendor::kVzenith, CameraVendor::kHikvision, CameraVendor::kDahua,
                         CameraVendor::kGeneric}) {
    if (name == vendor_name(v)) {
      return v;
    }
  }
  return fail(Errc::kInvalidArgument, "must be vzenith, hikvision, dahua or generic", "vendor");
}

Result<CameraPush> parse_push(CameraVendor vendor, std::string_view path,
                              std::string_view content_type, std::string_view body) {
  if (body.size() > kMaxPushBodyBytes) {
    return fail(Errc::kInvalidArgument,
                "must be at most " + std::to_string(kMaxPushBodyBytes) + " bytes", "body");
  }
  if (content_type.size() > kMaxContentTypeBytes) {
    return fail(Errc::kInvalidArgument,
                "must be at most " + std::to_string(kMaxContentTypeBytes) + " bytes",
                "Content-Type");
  }
  switch (vendor) {
    case CameraVendor::kVzenith:
      return parse_vzenith(content_type, body);
    case CameraVendor::kHikvision:
      return parse_hikvision(content_type, body);
    case CameraVendor::kDahua:
      return parse_dahua(path, body);
    case CameraVendor::kGeneric:
      return parse_generic(body);
  }
  return fail(Errc::kInvalidArgument, "unknown camera vendor", "vendor");
}

std::string vzenith_reply(const CameraPush& push, bool open) {
  // unconfirmed: the spec names no heartbeat reply; the receiver answers 200, empty body.
  if (push.kind == CameraPush::Kind::kHeartbeat) {
    return {};
  }
  // plateid is a number on the wire; event_id holds it as parse_push wrote it. A push
  // built some other way without a numeric id gets no plateid rather than broken JSON.
  const bool has_id = is_json_uint(push.event_id);
  std::string out = R"({"Response_AlarmInfoPlate":{"info":")";
  // A record stored while offline is history: it never opens the barrier.
  out += open && !push.offline ? "ok" : "no";
  out += '"';
  if (has_id && push.offline) {
    // Without ContinuePushOffline the camera stops resending its stored records.
    out += R"(,"ContinuePushOffline":{"plateid":)" + push.event_id + R"(,"continue":1})";
  } else if (has_id) {
    out += R"(,"plateid":)" + push.event_id;
  }
  out += "}}";
  return out;
}

}  // namespace lanegate::lane
