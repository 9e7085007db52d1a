// Hikvision ISAPI ANPR pushes (spec lane-devices.md "Hikvision ISAPI push, XML"), and the
// multipart/form-data reader the Vzenith heartbeat shares. XML is read with pugixml,
// multipart with GMime: no hand-written parser for either.
#include <gmime/gmime.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <pugixml.hpp>

#include "camera_push_impl.h"
#include "core/time_format.h"

namespace lanegate::lane::camera_push_detail {

namespace {

// ---- GMime ----

void ensure_gmime() {
  static std::once_flag once;
  // Never paired with g_mime_shutdown(): parsers may run on any thread until exit.
  std::call_once(once, [] { g_mime_init(); });
}

struct GObjectUnref {
  void operator()(void* object) const { g_object_unref(object); }
};
template <typename T>
using GRef = std::unique_ptr<T, GObjectUnref>;

struct ParserOptionsFree {
  void operator()(GMimeParserOptions* options) const { g_mime_parser_options_free(options); }
};

// GMime recovers from most damage and reports it as a warning; these mean the body is
// not the complete multipart the camera meant to send (truncated upload, wrong boundary,
// conflicting headers, nesting attack), so the request is refused as a whole.
void on_parser_warning(gint64 /*offset*/, GMimeParserWarning code, const gchar* /*item*/,
                       gpointer user_data) {
  switch (code) {
    case GMIME_WARN_MALFORMED_MULTIPART:
    case GMIME_WARN_TRUNCATED_MESSAGE:
    case GMIME_WARN_MALFORMED_MESSAGE:
    case GMIME_CRIT_INVALID_HEADER_NAME:
    case GMIME_CRIT_CONFLICTING_HEADER:
    case GMIME_CRIT_CONFLICTING_PARAMETER:
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
    case GMIME_CRIT_NESTING_OVERFLOW:
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
      *static_cast<bool*>(user_data) = true;
      break;
    default:
      break;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return out;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && lower(s.substr(s.size() - suffix.size())) == suffix;
}

// ---- pugixml ----

std::string_view local_name(const char* name) {
  const std::string_view n(name);
  const std::size_t colon = n.rfind(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

// The first child element whose local name (namespace prefix ignored) is `name`.
pugi::xml_node child(pugi::xml_node parent, std::string_view name) {
  for (pugi::xml_node c : parent.children()) {
    if (c.type() == pugi::node_element && local_name(c.name()) == name) {
      return c;
    }
  }
  return {};
}

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

// Text of a child element (pcdata or cdata), or nullopt when the element is absent.
std::optional<std::string_view> text_of(pugi::xml_node parent, std::string_view name) {
  const pugi::xml_node c = child(parent, name);
  if (!c) {
    return std::nullopt;
  }
  return std::string_view(c.child_value());
}

constexpr std::string_view kRoot = "EventNotificationAlert";
// The derived event id "<channelID>/<dateTime>/<licensePlate>" fits kMaxEventIdBytes.
constexpr std::size_t kMaxChannelBytes = 16;
static_assert(kMaxChannelBytes + 1 + kMaxIdBytes + 1 + kMaxPlateRawBytes <= kMaxEventIdBytes);

std::string path_of(std::string_view name) { return std::string(kRoot) + "." + std::string(name); }

Result<CameraPush> parse_alert_xml(std::string_view xml) {
  if (xml.size() > kMaxXmlBytes) {
    return fail(Errc::kInvalidArgument,
                "must be at most " + std::to_string(kMaxXmlBytes) + " bytes", std::string(kRoot));
  }
  pugi::xml_document doc;
  // parse_default: no DTD processing, no external entities (pugixml never fetches any).
  // encoding_auto: UTF-8 unless a BOM or the declaration says UTF-16/32 or Latin-1, which
  // pugixml converts to UTF-8.
  const pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_auto);
  if (!parsed) {
    return fail(Errc::kParse, std::string("XML is not well-formed: ") + parsed.description() +
                                  " at offset " + std::to_string(parsed.offset));
  }
  const pugi::xml_node root = doc.document_element();
  if (!root || local_name(root.name()) != kRoot) {
    return fail(Errc::kInvalidArgument, "the root element must be EventNotificationAlert",
                std::string(kRoot));
  }

  // unconfirmed: public integrations show cameras sending eventType "videoloss" with
  // eventState "inactive" as a keep-alive; our spec names no Hikvision heartbeat, so any
  // eventType but ANPR is refused. A capture from our firmware would settle it.
  const auto event_type = text_of(root, "eventType");
  if (!event_type || trim(*event_type) != "ANPR") {
    return fail(Errc::kInvalidArgument, "must be ANPR", path_of("eventType"));
  }

  CameraPush push;
  push.kind = CameraPush::Kind::kPlate;
  push.vendor = CameraVendor::kHikvision;

  const std::string ip(trim(text_of(root, "ipAddress").value_or("")));
  const std::string mac = lower(trim(text_of(root, "macAddress").value_or("")));
  if (!ip.empty()) {
    if (auto ok = check_id(ip, path_of("ipAddress")); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
    push.ip = ip;
  }
  if (!mac.empty()) {
    if (auto ok = check_id(mac, path_of("macAddress")); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
    push.camera = mac;
  } else if (!ip.empty()) {
    push.camera = ip;
  } else {
    return fail(Errc::kInvalidArgument, "macAddress or ipAddress is required",
                path_of("macAddress"));
  }

  // channelID is optional (a one-channel camera may leave it out); it only scopes the
  // derived event id.
  const std::string_view channel = trim(text_of(root, "channelID").value_or(""));
  if (!channel.empty()) {
    if (auto ok = check_id(channel, path_of("channelID"), kMaxChannelBytes); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
  }
  const std::string_view date_time = trim(text_of(root, "dateTime").value_or(""));
  if (auto ok = check_id(date_time, path_of("dateTime")); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  // ISO 8601 with offset ("2026-12-07T08:30:01+08:00", fractions allowed). A time in
  // another shape still identifies the event but gives no capture time.
  if (auto t = parse_rfc3339(date_time)) {
    push.capture_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
  }

  const pugi::xml_node anpr = child(root, "ANPR");
  if (!anpr) {
    return fail(Errc::kInvalidArgument, "is required", path_of("ANPR"));
  }
  const auto plate_text = text_of(anpr, "licensePlate");
  if (!plate_text) {
    return fail(Errc::kInvalidArgument, "is required", path_of("ANPR.licensePlate"));
  }
  // Whitespace around element text is XML layout, not part of the plate.
  const std::string_view plate = trim(*plate_text);
  if (auto ok = check_plate(plate, path_of("ANPR.licensePlate")); !ok) {
    return std::unexpected(std::move(ok.error()));
  }
  push.plate_raw = std::string(plate);
  // unconfirmed: what this firmware sends when it reads no plate; empty and "unknown" are
  // what public integrations show. A no-plate capture from our cameras would settle it.
  push.no_plate = push.plate_raw.empty() || lower(push.plate_raw) == "unknown";

  // The spec states no event id for Hikvision: the capture is identified by channel, time
  // and plate. unconfirmed: a per-event id (UUID) in newer firmware would settle it; no
  // search for one was done.
  push.event_id = std::string(channel) + "/" + std::string(date_time) + "/" + push.plate_raw;

  // The plateColor strings for Chinese plates are unconfirmed (spec): the receiver maps
  // colour_raw through the device's configuration, unknown strings go to manual handling.
  if (const auto colour = text_of(anpr, "plateColor")) {
    const std::string_view c = trim(*colour);
    if (auto ok = check_text(c, path_of("ANPR.plateColor"), kMaxColourRawBytes); !ok) {
      return std::unexpected(std::move(ok.error()));
    }
    push.colour_raw = std::string(c);
  }

  if (const auto level = text_of(anpr, "confidenceLevel")) {
    const std::string_view t = trim(*level);
    int value = -1;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || value < 0 || value > 100) {
      return fail(Errc::kInvalidArgument, "must be an integer 0..100",
                  path_of("ANPR.confidenceLevel"));
    }
    push.confidence = value * 10;
  }

  // direction forward/reverse is relative to how the camera is mounted, which the push
  // does not say: in/out is decided by the lane the device is bound to, not here.
  push.direction = "unknown";
  // The spec names no offline flag for Hikvision.
  push.offline = false;
  return push;
}

// licensePlatePicture → plate, detectionPicture → full, any other JPEG → vehicle.
std::string image_kind(const FormPart& part) {
  std::string name = lower(part.name.empty() ? part.filename : part.name);
  if (ends_with_ci(name, ".jpg")) {
    name.resize(name.size() - 4);
  }
  if (name == "licenseplatepicture") {
    return "plate";
  }
  if (name == "detectionpicture") {
    return "full";
  }
  return "vehicle";
}

bool is_xml(const FormPart& part) {
  return part.mime_type == "application/xml" || part.mime_type == "text/xml";
}

bool is_jpeg(const FormPart& part) {
  return part.mime_type == "image/jpeg" || ends_with_ci(part.filename, ".jpg") ||
         ends_with_ci(part.name, ".jpg");
}

}  // namespace

Result<std::vector<FormPart>> parse_form_data(std::string_view content_type, std::string_view body,
                                              const std::function<bool(const FormPart&)>& want,
                                              std::size_t max_content_bytes) {
  // The header goes into the synthetic message GMime parses: a CR or LF in it would add
  // headers of the sender's choosing.
  for (char c : content_type) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return fail(Errc::kInvalidArgument, "must not contain control characters", "Content-Type");
    }
  }
  if (media_type(content_type) != "multipart/form-data") {
    return fail(Errc::kInvalidArgument, "must be multipart/form-data", "Content-Type");
  }
  if (body.size() > kMaxPushBodyBytes) {
    return fail(Errc::kInvalidArgument,
                "must be at most " + std::to_string(kMaxPushBodyBytes) + " bytes", "body");
  }
  ensure_gmime();

  static constexpr std::string_view kPrefix = "Content-Type: ";
  static constexpr std::string_view kHeaderEnd = "\r\n\r\n";
  GByteArray* bytes = g_byte_array_sized_new(
      static_cast<guint>(kPrefix.size() + content_type.size() + kHeaderEnd.size() + body.size()));
  for (std::string_view piece : {kPrefix, content_type, kHeaderEnd, body}) {
    g_byte_array_append(bytes, reinterpret_cast<const guint8*>(piece.data()),
                        static_cast<guint>(piece.size()));
  }
  // The stream owns `bytes` from here on.
  const GRef<GMimeStream> stream(g_mime_stream_mem_new_with_byte_array(bytes));
  const GRef<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  const std::unique_ptr<GMimeParserOptions, ParserOptionsFree> options(g_mime_parser_options_new());
  bool damaged = false;
  g_mime_parser_options_set_warning_callback(options.get(), on_parser_warning, &damaged);
  const GRef<GMimeObject> root(g_mime_parser_construct_part(parser.get(), options.get()));
  if (!root || !GMIME_IS_MULTIPART(root.get())) {
    return fail(Errc::kParse, "body is not a multipart/form-data body");
  }
  if (damaged) {
    return fail(Errc::kParse, "multipart body is truncated or malformed");
  }
  auto* multipart = GMIME_MULTIPART(root.get());
  const int count = g_mime_multipart_get_count(multipart);
  if (count <= 0) {
    return fail(Errc::kParse, "multipart body has no parts");
  }

  std::vector<FormPart> parts;
  for (int i = 0; i < count && parts.size() < kMaxFormParts; ++i) {
    GMimeObject* object = g_mime_multipart_get_part(multipart, i);  // borrowed
    if (object == nullptr || !GMIME_IS_PART(object)) {
      continue;  // a nested multipart: no form field we read is one
    }
    auto* part = GMIME_PART(object);
    FormPart out;
    if (const char* name = g_mime_object_get_content_disposition_parameter(object, "name")) {
      out.name = name;
    }
    if (const char* filename = g_mime_part_get_filename(part)) {
      out.filename = filename;
    }
    if (GMimeContentType* type = g_mime_object_get_content_type(object)) {
      const char* media = g_mime_content_type_get_media_type(type);
      const char* sub = g_mime_content_type_get_media_subtype(type);
      out.mime_type = lower(std::string(media ? media : "") + "/" + (sub ? sub : ""));
    }
    if (want(out)) {
      GMimeDataWrapper* content = g_mime_part_get_content(part);  // borrowed
      GMimeStream* source = content ? g_mime_data_wrapper_get_stream(content) : nullptr;
      const gint64 encoded = source ? g_mime_stream_length(source) : 0;
      // Transfer decoding never grows the bytes, so the encoded length bounds the copy.
      if (encoded < 0 || static_cast<std::uint64_t>(encoded) > max_content_bytes) {
        out.oversized = true;
      } else if (content != nullptr) {
        const GRef<GMimeStream> sink(g_mime_stream_mem_new());
        if (g_mime_data_wrapper_write_to_stream(content, sink.get()) < 0) {
          return fail(Errc::kParse, "multipart part content does not decode");
        }
        const GByteArray* decoded = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(sink.get()));
        if (decoded->len > max_content_bytes) {
          out.oversized = true;
        } else {
          out.content.assign(reinterpret_cast<const char*>(decoded->data), decoded->len);
        }
      }
    }
    parts.push_back(std::move(out));
  }
  return parts;
}

Result<CameraPush> parse_hikvision(std::string_view content_type, std::string_view body) {
  const std::string media = media_type(content_type);
  if (media == "application/xml" || media == "text/xml") {
    // Some firmware posts the alert alone, without images.
    return parse_alert_xml(body);
  }
  if (media != "multipart/form-data") {
    return fail(Errc::kInvalidArgument, "must be multipart/form-data, application/xml or text/xml",
                "Content-Type");
  }
  auto want = [](const FormPart& part) {
    return part.name == "anpr.xml" || is_xml(part) || is_jpeg(part);
  };
  auto parts = parse_form_data(content_type, body, want, kMaxPushImageBytes);
  if (!parts) {
    return std::unexpected(std::move(parts.error()));
  }
  // The part named anpr.xml, or failing that the first XML part.
  auto xml = std::ranges::find_if(*parts, [](const FormPart& p) { return p.name == "anpr.xml"; });
  if (xml == parts->end()) {
    xml = std::ranges::find_if(*parts, is_xml);
  }
  if (xml == parts->end()) {
    return fail(Errc::kInvalidArgument, "multipart body has no anpr.xml part", "anpr.xml");
  }
  if (xml->oversized || xml->content.size() > kMaxXmlBytes) {
    return fail(Errc::kInvalidArgument,
                "must be at most " + std::to_string(kMaxXmlBytes) + " bytes", "anpr.xml");
  }
  auto push = parse_alert_xml(xml->content);
  if (!push) {
    return push;
  }
  for (FormPart& part : *parts) {
    if (&part == &*xml || !is_jpeg(part) || part.oversized) {
      continue;
    }
    add_image(*push, image_kind(part), std::move(part.content));
  }
  return push;
}

}  // namespace lanegate::lane::camera_push_detail
