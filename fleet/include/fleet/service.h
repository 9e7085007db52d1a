#pragma once
// lanegate-fleetd's HTTPS front (docs/FLEET.md, "The upload service"): boxes upload their
// ledgers here over mutual TLS. A box is known by the Common Name of its client certificate,
// which the service's client CA signed; no header or body field can name another box.
//
//   GET  /v1/head     -> 200 {"box","seq","hash"}: what the centre holds for this box
//   POST /v1/records  body: records.jsonl lines (gzip allowed: Content-Encoding: gzip)
//                     -> 200 stored | 409 gap or fork (with the head) | 422 bad record
//                        | 403 unknown box | 413 too large
//                     -> 503 with Retry-After while the database cannot take it; the box
//                        keeps its records (its ledger is the queue) and comes back then
//   POST /v1/seals    {"seal": seal.json text, "signature": Base64} -> 200 sealed
//                     | 409 not yet (upload the records first) | 422 refused | 403 unknown box
//   GET  /v1/seals/latest -> 200 {"box","date","revision"}: the newest seal held (date null
//                     when none); the box sends its seals after it
//   GET  /healthz     -> 200 when the database answers
//
// Threading: requests run on the HTTP server's worker threads, each with its own
// PostgreSQL connection (made on first use, made again after a failover).

#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/time_format.h"

namespace lanegate::fleet {

struct ServiceConfig {
  std::string host = "127.0.0.1";
  int port = 0;              // 0: any free port (tests); see Service::port()
  std::string cert_file;     // the service's certificate chain (PEM)
  std::string key_file;      // its private key (PEM)
  std::string client_ca_file;  // the CA that signs box certificates (PEM)
  std::string dsn;           // libpq connection string (scripts/fleet-cluster dsn)
  UtcOffset offset{480};     // the jurisdiction's offset: records' local days
  int retry_after_s = 30;    // told to boxes while the database cannot take uploads
  std::size_t max_body_bytes = 16 * 1024 * 1024;
};

class Service {
 public:
  explicit Service(ServiceConfig config);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Loads the certificates, migrates the database when it answers, binds, and serves on a
  // thread of its own. Errors name the file or the address.
  [[nodiscard]] Status start();
  int port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lanegate::fleet
