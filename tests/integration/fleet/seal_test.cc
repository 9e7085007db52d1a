// Seals on the centre: a box's own day seal makes its records final only when it verifies
// with the registered key, its ends are the chain the centre holds and its totals are what
// PostgreSQL sums; the package the centre rebuilds is byte for byte the box's and passes the
// authority's verifier with nothing but the box's key. A record forged into the centre while
// provisional is caught when the genuine seal arrives.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "audit/audit.h"
#include "core/signing.h"
#include "fleet/centre.h"
#include "fleet/pg.h"
#include "fleet_fixture.h"

namespace lanegate::fleet {
namespace {

using namespace test;
using SealOutcome = SealResult::Outcome;

// 2026-12-05 at +08:00, long before today: the box may seal it.
constexpr std::string_view kDay = "2026-12-05";
const SystemTime kNoon = at("2026-12-05T04:00:00Z");

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SealTest : public CentreTest {
 protected:
  void SetUp() override {
    CentreTest::SetUp();
    auto k = signing::KeyPair::generate();
    ASSERT_TRUE(k);
    key_.emplace(std::move(*k));
    static int n = 0;
    box_id_ = "seal-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
    ASSERT_TRUE(centre_->register_box(box_id_, key_->public_key().hex()));
    char tmpl[] = "/tmp/lanegate-fleet-seal.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    out_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(out_, ec);
  }
  Result<SealResult> offer(const audit::SignedSeal& s) {
    return centre_->ingest_seal(box_id_, s.json, s.signature);
  }
  std::int64_t provisional() { return CentreTest::provisional(box_id_); }
  std::optional<signing::KeyPair> key_;
  std::string box_id_;
  fs::path out_;
};

TEST_F(SealTest, AVerifiedSealMakesItsRecordsFinalAndThePackageIsTheBoxsOwn) {
  Box box("s1");
  box.append(12, 730, kNoon);
  ASSERT_EQ(centre_->ingest(box_id_, box.lines(1, 12))->stored, 12);
  EXPECT_EQ(provisional(), 12) << "records are provisional until a seal covers them";
  const auto seal = box.seal(kDay, *key_);
  auto r = offer(seal);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->outcome, SealOutcome::kSealed) << r->message;
  EXPECT_EQ(r->sealed, 12);
  EXPECT_EQ(provisional(), 0);
  // Sending it again changes nothing.
  r = offer(seal);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, SealOutcome::kSealed);
  EXPECT_EQ(r->sealed, 0);

  // The centre's package, rebuilt from PostgreSQL, is byte for byte the box's own...
  ASSERT_TRUE(centre_->export_package(box_id_, kDay, out_ / "centre"));
  box.export_to(seal, out_ / "box");
  for (const char* f : {"records.jsonl", "records.csv", "seal.json", "seal.sig"}) {
    EXPECT_EQ(slurp(out_ / "centre" / f), slurp(out_ / "box" / f)) << f;
  }
  // ...and passes the authority's verifier, trusting only the box's key.
  auto key = signing::PublicKey::parse(*centre_->public_key(box_id_));
  ASSERT_TRUE(key);
  const auto report = audit::verify_package(out_ / "centre", *key);
  EXPECT_TRUE(report.ok()) << report.to_text();
}

TEST_F(SealTest, ASealAheadOfTheUploadedRecordsWaitsForThem) {
  Box box("s2");
  box.append(6, 500, kNoon);
  ASSERT_EQ(centre_->ingest(box_id_, box.lines(1, 3))->stored, 3);
  const auto seal = box.seal(kDay, *key_);
  auto r = offer(seal);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, SealOutcome::kNotYet);
  EXPECT_NE(r->message.find("through seq 6"), std::string::npos) << r->message;
  ASSERT_EQ(centre_->ingest(box_id_, box.lines(4, 6))->stored, 3);
  EXPECT_EQ(offer(seal)->outcome, SealOutcome::kSealed);
}

TEST_F(SealTest, ASealSignedWithAnotherKeyIsRefusedAndTheRecordsStayProvisional) {
  Box box("s3");
  box.append(4, 500, kNoon);
  ASSERT_EQ(centre_->ingest(box_id_, box.lines(1, 4))->stored, 4);
  auto other = signing::KeyPair::generate();
  ASSERT_TRUE(other);
  auto r = offer(box.seal(kDay, *other));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, SealOutcome::kRefused);
  EXPECT_NE(r->message.find("registered key"), std::string::npos) << r->message;
  EXPECT_EQ(provisional(), 4);
  auto a = centre_->anomalies(box_id_);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0].kind, "seal_signature");
  // A changed byte in the seal breaks the genuine signature too.
  auto genuine = box.seal(kDay, *key_);
  genuine.json[genuine.json.find("\"revision\":") + 11] = '7';
  r = offer(genuine);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, SealOutcome::kRefused);
}

TEST_F(SealTest, AForgedProvisionalRecordIsCaughtWhenTheGenuineSealArrives) {
  Box genuine("s4");
  genuine.append(5, 900, kNoon);
  // Someone uploads a self-consistent chain under the box's name before the box does:
  // the same seqs, less money. It goes in provisional.
  Box forged("s4");
  forged.append(5, 100, kNoon);
  ASSERT_EQ(centre_->ingest(box_id_, forged.lines(1, 5))->stored, 5);
  auto r = offer(genuine.seal(kDay, *key_));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, SealOutcome::kRefused);
  EXPECT_NE(r->message.find("another chain"), std::string::npos) << r->message;
  EXPECT_EQ(provisional(), 5) << "the forged records never become final";
  auto a = centre_->anomalies(box_id_);
  ASSERT_TRUE(a);
  ASSERT_FALSE(a->empty());
  EXPECT_EQ(a->back().kind, "seal_mismatch");
  // The genuine box's upload of the same seqs is a fork, kept for the authority too.
  auto up = centre_->ingest(box_id_, genuine.lines(1, 5));
  ASSERT_TRUE(up);
  EXPECT_EQ(up->outcome, IngestResult::Outcome::kFork);
  // And the forger cannot seal its chain: it has no key the registry knows.
  auto fk = signing::KeyPair::generate();
  ASSERT_TRUE(fk);
  EXPECT_EQ(offer(forged.seal(kDay, *fk))->outcome, SealOutcome::kRefused);
}

TEST_F(SealTest, AnUnregisteredBoxsSealIsRefused) {
  Box box("s5");
  box.append(1, 500, kNoon);
  const auto seal = box.seal(kDay, *key_);
  auto r = centre_->ingest_seal("nobody", seal.json, seal.signature);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, SealOutcome::kUnknownBox);
}

}  // namespace
}  // namespace lanegate::fleet
