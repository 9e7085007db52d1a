#pragma once
// The drain loop: hands leased outbox items to an asynchronous sink (the uplink client) and
// applies what became of them. Kicked by a timer (drain_interval_ms) and by link_up(); keeps at
// most max_in_flight items outstanding; starts at most rate_per_second items per second
// (token bucket, burst = min(rate, max_in_flight); rate <= 0: unlimited).
//
// Each drain cycle is one SQLite transaction that applies every outcome that arrived since the
// last cycle and leases the next small batch, so a busy drain costs one commit per batch rather
// than two per item. Items are handed to the sink only after that commit.
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
// A sink that never calls its completion holds a slot until the item's lease expires; the
// slot is then freed (and counted in lanegate_queue_sink_timeouts_total) and the item, back in
// PENDING, is leased again.

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
