// `lanegate queue ...` as an operator uses it: what it prints, what it changes, exit codes.

#include <gtest/gtest.h>

#include <sstream>

#include "offline_queue/queue_cli.h"
#include "queue_fixture.h"

namespace lanegate::queue::testing {
namespace {

class QueueCliTest : public QueueTest {
 protected:
  struct Run {
    int code;
    std::string out, err;
  };
  Run run(std::vector<std::string> args) {
    std::ostringstream out, err;
    // Its own connection, as the CLI process has.
    auto db = Database::open(dir_.path() / "gw.db");
    EXPECT_TRUE(db.has_value());
    const int code = queue_command(*db, limits_, args, out, err, clock_);
    return {code, out.str(), err.str()};
  }
  static bool has(const std::string& text, std::string_view what) {
    return text.find(what) != std::string::npos;
  }
};

TEST_F(QueueCliTest, StatsShowsHoldingsAgainstLimitsPerTopic) {
  limits_.max_rows = 1000;
  must_enqueue("charge", "s1", "c1", "12345");
  clock_.advance(std::chrono::minutes(5));
  must_enqueue("invoice", "", "i1", "12");
  auto r = run({"stats"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "items held:  2 of queue.max_rows = 1000")) << r.out;
  EXPECT_TRUE(has(r.out, "bytes held:  7 of")) << r.out;
  EXPECT_TRUE(has(r.out, "(5 min ago)")) << r.out;
  EXPECT_TRUE(has(r.out, "charge")) << r.out;
  EXPECT_TRUE(has(r.out, "invoice")) << r.out;
}

TEST_F(QueueCliTest, ListShowsUndeliveredOrParkedItemsWithTheirStatus) {
  const auto a = must_enqueue("charge", "s1", "c1");
  const auto b = must_enqueue("charge", "s1", "c2");
  const auto c = must_enqueue("invoice", "", "i1");
  auto got = lease(10);
  ASSERT_EQ(got.size(), 2u);  // a and c; b waits behind a
  ASSERT_TRUE(outbox_->park(got[1].token(), "400 buyer tax id invalid").has_value());

  auto r = run({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "in flight")) << r.out;
  EXPECT_TRUE(has(r.out, "waiting for an earlier item of its key")) << r.out;
  EXPECT_FALSE(has(r.out, "buyer tax id")) << r.out;

  r = run({"list", "--parked"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(has(r.out, "parked: 400 buyer tax id invalid")) << r.out;
  EXPECT_TRUE(has(r.out, std::to_string(c))) << r.out;

  r = run({"list", "--topic", "invoice"});
  EXPECT_TRUE(has(r.out, "no undelivered items")) << r.out;
  r = run({"list", "--limit", "1"});
  EXPECT_TRUE(has(r.out, "(first 1 shown")) << r.out;
  (void)a;
  (void)b;
}

TEST_F(QueueCliTest, ShowPrintsEverythingAboutOneItem) {
  const auto id = must_enqueue("charge", "session-9", "charge:T9", "{\"fen\":500}");
  auto r = run({"show", std::to_string(id)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "idempotency key: charge:T9")) << r.out;
  EXPECT_TRUE(has(r.out, "ordering key:    session-9")) << r.out;
  EXPECT_TRUE(has(r.out, "{\"fen\":500}")) << r.out;
  const auto bin = must_enqueue("charge", "", "bin", std::string("\x01\x02", 2));
  r = run({"show", std::to_string(bin)});
  EXPECT_TRUE(has(r.out, "base64):\nAQI=")) << r.out;
  r = run({"show", "999"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "no outbox item 999")) << r.err;
}

TEST_F(QueueCliTest, UnparkAndRetryNowChangeTheItem) {
  const auto id = must_enqueue("charge", "s", "c1");
  auto got = lease(1);
  ASSERT_TRUE(outbox_->park(got[0].token(), "bad").has_value());
  auto r = run({"retry-now", std::to_string(id)});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "use unpark")) << r.err;
  r = run({"unpark", std::to_string(id)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(outbox_->get(id)->state, ItemState::kPending);
  got = lease(1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(outbox_->retry(got[0].token(), "timeout").has_value());
  EXPECT_TRUE(lease(1).empty());
  r = run({"retry-now", std::to_string(id)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lease(1).size(), 1u);
}

TEST_F(QueueCliTest, UsageErrorsExitWithTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"frobnicate"},
                                             {"show"},
                                             {"show", "abc"},
                                             {"unpark", "0"},
                                             {"retry-now", "1", "2"},
                                             {"stats", "extra"},
                                             {"list", "--limit", "x"},
                                             {"list", "--bogus"}}) {
    auto r = run(args);
    EXPECT_EQ(r.code, 2) << (args.empty() ? "(none)" : args[0]);
    EXPECT_TRUE(has(r.err, "usage: lanegate queue stats")) << r.err;
  }
}

TEST_F(QueueCliTest, MissingSchemaIsAFailureNotACrash) {
  auto db = Database::open(dir_.path() / "other.db");
  ASSERT_TRUE(db.has_value());
  std::ostringstream out, err;
  std::vector<std::string> args{"stats"};
  EXPECT_EQ(queue_command(*db, limits_, args, out, err, clock_), 1);
  EXPECT_TRUE(has(err.str(), "migrations")) << err.str();
}

}  // namespace
}  // namespace lanegate::queue::testing
