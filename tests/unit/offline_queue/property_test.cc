// Property test: random sequences of enqueue / lease / ack / retry / park / unpark /
// retry_now / compact / crash / time passing, run against the real outbox and against a
// plain in-memory model of the documented rules (queue.h invariants). After every step the
// two must agree on results and on every item's state, head flag, attempts and times.

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "queue_fixture.h"

namespace lanegate::queue::testing {
namespace {

using std::chrono::milliseconds;

struct ModelItem {
  std::int64_t id = 0, seq = 0;
  std::string topic, key, idem, payload;
  ItemState state = ItemState::kPending;
  std::int64_t attempts = 0, retries = 0;
  std::int64_t created = 0, available = 0;
  std::optional<std::int64_t> lease_expires, finished;
  std::string last_error;
};

// The rules of queue.h, written as directly as possible.
class Model {
 public:
  explicit Model(const config::QueueLimits& limits) : limits_(limits) {}

  std::map<std::int64_t, ModelItem> items;

  bool active(const ModelItem& i) const {
    return i.state == ItemState::kPending || i.state == ItemState::kLeased;
  }
  bool head(const ModelItem& i) const {
    if (!active(i)) return false;
    if (i.key.empty()) return true;
    for (const auto& [id, o] : items) {
      if (o.id != i.id && active(o) && o.key == i.key &&
          std::pair(o.seq, o.id) < std::pair(i.seq, i.id)) {
        return false;
      }
    }
    return true;
  }
  std::int64_t max_id() const { return items.empty() ? 0 : items.rbegin()->first; }

  Result<Enqueued> enqueue(std::int64_t now, const std::string& topic, const std::string& key,
                           const std::string& idem, const std::string& payload) {
    for (const auto& [id, i] : items) {
      if (i.idem == idem) return Enqueued{id, false};
    }
    std::int64_t rows = 0, bytes = 0;
    for (const auto& [id, i] : items) {
      if (i.state != ItemState::kAcked) {
        ++rows;
        bytes += static_cast<std::int64_t>(i.payload.size());
      }
    }
    if (rows >= limits_.max_rows) return fail(Errc::kQueueFull, "rows");
    if (bytes + static_cast<std::int64_t>(payload.size()) > limits_.max_bytes) {
      return fail(Errc::kQueueFull, "bytes");
    }
    ModelItem m;
    m.id = m.seq = max_id() + 1;
    m.topic = topic;
    m.key = key;
    m.idem = idem;
    m.payload = payload;
    m.created = m.available = now;
    items[m.id] = m;
    return Enqueued{m.id, true};
  }

  std::vector<std::pair<std::int64_t, std::int64_t>> lease(std::int64_t now, int n,
                                                           std::int64_t duration) {
    for (auto& [id, i] : items) {
      if (i.state == ItemState::kLeased &&
          (*i.lease_expires <= now || *i.lease_expires > now + kMaxLease.count())) {
        i.state = ItemState::kPending;
        i.available = now;
        i.lease_expires.reset();
        i.last_error = "lease expired";
      }
    }
    std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>> ready;
    for (const auto& [id, i] : items) {
      if (i.state == ItemState::kPending && head(i) && i.available <= now) {
        ready.emplace_back(i.available, i.seq, i.id);
      }
    }
    std::sort(ready.begin(), ready.end());
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (const auto& [a, s, id] : ready) {
      if (static_cast<int>(out.size()) == n) break;
      ModelItem& i = items[id];
      i.state = ItemState::kLeased;
      ++i.attempts;
      i.lease_expires = now + duration;
      out.emplace_back(id, i.attempts);
    }
    return out;
  }

  Status ack(std::int64_t now, LeaseToken t) {
    auto it = items.find(t.id);
    if (it == items.end()) return fail(Errc::kNotFound, "");
    ModelItem& i = it->second;
    if (i.state == ItemState::kAcked) return {};
    i.state = ItemState::kAcked;
    i.finished = now;
    i.lease_expires.reset();
    return {};
  }

  Status retry(std::int64_t now, LeaseToken t, const std::string& error,
               std::optional<milliseconds> after) {
    auto it = items.find(t.id);
    if (it == items.end()) return fail(Errc::kNotFound, "");
    ModelItem& i = it->second;
    if (i.state != ItemState::kLeased || i.attempts != t.attempt) return fail(Errc::kNotFound, "");
    const milliseconds cap(limits_.retry_cap_ms);
    const milliseconds delay =
        after ? std::min(*after, cap)
              : backoff_delay(i.retries + 1, milliseconds(limits_.retry_base_ms), cap, 1.0);
    ++i.retries;
    i.state = ItemState::kPending;
    i.available = now + delay.count();
    i.lease_expires.reset();
    i.last_error = error;
    return {};
  }

  Status park(std::int64_t now, LeaseToken t, const std::string& error) {
    auto it = items.find(t.id);
    if (it == items.end()) return fail(Errc::kNotFound, "");
    ModelItem& i = it->second;
    if (i.state != ItemState::kLeased || i.attempts != t.attempt) return fail(Errc::kNotFound, "");
    i.state = ItemState::kParked;
    i.finished = now;
    i.lease_expires.reset();
    i.last_error = error;
    return {};
  }

  Status unpark(std::int64_t now, std::int64_t id) {
    auto it = items.find(id);
    if (it == items.end()) return fail(Errc::kNotFound, "");
    ModelItem& i = it->second;
    if (i.state != ItemState::kParked) return fail(Errc::kInvalidArgument, "");
    std::int64_t seq = max_id();
    for (const auto& [oid, o] : items) {
      if (!i.key.empty() && active(o) && o.key == i.key) seq = std::max(seq, o.seq);
    }
    i.seq = seq + 1;
    i.state = ItemState::kPending;
    i.available = now;
    i.retries = 0;
    i.finished.reset();
    return {};
  }

  Status retry_now(std::int64_t now, std::int64_t id) {
    auto it = items.find(id);
    if (it == items.end()) return fail(Errc::kNotFound, "");
    ModelItem& i = it->second;
    if (i.state != ItemState::kPending) return fail(Errc::kInvalidArgument, "");
    i.available = now;
    i.retries = 0;
    return {};
  }

  std::int64_t compact(std::int64_t now) {
    const std::int64_t cutoff = now - std::int64_t{limits_.acked_retention_hours} * 3'600'000;
    const std::int64_t top = max_id();
    std::int64_t n = 0;
    for (auto it = items.begin(); it != items.end();) {
      if (it->second.state == ItemState::kAcked && *it->second.finished <= cutoff &&
          it->first < top) {
        it = items.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

 private:
  const config::QueueLimits& limits_;
};

class PropertyTest : public QueueTest, public ::testing::WithParamInterface<int> {
 protected:
  PropertyTest() {
    limits_.max_rows = 12;
    limits_.max_bytes = 160;
    limits_.acked_retention_hours = 1;
    limits_.retry_base_ms = 1000;
    limits_.retry_cap_ms = 8000;
  }

  void expect_same(const Model& model, int step) {
    auto st = db_->prepare(
        "SELECT id, seq, topic, ordering_key, idempotency_key, payload, state, head, attempts, "
        "retries, created_ms, available_ms, lease_expires_ms, finished_ms, last_error "
        "FROM outbox_item ORDER BY id");
    ASSERT_TRUE(st.has_value());
    auto mit = model.items.begin();
    for (;;) {
      auto row = st->step();
      ASSERT_TRUE(row.has_value());
      if (!*row) break;
      ASSERT_NE(mit, model.items.end())
          << "step " << step << ": queue has extra item " << st->column_int64(0);
      const ModelItem& m = mit->second;
      const std::string where = "step " + std::to_string(step) + " item " + std::to_string(m.id);
      EXPECT_EQ(st->column_int64(0), m.id) << where;
      EXPECT_EQ(st->column_int64(1), m.seq) << where;
      EXPECT_EQ(st->column_text(2), m.topic) << where;
      EXPECT_EQ(st->column_opt_text(3).value_or(""), m.key) << where;
      EXPECT_EQ(st->column_text(4), m.idem) << where;
      EXPECT_EQ(st->column_text(5), m.payload) << where;
      EXPECT_EQ(st->column_int64(6), static_cast<int>(m.state)) << where;
      EXPECT_EQ(st->column_int64(7) != 0, model.head(m)) << where << " head flag";
      EXPECT_EQ(st->column_int64(8), m.attempts) << where;
      EXPECT_EQ(st->column_int64(9), m.retries) << where;
      EXPECT_EQ(st->column_int64(10), m.created) << where;
      if (m.state == ItemState::kPending) {
        EXPECT_EQ(st->column_int64(11), m.available) << where;
      }
      EXPECT_EQ(st->column_opt_int64(12), m.lease_expires) << where;
      EXPECT_EQ(st->column_opt_int64(13), m.finished) << where;
      EXPECT_EQ(st->column_opt_text(14).value_or(""), m.last_error) << where;
      ++mit;
    }
    EXPECT_EQ(mit, model.items.end()) << "step " << step << ": queue lacks items";
    // The trigger-kept counters agree with the rows.
    auto stats = outbox_->stats();
    ASSERT_TRUE(stats.has_value());
    std::int64_t live = 0, parked = 0, leased = 0;
    for (const auto& [id, m] : model.items) {
      live += m.state != ItemState::kAcked;
      parked += m.state == ItemState::kParked;
      leased += m.state == ItemState::kLeased;
    }
    EXPECT_EQ(stats->live_rows, live) << "step " << step;
    EXPECT_EQ(stats->parked, parked) << "step " << step;
    EXPECT_EQ(stats->leased, leased) << "step " << step;
  }
};

TEST_P(PropertyTest, QueueAgreesWithTheModel) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(GetParam()) * 7919 + 17);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  Model model(limits_);
  std::vector<LeaseToken> tokens;  // every lease ever handed out, stale ones included
  const std::string topics[] = {"charge", "invoice"};
  const std::string keys[] = {"", "s1", "s2", "s3"};
  const milliseconds lease_dur(limits_.lease_ms);
  int next_idem = 0;
  auto now = [&] { return clock_.unix_millis(); };

  for (int step = 0; step < 150 && !HasFailure(); ++step) {
    const int op = pick(100);
    if (op < 30) {  // enqueue (sometimes a duplicate key)
      const std::string idem =
          "i" + std::to_string(pick(4) == 0 && next_idem > 0 ? pick(next_idem) : next_idem++);
      const std::string& topic = topics[pick(2)];
      const std::string& key = keys[pick(4)];
      const std::string payload(static_cast<std::size_t>(pick(30)), 'p');
      auto got = enqueue(topic, key, idem, payload);
      auto want = model.enqueue(now(), topic, key, idem, payload);
      ASSERT_EQ(got.has_value(), want.has_value()) << "step " << step;
      if (got) {
        EXPECT_EQ(got->id, want->id);
        EXPECT_EQ(got->created, want->created);
      } else {
        EXPECT_EQ(got.error().code, want.error().code);
      }
    } else if (op < 50) {  // lease
      const int n = 1 + pick(4);
      auto got = outbox_->lease({}, n, lease_dur);
      ASSERT_TRUE(got.has_value()) << got.error().to_string();
      auto want = model.lease(now(), n, lease_dur.count());
      std::vector<std::pair<std::int64_t, std::int64_t>> got_ids;
      for (const auto& i : *got) {
        got_ids.emplace_back(i.id, i.attempts);
        tokens.push_back(i.token());
      }
      EXPECT_EQ(got_ids, want) << "step " << step;
    } else if (op < 75 && !tokens.empty()) {  // an outcome, for a fresh or a stale lease
      const LeaseToken t =
          pick(3) == 0 ? tokens[pick(static_cast<int>(tokens.size()))] : tokens.back();
      const int kind = pick(4);
      Status got, want;
      if (kind <= 1) {
        got = outbox_->ack(t);
        want = model.ack(now(), t);
      } else if (kind == 2) {
        std::optional<milliseconds> after;
        if (pick(2) == 0) after = milliseconds(pick(20'000));
        got = outbox_->retry(t, "e" + std::to_string(step), after);
        want = model.retry(now(), t, "e" + std::to_string(step), after);
      } else {
        got = outbox_->park(t, "p" + std::to_string(step));
        want = model.park(now(), t, "p" + std::to_string(step));
      }
      ASSERT_EQ(got.has_value(), want.has_value()) << "step " << step << " kind " << kind;
      if (!got) {
        EXPECT_EQ(got.error().code, want.error().code);
      }
    } else if (op < 80) {  // operator actions
      const std::int64_t id = 1 + pick(static_cast<int>(model.max_id() + 1));
      Status got, want;
      if (pick(2) == 0) {
        got = outbox_->unpark(id);
        want = model.unpark(now(), id);
      } else {
        got = outbox_->retry_now(id);
        want = model.retry_now(now(), id);
      }
      ASSERT_EQ(got.has_value(), want.has_value()) << "step " << step << " id " << id;
      if (!got) {
        EXPECT_EQ(got.error().code, want.error().code);
      }
    } else if (op < 83) {  // compaction
      auto got = outbox_->compact(1'000'000);
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, model.compact(now())) << "step " << step;
    } else if (op < 88) {  // crash, possibly with an enqueue in an uncommitted transaction
      if (pick(2) == 0) {
        auto txn = db_->begin();
        ASSERT_TRUE(txn.has_value());
        (void)outbox_->enqueue(*txn, "charge", "s1", "never-committed-" + std::to_string(step),
                               "x");
        // The process dies here: the transaction never commits.
      }
      restart();
    } else {  // time passes: within backoff, past leases, past retention
      static constexpr std::int64_t kSteps[] = {1, 500, 1000, 4000, 30'000, 3'600'000};
      clock_.advance(milliseconds(kSteps[pick(6)]));
    }
    expect_same(model, step);
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PropertyTest, ::testing::Range(0, 16));

}  // namespace
}  // namespace lanegate::queue::testing
