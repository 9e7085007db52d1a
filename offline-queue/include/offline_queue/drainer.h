#pragma once
// The drain loop: hands leased outbox items to an asynchronous sink (the uplink client) and
// applies what became of them. Kicked by a timer (drain_interval_ms) and by link_up(); keeps at
// most max_in_flight items outstanding; starts at most rate_per_second items per second
// (token bucket, burst = min(rate, max_in_flight); rate <= 0: unlimited).
//
// Each drain cycle is one SQLite transaction that applies every outcome that arrived since the
// last cycle, renews the leases that are due (below) and leases the next small batch, so a busy
// drain costs one commit per batch rather than two per item. Items are handed to the sink only
// after that commit.
//
// THREADING: every member function, the sink and all Outbox access run on the io_context's
// thread (the thread that runs `io`), except link_up(), which any thread may call. The
// completion passed to the sink may be called from any thread, exactly once; it posts the
// outcome to the io thread. Calling it again is ignored.
//
// OWNERSHIP: io, outbox, limits and clock must outlive the Drainer. Destroying the Drainer
// (REQUIRES: on the io thread, or after the io_context stopped) abandons outcomes that arrive
// later; their items come back when their leases expire, so nothing is lost.
//
// LEASE RENEWAL. A sink's work may outlast a lease (a provider call that refreshes
// certificates, queries and then charges). While the sink holds an item -- handed over, its
// completion not yet called -- the drainer extends the item's lease by lease_ms every
// lease_ms / 3 (Outbox::extend_leases: every held item in the cycle's one commit), so the
// item is not leased and sent a second time while the first send is in flight. Two renewals
// in a row may fail (database busy) before a lease lapses.
//
// A sink that never calls its completion is renewed for at most DrainerOptions::max_hold from
// the hand-over; then renewal stops, the slot is freed when the lease ends (counted in
// lanegate_queue_sink_timeouts_total) and the item, back in PENDING, is leased again. A lease
// that could not be renewed in time (lost: the outbox refused to extend it) frees its slot at
// once; the sink's late outcome is refused as stale, its ack still counts (invariant 6).

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "offline_queue/queue.h"

namespace lanegate::queue {

struct DrainerOptions {
  std::vector<std::string> topics;  // empty: all topics
  int lease_batch = 16;             // items leased per cycle at most
  // How often the timer tick compacts acked items past retention (0: never).
  std::chrono::milliseconds compact_interval = std::chrono::minutes(1);
  // How long a sink may hold an item, its lease renewed, before the drainer gives up on it
  // (0: lease_ms * max_in_flight). Why that default: lease_ms is sized to cover the worst
  // case of one work item once its sender starts on it, and a sender that runs its items one
  // after another on one worker (the invoice uplink) starts an item at most max_in_flight - 1
  // items late; a sink still silent after that has lost the item (a bug or a hung thread).
  std::chrono::milliseconds max_hold{0};
};

class Drainer {
 public:
  // Called once per completion with what became of the item.
  using Completion = std::function<void(Outcome)>;
  // Sends one item. Called on the io thread; must not block; calls `done` exactly once, from
  // any thread, possibly before returning.
  using Sink = std::function<void(const Item& item, Completion done)>;

  struct Counters {
    int in_flight = 0;
    int max_in_flight_seen = 0;
    std::int64_t dispatched = 0;
    std::int64_t acked = 0;
    std::int64_t retried = 0;
    std::int64_t parked = 0;
    std::int64_t stale = 0;         // outcomes for leases that had expired (refused, harmless)
    std::int64_t cycle_errors = 0;  // cycles that failed to commit (retried on the next kick)
    std::int64_t renewed = 0;       // lease extensions committed for items a sink still held
    std::int64_t lost = 0;          // leases the outbox refused to extend (had expired)
  };

  Drainer(boost::asio::io_context& io, Outbox& outbox, const config::QueueLimits& limits,
          const Clock& clock, Sink sink, DrainerOptions options = {});
  ~Drainer();
  Drainer(const Drainer&) = delete;
  Drainer& operator=(const Drainer&) = delete;

  // Starts the timer and runs a first cycle. REQUIRES: io thread (or before io.run()).
  void start();
  // Stops leasing and the timer. Outcomes that arrive later are still applied.
  // REQUIRES: io thread.
  void stop();
  // The uplink came back: drain now rather than at the next tick. Any thread.
  void link_up();

  // REQUIRES: io thread.
  Counters counters() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lanegate::queue
