#pragma once
// The durable transactional outbox. Everything the gateway sends upstream (parking entries,
// charges, order queries, invoice requests, settlement uploads) is enqueued here in the same
// SQLite transaction that records it, and leaves only when the far side has it (ack) or an
// operator has seen it (park). Nothing is dropped to make room: a full queue refuses new items
// with Errc::kQueueFull and the caller stops approving offline passages.
//
// ITEM LIFECYCLE (the function that performs each transition in brackets)
//
//                 enqueue()
//                    |
//                    v
//   +----------> PENDING ----------------------------+
//   |             |   ^                              |
//   |   lease()   |   | retry() (backoff)            | ack() by a stale lease holder
//   |             v   | lease expiry (lease(),       | (delivery confirmed wins)
//   |           LEASED  release_all_leases())        |
//   |          ^   |                                 |
//   |          +---+ extend_leases() (the sender      |
//   |             |    still works on it)            |
//   |             |   \                              v
//   |             |    +------- ack() ---------->  ACKED ---- compact() after the
//   |     park()  |                                 ^         retention window --> (gone)
//   |             v                                 |
//   +-- unpark() PARKED ------ ack() (stale) -------+
//
//   retry_now() moves a PENDING item's next attempt to now (operator).
//
// INVARIANTS (checked by tests/unit/offline_queue and the crash/property tests)
//  1. Every enqueue() whose transaction committed leaves exactly one item; an idempotency key
//     names at most one item (a duplicate enqueue returns the existing item). Ids are never
//     reused: compact() keeps the newest row as the id high-water mark.
//  2. Only compact() deletes, and only ACKED items older than acked_retention_hours.
//     PENDING, LEASED and PARKED items are never deleted, and nothing is dropped when full.
//  3. Per ordering key, items are handed out in FIFO order of their sequence number: an item is
//     leased only when no item of the same key with a smaller (seq, id) is PENDING or LEASED.
//     PARKED items do not block their key. An unparked item gets a new sequence number, so it
//     goes to the back of its key's line. Items with an empty ordering key are unordered.
//  4. The `head` flag is 1 exactly for the active (PENDING/LEASED) item with the smallest
//     (seq, id) of its ordering key (and for every active item without a key); it is 0 for
//     ACKED and PARKED items. Consequently every LEASED item is a head.
//  5. A LEASED item carries a lease expiry (wall clock, stored): once it has passed (or lies more
//     than kMaxLease in the future after the wall clock stepped back) the next lease() returns
//     it to PENDING. A restarted process therefore recovers leases of a crashed one.
//     extend_leases() moves the expiry of a lease that is still held forward (never back); it
//     never touches a lease that has expired, even one that lease() has not reclaimed yet, so
//     a late renewal cannot resurrect a lease whose item may be handed out again.
//  6. retry(), park() and extend_leases() apply only to the lease they name (item id + attempt
//     number); an outcome for a lease that expired is refused with kNotFound and changes
//     nothing. ack() is accepted from any lease of a not-yet-acked item: a confirmed delivery
//     always wins, and acking an ACKED item is a no-op.
//  7. The row/byte limits count PENDING + LEASED + PARKED items (ACKED ones do not); they are
//     read from outbox_count, which is kept equal to the item table in the same transaction
//     (enqueue() counts its insert, triggers count state changes and deletes), so enqueue()
//     never scans the backlog. Rows enter outbox_item only through enqueue().
//  8. A PENDING item's next attempt is never further away than retry_cap_ms: retry() caps its
//     delay, and lease() pulls items back whose time lies beyond the cap (wall-clock step back).
//
// THREADING: an Outbox is bound to one Database and used by the thread that uses that
// Database (the gateway's io thread). It is not thread-safe. Another process (the CLI) may
// open its own Database and Outbox on the same file; SQLite serialises the writers.
//
// OWNERSHIP: the Outbox keeps references to the Database, the limits and the Clock; all three
// must outlive it, and the Database must not be moved while the Outbox exists.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/sqlite.h"

namespace lanegate::queue {

// The schema as migration steps (steps[i] is version i + 1 of the queue's part). The gateway
// composes the production database's migrations from the modules' step lists; tests call
// db.migrate(queue::schema_steps()).
std::span<const std::string_view> schema_steps();

enum class ItemState : int { kPending = 0, kLeased = 1, kAcked = 2, kParked = 3 };
std::string_view to_string(ItemState state);

// Field limits (checked by enqueue(), reported as kInvalidArgument naming the field).
inline constexpr std::size_t kMaxTopicBytes = 64;         // [A-Za-z0-9._-]+
inline constexpr std::size_t kMaxKeyBytes = 256;          // ordering and idempotency keys
inline constexpr std::size_t kMaxPayloadBytes = 1 << 20;  // 1 MiB
// Longest lease lease() grants; a stored expiry further away than this is treated as expired
// (the wall clock stepped back).
inline constexpr std::chrono::milliseconds kMaxLease = std::chrono::hours(1);

// Names one lease of one item: outcomes are applied only to the lease they belong to.
struct LeaseToken {
  std::int64_t id = 0;
  std::int64_t attempt = 0;  // the item's attempt count when it was leased (1 = first lease)
};

struct Item {
  std::int64_t id = 0;
  std::int64_t seq = 0;  // FIFO position within the ordering key
  std::string topic;
  std::string ordering_key;  // empty: unordered
  std::string idempotency_key;
  std::string payload;  // bytes as enqueued (JSON made by the caller)
  ItemState state = ItemState::kPending;
  bool head = false;          // see invariant 4
  std::int64_t attempts = 0;  // leases so far (never reset)
  std::int64_t retries = 0;   // retries since enqueue, unpark or retry_now (drives backoff)
  SystemTime created_at;
  SystemTime available_at;                  // PENDING: earliest next lease
  std::optional<SystemTime> lease_expires;  // LEASED only
  std::optional<SystemTime> finished_at;    // ACKED / PARKED: when
  std::string last_error;                   // last retry/park/expiry reason

  LeaseToken token() const { return LeaseToken{id, attempts}; }
};

struct Enqueued {
  std::int64_t id = 0;
  bool created = false;  // false: the idempotency key already named item `id`
};

// What became of one leased item.
struct Outcome {
  enum class Kind { kAck, kRetry, kPark };
  Kind kind = Kind::kAck;
  std::string error;                               // kRetry / kPark: why
  std::optional<std::chrono::milliseconds> after;  // kRetry: peer's hint instead of backoff

  static Outcome ack() { return Outcome{}; }
  static Outcome retry(std::string error, std::optional<std::chrono::milliseconds> after = {}) {
    return Outcome{Kind::kRetry, std::move(error), after};
  }
  static Outcome park(std::string error) { return Outcome{Kind::kPark, std::move(error), {}}; }
};

struct TopicStats {
  std::string topic;
  std::int64_t pending = 0;
  std::int64_t leased = 0;
  std::int64_t parked = 0;
  std::int64_t acked = 0;       // retained, not yet compacted
  std::int64_t live_bytes = 0;  // payload bytes of pending + leased + parked
};

struct Stats {
  std::vector<TopicStats> topics;  // sorted by topic
  std::int64_t live_rows = 0;      // counted against max_rows
  std::int64_t live_bytes = 0;     // counted against max_bytes
  std::int64_t pending = 0;
  std::int64_t leased = 0;
  std::int64_t parked = 0;
  std::int64_t acked = 0;
  // Creation time of the oldest PENDING or LEASED item, if any.
  std::optional<SystemTime> oldest_active_created;
};

struct ListFilter {
  bool parked = false;  // true: PARKED items; false: PENDING + LEASED
  std::string topic;    // empty: all topics
  int limit = 50;
};

// Exponential backoff with equal jitter: the n-th retry (n >= 1) waits
// d = min(cap, base * 2^(n-1)), then a uniformly drawn point in [d/2, d]. `unit` is the random
// draw in [0, 1]. Pure, so tests can check the bounds.
std::chrono::milliseconds backoff_delay(std::int64_t retry_number, std::chrono::milliseconds base,
                                        std::chrono::milliseconds cap, double unit);

struct OutboxOptions {
  // Random source for the backoff jitter, returning values in [0, 1]. Empty: a generator seeded
  // from the system's random bytes. Tests pass a fixed function.
  std::function<double()> jitter;
};

class Outbox {
 public:
  // Prepares the statements; fails when the schema is missing (run the migrations first).
  // REQUIRES: db, limits and clock outlive the Outbox; db is not moved meanwhile.
  [[nodiscard]] static Result<Outbox> open(Database& db, const config::QueueLimits& limits,
                                           const Clock& clock, OutboxOptions options = {});
  Outbox(Outbox&&) noexcept;
  Outbox& operator=(Outbox&&) = delete;
  ~Outbox();

  // Adds an item inside the caller's transaction, so the record and its upload commit together.
  // A duplicate idempotency key returns the existing item's id with created = false (even when
  // the queue is full). Errors: kInvalidArgument (field named), kQueueFull (limit and current
  // figure named; nothing was written, the transaction is still usable), database errors.
  // REQUIRES: txn is active and belongs to the Outbox's Database.
  [[nodiscard]] Result<Enqueued> enqueue(Transaction& txn, std::string_view topic,
                                         std::string_view ordering_key,
                                         std::string_view idempotency_key,
                                         std::string_view payload);

  // Returns expired leases to PENDING, then leases up to max_items ready heads, oldest
  // available first ((available_at, seq) order across topics). `topics` empty: all topics.
  // lease_duration must be in (0, kMaxLease]. The first form commits its own transaction.
  [[nodiscard]] Result<std::vector<Item>> lease(std::span<const std::string> topics, int max_items,
                                                std::chrono::milliseconds lease_duration);
  [[nodiscard]] Result<std::vector<Item>> lease(Transaction& txn,
                                                std::span<const std::string> topics, int max_items,
                                                std::chrono::milliseconds lease_duration);

  // Keeps leases alive while their sender still works on them (a provider call may outlast a
  // lease). Every named lease that is still held -- LEASED with that attempt number and not
  // expired (invariant 5) -- expires lease_duration from now, or keeps its later expiry. The
  // others (expired, resolved, or handed out again) are left alone and returned: the caller no
  // longer holds them. All in one transaction (the first form commits its own); one statement
  // execution per lease, by primary key. lease_duration must be in (0, kMaxLease].
  [[nodiscard]] Result<std::vector<LeaseToken>> extend_leases(
      std::span<const LeaseToken> leases, std::chrono::milliseconds lease_duration);
  [[nodiscard]] Result<std::vector<LeaseToken>> extend_leases(
      Transaction& txn, std::span<const LeaseToken> leases,
      std::chrono::milliseconds lease_duration);

  // Outcomes of a lease (invariant 6). The forms without a transaction commit their own.
  [[nodiscard]] Status ack(const LeaseToken& lease);
  [[nodiscard]] Status retry(const LeaseToken& lease, std::string_view error,
                             std::optional<std::chrono::milliseconds> after = {});
  [[nodiscard]] Status park(const LeaseToken& lease, std::string_view error);
  [[nodiscard]] Status apply(const LeaseToken& lease, const Outcome& outcome);
  [[nodiscard]] Status apply(Transaction& txn, const LeaseToken& lease, const Outcome& outcome);

  // Operator actions. unpark: PARKED -> PENDING at the back of its key's line, available now.
  // retry_now: a PENDING item becomes available now and its backoff restarts.
  // Errors: kNotFound (no such item), kInvalidArgument (item in another state, message says
  // which and what to do).
  [[nodiscard]] Status unpark(std::int64_t id);
  [[nodiscard]] Status retry_now(std::int64_t id);
  // The link came back: every PENDING head item waiting out a backoff becomes available
  // now and its backoff restarts (the failures were the link's, not the items'). Returns
  // how many items moved. Per-key order is unaffected (only heads are touched).
  [[nodiscard]] Result<std::int64_t> retry_all_now();

  // Returns every LEASED item to PENDING now. For start-up of the only process that leases, so
  // a restart does not wait for the old leases to expire.
  [[nodiscard]] Result<std::int64_t> release_all_leases();

  // Deletes up to max_rows ACKED items acked more than acked_retention_hours ago (oldest first)
  // in one transaction; returns how many. Call repeatedly until it returns < max_rows.
  [[nodiscard]] Result<std::int64_t> compact(int max_rows = 1000);

  [[nodiscard]] Result<Item> get(std::int64_t id);
  [[nodiscard]] Result<std::vector<Item>> list(const ListFilter& filter);
  [[nodiscard]] Result<Stats> stats();

  // Recomputes the gauges (depth per topic, oldest pending age, in flight, parked) from the
  // counter table and one index probe; cheap enough for every drain tick.
  [[nodiscard]] Status refresh_metrics();

  const config::QueueLimits& limits() const { return limits_; }
  Database& database() { return db_; }

  // Test-only: EXPLAIN QUERY PLAN lines of the hot statements, so a test can assert that no hot
  // path scans the item table.
  [[nodiscard]] Result<std::vector<std::string>> query_plans_for_test();

 private:
  struct Statements;
  Outbox(Database& db, const config::QueueLimits& limits, const Clock& clock, OutboxOptions options,
         std::unique_ptr<Statements> st);

  std::int64_t now_ms() const;
  Status reclaim_leases(std::int64_t now);
  Status ensure_head(std::string_view ordering_key);
  Status ack_in(const LeaseToken& lease);
  Status retry_in(const LeaseToken& lease, std::string_view error,
                  std::optional<std::chrono::milliseconds> after);
  Status park_in(const LeaseToken& lease, std::string_view error);
  void count_enqueue_failure(std::string_view reason);

  Database& db_;
  const config::QueueLimits& limits_;
  const Clock& clock_;
  OutboxOptions options_;
  std::unique_ptr<Statements> st_;
};

}  // namespace lanegate::queue
