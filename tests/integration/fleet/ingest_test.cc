// The fleet centre's ingest against a real PostgreSQL 15 (the quick-start single server of
// scripts/fleet-cluster): a box's real hash-chained ledger, made by core/ledger in SQLite,
// is uploaded in batches; resent batches change nothing; gaps, forks, altered bytes and
// unknown boxes are refused with what the box needs to know; records are rebuilt byte for
// byte; a record's partition is its local day at +08:00.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/ledger.h"
#include "core/sqlite.h"
#include "core/time_format.h"
#include "fleet/centre.h"
#include "fleet/pg.h"
#include "fleet_fixture.h"

namespace lanegate::fleet {
namespace {

using namespace test;

using Outcome = IngestResult::Outcome;

class IngestTest : public CentreTest {
 protected:
  void SetUp() override {
    CentreTest::SetUp();
    static int n = 0;
    box_id_ = "box-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
    ASSERT_TRUE(centre_->register_box(box_id_, kKey));
  }
  std::string box_id_;
};

TEST_F(IngestTest, BatchesFromTheBoxsHeadEndWithTheSameHeadAndTheSameBytes) {
  Box box("a");
  box.append(25);
  auto h = centre_->head(box_id_);
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, Head{}) << "a new box: nothing held, the genesis hash";
  for (std::int64_t first = 1; first <= 25; first += 10) {
    const auto lines = box.lines(first, std::min<std::int64_t>(first + 9, 25));
    auto r = centre_->ingest(box_id_, lines);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->outcome, Outcome::kStored) << r->message;
    EXPECT_EQ(r->stored, static_cast<std::int64_t>(lines.size()));
  }
  EXPECT_EQ(*centre_->head(box_id_), box.head());
  auto back = centre_->records(box_id_, 1, 25);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, box.lines(1, 25)) << "rebuilt byte for byte";
}

TEST_F(IngestTest, ABatchSentAgainAfterALostReplyChangesNothing) {
  Box box("b");
  box.append(12);
  ASSERT_EQ(centre_->ingest(box_id_, box.lines(1, 8))->stored, 8);
  auto again = centre_->ingest(box_id_, box.lines(1, 8));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, Outcome::kStored);
  EXPECT_EQ(again->stored, 0);
  EXPECT_EQ(again->skipped, 8);
  // Overlapping: the held part is skipped, the rest stored.
  auto more = centre_->ingest(box_id_, box.lines(5, 12));
  ASSERT_TRUE(more);
  EXPECT_EQ(more->skipped, 4);
  EXPECT_EQ(more->stored, 4);
  EXPECT_EQ(more->head, box.head());
  auto n = conn_->exec(
      "SELECT count(*) FROM fleet_records r JOIN fleet_boxes b USING (box_no) WHERE b.box_id = $1",
      {box_id_});
  ASSERT_TRUE(n);
  EXPECT_EQ(n->integer(0, 0), 12) << "no record twice";
}

TEST_F(IngestTest, AGapIsRefusedWithTheHeadToResendFrom) {
  Box box("c");
  box.append(10);
  ASSERT_EQ(centre_->ingest(box_id_, box.lines(1, 4))->stored, 4);
  auto r = centre_->ingest(box_id_, box.lines(6, 10));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, Outcome::kGap);
  EXPECT_EQ(r->seq, 5);
  EXPECT_EQ(r->head.seq, 4);
  EXPECT_NE(r->message.find("missing"), std::string::npos) << r->message;
  EXPECT_EQ(centre_->head(box_id_)->seq, 4) << "nothing of the batch is stored";
  // The box resends from the head it was given.
  EXPECT_EQ(centre_->ingest(box_id_, box.lines(r->head.seq + 1, 10))->stored, 6);
}

TEST_F(IngestTest, AnAlteredOrNonCanonicalLineIsRefusedNamingItsSeqAndNothingIsStored) {
  Box box("d");
  box.append(5);
  auto lines = box.lines(1, 5);
  // 500 fen becomes 50: the hash no longer matches.
  auto altered = lines;
  const auto pos = altered[2].find("\"amount_fen\":500");
  ASSERT_NE(pos, std::string::npos);
  altered[2].replace(pos, 16, "\"amount_fen\":50");
  auto r = centre_->ingest(box_id_, altered);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, Outcome::kBadRecord);
  EXPECT_EQ(r->seq, 3);
  EXPECT_NE(r->message.find("hash"), std::string::npos) << r->message;
  // Same content, other spacing: not the canonical bytes the hash was made over.
  auto spaced = lines;
  spaced[1].replace(spaced[1].find(",\"time\""), 1, ", ");
  r = centre_->ingest(box_id_, spaced);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, Outcome::kBadRecord);
  EXPECT_EQ(r->seq, 2);
  EXPECT_NE(r->message.find("canonical"), std::string::npos) << r->message;
  r = centre_->ingest(box_id_, std::vector<std::string>{"{\"seq\":1}"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, Outcome::kBadRecord);
  EXPECT_EQ(centre_->head(box_id_)->seq, 0);
  EXPECT_EQ(centre_->ingest(box_id_, lines)->stored, 5) << "the genuine lines still go in";
}

TEST_F(IngestTest, OtherBytesAtAHeldSeqAreAForkKeptForTheAuthority) {
  Box genuine("e");
  genuine.append(6);
  ASSERT_EQ(centre_->ingest(box_id_, genuine.lines(1, 6))->stored, 6);
  // A second, self-consistent chain under the same box id: valid hashes, other money.
  Box forged("e");
  forged.append(6, 1);
  auto r = centre_->ingest(box_id_, forged.lines(4, 6));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, Outcome::kFork);
  EXPECT_EQ(r->seq, 4);
  // Its continuation does not link to the held head either.
  forged.append(1, 1);
  r = centre_->ingest(box_id_, forged.lines(7, 7));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, Outcome::kFork);
  EXPECT_EQ(r->seq, 7);
  auto a = centre_->anomalies(box_id_);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].kind, "fork");
  EXPECT_EQ((*a)[0].seq, 4);
  EXPECT_EQ(*centre_->records(box_id_, 1, 6), genuine.lines(1, 6)) << "held records untouched";
  // Records and anomalies are never changed or deleted, even by their owner role.
  EXPECT_FALSE(conn_->run("DELETE FROM fleet_records"));
  EXPECT_FALSE(conn_->run("UPDATE fleet_records SET amount_fen = 1"));
  EXPECT_FALSE(conn_->run("DELETE FROM fleet_anomalies"));
}

TEST_F(IngestTest, AnUnregisteredBoxIsRefusedAndAKnownBoxKeepsItsKey) {
  Box box("f");
  box.append(2);
  auto r = centre_->ingest("nobody", box.lines(1, 2));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, Outcome::kUnknownBox);
  EXPECT_TRUE(centre_->register_box(box_id_, kKey)) << "the same key again is no change";
  auto other = centre_->register_box(
      box_id_, "0000000000000000000000000000000000000000000000000000000000000001");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().field, "box_id");
  auto bad = centre_->register_box("bad box id", kKey);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "box_id");
}

TEST_F(IngestTest, ARecordsPartitionIsItsLocalDayAtPlusEight) {
  Box box("g");
  // 16:30 UTC on the 7th is 00:30 on the 8th in Beijing; 15:59:59 UTC is still the 7th.
  box.append(1, 500, at("2026-12-07T15:59:59Z"));
  box.append(1, 500, at("2026-12-07T16:30:00Z"));
  ASSERT_EQ(centre_->ingest(box_id_, box.lines(1, 2))->stored, 2);
  auto r = conn_->exec(
      "SELECT r.seq, r.local_day::text, r.tableoid::regclass::text FROM fleet_records r "
      "JOIN fleet_boxes b USING (box_no) WHERE b.box_id = $1 ORDER BY r.seq",
      {box_id_});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2);
  EXPECT_EQ(r->text(0, 1), "2026-12-07");
  EXPECT_EQ(r->text(0, 2), "fleet_records_20261207");
  EXPECT_EQ(r->text(1, 1), "2026-12-08");
  EXPECT_EQ(r->text(1, 2), "fleet_records_20261208");
}

TEST_F(IngestTest, TwoUploadsOfOneBoxAtOnceStoreEachRecordOnce) {
  Box box("h");
  box.append(300);
  const auto lines = box.lines(1, 300);
  std::vector<IngestResult> results(2);
  std::vector<std::thread> ts;
  for (int k = 0; k < 2; ++k) {
    ts.emplace_back([&, k] {
      auto c = pg::Connection::open(Server::get().dsn());
      if (!c) return;
      Centre centre(*c, UtcOffset{480});
      if (auto r = centre.ingest(box_id_, lines)) results[k] = *r;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(results[0].stored + results[1].stored, 300);
  EXPECT_EQ(results[0].skipped + results[1].skipped, 300);
  EXPECT_EQ(*centre_->head(box_id_), box.head());
}

}  // namespace
}  // namespace lanegate::fleet
