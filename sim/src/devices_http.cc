// HTTP control API of the simulated devices (see sim/devices.h for the endpoints).
#include <httplib.h>

#include <boost/json.hpp>

#include "lane/meter_frame.h"
#include "sim/devices_impl.h"

namespace lanegate::sim {
namespace json = boost::json;

DevicesSim::Impl::Impl() = default;
DevicesSim::Impl::~Impl() { shutdown(); }

void DevicesSim::Impl::stop_http() {
  if (http) {
    http->stop();
  }
}

namespace {

void reply_error(httplib::Response& res, int status, std::string_view message) {
  res.status = status;
  res.set_content(json::serialize(json::object{{"error", message}}), "application/json");
}

void reply_status(httplib::Response& res, const Error& e) {
  reply_error(res, e.code == Errc::kNotFound ? 404 : 400, e.to_string());
}

std::optional<json::object> body_object(const httplib::Request& req, httplib::Response& res) {
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec || !v.is_object()) {
    reply_error(res, 400, "body must be a JSON object");
    return std::nullopt;
  }
  return v.as_object();
}

std::string str(const json::object& o, std::string_view key, std::string def = {}) {
  if (auto* v = o.if_contains(key); v != nullptr && v->is_string()) {
    return std::string(v->as_string());
  }
  return def;
}

std::optional<std::int64_t> num(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v != nullptr) {
    if (v->is_int64()) return v->as_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  }
  return std::nullopt;
}

std::optional<std::vector<std::uint8_t>> from_hex(std::string_view hex) {
  std::vector<std::uint8_t> out;
  std::string digits;
  for (char c : hex) {
    if (c != ' ') digits.push_back(c);
  }
  if (digits.size() % 2 != 0) return std::nullopt;
  for (size_t i = 0; i < digits.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nib(digits[i]);
    const int lo = nib(digits[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return out;
}

}  // namespace

Status DevicesSim::Impl::start_http() {
  http = std::make_unique<httplib::Server>();
  DevicesSim* sim = owner;
  auto ok = [](httplib::Response& res, json::object o) {
    res.set_content(json::serialize(o), "application/json");
  };
  http->Post("/vehicle", [sim, ok](const httplib::Request& req, httplib::Response& res) {
    auto o = body_object(req, res);
    if (!o) return;
    VehicleArrival v;
    v.camera = str(*o, "camera");
    v.lane = str(*o, "lane");
    v.plate = str(*o, "plate");
    v.colour = static_cast<int>(num(*o, "colour").value_or(0));
    v.confidence = static_cast<int>(num(*o, "confidence").value_or(950));
    v.vehicle_class = static_cast<int>(num(*o, "class").value_or(1));
    v.time = num(*o, "time");
    auto r = sim->vehicle_arrives(v);
    if (!r) {
      // A push the gateway did not take is the gateway's side: 502, not the caller's 400.
      if (r.error().code == Errc::kUnavailable || r.error().code == Errc::kRejected ||
          r.error().code == Errc::kProtocol) {
        return reply_error(res, 502, r.error().to_string());
      }
      return reply_status(res, r.error());
    }
    ok(res, {{"sequence", *r}});
  });
  http->Post(R"(/camera/([^/]+)/token)",
             [sim, ok](const httplib::Request& req, httplib::Response& res) {
               auto o = body_object(req, res);
               if (!o) return;
               auto token = str(*o, "token");
               if (token.empty()) return reply_error(res, 400, "token: want a non-empty string");
               auto r = sim->set_camera_token(req.matches[1].str(), std::move(token));
               if (!r) return reply_status(res, r.error());
               ok(res, {{"ok", true}});
             });
  http->Post("/vehicle/leave", [sim, ok](const httplib::Request& req, httplib::Response& res) {
    auto o = body_object(req, res);
    if (!o) return;
    auto r = sim->vehicle_leaves(str(*o, "lane"));
    if (!r) return reply_status(res, r.error());
    ok(res, {{"ok", true}});
  });
  http->Post(R"(/reader/([^/]+)/scan)",
             [sim, ok](const httplib::Request& req, httplib::Response& res) {
               auto o = body_object(req, res);
               if (!o) return;
               const std::string reader = req.matches[1];
               Status r;
               if (o->if_contains("raw") != nullptr) {
                 r = sim->reader_raw(reader, str(*o, "raw"));
               } else if (o->if_contains("code") != nullptr) {
                 r = sim->reader_scan(reader, str(*o, "code"));
               } else {
                 auto code = sim->scan_payment_code(reader);
                 if (!code) return reply_status(res, code.error());
                 return ok(res, {{"code", *code}});
               }
               if (!r) return reply_status(res, r.error());
               ok(res, {{"ok", true}});
             });
  http->Post("/trip", [sim, ok](const httplib::Request& req, httplib::Response& res) {
    auto o = body_object(req, res);
    if (!o) return;
    SimTrip t;
    t.meter = str(*o, "meter");
    t.fare_fen = num(*o, "fare_fen").value_or(0);
    if (auto n = num(*o, "trip_number")) t.trip_number = static_cast<std::uint32_t>(*n);
    t.plate = str(*o, "plate", t.plate);
    t.boarding = str(*o, "boarding");
    t.alighting = str(*o, "alighting");
    t.distance_m = num(*o, "distance_m").value_or(t.distance_m);
    t.payment_type = static_cast<int>(num(*o, "payment_type").value_or(0));
    auto r = sim->end_trip(t);
    if (!r) return reply_status(res, r.error());
    ok(res, {{"trip_number", *r}});
  });
  http->Post(R"(/meter/([^/]+)/raw)",
             [sim, ok](const httplib::Request& req, httplib::Response& res) {
               auto o = body_object(req, res);
               if (!o) return;
               auto bytes = from_hex(str(*o, "hex"));
               if (!bytes) return reply_error(res, 400, "hex: want an even number of hex digits");
               auto r = sim->meter_raw(req.matches[1].str(), *bytes);
               if (!r) return reply_status(res, r.error());
               ok(res, {{"ok", true}});
             });
  http->Post(R"(/meter/([^/]+)/start)",
             [sim, ok](const httplib::Request& req, httplib::Response& res) {
               auto o = body_object(req, res);
               if (!o) return;
               auto r = sim->start_trip(req.matches[1].str(), str(*o, "occupied_at"));
               if (!r) return reply_status(res, r.error());
               ok(res, {{"ok", true}});
             });
  http->Post(R"(/meter/([^/]+)/resend)",
             [sim, ok](const httplib::Request& req, httplib::Response& res) {
               auto o = body_object(req, res);
               if (!o) return;
               std::optional<std::uint32_t> trip;
               if (auto n = num(*o, "trip_number")) trip = static_cast<std::uint32_t>(*n);
               auto r = sim->resend_stored(req.matches[1].str(), trip);
               if (!r) return reply_status(res, r.error());
               json::array numbers;
               for (auto n : *r) numbers.push_back(n);
               ok(res, {{"trip_numbers", std::move(numbers)}});
             });
  http->Post(R"(/meter/([^/]+)/device_state)",
             [sim, ok](const httplib::Request& req, httplib::Response& res) {
               auto o = body_object(req, res);
               if (!o) return;
               auto state = num(*o, "state");
               if (!state || *state < 0 || *state > 255) {
                 return reply_error(res, 400, "state: want 0..255");
               }
               auto r = sim->set_meter_device_state(req.matches[1].str(),
                                                    static_cast<std::uint8_t>(*state));
               if (!r) return reply_status(res, r.error());
               ok(res, {{"ok", true}});
             });
  http->Post("/roadside", [sim, ok](const httplib::Request& req, httplib::Response& res) {
    auto o = body_object(req, res);
    if (!o) return;
    RoadsideEntry e;
    e.device = str(*o, "device");
    e.lane = str(*o, "lane");
    e.entry_station = static_cast<std::uint32_t>(num(*o, "entry_station").value_or(0));
    e.entry_time = num(*o, "entry_time").value_or(0);
    e.vehicle_class = static_cast<int>(num(*o, "class").value_or(1));
    e.contract_id = str(*o, "contract_id");
    auto r = sim->roadside_entry(e);
    if (!r) return reply_status(res, r.error());
    ok(res, {{"sequence", *r}});
  });
  http->Post(R"(/device/([^/]+)/(silent|return))",
             [sim, ok](const httplib::Request& req, httplib::Response& res) {
               auto r = sim->set_silent(req.matches[1].str(), req.matches[2].str() == "silent");
               if (!r) return reply_status(res, r.error());
               ok(res, {{"ok", true}});
             });
  http->Post(R"(/barrier/([^/]+)/(stuck|free))", [sim, ok](const httplib::Request& req,
                                                           httplib::Response& res) {
    auto r = sim->set_barrier_stuck(req.matches[1].str(), req.matches[2].str() == "stuck");
    if (!r) return reply_status(res, r.error());
    ok(res, {{"ok", true}});
  });
  http->Get("/state", [sim](const httplib::Request&, httplib::Response& res) {
    res.set_content(sim->state_json(), "application/json");
  });
  const int port =
      options.control_port == 0
          ? http->bind_to_any_port("127.0.0.1")
          : (http->bind_to_port("127.0.0.1", options.control_port) ? options.control_port : -1);
  if (port <= 0) {
    return fail(Errc::kIo, "cannot bind the control port " + std::to_string(options.control_port),
                "control_port");
  }
  control_port = port;
  threads.emplace_back([this] { http->listen_after_bind(); });
  // stop() is a no-op until the server runs: wait for it so shutdown never hangs.
  for (int i = 0; i < 400 && !http->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return {};
}

std::string DevicesSim::state_json() const {
  json::object devices;
  for (const auto& d : impl_->devices) {
    json::object o;
    o["kind"] = std::string(config::to_string(d->cfg.kind));
    o["lane"] = d->lane;
    o["requests_answered"] = d->answered.load();
    {
      std::lock_guard lock(d->mu);
      o["silent"] = d->silent;
      if (d->cfg.kind == config::DeviceKind::kCamera ||
          d->cfg.kind == config::DeviceKind::kRoadsideUnit) {
        o["sequence"] = d->sequence;
        o["record_read"] = d->record_read;
      }
      if (d->cfg.push()) {
        const PushCameraState& p = d->push;
        o["protocol"] = p.protocol;
        o["pushes"] = p.pushes;
        o["push_failures"] = p.push_failures;
        o["last_event"] = p.last_event;
        o["relay_pulses"] = p.relay_pulses;
        o["relay_kept_shut"] = p.relay_kept_shut;
        o["bad_replies"] = p.bad_replies;
        o["heartbeats"] = p.heartbeats;
        o["heartbeat_failures"] = p.heartbeat_failures;
        o["last_error"] = p.last_error;
      }
    }
    if (d->cfg.kind == config::DeviceKind::kBarrier) {
      if (auto b = barrier(d->cfg.id)) {
        o["open_commands"] = b->open_commands;
        o["opened"] = b->opened;
        o["closed"] = b->closed;
        o["stuck"] = b->stuck;
      }
    }
    if (d->cfg.kind == config::DeviceKind::kDisplay) {
      if (auto t = display_text(d->cfg.id)) {
        o["text"] = *t;
      }
    }
    devices[d->cfg.id] = std::move(o);
  }
  json::object meters;
  for (const auto& m : impl_->meters) {
    json::object o;
    if (auto st = meter_link(m->cfg.id)) {
      auto numbers = [](const std::vector<std::uint32_t>& v) {
        json::array a;
        for (auto n : v) a.push_back(n);
        return a;
      };
      o["acked"] = numbers(st->acked);
      o["acked_stored"] = numbers(st->acked_stored);
      o["refused"] = numbers(st->refused);
      o["unacked"] = numbers(st->unacked);
      o["trip_starts_acked"] = st->trip_starts_acked;
      o["trip_starts_unacked"] = st->trip_starts_unacked;
      o["status_queries"] = st->status_queries;
      o["bad_acks"] = st->bad_acks;
      o["device_state"] = st->device_state;
    }
    o["path"] = m->link;
    meters[m->cfg.id] = std::move(o);
  }
  json::object tcp;
  for (const auto& t : impl_->tcp) {
    tcp[t->bus.id] = t->port;
  }
  return json::serialize(
      json::object{{"devices", devices}, {"meters", meters}, {"tcp_ports", tcp}});
}

}  // namespace lanegate::sim
