#pragma once
// Figures shared by the benchmarks in tests/bench: percentiles of latency samples, the
// aligned "p50 / p99" line, and the LANEGATE_BENCH_* environment knobs.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace lanegate::bench {

// The integer in environment variable `name`, or `fallback` when unset or empty.
inline long env_int(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtol(v, nullptr, 10) : fallback;
}

inline double ms_since(std::chrono::steady_clock::time_point t0,
                       std::chrono::steady_clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// The `p` quantile (0..1) of `v` by the nearest lower rank; 0 for no samples.
inline double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// "  WHAT  p50 X ms   p99 Y ms   (n=N)", WHAT padded to `width`.
inline void print_latency(const char* what, const std::vector<double>& v, int width = 52) {
  std::printf("  %-*s p50 %7.2f ms   p99 %7.2f ms   (n=%zu)\n", width, what, pct(v, 0.5),
              pct(v, 0.99), v.size());
}

}  // namespace lanegate::bench
