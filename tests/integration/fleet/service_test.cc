// lanegate-fleetd's HTTPS front, as a box reaches it: mutual TLS with certificates made by
// the openssl CLI (independently of the service), gzip bodies, the box known only by its
// certificate, refusals a box can act on, and 503 + Retry-After while the database is away.
#include "fleet/service.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <boost/json.hpp>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/crypto.h"
#include "core/signing.h"
#include "fleet/pg.h"
#include "fleet_fixture.h"

namespace lanegate::fleet {
namespace {

using namespace test;
namespace json = boost::json;

class ServiceTest : public ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    ASSERT_TRUE(centre_->register_box("box-a", kKey));
    ASSERT_TRUE(centre_->register_box("box-b", kKey));
  }

  std::unique_ptr<httplib::SSLClient> client(const std::string& who) {
    std::unique_ptr<httplib::SSLClient> cli;
    if (who.empty()) {
      cli = std::make_unique<httplib::SSLClient>("127.0.0.1", service_->port());
    } else {
      cli = std::make_unique<httplib::SSLClient>("127.0.0.1", service_->port(),
                                                 pki_.path(who + ".crt"), pki_.path(who + ".key"));
    }
    cli->set_ca_cert_path(pki_.path("fleet-ca.crt").c_str());
    cli->enable_server_certificate_verification(true);
    cli->set_connection_timeout(5);
    cli->set_read_timeout(20);
    return cli;
  }

  static std::string body_of(const std::vector<std::string>& lines) {
    std::string b;
    for (const auto& l : lines) b += l + "\n";
    return b;
  }

  std::int64_t head_seq(const std::string& box) {
    auto h = centre_->head(box);
    return h ? h->seq : -1;
  }

};

TEST_F(ServiceTest, ABoxUploadsOverMutualTlsAndOnlyItsCertificateNamesIt) {
  start();
  auto cli = client("box-a");
  auto h = cli->Get("/v1/head");
  ASSERT_TRUE(h) << httplib::to_string(h.error());
  ASSERT_EQ(h->status, 200) << h->body;
  const auto head = json::parse(h->body).as_object();
  EXPECT_EQ(head.at("box").as_string(), "box-a");
  const std::int64_t from = head.at("seq").as_int64();

  Box box("svc-a");
  box.append(static_cast<int>(from) + 40);
  const auto before_b = head_seq("box-b");
  // Compressed, as a box sends a backlog; a header naming another box changes nothing.
  cli->set_compress(true);
  httplib::Headers hdrs{{"X-Box-Id", "box-b"}};
  auto r = cli->Post("/v1/records", hdrs, body_of(box.lines(from + 1, from + 40)),
                     "application/x-ndjson");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  const auto out = json::parse(r->body).as_object();
  EXPECT_EQ(out.at("outcome").as_string(), "stored");
  EXPECT_EQ(out.at("stored").as_int64(), 40);
  EXPECT_EQ(out.at("head").at("seq").as_int64(), from + 40);
  EXPECT_EQ(head_seq("box-a"), from + 40);
  EXPECT_EQ(head_seq("box-b"), before_b) << "the header named box-b: ignored";
}

TEST_F(ServiceTest, NoCertificateOrOneFromAnotherCaNeverGetsAnAnswer) {
  start();
  auto none = client("");
  auto r = none->Get("/v1/head");
  EXPECT_FALSE(r && r->status == 200) << "a client without a certificate was answered";
  auto rogue = client("rogue-a");
  r = rogue->Get("/v1/head");
  EXPECT_FALSE(r && r->status == 200) << "a certificate from another CA was answered";
  // A certificate from the right CA for a box nobody registered.
  auto c = client("box-c");
  r = c->Get("/v1/head");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("box_id"), std::string::npos) << r->body;
}

TEST_F(ServiceTest, AGapIsAnswered409WithTheHeadToResendFrom) {
  start();
  auto cli = client("box-a");
  auto h = cli->Get("/v1/head");
  ASSERT_TRUE(h);
  const std::int64_t from = json::parse(h->body).at("seq").as_int64();
  Box box("svc-gap");
  box.append(static_cast<int>(from) + 5);
  auto r = cli->Post("/v1/records", body_of(box.lines(from + 3, from + 5)), "application/x-ndjson");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409) << r->body;
  const auto out = json::parse(r->body).as_object();
  EXPECT_EQ(out.at("outcome").as_string(), "gap");
  EXPECT_EQ(out.at("head").at("seq").as_int64(), from);
  EXPECT_EQ(out.at("seq").as_int64(), from + 1);
}

TEST_F(ServiceTest, ABoxsSealArrivesOverTheSameChannelAndMakesItsRecordsFinal) {
  // box-s: its own certificate, registered with a key whose private half the test holds.
  auto key = signing::KeyPair::generate();
  ASSERT_TRUE(key);
  static int n = 0;
  ASSERT_EQ(n++, 0) << "box-s is registered once per process";
  ASSERT_TRUE(centre_->register_box("box-s", key->public_key().hex()));
  start();
  auto cli = client("box-s");
  Box box("svc-seal");
  box.append(3, 500, at("2026-12-05T04:00:00Z"));
  auto send_seal = [&](const audit::SignedSeal& seal) {
    json::object body{{"seal", seal.json}, {"signature", crypto::base64_encode(seal.signature)}};
    return cli->Post("/v1/seals", json::serialize(body), "application/json");
  };
  const auto seal = box.seal("2026-12-05", *key);
  // Before its records: not yet.
  auto r = send_seal(seal);
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 409) << r->body;
  auto up = cli->Post("/v1/records", body_of(box.lines(1, 3)), "application/x-ndjson");
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 200) << up->body;
  // Signed by a key the registry does not hold for box-s: refused.
  auto other = signing::KeyPair::generate();
  ASSERT_TRUE(other);
  r = send_seal(box.seal("2026-12-05", *other));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_NE(r->body.find("registered key"), std::string::npos) << r->body;
  // The genuine seal: its three records are final.
  r = send_seal(seal);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body).at("sealed").as_int64(), 3);
  // Garbage is named.
  r = cli->Post("/v1/seals", R"({"seal":"{}","signature":"AA=="})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422);
  EXPECT_NE(r->body.find("signature"), std::string::npos) << r->body;
}

TEST_F(ServiceTest, WhileTheDatabaseIsAwayBoxesAreToldWhenToComeBack) {
  start("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2");
  auto cli = client("box-a");
  Box box("svc-away");
  box.append(2);
  auto r = cli->Post("/v1/records", body_of(box.lines(1, 2)), "application/x-ndjson");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->get_header_value("Retry-After"), "30");
  auto h = cli->Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
}

}  // namespace
}  // namespace lanegate::fleet
