// The link came back: items that were backing off because the link was down become
// available at once, without breaking per-key order.
#include <gtest/gtest.h>

#include <filesystem>

#include "offline_queue/queue.h"

namespace lanegate::queue {
namespace {

TEST(RetryAllNow, BackedOffHeadsBecomeAvailableAtOnceInKeyOrder) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-retryall-XXXXXX").string();
  const std::filesystem::path dir = mkdtemp(tmpl.data());
  {
    auto db = Database::open(dir / "q.db");
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->migrate(schema_steps()));
    config::QueueLimits limits;
    FakeClock clock;
    auto outbox = Outbox::open(*db, limits, clock, OutboxOptions{[] { return 1.0; }});
    ASSERT_TRUE(outbox);
    {
      auto txn = db->begin();
      ASSERT_TRUE(outbox->enqueue(*txn, "charge", "k", "a", "first"));
      ASSERT_TRUE(outbox->enqueue(*txn, "charge", "k", "b", "second"));
      ASSERT_TRUE(txn->commit());
    }
    auto leased = outbox->lease({}, 10, std::chrono::seconds(30));
    ASSERT_EQ(leased->size(), 1u);
    ASSERT_TRUE(outbox->retry(leased->at(0).token(), "connection refused", std::chrono::minutes(5)));
    EXPECT_TRUE(outbox->lease({}, 10, std::chrono::seconds(30))->empty()) << "backing off";
    auto moved = outbox->retry_all_now();
    ASSERT_TRUE(moved);
    EXPECT_EQ(*moved, 1);
    auto again = outbox->lease({}, 10, std::chrono::seconds(30));
    ASSERT_EQ(again->size(), 1u);
    EXPECT_EQ(again->at(0).payload, "first") << "the key's first item still goes first";
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lanegate::queue
