#pragma once
// Helpers for the lane integration tests: an EventSink that records events and lets a
// test wait (bounded) for one, a per-test temp dir, and config builders.

#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "lane/events.h"

namespace lanegate::lane::testing {

using namespace std::chrono_literals;

class RecordingSink final : public EventSink {
 public:
  void post(LaneEvent event) override {
    {
      std::lock_guard lock(mu_);
      events_.push_back(std::move(event));
    }
    cv_.notify_all();
  }

  // First event of type T (from index `from` on) matching `pred`, waiting up to `timeout`.
  template <typename T>
  std::optional<T> wait_for(std::function<bool(const T&)> pred,
                            std::chrono::milliseconds timeout = 5s, size_t from = 0) {
    std::unique_lock lock(mu_);
    std::optional<T> found;
    cv_.wait_for(lock, timeout, [&] {
      for (size_t i = from; i < events_.size(); ++i) {
        if (const T* e = std::get_if<T>(&events_[i]); e != nullptr && pred(*e)) {
          found = *e;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::optional<DeviceHealth> wait_health(const std::string& device, Health to,
                                          std::chrono::milliseconds timeout = 5s, size_t from = 0) {
    return wait_for<DeviceHealth>(
        [&](const DeviceHealth& h) { return h.device == device && h.to == to; }, timeout, from);
  }

  template <typename T>
  std::vector<T> all(std::function<bool(const T&)> pred = [](const T&) { return true; }) {
    std::lock_guard lock(mu_);
    std::vector<T> out;
    for (const auto& e : events_) {
      if (const T* t = std::get_if<T>(&e); t != nullptr && pred(*t)) {
        out.push_back(*t);
      }
    }
    return out;
  }

  size_t size() {
    std::lock_guard lock(mu_);
    return events_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<LaneEvent> events_;
};

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-lane-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline config::BusSection tcp_bus(std::string id, int port = 0) {
  config::BusSection b;
  b.id = std::move(id);
  b.transport = config::Transport::kTcp;
  b.host = "127.0.0.1";
  b.port = port;
  b.response_timeout_ms = 150;
  b.byte_timeout_ms = 100;
  b.reconnect_max_ms = 400;
  return b;
}

inline config::BusSection rtu_bus(std::string id, std::string path, int baud = 115200) {
  config::BusSection b;
  b.id = std::move(id);
  b.transport = config::Transport::kRtu;
  b.serial_device = std::move(path);
  b.baud = baud;
  b.parity = 'N';
  b.response_timeout_ms = 150;
  b.byte_timeout_ms = 50;
  b.reconnect_max_ms = 400;
  return b;
}

inline config::DeviceSection device(std::string id, config::DeviceKind kind, std::string bus,
                                    int unit) {
  config::DeviceSection d;
  d.id = std::move(id);
  d.kind = kind;
  d.bus = std::move(bus);
  d.unit_id = unit;
  d.poll_interval_ms = 20;
  d.min_confidence = 800;
  d.repeat_window_ms = 2000;
  d.open_confirm_timeout_ms = 1000;
  d.open_retries = 1;
  d.down_after_failures = 2;
  return d;
}

// Polls `pred` until true or `timeout` passes (every wait in these tests is bounded).
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

}  // namespace lanegate::lane::testing
