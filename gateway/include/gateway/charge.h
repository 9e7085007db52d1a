#pragma once
// The charge's one home: its typed form (ChargeOrder, with the one encoding the outbox
// carries), its record (TxRecord), its lifecycle with the function that performs each
// arrow, the check that a provider answer is about the same money, and how answers,
// arrears and refund flags are applied (ChargeBook).
//
// CHARGE LIFECYCLE (transactions.state)
//
//   ChargeBook::record() ----------------------------> RECORDED
//   RECORDED   --Uplink: move(kSubmitting) before the request leaves--> SUBMITTING
//   SUBMITTING --apply_answer() (reply | query | notification)--> ACCEPTED | SUCCESS | PAY_FAIL
//   SUBMITTING --move(kUnknown) on a timeout / lost reply--> UNKNOWN
//   UNKNOWN    --apply_answer() of the query that must come first--> as SUBMITTING
//   ACCEPTED   --apply_answer()--> SUCCESS | PAY_FAIL
//   PAY_FAIL   --apply_answer() (the provider advanced the money, user repaid)--> SUCCESS
//   SUCCESS    --apply_answer() (REFUND)--> REFUND
//   RECORDED | SUBMITTING | UNKNOWN --move(kVoid)--> VOID: no passage was decided on the
//     charge, or its passage fell back, and the provider confirmed it never received it
//     (or it never left). VOID --apply_answer()--> ACCEPTED | SUCCESS | PAY_FAIL when the
//     provider reports it after all: the record follows the money.
//   CASH: a taxi trip paid outside lanegate; terminal at record().
//
// Invariants:
//  1. One out_trade_no per money movement, fixed in the ChargeOrder before the first send;
//     the transactions table's UNIQUE constraint enforces it.
//  2. The ChargeOrder is the one source of what is charged: record() derives the row and
//     the outbox payload from the same order, and the uplink refuses (parks) a payload
//     whose out_trade_no, amount or account differ from the row.
//  3. State moves only along the arrows above (allowed_transition); a late or duplicated
//     answer never moves a settled charge backwards.
//  4. Every provider answer -- a reply, a query or a notification -- passes same_money()
//     before it may move a charge: out_trade_no, amount and (when the answer names it) the
//     merchant id equal ours. A mismatch never settles; it is counted
//     (lanegate_provider_money_mismatch_total), logged and alarmed.
//  5. A charge whose passage fell back, or that was VOID, and that the provider reports as
//     ACCEPTED or SUCCESS is flagged refund_due on every path (ledger correction record,
//     lanegate_charges_after_fallback_total, the API's ?refund_due=1, `lanegate tx list
//     --refund-due`): the driver paid another way too.
//  6. `arrears` is set exactly when a charge whose passage passed offline ends PAY_FAIL; a
//     later SUCCESS clears it, with an arrears_cleared ledger record.
//  7. A charge with no decision is sent only while its lane waits for the answer (the
//     uplink knows). Without one (the gateway stopped between recording and deciding, or
//     the decision did not commit) it is never sent: VOID at once if it never left, only
//     queried if it may have. A new read of the same passage (passage_key) reuses an
//     undecided charge that is not VOID, so it never gets a second out_trade_no.
//  8. An answer the lifecycle cannot take yet (a REFUND before the charge is known to have
//     succeeded) is not applied and not lost: kNotYet, and the caller makes the provider
//     say it again (a notification is answered with a retryable error).
//
// Threading: ChargeBook is used on the thread that owns the Store's Database (io thread).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/error.h"
#include "core/money.h"
#include "core/sqlite.h"
#include "gateway/decision.h"
#include "gateway/provider.h"

namespace lanegate::queue {
class Outbox;
}

namespace lanegate::gateway {

class Store;

enum class ChargeState {
  kRecorded,
  kSubmitting,
  kAccepted,
  kSuccess,
  kPayFail,
  kUnknown,
  kRefund,
  kCash,
  kVoid
};
std::string_view to_string(ChargeState s);
[[nodiscard]] Result<ChargeState> parse_charge_state(std::string_view s);
// True when the move is one of the lifecycle's arrows (or a no-op).
bool allowed_transition(ChargeState from, ChargeState to);
// States in which the money is not yet settled one way or the other.
bool is_open(ChargeState s);
// The provider's vocabulary: ACCEPTED (or ACCEPT), SUCCESS, PAY_FAIL, REFUND.
ChargeState charge_state_of(TradeState s);

enum class TxKind { kParking, kToll, kTaxi };
std::string_view to_string(TxKind k);
[[nodiscard]] Result<TxKind> parse_tx_kind(std::string_view s);

// The decision as recorded: "" while undecided, else to_string(DecisionKind).
std::string_view decision_text(const std::optional<DecisionKind>& d);
[[nodiscard]] Result<std::optional<DecisionKind>> parse_decision(std::string_view text);

struct TxRecord {
  std::int64_t id = 0;
  std::string out_trade_no;
  TxKind kind = TxKind::kParking;
  std::string lane;
  std::string plate;
  std::string plate_colour;  // provider colour name
  Money amount;
  ChargeState state = ChargeState::kRecorded;
  std::optional<DecisionKind> decision;  // nullopt: not decided yet
  std::string decision_reason;
  bool offline = false;  // approved by the offline rule
  bool arrears = false;
  bool refund_due = false;  // invariant 5
  std::optional<std::int64_t> session_id;
  std::string passage_key;  // invariant 7: the passage this charge is for
  std::string provider_transaction_id;
  std::string contract_id;     // toll: ETC contract; taxi: the rider's account
  std::string payment_method;  // "provider", "rider", "cash", "card", "qr"
  std::optional<std::uint32_t> trip_number;
  std::string detail = "{}";  // JSON: tariff breakdown, entry data
  SystemTime created_at;
  SystemTime updated_at;

  bool fell_back() const { return decision == DecisionKind::kFallback; }
};

// What one charge asks of the provider, built once by the lane (invariant 2).
struct ChargeOrder {
  std::string out_trade_no;
  TxKind kind = TxKind::kParking;
  Money amount;
  std::string lane;
  std::string plate;
  std::string plate_colour;
  std::string contract_id;  // toll: ETC contract; taxi: the rider's account
  std::string description;
  std::string device_id;
  SystemTime start_time{};  // entry (parking, toll) or boarding (taxi)
  SystemTime end_time{};    // exit or alighting
  std::optional<std::int64_t> session_id;
  std::string out_parking_no;
  std::string entrance;                      // toll: the entry station's name
  std::string exit;                          // toll: the exit station's name
  int vehicle_class = 0;                     // toll: the roadside unit's class
  std::optional<std::uint32_t> trip_number;  // taxi
  std::int64_t distance_m = 0;               // taxi
  std::string passage_key;  // "session:<id>", "toll:<lane>:<contract>:<entry ms>", "" for taxi
};

// The outbox payload: versioned JSON. decode_charge_order() also reads the payloads of
// the previous release (no "v"), so charges queued before an upgrade still go out.
std::string encode_charge_order(const ChargeOrder& order);
[[nodiscard]] Result<ChargeOrder> decode_charge_order(std::string_view payload);

// The provider request for an order. parking_id: from the parking entry's reply.
ChargeRequest provider_request(const ChargeOrder& order, std::string_view parking_id,
                               std::string_view parking_name);

struct MerchantIds {
  std::string mchid;      // the merchant that calls: direct mchid, partner sp_mchid
  std::string sub_mchid;  // partner: the special merchant served; empty direct
};

// Invariant 4. The error names the field that differs and both values.
[[nodiscard]] Status same_money(const TxRecord& ours, const ProviderTransaction& answer,
                                const MerchantIds& ids);

enum class AnswerSource { kReply, kQuery, kNotification };
std::string_view to_string(AnswerSource s);

enum class Applied {
  kMoved,      // the charge moved to the answer's state
  kUnchanged,  // already in that state, or a late ACCEPTED after the outcome
  kNotYet,     // invariant 8
  kConflict,   // contradicts the recorded outcome: not applied, counted and logged
  kMismatch,   // invariant 4 failed: not applied, counted, logged and alarmed
};

class ChargeBook {
 public:
  // REQUIRES: store and outbox on the same Database; all outlive the book.
  ChargeBook(Store& store, queue::Outbox& outbox, const Clock& clock, MerchantIds ids);

  // Inserts the row and its `charge` outbox item (invariant 2), in txn. A parking charge's
  // ordering key is its session (the entry goes first), any other its out_trade_no.
  [[nodiscard]] Status record(Transaction& txn, const ChargeOrder& order,
                              std::optional<DecisionKind> decision, std::string_view reason,
                              bool offline, std::string_view payment_method, std::string detail);

  // Moves `tx` to `to` along an arrow, with its ledger record, arrears (invariant 6) and
  // refund flag (invariant 5). false: not an arrow (nothing written).
  [[nodiscard]] Result<bool> move(Transaction& txn, const TxRecord& tx, ChargeState to,
                                  std::string_view provider_txn_id, std::string_view actor,
                                  std::string detail_json = "{}");
  // The same in a transaction of its own (re-reads the row inside it).
  [[nodiscard]] Result<bool> move_committed(std::string_view out_trade_no, ChargeState to,
                                            std::string_view provider_txn_id,
                                            std::string_view actor, std::string detail_json = "{}");

  // Applies a provider answer about `tx` (invariants 3, 4, 5, 8).
  [[nodiscard]] Result<Applied> apply_answer(Transaction& txn, const TxRecord& tx,
                                             const ProviderTransaction& answer, AnswerSource source,
                                             std::string_view event_id = {});

  const MerchantIds& merchant() const { return ids_; }

 private:
  Store* store_;
  queue::Outbox* outbox_;
  const Clock* clock_;
  MerchantIds ids_;
};

// Outbox topics the lanes write (the uplink reads them).
inline constexpr std::string_view kTopicParkingEntry = "parking.entry";
inline constexpr std::string_view kTopicCharge = "charge";

}  // namespace lanegate::gateway
