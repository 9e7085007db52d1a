#pragma once
// The gateway's own records: parking sessions, money transactions, passages, the plate
// binding cache and manual opens. Every write takes the caller's Transaction so that a
// state change, its ledger record and its outbox item commit together.
//
// The charge's lifecycle, its invariants and the record's fields live in gateway/charge.h;
// the Store only reads and writes rows (it refuses a state move that is not an arrow of
// that lifecycle, and calls the settlement hook, invariant S below).
//
// Invariants:
//  1. A transaction row is never deleted (a trigger aborts DELETE).
//  2. set_state() refuses any move that is not an arrow of the lifecycle with
//     kInvalidArgument naming both states.
//  S. Settlement hook (set_settlement_hook): called inside the caller's transaction, after
//     the row changed, exactly when money settles or is returned:
//       set_state() into SUCCESS (from any other state) or into REFUND;
//       insert_transaction() of a row born settled (CASH or SUCCESS).
//     An error from the hook fails the call, so the caller's transaction rolls back and
//     the state change and what the hook wrote (the invoice claim) commit together or
//     not at all.
//
// Threading: the io thread's Database only (like Database itself).

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "core/money.h"
#include "core/sqlite.h"
#include "gateway/binding.h"
#include "gateway/charge.h"
#include "gateway/decision.h"

namespace lanegate::gateway {

std::span<const std::string_view> gateway_schema_steps();

struct TxFilter {
  std::optional<SystemTime> from, to;  // created_at range [from, to)
  std::string lane;
  std::string plate;
  std::optional<ChargeState> state;
  bool arrears_only = false;
  bool refund_due_only = false;        // charges paid after their passage fell back
  std::int64_t after_id = 0;           // keyset pagination: ids greater than this
  int limit = 100;                     // 1..1000
};

class Store {
 public:
  // REQUIRES: db migrated with gateway_schema_steps(); db outlives the Store.
  [[nodiscard]] static Result<Store> open(Database& db, const Clock& clock);
  Store(Store&&) noexcept;
  ~Store();

  // --- transactions ---
  [[nodiscard]] Result<std::int64_t> insert_transaction(Transaction& txn, const TxRecord& tx);
  [[nodiscard]] Result<std::optional<TxRecord>> find_transaction(std::string_view out_trade_no);
  // Moves the state (invariant 3); sets arrears when an offline-approved charge fails.
  [[nodiscard]] Status set_state(Transaction& txn, std::string_view out_trade_no, ChargeState to,
                                 std::string_view provider_transaction_id = {});
  [[nodiscard]] Status set_decision(Transaction& txn, std::string_view out_trade_no, DecisionKind decision,
                                    std::string_view reason, bool offline);
  // charge.h invariant 5.
  [[nodiscard]] Status set_refund_due(Transaction& txn, std::string_view out_trade_no);
  [[nodiscard]] Result<std::vector<TxRecord>> list_transactions(const TxFilter& filter);
  // The newest charge of a passage (charge.h passage_key: a parking session, a toll
  // vehicle's roadside-unit record) that was recorded but never decided (the gateway
  // stopped between the two): a new read of the same vehicle reuses it, so the same money
  // never gets a second out_trade_no (charge.h invariant 7). A VOID one (refused, or
  // never sent and given up) is not reused: the next read records a new charge.
  [[nodiscard]] Result<std::optional<TxRecord>> find_undecided_charge(std::string_view passage_key);
  // Every transaction of one passage (a taxi trip's orders and its CASH row), oldest first.
  [[nodiscard]] Result<std::vector<TxRecord>> passage_transactions(std::string_view passage_key);
  // Offline-approved money not yet settled, plus unpaid arrears: for one plate, and site-wide.
  [[nodiscard]] Result<Money> plate_outstanding(std::string_view plate);
  [[nodiscard]] Result<Money> site_exposure();
  struct Totals {
    std::int64_t count = 0;
    Money amount;
  };
  // Sums per state (for status, the demo summary and reconciliation).
  [[nodiscard]] Result<std::vector<std::pair<ChargeState, Totals>>> totals_by_state();

  // --- parking sessions ---
  struct Session {
    std::int64_t id = 0;
    std::string lane;          // entry lane
    std::string plate;
    std::string plate_colour;
    SystemTime entry_time;
    std::string out_parking_no;
    std::string parking_id;    // from the provider once the entry is created
  };
  [[nodiscard]] Result<std::int64_t> open_session(Transaction& txn, const Session& s);
  [[nodiscard]] Result<std::optional<Session>> find_open_session(std::string_view plate);
  [[nodiscard]] Status close_session(Transaction& txn, std::int64_t id, SystemTime exit_time,
                                     std::string_view how /* paid | free | superseded | manual */);
  [[nodiscard]] Status set_parking_id(Transaction& txn, std::string_view out_parking_no, std::string_view parking_id);
  [[nodiscard]] Result<std::optional<Session>> find_session(std::int64_t id);

  // --- plate binding cache (gateway/binding.h invariants 2 and 3) ---
  [[nodiscard]] Status put_binding(Transaction& txn, std::string_view plate, BindingState state,
                                   SystemTime refreshed_at);
  [[nodiscard]] Result<std::optional<CachedBinding>> get_binding(std::string_view plate);

  // --- ETC contracts (spec "ETC highway deduction") ---
  struct EtcContractRow {
    std::string contract_id;
    std::string plate;
    std::string bind_state;  // "" = the provider never said
    SystemTime stated_at;    // when the provider said it
    SystemTime heard_at;     // when lanegate last heard from the provider about it
    std::string source;      // "notification" | "query"
    SystemTime seen_at;      // last seen at a toll lane
  };
  // A toll lane saw the contract (in the charge's transaction).
  [[nodiscard]] Status note_contract_seen(Transaction& txn, std::string_view contract_id, std::string_view plate);
  // The provider's statement of a contract's bind_state. An older statement never
  // replaces a newer one (returns false then); either way the contract was heard of now.
  [[nodiscard]] Result<bool> put_contract_state(Transaction& txn, std::string_view contract_id,
                                                std::string_view plate, std::string_view bind_state,
                                                SystemTime stated_at, std::string_view source);
  [[nodiscard]] Result<std::optional<EtcContractRow>> find_contract(std::string_view contract_id);
  // Contracts seen at a lane since `seen_after` that nothing was heard of since
  // `heard_before`, least recently heard first.
  [[nodiscard]] Result<std::vector<std::string>> silent_contracts(SystemTime seen_after, SystemTime heard_before,
                                                                  int limit);

  // --- passages ---
  [[nodiscard]] Result<std::int64_t> insert_passage(Transaction& txn, std::string_view lane, std::string_view plate,
                                                    std::string_view decision, std::string_view reason,
                                                    std::string_view out_trade_no, std::int64_t latency_us);
  [[nodiscard]] Status set_passage_state(std::int64_t id, std::string_view state /* OPENED | PASSED | ALARM */);
  struct PassageCounts {
    std::int64_t free = 0, pass_online = 0, pass_offline = 0, fallback = 0, manual = 0;
  };
  [[nodiscard]] Result<PassageCounts> passage_counts();
  // Decision latencies (µs) of the newest `limit` charged passages, for p50/p99.
  [[nodiscard]] Result<std::vector<std::int64_t>> recent_latencies(std::string_view decision, int limit);

  // Evidence of a passage: the camera event it came from (0: none), its images as JSON
  // ([{kind, sha256, bytes}]), who typed the plate or opened for it ("" = a camera read)
  // and the reason they gave.
  [[nodiscard]] Status set_passage_evidence(Transaction& txn, std::int64_t passage,
                                            std::int64_t camera_event, std::string_view images_json,
                                            std::string_view entered_by,
                                            std::string_view entered_reason);
  struct PassageRow {
    std::int64_t id = 0;
    std::string lane, plate, decision, reason, out_trade_no, state;
    std::int64_t latency_us = 0;
    SystemTime created_at;
    std::int64_t camera_event = 0;
    std::string images = "[]";
    std::string entered_by, entered_reason;
  };
  [[nodiscard]] Result<std::optional<PassageRow>> find_passage(std::int64_t id);
  // Newest first; `lane` empty = every lane; at most `limit`.
  [[nodiscard]] Result<std::vector<PassageRow>> recent_passages(std::string_view lane, int limit);

  // --- camera events (gateway/camera_receiver.h) ---
  struct CameraEvent {
    std::int64_t id = 0;
    std::string device, event_id, vendor, lane;
    SystemTime received_at;
    std::optional<std::int64_t> capture_ms;
    std::string plate, plate_raw, colour;
    int confidence = 0;
    bool offline = false;
    std::string outcome;
    std::string images = "[]";
  };
  // Inserts the event; nullopt when (device, event_id) is already held (a duplicate).
  [[nodiscard]] Result<std::optional<std::int64_t>> insert_camera_event(Transaction& txn,
                                                                        const CameraEvent& e);
  [[nodiscard]] Result<std::optional<CameraEvent>> find_camera_event(std::int64_t id);

  // --- manual opens ---
  [[nodiscard]] Result<std::int64_t> record_manual_open(Transaction& txn, std::string_view lane,
                                                        std::string_view actor, std::string_view reason);

  // --- settlement hook (invariant 5) ---
  // `tx` is the row as it is after the change (state = the new state); `from` is the
  // state before it (equal to tx.state for an insert).
  // Taxi trips (site_taxi.cc). state: OPEN | PAID | METER.
  struct TaxiTrip {
    std::string trip_key;  // taxi_trip_key(): the trip's identity, prefix of its orders' numbers
    std::string lane;
    std::string meter;
    std::uint32_t trip_number = 0;
    std::string boarding;  // "YYYY-MM-DDThh:mm" as the meter stated it
    Money fare;
    int payment_type = 0;  // the meter's payment type byte
    std::string plate;
    std::string detail = "{}";
    std::string state = "OPEN";
    std::string settled_by;  // PAID: the payment's out_trade_no; METER: the CASH row's
    int attempts = 0;        // electronic payment orders made for it
    SystemTime created_at;
    SystemTime settled_at;
  };
  [[nodiscard]] Status insert_trip(Transaction& txn, const TaxiTrip& trip);
  [[nodiscard]] Result<std::optional<TaxiTrip>> find_trip(std::string_view trip_key);
  [[nodiscard]] Result<std::vector<TaxiTrip>> open_trips();
  // Numbers the trip's next payment order (1, 2, ...). kRejected when not OPEN.
  [[nodiscard]] Result<int> next_trip_attempt(Transaction& txn, std::string_view trip_key);
  // OPEN -> state; false when the trip was no longer OPEN (nothing written).
  [[nodiscard]] Result<bool> settle_trip(Transaction& txn, std::string_view trip_key, std::string_view state,
                                         std::string_view settled_by);

  using SettlementHook = std::function<Status(Transaction& txn, const TxRecord& tx, ChargeState from)>;
  // Unset (default): no hook. The daemon sets it when invoicing is enabled.
  void set_settlement_hook(SettlementHook hook) { settlement_hook_ = std::move(hook); }
  // True for the moves that call the hook.
  static bool settles(ChargeState from, ChargeState to, bool inserted);

  Database& db() { return *db_; }

 private:
  Store(Database& db, const Clock& clock) : db_(&db), clock_(&clock) {}
  Database* db_;
  const Clock* clock_;
  SettlementHook settlement_hook_;
};

}  // namespace lanegate::gateway
