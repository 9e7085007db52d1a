#pragma once
// One taxi-meter serial port: one thread reading JT/T 905 frames, posting TripRecords
// and writing acknowledgements. Private to lane/. See drivers.h for the invariants.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "config/config.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "lane/drivers.h"
#include "lane/events.h"
#include "lane/meter_frame.h"

namespace lanegate::lane {

// Opens and configures a serial port (raw, baud/parity/data/stop bits from config).
// Returns the fd (O_NONBLOCK). kInvalidArgument naming the field ("<section>.<id>.<key>")
// for unsupported values.
[[nodiscard]] Result<int> open_serial_port(const config::SerialPortSection& port,
                                           std::string_view section = "meters");

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

  void run();
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
  int fd_ = -1;
  int wake_[2] = {-1, -1};

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

  std::mutex mu_;
  std::deque<TripKey> pending_acks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace lanegate::lane
