#pragma once
// Seam for time (LevelDB Env / Envoy TimeSource): production code asks a Clock, tests
// use FakeClock and never sleep.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace lanegate {

using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time: timestamps on records, tariffs, signatures. May jump.
  virtual SystemTime now() const = 0;
  // Monotonic time: deadlines, timeouts, leases measured within one process.
  virtual SteadyTime steady_now() const = 0;

  std::int64_t unix_seconds() const;
  std::int64_t unix_millis() const;
};

class SystemClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
  static const SystemClock& instance();
};

// Thread-safe fake: starts at the given wall time; advance() moves both clocks,
// set_wall() jumps only the wall clock (as an NTP step would).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(SystemTime start = SystemTime(std::chrono::seconds(1'790'000'000)));
  SystemTime now() const override;
  SteadyTime steady_now() const override;
  void advance(std::chrono::nanoseconds d);
  void set_wall(SystemTime t);

 private:
  std::atomic<std::int64_t> wall_ns_;
  std::atomic<std::int64_t> steady_ns_{1'000'000'000};
};

}  // namespace lanegate
