#pragma once
// A small process-wide metrics registry rendered in the Prometheus text format by the
// gateway's /metrics endpoint. Counters and gauges are lock-free once created; creating
// or looking up a series takes a mutex, so hot paths keep the returned reference.
//
// Names follow Prometheus rules: lanegate_<module>_<what>[_total]. Labels are given as
// an ordered list of key/value pairs; the same name with different labels is a
// different series of one family.

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lanegate::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(std::int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

class Registry {
 public:
  // The process-wide registry.
  static Registry& global();

  // Returned references stay valid for the registry's lifetime.
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});

  // Prometheus text exposition format 0.0.4.
  std::string render() const;

  // Value of a series, or -1 when it does not exist (tests, CLI).
  std::int64_t value(std::string_view name, const Labels& labels = {}) const;

 private:
  struct Family {
    std::string help;
    bool is_counter = true;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace lanegate::metrics
