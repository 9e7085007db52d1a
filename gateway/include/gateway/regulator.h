#pragma once
// The taxi regulator upload: every finished trip goes to the city's regulator platform as a
// JT/T 905 operation-data upload (0x0B05) over TCP (spec: lane-devices.md "Uplink: JT/T 905
// operation-data upload (0x0B05)"; docs/REGULATOR.md).
//
//   7E | MsgId u16 | body length u16 | ISU id BCD[6] | serial u16 | body | XOR | 7E
//
// XOR covers MsgId through the end of the body; between the two flags every 7E is sent as
// 7D 02 and every 7D as 7D 01, the checksum included (SmallChi/JT905 JT905Package.cs
// escapes the whole span after the XOR is written).
//
// Outbox item: topic `regulator.trip`, payload encode_regulator_item(). The taxi lane
// enqueues it with ordering key = the lane (a cab's trips reach the platform in order) in
// the same transaction that stores the trip. RegulatorUplink drains it: one 0x0B05 per item,
// acknowledged only when a 0x8001 general reply with result 0 names the frame's serial.
//
// The codec functions are pure and callable from any thread.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "offline_queue/drainer.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {

inline constexpr std::uint8_t kJt905Flag = 0x7E;
inline constexpr std::uint16_t kMsgOperationUpload = 0x0B05;  // 运营数据上传
inline constexpr std::uint16_t kMsgGeneralReply = 0x8001;     // 中心通用应答
// MsgId + body length + ISU BCD[6] + serial.
inline constexpr std::size_t kJt905HeaderBytes = 12;
// Largest escaped frame (flags included) the stream splitter buffers. A 0x0B05 body is 65
// bytes plus a meter record of at most lane::kMaxFrameLen, so an upload escapes to well
// under this even if every byte needed escaping.
inline constexpr std::size_t kJt905MaxFrameBytes = 4096;

// One JT/T 905 message, unescaped.
struct Jt905Frame {
  std::uint16_t msg_id = 0;
  std::string isu_id;  // 12 decimal digits (BCD[6])
  std::uint16_t serial = 0;
  std::vector<std::uint8_t> body;
};

// Serialises a frame: header, body, XOR, escaping, flags.
// REQUIRES: isu_id is 12 digits; body.size() <= 65535.
std::vector<std::uint8_t> encode_jt905_frame(const Jt905Frame& frame);

// Decodes exactly one escaped frame, flags included. kParse errors; `field` names the
// rule: "flag" (missing 7E at either end, or a bare 7E inside), "escape" (7D not followed
// by 01 or 02), "length" (shorter than a header and checksum), "body_length" (the header's
// body length disagrees with the bytes present: truncated or trailing), "xor", "isu_id"
// (a BCD nibble above 9).
[[nodiscard]] Result<Jt905Frame> decode_jt905_frame(std::span<const std::uint8_t> bytes);

// Splits a TCP byte stream into escaped frames (7E ... 7E). Bytes before a start flag and
// runs longer than kJt905MaxFrameBytes are dropped and counted. Owned by one thread.
class Jt905StreamSplitter {
 public:
  void feed(std::span<const std::uint8_t> bytes);
  // The next complete frame, flags included; nullopt when more bytes are needed.
  std::optional<std::vector<std::uint8_t>> next();
  std::size_t buffered() const { return buffer_.size(); }
  std::size_t dropped_bytes() const { return dropped_; }

 private:
  std::vector<std::uint8_t> buffer_;
  std::size_t dropped_ = 0;
};

// A vehicle position as JT/T 905 0x0200 packs it (25 bytes).
struct Jt905Position {
  std::uint32_t alarm = 0;
  std::uint32_t status = 0;
  std::uint32_t latitude = 0;   // 1/600000 degree
  std::uint32_t longitude = 0;  // 1/600000 degree
  std::uint16_t speed = 0;      // 0.1 km/h
  std::uint8_t direction = 0;   // 0..179, 2-degree steps
  SystemTime time;              // sent as BCD[6] YYMMDDhhmmss at UTC+8
};
inline constexpr std::size_t kJt905PositionBytes = 25;

// The 0x0B05 body.
struct OperationUpload {
  Jt905Position occupied;  // 空转重
  Jt905Position freed;     // 重转空
  std::uint32_t operation_id = 0;
  std::uint32_t evaluation_id = 0;
  std::uint8_t evaluation_option = 0;
  std::uint16_t evaluation_option_ext = 0;
  std::uint32_t ehail_order_id = 0;      // 0: not an e-hail trip
  std::vector<std::uint8_t> meter_body;  // the meter's 0x00E8 body, as received
};
// 25 + 25 + 4 + 4 + 1 + 2 + 4 bytes before the meter data.
inline constexpr std::size_t kOperationUploadFixedBytes = 65;

std::vector<std::uint8_t> encode_operation_upload(const OperationUpload& upload);

// The platform's general reply (0x8001 body).
struct GeneralReply {
  std::uint16_t reply_serial = 0;
  std::uint16_t reply_msg_id = 0;
  std::uint8_t result = 0;  // 0 ok, 1 failed, 2 message error; other values kept as sent
};
inline constexpr std::uint8_t kReplyOk = 0;
inline constexpr std::uint8_t kReplyFailed = 1;
inline constexpr std::uint8_t kReplyMessageError = 2;

// Decodes a 0x8001 body (exactly 5 bytes). kParse, field "body_length" otherwise.
[[nodiscard]] Result<GeneralReply> decode_general_reply(std::span<const std::uint8_t> body);
std::vector<std::uint8_t> encode_general_reply(const GeneralReply& reply);

// ---- the outbox item ----

inline constexpr std::string_view kTopicRegulatorTrip = "regulator.trip";

// One finished trip for the regulator. `meter_body` is the 0x00E8 body: the gateway keeps
// the decoded TripRecord, so the caller re-encodes it with lane::encode_trip_record()
// (lane/meter_frame.h). For a standard meter that is byte-for-byte what the meter sent
// (every field is fixed width and the card data is kept opaque); a meter that filled the
// ASCII fields with something other than zero padding would be normalised.
struct RegulatorTrip {
  std::string isu_id;  // the taxi lane's isu_id, 12 digits
  std::string lane;
  std::string meter;
  std::uint32_t trip_number = 0;
  std::vector<std::uint8_t> meter_body;
  SystemTime boarding;   // the meter's boarding time (occupied)
  SystemTime alighting;  // the meter's alighting time (free)
};

// Versioned JSON ({"v":1, ..., "meter_body": hex}).
std::string encode_regulator_item(const RegulatorTrip& trip);
// kParse/kInvalidArgument naming the field (version, isu_id 12 digits, meter_body hex and
// at least the meter record's fixed 66 bytes, times).
[[nodiscard]] Result<RegulatorTrip> decode_regulator_item(std::string_view payload);

// The 0x0B05 body for a trip. lanegate has no GNSS input, so both positions carry zeros
// except their times (occupied = boarding, free = alighting); a GNSS feed (JT/T 905 0x0200
// from the terminal's positioning module) would settle them. operation id = the meter's trip
// number; evaluation fields 0 (no service evaluator on this box); e-hail order id 0.
OperationUpload operation_upload_for(const RegulatorTrip& trip);

// The frame's serial for an outbox item: the low 16 bits of the item id. A retransmission
// of the same item (after a lost reply, a timeout or a restart) carries the same serial, so
// the platform can see it is the same message and a late reply to an earlier attempt still
// names this item; consecutive items differ.
std::uint16_t regulator_serial(std::int64_t item_id);

// ---- the drain sink ----

// Drains `regulator.trip` items to the regulator platform.
//
// Per item, on one worker thread: (re)connect within connect_timeout_ms when there is no
// open connection, send the 0x0B05, then read frames until a 0x8001 for MsgId 0x0B05 naming
// the serial arrives or reply_timeout_ms passes; other frames and replies naming other
// serials are ignored (late replies to earlier attempts). The connection stays open for the
// next item and is dropped after any failure.
//
//   reply result 0                                   ack
//   reply result 1 / 2 / other                       retry with backoff (link up)
//   connect failure, write failure, closed, no reply retry in kLinkDownRetry (link down)
//   payload that does not decode                     park (an operator looks)
//
// That 0x0B05 is answered by 0x8001 is *unconfirmed* (spec): the item stays queued until an
// ok reply names its serial, so a platform that answers otherwise leaves trips queued and
// visible, never lost. Every outcome is counted in lanegate_regulator_uploads_total{result};
// lanegate_regulator_up is 1 after an exchange the platform answered, 0 after one it did not.
//
// Lifecycle: create -> sink()* -> stop() (joins the worker; the item in flight still gets
// its completion) -> destroy. Threading: create, sink, stop and the destructor on the io
// thread; link_up() any thread.
class RegulatorUplink {
 public:
  static constexpr std::chrono::milliseconds kLinkDownRetry{2000};

  // REQUIRES: io and clock outlive the RegulatorUplink.
  RegulatorUplink(boost::asio::io_context& io, const config::RegulatorSection& section,
                  const Clock& clock);
  ~RegulatorUplink();
  RegulatorUplink(const RegulatorUplink&) = delete;
  RegulatorUplink& operator=(const RegulatorUplink&) = delete;

  static bool handles(std::string_view topic);
  // A drain sink for regulator.trip (Drainer::Sink contract). io thread. The completion is
  // posted to the io thread.
  void sink(const queue::Item& item, queue::Drainer::Completion done);

  bool link_up() const;
  // Runs on the io thread when the link comes back. Set before the first sink().
  void set_on_link_up(std::function<void()> callback);

  // Waits for the worker to finish the item in flight; later sinks retry their item.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lanegate::gateway
