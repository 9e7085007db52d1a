#pragma once
// The fleet centre's ingest of box ledgers (docs/FLEET.md, "Upload = the ledger").
//
// A box's hash-chained ledger is its upload queue: the box asks head() for what the centre
// holds and sends the records after it, as records.jsonl lines, in bounded batches. ingest()
// checks every line (the canonical bytes, the hash, seq = head + 1, prev_hash = head hash)
// and stores the batch in one PostgreSQL transaction, or nothing:
//   - a record already held (same seq, same hash) is skipped: a batch sent again after a lost
//     reply, a crash on either side or weeks offline changes nothing;
//   - different bytes at a held seq, or a record whose prev_hash does not continue the held
//     chain, is a fork: refused, and kept as an anomaly for the authority;
//   - a record after a missing one is a gap: refused with the centre's head, from which the
//     box resends;
//   - a line that is not a canonical record with its own hash is refused naming the seq and
//     the rule.
// Records are stored in tables partitioned by their local day at the jurisdiction's offset,
// and stay provisional until a verified day seal covers them (a later step: docs/FLEET.md).
//
// Threading: a Centre is used by one thread at a time; uploads of one box from two
// connections are serialised by a row lock on the box's head.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "core/ledger.h"
#include "core/time_format.h"
#include "fleet/pg.h"

namespace lanegate::fleet {

struct Head {
  std::int64_t seq = 0;
  std::string hash{ledger::kGenesisHash};
  bool operator==(const Head&) const = default;
};

struct IngestResult {
  enum class Outcome {
    kStored,      // every line is held now (stored or already held)
    kGap,         // refused: a record after one the centre does not hold; resend from `head`
    kFork,        // refused: other bytes at a held seq, or a chain that does not continue
    kBadRecord,   // refused: a line that is not a canonical record with its own hash
    kUnknownBox,  // refused: the box is not registered
  };
  Outcome outcome = Outcome::kStored;
  std::int64_t stored = 0;   // records new to the centre
  std::int64_t skipped = 0;  // records it already held, byte for byte
  Head head;                 // the centre's head for the box after the call
  std::int64_t seq = 0;      // the record refused (gap: the first one missing)
  std::string message;       // for a refusal: the rule, naming the field
};
std::string_view outcome_name(IngestResult::Outcome o);

struct SealResult {
  enum class Outcome {
    kSealed,      // verified: its records are final (no longer provisional)
    kNotYet,      // the centre does not hold the records up to the seal's last seq yet
    kRefused,     // not verified: bad bytes, another key, or a chain or totals that differ
    kUnknownBox,  // the box is not registered
  };
  Outcome outcome = Outcome::kSealed;
  std::int64_t sealed = 0;  // records that stopped being provisional with this seal
  std::string message;      // for a refusal: the rule, naming the member
};
std::string_view outcome_name(SealResult::Outcome o);

class Centre {
 public:
  // `offset`: the jurisdiction's UTC offset; a record's local day (its partition) is the
  // date of its time at that offset.
  Centre(pg::Connection& db, UtcOffset offset) : db_(db), offset_(offset) {}

  // Creates or upgrades the fleet tables (numbered steps, each applied once, in order).
  [[nodiscard]] Status migrate();

  // Registers a box with its device signing key (hex of the raw Ed25519 public key). The
  // registry is the root of trust: registering a known box again with another key is refused.
  [[nodiscard]] Status register_box(std::string_view box, std::string_view public_key_hex);

  [[nodiscard]] Result<Head> head(std::string_view box);

  // Lines are records.jsonl lines without their newline, in seq order.
  [[nodiscard]] Result<IngestResult> ingest(std::string_view box,
                                            std::span<const std::string> lines);

  // The held records first..last rebuilt as records.jsonl lines, byte-exact.
  [[nodiscard]] Result<std::vector<std::string>> records(std::string_view box, std::int64_t first,
                                                         std::int64_t last);

  // A day seal from the box (seal.json bytes and the raw 64-byte signature). It must be a
  // lanegate-seal/2 seal signed by the box's registered key; its first/last hashes must be
  // those of the chain the centre holds, and its totals are recomputed in SQL over that
  // range. Then its records are final. A forged record that went in provisional is caught
  // here: the genuine seal's hashes do not match it (an anomaly, the records stay
  // provisional). Sending a seal again changes nothing.
  [[nodiscard]] Result<SealResult> ingest_seal(std::string_view box, std::string_view seal_json,
                                               std::span<const std::uint8_t> signature);

  // The newest seal the centre holds for the box: {date, revision}; nullopt when none. A box
  // uploads its seals after this one.
  struct SealId {
    std::string date;
    std::int64_t revision = 0;
  };
  [[nodiscard]] Result<std::optional<SealId>> latest_seal(std::string_view box);

  // Rebuilds the settlement package of the newest seal of `date` into `dir` (which must not
  // exist), byte for byte what the box exports; audit::verify_package checks it with the
  // registered key, trusting nothing the centre says.
  [[nodiscard]] Status export_package(std::string_view box, std::string_view date,
                                      const std::filesystem::path& dir);
  // The box's registered public key, hex.
  [[nodiscard]] Result<std::string> public_key(std::string_view box);

  // Forks seen for a box: (seq, what was offered) in the order they were seen.
  struct Anomaly {
    std::string kind;
    std::int64_t seq = 0;
    std::string detail;
  };
  [[nodiscard]] Result<std::vector<Anomaly>> anomalies(std::string_view box);

  // "YYYY-MM-DD": the local day at the centre's offset (the partition a record goes to).
  std::string local_day(SystemTime t) const;

 private:
  [[nodiscard]] Status ensure_partition(const std::string& day);
  // The box's head row, locked until the transaction ends (uploads and seals of one box
  // never interleave); nullopt when the box is not registered.
  struct LockedHead {
    std::string box_no;
    Head head;
  };
  [[nodiscard]] Result<std::optional<LockedHead>> lock_head(std::string_view box);
  // `days[i]`: the local day of records[i].
  [[nodiscard]] Result<IngestResult> ingest_once(std::string_view box,
                                                 std::span<const ledger::LedgerEntry> records,
                                                 std::span<const std::string> days);
  [[nodiscard]] Result<std::vector<ledger::LedgerEntry>> entries(std::string_view box,
                                                                 std::int64_t first,
                                                                 std::int64_t last);
  [[nodiscard]] Status note_anomaly(std::string_view box, std::string_view kind, std::int64_t seq,
                                    std::string_view detail);

  pg::Connection& db_;
  UtcOffset offset_;
  std::vector<std::string> partitions_;  // days known to exist
};

}  // namespace lanegate::fleet
