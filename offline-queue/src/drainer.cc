#include "offline_queue/drainer.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <map>
#include <utility>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::queue {

using std::chrono::milliseconds;

struct Drainer::Impl : std::enable_shared_from_this<Drainer::Impl> {
  Impl(boost::asio::io_context& io_, Outbox& outbox_, const config::QueueLimits& limits_,
       const Clock& clock_, Sink sink_, DrainerOptions options_)
      : io(io_),
        outbox(outbox_),
        limits(limits_),
        clock(clock_),
        sink(std::move(sink_)),
        options(std::move(options_)),
        tick_timer(io_),
        rate_timer(io_),
        sink_timeouts(metrics::Registry::global().counter(
            "lanegate_queue_sink_timeouts_total",
            "Outbox items whose sender did not report back within the lease")) {
    options.lease_batch = std::max(1, options.lease_batch);
    tokens = burst();
    last_refill = clock.steady_now();
    last_compact = clock.steady_now();
    next_renewal = clock.steady_now();
  }

  boost::asio::io_context& io;
  Outbox& outbox;
  const config::QueueLimits& limits;
  const Clock& clock;
  Sink sink;
  DrainerOptions options;
  boost::asio::steady_timer tick_timer;
  boost::asio::steady_timer rate_timer;
  metrics::Counter& sink_timeouts;

  bool running = false;
  bool cycle_posted = false;
  bool rate_timer_armed = false;
  double tokens = 0;
  SteadyTime last_refill;
  SteadyTime last_compact;
  SteadyTime next_renewal;  // when the held leases are extended next
  // An item the sink holds (handed over, completion not yet called).
  struct Hold {
    SteadyTime handed_over;
    SteadyTime lease_until;  // the stored expiry as last committed, on the steady clock
  };
  // Outstanding leases (id, attempt) -> their hold.
  std::map<std::pair<std::int64_t, std::int64_t>, Hold> in_flight;
  std::vector<std::pair<LeaseToken, Outcome>> done;
  Counters counters;

  bool unlimited_rate() const { return limits.rate_per_second <= 0; }
  milliseconds lease() const { return milliseconds(std::max(1, limits.lease_ms)); }
  // A third of the lease: two renewals in a row may fail before a held lease lapses.
  milliseconds renew_every() const { return std::max(milliseconds(1), lease() / 3); }
  milliseconds max_hold() const {
    if (options.max_hold.count() > 0) return options.max_hold;
    return lease() * std::max(1, limits.max_in_flight);
  }
  double burst() const {
    return std::max(1.0, static_cast<double>(
                             std::min(limits.rate_per_second, std::max(1, limits.max_in_flight))));
  }

  void refill() {
    const SteadyTime now = clock.steady_now();
    if (unlimited_rate()) {
      last_refill = now;
      return;
    }
    const double elapsed = std::chrono::duration<double>(now - last_refill).count();
    if (elapsed > 0) {
      tokens = std::min(burst(), tokens + elapsed * limits.rate_per_second);
      last_refill = now;
    }
  }

  void request_cycle() {
    if (cycle_posted) return;
    cycle_posted = true;
    boost::asio::post(io, [w = weak_from_this()] {
      if (auto self = w.lock()) self->cycle();
    });
  }

  void schedule_tick() {
    // Renewals ride on the tick, so it comes at least as often as they are due.
    tick_timer.expires_after(
        std::min(milliseconds(std::max(1, limits.drain_interval_ms)), renew_every()));
    tick_timer.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = w.lock()) self->tick();
    });
  }

  void tick() {
    if (!running) return;
    expire_silent_sinks();
    if (options.compact_interval.count() > 0 &&
        clock.steady_now() - last_compact >= options.compact_interval) {
      last_compact = clock.steady_now();
      for (int round = 0; round < 10; ++round) {
        auto n = outbox.compact(1000);
        if (!n) {
          log::warn("outbox compaction failed", {{"ERROR", n.error().to_string()}});
          break;
        }
        if (*n < 1000) break;
      }
    }
    if (auto r = outbox.refresh_metrics(); !r) {
      log::warn("outbox metrics refresh failed", {{"ERROR", r.error().to_string()}});
    }
    request_cycle();
    schedule_tick();
  }

  // A hold whose lease has lapsed (renewal stopped after max_hold, or kept failing) frees its
  // slot: the item is pending again for the next lease().
  void expire_silent_sinks() {
    const SteadyTime now = clock.steady_now();
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->second.lease_until <= now) {
        log::error(
            "outbox sender did not report back while its lease was held; slot freed",
            {{"ITEM", it->first.first},
             {"ATTEMPT", it->first.second},
             {"HELD_MS",
              std::chrono::duration_cast<milliseconds>(now - it->second.handed_over).count()}});
        sink_timeouts.inc();
        it = in_flight.erase(it);
      } else {
        ++it;
      }
    }
    counters.in_flight = static_cast<int>(in_flight.size());
  }

  void complete(LeaseToken token, Outcome outcome) {
    in_flight.erase({token.id, token.attempt});
    counters.in_flight = static_cast<int>(in_flight.size());
    done.emplace_back(token, std::move(outcome));
    request_cycle();
  }

  void arm_rate_timer() {
    if (rate_timer_armed) return;
    rate_timer_armed = true;
    const double missing = std::max(0.0, 1.0 - tokens);
    const auto wait = milliseconds(
        std::max<std::int64_t>(1, std::llround(1000.0 * missing / limits.rate_per_second)));
    rate_timer.expires_after(wait);
    rate_timer.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = w.lock()) {
        self->rate_timer_armed = false;
        self->request_cycle();
      }
    });
  }

  // The holds whose leases are to be extended now: all held ones still within max_hold, once
  // per renew_every().
  std::vector<LeaseToken> due_renewals(SteadyTime now) const {
    std::vector<LeaseToken> out;
    if (!running || now < next_renewal) return out;
    for (const auto& [key, hold] : in_flight) {
      if (hold.lease_until > now && now - hold.handed_over < max_hold()) {
        out.push_back(LeaseToken{key.first, key.second});
      }
    }
    return out;
  }

  void cycle() {
    cycle_posted = false;
    refill();
    const int free_slots =
        std::max(0, std::max(1, limits.max_in_flight) - static_cast<int>(in_flight.size()));
    int want = running ? std::min(free_slots, options.lease_batch) : 0;
    if (!unlimited_rate()) {
      want = std::min(want, static_cast<int>(std::floor(tokens)));
      if (running && free_slots > 0 && want == 0) arm_rate_timer();
    }
    const SteadyTime started = clock.steady_now();
    const std::vector<LeaseToken> renew = due_renewals(started);
    if (done.empty() && want == 0 && renew.empty()) return;

    auto txn = outbox.database().begin();
    if (!txn) {
      ++counters.cycle_errors;
      log::warn("outbox drain cycle could not begin", {{"ERROR", txn.error().to_string()}});
      return;  // outcomes stay queued; the next tick retries
    }
    Counters delta;
    for (const auto& [token, outcome] : done) {
      auto r = outbox.apply(*txn, token, outcome);
      if (!r) {
        if (r.error().code == Errc::kNotFound) {
          ++delta.stale;
          log::info("outbox outcome for a lease no longer held ignored",
                    {{"ITEM", token.id}, {"ATTEMPT", token.attempt}});
          continue;
        }
        ++counters.cycle_errors;
        log::warn("outbox outcome could not be applied; will retry",
                  {{"ITEM", token.id}, {"ERROR", r.error().to_string()}});
        return;  // the transaction rolls back; every outcome is applied again next time
      }
      switch (outcome.kind) {
        case Outcome::Kind::kAck:
          ++delta.acked;
          break;
        case Outcome::Kind::kRetry:
          ++delta.retried;
          break;
        case Outcome::Kind::kPark:
          ++delta.parked;
          break;
      }
    }
    std::vector<LeaseToken> lost;
    if (!renew.empty()) {
      auto refused = outbox.extend_leases(*txn, renew, lease());
      if (!refused) {
        ++counters.cycle_errors;
        log::warn("outbox lease renewal failed; will retry",
                  {{"ERROR", refused.error().to_string()}});
        return;
      }
      lost = std::move(*refused);
    }
    std::vector<Item> items;
    if (want > 0) {
      auto leased = outbox.lease(*txn, options.topics, want, lease());
      if (!leased) {
        ++counters.cycle_errors;
        log::warn("outbox lease failed", {{"ERROR", leased.error().to_string()}});
        return;
      }
      items = std::move(*leased);
    }
    if (auto c = txn->commit(); !c) {
      ++counters.cycle_errors;
      log::warn("outbox drain cycle could not commit; will retry",
                {{"ERROR", c.error().to_string()}});
      return;
    }
    done.clear();
    if (!renew.empty()) {
      // Measured from before the transaction: the stored expiry is at least this late.
      for (const LeaseToken& t : renew) {
        if (auto it = in_flight.find({t.id, t.attempt}); it != in_flight.end()) {
          it->second.lease_until = started + lease();
        }
      }
      for (const LeaseToken& t : lost) {
        // Expired before the renewal came (the loop or the database stalled): the item may be
        // handed out again, so this send no longer holds a slot.
        log::warn(
            "outbox lease expired while its sender still held the item; it may be sent "
            "again",
            {{"ITEM", t.id}, {"ATTEMPT", t.attempt}});
        in_flight.erase({t.id, t.attempt});
      }
      counters.renewed += static_cast<std::int64_t>(renew.size() - lost.size());
      counters.lost += static_cast<std::int64_t>(lost.size());
      counters.in_flight = static_cast<int>(in_flight.size());
      next_renewal = started + renew_every();
    }
    counters.acked += delta.acked;
    counters.retried += delta.retried;
    counters.parked += delta.parked;
    counters.stale += delta.stale;
    if (!unlimited_rate()) tokens -= static_cast<double>(items.size());

    // The first hold starts the renewal cadence; later ones join it (renewed early, harmless).
    if (in_flight.empty() && !items.empty()) next_renewal = started + renew_every();
    // The lease was stamped inside the transaction, so it ends no earlier than this.
    const Hold hold{started, started + lease()};
    for (const Item& item : items) {
      in_flight[{item.id, item.attempts}] = hold;
    }
    counters.in_flight = static_cast<int>(in_flight.size());
    counters.max_in_flight_seen = std::max(counters.max_in_flight_seen, counters.in_flight);
    counters.dispatched += static_cast<std::int64_t>(items.size());
    // A full batch suggests more is ready: look again once these are on their way.
    if (running && static_cast<int>(items.size()) == want && want > 0) request_cycle();
    for (const Item& item : items) {
      auto once = std::make_shared<std::atomic<bool>>(false);
      Completion completion = [w = weak_from_this(), token = item.token(), once,
                               &io = io](Outcome outcome) {
        if (once->exchange(true)) return;
        boost::asio::post(io, [w, token, outcome = std::move(outcome)]() mutable {
          if (auto self = w.lock()) self->complete(token, std::move(outcome));
        });
      };
      sink(item, std::move(completion));
    }
  }
};

Drainer::Drainer(boost::asio::io_context& io, Outbox& outbox, const config::QueueLimits& limits,
                 const Clock& clock, Sink sink, DrainerOptions options)
    : impl_(
          std::make_shared<Impl>(io, outbox, limits, clock, std::move(sink), std::move(options))) {}

Drainer::~Drainer() {
  impl_->running = false;
  impl_->tick_timer.cancel();
  impl_->rate_timer.cancel();
}

void Drainer::start() {
  if (impl_->running) return;
  impl_->running = true;
  impl_->schedule_tick();
  impl_->request_cycle();
}

void Drainer::stop() {
  impl_->running = false;
  impl_->tick_timer.cancel();
  impl_->rate_timer.cancel();
  impl_->rate_timer_armed = false;
}

void Drainer::link_up() {
  boost::asio::post(impl_->io, [w = std::weak_ptr<Impl>(impl_)] {
    if (auto self = w.lock()) {
      if (self->running) self->request_cycle();
    }
  });
}

Drainer::Counters Drainer::counters() const { return impl_->counters; }

}  // namespace lanegate::queue
