#pragma once
// Day seals and settlement packages over the audit ledger (core/ledger.h).
//
// A seal states, signed with the gateway's Ed25519 device key, what the ledger held for
// one local day: the seq range, the hash before the first record and the last hash, the
// record count, and counts and amounts per kind, per (kind, state) and per (lane, kind).
// Because every record's hash covers the previous hash, the signed last hash commits to
// every record of the day and all before it. docs/AUDIT.md specifies the bytes.
//
// Seal lifecycle for one date (rows in audit_seals are never updated or deleted):
//   (none) --seal_day--> revision 1 --seal_day, ledger grew--> revision 2 --> ...
//  S1. Revisions of a date start at 1 and increase by one; the newest is authoritative.
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
//
// Threading: functions taking a Database run on the thread that owns it. verify_package
// touches only files and may run anywhere.

#include <chrono>
#include <cstdint>
#include <filesystem>
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

namespace lanegate::gateway::audit {

inline constexpr std::string_view kSealFormat = "lanegate-seal/1";
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

struct Seal {
  std::string date;  // "YYYY-MM-DD", local at utc_offset_minutes
  int utc_offset_minutes = 480;
  std::int64_t revision = 1;
  SystemTime sealed_at;
  std::string gateway_key;      // raw public key, hex
  std::string key_fingerprint;  // SHA-256 of the raw public key, hex
  // first_seq = last_seq = 0 and both hashes 64 '0' for a day without records.
  std::int64_t first_seq = 0;
  std::int64_t last_seq = 0;
  std::string first_prev_hash;
  std::string last_hash;
  SealTotals totals;
};

struct SignedSeal {
  Seal seal;
  std::string json;         // the signed bytes (seal.json)
  crypto::Bytes signature;  // 64 bytes
};

// The exact seal.json bytes for `seal` (fixed member order, see docs/AUDIT.md).
std::string encode_seal(const Seal& seal);
// Strict: every member present with its type; errors name the member.
[[nodiscard]] Result<Seal> parse_seal(std::string_view json);

// Seals the local day `date` now: recomputes range and totals from the ledger in one
// transaction and stores a new revision signed with `key` (S1, S2).
// REQUIRES: no transaction open on `db` (this takes its own BEGIN IMMEDIATE).
[[nodiscard]] Result<SignedSeal> seal_day(Database& db, std::string_view date, UtcOffset offset,
                                          const signing::KeyPair& key,
                                          const Clock& clock = SystemClock::instance());
// Newest revision for the date, or nullopt.
[[nodiscard]] Result<std::optional<SignedSeal>> latest_seal(Database& db, std::string_view date);
// Local days before today (at `now`) holding records that no seal covers yet, oldest
// first: what the end-of-day timer (and a restart after downtime) must seal.
[[nodiscard]] Result<std::vector<std::string>> days_needing_seal(Database& db, UtcOffset offset,
                                                                 SystemTime now);

// The end-of-day job: seals every day days_needing_seal() returns, oldest first; stops at
// the first failure (the next run retries). Returns the seals made.
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

// records.csv content for these records (the verifier regenerates it to compare).
std::string csv_header();
std::string csv_row(const ledger::LedgerEntry& entry, UtcOffset offset);

// ---- verification ----

struct VerifyProblem {
  std::string check;     // "seal_file", "seal_signature", "seal_key", "record_format",
                         // "record_hash", "sequence", "chain_link", "seal_range",
                         // "totals", "csv"
  std::int64_t seq = 0;  // the record concerned (expected seq at that line), 0 if none
  std::size_t line = 0;  // line in records.jsonl / records.csv, 0 if none
  std::string message;
};

struct VerifyReport {
  std::string date;
  std::int64_t records_checked = 0;
  std::vector<VerifyProblem> problems;  // in the order found; capped at kMaxProblems
  bool ok() const { return problems.empty(); }
  // The smallest seq named by a problem, 0 when no record is blamed.
  std::int64_t first_bad_seq() const;
  // Human-readable: "OK ..." or "FAILED: first bad record seq N (check): message" + list.
  std::string to_text() const;
  static constexpr std::size_t kMaxProblems = 50;
};

// Checks the chain, the seal's range and totals against the records, the CSV, and the
// signature with `pubkey` (the key the authority registered, never the one in the seal).
VerifyReport verify_package(const std::filesystem::path& dir, const signing::PublicKey& pubkey);

}  // namespace lanegate::gateway::audit
