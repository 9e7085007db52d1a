// ETC contract state end to end: the sandbox's admin changes a contract's bind_state, the
// VEHICLE.USER_STATE_CHANGE notification in the spec's format travels over HTTPS (signed,
// encrypted) into the gateway's notification handler, apply_contract_state() updates the
// contract table and the binding cache, and the toll lane follows it: any bind_state but
// the configured bound value -> the contract is not charged and offline passes stop;
// bound again -> offline passes again.
#include "gateway/contract_state.h"

#include <httplib.h>

#include <boost/asio/io_context.hpp>
#include <thread>

#include "gateway/daemon.h"
#include "gateway/provider_notify.h"
#include "gateway/site.h"
#include "provider_fixture.h"

namespace provider_test {
namespace {

using namespace lanegate;
using namespace lanegate::gateway;

const char* const kContract = kBoundContract;  // demo seed: 粤B12345, BOUND

class NoHardware final : public LaneActuator {
 public:
  std::vector<std::string> opened;
  std::vector<std::string> texts;
  Result<std::uint64_t> open_barrier(std::string_view device) override {
    opened.emplace_back(device);
    return opened.size();
  }
  Status show_text(std::string_view, std::string_view text) override {
    texts.emplace_back(text);
    return {};
  }
  Status ack_trip(std::string_view, std::uint32_t, const lane::CivilTime&) override { return {}; }
};

// The uplink is down: every toll charge is decided by the offline rule.
class DownGate final : public ChargeGate {
 public:
  bool link_up() const override { return false; }
  void kick() override {}
  void await_charge(const std::string&, std::chrono::milliseconds,
                    std::function<void(OnlineOutcome)> done) override {
    done(OnlineOutcome::kNoAnswer);
  }
};

// notify_url receiver mounting the gateway's handler with apply_contract_state.
class ContractReceiver {
 public:
  ContractReceiver(NotificationHandler& handler, Store& store, ContractRules rules)
      : server_((demo_pki() / "server.pem").c_str(), (demo_pki() / "server.key").c_str()),
        rules_(std::move(rules)) {
    server_.Post("/notify", [&handler, &store, this](const httplib::Request& req,
                                                     httplib::Response& res) {
      auto reply = handler.handle(
          {req.get_header_value("Wechatpay-Timestamp"), req.get_header_value("Wechatpay-Nonce"),
           req.get_header_value("Wechatpay-Signature"), req.get_header_value("Wechatpay-Serial"),
           req.get_header_value("Wechatpay-Signature-Type"), req.body},
          [&store, this](Transaction& txn, const NotificationEvent& ev) -> Status {
            if (const auto* c = std::get_if<ContractStateEvent>(&ev.payload)) {
              auto applied = apply_contract_state(txn, store, statement_of(*c), rules_);
              if (!applied) return std::unexpected(applied.error());
              return {};
            }
            return {};
          });
      res.status = reply.status;
      std::lock_guard lock(mu_);
      if (reply.event) {
        if (const auto* c = std::get_if<ContractStateEvent>(&reply.event->payload)) {
          events_.push_back(*c);
        }
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // cpp-httplib 0.11's stop() does nothing before the listen loop runs: wait for it, so
    // a quick test's destructor cannot hang on join().
    for (int i = 0; i < 500 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  ~ContractReceiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/notify"; }
  std::vector<ContractStateEvent> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  httplib::SSLServer server_;
  ContractRules rules_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<ContractStateEvent> events_;
};

class ContractStateTest : public ProviderFixture {
 protected:
  void SetUp() override {
    ProviderFixture::SetUp();
    auto db = Database::open(dir_.path() / "gateway.db");
    ASSERT_TRUE(db);
    site_db_.emplace(std::move(*db));
    ASSERT_TRUE(site_db_->migrate(database_schema()));
    auto hdb = Database::open(dir_.path() / "gateway.db");  // the handler's own connection
    ASSERT_TRUE(hdb);
    handler_db_.emplace(std::move(*hdb));
    site_store_.emplace(*Store::open(*site_db_, fake_clock_));
    handler_store_.emplace(*Store::open(*handler_db_, clock_));
    outbox_.emplace(*queue::Outbox::open(*site_db_, cfg_.queue, fake_clock_));
    cfg_.provider = partner_config();
    client_ = client(cfg_.provider);
    handler_ = std::make_unique<NotificationHandler>(*handler_db_, client_->key_set(),
                                                     client_->apiv3_key(), clock_);
    receiver_ = std::make_unique<ContractReceiver>(*handler_, *handler_store_,
                                                   contract_rules(cfg_.provider));

    cfg_.gateway.id = "gw1";
    cfg_.gateway.site_name = "Toll";
    config::TollTariff t;
    t.id = "toll";
    t.fares.push_back(config::TollFare{1001, 2002, 1, Money::from_fen(3500)});
    cfg_.toll_tariffs.push_back(t);
    cfg_.stations = {{1001, "广州北"}, {2002, "深圳南"}};
    config::LaneSection lane;
    lane.id = "etc-out";
    lane.mode = config::LaneMode::kTollExit;
    lane.camera = "cam-etc";
    lane.roadside_unit = "rsu-etc";
    lane.barrier = "bar-etc";
    lane.display = "led-etc";
    lane.tariff = "toll";
    lane.station_id = 2002;
    cfg_.lanes = {lane};
    site_ =
        std::make_unique<Site>(io_, cfg_, *site_store_, *outbox_, fake_clock_, hardware_, gate_);
  }
  void TearDown() override {
    site_.reset();
    receiver_.reset();
    ProviderFixture::TearDown();
  }

  // Changes the contract at the sandbox and waits (bounded) until the gateway has
  // applied the resulting notification.
  void contract_becomes(const std::string& state) {
    const std::size_t before = receiver_->events().size();
    ASSERT_TRUE(sandbox_->set_contract_state(kContract, state, receiver_->url()));
    for (int i = 0; i < 500 && receiver_->events().size() == before; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(receiver_->events().size(), before + 1) << "no USER_STATE_CHANGE delivered";
    const ContractStateEvent e = receiver_->events().back();
    EXPECT_EQ(e.contract_id, kContract);
    EXPECT_EQ(e.plate_number, kPlate);
    EXPECT_EQ(e.bind_state, state);
  }

  // A vehicle at the toll exit (camera read + roadside unit record); returns whether the
  // barrier opened.
  bool vehicle_passes() {
    fake_clock_.set_wall(std::chrono::system_clock::now());
    const std::size_t before = hardware_.opened.size();
    lane::PlateRead r;
    r.lane = "etc-out";
    r.device = "cam-etc";
    r.plate = kPlate;
    r.received_at = fake_clock_.now();
    r.received_steady = fake_clock_.steady_now();
    lane::RoadsideRecord u;
    u.lane = "etc-out";
    u.device = "rsu-etc";
    u.entry_station = 1001;
    u.entry_time = fake_clock_.now() - std::chrono::hours(1);
    u.vehicle_class = 1;
    u.obu_id = kContract;
    site_->on_event(r);
    site_->on_event(u);
    io_.restart();
    io_.poll();
    return hardware_.opened.size() > before;
  }

  config::Config cfg_;
  FakeClock fake_clock_{std::chrono::system_clock::now()};
  boost::asio::io_context io_;
  std::optional<Database> site_db_, handler_db_;
  std::optional<Store> site_store_, handler_store_;
  std::optional<queue::Outbox> outbox_;
  std::unique_ptr<WechatPayClient> client_;
  std::unique_ptr<NotificationHandler> handler_;
  std::unique_ptr<ContractReceiver> receiver_;
  NoHardware hardware_;
  DownGate gate_;
  std::unique_ptr<Site> site_;
};

TEST_F(ContractStateTest, APausedContractStopsTollPassesAndBoundRestoresThem) {
  contract_becomes("BOUND");
  EXPECT_TRUE(vehicle_passes()) << "a freshly bound contract passes offline";

  contract_becomes("PAUSED");
  auto b = site_store_->get_binding(kPlate);
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->state, BindingState::kBlocked);
  auto row = site_store_->find_contract(kContract);
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->bind_state, "PAUSED");
  EXPECT_FALSE(vehicle_passes()) << "a paused contract still passed";
  EXPECT_NE(hardware_.texts.back().find("请联系管理员"), std::string::npos);

  contract_becomes("BOUND");
  EXPECT_TRUE(vehicle_passes()) << "bound again: passes resume";

  auto list = site_store_->list_transactions(TxFilter{});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u) << "the paused passage records no charge";
  for (const auto& tx : *list) {
    EXPECT_EQ(tx.decision, DecisionKind::kPassOffline);
    EXPECT_EQ(tx.contract_id, kContract);
  }
}

// bind_state's values are unconfirmed: only the configured bound value lets a contract
// pay; any other text stops it (alarm), whatever it says.
TEST_F(ContractStateTest, AnyOtherBindStateStopsTheContract) {
  contract_becomes("SOME_NEW_STATE");
  auto b = site_store_->get_binding(kPlate);
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->state, BindingState::kBlocked);
  EXPECT_FALSE(vehicle_passes());
  EXPECT_FALSE(sandbox_->set_contract_state("wxLGnoSuchContract00000000000000", "PAUSED",
                                            receiver_->url()));
}

}  // namespace
}  // namespace provider_test
