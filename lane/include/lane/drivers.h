#pragma once
// The lane device drivers of one gateway: one thread per Modbus bus (TCP or RTU; an
// RS-485 bus carries several devices and strictly one request at a time), one thread
// per taxi-meter serial port and one per payment-code reader port ([[reader]]). Drivers turn device
// registers and frames into typed LaneEvents (events.h) delivered to the EventSink; commands
// (barrier open, display text) are queued from any thread and executed on the owning bus thread.
//
// Lifecycle (LaneDrivers):
//   kCreated --start()--> kRunning --stop()--> kStopped        (stop() is idempotent)
// Invariants:
//  1. Each bus and port has exactly one thread doing its I/O while kRunning; no other
//     thread touches a libmodbus context or a serial fd.
//  2. A device that stops answering only costs its own timeouts: it is probed with
//     backoff (at most bus.reconnect_max_ms apart) and the other devices keep their poll
//     interval; it returns to `up` by itself on the first good answer.
//  3. Every health transition (up/degraded/down) is logged once, counted in
//     lanegate_device_transitions_total{device,to}, reflected in
//     lanegate_device_health{device} (2 up, 1 degraded, 0 down) and posted as DeviceHealth.
//  4. A lost link (TCP reset, serial port gone) is reconnected by our own loop with
//     exponential backoff capped at bus.reconnect_max_ms; libmodbus recovery is never on.
//  5. Events are posted only after the bytes were fully validated; rejected plate reads
//     and bad meter frames are counted by reason, never posted.
//  6. A valid trip record (0x00E8, or 0x00F2 for a stored one) is posted once per (trip
//     number, boarding time) and acknowledged 0x90 on its own CMD only after ack_trip()
//     (or on receipt with ack_trips_on_receive); a record that fails validation is
//     answered 0xFF. A trip start (0x00E7) is posted as TripStarted and acknowledged at
//     once. Every meter frame is counted in lanegate_meter_frames_total{meter,result}.
//  7. A reader line is posted as PaymentCode only when it passes the payment-code rule
//     (lane/payment_code.h); rejected lines are counted in
//     lanegate_payment_codes_total{reader,result} by reason and the code is never
//     logged, not even in part (it pays). The same code again within 2 s is one read.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "lane/events.h"

namespace lanegate::lane {

class ModbusBus;
class MeterPort;
class ReaderPort;

struct DriverOptions {
  int utc_offset_minutes = 480;  // meter civil times -> unix time (gateway.utc_offset_minutes)
  // Quiet time after which a partial meter frame is dropped as truncated.
  int meter_partial_frame_ms = 300;
  // false (production): a trip is acknowledged only when the gateway calls ack_trip()
  // after committing it, so a crash before the commit makes the meter retransmit.
  // true: acknowledge on receipt (tests, and `lanegate-sim`-style tooling).
  bool ack_trips_on_receive = false;
  // The meter's 0x0000 status query goes out when its port opens and then this often.
  int meter_status_interval_s = 600;
};

class LaneDrivers {
 public:
  // Validates the device sections (register overrides, encodings, bus references) and
  // builds the drivers; no I/O yet. `sink` and `clock` must outlive this object.
  [[nodiscard]] static Result<std::unique_ptr<LaneDrivers>> create(const config::Config& cfg,
                                                                   EventSink& sink,
                                                                   const Clock& clock,
                                                                   DriverOptions options = {});
  ~LaneDrivers();  // stop()
  LaneDrivers(const LaneDrivers&) = delete;
  LaneDrivers& operator=(const LaneDrivers&) = delete;

  // REQUIRES: kCreated. Starts one thread per bus and per meter port. Returns at once;
  // connection failures are handled by the reconnect loops, not reported here.
  [[nodiscard]] Status start();
  // Joins every thread. Callable from any thread except a driver thread.
  void stop();

  // Queues a barrier open on the barrier's bus thread. The outcome arrives as a
  // BarrierState with command_id == the returned id and command_result confirmed
  // (fully-open input seen) or alarm (not confirmed after open_retries re-writes).
  // Any thread. kNotFound when `device` is not a barrier.
  [[nodiscard]] Result<std::uint64_t> open_barrier(std::string_view device);
  // Queues display text (UTF-8, written as GBK). Any thread. kNotFound when `device` is
  // not a display, kInvalidArgument when the text is not GBK-representable or too long.
  [[nodiscard]] Status show_text(std::string_view device, std::string_view utf8_text);

  // Acknowledges a trip to its meter once the gateway has durably recorded it.
  // Any thread. kNotFound for an unknown meter id.
  [[nodiscard]] Status ack_trip(std::string_view meter, std::uint32_t trip_number,
                                const CivilTime& boarding);

  // The site saw a vehicle on `camera`'s lane with no read from it (missed), or a read
  // arrived: kMissedVehiclesDegraded misses in a row make the camera degraded (health.h).
  // Any thread; an unknown device is ignored.
  void vehicle_seen(std::string_view camera, bool missed);

  // Last known health of a Modbus device (kDown before its first answer). Any thread.
  [[nodiscard]] Result<Health> health(std::string_view device) const;

 private:
  LaneDrivers() = default;
  enum class State { kCreated, kRunning, kStopped };
  State state_ = State::kCreated;
  std::vector<std::unique_ptr<ModbusBus>> buses_;
  std::vector<std::unique_ptr<MeterPort>> meters_;
  std::vector<std::unique_ptr<ReaderPort>> readers_;
};

}  // namespace lanegate::lane
