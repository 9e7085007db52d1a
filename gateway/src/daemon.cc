#include "gateway/daemon.h"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>

#include "config/secrets.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/process.h"
#include "gateway/api_routes.h"
#include "gateway/camera_receiver.h"
#include "gateway/evidence.h"
#include "audit/audit.h"
#include "gateway/http_api.h"
#include "gateway/invoice_uplink.h"
#include "gateway/provider_notify.h"
#include "gateway/provider_wechatpay.h"
#include "gateway/settlement.h"
#include "gateway/site.h"
#include "gateway/store.h"
#include "gateway/uplink.h"
#include "invoice/claims.h"
#include "invoice/receipt.h"
#include "gateway/screen.h"
#include "gateway/fleet_uplink.h"
#include "gateway/regulator.h"
#include "invoice/platform.h"
#include "lane/drivers.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

// Device threads hand events to the io thread.
class PostingSink final : public lane::EventSink {
 public:
  PostingSink(asio::io_context& io, std::function<void(const lane::LaneEvent&)> handler)
      : io_(io), handler_(std::move(handler)) {}
  void post(lane::LaneEvent event) override {
    asio::post(io_, [this, e = std::move(event)] { handler_(e); });
  }

 private:
  asio::io_context& io_;
  std::function<void(const lane::LaneEvent&)> handler_;
};

class DriversActuator final : public LaneActuator {
 public:
  lane::LaneDrivers* drivers = nullptr;
  Result<std::uint64_t> open_barrier(std::string_view device) override {
    if (drivers == nullptr) return fail(Errc::kUnavailable, "no lane drivers");
    return drivers->open_barrier(device);
  }
  Status show_text(std::string_view device, std::string_view text) override {
    if (drivers == nullptr) return fail(Errc::kUnavailable, "no lane drivers");
    return drivers->show_text(device, text);
  }
  Status ack_trip(std::string_view meter, std::uint32_t trip, const lane::CivilTime& boarding) override {
    if (drivers == nullptr) return fail(Errc::kUnavailable, "no lane drivers");
    return drivers->ack_trip(meter, trip, boarding);
  }
};

// Without a configured provider every charge stays queued and the offline rule decides.
class NoUplink final : public ChargeGate {
 public:
  bool link_up() const override { return false; }
  void kick() override {}
  void await_charge(const std::string&, std::chrono::milliseconds, std::function<void(OnlineOutcome)> done) override {
    done(OnlineOutcome::kNotTried);
  }
};

// Lanes, devices and buses are wired at start-up; a reload cannot change them.
std::string wiring_of(const config::Config& c) {
  std::string w;
  for (const auto& l : c.lanes) w += "lane:" + l.id + ":" + std::string(config::to_string(l.mode)) + ";";
  for (const auto& d : c.devices) w += "device:" + d.id + ":" + d.bus + ";";
  for (const auto& b : c.buses) w += "bus:" + b.id + ":" + b.host + ":" + std::to_string(b.port) + b.serial_device + ";";
  for (const auto& m : c.meters) w += "meter:" + m.id + ":" + m.device + ";";
  w += "api:" + c.api.listen_address + ":" + std::to_string(c.api.listen_port) + ";provider:" + c.provider.base_url +
       (c.provider.partner() ? ":partner:" : ":direct:") + c.provider.caller_mchid() + ":" + c.provider.caller_appid() +
       ":" + c.provider.sub_mchid + ":" + c.provider.sub_appid;
  // The invoicing platform client, its worker and the tax rules are built at start-up
  // (claim_window_days and buyer_id_allow_list are read live and may change on reload).
  w += ";invoicing:" + std::string(c.invoicing.enabled ? "on:" : "off:") + c.invoicing.base_url + ":" +
       c.invoicing.app_key + ":" + c.invoicing.seller_tax_id + ":" + c.invoicing.seller_name + ":" +
       c.invoicing.app_secret_file.string() + ":" + c.invoicing.access_token_file.string() + ":" +
       (c.invoicing.ca_file ? c.invoicing.ca_file->string() : "") + (c.invoicing.verify_tls ? ":v" : ":nv");
  const auto& lot = c.invoicing.parking;
  w += ":" + c.invoicing.clerk + (c.invoicing.sign_encoding == config::SignEncoding::kUrl ? ":url" : ":plain") +
       (c.invoicing.taxpayer == config::Taxpayer::kSmallScale ? ":small" : ":general") +
       ";lease:" + (lot.specific_business ? "06:" : "-:") + lot.property_address + ":" + lot.detail_address +
       (lot.cross_city ? ":x:" : ":-:") + lot.certificate + ":" + std::to_string(lot.area_unit) +
       ";traveller:" + (c.invoicing.taxi.offer_traveller ? "on:" : "off:") + c.invoicing.taxi.traveller_list_key;
  for (const auto& t : c.invoicing.tax) {
    w += ";tax:" + t.service + ":" + t.item_name + ":" + t.code + ":" + std::to_string(t.rate_percent) + ":" +
         t.favoured_policy_flag + ":" + t.survey_answer_type;
  }
  return w;
}

Status create_state_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return fail(Errc::kIo, "cannot create state directory " + dir.string() + ": " + ec.message(),
                "gateway.state_dir");
  }
  return {};
}

// A database file created before lanegated made its files itself (by an older version
// run from a shell, or copied in) may be readable by others: claim tokens, buyer data
// and plates. Not fatal when it cannot be changed (another owner): said loudly instead.
void restrict_to_owner(const std::filesystem::path& file) {
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0 || (st.st_mode & 0077) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  if (::chmod(file.c_str(), 0600) != 0) {
    log::error(
        "database file is readable by group or others and cannot be made owner-only; run chmod 600",
        {{"FILE", file.string()}, {"MODE", mode}, {"ERROR", std::strerror(errno)}});
    return;
  }
  log::warn("database file was readable by group or others; made owner-only (0600)",
            {{"FILE", file.string()}, {"MODE", mode}});
}

}  // namespace

std::filesystem::path state_lock_file(const std::filesystem::path& state_dir) {
  return state_dir / "lanegated.lock";
}

Result<process::ExclusiveFileLock> lock_state_directory(const std::filesystem::path& state_dir) {
  if (auto s = create_state_directory(state_dir); !s) return std::unexpected(s.error());
  const auto file = state_lock_file(state_dir);
  auto lock = process::ExclusiveFileLock::acquire(file);
  if (!lock && lock.error().code == Errc::kBusy) {
    const auto pid = process::ExclusiveFileLock::recorded_pid(file);
    return fail(Errc::kBusy,
                "another lanegated" +
                    (pid ? " (pid " + std::to_string(*pid) + ")" : std::string()) +
                    " is running on the state directory " + state_dir.string() + ": it holds " +
                    file.string() + "; only one lanegated may use a state directory",
                "gateway.state_dir");
  }
  return lock;
}

Result<Database> open_state_database(const config::Config& cfg) {
  if (auto s = create_state_directory(cfg.gateway.state_dir); !s) return std::unexpected(s.error());
  const auto file = cfg.gateway.state_dir / "lanegate.db";
  auto db = Database::open(file, state_database_options(cfg.gateway));
  if (!db) return db;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    restrict_to_owner(file.string() + suffix);
  }
  if (auto s = db->migrate(database_schema()); !s) {
    return std::unexpected(s.error());
  }
  return db;
}

static EvidenceLimits evidence_limits(const config::CamerasSection& c) {
  EvidenceLimits l;
  l.retention_days = c.evidence_retention_days;
  l.max_bytes = c.evidence_max_mb * 1024 * 1024;
  return l;
}

struct Daemon::Impl {
  DaemonOptions options;
  // First member, so destroyed last: held until every database connection is closed.
  std::optional<process::ExclusiveFileLock> instance_lock;
  asio::io_context io;
  asio::signal_set stop_signals{io, SIGTERM, SIGINT};
  asio::signal_set reload_signal{io, SIGHUP};
  asio::steady_timer watchdog{io};
  asio::system_timer seal_timer{io};
  std::optional<signing::KeyPair> device_key;
  std::chrono::microseconds watchdog_interval{0};
  std::optional<config::Config> config;
  std::optional<Database> db;
  std::optional<Store> store;
  std::optional<queue::Outbox> outbox;
  std::unique_ptr<invoice::ClaimStore> claims;  // null when invoicing is disabled
  std::unique_ptr<InvoiceUplink> invoice_uplink;  // null when invoicing is disabled
  std::unique_ptr<queue::Drainer> invoice_drainer;  // only without a payment provider
  std::unique_ptr<WechatPayClient> provider;
  std::unique_ptr<Uplink> uplink;
  NoUplink no_uplink;
  std::unique_ptr<NotificationHandler> notifications;
  DriversActuator actuator;
  std::unique_ptr<Site> site;
  std::unique_ptr<ScreenBoard> screens;  // the taxi passenger screens
  std::unique_ptr<FleetUplink> fleet;  // [fleet] enabled
  std::unique_ptr<queue::Drainer> fleet_drainer;
  asio::steady_timer fleet_timer{io};
  std::unique_ptr<RegulatorUplink> regulator;  // [regulator] enabled
  std::unique_ptr<queue::Drainer> regulator_drainer;
  std::unique_ptr<PostingSink> sink;
  std::unique_ptr<lane::LaneDrivers> drivers;
  std::unique_ptr<EvidenceStore> evidence;     // push cameras' images
  std::unique_ptr<CameraReceiver> cameras;     // null when no camera pushes over HTTP
  std::unique_ptr<HttpApi> camera_api;         // [cameras] listen_address: their own listener
  std::unique_ptr<HttpApi> api;

  // Builds and starts every component. Returns false (with log lines) on failure.
  bool start_components() {
    const config::Config& cfg = *config;
    auto key = audit::ensure_device_key(cfg.gateway.state_dir);
    if (!key) {
      log::error("not starting: device signing key: " + key.error().to_string());
      return false;
    }
    device_key.emplace(std::move(*key));
    auto st = Store::open(*db, SystemClock::instance());
    if (!st) {
      log::error("not starting: " + st.error().to_string());
      return false;
    }
    store.emplace(std::move(*st));
    auto ob = queue::Outbox::open(*db, cfg.queue, SystemClock::instance());
    if (!ob) {
      log::error("not starting: " + ob.error().to_string());
      return false;
    }
    outbox.emplace(std::move(*ob));
    // This is the only process that leases: leases of a previous run come back now.
    if (auto r = outbox->release_all_leases(); r && *r > 0) {
      log::notice("returned leases of the previous run to the queue", {{"ITEMS", *r}});
    }
    if (cfg.invoicing.enabled) {
      claims = std::make_unique<invoice::ClaimStore>(*db, config->invoicing, SystemClock::instance());
      wire_invoicing(*store, *claims, *outbox, UtcOffset{cfg.gateway.utc_offset_minutes});
      auto platform = invoice::make_platform(cfg.invoicing, SystemClock::instance());
      if (!platform) {
        log::error("not starting: invoicing platform: " + platform.error().to_string());
        return false;
      }
      // The issuing worker's own connection (gateway/invoice_uplink.h).
      auto worker_db = Database::open(cfg.gateway.state_dir / "lanegate.db", state_database_options(cfg.gateway));
      if (!worker_db) {
        log::error("not starting: invoicing worker database: " + worker_db.error().to_string());
        return false;
      }
      invoice_uplink = std::make_unique<InvoiceUplink>(io, config->invoicing, std::move(*worker_db),
                                                       std::move(*platform), *claims, SystemClock::instance());
      invoice_uplink->set_on_link_up([this] {
        (void)outbox->retry_all_now();
        if (uplink) uplink->kick();
        if (invoice_drainer) invoice_drainer->link_up();
      });
    } else {
      log::notice("invoicing disabled ([invoicing] enabled = false): no invoice claims are made");
    }
    ChargeGate* gate = &no_uplink;
    if (cfg.provider.configured()) {
      auto client = WechatPayClient::create(cfg.provider, SystemClock::instance());
      if (!client) {
        log::error("not starting: payment provider: " + client.error().to_string());
        return false;
      }
      provider = std::move(*client);
      uplink = std::make_unique<Uplink>(io, cfg, *store, *outbox, *provider, SystemClock::instance());
      notifications = std::make_unique<NotificationHandler>(*db, provider->key_set(), provider->apiv3_key(),
                                                            SystemClock::instance());
      uplink->set_invoice_uplink(invoice_uplink.get());
      gate = uplink.get();
    } else {
      log::warn("no payment provider configured (no provider merchant id): charges stay queued");
    }
    site = std::make_unique<Site>(io, cfg, *store, *outbox, SystemClock::instance(), actuator, *gate);
    screens = std::make_unique<ScreenBoard>();
    ClaimLookup claim_lookup;
    if (claims) {
      claim_lookup = [this](std::string_view out) -> std::optional<ClaimRef> {
        auto c = claims->find_by_transaction(out);
        if (!c) return std::nullopt;
        return ClaimRef{invoice::claim_url(config->api.public_base_url, c->token),
                        invoice::format_human_code(c->human_code)};
      };
    }
    for (const auto& l : cfg.lanes) {
      if (l.mode == config::LaneMode::kTaxi) screens->set(l.id, ScreenView{});
    }
    site->set_screen(screens.get(), std::move(claim_lookup));
    if (uplink) {
      uplink->set_pay_sink([this](const queue::Item& item, queue::Drainer::Completion done) {
        site->pay_item(item, std::move(done));
      });
      uplink->set_payment_applier([this](Transaction& txn, const Payment& payment) {
        return site->apply_payment(txn, payment, AnswerSource::kNotification);
      });
    }
    site->recover();
    sink = std::make_unique<PostingSink>(io, [this](const lane::LaneEvent& e) { site->on_event(e); });
    if (!cfg.devices.empty() || !cfg.meters.empty()) {
      auto d = lane::LaneDrivers::create(cfg, *sink, SystemClock::instance());
      if (!d) {
        log::error("not starting: lane devices: " + d.error().to_string());
        return false;
      }
      drivers = std::move(*d);
      actuator.drivers = drivers.get();
    }
    const bool push_cameras =
        std::ranges::any_of(cfg.devices, [](const config::DeviceSection& d) { return d.push(); });
    if (push_cameras) {
      evidence = std::make_unique<EvidenceStore>(cfg.gateway.state_dir / "evidence",
                                                 evidence_limits(cfg.cameras));
      cameras = std::make_unique<CameraReceiver>(io, cfg, *store, evidence.get(), *sink,
                                                 SystemClock::instance());
    }
    site->set_camera_feedback([this](std::string_view device, bool missed) {
      if (cameras && cameras->owns(device)) {
        cameras->vehicle_seen(device, missed);
      } else if (drivers) {
        drivers->vehicle_seen(device, missed);
      }
    });
    api = std::make_unique<HttpApi>(io, cfg.api);
    add_api_routes(*api, ApiServices{&cfg, &*store, &*outbox, site.get(), uplink.get(), notifications.get(),
                                     drivers.get(), claims.get(), evidence.get(), cameras.get()});
    if (cameras) {
      if (cfg.cameras.listen_address.empty()) {
        cameras->add_routes(*api);
      } else {
        config::ApiSection own;
        own.listen_address = cfg.cameras.listen_address;
        own.listen_port = cfg.cameras.listen_port;
        own.max_body_bytes = cfg.cameras.max_body_bytes;
        own.header_timeout_ms = cfg.api.header_timeout_ms;
        camera_api = std::make_unique<HttpApi>(io, own);
        cameras->add_routes(*camera_api);
        auto cport = camera_api->start();
        if (!cport) {
          log::error("not starting: camera listener: " + cport.error().to_string());
          return false;
        }
        log::notice("camera receiver listening",
                    {{"ADDRESS", cfg.cameras.listen_address}, {"PORT", static_cast<int>(*cport)}});
      }
      cameras->start();
    }
    add_screen_routes(*api, *screens);
    auto port = api->start();
    if (!port) {
      log::error("not starting: API: " + port.error().to_string());
      return false;
    }
    api_port = *port;
    if (drivers) {
      if (auto s2 = drivers->start(); !s2) {
        log::error("not starting: lane devices: " + s2.error().to_string());
        return false;
      }
    }
    if (uplink) uplink->start();
    if (cfg.regulator.enabled) {
      // The regulator's uploads drain on their own: the platform is neither the payment
      // provider nor the invoicing platform, and a slow one holds up neither.
      regulator = std::make_unique<RegulatorUplink>(io, config->regulator, SystemClock::instance());
      RegulatorUplink* reg = regulator.get();
      regulator_drainer = std::make_unique<queue::Drainer>(
          io, *outbox, cfg.queue, SystemClock::instance(),
          [reg](const queue::Item& item, queue::Drainer::Completion done) { reg->sink(item, std::move(done)); },
          queue::DrainerOptions{.topics = {std::string(kTopicRegulatorTrip)},
                                .compact_interval = std::chrono::milliseconds(0)});
      regulator->set_on_link_up([this] {
        if (regulator_drainer) regulator_drainer->link_up();
      });
      regulator_drainer->start();
    }
    if (cfg.fleet.enabled) {
      // The fleet centre drains on its own too: uploads of the ledger never wait on, or hold
      // up, the payment provider (docs/FLEET.md). The uplink reads through its own connection.
      auto fleet_db = Database::open(cfg.gateway.state_dir / "lanegate.db", state_database_options(cfg.gateway));
      if (!fleet_db) {
        log::error("not starting: fleet upload database: " + fleet_db.error().to_string());
        return false;
      }
      fleet = std::make_unique<FleetUplink>(config->fleet, std::move(*fleet_db));
      FleetUplink* f = fleet.get();
      fleet_drainer = std::make_unique<queue::Drainer>(
          io, *outbox, cfg.queue, SystemClock::instance(),
          [f](const queue::Item& item, queue::Drainer::Completion done) { f->sink(item, std::move(done)); },
          queue::DrainerOptions{.topics = {std::string(kTopicFleetSync)},
                                .compact_interval = std::chrono::milliseconds(0)});
      fleet_drainer->start();
      queue_fleet_sync();
    }
    if (!uplink && invoice_uplink) {
      // No payment provider: the invoice topics still drain, on their own.
      InvoiceUplink* inv = invoice_uplink.get();
      invoice_drainer = std::make_unique<queue::Drainer>(
          io, *outbox, cfg.queue, SystemClock::instance(),
          [inv](const queue::Item& item, queue::Drainer::Completion done) { inv->sink(item, std::move(done)); },
          queue::DrainerOptions{.topics = InvoiceUplink::topics()});
      invoice_drainer->start();
    }
    seal_days();
    return true;
  }

  // Queues a fleet sync unless one is waiting already (the ledger is the queue: one sync item
  // catches up everything), then again every sync_interval_s.
  void queue_fleet_sync() {
    bool waiting = false;
    if (auto st = outbox->stats()) {
      for (const auto& t : st->topics) {
        if (t.topic == kTopicFleetSync) waiting = t.pending + t.leased + t.parked > 0;
      }
    }
    if (!waiting) {
      auto txn = db->begin();
      const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              SystemClock::instance().now().time_since_epoch())
                              .count();
      if (txn && outbox->enqueue(*txn, kTopicFleetSync, "fleet", "fleet.sync/" + std::to_string(now_ms), "{}") &&
          txn->commit()) {
        if (fleet_drainer) fleet_drainer->link_up();
      } else {
        log::warn("fleet sync not queued; retrying at the next interval");
      }
    }
    fleet_timer.expires_after(std::chrono::seconds(config->fleet.sync_interval_s));
    fleet_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) queue_fleet_sync();
    });
  }

  // Seals every finished local day not sealed yet (also days missed while stopped), then
  // sleeps until just after the next local midnight.
  void seal_days() {
    const UtcOffset off{config->gateway.utc_offset_minutes};
    auto sealed = audit::seal_pending_days(*db, off, *device_key, SystemClock::instance());
    if (!sealed) {
      log::error("sealing finished days failed; retrying at the next timer", {{"ERROR", sealed.error().message}});
    } else {
      for (const auto& seal : *sealed) {
        log::notice("day sealed", {{"DATE", seal.seal.date}});
      }
    }
    seal_timer.expires_at(audit::next_seal_time(SystemClock::instance().now(), off));
    seal_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) seal_days();
    });
  }

  void stop_components() {
    if (drivers) drivers->stop();
    if (cameras) cameras->stop();
    if (camera_api) camera_api->stop();
    if (api) api->stop();
    if (uplink) uplink->stop();
    if (invoice_drainer) invoice_drainer->stop();
    if (invoice_uplink) invoice_uplink->stop();
    fleet_timer.cancel();
    if (fleet_drainer) fleet_drainer->stop();
    if (fleet) fleet->stop();
    if (regulator_drainer) regulator_drainer->stop();
    if (regulator) regulator->stop();
  }

  std::uint16_t api_port = 0;
  std::atomic<int> accepted{0};
  std::atomic<int> rejected{0};

  void arm_stop() {
    stop_signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      log::notice("stopping", {{"SIGNAL", sig}});
      notify("STOPPING=1\nSTATUS=stopping");
      io.stop();
    });
  }

  void arm_reload() {
    reload_signal.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      reload();
      arm_reload();
    });
  }

  void reload() {
    notify("RELOADING=1");
    auto fresh = config::load_file(options.config_file);
    if (!fresh) {
      ++rejected;
      metrics::Registry::global()
          .counter("lanegate_config_reloads_total", "Configuration reloads by result", {{"result", "rejected"}})
          .inc();
      log::error("configuration reload rejected; the running configuration stays in force",
                 {{"CONFIG_FILE", options.config_file.string()}, {"ERRORS", fresh.error().size()}});
      for (const auto& e : fresh.error()) {
        log::error("config error: " + e.to_string());
      }
    } else if (fresh->gateway.state_dir != config->gateway.state_dir) {
      ++rejected;
      log::error("configuration reload rejected: gateway.state_dir cannot change without a restart",
                 {{"CONFIG_FILE", options.config_file.string()}});
    } else if (wiring_of(*fresh) != wiring_of(*config)) {
      ++rejected;
      log::error("configuration reload rejected: lanes, devices, buses, meters, the API address, the provider "
                 "account and the invoicing platform change only with a restart",
                 {{"CONFIG_FILE", options.config_file.string()}});
    } else {
      ++accepted;
      metrics::Registry::global()
          .counter("lanegate_config_reloads_total", "Configuration reloads by result", {{"result", "accepted"}})
          .inc();
      config = std::move(*fresh);
      // A non-rewiring change: the database size bound applies to every connection now.
      if (auto s = apply_database_limit(*db, config->gateway); !s) {
        log::error("cannot apply gateway.max_database_mb", {{"ERROR", s.error().message}});
      } else {
        log::notice("database size bound applied", {{"MAX_DATABASE_MB", config->gateway.max_database_mb}});
      }
      if (invoice_uplink) invoice_uplink->apply_database_limit(config->gateway);
      if (site) site->set_config(*config);
      if (cameras) cameras->set_config(*config);
      if (evidence) evidence->set_limits(evidence_limits(config->cameras));
      if (api) api->set_tokens(config->api.tokens);
      log::notice("configuration reloaded", {{"CONFIG_FILE", options.config_file.string()}});
    }
    notify("READY=1\nSTATUS=running");
  }

  void arm_watchdog() {
    if (watchdog_interval.count() == 0) return;
    watchdog.expires_after(watchdog_interval);
    watchdog.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      notify("WATCHDOG=1");
      arm_watchdog();
    });
  }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }
Daemon::~Daemon() = default;

int Daemon::reloads_accepted() const { return impl_->accepted; }
int Daemon::reloads_rejected() const { return impl_->rejected; }

int Daemon::run() {
  Impl& d = *impl_;
  auto cfg = config::load_file(d.options.config_file);
  if (!cfg) {
    for (const auto& e : cfg.error()) {
      log::error("config error: " + e.to_string());
    }
    log::error("not starting: the configuration has errors",
               {{"CONFIG_FILE", d.options.config_file.string()}, {"ERRORS", cfg.error().size()}});
    return 1;
  }
  d.config = std::move(*cfg);
  // Secrets readable by group or others (issue #9): refuse to run with them.
  if (auto bad = config::check_secret_files(*d.config, /*missing_ok=*/true); !bad.empty()) {
    for (const auto& e : bad) {
      log::error("not starting: " + e.to_string(), {{"CONFIG_KEY", e.field}});
    }
    return 1;
  }
  // Before anything in the state directory is opened, created or written: a second
  // lanegated used to migrate the database, record a run and hand the running daemon's
  // leased outbox items back to the queue (issue 13, defect 12), then fail on the busy API
  // port. The checks above only read the configuration and key files, so a broken
  // configuration is still reported as such while another instance runs.
  auto lock = lock_state_directory(d.config->gateway.state_dir);
  if (!lock) {
    log::error("not starting: " + lock.error().message,
               {{"STATE_DIR", d.config->gateway.state_dir.string()}});
    return 1;
  }
  d.instance_lock.emplace(std::move(*lock));
  auto db = open_state_database(*d.config);
  if (!db) {
    log::error("not starting: cannot open the database: " + db.error().to_string());
    return 1;
  }
  d.db = std::move(*db);
  if (d.config->gateway.max_database_mb > 0) {
    log::notice("database size bound applied", {{"MAX_DATABASE_MB", d.config->gateway.max_database_mb}});
  }
  {
    auto st = d.db->prepare("INSERT INTO gateway_runs(started_at, version, config_file) VALUES(?, ?, ?)");
    if (!st || !st->bind_all(SystemClock::instance().unix_seconds(), std::string(LANEGATE_VERSION),
                             d.options.config_file.string())
                    .run()) {
      log::error("not starting: cannot write to the database");
      return 1;
    }
  }

  if (!d.start_components()) {
    d.stop_components();
    return 1;
  }
  d.arm_stop();
  d.arm_reload();
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) {
    d.watchdog_interval = std::chrono::microseconds(usec / 2);
    d.arm_watchdog();
  }
  // Prometheus' conventional name: a change between two scrapes is a restart (a crash shows
  // as a restart without a "lanegated stopped" line before it).
  metrics::Registry::global()
      .gauge("process_start_time_seconds", "Start time of lanegated since the Unix epoch, seconds")
      .set(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
               .count());
  log::notice("lanegated running", {{"GATEWAY", d.config->gateway.id},
                                     {"LANES", d.config->lanes.size()},
                                     {"API_PORT", d.api_port},
                                     {"STATE_DIR", d.config->gateway.state_dir.string()}});
  notify("READY=1\nSTATUS=running " + std::to_string(d.config->lanes.size()) + " lanes");
  d.io.run();
  d.stop_components();
  d.db.reset();
  log::notice("lanegated stopped");
  return 0;
}

}  // namespace lanegate::gateway
