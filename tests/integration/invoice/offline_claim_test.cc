// A claim made while the invoicing platform is unreachable is issued once the link returns,
// through the real outbox, also across a restart of the process (database reopened).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>

#include "core/ledger.h"
#include "core/sqlite.h"
#include "invoice/claims.h"
#include "invoice/platform.h"
#include "offline_queue/queue.h"
#include "sim/invoicing_sandbox.h"

namespace lanegate::invoice {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSeller = "91350100M000100Y43";
constexpr const char* kTopic = "invoice.issue";

std::vector<std::string_view> composed_steps() {
  // The gateway composes its database from the modules' step lists the same way.
  std::vector<std::string_view> steps;
  for (auto s : queue::schema_steps()) {
    steps.push_back(s);
  }
  for (auto s : ledger::ledger_schema_steps()) {
    steps.push_back(s);
  }
  for (auto s : invoice_schema_steps()) {
    steps.push_back(s);
  }
  return steps;
}

// One process's view of the gateway database: outbox + claims + the issuing worker.
struct Gateway {
  Gateway(const std::filesystem::path& file, const config::InvoicingSection& section,
          const config::QueueLimits& limits, const Clock& clock)
      : db(Database::open(file).value()), clock(clock), section(section) {
    const auto steps = composed_steps();
    EXPECT_TRUE(db.migrate(std::span<const std::string_view>(steps)));
    outbox.emplace(queue::Outbox::open(db, limits, clock).value());
    store.emplace(db, section, clock);
    store->set_issue_hook([this](Transaction& txn, const InvoiceRecord& inv) -> Status {
      boost::json::object payload;
      payload["invoice_id"] = inv.id;
      auto r = outbox->enqueue(txn, kTopic, inv.order_no, inv.order_no,
                               boost::json::serialize(payload));
      if (!r) {
        return std::unexpected(r.error());
      }
      return {};
    });
  }

  // One drain tick: lease issue requests, move each invoice on, settle the item.
  int drain(InvoicingPlatform& platform) {
    const std::vector<std::string> topics = {kTopic};
    auto items = outbox->lease(topics, 8, 30s);
    EXPECT_TRUE(items) << items.error().to_string();
    int acked = 0;
    for (const auto& item : *items) {
      const auto id = boost::json::parse(item.payload).as_object().at("invoice_id").as_int64();
      auto state = advance_invoice(*store, platform, seller_from_config(section), id, clock);
      if (!state) {
        EXPECT_TRUE(outbox->retry(item.token(), state.error().to_string()));
      } else if (*state == InvoiceState::kClaimed || *state == InvoiceState::kIssuing) {
        EXPECT_TRUE(outbox->retry(item.token(), "platform still issuing", 1s));
      } else {
        EXPECT_TRUE(outbox->ack(item.token()));
        ++acked;
      }
    }
    return acked;
  }

  Database db;
  const Clock& clock;
  const config::InvoicingSection& section;
  std::optional<queue::Outbox> outbox;
  std::optional<ClaimStore> store;
};

struct TempDir {
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "it-offline-XXXXXX").string();
    if (mkdtemp(t.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp";
    }
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

TEST(OfflineClaimIT, IssuedAfterLinkReturnsAcrossRestart) {
  TempDir tmp;  // declared first: removed after everything using it is gone
  const std::filesystem::path dir = tmp.path;
  FakeClock clock;
  sim::InvoicingSandboxOptions so;
  so.db_file = dir / "sandbox.db";
  so.clock = &clock;
  so.seller_tax_id = kSeller;
  auto sandbox = sim::InvoicingSandbox::start(so).value();
  sandbox->set_unavailable(true);  // the uplink is down

  config::InvoicingSection section;
  section.seller_tax_id = kSeller;
  config::QueueLimits limits;
  PlatformClientOptions po;
  po.base_url = sandbox->base_url();
  po.app_key = "sandbox-app-key";
  po.access_token = "sandbox-access-token";
  po.seller_tax_id = kSeller;
  po.clerk = "测试开票员";
  po.connect_timeout = 1000ms;
  po.request_timeout = 5000ms;
  NuonuoPlatform platform(po, std::make_unique<NuonuoSigner>("sandbox-app-secret"), clock);

  std::string order_no;
  std::int64_t invoice_id = 0;
  {
    Gateway gw(dir / "gw.db", section, limits, clock);
    auto claim = gw.store->create_claim(
        {"taxi-1", "", "taxi", *Money::parse("19.19"), clock.now(), "trip"});
    ASSERT_TRUE(claim);
    auto sub = gw.store->submit(claim->token, Buyer{BuyerKind::kPerson, "张三", "", "", "13800138000"});
    ASSERT_TRUE(sub) << sub.error().to_string();
    order_no = sub->invoice.order_no;
    invoice_id = sub->invoice.id;
    // Two drain ticks while offline: nothing issued, the request stays queued.
    EXPECT_EQ(gw.drain(platform), 0);
    clock.advance(10min);
    EXPECT_EQ(gw.drain(platform), 0);
    EXPECT_EQ(gw.store->get_invoice(invoice_id)->state, InvoiceState::kClaimed);
    EXPECT_FALSE(sandbox->find(order_no));
  }  // the gateway process stops here

  sandbox->set_unavailable(false);  // link back
  Gateway gw(dir / "gw.db", section, limits, clock);
  ASSERT_TRUE(gw.outbox->release_all_leases());
  int acked = 0;
  for (int tick = 0; tick < 20 && acked == 0; ++tick) {
    clock.advance(10min);  // beyond any backoff
    acked += gw.drain(platform);
  }
  EXPECT_EQ(acked, 1);
  auto inv = gw.store->get_invoice(invoice_id).value();
  EXPECT_EQ(inv.state, InvoiceState::kIssued);
  EXPECT_EQ(inv.invoice_number.size(), 20u);
  auto remote = sandbox->find(order_no);
  ASSERT_TRUE(remote);
  EXPECT_EQ(remote->status, "2");
  EXPECT_EQ(remote->incl_fen, 1919);
}

}  // namespace
}  // namespace lanegate::invoice
