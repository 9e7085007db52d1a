#pragma once
// Day seals and settlement packages over the audit ledger (core/ledger.h).
//
// A seal states, signed with the gateway's Ed25519 device key, what the ledger holds for
// one local day: the seq range, the hash before the first record and the last hash, the
// record count, counts and amounts per kind, per (kind, state) and per (lane, kind), and
// the records whose time lies outside the day (clock anomalies). Because every record's
// hash covers the previous hash, the signed last hash commits to every record of the day
// and all before it. docs/AUDIT.md specifies the bytes.
//
// Seals partition the chain. Dates are sealed in order; a day's seal takes the records
// after the previous seal, up to the last record appended before the day ended (the
// clock's own stamps are the only witness of when that was):
//  P1. seal(D) covers seq F+1..B. F = the largest last_seq sealed for any date before D
//      (0 if none). B = the largest seq stamped before D's end, at least F, and at least
//      the last_seq of D's previous revision (a revision never unseals a record).
//  P2. So, in date order, each seal starts where the previous one ends: first_seq =
//      previous last_seq + 1 and first_prev_hash = previous last_hash; the first seal
//      starts at seq 1 with the genesis hash. An empty seal keeps its place in the chain
//      (last_seq = first_seq - 1, last_hash = first_prev_hash). Every record is sealed by
//      exactly one date.
//  P3. A record in seal(D) whose time is outside D (the clock stepped across midnight, or
//      was wrong) is still sealed, once, and listed in clock_anomalies.
//  P4. Once a later date is sealed, D is final: seal_day(D) returns D's newest revision,
//      or seals D empty at its place in the chain if it has none.
//  P5. seal_day(D) first seals, oldest first, every earlier day that needs it (see
//      days_needing_seal), so the chain of seals only ever grows at its end.
// Seals of format lanegate-seal/1 (before P1..P5) spanned the smallest to the largest seq
// stamped with the day and could overlap; they are still read and verified, and a new
// seal starts after the largest last_seq of any earlier date, so it never overlaps one.
//
// Seal lifecycle for one date (rows in audit_seals are never updated or deleted):
//   (none) --seal_day--> revision 1 --seal_day, ledger grew--> revision 2 --> ...
//  S1. Revisions of a date start at 1 and increase by one; the newest is authoritative.
//      Revisions of a date share first_seq and first_prev_hash (P1: F cannot change once
//      D is sealed, P4); a newer one only extends last_seq.
//  S2. seal_day() returns the newest revision unchanged when it already covers exactly
//      the day's current records (sealing twice is harmless).
//  S3. The stored seal_json bytes are the signed bytes; exports copy them verbatim.
//
// Package (a directory; export_package writes it, verify_package checks it):
//   records.jsonl  one ledger record per line (ledger::jsonl_line), '\n' after each
//   records.csv    the same records for spreadsheets (UTF-8 BOM, CRLF, header row);
//                  derived, and checked by the verifier to match records.jsonl
//   seal.json      the signed seal bytes
//   seal.sig       Base64 of the 64-byte Ed25519 signature over seal.json, then '\n'
// verify_packages checks several packages of consecutive days as one chain (P2).
//
// Threading: functions taking a Database run on the thread that owns it. verify_package
// and verify_packages touch only files and may run anywhere.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/error.h"
#include "core/ledger.h"
#include "core/signing.h"
#include "core/sqlite.h"
#include "core/time_format.h"

namespace lanegate::audit {

// Seals are written in format 2 (partition, clock anomalies); format 1 is still read.
inline constexpr std::string_view kSealFormat = "lanegate-seal/2";
inline constexpr std::string_view kSealFormatV1 = "lanegate-seal/1";
inline constexpr std::string_view kDeviceKeyFile = "device-key.pem";
inline constexpr std::string_view kDevicePublicKeyFile = "device-key.pub";

// Schema of the seals table (Database::migrate step list; the gateway composes it after
// ledger::ledger_schema_steps()).
std::span<const std::string_view> audit_schema_steps();

// Loads <state_dir>/device-key.pem, or generates it (mode 0600) on first start and
// writes <state_dir>/device-key.pub (public key hex, mode 0644) beside it so that
// `lanegate keys show` works for users who may not read the private key.
// REQUIRES: state_dir exists and is writable on first start.
[[nodiscard]] Result<signing::KeyPair> ensure_device_key(const std::filesystem::path& state_dir);

struct Tally {
  std::int64_t count = 0;
  std::int64_t amount_fen = 0;
  bool operator==(const Tally&) const = default;
};

struct SealTotals {
  std::int64_t record_count = 0;
  std::map<std::string, Tally> by_kind;
  std::map<std::pair<std::string, std::string>, Tally> by_kind_state;  // (kind, state)
  std::map<std::pair<std::string, std::string>, Tally> by_lane_kind;   // (lane, kind)
  bool operator==(const SealTotals&) const = default;

  // Adds one record; fails with Errc::kOverflow instead of wrapping.
  [[nodiscard]] Status add(const ledger::LedgerEntry& entry);
};

// A record sealed with a date its time lies outside of (P3).
struct ClockAnomaly {
  std::int64_t seq = 0;
  SystemTime time;
  bool operator==(const ClockAnomaly&) const = default;
};

struct Seal {
  int format = 2;    // 2: lanegate-seal/2 (P1..P5); 1: a lanegate-seal/1 seal read back
  std::string date;  // "YYYY-MM-DD", local at utc_offset_minutes
  int utc_offset_minutes = 480;
  std::int64_t revision = 1;
  SystemTime sealed_at;
  std::string gateway_key;      // raw public key, hex
  std::string key_fingerprint;  // SHA-256 of the raw public key, hex
  // The range first_seq..last_seq. Format 2: an empty day has last_seq = first_seq - 1
  // and last_hash = first_prev_hash (its place in the chain, P2). Format 1: an empty day
  // has first_seq = last_seq = 0 and both hashes 64 '0'.
  std::int64_t first_seq = 0;
  std::int64_t last_seq = 0;
  std::string first_prev_hash;
  std::string last_hash;
  SealTotals totals;
  std::vector<ClockAnomaly> clock_anomalies;  // format 2 only; in seq order (P3)

  // Records in first_seq..last_seq: 0 for an empty day in either format.
  std::int64_t range_count() const {
    return first_seq > 0 && last_seq >= first_seq ? last_seq - first_seq + 1 : 0;
  }
};

struct SignedSeal {
  Seal seal;
  std::string json;         // the signed bytes (seal.json)
  crypto::Bytes signature;  // 64 bytes
};

// The exact seal.json bytes for `seal` (fixed member order, see docs/AUDIT.md), in the
// seal's own format (1 only to re-encode a format-1 seal that was read).
std::string encode_seal(const Seal& seal);
// Strict: every member of the seal's format present with its type, a consistent range;
// errors name the member. Reads formats 1 and 2.
[[nodiscard]] Result<Seal> parse_seal(std::string_view json);

// Seals the local day `date` now (P1..P5): computes its range, totals and clock
// anomalies from the ledger in one transaction and stores a new revision signed with
// `key` (S1, S2). Days before `date` that need a seal are sealed first (P5).
// Errors: kOutOfRange for a date after today at `clock` (a seal of a day that has not
// begun would fix its place in the chain before the records of the days before it).
// REQUIRES: no transaction open on `db` (this takes its own BEGIN IMMEDIATE).
[[nodiscard]] Result<SignedSeal> seal_day(Database& db, std::string_view date, UtcOffset offset,
                                          const signing::KeyPair& key,
                                          const Clock& clock = SystemClock::instance());
// The same, returning every seal made or reused: the earlier days sealed first (P5),
// oldest first, then `date`'s seal last.
[[nodiscard]] Result<std::vector<SignedSeal>> seal_through(
    Database& db, std::string_view date, UtcOffset offset, const signing::KeyPair& key,
    const Clock& clock = SystemClock::instance());
// Newest revision for the date, or nullopt.
[[nodiscard]] Result<std::optional<SignedSeal>> latest_seal(Database& db, std::string_view date);
// Local days before today (at `now`) that sealing in date order would give records no seal
// covers yet, oldest first: what the end-of-day timer (and a restart after downtime) must
// seal. The newest sealed date is listed again when records stamped on or before it were
// appended after its seal (a new revision takes them); an older date never is (P4): its
// late records go to the first date still open, as clock anomalies.
[[nodiscard]] Result<std::vector<std::string>> days_needing_seal(Database& db, UtcOffset offset,
                                                                 SystemTime now);

// The end-of-day job: seals every day days_needing_seal() returns, oldest first, in one
// transaction (the next run retries after a failure). Returns the seals made.
// REQUIRES: called on the thread that owns `db` (the daemon's io thread, from its timer).
[[nodiscard]] Result<std::vector<SignedSeal>> seal_pending_days(Database& db, UtcOffset offset,
                                                                const signing::KeyPair& key,
                                                                const Clock& clock);
// When the daemon's timer should next run seal_pending_days: the next local midnight
// after `now`, plus `grace` so that records stamped just before midnight have landed.
SystemTime next_seal_time(SystemTime now, UtcOffset offset,
                          std::chrono::seconds grace = std::chrono::seconds(60));

// Writes the package for `seal` into `dir`, which must not exist: files go to a sibling
// "<dir>.partial" first, which is renamed into place when complete.
[[nodiscard]] Status export_package(Database& db, const SignedSeal& seal,
                                    const std::filesystem::path& dir);
// Calls its argument once per record of a seal's range, in seq order.
using RecordSource =
    std::function<Status(const std::function<Status(const ledger::LedgerEntry&)>&)>;
// The same from records held elsewhere (the fleet centre rebuilds them from PostgreSQL).
[[nodiscard]] Status export_package(const SignedSeal& seal, const RecordSource& records,
                                    const std::filesystem::path& dir);

// records.csv content for these records (the verifier regenerates it to compare).
std::string csv_header();
std::string csv_row(const ledger::LedgerEntry& entry, UtcOffset offset);

// ---- verification ----

struct VerifyProblem {
  std::string check;     // "seal_file", "seal_signature", "seal_key", "record_format",
                         // "record_hash", "sequence", "chain_link", "seal_range",
                         // "totals", "clock_anomalies", "csv"; across packages: "continuity"
  std::int64_t seq = 0;  // the record concerned (expected seq at that line), 0 if none
  std::size_t line = 0;  // line in records.jsonl / records.csv, 0 if none
  std::string message;
};

struct VerifyReport {
  std::string package;  // the directory verified
  std::string date;
  std::optional<Seal> seal;  // as parsed from seal.json (set even if the signature failed)
  std::int64_t records_checked = 0;
  // Records timed outside the sealed day, found in records.jsonl (P3). Not a failure by
  // themselves: a format-2 seal must list exactly these ("clock_anomalies" otherwise).
  std::vector<ClockAnomaly> clock_anomalies;
  std::vector<VerifyProblem> problems;  // in the order found; capped at kMaxProblems
  bool ok() const { return problems.empty(); }
  // The smallest seq named by a problem, 0 when no record is blamed.
  std::int64_t first_bad_seq() const;
  // Human-readable: "OK ..." or "FAILED: first bad record seq N (check): message" + list;
  // then the clock anomalies, if any.
  std::string to_text() const;
  static constexpr std::size_t kMaxProblems = 50;
};

// Checks the chain, the seal's range, totals and clock anomalies against the records, the
// CSV, and the signature with `pubkey` (the key the authority registered, never the one in
// the seal).
VerifyReport verify_package(const std::filesystem::path& dir, const signing::PublicKey& pubkey);

// Several packages of consecutive days, verified as one chain.
struct ChainReport {
  std::vector<VerifyReport> packages;     // in date order
  std::vector<VerifyProblem> continuity;  // check "continuity"; messages name the packages
  bool ok() const;
  std::int64_t first_bad_seq() const;  // over the packages and the continuity problems
  std::string to_text() const;
};

// Verifies each package (verify_package), then their continuity (P2) in date order: each
// seal must start at the previous one's last_seq + 1 with first_prev_hash equal to its
// last_hash. An overlap blames the first seq sealed twice, a gap the first seq in no
// package; two packages of one date are refused (give the newest revision only). Empty
// format-1 seals have no place in the chain and are skipped.
ChainReport verify_packages(std::span<const std::filesystem::path> dirs,
                            const signing::PublicKey& pubkey);

}  // namespace lanegate::audit
