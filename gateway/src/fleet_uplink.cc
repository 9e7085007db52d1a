#include "gateway/fleet_uplink.h"

#include <httplib.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "core/ledger.h"
#include "core/log.h"
#include "core/metrics.h"

namespace lanegate::gateway {
namespace {

namespace json = boost::json;
using queue::Outcome;

metrics::Counter& uploads(std::string_view result) {
  return metrics::Registry::global().counter(
      "lanegate_fleet_uploads_total", "Fleet syncs by result", {{"result", std::string(result)}});
}

std::optional<std::chrono::milliseconds> retry_after(const httplib::Result& r) {
  if (!r || !r->has_header("Retry-After")) return std::nullopt;
  try {
    const int s = std::stoi(r->get_header_value("Retry-After"));
    if (s >= 0 && s <= 86'400) return std::chrono::seconds(s);
  } catch (...) {
  }
  return std::nullopt;
}

}  // namespace

struct FleetUplink::Impl {
  config::FleetSection cfg;
  Database db;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<queue::Drainer::Completion> jobs;
  bool stopping = false;
  std::thread worker;

  Impl(const config::FleetSection& c, Database d) : cfg(c), db(std::move(d)) {}

  std::unique_ptr<httplib::SSLClient> client() {
    auto cli = std::make_unique<httplib::SSLClient>(cfg.host, cfg.port, cfg.cert_file.string(),
                                                    cfg.key_file.string());
    cli->set_ca_cert_path(cfg.ca_file.string().c_str());
    cli->enable_server_certificate_verification(true);
    const auto t = std::chrono::milliseconds(cfg.timeout_ms);
    cli->set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count(), 0);
    cli->set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count(), 0);
    cli->set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count(), 0);
    cli->set_compress(true);
    return cli;
  }

  // A reply that is not one the protocol names: what to do with it.
  Outcome unexpected(const httplib::Result& r, std::string_view what) {
    if (!r) {
      uploads("unreachable").inc();
      return Outcome::retry("fleet centre unreachable (" + std::string(what) +
                                "): " + httplib::to_string(r.error()),
                            kLinkDownRetry);
    }
    if (r->status == 503) {
      uploads("busy").inc();
      return Outcome::retry("fleet centre busy (503)", retry_after(r));
    }
    if (r->status == 403) {
      uploads("unknown_box").inc();
      log::error("the fleet centre does not know this box: register its key there",
                 {{"REPLY", r->body.substr(0, 200)}});
      return Outcome::park("fleet centre: 403 unknown box");
    }
    uploads("error").inc();
    return Outcome::retry("fleet centre answered " + std::to_string(r->status) + " to " +
                          std::string(what));
  }

  Outcome sync() {
    auto cli = client();
    auto h = cli->Get("/v1/head");
    if (!h || h->status != 200) return unexpected(h, "head");
    std::error_code ec;
    json::value hv = json::parse(h->body, ec);
    const json::object* ho = ec ? nullptr : hv.if_object();
    if (ho == nullptr || !ho->contains("seq") || !ho->at("seq").is_int64()) {
      uploads("error").inc();
      return Outcome::retry("fleet centre: a head without seq");
    }
    std::int64_t centre = ho->at("seq").as_int64();
    auto local = ledger::head(db);
    if (!local) return Outcome::retry("ledger: " + local.error().message);
    const std::int64_t target = *local ? (*local)->seq : 0;
    if (centre > target) {
      // The centre holds more than this ledger: another box with this identity, or a
      // ledger restored from an old backup. Never overwritten either way.
      uploads("fork").inc();
      log::error("the fleet centre holds more records for this box than its ledger",
                 {{"CENTRE_SEQ", centre}, {"LOCAL_SEQ", target}});
      return Outcome::park("fleet centre is ahead of this ledger (" + std::to_string(centre) +
                           " > " + std::to_string(target) + ")");
    }
    for (int b = 0; b < kMaxBatches && centre < target; ++b) {
      const std::int64_t last = std::min(target, centre + cfg.batch_records);
      auto rows = ledger::read(db, {centre + 1, last});
      if (!rows) return Outcome::retry("ledger: " + rows.error().message);
      std::string body;
      for (const auto& e : *rows) {
        body += ledger::jsonl_line(e);
        body += '\n';
      }
      auto r = cli->Post("/v1/records", body, "application/x-ndjson");
      if (!r || (r->status != 200 && r->status != 409 && r->status != 422)) {
        return unexpected(r, "records");
      }
      json::value v = json::parse(r->body, ec);
      const json::object* o = ec ? nullptr : v.if_object();
      const json::value* head = o != nullptr ? o->if_contains("head") : nullptr;
      const std::string outcome =
          o != nullptr && o->contains("outcome") && o->at("outcome").is_string()
              ? std::string(o->at("outcome").as_string())
              : "";
      if (head == nullptr || !head->is_object() || !head->as_object().contains("seq") ||
          !head->as_object().at("seq").is_int64()) {
        uploads("error").inc();
        return Outcome::retry("fleet centre: a reply without its head");
      }
      const std::int64_t now_held = head->as_object().at("seq").as_int64();
      if (outcome == "stored" || outcome == "gap") {
        metrics::Registry::global()
            .counter("lanegate_fleet_records_sent_total", "Ledger records the centre took")
            .inc(std::max<std::int64_t>(0, now_held - centre));
        centre = now_held;
        continue;  // a gap resends from the head the centre gave
      }
      uploads(outcome == "fork" ? "fork" : "refused").inc();
      log::error("the fleet centre refused this box's records: an operator must look",
                 {{"OUTCOME", outcome}, {"REPLY", r->body.substr(0, 300)}});
      return Outcome::park("fleet centre refused records: " + outcome);
    }
    metrics::Registry::global()
        .gauge("lanegate_fleet_centre_seq", "The fleet centre's head for this box, as last seen")
        .set(centre);
    if (centre < target) {
      uploads("partial").inc();
      return Outcome::retry("more records to send", std::chrono::milliseconds(0));
    }
    if (auto stop = send_seals(*cli, centre)) return *stop;  // nullopt: every seal is up
    uploads("ok").inc();
    return Outcome::ack();
  }

  // Seals after the newest the centre holds, whose records it holds. nullopt: all sent.
  std::optional<Outcome> send_seals(httplib::SSLClient& cli, std::int64_t centre) {
    auto l = cli.Get("/v1/seals/latest");
    if (!l || l->status != 200) return unexpected(l, "seals/latest");
    std::error_code ec;
    json::value v = json::parse(l->body, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    std::string date;
    std::int64_t revision = 0;
    if (o != nullptr && o->contains("date") && o->at("date").is_string()) {
      date = std::string(o->at("date").as_string());
      revision = o->contains("revision") && o->at("revision").is_int64()
                     ? o->at("revision").as_int64()
                     : 0;
    }
    auto st = db.prepare(
        "SELECT seal_json, signature, last_seq FROM audit_seals WHERE date > ?1 OR "
        "(date = ?1 AND revision > ?2) ORDER BY date, revision");
    if (!st) return Outcome::retry("seals: " + st.error().message);
    st->bind_all(date, revision);
    while (true) {
      auto row = st->step();
      if (!row) return Outcome::retry("seals: " + row.error().message);
      if (!*row) break;
      if (st->column_int64(2) > centre) break;  // its records are not all up yet
      json::object body{{"seal", st->column_text(0)}, {"signature", st->column_text(1)}};
      auto r = cli.Post("/v1/seals", json::serialize(body), "application/json");
      if (!r) return unexpected(r, "seals");
      if (r->status == 422) {
        metrics::Registry::global()
            .counter("lanegate_fleet_seals_refused_total", "Day seals the fleet centre refused")
            .inc();
        log::error("the fleet centre refused a day seal", {{"REPLY", r->body.substr(0, 300)}});
        continue;
      }
      if (r->status == 409) break;
      if (r->status != 200) return unexpected(r, "seals");
    }
    return std::nullopt;
  }

  void run() {
    while (true) {
      queue::Drainer::Completion done;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;
        done = std::move(jobs.front());
        jobs.pop_front();
      }
      Outcome o = stopping ? Outcome::retry("stopping") : sync();
      done(std::move(o));
    }
  }
};

FleetUplink::FleetUplink(const config::FleetSection& section, Database db)
    : impl_(std::make_unique<Impl>(section, std::move(db))) {
  impl_->worker = std::thread([this] { impl_->run(); });
}

FleetUplink::~FleetUplink() { stop(); }

bool FleetUplink::handles(std::string_view topic) { return topic == kTopicFleetSync; }

void FleetUplink::sink(const queue::Item&, queue::Drainer::Completion done) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping) {
      impl_->jobs.push_back(std::move(done));
      impl_->cv.notify_one();
      return;
    }
  }
  done(Outcome::retry("stopping"));
}

void FleetUplink::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

queue::Outcome FleetUplink::sync_once() { return impl_->sync(); }

}  // namespace lanegate::gateway
