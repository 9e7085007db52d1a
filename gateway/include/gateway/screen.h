#pragma once
// The taxi passenger screen: what the cab's passenger display shows for each lane, its
// JSON feed and its page (docs/SCREEN.md).
//
// The taxi lane writes a ScreenView whenever the trip's payment moves on; the display (a
// kiosk browser on the cab's local network) polls the feed every second and re-renders
// when the lane's version changes. Routes, mounted by add_screen_routes (public, GET,
// no token: the feed holds nothing secret beyond the trip's own payment QR):
//   GET /screen/{lane}           the page (self-contained HTML, zh with an English switch)
//   GET /api/v1/screen/{lane}    the feed, screen_json() below; 404 {"error":{"code":
//                                "unknown_lane",...}} for a lane never shown, 400 for an
//                                id that cannot be a lane id (field "lane")

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/money.h"

namespace lanegate::gateway {

class HttpApi;

struct ScreenView {
  enum class Phase { kIdle, kFare, kQr, kConfirming, kPaid, kDeclined, kMeterPaid, kOffline };
  Phase phase = Phase::kIdle;
  Money fare;             // the trip's fare (every phase but kIdle)
  std::string qr_text;    // kQr: the Native code_url to render as the payment QR
  std::string claim_url;  // kPaid / kMeterPaid / kOffline: the receipt's claim URL (QR), "" if none
  std::string claim_code;  // the human code printed beside it, as on the receipt ("7KQ4-M2XA")
  std::string method;      // kPaid / kMeterPaid: "codepay" | "native" | "cash" | "card" | "other"
  std::string reason;      // kDeclined: "declined" | "expired" | "network" | "reversed"
};

// "idle", "fare", "qr", "confirming", "paid", "declined", "meter_paid", "offline".
std::string_view phase_name(ScreenView::Phase phase);

// Thread-safe: the lane writes on the io thread, the routes read (also the io thread
// today, but nothing here relies on it).
class ScreenBoard {
 public:
  // Replaces what `lane` shows and bumps its version (also when the view is unchanged:
  // a version is "something was written", and the page re-renders at most once a second).
  void set(const std::string& lane, ScreenView view);

  struct Snapshot {
    ScreenView view;
    std::uint64_t version = 0;  // 1 after the first set(); restarts at 1 with the process
  };
  // nullopt: nothing was ever set for `lane` (the feed answers 404).
  std::optional<Snapshot> get(const std::string& lane) const;
  // Every lane ever set, sorted.
  std::vector<std::string> lanes() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Snapshot> lanes_;
};

// The feed body: {lane, version, phase, fare_fen, fare ("8.00"), and by phase:
// qr_svg (kQr), claim_url + claim_qr_svg + claim_code (kPaid / kMeterPaid / kOffline with
// a claim URL), method (kPaid / kMeterPaid), reason (kDeclined)}. A QR is an SVG made with
// libqrencode (as on receipts) with a 4-module quiet zone; a text that cannot be encoded
// leaves its *_svg member out (the page then asks the passenger to pay the driver).
std::string screen_json(const std::string& lane, const ScreenBoard::Snapshot& snapshot);

// The page (gateway/assets/screen.html) and the Content-Security-Policy it is served with
// (its one script and one style allowed by hash; images only from data: URLs).
std::string_view screen_page_html();
const std::string& screen_page_csp();

// Mounts the two routes above. REQUIRES: `board` outlives `api`; before api.start().
void add_screen_routes(HttpApi& api, const ScreenBoard& board);

}  // namespace lanegate::gateway
