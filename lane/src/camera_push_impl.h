#pragma once
// Internal to lane/src: what camera_push.cc (dispatch, Vzenith, Dahua, generic, the reply)
// and camera_push_hikvision.cc (XML and multipart) share. Pure functions, no state beyond
// GMime's one-time initialisation.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "lane/camera_push.h"

namespace lanegate::lane::camera_push_detail {

// Identifiers (camera ids, event ids and their parts) are at most this long.
inline constexpr std::size_t kMaxIdBytes = 64;
// A multipart body yields at most this many parts; the rest are ignored.
inline constexpr std::size_t kMaxFormParts = 32;
// The ANPR XML (a part, or the whole body) is at most this long; alerts are a few KiB.
inline constexpr std::size_t kMaxXmlBytes = 256 * 1024;

// "type/subtype" of a Content-Type header, lower case, parameters dropped ("" when empty).
std::string media_type(std::string_view content_type);

// Ok when `value` is 1..max_bytes bytes of printable ASCII (0x20..0x7e). The error names
// `field` and the rule, never the value (heartbeats carry credentials next to it).
[[nodiscard]] Status check_id(std::string_view value, std::string_view field,
                              std::size_t max_bytes = kMaxIdBytes);

// Ok when `text` is at most max_bytes of valid UTF-8 without control characters (it ends
// up in logs, records and on LED boards).
[[nodiscard]] Status check_text(std::string_view text, std::string_view field,
                                std::size_t max_bytes);
// Plate text: check_text with kMaxPlateRawBytes.
[[nodiscard]] Status check_plate(std::string_view plate, std::string_view field);
// A vendor's colour string (kept as colour_raw) is at most this long.
inline constexpr std::size_t kMaxColourRawBytes = 32;
// A Content-Type header longer than this is refused before parsing.
inline constexpr std::size_t kMaxContentTypeBytes = 1024;

// Adds an image when there is room (kMaxPushImages) and it is 1..kMaxPushImageBytes long;
// otherwise drops it: images are optional and never fail the event.
void add_image(CameraPush& push, std::string kind, std::string bytes);
// Decodes Base64 (strict, padded) and adds the image; undecodable text is dropped.
void add_base64_image(CameraPush& push, std::string kind, std::string_view base64);

// One part of a multipart/form-data body as GMime parsed it.
struct FormPart {
  std::string name;        // Content-Disposition name ("" when absent)
  std::string filename;    // Content-Disposition filename ("" when absent)
  std::string mime_type;   // "type/subtype", lower case (GMime's default text/plain if absent)
  std::string content;     // decoded bytes, only when the caller asked for them
  bool oversized = false;  // asked for, but longer than max_content_bytes: content empty
};

// Parses a multipart/form-data body with GMime. `content_type` is the request header (its
// boundary delimits the parts). `want(part)` is called with name, filename and mime_type
// set and decides whether the content is read: parts not wanted are never copied (a
// heartbeat's pass_wd stays inside GMime's buffer). Nested multiparts are skipped; at most
// kMaxFormParts parts are returned. kParse when the body is not a complete multipart.
[[nodiscard]] Result<std::vector<FormPart>> parse_form_data(
    std::string_view content_type, std::string_view body,
    const std::function<bool(const FormPart&)>& want, std::size_t max_content_bytes);

// Hikvision ISAPI EventNotificationAlert, multipart or the XML alone.
[[nodiscard]] Result<CameraPush> parse_hikvision(std::string_view content_type,
                                                 std::string_view body);

}  // namespace lanegate::lane::camera_push_detail
