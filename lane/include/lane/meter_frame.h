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

inline constexpr std::uint16_t kCmdTripRecord = 0x00E8;
inline constexpr std::uint8_t kDeviceTerminal = 0x00;
inline constexpr std::uint8_t kDeviceMeter = 0x02;
// Largest LEN we accept; real records are ~70 bytes plus card data.
inline constexpr std::size_t kMaxFrameLen = 1024;
// Fixed part of the end-of-trip BODY before the opaque card data.
inline constexpr std::size_t kTripFixedBodyBytes = 66;

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

// Decodes a CMD 0x00E8 BODY into a TripRecord (meter, lane and received_at are left for
// the caller). Errors name the field: BCD nibble > 9, impossible dates and times, short
// body.
[[nodiscard]] Result<TripRecord> decode_trip_record(std::span<const std::uint8_t> body);

// Encodes a TripRecord as a CMD 0x00E8 BODY (the simulator's meter and tests).
// REQUIRES: amounts and distances fit their BCD widths; fare in whole 0.1 yuan.
[[nodiscard]] Result<std::vector<std::uint8_t>> encode_trip_record(const TripRecord& trip);

// The terminal's acknowledgement of a trip record: DEVICE 0x00, CMD 0x00E8,
// BODY = trip number (u32) + status 0x00. The meter retransmits until it sees this.
MeterFrame make_trip_ack(std::uint32_t trip_number);
// Trip number acknowledged by `frame`, if it is a trip ack.
std::optional<std::uint32_t> parse_trip_ack(const MeterFrame& frame);

// Human-readable JSON of a frame (`lanegate meter decode`): header fields, and for a
// trip record every decoded field or the decoding error.
std::string meter_frame_json(const MeterFrame& frame);

// Minimal JSON string escaping (quotes, backslash, control characters; UTF-8 kept).
std::string json_escape(std::string_view s);

}  // namespace lanegate::lane
