#pragma once
// The taxi passenger screen's state per lane (written by the taxi lane, read by the API).
// Placeholder shape until the screen page lands; thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/money.h"

namespace lanegate::gateway {

struct ScreenView {
  enum class Phase { kIdle, kFare, kQr, kConfirming, kPaid, kDeclined, kMeterPaid, kOffline };
  Phase phase = Phase::kIdle;
  Money fare;
  std::string qr_text;
  std::string claim_url;
  std::string claim_code;
  std::string method;
  std::string reason;
};

class ScreenBoard {
 public:
  struct Snapshot {
    ScreenView view;
    std::uint64_t version = 0;
  };
  void set(const std::string& lane, ScreenView view) {
    std::lock_guard lock(mu_);
    auto& s = lanes_[lane];
    s.view = std::move(view);
    ++s.version;
  }
  std::optional<Snapshot> get(const std::string& lane) const {
    std::lock_guard lock(mu_);
    auto it = lanes_.find(lane);
    if (it == lanes_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> lanes() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [k, v] : lanes_) out.push_back(k);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Snapshot> lanes_;
};

}  // namespace lanegate::gateway
