#include "gateway/daemon.h"

#include <systemd/sd-daemon.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <optional>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {
namespace {

namespace asio = boost::asio;

// The gateway's own tables. Module schemas are added here in a fixed order as they
// join the daemon.
constexpr std::string_view kGatewayV1 = R"sql(
CREATE TABLE gateway_runs (
  id          INTEGER PRIMARY KEY,
  started_at  INTEGER NOT NULL,      -- unix seconds
  version     TEXT NOT NULL,
  config_file TEXT NOT NULL
);
)sql";

constexpr std::string_view kSteps[] = {kGatewayV1};

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

}  // namespace

std::span<const std::string_view> database_schema() { return kSteps; }

Result<Database> open_state_database(const config::Config& cfg) {
  std::error_code ec;
  std::filesystem::create_directories(cfg.gateway.state_dir, ec);
  if (ec) {
    return fail(Errc::kIo, "cannot create state directory " + cfg.gateway.state_dir.string() + ": " +
                               ec.message(), "gateway.state_dir");
  }
  auto db = Database::open(cfg.gateway.state_dir / "lanegate.db");
  if (!db) return db;
  if (auto s = db->migrate(database_schema()); !s) {
    return std::unexpected(s.error());
  }
  return db;
}

struct Daemon::Impl {
  DaemonOptions options;
  asio::io_context io;
  asio::signal_set stop_signals{io, SIGTERM, SIGINT};
  asio::signal_set reload_signal{io, SIGHUP};
  asio::steady_timer watchdog{io};
  std::chrono::microseconds watchdog_interval{0};
  std::optional<config::Config> config;
  std::optional<Database> db;
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
    } else {
      ++accepted;
      metrics::Registry::global()
          .counter("lanegate_config_reloads_total", "Configuration reloads by result", {{"result", "accepted"}})
          .inc();
      config = std::move(*fresh);
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
  auto db = open_state_database(*d.config);
  if (!db) {
    log::error("not starting: cannot open the database: " + db.error().to_string());
    return 1;
  }
  d.db = std::move(*db);
  {
    auto st = d.db->prepare("INSERT INTO gateway_runs(started_at, version, config_file) VALUES(?, ?, ?)");
    if (!st || !st->bind_all(SystemClock::instance().unix_seconds(), std::string(LANEGATE_VERSION),
                             d.options.config_file.string())
                    .run()) {
      log::error("not starting: cannot write to the database");
      return 1;
    }
  }

  d.arm_stop();
  d.arm_reload();
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) {
    d.watchdog_interval = std::chrono::microseconds(usec / 2);
    d.arm_watchdog();
  }
  log::notice("lanegated running", {{"GATEWAY", d.config->gateway.id},
                                     {"LANES", d.config->lanes.size()},
                                     {"STATE_DIR", d.config->gateway.state_dir.string()}});
  notify("READY=1\nSTATUS=running " + std::to_string(d.config->lanes.size()) + " lanes");
  d.io.run();
  d.db.reset();
  log::notice("lanegated stopped");
  return 0;
}

}  // namespace lanegate::gateway
