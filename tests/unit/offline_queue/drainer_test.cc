// The drain loop against a real io_context and a real database: bounded in-flight, per-key
// order, outcomes applied, link_up kicks, rate limit, silent senders.

#include "offline_queue/drainer.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <deque>
#include <map>
#include <thread>

#include "core/metrics.h"
#include "queue_fixture.h"

namespace lanegate::queue::testing {
namespace {

using std::chrono::milliseconds;

class DrainerTest : public QueueTest {
 protected:
  DrainerTest() {
    limits_.rate_per_second = 0;  // unlimited unless a test says otherwise
    limits_.max_in_flight = 8;
    limits_.drain_interval_ms = 5;
  }

  // Runs the loop until `done` holds or 10 s pass (a bound, not a timing assertion).
  template <typename Pred>
  bool run_until(Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.restart();
      io_.run_for(milliseconds(5));
    }
    return true;
  }

  void run_for(milliseconds d) {
    io_.restart();
    io_.run_for(d);
  }

  boost::asio::io_context io_;
};

TEST_F(DrainerTest, DeliversEveryItemOnceKeepingPerKeyOrderAndTheInFlightBound) {
  constexpr int kItems = 120;
  for (int i = 0; i < kItems; ++i) {
    must_enqueue("charge", "session-" + std::to_string(i % 11), "c" + std::to_string(i),
                 std::to_string(i));
  }
  std::map<std::string, std::vector<int>> order_by_key;
  std::map<std::int64_t, int> sends;
  std::deque<Drainer::Completion> outstanding;
  std::size_t max_outstanding = 0;
  Drainer drainer(io_, *outbox_, limits_, clock_, [&](const Item& item, Drainer::Completion done) {
    order_by_key[item.ordering_key].push_back(std::stoi(item.payload));
    ++sends[item.id];
    outstanding.push_back(std::move(done));
    max_outstanding = std::max(max_outstanding, outstanding.size());
    // Answer later, from the loop, in arrival order.
    boost::asio::post(io_, [&] {
      auto d = std::move(outstanding.front());
      outstanding.pop_front();
      d(Outcome::ack());
    });
  });
  drainer.start();
  ASSERT_TRUE(run_until([&] { return drainer.counters().acked == kItems; }));
  EXPECT_EQ(max_outstanding, 8u);  // the bound is reached and never exceeded
  EXPECT_EQ(count_rows("state = 2"), kItems);
  for (const auto& [id, n] : sends) EXPECT_EQ(n, 1) << "item " << id;
  for (const auto& [key, order] : order_by_key) {
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << key;
  }
}

TEST_F(DrainerTest, AppliesRetryAndParkOutcomesAndCompletionFromAnotherThread) {
  const auto ok = must_enqueue("charge", "a", "c1", "ok");
  const auto flaky = must_enqueue("charge", "b", "c2", "flaky");
  const auto bad = must_enqueue("charge", "c", "c3", "bad");
  int flaky_calls = 0;
  std::vector<std::thread> threads;
  Drainer drainer(io_, *outbox_, limits_, clock_, [&](const Item& item, Drainer::Completion done) {
    Outcome outcome = Outcome::ack();
    if (item.payload == "bad") outcome = Outcome::park("400 INVALID_REQUEST");
    if (item.payload == "flaky" && flaky_calls++ == 0)
      outcome = Outcome::retry("503", milliseconds(0));
    threads.emplace_back([done = std::move(done), outcome] {
      done(outcome);
      done(Outcome::park("a second call is ignored"));
    });
  });
  drainer.start();
  ASSERT_TRUE(run_until([&] {
    const auto c = drainer.counters();
    return c.acked == 2 && c.parked == 1;
  }));
  for (auto& t : threads) t.join();
  EXPECT_EQ(drainer.counters().retried, 1);
  EXPECT_EQ(outbox_->get(ok)->state, ItemState::kAcked);
  EXPECT_EQ(outbox_->get(flaky)->state, ItemState::kAcked);
  EXPECT_EQ(outbox_->get(flaky)->attempts, 2);
  auto parked = outbox_->get(bad);
  EXPECT_EQ(parked->state, ItemState::kParked);
  EXPECT_EQ(parked->last_error, "400 INVALID_REQUEST");
}

TEST_F(DrainerTest, LinkUpDrainsWithoutWaitingForTheTimer) {
  limits_.drain_interval_ms = 3'600'000;
  int sent = 0;
  Drainer drainer(io_, *outbox_, limits_, clock_, [&](const Item&, Drainer::Completion done) {
    ++sent;
    done(Outcome::ack());
  });
  drainer.start();
  run_for(milliseconds(20));  // the start-up cycle finds nothing
  must_enqueue("charge", "a", "c1");
  run_for(milliseconds(20));
  EXPECT_EQ(sent, 0);  // no tick for an hour
  drainer.link_up();
  ASSERT_TRUE(run_until([&] { return drainer.counters().acked == 1; }));
  EXPECT_EQ(sent, 1);
}

TEST_F(DrainerTest, RateLimitStartsNoMoreThanTheBudget) {
  limits_.rate_per_second = 5;  // burst 5 (< max_in_flight 8)
  for (int i = 0; i < 20; ++i)
    must_enqueue("charge", "k" + std::to_string(i), "c" + std::to_string(i));
  Drainer drainer(io_, *outbox_, limits_, clock_,
                  [&](const Item&, Drainer::Completion done) { done(Outcome::ack()); });
  drainer.start();
  ASSERT_TRUE(run_until([&] { return drainer.counters().acked == 5; }));
  run_for(milliseconds(300));  // the fake clock stands still: no new tokens
  EXPECT_EQ(drainer.counters().dispatched, 5);
  clock_.advance(std::chrono::seconds(1));
  ASSERT_TRUE(run_until([&] { return drainer.counters().acked == 10; }));
  run_for(milliseconds(300));
  EXPECT_EQ(drainer.counters().dispatched, 10);
}

TEST_F(DrainerTest, SilentSenderLosesItsSlotAndTheItemIsSentAgain) {
  limits_.max_in_flight = 1;
  limits_.lease_ms = 1000;
  const auto id = must_enqueue("charge", "a", "c1");
  auto& timeouts = metrics::Registry::global().counter("lanegate_queue_sink_timeouts_total", "");
  const auto before = timeouts.value();
  std::vector<Item> seen;
  Drainer drainer(io_, *outbox_, limits_, clock_, [&](const Item& item, Drainer::Completion done) {
    seen.push_back(item);
    if (seen.size() > 1) done(Outcome::ack());  // the first send never reports back
  });
  drainer.start();
  ASSERT_TRUE(run_until([&] { return seen.size() == 1; }));
  clock_.advance(milliseconds(1000));
  ASSERT_TRUE(run_until([&] { return drainer.counters().acked == 1; }));
  EXPECT_EQ(timeouts.value() - before, 1);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].id, id);
  EXPECT_EQ(seen[1].attempts, 2);
}

// Issue 13: with lease_ms 1000 a 2.5 s provider call had its charge leased again, and sent
// again, twice while the first request was still in flight. The drainer keeps the lease of
// an item its sink still holds alive, so the item goes out once however long the call takes.
TEST_F(DrainerTest, ASendSlowerThanTheLeaseIsNotLeasedAgainWhileInFlight) {
  limits_.lease_ms = 1000;
  const auto id = must_enqueue("charge", "a", "c1");
  std::vector<Item> seen;
  Drainer::Completion first;
  Drainer drainer(io_, *outbox_, limits_, clock_, [&](const Item& item, Drainer::Completion done) {
    seen.push_back(item);
    if (!first) {
      first = std::move(done);  // the slow call: answers after 2.5 leases
    } else {
      done(Outcome::ack());  // a second dispatch (the defect) answers at once
    }
  });
  drainer.start();
  ASSERT_TRUE(run_until([&] { return seen.size() == 1; }));
  // 2.5 s of (fake) time in 100 ms steps, the loop running in between as it would.
  for (int step = 0; step < 25; ++step) {
    clock_.advance(milliseconds(100));
    run_for(milliseconds(10));
  }
  first(Outcome::ack());
  ASSERT_TRUE(run_until([&] { return outbox_->get(id)->state == ItemState::kAcked; }));
  run_for(milliseconds(20));
  EXPECT_EQ(seen.size(), 1u) << "the item was leased and sent again while its first send was "
                                "still in flight";
  EXPECT_EQ(outbox_->get(id)->attempts, 1);
  EXPECT_EQ(drainer.counters().stale, 0);
  EXPECT_GE(drainer.counters().renewed, 5);  // every lease_ms / 3 over 2.5 s
  EXPECT_EQ(drainer.counters().lost, 0);
}

TEST_F(DrainerTest, ASilentSenderIsRenewedOnlyUpToMaxHoldThenTheItemGoesOutAgain) {
  limits_.lease_ms = 1000;
  DrainerOptions options;
  options.max_hold = milliseconds(2000);
  const auto id = must_enqueue("charge", "a", "c1");
  auto& timeouts = metrics::Registry::global().counter("lanegate_queue_sink_timeouts_total", "");
  const auto before = timeouts.value();
  std::vector<Item> seen;
  Drainer drainer(
      io_, *outbox_, limits_, clock_,
      [&](const Item& item, Drainer::Completion done) {
        seen.push_back(item);
        if (seen.size() > 1) done(Outcome::ack());  // the first send never reports back
      },
      options);
  drainer.start();
  ASSERT_TRUE(run_until([&] { return seen.size() == 1; }));
  milliseconds elapsed{0};
  while (seen.size() == 1 && elapsed < milliseconds(5000)) {
    clock_.advance(milliseconds(100));
    elapsed += milliseconds(100);
    run_for(milliseconds(10));
  }
  ASSERT_EQ(seen.size(), 2u);
  // Renewed while within max_hold, then held to the end of the last lease: not before.
  EXPECT_GT(elapsed, milliseconds(2000));
  EXPECT_LE(elapsed, milliseconds(2000 + 1000 + 200));
  EXPECT_EQ(seen[1].id, id);
  EXPECT_EQ(seen[1].attempts, 2);
  // The drainer frees the silent sender's slot (and counts the timeout) on its own sweep,
  // which may run just after the expired lease let the item out again: wait for it, then
  // check it was counted once.
  ASSERT_TRUE(run_until([&] { return timeouts.value() - before >= 1; }));
  run_for(milliseconds(50));
  EXPECT_EQ(timeouts.value() - before, 1);
  ASSERT_TRUE(run_until([&] { return drainer.counters().acked == 1; }));
}

TEST_F(DrainerTest, OutcomesArrivingAfterDestructionAreDroppedAndTheItemComesBack) {
  const auto id = must_enqueue("charge", "a", "c1");
  Drainer::Completion kept;
  {
    Drainer drainer(io_, *outbox_, limits_, clock_,
                    [&](const Item&, Drainer::Completion done) { kept = std::move(done); });
    drainer.start();
    ASSERT_TRUE(run_until([&] { return static_cast<bool>(kept); }));
  }
  kept(Outcome::ack());
  run_for(milliseconds(20));
  EXPECT_EQ(outbox_->get(id)->state, ItemState::kLeased);
  clock_.advance(milliseconds(limits_.lease_ms));
  auto again = lease(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, id);
}

}  // namespace
}  // namespace lanegate::queue::testing
