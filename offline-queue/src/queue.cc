#include "offline_queue/queue.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::queue {
namespace {

using std::chrono::milliseconds;

// Version 1 of the queue's schema. Why each index exists:
//  outbox_ready   lease(): ready heads per topic in (available_ms, seq) order (invariant 3, 4).
//  outbox_chain   enqueue()/ack()/park(): is there an active item of this key, which is next.
//  outbox_age     oldest active item (metric, CLI list) without a scan.
//  outbox_leased  lease expiry (invariant 5); holds only the few LEASED items.
//  outbox_acked   compact(); outbox_parked: the parked list. Neither is touched by enqueue().
// outbox_count holds rows and payload bytes per (topic, state), kept in the same transaction as
// the item change (invariant 7): by enqueue() for inserts (a trigger there cost a third of the
// enqueue's CPU time) and by triggers for state changes and deletes.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE outbox_item (
  id               INTEGER PRIMARY KEY,
  seq              INTEGER NOT NULL,
  topic            TEXT    NOT NULL,
  ordering_key     TEXT,
  idempotency_key  TEXT    NOT NULL UNIQUE,
  payload          BLOB    NOT NULL,
  state            INTEGER NOT NULL CHECK (state BETWEEN 0 AND 3),
  head             INTEGER NOT NULL CHECK (head IN (0, 1)),
  attempts         INTEGER NOT NULL DEFAULT 0,
  retries          INTEGER NOT NULL DEFAULT 0,
  created_ms       INTEGER NOT NULL,
  available_ms     INTEGER NOT NULL,
  lease_expires_ms INTEGER,
  finished_ms      INTEGER,
  last_error       TEXT
);
CREATE INDEX outbox_ready ON outbox_item(topic, available_ms, seq) WHERE state = 0 AND head = 1;
CREATE INDEX outbox_chain ON outbox_item(ordering_key, seq)
  WHERE state < 2 AND ordering_key IS NOT NULL;
CREATE INDEX outbox_age ON outbox_item(created_ms) WHERE state < 2;
CREATE INDEX outbox_leased ON outbox_item(lease_expires_ms) WHERE state = 1;
CREATE INDEX outbox_acked ON outbox_item(finished_ms) WHERE state = 2;
CREATE INDEX outbox_parked ON outbox_item(finished_ms) WHERE state = 3;
CREATE TABLE outbox_count (
  topic TEXT    NOT NULL,
  state INTEGER NOT NULL,
  rows  INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  PRIMARY KEY (topic, state)
) WITHOUT ROWID;
CREATE TRIGGER outbox_count_update AFTER UPDATE OF state ON outbox_item
  WHEN old.state <> new.state BEGIN
  UPDATE outbox_count SET rows = rows - 1, bytes = bytes - length(old.payload)
    WHERE topic = old.topic AND state = old.state;
  INSERT INTO outbox_count(topic, state, rows, bytes)
    VALUES (new.topic, new.state, 1, length(new.payload))
    ON CONFLICT(topic, state) DO UPDATE SET rows = rows + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER outbox_count_delete AFTER DELETE ON outbox_item BEGIN
  UPDATE outbox_count SET rows = rows - 1, bytes = bytes - length(old.payload)
    WHERE topic = old.topic AND state = old.state;
END;
)sql";

constexpr std::array<std::string_view, 1> kSteps = {kSchemaV1};

#define ITEM_COLUMNS                                                                         \
  "id, seq, topic, ordering_key, idempotency_key, payload, state, head, attempts, retries, " \
  "created_ms, available_ms, lease_expires_ms, finished_ms, last_error"

SystemTime from_ms(std::int64_t ms) { return SystemTime(milliseconds(ms)); }

Item read_item(const Statement& s) {
  Item it;
  it.id = s.column_int64(0);
  it.seq = s.column_int64(1);
  it.topic = s.column_text(2);
  it.ordering_key = s.column_opt_text(3).value_or("");
  it.idempotency_key = s.column_text(4);
  it.payload = s.column_text(5);
  it.state = static_cast<ItemState>(s.column_int64(6));
  it.head = s.column_int64(7) != 0;
  it.attempts = s.column_int64(8);
  it.retries = s.column_int64(9);
  it.created_at = from_ms(s.column_int64(10));
  it.available_at = from_ms(s.column_int64(11));
  if (auto v = s.column_opt_int64(12)) it.lease_expires = from_ms(*v);
  if (auto v = s.column_opt_int64(13)) it.finished_at = from_ms(*v);
  it.last_error = s.column_opt_text(14).value_or("");
  return it;
}

// Resets a statement when a read finishes, whatever path it leaves by.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& s) : s_(s) {}
  ~ResetOnExit() { s_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& s_;
};

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::optional<std::string_view> key_or_null(std::string_view key) {
  if (key.empty()) return std::nullopt;
  return key;
}

bool valid_topic(std::string_view t) {
  if (t.empty() || t.size() > kMaxTopicBytes) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

metrics::Counter& retries_counter() {
  static metrics::Counter& c = metrics::Registry::global().counter(
      "lanegate_queue_retries_total", "Outbox items scheduled for another attempt");
  return c;
}
metrics::Counter& expired_counter() {
  static metrics::Counter& c = metrics::Registry::global().counter(
      "lanegate_queue_lease_expired_total", "Outbox leases that expired and returned to pending");
  return c;
}

}  // namespace

std::span<const std::string_view> schema_steps() { return kSteps; }

std::string_view to_string(ItemState state) {
  switch (state) {
    case ItemState::kPending:
      return "pending";
    case ItemState::kLeased:
      return "leased";
    case ItemState::kAcked:
      return "acked";
    case ItemState::kParked:
      return "parked";
  }
  return "unknown";
}

milliseconds backoff_delay(std::int64_t retry_number, milliseconds base, milliseconds cap,
                           double unit) {
  if (retry_number < 1) retry_number = 1;
  if (base.count() < 1) base = milliseconds(1);
  if (cap < base) cap = base;
  // Doubling stops at the cap; the shift is bounded so it cannot overflow.
  std::int64_t d = base.count();
  for (std::int64_t i = 1; i < retry_number && d < cap.count(); ++i) d *= 2;
  d = std::min(d, cap.count());
  unit = std::clamp(unit, 0.0, 1.0);
  const std::int64_t half = d / 2;
  return milliseconds(
      half + static_cast<std::int64_t>(std::llround(unit * static_cast<double>(d - half))));
}

struct Outbox::Statements {
  Statement preflight;
  Statement find_by_idem;
  Statement max_id;
  Statement key_last_seq;
  Statement insert;
  Statement count_insert;
  Statement reclaim;
  Statement pending_topics;
  Statement pull_back;
  Statement candidates;
  Statement lease_one;
  Statement extend;
  Statement get;
  Statement ack;
  Statement ack_state;
  Statement lease_state;
  Statement retry;
  Statement park;
  Statement ensure_head;
  Statement unpark;
  Statement retry_now;
  Statement release_all;
  Statement compact;
  Statement counts;
  Statement oldest;
  Statement list_active;
  Statement list_parked;
};

Result<Outbox> Outbox::open(Database& db, const config::QueueLimits& limits, const Clock& clock,
                            OutboxOptions options) {
  using S = Outbox::Statements;
  // The SQL of every statement (the static_assert below checks that none is missing).
  struct NamedSql {
    Statement S::*member;
    std::string_view sql;
  };
  const NamedSql sqls[] = {
      // Everything enqueue() needs to know, in one statement: held rows and bytes (the counter
      // table), the next id, and whether the ordering key already has an active item.
      {&S::preflight,
       "SELECT (SELECT coalesce(sum(rows), 0) FROM outbox_count WHERE state <> 2), "
       "(SELECT coalesce(sum(bytes), 0) FROM outbox_count WHERE state <> 2), "
       "(SELECT coalesce(max(id), 0) FROM outbox_item), "
       "EXISTS (SELECT 1 FROM outbox_item WHERE ordering_key = ?1 AND state < 2 AND "
       "ordering_key IS NOT NULL)"},
      {&S::find_by_idem, "SELECT id FROM outbox_item WHERE idempotency_key = ?1"},
      {&S::max_id, "SELECT coalesce(max(id), 0) FROM outbox_item"},
      {&S::key_last_seq,
       "SELECT coalesce(max(seq), 0) FROM outbox_item WHERE ordering_key = ?1 AND state < 2 AND "
       "ordering_key IS NOT NULL"},
      {&S::insert,
       "INSERT INTO outbox_item(id, seq, topic, ordering_key, idempotency_key, payload, state, "
       "head, "
       "created_ms, available_ms) VALUES (?1, ?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7) "
       "ON CONFLICT(idempotency_key) DO NOTHING"},
      {&S::count_insert,
       "INSERT INTO outbox_count(topic, state, rows, bytes) VALUES (?1, 0, 1, ?2) "
       "ON CONFLICT(topic, state) DO UPDATE SET rows = rows + 1, bytes = bytes + excluded.bytes"},
      {&S::reclaim,
       "UPDATE outbox_item SET state = 0, available_ms = ?1, lease_expires_ms = NULL, "
       "last_error = 'lease expired' WHERE state = 1 AND (lease_expires_ms <= ?1 OR "
       "lease_expires_ms > ?2)"},
      {&S::pending_topics,
       "SELECT topic FROM outbox_count WHERE state = 0 AND rows > 0 ORDER BY topic"},
      {&S::pull_back,
       "UPDATE outbox_item SET available_ms = ?2 WHERE topic = ?1 AND state = 0 AND head = 1 AND "
       "available_ms > ?3"},
      {&S::candidates,
       "SELECT id, available_ms, seq FROM outbox_item WHERE topic = ?1 AND state = 0 AND head = 1 "
       "AND available_ms <= ?2 ORDER BY available_ms, seq LIMIT ?3"},
      {&S::lease_one,
       "UPDATE outbox_item SET state = 1, attempts = attempts + 1, lease_expires_ms = ?2 "
       "WHERE id = ?1 AND state = 0 AND head = 1 RETURNING " ITEM_COLUMNS},
      // Invariants 5 and 6: only a lease still held (same attempt, expiry neither passed nor
      // beyond the step-back bound) is extended, and never shortened.
      {&S::extend,
       "UPDATE outbox_item SET lease_expires_ms = max(lease_expires_ms, ?3) WHERE id = ?1 AND "
       "state = 1 AND attempts = ?2 AND lease_expires_ms > ?4 AND lease_expires_ms <= ?5"},
      {&S::get, "SELECT " ITEM_COLUMNS " FROM outbox_item WHERE id = ?1"},
      {&S::ack,
       "UPDATE outbox_item SET state = 2, head = 0, finished_ms = ?2, lease_expires_ms = NULL "
       "WHERE id = ?1 AND state <> 2 RETURNING ordering_key"},
      {&S::ack_state, "SELECT state FROM outbox_item WHERE id = ?1"},
      {&S::lease_state, "SELECT state, attempts, retries FROM outbox_item WHERE id = ?1"},
      {&S::retry,
       "UPDATE outbox_item SET state = 0, retries = retries + 1, available_ms = ?3, "
       "lease_expires_ms = NULL, last_error = ?4 WHERE id = ?1 AND state = 1 AND attempts = ?2"},
      {&S::park,
       "UPDATE outbox_item SET state = 3, head = 0, finished_ms = ?3, lease_expires_ms = NULL, "
       "last_error = ?4 WHERE id = ?1 AND state = 1 AND attempts = ?2 RETURNING ordering_key"},
      {&S::ensure_head,
       "UPDATE outbox_item SET head = 1 WHERE id = (SELECT id FROM outbox_item WHERE "
       "ordering_key = ?1 AND state < 2 AND ordering_key IS NOT NULL ORDER BY seq, id LIMIT 1) "
       "AND head = 0"},
      {&S::unpark,
       "UPDATE outbox_item SET state = 0, seq = ?2, head = ?3, available_ms = ?4, retries = 0, "
       "finished_ms = NULL WHERE id = ?1 AND state = 3"},
      {&S::retry_now,
       "UPDATE outbox_item SET available_ms = ?2, retries = 0 WHERE id = ?1 AND state = 0"},
      {&S::release_all,
       "UPDATE outbox_item SET state = 0, available_ms = ?1, lease_expires_ms = NULL, "
       "last_error = 'lease released at start-up' WHERE state = 1"},
      {&S::compact,
       "DELETE FROM outbox_item WHERE id IN (SELECT id FROM outbox_item WHERE state = 2 AND "
       "finished_ms <= ?1 AND id < (SELECT max(id) FROM outbox_item) ORDER BY finished_ms "
       "LIMIT ?2)"},
      {&S::counts, "SELECT topic, state, rows, bytes FROM outbox_count ORDER BY topic, state"},
      {&S::oldest, "SELECT min(created_ms) FROM outbox_item WHERE state < 2"},
      {&S::list_active,
       "SELECT " ITEM_COLUMNS " FROM outbox_item WHERE state < 2 AND (?1 = '' OR topic = ?1) "
       "ORDER BY created_ms, id LIMIT ?2"},
      {&S::list_parked,
       "SELECT " ITEM_COLUMNS " FROM outbox_item WHERE state = 3 AND (?1 = '' OR topic = ?1) "
       "ORDER BY finished_ms, id LIMIT ?2"},
  };
  static_assert(sizeof(sqls) / sizeof(sqls[0]) == sizeof(Outbox::Statements) / sizeof(Statement),
                "every statement has its SQL");
  auto st = std::make_unique<Statements>();
  for (const auto& [member, sql] : sqls) {
    auto prepared = db.prepare(sql);
    if (!prepared) {
      return fail(prepared.error().code,
                  "outbox schema missing or outdated (run the queue migrations): " +
                      prepared.error().message);
    }
    (*st).*member = std::move(*prepared);
  }
  if (!options.jitter) {
    auto gen = std::make_shared<std::mt19937_64>(std::random_device{}());
    options.jitter = [gen] { return std::uniform_real_distribution<double>(0.0, 1.0)(*gen); };
  }
  // Create the series up front so /metrics shows them before the first event.
  retries_counter();
  expired_counter();
  return Outbox(db, limits, clock, std::move(options), std::move(st));
}

Outbox::Outbox(Database& db, const config::QueueLimits& limits, const Clock& clock,
               OutboxOptions options, std::unique_ptr<Statements> st)
    : db_(db), limits_(limits), clock_(clock), options_(std::move(options)), st_(std::move(st)) {}

Outbox::Outbox(Outbox&& other) noexcept
    : db_(other.db_),
      limits_(other.limits_),
      clock_(other.clock_),
      options_(std::move(other.options_)),
      st_(std::move(other.st_)) {}

Outbox::~Outbox() = default;

std::int64_t Outbox::now_ms() const { return clock_.unix_millis(); }

void Outbox::count_enqueue_failure(std::string_view reason) {
  metrics::Registry::global()
      .counter("lanegate_queue_enqueue_failures_total", "Outbox enqueues refused, by reason",
               {{"reason", std::string(reason)}})
      .inc();
}

Result<Enqueued> Outbox::enqueue(Transaction& txn, std::string_view topic,
                                 std::string_view ordering_key, std::string_view idempotency_key,
                                 std::string_view payload) {
  if (!txn.active() || &txn.db() != &db_) {
    count_enqueue_failure("invalid");
    return fail(Errc::kInternal, "enqueue needs an active transaction on the outbox's database");
  }
  if (!valid_topic(topic)) {
    count_enqueue_failure("invalid");
    return fail(Errc::kInvalidArgument,
                "must be 1.." + std::to_string(kMaxTopicBytes) + " characters of [A-Za-z0-9._-]",
                "topic");
  }
  if (ordering_key.size() > kMaxKeyBytes) {
    count_enqueue_failure("invalid");
    return fail(Errc::kInvalidArgument,
                "must be at most " + std::to_string(kMaxKeyBytes) + " bytes", "ordering_key");
  }
  if (idempotency_key.empty() || idempotency_key.size() > kMaxKeyBytes) {
    count_enqueue_failure("invalid");
    return fail(Errc::kInvalidArgument, "must be 1.." + std::to_string(kMaxKeyBytes) + " bytes",
                "idempotency_key");
  }
  if (payload.size() > kMaxPayloadBytes) {
    count_enqueue_failure("invalid");
    return fail(Errc::kInvalidArgument,
                "must be at most " + std::to_string(kMaxPayloadBytes) + " bytes, got " +
                    std::to_string(payload.size()),
                "payload");
  }
  Statements& s = *st_;
  auto db_failure = [this](const Error& e) -> Result<Enqueued> {
    count_enqueue_failure(e.code == Errc::kDiskFull ? "disk_full" : "database");
    return std::unexpected(e);
  };
  // The existing item of a duplicate key (the unusual path: a retried caller).
  auto existing = [&]() -> Result<std::optional<std::int64_t>> {
    ResetOnExit r(s.find_by_idem);
    s.find_by_idem.bind(1, idempotency_key);
    auto row = s.find_by_idem.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(s.find_by_idem.column_int64(0));
  };
  std::int64_t id = 0;
  bool head = true;
  {
    ResetOnExit r(s.preflight);
    s.preflight.bind(1, key_or_null(ordering_key));
    auto row = s.preflight.step();
    if (!row) return db_failure(row.error());
    const std::int64_t rows = s.preflight.column_int64(0);
    const std::int64_t bytes = s.preflight.column_int64(1);
    id = s.preflight.column_int64(2) + 1;
    head = s.preflight.column_int64(3) == 0;
    const auto size = static_cast<std::int64_t>(payload.size());
    if (rows >= limits_.max_rows || bytes + size > limits_.max_bytes) {
      // A duplicate adds nothing, so it is answered even when full.
      auto dup = existing();
      if (!dup) return db_failure(dup.error());
      if (*dup) return Enqueued{**dup, false};
    }
    if (rows >= limits_.max_rows) {
      count_enqueue_failure("rows");
      return fail(Errc::kQueueFull,
                  "outbox full: " + std::to_string(rows) +
                      " items held, limit queue.max_rows = " + std::to_string(limits_.max_rows));
    }
    if (bytes + size > limits_.max_bytes) {
      count_enqueue_failure("bytes");
      return fail(Errc::kQueueFull,
                  "outbox full: " + std::to_string(bytes) + " payload bytes held + " +
                      std::to_string(size) +
                      " would exceed queue.max_bytes = " + std::to_string(limits_.max_bytes));
    }
  }
  s.insert.reset();
  s.insert.bind(1, id)
      .bind(2, topic)
      .bind(3, key_or_null(ordering_key))
      .bind(4, idempotency_key)
      .bind_blob(5, as_bytes(payload))
      .bind(6, head ? 1 : 0)
      .bind(7, now_ms());
  if (auto st = s.insert.run(); !st) return db_failure(st.error());
  if (db_.changes() == 0) {  // ON CONFLICT DO NOTHING: the key names an item already
    auto dup = existing();
    if (!dup) return db_failure(dup.error());
    if (!*dup) return fail(Errc::kInternal, "idempotency conflict without an item");
    return Enqueued{**dup, false};
  }
  s.count_insert.reset();
  s.count_insert.bind(1, topic).bind(2, static_cast<std::int64_t>(payload.size()));
  if (auto st = s.count_insert.run(); !st) return db_failure(st.error());
  return Enqueued{id, true};
}

Status Outbox::reclaim_leases(std::int64_t now) {
  st_->reclaim.reset();
  st_->reclaim.bind(1, now).bind(2, now + kMaxLease.count());
  if (auto r = st_->reclaim.run(); !r) return r;
  if (const int n = db_.changes(); n > 0) {
    expired_counter().inc(n);
    log::notice("outbox leases expired, items pending again", {{"COUNT", n}});
  }
  return {};
}

Result<std::vector<Item>> Outbox::lease(std::span<const std::string> topics, int max_items,
                                        milliseconds lease_duration) {
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  auto items = lease(*txn, topics, max_items, lease_duration);
  if (!items) return items;
  if (auto c = txn->commit(); !c) return std::unexpected(c.error());
  return items;
}

Result<std::vector<Item>> Outbox::lease(Transaction& txn, std::span<const std::string> topics,
                                        int max_items, milliseconds lease_duration) {
  if (!txn.active() || &txn.db() != &db_) {
    return fail(Errc::kInternal, "lease needs an active transaction on the outbox's database");
  }
  if (max_items < 1) return fail(Errc::kOutOfRange, "must be at least 1", "max_items");
  if (lease_duration <= milliseconds(0) || lease_duration > kMaxLease) {
    return fail(Errc::kOutOfRange, "must be in (0, 1 h]", "lease_duration");
  }
  Statements& s = *st_;
  const std::int64_t now = now_ms();
  if (auto r = reclaim_leases(now); !r) return std::unexpected(r.error());

  std::vector<std::string> wanted;
  if (topics.empty()) {
    ResetOnExit r(s.pending_topics);
    for (;;) {
      auto row = s.pending_topics.step();
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      wanted.push_back(s.pending_topics.column_text(0));
    }
  } else {
    wanted.assign(topics.begin(), topics.end());
  }

  struct Candidate {
    std::int64_t available_ms, seq, id;
    auto operator<=>(const Candidate&) const = default;
  };
  std::vector<Candidate> cands;
  const std::int64_t cap = std::max<std::int64_t>(limits_.retry_cap_ms, 0);
  for (const std::string& topic : wanted) {
    // Invariant 8: a wall-clock step back must not strand retrying items beyond the cap.
    s.pull_back.reset();
    s.pull_back.bind(1, topic).bind(2, now).bind(3, now + cap);
    if (auto r = s.pull_back.run(); !r) return std::unexpected(r.error());

    ResetOnExit r(s.candidates);
    s.candidates.bind(1, topic).bind(2, now).bind(3, max_items);
    for (;;) {
      auto row = s.candidates.step();
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      cands.push_back(Candidate{s.candidates.column_int64(1), s.candidates.column_int64(2),
                                s.candidates.column_int64(0)});
    }
  }
  std::sort(cands.begin(), cands.end());
  if (cands.size() > static_cast<std::size_t>(max_items)) cands.resize(max_items);

  std::vector<Item> out;
  out.reserve(cands.size());
  const std::int64_t expires = now + lease_duration.count();
  for (const Candidate& c : cands) {
    ResetOnExit r(s.lease_one);
    s.lease_one.bind(1, c.id).bind(2, expires);
    auto row = s.lease_one.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) continue;  // cannot happen inside one transaction; harmless if it did
    out.push_back(read_item(s.lease_one));
  }
  return out;
}

Result<std::vector<LeaseToken>> Outbox::extend_leases(std::span<const LeaseToken> leases,
                                                      milliseconds lease_duration) {
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  auto lost = extend_leases(*txn, leases, lease_duration);
  if (!lost) return lost;
  if (auto c = txn->commit(); !c) return std::unexpected(c.error());
  return lost;
}

Result<std::vector<LeaseToken>> Outbox::extend_leases(Transaction& txn,
                                                      std::span<const LeaseToken> leases,
                                                      milliseconds lease_duration) {
  if (!txn.active() || &txn.db() != &db_) {
    return fail(Errc::kInternal,
                "extend_leases needs an active transaction on the outbox's database");
  }
  if (lease_duration <= milliseconds(0) || lease_duration > kMaxLease) {
    return fail(Errc::kOutOfRange, "must be in (0, 1 h]", "lease_duration");
  }
  const std::int64_t now = now_ms();
  std::vector<LeaseToken> lost;
  for (const LeaseToken& lease : leases) {
    st_->extend.reset();
    st_->extend.bind(1, lease.id)
        .bind(2, lease.attempt)
        .bind(3, now + lease_duration.count())
        .bind(4, now)
        .bind(5, now + kMaxLease.count());
    if (auto r = st_->extend.run(); !r) return std::unexpected(r.error());
    if (db_.changes() == 0) lost.push_back(lease);
  }
  return lost;
}

Status Outbox::ensure_head(std::string_view ordering_key) {
  if (ordering_key.empty()) return {};
  st_->ensure_head.reset();
  st_->ensure_head.bind(1, ordering_key);
  return st_->ensure_head.run();
}

Status Outbox::ack_in(const LeaseToken& lease) {
  Statements& s = *st_;
  std::optional<std::string> key;
  bool changed = false;
  {
    ResetOnExit r(s.ack);
    s.ack.bind(1, lease.id).bind(2, now_ms());
    auto row = s.ack.step();
    if (!row) return std::unexpected(row.error());
    if (*row) {
      changed = true;
      key = s.ack.column_opt_text(0);
    }
  }
  if (!changed) {
    ResetOnExit r(s.ack_state);
    s.ack_state.bind(1, lease.id);
    auto row = s.ack_state.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return fail(Errc::kNotFound, "no outbox item " + std::to_string(lease.id));
    return {};  // already acked: a repeated confirmation is harmless
  }
  if (key) return ensure_head(*key);
  return {};
}

Status Outbox::retry_in(const LeaseToken& lease, std::string_view error,
                        std::optional<milliseconds> after) {
  Statements& s = *st_;
  std::int64_t retries = 0;
  {
    ResetOnExit r(s.lease_state);
    s.lease_state.bind(1, lease.id);
    auto row = s.lease_state.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return fail(Errc::kNotFound, "no outbox item " + std::to_string(lease.id));
    if (s.lease_state.column_int64(0) != static_cast<int>(ItemState::kLeased) ||
        s.lease_state.column_int64(1) != lease.attempt) {
      return fail(Errc::kNotFound, "outbox item " + std::to_string(lease.id) + " attempt " +
                                       std::to_string(lease.attempt) +
                                       ": lease no longer held (expired or already resolved)");
    }
    retries = s.lease_state.column_int64(2);
  }
  const milliseconds cap(std::max(limits_.retry_cap_ms, 1));
  milliseconds delay = after ? std::clamp(*after, milliseconds(0), cap)
                             : backoff_delay(retries + 1, milliseconds(limits_.retry_base_ms), cap,
                                             options_.jitter());
  s.retry.reset();
  s.retry.bind(1, lease.id).bind(2, lease.attempt).bind(3, now_ms() + delay.count()).bind(4, error);
  if (auto r = s.retry.run(); !r) return r;
  retries_counter().inc();
  return {};
}

Status Outbox::park_in(const LeaseToken& lease, std::string_view error) {
  Statements& s = *st_;
  std::optional<std::string> key;
  {
    ResetOnExit r(s.park);
    s.park.bind(1, lease.id).bind(2, lease.attempt).bind(3, now_ms()).bind(4, error);
    auto row = s.park.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) {
      return fail(Errc::kNotFound, "outbox item " + std::to_string(lease.id) + " attempt " +
                                       std::to_string(lease.attempt) +
                                       ": lease no longer held (expired or already resolved)");
    }
    key = s.park.column_opt_text(0);
  }
  log::warn("outbox item parked for the operator",
            {{"ITEM", lease.id}, {"ERROR", std::string(error)}});
  if (key) return ensure_head(*key);
  return {};
}

Status Outbox::apply(Transaction& txn, const LeaseToken& lease, const Outcome& outcome) {
  if (!txn.active() || &txn.db() != &db_) {
    return fail(Errc::kInternal, "apply needs an active transaction on the outbox's database");
  }
  switch (outcome.kind) {
    case Outcome::Kind::kAck:
      return ack_in(lease);
    case Outcome::Kind::kRetry:
      return retry_in(lease, outcome.error, outcome.after);
    case Outcome::Kind::kPark:
      return park_in(lease, outcome.error);
  }
  return fail(Errc::kInternal, "unknown outcome");
}

Status Outbox::apply(const LeaseToken& lease, const Outcome& outcome) {
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  if (auto r = apply(*txn, lease, outcome); !r) return r;
  return txn->commit();
}

Status Outbox::ack(const LeaseToken& lease) { return apply(lease, Outcome::ack()); }

Status Outbox::retry(const LeaseToken& lease, std::string_view error,
                     std::optional<milliseconds> after) {
  return apply(lease, Outcome::retry(std::string(error), after));
}

Status Outbox::park(const LeaseToken& lease, std::string_view error) {
  return apply(lease, Outcome::park(std::string(error)));
}

Status Outbox::unpark(std::int64_t id) {
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  auto item = get(id);
  if (!item) return std::unexpected(item.error());
  if (item->state != ItemState::kParked) {
    return fail(Errc::kInvalidArgument, "outbox item " + std::to_string(id) + " is " +
                                            std::string(to_string(item->state)) +
                                            ", only parked items can be unparked");
  }
  Statements& s = *st_;
  // Back of its key's line (invariant 3): a sequence number above every id and above every
  // active item of the key.
  std::int64_t seq = 0;
  {
    ResetOnExit r(s.max_id);
    auto row = s.max_id.step();
    if (!row) return std::unexpected(row.error());
    seq = s.max_id.column_int64(0);
  }
  bool head = true;
  if (!item->ordering_key.empty()) {
    ResetOnExit r(s.key_last_seq);
    s.key_last_seq.bind(1, item->ordering_key);
    auto row = s.key_last_seq.step();
    if (!row) return std::unexpected(row.error());
    const std::int64_t last = s.key_last_seq.column_int64(0);
    head = last == 0;
    seq = std::max(seq, last);
  }
  s.unpark.reset();
  s.unpark.bind(1, id).bind(2, seq + 1).bind(3, head ? 1 : 0).bind(4, now_ms());
  if (auto r = s.unpark.run(); !r) return r;
  log::notice("outbox item unparked by the operator", {{"ITEM", id}});
  return txn->commit();
}

Status Outbox::retry_now(std::int64_t id) {
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  auto item = get(id);
  if (!item) return std::unexpected(item.error());
  if (item->state != ItemState::kPending) {
    std::string hint = item->state == ItemState::kParked ? ", use unpark" : "";
    return fail(Errc::kInvalidArgument, "outbox item " + std::to_string(id) + " is " +
                                            std::string(to_string(item->state)) +
                                            ", only pending items can be retried now" + hint);
  }
  st_->retry_now.reset();
  st_->retry_now.bind(1, id).bind(2, now_ms());
  if (auto r = st_->retry_now.run(); !r) return r;
  return txn->commit();
}

Result<std::int64_t> Outbox::retry_all_now() {
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  auto st = db_.prepare(
      "UPDATE outbox_item SET available_ms = ?1, retries = 0 "
      "WHERE state = 0 AND head = 1 AND available_ms > ?1");
  if (!st) return std::unexpected(st.error());
  st->bind(1, now_ms());
  if (auto r = st->run(); !r) return std::unexpected(r.error());
  const std::int64_t n = db_.changes();
  if (auto c = txn->commit(); !c) return std::unexpected(c.error());
  return n;
}

Result<std::int64_t> Outbox::release_all_leases() {
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  st_->release_all.reset();
  st_->release_all.bind(1, now_ms());
  if (auto r = st_->release_all.run(); !r) return std::unexpected(r.error());
  const std::int64_t n = db_.changes();
  if (auto c = txn->commit(); !c) return std::unexpected(c.error());
  return n;
}

Result<std::int64_t> Outbox::compact(int max_rows) {
  if (max_rows < 1) return fail(Errc::kOutOfRange, "must be at least 1", "max_rows");
  auto txn = db_.begin();
  if (!txn) return std::unexpected(txn.error());
  const std::int64_t cutoff =
      now_ms() - static_cast<std::int64_t>(limits_.acked_retention_hours) * 3'600'000;
  st_->compact.reset();
  st_->compact.bind(1, cutoff).bind(2, max_rows);
  if (auto r = st_->compact.run(); !r) return std::unexpected(r.error());
  const std::int64_t n = db_.changes();
  if (auto c = txn->commit(); !c) return std::unexpected(c.error());
  return n;
}

Result<Item> Outbox::get(std::int64_t id) {
  ResetOnExit r(st_->get);
  st_->get.bind(1, id);
  auto row = st_->get.step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(Errc::kNotFound, "no outbox item " + std::to_string(id));
  return read_item(st_->get);
}

Result<std::vector<Item>> Outbox::list(const ListFilter& filter) {
  Statement& q = filter.parked ? st_->list_parked : st_->list_active;
  ResetOnExit r(q);
  q.bind(1, filter.topic).bind(2, std::max(filter.limit, 0));
  std::vector<Item> out;
  for (;;) {
    auto row = q.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.push_back(read_item(q));
  }
  return out;
}

Result<Stats> Outbox::stats() {
  Stats out;
  {
    ResetOnExit r(st_->counts);
    std::map<std::string, TopicStats> by_topic;
    for (;;) {
      auto row = st_->counts.step();
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      const std::string topic = st_->counts.column_text(0);
      const auto state = static_cast<ItemState>(st_->counts.column_int64(1));
      const std::int64_t rows = st_->counts.column_int64(2);
      const std::int64_t bytes = st_->counts.column_int64(3);
      TopicStats& t = by_topic[topic];
      t.topic = topic;
      switch (state) {
        case ItemState::kPending:
          t.pending += rows;
          out.pending += rows;
          break;
        case ItemState::kLeased:
          t.leased += rows;
          out.leased += rows;
          break;
        case ItemState::kParked:
          t.parked += rows;
          out.parked += rows;
          break;
        case ItemState::kAcked:
          t.acked += rows;
          out.acked += rows;
          break;
      }
      if (state != ItemState::kAcked) {
        t.live_bytes += bytes;
        out.live_bytes += bytes;
        out.live_rows += rows;
      }
    }
    for (auto& [name, t] : by_topic) out.topics.push_back(std::move(t));
  }
  {
    ResetOnExit r(st_->oldest);
    auto row = st_->oldest.step();
    if (!row) return std::unexpected(row.error());
    if (*row && !st_->oldest.column_is_null(0)) {
      out.oldest_active_created = from_ms(st_->oldest.column_int64(0));
    }
  }
  return out;
}

Status Outbox::refresh_metrics() {
  auto s = stats();
  if (!s) return std::unexpected(s.error());
  auto& reg = metrics::Registry::global();
  for (const TopicStats& t : s->topics) {
    reg.gauge("lanegate_queue_depth", "Outbox items pending or in flight, by topic",
              {{"topic", t.topic}})
        .set(t.pending + t.leased);
  }
  std::int64_t age_s = 0;
  if (s->oldest_active_created) {
    age_s = std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(
                                          clock_.now() - *s->oldest_active_created)
                                          .count());
  }
  reg.gauge("lanegate_queue_oldest_pending_age_seconds",
            "Age of the oldest outbox item not yet delivered")
      .set(age_s);
  reg.gauge("lanegate_queue_in_flight", "Outbox items leased to a sender").set(s->leased);
  reg.gauge("lanegate_queue_parked", "Outbox items parked for the operator").set(s->parked);
  return {};
}

Result<std::vector<std::string>> Outbox::query_plans_for_test() {
  const std::string_view hot[] = {
      "SELECT id FROM outbox_item WHERE idempotency_key = ?1",
      "SELECT (SELECT coalesce(sum(rows), 0) FROM outbox_count WHERE state <> 2), "
      "(SELECT coalesce(max(id), 0) FROM outbox_item), EXISTS (SELECT 1 FROM outbox_item WHERE "
      "ordering_key = ?1 AND state < 2 AND ordering_key IS NOT NULL)",
      "SELECT id, available_ms, seq FROM outbox_item WHERE topic = ?1 AND state = 0 AND head = 1 "
      "AND available_ms <= ?2 ORDER BY available_ms, seq LIMIT ?3",
      "UPDATE outbox_item SET state = 0 WHERE state = 1 AND (lease_expires_ms <= ?1 OR "
      "lease_expires_ms > ?2)",
      "UPDATE outbox_item SET available_ms = ?2 WHERE topic = ?1 AND state = 0 AND head = 1 AND "
      "available_ms > ?3",
      "SELECT id FROM outbox_item WHERE ordering_key = ?1 AND state < 2 AND ordering_key IS NOT "
      "NULL ORDER BY seq, id LIMIT 1",
      "SELECT min(created_ms) FROM outbox_item WHERE state < 2",
      "SELECT id FROM outbox_item WHERE state = 2 AND finished_ms <= ?1 ORDER BY finished_ms "
      "LIMIT ?2",
      "SELECT coalesce(max(id), 0) FROM outbox_item",
      "UPDATE outbox_item SET lease_expires_ms = max(lease_expires_ms, ?3) WHERE id = ?1 AND "
      "state = 1 AND attempts = ?2 AND lease_expires_ms > ?4 AND lease_expires_ms <= ?5",
  };
  std::vector<std::string> out;
  for (std::string_view sql : hot) {
    auto st = db_.prepare("EXPLAIN QUERY PLAN " + std::string(sql));
    if (!st) return std::unexpected(st.error());
    std::string plan(sql);
    plan += "\n";
    for (;;) {
      auto row = st->step();
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      plan += "  " + st->column_text(3) + "\n";
    }
    out.push_back(std::move(plan));
  }
  return out;
}

}  // namespace lanegate::queue
