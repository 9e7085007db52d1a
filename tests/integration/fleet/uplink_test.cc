// The box's side of the fleet upload (gateway/fleet_uplink.h) against the real service and a
// real PostgreSQL: a backlog goes up in batches and its seals after it; a sync resumes from
// whatever the centre holds; a centre that is away or busy gets a retry at the time it asked
// for, one that does not know the box parks the sync for an operator.
#include "gateway/fleet_uplink.h"

#include <gtest/gtest.h>

#include <memory>

#include "core/signing.h"
#include "fleet/pg.h"
#include "fleet/service.h"
#include "fleet_fixture.h"

namespace lanegate::fleet {
namespace {

using namespace test;
using Kind = queue::Outcome::Kind;

class UplinkTest : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    auto k = signing::KeyPair::generate();
    ASSERT_TRUE(k);
    key_.emplace(std::move(*k));
  }

  // The box's uplink as lanegated makes it: its own connection to the box's database.
  std::unique_ptr<gateway::FleetUplink> uplink(const Box& box, const std::string& who, int port) {
    config::FleetSection f;
    f.enabled = true;
    f.host = "127.0.0.1";
    f.port = port;
    f.cert_file = pki_.path(who + ".crt");
    f.key_file = pki_.path(who + ".key");
    f.ca_file = pki_.path("fleet-ca.crt");
    f.batch_records = 500;
    f.timeout_ms = 5000;
    auto db = Database::open(box.db_path());
    if (!db) return nullptr;
    return std::make_unique<gateway::FleetUplink>(f, std::move(*db));
  }

  std::optional<signing::KeyPair> key_;
};

TEST_F(UplinkTest, ABacklogGoesUpInBatchesThenItsSealAndASecondSyncChangesNothing) {
  ASSERT_TRUE(centre_->register_box("box-u", key_->public_key().hex()));
  start();
  Box box("up-a");
  box.append(1200, 650, at("2026-12-05T02:00:00Z"));
  box.seal("2026-12-05", *key_);
  box.append(30, 650, at("2026-12-06T02:00:00Z"));  // today's records, not sealed yet
  auto up = uplink(box, "box-u", service_->port());
  ASSERT_TRUE(up);
  // A crash on the box after a first part went up: the sync resumes from the centre's head.
  ASSERT_EQ(centre_->ingest("box-u", box.lines(1, 300))->stored, 300);
  const auto o = up->sync_once();
  EXPECT_EQ(o.kind, Kind::kAck) << o.error;
  EXPECT_EQ(*centre_->head("box-u"), box.head());
  EXPECT_EQ(*centre_->records("box-u", 1, 1230), box.lines(1, 1230)) << "byte for byte";
  EXPECT_EQ(provisional("box-u"), 30) << "the sealed day is final; today's records wait";
  const auto again = up->sync_once();
  EXPECT_EQ(again.kind, Kind::kAck) << again.error;
  EXPECT_EQ(centre_->head("box-u")->seq, 1230);
}

TEST_F(UplinkTest, ACentreWhoseDatabaseIsAwayIsAskedAgainWhenItSaid) {
  start("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2");
  Box box("up-b");
  box.append(3);
  auto up = uplink(box, "box-u", service_->port());
  ASSERT_TRUE(up);
  const auto o = up->sync_once();
  EXPECT_EQ(o.kind, Kind::kRetry);
  ASSERT_TRUE(o.after.has_value()) << o.error;
  EXPECT_EQ(*o.after, std::chrono::seconds(30));
}

TEST_F(UplinkTest, AnUnreachableCentreIsRetriedAndAnUnknownBoxParks) {
  start();
  Box box("up-c");
  box.append(3);
  // Nothing listens on the service's port once it stopped.
  const int port = service_->port();
  auto unknown = uplink(box, "box-c", port);
  ASSERT_TRUE(unknown);
  const auto parked = unknown->sync_once();
  EXPECT_EQ(parked.kind, Kind::kPark) << parked.error;
  EXPECT_NE(parked.error.find("unknown box"), std::string::npos) << parked.error;
  service_->stop();
  service_.reset();
  auto up = uplink(box, "box-u", port);
  ASSERT_TRUE(up);
  const auto o = up->sync_once();
  EXPECT_EQ(o.kind, Kind::kRetry);
  EXPECT_NE(o.error.find("unreachable"), std::string::npos) << o.error;
}

}  // namespace
}  // namespace lanegate::fleet
