#pragma once
// Typed events from the lane devices to the gateway. Device threads (one per Modbus bus,
// one per serial port) build these values and hand them to an EventSink; the gateway's
// sink posts them onto its io_context, so every event is consumed on the io thread.
//
// Times: `device_time` is what the device reported (camera recognition time, meter
// boarding time); `received_at` is the local wall time (Clock seam) when the driver got
// the bytes, and `received_steady` the monotonic time (latency measurements, ordering).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/money.h"
#include "lane/plate.h"

namespace lanegate::lane {

// An evidence image that came with a read (gateway/evidence.h keeps the file).
struct ImageRef {
  std::string kind;    // "full" | "plate" | "vehicle"
  std::string sha256;  // 64 lower-case hex digits
  std::int64_t bytes = 0;
};

// Told once whether the lane decided to open for a read: a Vzenith camera pulses its gate
// relay only when its reply says so. Dropped without a call (the read was not decided:
// a taxi lane, a repeat, shutdown) it tells "not opened", so a waiting reply never hangs.
class DecisionHook {
 public:
  explicit DecisionHook(std::function<void(bool opened)> fn) : fn_(std::move(fn)) {}
  ~DecisionHook() { operator()(false); }
  DecisionHook(const DecisionHook&) = delete;
  DecisionHook& operator=(const DecisionHook&) = delete;
  void operator()(bool opened) {
    if (fn_) {
      auto fn = std::move(fn_);
      fn_ = nullptr;
      fn(opened);
    }
  }

 private:
  std::function<void(bool)> fn_;
};

// A plate the camera read, decoded and validated (never a rejected read).
struct PlateRead {
  std::string lane;    // lane id whose camera this is ("" if not bound to a lane)
  std::string device;  // camera device id
  std::string plate;   // UTF-8, validated, e.g. "粤B12345"
  PlateColour colour = PlateColour::kBlue;
  int confidence = 0;     // 0..1000
  int vehicle_class = 0;  // toll class 1..16, 0 unknown
  std::uint16_t sequence = 0;
  SystemTime device_time;  // recognition time from the camera record
  SystemTime received_at;
  SteadyTime received_steady;
  // Cameras that push over HTTP (gateway/camera_receiver.h):
  std::int64_t camera_event = 0;  // the persisted camera event (0: a Modbus read)
  // Stored by the camera while lanegate was unreachable and resent later: recorded (a
  // parking entry opens its stay at the capture time), never opens a barrier or charges.
  bool resent = false;
  std::vector<ImageRef> images;
  std::shared_ptr<DecisionHook> on_decided;  // may be null
  // An attendant typed the plate (no-plate vehicle): who and why. Empty: a camera read.
  std::string entered_by;
  std::string entered_reason;
};

// A camera saw a vehicle but gave no plate lanegate can charge: the camera's "no plate", or
// a text the plate rules refuse (special plates, misreads). The lane's no-plate flow starts
// at once (the display, an API event, an attendant).
struct NoPlateRead {
  std::string lane;
  std::string device;
  std::string reason;  // "no_plate" or the plate rule's reason (lane/plate.h reject_name)
  std::int64_t camera_event = 0;
  std::vector<ImageRef> images;
  SystemTime received_at;
};

// Loop detector edge: present became true or false.
struct VehiclePresent {
  std::string lane;
  std::string device;
  bool present = false;
  SystemTime received_at;
};

// Barrier status. Sent on every status change seen by polling, and once per open
// command with `command_result` set: confirmed (fully open seen) or alarm (not confirmed
// after every retry).
struct BarrierState {
  enum class Position { kUnknown, kOpen, kClosed, kMoving };
  enum class CommandResult { kNone, kConfirmed, kAlarm, kFailed };
  std::string lane;
  std::string device;
  Position position = Position::kUnknown;
  CommandResult command_result = CommandResult::kNone;
  std::uint64_t command_id = 0;  // echoes the open request's id (0 for polled changes)
  int attempts = 0;              // open commands written for this request
  std::string detail;            // why an alarm or failure happened
  SystemTime received_at;
};

// Toll-exit roadside unit (OBU/CPC reader) record.
struct RoadsideRecord {
  std::string lane;
  std::string device;
  std::uint16_t sequence = 0;
  std::uint32_t entry_station = 0;
  SystemTime entry_time;
  int vehicle_class = 0;
  std::string obu_id;  // ASCII contract/OBU id, trailing NULs and spaces removed
  SystemTime received_at;
};

// Local civil time as the meter reports it (no zone; the gateway's utc offset applies).
struct CivilTime {
  int year = 2000;  // 2000..2099 from the two BCD digits
  int month = 1;
  int day = 1;
  int hour = 0;
  int minute = 0;
  auto operator<=>(const CivilTime&) const = default;
  // "2026-11-22T08:30"
  std::string to_string() const;
  // Seconds since the epoch for a zone `utc_offset_minutes` east of UTC.
  std::int64_t to_unix(int utc_offset_minutes) const;
};

// End-of-trip record from a taxi meter (JT/T 905 CMD 0x00E8).
struct TripRecord {
  std::string meter;  // [[meter]] id
  std::string lane;   // taxi lane bound to the meter
  std::string plate;  // ASCII as the meter sends it (6 bytes, no province)
  std::string operating_licence;
  std::string driver_qualification;
  CivilTime boarding;
  CivilTime alighting;          // next day when earlier than boarding's hh:mm
  std::int64_t distance_m = 0;  // 0.1 km units * 100
  std::int64_t empty_distance_m = 0;
  Money surcharge;
  int waiting_seconds = 0;
  Money fare;  // 0.1 yuan units * 10 fen
  std::uint32_t trip_number = 0;
  std::uint8_t payment_type = 0;  // 0x00 cash, 0x01 M1, 0x03 CPU card, 0x09 other
  std::string card_data;          // opaque bytes
  SystemTime received_at;
};

// The meter went "occupied" (JT/T 905 CMD 0x00E7): a new trip started. The gateway ends
// the previous trip's payment window (a QR still shown is closed).
struct TripStarted {
  std::string meter;  // [[meter]] id
  std::string lane;   // taxi lane bound to the meter
  CivilTime occupied_at;  // BCD[7] YYYYMMDDhhmmss as the meter sent it (seconds dropped)
  SystemTime received_at;
};

// A passenger's payment code (付款码) read by the taxi terminal's code reader
// ([[reader]]), validated locally (lane/payment_code.h: 18 digits, WeChat prefixes 10..15).
// SECRET for its short life: the code pays once within about a minute. It is never
// logged, never stored and never queued; the gateway uses it for one codepay call while
// the passenger waits and drops it.
struct PaymentCode {
  std::string lane;    // taxi lane whose code_reader this is ("" if bound to no lane)
  std::string reader;  // [[reader]] id
  std::string code;    // 18 digits
  SystemTime received_at;
  SteadyTime received_steady;
};

// Device health transition (also counted in lanegate_device_transitions_total).
enum class Health { kUp, kDegraded, kDown };
std::string_view health_name(Health h);

struct DeviceHealth {
  std::string device;
  Health from = Health::kDown;
  Health to = Health::kUp;
  std::string detail;  // last error when degrading
  SystemTime at;
};

using LaneEvent = std::variant<PlateRead, VehiclePresent, BarrierState, RoadsideRecord, TripRecord,
                               TripStarted, PaymentCode, DeviceHealth, NoPlateRead>;

// Where drivers deliver events. post() is called from device threads (any thread,
// concurrently); it must not block for long (the gateway posts to its io_context).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void post(LaneEvent event) = 0;
};

}  // namespace lanegate::lane
