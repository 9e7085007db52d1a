#include "core/clock.h"

namespace lanegate {

std::int64_t Clock::unix_seconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
}

std::int64_t Clock::unix_millis() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now().time_since_epoch()).count();
}

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

FakeClock::FakeClock(SystemTime start)
    : wall_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count()) {}

SystemTime FakeClock::now() const {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(
      std::chrono::nanoseconds(wall_ns_.load())));
}

SteadyTime FakeClock::steady_now() const {
  return SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(
      std::chrono::nanoseconds(steady_ns_.load())));
}

void FakeClock::advance(std::chrono::nanoseconds d) {
  wall_ns_.fetch_add(d.count());
  steady_ns_.fetch_add(d.count());
}

void FakeClock::set_wall(SystemTime t) {
  wall_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

}  // namespace lanegate
