// Behaviour of the outbox a sender or an operator would notice: atomic enqueue with the
// caller's record, per-key FIFO, backoff, parking, lease expiry, limits and compaction.

#include <gtest/gtest.h>

#include "core/metrics.h"
#include "queue_fixture.h"

namespace lanegate::queue::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using OutboxTest = QueueTest;

TEST_F(OutboxTest, EnqueueCommitsWithTheCallersRecordAndRollsBackWithIt) {
  ASSERT_TRUE(db_->exec("CREATE TABLE passage(id INTEGER PRIMARY KEY, plate TEXT)").has_value());
  {
    auto txn = db_->begin();
    ASSERT_TRUE(txn.has_value());
    ASSERT_TRUE(db_->exec("INSERT INTO passage(plate) VALUES ('A')").has_value());
    ASSERT_TRUE(outbox_->enqueue(*txn, "charge", "s1", "charge:1", "{\"fen\":100}").has_value());
    // No commit: the record and its upload vanish together.
  }
  EXPECT_EQ(count_rows(), 0);
  {
    auto txn = db_->begin();
    ASSERT_TRUE(db_->exec("INSERT INTO passage(plate) VALUES ('A')").has_value());
    ASSERT_TRUE(outbox_->enqueue(*txn, "charge", "s1", "charge:1", "{\"fen\":100}").has_value());
    ASSERT_TRUE(txn->commit().has_value());
  }
  EXPECT_EQ(count_rows(), 1);
  auto items = lease(10);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].payload, "{\"fen\":100}");
  EXPECT_EQ(items[0].topic, "charge");
  EXPECT_EQ(items[0].attempts, 1);
}

TEST_F(OutboxTest, DuplicateIdempotencyKeyReturnsTheExistingItem) {
  auto first = enqueue("charge", "s1", "charge:T1");
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->created);
  auto again = enqueue("charge", "s1", "charge:T1", "{\"other\":1}");
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(count_rows(), 1);
  auto item = outbox_->get(first->id);
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ(item->payload, "{}");
}

TEST_F(OutboxTest, InvalidFieldsAreRefusedNamingTheFieldAndCounted) {
  auto& failures = metrics::Registry::global().counter("lanegate_queue_enqueue_failures_total", "",
                                                       {{"reason", "invalid"}});
  const auto before = failures.value();
  auto bad_topic = enqueue("charge topic", "k", "i1");
  ASSERT_FALSE(bad_topic.has_value());
  EXPECT_EQ(bad_topic.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(bad_topic.error().field, "topic");
  auto no_idem = enqueue("charge", "k", "");
  ASSERT_FALSE(no_idem.has_value());
  EXPECT_EQ(no_idem.error().field, "idempotency_key");
  auto long_key = enqueue("charge", std::string(kMaxKeyBytes + 1, 'k'), "i2");
  ASSERT_FALSE(long_key.has_value());
  EXPECT_EQ(long_key.error().field, "ordering_key");
  auto big = enqueue("charge", "k", "i3", std::string(kMaxPayloadBytes + 1, 'x'));
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().field, "payload");
  EXPECT_EQ(failures.value() - before, 4);
  EXPECT_EQ(count_rows(), 0);
}

TEST_F(OutboxTest, SameKeyIsFifoOtherKeysProceed) {
  const auto entry = must_enqueue("parking", "session-1", "entry:1");
  const auto exit_charge = must_enqueue("charge", "session-1", "charge:1");
  const auto other = must_enqueue("parking", "session-2", "entry:2");
  const auto unordered = must_enqueue("invoice", "", "invoice:1");

  auto first = lease(10);
  EXPECT_EQ(ids(first), (std::vector<std::int64_t>{entry, other, unordered}));
  // The exit charge waits for its entry even with free capacity.
  EXPECT_TRUE(lease(10).empty());
  ASSERT_TRUE(outbox_->ack(first[0].token()).has_value());
  auto second = lease(10);
  EXPECT_EQ(ids(second), (std::vector<std::int64_t>{exit_charge}));
}

TEST_F(OutboxTest, TopicFilterLeasesOnlyThoseTopics) {
  must_enqueue("parking", "a", "p1");
  const auto inv = must_enqueue("invoice", "b", "i1");
  auto got = lease(10, {"invoice"});
  EXPECT_EQ(ids(got), (std::vector<std::int64_t>{inv}));
}

TEST_F(OutboxTest, RetryBacksOffExponentiallyAndKeepsTheKeyBlocked) {
  const auto a1 = must_enqueue("charge", "s", "c1");
  const auto a2 = must_enqueue("charge", "s", "c2");
  auto got = lease(10);
  ASSERT_EQ(ids(got), (std::vector<std::int64_t>{a1}));
  ASSERT_TRUE(outbox_->retry(got[0].token(), "uplink down").has_value());
  // jitter 1.0: the full delay, 1 s for the first retry.
  clock_.advance(milliseconds(999));
  EXPECT_TRUE(lease(10).empty());
  clock_.advance(milliseconds(1));
  got = lease(10);
  ASSERT_EQ(ids(got), (std::vector<std::int64_t>{a1}));
  EXPECT_EQ(got[0].attempts, 2);
  EXPECT_EQ(got[0].last_error, "uplink down");
  ASSERT_TRUE(outbox_->retry(got[0].token(), "uplink down").has_value());
  clock_.advance(milliseconds(1999));
  EXPECT_TRUE(lease(10).empty());
  clock_.advance(milliseconds(1));
  got = lease(10);
  ASSERT_EQ(ids(got), (std::vector<std::int64_t>{a1}));
  ASSERT_TRUE(outbox_->ack(got[0].token()).has_value());
  EXPECT_EQ(ids(lease(10)), (std::vector<std::int64_t>{a2}));
}

TEST_F(OutboxTest, RetryHintIsHonouredUpToTheCap) {
  must_enqueue("charge", "s", "c1");
  auto got = lease(1);
  ASSERT_TRUE(outbox_->retry(got[0].token(), "429", std::chrono::hours(5)).has_value());
  auto item = outbox_->get(got[0].id);
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ(item->available_at - clock_.now(), milliseconds(limits_.retry_cap_ms));
}

TEST_F(OutboxTest, BackoffDelayStaysWithinJitterBoundsAndCap) {
  const milliseconds base(1000), cap(60'000);
  EXPECT_EQ(backoff_delay(1, base, cap, 0.0), milliseconds(500));
  EXPECT_EQ(backoff_delay(1, base, cap, 1.0), milliseconds(1000));
  EXPECT_EQ(backoff_delay(3, base, cap, 1.0), milliseconds(4000));
  EXPECT_EQ(backoff_delay(3, base, cap, 0.0), milliseconds(2000));
  EXPECT_EQ(backoff_delay(7, base, cap, 1.0), milliseconds(60'000));
  EXPECT_EQ(backoff_delay(1'000'000, base, cap, 1.0), milliseconds(60'000));
  EXPECT_EQ(backoff_delay(1'000'000, base, cap, 0.0), milliseconds(30'000));
  for (double u : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const auto d = backoff_delay(4, base, cap, u);
    EXPECT_GE(d, milliseconds(4000));
    EXPECT_LE(d, milliseconds(8000));
  }
}

TEST_F(OutboxTest, ParkedItemIsKeptVisibleUnblocksItsKeyAndCanBeUnparked) {
  const auto bad = must_enqueue("charge", "s", "c1");
  const auto next = must_enqueue("charge", "s", "c2");
  auto got = lease(10);
  ASSERT_EQ(ids(got), (std::vector<std::int64_t>{bad}));
  ASSERT_TRUE(outbox_->park(got[0].token(), "400 PARAM_ERROR").has_value());

  auto parked = outbox_->list(ListFilter{.parked = true});
  ASSERT_TRUE(parked.has_value());
  ASSERT_EQ(parked->size(), 1u);
  EXPECT_EQ((*parked)[0].id, bad);
  EXPECT_EQ((*parked)[0].last_error, "400 PARAM_ERROR");

  got = lease(10);
  ASSERT_EQ(ids(got), (std::vector<std::int64_t>{next}));
  // Unparked while `next` is in flight: it goes to the back of the key's line.
  ASSERT_TRUE(outbox_->unpark(bad).has_value());
  EXPECT_TRUE(lease(10).empty());
  ASSERT_TRUE(outbox_->ack(got[0].token()).has_value());
  got = lease(10);
  ASSERT_EQ(ids(got), (std::vector<std::int64_t>{bad}));
  EXPECT_EQ(got[0].attempts, 2);
  EXPECT_EQ(got[0].retries, 0);

  auto again = outbox_->unpark(next);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, Errc::kInvalidArgument);
  auto missing = outbox_->unpark(999);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
}

TEST_F(OutboxTest, RetryNowSkipsTheRemainingBackoff) {
  const auto id = must_enqueue("charge", "s", "c1");
  auto got = lease(1);
  ASSERT_TRUE(outbox_->retry(got[0].token(), "timeout").has_value());
  EXPECT_TRUE(lease(1).empty());
  ASSERT_TRUE(outbox_->retry_now(id).has_value());
  got = lease(1);
  ASSERT_EQ(ids(got), (std::vector<std::int64_t>{id}));
  auto leased = outbox_->retry_now(id);
  ASSERT_FALSE(leased.has_value());
  EXPECT_NE(leased.error().message.find("leased"), std::string::npos);
}

TEST_F(OutboxTest, ExpiredLeaseReturnsTheItemAndStaleOutcomesAreRefused) {
  const auto id = must_enqueue("charge", "s", "c1");
  auto first = lease(1);
  ASSERT_EQ(first.size(), 1u);
  clock_.advance(milliseconds(limits_.lease_ms - 1));
  EXPECT_TRUE(lease(1).empty());
  clock_.advance(milliseconds(1));
  auto second = lease(1);
  ASSERT_EQ(ids(second), (std::vector<std::int64_t>{id}));
  EXPECT_EQ(second[0].attempts, 2);
  EXPECT_EQ(second[0].last_error, "lease expired");

  auto stale_retry = outbox_->retry(first[0].token(), "late");
  ASSERT_FALSE(stale_retry.has_value());
  EXPECT_EQ(stale_retry.error().code, Errc::kNotFound);
  auto stale_park = outbox_->park(first[0].token(), "late");
  ASSERT_FALSE(stale_park.has_value());
  auto item = outbox_->get(id);
  EXPECT_EQ(item->state, ItemState::kLeased);
  // A late confirmation of delivery wins, and the current holder's ack is a no-op.
  ASSERT_TRUE(outbox_->ack(first[0].token()).has_value());
  ASSERT_TRUE(outbox_->ack(second[0].token()).has_value());
  EXPECT_EQ(outbox_->get(id)->state, ItemState::kAcked);
  EXPECT_EQ(outbox_->ack(LeaseToken{12345, 1}).error().code, Errc::kNotFound);
}

TEST_F(OutboxTest, ExtendingAHeldLeaseKeepsTheItemFromBeingLeasedAgain) {
  const auto a = must_enqueue("charge", "s1", "c1");
  const auto b = must_enqueue("charge", "s2", "c2");
  auto got = lease(10);
  ASSERT_EQ(got.size(), 2u);
  // Two thirds into the lease the sender still works on both: one statement each, one commit.
  clock_.advance(milliseconds(limits_.lease_ms * 2 / 3));
  const std::vector<LeaseToken> held = {got[0].token(), got[1].token()};
  auto lost = outbox_->extend_leases(held, milliseconds(limits_.lease_ms));
  ASSERT_TRUE(lost.has_value()) << lost.error().to_string();
  EXPECT_TRUE(lost->empty());
  EXPECT_EQ(*outbox_->get(a)->lease_expires, clock_.now() + milliseconds(limits_.lease_ms));
  // Past the original expiry the items are still held, not handed out again.
  clock_.advance(milliseconds(limits_.lease_ms / 2));
  EXPECT_TRUE(lease(10).empty());
  EXPECT_EQ(outbox_->get(b)->state, ItemState::kLeased);
  EXPECT_EQ(outbox_->get(b)->attempts, 1);
  // A renewal asking for less than what is left never shortens a lease.
  const auto before = *outbox_->get(a)->lease_expires;
  ASSERT_TRUE(outbox_->extend_leases(held, milliseconds(1)).has_value());
  EXPECT_EQ(*outbox_->get(a)->lease_expires, before);
  // The outcome of the extended lease is still that lease's.
  ASSERT_TRUE(outbox_->retry(got[1].token(), "503").has_value());
}

TEST_F(OutboxTest, AStaleRenewalCannotResurrectAnExpiredOrResolvedLease) {
  const auto a = must_enqueue("charge", "s1", "c1");
  const auto b = must_enqueue("charge", "s2", "c2");
  const auto c = must_enqueue("charge", "s3", "c3");
  auto first = lease(10);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_TRUE(outbox_->ack(first[2].token()).has_value());
  // a's and b's leases run out; a is handed out again (attempt 2), b not yet reclaimed.
  clock_.advance(milliseconds(limits_.lease_ms));
  auto txn = db_->begin();
  ASSERT_TRUE(txn.has_value());
  auto again = outbox_->lease(*txn, std::vector<std::string>{}, 1, milliseconds(limits_.lease_ms));
  ASSERT_TRUE(again.has_value());
  ASSERT_EQ(ids(*again), (std::vector<std::int64_t>{a}));
  ASSERT_TRUE(txn->commit().has_value());
  // Simulate an expired lease that lease() has not swept yet: b is LEASED, expiry passed.
  ASSERT_TRUE(db_->exec("UPDATE outbox_item SET state = 1, lease_expires_ms = " +
                        std::to_string(clock_.unix_millis() - 1) +
                        " WHERE id = " + std::to_string(b))
                  .has_value());
  const std::vector<LeaseToken> stale = {first[0].token(), first[1].token(), first[2].token(),
                                         LeaseToken{999, 1}};
  auto lost = outbox_->extend_leases(stale, milliseconds(limits_.lease_ms));
  ASSERT_TRUE(lost.has_value()) << lost.error().to_string();
  ASSERT_EQ(lost->size(), 4u);  // none was still held by the one who asks
  auto item_a = outbox_->get(a);
  EXPECT_EQ(item_a->attempts, 2);
  EXPECT_EQ(*item_a->lease_expires, clock_.now() + milliseconds(limits_.lease_ms));
  EXPECT_EQ(*outbox_->get(b)->lease_expires, clock_.now() - milliseconds(1));
  EXPECT_EQ(outbox_->get(c)->state, ItemState::kAcked);
  // b comes back at the next lease(), as its lease had expired.
  EXPECT_EQ(ids(lease(10)), (std::vector<std::int64_t>{b}));
  EXPECT_FALSE(outbox_->extend_leases(stale, milliseconds(0)).has_value());
}

TEST_F(OutboxTest, LeasesOfACrashedProcessComeBackAfterExpiry) {
  const auto a = must_enqueue("charge", "s1", "c1");
  const auto b = must_enqueue("charge", "s2", "c2");
  ASSERT_EQ(lease(10).size(), 2u);
  restart();
  EXPECT_TRUE(lease(10).empty());
  clock_.advance(milliseconds(limits_.lease_ms));
  EXPECT_EQ(ids(lease(10)), (std::vector<std::int64_t>{a, b}));
}

TEST_F(OutboxTest, ReleaseAllLeasesAtStartUp) {
  const auto a = must_enqueue("charge", "s1", "c1");
  ASSERT_EQ(lease(10).size(), 1u);
  restart();
  auto n = outbox_->release_all_leases();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(ids(lease(10)), (std::vector<std::int64_t>{a}));
}

TEST_F(OutboxTest, WallClockStepBackDoesNotStrandLeasesOrRetries) {
  const auto a = must_enqueue("charge", "s1", "c1");
  const auto b = must_enqueue("charge", "s2", "c2");
  auto got = lease(10);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(outbox_->retry(got[1].token(), "x").has_value());
  clock_.set_wall(clock_.now() - std::chrono::hours(3));
  // a's lease now ends 3 h away (> kMaxLease), b's retry 3 h away (> cap): both come back.
  EXPECT_EQ(ids(lease(10)), (std::vector<std::int64_t>{a, b}));
}

TEST_F(OutboxTest, RowLimitRefusesCleanlyLosesNothingAndRecoversAfterDrain) {
  limits_.max_rows = 3;
  auto& rows_full = metrics::Registry::global().counter("lanegate_queue_enqueue_failures_total", "",
                                                        {{"reason", "rows"}});
  const auto before = rows_full.value();
  for (int i = 0; i < 3; ++i)
    must_enqueue("charge", "k" + std::to_string(i), "c" + std::to_string(i));

  ASSERT_TRUE(db_->exec("CREATE TABLE passage(id INTEGER PRIMARY KEY)").has_value());
  auto txn = db_->begin();
  ASSERT_TRUE(db_->exec("INSERT INTO passage DEFAULT VALUES").has_value());
  auto full = outbox_->enqueue(*txn, "charge", "k9", "c9", "{}");
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, Errc::kQueueFull);
  EXPECT_NE(full.error().message.find("3 items held"), std::string::npos) << full.error().message;
  EXPECT_NE(full.error().message.find("max_rows = 3"), std::string::npos) << full.error().message;
  // The caller's transaction is still usable: it decides (the gateway stops approving).
  ASSERT_TRUE(db_->exec("INSERT INTO passage DEFAULT VALUES").has_value());
  txn->rollback();
  EXPECT_EQ(rows_full.value() - before, 1);
  EXPECT_EQ(count_rows(), 3);

  // A duplicate of an existing item is still answered when full.
  auto dup = enqueue("charge", "k0", "c0");
  ASSERT_TRUE(dup.has_value());
  EXPECT_FALSE(dup->created);

  // Parked items still count; acked ones do not.
  auto got = lease(2);
  ASSERT_TRUE(outbox_->park(got[0].token(), "bad").has_value());
  EXPECT_EQ(enqueue("charge", "k9", "c9").error().code, Errc::kQueueFull);
  ASSERT_TRUE(outbox_->ack(got[1].token()).has_value());
  EXPECT_TRUE(enqueue("charge", "k9", "c9").has_value());
  EXPECT_EQ(count_rows("state <> 2"), 3);
}

TEST_F(OutboxTest, ByteLimitCountsPayloadBytes) {
  limits_.max_bytes = 10;
  must_enqueue("charge", "k", "c1", "12345");
  must_enqueue("charge", "k", "c2", "12345");
  auto full = enqueue("charge", "k", "c3", "1");
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, Errc::kQueueFull);
  EXPECT_NE(full.error().message.find("max_bytes = 10"), std::string::npos) << full.error().message;
  auto got = lease(1);
  ASSERT_TRUE(outbox_->ack(got[0].token()).has_value());
  EXPECT_TRUE(enqueue("charge", "k", "c3", "1").has_value());
}

TEST_F(OutboxTest, CompactionRemovesOnlyAckedItemsPastRetentionAndNeverReusesIds) {
  limits_.acked_retention_hours = 1;
  const auto a = must_enqueue("charge", "s1", "c1");
  const auto b = must_enqueue("charge", "s2", "c2");
  const auto c = must_enqueue("charge", "s3", "c3");
  auto got = lease(3);
  ASSERT_TRUE(outbox_->ack(got[0].token()).has_value());
  ASSERT_TRUE(outbox_->park(got[1].token(), "x").has_value());
  ASSERT_TRUE(outbox_->ack(got[2].token()).has_value());
  clock_.advance(std::chrono::minutes(59));
  EXPECT_EQ(outbox_->compact().value(), 0);
  clock_.advance(std::chrono::minutes(1));
  // a goes; c is acked too but is the id high-water mark; the parked b stays.
  EXPECT_EQ(outbox_->compact().value(), 1);
  EXPECT_EQ(outbox_->get(a).error().code, Errc::kNotFound);
  EXPECT_EQ(outbox_->get(b)->state, ItemState::kParked);
  EXPECT_EQ(outbox_->get(c)->state, ItemState::kAcked);
  const auto d = must_enqueue("charge", "s4", "c4");
  EXPECT_GT(d, c);
}

TEST_F(OutboxTest, StatsAndMetricsReflectTheQueue) {
  must_enqueue("charge", "s1", "c1", "abc");
  clock_.advance(seconds(90));
  must_enqueue("charge", "s2", "c2", "de");
  must_enqueue("invoice", "", "i1", "f");
  auto got = lease(1);  // the oldest charge
  ASSERT_EQ(got.size(), 1u);
  auto st = outbox_->stats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->live_rows, 3);
  EXPECT_EQ(st->live_bytes, 6);
  EXPECT_EQ(st->pending, 2);
  EXPECT_EQ(st->leased, 1);
  ASSERT_EQ(st->topics.size(), 2u);
  EXPECT_EQ(st->topics[0].topic, "charge");
  ASSERT_TRUE(outbox_->refresh_metrics().has_value());
  auto& reg = metrics::Registry::global();
  EXPECT_EQ(reg.value("lanegate_queue_depth", {{"topic", "charge"}}), 2);
  EXPECT_EQ(reg.value("lanegate_queue_depth", {{"topic", "invoice"}}), 1);
  EXPECT_EQ(reg.value("lanegate_queue_in_flight"), 1);
  EXPECT_EQ(reg.value("lanegate_queue_oldest_pending_age_seconds"), 90);
  ASSERT_TRUE(outbox_->park(got[0].token(), "x").has_value());
  ASSERT_TRUE(outbox_->refresh_metrics().has_value());
  EXPECT_EQ(reg.value("lanegate_queue_parked"), 1);
  EXPECT_EQ(reg.value("lanegate_queue_depth", {{"topic", "charge"}}), 1);
  EXPECT_EQ(reg.value("lanegate_queue_oldest_pending_age_seconds"), 0);
}

TEST_F(OutboxTest, HotStatementsUseIndexesNotTableScans) {
  auto plans = outbox_->query_plans_for_test();
  ASSERT_TRUE(plans.has_value()) << plans.error().to_string();
  for (const std::string& plan : *plans) {
    // Scanning the partial index of LEASED items is fine: it holds only the items in flight.
    const auto scan = plan.find("SCAN outbox_item");
    constexpr std::string_view kLeasedScan = "SCAN outbox_item USING INDEX outbox_leased";
    const bool leased_only =
        scan != std::string::npos && plan.compare(scan, kLeasedScan.size(), kLeasedScan) == 0;
    EXPECT_TRUE(scan == std::string::npos || leased_only) << plan;
    EXPECT_EQ(plan.find("USE TEMP B-TREE"), std::string::npos) << plan;
  }
}

TEST_F(OutboxTest, OpenWithoutSchemaSaysSo) {
  auto other = Database::open(dir_.path() / "empty.db");
  ASSERT_TRUE(other.has_value());
  auto ob = Outbox::open(*other, limits_, clock_);
  ASSERT_FALSE(ob.has_value());
  EXPECT_NE(ob.error().message.find("migrations"), std::string::npos);
}

}  // namespace
}  // namespace lanegate::queue::testing
