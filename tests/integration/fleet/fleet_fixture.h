#pragma once
// Shared by the fleet tests: one throwaway PostgreSQL per test program (the quick-start server
// of scripts/fleet-cluster, as its own user), and a box with a real ledger in SQLite.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "core/ledger.h"
#include "core/signing.h"
#include "core/sqlite.h"
#include "core/time_format.h"
#include "fleet/centre.h"
#include "fleet/pg.h"
#include "fleet/service.h"
#include "support/run_command.h"

namespace lanegate::fleet::test {

namespace fs = std::filesystem;
using lanegate::testing::run_command;

// One PostgreSQL for the whole test program, as its own user, in a throwaway directory.
class Server {
 public:
  static Server& get() {
    static Server s;
    return s;
  }
  const std::string& dsn() const { return dsn_; }
  const std::string& error() const { return error_; }
  ~Server() { run_command(env_ + " " + script_ + " destroy"); }

 private:
  Server() {
    char tmpl[] = "/var/tmp/lanegate-fleet-ingest.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    std::random_device rd;
    script_ = std::string(LANEGATE_SOURCE_DIR) + "/scripts/fleet-cluster";
    // Test programs run two at a time, each with its own server: a port another one took
    // (or any other socket) fails the start, so a few random ports are tried.
    const std::string mark = "fleet-cluster: dsn: ";
    std::string out;
    std::size_t at = std::string::npos;
    for (int attempt = 0; attempt < 6 && at == std::string::npos; ++attempt) {
      // Below the kernel's ephemeral range (32768+), where a client socket could hold it.
      const int port = 29000 + static_cast<int>(rd() % 300) * 10;
      env_ = "LANEGATE_FLEET_DIR=" + std::string(tmpl) + " LANEGATE_FLEET_PORT=" +
             std::to_string(port);
      auto [rc, text] = run_command(env_ + " " + script_ + " single");
      out += text;
      at = rc == 0 ? text.find(mark) : std::string::npos;
      if (at != std::string::npos) out = text;
    }
    if (at == std::string::npos) {
      error_ = out;
      return;
    }
    dsn_ = out.substr(at + mark.size());
    dsn_ = dsn_.substr(0, dsn_.find('\n'));
  }
  std::string script_, env_, dsn_, error_;
};

inline SystemTime at(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  if (!t) std::abort();
  return *t;
}

// A box: a real ledger in SQLite, appended to as the gateway does.
class Box {
 public:
  explicit Box(std::string seed) : seed_(std::move(seed)) {
    char tmpl[] = "/tmp/lanegate-fleet-box.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    dir_ = tmpl;
    auto db = Database::open(dir_ / "lanegate.db");
    std::vector<std::string_view> steps;
    for (auto st : ledger::ledger_schema_steps()) steps.push_back(st);
    for (auto st : audit::audit_schema_steps()) steps.push_back(st);
    if (!db || !db->migrate(steps)) std::abort();
    db_.emplace(std::move(*db));
  }
  ~Box() {
    db_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Appends n settled charges of `fen` each, at `time` (+1 s each).
  void append(int n, std::int64_t fen = 500, SystemTime time = at("2026-12-07T03:00:00Z")) {
    for (int i = 0; i < n; ++i) {
      ledger::LedgerEvent e;
      e.kind = ledger::Kind::kChargeSettled;
      e.time = time + std::chrono::seconds(i);
      e.lane = "exit-1";
      e.plate = "粤B1234" + std::to_string(i % 10);
      e.out_trade_no = seed_ + "-" + std::to_string(++n_);
      e.amount = Money::from_fen(fen);
      e.state = "SUCCESS";
      e.actor = "provider";
      auto txn = db_->begin();
      if (!txn || !ledger::append(*txn, e) || !txn->commit()) std::abort();
    }
  }
  std::vector<std::string> lines(std::int64_t first, std::int64_t last) {
    std::vector<std::string> out;
    auto rs = ledger::read(*db_, {first, last});
    if (!rs) std::abort();
    for (const auto& e : *rs) out.push_back(ledger::jsonl_line(e));
    return out;
  }
  // The box's own seal of a local day (+08:00), signed with `key`.
  audit::SignedSeal seal(std::string_view date, const signing::KeyPair& key) {
    auto s = audit::seal_day(*db_, date, UtcOffset{480}, key);
    if (!s) {
      ADD_FAILURE() << s.error().to_string();
      std::abort();
    }
    return std::move(*s);
  }
  // The box's own settlement package of that seal, as an authority would receive it.
  void export_to(const audit::SignedSeal& s, const fs::path& dir) {
    if (!audit::export_package(*db_, s, dir)) std::abort();
  }
  fs::path db_path() const { return dir_ / "lanegate.db"; }
  Head head() {
    auto h = ledger::head(*db_);
    if (!h || !*h) return {};
    return Head{(*h)->seq, (*h)->hash};
  }

 private:
  std::string seed_;
  fs::path dir_;
  std::optional<Database> db_;
  int n_ = 0;
};

inline constexpr std::string_view kKey = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

// A CA for boxes (which also signs the service's certificate), and another CA nobody trusts.
class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/lanegate-fleet-pki.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    dir_ = tmpl;
    const std::string d = dir_.string();
    std::string script = "set -e; cd " + d + "\n";
    auto ca = [&](const std::string& name) {
      script += "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " +
                name + ".key -out " + name + ".crt -days 3650 -subj /CN=" + name +
                " 2>/dev/null\n";
    };
    auto leaf = [&](const std::string& name, const std::string& cn, const std::string& ca_name,
                    const std::string& ext) {
      script += "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name +
                ".key -out " + name + ".csr -subj /CN=" + cn + " 2>/dev/null\n";
      script += "printf '" + ext + "\\n' > " + name + ".ext\n";
      script += "openssl x509 -req -in " + name + ".csr -CA " + ca_name + ".crt -CAkey " +
                ca_name + ".key -CAcreateserial -out " + name + ".crt -days 3650 -extfile " +
                name + ".ext 2>/dev/null\n";
    };
    ca("fleet-ca");
    ca("other-ca");
    leaf("server", "127.0.0.1", "fleet-ca", "subjectAltName=IP:127.0.0.1");
    leaf("box-a", "box-a", "fleet-ca", "extendedKeyUsage=clientAuth");
    leaf("box-c", "box-c", "fleet-ca", "extendedKeyUsage=clientAuth");
    leaf("box-s", "box-s", "fleet-ca", "extendedKeyUsage=clientAuth");
    leaf("box-u", "box-u", "fleet-ca", "extendedKeyUsage=clientAuth");
    leaf("rogue-a", "box-a", "other-ca", "extendedKeyUsage=clientAuth");
    {
      std::ofstream(dir_ / "make.sh") << script;
    }
    auto [rc, out] = run_command("bash " + d + "/make.sh");
    if (rc != 0 || !fs::exists(dir_ / "rogue-a.crt")) {
      error_ = "the test PKI was not made: " + out;
    }
  }
  ~Pki() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& file) const { return (dir_ / file).string(); }
  const std::string& error() const { return error_; }

 private:
  fs::path dir_;
  std::string error_;
};


// A test against the centre on the shared server: a connection and a migrated Centre.
class CentreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Server::get().dsn().empty()) << Server::get().error();
    auto c = pg::Connection::open(Server::get().dsn());
    ASSERT_TRUE(c) << c.error().message;
    conn_.emplace(std::move(*c));
    centre_.emplace(*conn_, UtcOffset{480});
    ASSERT_TRUE(centre_->migrate());
  }
  // Records of `box` no seal has made final yet.
  std::int64_t provisional(const std::string& box) {
    auto r = conn_->exec(
        "SELECT count(*) FROM fleet_records r JOIN fleet_boxes b USING (box_no) "
        "WHERE b.box_id = $1 AND r.provisional",
        {box});
    return r ? r->integer(0, 0) : -1;
  }
  std::optional<pg::Connection> conn_;
  std::optional<Centre> centre_;
};

// A CentreTest with lanegate-fleetd in-process on the test PKI.
class ServiceFixture : public CentreTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.error().empty()) << pki_.error();
    CentreTest::SetUp();
  }
  void start(std::string dsn = Server::get().dsn()) {
    ServiceConfig cfg;
    cfg.cert_file = pki_.path("server.crt");
    cfg.key_file = pki_.path("server.key");
    cfg.client_ca_file = pki_.path("fleet-ca.crt");
    cfg.dsn = std::move(dsn);
    service_ = std::make_unique<Service>(cfg);
    auto s = service_->start();
    ASSERT_TRUE(s) << s.error().to_string();
  }
  Pki pki_;
  std::unique_ptr<Service> service_;
};

}  // namespace lanegate::fleet::test
