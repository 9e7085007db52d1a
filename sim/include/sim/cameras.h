#pragma once
// lanegate-sim camera: car-park plate cameras that push each recognition to the gateway over
// HTTP in their vendor's wire format (spec lane-devices.md "ANPR cameras over HTTP"):
//   vzenith    POST /anpr/vzenith                   {"AlarmInfoPlate": ...} JSON; heartbeats
//                                                   as multipart/form-data
//   hikvision  POST /anpr/hikvision                 multipart/form-data: anpr.xml
//                                                   (EventNotificationAlert) + JPEG parts, or
//                                                   the XML alone as application/xml
//   dahua      POST /NotificationInfo/TollgateInfo  {"Picture": ...} JSON;
//              POST /NotificationInfo/KeepAlive     {"DeviceID", "Active"} heartbeat
//   generic    POST /anpr/events                    the gateway's own adapter JSON
//
// Written from the spec independently of the gateway's receivers and parsers (which sim/
// must not include): a bug shared with the gateway's parser would otherwise pass every test.
// Where the spec leaves a wire detail open, cameras.cc marks the choice `// unconfirmed:`.
//
// Encoding is pure (callable from any thread); send_push() blocks the calling thread for at
// most about the timeout.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace lanegate::sim {

// One recognition as a camera would push it.
struct CameraShot {
  std::string vendor;  // vzenith | hikvision | dahua | generic
  std::string serial;  // the camera's stable id (Vzenith serialno, Dahua DeviceID, ...)
  std::string ip = "192.168.1.64";
  std::uint64_t event_no = 1;  // the camera's record id (Vzenith plateid, generic event_id)
  std::string plate;           // UTF-8; empty = no plate
  // The provider's colour names: BLUE YELLOW BLACK WHITE GREEN LIMEGREEN UNKNOWN.
  std::string colour = "BLUE";
  int confidence = 95;               // 0..100 (Vzenith with a plate: 1..100)
  bool offline = false;              // stored while the gateway was unreachable, sent later
  std::int64_t capture_unix_ms = 0;  // 0: now. A resend of one event must keep its time.
  bool images = true;                // a full image and a plate crop (fake_jpeg)
};

// One HTTP request as the camera sends it. `path` has no query: send_push adds the token.
struct HttpPush {
  std::string path;
  std::string content_type;  // multipart/form-data carries its boundary here
  std::string body;
};

// The recognition in the vendor's format. kInvalidArgument (field named) for an unknown
// vendor or colour, an empty serial, `hikvision_xml_only` for another vendor; kOutOfRange
// for a confidence outside the vendor's range or a negative capture time.
// `hikvision_xml_only`: the firmware that posts the XML alone as application/xml, no images.
[[nodiscard]] Result<HttpPush> encode_plate(const CameraShot& shot,
                                            bool hikvision_xml_only = false);

// A heartbeat in the vendor's format (Vzenith multipart form, Dahua KeepAlive JSON).
// Generic and Hikvision: kInvalidArgument "no heartbeat in the spec". `user` and `password`
// are what a Vzenith camera puts in user_name / pass_wd (the gateway must redact them).
[[nodiscard]] Result<HttpPush> encode_heartbeat(std::string_view vendor, std::string_view serial,
                                                std::string_view ip,
                                                std::string_view user = "admin",
                                                std::string_view password = "admin");

// A fake JPEG, the same bytes for the same seed: SOI + a JFIF APP0 header, filler without
// any 0xFF byte, EOI (FF D9). `bytes` below the 22-byte minimum gives 22 bytes.
std::string fake_jpeg(std::uint64_t seed, std::size_t bytes);

// The macAddress a simulated Hikvision camera reports, lower case "aa:bb:cc:dd:ee:ff": the
// serial itself when it is a MAC (either case, ':' or '-'), else "44:19:b6:xx:xx:xx" derived
// from the serial. The gateway identifies a Hikvision camera by its macAddress, so a test
// that gives the camera a MAC as its serial has one id for the config, the XML and Basic.
std::string camera_mac(std::string_view serial);

struct PushAnswer {
  int status = 0;
  std::string body;
  double ms = 0;  // request to complete reply
};

// POSTs `push` to http://host:port. With a token, it is either appended to the path as
// `?token=<token>` (the camera's configured URL) or, with `basic_auth`, sent as HTTP Basic
// with user `serial` and password `token` (then not in the URL). No keep-alive.
// Any HTTP status is an answer; kUnavailable when no reply arrived (refused, timed out,
// connection closed); kInvalidArgument for basic_auth without a token.
[[nodiscard]] Result<PushAnswer> send_push(const std::string& host, int port,
                                           const std::string& token, bool basic_auth,
                                           const std::string& serial, const HttpPush& push,
                                           std::chrono::milliseconds timeout);

// One `serialData` item of a Vzenith reply: bytes for the camera's RS-485 port.
struct VzenithSerialData {
  int channel = 0;
  std::string bytes;  // decoded from Base64
};

// A gateway's reply to a Vzenith plate result, as the camera reads it.
struct VzenithReply {
  bool open = false;                              // "info":"ok": the camera pulses its gate relay
  std::optional<std::uint64_t> plateid;           // the echoed record id
  bool continue_offline = false;                  // ContinuePushOffline.continue == 1
  std::optional<std::uint64_t> continue_plateid;  // ContinuePushOffline.plateid
  std::vector<VzenithSerialData> serial_data;
};

// Parses {"Response_AlarmInfoPlate": {...}}. kParse for non-JSON; kProtocol (field named)
// when the object is missing, `info` is neither "ok" nor "no", a plateid is not a
// non-negative integer, ContinuePushOffline lacks plateid/continue, or a serialData item
// lacks serialChannel/data/dataLen, has invalid Base64 or a dataLen that is not its length.
[[nodiscard]] Result<VzenithReply> read_vzenith_reply(std::string_view body);

// Checks a parsed reply against the record it answers (a vzenith shot). An offline record
// must get ContinuePushOffline{plateid == event_no, continue 1} and must not open (the car
// left long ago); an online one must echo plateid == event_no. kProtocol (field named)
// otherwise. Returns whether the camera pulses its relay.
[[nodiscard]] Result<bool> check_vzenith_reply(const VzenithReply& reply, const CameraShot& shot);

// `lanegate-sim camera ...`: sends one push and prints `status=<n> open=<yes|no|-> ms=<x>`
// and the reply body on a second line. 0 on a 2xx (and, for a Vzenith plate result, a reply
// that keeps the spec), 1 otherwise, 2 for a bad argument; --help: usage on stdout, 0.
int run_camera(std::span<const std::string> args);

}  // namespace lanegate::sim
