#pragma once
// JT/T 905 taxi-meter serial frame codec (spec: lane-devices.md "Taxi meter").
//
//   55 AA | LEN u16 | DEVICE u8 | VENDOR u8 | CMD u16 | BODY … | XOR u8 | 55 AA
//
// LEN counts DEVICE through the end of BODY; XOR covers LEN through the end of BODY.
// There is no byte escaping, so after a bad frame the stream decoder resynchronises on
// the next 55 AA. Pure code, no I/O: MeterStreamDecoder is owned by one thread (the
// meter's port thread); the free functions are callable from any thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/error.h"
#include "lane/events.h"

namespace lanegate::lane {

// Standard meter commands (spec table "Standard meter commands worth handling").
inline constexpr std::uint16_t kCmdStatus = 0x0000;          // down: query; up: status
inline constexpr std::uint16_t kCmdFareParameters = 0x0004;  // up: read-only, never acted on
inline constexpr std::uint16_t kCmdTripStarted = 0x00E7;     // up: the meter went occupied
inline constexpr std::uint16_t kCmdTripRecord = 0x00E8;      // up: end-of-trip record
inline constexpr std::uint16_t kCmdStoredTrip = 0x00F2;      // up: stored record re-sent
// DEVICE is the peripheral's type in both directions. Frames to the meter carry 0x02 as
// in the reference implementation's test frames; the standard's text is unconfirmed, so
// we send 0x02 and accept 0x00 or 0x02 from the meter.
inline constexpr std::uint8_t kDeviceTerminal = 0x00;
inline constexpr std::uint8_t kDeviceMeter = 0x02;
// One-byte acknowledgement bodies (0x00E7, 0x00E8, 0x00F2 down).
inline constexpr std::uint8_t kAckOk = 0x90;
inline constexpr std::uint8_t kAckError = 0xFF;
// Largest LEN we accept; real records are ~70 bytes plus card data.
inline constexpr std::size_t kMaxFrameLen = 1024;
// Fixed part of the end-of-trip BODY before the opaque card data.
inline constexpr std::size_t kTripFixedBodyBytes = 66;
// 0x0000 status reply BODY: 8 BCD/u8 bytes, plate 6, licence 16, qualification 19, u32.
inline constexpr std::size_t kStatusBodyBytes = 55;

struct MeterFrame {
  std::uint8_t device = 0;
  std::uint8_t vendor = 0;
  std::uint16_t cmd = 0;
  std::vector<std::uint8_t> body;
};

// Serialises a frame. REQUIRES: body.size() + 4 <= kMaxFrameLen.
std::vector<std::uint8_t> encode_meter_frame(const MeterFrame& frame);

// Decodes exactly one complete frame (no leading or trailing bytes). kParse with a
// message naming the rule (bad header, LEN, XOR, tail, trailing bytes).
[[nodiscard]] Result<MeterFrame> decode_meter_frame(std::span<const std::uint8_t> bytes);

// What the stream decoder found. Reasons are metric label values of
// lanegate_meter_frames_total{result}.
enum class FrameFault { kGarbage, kBadLen, kBadXor, kBadTail, kTruncated };
std::string_view fault_name(FrameFault f);

struct FrameFaultReport {
  FrameFault fault;
  std::size_t bytes_dropped = 0;
};

using StreamItem = std::variant<MeterFrame, FrameFaultReport>;

// Incremental decoder over a byte stream.
// Invariants:
//  1. buffer_ never starts with a byte sequence that is known not to start a frame
//     once next() has returned nullopt (garbage is dropped and reported first).
//  2. A frame is returned only when LEN, XOR and the 55 AA tail all check out.
//  3. After a fault the decoder skips one byte past the bad start and searches for the
//     next 55 AA, so a good frame after garbage or a truncated frame is still found.
//  4. buffer_ never holds more than kMaxFrameLen + 7 bytes of an incomplete frame.
class MeterStreamDecoder {
 public:
  void feed(std::span<const std::uint8_t> bytes);
  // Next frame or fault; nullopt when more bytes are needed.
  std::optional<StreamItem> next();
  // The line went quiet with a partial frame buffered: drop it as truncated.
  std::optional<FrameFaultReport> flush_partial();
  std::size_t buffered() const { return buffer_.size(); }

 private:
  std::vector<std::uint8_t> buffer_;
};

// Decodes a CMD 0x00E8 (or 0x00F2, same body) BODY into a TripRecord (meter, lane and received_at are left for
// the caller). Errors name the field: BCD nibble > 9, impossible dates and times, short
// body.
[[nodiscard]] Result<TripRecord> decode_trip_record(std::span<const std::uint8_t> body);

// Encodes a TripRecord as a CMD 0x00E8 BODY (the simulator's meter and tests).
// REQUIRES: amounts and distances fit their BCD widths; fare in whole 0.1 yuan.
[[nodiscard]] Result<std::vector<std::uint8_t>> encode_trip_record(const TripRecord& trip);

// Whether a frame from the meter's line is one we treat as from the meter: DEVICE 0x00
// or 0x02 (see kDeviceMeter) and VENDOR 0 (standard commands; a vendor's own commands
// are not ours to answer).
bool from_meter(const MeterFrame& frame);

// The terminal's acknowledgement of `cmd` (0x00E7, 0x00E8 or 0x00F2): DEVICE 0x02,
// VENDOR 0, CMD echoing the acknowledged command, BODY 0x90 (ok) or 0xFF (error).
// The ack names no trip: it answers the record the meter has in flight.
MeterFrame make_ack(std::uint16_t cmd, bool ok);
// The status byte of an acknowledgement frame (a one-byte body on 0x00E7/0x00E8/0x00F2).
std::optional<std::uint8_t> ack_status(const MeterFrame& frame);

// A meter clock reading: BCD[7] YYYYMMDDhhmmss (0x0000 query body, 0x00E7 body).
struct MeterTime {
  CivilTime civil;
  int second = 0;
  auto operator<=>(const MeterTime&) const = default;
};
// kParse naming `field` on a short body, a nibble > 9 or an impossible date or time.
[[nodiscard]] Result<MeterTime> decode_meter_time(std::span<const std::uint8_t> body,
                                                  std::string_view field);
// REQUIRES: a valid date and time, year 0..9999.
std::vector<std::uint8_t> encode_meter_time(const MeterTime& t);
// The wall time `unix_seconds` as a meter time in a zone `utc_offset_minutes` east of UTC.
MeterTime meter_time_at(std::int64_t unix_seconds, int utc_offset_minutes);

// The 0x0000 status query (terminal -> meter): the terminal's time.
MeterFrame make_status_query(const MeterTime& terminal_time);

// The meter's 0x0000 status reply (spec table, row 0x0000 up).
struct MeterStatus {
  int vendor = 0;       // BCD[1]
  int device_type = 0;  // BCD[1]
  int serial = 0;       // BCD[3]
  int hw_version = 0;   // BCD[1]
  int sw_major = 0;     // BCD[1]
  int sw_minor = 0;     // BCD[1]
  std::uint8_t device_state = 0;  // 0 ok, else see device_state_meaning()
  std::uint8_t work_state = 0;    // 0x00 signed in, 0x01 signed out, 0x10/0x11 forced on/off
  std::string plate;              // ASCII, 6 bytes, no province character
  std::string operating_licence;  // 16 bytes
  std::string driver_qualification;  // 19 bytes (personal data: not logged)
  std::uint32_t trip_count = 0;
};
// kParse naming the field: short body, BCD nibble > 9.
[[nodiscard]] Result<MeterStatus> decode_meter_status(std::span<const std::uint8_t> body);
// The simulator's meter and tests. kOutOfRange naming a BCD field that does not fit.
[[nodiscard]] Result<std::vector<std::uint8_t>> encode_meter_status(const MeterStatus& status);
// "ok", "count-limited", "date-limited", "trip store full", "sign-in store full", "fault".
std::string_view device_state_meaning(std::uint8_t state);
// "signed in", "signed out", "forced on", "forced off", "unknown".
std::string_view work_state_meaning(std::uint8_t state);

// The body check of a frame whose body we decode (a trip record, a trip start, a status
// query or reply; an ack's status byte): ok, or the decoding error. Other frames: ok.
[[nodiscard]] Status check_meter_frame_body(const MeterFrame& frame);

// Human-readable JSON of a frame (`lanegate meter decode`): header fields, and per
// command: a trip record's fields (0x00E8/0x00F2), an ack's status, a trip start's
// time (0x00E7), a status query's time or a status reply's fields (0x0000), or the
// decoding error ("*_error").
std::string meter_frame_json(const MeterFrame& frame);

// Minimal JSON string escaping (quotes, backslash, control characters; UTF-8 kept).
std::string json_escape(std::string_view s);

}  // namespace lanegate::lane
