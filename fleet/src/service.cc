#include "fleet/service.h"

#include <httplib.h>
#include <unistd.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/json.hpp>
#include <mutex>
#include <thread>
#include <vector>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "fleet/centre.h"
#include "fleet/pg.h"

namespace lanegate::fleet {
namespace {

namespace json = boost::json;

// The Common Name of the verified client certificate: the box's identity. Empty when there
// is none (the TLS layer already refused a connection without one).
std::string box_of(const httplib::Request& req) {
  if (req.ssl == nullptr) return "";
  X509* cert = SSL_get1_peer_certificate(req.ssl);
  if (cert == nullptr) return "";
  char cn[256] = {};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                          sizeof cn);
  X509_free(cert);
  return n > 0 ? std::string(cn, static_cast<std::size_t>(n)) : "";
}

json::object head_json(std::string_view box, const Head& h) {
  return json::object{{"box", box}, {"seq", h.seq}, {"hash", h.hash}};
}

void reply(httplib::Response& res, int status, const json::object& body) {
  res.status = status;
  res.set_content(json::serialize(body), "application/json");
}

metrics::Counter& requests(std::string_view route, int status) {
  return metrics::Registry::global().counter(
      "lanegate_fleet_requests_total", "Requests to lanegate-fleetd by route and status",
      {{"route", std::string(route)}, {"status", std::to_string(status)}});
}

}  // namespace

struct Service::Impl {
  ServiceConfig cfg;
  std::unique_ptr<httplib::SSLServer> server;
  std::thread thread;
  int bound_port = 0;

  // One PostgreSQL connection per request in flight, kept for the next request.
  struct Worker {
    Worker(pg::Connection c, UtcOffset offset) : conn(std::move(c)), centre(conn, offset) {}
    pg::Connection conn;
    Centre centre;
  };
  std::mutex mu;
  std::vector<std::unique_ptr<Worker>> idle;

  Result<std::unique_ptr<Worker>> acquire() {
    {
      std::lock_guard lock(mu);
      if (!idle.empty()) {
        auto w = std::move(idle.back());
        idle.pop_back();
        return w;
      }
    }
    auto c = pg::Connection::open(cfg.dsn);
    if (!c) return std::unexpected(c.error());
    auto w = std::make_unique<Worker>(std::move(*c), cfg.offset);
    if (auto s = w->centre.migrate(); !s) return std::unexpected(s.error());
    return w;
  }
  void release(std::unique_ptr<Worker> w) {
    if (w->conn.broken()) return;
    std::lock_guard lock(mu);
    idle.push_back(std::move(w));
  }

  // The database cannot take the request now: the box comes back after Retry-After.
  void unavailable(httplib::Response& res, std::string_view route, const Error& e) {
    log::warn("fleet database unavailable: uploads deferred",
              {{"ROUTE", std::string(route)}, {"ERROR", e.message}});
    res.set_header("Retry-After", std::to_string(cfg.retry_after_s));
    reply(res, 503, json::object{{"error", "unavailable"},
                                 {"message", "the fleet database cannot take uploads now; "
                                             "your records stay with you: retry later"}});
  }

  // Runs `work` with a connection; a lost or demoted server answers 503 + Retry-After.
  template <typename Work>
  void with_db(httplib::Response& res, std::string_view route, Work&& work) {
    auto w = acquire();
    if (!w) return unavailable(res, route, w.error());
    auto s = work((*w)->centre);
    if (!s) {
      if (s.error().code == Errc::kUnavailable) {
        unavailable(res, route, s.error());
        return;  // the connection is dropped, the next request connects again
      }
      log::error("fleet request failed", {{"ROUTE", std::string(route)},
                                          {"ERROR", s.error().message}});
      reply(res, 500, json::object{{"error", "internal"}, {"message", s.error().message}});
    }
    release(std::move(*w));
  }

  void head(const httplib::Request& req, httplib::Response& res) {
    const std::string box = box_of(req);
    with_db(res, "/v1/head", [&](Centre& c) -> Status {
      auto h = c.head(box);
      if (!h) {
        if (h.error().code == Errc::kNotFound) {
          reply(res, 403, json::object{{"error", "unknown_box"},
                                       {"message", "box_id: " + box + " is not registered"}});
          return {};
        }
        return std::unexpected(h.error());
      }
      reply(res, 200, head_json(box, *h));
      return {};
    });
    requests("/v1/head", res.status).inc();
  }

  void records(const httplib::Request& req, httplib::Response& res) {
    const std::string box = box_of(req);
    // Lines of the body; a last newline is optional, an empty line is not a record.
    std::vector<std::string> lines;
    std::string_view rest = req.body;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      lines.emplace_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
    with_db(res, "/v1/records", [&](Centre& c) -> Status {
      auto r = c.ingest(box, lines);
      if (!r) {
        if (r.error().code == Errc::kInvalidArgument) {
          reply(res, 413, json::object{{"error", "too_large"},
                                       {"message", r.error().to_string()}});
          return {};
        }
        return std::unexpected(r.error());
      }
      int status = 200;
      switch (r->outcome) {
        case IngestResult::Outcome::kStored:
          status = 200;
          break;
        case IngestResult::Outcome::kGap:
        case IngestResult::Outcome::kFork:
          status = 409;
          break;
        case IngestResult::Outcome::kBadRecord:
          status = 422;
          break;
        case IngestResult::Outcome::kUnknownBox:
          status = 403;
          break;
      }
      json::object body{{"outcome", outcome_name(r->outcome)},
                        {"stored", r->stored},
                        {"skipped", r->skipped},
                        {"head", head_json(box, r->head)}};
      if (r->outcome != IngestResult::Outcome::kStored) {
        body["seq"] = r->seq;
        body["message"] = r->message;
      }
      if (r->outcome == IngestResult::Outcome::kFork) {
        log::error("fork: a box offered other records than the centre holds",
                   {{"BOX", box}, {"SEQ", r->seq}});
      }
      reply(res, status, body);
      return {};
    });
    requests("/v1/records", res.status).inc();
  }

  // A day seal: {"seal": <the seal.json text>, "signature": <Base64 of the 64 bytes>}.
  void seals(const httplib::Request& req, httplib::Response& res) {
    const std::string box = box_of(req);
    std::error_code ec;
    const json::value v = json::parse(req.body, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    const json::string* seal = o != nullptr && o->contains("seal") ? o->at("seal").if_string() : nullptr;
    const json::string* sig_b64 =
        o != nullptr && o->contains("signature") ? o->at("signature").if_string() : nullptr;
    auto sig = sig_b64 != nullptr ? crypto::base64_decode(std::string_view(*sig_b64))
                                  : Result<crypto::Bytes>(fail(Errc::kParse, "missing"));
    if (seal == nullptr || !sig || sig->size() != 64) {
      reply(res, 422, json::object{{"error", "bad_request"},
                                   {"message", seal == nullptr
                                                   ? "seal: must be the seal.json text"
                                                   : "signature: must be Base64 of 64 bytes"}});
      requests("/v1/seals", res.status).inc();
      return;
    }
    with_db(res, "/v1/seals", [&](Centre& c) -> Status {
      auto r = c.ingest_seal(box, std::string_view(*seal), *sig);
      if (!r) return std::unexpected(r.error());
      int status = 200;
      switch (r->outcome) {
        case SealResult::Outcome::kSealed:
          status = 200;
          break;
        case SealResult::Outcome::kNotYet:
          status = 409;
          break;
        case SealResult::Outcome::kRefused:
          status = 422;
          log::error("a box's seal was refused", {{"BOX", box}, {"WHY", r->message}});
          break;
        case SealResult::Outcome::kUnknownBox:
          status = 403;
          break;
      }
      json::object body{{"outcome", outcome_name(r->outcome)}, {"sealed", r->sealed}};
      if (!r->message.empty()) body["message"] = r->message;
      reply(res, status, body);
      return {};
    });
    requests("/v1/seals", res.status).inc();
  }
};

Service::Service(ServiceConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
}

Service::~Service() { stop(); }

Status Service::start() {
  auto& cfg = impl_->cfg;
  for (const auto& [file, field] : {std::pair{cfg.cert_file, "cert"}, {cfg.key_file, "key"},
                                    {cfg.client_ca_file, "client_ca"}}) {
    if (file.empty() || ::access(file.c_str(), R_OK) != 0) {
      return fail(Errc::kNotFound, "cannot read '" + file + "'", field);
    }
  }
  // With a client CA, the server requires and verifies a client certificate in the handshake.
  impl_->server = std::make_unique<httplib::SSLServer>(cfg.cert_file.c_str(), cfg.key_file.c_str(),
                                                       cfg.client_ca_file.c_str());
  auto& svr = *impl_->server;
  if (!svr.is_valid()) {
    return fail(Errc::kCrypto, "the certificate, key or client CA does not load (PEM expected)",
                "cert");
  }
  svr.set_payload_max_length(cfg.max_body_bytes);
  Impl* self = impl_.get();
  svr.Get("/v1/head", [self](const httplib::Request& q, httplib::Response& r) { self->head(q, r); });
  svr.Post("/v1/records",
           [self](const httplib::Request& q, httplib::Response& r) { self->records(q, r); });
  svr.Post("/v1/seals",
           [self](const httplib::Request& q, httplib::Response& r) { self->seals(q, r); });
  svr.Get("/v1/seals/latest", [self](const httplib::Request& q, httplib::Response& res) {
    const std::string box = box_of(q);
    self->with_db(res, "/v1/seals/latest", [&](Centre& c) -> Status {
      auto l = c.latest_seal(box);
      if (!l) return std::unexpected(l.error());
      json::object body{{"box", box}};
      if (*l) {
        body["date"] = (*l)->date;
        body["revision"] = (*l)->revision;
      } else {
        body["date"] = nullptr;
        body["revision"] = 0;
      }
      reply(res, 200, body);
      return {};
    });
    requests("/v1/seals/latest", res.status).inc();
  });
  svr.Get("/healthz", [self](const httplib::Request&, httplib::Response& res) {
    self->with_db(res, "/healthz", [&](Centre&) -> Status {
      reply(res, 200, json::object{{"status", "ok"}});
      return {};
    });
  });
  if (cfg.port == 0) {
    impl_->bound_port = svr.bind_to_any_port(cfg.host.c_str());
  } else if (svr.bind_to_port(cfg.host.c_str(), cfg.port)) {
    impl_->bound_port = cfg.port;
  }
  if (impl_->bound_port <= 0) {
    return fail(Errc::kIo, "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port),
                "listen");
  }
  impl_->thread = std::thread([self] { self->server->listen_after_bind(); });
  return {};
}

int Service::port() const { return impl_->bound_port; }

void Service::stop() {
  if (impl_ && impl_->server) {
    impl_->server->stop();
    if (impl_->thread.joinable()) impl_->thread.join();
  }
}

}  // namespace lanegate::fleet
