#pragma once
// The gateway's own records: parking sessions, money transactions, passages, the plate
// binding cache and manual opens. Every write takes the caller's Transaction so that a
// state change, its ledger record and its outbox item commit together.
//
// CHARGE LIFECYCLE (transactions.state; the function that performs each step)
//
//   RECORDED --mark_submitting()--> SUBMITTING --apply_provider_state()--> ACCEPTED
//                                      |                                     |
//                                      +--mark_unknown()--> UNKNOWN          v
//                                                 |              SUCCESS | PAY_FAIL
//                                                 +--(query)----> (same as above)
//   SUCCESS --refund--> REFUND
//   RECORDED | SUBMITTING | UNKNOWN --void()--> VOID: the passage fell back (the driver
//     pays another way) and the provider confirmed it never received the charge (or it
//     was never sent), so no money moved and none ever will under this out_trade_no.
//     Should the provider still report it (a request delayed beyond every timeout), VOID
//     moves on to ACCEPTED | SUCCESS | PAY_FAIL: the record follows the money, and
//     lanegate_charges_after_fallback_total flags the double payment for a refund.
//   CASH: a taxi trip paid outside lanegate (cash, card, QR); terminal at creation.
//
// Invariants:
//  1. One out_trade_no per money movement, fixed at insert_transaction() before the
//     first send; the table's UNIQUE constraint enforces it.
//  2. A transaction row is never deleted (a trigger aborts DELETE).
//  3. State moves only along the arrows above: set_state() refuses any other move with
//     kInvalidArgument naming both states, so a late or duplicated reply cannot move a
//     settled transaction backwards.
//  4. `arrears` is set exactly when a transaction whose passage was approved offline
//     ends in PAY_FAIL; it stays visible until an operator clears it.
//  5. Settlement hook (set_settlement_hook): called inside the caller's transaction, after
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

namespace lanegate::gateway {

std::span<const std::string_view> gateway_schema_steps();

enum class ChargeState { kRecorded, kSubmitting, kAccepted, kSuccess, kPayFail, kUnknown, kRefund, kCash, kVoid };
std::string_view to_string(ChargeState s);
[[nodiscard]] Result<ChargeState> parse_charge_state(std::string_view s);
// True when the move is one of the lifecycle's arrows (or a no-op).
bool allowed_transition(ChargeState from, ChargeState to);
// States in which the money is not yet settled one way or the other.
bool is_open(ChargeState s);

enum class TxKind { kParking, kToll, kTaxi };
std::string_view to_string(TxKind k);

struct TxRecord {
  std::int64_t id = 0;
  std::string out_trade_no;
  TxKind kind = TxKind::kParking;
  std::string lane;
  std::string plate;
  std::string plate_colour;      // provider colour name
  Money amount;
  ChargeState state = ChargeState::kRecorded;
  std::string decision;          // free | pass_online | pass_offline | fallback | "" (undecided)
  std::string decision_reason;
  bool offline = false;          // approved by the offline rule
  bool arrears = false;
  std::optional<std::int64_t> session_id;
  std::string provider_transaction_id;
  std::string contract_id;       // toll: ETC contract / OBU id
  std::string payment_method;    // "provider", "cash", "card", "qr"
  std::optional<std::uint32_t> trip_number;
  std::string detail = "{}";     // JSON: tariff breakdown, entry data
  SystemTime created_at;
  SystemTime updated_at;
};

struct TxFilter {
  std::optional<SystemTime> from, to;  // created_at range [from, to)
  std::string lane;
  std::string plate;
  std::optional<ChargeState> state;
  bool arrears_only = false;
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
  [[nodiscard]] Status set_decision(Transaction& txn, std::string_view out_trade_no, std::string_view decision,
                                    std::string_view reason, bool offline);
  [[nodiscard]] Result<std::vector<TxRecord>> list_transactions(const TxFilter& filter);
  // The newest charge of a parking session that was recorded but never decided (the
  // gateway stopped between the two): a new read of the same vehicle reuses it, so the
  // same money never gets a second out_trade_no. A VOID one (refused by the provider before
  // any decision) is not reused: the next read records a new charge.
  [[nodiscard]] Result<std::optional<TxRecord>> find_undecided_charge(std::int64_t session_id);
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

  // --- plate binding cache ---
  struct Binding {
    std::string state;         // NORMAL | PAUSE | OUT_SERVICE | BLOCKED
    SystemTime refreshed_at;
  };
  [[nodiscard]] Status put_binding(Transaction& txn, std::string_view plate, std::string_view state,
                                   SystemTime refreshed_at);
  [[nodiscard]] Result<std::optional<Binding>> get_binding(std::string_view plate);

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

  // --- manual opens ---
  [[nodiscard]] Result<std::int64_t> record_manual_open(Transaction& txn, std::string_view lane,
                                                        std::string_view actor, std::string_view reason);

  // --- settlement hook (invariant 5) ---
  // `tx` is the row as it is after the change (state = the new state); `from` is the
  // state before it (equal to tx.state for an insert).
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
