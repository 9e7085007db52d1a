#pragma once
// The audit ledger: an append-only, hash-chained record of every money event.
//
// Every module that moves or promises money (decisions, charges, refunds, manual
// opens, invoices) calls ledger::append() inside the SQLite transaction that makes the
// state change, so the ledger and the state can never disagree after a crash: both
// commit or neither does. The ledger is the one place that stores full plates.
//
// Invariants (checked by the database itself, see ledger_schema_steps()):
//  I1. seq starts at 1 and increases by exactly one per record; no gaps.
//  I2. prev_hash of record 1 is kGenesisHash (64 '0'); prev_hash of record n is the hash of
//      record n-1.
//  I3. hash = lower-case hex SHA-256 of canonical_encoding(record) (docs/AUDIT.md gives the
//      encoding byte by byte).
//  I4. Nothing is updated or deleted: triggers abort every UPDATE and DELETE on the table,
//      and an INSERT that does not continue the chain (I1, I2) is aborted too.
//  I5. amount is non-negative; the kind says the direction of the money.
//
// Threading: like Database, a function here is used by the thread that owns the
// Database / Transaction. Appends are serialised by the transaction (BEGIN IMMEDIATE
// holds the write lock), so two processes appending to one file keep I1 and I2.

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
#include "core/time_format.h"

namespace lanegate::ledger {

// What happened. The stable names (kind_name) are part of the hashed encoding: never
// rename one; add new kinds at the end.
enum class Kind {
  kDecision,  // pass decision with the fee (state: free | pass_online | pass_offline | fallback)
  kChargeSubmitted,  // charge request sent to the provider (amount = charge amount)
  kChargeAccepted,   // provider accepted the charge for processing (ACCEPTED)
  kChargeSettled,    // provider reports the money taken (SUCCESS)
  kChargeFailed,     // provider reports the charge failed (PAY_FAIL)
  kChargeUnknown,    // no answer before the deadline (UNKNOWN); resolved by a later query
  kRefund,           // money returned to the payer (amount = refunded amount)
  kManualOpen,       // an operator opened the barrier by hand (actor names them)
  kInvoiceIssued,    // e-invoice issued for a settled amount
  kInvoiceReversed,  // e-invoice reversed by a red-letter invoice
  kArrears,          // vehicle passed without payment: debt recorded against the plate
  kArrearsCleared,   // recorded debt paid later
  kCorrection,       // operator note explaining an earlier record (detail names its seq)
};

std::string_view kind_name(Kind kind);
std::optional<Kind> parse_kind(std::string_view name);
std::span<const Kind> all_kinds();

inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct LedgerEvent {
  Kind kind = Kind::kDecision;
  SystemTime time;            // when it happened; stored with millisecond precision
  std::string lane;           // lane id, "" when not tied to a lane (invoices)
  std::string plate;          // full plate, "" when unknown
  std::string out_trade_no;   // the money movement's id, "" for events without one
  Money amount;               // >= 0
  std::string state;          // the lifecycle state after the event, e.g. "SUCCESS"
  std::string actor;          // "system", "operator:<name>", "provider", ...
  std::string detail = "{}";  // JSON text (object or any JSON value), hashed as a string
};

struct LedgerEntry {
  std::int64_t seq = 0;
  LedgerEvent event;
  std::string prev_hash;  // 64 hex digits
  std::string hash;       // 64 hex digits
};

// Schema for Database::migrate (steps[i] is version i + 1 of the ledger's own list; the
// gateway composes the production list).
std::span<const std::string_view> ledger_schema_steps();

// Checks the rules of an event: valid UTF-8 strings, amount >= 0, time within
// 1970..9999, detail non-empty. Errors name the field.
[[nodiscard]] Status validate(const LedgerEvent& event);

// Appends the event as the next record. The time is truncated to milliseconds.
// REQUIRES: txn is active (the caller commits it together with its state change).
[[nodiscard]] Result<LedgerEntry> append(Transaction& txn, const LedgerEvent& event);

// The bytes that are hashed (I3): canonical JSON without the "hash" member.
std::string canonical_encoding(const LedgerEntry& entry);
// Lower-case hex SHA-256 of canonical_encoding(entry).
std::string compute_hash(const LedgerEntry& entry);
// One line of records.jsonl: the canonical encoding with ,"hash":"..." before the
// closing brace. No trailing newline.
std::string jsonl_line(const LedgerEntry& entry);
// Reads one records.jsonl line (no newline): the twelve members in canonical order with their
// JSON types, the time and kind valid. It does not check the hash or the canonical bytes:
// callers compare jsonl_line() of the result with the line and compute_hash() with its hash.
[[nodiscard]] Result<LedgerEntry> parse_line(std::string_view line);

// JSON string literal (with quotes) by the canonical escaping rule (docs/AUDIT.md).
std::string json_quote(std::string_view text);
// "2026-11-22T05:29:35.123Z": UTC, always millisecond precision.
std::string format_time(SystemTime t);
// Strict inverse of format_time (exactly that shape).
[[nodiscard]] Result<SystemTime> parse_time(std::string_view text);
bool is_valid_utf8(std::string_view text);

struct SeqRange {
  std::int64_t first = 0;  // inclusive
  std::int64_t last = 0;   // inclusive
  std::int64_t count() const { return last >= first ? last - first + 1 : 0; }
};

// The newest record, or nullopt for an empty ledger.
[[nodiscard]] Result<std::optional<LedgerEntry>> head(Database& db);

// Calls `visit` for each record with first <= seq <= last, in seq order; stops at the
// first error from `visit` and returns it.
[[nodiscard]] Status for_each(Database& db, SeqRange range,
                              const std::function<Status(const LedgerEntry&)>& visit);
[[nodiscard]] Result<std::vector<LedgerEntry>> read(Database& db, SeqRange range);

// The seq range spanning every record whose time falls in the local day `date`
// ("YYYY-MM-DD" at `offset`): from the smallest to the largest such seq. nullopt when
// the day has no record. This finds the records *stamped* with a day (reconciliation
// compares them with the provider's bill for that day); it is not what a day seal covers:
// if the clock stepped across midnight, records of neighbouring days lie inside it and the
// ranges of two days overlap. Seals partition the chain instead (audit/audit.h).
[[nodiscard]] Result<std::optional<SeqRange>> day_range(Database& db, std::string_view date,
                                                        UtcOffset offset);

// The largest seq greater than `after_seq` whose time is before `end`, or `after_seq`
// when there is none: where a day ending at `end` closes when the records after
// `after_seq` are not sealed yet. Reads only the records after `after_seq`.
[[nodiscard]] Result<std::int64_t> last_seq_stamped_before(Database& db, std::int64_t after_seq,
                                                           SystemTime end);

// Every record with this out_trade_no, in seq order.
[[nodiscard]] Result<std::vector<LedgerEntry>> find_by_out_trade_no(Database& db,
                                                                    std::string_view out_trade_no);

// Recomputes the stored chain over `range` (I1-I3). `first_bad_seq` is 0 when intact.
struct ChainCheck {
  std::int64_t checked = 0;
  std::int64_t first_bad_seq = 0;
  std::string problem;
  bool ok() const { return first_bad_seq == 0; }
};
[[nodiscard]] Result<ChainCheck> verify_stored(Database& db, SeqRange range);

}  // namespace lanegate::ledger
