#include "fleet/centre.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "audit/audit.h"
#include "core/crypto.h"
#include "core/metrics.h"
#include "core/signing.h"

namespace lanegate::fleet {
namespace {

// At most this many records in one ingest call: one transaction stays short.
constexpr std::size_t kMaxBatch = 5000;
// Rows per INSERT statement (14 parameters each; PostgreSQL allows 65535 parameters).
constexpr std::size_t kRowsPerInsert = 400;

// The fleet tables, one step per version; a step is never edited once released.
constexpr std::array<std::string_view, 2> kSteps = {
    R"sql(
CREATE TABLE fleet_boxes (
  box_no        serial PRIMARY KEY,
  box_id        text NOT NULL UNIQUE CHECK (box_id ~ '^[A-Za-z0-9._-]{1,64}$'),
  public_key    bytea NOT NULL CHECK (length(public_key) = 32),
  registered_at timestamptz NOT NULL DEFAULT now()
);
-- The newest record the centre holds per box; its row lock serialises uploads of one box.
CREATE TABLE fleet_heads (
  box_no     integer PRIMARY KEY REFERENCES fleet_boxes,
  seq        bigint NOT NULL CHECK (seq >= 0),
  hash       bytea NOT NULL CHECK (length(hash) = 32),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Every record of every box, by the local day of its time (the jurisdiction's offset).
-- The canonical line is rebuilt from the columns byte for byte (docs/AUDIT.md), so the
-- line itself is not stored; hashes are 32 bytes, not 64 hex characters.
CREATE TABLE fleet_records (
  box_no       integer NOT NULL,
  local_day    date NOT NULL,
  seq          bigint NOT NULL CHECK (seq >= 1),
  time_ms      bigint NOT NULL,
  kind         text NOT NULL,
  lane         text NOT NULL,
  plate        text NOT NULL,
  out_trade_no text NOT NULL,
  amount_fen   bigint NOT NULL CHECK (amount_fen >= 0),
  state        text NOT NULL,
  actor        text NOT NULL,
  detail       text NOT NULL,
  prev_hash    bytea NOT NULL CHECK (length(prev_hash) = 32),
  hash         bytea NOT NULL CHECK (length(hash) = 32),
  provisional  boolean NOT NULL DEFAULT true,
  PRIMARY KEY (box_no, seq, local_day)
) PARTITION BY RANGE (local_day);
-- Forks and other things an authority must see; kept, never deleted.
CREATE TABLE fleet_anomalies (
  id           bigserial PRIMARY KEY,
  box_no       integer NOT NULL REFERENCES fleet_boxes,
  kind         text NOT NULL,
  seq          bigint NOT NULL,
  offered_hash text NOT NULL,
  detail       text NOT NULL,
  seen_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (box_no, kind, seq, offered_hash)
);
-- A record is never deleted and never changed; the one change allowed is sealing it
-- (provisional true -> false).
CREATE FUNCTION fleet_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'fleet records are never deleted';
  END IF;
  IF (NEW.box_no, NEW.local_day, NEW.seq, NEW.time_ms, NEW.kind, NEW.lane, NEW.plate,
      NEW.out_trade_no, NEW.amount_fen, NEW.state, NEW.actor, NEW.detail, NEW.prev_hash,
      NEW.hash) IS DISTINCT FROM
     (OLD.box_no, OLD.local_day, OLD.seq, OLD.time_ms, OLD.kind, OLD.lane, OLD.plate,
      OLD.out_trade_no, OLD.amount_fen, OLD.state, OLD.actor, OLD.detail, OLD.prev_hash,
      OLD.hash)
     OR (NOT OLD.provisional AND NEW.provisional) THEN
    RAISE EXCEPTION 'fleet records are never changed, only sealed';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fleet_records_guard BEFORE UPDATE OR DELETE ON fleet_records
  FOR EACH ROW EXECUTE FUNCTION fleet_records_guard();
CREATE FUNCTION fleet_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME;
END $$;
CREATE TRIGGER fleet_anomalies_kept BEFORE UPDATE OR DELETE ON fleet_anomalies
  FOR EACH ROW EXECUTE FUNCTION fleet_no_delete();
CREATE TRIGGER fleet_boxes_kept BEFORE DELETE ON fleet_boxes
  FOR EACH ROW EXECUTE FUNCTION fleet_no_delete();
)sql",
    R"sql(
-- Day seals as the boxes signed them: the exact seal.json bytes and the signature, so a
-- package is rebuilt byte for byte. Never changed or deleted.
CREATE TABLE fleet_seals (
  box_no      integer NOT NULL REFERENCES fleet_boxes,
  date        date NOT NULL,
  revision    bigint NOT NULL CHECK (revision >= 1),
  first_seq   bigint NOT NULL,
  last_seq    bigint NOT NULL,
  seal_json   text NOT NULL,
  signature   bytea NOT NULL CHECK (length(signature) = 64),
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (box_no, date, revision)
);
CREATE TRIGGER fleet_seals_kept BEFORE UPDATE OR DELETE ON fleet_seals
  FOR EACH ROW EXECUTE FUNCTION fleet_no_delete();
)sql",
};

// Keys for pg_advisory_xact_lock: migrations, and partition creation.
constexpr std::string_view kMigrateLock = "727401";
constexpr std::string_view kPartitionLock = "727402";

metrics::Counter& ingested(std::string_view outcome) {
  return metrics::Registry::global().counter(
      "lanegate_fleet_ingest_batches_total", "Ledger batches offered to the centre, by outcome",
      {{"outcome", std::string(outcome)}});
}

metrics::Counter& seals(std::string_view outcome) {
  return metrics::Registry::global().counter(
      "lanegate_fleet_seals_total", "Day seals offered to the centre, by outcome",
      {{"outcome", std::string(outcome)}});
}

bool is_day(std::string_view d) {
  if (d.size() < 10) return false;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const bool dash = i == d.size() - 6 || i == d.size() - 3;
    if (dash ? d[i] != '-' : (d[i] < '0' || d[i] > '9')) return false;
  }
  return true;
}

std::string compact(std::string_view day) {
  std::string s;
  for (char c : day) {
    if (c != '-') s += c;
  }
  return s;
}

IngestResult refused(IngestResult::Outcome o, Head head, std::int64_t seq, std::string message) {
  IngestResult r;
  r.outcome = o;
  r.head = std::move(head);
  r.seq = seq;
  r.message = std::move(message);
  return r;
}

}  // namespace

std::string_view outcome_name(IngestResult::Outcome o) {
  switch (o) {
    case IngestResult::Outcome::kStored:
      return "stored";
    case IngestResult::Outcome::kGap:
      return "gap";
    case IngestResult::Outcome::kFork:
      return "fork";
    case IngestResult::Outcome::kBadRecord:
      return "bad_record";
    case IngestResult::Outcome::kUnknownBox:
      return "unknown_box";
  }
  return "unknown";
}

std::string_view outcome_name(SealResult::Outcome o) {
  switch (o) {
    case SealResult::Outcome::kSealed:
      return "sealed";
    case SealResult::Outcome::kNotYet:
      return "not_yet";
    case SealResult::Outcome::kRefused:
      return "refused";
    case SealResult::Outcome::kUnknownBox:
      return "unknown_box";
  }
  return "unknown";
}

std::string Centre::local_day(SystemTime t) const { return format_local_date(t, offset_); }

Status Centre::migrate() {
  if (auto s = db_.run("CREATE TABLE IF NOT EXISTS fleet_schema (version integer NOT NULL)"); !s) {
    return s;
  }
  auto txn = pg::Txn::begin(db_);
  if (!txn) return std::unexpected(txn.error());
  if (auto r = db_.exec("SELECT pg_advisory_xact_lock(" + std::string(kMigrateLock) + ")"); !r) {
    return std::unexpected(r.error());
  }
  auto v = db_.exec("SELECT coalesce(max(version), 0) FROM fleet_schema");
  if (!v) return std::unexpected(v.error());
  const std::int64_t have = v->integer(0, 0);
  if (have > static_cast<std::int64_t>(kSteps.size())) {
    return fail(Errc::kDatabase, "the fleet database is at schema version " +
                                     std::to_string(have) + ", newer than this build (" +
                                     std::to_string(kSteps.size()) + ")");
  }
  for (std::size_t i = static_cast<std::size_t>(have); i < kSteps.size(); ++i) {
    if (auto s = db_.run(kSteps[i]); !s) return s;
    if (auto r = db_.exec("INSERT INTO fleet_schema (version) VALUES ($1)",
                          {std::to_string(i + 1)});
        !r) {
      return std::unexpected(r.error());
    }
  }
  return txn->commit();
}

Status Centre::register_box(std::string_view box, std::string_view public_key_hex) {
  auto txn = pg::Txn::begin(db_);
  if (!txn) return std::unexpected(txn.error());
  if (auto known = public_key(box)) {
    if (*known == public_key_hex) return {};
    return fail(Errc::kAlreadyExists,
                "box is registered with another key (key rotation is its own procedure)",
                "box_id");
  } else if (known.error().code != Errc::kNotFound) {
    return std::unexpected(known.error());
  }
  auto ins = db_.exec(
      "INSERT INTO fleet_boxes (box_id, public_key) VALUES ($1, decode($2, 'hex')) "
      "RETURNING box_no",
      {std::string(box), std::string(public_key_hex)});
  if (!ins) {
    if (ins.error().field == "23514" || ins.error().field == "22023") {
      return fail(Errc::kInvalidArgument,
                  "box_id must be 1-64 of A-Z a-z 0-9 . _ -, the key 32 bytes in hex", "box_id");
    }
    return std::unexpected(ins.error());
  }
  if (auto h = db_.exec("INSERT INTO fleet_heads (box_no, seq, hash) VALUES ($1, 0, "
                        "decode($2, 'hex'))",
                        {std::string(ins->text(0, 0)), std::string(ledger::kGenesisHash)});
      !h) {
    return std::unexpected(h.error());
  }
  return txn->commit();
}

Result<Head> Centre::head(std::string_view box) {
  auto r = db_.exec(
      "SELECT h.seq, encode(h.hash, 'hex') FROM fleet_boxes b JOIN fleet_heads h USING (box_no) "
      "WHERE b.box_id = $1",
      {std::string(box)});
  if (!r) return std::unexpected(r.error());
  if (r->size() == 0) return fail(Errc::kNotFound, "box is not registered", "box_id");
  return Head{r->integer(0, 0), std::string(r->text(0, 1))};
}

Status Centre::ensure_partition(const std::string& day) {
  if (std::find(partitions_.begin(), partitions_.end(), day) != partitions_.end()) return {};
  if (!is_day(day)) return fail(Errc::kInternal, "not a local day: " + day);
  auto txn = pg::Txn::begin(db_);
  if (!txn) return std::unexpected(txn.error());
  // Creators take one lock, so IF NOT EXISTS never races another centre process.
  if (auto r = db_.exec("SELECT pg_advisory_xact_lock(" + std::string(kPartitionLock) + ")"); !r) {
    return std::unexpected(r.error());
  }
  if (auto s = db_.run("CREATE TABLE IF NOT EXISTS fleet_records_" + compact(day) +
                       " PARTITION OF fleet_records FOR VALUES FROM ('" + day + "') TO (DATE '" +
                       day + "' + 1)");
      !s) {
    return s;
  }
  if (auto s = txn->commit(); !s) return s;
  partitions_.push_back(day);
  return {};
}

Status Centre::note_anomaly(std::string_view box, std::string_view kind, std::int64_t seq,
                            std::string_view detail) {
  metrics::Registry::global()
      .counter("lanegate_fleet_anomalies_total", "Forks and other chain anomalies seen on ingest",
               {{"kind", std::string(kind)}})
      .inc();
  auto r = db_.exec(
      "INSERT INTO fleet_anomalies (box_no, kind, seq, offered_hash, detail) "
      "SELECT box_no, $2, $3, $4, $5 FROM fleet_boxes WHERE box_id = $1 "
      "ON CONFLICT DO NOTHING",
      {std::string(box), std::string(kind), std::to_string(seq),
       std::string(detail.substr(0, 64)), std::string(detail)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<IngestResult> Centre::ingest(std::string_view box, std::span<const std::string> lines) {
  if (lines.size() > kMaxBatch) {
    return fail(Errc::kInvalidArgument,
                "at most " + std::to_string(kMaxBatch) + " records per batch", "records");
  }
  // Every line is checked before the database is asked anything.
  std::vector<ledger::LedgerEntry> records;
  records.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::int64_t where = records.empty() ? 0 : records.back().seq + 1;
    auto e = ledger::parse_line(lines[i]);
    auto bad = [&](std::int64_t seq, std::string why) {
      ingested("bad_record").inc();
      return refused(IngestResult::Outcome::kBadRecord, {}, seq,
                     "record " + std::to_string(i + 1) + " of the batch: " + why);
    };
    if (!e) return bad(where, e.error().to_string());
    if (ledger::jsonl_line(*e) != lines[i]) {
      return bad(e->seq, "not in canonical form (docs/AUDIT.md)");
    }
    if (ledger::compute_hash(*e) != e->hash) {
      return bad(e->seq, "hash: does not match the record's content");
    }
    if (!records.empty()) {
      if (e->seq != records.back().seq + 1) {
        return bad(e->seq, "seq: must be " + std::to_string(records.back().seq + 1) +
                               " (a batch is consecutive records)");
      }
      if (e->prev_hash != records.back().hash) {
        return bad(e->seq, "prev_hash: must be the hash of the record before it");
      }
    } else if (e->seq < 1) {
      return bad(e->seq, "seq: must be 1 or more");
    }
    records.push_back(std::move(*e));
  }
  std::vector<std::string> days;
  days.reserve(records.size());
  for (const auto& e : records) {
    days.push_back(local_day(e.event.time));
    if (auto s = ensure_partition(days.back()); !s) return std::unexpected(s.error());
  }
  for (int attempt = 0;; ++attempt) {
    auto r = ingest_once(box, records, days);
    if (!r && pg::retryable(r.error()) && attempt < 3) continue;
    if (r) ingested(outcome_name(r->outcome)).inc();
    if (r && r->outcome == IngestResult::Outcome::kFork) {
      if (auto s = note_anomaly(box, "fork", r->seq, r->message); !s) {
        return std::unexpected(s.error());
      }
    }
    return r;
  }
}

Result<std::optional<Centre::LockedHead>> Centre::lock_head(std::string_view box) {
  auto h = db_.exec(
      "SELECT b.box_no, h.seq, encode(h.hash, 'hex') FROM fleet_boxes b "
      "JOIN fleet_heads h USING (box_no) WHERE b.box_id = $1 FOR UPDATE OF h",
      {std::string(box)});
  if (!h) return std::unexpected(h.error());
  if (h->size() == 0) return std::optional<LockedHead>();
  return std::optional<LockedHead>(LockedHead{
      std::string(h->text(0, 0)), Head{h->integer(0, 1), std::string(h->text(0, 2))}});
}

Result<IngestResult> Centre::ingest_once(std::string_view box,
                                         std::span<const ledger::LedgerEntry> records,
                                         std::span<const std::string> days) {
  auto txn = pg::Txn::begin(db_);
  if (!txn) return std::unexpected(txn.error());
  auto locked = lock_head(box);
  if (!locked) return std::unexpected(locked.error());
  if (!*locked) {
    return refused(IngestResult::Outcome::kUnknownBox, {}, 0,
                   "box_id: not registered (the registry is the root of trust)");
  }
  const std::string box_no = (*locked)->box_no;
  const Head head = (*locked)->head;
  IngestResult out;
  out.head = head;
  if (records.empty()) return out;

  // The part the centre holds already: the same bytes, or a fork.
  std::size_t i = 0;
  if (records.front().seq <= head.seq) {
    const std::int64_t last_held = std::min(records.back().seq, head.seq);
    auto held = db_.exec(
        "SELECT seq, encode(hash, 'hex') FROM fleet_records WHERE box_no = $1 AND seq BETWEEN "
        "$2 AND $3 ORDER BY seq",
        {box_no, std::to_string(records.front().seq), std::to_string(last_held)});
    if (!held) return std::unexpected(held.error());
    for (int row = 0; i < records.size() && records[i].seq <= head.seq; ++i, ++row) {
      if (row >= held->size() || held->integer(row, 0) != records[i].seq) {
        return fail(Errc::kDatabase, "the centre lost held record " +
                                         std::to_string(records[i].seq) + " of box " +
                                         std::string(box));
      }
      if (held->text(row, 1) != records[i].hash) {
        return refused(IngestResult::Outcome::kFork, head, records[i].seq,
                       records[i].hash + ": other bytes at held seq " +
                           std::to_string(records[i].seq) + " (the centre holds hash " +
                           std::string(held->text(row, 1)) + ")");
      }
      ++out.skipped;
    }
  }
  if (i == records.size()) return out;  // all held: nothing to write

  // The new part continues the held chain exactly.
  if (records[i].seq != head.seq + 1) {
    return refused(IngestResult::Outcome::kGap, head, head.seq + 1,
                   "seq: records from " + std::to_string(head.seq + 1) +
                       " are missing; the centre holds up to " + std::to_string(head.seq));
  }
  if (records[i].prev_hash != head.hash) {
    return refused(IngestResult::Outcome::kFork, head, records[i].seq,
                   records[i].hash + ": prev_hash of seq " + std::to_string(records[i].seq) +
                       " does not continue the held chain (held head hash " + head.hash + ")");
  }
  for (std::size_t from = i; from < records.size(); from += kRowsPerInsert) {
    const std::size_t to = std::min(records.size(), from + kRowsPerInsert);
    std::string sql =
        "INSERT INTO fleet_records (box_no, local_day, seq, time_ms, kind, lane, plate, "
        "out_trade_no, amount_fen, state, actor, detail, prev_hash, hash) VALUES ";
    std::vector<pg::Param> params;
    params.reserve((to - from) * 14);
    for (std::size_t k = from; k < to; ++k) {
      const auto& e = records[k];
      const std::size_t b = params.size();
      sql += k == from ? "(" : ",(";
      for (std::size_t c = 1; c <= 14; ++c) {
        const std::string p = "$" + std::to_string(b + c);
        sql += c == 1 ? p : (c >= 13 ? ",decode(" + p + ",'hex')" : "," + p);
      }
      sql += ")";
      params.emplace_back(box_no);
      params.emplace_back(days[k]);
      params.emplace_back(std::to_string(e.seq));
      params.emplace_back(std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             e.event.time.time_since_epoch())
                                             .count()));
      params.emplace_back(std::string(ledger::kind_name(e.event.kind)));
      params.emplace_back(e.event.lane);
      params.emplace_back(e.event.plate);
      params.emplace_back(e.event.out_trade_no);
      params.emplace_back(std::to_string(e.event.amount.fen()));
      params.emplace_back(e.event.state);
      params.emplace_back(e.event.actor);
      params.emplace_back(e.event.detail);
      params.emplace_back(e.prev_hash);
      params.emplace_back(e.hash);
    }
    if (auto r = db_.exec(sql, params); !r) return std::unexpected(r.error());
  }
  out.stored = static_cast<std::int64_t>(records.size() - i);
  out.head = Head{records.back().seq, records.back().hash};
  if (auto r = db_.exec(
          "UPDATE fleet_heads SET seq = $2, hash = decode($3, 'hex'), updated_at = now() "
          "WHERE box_no = $1",
          {box_no, std::to_string(out.head.seq), out.head.hash});
      !r) {
    return std::unexpected(r.error());
  }
  if (auto s = txn->commit(); !s) return std::unexpected(s.error());
  return out;
}

Result<std::vector<ledger::LedgerEntry>> Centre::entries(std::string_view box,
                                                         std::int64_t first, std::int64_t last) {
  auto r = db_.exec(
      "SELECT r.seq, r.time_ms, r.kind, r.lane, r.plate, r.out_trade_no, r.amount_fen, r.state, "
      "r.actor, r.detail, encode(r.prev_hash, 'hex'), encode(r.hash, 'hex') "
      "FROM fleet_records r JOIN fleet_boxes b USING (box_no) "
      "WHERE b.box_id = $1 AND r.seq BETWEEN $2 AND $3 ORDER BY r.seq",
      {std::string(box), std::to_string(first), std::to_string(last)});
  if (!r) return std::unexpected(r.error());
  std::vector<ledger::LedgerEntry> out;
  out.reserve(static_cast<std::size_t>(r->size()));
  for (int row = 0; row < r->size(); ++row) {
    ledger::LedgerEntry e;
    e.seq = r->integer(row, 0);
    e.event.time = SystemTime(std::chrono::milliseconds(r->integer(row, 1)));
    auto kind = ledger::parse_kind(r->text(row, 2));
    if (!kind) return fail(Errc::kDatabase, "stored record has an unknown kind");
    e.event.kind = *kind;
    e.event.lane = std::string(r->text(row, 3));
    e.event.plate = std::string(r->text(row, 4));
    e.event.out_trade_no = std::string(r->text(row, 5));
    e.event.amount = Money::from_fen(r->integer(row, 6));
    e.event.state = std::string(r->text(row, 7));
    e.event.actor = std::string(r->text(row, 8));
    e.event.detail = std::string(r->text(row, 9));
    e.prev_hash = std::string(r->text(row, 10));
    e.hash = std::string(r->text(row, 11));
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<std::string>> Centre::records(std::string_view box, std::int64_t first,
                                                 std::int64_t last) {
  auto es = entries(box, first, last);
  if (!es) return std::unexpected(es.error());
  std::vector<std::string> out;
  out.reserve(es->size());
  for (const auto& e : *es) out.push_back(ledger::jsonl_line(e));
  return out;
}

Result<std::string> Centre::public_key(std::string_view box) {
  auto r = db_.exec("SELECT encode(public_key, 'hex') FROM fleet_boxes WHERE box_id = $1",
                    {std::string(box)});
  if (!r) return std::unexpected(r.error());
  if (r->size() == 0) return fail(Errc::kNotFound, "box is not registered", "box_id");
  return std::string(r->text(0, 0));
}

Result<SealResult> Centre::ingest_seal(std::string_view box, std::string_view seal_json,
                                       std::span<const std::uint8_t> signature) {
  auto refuse = [&](std::string_view anomaly, std::int64_t seq,
                    std::string message) -> Result<SealResult> {
    seals("refused").inc();
    if (!anomaly.empty()) {
      if (auto s = note_anomaly(box, anomaly, seq,
                                crypto::sha256_hex(seal_json) + ": " + message);
          !s) {
        return std::unexpected(s.error());
      }
    }
    return SealResult{SealResult::Outcome::kRefused, 0, std::move(message)};
  };
  auto key_hex = public_key(box);
  if (!key_hex) {
    if (key_hex.error().code == Errc::kNotFound) {
      return SealResult{SealResult::Outcome::kUnknownBox, 0,
                        "box_id: not registered (the registry is the root of trust)"};
    }
    return std::unexpected(key_hex.error());
  }
  auto seal = audit::parse_seal(seal_json);
  if (!seal) return refuse("", 0, "seal.json: " + seal.error().to_string());
  if (seal->format != 2) {
    return refuse("", 0, "format: the centre takes lanegate-seal/2 seals only");
  }
  // The registered key, never the one the seal names, decides.
  auto raw = crypto::hex_decode(*key_hex);
  auto key = raw ? signing::PublicKey::from_raw(*raw) : Result<signing::PublicKey>(std::unexpected(raw.error()));
  if (!key) return std::unexpected(key.error());
  if (!key->verify(seal_json, signature)) {
    return refuse("seal_signature", seal->last_seq,
                  "signature: does not verify with the box's registered key");
  }
  if (seal->gateway_key != *key_hex) {
    return refuse("seal_key", seal->last_seq,
                  "gateway_key: not the box's registered key");
  }

  auto txn = pg::Txn::begin(db_);
  if (!txn) return std::unexpected(txn.error());
  auto locked = lock_head(box);
  if (!locked) return std::unexpected(locked.error());
  if (!*locked) return fail(Errc::kDatabase, "box " + std::string(box) + " left the registry");
  const std::string box_no = (*locked)->box_no;
  if (seal->last_seq > (*locked)->head.seq) {
    return SealResult{SealResult::Outcome::kNotYet, 0,
                      "last_seq: upload the records through seq " +
                          std::to_string(seal->last_seq) + " first; the centre holds up to " +
                          std::to_string((*locked)->head.seq)};
  }
  // A revision already held: the same bytes are no change, other bytes a conflict.
  auto held = db_.exec(
      "SELECT seal_json FROM fleet_seals WHERE box_no = $1 AND date = $2 AND revision = $3",
      {box_no, seal->date, std::to_string(seal->revision)});
  if (!held) return std::unexpected(held.error());
  if (held->size() == 1) {
    if (held->text(0, 0) == seal_json) return SealResult{SealResult::Outcome::kSealed, 0, ""};
    txn->rollback();
    return refuse("seal_conflict", seal->last_seq,
                  "revision: the centre holds other bytes for " + seal->date + " revision " +
                      std::to_string(seal->revision));
  }
  // The seal's ends are the chain the centre holds.
  auto hash_at = [&](std::int64_t seq, bool prev) -> Result<std::string> {
    if (seq == 0) return std::string(ledger::kGenesisHash);
    auto r = db_.exec(std::string("SELECT encode(") + (prev ? "prev_hash" : "hash") +
                          ", 'hex') FROM fleet_records WHERE box_no = $1 AND seq = $2",
                      {box_no, std::to_string(seq)});
    if (!r) return std::unexpected(r.error());
    if (r->size() != 1) return fail(Errc::kDatabase, "held record " + std::to_string(seq) + " is missing");
    return std::string(r->text(0, 0));
  };
  const std::int64_t before = seal->first_seq - 1;
  auto first_prev = seal->range_count() > 0 ? hash_at(seal->first_seq, true) : hash_at(before, false);
  if (!first_prev) return std::unexpected(first_prev.error());
  auto last = seal->range_count() > 0 ? hash_at(seal->last_seq, false) : first_prev;
  if (!last) return std::unexpected(last.error());
  if (*first_prev != seal->first_prev_hash || *last != seal->last_hash) {
    txn->rollback();
    return refuse("seal_mismatch", seal->last_seq,
                  std::string(*first_prev != seal->first_prev_hash ? "first_prev_hash"
                                                                     : "last_hash") +
                      ": the box signed another chain than the centre holds for seq " +
                      std::to_string(seal->first_seq) + ".." + std::to_string(seal->last_seq) +
                      " (a record held there is not the box's)");
  }
  // Totals recomputed in SQL over the range.
  audit::SealTotals totals;
  const std::vector<pg::Param> range{box_no, std::to_string(seal->first_seq),
                                     std::to_string(seal->last_seq)};
  for (const char* group : {"kind", "kind, state", "lane, kind"}) {
    auto r = db_.exec(std::string("SELECT ") + group +
                          ", count(*), sum(amount_fen)::text FROM fleet_records WHERE box_no = $1 "
                          "AND seq BETWEEN $2 AND $3 GROUP BY " + group,
                      range);
    if (!r) return std::unexpected(r.error());
    for (int row = 0; row < r->size(); ++row) {
      const std::string g = group;
      const int n = g == "kind" ? 1 : 2;
      audit::Tally t{r->integer(row, n), r->integer(row, n + 1)};
      if (g == "kind") {
        totals.by_kind[std::string(r->text(row, 0))] = t;
        totals.record_count += t.count;
      } else if (g == "kind, state") {
        totals.by_kind_state[{std::string(r->text(row, 0)), std::string(r->text(row, 1))}] = t;
      } else {
        totals.by_lane_kind[{std::string(r->text(row, 0)), std::string(r->text(row, 1))}] = t;
      }
    }
  }
  if (!(totals == seal->totals)) {
    txn->rollback();
    return refuse("seal_totals", seal->last_seq,
                  "totals: the records the centre holds for seq " +
                      std::to_string(seal->first_seq) + ".." + std::to_string(seal->last_seq) +
                      " do not sum to the seal's totals");
  }
  if (auto r = db_.exec(
          "INSERT INTO fleet_seals (box_no, date, revision, first_seq, last_seq, seal_json, "
          "signature) VALUES ($1, $2, $3, $4, $5, $6, decode($7, 'hex'))",
          {box_no, seal->date, std::to_string(seal->revision), std::to_string(seal->first_seq),
           std::to_string(seal->last_seq), std::string(seal_json), crypto::hex_encode(signature)});
      !r) {
    return std::unexpected(r.error());
  }
  auto upd = db_.exec(
      "WITH s AS (UPDATE fleet_records SET provisional = false WHERE box_no = $1 AND seq "
      "BETWEEN $2 AND $3 AND provisional RETURNING 1) SELECT count(*) FROM s",
      range);
  if (!upd) return std::unexpected(upd.error());
  if (auto s = txn->commit(); !s) return std::unexpected(s.error());
  seals("sealed").inc();
  return SealResult{SealResult::Outcome::kSealed, upd->integer(0, 0), ""};
}

Result<std::optional<Centre::SealId>> Centre::latest_seal(std::string_view box) {
  auto r = db_.exec(
      "SELECT s.date::text, s.revision FROM fleet_seals s JOIN fleet_boxes b USING (box_no) "
      "WHERE b.box_id = $1 ORDER BY s.date DESC, s.revision DESC LIMIT 1",
      {std::string(box)});
  if (!r) return std::unexpected(r.error());
  if (r->size() == 0) return std::optional<SealId>();
  return std::optional<SealId>(SealId{std::string(r->text(0, 0)), r->integer(0, 1)});
}

Status Centre::export_package(std::string_view box, std::string_view date,
                              const std::filesystem::path& dir) {
  auto r = db_.exec(
      "SELECT s.seal_json, encode(s.signature, 'hex') FROM fleet_seals s "
      "JOIN fleet_boxes b USING (box_no) WHERE b.box_id = $1 AND s.date = $2 "
      "ORDER BY s.revision DESC LIMIT 1",
      {std::string(box), std::string(date)});
  if (!r) return std::unexpected(r.error());
  if (r->size() == 0) return fail(Errc::kNotFound, "no seal for " + std::string(date), "date");
  audit::SignedSeal signed_seal;
  signed_seal.json = std::string(r->text(0, 0));
  auto sig = crypto::hex_decode(r->text(0, 1));
  if (!sig) return std::unexpected(sig.error());
  signed_seal.signature = std::move(*sig);
  auto seal = audit::parse_seal(signed_seal.json);
  if (!seal) return std::unexpected(seal.error());
  signed_seal.seal = std::move(*seal);
  auto es = entries(box, signed_seal.seal.first_seq, signed_seal.seal.last_seq);
  if (!es) return std::unexpected(es.error());
  return audit::export_package(
      signed_seal,
      [&](const std::function<Status(const ledger::LedgerEntry&)>& visit) -> Status {
        for (const auto& e : *es) {
          if (auto s = visit(e); !s) return s;
        }
        return {};
      },
      dir);
}

Result<std::vector<Centre::Anomaly>> Centre::anomalies(std::string_view box) {
  auto r = db_.exec(
      "SELECT a.kind, a.seq, a.detail FROM fleet_anomalies a JOIN fleet_boxes b USING (box_no) "
      "WHERE b.box_id = $1 ORDER BY a.id",
      {std::string(box)});
  if (!r) return std::unexpected(r.error());
  std::vector<Anomaly> out;
  for (int row = 0; row < r->size(); ++row) {
    out.push_back(Anomaly{std::string(r->text(row, 0)), r->integer(row, 1),
                          std::string(r->text(row, 2))});
  }
  return out;
}

}  // namespace lanegate::fleet
