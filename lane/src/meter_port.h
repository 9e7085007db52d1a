#pragma once
// One taxi-meter serial port: one thread reading JT/T 905 frames, posting TripRecords
// and writing acknowledgements. Private to lane/. See drivers.h for the invariants.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

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

  void write_pending_acks();
  void handle_bytes(std::span<const std::uint8_t> bytes);
  void handle_frame(const MeterFrame& f);
  void write_ack(std::uint32_t trip_number);
  void count(std::string_view result);
  void remember(const TripKey& key, TripState st);

  config::SerialPortSection port_;
  std::string lane_;
  EventSink& sink_;
  const Clock& clock_;
  DriverOptions options_;
  MeterStreamDecoder decoder_;
  std::vector<std::uint8_t> last_bad_body_;

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

  std::mutex mu_;  // guards pending_acks_
  std::deque<TripKey> pending_acks_;
  SerialLineLoop loop_;  // last: its thread stops before the members its callbacks use go
};

}  // namespace lanegate::lane
