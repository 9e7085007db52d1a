#pragma once
// Plate cameras that push their recognitions over HTTP (spec lane-devices.md "ANPR cameras
// over HTTP"): parsing each vendor's request into one shape, and the Vzenith reply.
//
// Pure functions, no I/O and no state: the gateway's receiver (gateway/camera_receiver.h)
// authenticates the request, calls parse_push(), persists the result and answers. Every
// parser bounds what it accepts (sizes, counts) and names the field and the rule it
// refuses; none throws. XML is read with pugixml, multipart bodies with GMime (both Debian
// packages): never by hand.
//
// Vendors:
//   kVzenith    臻识 IVS: JSON {"AlarmInfoPlate": {...}} for a plate result; a multipart
//               form post (device_name, ipaddr, port, user_name, pass_wd, serialno,
//               channel_num) for a heartbeat. Reply: vzenith_reply().
//   kHikvision  ISAPI EventNotificationAlert (eventType ANPR) as a multipart part named
//               anpr.xml with JPEG parts, or the XML alone (application/xml / text/xml).
//   kDahua      ITSAPI TollgateInfo JSON (path /NotificationInfo/TollgateInfo) and KeepAlive
//               (/NotificationInfo/KeepAlive). Field detail *unconfirmed* (spec).
//   kGeneric    the gateway's own adapter format, POST /anpr/events.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "lane/plate.h"

namespace lanegate::lane {

enum class CameraVendor { kVzenith, kHikvision, kDahua, kGeneric };
// "vzenith" | "hikvision" | "dahua" | "generic" (config values and metric labels).
std::string_view vendor_name(CameraVendor v);
[[nodiscard]] Result<CameraVendor> parse_vendor(std::string_view name);

// Bounds on what a push may carry (the receiver also caps the body size).
inline constexpr std::size_t kMaxPushImages = 4;
inline constexpr std::size_t kMaxPushImageBytes = 2 * 1024 * 1024;  // decoded
inline constexpr std::size_t kMaxPlateRawBytes = 64;
// CameraPush::event_id is at most this long (the longest is a derived Hikvision id,
// "<channelID>/<dateTime>/<licensePlate>"; a generic event_id is at most 64).
inline constexpr std::size_t kMaxEventIdBytes = 160;
// parse_push() refuses a larger body (kInvalidArgument, field "body"): room for
// kMaxPushImages images of kMaxPushImageBytes as Base64 plus the event.
inline constexpr std::size_t kMaxPushBodyBytes = 16 * 1024 * 1024;

struct PushImage {
  std::string kind;   // "full" | "plate" | "vehicle" (vendor part names map onto these)
  std::string bytes;  // decoded image bytes (JPEG as the cameras send them)
};

// One request from a camera, vendor-neutral.
struct CameraPush {
  enum class Kind { kPlate, kHeartbeat };
  Kind kind = Kind::kPlate;
  CameraVendor vendor = CameraVendor::kGeneric;

  // Identity as the camera states it (matched against the [[device]]'s `serial`):
  // Vzenith serialno, Hikvision macAddress (else ipAddress), Dahua DeviceID, generic
  // camera_id. `ip` is the address the camera states, when it does (informational only:
  // the receiver trusts the connection's peer address, never this field).
  std::string camera;
  std::string ip;

  // ---- kPlate ----
  // The camera's id of this event, unique per camera (dedup key with `camera`):
  // Vzenith plateid; generic event_id. Hikvision and Dahua state no event id in the spec:
  // it is derived from the fields that identify the capture (see camera_push.cc).
  std::string event_id;
  std::string plate_raw;  // the text as sent, at most kMaxPlateRawBytes, valid UTF-8
  bool no_plate = false;  // the camera reported "no plate" (Vzenith `_无_` / type 31, empty)
  // Colour mapped from the vendor's code when the spec defines the code; otherwise nullopt
  // and `colour_raw` holds what was sent (Hikvision plateColor strings are mapped by the
  // device's configuration, spec: *unconfirmed*).
  std::optional<PlateColour> colour;
  std::string colour_raw;
  int confidence = 0;    // normalised to 0..1000 (Vzenith 1..100 ×10, generic 0..100 ×10)
  bool offline = false;  // stored by the camera while the gateway was unreachable, resent
  std::string direction;  // "in" | "out" | "unknown" (vendor values mapped when certain)
  // Capture time in unix milliseconds, when the camera sent one that parses.
  std::optional<std::int64_t> capture_ms;
  std::vector<PushImage> images;  // at most kMaxPushImages
};

// Parses one request. `content_type` is the request's Content-Type header (for multipart
// the boundary comes from it); `path` the request path (Dahua picks plate vs heartbeat by
// path). Errors: kParse (bytes that do not parse) or kInvalidArgument (a field broke a
// rule), with `field` naming the field ("AlarmInfoPlate.result.PlateResult.license").
// An image that does not decode is dropped (never fails the event).
[[nodiscard]] Result<CameraPush> parse_push(CameraVendor vendor, std::string_view path,
                                            std::string_view content_type, std::string_view body);

// The Vzenith reply body (spec: Response_AlarmInfoPlate). `open`: "info":"ok" (the camera
// pulses its gate relay) else "no". A plate result echoes its `plateid` (online) or asks
// for the next stored record with "ContinuePushOffline" (offline). Heartbeats: the spec
// names no reply body (*unconfirmed*); the receiver answers them 200 with an empty body.
std::string vzenith_reply(const CameraPush& push, bool open);

}  // namespace lanegate::lane
