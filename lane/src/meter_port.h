#pragma once
// One taxi-meter serial port: one thread reading JT/T 905 frames, posting TripRecord and
// TripStarted events, writing acknowledgements and the periodic status query. Private to
// lane/. See drivers.h for the invariants.
//
// TRIP RECORD (0x00E8, or 0x00F2 for a stored record re-sent), per (trip number,
// boarding time):
//   unseen --valid record--> POSTED (TripRecord posted once)
//   POSTED --gateway ack()--> ACKED (0x90 written on the record's own CMD)
//   POSTED --same record again, < kRepostAfter--> POSTED (duplicate, no answer)
//   POSTED --same record again, >= kRepostAfter--> POSTED (posted again: never stored)
//   ACKED  --same record again--> ACKED (our ack was lost: 0x90 again)
// A record that fails validation is answered 0xFF at once and never posted.
// The ack names no trip: the meter keeps one record in flight and the ack answers it.
// So a gateway ack is written only while that trip is still the last record the meter
// sent; otherwise the trip is marked ACKED and its next retransmission is answered.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "lane/drivers.h"
#include "lane/events.h"
#include "lane/meter_frame.h"
#include "serial_line.h"

namespace lanegate::lane {

class MeterPort {
 public:
  MeterPort(const config::SerialPortSection& port, std::string lane, EventSink& sink,
            const Clock& clock, DriverOptions options);
  ~MeterPort();

  const std::string& id() const { return port_.id; }
  void start();
  void stop();
  // Queues the acknowledgement of a trip (after the gateway committed it). Any thread.
  void ack(std::uint32_t trip_number, const CivilTime& boarding);

 private:
  using TripKey = std::pair<std::uint32_t, CivilTime>;
  enum class TripState { kPosted, kAcked };

  // Loop thread, port open: the gateway's acks, then the status query when due.
  void before_poll();
  void handle_bytes(std::span<const std::uint8_t> bytes);
  void handle_frame(const MeterFrame& f);
  void handle_trip_record(const MeterFrame& f);
  void handle_trip_started(const MeterFrame& f);
  void handle_status(const MeterFrame& f);
  // Counts a bad body, logs it once per distinct body and, for a command the meter
  // waits on, answers 0xFF.
  void reject_body(const MeterFrame& f, const Error& error, bool answer);
  void write_ack(std::uint16_t cmd, bool ok);
  // Writes a whole frame; false when the port would not take it.
  bool write_frame(const MeterFrame& f);
  void count(std::string_view result);
  void remember(const TripKey& key, TripState st);

  config::SerialPortSection port_;
  std::string lane_;
  EventSink& sink_;
  const Clock& clock_;
  DriverOptions options_;
  MeterStreamDecoder decoder_;
  // Bodies already logged as bad (the meter retransmits them): log once, count always.
  std::set<std::vector<std::uint8_t>> logged_bad_bodies_;
  static constexpr size_t kMaxLoggedBadBodies = 64;

  struct Remembered {
    TripState state = TripState::kPosted;
    SteadyTime posted_at{};
  };
  std::map<TripKey, Remembered> trips_;  // bounded: oldest dropped beyond kMaxRemembered
  // A trip posted but not acknowledged this long ago was not recorded by the gateway (its
  // database refused the write, say): the meter's retransmission is posted again rather
  // than dropped as a duplicate, so the trip is not lost until the next restart. Longer
  // than the taxi lane's rider wait + charge deadline, so a trip still being decided is
  // not posted twice.
  static constexpr std::chrono::seconds kRepostAfter{30};
  std::deque<TripKey> trip_order_;
  static constexpr size_t kMaxRemembered = 4096;
  // The last trip record the meter sent and the CMD it came on (the ack echoes it).
  std::optional<TripKey> in_flight_;
  std::uint16_t in_flight_cmd_ = kCmdTripRecord;
  // The last trip start posted: a repeated 0x00E7 (our ack was lost) is answered again
  // but posted once.
  std::optional<MeterTime> last_trip_start_;
  // When the next 0x0000 status query is due; empty: at once (the port just opened).
  std::optional<SteadyTime> next_status_query_;
  int last_device_state_ = -1;  // -1 before the first status reply

  std::mutex mu_;  // guards pending_acks_
  std::deque<TripKey> pending_acks_;
  SerialLineLoop loop_;  // last: its thread stops before the members its callbacks use go
};

}  // namespace lanegate::lane
