#pragma once
// One serial port read by one thread, shared by the taxi meter (MeterPort) and the
// rider-code reader (ReaderPort). Private to lane/.
//
// LIFECYCLE (of the loop's thread)
//   closed --open_serial_port() ok--> open --read error / hang-up--> closed (reopen)
//   closed --open fails--> closed, retried after a backoff of 100 ms doubling to 3 s
//   any --stop()--> stopped (the port is closed, the thread joined)
// Invariants:
//  1. Only the loop's thread touches the fd; callbacks run on that thread, so they may
//     write to fd() (the meter's acknowledgements).
//  2. A failure to open is logged once per outage ("<noun> port unavailable, retrying"),
//     the open and the reopen once each ("<noun> port open", "<noun> port closed,
//     reopening").
//  3. on_reset() follows every close: bytes of an unfinished line or frame are void.

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "config/config.h"
#include "core/error.h"

namespace lanegate::lane {

// Opens and configures a serial port (raw, baud/parity/data/stop bits from config).
// Returns the fd (O_NONBLOCK). kInvalidArgument naming the field ("<section>.<id>.<key>")
// for unsupported values.
[[nodiscard]] Result<int> open_serial_port(const config::SerialPortSection& port,
                                           std::string_view section = "meters");

class SerialLineLoop {
 public:
  struct Callbacks {
    std::function<void()> before_poll;                            // each turn, port open
    std::function<void(std::span<const std::uint8_t>)> on_bytes;  // what the port gave
    std::function<void()> on_quiet;                               // nothing for quiet_ms
    std::function<void()> on_reset;                               // the port was closed
  };
  // `section` names the config array in errors ("meters", "readers"); `noun` and `log_key`
  // word the log lines ("meter", "METER").
  SerialLineLoop(config::SerialPortSection port, std::string section, std::string noun,
                 std::string log_key, int quiet_ms, Callbacks callbacks);
  ~SerialLineLoop();
  SerialLineLoop(const SerialLineLoop&) = delete;
  SerialLineLoop& operator=(const SerialLineLoop&) = delete;

  const config::SerialPortSection& port() const { return port_; }
  void start();
  void stop();
  // Makes the loop run before_poll() soon. Any thread.
  void wake();
  // The open port, or -1. REQUIRES: the loop's thread (a callback).
  int fd() const { return fd_; }

 private:
  void run();
  void drain_wake();
  void pause(int ms);  // waits on the wake pipe

  config::SerialPortSection port_;
  std::string section_;
  std::string noun_;
  std::string log_key_;
  int quiet_ms_;
  Callbacks cb_;
  int fd_ = -1;
  int wake_[2] = {-1, -1};
  std::mutex mu_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace lanegate::lane
