#pragma once
// The guess limit for human claim codes: wrong codes counted per client key (an IPv4
// address or an IPv6 /64, see claim_client_key in gateway/src/api_routes.cc), in memory.
//
// Why in memory (issue 13). The counters used to be a SQLite table (invoice_code_guess):
// every wrong code was a BEGIN IMMEDIATE + commit + fsync on the io thread that also
// decides barriers, and one row per client key stayed for ever, so enough addresses on the
// public endpoint grew the database to [gateway] max_database_mb and put the whole site in
// attendant mode. A counter is not a money record (CONVENTIONS 8 does not apply), so it
// now lives in a table of at most `max_clients` entries in this process:
//   - a wrong code costs no disk write and no transaction, only a few map operations;
//   - memory is bounded: about 240 bytes per entry (measured with IPv6 /64 keys), under
//     4 MB at kGuessMaxClients;
//   - what is lost: counters and lockouts start empty when lanegated starts (a restart
//     gives each key at most max_failures more guesses; lanegated restarts on a crash, an
//     upgrade or an operator's request, not at a client's).
// The limit is unchanged: `max_failures` wrong codes within `window` of the first lock
// the key for `lockout` (the window then starts afresh). Times are measured on the steady
// clock (Clock::steady_now), so a wall-clock step neither ends nor extends a lockout.
//
// Eviction, when a new key arrives and the table is full:
//   1. entries whose window and lockout are both over carry no state and are dropped
//      first (they are also dropped whenever a wrong code is recorded);
//   2. otherwise the entry with the least at stake goes: an unlocked key before a locked
//      one, fewer wrong codes before more, then the one closest to expiring, then the
//      oldest. So a guesser who wants its own counter (or lockout) forgotten has to fill
//      the whole table with keys that each spent at least as many wrong codes: about
//      max_clients x its own count of guesses, each one counted against the key that made
//      it. Eviction only ever forgets counts, it never locks a key that did not guess.
//   Evictions are counted in lanegate_invoice_claim_code_evictions_total; the number of
//   keys held is the gauge lanegate_invoice_claim_code_clients.
// Not defended (docs/SECURITY.md): an attacker with more keys than max_clients (an IPv6
// /50 holds 16384 /64s) gets more than max_failures guesses per key and window once the
// table cycles; without the bound it got max_failures per key and window anyway, and
// filled the disk.
//
// Threading: not thread-safe; one thread at a time (the io thread, through ClaimStore).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"

namespace lanegate::invoice {

// How many client keys the guess limit tracks at most. A constant rather than an
// [invoicing] key: the bound is about memory and the cost of a flood, not a site's policy.
inline constexpr std::size_t kGuessMaxClients = 16384;

class CodeGuessLimit {
 public:
  struct Policy {
    int max_failures = 5;
    std::chrono::seconds window{600};
    std::chrono::seconds lockout{900};
    std::size_t max_clients = kGuessMaxClients;
  };

  // REQUIRES: max_failures >= 1, window and lockout > 0, max_clients >= 1 (checked: a
  // violation is a programming error and aborts); `clock` outlives the limit.
  CodeGuessLimit(const Clock& clock, Policy policy);
  // Entries point into each other's nodes: moving keeps the nodes, copying would not.
  CodeGuessLimit(const CodeGuessLimit&) = delete;
  CodeGuessLimit& operator=(const CodeGuessLimit&) = delete;
  CodeGuessLimit(CodeGuessLimit&&) = default;

  // Remaining lockout of `client_key` (rounded up to whole seconds), or nullopt when it
  // may guess.
  std::optional<std::chrono::seconds> retry_after(std::string_view client_key) const;

  // Counts one wrong code against `client_key`. Returns true when this one locked it.
  bool record_miss(std::string_view client_key);

  // Keys currently held (<= policy().max_clients) and entries evicted so far.
  std::size_t TEST_tracked() const { return entries_.size(); }
  std::uint64_t TEST_evictions() const { return evictions_; }
  const Policy& policy() const { return policy_; }

 private:
  struct Entry {
    const std::string* key = nullptr;  // the map node's key (stable while the node lives)
    int failures = 0;
    SteadyTime window_start{};
    std::optional<SteadyTime> locked_until;
    SteadyTime expires{};   // when neither the window nor a lockout is left
    std::uint64_t seq = 0;  // insertion order: the last tie-break
  };
  // Orders entries by when they stop mattering (for dropping expired ones).
  struct ByExpiry {
    bool operator()(const Entry* a, const Entry* b) const;
  };
  // Orders entries by what is at stake, least first (for eviction).
  struct ByStake {
    bool operator()(const Entry* a, const Entry* b) const;
  };

  void link(Entry& e);
  void unlink(Entry& e);
  void erase(Entry& e);
  void drop_expired(SteadyTime now);
  void evict_one(SteadyTime now);
  void publish_size();

  const Clock& clock_;
  Policy policy_;
  std::unordered_map<std::string, Entry> entries_;
  // Both hold every entry of entries_; an entry's ordering fields change only while it is
  // unlinked from them.
  std::set<Entry*, ByExpiry> by_expiry_;
  std::set<Entry*, ByStake> by_stake_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t evictions_ = 0;
  std::optional<SteadyTime> last_eviction_log_;
};

}  // namespace lanegate::invoice
