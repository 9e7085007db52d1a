#include "invoice/guess_limit.h"

#include <algorithm>
#include <cstdlib>
#include <tuple>

#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::invoice {
namespace {

metrics::Counter& eviction_counter() {
  static metrics::Counter& c = metrics::Registry::global().counter(
      "lanegate_invoice_claim_code_evictions_total",
      "Client keys the claim-code guess limit forgot early because its table was full");
  return c;
}

metrics::Gauge& clients_gauge() {
  static metrics::Gauge& g = metrics::Registry::global().gauge(
      "lanegate_invoice_claim_code_clients",
      "Client keys the claim-code guess limit holds (wrong codes within the window or locked)");
  return g;
}

}  // namespace

bool CodeGuessLimit::ByExpiry::operator()(const Entry* a, const Entry* b) const {
  return std::tie(a->expires, a->seq) < std::tie(b->expires, b->seq);
}

bool CodeGuessLimit::ByStake::operator()(const Entry* a, const Entry* b) const {
  const bool a_locked = a->locked_until.has_value();
  const bool b_locked = b->locked_until.has_value();
  return std::tie(a_locked, a->failures, a->expires, a->seq) <
         std::tie(b_locked, b->failures, b->expires, b->seq);
}

CodeGuessLimit::CodeGuessLimit(const Clock& clock, Policy policy) : clock_(clock), policy_(policy) {
  if (policy_.max_failures < 1 || policy_.window.count() <= 0 || policy_.lockout.count() <= 0 ||
      policy_.max_clients < 1) {
    log::error("claim-code guess limit: invalid policy");
    std::abort();
  }
}

std::optional<std::chrono::seconds> CodeGuessLimit::retry_after(std::string_view client_key) const {
  auto it = entries_.find(std::string(client_key));
  if (it == entries_.end() || !it->second.locked_until) {
    return std::nullopt;
  }
  const SteadyTime now = clock_.steady_now();
  if (*it->second.locked_until <= now) {
    return std::nullopt;
  }
  return std::chrono::ceil<std::chrono::seconds>(*it->second.locked_until - now);
}

bool CodeGuessLimit::record_miss(std::string_view client_key) {
  const SteadyTime now = clock_.steady_now();
  drop_expired(now);
  auto it = entries_.find(std::string(client_key));
  const bool fresh = it == entries_.end();
  if (fresh) {
    if (entries_.size() >= policy_.max_clients) {
      evict_one(now);
    }
    it = entries_.emplace(std::string(client_key), Entry{}).first;
    it->second.key = &it->first;
    it->second.seq = next_seq_++;
  } else {
    unlink(it->second);
  }
  Entry& e = it->second;
  // The same arithmetic as the SQL table had: a miss after the window starts a new one.
  if (fresh || now - e.window_start >= policy_.window) {
    e.failures = 0;
    e.window_start = now;
  }
  ++e.failures;
  e.locked_until.reset();
  bool locked = false;
  if (e.failures >= policy_.max_failures) {
    e.locked_until = now + policy_.lockout;
    e.failures = 0;
    e.window_start = now;
    locked = true;
  }
  e.expires = std::max(e.window_start + policy_.window, e.locked_until.value_or(SteadyTime{}));
  link(e);
  publish_size();
  return locked;
}

void CodeGuessLimit::link(Entry& e) {
  by_expiry_.insert(&e);
  by_stake_.insert(&e);
}

void CodeGuessLimit::unlink(Entry& e) {
  by_expiry_.erase(&e);
  by_stake_.erase(&e);
}

void CodeGuessLimit::erase(Entry& e) {
  unlink(e);
  const std::string key = *e.key;  // e dies with its node
  entries_.erase(key);
}

void CodeGuessLimit::drop_expired(SteadyTime now) {
  while (!by_expiry_.empty() && (*by_expiry_.begin())->expires <= now) {
    erase(**by_expiry_.begin());
  }
}

void CodeGuessLimit::evict_one(SteadyTime now) {
  if (by_stake_.empty()) {
    return;
  }
  Entry& victim = **by_stake_.begin();
  const bool was_locked = victim.locked_until.has_value();
  erase(victim);
  ++evictions_;
  eviction_counter().inc();
  // A flood evicts on every request: say so at most once a minute, not once per miss.
  if (!last_eviction_log_ || now - *last_eviction_log_ >= std::chrono::minutes(1)) {
    last_eviction_log_ = now;
    log::warn("claim-code guess table full: forgetting the client key with the least at stake",
              {{"MAX_CLIENTS", static_cast<std::int64_t>(policy_.max_clients)},
               {"EVICTED_LOCKED", was_locked},
               {"EVICTIONS", static_cast<std::int64_t>(evictions_)}});
  }
}

void CodeGuessLimit::publish_size() {
  clients_gauge().set(static_cast<std::int64_t>(entries_.size()));
}

}  // namespace lanegate::invoice
