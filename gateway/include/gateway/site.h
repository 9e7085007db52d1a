#pragma once
// The lanes of one site, driven by device events on the io thread: parking entry and
// exit (site_parking.cc), toll exit (site_toll.cc, with its pairing of plate reads and
// roadside-unit records) and taxi (site_taxi.cc). Every mode charges and decides through
// one step, Impl::charge() -> Impl::decide_and_commit() (site.cc). Each lane is a small
// explicit state machine (LanePhase in site_impl.h):
//
//   PASSAGE:  IDLE --PlateRead (busy: the lane decides)--> charge() --decide_and_commit()-->
//             DECIDED(free | pass_online | pass_offline | fallback) --barrier confirmed-->
//             OPENED --loop clear or barrier closed--> PASSED --> IDLE
//             (fallback returns to IDLE at once: the display tells the driver what to do)
//
//   TAXI (no barrier: the decision is how the trip's fare is paid; site_taxi.cc has the
//   whole diagram): a meter trip record is stored, then acknowledged; online, the passenger
//   pays by payment code (codepay) or a Native QR on the passenger screen
//   (gateway/screen.h); otherwise, or when nothing is paid in time, the fare is recorded as
//   paid at the meter (CASH). A trip is paid at most once.
//
// Invariants:
//  1. The decision, the transaction, its ledger record and its outbox item are committed
//     in one SQLite transaction before the barrier command is written (commit before act).
//     When the online path is used, the transaction and its charge item are committed
//     before the charge request can leave (the uplink only sends what the outbox holds).
//  2. One out_trade_no per money movement, generated once, before anything is sent.
//  3. When the database cannot commit, no barrier opens on the gateway's own decision:
//     the site switches to attendant mode (displays say so, a metric and a log line),
//     and leaves it on the first commit that succeeds again.
//  4. A lane handles one vehicle at a time; a plate read that arrives while a lane is
//     deciding waits for that decision (it is not dropped). A taxi lane has at most one
//     trip open for payment; the meter's next trip settles it at the meter.
//  5. A trip record is acknowledged to the meter only after it is stored; a payment code
//     pays one order of the trip open when it was scanned, never a later trip, and never a
//     trip the meter says was paid by card.
//
// Threading: every member runs on the io thread.

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "gateway/charge.h"
#include "gateway/decision.h"
#include "gateway/store.h"
#include "lane/events.h"
#include "offline_queue/queue.h"
#include "gateway/provider.h"

namespace lanegate::gateway {

// What the site does to the lane hardware (LaneDrivers in production).
class LaneActuator {
 public:
  virtual ~LaneActuator() = default;
  [[nodiscard]] virtual Result<std::uint64_t> open_barrier(std::string_view device) = 0;
  [[nodiscard]] virtual Status show_text(std::string_view device, std::string_view text) = 0;
  [[nodiscard]] virtual Status ack_trip(std::string_view meter, std::uint32_t trip_number,
                                        const lane::CivilTime& boarding) = 0;
};

// The uplink as the hot path sees it.
class ChargeGate {
 public:
  virtual ~ChargeGate() = default;
  // Whether the last upstream exchange succeeded.
  virtual bool link_up() const = 0;
  // Sends what the outbox holds now (the charge just committed).
  virtual void kick() = 0;
  // Calls `done` once, on the io thread, with the charge's outcome or kNoAnswer when
  // `deadline` passes first. While a lane waits, the uplink may send the charge although it
  // is not decided yet (charge.h invariant 7): call this before kick().
  virtual void await_charge(const std::string& out_trade_no, std::chrono::milliseconds deadline,
                            std::function<void(OnlineOutcome)> done) = 0;

  // In-cab payments (site_taxi.cc) call the provider directly: a payment code is valid for
  // about a minute and never queued. `call` runs on a provider worker thread and returns
  // the continuation to run on the io thread. false: no provider here (nothing will run).
  using ProviderCall = std::function<std::function<void()>(PaymentProvider&)>;
  virtual bool call_provider(ProviderCall call) {
    (void)call;
    return false;
  }
  // What such a call learned about the link (an answer, or none).
  virtual void note_link(bool up, const std::string& why) {
    (void)up;
    (void)why;
  }
};

class ScreenBoard;
struct ScreenView;

// The receipt's claim for a settled transaction (invoice claims), for the passenger screen.
struct ClaimRef {
  std::string url;
  std::string code;  // human code, formatted
};
using ClaimLookup = std::function<std::optional<ClaimRef>(std::string_view out_trade_no)>;

class Site {
 public:
  // REQUIRES: all references outlive the Site.
  Site(boost::asio::io_context& io, const config::Config& config, Store& store,
       queue::Outbox& outbox, const Clock& clock, LaneActuator& actuator, ChargeGate& gate);
  ~Site();

  void on_event(const lane::LaneEvent& event);

  // An operator opens a barrier by hand; recorded with who and why before the command.
  [[nodiscard]] Result<std::int64_t> manual_open(std::string_view lane_id, std::string_view actor,
                                                 std::string_view reason);

  // An attendant types the plate of a vehicle the cameras could not read: it is charged
  // and decided like a camera read, recorded with who and why (and the waiting vehicle's
  // camera evidence). kInvalidArgument (field "plate") when the plate rules refuse it.
  [[nodiscard]] Status enter_plate(std::string_view lane_id, std::string_view plate,
                                   std::optional<lane::PlateColour> colour, std::string_view actor,
                                   std::string_view reason);
  // Push cameras' health hears of vehicles the loop saw with (missed = true) or without a
  // read (gateway/camera_receiver.h).
  void set_camera_feedback(std::function<void(std::string_view device, bool missed)> feedback);

  bool attendant_mode() const;
  // JSON array describing every lane (mode, state, last plate masked, last decision).
  std::string lanes_json() const;

  // Replaces the configuration after a reload. REQUIRES: same lanes (ids and modes).
  void set_config(const config::Config& config);

  // Taxi lanes show their trips on `board` (may be null), with the receipt's claim from
  // `claims` (may be empty).
  void set_screen(ScreenBoard* board, ClaimLookup claims);
  // After a restart: trips left open are recorded as paid at the meter (the passenger is
  // gone); their payment orders are closed or reversed by their `pay` items.
  void recover();
  // The `pay` outbox topic (in-cab payment follow-ups): routed here by the uplink.
  void pay_item(const queue::Item& item, std::function<void(queue::Outcome)> done);
  // A provider statement about an in-cab payment (query or notification), applied in `txn`:
  // the same-money check, the charge's lifecycle, the trip. The screen follows after commit.
  [[nodiscard]] Status apply_payment(Transaction& txn, const Payment& payment, AnswerSource source);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "<gateway id, up to 12 of [0-9A-Za-z]>_<16 random [0-9A-Za-z]>": at most 29 characters
// of the provider's out_trade_no alphabet.
[[nodiscard]] Result<std::string> new_out_trade_no(std::string_view gateway_id, char kind);

// A taxi trip's key: "T" + 27 hex digits of SHA-256 over the gateway id, the meter, the
// boarding time and the trip number. Deterministic (a retransmitted trip maps to the same
// key) and unique per merchant across a fleet. Its orders' out_trade_no (charge.h invariant
// 1) are the key + "P" + 2 digits (a payment code), + "Q" + 2 digits (a Native QR) and
// + "C" (paid at the meter): at most 31 characters.
std::string taxi_trip_key(std::string_view gateway_id, std::string_view meter,
                          std::uint32_t trip_number, std::string_view boarding);

// Outbox topic of the in-cab payment follow-ups (query, reverse, close).
inline constexpr std::string_view kTopicPay = "pay";

}  // namespace lanegate::gateway
